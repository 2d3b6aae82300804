//! A read-only view of a base directory for the operator tools (`status`,
//! `order ls`, `graph`): the order files with their parsed content, their
//! `last_result`, the rejected orders and the archive. Never writes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::basedir::BaseDir;
use crate::order::{self, Order, OrderError, OrderId};
use crate::rejected;
use crate::tree as scan;

pub use crate::store::last_result::LastResult;

/// One order file.
#[derive(Debug)]
pub struct OrderFile {
    /// Its id.
    pub id: OrderId,
    /// Its path.
    pub path: PathBuf,
    /// Modification time (refresh time).
    pub mtime: Option<SystemTime>,
    /// The validated order, or why it is invalid.
    pub order: Result<Order, OrderError>,
}

/// Parsed order files kept between reports (the web page's): a file is
/// read and parsed again only when its stamp or its sidecar's changed.
#[derive(Debug, Default)]
pub struct OrderCache {
    entries: HashMap<OrderId, CachedOrder>,
}

#[derive(Debug)]
struct CachedOrder {
    stamp: scan::Stamp,
    sidecar: Option<scan::Stamp>,
    order: Result<Order, OrderError>,
}

/// The order files below `orders/`, sorted by id. Names the daemon ignores
/// (hidden, temporary, not a valid id) are skipped.
pub fn order_files(base: &BaseDir) -> Vec<OrderFile> {
    order_files_cached(base, &mut OrderCache::default())
}

/// [`order_files`], reusing what `cache` holds for unchanged files.
pub fn order_files_cached(base: &BaseDir, cache: &mut OrderCache) -> Vec<OrderFile> {
    let mut found = scan::walk_orders(&base.orders, &base.orders).orders;
    found.sort();
    let mut seen = HashMap::with_capacity(found.len());
    let files: Vec<OrderFile> = found
        .into_iter()
        .map(|id| {
            let path = id.under(&base.orders);
            let md = std::fs::metadata(&path).ok();
            let mtime = md.as_ref().and_then(|m| m.modified().ok());
            let stamp = md.as_ref().map(scan::Stamp::of);
            let sidecar = scan::sidecar_stamp(&base.telegraf, &id);
            let hit = cache
                .entries
                .get(&id)
                .filter(|c| stamp.is_some_and(|s| s == c.stamp) && c.sidecar == sidecar);
            let order = match hit {
                Some(c) => c.order.clone(),
                None => {
                    let order = order::read_order_file(&path, &id).map(|p| {
                        let mut o = p.order;
                        order::merge_sidecar(&mut o, &base.telegraf);
                        o
                    });
                    if let Some(stamp) = stamp {
                        cache.entries.insert(
                            id.clone(),
                            CachedOrder {
                                stamp,
                                sidecar,
                                order: order.clone(),
                            },
                        );
                    }
                    order
                }
            };
            seen.insert(id.clone(), ());
            OrderFile {
                id,
                path,
                mtime,
                order,
            }
        })
        .collect();
    cache.entries.retain(|id, _| seen.contains_key(id));
    files
}

/// The `last_result` of order `id`, if there is a readable one.
pub fn last_result(base: &BaseDir, id: &OrderId) -> Option<LastResult> {
    let text =
        std::fs::read_to_string(id.under(&base.output).join(crate::store::last_result::FILE))
            .ok()?;
    LastResult::parse(&text)
}

/// A rejected order.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Rejected {
    /// Its id.
    pub id: String,
    /// The rule it broke (the `.error` file's `message:`, else `rule:`).
    pub reason: String,
    /// When it was rejected (the `.error` file's `time:`).
    pub time: Option<String>,
}

/// Every `rejected/<id>.error`, sorted by id.
pub fn rejected(base: &BaseDir) -> Vec<Rejected> {
    let mut out = Vec::new();
    let mut stack = vec![base.rejected.clone()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for ent in rd.flatten() {
            let path = ent.path();
            if ent.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(path);
                continue;
            }
            let Some(rel) = path
                .strip_prefix(&base.rejected)
                .ok()
                .and_then(|r| r.to_str())
                .and_then(|r| r.strip_suffix(rejected::ERROR_SUFFIX))
            else {
                continue;
            };
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let field = |k: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(k).and_then(|r| r.strip_prefix(": ")))
                    .map(str::to_owned)
            };
            out.push(Rejected {
                id: rel.to_owned(),
                reason: field("message")
                    .or_else(|| field("rule"))
                    .unwrap_or_default(),
                time: field("time"),
            });
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

/// Ids with files below `archive/`.
pub fn archived(base: &BaseDir) -> Vec<String> {
    ids(scan::dirs_with_files(&base.archive), &base.archive)
}

/// Ids with an `output/<id>/main.rrd`, sorted.
pub fn rrd_ids(base: &BaseDir) -> Vec<String> {
    ids(
        scan::dirs_below(&base.output, |dir, _, _| {
            dir.join(crate::store::writer::RRD_FILE).is_file()
        }),
        &base.output,
    )
}

/// Ids as text, including directories whose name cannot be an order id.
fn ids(dirs: Vec<Result<OrderId, PathBuf>>, root: &Path) -> Vec<String> {
    let mut out: Vec<String> = dirs
        .into_iter()
        .filter_map(|d| match d {
            Ok(id) => Some(id.as_str().to_owned()),
            Err(dir) => dir
                .strip_prefix(root)
                .ok()
                .and_then(|r| r.to_str())
                .map(str::to_owned),
        })
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_result_round_trip() {
        let r = LastResult::parse(
            "time: 1310116500\nupdated: 1310116524\nstep: 20\npings: 4\nloss: 1\nmin: 5.700000e-04\nmedian: 6.000000e-04\nmax: ~\n",
        )
        .unwrap();
        assert_eq!(
            (r.time, r.updated, r.step, r.pings, r.loss),
            (1310116500, 1310116524, 20, 4, 1)
        );
        assert_eq!((r.min, r.median, r.max), (Some(5.7e-4), Some(6.0e-4), None));
        assert_eq!(r.loss_pct(), 25.0);
        assert!(LastResult::parse("time: x\n").is_none());
    }
}
