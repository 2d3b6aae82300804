//! The safety net: what the registry does when the file watcher says
//! nothing. Full rescans, the paced pass that looks at every order file
//! once per period (expiry, in-place rewrites the watcher missed), the
//! check of directory mtimes, re-walks of new directories, retries of
//! half-written files, and archiving output whose order is gone.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use super::loader::Sidecars;
use super::{Launcher, Registry, PACE_RATE};
use crate::order::OrderId;
use crate::rejected;
use crate::store::StoreCmd;
use crate::tree::{self as scan, Found, MAX_DEPTH};

/// How often the paced pass takes its next slice.
pub(super) const PACE_TICK: Duration = Duration::from_secs(1);

/// A new directory under `orders/` is walked when its hint arrives, and
/// again this long after: the file watcher reports a new directory before
/// it watches it, so a file created in between raises no event of its own.
pub(super) const NEW_DIR_REWALKS: [Duration; 2] = [Duration::from_secs(1), Duration::from_secs(5)];

/// Files per one-second slice of the paced pass over `n` files: a whole
/// pass takes `max(interval, n / PACE_RATE)`.
pub(super) fn pace_slice_len(n: usize, interval: Duration) -> usize {
    let period_s = interval.as_secs_f64().max(n as f64 / PACE_RATE as f64);
    ((n as f64 * PACE_TICK.as_secs_f64() / period_s).ceil() as usize).max(1)
}

impl<L: Launcher> Registry<L> {
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
    pub(super) fn walk(&mut self, dir: &Path) -> Vec<OrderId> {
        let found = scan::walk_orders(&self.base.orders, dir);
        self.found(found)
    }

    /// Remembers the directories of a walk or listing and reports what
    /// cannot be scanned; returns its order files.
    pub(super) fn found(&mut self, found: Found) -> Vec<OrderId> {
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
    pub(super) fn pace_slice(&mut self, len: usize) {
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
    pub(super) fn relist(&mut self, dir: &Path) {
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
    pub(super) fn relist_sidecars(&mut self) {
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

    /// Loads every order file below a new directory.
    pub(super) fn walk_new_dir(&mut self, dir: &Path) {
        let found = self.walk(dir);
        self.load_many(found, false, &Sidecars::Stat);
    }

    /// When the next retry or re-walk is due, if any is waiting.
    pub(super) fn next_due(&self) -> Option<Instant> {
        self.retry
            .values()
            .copied()
            .chain(self.rewalk.iter().map(|(at, _)| *at))
            .min()
    }

    pub(super) fn run_due_retries(&mut self) {
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

    /// Archives every directory below `output/` that holds files but has no
    /// active order (run at start-up, after the first scan).
    pub(super) fn archive_orphans(&mut self) {
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
}
