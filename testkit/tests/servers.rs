#![allow(clippy::unwrap_used)]
//! The testkit servers, used from blocking code.
//!
//! Tests that compare a measured time with a wall-clock upper bound are
//! named `timing_*`: `scripts/test.sh` runs them after the rest, one at a
//! time.

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use testkit::{
    fping_c_script, refused_addr, DnsServer, HttpServer, SshBannerServer, TcpListenerServer,
};

fn http_exchange(server: &HttpServer, request: &str) -> String {
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    stream.read_to_end(&mut out).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn http_routes() {
    let server = HttpServer::start(false);
    assert_eq!(
        server.url("x"),
        format!("http://127.0.0.1:{}/x", server.addr().port())
    );
    let r = http_exchange(&server, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
    assert!(r.contains("Connection: close\r\n"), "{r}");
    assert!(r.ends_with("pingmachine testkit\n"), "{r}");

    let r = http_exchange(&server, "GET /status/404?x=1 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 404 Not Found\r\n"), "{r}");

    let r = http_exchange(&server, "HEAD /status/503 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 503 "), "{r}");
    assert!(r.ends_with("\r\n\r\n"), "HEAD has no body: {r}");

    let r = http_exchange(&server, "GET /close-early HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(r.contains("Content-Length: 100\r\n"), "{r}");
    assert!(r.ends_with("\r\n\r\n0123456789"), "{r}");

    let started = Instant::now();
    let r = http_exchange(&server, "GET /delay/150 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 200 "), "{r}");
    assert!(started.elapsed() >= Duration::from_millis(150));

    assert_eq!(server.connections(), 5);
    assert_eq!(server.requests(), 5);
}

#[test]
fn timing_drop_stops_promptly_even_with_requests_in_flight() {
    let server = HttpServer::start(false);
    let addr = server.addr();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .write_all(b"GET /delay/20000 HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    // Wait (bounded) until the server has read the request.
    for _ in 0..100 {
        if server.requests() == 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(server.requests(), 1);
    let started = Instant::now();
    drop(server);
    assert!(started.elapsed() < Duration::from_secs(2));
    // The in-flight connection is closed, without its 20 s delay. (A child
    // forked meanwhile by another test may hold the sockets until it execs,
    // so allow a moment.)
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("in-flight connection not closed: {other:?}"),
    }
    let mut refused = false;
    for _ in 0..40 {
        if TcpStream::connect(addr).is_err() {
            refused = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(refused, "still listening after drop");
}

#[test]
fn https_server_has_ca() {
    let server = HttpServer::start(true);
    assert!(server.url("/").starts_with("https://127.0.0.1:"));
    let pem = String::from_utf8(server.ca_pem()).unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
}

#[test]
fn tcp_listener_accepts() {
    let server = TcpListenerServer::start(None);
    for _ in 0..3 {
        drop(TcpStream::connect(server.addr()).unwrap());
    }
    for _ in 0..100 {
        if server.accepted() == 3 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(server.accepted(), 3);
}

#[test]
fn refused_addr_refuses() {
    let err = TcpStream::connect(refused_addr()).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
}

#[test]
fn ssh_banner() {
    let server = SshBannerServer::start("SSH-2.0-testkit\r\n", Duration::from_millis(50));
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let started = Instant::now();
    let mut out = Vec::new();
    stream.read_to_end(&mut out).unwrap();
    assert_eq!(out, b"SSH-2.0-testkit\r\n");
    // Held ~1 s after the banner, then closed.
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert_eq!(server.connections(), 1);
}

fn dns_query(server: &DnsServer, name: &str, rtype: RecordType) -> Message {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut q = Message::new(4242, MessageType::Query, OpCode::Query);
    q.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    socket.send_to(&q.to_vec().unwrap(), server.addr()).unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = socket.recv_from(&mut buf).unwrap();
    Message::from_vec(&buf[..n]).unwrap()
}

#[test]
fn dns_answers() {
    let server = DnsServer::start(Duration::ZERO, "noerror");
    let r = dns_query(&server, "example.com.", RecordType::A);
    assert_eq!(r.metadata.id, 4242);
    assert_eq!(r.metadata.message_type, MessageType::Response);
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert_eq!(r.queries.len(), 1);
    assert_eq!(r.answers.len(), 1);
    assert_eq!(
        r.answers[0].data,
        RData::A("127.0.0.1".parse::<std::net::Ipv4Addr>().unwrap().into())
    );
    let r = dns_query(&server, "example.com.", RecordType::MX);
    assert!(r.answers.is_empty());
    assert_eq!(server.queries(), 2);

    let nx = DnsServer::start(Duration::ZERO, "NXDOMAIN");
    let r = dns_query(&nx, "nx.example.", RecordType::A);
    assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
    assert!(r.answers.is_empty());
}

#[test]
fn fping_script_prints_and_records_argv() {
    let dir = tempfile::tempdir().unwrap();
    // A directory name that needs quoting in the shell.
    let sub = dir.path().join("it's a dir");
    std::fs::create_dir(&sub).unwrap();
    let script = fping_c_script(&sub, "127.0.0.1 : 0.10 0.12\n::1 : - 0.2");
    let out = Command::new(&script)
        .args(["-C", "2", "a b", "$x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "a '-' value exits 1");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "127.0.0.1 : 0.10 0.12\n::1 : - 0.2\n"
    );
    let argv = std::fs::read_to_string(sub.join("argv.txt")).unwrap();
    assert_eq!(argv, "-C\n2\na b\n$x\n");

    let script = fping_c_script(&sub, "1-ff00:0:110,10.0.0.1 : 1.0\n");
    let out = Command::new(&script).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "a '-' inside a host name is not a loss"
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "1-ff00:0:110,10.0.0.1 : 1.0\n"
    );
    assert_eq!(std::fs::read_to_string(sub.join("argv.txt")).unwrap(), "");
}
