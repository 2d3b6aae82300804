//! An HTTP proxy on 127.0.0.1 (plain, or behind TLS with a test CA of its
//! own): `CONNECT host:port` tunnels and requests in absolute form
//! (`GET http://host:port/path`), relayed to the origin as they are, with
//! an optional `Proxy-Authorization` it insists on.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::background::Background;
use crate::tcp::bind_loopback;

/// Upper bound on one connection's handling.
const CONN_LIMIT: Duration = Duration::from_secs(30);
/// Most bytes of a request head.
const MAX_HEAD: usize = 16 * 1024;

/// The proxy; what it was asked is kept for the test.
#[derive(Debug)]
pub struct HttpProxy {
    addr: SocketAddr,
    ca_pem: Option<Vec<u8>>,
    seen: Arc<Mutex<Vec<String>>>,
    _bg: Background,
}

impl HttpProxy {
    /// Starts the proxy. With `auth`, a request without exactly this
    /// `Proxy-Authorization` value gets `407`.
    pub fn start(auth: Option<&str>) -> HttpProxy {
        HttpProxy::start_inner(auth, false)
    }

    /// Like [`HttpProxy::start`], reached over TLS (`https://` proxy URL)
    /// with a certificate for `127.0.0.1` from [`HttpProxy::ca_pem`].
    pub fn start_tls(auth: Option<&str>) -> HttpProxy {
        HttpProxy::start_inner(auth, true)
    }

    fn start_inner(auth: Option<&str>, tls: bool) -> HttpProxy {
        let (ca_pem, acceptor) = if tls {
            let (ca_pem, chain, key) = crate::http::make_certs();
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("testkit: TLS versions")
                .with_no_client_auth()
                .with_single_cert(chain, key)
                .expect("testkit: proxy certificate");
            (Some(ca_pem), Some(TlsAcceptor::from(Arc::new(config))))
        } else {
            (None, None)
        };
        let std_listener = bind_loopback();
        let addr = std_listener
            .local_addr()
            .expect("testkit: listener has no address");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let auth = auth.map(str::to_owned);
        let bg = Background::spawn("proxy", move |mut stop| async move {
            let listener =
                TcpListener::from_std(std_listener).expect("testkit: cannot register listener");
            loop {
                tokio::select! {
                    _ = &mut stop => return,
                    res = listener.accept() => {
                        let Ok((conn, _)) = res else { continue };
                        let (log, auth, acceptor) = (log.clone(), auth.clone(), acceptor.clone());
                        tokio::spawn(async move {
                            let _ = tokio::time::timeout(CONN_LIMIT, async move {
                                match acceptor {
                                    Some(a) => {
                                        if let Ok(tls) = a.accept(conn).await {
                                            relay(tls, log, auth).await;
                                        }
                                    }
                                    None => relay(conn, log, auth).await,
                                }
                            })
                            .await;
                        });
                    }
                }
            }
        });
        HttpProxy {
            addr,
            ca_pem,
            seen,
            _bg: bg,
        }
    }

    /// PEM of the CA of a TLS proxy's certificate (`None`: plain).
    pub fn ca_pem(&self) -> Option<Vec<u8>> {
        self.ca_pem.clone()
    }

    /// The proxy's address, for `http://ADDR` as a proxy URL.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The first line of every request so far, and its
    /// `Proxy-Authorization` value (or `-`), space-separated.
    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Reads a request head (up to the empty line), byte by byte.
async fn read_head<S: AsyncRead + Unpin>(conn: &mut S) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > MAX_HEAD {
            return None;
        }
        head.push(conn.read_u8().await.ok()?);
    }
    Some(head)
}

async fn relay<S: AsyncRead + AsyncWrite + Unpin>(
    mut conn: S,
    log: Arc<Mutex<Vec<String>>>,
    auth: Option<String>,
) {
    let Some(head) = read_head(&mut conn).await else {
        return;
    };
    let text = String::from_utf8_lossy(&head).into_owned();
    let first = text.lines().next().unwrap_or_default().to_owned();
    let given = text
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("proxy-authorization")
                .then(|| v.trim().to_owned())
        })
        .unwrap_or_else(|| "-".into());
    log.lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(format!("{first} {given}"));
    if auth.as_deref().is_some_and(|a| a != given) {
        let _ = conn
            .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .await;
        return;
    }
    let mut parts = first.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if method == "CONNECT" {
        let Ok(mut origin) = TcpStream::connect(target).await else {
            let _ = conn
                .write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                .await;
            return;
        };
        if conn
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .await
            .is_err()
        {
            return;
        }
        let _ = tokio::io::copy_bidirectional(&mut conn, &mut origin).await;
        return;
    }
    // Absolute form: the origin from the URL; the head is relayed as is.
    let Some(rest) = target.strip_prefix("http://") else {
        let _ = conn
            .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            .await;
        return;
    };
    let hostport = rest.split('/').next().unwrap_or_default();
    let Ok(mut origin) = TcpStream::connect(hostport).await else {
        let _ = conn
            .write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            .await;
        return;
    };
    if origin.write_all(&head).await.is_err() {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut conn, &mut origin).await;
}
