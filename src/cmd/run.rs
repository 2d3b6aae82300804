//! The daemon: `pingmachine run`, and the original's form without a
//! subcommand (`pingmachine [--debug] [--user U] [--basedir D] [--telegraf H:P]`).
//!
//! Start-up, in this order, while the process has a single thread (every
//! thread started later inherits the result):
//!
//! 1. parse every setting, so a bad one is an error on the terminal;
//! 2. with `--user`, resolve the user and create and check the base
//!    directory as that user; take `.lock` (exclusive `flock`);
//! 3. open the ICMP sockets of the default bindings (IPv4, IPv6);
//! 4. in the original's form without `--debug`, detach (`daemon(3)`: fork,
//!    new session, `/` as working directory, standard streams on
//!    `/dev/null`) and log to syslog;
//! 5. prepare the process title; with `--user`, drop privileges for good,
//!    keeping only `CAP_NET_RAW` ([`crate::privilege`]);
//! 6. start the log writer, the async runtime, the store writers, the
//!    watcher and the registry.
//!
//! Signals: SIGTERM/SIGINT stop (jobs stop, queued writes finish, exit 0);
//! SIGHUP triggers a full rescan. A dead thread or task stops the daemon
//! with an error (exit 1), see [`crate::supervise`].

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use probes::icmp::{Binding, Family, IcmpConfig, IcmpEngine, PreOpened, SocketKind};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, warn};

use crate::basedir::{BaseDir, Lock};
use crate::cli::{IcmpSocket, RunOpts};
use crate::health::Telemetry;
use crate::logging::{self, Logging, Target};
use crate::names::{Names, NamesConfig};
use crate::privilege::RunAs;
use crate::probe::deps::{parse_exec_probe, CommandTemplate, DepsConfig};
use crate::probe::ProbeDeps;
use crate::proctitle;
use crate::registry::{Registry, Spawner};
use crate::sink::{self, Sinks};
use crate::stats;
use crate::store::rrdcached::RrdCached;
use crate::store::writer::Writers;
use crate::supervise::Supervisor;
use crate::watch::{self, OrderWatcher, WatchEvent};
use crate::web::ServeCtx;

/// How long job tasks get to stop at shutdown.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How long queued log lines may take to be written at exit.
const LOG_DRAIN: Duration = Duration::from_secs(2);
/// How long queued RRD updates may take to reach rrdcached at shutdown.
const RRDCACHED_DRAIN: Duration = Duration::from_secs(5);
/// How long the store writers may take at shutdown to write the rounds
/// still waiting; what is left then is counted (`store.unwritten_at_stop`).
/// With the other drains it stays within the unit's TimeoutStopSec=30.
const STORE_DRAIN: Duration = Duration::from_secs(15);
/// How often the watchdog looks at what reports no failure by itself.
const WATCHDOG_EVERY: Duration = Duration::from_secs(1);

/// How the daemon was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Launch {
    /// `pingmachine run`: in the foreground, logging to standard error.
    Foreground,
    /// No subcommand, as the original: detach and log to syslog, or with
    /// `--debug` stay in the foreground and log to the terminal.
    Classic,
}

/// Runs the daemon until SIGTERM/SIGINT (or a dead thread or task).
pub fn run(base: &BaseDir, opts: &RunOpts, launch: Launch) -> anyhow::Result<()> {
    let detach = launch == Launch::Classic && !opts.debug;
    let log = logging::install(
        if detach {
            Target::Syslog
        } else {
            Target::Stderr
        },
        if opts.debug { "debug" } else { "info" },
    );
    let mut detached = false;
    let result = start(base, opts, detach, &log, &mut detached);
    if let Err(e) = &result {
        if detached {
            // Standard error is /dev/null now: say it in syslog.
            error!("{e:#}");
        }
    }
    log.finish(LOG_DRAIN);
    result
}

/// Everything parsed from the command line before anything starts.
struct Settings {
    deps: DepsConfig,
    names: NamesConfig,
    sinks: Vec<Box<dyn sink::Plan>>,
    icmp: IcmpConfig,
    run_as: Option<RunAs>,
}

fn start(
    base: &BaseDir,
    opts: &RunOpts,
    detach: bool,
    log: &Logging,
    detached: &mut bool,
) -> anyhow::Result<()> {
    let settings = settings(opts)?;
    // Detaching changes the working directory to /.
    let mut base = BaseDir::new(
        &std::path::absolute(&base.root)
            .with_context(|| format!("base directory {}", base.root.display()))?,
    );
    let lock = prepare_base(&base, settings.run_as.as_ref())?;
    if opts.rrdcached.is_some() {
        // rrdcached knows a file by the name it is given: one canonical
        // name for the daemon and every reader.
        let canonical = std::fs::canonicalize(&base.root)
            .with_context(|| format!("base directory {}", base.root.display()))?;
        crate::store::rrdcached::check_path(&canonical)
            .map_err(|e| anyhow::anyhow!("--rrdcached: {e}"))?;
        base = BaseDir::new(&canonical);
    }
    // Bound before detaching and dropping privileges: a taken port is a
    // start-up error on the terminal, and a port below 1024 works.
    let listeners = crate::web::bind_all(&opts.listen)?;
    if opts.listen.is_empty() {
        if opts.fleet.prometheus_url.is_some() {
            anyhow::bail!("--prometheus-url: the fleet view is a web page; it needs --listen");
        }
        if opts.web.web_config_file.is_some() || !opts.web.web_route_prefix.is_empty() {
            anyhow::bail!(
                "--web-config-file and --web-route-prefix apply to the web page; they need --listen"
            );
        }
    }
    let fleet = crate::web::fleet::Fleet::new(
        &opts.fleet,
        &crate::cmd::serve::read_ca(&opts.http_ca_files)?,
        &opts.web.web_route_prefix,
    )?;
    let access = Arc::new(match &opts.web.web_config_file {
        Some(f) => crate::web::access::Access::load(f)?,
        None => crate::web::access::Access::default(),
    });
    let raised = crate::privilege::raise_permitted_net_raw();
    let (pre, failed) = PreOpened::open(
        &settings.icmp,
        &[Binding::any(Family::V4), Binding::any(Family::V6)],
    );
    for e in failed {
        // Opened again when a round needs it; said then if it still fails.
        debug!("ICMP socket not opened at start-up: {e}");
    }
    if detach {
        nix::unistd::daemon(false, false).context("cannot detach (daemon)")?;
        *detached = true;
    }
    proctitle::init();
    if let Some(u) = &settings.run_as {
        u.drop_privileges()
            .with_context(|| format!("--user {}: cannot switch", u.name))?;
        info!(
            user = %u.name,
            uid = u.uid.as_raw(),
            gid = u.gid.as_raw(),
            "running as an unprivileged user, keeping only CAP_NET_RAW"
        );
    }
    log.start();
    if raised {
        info!(
            "CAP_NET_RAW was permitted (file capability): made it effective for raw ICMP sockets"
        );
    }
    proctitle::set(&proctitle::orders_title(0));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("pingmachine")
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(daemon(
        &base,
        opts,
        settings,
        pre,
        lock,
        listeners,
        (fleet, access),
    ))
}

/// Parses and checks every setting.
fn settings(opts: &RunOpts) -> anyhow::Result<Settings> {
    let socket_kind = match opts.icmp_socket {
        IcmpSocket::Auto => SocketKind::Auto,
        IcmpSocket::Datagram => SocketKind::Datagram,
        IcmpSocket::Raw => SocketKind::Raw,
    };
    let deps = deps_config(opts)?;
    let sinks = sink::plan(
        &opts.sinks,
        &sink::Common {
            http_ca: &deps.http_ca,
            listen: !opts.listen.is_empty(),
        },
    )?;
    if opts.dns_min_ttl > opts.dns_max_ttl {
        anyhow::bail!(
            "--dns-min-ttl {} is above --dns-max-ttl {}",
            opts.dns_min_ttl,
            opts.dns_max_ttl
        );
    }
    Ok(Settings {
        deps,
        names: NamesConfig {
            servers: opts.dns_servers.clone(),
            min_ttl: Duration::from_secs(u64::from(opts.dns_min_ttl)),
            max_ttl: Duration::from_secs(u64::from(opts.dns_max_ttl)),
        },
        sinks,
        icmp: IcmpConfig {
            socket_kind,
            // One sender wake-up per millisecond for all jobs (the original's
            // 1 ms spacing within a job is kept).
            send_quantum: Duration::from_millis(1),
            ..IcmpConfig::default()
        },
        run_as: match &opts.user {
            Some(name) => RunAs::resolve(name)?,
            None => None,
        },
    })
}

/// Creates the base directory tree and takes its lock. With `--user`, the
/// base directory must exist; the tree is created and checked for writing
/// as that user, and the lock taken as root.
fn prepare_base(base: &BaseDir, run_as: Option<&RunAs>) -> anyhow::Result<Lock> {
    let Some(u) = run_as else {
        base.create()?;
        return base.lock();
    };
    let prepare = format!(
        "prepare it with: install -d -o {user} -g {gid} {dir}",
        user = u.name,
        gid = u.gid,
        dir = base.root.display()
    );
    if !base.root.is_dir() {
        bail!(
            "--user {}: the base directory {} does not exist; {prepare}",
            u.name,
            base.root.display()
        );
    }
    u.as_user(|| -> anyhow::Result<()> {
        base.create()?;
        base.check_writable()?;
        // The lock file belongs to the user too, for later runs as that user.
        base.lock_file()?;
        Ok(())
    })?
    .map_err(|e| {
        anyhow::anyhow!(
            "--user {} cannot use the base directory {}: {e:#}; {prepare}",
            u.name,
            base.root.display()
        )
    })?;
    base.lock()
}

/// Probe settings from the command line, with a clear error for each bad one.
fn deps_config(opts: &RunOpts) -> anyhow::Result<DepsConfig> {
    let mut http_ca = Vec::new();
    for f in &opts.http_ca_files {
        http_ca.push(std::fs::read(f).with_context(|| format!("--http-ca-file {}", f.display()))?);
    }
    let template = |flag: &str, s: &str| {
        CommandTemplate::parse(s).map_err(|e| anyhow::anyhow!("{flag} {s:?}: {e}"))
    };
    let mut exec = std::collections::HashMap::new();
    for e in &opts.exec_probes {
        let (name, t) =
            parse_exec_probe(e).map_err(|why| anyhow::anyhow!("--exec-probe {e:?}: {why}"))?;
        exec.insert(name, t);
    }
    Ok(DepsConfig {
        http_ca,
        sping: template("--sping-command", &opts.sping_command)?,
        pping: template("--pping-command", &opts.pping_command)?,
        exec,
        max_parallel: opts.max_parallel_probes as usize,
    })
}

async fn daemon(
    base: &BaseDir,
    opts: &RunOpts,
    settings: Settings,
    pre: PreOpened,
    _lock: Lock,
    listeners: Vec<std::net::TcpListener>,
    (fleet, access): (
        Option<crate::web::fleet::Fleet>,
        Arc<crate::web::access::Access>,
    ),
) -> anyhow::Result<()> {
    let engine = Arc::new(
        IcmpEngine::with_preopened(settings.icmp, pre).context("cannot start the ICMP engine")?,
    );
    let names = Arc::new(Names::new(&settings.names)?);
    let deps = Arc::new(ProbeDeps::new(engine.clone(), settings.deps, names.clone()));
    let counters = Arc::new(crate::counters::JobStats::default());
    let sup = Supervisor::new();
    let rrdcached = start_rrdcached(opts, &sup)?;
    let (store, writers) = Writers::start_supervised(
        base,
        usize::from(opts.writers),
        &sup,
        rrdcached.clone(),
        opts.rrd_backlog,
    )
    .context("cannot start store writer threads")?;
    let (tx, rx) = mpsc::channel(watch::QUEUE);
    let cancel = CancellationToken::new();
    let start_watcher = watcher_starter(base, tx.clone(), &sup, &cancel);
    let tracker = TaskTracker::new();
    handle_signals(tx, &cancel, &sup)?;
    tracker.spawn(names.clone().run(cancel.clone()));

    info!(basedir = %base.root.display(), version = env!("CARGO_PKG_VERSION"), "pingmachine started");
    let sinks = Arc::new(Sinks::start(
        settings.sinks,
        &sink::Env {
            tracker: &tracker,
            cancel: &cancel,
            sup: &sup,
        },
    ));
    let telemetry = Arc::new(Telemetry {
        started: stats::Started {
            stats_interval_s: opts.stats_interval,
            listen: listeners.first().and_then(|l| l.local_addr().ok()),
            route_prefix: opts.web.web_route_prefix.clone(),
            web_auth: access.required(),
            web_tls: access.scheme_tag(),
            rrdcached: rrdcached.clone(),
        },
        jobs: counters.clone(),
        icmp: engine.clone(),
        store: store.clone(),
        sinks: sinks.clone(),
        names,
    });
    if !listeners.is_empty() {
        let ctx = ServeCtx::new(base.clone(), Some(telemetry.clone()))
            .with_rrdcached(opts.rrdcached.clone())
            .with_shard(opts.shard)
            .with_fleet(fleet)
            .with_access(&opts.web.web_route_prefix, access.clone());
        serve(listeners, ctx, &tracker, &sup, &cancel);
    }
    let launcher = Spawner {
        deps,
        counters: counters.clone(),
        store: store.clone(),
        sinks: sinks.clone(),
        tracker: tracker.clone(),
        supervisor: sup.clone(),
    };
    let registry = Registry::new(
        base.clone(),
        launcher,
        store.clone(),
        counters,
        cancel.clone(),
        max_age(opts.max_age),
    )
    .with_rescan_interval(Duration::from_secs(opts.rescan_interval))
    .with_shard(opts.shard);
    let stats_task = spawn_stats_writer(
        telemetry.clone(),
        base.root.clone(),
        Duration::from_secs(opts.stats_interval),
        &cancel,
        &sup,
    );
    let watchdog = spawn_watchdog(engine, &cancel, &sup);
    let self_scrape = sinks
        .scrape_interval()
        .map(|every| spawn_self_scrape(telemetry.clone(), base.clone(), every, &cancel, &sup));
    registry.run(rx, start_watcher).await;
    if let Some(t) = self_scrape {
        let _ = t.await;
    }
    let _ = stats_task.await;
    let _ = watchdog.await;
    shut_down(base, tracker, &sinks, store, writers, &telemetry, rrdcached).await;
    if let Some(what) = sup.failure() {
        error!(
            "{what}: pingmachine stopped so that its service manager restarts it ({} log lines dropped)",
            logging::dropped()
        );
        bail!("{what}; stopped");
    }
    info!(log_lines_dropped = logging::dropped(), "stopped");
    Ok(())
}

/// `--max-age`: 0 is never (no file is that old).
fn max_age(seconds: u64) -> Duration {
    if seconds == 0 {
        Duration::MAX
    } else {
        Duration::from_secs(seconds)
    }
}

/// The rrdcached client (`--rrdcached`), started.
fn start_rrdcached(opts: &RunOpts, sup: &Supervisor) -> anyhow::Result<Option<Arc<RrdCached>>> {
    let Some(addr) = &opts.rrdcached else {
        return Ok(None);
    };
    let c = RrdCached::start(
        addr.clone(),
        opts.rrdcached_queue,
        Some(sup.guard("the rrdcached client")),
    )
    .context("cannot start the rrdcached client thread")?;
    info!(rrdcached = %addr, queue = opts.rrdcached_queue, "main.rrd files are created and updated through rrdcached");
    Ok(Some(c))
}

/// What starts the file watcher. The registry calls it once the first
/// scan has read every order file: a watch from the start would queue an
/// event for each of those reads (a million wake-ups of the watcher
/// thread at a million orders).
fn watcher_starter(
    base: &BaseDir,
    tx: mpsc::Sender<WatchEvent>,
    sup: &Supervisor,
    cancel: &CancellationToken,
) -> impl FnOnce() -> Option<OrderWatcher> {
    let (orders, telegraf, sup, cancel) = (
        base.orders.clone(),
        base.telegraf.clone(),
        sup.clone(),
        cancel.clone(),
    );
    move || {
        let t = std::time::Instant::now();
        match OrderWatcher::start(&orders, &telegraf, tx) {
            Ok(w) => {
                debug!(
                    elapsed_ms = t.elapsed().as_millis() as u64,
                    "file watcher started"
                );
                Some(w)
            }
            Err(e) => {
                sup.fail(format!("cannot watch {}: {e}", orders.display()));
                cancel.cancel();
                None
            }
        }
    }
}

/// SIGTERM and SIGINT stop the daemon, SIGHUP rescans `orders/`; a failed
/// part stops it too.
fn handle_signals(
    tx: mpsc::Sender<WatchEvent>,
    cancel: &CancellationToken,
    sup: &Supervisor,
) -> anyhow::Result<()> {
    let mut sigterm = signal(SignalKind::terminate()).context("cannot install SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("cannot install SIGINT handler")?;
    let mut sighup = signal(SignalKind::hangup()).context("cannot install SIGHUP handler")?;
    let (cancel, sup) = (cancel.clone(), sup.clone());
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = sigterm.recv() => { info!("SIGTERM: stopping"); break; }
                _ = sigint.recv() => { info!("SIGINT: stopping"); break; }
                _ = sighup.recv() => {
                    info!("SIGHUP: rescanning orders");
                    let _ = tx.send(WatchEvent::Rescan("SIGHUP")).await;
                }
                () = sup.failed() => break,
            }
        }
        cancel.cancel();
    });
    Ok(())
}

/// The HTTP server (`--listen`) on the daemon's runtime, one task per
/// listening socket.
fn serve(
    listeners: Vec<std::net::TcpListener>,
    ctx: ServeCtx,
    tracker: &TaskTracker,
    sup: &Supervisor,
    cancel: &CancellationToken,
) {
    let ctx = Arc::new(ctx);
    for listener in listeners {
        let addr = listener.local_addr().ok();
        let (ctx, cancel) = (ctx.clone(), cancel.clone());
        tracker.spawn(sup.watch("the HTTP server".into(), async move {
            if let Err(e) = crate::web::run(listener, ctx, cancel).await {
                error!(error = %e, "HTTP server stopped");
            }
        }));
        if let Some(a) = addr {
            info!(address = %a, "serving the web page, /metrics, /-/healthy and /-/ready");
        }
    }
}

/// Writes `.stats.json` at once (a health check reads it), then `every`.
fn spawn_stats_writer(
    telemetry: Arc<Telemetry>,
    root: std::path::PathBuf,
    every: Duration,
    cancel: &CancellationToken,
    sup: &Supervisor,
) -> tokio::task::JoinHandle<()> {
    let cancel = cancel.clone();
    tokio::spawn(sup.watch("the stats writer".into(), async move {
        loop {
            let text = telemetry.stats_json();
            // On a blocking thread: a slow disk never holds up an async
            // worker (the jobs run there). The next write waits for this one.
            let root = root.clone();
            let written = tokio::task::spawn_blocking(move || stats::write(&root, &text)).await;
            if let Ok(Err(e)) = written {
                warn!(error = %e, "cannot write {}", stats::FILE);
            }
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = cancel.cancelled() => break,
            }
        }
    }))
}

/// Reads the whole of `/metrics` every `every`, on a blocking thread, and
/// hands it to the sinks that want it (`--remote-write-series full`).
fn spawn_self_scrape(
    telemetry: Arc<Telemetry>,
    base: BaseDir,
    every: Duration,
    cancel: &CancellationToken,
    sup: &Supervisor,
) -> tokio::task::JoinHandle<()> {
    let cancel = cancel.clone();
    tokio::spawn(sup.watch("the /metrics reader".into(), async move {
        let counts = Arc::new(crate::health::DirCounts::default());
        loop {
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = cancel.cancelled() => break,
            }
            let (t, b, c) = (telemetry.clone(), base.clone(), counts.clone());
            let _ = tokio::task::spawn_blocking(move || {
                let mut out = crate::telemetry::Exposition::new(false);
                t.expose(&mut out, c.get(&b));
                let at_ms = i64::try_from(
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap_or_default()
                        .as_millis(),
                )
                .unwrap_or(0);
                t.sinks.scraped(&out.finish(), at_ms);
            })
            .await;
        }
    }))
}

/// The watchdog: what cannot report its own death (the ICMP engine's
/// threads) is looked at every [`WATCHDOG_EVERY`].
fn spawn_watchdog(
    engine: Arc<IcmpEngine>,
    cancel: &CancellationToken,
    sup: &Supervisor,
) -> tokio::task::JoinHandle<()> {
    let (sup, cancel) = (sup.clone(), cancel.clone());
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = tokio::time::sleep(WATCHDOG_EVERY) => {}
                () = cancel.cancelled() => break,
            }
            if let Err(what) = engine.health() {
                sup.fail(what.to_string());
            }
            if sup.failure().is_some() {
                cancel.cancel();
                break;
            }
        }
    })
}

/// After the registry stopped: jobs stop, the sinks log their totals, the
/// writers drain (bounded), `.stats.json` is written a last time, and what
/// the writers queued for rrdcached is sent.
async fn shut_down(
    base: &BaseDir,
    tracker: TaskTracker,
    sinks: &Sinks,
    store: crate::store::StoreHandle,
    writers: Writers,
    telemetry: &Telemetry,
    rrdcached: Option<Arc<RrdCached>>,
) {
    tracker.close();
    if tokio::time::timeout(STOP_GRACE, tracker.wait())
        .await
        .is_err()
    {
        warn!("some jobs did not stop in time");
    }
    sinks.log_totals();
    let stats = store.stats();
    info!(
        rrd_updates = stats.rrd_updates.load(std::sync::atomic::Ordering::Relaxed),
        last_results = stats
            .last_results
            .load(std::sync::atomic::Ordering::Relaxed),
        write_errors = stats.errors.load(std::sync::atomic::Ordering::Relaxed),
        "finishing queued writes"
    );
    // Every round measured is written, or counted as not written when
    // storage is too slow to finish within the drain.
    tokio::task::spawn_blocking(move || writers.stop(Some(STORE_DRAIN)))
        .await
        .ok();
    let text = telemetry.stats_json();
    if let Err(e) = stats::write(&base.root, &text) {
        warn!(error = %e, "cannot write {}", stats::FILE);
    }
    drop(store);
    if let Some(c) = rrdcached {
        // The writers are done: what they queued goes to rrdcached now.
        tokio::task::spawn_blocking(move || c.shutdown(RRDCACHED_DRAIN))
            .await
            .ok();
    }
}
