//! External probe commands that print `fping -C` style results, e.g.
//! `127.0.0.1 : 0.10 0.12 - 0.09` (one line per host, values in
//! milliseconds, `-` = lost).
//!
//! [`run`] starts the command *without a shell* (no quoting or expansion of
//! its arguments), with stdin closed, in a process group of its own, and
//! with a hard timeout: on expiry the whole group is killed. Its stdout is
//! captured (at most [`MAX_STDOUT`] bytes are kept) and parsed with
//! [`parse_fping_c`]; when stdout has no result lines, stderr is used
//! instead (fping prints its `-C` summary there). The tail of stderr goes
//! into the error message.
//! A non-zero exit status is fine as long as the command printed results
//! (fping exits 1 when some pings were lost).

use std::io;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};

/// Most stdout bytes kept; the rest is read and dropped.
pub const MAX_STDOUT: usize = 1 << 20;
/// Most stderr bytes kept (the tail) for error messages.
const STDERR_TAIL: usize = 1024;
/// Spawn attempts when the executable is busy (`ETXTBSY`: the file was
/// just written and another thread's fork still holds it open).
const SPAWN_ATTEMPTS: u32 = 10;

/// One host's results: its name as printed, and one value per ping.
pub type HostResults = (String, Vec<Option<Duration>>);

/// Why a probe command gave no results.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    /// No such file (or a bare name not found on `PATH`).
    #[error("probe command not found: {}", .0.display())]
    NotFound(PathBuf),
    /// The file exists but cannot be executed (permissions, directory).
    #[error("probe command is not executable: {}", .0.display())]
    NotExecutable(PathBuf),
    /// Still running at the timeout; it was killed with its process group.
    #[error("probe command timed out")]
    Timeout,
    /// Exited unsuccessfully without printing any result line.
    #[error("probe command failed ({status}): {stderr_tail}")]
    Failed {
        /// Its exit status.
        status: ExitStatus,
        /// The end of what it printed on stderr (`(no output)` if nothing).
        stderr_tail: String,
    },
    /// Any other error starting or talking to the command.
    #[error("probe command: {0}")]
    Io(String),
}

/// Parses `fping -C` output: lines `HOST : V1 V2 ...` with values in
/// milliseconds or `-` for a lost ping. The host is everything before the
/// *last* ` : `, so hosts containing `:` (IPv6, SCION `1-ff00:0:110,10.0.0.1`)
/// work. Blank lines and lines that do not parse (fping's per-ping lines,
/// ICMP error reports, ...) are skipped. Hosts come in output order; a host
/// printed twice appears twice.
pub fn parse_fping_c(output: &str) -> Vec<HostResults> {
    output.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<HostResults> {
    let line = line.trim();
    let (host, values) = match line.rfind(" : ") {
        Some(i) => (&line[..i], &line[i + 3..]),
        None => (line.strip_suffix(" :")?, ""),
    };
    let host = host.trim();
    if host.is_empty() || host.contains(char::is_whitespace) {
        return None;
    }
    let values = values
        .split_whitespace()
        .map(parse_value)
        .collect::<Option<Vec<_>>>()?;
    Some((host.to_string(), values))
}

/// `-` → lost; a finite non-negative number of milliseconds → RTT.
fn parse_value(token: &str) -> Option<Option<Duration>> {
    if token == "-" {
        return Some(None);
    }
    let ms: f64 = token.parse().ok()?;
    if !ms.is_finite() || ms < 0.0 {
        return None;
    }
    Duration::try_from_secs_f64(ms / 1000.0).ok().map(Some)
}

/// The values of `host` (its first line), truncated or padded with `None`
/// to `pings` values; all `None` when `host` is missing.
pub fn results_for(parsed: &[HostResults], host: &str, pings: u32) -> Vec<Option<Duration>> {
    let pings = usize::try_from(pings).unwrap_or(usize::MAX);
    let mut values: Vec<Option<Duration>> = parsed
        .iter()
        .find(|(h, _)| h == host)
        .map(|(_, v)| v.iter().take(pings).copied().collect())
        .unwrap_or_default();
    values.resize(pings, None);
    values
}

/// Runs `program` with `args` (no shell) and returns its stdout. See the
/// module documentation; errors say which of not found, not executable,
/// timed out or failed it was.
pub async fn run(program: &Path, args: &[String], timeout: Duration) -> Result<String, ExecError> {
    let mut child = spawn(program, args).await?;
    let pid = child.id();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let finished = tokio::time::timeout(timeout, async {
        tokio::join!(
            read_capped(stdout, MAX_STDOUT),
            read_capped(stderr, MAX_STDOUT),
            child.wait()
        )
    })
    .await;
    let Ok((out, err, status)) = finished else {
        kill_group(pid);
        // kill_on_drop would kill it too; reap it here so no zombie stays.
        let _ = child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(1), child.wait()).await;
        return Err(ExecError::Timeout);
    };
    let status =
        status.map_err(|e| ExecError::Io(format!("waiting for {}: {e}", program.display())))?;
    let (out, truncated) = out.map_err(|e| ExecError::Io(format!("reading stdout: {e}")))?;
    if truncated {
        tracing::warn!(program = %program.display(), "probe command output truncated to {MAX_STDOUT} bytes");
    }
    let mut out = String::from_utf8_lossy(&out).into_owned();
    let err = err.map(|(bytes, _)| bytes).unwrap_or_default();
    // fping itself prints its -C summary on stderr: use it when stdout has
    // no result lines.
    if parse_fping_c(&out).is_empty() {
        let from_err = String::from_utf8_lossy(&err);
        if !parse_fping_c(&from_err).is_empty() {
            out = from_err.into_owned();
        }
    }
    if status.success() {
        return Ok(out);
    }
    if !parse_fping_c(&out).is_empty() {
        tracing::debug!(program = %program.display(), %status, "probe command exited unsuccessfully with results");
        return Ok(out);
    }
    Err(ExecError::Failed {
        status,
        stderr_tail: tail_text(&err[err.len().saturating_sub(STDERR_TAIL)..]),
    })
}

async fn spawn(program: &Path, args: &[String]) -> Result<Child, ExecError> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0);
    let mut attempt = 1;
    loop {
        match cmd.spawn() {
            Ok(child) => return Ok(child),
            Err(e)
                if e.raw_os_error() == Some(nix::errno::Errno::ETXTBSY as i32)
                    && attempt < SPAWN_ATTEMPTS =>
            {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(spawn_error(program, &e)),
        }
    }
}

fn spawn_error(program: &Path, err: &io::Error) -> ExecError {
    match err.kind() {
        io::ErrorKind::NotFound => ExecError::NotFound(program.to_path_buf()),
        io::ErrorKind::PermissionDenied => ExecError::NotExecutable(program.to_path_buf()),
        _ => ExecError::Io(format!("cannot start {}: {err}", program.display())),
    }
}

/// Kills the process group led by `pid` (the command and its children).
fn kill_group(pid: Option<u32>) {
    let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) else {
        return;
    };
    if let Err(e) = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    ) {
        tracing::debug!(pid, error = %e, "killing probe command's process group");
    }
}

/// Reads `r` to its end, keeping the first `cap` bytes; returns them and
/// whether anything was dropped. Reading on past `cap` keeps the command
/// from blocking on a full pipe.
async fn read_capped<R: AsyncRead + Unpin>(
    r: Option<R>,
    cap: usize,
) -> io::Result<(Vec<u8>, bool)> {
    let Some(mut r) = r else {
        return Ok((Vec::new(), false));
    };
    let mut kept = Vec::new();
    let mut dropped = false;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            return Ok((kept, dropped));
        }
        let room = cap.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..room.min(n)]);
        dropped |= n > room;
    }
}

/// The end of a command's stderr as one trimmed line of text.
fn tail_text(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    if text.is_empty() {
        return "(no output)".to_string();
    }
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" / ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_text_joins_lines() {
        assert_eq!(tail_text(b""), "(no output)");
        assert_eq!(tail_text(b"  \n"), "(no output)");
        assert_eq!(tail_text(b"a\n\nb \n"), "a / b");
    }

    #[test]
    fn values() {
        assert_eq!(parse_value("-"), Some(None));
        assert_eq!(parse_value("1.5"), Some(Some(Duration::from_micros(1500))));
        assert_eq!(parse_value("0"), Some(Some(Duration::ZERO)));
        assert_eq!(parse_value("x"), None);
        assert_eq!(parse_value("-1"), None);
        assert_eq!(parse_value("NaN"), None);
        assert_eq!(parse_value("inf"), None);
    }

    #[tokio::test]
    async fn capped_reads() {
        let data = [b'x'; 100];
        let (head, dropped) = read_capped(Some(&data[..]), 10).await.unwrap();
        assert_eq!((head.len(), dropped), (10, true));
        let (all, dropped) = read_capped(Some(&b"abc"[..]), 10).await.unwrap();
        assert_eq!((all.as_slice(), dropped), (&b"abc"[..], false));
    }
}
