//! Daemon counters, written as JSON to `BASEDIR/.stats.json` every
//! [`INTERVAL`] and at exit (atomically: temp file + rename), for operators'
//! monitoring and for the benchmark tool.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use probes::icmp::IcmpEngine;
use serde::Serialize;

use crate::sink::Sinks;
use crate::store::StoreStats;

/// How often the file is rewritten by default (`--stats-interval`).
pub const INTERVAL: Duration = Duration::from_secs(10);
/// File name below the base directory.
pub const FILE: &str = ".stats.json";

/// Counters of jobs and the registry.
#[derive(Debug, Default)]
pub struct JobStats {
    /// Rounds completed (results delivered).
    pub rounds: AtomicU64,
    /// Rounds abandoned at the next round's start.
    pub rounds_abandoned: AtomicU64,
    /// Rounds not begun because they started too late to end before the
    /// next one (the job waited for the next start instead).
    pub rounds_skipped: AtomicU64,
    /// Round starts, and how late they were (µs, sum and max).
    pub starts: AtomicU64,
    /// Sum of start lateness, µs.
    pub start_late_us_sum: AtomicU64,
    /// Largest start lateness, µs.
    pub start_late_us_max: AtomicU64,
    /// Active orders.
    pub orders: AtomicU64,
    /// Running jobs.
    pub jobs: AtomicU64,
    /// Milliseconds from start-up until every order of the first scan was
    /// scheduled (0 until then).
    pub initial_scan_ms: AtomicU64,
    /// Round starts by lateness: `[i]` counts those at most
    /// [`LATENESS_BUCKETS_S`]`[i]` late (not cumulative); the last, later.
    pub start_late_buckets: [AtomicU64; LATENESS_BUCKETS_S.len() + 1],
    /// Full rescans of `orders/` (periodic, SIGHUP, after lost hints).
    pub rescans: AtomicU64,
    /// Times the file watcher's hint queue overflowed.
    pub watcher_overflows: AtomicU64,
    /// Directories listed again because their mtime changed.
    pub dirs_listed: AtomicU64,
    /// Order files looked at by the paced pass.
    pub files_checked: AtomicU64,
}

/// Upper bounds of the round start lateness histogram, seconds.
pub const LATENESS_BUCKETS_S: [f64; 12] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 5.0,
];

impl JobStats {
    /// Records a round start `late_us` after its scheduled time.
    pub fn round_started(&self, late_us: u64) {
        self.starts.fetch_add(1, Ordering::Relaxed);
        self.start_late_us_sum.fetch_add(late_us, Ordering::Relaxed);
        self.start_late_us_max.fetch_max(late_us, Ordering::Relaxed);
        let late_s = late_us as f64 / 1e6;
        let i = LATENESS_BUCKETS_S.partition_point(|b| *b < late_s);
        self.start_late_buckets[i].fetch_add(1, Ordering::Relaxed);
    }
}

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
