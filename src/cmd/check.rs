//! `pingmachine check FILE|DIR|-...`: validates order files offline with
//! the same rules and messages as the daemon. Prints `FILE: ok` or the
//! error for each file (warnings too: unknown fields, at the top level and
//! inside the probe's section); `-` reads one order from standard input; a
//! directory is checked recursively, as the daemon walks `orders/`, with a
//! summary at the end. The exit status is 1 when any file is invalid.

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

/// Checks `files` (order files, directories, `-`), writing one report per
/// file to `out` and, when a directory was given, a summary; returns how
/// many are invalid.
pub fn check(files: &[std::path::PathBuf], out: &mut impl Write) -> std::io::Result<usize> {
    check_with_stdin(files, out, &mut std::io::stdin().lock())
}

/// [`check`], reading `-` from `stdin`.
fn check_with_stdin(
    args: &[std::path::PathBuf],
    out: &mut impl Write,
    stdin: &mut impl std::io::Read,
) -> std::io::Result<usize> {
    let mut bad = 0;
    let mut files = Vec::new();
    let mut walked = false;
    for a in args {
        if a.as_os_str() == "-" {
            let mut bytes = Vec::new();
            stdin.read_to_end(&mut bytes)?;
            bad += usize::from(!report_stdin(&bytes, out)?);
        } else if a.is_dir() {
            walked = true;
            files.extend(order_files(a));
        } else {
            files.push(a.clone());
        }
    }
    bad += check_files(&files, out)?;
    if walked {
        writeln!(out, "{} order files checked, {} invalid", files.len(), bad)?;
    }
    Ok(bad)
}

/// The files below `dir`, as the daemon walks `orders/`: at any depth,
/// hidden and editor temporary names left out, symbolic links not followed.
fn order_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out: Vec<std::path::PathBuf> = walkdir::WalkDir::new(dir)
        .follow_links(false)
        .into_iter()
        .filter_entry(|e| {
            e.depth() == 0
                || !e
                    .file_name()
                    .to_str()
                    .is_none_or(crate::order::id::is_ignored_name)
        })
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(walkdir::DirEntry::into_path)
        .collect();
    out.sort();
    out
}

/// Checks one order read from standard input (its id is `stdin`).
fn report_stdin(bytes: &[u8], out: &mut impl Write) -> std::io::Result<bool> {
    let id = OrderId::new("stdin").expect("constant id is valid");
    match order::parse_order(Path::new("-"), &id, bytes) {
        Ok(p) => {
            for w in &p.warnings {
                writeln!(out, "warning: {w}")?;
            }
            writeln!(out, "-: ok")?;
            Ok(true)
        }
        Err(e) => {
            writeln!(out, "{e}")?;
            Ok(false)
        }
    }
}

/// Checks order files; returns how many are invalid.
fn check_files(files: &[std::path::PathBuf], out: &mut impl Write) -> std::io::Result<usize> {
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

    #[test]
    fn stdin_directories_and_unknown_probe_keys() {
        let d = tempfile::tempdir().unwrap();
        let orders = d.path().join("orders");
        std::fs::create_dir_all(orders.join("app/deep")).unwrap();
        std::fs::write(
            orders.join("app/good"),
            "user: u\nstep: 60\npings: 5\nprobe: fping\nfping: {host: 127.0.0.1}\n",
        )
        .unwrap();
        std::fs::write(
            orders.join("app/deep/typo"),
            "user: u\nstep: 60\npings: 5\nprobe: fping\nfping: {host: 127.0.0.1, intervall: 500}\n",
        )
        .unwrap();
        std::fs::write(
            orders.join("app/deep/bad"),
            "user: u\nstep: 60\npings: 5\nprobe: tcp\ntcp: {host: 127.0.0.1}\n",
        )
        .unwrap();
        // Hidden and editor files are not orders, as for the daemon.
        std::fs::write(orders.join("app/.hidden"), "junk").unwrap();
        std::fs::write(orders.join("app/good~"), "junk").unwrap();

        let mut out = Vec::new();
        let mut stdin: &[u8] =
            b"user: u\nstep: 60\npings: 5\nprobe: tcp\ntcp: {host: 127.0.0.1, port: 22, prot: 1}\n";
        let bad = check_with_stdin(&[orders.clone(), "-".into()], &mut out, &mut stdin).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(bad, 1, "{text}");
        assert!(text.contains("-: ok"), "{text}");
        assert!(text.contains("unknown field `tcp.prot`"), "{text}");
        assert!(text.contains("unknown field `fping.intervall`"), "{text}");
        assert!(
            text.contains(&format!("{}: ok", orders.join("app/good").display())),
            "{text}"
        );
        assert!(
            text.contains("field `tcp.port`") || text.contains("`port`"),
            "{text}"
        );
        assert!(text.contains("3 order files checked, 1 invalid"), "{text}");
        assert!(
            !text.contains(".hidden") && !text.contains("good~"),
            "{text}"
        );

        // Bad YAML on standard input: invalid.
        let mut out = Vec::new();
        let mut stdin: &[u8] = b"user: [\n";
        assert_eq!(
            check_with_stdin(&["-".into()], &mut out, &mut stdin).unwrap(),
            1
        );
    }
}
