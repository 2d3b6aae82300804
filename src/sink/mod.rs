//! Where results go besides the store. Every finished round becomes one
//! [`RoundReport`], handed to [`Sinks::report`], which gives it to each
//! [`Sink`] in turn; no sink ever waits, and none depends on the files
//! being written.
//!
//! * [`lineproto`] — InfluxDB line protocol (the original's format) to
//!   Telegraf or InfluxDB over UDP, HTTP or TCP, each destination with a
//!   bounded queue that drops its oldest lines when full (counted).
//! * [`prometheus`] — smokeping_prober's series per order, kept in memory
//!   for `/metrics` (with `--listen`).
//! * [`remote_write`] — each round's summary pushed to Prometheus-compatible
//!   stores (remote write 1.0), each destination with a bounded queue.
//!
//! Adding an output is one new module here that implements [`Sink`] and
//! has a `plan` function, plus its line in [`plan`] and its flags' field in
//! [`SinkArgs`] (ARCHITECTURE.md, "Adding a sink").

pub mod lineproto;
pub mod prometheus;
pub mod remote_write;

use std::fmt;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::order::Order;
use crate::result::Summary;
use crate::supervise::Supervisor;
use crate::telemetry::{Exposition, Sheet};

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
    /// TTL (IPv4) or hop limit (IPv6) of the round's last reply (ICMP).
    pub reply_ttl: Option<u8>,
}

impl RoundReport<'_> {
    /// The IP address probed (of `addr`: an address or `address:port`);
    /// `None` for a URL, a name or `unresolved`.
    pub fn probed_ip(&self) -> Option<std::net::IpAddr> {
        self.addr.parse::<std::net::IpAddr>().ok().or_else(|| {
            self.addr
                .parse::<std::net::SocketAddr>()
                .ok()
                .map(|sa| sa.ip())
        })
    }
}

/// An output of finished rounds.
pub trait Sink: Send + Sync + fmt::Debug {
    /// Takes one finished round. Never waits: a sink that sends queues,
    /// bounded, and counts what it drops.
    fn report(&self, r: &RoundReport<'_>);

    /// An order's round was abandoned at the next round's start: its
    /// `pings` were sent and their results thrown away. Line protocol and
    /// the store have no row for such a round, as the original.
    fn abandoned(&self, _order: &Order, _pings: u32) {}

    /// Its own figures for `.stats.json` and `/metrics`.
    fn telemetry(&self, _sheet: &mut Sheet) {}

    /// Its series on `/metrics` besides its own figures (as of `now`,
    /// Unix s).
    fn expose(&self, _out: &mut Exposition, _now: i64) {}

    /// How often it wants the whole of `/metrics` ([`Sink::scraped`]);
    /// `None`: never.
    fn scrape_interval(&self) -> Option<std::time::Duration> {
        None
    }

    /// The whole of `/metrics` (the text format) as of `at_ms` (Unix ms),
    /// read on a blocking thread every [`Sink::scrape_interval`]. Never
    /// waits.
    fn scraped(&self, _text: &str, _at_ms: i64) {}

    /// At shutdown, after its tasks stopped: its totals in the log.
    fn log_totals(&self) {}

    /// What it keeps of an order's round at RRD time `t` that the files
    /// do not hold (for the web page and its JSON), if it keeps that
    /// round: the latest, or the one before (whose `last_result` may be
    /// the one on disk while the latest is being written).
    fn round_spread(&self, _id: &crate::order::OrderId, _t: i64) -> Option<RoundSpread> {
        None
    }
}

/// Statistics of a round from its RTTs in send order, which `last_result`
/// and `main.rrd` (sorted) cannot give.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RoundSpread {
    /// [`crate::result::jitter`], seconds.
    pub jitter: Option<f64>,
    /// Standard deviation of the answered RTTs, seconds.
    pub stddev: Option<f64>,
}

/// Every sink's command-line flags, flattened into the daemon's.
#[derive(Debug, Clone, clap::Args)]
#[group(skip)]
pub struct SinkArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub line_protocol: lineproto::Args,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub prometheus: prometheus::Args,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub remote_write: remote_write::Args,
}

/// What sinks read besides their own flags.
#[derive(Debug, Clone, Copy)]
pub struct Common<'a> {
    /// PEM certificates of `--http-ca-file`.
    pub http_ca: &'a [Vec<u8>],
    /// True with `--listen` (`/metrics` is served), or when `/metrics` is
    /// read for remote write (`--remote-write-series full`).
    pub listen: bool,
}

/// Where a sink's tasks run and how they stop.
#[derive(Debug, Clone, Copy)]
pub struct Env<'a> {
    /// Tasks are spawned here; the daemon waits for them at shutdown.
    pub tracker: &'a TaskTracker,
    /// Fires at shutdown: tasks flush (bounded) and stop.
    pub cancel: &'a CancellationToken,
    /// A task that panics is reported here.
    pub sup: &'a Supervisor,
}

/// A sink's checked settings: checked at start-up, before anything
/// runs, so that a bad flag is an error on the terminal; started inside
/// the runtime.
pub trait Plan: Send + fmt::Debug {
    /// Starts the sink (its tasks, if any).
    fn start(self: Box<Self>, env: &Env<'_>) -> Arc<dyn Sink>;
}

/// Every configured sink's plan, in the order they see each round.
pub fn plan(args: &SinkArgs, common: &Common<'_>) -> anyhow::Result<Vec<Box<dyn Plan>>> {
    let mut plans: Vec<Box<dyn Plan>> = Vec::new();
    plans.extend(lineproto::plan(&args.line_protocol, common)?);
    // `/metrics` is read by remote write's `full` even without `--listen`.
    let metrics_read = Common {
        listen: common.listen || args.remote_write.reads_metrics(),
        ..*common
    };
    plans.extend(prometheus::plan(&args.prometheus, &metrics_read)?);
    plans.extend(remote_write::plan(
        &args.remote_write,
        &args.line_protocol.tags,
        common,
    )?);
    Ok(plans)
}

/// All configured sinks.
#[derive(Debug, Default)]
pub struct Sinks {
    sinks: Vec<Arc<dyn Sink>>,
}

impl Sinks {
    /// No sinks: rounds go nowhere but the store.
    pub fn none() -> Sinks {
        Sinks::default()
    }

    /// Starts every planned sink.
    pub fn start(plans: Vec<Box<dyn Plan>>, env: &Env<'_>) -> Sinks {
        Sinks {
            sinks: plans.into_iter().map(|p| p.start(env)).collect(),
        }
    }

    /// Hands one finished round to every sink; never waits.
    pub fn report(&self, r: &RoundReport<'_>) {
        for s in &self.sinks {
            s.report(r);
        }
    }

    /// An order's round was abandoned (see [`Sink::abandoned`]).
    pub fn abandoned(&self, order: &Order, pings: u32) {
        for s in &self.sinks {
            s.abandoned(order, pings);
        }
    }

    /// Every sink's figures.
    pub fn telemetry(&self, sheet: &mut Sheet) {
        for s in &self.sinks {
            s.telemetry(sheet);
        }
    }

    /// Every sink's series on `/metrics`.
    pub fn expose(&self, out: &mut Exposition, now: i64) {
        for s in &self.sinks {
            s.expose(out, now);
        }
    }

    /// The shortest interval at which a sink wants `/metrics`.
    pub fn scrape_interval(&self) -> Option<std::time::Duration> {
        self.sinks.iter().filter_map(|s| s.scrape_interval()).min()
    }

    /// Hands `/metrics` to every sink that wants it.
    pub fn scraped(&self, text: &str, at_ms: i64) {
        for s in &self.sinks {
            if s.scrape_interval().is_some() {
                s.scraped(text, at_ms);
            }
        }
    }

    /// Every sink's totals in the log (at shutdown).
    pub fn log_totals(&self) {
        for s in &self.sinks {
            s.log_totals();
        }
    }

    /// An order's round at RRD time `t` as the first sink that keeps it
    /// has it.
    pub fn round_spread(&self, id: &crate::order::OrderId, t: i64) -> Option<RoundSpread> {
        self.sinks.iter().find_map(|s| s.round_spread(id, t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A sink of the test: counts what it is given.
    #[derive(Debug, Default)]
    struct Counting {
        rounds: AtomicU32,
        abandoned: AtomicU32,
    }

    impl Sink for Counting {
        fn report(&self, _r: &RoundReport<'_>) {
            self.rounds.fetch_add(1, Ordering::Relaxed);
        }
        fn abandoned(&self, _order: &Order, pings: u32) {
            self.abandoned.fetch_add(pings, Ordering::Relaxed);
        }
        fn telemetry(&self, sheet: &mut Sheet) {
            sheet
                .figure("counting", u64::from(self.rounds.load(Ordering::Relaxed)))
                .counter("test_counting", "Rounds counted.");
        }
    }

    #[derive(Debug)]
    struct CountingPlan(Arc<Counting>);

    impl Plan for CountingPlan {
        fn start(self: Box<Self>, _env: &Env<'_>) -> Arc<dyn Sink> {
            self.0
        }
    }

    #[tokio::test]
    async fn every_sink_sees_every_round_and_reports_its_figures() {
        let a = Arc::new(Counting::default());
        let b = Arc::new(Counting::default());
        let (tracker, cancel, sup) = (
            TaskTracker::new(),
            CancellationToken::new(),
            Supervisor::new(),
        );
        let sinks = Sinks::start(
            vec![
                Box::new(CountingPlan(a.clone())),
                Box::new(CountingPlan(b.clone())),
            ],
            &Env {
                tracker: &tracker,
                cancel: &cancel,
                sup: &sup,
            },
        );
        let order = crate::order::parse_order(
            std::path::Path::new("x"),
            &crate::order::OrderId::new("t1").unwrap(),
            b"user: u\nstep: 60\npings: 2\nprobe: fping\nfping: {host: 127.0.0.1}\n",
        )
        .unwrap()
        .order;
        let summary = Summary::of(&crate::result::RoundOutcome {
            rtts: vec![None, None],
        });
        let r = RoundReport {
            order: &order,
            generation: 1,
            t: 60,
            step: 60,
            rtts: &[None, None],
            summary: &summary,
            addr: "127.0.0.1",
            send_errors: 0,
            reply_ttl: None,
        };
        sinks.report(&r);
        sinks.report(&r);
        sinks.abandoned(&order, 2);
        for s in [&a, &b] {
            assert_eq!(s.rounds.load(Ordering::Relaxed), 2);
            assert_eq!(s.abandoned.load(Ordering::Relaxed), 2);
        }
        let mut sheet = Sheet::new();
        sinks.telemetry(&mut sheet);
        let mut out = Exposition::new(false);
        sheet.expose(&mut out);
        assert_eq!(out.finish().matches("test_counting_total 2\n").count(), 2);
    }
}
