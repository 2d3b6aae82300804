//! `pingmachine check FILE...`: validates order files offline with the same
//! rules and messages as the daemon. Prints `FILE: ok` or the error for each
//! file (warnings too); the exit status is 1 when any file is invalid.

use std::io::Write;
use std::path::{Component, Path};

use crate::order::id::IdError;
use crate::order::{self, OrderId};

/// The id the daemon would give `path`: the part after an `orders`
/// directory, or else the file name.
pub fn id_for(path: &Path) -> Result<OrderId, IdError> {
    let comps: Vec<&str> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => s.to_str(),
            _ => None,
        })
        .collect();
    if let Some(pos) = comps.iter().rposition(|c| *c == "orders") {
        if pos + 1 < comps.len() {
            return OrderId::new(&comps[pos + 1..].join("/"));
        }
    }
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| IdError::NotUtf8(path.to_path_buf()))?;
    OrderId::new(name).or_else(|_| Ok(OrderId::new("order").expect("constant id is valid")))
}

/// Checks `files`, writing one report per file to `out`; returns how many
/// are invalid.
pub fn check(files: &[std::path::PathBuf], out: &mut impl Write) -> std::io::Result<usize> {
    let mut bad = 0;
    for f in files {
        let id = match id_for(f) {
            Ok(id) => id,
            Err(e) => {
                writeln!(out, "{}: invalid order id: {e}", f.display())?;
                bad += 1;
                continue;
            }
        };
        match order::read_order_file(f, &id) {
            Ok(p) => {
                for w in &p.warnings {
                    writeln!(out, "warning: {w}")?;
                }
                writeln!(out, "{}: ok", f.display())?;
            }
            Err(e) => {
                writeln!(out, "{e}")?;
                bad += 1;
            }
        }
    }
    Ok(bad)
}

/// Runs `check` on stdout; `Ok(false)` when some file is invalid.
pub fn run(files: &[std::path::PathBuf]) -> anyhow::Result<bool> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let bad = check(files, &mut out)?;
    out.flush()?;
    Ok(bad == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert_eq!(
            id_for(Path::new("/b/orders/app/t1")).unwrap().as_str(),
            "app/t1"
        );
        assert_eq!(id_for(Path::new("x/t1")).unwrap().as_str(), "t1");
        assert_eq!(id_for(Path::new(".hidden")).unwrap().as_str(), "order");
    }

    #[test]
    fn reports() {
        let d = tempfile::tempdir().unwrap();
        let good = d.path().join("good");
        let bad = d.path().join("bad");
        std::fs::write(
            &good,
            "user: u\nstep: 60\npings: 5\nprobe: fping\nfping: {host: 127.0.0.1}\nextra: 1\n",
        )
        .unwrap();
        std::fs::write(
            &bad,
            "user: u\nstep: 60\npings: 5\nprobe: fping\nfping: {host: 999.1.1.1}\n",
        )
        .unwrap();
        let mut out = Vec::new();
        let n = check(
            &[good.clone(), bad.clone(), d.path().join("missing")],
            &mut out,
        )
        .unwrap();
        assert_eq!(n, 2);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains(&format!("{}: ok", good.display())), "{text}");
        assert!(
            text.contains("warning:") && text.contains("unknown field `extra`"),
            "{text}"
        );
        assert!(text.contains("field `fping.host`"), "{text}");
        assert!(text.contains("cannot open file"), "{text}");
    }
}
