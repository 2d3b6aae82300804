//! HTTPS for the web page and `/metrics`: `tls_server_config` of
//! `--web-config-file`, in the Prometheus exporters' format (`cert_file`,
//! `key_file`, `client_auth_type`, `client_ca_file`, `min_version`,
//! `max_version`; paths relative to the configuration file).
//!
//! The certificate and key are read at start-up (a bad pair is a start-up
//! error) and again on a handshake after either file changed (checked at
//! most once a second), so a renewed certificate is served without a
//! restart; a pair that cannot be read then is logged and the previous
//! one stays in use. Handshakes run on tasks of their own, each bounded in
//! time, so a slow or silent client holds up no other connection.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use probes::sync::lock;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use serde::Deserialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// Longest handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once; more connections wait in the kernel's
/// backlog.
const HANDSHAKES: usize = 256;
/// How often the files' times are looked at, at most.
const RECHECK: Duration = Duration::from_secs(1);

/// `tls_server_config` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFile {
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    client_auth_type: Option<String>,
    client_ca_file: Option<PathBuf>,
    min_version: Option<String>,
    max_version: Option<String>,
    // Known to the exporters' format; refused with a reason.
    cert: Option<serde_yaml_ng::Value>,
    key: Option<serde_yaml_ng::Value>,
    cipher_suites: Option<serde_yaml_ng::Value>,
    curve_preferences: Option<serde_yaml_ng::Value>,
    prefer_server_cipher_suites: Option<serde_yaml_ng::Value>,
    client_allowed_sans: Option<serde_yaml_ng::Value>,
}

/// The server side of TLS, checked.
#[derive(Debug)]
pub struct Tls {
    config: Arc<rustls::ServerConfig>,
    /// Whether clients must show a certificate the CA signed.
    pub client_certs: bool,
}

impl Tls {
    /// The configuration of `f`; relative paths are read from `dir`.
    pub fn new(f: TlsFile, dir: &Path) -> Result<Tls, String> {
        for (set, name, why) in [
            (
                f.cert.is_some(),
                "cert",
                "give the certificate as cert_file",
            ),
            (f.key.is_some(), "key", "give the key as key_file"),
            (
                f.cipher_suites.is_some(),
                "cipher_suites",
                "the suites of TLS 1.2 and 1.3 that rustls considers safe are used",
            ),
            (
                f.curve_preferences.is_some(),
                "curve_preferences",
                "rustls's safe defaults are used",
            ),
            (
                f.prefer_server_cipher_suites.is_some(),
                "prefer_server_cipher_suites",
                "the server's order is always preferred",
            ),
            (
                f.client_allowed_sans.is_some(),
                "client_allowed_sans",
                "any certificate signed by client_ca_file is let in",
            ),
        ] {
            if set {
                return Err(format!("tls_server_config: {name}: not supported ({why})"));
            }
        }
        let path = |p: &Path| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                dir.join(p)
            }
        };
        let (cert, key) = match (&f.cert_file, &f.key_file) {
            (Some(c), Some(k)) => (path(c), path(k)),
            _ => {
                return Err(
                    "tls_server_config: cert_file and key_file are both needed for HTTPS".into(),
                )
            }
        };
        let versions = versions(f.min_version.as_deref(), f.max_version.as_deref())?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certs = Certs::load(cert, key, provider.clone())?;
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)
            .map_err(|e| format!("tls_server_config: {e}"))?;
        let auth = f.client_auth_type.as_deref().unwrap_or("NoClientCert");
        let builder = match auth {
            "NoClientCert" => {
                if f.client_ca_file.is_some() {
                    return Err("tls_server_config: client_ca_file is set but client_auth_type is NoClientCert; set it to RequireAndVerifyClientCert or VerifyClientCertIfGiven".into());
                }
                builder.with_no_client_auth()
            }
            "RequireAndVerifyClientCert" | "VerifyClientCertIfGiven" => {
                let Some(ca) = &f.client_ca_file else {
                    return Err(format!(
                        "tls_server_config: client_auth_type {auth} needs client_ca_file"
                    ));
                };
                let ca = path(ca);
                let mut roots = rustls::RootCertStore::empty();
                for c in read_certs(&ca)? {
                    roots
                        .add(c)
                        .map_err(|e| format!("client_ca_file {}: {e}", ca.display()))?;
                }
                let v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
                let v = if auth == "VerifyClientCertIfGiven" {
                    v.allow_unauthenticated()
                } else {
                    v
                };
                builder.with_client_cert_verifier(
                    v.build()
                        .map_err(|e| format!("client_ca_file {}: {e}", ca.display()))?,
                )
            }
            other => {
                return Err(format!(
                    "tls_server_config: client_auth_type {other:?}: one of NoClientCert, \
                     VerifyClientCertIfGiven, RequireAndVerifyClientCert"
                ))
            }
        };
        let mut config = builder.with_cert_resolver(Arc::new(certs));
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls {
            config: Arc::new(config),
            client_certs: auth != "NoClientCert",
        })
    }

    /// Accepts TLS connections on `listener`.
    pub fn listener(&self, listener: TcpListener) -> std::io::Result<TlsListener> {
        let local = listener.local_addr()?;
        let acceptor = TlsAcceptor::from(self.config.clone());
        let (tx, rx) = mpsc::channel(HANDSHAKES);
        let task = tokio::spawn(accept_loop(listener, acceptor, tx));
        Ok(TlsListener {
            rx,
            local,
            task: task.abort_handle(),
        })
    }
}

/// The protocol versions from `min_version` to `max_version` (TLS12,
/// TLS13; rustls speaks no older ones).
fn versions(
    min: Option<&str>,
    max: Option<&str>,
) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, String> {
    let rank = |field: &str, v: Option<&str>, default: u8| -> Result<u8, String> {
        match v {
            None => Ok(default),
            Some("TLS12") => Ok(12),
            Some("TLS13") => Ok(13),
            Some(old @ ("TLS10" | "TLS11")) => Err(format!(
                "tls_server_config: {field}: {old} is not offered (TLS 1.2 and 1.3 only)"
            )),
            Some(other) => Err(format!(
                "tls_server_config: {field}: {other:?}: TLS12 or TLS13"
            )),
        }
    };
    let (lo, hi) = (rank("min_version", min, 12)?, rank("max_version", max, 13)?);
    if lo > hi {
        return Err("tls_server_config: min_version is above max_version".into());
    }
    let mut out = Vec::new();
    if lo <= 12 {
        out.push(&rustls::version::TLS12);
    }
    if hi >= 13 {
        out.push(&rustls::version::TLS13);
    }
    Ok(out)
}

/// The PEM certificates of `path`.
fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate in it", path.display()));
    }
    Ok(certs)
}

/// The server's certificate and key, read again when their files change.
#[derive(Debug)]
struct Certs {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    state: Mutex<Loaded>,
}

#[derive(Debug)]
struct Loaded {
    key: Arc<CertifiedKey>,
    /// The files' modification times when read.
    stamp: (Option<SystemTime>, Option<SystemTime>),
    checked: Instant,
}

impl Certs {
    fn load(cert: PathBuf, key: PathBuf, provider: Arc<CryptoProvider>) -> Result<Certs, String> {
        let stamp = stamps(&cert, &key);
        let ck = read_pair(&cert, &key, &provider)?;
        Ok(Certs {
            cert,
            key,
            provider,
            state: Mutex::new(Loaded {
                key: Arc::new(ck),
                stamp,
                checked: Instant::now(),
            }),
        })
    }

    /// The pair to serve, read again if the files changed.
    fn current(&self) -> Arc<CertifiedKey> {
        let mut s = lock(&self.state);
        if s.checked.elapsed() >= RECHECK {
            s.checked = Instant::now();
            let now = stamps(&self.cert, &self.key);
            if now != s.stamp {
                s.stamp = now;
                match read_pair(&self.cert, &self.key, &self.provider) {
                    Ok(ck) => {
                        tracing::info!(cert = %self.cert.display(), "TLS certificate read again");
                        s.key = Arc::new(ck);
                    }
                    Err(e) => tracing::warn!(
                        error = %e,
                        "TLS certificate or key changed and cannot be used; serving the previous one"
                    ),
                }
            }
        }
        s.key.clone()
    }
}

fn stamps(cert: &Path, key: &Path) -> (Option<SystemTime>, Option<SystemTime>) {
    let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    (m(cert), m(key))
}

/// Reads the chain and key and checks that they belong together.
fn read_pair(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, String> {
    let chain = read_certs(cert).map_err(|e| format!("cert_file {e}"))?;
    let pem = std::fs::read(key).map_err(|e| format!("key_file {}: {e}", key.display()))?;
    let der = PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|e| format!("key_file {}: no PEM private key ({e})", key.display()))?;
    CertifiedKey::from_der(chain, der, provider).map_err(|e| {
        format!(
            "cert_file {} and key_file {}: {e}",
            cert.display(),
            key.display()
        )
    })
}

impl ResolvesServerCert for Certs {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// Accepts connections, shakes hands on tasks of their own, and hands
/// the ones that succeeded to the server.
async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    tx: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    let permits = Arc::new(Semaphore::new(HANDSHAKES));
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of descriptors and the like: wait, as axum does.
                tracing::debug!(error = %e, "accept");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (acceptor, tx) = (acceptor.clone(), tx.clone());
        tokio::spawn(async move {
            let _permit = permit;
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let _ = tx.send((tls, peer)).await;
                }
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

/// The TLS connections of one listening socket, for `axum::serve`.
#[derive(Debug)]
pub struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    task: tokio::task::AbortHandle,
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(c) => c,
            // The accepting task ended (it does not, but for its runtime's
            // shutdown): no more connections.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_checked() {
        assert_eq!(versions(None, None).unwrap().len(), 2);
        assert_eq!(versions(Some("TLS13"), None).unwrap().len(), 1);
        assert_eq!(versions(None, Some("TLS12")).unwrap().len(), 1);
        assert!(versions(Some("TLS10"), None)
            .unwrap_err()
            .contains("1.2 and 1.3"));
        assert!(versions(Some("TLS13"), Some("TLS12"))
            .unwrap_err()
            .contains("above"));
        assert!(versions(Some("SSL3"), None).unwrap_err().contains("TLS12"));
    }

    #[test]
    fn unsupported_fields_and_missing_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let f = |y: &str| serde_yaml_ng::from_str::<TlsFile>(y).unwrap();
        let e = Tls::new(f("cert_file: a.pem\n"), dir.path()).unwrap_err();
        assert!(e.contains("key_file"), "{e}");
        let e = Tls::new(f("cipher_suites: [x]\n"), dir.path()).unwrap_err();
        assert!(e.contains("cipher_suites"), "{e}");
        let e = Tls::new(f("cert_file: a.pem\nkey_file: a.key\n"), dir.path()).unwrap_err();
        assert!(
            e.contains(&*dir.path().join("a.pem").to_string_lossy()),
            "{e}"
        );
        std::fs::write(dir.path().join("a.pem"), "not pem\n").unwrap();
        std::fs::write(dir.path().join("a.key"), "not pem\n").unwrap();
        let e = Tls::new(f("cert_file: a.pem\nkey_file: a.key\n"), dir.path()).unwrap_err();
        assert!(e.contains("no PEM certificate"), "{e}");
        assert!(serde_yaml_ng::from_str::<TlsFile>("certfile: x\n").is_err());
    }
}
