//! HTTP/1.1 and HTTPS probe (`httping`-like), built on reqwest with rustls
//! (ring crypto provider, system root certificates plus configured extra
//! ones).
//!
//! * One new connection per ping: the client keeps no idle connection and
//!   asks for `Connection: close`, so the round-trip time always includes
//!   the TCP connect and the TLS handshake.
//! * RTT = from the start of the request until the response is complete:
//!   headers, and for `GET` the whole body (read and discarded).
//! * Redirects are not followed: a 3xx is an answer like any other status.
//! * A status listed in the order's failure codes counts as lost
//!   ([`Lost::Status`]); any other status (404 and 500 included) is an
//!   answer.

use std::error::Error as StdError;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use crate::outcome::{Lost, PingResult};

/// Default `User-Agent` header.
pub const DEFAULT_USER_AGENT: &str = concat!("pingmachine/", env!("CARGO_PKG_VERSION"));

/// How an [`HttpProber`] talks to servers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpConfig {
    /// Proxy URL for every request (`http://host:port`, `socks5://...` is
    /// not supported). `None`: direct connections; the `*_proxy`
    /// environment variables are ignored.
    pub proxy: Option<String>,
    /// `User-Agent` header; `None`: [`DEFAULT_USER_AGENT`].
    pub user_agent: Option<String>,
    /// Limit for a whole ping: connect, TLS, request, response.
    pub timeout: Duration,
    /// PEM certificates (one or more per entry) trusted as roots in
    /// addition to the system's, for internal CAs and tests.
    pub extra_root_certs_pem: Vec<Vec<u8>>,
}

impl Default for HttpConfig {
    fn default() -> HttpConfig {
        HttpConfig {
            proxy: None,
            user_agent: None,
            timeout: Duration::from_secs(15),
            extra_root_certs_pem: Vec::new(),
        }
    }
}

/// Request method of a ping.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Method {
    /// `HEAD`: the ping ends with the response headers.
    #[default]
    Head,
    /// `GET`: the ping ends when the whole body has been read.
    Get,
}

/// Pings URLs over HTTP(S); built once per [`HttpConfig`] and shared
/// (`Send + Sync`, cheap to clone).
#[derive(Clone, Debug)]
pub struct HttpProber {
    client: reqwest::Client,
    timeout: Duration,
}

impl HttpProber {
    /// Builds the client: loads the system root certificates and the extra
    /// ones. Errors (bad proxy URL, unparsable extra certificate) are
    /// readable messages.
    pub fn new(cfg: HttpConfig) -> Result<HttpProber, SetupError> {
        let tls = tls_config(&cfg.extra_root_certs_pem)?;
        let user_agent = cfg.user_agent.as_deref().unwrap_or(DEFAULT_USER_AGENT);
        let builder = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .http1_only()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(0)
            .connect_timeout(cfg.timeout)
            .timeout(cfg.timeout)
            .user_agent(user_agent);
        let builder = match &cfg.proxy {
            Some(proxy) => builder.proxy(
                reqwest::Proxy::all(proxy.as_str())
                    .map_err(|e| SetupError::Proxy(proxy.clone(), chain(&e)))?,
            ),
            None => builder.no_proxy(),
        };
        let client = builder.build().map_err(|e| SetupError::Client(chain(&e)))?;
        Ok(HttpProber {
            client,
            timeout: cfg.timeout,
        })
    }

    /// One ping: a new connection, one request, the whole response. See the
    /// module documentation for what counts as answered and lost.
    pub async fn ping(&self, url: &str, method: Method, fail_codes: &[u16]) -> PingResult {
        let parsed =
            reqwest::Url::parse(url).map_err(|e| Lost::Io(format!("invalid URL {url:?}: {e}")))?;
        self.ping_url(&parsed, method, fail_codes).await
    }

    /// [`HttpProber::ping`] with a URL parsed once by the caller.
    pub async fn ping_url(
        &self,
        url: &reqwest::Url,
        method: Method,
        fail_codes: &[u16],
    ) -> PingResult {
        let parsed = url.clone();
        let method = match method {
            Method::Head => reqwest::Method::HEAD,
            Method::Get => reqwest::Method::GET,
        };
        let started = Instant::now();
        let exchange = async {
            let mut response = self
                .client
                .request(method, parsed)
                .header(reqwest::header::CONNECTION, "close")
                .send()
                .await
                .map_err(|e| classify(&e))?;
            let status = response.status().as_u16();
            if fail_codes.contains(&status) {
                return Err(Lost::Status(status));
            }
            while response.chunk().await.map_err(|e| classify(&e))?.is_some() {}
            Ok(())
        };
        let outcome = tokio::time::timeout(self.timeout, exchange).await;
        let rtt = started.elapsed();
        match outcome {
            Err(_) => Err(Lost::Timeout),
            Ok(Err(lost)) => Err(lost),
            Ok(Ok(())) => Ok(rtt),
        }
    }
}

/// Why an HTTP client could not be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetupError {
    /// The proxy URL is refused (the URL, why).
    #[error("invalid proxy {0:?}: {1}")]
    Proxy(String, String),
    /// The client could not be built (why, with its causes).
    #[error("cannot build HTTP client: {0}")]
    Client(String),
    /// An extra root certificate (1-based) is unusable.
    #[error("extra root certificate #{0}: {1}")]
    Certificate(usize, String),
    /// An extra root certificate file holds no certificate.
    #[error("extra root certificate #{0}: no PEM certificate found")]
    NoCertificate(usize),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Tls(String),
}

/// A rustls client configuration (ring provider) trusting the system roots
/// plus `extra` PEM certificates; also used by pingmachine's line-protocol
/// HTTP writer.
pub fn tls_config(extra: &[Vec<u8>]) -> Result<rustls::ClientConfig, SetupError> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for err in &native.errors {
        tracing::debug!(error = %err, "loading system root certificates");
    }
    let (added, ignored) = roots.add_parsable_certificates(native.certs);
    tracing::debug!(added, ignored, "system root certificates");
    for (i, pem) in extra.iter().enumerate() {
        let mut found = 0usize;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| SetupError::Certificate(i + 1, e.to_string()))?;
            roots
                .add(cert)
                .map_err(|e| SetupError::Certificate(i + 1, e.to_string()))?;
            found += 1;
        }
        if found == 0 {
            return Err(SetupError::NoCertificate(i + 1));
        }
    }
    if roots.is_empty() {
        tracing::warn!("no trusted root certificates: every HTTPS ping will fail");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SetupError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Why a request failed, from the reqwest error and its sources.
fn classify(err: &reqwest::Error) -> Lost {
    if err.is_timeout() {
        return Lost::Timeout;
    }
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Lost::Tls(tls.to_string());
        }
        if let Some(hyper) = e.downcast_ref::<hyper::Error>() {
            if hyper.is_incomplete_message() {
                return Lost::ShortRead(innermost(e));
            }
            if hyper.is_timeout() {
                return Lost::Timeout;
            }
            if hyper.is_parse() || hyper.is_parse_status() {
                return Lost::BadAnswer(format!("not an HTTP response: {}", innermost(e)));
            }
        }
        cur = match e.downcast_ref::<io::Error>() {
            Some(io) => {
                match io.kind() {
                    io::ErrorKind::ConnectionRefused => return Lost::Refused,
                    io::ErrorKind::TimedOut => return Lost::Timeout,
                    // While connecting, only the TLS handshake reads.
                    io::ErrorKind::UnexpectedEof if err.is_connect() => {
                        return Lost::Tls(innermost(e));
                    }
                    io::ErrorKind::UnexpectedEof => return Lost::ShortRead(innermost(e)),
                    _ => {}
                }
                // An io::Error's `source()` skips the error it wraps (TLS
                // errors come as io::Error(io::Error(rustls::Error))).
                match io.get_ref() {
                    Some(inner) => Some(inner as &(dyn StdError + 'static)),
                    None => e.source(),
                }
            }
            None => e.source(),
        };
    }
    if err.is_body() || err.is_decode() {
        return Lost::ShortRead(innermost(err));
    }
    Lost::Io(chain(err))
}

/// The message of the deepest source of `err` (through wrapped io::Errors).
fn innermost(err: &(dyn StdError + 'static)) -> String {
    let mut cur = err;
    loop {
        let next = match cur.downcast_ref::<io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn StdError + 'static))
                .or_else(|| cur.source()),
            None => cur.source(),
        };
        match next {
            Some(next) => cur = next,
            None => return cur.to_string(),
        }
    }
}

/// An error and its sources as one line, without repeats.
fn chain(err: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = e.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prober_is_send_sync() {
        fn check<T: Send + Sync>() {}
        check::<HttpProber>();
    }

    #[test]
    fn default_config() {
        let cfg = HttpConfig::default();
        assert_eq!(cfg.timeout, Duration::from_secs(15));
        assert!(HttpProber::new(cfg).is_ok());
    }

    #[test]
    fn bad_extra_cert_is_an_error() {
        let cfg = HttpConfig {
            extra_root_certs_pem: vec![b"not a certificate".to_vec()],
            ..HttpConfig::default()
        };
        let err = HttpProber::new(cfg).unwrap_err().to_string();
        assert!(err.contains("no PEM certificate"), "{err}");
    }

    #[test]
    fn bad_proxy_is_an_error() {
        let cfg = HttpConfig {
            proxy: Some("::not a url::".into()),
            ..HttpConfig::default()
        };
        let err = HttpProber::new(cfg).unwrap_err().to_string();
        assert!(err.contains("invalid proxy"), "{err}");
    }

    #[tokio::test]
    async fn bad_url_is_lost() {
        let prober = HttpProber::new(HttpConfig::default()).unwrap();
        let res = prober.ping("not a url", Method::Head, &[]).await;
        assert!(matches!(res, Err(Lost::Io(_))), "{res:?}");
    }
}
