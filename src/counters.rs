//! The daemon's own counters of jobs and the registry: rounds, their
//! lateness, orders, jobs and the safety net. A leaf: the registry and the
//! jobs count into one [`JobStats`] the daemon owns; `.stats.json` and
//! `/metrics` read it.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::telemetry::Sheet;

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

fn get(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

impl JobStats {
    /// Its figures: the top-level keys of `.stats.json` from `orders` to
    /// `round_start_late_buckets`, and their series.
    pub fn telemetry(&self, s: &mut Sheet) {
        s.figure("orders", get(&self.orders)).gauge_with(
            "pingmachine_orders",
            "Orders by state: active (valid and probed), rejected (in rejected/), archived (output in archive/).",
            &[("state", "active")],
        );
        s.figure("jobs", get(&self.jobs))
            .gauge("pingmachine_jobs", "Running probing jobs.");
        let scan_ms = get(&self.initial_scan_ms);
        s.json("initial_scan_ms", scan_ms);
        s.metric(scan_ms > 0).gauge(
            "pingmachine_ready",
            "1 once the first scan of orders/ is done and its jobs run.",
        );
        s.figure("rounds", get(&self.rounds))
            .counter("pingmachine_rounds", "Rounds whose results were delivered.");
        s.figure("rounds_abandoned", get(&self.rounds_abandoned))
            .counter(
                "pingmachine_rounds_abandoned",
                "Rounds still running at the next round's start, thrown away.",
            );
        s.figure("rounds_skipped", get(&self.rounds_skipped))
            .counter(
                "pingmachine_rounds_skipped",
                "Rounds not begun because they started too late to end before the next round.",
            );
        s.figure("rescans", get(&self.rescans)).counter(
            "pingmachine_rescans",
            "Full rescans of orders/ (every 30 s, on SIGHUP, after lost watcher hints).",
        );
        s.metric(get(&self.watcher_overflows)).counter(
            "pingmachine_watcher_overflows",
            "Times the file watcher's hint queue overflowed (a rescan follows).",
        );
        s.json("dirs_listed", get(&self.dirs_listed));
        s.json("files_checked", get(&self.files_checked));
        let starts = get(&self.starts);
        let sum_us = get(&self.start_late_us_sum) as f64;
        s.json("round_starts", starts);
        s.json("round_start_late_ms_sum", sum_us / 1000.0);
        s.json(
            "round_start_late_ms_avg",
            sum_us / starts.max(1) as f64 / 1000.0,
        );
        s.json(
            "round_start_late_ms_max",
            get(&self.start_late_us_max) as f64 / 1000.0,
        );
        // Upper bounds (s) of the buckets; the last count is of later
        // starts. Counts are per bucket, not cumulative.
        let buckets: Vec<u64> = self.start_late_buckets.iter().map(get).collect();
        s.json("round_start_late_bounds_s", LATENESS_BUCKETS_S.to_vec());
        s.json("round_start_late_buckets", buckets.clone());
        s.histogram(
            "pingmachine_round_start_lateness_seconds",
            "How late rounds started after their scheduled time.",
            &LATENESS_BUCKETS_S,
            buckets,
            sum_us / 1e6,
        );
    }
}
