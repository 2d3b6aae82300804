#![allow(clippy::unwrap_used)]
//! HTTP(S) probe against testkit's HTTP server on loopback.
//!
//! Tests that compare a measured time with a wall-clock upper bound are
//! named `timing_*`: `scripts/test.sh` runs them after the rest, one at a
//! time.

use std::time::Duration;

use probes::http::{HttpConfig, HttpProber, Method};
use probes::Lost;
use testkit::{refused_addr, HttpProxy, HttpServer};

fn prober(extra_ca: Option<Vec<u8>>) -> HttpProber {
    HttpProber::new(HttpConfig {
        timeout: Duration::from_secs(5),
        extra_root_certs_pem: extra_ca.into_iter().collect(),
        ..HttpConfig::default()
    })
    .unwrap()
}

#[tokio::test]
async fn timing_head_and_get_answered() {
    let server = HttpServer::start(false);
    let p = prober(None);
    let rtt = p.ping(&server.url("/"), Method::Head, &[]).await.unwrap();
    assert!(rtt < Duration::from_secs(1), "{rtt:?}");
    let rtt = p.ping(&server.url("/"), Method::Get, &[]).await.unwrap();
    assert!(rtt < Duration::from_secs(1), "{rtt:?}");
    assert_eq!(server.requests(), 2);
}

#[tokio::test]
async fn timing_delay_is_measured() {
    let server = HttpServer::start(false);
    let p = prober(None);
    for method in [Method::Head, Method::Get] {
        let rtt = p
            .ping(&server.url("/delay/200"), method, &[])
            .await
            .unwrap();
        assert!(rtt >= Duration::from_millis(200), "{rtt:?}");
        assert!(rtt < Duration::from_secs(1), "{rtt:?}");
    }
}

#[tokio::test]
async fn fail_codes() {
    let server = HttpServer::start(false);
    let p = prober(None);
    let res = p
        .ping(&server.url("/status/503"), Method::Get, &[503])
        .await;
    assert_eq!(res, Err(Lost::Status(503)));
    let res = p
        .ping(&server.url("/status/503"), Method::Head, &[500, 503])
        .await;
    assert_eq!(res, Err(Lost::Status(503)));
    // Statuses not listed are answers.
    assert!(p
        .ping(&server.url("/status/404"), Method::Get, &[503])
        .await
        .is_ok());
    assert!(p
        .ping(&server.url("/status/500"), Method::Get, &[503])
        .await
        .is_ok());
    assert!(p
        .ping(&server.url("/status/503"), Method::Get, &[])
        .await
        .is_ok());
    // Redirects are not followed: a 302 is an answer (and one request).
    let before = server.requests();
    assert!(p
        .ping(&server.url("/status/302"), Method::Get, &[])
        .await
        .is_ok());
    assert_eq!(server.requests(), before + 1);
}

#[tokio::test]
async fn close_early_is_short_read() {
    let server = HttpServer::start(false);
    let p = prober(None);
    let res = p.ping(&server.url("/close-early"), Method::Get, &[]).await;
    assert!(matches!(res, Err(Lost::ShortRead(_))), "{res:?}");
}

#[tokio::test]
async fn refused() {
    let p = prober(None);
    let url = format!("http://{}/", refused_addr());
    assert_eq!(p.ping(&url, Method::Head, &[]).await, Err(Lost::Refused));
}

#[tokio::test]
async fn timing_timeout() {
    let server = HttpServer::start(false);
    let p = HttpProber::new(HttpConfig {
        timeout: Duration::from_millis(200),
        ..HttpConfig::default()
    })
    .unwrap();
    let started = std::time::Instant::now();
    let res = p.ping(&server.url("/delay/2000"), Method::Get, &[]).await;
    assert_eq!(res, Err(Lost::Timeout));
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn timing_https_with_trusted_ca() {
    let server = HttpServer::start(true);
    assert!(server.url("/").starts_with("https://127.0.0.1:"));
    let p = prober(Some(server.ca_pem()));
    let rtt = p.ping(&server.url("/"), Method::Get, &[]).await.unwrap();
    assert!(rtt < Duration::from_secs(1), "{rtt:?}");
    let rtt = p
        .ping(&server.url("/delay/100"), Method::Head, &[])
        .await
        .unwrap();
    assert!(rtt >= Duration::from_millis(100), "{rtt:?}");
    // localhost is in the certificate too.
    let url = format!("https://localhost:{}/", server.addr().port());
    assert!(p.ping(&url, Method::Head, &[]).await.is_ok());
}

#[tokio::test]
async fn https_untrusted_is_tls_error() {
    let server = HttpServer::start(true);
    let p = prober(None);
    let res = p.ping(&server.url("/"), Method::Get, &[]).await;
    assert!(matches!(res, Err(Lost::Tls(_))), "{res:?}");
    // Another server's CA does not help either.
    let other = HttpServer::start(true);
    let p = prober(Some(other.ca_pem()));
    let res = p.ping(&server.url("/"), Method::Get, &[]).await;
    assert!(matches!(res, Err(Lost::Tls(_))), "{res:?}");
}

#[tokio::test]
async fn scheme_mismatch_is_lost() {
    let tls_server = HttpServer::start(true);
    let plain_server = HttpServer::start(false);
    let p = prober(Some(tls_server.ca_pem()));
    // http:// to a TLS server: its answer is not HTTP.
    let url = format!("http://{}/", tls_server.addr());
    let res = p.ping(&url, Method::Get, &[]).await;
    assert!(
        matches!(res, Err(Lost::BadAnswer(_) | Lost::ShortRead(_))),
        "{res:?}"
    );
    // https:// to a plain server: the handshake fails.
    let url = format!("https://{}/", plain_server.addr());
    let res = p.ping(&url, Method::Get, &[]).await;
    assert!(matches!(res, Err(Lost::Tls(_))), "{res:?}");
}

#[tokio::test]
async fn one_connection_per_ping() {
    for tls in [false, true] {
        let server = HttpServer::start(tls);
        let p = prober(Some(server.ca_pem()));
        for i in 1..=4 {
            let method = if i % 2 == 0 {
                Method::Get
            } else {
                Method::Head
            };
            p.ping(&server.url("/"), method, &[]).await.unwrap();
            assert_eq!(server.connections(), i, "tls={tls}");
            assert_eq!(server.requests(), i, "tls={tls}");
        }
    }
}

#[tokio::test]
async fn prober_is_shared_across_tasks() {
    let server = HttpServer::start(false);
    let p = std::sync::Arc::new(prober(None));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let p = p.clone();
        let url = server.url("/delay/50");
        tasks.push(tokio::spawn(
            async move { p.ping(&url, Method::Get, &[]).await },
        ));
    }
    for t in tasks {
        assert!(t.await.unwrap().is_ok());
    }
    assert_eq!(server.connections(), 4);
}

#[tokio::test]
async fn through_a_proxy_plain_and_tunnelled_with_credentials() {
    let http = HttpServer::start(false);
    let https = HttpServer::start(true);
    // user:p@ss, the @ percent-encoded in the URL.
    let auth = "Basic dXNlcjpwQHNz";
    let proxy = HttpProxy::start(Some(auth));
    let with = |proxy_url: String| {
        HttpProber::new(HttpConfig {
            proxy: Some(proxy_url),
            timeout: Duration::from_secs(5),
            extra_root_certs_pem: vec![https.ca_pem()],
            ..HttpConfig::default()
        })
        .unwrap()
    };
    let p = with(format!("http://user:p%40ss@{}", proxy.addr()));
    p.ping(&http.url("/"), Method::Get, &[]).await.unwrap();
    p.ping(&https.url("/"), Method::Head, &[]).await.unwrap();
    assert_eq!(
        proxy.seen(),
        [
            format!("GET {} HTTP/1.1 {auth}", http.url("/")),
            format!("CONNECT {} HTTP/1.1 {auth}", https.addr()),
        ]
    );
    assert_eq!((http.requests(), https.requests()), (1, 1));
    // Refused credentials: the tunnel is not opened, the ping is lost; a
    // plain request gets the proxy's 407, an answer unless listed.
    let wrong = with(format!("http://user:nope@{}", proxy.addr()));
    let res = wrong.ping(&https.url("/"), Method::Head, &[]).await;
    assert!(
        matches!(&res, Err(Lost::BadAnswer(why)) if why.contains("407")),
        "{res:?}"
    );
    let res = wrong.ping(&http.url("/"), Method::Head, &[407]).await;
    assert_eq!(res, Err(Lost::Status(407)));
    assert_eq!((http.requests(), https.requests()), (1, 1));
}

#[tokio::test]
async fn through_a_proxy_reached_over_tls() {
    let http = HttpServer::start(false);
    let https = HttpServer::start(true);
    let proxy = HttpProxy::start_tls(None);
    let p = HttpProber::new(HttpConfig {
        proxy: Some(format!("https://{}", proxy.addr())),
        timeout: Duration::from_secs(5),
        extra_root_certs_pem: vec![https.ca_pem(), proxy.ca_pem().unwrap()],
        ..HttpConfig::default()
    })
    .unwrap();
    p.ping(&http.url("/"), Method::Get, &[]).await.unwrap();
    p.ping(&https.url("/"), Method::Get, &[]).await.unwrap();
    assert_eq!(proxy.seen().len(), 2, "{:?}", proxy.seen());
    assert_eq!((http.requests(), https.requests()), (1, 1));
    // Without the proxy's CA: its certificate is refused.
    let untrusting = HttpProber::new(HttpConfig {
        proxy: Some(format!("https://{}", proxy.addr())),
        timeout: Duration::from_secs(5),
        ..HttpConfig::default()
    })
    .unwrap();
    let res = untrusting.ping(&http.url("/"), Method::Get, &[]).await;
    assert!(matches!(res, Err(Lost::Tls(_))), "{res:?}");
}

#[test]
fn only_http_proxies() {
    let err = HttpProber::new(HttpConfig {
        proxy: Some("socks5://127.0.0.1:1080".into()),
        ..HttpConfig::default()
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("only http:// and https:// proxies"), "{err}");
}

/// The kernel stamps the first send and the last segment read, and the
/// stamps bracket the server's delay.
#[tokio::test]
async fn a_stamped_stream_keeps_the_kernel_times() {
    use probes::stamped::Stamped;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = HttpServer::start(false);
    let stream = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    let mut s = Stamped::new(stream);
    let view = s.stamps();
    assert_eq!(view.get(), probes::stamped::Stamps::default());
    s.write_all(b"GET /delay/50 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).await.unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
    drop(s);
    let st = view.get();
    let (tx, rx) = (st.first_tx.unwrap(), st.last_rx.unwrap());
    let between = rx.duration_since(tx).unwrap();
    assert!(between >= Duration::from_millis(50), "{between:?}");
}
