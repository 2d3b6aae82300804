//! The store's counters, and their figures in `.stats.json` (`store`) and
//! on `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::telemetry::Sheet;

/// Counters of the writers.
#[derive(Debug, Default)]
pub struct StoreStats {
    /// Successful RRD updates.
    pub rrd_updates: AtomicU64,
    /// RRD files created.
    pub rrd_creates: AtomicU64,
    /// Orders prepared (output directory ready), successfully or not.
    pub prepared: AtomicU64,
    /// `last_result` files written.
    pub last_results: AtomicU64,
    /// Round results dropped because their order had ended or changed.
    pub stale_rounds: AtomicU64,
    /// Output directories archived.
    pub archived: AtomicU64,
    /// Archives restored.
    pub restored: AtomicU64,
    /// Failed writes of any kind.
    pub errors: AtomicU64,
    /// Largest number of entries (orders with unwritten rounds, and
    /// commands) waiting in one writer's queue.
    pub queue_high_water: AtomicU64,
    /// Longest time from a round's hand-over to its files being written, µs.
    pub write_delay_us_max: AtomicU64,
    /// Rounds written more than one step after their hand-over.
    pub late_writes: AtomicU64,
    /// `last_result` versions replaced by a newer round of the order
    /// before they were written (storage behind; not lost: the file shows
    /// the latest round).
    pub superseded: AtomicU64,
    /// RRD updates dropped, oldest first, because an order already had
    /// `--rrd-backlog` unwritten ones (a gap in its RRD).
    pub rrd_dropped: AtomicU64,
    /// Rounds waiting to be written now, over all writers (an order's RRD
    /// updates each, or its one `last_result`).
    pub waiting_rounds: AtomicU64,
    /// Entries waiting now: orders with unwritten rounds, and commands.
    pub waiting_entries: AtomicU64,
    /// Largest number of rounds waiting to be written at once, over all
    /// writers.
    pub waiting_high_water: AtomicU64,
    /// Rounds still unwritten when the writers had to stop (shutdown
    /// deadline passed).
    pub unwritten_at_stop: AtomicU64,
}

fn get(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

impl StoreStats {
    /// Its figures: the object `store` of `.stats.json`, and its series.
    pub fn telemetry(&self, s: &mut Sheet) {
        s.object("store", |s| {
            s.figure("rrd_updates", get(&self.rrd_updates))
                .counter("pingmachine_rrd_updates", "Successful RRD updates.");
            s.json("rrd_creates", get(&self.rrd_creates));
            s.json("prepared", get(&self.prepared));
            s.figure("last_results", get(&self.last_results))
                .counter("pingmachine_last_result_writes", "last_result files written.");
            s.json("stale_rounds", get(&self.stale_rounds));
            s.json("archived", get(&self.archived));
            s.json("restored", get(&self.restored));
            s.figure("errors", get(&self.errors)).counter(
                "pingmachine_write_errors",
                "Failed writes of main.rrd, last_result or archive moves.",
            );
            s.figure("queue_high_water", get(&self.queue_high_water)).gauge(
                "pingmachine_writer_queue_high_water",
                "Most entries (orders with unwritten rounds, and commands) that waited in one store writer's queue since start.",
            );
            s.json(
                "write_delay_ms_max",
                get(&self.write_delay_us_max) as f64 / 1000.0,
            );
            s.json("late_writes", get(&self.late_writes));
            s.figure("superseded", get(&self.superseded)).counter(
                "pingmachine_last_result_superseded",
                "last_result versions replaced by a newer round of the order before storage wrote them (not lost: the file shows the latest round).",
            );
            s.figure("rrd_dropped", get(&self.rrd_dropped)).counter(
                "pingmachine_rrd_updates_dropped",
                "main.rrd updates dropped, oldest first, because their order already had --rrd-backlog unwritten ones (gaps in those RRDs).",
            );
            s.figure("waiting_rounds", get(&self.waiting_rounds)).gauge(
                "pingmachine_store_waiting_rounds",
                "Rounds measured and not yet written (main.rrd updates, or an order's last_result): storage is behind by this much.",
            );
            s.json("waiting_entries", get(&self.waiting_entries));
            s.json("waiting_high_water", get(&self.waiting_high_water));
            s.json("unwritten_at_stop", get(&self.unwritten_at_stop));
        });
    }
}
