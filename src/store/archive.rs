//! Moving an order's files between `output/<id>/` and `archive/<id>/`
//! (as the original does), and setting files aside instead of deleting them.
//!
//! Moves are per file, so a directory that exists on both sides (after a
//! crash, or a restore into a directory that already got new files) is
//! merged: the moving side's files win their names, and a file they would
//! replace is kept under a time-stamped name — except `last_result`, which
//! is derived data and is simply replaced. Subdirectories (other ids nested
//! below this one) are never moved. Emptied directories are pruned up to
//! the tree's root.

use std::io;
use std::path::{Path, PathBuf};

use super::last_result;

/// `dir/main.rrd` → `dir/main.<ts>.rrd` (or `main.<ts>-N.rrd` when taken);
/// `dir/name` without extension → `dir/name.<ts>`.
pub fn aside_name(path: &Path, ts: i64) -> PathBuf {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let (stem, ext) = match name.rsplit_once('.') {
        Some((s, e)) if !s.is_empty() => (s, Some(e)),
        _ => (name, None),
    };
    let build = |n: u32| {
        let suffix = if n == 0 {
            ts.to_string()
        } else {
            format!("{ts}-{n}")
        };
        match ext {
            Some(e) => dir.join(format!("{stem}.{suffix}.{e}")),
            None => dir.join(format!("{stem}.{suffix}")),
        }
    };
    let mut n = 0;
    loop {
        let candidate = build(n);
        if !candidate.exists() || n >= 1000 {
            return candidate;
        }
        n += 1;
    }
}

/// Renames `path` aside (see [`aside_name`]) and returns the new path.
pub fn set_aside(path: &Path, ts: i64) -> io::Result<PathBuf> {
    let to = aside_name(path, ts);
    std::fs::rename(path, &to)?;
    Ok(to)
}

/// Moves the files of `src` into `dst` (created if needed), then removes
/// `src` and its empty parents up to `src_root`. Returns how many files
/// moved; `Ok(0)` when `src` does not exist.
pub fn move_files(src: &Path, dst: &Path, src_root: &Path, ts: i64) -> io::Result<usize> {
    let entries = match std::fs::read_dir(src) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    std::fs::create_dir_all(dst)?;
    let mut moved = 0;
    for ent in entries {
        let ent = ent?;
        if ent.file_type()?.is_dir() {
            continue;
        }
        let name = ent.file_name();
        let target = dst.join(&name);
        if name == last_result::TMP_FILE {
            std::fs::remove_file(ent.path())?;
            continue;
        }
        if target.symlink_metadata().is_ok() && name != last_result::FILE {
            set_aside(&target, ts)?;
        }
        std::fs::rename(ent.path(), &target)?;
        moved += 1;
    }
    prune_empty(src, src_root);
    Ok(moved)
}

/// Removes `dir` and then each parent while empty, stopping at `root`.
pub fn prune_empty(dir: &Path, root: &Path) {
    let mut d = dir.to_path_buf();
    while d.starts_with(root) && d != root {
        if std::fs::remove_dir(&d).is_err() {
            break;
        }
        if !d.pop() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn aside_names() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("main.rrd");
        assert_eq!(aside_name(&p, 100), d.path().join("main.100.rrd"));
        fs::write(d.path().join("main.100.rrd"), "x").unwrap();
        assert_eq!(aside_name(&p, 100), d.path().join("main.100-1.rrd"));
        assert_eq!(
            aside_name(&d.path().join("last_result"), 7),
            d.path().join("last_result.7")
        );
    }

    #[test]
    fn move_merges_and_keeps_everything() {
        let d = tempfile::tempdir().unwrap();
        let (out, arch) = (d.path().join("output"), d.path().join("archive"));
        let src = out.join("app/t1");
        let dst = arch.join("app/t1");
        fs::create_dir_all(&src).unwrap();
        fs::create_dir_all(src.join("nested")).unwrap();
        fs::create_dir_all(&dst).unwrap();
        fs::write(src.join("main.rrd"), "new").unwrap();
        fs::write(src.join("last_result"), "new").unwrap();
        fs::write(src.join("last_result.tmp"), "partial").unwrap();
        fs::write(dst.join("main.rrd"), "old").unwrap();
        fs::write(dst.join("last_result"), "old").unwrap();
        let n = move_files(&src, &dst, &out, 42).unwrap();
        assert_eq!(n, 2);
        assert_eq!(fs::read_to_string(dst.join("main.rrd")).unwrap(), "new");
        assert_eq!(fs::read_to_string(dst.join("main.42.rrd")).unwrap(), "old");
        assert_eq!(fs::read_to_string(dst.join("last_result")).unwrap(), "new");
        assert!(!dst.join("last_result.tmp").exists());
        // the nested directory (another id) stays, so src stays too
        assert!(src.join("nested").is_dir());
        fs::remove_dir(src.join("nested")).unwrap();
        fs::write(src.join("x"), "1").unwrap();
        move_files(&src, &dst, &out, 43).unwrap();
        assert!(
            !src.exists() && !out.join("app").exists(),
            "emptied directories pruned"
        );
        assert!(out.exists(), "the root stays");
        assert_eq!(move_files(&src, &dst, &out, 44).unwrap(), 0);
    }
}
