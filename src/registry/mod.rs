//! The registry: the one owner of the set of active orders.
//!
//! It turns watcher hints and rescans into a reconciled state: every valid
//! order file under `orders/` is in exactly one job, every job has a task,
//! and orders whose file vanished or turned invalid are out of their job.
//! Nothing else mutates this state; jobs see their membership through a
//! `watch` channel that the registry republishes after each batch.
//!
//! * this module — the event loop (hints, retries, rescans) and each
//!   order's lifecycle: load, refresh, change, reject, expire, stop;
//! * [`scan`] — stamps and walks of the file system;
//! * [`jobs`] — the job pool: placement, capacity, membership, and
//!   starting job tasks through a [`jobs::Launcher`].

pub mod jobs;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::basedir::BaseDir;
use crate::counters::JobStats;
use crate::job::{JobKey, Member};
use crate::order::id::is_ignored_name;
use crate::order::{self, Order, OrderError, OrderId};
use crate::rejected;
use crate::schedule;
use crate::store::{Shape, StoreCmd, StoreHandle};
use crate::tree::{self as scan, Found, Stamp, MAX_DEPTH};
use crate::watch::{OrderWatcher, WatchEvent};
pub use jobs::{JobPool, Launcher, Slot, Spawner};

/// Interval of the safety-net check of directory mtimes: an
/// order file added or removed without a hint is seen within this.
pub const RESCAN_INTERVAL: Duration = Duration::from_secs(30);
/// Order files the paced pass looks at per second, at most: a full pass
/// over N files takes `max(RESCAN_INTERVAL, N / PACE_RATE)` seconds, the
/// bound within which a change with no hint (an in-place rewrite the
/// watcher missed, an expiry) is seen.
pub const PACE_RATE: usize = 10_000;
/// How long queued store commands are still handed over at shutdown.
const FORWARD_GRACE: Duration = Duration::from_secs(5);
/// How often the paced pass takes its next slice.
const PACE_TICK: Duration = Duration::from_secs(1);
/// A file that fails to parse and was modified this recently is retried
/// rather than reported: its writer may not be done yet.
pub const HALF_WRITTEN_GRACE: Duration = Duration::from_secs(5);
/// A new directory under `orders/` is walked when its hint arrives, and
/// again this long after: the file watcher reports a new directory before
/// it watches it, so a file created in between raises no event of its own.
const NEW_DIR_REWALKS: [Duration; 2] = [Duration::from_secs(1), Duration::from_secs(5)];

/// Order files looked at together by [`Registry::load_many`] before the
/// batch is applied.
const LOOK_BATCH: usize = 8192;

/// Threads that look at order files in a full scan. More than the cores:
/// on a cold page cache each file read waits for the disk, and many reads
/// in flight at once are what makes a first scan fast.
fn look_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get() * 8)
        .clamp(2, 32)
}

/// Which orders have a `telegraf/<id>` sidecar.
#[derive(Debug)]
enum Sidecars {
    /// Not known: stat `telegraf/<id>` for each order.
    Stat,
    /// The ids found by a walk of `telegraf/` just before: others have none.
    Known(HashSet<OrderId>),
}

/// What looking at one order file found ([`Looker::look`]).
#[derive(Debug)]
enum Look {
    /// No such file (or a directory).
    Gone,
    /// Cannot be an order file (not regular, a symlink out of `orders/`, ...).
    Unusable(OrderError),
    /// Not refreshed for longer than `--max-age`, by this much.
    Expired(Duration),
    /// Same file as last time (or already known invalid, or being retried).
    Unchanged,
    /// Read and parsed, with its sidecar merged where it has one.
    Read {
        stamp: Stamp,
        sidecar: Option<Stamp>,
        #[allow(clippy::type_complexity)]
        parsed: Box<Result<(order::Parsed, Option<order::SidecarMerge>), OrderError>>,
    },
}

#[derive(Debug)]
struct Entry {
    order: Arc<Order>,
    stamp: Stamp,
    sidecar: Option<Box<Stamp>>,
    /// The id of its job (whose key is the order's [`JobKey`]).
    job: u64,
}

/// Counts for logs and tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Active (valid) orders.
    pub orders: usize,
    /// Orders whose file is invalid.
    pub invalid: usize,
    /// Running jobs.
    pub jobs: usize,
}

/// The registry; see the module docs. `L` starts job tasks: [`Spawner`]
/// in the daemon.
#[derive(Debug)]
pub struct Registry<L = Spawner> {
    base: BaseDir,
    orders_canon: PathBuf,
    store: StoreHandle,
    stats: Arc<JobStats>,
    pool: JobPool<L>,
    cancel: CancellationToken,
    orders: HashMap<OrderId, Entry>,
    invalid: HashMap<OrderId, Stamp>,
    retry: HashMap<OrderId, Instant>,
    /// New directories to walk again, and when.
    rewalk: Vec<(Instant, PathBuf)>,
    next_generation: u64,
    /// Store commands produced while processing, sent after the batch.
    pending_store: Vec<StoreCmd>,
    /// Order files older than this are expired.
    max_age: Duration,
    /// Paths already reported as unusable names.
    bad_names: HashSet<PathBuf>,
    /// Ids with files in `rejected/` (read at each full scan): only these
    /// are cleared when their order turns valid.
    rejected: HashSet<OrderId>,
    /// Orders whose sidecar overrides their own line-protocol settings
    /// (logged once).
    sidecar_wins: HashSet<OrderId>,
    /// False during the first scan (quieter logging).
    initial_scan_done: bool,
    /// Interval of the safety-net directory check.
    rescan_interval: Duration,
    /// Every directory below `orders/` and `telegraf/`, as last listed.
    dirs: HashMap<PathBuf, scan::DirSeen>,
    /// Ids with a file below `telegraf/`, as of the last listing there.
    sidecar_ids: HashSet<OrderId>,
    /// The paced pass: ids to look at, and how far it got.
    pass: Vec<OrderId>,
    pass_pos: usize,
    /// When directory mtimes were last checked.
    dirs_checked: Instant,
    /// To the task that hands store commands to the writers (while `run`).
    forward: Option<mpsc::UnboundedSender<StoreCmd>>,
}

impl<L: Launcher> Registry<L> {
    /// A registry for `base`: jobs are started by `launcher` and stop with
    /// `cancel`; store commands go to `store`; counts go to `stats`.
    pub fn new(
        base: BaseDir,
        launcher: L,
        store: StoreHandle,
        stats: Arc<JobStats>,
        cancel: CancellationToken,
        max_age: Duration,
    ) -> Registry<L> {
        let orders_canon =
            std::fs::canonicalize(&base.orders).unwrap_or_else(|_| base.orders.clone());
        Registry {
            base,
            orders_canon,
            store,
            stats,
            pool: JobPool::new(launcher, cancel.clone()),
            cancel,
            orders: HashMap::new(),
            invalid: HashMap::new(),
            retry: HashMap::new(),
            rewalk: Vec::new(),
            next_generation: 0,
            pending_store: Vec::new(),
            max_age,
            bad_names: HashSet::new(),
            rejected: HashSet::new(),
            sidecar_wins: HashSet::new(),
            initial_scan_done: false,
            rescan_interval: RESCAN_INTERVAL,
            dirs: HashMap::new(),
            sidecar_ids: HashSet::new(),
            pass: Vec::new(),
            pass_pos: 0,
            dirs_checked: Instant::now(),
            forward: None,
        }
    }

    /// Sets the interval of the safety-net rescan (default [`RESCAN_INTERVAL`]).
    pub fn with_rescan_interval(mut self, every: Duration) -> Registry<L> {
        self.rescan_interval = every;
        self
    }

    /// Current counts.
    pub fn counts(&self) -> Counts {
        Counts {
            orders: self.orders.len(),
            invalid: self.invalid.len(),
            jobs: self.pool.len(),
        }
    }

    /// Runs until cancelled: initial scan, then hints, retries and rescans.
    ///
    /// `start_watcher` starts the file watcher (`None`: it could not, and
    /// said so); it is called once the first scan has read every file, and
    /// the directories are checked right after, so that a file added
    /// meanwhile is not missed.
    pub async fn run(
        mut self,
        mut rx: mpsc::Receiver<WatchEvent>,
        start_watcher: impl FnOnce() -> Option<OrderWatcher>,
    ) {
        let started = Instant::now();
        let (open_gate, gate) = tokio::sync::oneshot::channel();
        let forwarder = self.start_forwarder(gate);
        tokio::task::block_in_place(|| self.full_rescan());
        // Every order is scheduled once its job has it. Only now do the
        // writers start on the output directories (long before a first
        // round ends): during the scan both cores read orders, and a
        // million `mkdir`s alongside made it a third slower.
        self.publish();
        let _ = open_gate.send(());
        let scheduled_ms = (started.elapsed().as_millis() as u64).max(1);
        let Some(watcher) = tokio::task::block_in_place(start_watcher) else {
            self.pool.stop_all();
            self.stop_forwarder(forwarder).await;
            return;
        };
        tokio::task::block_in_place(|| self.check_dirs());
        self.flush().await;
        // Output of orders that are gone is archived once everything runs.
        tokio::task::block_in_place(|| self.archive_orphans());
        self.flush().await;
        self.initial_scan_done = true;
        let c = self.counts();
        self.stats
            .initial_scan_ms
            .store(scheduled_ms, std::sync::atomic::Ordering::Relaxed);
        info!(
            orders = c.orders,
            invalid = c.invalid,
            jobs = c.jobs,
            elapsed_ms = scheduled_ms,
            "initial scan done; all orders scheduled"
        );
        self.dirs_checked = Instant::now();
        let mut pace = tokio::time::Instant::now()
            + if self.orders.len() + self.invalid.len() > PACE_RATE {
                PACE_TICK
            } else {
                self.rescan_interval
            };
        loop {
            // Nothing ticks while nothing is due: the next retry of a
            // half-written file or re-walk of a new directory, if any.
            let next_due = self.next_due();
            tokio::select! {
                ev = rx.recv() => {
                    let Some(ev) = ev else { break };
                    let mut batch = vec![ev];
                    while let Ok(ev) = rx.try_recv() {
                        batch.push(ev);
                        if batch.len() >= 4096 { break; }
                    }
                    tokio::task::block_in_place(|| self.handle_batch(batch));
                }
                () = tokio::time::sleep_until(pace) => {
                    let after = tokio::task::block_in_place(|| self.pace_tick());
                    pace = tokio::time::Instant::now() + after;
                }
                () = watcher.overflowed() => {
                    if watcher.take_overflow() {
                        self.stats.watcher_overflows.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        warn!("file watcher hints were dropped (queue full); rescanning");
                        tokio::task::block_in_place(|| self.full_rescan());
                    }
                }
                () = sleep_until_due(next_due) => {
                    tokio::task::block_in_place(|| self.run_due_retries());
                }
                () = self.cancel.cancelled() => break,
            }
            self.flush().await;
        }
        self.pool.stop_all();
        self.stop_forwarder(forwarder).await;
    }

    /// What is still queued for the writers is handed over for a while; the
    /// rest is done at the next start (orphaned output is archived, orders
    /// prepared).
    async fn stop_forwarder(&mut self, forwarder: tokio::task::JoinHandle<()>) {
        self.forward = None;
        let abort = forwarder.abort_handle();
        if tokio::time::timeout(FORWARD_GRACE, forwarder)
            .await
            .is_err()
        {
            abort.abort();
            warn!(
                "store commands still queued at shutdown were dropped; the next start catches up"
            );
        }
    }

    fn handle_batch(&mut self, batch: Vec<WatchEvent>) {
        let mut paths = HashSet::new();
        let mut rescan = None;
        for ev in batch {
            match ev {
                WatchEvent::Paths(p) => paths.extend(p),
                WatchEvent::Rescan(why) => rescan = Some(why),
            }
        }
        if let Some(why) = rescan {
            info!(reason = why, "full rescan");
            let started = Instant::now();
            self.full_rescan();
            info!(
                elapsed_ms = started.elapsed().as_millis() as u64,
                "full rescan done"
            );
            return;
        }
        for p in paths {
            self.handle_path(&p);
        }
    }

    /// Publishes changed job memberships and sends queued store commands:
    /// through the forwarder when it runs (the registry never waits for the
    /// writers, so hints are handled while a million output directories are
    /// being created), else here.
    async fn flush(&mut self) {
        self.publish();
        let cmds = std::mem::take(&mut self.pending_store);
        match &self.forward {
            Some(tx) => {
                for cmd in cmds {
                    // Only fails once the forwarder is gone (shutting down).
                    let _ = tx.send(cmd);
                }
            }
            None => {
                for cmd in cmds {
                    self.store.send(cmd);
                }
            }
        }
    }

    /// Starts the task that hands store commands to the writers in the
    /// order the registry queued them, once `gate` opens (or is dropped).
    fn start_forwarder(
        &mut self,
        gate: tokio::sync::oneshot::Receiver<()>,
    ) -> tokio::task::JoinHandle<()> {
        let (tx, mut rx) = mpsc::unbounded_channel::<StoreCmd>();
        self.forward = Some(tx);
        let store = self.store.clone();
        tokio::spawn(async move {
            let _ = gate.await;
            while let Some(cmd) = rx.recv().await {
                store.send(cmd);
            }
        })
    }

    /// Publishes changed job memberships: from here on the jobs run the
    /// new orders.
    fn publish(&mut self) {
        let c = self.counts();
        crate::proctitle::set(&crate::proctitle::orders_title(c.orders));
        self.stats
            .orders
            .store(c.orders as u64, std::sync::atomic::Ordering::Relaxed);
        self.stats
            .jobs
            .store(c.jobs as u64, std::sync::atomic::Ordering::Relaxed);
        self.pool.publish();
    }

    // ---- scanning ----------------------------------------------------------

    /// Reconciles with everything under `orders/`.
    pub fn full_rescan(&mut self) {
        self.stats
            .rescans
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.rejected = rejected::ids(&self.base);
        let (sidecar_ids, telegraf_dirs) = scan::sidecar_ids(&self.base.telegraf);
        self.dirs.clear();
        self.dirs.extend(telegraf_dirs);
        let sidecars = Sidecars::Known(sidecar_ids);
        let t = Instant::now();
        let found = self.walk(&self.base.orders.clone());
        let walk_ms = t.elapsed().as_millis() as u64;
        let files = found.len();
        let present: HashSet<OrderId> = found.iter().cloned().collect();
        self.load_many(found, false, &sidecars);
        debug!(
            files,
            walk_ms,
            load_ms = t.elapsed().as_millis() as u64 - walk_ms,
            "looked at every order file"
        );
        let Sidecars::Known(ids) = sidecars else {
            unreachable!()
        };
        self.sidecar_ids = ids;
        let gone: Vec<OrderId> = self
            .orders
            .keys()
            .filter(|id| !present.contains(*id))
            .cloned()
            .collect();
        for id in gone {
            info!(order = %id, "order file gone; order stopped");
            self.deactivate(&id, true);
        }
        self.invalid.retain(|id, _| present.contains(id));
        self.retry.retain(|id, _| present.contains(id));
    }

    /// Collects the id of every candidate order file below `dir`,
    /// reporting what cannot be scanned.
    fn walk(&mut self, dir: &Path) -> Vec<OrderId> {
        let found = scan::walk_orders(&self.base.orders, dir);
        self.found(found)
    }

    /// Remembers the directories of a walk or listing and reports what
    /// cannot be scanned; returns its order files.
    fn found(&mut self, found: Found) -> Vec<OrderId> {
        let Found {
            dirs,
            orders,
            bad_names,
            too_deep,
            unreadable,
        } = found;
        self.dirs.extend(dirs);
        for (path, why) in bad_names {
            self.warn_bad_name(&path, &why);
        }
        for dir in too_deep {
            warn!(dir = %dir.display(), "directory nesting deeper than {MAX_DEPTH} levels is not scanned");
        }
        for (dir, e) in unreadable {
            warn!(dir = %dir.display(), error = %e, "cannot read directory");
        }
        orders
    }

    /// The safety net, a little at a time: every
    /// `rescan_interval` the mtime of every directory below `orders/` and
    /// `telegraf/` is checked, and a directory that changed is listed again
    /// (files added or removed); every tick, the next slice of the paced
    /// pass looks at known order files (in-place rewrites, expiry).
    ///
    /// Returns how long to wait before the next tick: with few files (at
    /// most [`PACE_RATE`]) the whole pass runs with the directory check,
    /// once per interval, and an idle daemon wakes only then.
    pub fn pace_tick(&mut self) -> Duration {
        let checked = self.dirs_checked.elapsed() >= self.rescan_interval;
        if checked {
            self.dirs_checked = Instant::now();
            self.check_dirs();
        }
        let n = self.orders.len() + self.invalid.len();
        if n <= PACE_RATE {
            if checked {
                self.pass.clear();
                self.pace_slice(n);
            }
            return self
                .rescan_interval
                .saturating_sub(self.dirs_checked.elapsed());
        }
        let slice = pace_slice_len(n, self.rescan_interval);
        self.pace_slice(slice);
        PACE_TICK
    }

    /// Looks at the next `len` files of the paced pass, starting a new pass
    /// over every known order file when the last one is done.
    fn pace_slice(&mut self, len: usize) {
        if self.pass_pos >= self.pass.len() {
            self.pass = self
                .orders
                .keys()
                .chain(self.invalid.keys())
                .cloned()
                .collect();
            self.pass_pos = 0;
            if self.pass.is_empty() {
                return;
            }
        }
        let end = (self.pass_pos + len.max(1)).min(self.pass.len());
        let files: Vec<OrderId> = self.pass[self.pass_pos..end].to_vec();
        self.pass_pos = end;
        self.stats
            .files_checked
            .fetch_add(files.len() as u64, std::sync::atomic::Ordering::Relaxed);
        let sidecars = Sidecars::Known(std::mem::take(&mut self.sidecar_ids));
        self.load_many(files, false, &sidecars);
        let Sidecars::Known(ids) = sidecars else {
            unreachable!()
        };
        self.sidecar_ids = ids;
    }

    /// Lists again every directory whose mtime changed since its listing
    /// (or that is gone); see [`Registry::pace_tick`].
    pub fn check_dirs(&mut self) {
        let mut changed = Vec::new();
        let mut gone = Vec::new();
        for (dir, seen) in &self.dirs {
            match std::fs::symlink_metadata(dir) {
                Ok(md) if md.is_dir() => {
                    if seen.changed(&md) {
                        changed.push(dir.clone());
                    }
                }
                _ => gone.push(dir.clone()),
            }
        }
        let mut telegraf_changed = false;
        for dir in gone {
            self.dirs.retain(|d, _| !d.starts_with(&dir));
            if dir.starts_with(&self.base.telegraf) {
                telegraf_changed = true;
            } else {
                self.handle_path(&dir);
            }
        }
        changed.sort();
        for dir in changed {
            self.stats
                .dirs_listed
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if dir.starts_with(&self.base.telegraf) {
                telegraf_changed = true;
            } else if self.dirs.contains_key(&dir) {
                self.relist(&dir);
            }
        }
        if telegraf_changed {
            self.relist_sidecars();
        }
    }

    /// Lists one directory below `orders/` again: its new files are loaded,
    /// orders whose file left it stop, and new subdirectories are walked.
    fn relist(&mut self, dir: &Path) {
        let found = scan::list_orders(&self.base.orders, dir);
        let subdirs: Vec<PathBuf> = found
            .dirs
            .iter()
            .filter(|(d, _)| d != dir && !self.dirs.contains_key(d))
            .map(|(d, _)| d.clone())
            .collect();
        // Known subdirectories keep what their own listing found.
        let own = found
            .dirs
            .iter()
            .find(|(d, _)| d == dir)
            .map(|(_, seen)| *seen);
        let files = self.found(Found {
            dirs: own
                .map(|seen| (dir.to_path_buf(), seen))
                .into_iter()
                .collect(),
            ..found
        });
        let names: HashSet<&OrderId> = files.iter().collect();
        let in_dir =
            |id: &OrderId| id.under(&self.base.orders).parent() == Some(dir) && !names.contains(id);
        let gone: Vec<OrderId> = self
            .orders
            .keys()
            .filter(|id| in_dir(id))
            .cloned()
            .collect();
        let gone_invalid: Vec<OrderId> = self
            .invalid
            .keys()
            .chain(self.retry.keys())
            .filter(|id| in_dir(id))
            .cloned()
            .collect();
        drop(names);
        for id in gone {
            info!(order = %id, "order file gone; order stopped");
            self.deactivate(&id, true);
        }
        for id in gone_invalid {
            self.invalid.remove(&id);
            self.retry.remove(&id);
        }
        let new: Vec<OrderId> = files
            .into_iter()
            .filter(|id| {
                !self.orders.contains_key(id)
                    && !self.invalid.contains_key(id)
                    && !self.retry.contains_key(id)
            })
            .collect();
        self.load_many(new, false, &Sidecars::Stat);
        for sub in subdirs {
            self.walk_new_dir(&sub);
        }
    }

    /// Lists `telegraf/` again; orders whose sidecar appeared or went away
    /// are loaded again.
    fn relist_sidecars(&mut self) {
        let (ids, dirs) = scan::sidecar_ids(&self.base.telegraf);
        self.dirs.retain(|d, _| !d.starts_with(&self.base.telegraf));
        self.dirs.extend(dirs);
        let flipped: Vec<OrderId> = ids
            .symmetric_difference(&self.sidecar_ids)
            .filter(|id| self.orders.contains_key(*id))
            .cloned()
            .collect();
        self.sidecar_ids = ids;
        for id in flipped {
            let path = id.under(&self.base.orders);
            self.load(&id, &path, true);
        }
    }

    /// A file whose name cannot be an order id is left alone; say so once.
    fn warn_bad_name(&mut self, path: &Path, why: &str) {
        if self.bad_names.insert(path.to_path_buf()) {
            warn!(path = %path.display(), "file in orders/ ignored: {why}");
        }
    }

    /// A hint that `path` changed.
    fn handle_path(&mut self, path: &Path) {
        if path.starts_with(&self.base.telegraf) {
            // A sidecar changed (any id): reload the order of the same id;
            // for a new directory, the orders of every sidecar below it.
            let ids: Vec<OrderId> = if path.is_dir() {
                walkdir::WalkDir::new(path)
                    .max_depth(MAX_DEPTH)
                    .into_iter()
                    .filter_map(Result::ok)
                    .filter(|e| !e.file_type().is_dir())
                    .filter_map(|e| OrderId::from_path(&self.base.telegraf, e.path()).ok())
                    .collect()
            } else {
                OrderId::from_path(&self.base.telegraf, path)
                    .ok()
                    .into_iter()
                    .collect()
            };
            for id in ids {
                let order_path = id.under(&self.base.orders);
                let is_dir = std::fs::symlink_metadata(&order_path).is_ok_and(|m| m.is_dir());
                if !is_dir && (order_path.exists() || self.orders.contains_key(&id)) {
                    self.load(&id, &order_path, true);
                }
            }
            return;
        }
        if !path.starts_with(&self.base.orders) || path == self.base.orders {
            if path == self.base.orders {
                self.full_rescan();
            }
            return;
        }
        if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(is_ignored_name)
        {
            return;
        }
        match std::fs::symlink_metadata(path) {
            Ok(md) if md.is_dir() => {
                // A new (or renamed) directory: its files may predate its
                // watch, which the watcher adds only after reporting the
                // directory, so walk it now and again shortly.
                self.walk_new_dir(path);
                let now = Instant::now();
                for after in NEW_DIR_REWALKS {
                    self.rewalk.push((now + after, path.to_path_buf()));
                }
            }
            Ok(_) => {
                if let Ok(id) = OrderId::from_path(&self.base.orders, path) {
                    self.load(&id, path, false);
                }
            }
            Err(_) => {
                // Gone: the order itself, or a directory with orders in it.
                if let Ok(id) = OrderId::from_path(&self.base.orders, path) {
                    let prefix = format!("{id}/");
                    let gone: Vec<OrderId> = self
                        .orders
                        .keys()
                        .filter(|o| **o == id || o.as_str().starts_with(&prefix))
                        .cloned()
                        .collect();
                    for g in gone {
                        info!(order = %g, "order file removed; order stopped");
                        self.deactivate(&g, true);
                    }
                    self.invalid
                        .retain(|o, _| *o != id && !o.as_str().starts_with(&prefix));
                    self.retry
                        .retain(|o, _| *o != id && !o.as_str().starts_with(&prefix));
                }
            }
        }
    }

    /// Loads every order file below a new directory.
    fn walk_new_dir(&mut self, dir: &Path) {
        let found = self.walk(dir);
        self.load_many(found, false, &Sidecars::Stat);
    }

    /// When the next retry or re-walk is due, if any is waiting.
    fn next_due(&self) -> Option<Instant> {
        self.retry
            .values()
            .copied()
            .chain(self.rewalk.iter().map(|(at, _)| *at))
            .min()
    }

    fn run_due_retries(&mut self) {
        let now = Instant::now();
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.rewalk)
            .into_iter()
            .partition(|(at, _)| *at <= now);
        self.rewalk = later;
        for (_, dir) in due {
            if dir.is_dir() {
                self.walk_new_dir(&dir);
            }
        }
        let due: Vec<OrderId> = self
            .retry
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            self.retry.remove(&id);
            let path = id.under(&self.base.orders);
            self.load(&id, &path, true);
        }
    }

    // ---- loading -----------------------------------------------------------

    /// Reads and validates the order `id` at `path` (unless unchanged and not
    /// `force`d), then activates, replaces or stops it.
    fn load(&mut self, id: &OrderId, path: &Path, force: bool) {
        let look = self.looker().look(id, path, force, &Sidecars::Stat);
        self.apply(id, path, look);
    }

    /// Loads many order files: looked at by [`LOOK_THREADS`] threads in
    /// batches (stat, read, parse: nothing is changed), each batch then
    /// applied here in order. Bounded memory: one batch of parsed orders
    /// at a time.
    fn load_many(&mut self, files: Vec<OrderId>, force: bool, sidecars: &Sidecars) {
        let threads = look_threads();
        for batch in files.chunks(LOOK_BATCH) {
            let looker = self.looker();
            let looks: Vec<Look> = if threads < 2 || batch.len() < 64 {
                batch
                    .iter()
                    .map(|id| looker.look(id, &id.under(&self.base.orders), force, sidecars))
                    .collect()
            } else {
                let per = batch.len().div_ceil(threads);
                let this = &looker;
                std::thread::scope(|sc| {
                    let parts: Vec<_> = batch
                        .chunks(per)
                        .map(|part| {
                            sc.spawn(move || {
                                crate::priority::background_thread();
                                part.iter()
                                    .map(|id| {
                                        this.look(
                                            id,
                                            &id.under(this.base_orders()),
                                            force,
                                            sidecars,
                                        )
                                    })
                                    .collect::<Vec<Look>>()
                            })
                        })
                        .collect();
                    parts
                        .into_iter()
                        .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                        .collect()
                })
            };
            for (id, look) in batch.iter().zip(looks) {
                let path = id.under(&self.base.orders);
                self.apply(id, &path, look);
            }
            // A million orders' store commands are not held here at once.
            if let Some(tx) = &self.forward {
                for cmd in self.pending_store.drain(..) {
                    let _ = tx.send(cmd);
                }
            }
        }
    }

    /// The read-only view [`Looker::look`] needs.
    fn looker(&self) -> Looker<'_> {
        Looker {
            base: &self.base,
            orders_canon: &self.orders_canon,
            max_age: self.max_age,
            orders: &self.orders,
            invalid: &self.invalid,
            retry: &self.retry,
        }
    }

    /// Acts on what [`Looker::look`] found.
    fn apply(&mut self, id: &OrderId, path: &Path, look: Look) {
        let (stamp, sidecar, parsed) = match look {
            Look::Unchanged => return,
            Look::Gone => {
                if self.orders.contains_key(id) {
                    info!(order = %id, "order file removed; order stopped");
                    self.deactivate(id, true);
                }
                self.invalid.remove(id);
                self.retry.remove(id);
                return;
            }
            Look::Unusable(e) => {
                self.reject(id, Stamp::unknown(), e);
                return;
            }
            Look::Expired(age) => {
                self.expire(id, path, age);
                return;
            }
            Look::Read {
                stamp,
                sidecar,
                parsed,
            } => (stamp, sidecar, *parsed),
        };
        match parsed {
            Ok((p, merged)) => {
                for w in &p.warnings {
                    warn!(order = %id, "{w}");
                }
                let source = match merged {
                    Some(merged) => {
                        if let Some(e) = &merged.broken {
                            warn!(order = %id, error = %e, "telegraf sidecar ignored");
                        }
                        merged.source
                    }
                    None => order::MetaSource::Order,
                };
                if source != order::MetaSource::SidecarOverOrder {
                    self.sidecar_wins.remove(id);
                } else if self.sidecar_wins.insert(id.clone()) {
                    info!(order = %id, "the order file and telegraf/{id} both set measurement_name or tags: the sidecar's are used, the order file's ignored");
                }
                self.invalid.remove(id);
                self.retry.remove(id);
                if self.rejected.remove(id) && rejected::clear(&self.base, id) {
                    info!(order = %id, "valid again: earlier rejection cleared");
                }
                self.upsert(p.order, stamp, sidecar);
            }
            Err(e) => {
                let recent = stamp.age().is_some_and(|age| age < HALF_WRITTEN_GRACE);
                if recent && !self.retry.contains_key(id) {
                    debug!(order = %id, error = %e, "order does not parse yet; retrying shortly");
                    self.retry
                        .insert(id.clone(), Instant::now() + Duration::from_secs(1));
                    return;
                }
                self.reject(id, stamp, e);
            }
        }
    }

    /// Moves an invalid order file to `rejected/<id>` with an explanation,
    /// logs it once, and stops the order if it was running. If the file
    /// cannot be moved it stays in place and is remembered, so it is still
    /// logged only once per version.
    fn reject(&mut self, id: &OrderId, stamp: Stamp, e: OrderError) {
        self.retry.remove(id);
        let path = id.under(&self.base.orders);
        match rejected::reject(&self.base, id, &path, &e, crate::clock::unix_s()) {
            Ok(dst) => {
                error!(order = %id, moved_to = %dst.display(), "invalid order: {e}");
                self.rejected.insert(id.clone());
                self.invalid.remove(id);
            }
            Err(move_err) => {
                if self.invalid.get(id) != Some(&stamp) {
                    error!(order = %id, move_error = %move_err, "invalid order (left in place): {e}");
                }
                self.invalid.insert(id.clone(), stamp);
            }
        }
        if self.orders.contains_key(id) {
            info!(order = %id, "order stopped until a valid file is written");
            self.deactivate(id, true);
        }
    }

    /// Removes an order file not refreshed for longer than `--max-age` and
    /// archives its output (the original's rule). Its `telegraf/<id>` sidecar is a user
    /// file and stays, as with the original.
    fn expire(&mut self, id: &OrderId, path: &Path, age: Duration) {
        match std::fs::remove_file(path) {
            Ok(()) => info!(
                order = %id,
                age_s = age.as_secs(),
                max_age_s = self.max_age.as_secs(),
                "order expired (file not refreshed): file removed, output archived"
            ),
            Err(e) => {
                warn!(order = %id, error = %e, "order expired but its file cannot be removed")
            }
        }
        self.invalid.remove(id);
        self.retry.remove(id);
        if self.orders.contains_key(id) {
            self.deactivate(id, true);
        } else {
            self.pending_store
                .push(StoreCmd::Archive { id: id.clone() });
        }
    }

    /// Archives every directory below `output/` that holds files but has no
    /// active order (run at start-up, after the first scan).
    fn archive_orphans(&mut self) {
        let mut n = 0;
        // The directories of running orders are not even read.
        let orders = &self.orders;
        let dirs = scan::dirs_below(&self.base.output, |_, id, has_files| {
            id.is_none_or(|id| !orders.contains_key(id)) && has_files()
        });
        for dir in dirs {
            match dir {
                Ok(id) if !self.orders.contains_key(&id) => {
                    self.pending_store.push(StoreCmd::Archive { id });
                    n += 1;
                }
                Ok(_) => {}
                Err(dir) => {
                    warn!(dir = %dir.display(), "output directory with an impossible id left alone")
                }
            }
        }
        if n > 0 {
            info!(count = n, "archiving output of orders that no longer exist");
        }
    }

    // ---- placement -----------------------------------------------------------

    fn upsert(&mut self, order: Order, stamp: Stamp, sidecar: Option<Stamp>) {
        let changed = match self.orders.get_mut(&order.id) {
            Some(e) if *e.order == order => {
                e.stamp = stamp;
                e.sidecar = sidecar.map(Box::new);
                debug!(order = %order.id, "order refreshed");
                return;
            }
            Some(_) => true,
            None => false,
        };
        if changed {
            let id = order.id.clone();
            self.deactivate(&id, false);
        }
        let measurement = order
            .telegraf
            .as_ref()
            .and_then(|t| t.measurement_name.as_deref())
            .unwrap_or("-");
        let what = if changed {
            "order changed"
        } else {
            "order started"
        };
        macro_rules! announce {
            ($level:ident) => {
                $level!(
                    order = %order.id,
                    user = %order.user,
                    probe = %order.probe.name(),
                    target = %order.probe.target(),
                    step = order.step,
                    pings = order.pings,
                    measurement = %measurement,
                    "{what}"
                )
            };
        }
        // The first scan can start 100,000 orders: one summary line at info
        // ("initial scan done"), each order at debug.
        if self.initial_scan_done {
            announce!(info);
        } else {
            announce!(debug);
        }
        self.next_generation += 1;
        let generation = self.next_generation;
        let order = Arc::new(order);
        // One clock reading for both: the order joins rounds from the first
        // boundary after it, and its new main.rrd starts one step before.
        let started_ms = crate::clock::unix_ms();
        let job = self.pool.place(
            JobKey::of(&order),
            Member {
                order: order.clone(),
                generation,
                active_from_ms: schedule::next_round_start_ms(started_ms, order.step, 0),
            },
        );
        self.pending_store.push(StoreCmd::Prepare {
            id: order.id.clone(),
            generation,
            shape: Shape {
                step: order.step,
                pings: order.pings,
                rrd: order.rrd == order::RrdTemplate::Smokeping,
            },
            rrd_start: schedule::rrd_create_start(started_ms.div_euclid(1000), order.step),
        });
        self.orders.insert(
            order.id.clone(),
            Entry {
                order,
                stamp,
                sidecar: sidecar.map(Box::new),
                job: job.job,
            },
        );
    }

    /// Takes an order out of its job (stopping the job when it empties) and,
    /// when the order ended (rather than changed), archives its output.
    fn deactivate(&mut self, id: &OrderId, archive: bool) {
        let Some(entry) = self.orders.remove(id) else {
            return;
        };
        if archive {
            self.pending_store
                .push(StoreCmd::Archive { id: id.clone() });
        }
        let slot = Slot {
            key: JobKey::of(&entry.order),
            job: entry.job,
        };
        self.pool.remove(&slot, id);
    }
}

/// What looking at order files reads of the registry (shared by the
/// threads of [`Registry::load_many`]).
struct Looker<'a> {
    base: &'a BaseDir,
    orders_canon: &'a Path,
    max_age: Duration,
    orders: &'a HashMap<OrderId, Entry>,
    invalid: &'a HashMap<OrderId, Stamp>,
    retry: &'a HashMap<OrderId, Instant>,
}

impl Looker<'_> {
    fn base_orders(&self) -> &Path {
        &self.base.orders
    }

    /// What the file of order `id` at `path` holds, read-only: its
    /// metadata, whether it expired or is unchanged, else its parsed
    /// content (with its sidecar merged). Safe to run on many threads.
    fn look(&self, id: &OrderId, path: &Path, force: bool, sidecars: &Sidecars) -> Look {
        // A file that will be read anyway (not seen before, or forced) is
        // opened first: open, fstat, one read, close. Anything but a plain
        // regular file (a symlink, a FIFO, ...) takes the checked way below.
        let known = self.orders.contains_key(id)
            || self.invalid.contains_key(id)
            || self.retry.contains_key(id);
        if force || !known {
            match order::open_order_nofollow(path) {
                Ok((f, md)) if md.is_file() => {
                    let stamp = Stamp::of(&md);
                    if let Some(age) = stamp.age() {
                        if age > self.max_age {
                            return Look::Expired(age);
                        }
                    }
                    let sidecar = self.sidecar_stamp(id, sidecars);
                    let parsed = order::read_opened_order(path, id, f, &md);
                    return self.read(stamp, sidecar, parsed);
                }
                Ok((_, md)) if md.is_dir() => return Look::Gone,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Look::Gone,
                _ => {}
            }
        }
        let md = match scan::order_metadata(path, self.orders_canon) {
            Ok(Some(md)) => md,
            Ok(None) => return Look::Gone,
            Err(e) => return Look::Unusable(e),
        };
        let stamp = Stamp::of(&md);
        if let Some(age) = stamp.age() {
            if age > self.max_age {
                return Look::Expired(age);
            }
        }
        let sidecar = self.sidecar_stamp(id, sidecars);
        if !force {
            if let Some(e) = self.orders.get(id) {
                if e.stamp == stamp && e.sidecar.as_deref() == sidecar.as_ref() {
                    return Look::Unchanged;
                }
            }
            if self.invalid.get(id) == Some(&stamp) || self.retry.contains_key(id) {
                return Look::Unchanged;
            }
        }
        let parsed = order::read_order_file(path, id);
        self.read(stamp, sidecar, parsed)
    }

    fn sidecar_stamp(&self, id: &OrderId, sidecars: &Sidecars) -> Option<Stamp> {
        match sidecars {
            Sidecars::Known(known) if !known.contains(id) => None,
            _ => scan::sidecar_stamp(&self.base.telegraf, id),
        }
    }

    /// A file read: its order with its sidecar merged.
    fn read(
        &self,
        stamp: Stamp,
        sidecar: Option<Stamp>,
        parsed: Result<order::Parsed, OrderError>,
    ) -> Look {
        let parsed = parsed.map(|mut p| {
            let merged = sidecar
                .is_some()
                .then(|| order::merge_sidecar(&mut p.order, &self.base.telegraf));
            (p, merged)
        });
        Look::Read {
            stamp,
            sidecar,
            parsed: Box::new(parsed),
        }
    }
}

/// Files per one-second slice of the paced pass over `n` files: a whole
/// pass takes `max(interval, n / PACE_RATE)`.
fn pace_slice_len(n: usize, interval: Duration) -> usize {
    let period_s = interval.as_secs_f64().max(n as f64 / PACE_RATE as f64);
    ((n as f64 * PACE_TICK.as_secs_f64() / period_s).ceil() as usize).max(1)
}

/// Sleeps until `due`, or forever when nothing is due.
async fn sleep_until_due(due: Option<Instant>) {
    match due {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::jobs::tests::Recorder;
    use super::*;
    use std::time::SystemTime;

    /// Sets the mtime of `path` `secs` seconds into the past.
    fn age(path: &Path, secs: u64) {
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(SystemTime::now() - Duration::from_secs(secs))
            .unwrap();
    }

    const FPING: &str = "user: u\nstep: 60\npings: 5\nprobe: fping\nfping: {host: 127.0.0.1}\n";

    struct Fixture {
        _dir: tempfile::TempDir,
        base: BaseDir,
        reg: Registry<Recorder>,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let base = BaseDir::new(dir.path());
        base.create().unwrap();
        let (store, _rx) = StoreHandle::capture();
        let reg = Registry::new(
            base.clone(),
            Recorder::default(),
            store,
            Arc::new(JobStats::default()),
            CancellationToken::new(),
            Duration::from_secs(3600),
        );
        Fixture {
            _dir: dir,
            base,
            reg,
        }
    }

    impl Fixture {
        fn write(&self, id: &str, yaml: &str) -> PathBuf {
            let path = self.base.orders.join(id);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, yaml).unwrap();
            path
        }

        /// Store commands queued so far, as `prepare <id> <generation>
        /// <step>` and `archive <id>`.
        fn store_cmds(&mut self) -> Vec<String> {
            std::mem::take(&mut self.reg.pending_store)
                .into_iter()
                .map(|c| match c {
                    StoreCmd::Prepare {
                        id,
                        generation,
                        shape,
                        ..
                    } => format!("prepare {id} {generation} {}", shape.step),
                    StoreCmd::Archive { id } => format!("archive {id}"),
                    StoreCmd::Round { id, .. } => format!("round {id}"),
                })
                .collect()
        }

        /// Published members of the running jobs.
        fn running(&mut self) -> Vec<(String, Vec<String>)> {
            self.reg.publish();
            let mut r = self.reg.pool.launcher().running();
            r.sort();
            r
        }
    }

    #[test]
    fn places_orders_in_jobs_by_key_and_capacity() {
        let mut f = fixture();
        f.write("app/a", FPING);
        f.write("app/b", &FPING.replace("127.0.0.1", "127.0.0.2"));
        f.write(
            "app/c",
            "user: u\nstep: 60\npings: 5\nprobe: tcp\ntcp: {host: 127.0.0.1, port: 1}\n",
        );
        for i in 0..16 {
            f.write(
                &format!("web/h{i:02}"),
                "user: u\nstep: 60\npings: 5\nprobe: httping\nhttping: {url: 'http://127.0.0.1:1/'}\n",
            );
        }
        f.reg.full_rescan();
        assert_eq!(
            f.reg.counts(),
            Counts {
                orders: 19,
                invalid: 0,
                jobs: 4
            }
        );
        let running = f.running();
        let mut sizes: Vec<(String, usize)> = running
            .iter()
            .map(|(name, m)| (name.split_once(' ').unwrap().1.to_owned(), m.len()))
            .collect();
        sizes.sort();
        assert_eq!(
            sizes,
            [
                ("fping step=60 pings=5 ipv4".to_owned(), 2),
                ("httping step=60 pings=5".to_owned(), 1),
                ("httping step=60 pings=5".to_owned(), 15),
                ("tcp step=60 pings=5".to_owned(), 1),
            ]
        );
        let cmds = f.store_cmds();
        assert_eq!(cmds.len(), 19);
        assert!(cmds.iter().all(|c| c.starts_with("prepare ")), "{cmds:?}");
        // A rescan of unchanged files changes nothing.
        f.reg.full_rescan();
        assert!(f.store_cmds().is_empty());
        assert_eq!(f.reg.pool.launcher().jobs.len(), 4);
    }

    #[test]
    fn a_change_of_shape_moves_the_order_to_another_job() {
        let mut f = fixture();
        let path = f.write("app/a", FPING);
        f.reg.full_rescan();
        assert_eq!(f.store_cmds(), ["prepare app/a 1 60"]);
        f.write("app/a", &FPING.replace("step: 60", "step: 300"));
        f.reg.handle_path(&path);
        // Changed, not ended: no archive; a new generation with the new shape.
        assert_eq!(f.store_cmds(), ["prepare app/a 2 300"]);
        let running = f.running();
        assert_eq!(running.len(), 1, "the emptied job stopped: {running:?}");
        assert!(running[0].0.contains("step=300"), "{running:?}");
        assert_eq!(f.reg.pool.launcher().jobs.len(), 2);
        assert!(f.reg.pool.launcher().jobs[0].cancel.is_cancelled());
    }

    #[test]
    fn an_old_order_file_expires_and_its_output_is_archived() {
        let mut f = fixture();
        let path = f.write("app/a", FPING);
        let sidecar = f.base.telegraf.join("app/a");
        std::fs::create_dir_all(sidecar.parent().unwrap()).unwrap();
        std::fs::write(&sidecar, "measurement_name: m\n").unwrap();
        f.reg.full_rescan();
        assert_eq!(f.reg.counts().orders, 1);
        f.store_cmds();
        age(&path, 7200);
        f.reg.full_rescan();
        assert_eq!(f.reg.counts(), Counts::default());
        assert!(!path.exists(), "the expired order file is removed");
        assert!(sidecar.exists(), "the sidecar is a user file and stays");
        assert_eq!(f.store_cmds(), ["archive app/a"]);
        assert!(f.running().is_empty());
    }

    /// Sets the mtime of directory `dir` `secs` seconds into the past.
    fn age_dir(dir: &Path, secs: u64) {
        std::fs::File::open(dir)
            .unwrap()
            .set_modified(SystemTime::now() - Duration::from_secs(secs))
            .unwrap();
    }

    #[test]
    fn the_directory_check_sees_added_and_removed_files_without_hints() {
        let mut f = fixture();
        let a = f.write("app/a", FPING);
        let app = f.base.orders.join("app");
        age_dir(&app, 60);
        age_dir(&f.base.orders, 60);
        age_dir(&f.base.telegraf, 60);
        f.reg.full_rescan();
        f.store_cmds();
        let listed = |f: &Fixture| {
            f.reg
                .stats
                .dirs_listed
                .load(std::sync::atomic::Ordering::Relaxed)
        };
        // Nothing changed: no directory is listed again.
        f.reg.check_dirs();
        assert_eq!(listed(&f), 0, "unchanged directories are not listed");
        // A new file changes its directory's mtime.
        f.write("app/b", FPING);
        f.reg.check_dirs();
        assert_eq!(listed(&f), 1);
        assert_eq!(f.running()[0].1, ["app/a", "app/b"]);
        // Listed within MTIME_TRUST of its mtime: listed again next time.
        f.reg.check_dirs();
        assert_eq!(listed(&f), 2, "a fresh mtime is not trusted");
        age_dir(&app, 60);
        f.reg.check_dirs();
        f.reg.check_dirs();
        assert_eq!(listed(&f), 3, "trusted once old enough");
        // A removed file: its order stops and its output is archived.
        std::fs::remove_file(&a).unwrap();
        f.store_cmds();
        f.reg.check_dirs();
        assert_eq!(f.store_cmds(), ["archive app/a"]);
        assert_eq!(f.running()[0].1, ["app/b"]);
        // A new subdirectory is walked; a removed one stops its orders.
        f.write("app/sub/c", FPING);
        f.reg.check_dirs();
        assert_eq!(f.reg.counts().orders, 2);
        std::fs::remove_dir_all(app.join("sub")).unwrap();
        f.reg.check_dirs();
        assert_eq!(f.reg.counts().orders, 1);
        // A new sidecar reloads its order.
        std::fs::create_dir_all(f.base.telegraf.join("app")).unwrap();
        std::fs::write(f.base.telegraf.join("app/b"), "measurement_name: m\n").unwrap();
        f.reg.check_dirs();
        let b = &f.reg.orders[&OrderId::new("app/b").unwrap()];
        assert_eq!(
            b.order
                .telegraf
                .as_ref()
                .and_then(|t| t.measurement_name.as_deref()),
            Some("m")
        );
    }

    #[test]
    fn the_paced_pass_is_sliced_by_rate() {
        let i = Duration::from_secs(30);
        assert_eq!(
            pace_slice_len(20_000, i),
            667,
            "30 s for 300,000 files or fewer"
        );
        assert_eq!(pace_slice_len(300_000, i), 10_000);
        assert_eq!(
            pace_slice_len(1_000_000, i),
            PACE_RATE,
            "100 s at a million"
        );
        assert_eq!(pace_slice_len(1, i), 1);
    }

    #[test]
    fn the_paced_pass_sees_in_place_rewrites_and_expiry() {
        let mut f = fixture();
        f.reg = std::mem::replace(&mut f.reg, fixture().reg)
            .with_rescan_interval(Duration::from_secs(2));
        for i in 0..4 {
            f.write(&format!("app/o{i}"), FPING);
        }
        f.reg.full_rescan();
        f.store_cmds();
        // Rewritten in place (no hint; the directory's mtime unchanged).
        let o1 = f.base.orders.join("app/o1");
        std::fs::write(&o1, FPING.replace("step: 60", "step: 30")).unwrap();
        age(&f.base.orders.join("app/o2"), 7200);
        // Few files: the whole pass runs with the directory check, once
        // per interval (an idle daemon does not wake every second).
        f.reg.pace_tick();
        assert_eq!(
            f.reg
                .stats
                .files_checked
                .load(std::sync::atomic::Ordering::Relaxed),
            0,
            "not before the interval"
        );
        f.reg.dirs_checked = Instant::now() - Duration::from_secs(2);
        let next = f.reg.pace_tick();
        assert!(
            next > Duration::from_secs(1) && next <= Duration::from_secs(2),
            "{next:?}"
        );
        assert_eq!(
            f.reg
                .stats
                .files_checked
                .load(std::sync::atomic::Ordering::Relaxed),
            4
        );
        assert_eq!(
            f.reg.orders[&OrderId::new("app/o1").unwrap()].order.step,
            30
        );
        assert!(!f.base.orders.join("app/o2").exists(), "expired");
        assert_eq!(f.reg.counts().orders, 3);
    }

    #[test]
    fn a_sidecar_change_reloads_the_order() {
        let mut f = fixture();
        f.write("app/a", FPING);
        f.reg.full_rescan();
        f.store_cmds();
        let telegraf = |f: &Fixture| {
            f.reg.orders[&OrderId::new("app/a").unwrap()]
                .order
                .telegraf
                .clone()
        };
        assert_eq!(telegraf(&f), None);
        let sidecar = f.base.telegraf.join("app/a");
        std::fs::create_dir_all(sidecar.parent().unwrap()).unwrap();
        std::fs::write(&sidecar, "measurement_name: tunnel\ntags: {id: 7}\n").unwrap();
        f.reg.handle_path(&sidecar);
        let meta = telegraf(&f).expect("the sidecar's settings are used");
        assert_eq!(meta.measurement_name.as_deref(), Some("tunnel"));
        assert_eq!(meta.tags["id"], "7");
        assert_eq!(f.store_cmds(), ["prepare app/a 2 60"], "a new generation");
        let running = f.running();
        assert_eq!(running[0].1, ["app/a"]);
        std::fs::remove_file(&sidecar).unwrap();
        f.reg.handle_path(&sidecar);
        assert_eq!(telegraf(&f), None);
        assert_eq!(f.store_cmds(), ["prepare app/a 3 60"]);
        // A sidecar without an order file starts nothing.
        std::fs::write(f.base.telegraf.join("app/b"), "measurement_name: x\n").unwrap();
        f.reg.handle_path(&f.base.telegraf.join("app/b"));
        assert_eq!(f.reg.counts().orders, 1);
    }

    #[test]
    fn invalid_orders_are_retried_while_fresh_then_rejected() {
        let mut f = fixture();
        let path = f.write("app/bad", "user: u\nstep: 60\n");
        f.reg.full_rescan();
        assert!(path.exists(), "a fresh file may be half-written: retried");
        assert!(f.reg.next_due().is_some());
        age(&path, 60);
        f.reg.retry.clear();
        f.reg.full_rescan();
        assert!(!path.exists());
        assert!(f.base.rejected.join("app/bad").exists());
        assert_eq!(f.reg.counts(), Counts::default());
        assert!(f.store_cmds().is_empty());
    }
}
