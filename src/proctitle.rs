//! The process title `pingmachine [orders: N]`, as the original set it
//! (`$0 = ...`), shown by `ps` and `top`.
//!
//! Linux shows a process's command line from the memory that held its
//! arguments and, after them, its environment strings. The title is
//! written there, the way Perl's `$0` and `setproctitle(3)` do it, without
//! `unsafe` code:
//!
//! * [`init`] first copies every environment variable (`setenv` gives each
//!   a new string), so nothing refers to the original environment strings
//!   any more and that memory can hold a longer title. The arguments were
//!   parsed before; Rust's `std::env::args` reads them again only when
//!   called, and nothing calls it afterwards.
//! * It reads where the area lies from `/proc/self/stat` (`arg_start`
//!   to `env_end`) and opens `/proc/self/mem`, the process's own memory as
//!   a file, before privileges are dropped (a process that changed its uid
//!   may no longer open it).
//! * [`set`] writes the title there, NUL-terminated and padded, with a
//!   positional write. The kernel reads a title that runs past the
//!   original arguments up to its NUL.
//!
//! It is best effort: when the area is too small or any step fails, the
//! title stays as it was (logged once at debug level). `/proc/PID/environ`
//! then shows the title's bytes instead of the environment.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Mutex;

/// Where the title can go.
#[derive(Debug)]
struct Area {
    mem: File,
    start: u64,
    len: usize,
    /// Bytes from the start that may not be NUL (at first: the arguments).
    dirty: usize,
    last: String,
}

static AREA: Mutex<Option<Area>> = Mutex::new(None);

/// `arg_start`, `arg_end`, `env_start`, `env_end` from a `/proc/PID/stat`
/// line (fields 48 to 51, counted from 1).
fn stat_fields(stat: &str) -> Option<[u64; 4]> {
    // The command name may hold spaces and parentheses: count from the
    // last ')', after which the third field (state) comes first.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Field n (1-based) of the whole line is index n - 3 here.
    let get = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some([get(48)?, get(49)?, get(50)?, get(51)?])
}

/// Prepares the title area; call once, single-threaded, before dropping
/// privileges and after detaching.
pub fn init() {
    if let Err(why) = try_init() {
        tracing::debug!("process title not available: {why}");
    }
}

/// Why the title area is not available.
#[derive(Debug, thiserror::Error)]
enum TitleError {
    #[error("{0}: {1}")]
    Io(&'static str, std::io::Error),
    #[error("cannot read the argument area from /proc/self/stat")]
    Stat,
    #[error("empty argument area")]
    Empty,
    #[error("argument area larger than memory")]
    TooLarge,
}

fn try_init() -> Result<(), TitleError> {
    let stat = std::fs::read_to_string("/proc/self/stat")
        .map_err(|e| TitleError::Io("/proc/self/stat", e))?;
    let [arg_start, arg_end, env_start, env_end] = stat_fields(&stat).ok_or(TitleError::Stat)?;
    // The environment must follow the arguments to be usable as well.
    let end = if env_start == arg_end {
        env_end
    } else {
        arg_end
    };
    if end <= arg_start {
        return Err(TitleError::Empty);
    }
    if end == env_end {
        for (k, v) in std::env::vars_os() {
            std::env::set_var(k, v);
        }
    }
    let mem = File::options()
        .write(true)
        .open("/proc/self/mem")
        .map_err(|e| TitleError::Io("/proc/self/mem", e))?;
    let len = usize::try_from(end - arg_start).map_err(|_| TitleError::TooLarge)?;
    *AREA.lock().unwrap_or_else(|e| e.into_inner()) = Some(Area {
        mem,
        start: arg_start,
        len,
        dirty: usize::try_from(arg_end - arg_start).unwrap_or(len),
        last: String::new(),
    });
    Ok(())
}

/// Sets the title (if [`init`] succeeded and it fits; a title that does
/// not fit is cut).
pub fn set(title: &str) {
    let mut guard = AREA.lock().unwrap_or_else(|e| e.into_inner());
    let Some(area) = guard.as_mut() else {
        return;
    };
    if area.last == title {
        return;
    }
    // The title, then NULs over whatever was there before (the original
    // arguments, or a longer title).
    let keep = title.len().min(area.len.saturating_sub(1));
    let mut buf = title.as_bytes()[..keep].to_vec();
    buf.resize(area.dirty.max(keep + 1).min(area.len), 0);
    if let Err(e) = area.mem.write_all_at(&buf, area.start) {
        tracing::debug!("cannot set the process title: {e}");
        *guard = None;
        return;
    }
    area.dirty = keep + 1;
    area.last = title.to_owned();
}

/// The original's title.
pub fn orders_title(n: usize) -> String {
    format!("pingmachine [orders: {n}]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_argument_area_from_stat() {
        // A command name with a space and a parenthesis.
        let mut line = String::from("123 (ping machine)) S");
        for i in 4..=52 {
            line.push_str(&format!(" {i}"));
        }
        assert_eq!(stat_fields(&line), Some([48, 49, 50, 51]));
        assert_eq!(stat_fields("1 (x) S 2 3"), None);
        let own = std::fs::read_to_string("/proc/self/stat").unwrap();
        let [a, b, c, d] = stat_fields(&own).unwrap();
        assert!(a < b && b <= c && c < d, "{a} {b} {c} {d}");
    }

    #[test]
    fn title_format() {
        assert_eq!(orders_title(3), "pingmachine [orders: 3]");
    }
}
