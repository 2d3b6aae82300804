//! The line-protocol sink (the original's output, and more): every round
//! of an order with a measurement name becomes InfluxDB line protocol,
//! queued on every destination.
//!
//! * [`encode`] — the encoder (pure functions, table-tested).
//! * [`output`] — one bounded queue and one writer task per destination:
//!   UDP (`--telegraf HOST:PORT`, `udp://`), InfluxDB's HTTP write API (v1
//!   `/write?db=`, v2 `/api/v2/write`), and TCP (`tcp://`, Telegraf's
//!   socket listener). Queuing never waits: each queue holds at most
//!   `--influx-buffer` lines and drops the oldest when full (counted and
//!   logged), so probing and RRD writing never wait on the network and
//!   memory stays bounded while an endpoint is down.

pub mod encode;
pub mod output;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tracing::info;

use super::{Common, Env, Plan, RoundReport, Sink};
use crate::telemetry::Sheet;
pub use output::{Destination, Output, OutputStats};

/// The line-protocol flags.
#[derive(Debug, Clone, clap::Args)]
#[group(skip)]
pub struct Args {
    /// Send results as InfluxDB line protocol over UDP to Telegraf or
    /// InfluxDB (as the original's --telegraf); [IPv6]:PORT for IPv6.
    #[arg(short = 't', long, value_name = "HOST:PORT")]
    pub telegraf: Option<String>,

    /// Send results as line protocol to InfluxDB's HTTP write API
    /// (http(s)://HOST:PORT/write?db=DB, or /api/v2/write?org=ORG&bucket=B
    /// with the token in PINGMACHINE_INFLUX_TOKEN), to Telegraf's socket
    /// listener (tcp://HOST:PORT) or over UDP (udp://HOST:PORT). Repeatable.
    #[arg(long = "influx-url", value_name = "URL")]
    pub influx_urls: Vec<String>,

    /// A tag added to every line-protocol line, e.g. --tag site=zrh (an
    /// order's own tag of the same name wins). Repeatable.
    #[arg(long = "tag", value_name = "KEY=VALUE")]
    pub tags: Vec<String>,

    /// Most line-protocol lines queued per destination while it is slow or
    /// down; beyond that the oldest are dropped (and counted).
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000), value_name = "LINES")]
    pub influx_buffer: u64,

    /// Add the tag `ip` to every line: the address probed in the round, so
    /// a host name's new address is a series of its own (an order's own
    /// `ip` tag wins; a round with no address has none).
    #[arg(long)]
    pub influx_ip_tag: bool,
}

/// The checked destinations and global tags.
#[derive(Debug)]
struct LineProtocolPlan {
    destinations: Vec<Destination>,
    tags: BTreeMap<String, String>,
    buffer_lines: usize,
    ip_tag: bool,
}

/// Checks the line-protocol flags. Always a sink, with no destination
/// too: `.stats.json` lists the destinations (none).
pub fn plan(args: &Args, common: &Common<'_>) -> anyhow::Result<Option<Box<dyn Plan>>> {
    let mut destinations = Vec::new();
    if let Some(t) = &args.telegraf {
        destinations.push(
            Destination::parse(&format!("udp://{t}"), |_| None, &[])
                .map_err(|e| anyhow::anyhow!("--telegraf {t:?}: {e}"))?,
        );
    }
    for u in &args.influx_urls {
        destinations.push(
            Destination::parse(u, |k| std::env::var(k).ok(), common.http_ca)
                .map_err(|e| anyhow::anyhow!("--influx-url {u:?}: {e}"))?,
        );
    }
    let mut tags = BTreeMap::new();
    for t in &args.tags {
        let (k, v) = parse_tag(t).map_err(|e| anyhow::anyhow!("--tag {t:?}: {e}"))?;
        tags.insert(k, v);
    }
    Ok(Some(Box::new(LineProtocolPlan {
        destinations,
        tags,
        buffer_lines: usize::try_from(args.influx_buffer).unwrap_or(usize::MAX),
        ip_tag: args.influx_ip_tag,
    })))
}

impl Plan for LineProtocolPlan {
    fn start(self: Box<Self>, env: &Env<'_>) -> Arc<dyn Sink> {
        let outputs = self
            .destinations
            .into_iter()
            .map(|d| {
                let out = Arc::new(Output::new(d, self.buffer_lines));
                let name = format!("line-protocol writer {}", out.destination().label());
                env.tracker.spawn(
                    env.sup
                        .watch(name, output::run(out.clone(), env.cancel.clone())),
                );
                out
            })
            .collect();
        Arc::new(LineProtocol {
            outputs,
            global_tags: self.tags,
            ip_tag: self.ip_tag,
        })
    }
}

/// The sink: every destination, and the tags added to every line.
#[derive(Debug, Default)]
pub struct LineProtocol {
    outputs: Vec<Arc<Output>>,
    global_tags: BTreeMap<String, String>,
    /// `--influx-ip-tag`.
    ip_tag: bool,
}

impl LineProtocol {
    /// The series key of a round's order (`None`: the order sends nothing).
    fn series_key(&self, r: &RoundReport<'_>) -> Option<String> {
        if self.outputs.is_empty() {
            return None;
        }
        let ip = if self.ip_tag { r.probed_ip() } else { None };
        encode::series_key(
            r.order.telegraf.as_deref(),
            &self.global_tags,
            ip.map(|ip| ip.to_string()).as_deref(),
        )
    }
}

fn get(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

impl Sink for LineProtocol {
    fn report(&self, r: &RoundReport<'_>) {
        if let Some(series) = self.series_key(r) {
            let lines = encode::round_lines(&series, r.t, r.step, r.rtts);
            for o in &self.outputs {
                o.push(&lines);
            }
        }
    }

    fn telemetry(&self, s: &mut Sheet) {
        const LINES: &str = "Line-protocol lines per destination: sent, or dropped (queue full, refused, send failure).";
        s.list("line_protocol");
        for o in &self.outputs {
            let dest = o.destination().label();
            s.item("line_protocol", |s| {
                s.json("destination", dest.as_str());
                s.figure("sent", get(&o.stats.sent)).counter_with(
                    "pingmachine_lineproto_lines",
                    LINES,
                    &[("destination", dest.as_str()), ("outcome", "sent")],
                );
                s.figure("dropped", get(&o.stats.dropped)).counter_with(
                    "pingmachine_lineproto_lines",
                    LINES,
                    &[("destination", dest.as_str()), ("outcome", "dropped")],
                );
                s.json("retries", get(&o.stats.retries));
                s.json("queue_high_water", get(&o.stats.high_water));
                s.metric(o.queued() as u64).gauge_with(
                    "pingmachine_lineproto_queued_lines",
                    "Line-protocol lines waiting per destination.",
                    &[("destination", dest.as_str())],
                );
            });
        }
    }

    fn log_totals(&self) {
        for o in &self.outputs {
            let s = &o.stats;
            info!(
                destination = %o.destination().label(),
                sent = get(&s.sent),
                dropped = get(&s.dropped),
                retries = get(&s.retries),
                "line-protocol output totals"
            );
        }
    }
}

/// Why a `--tag` is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TagError {
    /// No `=`.
    #[error("expected KEY=VALUE")]
    NoEquals,
    /// `=VALUE` or `KEY=`.
    #[error("tag key and value must not be empty")]
    Empty,
    /// A control character.
    #[error("tags contain no control characters")]
    Control,
}

/// Parses `KEY=VALUE` of `--tag`.
pub fn parse_tag(s: &str) -> Result<(String, String), TagError> {
    let (k, v) = s.split_once('=').ok_or(TagError::NoEquals)?;
    if k.is_empty() || v.is_empty() {
        return Err(TagError::Empty);
    }
    if s.chars().any(char::is_control) {
        return Err(TagError::Control);
    }
    Ok((k.to_owned(), v.to_owned()))
}
