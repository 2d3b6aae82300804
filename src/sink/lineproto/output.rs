//! One line-protocol destination: a bounded queue that drops its oldest
//! lines when full, and a writer task that sends batches with retry and
//! exponential backoff.
//!
//! * UDP: lines are packed into datagrams below 1400 bytes and sent as soon
//!   as they are queued; a failed send is a drop (UDP has no retry).
//! * HTTP: batches of up to [`BATCH_LINES`] lines, at least every
//!   [`FLUSH_EVERY`], POSTed to the write URL. 2xx is success; a 4xx other
//!   than 408/429 means InfluxDB refuses the data itself, so the batch is
//!   dropped (counted, logged); anything else is retried with backoff.
//! * TCP: newline-terminated lines over a kept-open connection, reopened
//!   after an error.

use probes::sync::lock;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::encode;

/// Largest UDP datagram sent (below 1400 bytes, as the original's).
pub const MAX_DATAGRAM: usize = 1400;
/// Most lines in one HTTP or TCP batch.
pub const BATCH_LINES: usize = 5000;
/// Longest a line waits before an HTTP/TCP batch is sent.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Backoff bounds after a failed batch.
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// Drops are logged at most this often.
const DROP_LOG_EVERY: Duration = Duration::from_secs(10);
/// Time allowed for the last flush at shutdown.
const FINAL_FLUSH: Duration = Duration::from_secs(3);

/// Where lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// UDP datagrams (Telegraf/InfluxDB UDP listener).
    Udp(String),
    /// InfluxDB HTTP write API; `token` for v2 (`Authorization: Token`),
    /// `basic` user and password for v1.
    Http {
        /// The full write URL.
        url: String,
        /// v2 token.
        token: Option<String>,
        /// v1 user and password.
        basic: Option<(String, String)>,
        /// Extra trusted CAs (PEM) for https.
        ca: Vec<Vec<u8>>,
    },
    /// Telegraf `socket_listener` over TCP.
    Tcp(String),
}

/// Why a destination is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DestinationError {
    /// Not one of the supported schemes.
    #[error("expected http://, https://, tcp:// or udp://")]
    Scheme,
    /// An HTTP URL that is not a write endpoint.
    #[error("the path must be /write?db=NAME (v1) or /api/v2/write?org=…&bucket=… (v2)")]
    Path,
    /// A v2 URL without `org=` and `bucket=`.
    #[error("a v2 write URL needs org= and bucket= parameters")]
    V2Params,
    /// A v1 URL without `db=`.
    #[error("a v1 write URL needs a db= parameter")]
    V1Db,
    /// A v2 URL without a token in the environment.
    #[error("a v2 write URL needs the token in PINGMACHINE_INFLUX_TOKEN")]
    V2Token,
    /// An unbracketed IPv6 address.
    #[error("expected HOST:PORT, got {0:?}; write an IPv6 address in brackets: [ADDR]:PORT")]
    Ipv6Brackets(String),
    /// Not `HOST:PORT`.
    #[error("expected HOST:PORT, got {0:?}")]
    HostPort(String),
}

impl Destination {
    /// Parses `--influx-url` (`http(s)://…/write?db=…`,
    /// `http(s)://…/api/v2/write?org=…&bucket=…`, `tcp://HOST:PORT`,
    /// `udp://HOST:PORT`). Credentials come from the environment:
    /// `PINGMACHINE_INFLUX_TOKEN` (v2), `PINGMACHINE_INFLUX_USER` and
    /// `PINGMACHINE_INFLUX_PASSWORD` (v1).
    pub fn parse(
        url: &str,
        env: impl Fn(&str) -> Option<String>,
        ca: &[Vec<u8>],
    ) -> Result<Destination, DestinationError> {
        if let Some(hp) = url.strip_prefix("udp://") {
            return Ok(Destination::Udp(host_port(hp)?));
        }
        if let Some(hp) = url.strip_prefix("tcp://") {
            return Ok(Destination::Tcp(host_port(hp)?));
        }
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(DestinationError::Scheme);
        }
        let path = url.split_once("://").map(|(_, r)| r).unwrap_or("");
        let path = path.find('/').map(|i| &path[i..]).unwrap_or("");
        let v2 = path.starts_with("/api/v2/write");
        if !v2 && !path.starts_with("/write") {
            return Err(DestinationError::Path);
        }
        if v2 && !(path.contains("bucket=") && path.contains("org=")) {
            return Err(DestinationError::V2Params);
        }
        if !v2 && !path.contains("db=") {
            return Err(DestinationError::V1Db);
        }
        let token = env("PINGMACHINE_INFLUX_TOKEN");
        if v2 && token.is_none() {
            return Err(DestinationError::V2Token);
        }
        let basic = match (
            env("PINGMACHINE_INFLUX_USER"),
            env("PINGMACHINE_INFLUX_PASSWORD"),
        ) {
            (Some(u), p) => Some((u, p.unwrap_or_default())),
            _ => None,
        };
        let mut url = url.to_owned();
        if !url.contains("precision=") {
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str(if v2 { "precision=ns" } else { "precision=n" });
        }
        Ok(Destination::Http {
            url,
            token: if v2 { token } else { None },
            basic: if v2 { None } else { basic },
            ca: ca.to_vec(),
        })
    }

    /// Name for logs (no credentials).
    pub fn label(&self) -> String {
        match self {
            Destination::Udp(a) => format!("udp://{a}"),
            Destination::Tcp(a) => format!("tcp://{a}"),
            Destination::Http { url, .. } => url.clone(),
        }
    }
}

fn host_port(s: &str) -> Result<String, DestinationError> {
    let s = s.trim_end_matches('/');
    match s.rsplit_once(':') {
        Some((h, _)) if h.contains(':') && !(h.starts_with('[') && h.ends_with(']')) => {
            Err(DestinationError::Ipv6Brackets(s.to_owned()))
        }
        Some((h, p)) if !h.is_empty() && h != "[]" && p.parse::<u16>().is_ok() => Ok(s.to_owned()),
        _ => Err(DestinationError::HostPort(s.to_owned())),
    }
}

/// Counters of one destination.
#[derive(Debug, Default)]
pub struct OutputStats {
    /// Lines delivered.
    pub sent: AtomicU64,
    /// Lines dropped (queue full, refused by the server, UDP send failure).
    pub dropped: AtomicU64,
    /// Batches that failed and were retried.
    pub retries: AtomicU64,
    /// Most lines queued at once.
    pub high_water: AtomicU64,
}

/// A destination with its queue.
#[derive(Debug)]
pub struct Output {
    dest: Destination,
    queue: Mutex<VecDeque<String>>,
    cap: usize,
    notify: Notify,
    /// Counters.
    pub stats: OutputStats,
}

impl Output {
    /// A destination whose queue holds at most `cap` lines.
    pub fn new(dest: Destination, cap: usize) -> Output {
        Output {
            dest,
            queue: Mutex::new(VecDeque::new()),
            cap: cap.max(1),
            notify: Notify::new(),
            stats: OutputStats::default(),
        }
    }

    /// The destination.
    pub fn destination(&self) -> &Destination {
        &self.dest
    }

    /// Queues lines, dropping the oldest beyond the cap; never waits.
    pub fn push(&self, lines: &[String]) {
        let mut q = lock(&self.queue);
        let mut dropped = 0;
        for l in lines {
            if q.len() >= self.cap {
                q.pop_front();
                dropped += 1;
            }
            q.push_back(l.clone());
        }
        let len = q.len() as u64;
        drop(q);
        if dropped > 0 {
            self.stats.dropped.fetch_add(dropped, Ordering::Relaxed);
        }
        self.stats.high_water.fetch_max(len, Ordering::Relaxed);
        if matches!(self.dest, Destination::Udp(_)) || len as usize >= BATCH_LINES {
            self.notify.notify_one();
        }
    }

    /// Takes up to `n` lines from the front.
    fn take(&self, n: usize) -> Vec<String> {
        let mut q = lock(&self.queue);
        let k = n.min(q.len());
        q.drain(..k).collect()
    }

    /// Puts a failed batch back at the front, keeping the newest lines when
    /// that overflows the cap.
    fn put_back(&self, batch: Vec<String>) {
        let mut q = lock(&self.queue);
        let room = self.cap.saturating_sub(q.len());
        let skip = batch.len().saturating_sub(room);
        for l in batch.into_iter().skip(skip).rev() {
            q.push_front(l);
        }
        drop(q);
        if skip > 0 {
            self.stats.dropped.fetch_add(skip as u64, Ordering::Relaxed);
        }
    }

    /// Lines waiting in the queue now.
    pub fn queued(&self) -> usize {
        lock(&self.queue).len()
    }
}

/// Why a batch failed.
enum SendError {
    /// Try again later.
    Retry(String),
    /// The server refused the data; retrying cannot help.
    Refused(String),
}

/// The connection state of one writer.
enum Conn {
    Udp(Option<tokio::net::UdpSocket>),
    Http(Option<reqwest::Client>),
    Tcp(Option<tokio::net::TcpStream>),
}

/// The writer task of `out`.
pub async fn run(out: std::sync::Arc<Output>, cancel: CancellationToken) {
    let label = out.dest.label();
    let mut conn = match &out.dest {
        Destination::Udp(_) => Conn::Udp(None),
        Destination::Http { .. } => Conn::Http(None),
        Destination::Tcp(_) => Conn::Tcp(None),
    };
    info!(destination = %label, "line-protocol output started");
    let mut backoff = BACKOFF_MIN;
    let mut failing = false;
    let mut last_drop_log = (Instant::now(), 0u64);
    loop {
        let stop = tokio::select! {
            () = out.notify.notified() => false,
            () = tokio::time::sleep(FLUSH_EVERY) => false,
            () = cancel.cancelled() => true,
        };
        // Send everything queued, batch by batch.
        loop {
            let batch = out.take(BATCH_LINES);
            if batch.is_empty() {
                break;
            }
            let n = batch.len() as u64;
            let result = if stop {
                match tokio::time::timeout(FINAL_FLUSH, send(&out.dest, &mut conn, &batch)).await {
                    Ok(r) => r,
                    Err(_) => Err(SendError::Retry("timed out at shutdown".into())),
                }
            } else {
                send(&out.dest, &mut conn, &batch).await
            };
            match result {
                Ok(()) => {
                    out.stats.sent.fetch_add(n, Ordering::Relaxed);
                    if failing {
                        info!(destination = %label, "line-protocol output recovered");
                        failing = false;
                    }
                    backoff = BACKOFF_MIN;
                }
                Err(SendError::Refused(why)) => {
                    out.stats.dropped.fetch_add(n, Ordering::Relaxed);
                    warn!(destination = %label, lines = n, error = %why, "line-protocol batch refused by the server; dropped");
                }
                Err(SendError::Retry(why)) => {
                    out.stats.retries.fetch_add(1, Ordering::Relaxed);
                    if stop {
                        out.stats.dropped.fetch_add(n, Ordering::Relaxed);
                        warn!(destination = %label, lines = n + out.queued() as u64, error = %why, "line-protocol output: lines not delivered at shutdown");
                        return;
                    }
                    out.put_back(batch);
                    if !failing || backoff >= BACKOFF_MAX {
                        warn!(destination = %label, error = %why, retry_in_s = backoff.as_secs(), queued = out.queued(), "line-protocol write failed; retrying");
                    } else {
                        debug!(destination = %label, error = %why, retry_in_s = backoff.as_secs(), "line-protocol write failed");
                    }
                    failing = true;
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = cancel.cancelled() => {}
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    break;
                }
            }
        }
        let dropped = out.stats.dropped.load(Ordering::Relaxed);
        if dropped > last_drop_log.1 && last_drop_log.0.elapsed() >= DROP_LOG_EVERY {
            warn!(destination = %label, dropped_total = dropped, "line-protocol lines dropped (queue full or refused)");
            last_drop_log = (Instant::now(), dropped);
        }
        if stop || cancel.is_cancelled() {
            if out.queued() == 0 {
                debug!(destination = %label, "line-protocol output stopped");
                return;
            }
            if stop {
                return;
            }
        }
    }
}

async fn send(dest: &Destination, conn: &mut Conn, batch: &[String]) -> Result<(), SendError> {
    match (dest, conn) {
        (Destination::Udp(addr), Conn::Udp(sock)) => {
            if sock.is_none() {
                let target = resolve(addr).await?;
                let bind: SocketAddr = if target.is_ipv6() {
                    "[::]:0"
                } else {
                    "0.0.0.0:0"
                }
                .parse()
                .map_err(|e| SendError::Retry(format!("{e}")))?;
                let s = tokio::net::UdpSocket::bind(bind)
                    .await
                    .map_err(|e| SendError::Retry(format!("cannot open UDP socket: {e}")))?;
                s.connect(target).await.map_err(|e| {
                    SendError::Retry(format!("cannot connect UDP socket to {addr}: {e}"))
                })?;
                *sock = Some(s);
            }
            let Some(s) = sock.as_ref() else {
                return Err(SendError::Retry("no socket".into()));
            };
            let mut failed = 0;
            let mut last_err = None;
            for gram in encode::pack(batch, MAX_DATAGRAM) {
                if let Err(e) = s.send(&gram).await {
                    failed += 1;
                    last_err = Some(e);
                }
            }
            match last_err {
                // UDP is fire and forget: a failed datagram is a drop, not a retry.
                Some(e) => Err(SendError::Refused(format!(
                    "{failed} datagrams not sent: {e}"
                ))),
                None => Ok(()),
            }
        }
        (
            Destination::Http {
                url,
                token,
                basic,
                ca,
            },
            Conn::Http(client),
        ) => {
            if client.is_none() {
                let tls =
                    probes::http::tls_config(ca).map_err(|e| SendError::Retry(e.to_string()))?;
                let c = reqwest::Client::builder()
                    .tls_backend_preconfigured(tls)
                    .timeout(Duration::from_secs(30))
                    .no_proxy()
                    .build()
                    .map_err(|e| SendError::Retry(format!("cannot build HTTP client: {e}")))?;
                *client = Some(c);
            }
            let Some(c) = client.as_ref() else {
                return Err(SendError::Retry("no client".into()));
            };
            let mut body = batch.join("\n");
            body.push('\n');
            let mut req = c.post(url).body(body);
            if let Some(t) = token {
                req = req.header("Authorization", format!("Token {t}"));
            }
            if let Some((u, p)) = basic {
                req = req.basic_auth(u, Some(p));
            }
            let resp = req.send().await.map_err(|e| SendError::Retry(chain(&e)))?;
            let status = resp.status();
            if status.is_success() {
                return Ok(());
            }
            let text = resp.text().await.unwrap_or_default();
            let text: String = text.chars().take(300).collect();
            let code = status.as_u16();
            if status.is_client_error() && code != 408 && code != 429 {
                Err(SendError::Refused(format!("HTTP {code}: {text}")))
            } else {
                Err(SendError::Retry(format!("HTTP {code}: {text}")))
            }
        }
        (Destination::Tcp(addr), Conn::Tcp(stream)) => {
            if stream.is_none() {
                let s = tokio::time::timeout(
                    Duration::from_secs(5),
                    tokio::net::TcpStream::connect(addr.as_str()),
                )
                .await
                .map_err(|_| SendError::Retry(format!("connect to {addr} timed out")))?
                .map_err(|e| SendError::Retry(format!("cannot connect to {addr}: {e}")))?;
                *stream = Some(s);
            }
            let Some(s) = stream.as_mut() else {
                return Err(SendError::Retry("no connection".into()));
            };
            let mut body = batch.join("\n");
            body.push('\n');
            let r =
                tokio::time::timeout(Duration::from_secs(10), s.write_all(body.as_bytes())).await;
            match r {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => {
                    *stream = None;
                    Err(SendError::Retry(format!("write to {addr}: {e}")))
                }
                Err(_) => {
                    *stream = None;
                    Err(SendError::Retry(format!("write to {addr} timed out")))
                }
            }
        }
        _ => Err(SendError::Refused(
            "destination and connection kinds differ".into(),
        )),
    }
}

async fn resolve(addr: &str) -> Result<SocketAddr, SendError> {
    tokio::net::lookup_host(addr)
        .await
        .map_err(|e| SendError::Retry(format!("cannot resolve {addr}: {e}")))?
        .next()
        .ok_or_else(|| SendError::Retry(format!("{addr} resolves to nothing")))
}

fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        parts.push(s.to_string());
        cur = s.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn destinations() {
        let none = env(&[]);
        assert_eq!(
            Destination::parse("udp://127.0.0.1:8089", &none, &[]).unwrap(),
            Destination::Udp("127.0.0.1:8089".into())
        );
        assert_eq!(
            Destination::parse("tcp://telegraf:8094", &none, &[]).unwrap(),
            Destination::Tcp("telegraf:8094".into())
        );
        match Destination::parse(
            "http://127.0.0.1:8086/write?db=pm",
            env(&[("PINGMACHINE_INFLUX_USER", "u")]),
            &[],
        )
        .unwrap()
        {
            Destination::Http {
                url, token, basic, ..
            } => {
                assert_eq!(url, "http://127.0.0.1:8086/write?db=pm&precision=n");
                assert_eq!((token, basic), (None, Some(("u".into(), String::new()))));
            }
            other => panic!("{other:?}"),
        }
        let v2 = env(&[("PINGMACHINE_INFLUX_TOKEN", "secret")]);
        match Destination::parse("https://influx:8086/api/v2/write?org=o&bucket=b", &v2, &[])
            .unwrap()
        {
            Destination::Http { url, token, .. } => {
                assert_eq!(
                    url,
                    "https://influx:8086/api/v2/write?org=o&bucket=b&precision=ns"
                );
                assert_eq!(token.as_deref(), Some("secret"));
            }
            other => panic!("{other:?}"),
        }
        for bad in [
            "ftp://x",
            "udp://nohost",
            "tcp://h:99999",
            "http://h:8086/query?db=x",
            "http://h:8086/write",
            "http://h:8086/api/v2/write?org=o",
        ] {
            assert!(Destination::parse(bad, &v2, &[]).is_err(), "{bad} accepted");
        }
        assert!(
            Destination::parse("http://h/api/v2/write?org=o&bucket=b", &none, &[])
                .unwrap_err()
                .to_string()
                .contains("PINGMACHINE_INFLUX_TOKEN")
        );
    }

    #[test]
    fn queue_is_bounded_and_drops_the_oldest() {
        let o = Output::new(Destination::Tcp("h:1".into()), 3);
        let lines: Vec<String> = (0..5).map(|i| i.to_string()).collect();
        o.push(&lines);
        assert_eq!(o.take(10), vec!["2", "3", "4"]);
        assert_eq!(o.stats.dropped.load(Ordering::Relaxed), 2);
        o.push(&lines[..2]);
        let batch = o.take(10);
        o.push(&lines[2..4]);
        o.put_back(batch);
        // cap 3: the failed batch ("0","1") is put back before the new lines,
        // keeping only what fits (the newest of the batch).
        assert_eq!(o.take(10), vec!["1", "2", "3"]);
        assert_eq!(o.stats.dropped.load(Ordering::Relaxed), 3);
    }
}
