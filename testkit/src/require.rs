//! What a test needs from the machine, and what happens when it is missing.
//!
//! A test that needs root, a network namespace, a tool or a server asks
//! here first. When the need is met, the call returns `true` (or the tool's
//! path). When it is not:
//!
//! * under CI (the `CI` environment variable set to anything but empty,
//!   `0` or `false`, as CI services set it), the test **fails**, naming
//!   what is missing and how to get it: a run that tests less never passes;
//! * otherwise the test prints `skipping TEST: WHY` on standard error and
//!   passes, and the skip is appended to the file named by
//!   `PINGMACHINE_SKIP_LOG`, when set, so that `scripts/test.sh` can end
//!   with a count of the skipped tests and their reasons (test output is
//!   captured, so a printed line alone would be lost).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Whether the tests run under CI, where nothing may skip.
pub fn in_ci() -> bool {
    std::env::var("CI")
        .map(|v| {
            let v = v.trim();
            !(v.is_empty() || v == "0" || v.eq_ignore_ascii_case("false"))
        })
        .unwrap_or(false)
}

/// `test` cannot run here because of `why` (what is missing and how to
/// get it). Under CI this panics; otherwise it prints and records the skip
/// and the caller returns.
#[track_caller]
pub fn skip(test: &str, why: &str) {
    if in_ci() {
        panic!("{test} cannot run: {why} (CI is set, so nothing may skip)");
    }
    eprintln!("skipping {test}: {why}");
    record(test, why);
}

/// Appends one line `TEST<TAB>WHY` to `$PINGMACHINE_SKIP_LOG`, with one
/// `write` on a file opened for appending, so that tests running in
/// parallel processes never interleave their lines.
fn record(test: &str, why: &str) {
    let Some(path) = std::env::var_os("PINGMACHINE_SKIP_LOG") else {
        return;
    };
    let line = format!("{}\t{}\n", one_line(test), one_line(why));
    match OpenOptions::new().append(true).create(true).open(&path) {
        Ok(mut f) => {
            if let Err(e) = f.write_all(line.as_bytes()) {
                eprintln!(
                    "cannot record the skip in {}: {e}",
                    Path::new(&path).display()
                );
            }
        }
        Err(e) => eprintln!(
            "cannot record the skip in {}: {e}",
            Path::new(&path).display()
        ),
    }
}

fn one_line(s: &str) -> String {
    s.replace(['\n', '\t'], " ")
}

/// The effective uid from `/proc/self/status`.
fn euid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with("Uid:"))?
        .split_whitespace()
        .nth(2)?
        .parse()
        .ok()
}

/// Whether this process runs as root (no skip, no failure: a plain fact).
pub fn is_root() -> bool {
    euid() == Some(0)
}

/// Root, or skip (fail under CI). `what` says what root is needed for.
#[track_caller]
pub fn root(test: &str, what: &str) -> bool {
    if is_root() {
        return true;
    }
    skip(test, &format!("needs root ({what}); run the suite as root"));
    false
}

/// Whether this process may open ICMP sockets: root (raw sockets), or a
/// group of ours inside `net.ipv4.ping_group_range` (datagram sockets).
pub fn may_ping() -> bool {
    is_root() || may_ping_unprivileged()
}

/// Whether `net.ipv4.ping_group_range` of this network namespace covers a
/// group of ours, so that unprivileged ICMP ("ping") sockets open.
pub fn may_ping_unprivileged() -> bool {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ping_group_range").unwrap_or_default();
    let mut it = range
        .split_whitespace()
        .filter_map(|x| x.parse::<u64>().ok());
    let (Some(lo), Some(hi)) = (it.next(), it.next()) else {
        return false;
    };
    // The kernel checks the effective gid and the supplementary groups.
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| -> Vec<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|rest| {
                rest.split_whitespace()
                    .filter_map(|g| g.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    };
    let effective = field("Gid:").get(1).copied();
    effective
        .into_iter()
        .chain(field("Groups:"))
        .any(|g| g >= lo && g <= hi)
}

/// ICMP sockets, or skip (fail under CI).
#[track_caller]
pub fn icmp(test: &str) -> bool {
    if may_ping() {
        return true;
    }
    skip(
        test,
        "needs ICMP sockets: root (raw sockets, CAP_NET_RAW) or net.ipv4.ping_group_range covering a group of this user",
    );
    false
}

/// Network namespaces (root and a working `ip netns`), or skip (fail
/// under CI).
#[track_caller]
pub fn netns(test: &str) -> bool {
    match crate::impair::available() {
        Ok(()) => true,
        Err(why) => {
            skip(
                test,
                &format!("needs root and network namespaces ({why}); run the suite as root with iproute2 installed"),
            );
            false
        }
    }
}

/// Whether `::1` can be bound.
pub fn has_ipv6_loopback() -> bool {
    std::net::UdpSocket::bind("[::1]:0").is_ok()
}

/// IPv6 on loopback, or skip (fail under CI).
#[track_caller]
pub fn ipv6_loopback(test: &str) -> bool {
    if has_ipv6_loopback() {
        return true;
    }
    skip(
        test,
        "needs ::1 on loopback (IPv6 is disabled here: sysctl net.ipv6.conf.lo.disable_ipv6=0)",
    );
    false
}

/// The path of the program `name` (searched in `PATH`, then in `/usr/sbin`
/// and `/sbin`, which are not in every user's `PATH`), or `None` after a
/// skip (a failure under CI) naming the Debian package that provides it.
#[track_caller]
pub fn tool(test: &str, name: &str, package: &str) -> Option<PathBuf> {
    if let Some(p) = find_program(name) {
        return Some(p);
    }
    skip(
        test,
        &format!("{name} is not installed (apt-get install {package}; scripts/deps.sh --test installs it)"),
    );
    None
}

/// Where `name` is, if anywhere in `PATH`, `/usr/sbin` or `/sbin`.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_found_in_path_and_missing_ones_are_not() {
        assert!(find_program("sh").is_some());
        assert!(find_program("no-such-program-anywhere-here").is_none());
    }

    #[test]
    fn one_line_removes_line_and_field_breaks() {
        assert_eq!(one_line("a\tb\nc"), "a b c");
    }
}
