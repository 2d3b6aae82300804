//! The addresses of the orders' host names, off the probing path.
//!
//! A round asks [`Names::addr`] for each name it probes. The first time a
//! name (with its address family) is asked for, the round looks it up and
//! waits for the answer (at most [`FIRST_LOOKUP_TIMEOUT`]); callers asking
//! for the same name meanwhile wait for that one lookup. From then on the
//! round reads the cache and never waits: [`Names::run`], a task of its
//! own, looks each name up again when its DNS TTL has run out, bounded
//! below and above by `--dns-min-ttl` and `--dns-max-ttl`.
//!
//! * A new address is logged once and used from the next round on (the
//!   `ip` label and tag follow it).
//! * A failed lookup keeps the last address, is counted, and is tried
//!   again after the lower bound; the first failure of a run of failures
//!   is logged, and so is the success that ends it.
//! * A name no round asked for in [`EVICT_AFTER_TTL_MAX`] times the upper
//!   bound is forgotten.
//!
//! Lookups go to the name servers of `/etc/resolv.conf` (or `--dns-server`)
//! after `/etc/hosts`, through hickory-resolver, which reports each
//! answer's TTL. Without `--dns-server`, a name they cannot resolve is
//! looked up once more through the system's resolver (getaddrinfo: NSS
//! sources such as LDAP or mDNS), whose answers carry no TTL and are kept
//! for the lower bound.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::TokioResolver;
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::telemetry::Sheet;

/// How long a round waits for the first lookup of a name before it goes
/// on without an address (its pings of that name count as lost).
pub const FIRST_LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a lookup in the background may take in all.
const REFRESH_TIMEOUT: Duration = Duration::from_secs(30);

/// Lookups in the background at once.
const REFRESH_PARALLEL: usize = 32;

/// A name unused for this many times the upper TTL bound is forgotten.
pub const EVICT_AFTER_TTL_MAX: u32 = 2;

/// Default lower bound of the time an answer is kept, seconds.
pub const DEFAULT_MIN_TTL_S: u32 = 30;
/// Default upper bound, seconds.
pub const DEFAULT_MAX_TTL_S: u32 = 3600;
/// Largest bound accepted, seconds (a day).
pub const MAX_TTL_LIMIT_S: u32 = 86_400;

/// What a lookup found: an address of the asked family and how long the
/// answer may be kept (`None`: unknown).
pub type Answer = Result<(IpAddr, Option<Duration>), String>;

/// A lookup of `(name, ipv6)`.
pub type LookupFn =
    dyn Fn(String, bool) -> Pin<Box<dyn Future<Output = Answer> + Send>> + Send + Sync;

/// Settings of [`Names`].
#[derive(Debug, Clone)]
pub struct NamesConfig {
    /// Name servers to ask instead of those of `/etc/resolv.conf`.
    pub servers: Vec<SocketAddr>,
    /// Lower bound of the time an answer is kept.
    pub min_ttl: Duration,
    /// Upper bound.
    pub max_ttl: Duration,
}

impl Default for NamesConfig {
    fn default() -> Self {
        NamesConfig {
            servers: Vec::new(),
            min_ttl: Duration::from_secs(u64::from(DEFAULT_MIN_TTL_S)),
            max_ttl: Duration::from_secs(u64::from(DEFAULT_MAX_TTL_S)),
        }
    }
}

/// Parses a `--dns-server` value: an IP address, `IP:PORT` or `[IPv6]:PORT`.
pub fn parse_server(s: &str) -> Result<SocketAddr, String> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    s.parse::<SocketAddr>()
        .map_err(|_| "not an IP address, IP:PORT or [IPv6]:PORT".to_owned())
}

type Key = (Box<str>, bool);

#[derive(Debug)]
struct Entry {
    /// The address in use; `None` until a lookup found one.
    addr: Option<IpAddr>,
    /// Set once the first lookup has ended (found or not).
    first: Arc<OnceCell<()>>,
    /// When to look it up again (once the first lookup has ended).
    refresh_at: Instant,
    /// A background lookup is running.
    in_flight: bool,
    /// The last lookup failed.
    failing: bool,
    /// The last time a round asked for it.
    used_at: Instant,
}

/// Counters of [`Names`].
#[derive(Debug, Default)]
struct NameStats {
    lookups: AtomicU64,
    failures: AtomicU64,
    changes: AtomicU64,
}

/// The cache of host names' addresses, shared by every job.
pub struct Names {
    lookup: Box<LookupFn>,
    min_ttl: Duration,
    max_ttl: Duration,
    entries: Mutex<HashMap<Key, Entry>>,
    stats: NameStats,
}

impl std::fmt::Debug for Names {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Names")
            .field("min_ttl", &self.min_ttl)
            .field("max_ttl", &self.max_ttl)
            .field("names", &self.entries().len())
            .finish_non_exhaustive()
    }
}

impl Names {
    /// Names looked up as `cfg` says: hickory-resolver on the name servers
    /// of `cfg.servers` (or `/etc/resolv.conf`), after `/etc/hosts`.
    /// Without `cfg.servers`, when `/etc/resolv.conf` names no server the
    /// system's resolver alone is used (said once).
    pub fn new(cfg: &NamesConfig) -> anyhow::Result<Names> {
        let resolver = match build_resolver(cfg) {
            Ok(r) => Some(r),
            Err(e) if cfg.servers.is_empty() => {
                info!(error = %e, "/etc/resolv.conf cannot be used; host names are looked up through the system's resolver only, and kept for --dns-min-ttl");
                None
            }
            Err(e) => anyhow::bail!("--dns-server: {e}"),
        };
        let fallback = cfg.servers.is_empty();
        let resolver = resolver.map(Arc::new);
        let lookup: Box<LookupFn> = Box::new(move |name, ipv6| {
            let resolver = resolver.clone();
            Box::pin(async move {
                let first = match &resolver {
                    Some(r) => lookup_dns(r, &name, ipv6).await,
                    None => Err(String::new()),
                };
                match first {
                    Ok(a) => Ok(a),
                    Err(e) if fallback => lookup_system(&name, ipv6).await.map_err(|se| {
                        if e.is_empty() {
                            se
                        } else {
                            format!("{e}; system resolver: {se}")
                        }
                    }),
                    Err(e) => Err(e),
                }
            })
        });
        Ok(Names::with_lookup(lookup, cfg.min_ttl, cfg.max_ttl))
    }

    /// Names looked up by `lookup` (tests give their own).
    pub fn with_lookup(lookup: Box<LookupFn>, min_ttl: Duration, max_ttl: Duration) -> Names {
        Names {
            lookup,
            min_ttl,
            max_ttl: max_ttl.max(min_ttl),
            entries: Mutex::new(HashMap::new()),
            stats: NameStats::default(),
        }
    }

    fn entries(&self) -> MutexGuard<'_, HashMap<Key, Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The address of `name` in the family `ipv6` asks for; `None` when no
    /// lookup has found one. Waits only for a name's first lookup.
    pub async fn addr(&self, name: &str, ipv6: bool) -> Option<IpAddr> {
        let first = {
            let mut entries = self.entries();
            let now = Instant::now();
            let e = entries.entry((name.into(), ipv6)).or_insert_with(|| Entry {
                addr: None,
                first: Arc::new(OnceCell::new()),
                refresh_at: now,
                in_flight: false,
                failing: false,
                used_at: now,
            });
            e.used_at = now;
            if e.first.initialized() {
                return e.addr;
            }
            e.first.clone()
        };
        first
            .get_or_init(|| async {
                let answer = self.lookup_bounded(name, ipv6, FIRST_LOOKUP_TIMEOUT).await;
                self.record(name, ipv6, answer);
            })
            .await;
        self.entries()
            .get(&(name.into(), ipv6))
            .and_then(|e| e.addr)
    }

    async fn lookup_bounded(&self, name: &str, ipv6: bool, limit: Duration) -> Answer {
        self.stats.lookups.fetch_add(1, Ordering::Relaxed);
        match tokio::time::timeout(limit, (self.lookup)(name.to_owned(), ipv6)).await {
            Ok(a) => a,
            Err(_) => Err(format!("no answer in {} s", limit.as_secs())),
        }
    }

    /// Keeps what a lookup of `(name, ipv6)` found, and says what changed.
    fn record(&self, name: &str, ipv6: bool, answer: Answer) {
        let mut entries = self.entries();
        let now = Instant::now();
        let Some(e) = entries.get_mut(&(name.into(), ipv6)) else {
            return;
        };
        let family = if ipv6 { "IPv6" } else { "IPv4" };
        match answer {
            Ok((addr, ttl)) => {
                let keep = ttl
                    .unwrap_or(self.min_ttl)
                    .clamp(self.min_ttl, self.max_ttl);
                e.refresh_at = now + keep;
                match e.addr {
                    Some(old) if old != addr => {
                        self.stats.changes.fetch_add(1, Ordering::Relaxed);
                        info!(host = %name, family, old = %old, new = %addr, "host name now resolves to another address; probing it from the next round");
                    }
                    None if e.failing => {
                        info!(host = %name, family, addr = %addr, "host name resolves again");
                    }
                    _ if e.failing => {
                        info!(host = %name, family, addr = %addr, "host name lookups succeed again");
                    }
                    _ => {}
                }
                e.addr = Some(addr);
                e.failing = false;
            }
            Err(why) => {
                self.stats.failures.fetch_add(1, Ordering::Relaxed);
                e.refresh_at = now + self.min_ttl;
                if !e.failing {
                    e.failing = true;
                    match e.addr {
                        Some(last) => {
                            warn!(host = %name, family, error = %why, last = %last, "host name lookup failed; probing its last address until a lookup succeeds (said once)")
                        }
                        None => {
                            info!(host = %name, family, error = %why, "host name does not resolve; its pings count as lost until it does (said once)")
                        }
                    }
                }
            }
        }
    }

    /// Looks names up again when their time has come, and forgets those
    /// no round asked for in a long time, until `cancel`.
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        let sem = Arc::new(tokio::sync::Semaphore::new(REFRESH_PARALLEL));
        let mut running = tokio::task::JoinSet::new();
        loop {
            let wake = self.due(&sem, &mut running);
            tokio::select! {
                () = tokio::time::sleep_until(wake) => {}
                Some(_) = running.join_next(), if !running.is_empty() => {}
                () = cancel.cancelled() => return,
            }
        }
    }

    /// Starts the due lookups (as far as permits allow), forgets unused
    /// names, and says when to look again.
    fn due(
        self: &Arc<Self>,
        sem: &Arc<tokio::sync::Semaphore>,
        running: &mut tokio::task::JoinSet<()>,
    ) -> Instant {
        let now = Instant::now();
        let unused_for = self.max_ttl * EVICT_AFTER_TTL_MAX;
        let mut next = now + self.min_ttl.min(Duration::from_secs(60));
        let mut start = Vec::new();
        {
            let mut entries = self.entries();
            entries.retain(|_, e| {
                !(e.first.initialized()
                    && !e.in_flight
                    && now.duration_since(e.used_at) > unused_for)
            });
            for ((name, ipv6), e) in entries.iter_mut() {
                if !e.first.initialized() || e.in_flight {
                    continue;
                }
                if e.refresh_at > now {
                    next = next.min(e.refresh_at);
                    continue;
                }
                let Ok(permit) = sem.clone().try_acquire_owned() else {
                    // Every permit busy: looked at again when one is free.
                    continue;
                };
                e.in_flight = true;
                start.push((name.to_string(), *ipv6, permit));
            }
        }
        // Spawned with the lock released: a task dropped at once (runtime
        // shutting down) takes the lock in its guard.
        for (name, ipv6, permit) in start {
            // Clears `in_flight` however the lookup ends (also when it is
            // dropped with the refresher, even unpolled), so that no name
            // is ever stuck in flight.
            let guard = InFlight(self.clone(), name, ipv6);
            running.spawn(async move {
                let InFlight(me, name, ipv6) = &guard;
                let answer = me.lookup_bounded(name, *ipv6, REFRESH_TIMEOUT).await;
                me.record(name, *ipv6, answer);
                drop(guard);
                drop(permit);
            });
        }
        next
    }

    /// Its figures: the object `names` of `.stats.json`.
    pub fn telemetry(&self, s: &mut Sheet) {
        let cached = self.entries().len() as u64;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        s.object("names", |s| {
            s.figure("cached", cached).gauge(
                "pingmachine_host_names",
                "Host names (per address family) whose address is kept.",
            );
            s.figure("lookups", get(&self.stats.lookups)).counter(
                "pingmachine_host_name_lookups",
                "Lookups of the orders' host names.",
            );
            s.figure("failures", get(&self.stats.failures)).counter(
                "pingmachine_host_name_lookup_failures",
                "Lookups of host names that failed (the last address stays in use).",
            );
            s.figure("changes", get(&self.stats.changes)).counter(
                "pingmachine_host_name_changes",
                "Times a host name resolved to another address than before.",
            );
        });
    }
}

/// Marks a name as no longer in flight when dropped.
struct InFlight(Arc<Names>, String, bool);

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(e) = self.0.entries().get_mut(&(self.1.as_str().into(), self.2)) {
            e.in_flight = false;
        }
    }
}

fn build_resolver(cfg: &NamesConfig) -> Result<TokioResolver, String> {
    let provider = TokioRuntimeProvider::default();
    let mut builder = if cfg.servers.is_empty() {
        TokioResolver::builder(provider).map_err(|e| e.to_string())?
    } else {
        let servers = cfg
            .servers
            .iter()
            .map(|a| {
                let mut s = NameServerConfig::udp_and_tcp(a.ip());
                for c in &mut s.connections {
                    c.port = a.port();
                }
                s
            })
            .collect();
        TokioResolver::builder_with_config(ResolverConfig::from_name_servers(servers), provider)
    };
    let opts: &mut ResolverOpts = builder.options_mut();
    // The answers are kept here, for as long as the bounds allow; the
    // resolver's own cache must not answer from further back.
    opts.positive_max_ttl = Some(cfg.max_ttl);
    opts.negative_max_ttl = Some(cfg.min_ttl);
    opts.use_hosts_file = hickory_resolver::config::ResolveHosts::Always;
    builder.build().map_err(|e| e.to_string())
}

async fn lookup_dns(r: &TokioResolver, name: &str, ipv6: bool) -> Answer {
    let rtype = if ipv6 {
        RecordType::AAAA
    } else {
        RecordType::A
    };
    let found = r.lookup(name, rtype).await.map_err(|e| e.to_string())?;
    let ttl = found
        .valid_until()
        .saturating_duration_since(std::time::Instant::now());
    found
        .answers()
        .iter()
        .find_map(|rec| match &rec.data {
            RData::A(a) if !ipv6 => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) if ipv6 => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .map(|a| (a, Some(ttl)))
        .ok_or_else(|| format!("no {} address", if ipv6 { "IPv6" } else { "IPv4" }))
}

async fn lookup_system(name: &str, ipv6: bool) -> Answer {
    let mut found = tokio::net::lookup_host((name, 0))
        .await
        .map_err(|e| e.to_string())?;
    found
        .find(|a| a.is_ipv6() == ipv6)
        .map(|a| (a.ip(), None))
        .ok_or_else(|| format!("no {} address", if ipv6 { "IPv6" } else { "IPv4" }))
}

#[cfg(test)]
mod tests;
