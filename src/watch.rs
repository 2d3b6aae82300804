//! Watching `orders/` and `telegraf/`.
//!
//! inotify (through `notify`) tells the registry *which paths* may have
//! changed; it is only a hint. The registry re-reads those paths itself,
//! scans a new directory at once (files may have landed in it before its
//! watch existed), and does a full rescan every 30 s, on SIGHUP, and after
//! any watcher error or queue overflow.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use notify::event::{AccessKind, AccessMode, EventKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::{mpsc, Notify};
use tracing::warn;

/// Something the registry should look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// These paths (files or directories) may have changed.
    Paths(Vec<PathBuf>),
    /// Rescan everything.
    Rescan(&'static str),
}

/// Queue length between the watcher thread and the registry.
pub const QUEUE: usize = 8192;

/// The active watcher; dropping it stops watching.
#[derive(Debug)]
pub struct OrderWatcher {
    _watcher: RecommendedWatcher,
    overflowed: Arc<AtomicBool>,
    /// Woken when hints were dropped.
    overflow: Arc<Notify>,
}

impl OrderWatcher {
    /// Starts watching `orders` and `telegraf` (both recursively: sidecars
    /// mirror order ids), sending hints to `tx`.
    pub fn start(
        orders: &Path,
        telegraf: &Path,
        tx: mpsc::Sender<WatchEvent>,
    ) -> notify::Result<OrderWatcher> {
        let overflowed = Arc::new(AtomicBool::new(false));
        let flag = overflowed.clone();
        let overflow = Arc::new(Notify::new());
        let wake = overflow.clone();
        let mut watcher =
            notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
                let ev = match res {
                    Ok(ev) if ev.need_rescan() => WatchEvent::Rescan("watcher queue overflow"),
                    Ok(ev) => {
                        if !relevant(&ev.kind) || ev.paths.is_empty() {
                            return;
                        }
                        WatchEvent::Paths(ev.paths)
                    }
                    Err(e) => {
                        warn!(error = %e, "file watcher error; rescanning");
                        WatchEvent::Rescan("watcher error")
                    }
                };
                if tx.try_send(ev).is_err() {
                    // The registry is behind: a full rescan will catch up.
                    flag.store(true, Ordering::Relaxed);
                    wake.notify_one();
                }
            })?;
        watcher.watch(orders, RecursiveMode::Recursive)?;
        watcher.watch(telegraf, RecursiveMode::Recursive)?;
        Ok(OrderWatcher {
            _watcher: watcher,
            overflowed,
            overflow,
        })
    }

    /// Resolves when hints were dropped (then [`OrderWatcher::take_overflow`]).
    pub async fn overflowed(&self) {
        self.overflow.notified().await;
    }

    /// True (once) when hints were dropped because the queue was full.
    pub fn take_overflow(&self) -> bool {
        self.overflowed.swap(false, Ordering::Relaxed)
    }
}

/// Opening or reading a file (our own reads included) changes nothing.
fn relevant(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn reads_are_not_changes() {
        assert!(!relevant(&EventKind::Access(AccessKind::Open(
            AccessMode::Any
        ))));
        assert!(!relevant(&EventKind::Access(AccessKind::Close(
            AccessMode::Read
        ))));
        assert!(relevant(&EventKind::Access(AccessKind::Close(
            AccessMode::Write
        ))));
        assert!(relevant(&EventKind::Remove(
            notify::event::RemoveKind::File
        )));
    }

    #[tokio::test]
    async fn reports_new_files_in_new_directories() {
        let dir = tempfile::tempdir().unwrap();
        let (orders, telegraf) = (dir.path().join("orders"), dir.path().join("telegraf"));
        std::fs::create_dir_all(&orders).unwrap();
        std::fs::create_dir_all(&telegraf).unwrap();
        let (tx, mut rx) = mpsc::channel(QUEUE);
        let _w = OrderWatcher::start(&orders, &telegraf, tx).unwrap();
        std::fs::create_dir_all(orders.join("app")).unwrap();
        std::fs::write(telegraf.join("x"), "a").unwrap();
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while let Ok(Some(ev)) = tokio::time::timeout_at(deadline, rx.recv()).await {
            if let WatchEvent::Paths(p) = ev {
                seen.extend(p);
            }
            if seen.contains(&orders.join("app")) && seen.contains(&telegraf.join("x")) {
                return;
            }
        }
        panic!("events not seen: {seen:?}");
    }
}
