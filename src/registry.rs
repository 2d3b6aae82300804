//! The registry: the one owner of the set of active orders.
//!
//! It turns watcher hints and rescans into a reconciled state: every valid
//! order file under `orders/` is in exactly one job, every job has a task,
//! and orders whose file vanished or turned invalid are out of their job.
//! Nothing else mutates this state; jobs see their membership through a
//! `watch` channel that the registry republishes after each batch.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, warn};

use crate::basedir::BaseDir;
use crate::job::{self, FpingKey, JobCtx, JobKey, Member, Members, OtherKey, ProbeDeps};
use crate::order::id::is_ignored_name;
use crate::order::{self, Order, OrderError, OrderId, ProbeSpec};
use crate::rejected;
use crate::schedule;
use crate::sink::Sinks;
use crate::store::{Shape, StoreCmd, StoreHandle};
use crate::supervise::Supervisor;
use crate::watch::{OrderWatcher, WatchEvent};

/// Interval of the safety-net full rescan (SPEC B2).
pub const RESCAN_INTERVAL: Duration = Duration::from_secs(30);
/// A file that fails to parse and was modified this recently is retried
/// rather than reported: its writer may not be done yet.
pub const HALF_WRITTEN_GRACE: Duration = Duration::from_secs(5);
/// Deepest directory nesting scanned below `orders/`.
const MAX_DEPTH: usize = 32;
/// A new directory under `orders/` is walked when its hint arrives, and
/// again this long after: the file watcher reports a new directory before
/// it watches it, so a file created in between raises no event of its own.
const NEW_DIR_REWALKS: [Duration; 2] = [Duration::from_secs(1), Duration::from_secs(5)];

/// Identity of a file version: a rewrite or rename-over changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    mtime: Option<SystemTime>,
    len: u64,
    ino: u64,
}

impl Stamp {
    fn of(md: &std::fs::Metadata) -> Stamp {
        use std::os::unix::fs::MetadataExt;
        Stamp {
            mtime: md.modified().ok(),
            len: md.len(),
            ino: md.ino(),
        }
    }
}

#[derive(Debug)]
struct Entry {
    order: Arc<Order>,
    stamp: Stamp,
    sidecar: Option<Stamp>,
    job: Option<(JobKey, u64)>,
}

#[derive(Debug)]
struct Job {
    id: u64,
    members: BTreeMap<OrderId, Member>,
    tx: watch::Sender<Members>,
    cancel: CancellationToken,
    capacity: usize,
    dirty: bool,
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

/// The registry; see the module docs.
#[derive(Debug)]
pub struct Registry {
    base: BaseDir,
    orders_canon: PathBuf,
    deps: Arc<ProbeDeps>,
    store: StoreHandle,
    sinks: Arc<Sinks>,
    tracker: TaskTracker,
    cancel: CancellationToken,
    orders: HashMap<OrderId, Entry>,
    invalid: HashMap<OrderId, Stamp>,
    retry: HashMap<OrderId, Instant>,
    /// New directories to walk again, and when.
    rewalk: Vec<(Instant, PathBuf)>,
    jobs: HashMap<JobKey, Vec<Job>>,
    next_generation: u64,
    next_job: u64,
    /// Store commands produced while processing, sent after the batch.
    pending_store: Vec<StoreCmd>,
    /// Order files older than this are expired.
    max_age: Duration,
    /// Paths already reported as unusable names.
    bad_names: HashSet<PathBuf>,
    /// Orders whose sidecar overrides their own line-protocol settings
    /// (logged once).
    sidecar_wins: HashSet<OrderId>,
    /// False during the first scan (quieter logging).
    initial_scan_done: bool,
    /// Interval of the safety-net rescan.
    rescan_interval: Duration,
    /// Told when a job task panics.
    supervisor: Supervisor,
}

impl Registry {
    /// A registry for `base`; job tasks are spawned on `tracker` and stop
    /// with `cancel`.
    pub fn new(
        base: BaseDir,
        deps: Arc<ProbeDeps>,
        store: StoreHandle,
        sinks: Arc<Sinks>,
        tracker: TaskTracker,
        cancel: CancellationToken,
        max_age: Duration,
    ) -> Registry {
        let orders_canon =
            std::fs::canonicalize(&base.orders).unwrap_or_else(|_| base.orders.clone());
        Registry {
            base,
            orders_canon,
            deps,
            store,
            sinks,
            tracker,
            cancel,
            orders: HashMap::new(),
            invalid: HashMap::new(),
            retry: HashMap::new(),
            rewalk: Vec::new(),
            jobs: HashMap::new(),
            next_generation: 0,
            next_job: 0,
            pending_store: Vec::new(),
            max_age,
            bad_names: HashSet::new(),
            sidecar_wins: HashSet::new(),
            initial_scan_done: false,
            rescan_interval: RESCAN_INTERVAL,
            supervisor: Supervisor::new(),
        }
    }

    /// Reports panicking job tasks to `sup` (default: a supervisor nobody
    /// watches).
    pub fn with_supervisor(mut self, sup: Supervisor) -> Registry {
        self.supervisor = sup;
        self
    }

    /// Sets the interval of the safety-net rescan (default [`RESCAN_INTERVAL`]).
    pub fn with_rescan_interval(mut self, every: Duration) -> Registry {
        self.rescan_interval = every;
        self
    }

    /// Current counts.
    pub fn counts(&self) -> Counts {
        Counts {
            orders: self.orders.len(),
            invalid: self.invalid.len(),
            jobs: self.jobs.values().map(Vec::len).sum(),
        }
    }

    /// Runs until cancelled: initial scan, then hints, retries and rescans.
    pub async fn run(mut self, mut rx: mpsc::Receiver<WatchEvent>, watcher: OrderWatcher) {
        let started = Instant::now();
        tokio::task::block_in_place(|| {
            self.full_rescan();
            self.archive_orphans();
        });
        // Every order is scheduled once its job has it; the writers create
        // the output directories meanwhile (before any first round).
        self.publish();
        let scheduled_ms = (started.elapsed().as_millis() as u64).max(1);
        self.flush().await;
        self.initial_scan_done = true;
        let c = self.counts();
        self.deps
            .stats
            .initial_scan_ms
            .store(scheduled_ms, std::sync::atomic::Ordering::Relaxed);
        info!(
            orders = c.orders,
            invalid = c.invalid,
            jobs = c.jobs,
            elapsed_ms = scheduled_ms,
            with_output_dirs_ms = started.elapsed().as_millis() as u64,
            "initial scan done; all orders scheduled"
        );
        let mut rescan = tokio::time::interval_at(
            tokio::time::Instant::now() + self.rescan_interval,
            self.rescan_interval,
        );
        rescan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
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
                _ = rescan.tick() => tokio::task::block_in_place(|| self.full_rescan()),
                () = watcher.overflowed() => {
                    if watcher.take_overflow() {
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
        for jobs in self.jobs.values() {
            for j in jobs {
                j.cancel.cancel();
            }
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
            self.full_rescan();
            return;
        }
        for p in paths {
            self.handle_path(&p);
        }
    }

    /// Publishes changed job memberships and sends queued store commands.
    async fn flush(&mut self) {
        self.publish();
        for cmd in std::mem::take(&mut self.pending_store) {
            self.store.send(cmd).await;
        }
    }

    /// Publishes changed job memberships: from here on the jobs run the
    /// new orders.
    fn publish(&mut self) {
        let c = self.counts();
        crate::proctitle::set(&crate::proctitle::orders_title(c.orders));
        self.deps
            .stats
            .orders
            .store(c.orders as u64, std::sync::atomic::Ordering::Relaxed);
        self.deps
            .stats
            .jobs
            .store(c.jobs as u64, std::sync::atomic::Ordering::Relaxed);
        for jobs in self.jobs.values_mut() {
            for j in jobs.iter_mut().filter(|j| j.dirty) {
                j.tx.send_replace(Arc::new(j.members.values().cloned().collect()));
                j.dirty = false;
            }
        }
    }

    // ---- scanning ----------------------------------------------------------

    /// Reconciles with everything under `orders/`.
    pub fn full_rescan(&mut self) {
        let mut found = Vec::new();
        let orders_dir = self.base.orders.clone();
        self.walk(&orders_dir, 0, &mut found);
        let present: HashSet<OrderId> = found.iter().map(|(id, _)| id.clone()).collect();
        for (id, path) in found {
            self.load(&id, &path, false);
        }
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

    /// Collects `(id, path)` of every candidate order file below `dir`.
    fn walk(&mut self, dir: &Path, depth: usize, out: &mut Vec<(OrderId, PathBuf)>) {
        if depth > MAX_DEPTH {
            warn!(dir = %dir.display(), "directory nesting deeper than {MAX_DEPTH} levels is not scanned");
            return;
        }
        let rd = match std::fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) => {
                if e.kind() != std::io::ErrorKind::NotFound {
                    warn!(dir = %dir.display(), error = %e, "cannot read directory");
                }
                return;
            }
        };
        for ent in rd.flatten() {
            let name = ent.file_name();
            let Some(name) = name.to_str() else {
                self.warn_bad_name(&ent.path(), "its name is not UTF-8");
                continue;
            };
            if is_ignored_name(name) {
                continue;
            }
            let path = ent.path();
            match ent.file_type() {
                Ok(ft) if ft.is_dir() => self.walk(&path, depth + 1, out),
                // Files, symlinks, and what cannot be an order (a FIFO, a
                // socket): load() rejects the latter, at start-up as later.
                Ok(_) => match OrderId::from_path(&self.base.orders, &path) {
                    Ok(id) => out.push((id, path)),
                    Err(why) => self.warn_bad_name(&path, &why),
                },
                Err(_) => {}
            }
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
        let mut found = Vec::new();
        self.walk(dir, 0, &mut found);
        for (id, p) in found {
            self.load(&id, &p, false);
        }
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
        let md = match self.order_metadata(path) {
            Ok(Some(md)) => md,
            Ok(None) => {
                if self.orders.contains_key(id) {
                    info!(order = %id, "order file removed; order stopped");
                    self.deactivate(id, true);
                }
                self.invalid.remove(id);
                self.retry.remove(id);
                return;
            }
            Err(e) => {
                self.reject(
                    id,
                    Stamp {
                        mtime: None,
                        len: 0,
                        ino: 0,
                    },
                    e,
                );
                return;
            }
        };
        let stamp = Stamp::of(&md);
        if let Some(age) = stamp
            .mtime
            .and_then(|m| SystemTime::now().duration_since(m).ok())
        {
            if age > self.max_age {
                self.expire(id, path, age);
                return;
            }
        }
        let sidecar = std::fs::metadata(id.under(&self.base.telegraf))
            .ok()
            .filter(|m| !m.is_dir())
            .map(|m| Stamp::of(&m));
        if !force {
            if let Some(e) = self.orders.get(id) {
                if e.stamp == stamp && e.sidecar == sidecar {
                    return;
                }
            }
            if self.invalid.get(id) == Some(&stamp) || self.retry.contains_key(id) {
                return;
            }
        }
        let parsed = order::read_order_file(path, id);
        match parsed {
            Ok(mut p) => {
                for w in &p.warnings {
                    warn!(order = %id, "{w}");
                }
                if sidecar.is_some() {
                    let side = order::read_sidecar(&self.base.telegraf, id);
                    if let order::Sidecar::Broken(e) = &side {
                        warn!(order = %id, error = %e, "telegraf sidecar ignored");
                    }
                    if p.order.apply_sidecar(&side) == order::MetaSource::SidecarOverOrder {
                        if self.sidecar_wins.insert(id.clone()) {
                            info!(order = %id, "the order file and telegraf/{id} both set measurement_name or tags: the sidecar's are used, the order file's ignored");
                        }
                    } else {
                        self.sidecar_wins.remove(id);
                    }
                } else {
                    self.sidecar_wins.remove(id);
                }
                self.invalid.remove(id);
                self.retry.remove(id);
                if rejected::clear(&self.base, id) {
                    info!(order = %id, "valid again: earlier rejection cleared");
                }
                self.upsert(p.order, stamp, sidecar);
            }
            Err(e) => {
                let recent = stamp
                    .mtime
                    .and_then(|m| SystemTime::now().duration_since(m).ok())
                    .is_some_and(|age| age < HALF_WRITTEN_GRACE);
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

    /// Metadata of an order file, following a symlink only when it stays
    /// inside `orders/`. `Ok(None)` when the file does not exist.
    fn order_metadata(&self, path: &Path) -> Result<Option<std::fs::Metadata>, OrderError> {
        let err = |reason: String| OrderError {
            file: path.to_path_buf(),
            field: None,
            value: None,
            reason,
            line: None,
        };
        let md = match std::fs::symlink_metadata(path) {
            Ok(md) => md,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(err(format!("cannot stat file: {e}"))),
        };
        if md.file_type().is_symlink() {
            let target = match std::fs::canonicalize(path) {
                Ok(t) => t,
                Err(_) => return Err(err("symlink points to nothing".into())),
            };
            if !target.starts_with(&self.orders_canon) {
                return Err(err(format!(
                    "symlink leads outside orders/ (to {})",
                    target.display()
                )));
            }
            return match std::fs::metadata(path) {
                Ok(md) if md.is_file() => Ok(Some(md)),
                Ok(_) => Err(err("symlink does not point to a regular file".into())),
                Err(e) => Err(err(format!("cannot stat file: {e}"))),
            };
        }
        if md.is_dir() {
            // A directory is never an order file (nor rejected as one).
            return Ok(None);
        }
        if !md.is_file() {
            return Err(err("not a regular file".into()));
        }
        Ok(Some(md))
    }

    /// Moves an invalid order file to `rejected/<id>` with an explanation,
    /// logs it once, and stops the order if it was running. If the file
    /// cannot be moved it stays in place and is remembered, so it is still
    /// logged only once per version.
    fn reject(&mut self, id: &OrderId, stamp: Stamp, e: OrderError) {
        self.retry.remove(id);
        let path = id.under(&self.base.orders);
        match rejected::reject(&self.base, id, &path, &e, unix_now()) {
            Ok(dst) => {
                error!(order = %id, moved_to = %dst.display(), "invalid order: {e}");
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
    /// archives its output (SPEC A4). Its `telegraf/<id>` sidecar is a user
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
        let mut stack = vec![self.base.output.clone()];
        let mut n = 0;
        while let Some(dir) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut has_files = false;
            for ent in rd.flatten() {
                match ent.file_type() {
                    Ok(ft) if ft.is_dir() => stack.push(ent.path()),
                    Ok(_) => has_files = true,
                    Err(_) => {}
                }
            }
            if !has_files || dir == self.base.output {
                continue;
            }
            match OrderId::from_path(&self.base.output, &dir) {
                Ok(id) if !self.orders.contains_key(&id) => {
                    self.pending_store.push(StoreCmd::Archive { id });
                    n += 1;
                }
                Ok(_) => {}
                Err(e) => {
                    warn!(dir = %dir.display(), error = %e, "output directory with an impossible id left alone")
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
                e.sidecar = sidecar;
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
        let started_ms = SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let key = match &order.probe {
            ProbeSpec::Fping(f) => JobKey::Fping(FpingKey {
                step: order.step,
                pings: order.pings,
                ipv6: f.ipv6,
                interface: f.interface.clone(),
                source_ip: f.source_ip,
                interval_ms: f.interval_ms,
            }),
            other => JobKey::Other(OtherKey {
                probe: other.name(),
                step: order.step,
                pings: order.pings,
            }),
        };
        let job = Some(self.place(
            key,
            Member {
                order: order.clone(),
                generation,
                active_from_ms: schedule::next_round_start_ms(started_ms, order.step, 0),
            },
        ));
        if job.is_some() {
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
        }
        self.orders.insert(
            order.id.clone(),
            Entry {
                order,
                stamp,
                sidecar,
                job,
            },
        );
    }

    /// Puts `member` in a job with room, starting a new job when none has.
    fn place(&mut self, key: JobKey, member: Member) -> (JobKey, u64) {
        let id = member.order.id.clone();
        let jobs = self.jobs.entry(key.clone()).or_default();
        if let Some(j) = jobs.iter_mut().find(|j| j.members.len() < j.capacity) {
            j.members.insert(id, member);
            j.dirty = true;
            return (key, j.id);
        }
        self.next_job += 1;
        let job_id = self.next_job;
        let offset_ms = schedule::random_offset_ms(key.step(), key.pings(), &mut rand::rng());
        let mut members = BTreeMap::new();
        members.insert(id, member);
        let (tx, rx) = watch::channel(Arc::new(members.values().cloned().collect::<Vec<_>>()));
        let cancel = self.cancel.child_token();
        let ctx = JobCtx {
            key: key.clone(),
            offset_ms,
            deps: self.deps.clone(),
            store: self.store.clone(),
            sinks: self.sinks.clone(),
            members: rx,
            cancel: cancel.clone(),
            name: format!("job-{job_id} {}", key.label()),
        };
        let name = ctx.name.clone();
        self.tracker
            .spawn(self.supervisor.watch(name, job::run_job(ctx)));
        jobs.push(Job {
            id: job_id,
            members,
            tx,
            cancel,
            capacity: key.capacity(),
            dirty: false,
        });
        (key, job_id)
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
        let Some((key, job_id)) = entry.job else {
            return;
        };
        if let Some(jobs) = self.jobs.get_mut(&key) {
            if let Some(pos) = jobs.iter().position(|j| j.id == job_id) {
                let j = &mut jobs[pos];
                j.members.remove(id);
                j.dirty = true;
                if j.members.is_empty() {
                    j.cancel.cancel();
                    jobs.remove(pos);
                }
            }
            if jobs.is_empty() {
                self.jobs.remove(&key);
            }
        }
    }
}

/// Sleeps until `due`, or forever when nothing is due.
async fn sleep_until_due(due: Option<Instant>) {
    match due {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
