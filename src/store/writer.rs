//! Writer threads: the only place that touches `output/` and `archive/`.
//!
//! librrd is blocking, so it runs on dedicated OS threads, never on the async
//! workers. Orders are sharded over the threads by a hash of their id, so all
//! commands for one id — prepare, round results, archive — run on one thread
//! in the order they were sent. Each thread's queue knows which
//! *generation* of each order is active: a round result for an order that
//! was archived or replaced since is dropped, so a late round can never
//! recreate `output/<id>/` beside `archive/<id>/`.
//!
//! Handing work over never waits (see [`super::queue`]): a job pushes its
//! finished round and starts the next on time however slow the disk is.
//! The pending work is bounded per order, not per round: the latest round
//! of each order for `last_result` (a newer one supersedes an unwritten
//! older one, counted), and for an order with `main.rrd` at most
//! `--rrd-backlog` unwritten RRD updates, written late and in time order
//! (past that the oldest is dropped and counted for the order).
//! [`Writers::stop`] lets the threads finish what is queued, up to a
//! deadline, and counts what they could not write.
//!
//! Write failures (full disk, read-only or vanished directory, librrd errors)
//! are counted and logged once per order until that order writes again, at
//! which point the recovery is logged; the next round simply retries.

use probes::sync::lock;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use super::queue::{Next, Pending, Queue, Work};
use super::rrdcached::{Answer, RrdCached};
use super::stats::StoreStats;
use super::{archive, last_result, rrd};
use crate::basedir::BaseDir;
use crate::clock::unix_s as now_unix;
use crate::order::OrderId;
use crate::result::Summary;
use crate::supervise::Supervisor;

/// Unwritten RRD updates kept per order by default (`--rrd-backlog`).
pub const DEFAULT_RRD_BACKLOG: usize = 10;

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

/// Sending side of the writer threads; cheap to clone.
#[derive(Debug, Clone)]
pub struct StoreHandle {
    shards: Arc<Vec<Arc<Queue>>>,
    stats: Arc<StoreStats>,
}

/// The running writer threads.
#[derive(Debug)]
pub struct Writers {
    threads: Vec<JoinHandle<()>>,
    queues: Vec<Arc<Queue>>,
    stats: Arc<StoreStats>,
}

impl Writers {
    /// Starts `n` (≥ 1) writer threads for the base directory `base`.
    pub fn start(base: &BaseDir, n: usize) -> std::io::Result<(StoreHandle, Writers)> {
        Writers::start_supervised(base, n, &Supervisor::new(), None, DEFAULT_RRD_BACKLOG)
    }

    /// Like [`Writers::start`]; a writer thread that panics is reported to
    /// `sup`. With `cached`, RRD files are created and updated through
    /// rrdcached (see [`super::rrdcached`]). Each order keeps at most
    /// `rrd_backlog` unwritten RRD updates.
    pub fn start_supervised(
        base: &BaseDir,
        n: usize,
        sup: &Supervisor,
        cached: Option<Arc<RrdCached>>,
        rrd_backlog: usize,
    ) -> std::io::Result<(StoreHandle, Writers)> {
        let stats = Arc::new(StoreStats::default());
        let mut shards = Vec::new();
        let mut threads = Vec::new();
        for i in 0..n.max(1) {
            let queue = Arc::new(Queue::new(rrd_backlog, stats.clone()));
            let rx = queue.clone();
            let mut w = Writer {
                output: base.output.clone(),
                archive: base.archive.clone(),
                stats: stats.clone(),
                failing: HashMap::new(),
                cached: cached.clone(),
                dropping: HashMap::new(),
            };
            let guard = sup.guard(format!("store writer {i}"));
            threads.push(
                std::thread::Builder::new()
                    .name(format!("store-writer-{i}"))
                    .spawn(move || {
                        let _guard = guard;
                        crate::priority::background_thread();
                        w.run(&rx);
                    })?,
            );
            shards.push(queue);
        }
        Ok((
            StoreHandle {
                shards: Arc::new(shards.clone()),
                stats: stats.clone(),
            },
            Writers {
                threads,
                queues: shards,
                stats,
            },
        ))
    }

    /// Lets the threads write what is queued and exit: all of it, or, with
    /// `within`, what they can until then. Rounds left unwritten are
    /// counted (`unwritten_at_stop`) and returned. Work handed over after
    /// this is not written.
    pub fn stop(self, within: Option<Duration>) -> u64 {
        let deadline = within.map(|d| Instant::now() + d);
        for q in &self.queues {
            q.close(deadline);
        }
        for t in self.threads {
            if t.join().is_err() {
                warn!("a store writer thread panicked");
            }
        }
        let left: u64 = self.queues.iter().map(|q| q.abandon()).sum();
        if left > 0 {
            self.stats
                .unwritten_at_stop
                .fetch_add(left, Ordering::Relaxed);
            warn!(
                rounds = left,
                "rounds not written at stop: storage too slow to write them within the stop deadline (counted in store.unwritten_at_stop)"
            );
        }
        left
    }
}

impl StoreHandle {
    /// The writer that handles every command of order `id`.
    fn shard_of(&self, id: &OrderId) -> usize {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        id.hash(&mut h);
        (h.finish() % self.shards.len() as u64) as usize
    }

    /// Hands `cmd` to the writer of its order. Never waits.
    pub fn send(&self, cmd: StoreCmd) {
        let shard = self.shard_of(cmd.id());
        self.send_all(shard, &mut vec![cmd]);
    }

    /// Hands all of `cmds` (all of writer `shard`) over in order, with one
    /// lock of its queue and one wake-up of the writer. Empties `cmds`.
    fn send_all(&self, shard: usize, cmds: &mut Vec<StoreCmd>) {
        self.shards[shard].push_all(cmds.drain(..));
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

    /// A handle with one queue and no writer thread: the test takes what
    /// was handed over from the returned queue (for unit tests of what
    /// sends to the store).
    #[cfg(test)]
    pub(crate) fn capture() -> (StoreHandle, Arc<Queue>) {
        let stats = Arc::new(StoreStats::default());
        let q = Arc::new(Queue::new(DEFAULT_RRD_BACKLOG, stats.clone()));
        (
            StoreHandle {
                shards: Arc::new(vec![q.clone()]),
                stats,
            },
            q,
        )
    }
}

/// Commands handed to a writer together by [`Batches`].
pub const BATCH: usize = 64;

/// A round's store commands on their way to the writers: gathered per
/// writer and handed over [`BATCH`] at a time, one lock of the writer's
/// queue and one wake-up of the writer per batch (a million orders' rounds
/// end within a minute). Each writer still receives one order's commands in
/// the order they were pushed. What is pushed is handed over only by
/// [`Batches::push`] filling a batch or by [`Batches::flush`]: call it at
/// the end. Nothing here waits for the writers.
#[derive(Debug)]
pub struct Batches<'h> {
    handle: &'h StoreHandle,
    bufs: Vec<Vec<StoreCmd>>,
}

impl Batches<'_> {
    /// Adds `cmd`, handing its writer's batch over when it is full.
    pub fn push(&mut self, cmd: StoreCmd) {
        let shard = self.handle.shard_of(cmd.id());
        let buf = &mut self.bufs[shard];
        if buf.capacity() == 0 {
            buf.reserve_exact(BATCH);
        }
        buf.push(cmd);
        if buf.len() >= BATCH {
            self.handle.send_all(shard, buf);
        }
    }

    /// Hands over what is left.
    pub fn flush(&mut self) {
        for (shard, buf) in self.bufs.iter_mut().enumerate() {
            if !buf.is_empty() {
                self.handle.send_all(shard, buf);
            }
        }
    }
}

/// One writer thread's state.
struct Writer {
    output: PathBuf,
    archive: PathBuf,
    stats: Arc<StoreStats>,
    /// Orders whose last write failed, with the number of failures.
    failing: HashMap<OrderId, u64>,
    /// rrdcached, when RRD updates go through it.
    cached: Option<Arc<RrdCached>>,
    /// Orders whose RRD updates are being dropped (storage too slow), with
    /// how many since the first.
    dropping: HashMap<OrderId, u64>,
}

impl Writer {
    fn run(&mut self, queue: &Queue) {
        loop {
            match queue.next() {
                (_, Some(Work::Command(cmd))) => self.command(cmd),
                (_, Some(Work::Rounds(id, pending))) => {
                    self.rounds(&id, &pending, queue.waited(&pending));
                }
                (Next::Exit, None) | (Next::Work, None) => return,
            }
        }
    }

    fn command(&mut self, cmd: StoreCmd) {
        match cmd {
            StoreCmd::Prepare {
                id,
                generation: _,
                shape,
                rrd_start,
            } => {
                let r = self.prepare(&id, shape, rrd_start);
                self.outcome(&id, "prepare output", r);
                self.stats.prepared.fetch_add(1, Ordering::Relaxed);
            }
            StoreCmd::Archive { id } => {
                self.failing.remove(&id);
                self.dropping.remove(&id);
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
            // Rounds reach the writer as `Work::Rounds`, never as a command.
            StoreCmd::Round { .. } => {}
        }
    }

    /// Writes an order's unwritten rounds: its RRD updates in time order,
    /// then `last_result` once, with the newest round. The oldest of them
    /// waited `waited` for it. (Rounds of an order that ended or changed
    /// never get here: the queue drops them.)
    fn rounds(&mut self, id: &OrderId, p: &Pending, waited: Duration) {
        // Test builds only: a writer that dies (the daemon must then stop
        // with an error, not run on without writing).
        #[cfg(debug_assertions)]
        if std::env::var_os("PINGMACHINE_FAILPOINT").is_some_and(|v| v == "store-writer-panic") {
            panic!("failpoint store-writer-panic");
        }
        self.stats
            .superseded
            .fetch_add(u64::from(p.superseded), Ordering::Relaxed);
        self.note_dropped(id, p);
        let r = self.write_rounds(id, p);
        self.outcome(id, "write round", r);
        let delay = waited.as_micros() as u64;
        self.stats
            .write_delay_us_max
            .fetch_max(delay, Ordering::Relaxed);
        if delay > u64::from(p.shape.step) * 1_000_000 {
            // Written after the order's next round started.
            self.stats.late_writes.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts RRD updates dropped for `id` (its backlog was full) and says
    /// so once per order while it lasts, and once when it ends.
    fn note_dropped(&mut self, id: &OrderId, p: &Pending) {
        let dropped = u64::from(p.rrd_dropped());
        if dropped > 0 {
            self.stats.rrd_dropped.fetch_add(dropped, Ordering::Relaxed);
            let n = self.dropping.entry(id.clone()).or_insert(0);
            if *n == 0 {
                warn!(
                    order = %id,
                    dropped,
                    backlog = p.rrd.as_ref().map_or(0, |b| b.updates.len()),
                    "RRD updates dropped, oldest first: storage is too slow and the order already had --rrd-backlog unwritten ones (a gap in its main.rrd; counted in store.rrd_dropped)"
                );
            }
            *n += dropped;
        } else if let Some(n) = self.dropping.remove(id) {
            info!(order = %id, dropped = n, "RRD updates written in time again");
        }
    }

    fn write_rounds(&mut self, id: &OrderId, p: &Pending) -> Result<(), StoreError> {
        let shape = p.shape;
        let dir = id.under(&self.output);
        // The directory exists nearly always: it is created (again) only
        // when something in it is missing, not looked at every round.
        let mkdir = || std::fs::create_dir_all(&dir).map_err(StoreError::io("create", &dir));
        let mut result = Ok(());
        if shape.rrd {
            let path = dir.join(RRD_FILE);
            // Dropped rounds first, as one unknown update at the newest of
            // them: the file's gap is then exactly the dropped rounds.
            let gap = p.rrd.as_ref().and_then(|b| b.gap_until).map(|t| (t, None));
            let kept = p
                .rrd
                .iter()
                .flat_map(|b| b.updates.iter().map(|(t, s)| (*t, Some(s))));
            for (t, summary) in gap.into_iter().chain(kept) {
                if !path.exists() {
                    mkdir()?;
                    self.ensure_rrd(id, &path, shape, t - i64::from(shape.step))?;
                }
                let values = match summary {
                    Some(s) => rrd::update_values(s),
                    None => vec![None; shape.pings as usize + 2],
                };
                if let Some(c) = self.cached_for(id, &path) {
                    // Queued, never waited for; refusals are rrdcached's to
                    // report (its client logs and counts them).
                    if c.update(&path, &rrd::update_string(t, &values)) {
                        self.stats.rrd_updates.fetch_add(1, Ordering::Relaxed);
                    }
                } else if let Err(e) = self.update_local(id, &path, shape, t, &values) {
                    // Still write last_result: it is independent of the RRD.
                    if result.is_ok() {
                        result = Err(e);
                    }
                }
            }
        }
        let text = last_result::format_latest(now_unix(), shape.step, shape.pings, &p.latest);
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
            let _one = lock(&MKDIR);
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
mod tests;

#[cfg(test)]
mod batch_tests;
