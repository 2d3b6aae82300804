//! `run --net netns`: the daemon pings targets on the far side of a veth
//! pair, as it would ping hosts on a network, instead of loopback.
//!
//! On loopback the kernel builds each echo reply inside the sender
//! thread's `sendmmsg` (the packet is received and answered in the softirq
//! that the send raises), and delivers the reply in the same call: the
//! daemon's CPU then includes the targets' work. Here two network
//! namespaces are joined by one veth pair: the prober's (where the daemon
//! runs) and the targets' (which answers for a whole IPv6 /80 through a
//! local route). Both veth ends run threaded NAPI, so the packets are
//! received, answered and delivered back by kernel threads
//! (`napi/pmbp-N`, `napi/pmbt-N`, at real-time priority 10), as a NIC's
//! interrupts and the remote hosts would do; a `pfifo` queue in front of
//! each end's ring holds packets back while a thread is late. The daemon pays what it pays on a real network: its
//! system calls, the transmit path down to the device, and reading the
//! replies. The kernel threads' CPU is printed separately.
//!
//! Addresses: the prober is 2001:db8::1, the targets' end 2001:db8::2,
//! and target `i` is 2001:db8::1:0:I (the /80 2001:db8:0:0:1::/80),
//! routed through 2001:db8::2 so that the prober keeps one neighbour
//! entry, not one per target. Nothing is added to the host's namespace;
//! the prober's namespace has no route but the veth's and loopback's
//! (checked); the namespaces are removed on drop, and left-overs of an
//! interrupted run at the next start.

use std::net::Ipv6Addr;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context};

/// The prober's namespace (the daemon runs here).
pub const PROBER: &str = "pmbench-prober";
/// The targets' namespace.
pub const TARGETS: &str = "pmbench-targets";
/// The veth end in the prober's namespace.
const PROBER_DEV: &str = "pmbp";
/// The veth end in the targets' namespace.
const TARGET_DEV: &str = "pmbt";

/// The i-th target: 2001:db8::1:0:H:L with `i` = H·2¹⁶ + L.
pub fn target(i: usize) -> Ipv6Addr {
    let i = u32::try_from(i).unwrap_or(u32::MAX);
    Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 1, 0, (i >> 16) as u16, i as u16)
}

/// The two namespaces and their veth pair; removed on drop, or by a
/// watcher process if the benchmark is killed.
pub struct TestNet {
    watcher: Option<std::process::Child>,
    /// Held while the namespaces exist: two runs would remove each
    /// other's (the names are fixed).
    _lock: nix::fcntl::Flock<std::fs::File>,
}

/// The lock file of [`TestNet`].
const LOCK: &str = "/run/pingmachine-bench-netns.lock";

/// Seconds the watcher waits for the benchmark to end, at most.
const WATCH_LIMIT_S: u32 = 7 * 24 * 3600;

/// Runs `program args`; its standard output, or an error with its
/// standard error.
fn run(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("cannot run {program} (apt-get install iproute2)"))?;
    if !out.status.success() {
        bail!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ip(args: &[&str]) -> anyhow::Result<String> {
    run("ip", args)
}

/// Runs `sh -c script` inside namespace `ns` (`ip netns exec` mounts that
/// namespace's /sys).
fn in_ns(ns: &str, script: &str) -> anyhow::Result<()> {
    ip(&["netns", "exec", ns, "sh", "-c", script]).map(drop)
}

/// A `pfifo` queue of 100,000 packets on `dev` in `ns`.
fn ip_tc(ns: &str, dev: &str) -> anyhow::Result<()> {
    run(
        "tc",
        &[
            "-n", ns, "qdisc", "replace", "dev", dev, "root", "pfifo", "limit", "100000",
        ],
    )
    .map(drop)
}

fn remove_namespaces() {
    for ns in [PROBER, TARGETS] {
        let _ = Command::new("ip").args(["netns", "del", ns]).output();
    }
}

fn mac(ns: &str, dev: &str) -> anyhow::Result<String> {
    let text = ip(&["-n", ns, "-o", "link", "show", dev])?;
    text.split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .map(str::to_owned)
        .with_context(|| format!("no MAC address for {dev} in {ns}: {text}"))
}

impl TestNet {
    /// Creates the namespaces, the veth pair, the routes and permanent
    /// neighbour entries, turns on threaded NAPI, and checks the prober's
    /// routes.
    pub fn create() -> anyhow::Result<TestNet> {
        if Command::new("ethtool").arg("--version").output().is_err() {
            bail!("--net netns needs ethtool (apt-get install ethtool)");
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(LOCK)
            .with_context(|| format!("cannot open {LOCK}"))?;
        let lock = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock)
            .map_err(|(_, e)| {
                anyhow::anyhow!("another `run --net netns` holds {LOCK} ({e}); one at a time")
            })?;
        remove_namespaces();
        // A signal ends the benchmark without running `Drop`: a watcher in
        // its own session (a Ctrl-C does not reach it) removes the
        // namespaces once this process is gone, holding the lock, so it
        // never removes a later run's (that run holds the lock until it
        // ends). `Drop` stops it first.
        let script = format!(
            "i=0; while kill -0 {pid} 2>/dev/null && [ $i -lt {WATCH_LIMIT_S} ]; do sleep 1; i=$((i+1)); done; \
             flock {LOCK} sh -c 'ip netns del {PROBER} 2>/dev/null; ip netns del {TARGETS} 2>/dev/null'",
            pid = std::process::id()
        );
        let watcher = Command::new("setsid")
            .args(["sh", "-c", &script])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok();
        let net = TestNet {
            watcher,
            _lock: lock,
        };
        links()?;
        routes()?;
        check_prober_routes()?;
        Ok(net)
    }

    /// `ip netns exec PROBER program`: the same process (ip execs it).
    pub fn command(&self, program: &Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", PROBER]).arg(program);
        c
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        if let Some(mut w) = self.watcher.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
        remove_namespaces();
    }
}

/// The two namespaces and the veth pair between them, up, with threaded
/// NAPI at real-time priority.
fn links() -> anyhow::Result<()> {
    ip(&["netns", "add", PROBER])?;
    ip(&["netns", "add", TARGETS])?;
    ip(&[
        "link", "add", PROBER_DEV, "netns", PROBER, "type", "veth", "peer", "name", TARGET_DEV,
        "netns", TARGETS,
    ])?;
    for (ns, dev, addr) in [
        (PROBER, PROBER_DEV, "2001:db8::1/64"),
        (TARGETS, TARGET_DEV, "2001:db8::2/64"),
    ] {
        ip(&["-n", ns, "link", "set", "lo", "up"])?;
        ip(&["-n", ns, "-6", "addr", "add", addr, "dev", dev, "nodad"])?;
        ip(&["-n", ns, "link", "set", dev, "up"])?;
    }
    // A veth delivers to its peer's NAPI (run by a kernel thread once
    // threaded) only with GRO on, and, while the sending end offers
    // TSO, only for some packets: offloads off, GRO on. The NAPI
    // exists once both ends are up.
    for (ns, dev) in [(PROBER, PROBER_DEV), (TARGETS, TARGET_DEV)] {
        in_ns(
            ns,
            &format!(
                "ethtool -K {dev} gro on tso off gso off && echo 1 > /sys/class/net/{dev}/threaded"
            ),
        )?;
        // A queue in front of each end's 256-packet ring: when its
        // kernel thread is late (two cores shared with the daemon), the
        // veth holds packets back instead of dropping them.
        ip_tc(ns, dev)?;
    }
    // The kernel threads stand in for other machines: they run before
    // the daemon's threads, as a NIC's interrupts would.
    for pid in napi_threads() {
        let _ = Command::new("chrt")
            .args(["-f", "-p", "10", &pid.to_string()])
            .output();
    }
    Ok(())
}

/// The targets' /80 and the neighbours, fixed.
fn routes() -> anyhow::Result<()> {
    // The targets' namespace answers for the whole /80.
    ip(&[
        "-n",
        TARGETS,
        "-6",
        "route",
        "add",
        "local",
        "2001:db8:0:0:1::/80",
        "dev",
        "lo",
    ])?;
    ip(&[
        "-n",
        PROBER,
        "-6",
        "route",
        "add",
        "2001:db8:0:0:1::/80",
        "via",
        "2001:db8::2",
        "dev",
        PROBER_DEV,
    ])?;
    let (pmac, tmac) = (mac(PROBER, PROBER_DEV)?, mac(TARGETS, TARGET_DEV)?);
    ip(&[
        "-n",
        PROBER,
        "-6",
        "neigh",
        "replace",
        "2001:db8::2",
        "lladdr",
        &tmac,
        "dev",
        PROBER_DEV,
        "nud",
        "permanent",
    ])?;
    ip(&[
        "-n",
        TARGETS,
        "-6",
        "neigh",
        "replace",
        "2001:db8::1",
        "lladdr",
        &pmac,
        "dev",
        TARGET_DEV,
        "nud",
        "permanent",
    ])?;
    Ok(())
}

/// The prober's namespace reaches nothing but the veth.
fn check_prober_routes() -> anyhow::Result<()> {
    for fam in ["-4", "-6"] {
        let routes = ip(&["-n", PROBER, fam, "route", "show", "table", "all"])?;
        for line in routes.lines() {
            let dev = line
                .split_whitespace()
                .skip_while(|w| *w != "dev")
                .nth(1)
                .unwrap_or("");
            if dev != PROBER_DEV && dev != "lo" {
                bail!("unexpected route in {PROBER}: {line}");
            }
        }
    }
    Ok(())
}

/// The veth pair's NAPI kernel threads, with their `/proc/PID/stat`.
fn napi_stats() -> Vec<(u32, procfs::process::Stat)> {
    let Ok(all) = procfs::process::all_processes() else {
        return Vec::new();
    };
    all.flatten()
        .filter_map(|p| {
            let st = p.stat().ok()?;
            let ours = st.comm.starts_with(&format!("napi/{PROBER_DEV}-"))
                || st.comm.starts_with(&format!("napi/{TARGET_DEV}-"));
            Some((u32::try_from(p.pid).ok()?, st)).filter(|_| ours)
        })
        .collect()
}

fn napi_threads() -> Vec<u32> {
    napi_stats().into_iter().map(|(pid, _)| pid).collect()
}

/// IPv6 packets the targets' kernel dropped on the way out
/// (`Ip6OutDiscards` in their namespace's `/proc/net/snmp6`, counted since
/// the namespace was made): echo replies it could not send are lost pings
/// that never reached the prober's side. `None` if it cannot be read.
pub fn targets_out_discards() -> Option<u64> {
    let out = Command::new("ip")
        .args(["netns", "exec", TARGETS, "cat", "/proc/net/snmp6"])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
        let mut f = l.split_whitespace();
        (f.next()? == "Ip6OutDiscards").then(|| f.next()?.parse().ok())?
    })
}

/// CPU seconds (user+sys) of the veth pair's NAPI kernel threads.
pub fn napi_cpu_s() -> f64 {
    let ticks = procfs::ticks_per_second() as f64;
    napi_stats()
        .iter()
        .map(|(_, st)| (st.utime + st.stime) as f64 / ticks)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_distinct_and_in_the_answered_prefix() {
        let prefix: u128 = u128::from(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 1, 0, 0, 0));
        let mut seen = std::collections::HashSet::new();
        for i in (0..2_000_000).step_by(7) {
            let t = target(i);
            assert_eq!(u128::from(t) >> 48, prefix >> 48, "{t} outside the /80");
            assert_ne!(t, Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
            assert!(seen.insert(t), "{t} twice");
        }
        assert_eq!(target(0x1_0002).to_string(), "2001:db8::1:0:1:2");
    }
}
