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
    let listener = serve::bind(opts.listen)?;
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
        eprintln!("serving {} on http://{}/", base.root.display(), opts.listen);
        let ctx =
            Arc::new(ServeCtx::new(base.clone(), None).with_rrdcached(opts.rrdcached.clone()));
        serve::run(listener, ctx, cancel)
            .await
            .context("HTTP server")?;
        Ok(())
    })
}
