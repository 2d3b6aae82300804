//! `pingmachine status`: the state of every order, grouped by user — the
//! original's `pingmachine-status`, plus rejected orders, the archive count
//! and `--json` for scripts. The report and its table are `crate::report`.

use std::io::IsTerminal;

use crate::basedir::BaseDir;
use crate::cli::StatusOpts;
use crate::report::{render, report, Filter};

/// Runs `status`.
pub fn run(base: &BaseDir, opts: &StatusOpts) -> anyhow::Result<()> {
    if !base.orders.is_dir() {
        anyhow::bail!(
            "{} has no orders/ directory (is --basedir right?)",
            base.root.display()
        );
    }
    let r = report(
        base,
        &Filter {
            prefix: opts.prefix.clone(),
            user: opts.user.clone(),
            now: opts.now,
            shard: opts.shard,
        },
    );
    if opts.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        let color = std::io::stdout().is_terminal()
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        print!("{}", render(&r, color));
    }
    Ok(())
}
