//! `last_result` (the original's format): the latest round of an order, written to
//! `last_result.tmp` and renamed over `last_result`, so a reader sees either
//! the old or the new file, never a partial one.
//!
//! The rename is an atomic exchange (`renameat2(RENAME_EXCHANGE)`) when
//! `last_result` exists: the new content becomes `last_result` and the
//! previous one stays behind as `last_result.tmp`, to be overwritten next
//! round. Watchers see the same rename of `last_result.tmp` to
//! `last_result`; the two inodes are reused instead of one being created
//! and one freed per write, which on ext4 makes the write about three times
//! cheaper at 100,000 orders (see docs/PERFORMANCE.md). Where the file
//! system cannot exchange, a plain rename is used.

use std::fmt::Write as _;
use std::path::Path;

use super::queue::Latest;
use crate::result::Summary;

/// File name of the result.
pub const FILE: &str = "last_result";
/// File name written first, then renamed.
pub const TMP_FILE: &str = "last_result.tmp";

/// Perl's `%.6e`: `5.700000e-04` (exponent with sign and at least 2 digits).
pub fn perl_e6(x: f64) -> String {
    let s = format!("{x:.6e}");
    match s.split_once('e') {
        Some((mantissa, exp)) => {
            let (sign, digits) = match exp.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', exp),
            };
            format!("{mantissa}e{sign}{digits:0>2}")
        }
        None => s,
    }
}

fn rtt(x: Option<f64>) -> String {
    x.map_or_else(|| "~".to_owned(), perl_e6)
}

/// The file's text.
pub fn format(time: i64, updated: i64, step: u32, pings: u32, s: &Summary) -> String {
    format_latest(updated, step, pings, &Latest::of(time, s))
}

/// The file's text for a round kept as its `last_result` figures.
pub fn format_latest(updated: i64, step: u32, pings: u32, l: &Latest) -> String {
    let some = |x: f64| (!x.is_nan()).then_some(x);
    let mut out = String::with_capacity(128);
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        "time: {}\nupdated: {updated}\nstep: {step}\npings: {pings}\nloss: {}\nmin: {}\nmedian: {}\nmax: {}\n",
        l.t,
        l.lost,
        rtt(some(l.min)),
        rtt(some(l.median)),
        rtt(some(l.max)),
    );
    out
}

/// A parsed `last_result` file.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LastResult {
    /// RRD time of the round.
    pub time: i64,
    /// Wall clock when it was written.
    pub updated: i64,
    /// Step.
    pub step: u32,
    /// Pings.
    pub pings: u32,
    /// Lost pings.
    pub loss: u32,
    /// Smallest RTT, seconds.
    pub min: Option<f64>,
    /// Median RTT, seconds.
    pub median: Option<f64>,
    /// Largest RTT, seconds.
    pub max: Option<f64>,
}

impl LastResult {
    /// Parses the text of a `last_result`; `None` when a field is missing
    /// or malformed.
    pub fn parse(text: &str) -> Option<LastResult> {
        let get = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k).and_then(|r| r.strip_prefix(": ")))
                .map(str::trim)
        };
        let rtt = |k: &str| -> Option<Option<f64>> {
            match get(k)? {
                "~" => Some(None),
                v => v.parse::<f64>().ok().map(Some),
            }
        };
        Some(LastResult {
            time: get("time")?.parse().ok()?,
            updated: get("updated")?.parse().ok()?,
            step: get("step")?.parse().ok()?,
            pings: get("pings")?.parse().ok()?,
            loss: get("loss")?.parse().ok()?,
            min: rtt("min")?,
            median: rtt("median")?,
            max: rtt("max")?,
        })
    }

    /// Loss in percent.
    pub fn loss_pct(&self) -> f64 {
        if self.pings == 0 {
            0.0
        } else {
            f64::from(self.loss) * 100.0 / f64::from(self.pings)
        }
    }
}

/// Writes `text` to `dir/last_result.tmp` and renames it over
/// `dir/last_result` (an exchange when possible, see the module docs).
///
/// The temporary file is overwritten in place and only shortened when the
/// new text is shorter: truncating a file to zero makes ext4 write it back
/// at once on close (its `auto_da_alloc` heuristic), which made every
/// write about ten times slower. Nobody reads `last_result.tmp`, so
/// overwriting it in place is safe; symbolic links are not followed.
pub fn write_atomic(dir: &Path, text: &str) -> std::io::Result<()> {
    use nix::errno::Errno;
    use nix::fcntl::{renameat2, RenameFlags, AT_FDCWD};
    use std::os::unix::fs::{FileExt, OpenOptionsExt};
    let tmp = dir.join(TMP_FILE);
    let fin = dir.join(FILE);
    // Never follow a link, never wait on a FIFO: what is not our regular
    // file (a symlink, a FIFO, a directory, a device) is taken away and the
    // open retried once.
    let open = || {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o666) // less the umask, as File::create
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
            .open(&tmp)
    };
    let regular = |f: std::fs::File| -> std::io::Result<Option<(std::fs::File, u64)>> {
        let md = f.metadata()?;
        Ok(md.is_file().then_some((f, md.len())))
    };
    let opened = match open() {
        Ok(f) => regular(f)?,
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(nix::libc::ELOOP | nix::libc::EISDIR | nix::libc::ENXIO)
            ) =>
        {
            None
        }
        Err(e) => return Err(e),
    };
    let (f, old_len) = match opened {
        Some(x) => x,
        None => {
            replace_not_regular(&tmp)?;
            regular(open()?)?.ok_or_else(|| {
                std::io::Error::other(format!("{} is not a regular file", tmp.display()))
            })?
        }
    };
    f.write_all_at(text.as_bytes(), 0)?;
    if old_len > text.len() as u64 {
        f.set_len(text.len() as u64)?;
    }
    drop(f);
    match renameat2(AT_FDCWD, &tmp, AT_FDCWD, &fin, RenameFlags::RENAME_EXCHANGE) {
        Ok(()) => Ok(()),
        // No last_result yet, or no exchange on this file system.
        Err(Errno::ENOENT | Errno::EINVAL | Errno::ENOSYS | Errno::EOPNOTSUPP) => {
            std::fs::rename(&tmp, &fin)
        }
        Err(e) => Err(std::io::Error::from(e)),
    }
}

/// Takes away what is at `last_result.tmp` and is not a regular file (the
/// daemon's own temporary name): a symlink is removed, not followed; a
/// directory must be empty. Logged.
fn replace_not_regular(tmp: &Path) -> std::io::Result<()> {
    let md = std::fs::symlink_metadata(tmp)?;
    let kind = if md.file_type().is_symlink() {
        "a symbolic link"
    } else if md.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    };
    if md.is_dir() {
        std::fs::remove_dir(tmp)?;
    } else {
        std::fs::remove_file(tmp)?;
    }
    tracing::warn!(path = %tmp.display(), "{TMP_FILE} was {kind}; replaced by a regular file (a symlink's target is left alone)");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::RoundOutcome;
    use std::time::Duration;

    #[test]
    fn perl_exponent_format() {
        assert_eq!(perl_e6(5.7e-4), "5.700000e-04");
        assert_eq!(perl_e6(0.0123456789), "1.234568e-02");
        assert_eq!(perl_e6(1.5), "1.500000e+00");
        assert_eq!(perl_e6(123.0), "1.230000e+02");
        assert_eq!(perl_e6(0.0), "0.000000e+00");
        assert_eq!(perl_e6(1.0e-120), "1.000000e-120");
    }

    #[test]
    fn the_documented_example() {
        let s = Summary::of(&RoundOutcome {
            rtts: vec![Some(Duration::from_micros(570))],
        });
        assert_eq!(
            format(1310116500, 1310116524, 20, 1, &s),
            "time: 1310116500\nupdated: 1310116524\nstep: 20\npings: 1\nloss: 0\n\
             min: 5.700000e-04\nmedian: 5.700000e-04\nmax: 5.700000e-04\n"
        );
    }

    #[test]
    fn no_reply() {
        let s = Summary::of(&RoundOutcome {
            rtts: vec![None, None],
        });
        assert_eq!(
            format(60, 61, 60, 2, &s),
            "time: 60\nupdated: 61\nstep: 60\npings: 2\nloss: 2\nmin: ~\nmedian: ~\nmax: ~\n"
        );
    }

    #[test]
    fn atomic_write_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).unwrap();
        write_atomic(dir.path(), "a\n").unwrap();
        assert_eq!(read(FILE), "a\n");
        assert!(
            !dir.path().join(TMP_FILE).exists(),
            "first write: a plain rename"
        );
        write_atomic(dir.path(), "b\n").unwrap();
        assert_eq!(read(FILE), "b\n");
        // The previous result stays behind in the exchanged temp file.
        assert_eq!(read(TMP_FILE), "a\n");
        write_atomic(dir.path(), "c\n").unwrap();
        assert_eq!(read(FILE), "c\n");
        // Longer, then shorter: the reused temp file never keeps a tail.
        write_atomic(dir.path(), "a much longer text\n").unwrap();
        assert_eq!(read(FILE), "a much longer text\n");
        write_atomic(dir.path(), "d\n").unwrap();
        assert_eq!(read(FILE), "d\n");
        write_atomic(dir.path(), "e\n").unwrap();
        assert_eq!(read(FILE), "e\n");
        assert_eq!(read(TMP_FILE), "d\n");
    }

    /// A symlink at last_result.tmp is never followed: its target is kept,
    /// and the link is replaced by the daemon's own regular file, so the
    /// order still gets its results.
    #[test]
    fn symlinked_temp_file_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep\n").unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join(TMP_FILE)).unwrap();
        write_atomic(dir.path(), "x\n").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep\n");
        assert_eq!(
            std::fs::read_to_string(dir.path().join(FILE)).unwrap(),
            "x\n"
        );
    }

    /// A FIFO or a directory there is replaced too (a FIFO must not block).
    #[test]
    fn fifo_or_directory_at_temp_file_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        nix::unistd::mkfifo(
            &dir.path().join(TMP_FILE),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        write_atomic(dir.path(), "a\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join(FILE)).unwrap(),
            "a\n"
        );
        std::fs::remove_file(dir.path().join(TMP_FILE)).ok();
        std::fs::create_dir(dir.path().join(TMP_FILE)).unwrap();
        write_atomic(dir.path(), "b\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join(FILE)).unwrap(),
            "b\n"
        );
    }
}
