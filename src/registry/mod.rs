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
mod loader;
mod safety_net;

use loader::Look;
use safety_net::{NEW_DIR_REWALKS, PACE_TICK};

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
use crate::tree::{self as scan, Stamp, MAX_DEPTH};
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
/// A file that fails to parse and was modified this recently is retried
/// rather than reported: its writer may not be done yet.
pub const HALF_WRITTEN_GRACE: Duration = Duration::from_secs(5);

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
    /// `--shard`: only the orders whose id is this node's are looked at;
    /// the others are left alone (not read, rejected or expired).
    shard: Option<crate::shard::Shard>,
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
            shard: None,
        }
    }

    /// Probes only the orders of this node's share (`--shard K/N`).
    pub fn with_shard(mut self, shard: Option<crate::shard::Shard>) -> Registry<L> {
        self.shard = shard;
        self
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

    // ---- loading -----------------------------------------------------------

    /// Acts on what [`loader::Looker::look`] found.
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

/// Sleeps until `due`, or forever when nothing is due.
async fn sleep_until_due(due: Option<Instant>) {
    match due {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
