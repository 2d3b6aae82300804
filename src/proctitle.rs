//! The process title `pingmachine [orders: N]`, as the original set it
//! (`$0 = ...`), shown by `ps` and `top`.
//!
//! Linux shows a process's command line from the memory that held its
//! arguments and, after them, its environment strings (`arg_start` to
//! `env_end` in `/proc/self/stat`). The title is written there, as Perl's
//! `$0` and `setproctitle(3)` do, in one small `unsafe` block whose
//! soundness argument is written next to it:
//!
//! * [`init`] runs while the process has one thread (it checks). It copies
//!   every environment variable (`setenv` gives each a new string), so
//!   nothing refers to the original environment strings any more and
//!   their memory can hold a longer title. The arguments were parsed and
//!   copied before.
//! * [`set`] copies the title there, NUL-terminated and padded, under a
//!   lock. The kernel reads a title that runs past the original arguments
//!   up to its NUL.
//!
//! Earlier designs and why not: writing through `/proc/self/mem` is the
//! same write hidden from the compiler's `unsafe` accounting;
//! `prctl(PR_SET_MM_ARG_START)` onto a buffer of our own needs
//! `CAP_SYS_RESOURCE`, which neither the packaged unit nor many containers
//! have.
//!
//! It is best effort: when the area is too small or a step fails, the
//! title stays as it was (logged once at debug level). `/proc/PID/environ`
//! then shows the title's bytes instead of the environment.

use probes::sync::lock;
use std::sync::Mutex;

/// Where the title can go: `len` bytes from address `start`.
#[derive(Debug)]
struct Area {
    start: usize,
    len: usize,
    /// Bytes from the start that may not be NUL (at first: the arguments).
    dirty: usize,
    last: String,
}

static AREA: Mutex<Option<Area>> = Mutex::new(None);

/// `arg_start`, `arg_end`, `env_start`, `env_end` of a `/proc/PID/stat`.
fn stat_fields(stat: &procfs::process::Stat) -> Option<[u64; 4]> {
    Some([
        stat.arg_start?,
        stat.arg_end?,
        stat.env_start?,
        stat.env_end?,
    ])
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
    #[error("/proc/self: {0}")]
    Proc(#[from] procfs::ProcError),
    #[error("/proc/self/stat shows no argument area")]
    Stat,
    #[error("empty argument area")]
    Empty,
    #[error("argument area larger than memory")]
    TooLarge,
    #[error("more than one thread runs")]
    Threads,
}

fn try_init() -> Result<(), TitleError> {
    let me = procfs::process::Process::myself()?;
    let threads = me.tasks()?.count();
    if threads != 1 {
        return Err(TitleError::Threads);
    }
    let stat = me.stat()?;
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
        // One thread (checked above): nothing reads the environment while
        // it is replaced.
        for (k, v) in std::env::vars_os() {
            std::env::set_var(k, v);
        }
    }
    let start = usize::try_from(arg_start).map_err(|_| TitleError::TooLarge)?;
    let len = usize::try_from(end - arg_start).map_err(|_| TitleError::TooLarge)?;
    *lock(&AREA) = Some(Area {
        start,
        len,
        dirty: usize::try_from(arg_end - arg_start).unwrap_or(len),
        last: String::new(),
    });
    Ok(())
}

/// Sets the title (if [`init`] succeeded; a title that does not fit is
/// cut).
pub fn set(title: &str) {
    let mut guard = lock(&AREA);
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
    write_area(area, &buf);
    area.dirty = keep + 1;
    area.last = title.to_owned();
}

/// Copies `bytes` (at most `area.len`) to the start of the area.
fn write_area(area: &Area, bytes: &[u8]) {
    let n = bytes.len().min(area.len);
    // SAFETY: `area` is the kernel's record of where this process's
    // argument and environment strings lie (`/proc/self/stat`, read in
    // `init`): memory of this process, mapped for its whole life, writable
    // (it is on the initial stack), and `n` bytes from `start` stay inside
    // it. No Rust reference points into it: the command line was parsed
    // into owned strings, `std::env::args` copies from it only when called
    // (nothing calls it after start-up), and `init` gave every environment
    // variable a new string first, so the C library's `environ` no longer
    // points there. The only other pointer into it, glibc's
    // `program_invocation_name`, is a C string read on demand and stays
    // NUL-terminated. Writers are serialised by `AREA`'s lock, and
    // `bytes` is a separate allocation, so the regions do not overlap.
    #[allow(unsafe_code)]
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), area.start as *mut u8, n);
    }
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
        use procfs::FromRead;
        // A command name with a space and a parenthesis.
        let mut line = String::from("123 (ping machine)) S");
        for i in 4..=52 {
            line.push_str(&format!(" {i}"));
        }
        let stat = procfs::process::Stat::from_read(line.as_bytes()).unwrap();
        assert_eq!(stat_fields(&stat), Some([48, 49, 50, 51]));
        // An old kernel's line, without the argument area.
        let mut short = String::from("1 (x) S");
        for i in 4..=44 {
            short.push_str(&format!(" {i}"));
        }
        if let Ok(stat) = procfs::process::Stat::from_read(short.as_bytes()) {
            assert_eq!(stat_fields(&stat), None);
        }
        let own = procfs::process::Process::myself().unwrap().stat().unwrap();
        let [a, b, c, d] = stat_fields(&own).unwrap();
        assert!(a < b && b <= c && c < d, "{a} {b} {c} {d}");
    }

    #[test]
    fn title_format() {
        assert_eq!(orders_title(3), "pingmachine [orders: 3]");
    }
}
