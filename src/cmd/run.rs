//! `pingmachine run`: the daemon.
//!
//! Start-up: create the base directory tree, take `.lock`, start the ICMP
//! engine, the store writers, the watcher and the registry. Signals:
//! SIGTERM/SIGINT stop (jobs stop, queued writes finish, then exit);
//! SIGHUP triggers a full rescan.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use probes::icmp::{IcmpConfig, IcmpEngine, SocketKind};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::basedir::BaseDir;
use crate::cli::{IcmpSocket, RunOpts};
use crate::job::deps::{parse_exec_probe, CommandTemplate, DepsConfig};
use crate::job::ProbeDeps;
use crate::registry::Registry;
use crate::sink::{Destination, Sinks};
use crate::stats;
use crate::store::writer::Writers;
use crate::watch::{self, OrderWatcher, WatchEvent};

/// How long job tasks get to stop at shutdown.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Runs the daemon until SIGTERM/SIGINT.
pub fn run(base: &BaseDir, opts: &RunOpts) -> anyhow::Result<()> {
    base.create()?;
    let _lock = base.lock()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("pingmachine")
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(daemon(base, opts))
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

/// Line-protocol destinations from the command line.
fn sinks_config(
    opts: &RunOpts,
    tracker: &TaskTracker,
    cancel: &CancellationToken,
) -> anyhow::Result<Sinks> {
    let mut dests = Vec::new();
    if let Some(t) = &opts.telegraf {
        dests.push(
            Destination::parse(&format!("udp://{t}"), |_| None, &[])
                .map_err(|e| anyhow::anyhow!("--telegraf {t:?}: {e}"))?,
        );
    }
    let mut ca = Vec::new();
    for f in &opts.http_ca_files {
        ca.push(std::fs::read(f).with_context(|| format!("--http-ca-file {}", f.display()))?);
    }
    for u in &opts.influx_urls {
        dests.push(
            Destination::parse(u, |k| std::env::var(k).ok(), &ca)
                .map_err(|e| anyhow::anyhow!("--influx-url {u:?}: {e}"))?,
        );
    }
    let mut tags = std::collections::BTreeMap::new();
    for t in &opts.tags {
        let (k, v) = crate::sink::parse_tag(t).map_err(|e| anyhow::anyhow!("--tag {t:?}: {e}"))?;
        tags.insert(k, v);
    }
    Ok(Sinks::start(
        dests,
        tags,
        opts.influx_buffer as usize,
        tracker,
        cancel,
    ))
}

async fn daemon(base: &BaseDir, opts: &RunOpts) -> anyhow::Result<()> {
    let socket_kind = match opts.icmp_socket {
        IcmpSocket::Auto => SocketKind::Auto,
        IcmpSocket::Datagram => SocketKind::Datagram,
        IcmpSocket::Raw => SocketKind::Raw,
    };
    let engine = Arc::new(
        IcmpEngine::new(IcmpConfig {
            socket_kind,
            // One sender wake-up per millisecond for all jobs (SPEC A5's
            // 1 ms spacing within a job is kept).
            send_quantum: Duration::from_millis(1),
            ..IcmpConfig::default()
        })
        .context("cannot start the ICMP engine")?,
    );
    let deps = Arc::new(ProbeDeps::new(engine, deps_config(opts)?));
    let deps_stats = deps.clone();
    let (store, writers) = Writers::start(base, usize::from(opts.writers))
        .context("cannot start store writer threads")?;
    let (tx, rx) = mpsc::channel(watch::QUEUE);
    let watcher = OrderWatcher::start(&base.orders, &base.telegraf, tx.clone())
        .with_context(|| format!("cannot watch {}", base.orders.display()))?;

    let cancel = CancellationToken::new();
    let tracker = TaskTracker::new();
    let mut sigterm = signal(SignalKind::terminate()).context("cannot install SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("cannot install SIGINT handler")?;
    let mut sighup = signal(SignalKind::hangup()).context("cannot install SIGHUP handler")?;
    {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = sigterm.recv() => { info!("SIGTERM: stopping"); break; }
                    _ = sigint.recv() => { info!("SIGINT: stopping"); break; }
                    _ = sighup.recv() => {
                        info!("SIGHUP: rescanning orders");
                        let _ = tx.send(WatchEvent::Rescan("SIGHUP")).await;
                    }
                }
            }
            cancel.cancel();
        });
    }

    info!(basedir = %base.root.display(), version = env!("CARGO_PKG_VERSION"), "pingmachine started");
    let sinks = Arc::new(sinks_config(opts, &tracker, &cancel)?);
    let registry = Registry::new(
        base.clone(),
        deps,
        store.clone(),
        sinks.clone(),
        tracker.clone(),
        cancel.clone(),
        Duration::from_secs(opts.max_age),
    )
    .with_rescan_interval(Duration::from_secs(opts.rescan_interval));
    let every = Duration::from_secs(opts.stats_interval);
    let stats_task = {
        let (deps, store, sinks, root, cancel) = (
            deps_stats.clone(),
            store.clone(),
            sinks.clone(),
            base.root.clone(),
            cancel.clone(),
        );
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(every) => {}
                    () = cancel.cancelled() => break,
                }
                let text = stats::snapshot(&deps.stats, &deps.icmp, store.stats(), &sinks);
                if let Err(e) = stats::write(&root, &text) {
                    warn!(error = %e, "cannot write {}", stats::FILE);
                }
            }
        })
    };
    registry.run(rx, watcher).await;
    let _ = stats_task.await;

    tracker.close();
    if tokio::time::timeout(STOP_GRACE, tracker.wait())
        .await
        .is_err()
    {
        warn!("some jobs did not stop in time");
    }
    for o in sinks.outputs() {
        let s = &o.stats;
        info!(
            destination = %o.destination().label(),
            sent = s.sent.load(std::sync::atomic::Ordering::Relaxed),
            dropped = s.dropped.load(std::sync::atomic::Ordering::Relaxed),
            retries = s.retries.load(std::sync::atomic::Ordering::Relaxed),
            "line-protocol output totals"
        );
    }
    let stats = store.stats();
    info!(
        rrd_updates = stats.rrd_updates.load(std::sync::atomic::Ordering::Relaxed),
        last_results = stats
            .last_results
            .load(std::sync::atomic::Ordering::Relaxed),
        write_errors = stats.errors.load(std::sync::atomic::Ordering::Relaxed),
        "finishing queued writes"
    );
    let text = stats::snapshot(&deps_stats.stats, &deps_stats.icmp, store.stats(), &sinks);
    if let Err(e) = stats::write(&base.root, &text) {
        warn!(error = %e, "cannot write {}", stats::FILE);
    }
    drop(store);
    tokio::task::spawn_blocking(move || writers.join())
        .await
        .ok();
    info!("stopped");
    Ok(())
}
