#![allow(clippy::unwrap_used)]
//! DNS probe against testkit's DNS server on loopback.
//!
//! Tests that compare a measured time with a wall-clock upper bound are
//! named `timing_*`: `scripts/test.sh` runs them after the rest, one at a
//! time. A lower bound (an answer the server delays by D is never measured
//! shorter than D) holds however busy the machine is.

use std::time::Duration;

use probes::{dns, Lost};
use testkit::DnsServer;

const T: Duration = Duration::from_secs(2);

#[tokio::test]
async fn timing_a_noerror_answered() {
    let server = DnsServer::start(Duration::ZERO, "NOERROR");
    let rtt = dns::query_time(server.addr(), "example.com", "A", None, T)
        .await
        .unwrap();
    assert!(rtt < Duration::from_millis(100), "{rtt:?}");
    let rtt = dns::query_time(server.addr(), "example.com.", "a", Some("noerror"), T)
        .await
        .unwrap();
    assert!(rtt < Duration::from_millis(100), "{rtt:?}");
    for rtype in ["AAAA", "MX", "TXT", "NS", "SOA", "CNAME", "PTR", "SRV"] {
        dns::query_time(server.addr(), "example.com", rtype, Some("NOERROR"), T)
            .await
            .unwrap();
    }
    assert_eq!(server.queries(), 10);
}

#[tokio::test]
async fn timing_delay_is_measured() {
    let server = DnsServer::start(Duration::from_millis(200), "NOERROR");
    let rtt = dns::query_time(server.addr(), "example.com", "A", None, T)
        .await
        .unwrap();
    assert!(rtt >= Duration::from_millis(200), "{rtt:?}");
    assert!(rtt < Duration::from_secs(1), "{rtt:?}");
}

#[tokio::test]
async fn unexpected_rcode_is_bad_answer() {
    let server = DnsServer::start(Duration::ZERO, "NXDOMAIN");
    let res = dns::query_time(server.addr(), "nx.example", "A", Some("NOERROR"), T).await;
    assert_eq!(
        res,
        Err(Lost::BadAnswer(
            "response code NXDOMAIN, expected NOERROR".into()
        ))
    );
    // Expected, or not checked: answered.
    assert!(
        dns::query_time(server.addr(), "nx.example", "A", Some("NXDOMAIN"), T)
            .await
            .is_ok()
    );
    assert!(dns::query_time(server.addr(), "nx.example", "A", None, T)
        .await
        .is_ok());
}

#[tokio::test]
async fn timing_timeout() {
    let server = DnsServer::start(Duration::from_secs(3), "NOERROR");
    let started = std::time::Instant::now();
    let res = dns::query_time(
        server.addr(),
        "example.com",
        "A",
        None,
        Duration::from_millis(200),
    )
    .await;
    assert_eq!(res, Err(Lost::Timeout));
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(server.queries(), 1);
}

#[tokio::test]
async fn unrelated_responses_are_ignored() {
    let server = DnsServer::start_with_decoys(Duration::from_millis(100), "NOERROR");
    let rtt = dns::query_time(server.addr(), "example.com", "A", Some("NOERROR"), T)
        .await
        .unwrap();
    assert!(rtt >= Duration::from_millis(100), "{rtt:?}");
}

#[tokio::test]
async fn no_server_is_refused_or_timeout() {
    // Nothing listens on this UDP port: the kernel answers with ICMP port
    // unreachable, which a connected UDP socket reports as refused.
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = sock.local_addr().unwrap();
    drop(sock);
    let res = dns::query_time(addr, "example.com", "A", None, Duration::from_millis(300)).await;
    assert!(matches!(res, Err(Lost::Refused | Lost::Timeout)), "{res:?}");
}
