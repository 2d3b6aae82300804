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
pub mod scan;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::basedir::BaseDir;
use crate::job::{JobKey, Member};
use crate::order::id::is_ignored_name;
use crate::order::{self, Order, OrderError, OrderId};
use crate::rejected;
use crate::schedule;
use crate::stats::JobStats;
use crate::store::{Shape, StoreCmd, StoreHandle};
use crate::watch::{OrderWatcher, WatchEvent};
pub use jobs::{JobPool, Launcher, Slot, Spawner};
use scan::{Found, Stamp, MAX_DEPTH};

/// Interval of the safety-net full rescan (SPEC B2).
pub const RESCAN_INTERVAL: Duration = Duration::from_secs(30);
/// A file that fails to parse and was modified this recently is retried
/// rather than reported: its writer may not be done yet.
pub const HALF_WRITTEN_GRACE: Duration = Duration::from_secs(5);
/// A new directory under `orders/` is walked when its hint arrives, and
/// again this long after: the file watcher reports a new directory before
/// it watches it, so a file created in between raises no event of its own.
const NEW_DIR_REWALKS: [Duration; 2] = [Duration::from_secs(1), Duration::from_secs(5)];

#[derive(Debug)]
struct Entry {
    order: Arc<Order>,
    stamp: Stamp,
    sidecar: Option<Stamp>,
    job: Slot,
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
    /// Orders whose sidecar overrides their own line-protocol settings
    /// (logged once).
    sidecar_wins: HashSet<OrderId>,
    /// False during the first scan (quieter logging).
    initial_scan_done: bool,
    /// Interval of the safety-net rescan.
    rescan_interval: Duration,
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
            sidecar_wins: HashSet::new(),
            initial_scan_done: false,
            rescan_interval: RESCAN_INTERVAL,
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
        self.stats
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
        let found = self.walk(&self.base.orders.clone());
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

    /// Collects `(id, path)` of every candidate order file below `dir`,
    /// reporting what cannot be scanned.
    fn walk(&mut self, dir: &Path) -> Vec<(OrderId, PathBuf)> {
        let Found {
            orders,
            bad_names,
            too_deep,
            unreadable,
        } = scan::walk_orders(&self.base.orders, dir);
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
        for (id, p) in self.walk(dir) {
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
        let md = match scan::order_metadata(path, &self.orders_canon) {
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
                self.reject(id, Stamp::unknown(), e);
                return;
            }
        };
        let stamp = Stamp::of(&md);
        if let Some(age) = stamp.age() {
            if age > self.max_age {
                self.expire(id, path, age);
                return;
            }
        }
        let sidecar = scan::sidecar_stamp(&self.base.telegraf, id);
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
                let source = if sidecar.is_some() {
                    let merged = order::merge_sidecar(&mut p.order, &self.base.telegraf);
                    if let Some(e) = &merged.broken {
                        warn!(order = %id, error = %e, "telegraf sidecar ignored");
                    }
                    merged.source
                } else {
                    order::MetaSource::Order
                };
                if source != order::MetaSource::SidecarOverOrder {
                    self.sidecar_wins.remove(id);
                } else if self.sidecar_wins.insert(id.clone()) {
                    info!(order = %id, "the order file and telegraf/{id} both set measurement_name or tags: the sidecar's are used, the order file's ignored");
                }
                self.invalid.remove(id);
                self.retry.remove(id);
                if rejected::clear(&self.base, id) {
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
        let mut n = 0;
        for dir in scan::dirs_with_files(&self.base.output) {
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
                sidecar,
                job,
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
        self.pool.remove(&entry.job, id);
    }
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
        let (store, _rx) = StoreHandle::capture(16);
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
