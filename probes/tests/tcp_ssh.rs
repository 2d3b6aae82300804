#![allow(clippy::unwrap_used)]
//! TCP connect and SSH banner probes against testkit servers on loopback.
//!
//! Tests that compare a measured time with a wall-clock bound are named
//! `timing_*`: `scripts/test.sh` runs them after the rest, one at a time.

use std::net::SocketAddr;
use std::time::Duration;

use probes::{ssh, tcp, Lost};
use testkit::{refused_addr, SshBannerServer, TcpListenerServer};

const T: Duration = Duration::from_secs(2);

#[tokio::test]
async fn timing_tcp_connect_to_listener() {
    let server = TcpListenerServer::start(None);
    let rtt = tcp::connect_time(server.addr(), None, T).await.unwrap();
    assert!(rtt < Duration::from_millis(50), "{rtt:?}");
    let rtt = tcp::connect_time(server.addr(), Some("127.0.0.1".parse().unwrap()), T)
        .await
        .unwrap();
    assert!(rtt < Duration::from_millis(50), "{rtt:?}");
}

#[tokio::test]
async fn tcp_refused() {
    let res = tcp::connect_time(refused_addr(), None, T).await;
    assert_eq!(res, Err(Lost::Refused));
}

#[tokio::test]
async fn tcp_source_of_other_family_is_io_error() {
    let server = TcpListenerServer::start(None);
    let res = tcp::connect_time(server.addr(), Some("::1".parse().unwrap()), T).await;
    assert!(matches!(res, Err(Lost::Io(_))), "{res:?}");
}

/// A listener that never accepts: once its accept queue is full, Linux
/// drops further SYNs and connects hang until our timeout.
#[tokio::test]
async fn tcp_timeout_on_full_backlog() {
    // With tcp_abort_on_overflow the kernel answers RST instead.
    let abort =
        std::fs::read_to_string("/proc/sys/net/ipv4/tcp_abort_on_overflow").unwrap_or_default();
    if abort.trim() == "1" {
        testkit::require::skip(
            "tcp_timeout_on_full_backlog",
            "net.ipv4.tcp_abort_on_overflow = 1 answers a full backlog with RST (sysctl -w net.ipv4.tcp_abort_on_overflow=0)",
        );
        return;
    }
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let mut outcomes = Vec::new();
    for _ in 0..10 {
        let res = tcp::connect_time(addr, None, Duration::from_millis(200)).await;
        let timed_out = res == Err(Lost::Timeout);
        outcomes.push(res);
        if timed_out {
            break;
        }
    }
    assert!(
        outcomes
            .iter()
            .all(|r| r.is_ok() || *r == Err(Lost::Timeout)),
        "{outcomes:?}"
    );
    assert_eq!(outcomes.last(), Some(&Err(Lost::Timeout)), "{outcomes:?}");
    drop(listener);
}

#[tokio::test]
async fn timing_ssh_banner_answered() {
    let server = SshBannerServer::start("SSH-2.0-testkit\r\n", Duration::ZERO);
    let rtt = ssh::banner_ping(server.addr(), T).await.unwrap();
    assert!(rtt < Duration::from_millis(50), "{rtt:?}");
    assert_eq!(server.connections(), 1);
}

#[tokio::test]
async fn timing_ssh_rtt_is_connect_time_not_banner_time() {
    let server = SshBannerServer::start("SSH-2.0-testkit\r\n", Duration::from_millis(300));
    let started = std::time::Instant::now();
    let rtt = ssh::banner_ping(server.addr(), T).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(rtt < Duration::from_millis(50), "{rtt:?}");
}

#[tokio::test]
async fn ssh_non_ssh_line_is_bad_answer() {
    let server = SshBannerServer::start("HTTP/1.0 400 Bad Request\r\n", Duration::ZERO);
    let res = ssh::banner_ping(server.addr(), T).await;
    match res {
        Err(Lost::BadAnswer(msg)) => assert!(msg.starts_with("no SSH banner: "), "{msg}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn ssh_close_without_banner_is_short_read() {
    let server = SshBannerServer::start("", Duration::ZERO);
    let res = ssh::banner_ping(server.addr(), T).await;
    assert!(matches!(res, Err(Lost::ShortRead(_))), "{res:?}");
}

#[tokio::test]
async fn timing_ssh_late_banner_is_timeout() {
    let server = SshBannerServer::start("SSH-2.0-testkit\r\n", Duration::from_secs(2));
    let started = std::time::Instant::now();
    let res = ssh::banner_ping(server.addr(), Duration::from_millis(200)).await;
    assert_eq!(res, Err(Lost::Timeout));
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn ssh_refused() {
    let res = ssh::banner_ping(refused_addr(), T).await;
    assert_eq!(res, Err(Lost::Refused));
}
