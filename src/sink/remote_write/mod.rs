//! Prometheus remote write 1.0: every finished round pushed as samples to
//! a Prometheus-compatible store (Prometheus with its remote-write
//! receiver, VictoriaMetrics, Mimir, Thanos Receive), for probers that
//! cannot be scraped (behind NAT or a firewall) or too big to be.
//!
//! Per order and round, at the round's RRD time, at most eight series:
//! `pingmachine_round_loss_ratio`, `pingmachine_round_rtt_{median,min,max,
//! jitter,stddev}_seconds` and `pingmachine_round_rtt_quantile_seconds`
//! with `quantile` 0.1 and 0.9 (RTT series only when a ping was answered),
//! labelled `order`, `user`, `probe`, `host`, `ip`, the order's tags and
//! every `--tag` (the order's tag wins on a clash).
//!
//! Each destination has a bounded queue of series; a task sends them in
//! batches (snappy-compressed protobuf, the protocol's headers), retries on
//! 5xx, 429 and network errors with a growing back-off, and drops a batch
//! the server refuses with another 4xx. A full queue drops its oldest
//! series. Everything dropped is counted; probing never waits.

mod proto;
mod scrape;

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{Common, Env, Plan, RoundReport, Sink};
use crate::telemetry::Sheet;
pub use proto::{Label, Sample, TimeSeries, WriteRequest};

/// Most series per request.
const BATCH_SERIES: usize = 10_000;
/// Most bytes (before compression) per request.
const BATCH_BYTES: usize = 4 << 20;
/// A batch leaves at least this often when there is something queued.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Back-off after a failed batch: doubles from the first to the last.
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// One request's limit.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// At shutdown, how long the queue may still be sent.
const FINAL_FLUSH: Duration = Duration::from_secs(5);
/// The quantiles sent besides the median.
const QUANTILES: [(f64, &str); 2] = [(0.1, "0.1"), (0.9, "0.9")];

/// The remote-write flags.
#[derive(Debug, Clone, clap::Args)]
#[group(skip)]
pub struct Args {
    /// Push every round as samples to this Prometheus remote-write
    /// endpoint (http(s)://HOST:PORT/api/v1/write for Prometheus with
    /// --web.enable-remote-write-receiver and VictoriaMetrics). The --tag
    /// labels are added to every series. Repeatable.
    #[arg(long = "remote-write", value_name = "URL")]
    pub remote_write: Vec<String>,

    /// Most series queued per remote-write destination while it is slow
    /// or down; beyond that the oldest are dropped (and counted).
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000), value_name = "SERIES")]
    pub remote_write_buffer: u64,

    /// Basic-auth user for the remote-write endpoints (the password from
    /// --remote-write-password-file).
    #[arg(long, value_name = "USER", requires = "remote_write_password_file")]
    pub remote_write_user: Option<String>,

    /// File holding the basic-auth password (one line).
    #[arg(long, value_name = "FILE", requires = "remote_write_user")]
    pub remote_write_password_file: Option<std::path::PathBuf>,

    /// File holding a bearer token sent to the remote-write endpoints.
    #[arg(long, value_name = "FILE", conflicts_with = "remote_write_user")]
    pub remote_write_bearer_token_file: Option<std::path::PathBuf>,

    /// What is pushed: summary (per order and round, at most eight
    /// series) or full (the summary, and the whole of /metrics every
    /// --remote-write-interval).
    #[arg(long, value_enum, default_value_t = SeriesMode::Summary, value_name = "MODE")]
    pub remote_write_series: SeriesMode,

    /// With --remote-write-series full: seconds between two pushes of
    /// /metrics.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(5..=3600), value_name = "SECONDS")]
    pub remote_write_interval: u64,
}

impl Args {
    /// True when the whole of `/metrics` is pushed.
    pub fn reads_metrics(&self) -> bool {
        !self.remote_write.is_empty() && self.remote_write_series == SeriesMode::Full
    }
}

/// What `--remote-write` pushes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SeriesMode {
    /// Per order and round: loss, median, min, max, jitter, stddev, two
    /// quantiles.
    Summary,
    /// The summary, and the whole of /metrics every interval.
    Full,
}

/// How requests authenticate.
#[derive(Debug, Clone)]
enum Auth {
    None,
    Basic(String, String),
    Bearer(String),
}

/// One destination's checked settings.
#[derive(Debug, Clone)]
struct Destination {
    url: String,
    auth: Auth,
    ca: Vec<Vec<u8>>,
}

#[derive(Debug)]
struct RemoteWritePlan {
    destinations: Vec<Destination>,
    global: BTreeMap<String, String>,
    buffer: usize,
    /// `full`: how often `/metrics` is pushed.
    full: Option<Duration>,
}

/// Reads the first line of a secret file.
fn secret(flag: &str, path: &std::path::Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("{flag} {}: {e}", path.display()))?;
    let line = text.lines().next().unwrap_or_default().trim().to_owned();
    if line.is_empty() {
        anyhow::bail!("{flag} {}: the file is empty", path.display());
    }
    Ok(line)
}

/// Checks the remote-write flags; `None` without `--remote-write`.
/// `tags` are the `--tag` flags.
pub fn plan(
    args: &Args,
    tags: &[String],
    common: &Common<'_>,
) -> anyhow::Result<Option<Box<dyn Plan>>> {
    if args.remote_write.is_empty() {
        return Ok(None);
    }
    let auth = match (&args.remote_write_user, &args.remote_write_password_file) {
        (Some(u), Some(f)) => Auth::Basic(u.clone(), secret("--remote-write-password-file", f)?),
        _ => match &args.remote_write_bearer_token_file {
            Some(f) => Auth::Bearer(secret("--remote-write-bearer-token-file", f)?),
            None => Auth::None,
        },
    };
    let mut destinations = Vec::new();
    for u in &args.remote_write {
        let parsed =
            url::Url::parse(u).map_err(|e| anyhow::anyhow!("--remote-write {u:?}: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            anyhow::bail!("--remote-write {u:?}: expected http(s)://HOST[:PORT]/PATH");
        }
        destinations.push(Destination {
            url: u.clone(),
            auth: auth.clone(),
            ca: common.http_ca.to_vec(),
        });
    }
    let mut global = BTreeMap::new();
    for t in tags {
        let (k, v) =
            super::lineproto::parse_tag(t).map_err(|e| anyhow::anyhow!("--tag {t:?}: {e}"))?;
        global.insert(k, v);
    }
    Ok(Some(Box::new(RemoteWritePlan {
        destinations,
        global,
        buffer: usize::try_from(args.remote_write_buffer).unwrap_or(usize::MAX),
        full: (args.remote_write_series == SeriesMode::Full)
            .then(|| Duration::from_secs(args.remote_write_interval)),
    })))
}

impl Plan for RemoteWritePlan {
    fn start(self: Box<Self>, env: &Env<'_>) -> Arc<dyn Sink> {
        let outputs: Vec<Arc<Output>> = self
            .destinations
            .into_iter()
            .map(|d| {
                let out = Arc::new(Output::new(d, self.buffer));
                let name = format!("remote-write sender {}", out.dest.url);
                env.tracker
                    .spawn(env.sup.watch(name, run(out.clone(), env.cancel.clone())));
                out
            })
            .collect();
        Arc::new(RemoteWrite {
            outputs,
            global: self.global,
            full: self.full,
            scrape_errors: AtomicU64::new(0),
        })
    }
}

/// The sink: every destination, and the `--tag` labels.
#[derive(Debug)]
pub struct RemoteWrite {
    outputs: Vec<Arc<Output>>,
    global: BTreeMap<String, String>,
    full: Option<Duration>,
    /// `/metrics` texts that could not be read (none expected).
    scrape_errors: AtomicU64,
}

/// A series ready to send: its `timeseries` field of a `WriteRequest`,
/// encoded once for every destination.
type Encoded = Arc<[u8]>;

/// What a queue holds: series, each with its number in the queue's order.
#[derive(Debug, Default)]
struct Queue {
    items: VecDeque<(u64, Encoded)>,
    next: u64,
    bytes: usize,
}

/// A queue and its counters.
#[derive(Debug)]
struct Output {
    dest: Destination,
    queue: Mutex<Queue>,
    capacity: usize,
    notify: Notify,
    /// Series and samples sent (acknowledged), dropped (queue full,
    /// refused, or unsent at shutdown), requests retried.
    sent: AtomicU64,
    dropped: AtomicU64,
    retries: AtomicU64,
    /// Request bodies sent and acknowledged (compressed bytes).
    bytes: AtomicU64,
    /// The most series queued at once.
    high_water: AtomicU64,
}

impl Output {
    fn new(dest: Destination, capacity: usize) -> Output {
        Output {
            dest,
            queue: Mutex::new(Queue::default()),
            capacity: capacity.max(1),
            notify: Notify::new(),
            sent: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            high_water: AtomicU64::new(0),
        }
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn push(&self, series: &[Encoded]) {
        let mut q = self.queue();
        let mut dropped = 0;
        for s in series {
            if q.items.len() >= self.capacity {
                if let Some((_, old)) = q.items.pop_front() {
                    q.bytes -= old.len();
                }
                dropped += 1;
            }
            let seq = q.next;
            q.next += 1;
            q.bytes += s.len();
            q.items.push_back((seq, s.clone()));
        }
        self.high_water
            .fetch_max(q.items.len() as u64, Ordering::Relaxed);
        drop(q);
        if dropped > 0 {
            self.dropped.fetch_add(dropped, Ordering::Relaxed);
        }
        self.notify.notify_one();
    }

    /// The oldest series, up to a batch's limits: their bytes
    /// concatenated (a `WriteRequest`, uncompressed), how many, and the
    /// number of the last.
    fn batch(&self) -> Option<(Vec<u8>, usize, u64)> {
        let q = self.queue();
        let mut body = Vec::new();
        let mut last = None;
        let mut n = 0;
        for (seq, s) in q.items.iter().take(BATCH_SERIES) {
            if n > 0 && body.len() + s.len() > BATCH_BYTES {
                break;
            }
            body.extend_from_slice(s);
            last = Some(*seq);
            n += 1;
        }
        last.map(|l| (body, n, l))
    }

    /// Removes the series up to number `last` (those the oldest-first
    /// drops left: the others were counted as dropped then); how many.
    fn take_through(&self, last: u64) -> u64 {
        let mut q = self.queue();
        let mut gone = 0;
        while q.items.front().is_some_and(|(seq, _)| *seq <= last) {
            if let Some((_, s)) = q.items.pop_front() {
                q.bytes -= s.len();
            }
            gone += 1;
        }
        gone
    }
}

/// Encodes a round's series once, for every destination.
fn encode_all(series: &[TimeSeries]) -> Vec<Encoded> {
    series.iter().map(encode_one).collect()
}

/// One series as its `timeseries` field.
fn encode_one(ts: &TimeSeries) -> Encoded {
    let mut b = Vec::with_capacity(prost::encoding::message::encoded_len(1, ts));
    prost::encoding::message::encode(1, ts, &mut b);
    Encoded::from(b)
}

/// The labels of an order's series, without `__name__`: sorted by name.
fn order_labels(r: &RoundReport<'_>, global: &BTreeMap<String, String>) -> Vec<Label> {
    let mut labels: BTreeMap<String, String> = BTreeMap::new();
    labels.insert("order".into(), r.order.id.as_str().to_owned());
    labels.insert("user".into(), r.order.user.clone());
    labels.insert("probe".into(), r.order.probe.name().to_owned());
    labels.insert("host".into(), r.order.probe.label_host());
    if let Some(ip) = r.probed_ip() {
        labels.insert("ip".into(), ip.to_string());
    }
    let tags = r
        .order
        .telegraf
        .as_deref()
        .map(|m| m.tags.clone())
        .unwrap_or_default();
    for (name, key) in super::prometheus::label_names(&tags) {
        labels.insert(name, tags[key].clone());
    }
    for (name, key) in super::prometheus::label_names(global) {
        labels.entry(name).or_insert_with(|| global[key].clone());
    }
    labels
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(name, value)| Label { name, value })
        .collect()
}

/// Nearest-rank quantile of sorted values.
fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// A series of a round: its name, an extra label, its value (`None`: not
/// sent).
type RoundValue<'a> = (&'a str, Option<(&'a str, &'a str)>, Option<f64>);

/// The series of one round.
fn round_series(r: &RoundReport<'_>, global: &BTreeMap<String, String>) -> Vec<TimeSeries> {
    let base = order_labels(r, global);
    let ts = r.t * 1000;
    let s = r.summary;
    let secs = &s.sorted;
    let spread_jitter = crate::result::jitter(r.rtts);
    let mut values: Vec<RoundValue<'_>> = vec![
        (
            "pingmachine_round_loss_ratio",
            None,
            Some(if s.pings == 0 {
                0.0
            } else {
                s.lost as f64 / s.pings as f64
            }),
        ),
        ("pingmachine_round_rtt_median_seconds", None, s.median()),
        ("pingmachine_round_rtt_min_seconds", None, s.min()),
        ("pingmachine_round_rtt_max_seconds", None, s.max()),
        ("pingmachine_round_rtt_jitter_seconds", None, spread_jitter),
        ("pingmachine_round_rtt_stddev_seconds", None, s.stddev()),
    ];
    for (q, text) in QUANTILES {
        values.push((
            "pingmachine_round_rtt_quantile_seconds",
            Some(("quantile", text)),
            quantile(secs, q),
        ));
    }
    values
        .into_iter()
        .filter_map(|(name, extra, v)| {
            let v = v.filter(|v| v.is_finite())?;
            let mut labels = Vec::with_capacity(base.len() + 2);
            labels.push(Label {
                name: "__name__".into(),
                value: name.into(),
            });
            labels.extend(base.iter().cloned());
            if let Some((n, val)) = extra {
                labels.push(Label {
                    name: n.into(),
                    value: val.into(),
                });
            }
            labels.sort_by(|a, b| a.name.cmp(&b.name));
            Some(TimeSeries {
                labels,
                samples: vec![Sample {
                    value: v,
                    timestamp: ts,
                }],
            })
        })
        .collect()
}

fn get(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

impl Sink for RemoteWrite {
    fn report(&self, r: &RoundReport<'_>) {
        let series = encode_all(&round_series(r, &self.global));
        for o in &self.outputs {
            o.push(&series);
        }
    }

    fn scrape_interval(&self) -> Option<Duration> {
        self.full
    }

    fn scraped(&self, text: &str, at_ms: i64) {
        if self.full.is_none() {
            return;
        }
        let mut series = Vec::new();
        let read = scrape::for_each(text, at_ms, &self.global, |ts| {
            series.push(encode_one(&ts));
        });
        match read {
            Ok(()) => {
                for o in &self.outputs {
                    o.push(&series);
                }
            }
            Err(e) => {
                if self.scrape_errors.fetch_add(1, Ordering::Relaxed) == 0 {
                    warn!(error = %e, "remote write: cannot read /metrics; not sent");
                }
            }
        }
    }

    fn telemetry(&self, s: &mut Sheet) {
        const SERIES: &str = "Remote-write series (one sample each) per destination: sent, or dropped (queue full, refused, unsent at shutdown).";
        s.list("remote_write");
        for o in &self.outputs {
            let dest = o.dest.url.as_str();
            s.item("remote_write", |s| {
                s.json("destination", dest);
                s.figure("sent", get(&o.sent)).counter_with(
                    "pingmachine_remote_write_series",
                    SERIES,
                    &[("destination", dest), ("outcome", "sent")],
                );
                s.figure("dropped", get(&o.dropped)).counter_with(
                    "pingmachine_remote_write_series",
                    SERIES,
                    &[("destination", dest), ("outcome", "dropped")],
                );
                s.figure("retries", get(&o.retries)).counter_with(
                    "pingmachine_remote_write_retries",
                    "Remote-write requests that failed and were tried again.",
                    &[("destination", dest)],
                );
                s.figure("bytes", get(&o.bytes)).counter_with(
                    "pingmachine_remote_write_bytes",
                    "Remote-write request bodies acknowledged, compressed bytes.",
                    &[("destination", dest)],
                );
                s.json("queue_high_water", get(&o.high_water));
                let (queued, queued_bytes) = {
                    let q = o.queue();
                    (q.items.len() as u64, q.bytes as u64)
                };
                s.json("queued_bytes", queued_bytes);
                s.figure("queued", queued).gauge_with(
                    "pingmachine_remote_write_queued_series",
                    "Remote-write series waiting per destination.",
                    &[("destination", dest)],
                );
            });
        }
    }

    fn log_totals(&self) {
        for o in &self.outputs {
            info!(
                destination = %o.dest.url,
                sent = get(&o.sent),
                dropped = get(&o.dropped),
                retries = get(&o.retries),
                "remote-write totals"
            );
        }
    }
}

/// Why a request failed.
#[derive(Debug)]
enum SendError {
    /// 5xx, 429, a network error: try again.
    Retry(String),
    /// Another 4xx: the data is refused, trying again cannot help.
    Refused(String),
}

/// Sends one batch (a `WriteRequest`, uncompressed); the compressed
/// body's size when it was taken.
async fn send(
    client: &reqwest::Client,
    dest: &Destination,
    batch: &[u8],
) -> Result<u64, SendError> {
    let body = proto::compress(batch);
    let size = body.len() as u64;
    let mut req = client
        .post(&dest.url)
        .header("Content-Encoding", "snappy")
        .header("Content-Type", "application/x-protobuf")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .body(body);
    match &dest.auth {
        Auth::None => {}
        Auth::Basic(u, p) => req = req.basic_auth(u, Some(p)),
        Auth::Bearer(t) => req = req.bearer_auth(t),
    }
    let resp = req
        .send()
        .await
        .map_err(|e| SendError::Retry(error_chain(&e)))?;
    let status = resp.status();
    if status.is_success() {
        return Ok(size);
    }
    let text: String = resp
        .text()
        .await
        .unwrap_or_default()
        .chars()
        .take(300)
        .collect();
    let code = status.as_u16();
    if status.is_client_error() && code != 429 {
        Err(SendError::Refused(format!("HTTP {code}: {text}")))
    } else {
        Err(SendError::Retry(format!("HTTP {code}: {text}")))
    }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        parts.push(s.to_string());
        cur = s.source();
    }
    parts.join(": ")
}

/// The sender of `out`: batches, in order; a failed batch is sent again
/// (growing back-off) until it goes or is refused, so no series is sent
/// out of order; until `cancel`, then what is queued gets
/// [`FINAL_FLUSH`].
async fn run(out: Arc<Output>, cancel: CancellationToken) {
    let client = match probes::http::tls_config(&out.dest.ca).and_then(|tls| {
        reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(REQUEST_TIMEOUT)
            .no_proxy()
            .build()
            .map_err(|e| probes::http::SetupError::Client(e.to_string()))
    }) {
        Ok(c) => c,
        Err(e) => {
            warn!(destination = %out.dest.url, error = %e, "remote write cannot start; its series are dropped");
            return;
        }
    };
    info!(destination = %out.dest.url, "remote write started");
    let mut backoff = BACKOFF_MIN;
    let mut failing = false;
    let mut stopping: Option<Instant> = None;
    loop {
        if stopping.is_none() {
            tokio::select! {
                () = out.notify.notified() => {}
                () = tokio::time::sleep(FLUSH_EVERY) => {}
                () = cancel.cancelled() => stopping = Some(Instant::now()),
            }
        }
        while let Some((batch, n, last)) = out.batch() {
            let result = match stopping {
                Some(at) => {
                    let left = FINAL_FLUSH.saturating_sub(at.elapsed());
                    tokio::time::timeout(left, send(&client, &out.dest, &batch))
                        .await
                        .unwrap_or_else(|_| Err(SendError::Retry("shutting down".into())))
                }
                None => send(&client, &out.dest, &batch).await,
            };
            match result {
                Ok(size) => {
                    let gone = out.take_through(last);
                    out.sent.fetch_add(gone, Ordering::Relaxed);
                    out.bytes.fetch_add(size, Ordering::Relaxed);
                    if failing {
                        info!(destination = %out.dest.url, "remote write sends again");
                        failing = false;
                    }
                    backoff = BACKOFF_MIN;
                }
                Err(SendError::Refused(why)) => {
                    let gone = out.take_through(last);
                    out.dropped.fetch_add(gone, Ordering::Relaxed);
                    warn!(destination = %out.dest.url, series = n, error = %why, "remote write: batch refused, dropped");
                }
                Err(SendError::Retry(why)) => {
                    out.retries.fetch_add(1, Ordering::Relaxed);
                    if let Some(at) = stopping {
                        if at.elapsed() >= FINAL_FLUSH {
                            let left = {
                                let mut q = out.queue();
                                q.bytes = 0;
                                q.items.drain(..).count()
                            };
                            out.dropped.fetch_add(left as u64, Ordering::Relaxed);
                            warn!(destination = %out.dest.url, series = left, error = %why, "remote write: unsent at shutdown, dropped");
                            return;
                        }
                    }
                    if !failing {
                        warn!(destination = %out.dest.url, error = %why, "remote write failing; retrying with back-off (said once until it sends again)");
                        failing = true;
                    }
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = cancel.cancelled(), if stopping.is_none() => stopping = Some(Instant::now()),
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
        if stopping.is_some() {
            return;
        }
    }
}

#[cfg(test)]
mod tests;
