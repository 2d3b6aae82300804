//! Looking at order files: stat, read and parse, read-only and on many
//! threads at once (a first scan of a million files on a cold page cache
//! waits for the disk on every read), then applying what was found in
//! order on the registry's own task.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rayon::prelude::*;

use super::{Entry, Launcher, Registry};
use crate::basedir::BaseDir;
use crate::order::{self, OrderError, OrderId};
use crate::tree::{self as scan, Stamp};

/// Order files looked at together by [`Registry::load_many`] before the
/// batch is applied.
pub(super) const LOOK_BATCH: usize = 8192;

/// The threads that look at order files in a full scan, at the priority
/// of background work; `None` (look on the registry's thread) when they
/// cannot be started.
fn pool() -> Option<&'static rayon::ThreadPool> {
    static POOL: OnceLock<Option<rayon::ThreadPool>> = OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(look_threads())
            .thread_name(|i| format!("pm-look-{i}"))
            .start_handler(|_| crate::priority::background_thread())
            .build()
            .ok()
    })
    .as_ref()
}

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
pub(super) enum Sidecars {
    /// Not known: stat `telegraf/<id>` for each order.
    Stat,
    /// The ids found by a walk of `telegraf/` just before: others have none.
    Known(HashSet<OrderId>),
}

/// What looking at one order file found ([`Looker::look`]).
#[derive(Debug)]
pub(super) enum Look {
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

/// What looking at order files reads of the registry (shared by the
/// threads of [`Registry::load_many`]).
pub(super) struct Looker<'a> {
    base: &'a BaseDir,
    orders_canon: &'a Path,
    max_age: Duration,
    orders: &'a HashMap<OrderId, Entry>,
    invalid: &'a HashMap<OrderId, Stamp>,
    retry: &'a HashMap<OrderId, Instant>,
}

impl Looker<'_> {
    pub(super) fn base_orders(&self) -> &Path {
        &self.base.orders
    }

    /// What the file of order `id` at `path` holds, read-only: its
    /// metadata, whether it expired or is unchanged, else its parsed
    /// content (with its sidecar merged). Safe to run on many threads.
    pub(super) fn look(&self, id: &OrderId, path: &Path, force: bool, sidecars: &Sidecars) -> Look {
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

    pub(super) fn sidecar_stamp(&self, id: &OrderId, sidecars: &Sidecars) -> Option<Stamp> {
        match sidecars {
            Sidecars::Known(known) if !known.contains(id) => None,
            _ => scan::sidecar_stamp(&self.base.telegraf, id),
        }
    }

    /// A file read: its order with its sidecar merged.
    pub(super) fn read(
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

impl<L: Launcher> Registry<L> {
    /// Reads and validates the order `id` at `path` (unless unchanged and not
    /// `force`d), then activates, replaces or stops it.
    pub(super) fn load(&mut self, id: &OrderId, path: &Path, force: bool) {
        if !crate::shard::owned(self.shard.as_ref(), id.as_str()) {
            return;
        }
        let look = self.looker().look(id, path, force, &Sidecars::Stat);
        self.apply(id, path, look);
    }

    /// Loads many order files: looked at by the [`pool`] threads in
    /// batches (stat, read, parse: nothing is changed), each batch then
    /// applied here in order. Bounded memory: one batch of parsed orders
    /// at a time.
    pub(super) fn load_many(&mut self, files: Vec<OrderId>, force: bool, sidecars: &Sidecars) {
        let files: Vec<OrderId> = match &self.shard {
            Some(shard) => files
                .into_iter()
                .filter(|id| shard.owns(id.as_str()))
                .collect(),
            None => files,
        };
        for batch in files.chunks(LOOK_BATCH) {
            let looker = self.looker();
            let look =
                |id: &OrderId| looker.look(id, &id.under(looker.base_orders()), force, sidecars);
            let looks: Vec<Look> = match pool() {
                Some(pool) if batch.len() >= 64 => {
                    pool.install(|| batch.par_iter().map(look).collect())
                }
                _ => batch.iter().map(look).collect(),
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
    pub(super) fn looker(&self) -> Looker<'_> {
        Looker {
            base: &self.base,
            orders_canon: &self.orders_canon,
            max_age: self.max_age,
            orders: &self.orders,
            invalid: &self.invalid,
            retry: &self.retry,
        }
    }
}
