//! Writer threads: the only place that touches `output/` and `archive/`.
//!
//! librrd is blocking, so it runs on dedicated OS threads, never on the async
//! workers. Orders are sharded over the threads by a hash of their id, so all
//! commands for one id — prepare, round results, archive — run on one thread
//! in the order they were sent. Each thread remembers which *generation* of
//! each order is active: a round result for an order that was archived or
//! replaced since is dropped, so a late round can never recreate `output/<id>/`
//! beside `archive/<id>/`.
//!
//! Channels are bounded: when the disk is slow, rounds wait for room instead
//! of piling up in memory. Dropping every [`StoreHandle`] lets the threads
//! drain their queues and exit, which is how shutdown finishes the last writes.
//!
//! Write failures (full disk, read-only or vanished directory, librrd errors)
//! are counted and logged once per order until that order writes again, at
//! which point the recovery is logged; the next round simply retries.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::rrdcached::{Answer, RrdCached};
use super::{archive, last_result, rrd};
use crate::basedir::BaseDir;
use crate::clock::unix_s as now_unix;
use crate::order::OrderId;
use crate::result::Summary;
use crate::supervise::Supervisor;

/// Queue length of each writer thread.
const QUEUE: usize = 4096;

/// Held while a writer creates an output directory (see [`Writer::prepare`]).
static MKDIR: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Name of the RRD file in an order's output directory.
pub const RRD_FILE: &str = "main.rrd";
/// Name a non-RRD `main.rrd` is renamed to (the original's rule).
pub const CORRUPTED_FILE: &str = "corrupted_main.rrd";

/// Why a write of an order's output failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file-system operation on `path`.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done (`create`, `rename` …).
        action: &'static str,
        /// On what.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// librrd refused to read or create `path`.
    #[error("cannot {action} {}: {source}", path.display())]
    Rrd {
        /// `read` or `create`.
        action: &'static str,
        /// The RRD.
        path: PathBuf,
        /// librrd's error.
        source: rrd::RrdError,
    },
    /// rrdcached refused to create `path`.
    #[error("rrdcached cannot create {}: {message}", path.display())]
    Cached {
        /// The RRD.
        path: PathBuf,
        /// rrdcached's message.
        message: String,
    },
    /// librrd refused an update.
    #[error("RRD update {update} failed: {source}")]
    Update {
        /// The update string (`t:v:v…`).
        update: String,
        /// librrd's error.
        source: rrd::RrdError,
    },
}

impl StoreError {
    fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StoreError {
        let path = path.to_path_buf();
        move |source| StoreError::Io {
            action,
            path,
            source,
        }
    }
}

/// The shape of an order's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Step, seconds.
    pub step: u32,
    /// Pings per round.
    pub pings: u32,
    /// Whether `main.rrd` is kept.
    pub rrd: bool,
}

/// Work for a writer thread.
#[derive(Debug)]
pub enum StoreCmd {
    /// An order (this generation of it) became active: restore its archive,
    /// create `output/<id>/`, set aside a `main.rrd` of another shape or that
    /// is not an RRD, and create `main.rrd` if missing.
    Prepare {
        /// Order id.
        id: OrderId,
        /// Changes whenever the order's content changes.
        generation: u64,
        /// Step, pings, RRD.
        shape: Shape,
        /// `--start` of a new `main.rrd`: `floor(now/step)*step - step`
        /// taken when the order started (the original's rule).
        rrd_start: i64,
    },
    /// The result of one round of one order.
    Round {
        /// Order id.
        id: OrderId,
        /// The generation the round was run for.
        generation: u64,
        /// Step, pings, RRD.
        shape: Shape,
        /// RRD timestamp of the round.
        t: i64,
        /// The round's statistics.
        summary: Summary,
        /// When the job had the result ready to hand over (for the
        /// write-delay figure: its wait in the job's batch included).
        queued: std::time::Instant,
    },
    /// The order ended: move `output/<id>/` to `archive/<id>/`; drop any
    /// later round results for it.
    Archive {
        /// Order id.
        id: OrderId,
    },
}

impl StoreCmd {
    fn id(&self) -> &OrderId {
        match self {
            StoreCmd::Prepare { id, .. }
            | StoreCmd::Round { id, .. }
            | StoreCmd::Archive { id } => id,
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
    /// Largest number of commands waiting in one queue.
    pub queue_high_water: AtomicU64,
    /// Longest time from a round's hand-over to its files being written, µs.
    pub write_delay_us_max: AtomicU64,
    /// Rounds written more than one step after their hand-over.
    pub late_writes: AtomicU64,
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
    /// Starts `n` (≥ 1) writer threads for the base directory `base`.
    pub fn start(base: &BaseDir, n: usize) -> std::io::Result<(StoreHandle, Writers)> {
        Writers::start_supervised(base, n, &Supervisor::new(), None)
    }

    /// Like [`Writers::start`]; a writer thread that panics is reported to
    /// `sup`. With `cached`, RRD files are created and updated through
    /// rrdcached (see [`super::rrdcached`]).
    pub fn start_supervised(
        base: &BaseDir,
        n: usize,
        sup: &Supervisor,
        cached: Option<Arc<RrdCached>>,
    ) -> std::io::Result<(StoreHandle, Writers)> {
        let stats = Arc::new(StoreStats::default());
        let mut shards = Vec::new();
        let mut threads = Vec::new();
        for i in 0..n.max(1) {
            let (tx, rx) = mpsc::channel(QUEUE);
            let mut w = Writer {
                output: base.output.clone(),
                archive: base.archive.clone(),
                stats: stats.clone(),
                active: HashMap::new(),
                failing: HashMap::new(),
                cached: cached.clone(),
            };
            let guard = sup.guard(format!("store writer {i}"));
            threads.push(
                std::thread::Builder::new()
                    .name(format!("store-writer-{i}"))
                    .spawn(move || {
                        let _guard = guard;
                        w.run(rx);
                    })?,
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
    /// The writer that handles every command of order `id`.
    fn shard_of(&self, id: &OrderId) -> usize {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        id.hash(&mut h);
        (h.finish() % self.shards.len() as u64) as usize
    }

    /// Queues `cmd` on the writer of its order, waiting for room.
    pub async fn send(&self, cmd: StoreCmd) {
        let shard = &self.shards[self.shard_of(cmd.id())];
        if shard.send(cmd).await.is_err() {
            warn!("store writer is gone; result dropped");
            return;
        }
        self.note_queued(shard);
    }

    /// Queues all of `cmds` (at most [`BATCH`], all of writer `shard`) in
    /// order, waiting until there is room for all of them at once: a sender
    /// blocked on a full queue is woken once for the lot, not once for each
    /// command the writer takes. Empties `cmds`.
    async fn send_all(&self, shard: usize, cmds: &mut Vec<StoreCmd>) {
        let tx = &self.shards[shard];
        while !cmds.is_empty() {
            // More than the queue holds is never asked for at once.
            let n = cmds.len().min(tx.max_capacity());
            match tx.reserve_many(n).await {
                Ok(permits) => {
                    for (permit, cmd) in permits.zip(cmds.drain(..n)) {
                        permit.send(cmd);
                    }
                    self.note_queued(tx);
                }
                Err(_) => {
                    warn!(
                        results = cmds.len(),
                        "store writer is gone; results dropped"
                    );
                    cmds.clear();
                }
            }
        }
    }

    fn note_queued(&self, tx: &mpsc::Sender<StoreCmd>) {
        let queued = (tx.max_capacity() - tx.capacity()) as u64;
        self.stats
            .queue_high_water
            .fetch_max(queued, Ordering::Relaxed);
    }

    /// Gathers commands per writer and hands them over [`BATCH`] at a
    /// time; see [`Batches`].
    pub fn batches(&self) -> Batches<'_> {
        Batches {
            handle: self,
            bufs: (0..self.shards.len()).map(|_| Vec::new()).collect(),
        }
    }

    /// The writers' counters.
    pub fn stats(&self) -> &StoreStats {
        &self.stats
    }

    /// A handle whose commands arrive on the returned receiver instead of
    /// at writer threads (for unit tests of what sends to the store).
    #[cfg(test)]
    pub(crate) fn capture(capacity: usize) -> (StoreHandle, mpsc::Receiver<StoreCmd>) {
        let (tx, rx) = mpsc::channel(capacity);
        (
            StoreHandle {
                shards: Arc::new(vec![tx]),
                stats: Arc::new(StoreStats::default()),
            },
            rx,
        )
    }
}

/// Commands handed to a writer together by [`Batches`].
pub const BATCH: usize = 64;

/// A round's store commands on their way to the writers: gathered per
/// writer and queued [`BATCH`] at a time, so that when the writers are the
/// bottleneck (a million orders' rounds ending within a minute) a job is
/// woken once per batch instead of once per result, and the writer wakes
/// the runtime as seldom. Each writer still receives one order's commands
/// in the order they were pushed. What is pushed is queued only by
/// [`Batches::push`] filling a batch or by [`Batches::flush`]: call it at
/// the end.
#[derive(Debug)]
pub struct Batches<'h> {
    handle: &'h StoreHandle,
    bufs: Vec<Vec<StoreCmd>>,
}

impl Batches<'_> {
    /// Adds `cmd`, queuing its writer's batch when it is full.
    pub async fn push(&mut self, cmd: StoreCmd) {
        let shard = self.handle.shard_of(cmd.id());
        let buf = &mut self.bufs[shard];
        if buf.capacity() == 0 {
            buf.reserve_exact(BATCH);
        }
        buf.push(cmd);
        if buf.len() >= BATCH {
            self.handle.send_all(shard, buf).await;
        }
    }

    /// Queues what is left.
    pub async fn flush(&mut self) {
        for (shard, buf) in self.bufs.iter_mut().enumerate() {
            if !buf.is_empty() {
                self.handle.send_all(shard, buf).await;
            }
        }
    }
}

/// One writer thread's state.
struct Writer {
    output: PathBuf,
    archive: PathBuf,
    stats: Arc<StoreStats>,
    /// Active generation of each order of this shard.
    active: HashMap<OrderId, u64>,
    /// Orders whose last write failed, with the number of failures.
    failing: HashMap<OrderId, u64>,
    /// rrdcached, when RRD updates go through it.
    cached: Option<Arc<RrdCached>>,
}

impl Writer {
    fn run(&mut self, mut rx: mpsc::Receiver<StoreCmd>) {
        while let Some(cmd) = rx.blocking_recv() {
            match cmd {
                StoreCmd::Prepare {
                    id,
                    generation,
                    shape,
                    rrd_start,
                } => {
                    self.active.insert(id.clone(), generation);
                    let r = self.prepare(&id, shape, rrd_start);
                    self.outcome(&id, "prepare output", r);
                    self.stats.prepared.fetch_add(1, Ordering::Relaxed);
                }
                StoreCmd::Round {
                    id,
                    generation,
                    shape,
                    t,
                    summary,
                    queued,
                } => {
                    // Test builds only: a writer that dies (the daemon must
                    // then stop with an error, not run on without writing).
                    #[cfg(debug_assertions)]
                    if std::env::var_os("PINGMACHINE_FAILPOINT")
                        .is_some_and(|v| v == "store-writer-panic")
                    {
                        panic!("failpoint store-writer-panic");
                    }
                    if self.active.get(&id) != Some(&generation) {
                        self.stats.stale_rounds.fetch_add(1, Ordering::Relaxed);
                        debug!(order = %id, "round result for an ended or changed order dropped");
                        continue;
                    }
                    let r = self.round(&id, shape, t, &summary);
                    self.outcome(&id, "write round", r);
                    let delay = queued.elapsed().as_micros() as u64;
                    self.stats
                        .write_delay_us_max
                        .fetch_max(delay, Ordering::Relaxed);
                    if delay > u64::from(shape.step) * 1_000_000 {
                        // Written after the order's next round started.
                        self.stats.late_writes.fetch_add(1, Ordering::Relaxed);
                    }
                }
                StoreCmd::Archive { id } => {
                    self.active.remove(&id);
                    self.failing.remove(&id);
                    let src = id.under(&self.output);
                    let dst = id.under(&self.archive);
                    self.before_move(&id, &src.join(RRD_FILE));
                    match archive::move_files(&src, &dst, &self.output, now_unix()) {
                        Ok(0) => {}
                        Ok(n) => {
                            self.stats.archived.fetch_add(1, Ordering::Relaxed);
                            info!(order = %id, files = n, to = %dst.display(), "output archived");
                        }
                        Err(e) => {
                            self.stats.errors.fetch_add(1, Ordering::Relaxed);
                            warn!(order = %id, error = %e, "cannot archive output (retried when the order ends again or at the next start)");
                        }
                    }
                }
            }
        }
    }

    /// Logs a failure once per order until it recovers; counts every one.
    fn outcome(&mut self, id: &OrderId, what: &str, r: Result<(), StoreError>) {
        match r {
            Ok(()) => {
                if let Some(n) = self.failing.remove(id) {
                    info!(order = %id, failures = n, "writes recovered");
                }
            }
            Err(e) => {
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
                let n = self.failing.entry(id.clone()).or_insert(0);
                *n += 1;
                if *n == 1 {
                    warn!(order = %id, error = %e, "cannot {what}; retrying next round (further failures of this order logged at debug)");
                } else {
                    debug!(order = %id, error = %e, failures = *n, "cannot {what}");
                }
            }
        }
    }

    fn prepare(&mut self, id: &OrderId, shape: Shape, rrd_start: i64) -> Result<(), StoreError> {
        let dir = id.under(&self.output);
        let arch = id.under(&self.archive);
        match archive::move_files(&arch, &dir, &self.archive, now_unix()) {
            Ok(0) => {}
            Ok(n) => {
                self.stats.restored.fetch_add(1, Ordering::Relaxed);
                info!(order = %id, files = n, "output restored from archive");
            }
            Err(e) => return Err(StoreError::io("restore", &arch)(e)),
        }
        if !dir.is_dir() {
            // One directory created at a time in the process: writers that
            // create thousands in one parent (a first start) otherwise
            // contend for its lock in the kernel, which spins, and take
            // more than twice the CPU for the same work.
            let _one = MKDIR.lock().unwrap_or_else(|e| e.into_inner());
            std::fs::create_dir_all(&dir).map_err(StoreError::io("create", &dir))?;
        }
        if shape.rrd {
            let path = dir.join(RRD_FILE);
            self.check_existing(id, &path, shape)?;
            self.ensure_rrd(id, &path, shape, rrd_start)?;
        }
        Ok(())
    }

    /// Sets aside an existing `main.rrd` of another step or pings (B7) or
    /// that is not an RRD (A6).
    fn check_existing(&self, id: &OrderId, path: &Path, shape: Shape) -> Result<(), StoreError> {
        if !path.exists() {
            return Ok(());
        }
        match rrd::shape(path) {
            Ok((step, pings)) if step == shape.step && pings == shape.pings => Ok(()),
            Ok((step, pings)) => {
                self.before_move(id, path);
                let to =
                    archive::set_aside(path, now_unix()).map_err(StoreError::io("rename", path))?;
                info!(
                    order = %id,
                    old_step = step,
                    old_pings = pings,
                    step = shape.step,
                    pings = shape.pings,
                    kept_as = %to.display(),
                    "step or pings changed: old main.rrd kept aside, new one started"
                );
                Ok(())
            }
            Err(e) if rrd::is_corruption(&e) => self.set_corrupted_aside(id, path, &e.to_string()),
            Err(source) => Err(StoreError::Rrd {
                action: "read",
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// With rrdcached: its pending values of `path` are written, and it
    /// forgets the file, before the file moves (archive, set aside), so
    /// that no update lands in the wrong file.
    fn before_move(&self, id: &OrderId, path: &Path) {
        let Some(c) = self.cached_for(id, path) else {
            return;
        };
        if !path.exists() {
            return;
        }
        match c.flush_forget(path) {
            Answer::Done => {
                debug!(order = %id, path = %path.display(), "rrdcached flushed and forgot the file before its move")
            }
            Answer::Down => {
                debug!(order = %id, path = %path.display(), "rrdcached is down: its queued updates of the file were dropped before the move")
            }
            Answer::Refused(m) => {
                warn!(order = %id, path = %path.display(), error = %m, "rrdcached refused to flush the file before its move")
            }
        }
    }

    /// rrdcached for `path`, unless its protocol cannot name it (an id with
    /// white space): that file is always written here, never through
    /// rrdcached, so the two never hold different versions of it.
    fn cached_for(&self, id: &OrderId, path: &Path) -> Option<&Arc<RrdCached>> {
        let c = self.cached.as_ref()?;
        match super::rrdcached::check_path(path) {
            Ok(()) => Some(c),
            Err(e) => {
                debug!(order = %id, error = %e, "main.rrd written directly, not through rrdcached");
                None
            }
        }
    }

    fn set_corrupted_aside(&self, id: &OrderId, path: &Path, why: &str) -> Result<(), StoreError> {
        self.before_move(id, path);
        let mut to = path.with_file_name(CORRUPTED_FILE);
        if to.exists() {
            to = archive::aside_name(&to, now_unix());
        }
        std::fs::rename(path, &to).map_err(StoreError::io("rename", path))?;
        warn!(order = %id, error = %why, renamed_to = %to.display(), "main.rrd is not a valid RRD; kept aside, new one created");
        Ok(())
    }

    /// Creates `path` with `start` unless it exists.
    fn ensure_rrd(
        &self,
        id: &OrderId,
        path: &Path,
        shape: Shape,
        start: i64,
    ) -> Result<(), StoreError> {
        if path.exists() {
            return Ok(());
        }
        if let Some(c) = self.cached_for(id, path) {
            match c.create(path, shape.step, shape.pings, start) {
                Answer::Done => {
                    self.stats.rrd_creates.fetch_add(1, Ordering::Relaxed);
                    debug!(order = %id, path = %path.display(), "created RRD through rrdcached");
                    return Ok(());
                }
                // Down, or an rrdcached without CREATE: created here; its
                // updates still go through rrdcached.
                Answer::Down => {}
                Answer::Refused(m) if m.to_ascii_lowercase().contains("unknown command") => {}
                Answer::Refused(message) => {
                    return Err(StoreError::Cached {
                        path: path.to_path_buf(),
                        message,
                    })
                }
            }
        }
        match rrd::create_rrd(path, shape.step, shape.pings, start) {
            Ok(()) => {
                self.stats.rrd_creates.fetch_add(1, Ordering::Relaxed);
                debug!(order = %id, path = %path.display(), step = shape.step, pings = shape.pings, start, "created RRD");
                Ok(())
            }
            Err(e) => {
                // A partial file (disk full) is ours: remove it so the next
                // attempt starts clean instead of seeing a corrupt RRD.
                let _ = std::fs::remove_file(path);
                Err(StoreError::Rrd {
                    action: "create",
                    path: path.to_path_buf(),
                    source: e,
                })
            }
        }
    }

    fn round(
        &mut self,
        id: &OrderId,
        shape: Shape,
        t: i64,
        summary: &Summary,
    ) -> Result<(), StoreError> {
        let dir = id.under(&self.output);
        // The directory exists nearly always: it is created (again) only
        // when something in it is missing, not looked at every round.
        let mkdir = || std::fs::create_dir_all(&dir).map_err(StoreError::io("create", &dir));
        let mut result = Ok(());
        if shape.rrd {
            let path = dir.join(RRD_FILE);
            if !path.exists() {
                mkdir()?;
                self.ensure_rrd(id, &path, shape, t - i64::from(shape.step))?;
            }
            let values = rrd::update_values(summary);
            if let Some(c) = self.cached_for(id, &path) {
                // Queued, never waited for; refusals are rrdcached's to
                // report (its client logs and counts them).
                if c.update(&path, &rrd::update_string(t, &values)) {
                    self.stats.rrd_updates.fetch_add(1, Ordering::Relaxed);
                }
            } else {
                result = self.update_local(id, &path, shape, t, &values);
            }
        }
        let text = last_result::format(t, now_unix(), shape.step, shape.pings, summary);
        let written = match last_result::write_atomic(&dir, &text) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                mkdir()?;
                last_result::write_atomic(&dir, &text)
            }
            other => other,
        };
        written.map_err(StoreError::io("write", &dir.join(last_result::FILE)))?;
        self.stats.last_results.fetch_add(1, Ordering::Relaxed);
        result
    }

    /// One update written by librrd here; a corrupted file is set aside
    /// and a new one started (the original's rule).
    fn update_local(
        &mut self,
        id: &OrderId,
        path: &Path,
        shape: Shape,
        t: i64,
        values: &[Option<f64>],
    ) -> Result<(), StoreError> {
        let path = path.to_path_buf();
        let values = values.to_vec();
        let mut result = Ok(());
        match rrd::update_rrd(&path, t, &values) {
            Ok(()) => {
                self.stats.rrd_updates.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) if rrd::is_corruption(&e) => {
                self.set_corrupted_aside(id, &path, &e.to_string())?;
                self.ensure_rrd(id, &path, shape, t - i64::from(shape.step))?;
                rrd::update_rrd(&path, t, &values).map_err(|source| StoreError::Update {
                    update: rrd::update_string(t, &values),
                    source,
                })?;
                self.stats.rrd_updates.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) if rrd::is_not_newer(&e) => {
                // The RRD already covers t: its start (the original puts it at
                // the current step) or a round written before a restart.
                debug!(order = %id, t, error = %e, "RRD already has data at this time; update skipped");
            }
            Err(e) => {
                // Still write last_result: it is independent of the RRD.
                result = Err(StoreError::Update {
                    update: rrd::update_string(t, &values),
                    source: e,
                });
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::LastResult;
    use crate::result::RoundOutcome;
    use std::time::Duration;

    fn summary(rtts_ms: &[Option<u64>]) -> Summary {
        Summary::of(&RoundOutcome {
            rtts: rtts_ms
                .iter()
                .map(|r| r.map(Duration::from_millis))
                .collect(),
        })
    }

    fn run(base: &BaseDir, cmds: Vec<StoreCmd>) {
        let (handle, writers) = Writers::start(base, 2).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            for c in cmds {
                handle.send(c).await;
            }
        });
        drop(handle);
        writers.join();
    }

    #[test]
    fn prepare_round_and_archive() {
        let dir = tempfile::tempdir().unwrap();
        let base = BaseDir::new(dir.path());
        base.create().unwrap();
        let id = OrderId::new("app/t").unwrap();
        let shape = Shape {
            step: 60,
            pings: 3,
            rrd: true,
        };
        let t = crate::schedule::rrd_time(now_unix(), 60);
        let round = |generation, rtts: &[Option<u64>]| StoreCmd::Round {
            id: id.clone(),
            generation,
            shape,
            t,
            summary: summary(rtts),
            queued: std::time::Instant::now(),
        };
        run(
            &base,
            vec![
                StoreCmd::Prepare {
                    id: id.clone(),
                    generation: 2,
                    shape,
                    rrd_start: t - 60,
                },
                round(2, &[Some(3), None, Some(1)]),
                // A round of an older generation of the order is dropped.
                round(1, &[None, None, None]),
            ],
        );
        let out = id.under(&base.output);
        assert!(out.join(RRD_FILE).is_file());
        let text = std::fs::read_to_string(out.join(last_result::FILE)).unwrap();
        let r = LastResult::parse(&text).unwrap();
        assert_eq!((r.time, r.step, r.pings, r.loss), (t, 60, 3, 1));
        assert_eq!(r.median, Some(0.003));

        run(&base, vec![StoreCmd::Archive { id: id.clone() }]);
        assert!(!out.exists(), "output moved away");
        let archived = id.under(&base.archive);
        assert!(archived.join(RRD_FILE).is_file());
        assert!(archived.join(last_result::FILE).is_file());

        // Preparing the order again restores its archive.
        run(
            &base,
            vec![StoreCmd::Prepare {
                id: id.clone(),
                generation: 3,
                shape,
                rrd_start: t - 60,
            }],
        );
        assert!(out.join(RRD_FILE).is_file());
        assert!(!archived.exists());
    }

    #[test]
    fn a_norrd_order_writes_only_last_result() {
        let dir = tempfile::tempdir().unwrap();
        let base = BaseDir::new(dir.path());
        base.create().unwrap();
        let id = OrderId::new("n").unwrap();
        let shape = Shape {
            step: 20,
            pings: 2,
            rrd: false,
        };
        let t = crate::schedule::rrd_time(now_unix(), 20);
        run(
            &base,
            vec![
                StoreCmd::Prepare {
                    id: id.clone(),
                    generation: 1,
                    shape,
                    rrd_start: t - 20,
                },
                StoreCmd::Round {
                    id: id.clone(),
                    generation: 1,
                    shape,
                    t,
                    summary: summary(&[None, None]),
                    queued: std::time::Instant::now(),
                },
            ],
        );
        let out = id.under(&base.output);
        assert!(!out.join(RRD_FILE).exists());
        let r = LastResult::parse(&std::fs::read_to_string(out.join(last_result::FILE)).unwrap())
            .unwrap();
        assert_eq!((r.loss, r.median), (2, None));
    }
}

#[cfg(test)]
mod batch_tests {
    use super::*;
    use std::future::Future;
    use std::task::{Context, Poll, Waker};

    fn round(id: &str) -> StoreCmd {
        StoreCmd::Round {
            id: OrderId::new(id).unwrap(),
            generation: 1,
            shape: Shape {
                step: 60,
                pings: 1,
                rrd: false,
            },
            t: 60,
            summary: Summary::of(&crate::result::RoundOutcome { rtts: vec![None] }),
            queued: std::time::Instant::now(),
        }
    }

    fn drain(rx: &mut mpsc::Receiver<StoreCmd>) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(cmd) = rx.try_recv() {
            out.push(cmd.id().to_string());
        }
        out
    }

    fn poll_once<F: Future>(f: std::pin::Pin<&mut F>) -> Poll<F::Output> {
        f.poll(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn batches_queue_a_full_batch_then_the_rest_on_flush_in_order() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (handle, mut rx) = StoreHandle::capture(QUEUE);
        rt.block_on(async {
            let mut out = handle.batches();
            for i in 0..BATCH - 1 {
                out.push(round(&format!("o{i:03}"))).await;
            }
            assert!(drain(&mut rx).is_empty(), "nothing before a batch is full");
            out.push(round("o063")).await;
            let first = drain(&mut rx);
            assert_eq!(first.len(), BATCH);
            for i in 0..10 {
                out.push(round(&format!("p{i}"))).await;
            }
            assert!(drain(&mut rx).is_empty());
            out.flush().await;
            let rest = drain(&mut rx);
            let want: Vec<String> = (0..10).map(|i| format!("p{i}")).collect();
            assert_eq!(rest, want);
            let want: Vec<String> = (0..BATCH).map(|i| format!("o{i:03}")).collect();
            assert_eq!(first, want, "in the order pushed");
        });
    }

    #[test]
    fn a_batch_waits_for_room_for_all_of_it() {
        let (handle, mut rx) = StoreHandle::capture(BATCH);
        // The queue is full.
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            for i in 0..BATCH {
                handle.send(round(&format!("old{i}"))).await;
            }
        });
        let mut cmds: Vec<StoreCmd> = (0..BATCH).map(|i| round(&format!("new{i}"))).collect();
        let mut fut = std::pin::pin!(handle.send_all(0, &mut cmds));
        assert!(poll_once(fut.as_mut()).is_pending());
        // One slot short of the whole batch: still waiting, nothing queued.
        for _ in 0..BATCH - 1 {
            rx.try_recv().unwrap();
        }
        assert!(poll_once(fut.as_mut()).is_pending());
        assert!(
            rx.try_recv().unwrap().id().as_str().starts_with("old"),
            "none of the batch is queued before there is room for all of it"
        );
        assert!(rx.try_recv().is_err());
        assert!(poll_once(fut.as_mut()).is_ready());
        let got = drain(&mut rx);
        assert_eq!(got.len(), BATCH);
        assert!(got.iter().all(|id| id.starts_with("new")));
    }

    #[test]
    fn a_batch_larger_than_the_queue_is_queued_in_parts() {
        let (handle, mut rx) = StoreHandle::capture(8);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let got = rt.block_on(async move {
            let reader = tokio::spawn(async move {
                let mut got = Vec::new();
                while let Some(cmd) = rx.recv().await {
                    got.push(cmd.id().to_string());
                }
                got
            });
            {
                let mut out = handle.batches();
                for i in 0..100 {
                    out.push(round(&format!("o{i:03}"))).await;
                }
                out.flush().await;
            }
            drop(handle);
            reader.await.unwrap()
        });
        let want: Vec<String> = (0..100).map(|i| format!("o{i:03}")).collect();
        assert_eq!(got, want);
    }
}
