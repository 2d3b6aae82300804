//! Line-protocol output (SPEC A8, B6): results sent to Telegraf or InfluxDB.
//!
//! * [`lineproto`] — the encoder (pure functions, table-tested).
//! * [`output`] — one bounded queue and one writer task per destination:
//!   UDP (`--telegraf HOST:PORT`, `udp://`), InfluxDB's HTTP write API (v1
//!   `/write?db=`, v2 `/api/v2/write`), and TCP (`tcp://`, Telegraf's
//!   socket listener).
//!
//! Jobs hand lines over with [`Sinks::push`], which never waits: each queue
//! holds at most `--influx-buffer` lines and drops the oldest when full
//! (counted and logged), so probing and RRD writing never wait on the
//! network and memory stays bounded while an endpoint is down.

pub mod lineproto;
pub mod output;

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::order::Order;
use crate::supervise::Supervisor;
pub use output::{Destination, Output, OutputStats};

/// All configured destinations.
#[derive(Debug, Default)]
pub struct Sinks {
    outputs: Vec<Arc<Output>>,
    global_tags: BTreeMap<String, String>,
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
        lineproto::series_key(order.telegraf.as_ref(), &self.global_tags)
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
