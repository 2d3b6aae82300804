//! What the HTTP handlers share: the base directory, the daemon's parts
//! when it runs (for `/metrics` and `/-/ready`), and the web page's caches.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::Semaphore;

use crate::basedir::BaseDir;
use crate::health::{DirCounts, Telemetry};
use crate::report::Report;

/// Graphs drawn at once (each waits for librrd's lock in turn).
pub const GRAPH_WORKERS: usize = 2;

/// What the handlers read.
#[derive(Debug)]
pub struct ServeCtx {
    /// The base directory.
    pub base: BaseDir,
    /// The daemon's telemetry; `None` in `pingmachine serve`.
    pub daemon: Option<Arc<Telemetry>>,
    /// Cached counts of rejected and archived orders.
    pub dir_counts: DirCounts,
    /// The web page's caches.
    pub web: WebState,
    /// rrdcached holding updates: a graph's file is flushed before it is
    /// drawn.
    pub rrdcached: Option<crate::store::rrdcached::Addr>,
    /// `--shard`: the list shows this node's orders only.
    pub shard: Option<crate::shard::Shard>,
    /// `--prometheus-url`: the fleet view.
    pub fleet: Option<super::fleet::Fleet>,
    /// `--web-route-prefix` (`""`: none).
    pub prefix: String,
    /// `--web-config-file`: who may read.
    pub access: Arc<super::access::Access>,
}

impl ServeCtx {
    /// A context for `base`; `daemon` is `None` without probing.
    pub fn new(base: BaseDir, daemon: Option<Arc<Telemetry>>) -> ServeCtx {
        ServeCtx {
            web: WebState::new(&base),
            base,
            daemon,
            dir_counts: DirCounts::default(),
            rrdcached: None,
            shard: None,
            fleet: None,
            prefix: String::new(),
            access: Arc::new(super::access::Access::default()),
        }
    }

    /// Serves under `prefix`, to those `access` lets in.
    pub fn with_access(mut self, prefix: &str, access: Arc<super::access::Access>) -> ServeCtx {
        self.prefix = prefix.to_owned();
        self.access = access;
        self
    }

    /// Shows the fleet view read from `fleet`'s store.
    pub fn with_fleet(mut self, fleet: Option<super::fleet::Fleet>) -> ServeCtx {
        self.fleet = fleet;
        self
    }

    /// Flushes each graph's `main.rrd` through rrdcached at `addr` first.
    pub fn with_rrdcached(mut self, addr: Option<crate::store::rrdcached::Addr>) -> ServeCtx {
        self.rrdcached = addr;
        self
    }

    /// Lists only this node's share of the orders.
    pub fn with_shard(mut self, shard: Option<crate::shard::Shard>) -> ServeCtx {
        self.shard = shard;
        self
    }
}

/// A drawn graph.
#[derive(Debug)]
pub struct Graph {
    pub(super) png: Vec<u8>,
    pub(super) area: crate::graph::PlotArea,
    pub(super) width: u32,
}

/// A graph's order, range and size.
pub(super) type GraphKey = (String, i64, i64, u32, u32);

/// The graph ranges of an order's page: seconds and title.
pub const RANGES: [(i64, &str); 4] = [
    (3 * 3600, "last 3 hours"),
    (30 * 3600, "last 30 hours"),
    (10 * 86_400, "last 10 days"),
    (360 * 86_400, "last 360 days"),
];

/// Query of `/`.
#[derive(Debug, Default, serde::Deserialize)]
pub struct ListQuery {
    /// Only this user's orders.
    pub user: Option<String>,
    /// Only ids starting with this.
    pub q: Option<String>,
    /// Sort column.
    pub sort: Option<String>,
    /// Page, from 1.
    pub page: Option<usize>,
    /// `rows`: only the table rows (for the background refresh).
    pub fragment: Option<String>,
    /// Median, loss and jitter over the last this many seconds (3600 or
    /// 86400) from `main.rrd`, shown and sorted by; none: the last round.
    pub period: Option<i64>,
}

/// What the web handlers keep between requests.
#[derive(Debug)]
pub struct WebState {
    pub(super) orders_canon: PathBuf,
    pub(super) output_canon: PathBuf,
    pub(super) archive_canon: PathBuf,
    pub(super) report: Mutex<Option<(Instant, Arc<Report>)>>,
    pub(super) parsed: Mutex<crate::inspect::OrderCache>,
    pub(super) graphs: Mutex<HashMap<GraphKey, (Instant, Arc<Graph>)>>,
    pub(super) graph_permits: Semaphore,
    pub(super) charts: super::charts::Kept,
    pub(super) sparks: super::spark::Kept,
    /// A report is being built in the background.
    pub(super) rebuilding: std::sync::atomic::AtomicBool,
}

impl WebState {
    /// State for the base directory `base`.
    pub fn new(base: &BaseDir) -> WebState {
        let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        WebState {
            orders_canon: canon(&base.orders),
            output_canon: canon(&base.output),
            archive_canon: canon(&base.archive),
            report: Mutex::new(None),
            parsed: Mutex::new(crate::inspect::OrderCache::default()),
            graphs: Mutex::new(HashMap::new()),
            graph_permits: Semaphore::new(GRAPH_WORKERS),
            charts: Mutex::default(),
            sparks: Mutex::default(),
            rebuilding: std::sync::atomic::AtomicBool::new(false),
        }
    }
}
