//! Daemon counters, written as JSON to `BASEDIR/.stats.json` every
//! [`INTERVAL`] and at exit (atomically: temp file + rename), for operators'
//! monitoring and for the benchmark tool.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use probes::icmp::IcmpEngine;
use serde::Serialize;

use crate::counters::{JobStats, LATENESS_BUCKETS_S};
use crate::sink::Sinks;
use crate::store::StoreStats;

/// How often the file is rewritten by default (`--stats-interval`).
pub const INTERVAL: Duration = Duration::from_secs(10);
/// File name below the base directory.
pub const FILE: &str = ".stats.json";

/// What the daemon was started with that readers of the file need
/// (`pingmachine healthcheck`).
#[derive(Debug, Clone, Default)]
pub struct Started {
    /// Seconds between rewrites of the file (`--stats-interval`).
    pub stats_interval_s: u64,
    /// The address of `/-/healthy` and `/metrics` (`--listen`), if any.
    pub listen: Option<std::net::SocketAddr>,
    /// The rrdcached client (`--rrdcached`), if any.
    pub rrdcached: Option<std::sync::Arc<crate::store::rrdcached::RrdCached>>,
}

#[derive(Serialize)]
struct Snapshot {
    time: i64,
    pid: u32,
    stats_interval_s: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    listen: Option<String>,
    orders: u64,
    jobs: u64,
    initial_scan_ms: u64,
    rounds: u64,
    rounds_abandoned: u64,
    rounds_skipped: u64,
    rescans: u64,
    dirs_listed: u64,
    files_checked: u64,
    round_starts: u64,
    round_start_late_ms_sum: f64,
    round_start_late_ms_avg: f64,
    round_start_late_ms_max: f64,
    /// Upper bounds (s) of `round_start_late_buckets`, whose last count is
    /// of later starts.
    round_start_late_bounds_s: &'static [f64],
    /// Round starts by lateness (not cumulative).
    round_start_late_buckets: Vec<u64>,
    icmp: IcmpSnapshot,
    store: StoreSnapshot,
    line_protocol: Vec<SinkSnapshot>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rrdcached: Option<CachedSnapshot>,
    log: LogSnapshot,
}

#[derive(Serialize)]
struct CachedSnapshot {
    address: String,
    connected: bool,
    /// Updates rrdcached took.
    sent: u64,
    /// Updates it refused.
    refused: u64,
    /// Updates dropped (queue full, file moved while it was down).
    dropped: u64,
    queued: u64,
    queue_high_water: u64,
    batches: u64,
    /// Files flushed and forgotten before a move.
    flushes: u64,
    creates: u64,
    connects: u64,
    connect_failures: u64,
}

#[derive(Serialize)]
struct LogSnapshot {
    /// Log lines written.
    lines_written: u64,
    /// Log lines that could not be written (queue full, output failing).
    lines_dropped: u64,
}

#[derive(Serialize)]
struct IcmpSnapshot {
    sent: u64,
    send_errors: u64,
    received: u64,
    late: u64,
    unmatched: u64,
    foreign: u64,
    icmp_errors: u64,
    rounds_active: u64,
    pending: u64,
    tx_stamped: u64,
    tx_fallbacks: u64,
    rx_fallbacks: u64,
    /// Replies the kernel dropped on our sockets (receive buffer full).
    rx_dropped: u64,
}

#[derive(Serialize)]
struct StoreSnapshot {
    rrd_updates: u64,
    rrd_creates: u64,
    prepared: u64,
    last_results: u64,
    stale_rounds: u64,
    archived: u64,
    restored: u64,
    errors: u64,
    queue_high_water: u64,
    write_delay_ms_max: f64,
    late_writes: u64,
    /// `last_result` versions a newer round replaced before they were
    /// written (storage behind; the file shows the latest).
    superseded: u64,
    /// RRD updates dropped because an order had `--rrd-backlog` unwritten.
    rrd_dropped: u64,
    /// Rounds waiting to be written now, and entries (orders, commands).
    waiting_rounds: u64,
    waiting_entries: u64,
    waiting_high_water: u64,
    /// Rounds not written when the writers had to stop.
    unwritten_at_stop: u64,
}

#[derive(Serialize)]
struct SinkSnapshot {
    destination: String,
    sent: u64,
    dropped: u64,
    retries: u64,
    queue_high_water: u64,
}

fn get(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

/// The JSON text of the current counters.
pub fn snapshot(
    started: &Started,
    jobs: &JobStats,
    icmp: &IcmpEngine,
    store: &StoreStats,
    sinks: &Sinks,
) -> String {
    let starts = get(&jobs.starts).max(1);
    let s = Snapshot {
        time: crate::clock::unix_s(),
        pid: std::process::id(),
        stats_interval_s: started.stats_interval_s,
        listen: started.listen.map(|a| a.to_string()),
        orders: get(&jobs.orders),
        jobs: get(&jobs.jobs),
        initial_scan_ms: get(&jobs.initial_scan_ms),
        rounds: get(&jobs.rounds),
        rounds_abandoned: get(&jobs.rounds_abandoned),
        rounds_skipped: get(&jobs.rounds_skipped),
        rescans: get(&jobs.rescans),
        dirs_listed: get(&jobs.dirs_listed),
        files_checked: get(&jobs.files_checked),
        round_starts: get(&jobs.starts),
        round_start_late_ms_sum: get(&jobs.start_late_us_sum) as f64 / 1000.0,
        round_start_late_ms_avg: get(&jobs.start_late_us_sum) as f64 / starts as f64 / 1000.0,
        round_start_late_ms_max: get(&jobs.start_late_us_max) as f64 / 1000.0,
        round_start_late_bounds_s: &LATENESS_BUCKETS_S,
        round_start_late_buckets: jobs.start_late_buckets.iter().map(get).collect(),
        icmp: {
            let e = icmp.stats();
            IcmpSnapshot {
                sent: e.sent,
                send_errors: e.send_errors,
                received: e.received,
                late: e.late,
                unmatched: e.unmatched,
                foreign: e.foreign,
                icmp_errors: e.icmp_errors,
                rounds_active: e.rounds_active,
                pending: e.pending,
                tx_stamped: e.tx_stamped,
                tx_fallbacks: e.tx_fallbacks,
                rx_fallbacks: e.rx_fallbacks,
                rx_dropped: e.rx_dropped,
            }
        },
        store: StoreSnapshot {
            rrd_updates: get(&store.rrd_updates),
            rrd_creates: get(&store.rrd_creates),
            prepared: get(&store.prepared),
            last_results: get(&store.last_results),
            stale_rounds: get(&store.stale_rounds),
            archived: get(&store.archived),
            restored: get(&store.restored),
            errors: get(&store.errors),
            queue_high_water: get(&store.queue_high_water),
            write_delay_ms_max: get(&store.write_delay_us_max) as f64 / 1000.0,
            late_writes: get(&store.late_writes),
            superseded: get(&store.superseded),
            rrd_dropped: get(&store.rrd_dropped),
            waiting_rounds: get(&store.waiting_rounds),
            waiting_entries: get(&store.waiting_entries),
            waiting_high_water: get(&store.waiting_high_water),
            unwritten_at_stop: get(&store.unwritten_at_stop),
        },
        line_protocol: sinks
            .outputs()
            .iter()
            .map(|o| SinkSnapshot {
                destination: o.destination().label(),
                sent: get(&o.stats.sent),
                dropped: get(&o.stats.dropped),
                retries: get(&o.stats.retries),
                queue_high_water: get(&o.stats.high_water),
            })
            .collect(),
        rrdcached: started.rrdcached.as_ref().map(|c| {
            let st = c.stats();
            CachedSnapshot {
                address: c.addr().to_string(),
                connected: get(&st.connected) == 1,
                sent: get(&st.sent),
                refused: get(&st.refused),
                dropped: get(&st.dropped),
                queued: get(&st.queued),
                queue_high_water: get(&st.queue_high_water),
                batches: get(&st.batches),
                flushes: get(&st.flushes),
                creates: get(&st.creates),
                connects: get(&st.connects),
                connect_failures: get(&st.connect_failures),
            }
        }),
        log: LogSnapshot {
            lines_written: crate::logging::written(),
            lines_dropped: crate::logging::dropped(),
        },
    };
    serde_json::to_string_pretty(&s).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// Writes `text` to `base/.stats.json` atomically. Blocking: call it off
/// the async workers (the disk may be slow).
pub fn write(base: &Path, text: &str) -> std::io::Result<()> {
    let tmp = base.join(".stats.json.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, base.join(FILE))
}
