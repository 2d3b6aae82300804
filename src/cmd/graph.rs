//! `pingmachine graph`: a SmokePing-style PNG from an order's `main.rrd`
//! (the graph itself is `crate::graph`).

use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::Context;

use crate::basedir::BaseDir;
use crate::cli::GraphOpts;
use crate::graph::{parse_period, render, resolve};
use crate::inspect;
use crate::store::writer::RRD_FILE;

/// Runs `graph`.
pub fn run(base: &BaseDir, opts: &GraphOpts) -> anyhow::Result<()> {
    let period = parse_period(&opts.period).map_err(|e| anyhow::anyhow!("--period {e}"))?;
    let id = resolve(&inspect::rrd_ids(base), opts.order())?;
    let rrd: PathBuf = crate::order::OrderId::new(&id)
        .map_err(|e| anyhow::anyhow!(e))?
        .under(&base.output)
        .join(RRD_FILE);
    let title = opts
        .title
        .clone()
        .unwrap_or_else(|| format!("{id} — last {}", opts.period));
    if let Some(addr) = &opts.rrdcached {
        if let Err(e) = crate::store::rrdcached::flush_for_reading(addr, &rrd) {
            eprintln!("pingmachine: warning: {e}; the graph may miss the latest values");
        }
    }
    let png = render(
        &rrd,
        &title,
        period,
        SystemTime::now(),
        opts.width,
        opts.height,
    )?;
    let tmp = opts.out.with_extension("png.tmp");
    std::fs::write(&tmp, &png).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &opts.out)
        .with_context(|| format!("cannot write {}", opts.out.display()))?;
    eprintln!("{}: {} ({} bytes)", id, opts.out.display(), png.len());
    Ok(())
}
