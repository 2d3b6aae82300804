//! Where results go besides the store: every finished round becomes one
//! [`RoundReport`], handed to [`Sinks::report`], which gives it to each
//! sink. A new sink is a new file here and a line in `report`.
//!
//! * Line protocol (the original's format; also over TCP and HTTP), to Telegraf or InfluxDB:
//!   [`lineproto`] is the encoder (pure functions, table-tested);
//!   [`output`] is one bounded queue and one writer task per destination:
//!   UDP (`--telegraf HOST:PORT`, `udp://`), InfluxDB's HTTP write API (v1
//!   `/write?db=`, v2 `/api/v2/write`), and TCP (`tcp://`, Telegraf's
//!   socket listener). Queuing never waits: each queue holds at most
//!   `--influx-buffer` lines and drops the oldest when full (counted and
//!   logged), so probing and RRD writing never wait on the network and
//!   memory stays bounded while an endpoint is down.
//! * Prometheus ([`prometheus`]): smokeping_prober's series per order, kept
//!   in memory for `/metrics` (`--listen`).

pub mod lineproto;
pub mod output;
pub mod prometheus;

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::order::Order;
use crate::result::Summary;
use crate::supervise::Supervisor;
pub use output::{Destination, Output, OutputStats};
pub use prometheus::Metrics;

/// One order's finished round, as every sink sees it.
#[derive(Debug, Clone, Copy)]
pub struct RoundReport<'a> {
    /// The order (as it was when the round ran).
    pub order: &'a Order,
    /// Its generation.
    pub generation: u64,
    /// The round's RRD time (Unix s).
    pub t: i64,
    /// Step, s.
    pub step: u32,
    /// RTTs in send order; `None` = lost.
    pub rtts: &'a [Option<std::time::Duration>],
    /// Loss and the sorted RTTs.
    pub summary: &'a Summary,
    /// What was probed: an address, `address:port`, a URL, or `unresolved`.
    pub addr: &'a str,
    /// Pings that could not be sent (ICMP; counted as lost too).
    pub send_errors: u32,
}

/// All configured sinks.
#[derive(Debug, Default)]
pub struct Sinks {
    outputs: Vec<Arc<Output>>,
    global_tags: BTreeMap<String, String>,
    metrics: Option<Arc<Metrics>>,
}

impl Sinks {
    /// No destinations: nothing is encoded or sent.
    pub fn none() -> Sinks {
        Sinks::default()
    }

    /// Starts one writer task per destination on `tracker`; they stop (after
    /// a last, bounded flush) when `cancel` fires. A task that panics is
    /// reported to `sup`.
    pub fn start(
        destinations: Vec<Destination>,
        global_tags: BTreeMap<String, String>,
        buffer_lines: usize,
        tracker: &TaskTracker,
        cancel: &CancellationToken,
        sup: &Supervisor,
    ) -> Sinks {
        let outputs = destinations
            .into_iter()
            .map(|d| {
                let out = Arc::new(Output::new(d, buffer_lines));
                let name = format!("line-protocol writer {}", out.destination().label());
                tracker.spawn(sup.watch(name, output::run(out.clone(), cancel.clone())));
                out
            })
            .collect();
        Sinks {
            outputs,
            global_tags,
            metrics: None,
        }
    }

    /// Also keeps every round for Prometheus in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Sinks {
        self.metrics = Some(metrics);
        self
    }

    /// An order's round was abandoned at the next round's start: its
    /// `pings` were sent and their results thrown away. Only Prometheus
    /// counts them (as sent, unanswered); line protocol and the store have
    /// no row for such a round, as the original.
    pub fn abandoned(&self, order: &Order, pings: u32) {
        if let Some(m) = &self.metrics {
            m.abandoned(order, pings);
        }
    }

    /// Hands one finished round to every sink; never waits.
    pub fn report(&self, r: &RoundReport<'_>) {
        if let Some(series) = self.series_key(r.order) {
            self.push(&lineproto::round_lines(&series, r.t, r.step, r.rtts));
        }
        if let Some(m) = &self.metrics {
            m.record(r);
        }
    }

    /// True when at least one destination is configured.
    pub fn enabled(&self) -> bool {
        !self.outputs.is_empty()
    }

    /// The series key of an order (`None`: the order sends nothing).
    pub fn series_key(&self, order: &Order) -> Option<String> {
        if !self.enabled() {
            return None;
        }
        lineproto::series_key(order.telegraf.as_deref(), &self.global_tags)
    }

    /// Queues `lines` on every destination; never waits.
    pub fn push(&self, lines: &[String]) {
        for o in &self.outputs {
            o.push(lines);
        }
    }

    /// The destinations (for stats).
    pub fn outputs(&self) -> &[Arc<Output>] {
        &self.outputs
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
