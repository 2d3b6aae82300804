//! Looking at the file system: version stamps of files, the walk over
//! `orders/` (shared by the daemon and the operator tools), the symlink
//! policy for order files, and walks over `output/` and `archive/`.
//! Nothing here keeps state or logs; callers decide what to report.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use walkdir::WalkDir;

use crate::order::id::is_ignored_name;
use crate::order::{OrderError, OrderId};

/// Deepest directory nesting scanned below `orders/`.
pub const MAX_DEPTH: usize = 32;

/// Identity of a file version: a rewrite or rename-over changes it.
/// Compact (24 bytes): the registry keeps one per order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Modification time, ns since the epoch (`i64::MIN`: unknown).
    mtime_ns: i64,
    /// Size.
    pub len: u64,
    /// Inode.
    pub ino: u64,
}

impl Stamp {
    /// The stamp of a file's metadata.
    pub fn of(md: &std::fs::Metadata) -> Stamp {
        use std::os::unix::fs::MetadataExt;
        Stamp {
            mtime_ns: md
                .mtime()
                .checked_mul(1_000_000_000)
                .and_then(|s| s.checked_add(md.mtime_nsec()))
                .filter(|ns| *ns != i64::MIN)
                .unwrap_or(i64::MIN),
            len: md.len(),
            ino: md.ino(),
        }
    }

    /// The stamp of a file that could not be looked at.
    pub fn unknown() -> Stamp {
        Stamp {
            mtime_ns: i64::MIN,
            len: 0,
            ino: 0,
        }
    }

    /// Modification time, if known.
    pub fn mtime(&self) -> Option<SystemTime> {
        if self.mtime_ns == i64::MIN {
            return None;
        }
        let d = std::time::Duration::from_nanos(self.mtime_ns.unsigned_abs());
        if self.mtime_ns >= 0 {
            SystemTime::UNIX_EPOCH.checked_add(d)
        } else {
            SystemTime::UNIX_EPOCH.checked_sub(d)
        }
    }

    /// How long ago the file was modified (`None`: unknown or in the future).
    pub fn age(&self) -> Option<std::time::Duration> {
        self.mtime()
            .and_then(|m| SystemTime::now().duration_since(m).ok())
    }
}

/// A directory as last listed: its mtime read just before the listing, and
/// whether that mtime can be trusted to change with its next entry (it
/// cannot when it was within [`MTIME_TRUST`] of the listing: the file
/// system's timestamp granularity could hide a change made just after).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirSeen {
    /// Modification time before the listing.
    pub mtime: Option<SystemTime>,
    /// False when the directory must be listed again anyway.
    pub trusted: bool,
}

/// How far an mtime must lie in the past for a directory listing to be
/// trusted until the mtime changes.
pub const MTIME_TRUST: std::time::Duration = std::time::Duration::from_secs(2);

impl DirSeen {
    /// How `md` (the directory's metadata, read just before listing it)
    /// is remembered.
    pub fn of(md: &std::fs::Metadata) -> DirSeen {
        let mtime = md.modified().ok();
        let trusted = mtime
            .and_then(|m| SystemTime::now().duration_since(m).ok())
            .is_some_and(|age| age > MTIME_TRUST);
        DirSeen { mtime, trusted }
    }

    /// True when a directory remembered as `self` now has metadata `md`
    /// whose entries may differ from the listing.
    pub fn changed(&self, md: &std::fs::Metadata) -> bool {
        !self.trusted || md.modified().ok() != self.mtime
    }
}

/// What a walk over (part of) `orders/` found.
#[derive(Debug, Default)]
pub struct Found {
    /// Every directory walked (`dir` included), as seen before its listing.
    pub dirs: Vec<(PathBuf, DirSeen)>,
    /// Candidate order files (regular files, symlinks, and whatever else
    /// is not a directory: loading rejects what cannot be an order).
    /// (Their paths are `id.under(orders)`.)
    pub orders: Vec<OrderId>,
    /// Files whose name cannot be an order id, and why.
    pub bad_names: Vec<(PathBuf, String)>,
    /// Directories not walked: nested deeper than [`MAX_DEPTH`].
    pub too_deep: Vec<PathBuf>,
    /// Directories that could not be read, and why.
    pub unreadable: Vec<(PathBuf, std::io::Error)>,
}

/// Walks `dir` (`orders/` or a directory below it) for order files, ids
/// relative to `orders`. Hidden and temporary names are skipped, with
/// everything below them; symlinks are not followed into directories.
pub fn walk_orders(orders: &Path, dir: &Path) -> Found {
    walk_orders_to(orders, dir, MAX_DEPTH + 1)
}

/// Lists `dir` alone (not the directories below it): its order files, and
/// its subdirectories in [`Found::dirs`] (not listed; their [`DirSeen`] is
/// untrusted).
pub fn list_orders(orders: &Path, dir: &Path) -> Found {
    walk_orders_to(orders, dir, 1)
}

fn walk_orders_to(orders: &Path, dir: &Path, max_depth: usize) -> Found {
    let mut found = Found::default();
    // The directory's own mtime, before its entries are read.
    if let Ok(md) = std::fs::symlink_metadata(dir) {
        found.dirs.push((dir.to_path_buf(), DirSeen::of(&md)));
    }
    // Names that are not UTF-8 cannot be ids: reported, and a directory of
    // that name is not walked.
    let mut not_utf8 = Vec::new();
    let walk = WalkDir::new(dir)
        .min_depth(1)
        .max_depth(max_depth)
        .follow_links(false)
        .into_iter()
        .filter_entry(|e| match e.file_name().to_str() {
            Some(name) => !is_ignored_name(name),
            None => {
                not_utf8.push((e.path().to_path_buf(), "its name is not UTF-8".to_owned()));
                false
            }
        });
    for ent in walk {
        let ent = match ent {
            Ok(e) => e,
            Err(e) => {
                let path = e.path().map(Path::to_path_buf).unwrap_or_default();
                match e.into_io_error() {
                    Some(io) if io.kind() == std::io::ErrorKind::NotFound => {}
                    Some(io) => found.unreadable.push((path, io)),
                    None => {}
                }
                continue;
            }
        };
        let path = ent.path();
        if ent.file_type().is_dir() {
            if ent.depth() > MAX_DEPTH {
                found.too_deep.push(path.to_path_buf());
            } else if ent.depth() >= max_depth {
                // Listed by the caller later.
                found.dirs.push((
                    path.to_path_buf(),
                    DirSeen {
                        mtime: None,
                        trusted: false,
                    },
                ));
            } else if let Ok(md) = std::fs::symlink_metadata(path) {
                // Read before walkdir lists it (it yields a directory first).
                found.dirs.push((path.to_path_buf(), DirSeen::of(&md)));
            }
            continue;
        }
        match OrderId::from_path(orders, path) {
            Ok(id) => found.orders.push(id),
            Err(why) => found.bad_names.push((path.to_path_buf(), why.to_string())),
        }
    }
    found.bad_names.append(&mut not_utf8);
    found
}

/// Metadata of an order file, following a symlink only when it stays
/// inside `orders_canon` (the canonical `orders/`). `Ok(None)` when the
/// file does not exist or is a directory.
pub fn order_metadata(
    path: &Path,
    orders_canon: &Path,
) -> Result<Option<std::fs::Metadata>, OrderError> {
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
        if !target.starts_with(orders_canon) {
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

/// The stamp of order `id`'s `telegraf/<id>` sidecar, if it has one.
pub fn sidecar_stamp(telegraf: &Path, id: &OrderId) -> Option<Stamp> {
    std::fs::metadata(id.under(telegraf))
        .ok()
        .filter(|m| !m.is_dir())
        .map(|m| Stamp::of(&m))
}

/// Ids of the files below `telegraf/` (the orders that have a sidecar),
/// and every directory there as seen before its listing.
pub fn sidecar_ids(
    telegraf: &Path,
) -> (std::collections::HashSet<OrderId>, Vec<(PathBuf, DirSeen)>) {
    let mut ids = std::collections::HashSet::new();
    let mut dirs = Vec::new();
    for e in WalkDir::new(telegraf)
        .max_depth(MAX_DEPTH + 1)
        .follow_links(false)
        .into_iter()
        .filter_map(Result::ok)
    {
        if e.file_type().is_dir() {
            if let Ok(md) = std::fs::symlink_metadata(e.path()) {
                dirs.push((e.path().to_path_buf(), DirSeen::of(&md)));
            }
        } else if let Ok(id) = OrderId::from_path(telegraf, e.path()) {
            ids.insert(id);
        }
    }
    (ids, dirs)
}

/// Ids of the directories below `root` (not `root` itself) for which
/// `wanted` holds, given the directory, its id (`None` if it cannot be an
/// order id) and a function telling whether it directly holds anything
/// but directories (read only when called). Sorted by id; ids that cannot
/// be order ids are returned as `Err` with the directory.
pub fn dirs_below(
    root: &Path,
    wanted: impl Fn(&Path, Option<&OrderId>, &dyn Fn() -> bool) -> bool,
) -> Vec<Result<OrderId, PathBuf>> {
    let mut out = Vec::new();
    for ent in WalkDir::new(root)
        .min_depth(1)
        .follow_links(false)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_dir())
    {
        let dir = ent.path();
        let has_files = || {
            std::fs::read_dir(dir).is_ok_and(|rd| {
                rd.flatten()
                    .any(|e| e.file_type().is_ok_and(|t| !t.is_dir()))
            })
        };
        let id = OrderId::from_path(root, dir);
        if wanted(dir, id.as_ref().ok(), &has_files) {
            out.push(id.map_err(|_| dir.to_path_buf()));
        }
    }
    out.sort_by(|a, b| match (a, b) {
        (Ok(a), Ok(b)) => a.cmp(b),
        (Ok(_), Err(_)) => std::cmp::Ordering::Less,
        (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
        (Err(a), Err(b)) => a.cmp(b),
    });
    out
}

/// Ids of the directories below `root` that directly hold files.
pub fn dirs_with_files(root: &Path) -> Vec<Result<OrderId, PathBuf>> {
    dirs_below(root, |_, _, has_files| has_files())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walk_finds_orders_and_skips_what_is_not() {
        let t = tempfile::tempdir().unwrap();
        let o = t.path().join("orders");
        std::fs::create_dir_all(o.join("app/sub")).unwrap();
        std::fs::create_dir_all(o.join(".hidden")).unwrap();
        for f in ["a", "app/b", "app/sub/c", ".hidden/x", "app/.tmp", "app/d~"] {
            std::fs::write(o.join(f), "x").unwrap();
        }
        std::os::unix::fs::symlink("a", o.join("link")).unwrap();
        let found = walk_orders(&o, &o);
        let mut ids: Vec<&str> = found.orders.iter().map(|id| id.as_str()).collect();
        ids.sort_unstable();
        assert_eq!(ids, ["a", "app/b", "app/sub/c", "link"]);
        assert!(found.bad_names.is_empty() && found.too_deep.is_empty());
        let sub = walk_orders(&o, &o.join("app"));
        assert_eq!(sub.orders.len(), 2, "ids stay relative to orders/");
        assert!(sub.orders.iter().any(|id| id.as_str() == "app/sub/c"));
    }

    #[test]
    fn names_that_are_not_utf8_are_reported_and_not_walked() {
        use std::os::unix::ffi::OsStrExt;
        let t = tempfile::tempdir().unwrap();
        let bad = t.path().join(std::ffi::OsStr::from_bytes(b"d\xff"));
        std::fs::create_dir_all(&bad).unwrap();
        std::fs::write(bad.join("inside"), "x").unwrap();
        std::fs::write(t.path().join(std::ffi::OsStr::from_bytes(b"f\xfe")), "x").unwrap();
        let found = walk_orders(t.path(), t.path());
        assert!(found.orders.is_empty());
        assert_eq!(found.bad_names.len(), 2, "{:?}", found.bad_names);
        assert!(found.bad_names.iter().all(|(_, why)| why.contains("UTF-8")));
    }

    #[test]
    fn walk_reports_deep_nesting() {
        let t = tempfile::tempdir().unwrap();
        let mut d = t.path().to_path_buf();
        for i in 0..=MAX_DEPTH + 1 {
            d.push(format!("d{i}"));
        }
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("f"), "x").unwrap();
        let found = walk_orders(t.path(), t.path());
        assert!(found.orders.is_empty());
        assert_eq!(found.too_deep.len(), 1, "{:?}", found.too_deep);
    }

    #[test]
    fn symlinks_stay_inside_orders() {
        let t = tempfile::tempdir().unwrap();
        let o = t.path().join("orders");
        std::fs::create_dir_all(&o).unwrap();
        std::fs::write(t.path().join("outside"), "x").unwrap();
        std::fs::write(o.join("inside"), "x").unwrap();
        std::os::unix::fs::symlink(t.path().join("outside"), o.join("out")).unwrap();
        std::os::unix::fs::symlink(o.join("inside"), o.join("in")).unwrap();
        std::os::unix::fs::symlink(o.join("nothing"), o.join("dangling")).unwrap();
        let canon = std::fs::canonicalize(&o).unwrap();
        assert!(order_metadata(&o.join("in"), &canon).unwrap().is_some());
        let e = order_metadata(&o.join("out"), &canon).unwrap_err();
        assert!(e.reason.contains("outside orders/"), "{e}");
        let e = order_metadata(&o.join("dangling"), &canon).unwrap_err();
        assert!(e.reason.contains("points to nothing"), "{e}");
        assert!(order_metadata(&o.join("gone"), &canon).unwrap().is_none());
        assert!(order_metadata(&o, &canon).unwrap().is_none(), "a directory");
    }

    #[test]
    fn directories_with_files() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        std::fs::create_dir_all(r.join("a/b")).unwrap();
        std::fs::create_dir_all(r.join("empty")).unwrap();
        std::fs::write(r.join("a/b/main.rrd"), "x").unwrap();
        std::fs::write(r.join("top-level-file"), "x").unwrap();
        let ids: Vec<String> = dirs_with_files(r)
            .into_iter()
            .map(|r| r.unwrap().as_str().to_owned())
            .collect();
        assert_eq!(ids, ["a/b"]);
    }
}
