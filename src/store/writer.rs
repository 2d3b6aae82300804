//! Writer threads: the only place that touches `main.rrd` and `last_result`.
//!
//! librrd is blocking, so it runs on dedicated OS threads, never on the async
//! workers. Orders are sharded over the threads by a hash of their id, so one
//! file always has one writer and updates to it stay in order. Channels are
//! bounded: when the disk is slow, rounds wait for room instead of piling up
//! in memory. Dropping every [`StoreHandle`] lets the threads drain their
//! queues and exit, which is how shutdown finishes the last writes.

use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::{last_result, rrd};
use crate::order::OrderId;
use crate::result::Summary;
use crate::schedule;

/// Queue length of each writer thread.
const QUEUE: usize = 4096;

/// Name of the RRD file in an order's output directory.
pub const RRD_FILE: &str = "main.rrd";

/// Work for a writer thread.
#[derive(Debug)]
pub enum StoreCmd {
    /// An order became active: create its output directory and, when it
    /// keeps an RRD, a `main.rrd` if none exists.
    Prepare {
        /// Order id (for logs).
        id: OrderId,
        /// `output/<id>/`.
        dir: PathBuf,
        /// Step of the order.
        step: u32,
        /// Pings of the order.
        pings: u32,
        /// Whether `main.rrd` is kept.
        rrd: bool,
    },
    /// The result of one round of one order.
    Round {
        /// Order id (for logs).
        id: OrderId,
        /// `output/<id>/`.
        dir: PathBuf,
        /// Step of the order.
        step: u32,
        /// Pings of the order.
        pings: u32,
        /// Whether `main.rrd` is kept.
        rrd: bool,
        /// RRD timestamp of the round.
        t: i64,
        /// The round's statistics.
        summary: Summary,
    },
}

impl StoreCmd {
    fn id(&self) -> &OrderId {
        match self {
            StoreCmd::Prepare { id, .. } | StoreCmd::Round { id, .. } => id,
        }
    }
}

/// Counters of the writers.
#[derive(Debug, Default)]
pub struct StoreStats {
    /// Successful RRD updates.
    pub rrd_updates: AtomicU64,
    /// RRD files created.
    pub rrd_creates: AtomicU64,
    /// `last_result` files written.
    pub last_results: AtomicU64,
    /// Failed writes of any kind.
    pub errors: AtomicU64,
    /// Largest number of commands waiting in one queue.
    pub queue_high_water: AtomicU64,
}

/// Sending side of the writer threads; cheap to clone.
#[derive(Debug, Clone)]
pub struct StoreHandle {
    shards: Arc<Vec<mpsc::Sender<StoreCmd>>>,
    stats: Arc<StoreStats>,
}

/// The running writer threads.
#[derive(Debug)]
pub struct Writers {
    threads: Vec<JoinHandle<()>>,
}

impl Writers {
    /// Starts `n` (≥ 1) writer threads.
    pub fn start(n: usize) -> std::io::Result<(StoreHandle, Writers)> {
        let stats = Arc::new(StoreStats::default());
        let mut shards = Vec::new();
        let mut threads = Vec::new();
        for i in 0..n.max(1) {
            let (tx, rx) = mpsc::channel(QUEUE);
            let stats = stats.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("store-writer-{i}"))
                    .spawn(move || writer_loop(rx, &stats))?,
            );
            shards.push(tx);
        }
        Ok((
            StoreHandle {
                shards: Arc::new(shards),
                stats,
            },
            Writers { threads },
        ))
    }

    /// Waits for the threads to drain their queues and exit; call after
    /// every [`StoreHandle`] is dropped.
    pub fn join(self) {
        for t in self.threads {
            if t.join().is_err() {
                warn!("a store writer thread panicked");
            }
        }
    }
}

impl StoreHandle {
    /// Queues `cmd` on the writer of its order, waiting for room.
    pub async fn send(&self, cmd: StoreCmd) {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        cmd.id().hash(&mut h);
        let shard = &self.shards[(h.finish() % self.shards.len() as u64) as usize];
        if shard.send(cmd).await.is_err() {
            warn!("store writer is gone; result dropped");
            return;
        }
        let queued = (shard.max_capacity() - shard.capacity()) as u64;
        self.stats
            .queue_high_water
            .fetch_max(queued, Ordering::Relaxed);
    }

    /// The writers' counters.
    pub fn stats(&self) -> &StoreStats {
        &self.stats
    }
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn writer_loop(mut rx: mpsc::Receiver<StoreCmd>, stats: &StoreStats) {
    while let Some(cmd) = rx.blocking_recv() {
        match cmd {
            StoreCmd::Prepare {
                id,
                dir,
                step,
                pings,
                rrd,
            } => {
                if let Err(e) = std::fs::create_dir_all(&dir) {
                    stats.errors.fetch_add(1, Ordering::Relaxed);
                    warn!(order = %id, dir = %dir.display(), error = %e, "cannot create output directory");
                    continue;
                }
                if rrd {
                    ensure_rrd(
                        &id,
                        &dir,
                        step,
                        pings,
                        schedule::rrd_create_start(now_unix(), step),
                        stats,
                    );
                }
            }
            StoreCmd::Round {
                id,
                dir,
                step,
                pings,
                rrd,
                t,
                summary,
            } => {
                if let Err(e) = std::fs::create_dir_all(&dir) {
                    stats.errors.fetch_add(1, Ordering::Relaxed);
                    warn!(order = %id, dir = %dir.display(), error = %e, "cannot create output directory");
                    continue;
                }
                if rrd && ensure_rrd(&id, &dir, step, pings, t - i64::from(step), stats) {
                    let values = rrd::update_values(&summary);
                    match rrd::update_rrd(&dir.join(RRD_FILE), t, &values) {
                        Ok(()) => {
                            stats.rrd_updates.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            stats.errors.fetch_add(1, Ordering::Relaxed);
                            warn!(order = %id, update = %rrd::update_string(t, &values), error = %e, "RRD update failed");
                        }
                    }
                }
                let text = last_result::format(t, now_unix(), step, pings, &summary);
                match last_result::write_atomic(&dir, &text) {
                    Ok(()) => {
                        stats.last_results.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        stats.errors.fetch_add(1, Ordering::Relaxed);
                        warn!(order = %id, dir = %dir.display(), error = %e, "cannot write last_result");
                    }
                }
            }
        }
    }
}

/// Creates `dir/main.rrd` with `start` unless it exists; true when it exists now.
fn ensure_rrd(
    id: &OrderId,
    dir: &std::path::Path,
    step: u32,
    pings: u32,
    start: i64,
    stats: &StoreStats,
) -> bool {
    let path = dir.join(RRD_FILE);
    if path.exists() {
        return true;
    }
    match rrd::create_rrd(&path, step, pings, start) {
        Ok(()) => {
            stats.rrd_creates.fetch_add(1, Ordering::Relaxed);
            debug!(order = %id, path = %path.display(), step, pings, start, "created RRD");
            true
        }
        Err(e) => {
            stats.errors.fetch_add(1, Ordering::Relaxed);
            warn!(order = %id, path = %path.display(), error = %e, "cannot create RRD");
            false
        }
    }
}
