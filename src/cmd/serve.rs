//! `pingmachine serve --listen ADDR`: the read-only web page of a base
//! directory (status, order pages with graphs, the JSON API) without
//! probing. It reads what the daemon writes; it can run as another,
//! unprivileged user, on another port, or beside a daemon that runs
//! without `--listen`. Stops on SIGTERM or SIGINT.

use std::sync::Arc;

use anyhow::{bail, Context};
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

use crate::basedir::BaseDir;
use crate::cli::ServeOpts;
use crate::web::{self as serve, ServeCtx};

/// Runs `serve`.
pub fn run(base: &BaseDir, opts: &ServeOpts) -> anyhow::Result<()> {
    if !base.orders.is_dir() {
        bail!(
            "{} has no orders/ directory: not a pingmachine base directory",
            base.root.display()
        );
    }
    let listeners = serve::bind_all(&opts.listen)?;
    let access = Arc::new(match &opts.web.web_config_file {
        Some(f) => crate::web::access::Access::load(f)?,
        None => crate::web::access::Access::default(),
    });
    let prefix = opts.web.web_route_prefix.clone();
    let fleet =
        crate::web::fleet::Fleet::new(&opts.fleet, &read_ca(&opts.http_ca_files)?, &prefix)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("pingmachine-serve")
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async {
        let cancel = CancellationToken::new();
        let mut term = signal(SignalKind::terminate()).context("cannot install SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("cannot install SIGINT handler")?;
        {
            let cancel = cancel.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
                cancel.cancel();
            });
        }
        let ctx = Arc::new(
            ServeCtx::new(base.clone(), None)
                .with_rrdcached(opts.rrdcached.clone())
                .with_shard(opts.shard)
                .with_fleet(fleet)
                .with_access(&prefix, access),
        );
        let mut servers = tokio::task::JoinSet::new();
        for listener in listeners {
            if let Ok(a) = listener.local_addr() {
                eprintln!(
                    "serving {} on {}://{a}{prefix}/",
                    base.root.display(),
                    ctx.access.scheme()
                );
            }
            servers.spawn(serve::run(listener, ctx.clone(), cancel.clone()));
        }
        while let Some(done) = servers.join_next().await {
            // One server failing stops the others.
            cancel.cancel();
            done.context("HTTP server")?.context("HTTP server")?;
        }
        Ok(())
    })
}

/// The PEM files of `--http-ca-file`.
pub fn read_ca(files: &[std::path::PathBuf]) -> anyhow::Result<Vec<Vec<u8>>> {
    files
        .iter()
        .map(|f| std::fs::read(f).with_context(|| format!("--http-ca-file {}", f.display())))
        .collect()
}
