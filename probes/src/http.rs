//! HTTP/1.1 and HTTPS probe (`httping`-like): hyper's HTTP/1.1 client
//! over a TCP connection of its own, with rustls (ring crypto provider,
//! system root certificates plus configured extra ones).
//!
//! * One new connection per ping, closed after the answer
//!   (`Connection: close`), so the round trip always includes the TCP
//!   connect and the TLS handshake.
//! * Timed by the kernel: the handshake as the kernel timed it (SYN sent
//!   to SYN-ACK received, [`crate::tcp`]: from the packet tap's stamps,
//!   else `TCP_INFO`) plus the time from the first byte sent (the TLS
//!   ClientHello, or the request) leaving to the last byte of the
//!   response arriving (`SO_TIMESTAMPING` transmit and receive stamps,
//!   [`crate::stamped`]). Left out is only this process's
//!   own wake-up between the handshake and its first send. Where the
//!   kernel gives no stamps (or a SYN was sent again), the time from
//!   before the connect to the end of the response, measured here.
//! * The response is complete with its headers (`HEAD`) or its whole body
//!   (`GET`, read and discarded).
//! * Redirects are not followed: a 3xx is an answer like any other status.
//! * A status listed in the order's failure codes counts as lost
//!   ([`Lost::Status`]); any other status (404 and 500 included) is an
//!   answer.
//! * Through an HTTP proxy (TLS to it for an `https://` proxy URL):
//!   `http://` URLs are asked of the proxy in absolute form, `https://`
//!   ones through a `CONNECT` tunnel; user and password in the proxy URL
//!   are sent as basic `Proxy-Authorization`.

use std::error::Error as StdError;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper::header::{HeaderValue, CONNECTION, HOST, USER_AGENT};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use url::Url;

use crate::outcome::{Lost, PingResult};
use crate::stamped::{Stamped, Stamps};

/// Default `User-Agent` header.
pub const DEFAULT_USER_AGENT: &str = concat!("pingmachine/", env!("CARGO_PKG_VERSION"));

/// Most bytes of a proxy's answer to `CONNECT` (its status and headers).
const MAX_CONNECT_RESPONSE: usize = 16 * 1024;

/// How an [`HttpProber`] talks to servers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpConfig {
    /// Proxy URL for every request (`http(s)://[user:password@]host:port`;
    /// `socks5://...` is not supported). `None`: direct connections; the
    /// `*_proxy` environment variables are ignored.
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

/// A connection's byte stream: TCP, or TLS over it (to the proxy, to the
/// server, or both).
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// The TLS server name of a host (a name or an IP address).
fn server_name(host: &str) -> Result<ServerName<'static>, Lost> {
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => Ok(ServerName::IpAddress(ip.into())),
        Err(_) => ServerName::try_from(host.to_owned())
            .map_err(|e| Lost::Io(format!("server name {host:?}: {e}"))),
    }
}

/// An HTTP proxy.
#[derive(Clone, Debug)]
struct Proxy {
    /// `https://`: TLS to the proxy.
    tls: bool,
    host: String,
    port: u16,
    /// `Proxy-Authorization` value.
    auth: Option<HeaderValue>,
}

/// Pings URLs over HTTP(S); built once per [`HttpConfig`] and shared
/// (`Send + Sync`, cheap to clone).
#[derive(Clone)]
pub struct HttpProber {
    tls: tokio_rustls::TlsConnector,
    user_agent: HeaderValue,
    proxy: Option<Proxy>,
    timeout: Duration,
}

impl std::fmt::Debug for HttpProber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpProber")
            .field("user_agent", &self.user_agent)
            .field("proxy", &self.proxy.as_ref().map(|p| (&p.host, p.port)))
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// What one exchange found out about its timing.
#[derive(Debug, Default)]
struct Timing {
    /// The handshake as the kernel timed it (none: no sample, or a SYN was
    /// sent again).
    handshake: Option<Duration>,
    /// The connection's stamps.
    stamps: Option<crate::stamped::StampView>,
}

impl HttpProber {
    /// Builds the client: loads the system root certificates and the extra
    /// ones. Errors (bad proxy URL, unparsable extra certificate) are
    /// readable messages.
    pub fn new(cfg: HttpConfig) -> Result<HttpProber, SetupError> {
        let tls = tls_config(&cfg.extra_root_certs_pem)?;
        let user_agent = cfg.user_agent.as_deref().unwrap_or(DEFAULT_USER_AGENT);
        let user_agent = HeaderValue::from_str(user_agent)
            .map_err(|e| SetupError::Client(format!("user agent {user_agent:?}: {e}")))?;
        let proxy = match &cfg.proxy {
            Some(p) => Some(parse_proxy(p).map_err(|why| SetupError::Proxy(p.clone(), why))?),
            None => None,
        };
        Ok(HttpProber {
            tls: tokio_rustls::TlsConnector::from(Arc::new(tls)),
            user_agent,
            proxy,
            timeout: cfg.timeout,
        })
    }

    /// One ping: a new connection, one request, the whole response. See the
    /// module documentation for what counts as answered and lost.
    pub async fn ping(&self, url: &str, method: Method, fail_codes: &[u16]) -> PingResult {
        let parsed = Url::parse(url).map_err(|e| Lost::Io(format!("invalid URL {url:?}: {e}")))?;
        self.ping_url(&parsed, method, fail_codes).await
    }

    /// [`HttpProber::ping`] with a URL parsed once by the caller.
    pub async fn ping_url(&self, url: &Url, method: Method, fail_codes: &[u16]) -> PingResult {
        let started = Instant::now();
        let mut timing = Timing::default();
        let outcome = tokio::time::timeout(
            self.timeout,
            self.exchange(url, method, fail_codes, &mut timing),
        )
        .await;
        let elapsed = started.elapsed();
        match outcome {
            Err(_) => Err(Lost::Timeout),
            Ok(Err(lost)) => Err(lost),
            Ok(Ok(())) => Ok(kernel_rtt(
                timing.handshake,
                timing.stamps.map(|v| v.get()).unwrap_or_default(),
                elapsed,
            )),
        }
    }

    async fn exchange(
        &self,
        url: &Url,
        method: Method,
        fail_codes: &[u16],
        timing: &mut Timing,
    ) -> Result<(), Lost> {
        let https = match url.scheme() {
            "https" => true,
            "http" => false,
            other => return Err(Lost::Io(format!("unsupported URL scheme {other:?}"))),
        };
        let host = url
            .host()
            .ok_or_else(|| Lost::Io(format!("URL without a host: {url}")))?;
        let port = url
            .port_or_known_default()
            .ok_or_else(|| Lost::Io(format!("URL without a port: {url}")))?;
        let (to_host, to_port) = match &self.proxy {
            Some(p) => (p.host.clone(), p.port),
            None => (host_for_lookup(&host), port),
        };
        let stream = self.connect(&to_host, to_port, timing).await?;
        let stamped = Stamped::new(stream);
        timing.stamps = Some(stamped.stamps());
        // TLS to the proxy itself for an https:// proxy.
        let mut io: Box<dyn Io> = match &self.proxy {
            Some(p) if p.tls => {
                let tls = self
                    .tls
                    .connect(server_name(&p.host)?, stamped)
                    .await
                    .map_err(|e| tls_lost(&e))?;
                Box::new(tls)
            }
            _ => Box::new(stamped),
        };
        let host_header = authority(&host, url.port());
        let origin_form = {
            let mut s = url.path().to_owned();
            if let Some(q) = url.query() {
                s.push('?');
                s.push_str(q);
            }
            s
        };
        let target = match (&self.proxy, https) {
            // A plain request through a proxy names the whole URL.
            (Some(_), false) => {
                let mut u = url.clone();
                u.set_fragment(None);
                u.to_string()
            }
            _ => origin_form,
        };
        if let (Some(p), true) = (&self.proxy, https) {
            tunnel(&mut io, &format!("{}:{port}", authority(&host, None)), p).await?;
        }
        let mut request = hyper::Request::builder()
            .method(match method {
                Method::Head => hyper::Method::HEAD,
                Method::Get => hyper::Method::GET,
            })
            .uri(&target)
            .header(HOST, &host_header)
            .header(USER_AGENT, self.user_agent.clone())
            .header(CONNECTION, "close");
        if let (Some(p), false) = (&self.proxy, https) {
            if let Some(auth) = &p.auth {
                request = request.header("proxy-authorization", auth.clone());
            }
        }
        let request = request
            .body(http_body_util::Empty::<hyper::body::Bytes>::new())
            .map_err(|e| Lost::Io(format!("cannot build the request for {url}: {e}")))?;
        if https {
            let tls = self
                .tls
                .connect(server_name(&host_for_lookup(&host))?, io)
                .await
                .map_err(|e| tls_lost(&e))?;
            round_trip(tls, request, fail_codes).await
        } else {
            round_trip(io, request, fail_codes).await
        }
    }

    /// Connects to the first address of `host` that answers, keeping the
    /// kernel's handshake time.
    async fn connect(
        &self,
        host: &str,
        port: u16,
        timing: &mut Timing,
    ) -> Result<tokio::net::TcpStream, Lost> {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| Lost::Io(format!("cannot resolve {host}: {e}")))?
            .collect();
        let mut last = Lost::Io(format!("{host} resolves to no address"));
        for addr in addrs {
            match crate::tcp::connect_parts(addr, None, self.timeout).await {
                Ok((stream, info, elapsed)) => {
                    timing.handshake = crate::tcp::kernel_handshake(info, elapsed);
                    return Ok(stream);
                }
                Err(lost) => last = lost,
            }
        }
        Err(last)
    }
}

/// The round trip: the kernel's handshake plus the first byte leaving to
/// the last byte arriving, when the kernel timed all of it (and it fits
/// in what was measured around it); else `elapsed`.
fn kernel_rtt(handshake: Option<Duration>, stamps: Stamps, elapsed: Duration) -> Duration {
    let exchange = match (stamps.first_tx, stamps.last_rx) {
        (Some(tx), Some(rx)) => rx.duration_since(tx).ok(),
        _ => None,
    };
    match (handshake, exchange) {
        (Some(h), Some(x)) if h + x <= elapsed => h + x,
        _ => elapsed,
    }
}

/// `host[:port]` as the `Host` header names it (the port when the URL
/// gives one other than the scheme's).
fn authority(host: &url::Host<&str>, port: Option<u16>) -> String {
    let h = match host {
        url::Host::Ipv6(a) => format!("[{a}]"),
        other => other.to_string(),
    };
    match port {
        Some(p) => format!("{h}:{p}"),
        None => h,
    }
}

/// The host as a lookup takes it (IPv6 without brackets).
fn host_for_lookup(host: &url::Host<&str>) -> String {
    match host {
        url::Host::Domain(d) => (*d).to_owned(),
        url::Host::Ipv4(a) => a.to_string(),
        url::Host::Ipv6(a) => a.to_string(),
    }
}

/// Parses a proxy URL: `http(s)://[user[:password]@]host[:port]`.
fn parse_proxy(s: &str) -> Result<Proxy, String> {
    let u = Url::parse(s).map_err(|e| e.to_string())?;
    let tls = match u.scheme() {
        "http" => false,
        "https" => true,
        other => {
            return Err(format!(
                "scheme {other:?}: only http:// and https:// proxies are supported"
            ))
        }
    };
    let host = u.host().ok_or("no host")?;
    let auth = if u.username().is_empty() {
        None
    } else {
        let user = percent_decode(u.username());
        let password = percent_decode(u.password().unwrap_or(""));
        let v = format!("Basic {}", base64(format!("{user}:{password}").as_bytes()));
        Some(HeaderValue::from_str(&v).map_err(|e| e.to_string())?)
    };
    Ok(Proxy {
        tls,
        host: host_for_lookup(&host),
        port: u.port_or_known_default().unwrap_or(80),
        auth,
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Standard base64 with padding.
fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(A[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Opens a `CONNECT` tunnel to `target` through the proxy on `io`.
async fn tunnel<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    target: &str,
    proxy: &Proxy,
) -> Result<(), Lost> {
    let mut req = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some(auth) = &proxy.auth {
        req.push_str("Proxy-Authorization: ");
        req.push_str(auth.to_str().unwrap_or_default());
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    io.write_all(req.as_bytes())
        .await
        .map_err(|e| Lost::from_io(&e))?;
    // The answer's head, byte by byte so that nothing of the tunnel's
    // traffic is read with it.
    let mut head = Vec::with_capacity(256);
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_CONNECT_RESPONSE {
            return Err(Lost::BadAnswer("proxy's CONNECT answer too long".into()));
        }
        let b = io.read_u8().await.map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => Lost::ShortRead("proxy closed during CONNECT".into()),
            _ => Lost::from_io(&e),
        })?;
        head.push(b);
    }
    let status_line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let status_line = String::from_utf8_lossy(status_line);
    let code = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok());
    match code {
        Some(c) if (200..300).contains(&c) => Ok(()),
        Some(c) => Err(Lost::BadAnswer(format!(
            "proxy refused CONNECT {target}: status {c}"
        ))),
        None => Err(Lost::BadAnswer(format!(
            "proxy's answer to CONNECT is not HTTP: {:?}",
            status_line.trim()
        ))),
    }
}

/// Sends `request` over `io` (HTTP/1.1) and reads the whole response.
async fn round_trip<S>(
    io: S,
    request: hyper::Request<http_body_util::Empty<hyper::body::Bytes>>,
    fail_codes: &[u16],
) -> Result<(), Lost>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| classify(&e))?;
    let exchange = async {
        let mut response = sender
            .send_request(request)
            .await
            .map_err(|e| classify(&e))?;
        let status = response.status().as_u16();
        if fail_codes.contains(&status) {
            return Err(Lost::Status(status));
        }
        while let Some(frame) = response.body_mut().frame().await {
            frame.map_err(|e| classify(&e))?;
        }
        Ok(())
    };
    tokio::pin!(exchange);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        r = &mut exchange => r,
        // The connection ended (closed after the answer, or failed): what
        // it read is already with the response.
        _ = &mut conn => exchange.await,
    }
}

/// Why a TLS handshake failed.
fn tls_lost(e: &io::Error) -> Lost {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => Lost::Refused,
        io::ErrorKind::TimedOut => Lost::Timeout,
        _ => Lost::Tls(innermost(e)),
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

/// Why an exchange failed, from hyper's error and its sources.
fn classify(err: &(dyn StdError + 'static)) -> Lost {
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
                    io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset => {
                        return Lost::ShortRead(innermost(e))
                    }
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
    fn base64_and_percent_decoding() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"user:p@ss"), "dXNlcjpwQHNz");
        assert_eq!(percent_decode("p%40ss%3a%zz%4"), "p@ss:%zz%4");
    }

    #[test]
    fn proxies_and_host_headers() {
        let p = parse_proxy("http://u:p%40ss@proxy.example:3128").unwrap();
        assert_eq!(
            (p.host.as_str(), p.port, p.tls),
            ("proxy.example", 3128, false)
        );
        assert_eq!(p.auth.unwrap(), "Basic dTpwQHNz");
        let p = parse_proxy("http://[2001:db8::1]").unwrap();
        assert_eq!((p.host.as_str(), p.port, p.auth), ("2001:db8::1", 80, None));
        assert!(parse_proxy("https://x:1").unwrap().tls);
        assert!(parse_proxy("socks5://x:1").is_err());
        assert!(parse_proxy("not a url").is_err());
        let u = Url::parse("http://[::1]:8080/x").unwrap();
        assert_eq!(authority(&u.host().unwrap(), u.port()), "[::1]:8080");
        let u = Url::parse("https://example.net:443/").unwrap();
        assert_eq!(authority(&u.host().unwrap(), u.port()), "example.net");
    }

    #[test]
    fn the_kernel_times_unless_something_is_missing() {
        let us = Duration::from_micros;
        let t0 = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let stamps = Stamps {
            first_tx: Some(t0),
            last_rx: Some(t0 + us(700)),
        };
        assert_eq!(kernel_rtt(Some(us(100)), stamps, us(2000)), us(800));
        // No handshake sample, no stamps, or more than was measured.
        assert_eq!(kernel_rtt(None, stamps, us(2000)), us(2000));
        assert_eq!(
            kernel_rtt(Some(us(100)), Stamps::default(), us(2000)),
            us(2000)
        );
        assert_eq!(kernel_rtt(Some(us(100)), stamps, us(500)), us(500));
        // An answer stamped before the request: not believed.
        let backwards = Stamps {
            first_tx: Some(t0 + us(700)),
            last_rx: Some(t0),
        };
        assert_eq!(kernel_rtt(Some(us(100)), backwards, us(2000)), us(2000));
    }

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
