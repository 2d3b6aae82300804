//! `rejected/`: an order file that cannot be parsed or validated is
//! moved to `rejected/<id>` — never deleted — and `rejected/<id>.error` says
//! why: file, line, field, value, rule and time. A valid file written again
//! to `orders/<id>` clears both.

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

use crate::basedir::BaseDir;
use crate::order::{OrderError, OrderId};

/// Suffix of the explanation file.
pub const ERROR_SUFFIX: &str = ".error";

/// `rejected/<id>` and `rejected/<id>.error`.
pub fn paths(base: &BaseDir, id: &OrderId) -> (PathBuf, PathBuf) {
    let file = id.under(&base.rejected);
    let mut err = file.clone().into_os_string();
    err.push(ERROR_SUFFIX);
    (file, PathBuf::from(err))
}

/// Moves `path` (the order file of `id`) to `rejected/<id>` and writes the
/// explanation next to it. On failure the order file stays where it was.
pub fn reject(
    base: &BaseDir,
    id: &OrderId,
    path: &Path,
    err: &OrderError,
    now: i64,
) -> io::Result<PathBuf> {
    let (dst, err_path) = paths(base, id);
    if let Some(parent) = dst.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let text = error_text(err, now);
    let tmp = err_path.with_file_name(format!(
        ".{}.tmp",
        err_path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("error")
    ));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, &err_path)?;
    std::fs::rename(path, &dst)?;
    Ok(dst)
}

/// Removes a previous rejection of `id`, if any. Returns true if there was one.
pub fn clear(base: &BaseDir, id: &OrderId) -> bool {
    let (file, err) = paths(base, id);
    let a = std::fs::remove_file(&file).is_ok();
    let b = std::fs::remove_file(&err).is_ok();
    if a || b {
        if let Some(parent) = file.parent() {
            crate::store::archive::prune_empty(parent, &base.rejected);
        }
    }
    a || b
}

/// Ids with a file (the order, or its `.error`) in `rejected/`.
pub fn ids(base: &BaseDir) -> std::collections::HashSet<OrderId> {
    walkdir::WalkDir::new(&base.rejected)
        .min_depth(1)
        .follow_links(false)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| !e.file_type().is_dir())
        .filter_map(|e| {
            let path = e.path();
            let path = match path.to_str().and_then(|p| p.strip_suffix(ERROR_SUFFIX)) {
                Some(p) => std::path::PathBuf::from(p),
                None => path.to_path_buf(),
            };
            OrderId::from_path(&base.rejected, &path).ok()
        })
        .collect()
}

/// The text of `rejected/<id>.error`: `key: value` lines.
pub fn error_text(err: &OrderError, now: i64) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "file: {}", err.file.display());
    if let Some(line) = err.line {
        let _ = writeln!(s, "line: {line}");
    }
    if let Some(field) = &err.field {
        let _ = writeln!(s, "field: {field}");
    }
    if let Some(value) = &err.value {
        let _ = writeln!(s, "value: {value:?}");
    }
    let _ = writeln!(s, "rule: {}", err.reason);
    let _ = writeln!(s, "time: {} ({now})", rfc3339(now));
    let _ = writeln!(s, "message: {err}");
    s
}

/// Unix seconds → `YYYY-MM-DDTHH:MM:SSZ` (UTC).
pub fn rfc3339(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_310_116_524), "2011-07-08T09:15:24Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_241_560), "2026-11-21T06:12:40Z");
    }

    #[test]
    fn reject_and_clear() {
        let dir = tempfile::tempdir().unwrap();
        let base = BaseDir::new(dir.path());
        base.create().unwrap();
        let id = OrderId::new("app/bad").unwrap();
        let path = id.under(&base.orders);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "step: x\n").unwrap();
        let err = OrderError {
            file: path.clone(),
            field: Some("step".into()),
            value: Some("x".into()),
            reason: "expected an integer".into(),
            line: None,
        };
        let dst = reject(&base, &id, &path, &err, 0).unwrap();
        assert_eq!(std::fs::read_to_string(&dst).unwrap(), "step: x\n");
        assert!(!path.exists());
        let text = std::fs::read_to_string(paths(&base, &id).1).unwrap();
        assert!(
            text.contains("field: step\n") && text.contains("value: \"x\"\n"),
            "{text}"
        );
        assert!(
            text.contains("rule: expected an integer\n")
                && text.contains("time: 1970-01-01T00:00:00Z (0)\n"),
            "{text}"
        );
        assert!(clear(&base, &id));
        assert!(!base.rejected.join("app").exists());
        assert!(!clear(&base, &id));
    }
}
