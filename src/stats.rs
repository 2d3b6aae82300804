//! `BASEDIR/.stats.json`: the daemon's figures ([`crate::health`]) as
//! JSON, rewritten every [`INTERVAL`] and at exit (atomically: temp file +
//! rename), for operators' monitoring, `pingmachine healthcheck` and the
//! benchmark tool.

use std::path::Path;
use std::time::Duration;

/// How often the file is rewritten by default (`--stats-interval`).
pub const INTERVAL: Duration = Duration::from_secs(10);
/// File name below the base directory.
pub const FILE: &str = ".stats.json";

/// What the daemon was started with that readers of the file need
/// (`pingmachine healthcheck`).
#[derive(Debug, Clone, Default)]
pub struct Started {
    /// Seconds between rewrites of the file (`--stats-interval`).
    pub stats_interval_s: u64,
    /// The address of `/-/healthy` and `/metrics` (`--listen`), if any.
    pub listen: Option<std::net::SocketAddr>,
    /// `--web-route-prefix` (`""`: none).
    pub route_prefix: String,
    /// True when the web page needs credentials (`--web-config-file`).
    pub web_auth: bool,
    /// `https` when the listener speaks TLS, `https+client-cert` when it
    /// also wants a client certificate (`--web-config-file`); empty for
    /// plain HTTP.
    pub web_tls: &'static str,
    /// The rrdcached client (`--rrdcached`), if any.
    pub rrdcached: Option<std::sync::Arc<crate::store::rrdcached::RrdCached>>,
}

/// Writes `text` to `base/.stats.json` atomically. Blocking: call it off
/// the async workers (the disk may be slow).
pub fn write(base: &Path, text: &str) -> std::io::Result<()> {
    let tmp = base.join(".stats.json.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, base.join(FILE))
}
