//! `pingmachine order put|touch|rm|ls`: manage order files the way clients
//! should — validated first, written atomically (temp file + rename, so the
//! daemon never sees a partial file).
//!
//! `put` takes the id from `--id`, or else the md5 hex digest of the content
//! (the original's old interface). Putting the same content again is a
//! refresh: same id, same file, new mtime.

use std::io::{Read, Write};
use std::path::Path;
use std::time::SystemTime;

use anyhow::{bail, Context};

use crate::basedir::BaseDir;
use crate::cli::OrderAction;
use crate::inspect;
use crate::order::{self, OrderId};

/// Runs an `order` action.
pub fn run(base: &BaseDir, action: &OrderAction) -> anyhow::Result<()> {
    match action {
        OrderAction::Put { file, id } => {
            let id = put(base, file, id.as_deref())?;
            println!("{id}");
            Ok(())
        }
        OrderAction::Touch { id } => touch(base, id),
        OrderAction::Rm { id } => rm(base, id),
        OrderAction::Ls { user, prefix } => {
            print!("{}", ls(base, user.as_deref(), prefix.as_deref()));
            Ok(())
        }
    }
}

fn read_input(file: &str) -> anyhow::Result<Vec<u8>> {
    let limit = order::parse::MAX_ORDER_BYTES as u64 + 1;
    let mut buf = Vec::new();
    if file == "-" {
        std::io::stdin()
            .take(limit)
            .read_to_end(&mut buf)
            .context("cannot read standard input")?;
    } else {
        std::fs::File::open(file)
            .with_context(|| format!("cannot open {file}"))?
            .take(limit)
            .read_to_end(&mut buf)
            .with_context(|| format!("cannot read {file}"))?;
    }
    Ok(buf)
}

/// Validates and writes an order; returns its id.
pub fn put(base: &BaseDir, file: &str, id: Option<&str>) -> anyhow::Result<OrderId> {
    let content = read_input(file)?;
    let shown = if file == "-" {
        Path::new("<stdin>")
    } else {
        Path::new(file)
    };
    put_bytes(base, &content, id, shown)
}

/// Validates and writes the order `content` (read from `shown`, for
/// messages) atomically; returns its id.
pub fn put_bytes(
    base: &BaseDir,
    content: &[u8],
    id: Option<&str>,
    shown: &Path,
) -> anyhow::Result<OrderId> {
    let id = match id {
        Some(i) => OrderId::new(i).map_err(|e| anyhow::anyhow!("--id: {e}"))?,
        None => {
            OrderId::new(&format!("{:x}", md5::compute(content))).map_err(|e| anyhow::anyhow!(e))?
        }
    };
    order::parse_order(shown, &id, content).map_err(|e| anyhow::anyhow!("{e}"))?;
    let path = id.under(&base.orders);
    let dir = path.parent().unwrap_or(&base.orders);
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("order");
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(content)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot write {}", path.display()));
    }
    Ok(id)
}

fn existing(base: &BaseDir, id: &str) -> anyhow::Result<std::path::PathBuf> {
    let id = OrderId::new(id).map_err(|e| anyhow::anyhow!(e))?;
    let path = id.under(&base.orders);
    if !path.is_file() {
        bail!("no order {id} (no file {})", path.display());
    }
    Ok(path)
}

/// Sets an order file's mtime to now (the hourly refresh).
pub fn touch(base: &BaseDir, id: &str) -> anyhow::Result<()> {
    let path = existing(base, id)?;
    std::fs::File::options()
        .write(true)
        .open(&path)
        .and_then(|f| f.set_modified(SystemTime::now()))
        .with_context(|| format!("cannot touch {}", path.display()))
}

/// Removes an order file (the daemon archives its output).
pub fn rm(base: &BaseDir, id: &str) -> anyhow::Result<()> {
    let path = existing(base, id)?;
    std::fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))
}

/// The order files, one line each: id, user, probe, target, refresh age
/// (or the reason it is invalid).
pub fn ls(base: &BaseDir, user: Option<&str>, prefix: Option<&str>) -> String {
    let now = SystemTime::now();
    let mut rows = vec![[
        "ID".to_owned(),
        "USER".into(),
        "PROBE".into(),
        "TARGET".into(),
        "REFRESHED".into(),
    ]];
    for f in inspect::order_files(base) {
        if prefix.is_some_and(|p| !f.id.as_str().starts_with(p)) {
            continue;
        }
        let age = f
            .mtime
            .and_then(|m| now.duration_since(m).ok())
            .map_or_else(
                || "-".to_owned(),
                |d| format!("{} ago", crate::report::age(d.as_secs() as i64)),
            );
        match &f.order {
            Ok(o) if user.is_none_or(|u| u == o.user) => rows.push([
                f.id.to_string(),
                o.user.clone(),
                o.probe.name().to_owned(),
                o.probe.target(),
                age,
            ]),
            Ok(_) => {}
            Err(e) if user.is_none() => rows.push([
                f.id.to_string(),
                "-".into(),
                "INVALID".into(),
                e.reason.clone(),
                age,
            ]),
            Err(_) => {}
        }
    }
    let widths: Vec<usize> = (0..5)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            line.push_str(cell);
            if c < 4 {
                line.push_str(&" ".repeat(widths[c] - cell.chars().count() + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
