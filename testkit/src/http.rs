//! A small HTTP/1.1 (optionally HTTPS) server: one request per connection,
//! `Connection: close`, behaviour chosen by path.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::background::Background;
use crate::tcp::bind_loopback;

/// Largest request head read.
const MAX_HEAD: usize = 16 * 1024;
/// Longest `/delay/MS` honoured.
const MAX_DELAY: Duration = Duration::from_secs(30);
/// Upper bound on one connection's handling.
const CONN_LIMIT: Duration = Duration::from_secs(60);
/// Limit for reading the request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// HTTP/1.1 test server on 127.0.0.1.
///
/// Paths (a query string is ignored):
/// * `/status/NNN`: replies with status NNN (200–599, else 400);
/// * `/delay/MS`: waits MS milliseconds (at most 30 s), then replies 200;
/// * `/close-early`: sends headers with `Content-Length: 100`, then only 10
///   bytes of body, then closes the connection;
/// * anything else: 200 with a small body.
///
/// `HEAD` gets the same headers and no body. Every response carries
/// `Connection: close` and the server closes after it.
#[derive(Debug)]
pub struct HttpServer {
    addr: SocketAddr,
    tls: bool,
    ca_pem: Vec<u8>,
    connections: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
    _bg: Background,
}

impl HttpServer {
    /// Starts the server; with `tls`, it speaks HTTPS with a certificate
    /// for `127.0.0.1` and `localhost` issued by a CA made for this server
    /// (see [`HttpServer::ca_pem`]).
    pub fn start(tls: bool) -> HttpServer {
        let (ca_pem, chain, key) = make_certs();
        let acceptor = if tls {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("testkit: TLS versions")
                .with_no_client_auth()
                .with_single_cert(chain, key)
                .expect("testkit: server certificate");
            Some(TlsAcceptor::from(Arc::new(config)))
        } else {
            None
        };
        let std_listener = bind_loopback();
        let addr = std_listener
            .local_addr()
            .expect("testkit: listener has no address");
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let (conn_count, req_count) = (connections.clone(), requests.clone());
        let bg = Background::spawn("http", move |mut stop| async move {
            let listener =
                TcpListener::from_std(std_listener).expect("testkit: cannot register listener");
            loop {
                tokio::select! {
                    _ = &mut stop => return,
                    res = listener.accept() => match res {
                        Ok((stream, _)) => {
                            conn_count.fetch_add(1, Ordering::SeqCst);
                            let acceptor = acceptor.clone();
                            let req_count = req_count.clone();
                            tokio::spawn(async move {
                                let _ = tokio::time::timeout(CONN_LIMIT, async move {
                                    match acceptor {
                                        Some(acceptor) => {
                                            if let Ok(tls) = acceptor.accept(stream).await {
                                                serve(tls, &req_count).await;
                                            }
                                        }
                                        None => serve(stream, &req_count).await,
                                    }
                                })
                                .await;
                            });
                        }
                        Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                    },
                }
            }
        });
        HttpServer {
            addr,
            tls,
            ca_pem,
            connections,
            requests,
            _bg: bg,
        }
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/path` (or `https://`); a missing leading `/`
    /// is added.
    pub fn url(&self, path: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        let slash = if path.starts_with('/') { "" } else { "/" };
        format!("{scheme}://{}{slash}{path}", self.addr)
    }

    /// PEM of the CA that issued the server's certificate: trust it to
    /// reach the HTTPS server.
    pub fn ca_pem(&self) -> Vec<u8> {
        self.ca_pem.clone()
    }

    /// TCP connections accepted so far (TLS handshakes that then failed
    /// included).
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Request heads read so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// A fresh CA and a server certificate for 127.0.0.1 and localhost:
/// (CA PEM, server chain, server key).
pub(crate) fn make_certs() -> (
    Vec<u8>,
    Vec<CertificateDer<'static>>,
    PrivateKeyDer<'static>,
) {
    let ca_key = KeyPair::generate().expect("testkit: CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("testkit: CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "pingmachine testkit CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).expect("testkit: CA certificate");

    let leaf_key = KeyPair::generate().expect("testkit: server key");
    let mut leaf_params =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .expect("testkit: server params");
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "pingmachine testkit server");
    leaf_params.use_authority_key_identifier_extension = true;
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf = leaf_params
        .signed_by(&leaf_key, &ca)
        .expect("testkit: server certificate");

    let chain = vec![leaf.der().clone(), ca.der().clone()];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    (ca.pem().into_bytes(), chain, key)
}

/// PEM files for a TLS server on loopback, written by [`write_pem_files`].
#[derive(Debug, Clone)]
pub struct PemFiles {
    /// The CA that signed both certificates.
    pub ca: std::path::PathBuf,
    /// The server's certificate (for `127.0.0.1` and `localhost`) and key.
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
    /// A client certificate and key (for TLS client authentication).
    pub client_cert: std::path::PathBuf,
    pub client_key: std::path::PathBuf,
}

/// Writes a new CA, a server certificate and a client certificate it
/// signed, with their keys, as PEM files into `dir` (`ca.pem`,
/// `server.pem`, `server.key`, `client.pem`, `client.key`).
pub fn write_pem_files(dir: &std::path::Path) -> PemFiles {
    let ca_key = KeyPair::generate().expect("testkit: CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("testkit: CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "pingmachine testkit CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).expect("testkit: CA certificate");
    let leaf = |names: Vec<String>, cn: &str, purpose: ExtendedKeyUsagePurpose| {
        let key = KeyPair::generate().expect("testkit: key");
        let mut params = CertificateParams::new(names).expect("testkit: params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.use_authority_key_identifier_extension = true;
        params.extended_key_usages = vec![purpose];
        let cert = params.signed_by(&key, &ca).expect("testkit: certificate");
        (cert.pem(), key.serialize_pem())
    };
    let (server_pem, server_key) = leaf(
        vec!["127.0.0.1".to_string(), "localhost".to_string()],
        "pingmachine testkit server",
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let (client_pem, client_key) = leaf(
        Vec::new(),
        "pingmachine testkit client",
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let files = PemFiles {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
        client_cert: dir.join("client.pem"),
        client_key: dir.join("client.key"),
    };
    for (path, text) in [
        (&files.ca, ca.pem()),
        (&files.cert, server_pem),
        (&files.key, server_key),
        (&files.client_cert, client_pem),
        (&files.client_key, client_key),
    ] {
        std::fs::write(path, text).expect("testkit: write a PEM file");
    }
    files
}

/// What to send back.
enum Reply {
    Full { status: u16, body: String },
    CloseEarly,
}

/// Handles the connection's one request.
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, requests: &AtomicUsize) {
    let head = match tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut stream)).await {
        Ok(Ok(Some(head))) => head,
        _ => return,
    };
    requests.fetch_add(1, Ordering::SeqCst);
    let text = String::from_utf8_lossy(&head);
    let mut words = text.lines().next().unwrap_or("").split_whitespace();
    let method = words.next().unwrap_or("");
    let target = words.next().unwrap_or("/");
    let path = target.split('?').next().unwrap_or("/");
    let is_head = method.eq_ignore_ascii_case("HEAD");

    let reply = route(path).await;
    let out = match reply {
        Reply::Full { status, body } => {
            let mut out = format!(
                "HTTP/1.1 {status} {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                reason(status),
                body.len()
            )
            .into_bytes();
            if !is_head {
                out.extend_from_slice(body.as_bytes());
            }
            out
        }
        Reply::CloseEarly => {
            let mut out = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100\r\nConnection: close\r\n\r\n".to_vec();
            if !is_head {
                out.extend_from_slice(b"0123456789");
            }
            // No orderly TLS shutdown: the connection just ends.
            let _ = stream.write_all(&out).await;
            let _ = stream.flush().await;
            return;
        }
    };
    if stream.write_all(&out).await.is_ok() {
        let _ = stream.flush().await;
        let _ = stream.shutdown().await;
    }
}

async fn route(path: &str) -> Reply {
    if let Some(code) = path.strip_prefix("/status/") {
        let status = code
            .parse::<u16>()
            .ok()
            .filter(|s| (200..=599).contains(s))
            .unwrap_or(400);
        // 204 and 304 responses have no body.
        let body = if status == 204 || status == 304 {
            String::new()
        } else {
            format!("status {status}\n")
        };
        return Reply::Full { status, body };
    }
    if let Some(ms) = path.strip_prefix("/delay/") {
        let Ok(ms) = ms.parse::<u64>() else {
            return Reply::Full {
                status: 400,
                body: "bad delay\n".into(),
            };
        };
        tokio::time::sleep(Duration::from_millis(ms).min(MAX_DELAY)).await;
        return Reply::Full {
            status: 200,
            body: format!("delayed {ms} ms\n"),
        };
    }
    if path == "/close-early" {
        return Reply::CloseEarly;
    }
    Reply::Full {
        status: 200,
        body: "pingmachine testkit\n".into(),
    }
}

/// Reads up to the end of the request head (`\r\n\r\n`); `None` if the
/// peer closed first, the head is too long, or it does not start like an
/// HTTP request (e.g. a TLS ClientHello on the plain server: closed at once).
async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> std::io::Result<Option<Vec<u8>>> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        head.extend_from_slice(&buf[..n]);
        if !head[0].is_ascii_uppercase() {
            return Ok(None);
        }
        if head.windows(4).any(|w| w == b"\r\n\r\n") {
            return Ok(Some(head));
        }
        if head.len() > MAX_HEAD {
            return Ok(None);
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}
