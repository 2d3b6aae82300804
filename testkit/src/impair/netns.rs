//! The simulator's two network namespaces (prober and host) and the veth
//! pair between them: creation, the route check, and removal.
//!
//! Nothing here touches the namespace the tests run in: the veth pair is
//! created *inside* the prober namespace (`ip -n PROBER link add ... peer
//! ... netns HOST`), and every address, neighbour entry and sysctl is set
//! with `ip -n NS` or `ip netns exec NS`.

use std::io;
use std::net::IpAddr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Every namespace of this harness is named `PREFIX<pid>-<n>-prober|host`.
pub const PREFIX: &str = "pm-acc-";
/// The prober's end of the veth pair (in the prober namespace).
pub const PROBER_IF: &str = "pmp0";
/// The host's end of the veth pair (in the host namespace).
pub const HOST_IF: &str = "pmh0";
/// Fixed, locally administered MAC addresses of the two ends.
pub const PROBER_MAC: &str = "02:70:6d:00:00:01";
pub const HOST_MAC: &str = "02:70:6d:00:00:02";
/// The relay's veth pair, both ends in the host namespace: the TCP
/// servers' packets to the prober are routed into `RELAY_IN` and read by
/// the relay from `RELAY_OUT` (see `relay.rs`).
pub const RELAY_IN: &str = "pmr0";
pub const RELAY_OUT: &str = "pmr1";
const RELAY_IN_MAC: &str = "02:70:6d:00:00:03";
const RELAY_OUT_MAC: &str = "02:70:6d:00:00:04";
/// The routing table of the relayed sources, and the firewall mark of the
/// relay's own sends, which skip it.
const RELAY_TABLE: &str = "100";
pub const RELAY_MARK: u32 = 0x706d;

/// How long one `ip`/`sysctl` command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(20);

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Runs `program args`, bounded by `timeout` (killed after it). Returns the
/// output; fails when it cannot be started or timed out.
pub fn run_bounded(program: &str, args: &[&str], timeout: Duration) -> io::Result<Output> {
    let mut cmd = Command::new(program);
    cmd.args(args);
    run_command_bounded(&mut cmd, timeout)
}

/// Runs `cmd` with piped stdout/stderr, killed after `timeout`.
pub fn run_command_bounded(cmd: &mut Command, timeout: Duration) -> io::Result<Output> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    // Read both pipes on helper threads so a chatty child cannot block.
    let out = child.stdout.take();
    let err = child.stderr.take();
    let read = |p: Option<Box<dyn io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            if let Some(mut p) = p {
                let _ = p.read_to_end(&mut v);
            }
            v
        })
    };
    let out_t = read(out.map(|p| Box::new(p) as Box<dyn io::Read + Send>));
    let err_t = read(err.map(|p| Box::new(p) as Box<dyn io::Read + Send>));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{cmd:?} did not finish within {timeout:?}"),
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Ok(Output {
        status,
        stdout: out_t.join().unwrap_or_default(),
        stderr: err_t.join().unwrap_or_default(),
    })
}

/// Runs `ip ARGS`, failing with its stderr when it exits non-zero.
pub(crate) fn ip(args: &[&str]) -> io::Result<String> {
    let out = run_bounded("ip", args, COMMAND_TIMEOUT)?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `ip netns exec NS sysctl -w KEY=VALUE`.
fn sysctl(ns: &str, setting: &str) -> io::Result<()> {
    let out = run_bounded(
        "ip",
        &["netns", "exec", ns, "sysctl", "-q", "-w", setting],
        COMMAND_TIMEOUT,
    )?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "sysctl {setting} in {ns}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Why the simulator cannot run here (`Err`), or `Ok` when it can: it needs
/// root (effective uid 0) and a working `ip netns`.
pub fn available() -> Result<(), String> {
    let uid0 = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false);
    if !uid0 {
        return Err("not root".into());
    }
    match run_bounded("ip", &["netns", "list"], COMMAND_TIMEOUT) {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!(
            "`ip netns list` failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Err(format!("cannot run `ip netns list`: {e}")),
    }
}

/// Names of existing namespaces (first word of each `ip netns list` line).
fn list_namespaces() -> Vec<String> {
    ip(&["netns", "list"])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

/// Removes namespaces with our prefix left by earlier runs that crashed:
/// those whose creating process (the pid in the name) is gone. Namespaces
/// of live processes (this one, or a concurrent run) are left alone.
/// Returns the names removed.
pub fn remove_stale() -> Vec<String> {
    let mut removed = Vec::new();
    for name in list_namespaces() {
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        if ip(&["netns", "del", &name]).is_ok() {
            removed.push(name);
        }
    }
    removed
}

/// The two namespaces; dropping this removes both (`ip netns del`).
#[derive(Debug)]
pub struct Namespaces {
    pub prober: String,
    pub host: String,
    created: Vec<String>,
}

impl Namespaces {
    /// Creates the prober and host namespaces with unique names, lo up in
    /// both, and the veth pair between them (not yet addressed).
    pub fn create() -> io::Result<Namespaces> {
        let stale = remove_stale();
        if !stale.is_empty() {
            eprintln!("impair: removed stale namespaces of earlier runs: {stale:?}");
        }
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let mut ns = Namespaces {
            prober: format!("{PREFIX}{pid}-{n}-prober"),
            host: format!("{PREFIX}{pid}-{n}-host"),
            created: Vec::new(),
        };
        for name in [ns.prober.clone(), ns.host.clone()] {
            ip(&["netns", "add", &name])?;
            ns.created.push(name);
        }
        let (p, h) = (ns.prober.clone(), ns.host.clone());
        ip(&["-n", &p, "link", "set", "lo", "up"])?;
        ip(&["-n", &h, "link", "set", "lo", "up"])?;
        // Created inside the prober namespace, the peer directly inside the
        // host namespace: neither end ever exists in the caller's namespace.
        ip(&[
            "-n", &p, "link", "add", PROBER_IF, "address", PROBER_MAC, "type", "veth", "peer",
            "name", HOST_IF, "address", HOST_MAC, "netns", &h,
        ])?;
        Ok(ns)
    }

    /// Addresses both ends, brings them up, sets the host's sysctls
    /// (kernel echo replies off, forwarding off) and waits until both ends
    /// are up.
    pub fn configure(
        &self,
        prober_addrs: &[IpAddr],
        host_addrs: &[IpAddr],
        static_neighbours: &[IpAddr],
    ) -> io::Result<()> {
        let (p, h) = (self.prober.as_str(), self.host.as_str());
        let with_prefix = |a: &IpAddr, first: bool| match (a, first) {
            (IpAddr::V4(_), true) => format!("{a}/24"),
            (IpAddr::V6(_), true) => format!("{a}/64"),
            (IpAddr::V4(_), false) => format!("{a}/32"),
            (IpAddr::V6(_), false) => format!("{a}/128"),
        };
        let add = |ns: &str, dev: &str, addrs: &[IpAddr]| -> io::Result<()> {
            let (mut v4_first, mut v6_first) = (true, true);
            for a in addrs {
                let first = match a {
                    IpAddr::V4(_) => std::mem::replace(&mut v4_first, false),
                    IpAddr::V6(_) => std::mem::replace(&mut v6_first, false),
                };
                let cidr = with_prefix(a, first);
                let mut args = vec!["-n", ns, "addr", "add", cidr.as_str(), "dev", dev];
                if a.is_ipv6() {
                    args.push("nodad");
                }
                ip(&args)?;
            }
            Ok(())
        };
        add(p, PROBER_IF, prober_addrs)?;
        add(h, HOST_IF, host_addrs)?;
        sysctl(h, "net.ipv4.icmp_echo_ignore_all=1")?;
        sysctl(h, "net.ipv6.icmp.echo_ignore_all=1")?;
        sysctl(h, "net.ipv4.ip_forward=0")?;
        sysctl(h, "net.ipv6.conf.all.forwarding=0")?;
        // Permanent neighbour entries both ways: no ARP or neighbour
        // discovery ever delays a packet (the first ping to an address would
        // otherwise wait for it).
        let neigh = |ns: &str, a: &IpAddr, mac: &str, dev: &str| {
            let a = a.to_string();
            ip(&[
                "-n",
                ns,
                "neigh",
                "replace",
                &a,
                "lladdr",
                mac,
                "dev",
                dev,
                "nud",
                "permanent",
            ])
            .map(drop)
        };
        for a in host_addrs.iter().chain(static_neighbours) {
            neigh(p, a, HOST_MAC, PROBER_IF)?;
        }
        for a in prober_addrs {
            neigh(h, a, PROBER_MAC, HOST_IF)?;
        }
        ip(&["-n", p, "link", "set", PROBER_IF, "up"])?;
        ip(&["-n", h, "link", "set", HOST_IF, "up"])?;
        let deadline = Instant::now() + Duration::from_secs(10);
        for (ns, dev) in [(p, PROBER_IF), (h, HOST_IF)] {
            loop {
                let text = ip(&["-n", ns, "-o", "link", "show", dev])?;
                if text.contains("LOWER_UP") {
                    break;
                }
                if Instant::now() >= deadline {
                    return Err(io::Error::other(format!(
                        "{dev} in {ns} never came up: {text}"
                    )));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }

    /// Routes what `sources` (addresses of the host namespace) send to the
    /// prober into the relay's veth pair instead of the prober's veth:
    /// `RELAY_IN` ↔ `RELAY_OUT`, both in the host namespace, a policy rule
    /// per source (`from SRC fwmark 0 lookup RELAY_TABLE`) and in that
    /// table only the prober's two addresses, on `RELAY_IN`, with permanent
    /// neighbour entries. The relay's own sends carry [`RELAY_MARK`], so
    /// they take the main table to the prober's veth. Reverse-path
    /// filtering is off in the host namespace, since the prober's packets
    /// to a source arrive on the other veth than its answers leave by.
    pub fn add_relay(&self, sources: &[IpAddr], prober_addrs: &[IpAddr]) -> io::Result<()> {
        let h = self.host.as_str();
        ip(&[
            "-n",
            h,
            "link",
            "add",
            RELAY_IN,
            "address",
            RELAY_IN_MAC,
            "type",
            "veth",
            "peer",
            "name",
            RELAY_OUT,
            "address",
            RELAY_OUT_MAC,
        ])?;
        for dev in [RELAY_IN, RELAY_OUT] {
            // No link-local address, so no neighbour discovery or router
            // solicitation is ever sent on the pair.
            ip(&["-n", h, "link", "set", dev, "addrgenmode", "none"])?;
        }
        // What arrives on the relay's end is only read by the relay's packet
        // socket, never by the host's IPv6 (nor answered by its IPv4, which
        // neither forwards nor owns the prober's address).
        sysctl(h, &format!("net.ipv6.conf.{RELAY_OUT}.disable_ipv6=1"))?;
        for conf in ["all", "default", HOST_IF, RELAY_IN, RELAY_OUT] {
            sysctl(h, &format!("net.ipv4.conf.{conf}.rp_filter=0"))?;
        }
        for dev in [RELAY_IN, RELAY_OUT] {
            ip(&["-n", h, "link", "set", dev, "up"])?;
        }
        for a in prober_addrs {
            let (fam, dst) = match a {
                IpAddr::V4(_) => ("-4", format!("{a}/32")),
                IpAddr::V6(_) => ("-6", format!("{a}/128")),
            };
            let a = a.to_string();
            ip(&[
                "-n",
                h,
                "neigh",
                "replace",
                &a,
                "lladdr",
                RELAY_OUT_MAC,
                "dev",
                RELAY_IN,
                "nud",
                "permanent",
            ])?;
            ip(&[
                "-n",
                h,
                fam,
                "route",
                "add",
                &dst,
                "dev",
                RELAY_IN,
                "table",
                RELAY_TABLE,
            ])?;
        }
        for s in sources {
            let fam = if s.is_ipv4() { "-4" } else { "-6" };
            let s = s.to_string();
            ip(&[
                "-n",
                h,
                fam,
                "rule",
                "add",
                "from",
                &s,
                "fwmark",
                "0/0xffffffff",
                "lookup",
                RELAY_TABLE,
                "pref",
                "100",
            ])?;
        }
        Ok(())
    }

    /// Fails unless namespace `ns` holds only `lo` and `devs`, and every
    /// route (every table, both families) is a connected or local route on
    /// `lo` or one of `devs` inside 127.0.0.0/8, 198.18.0.0/24, ::1,
    /// 2001:db8::/64, fe80::/64 or ff00::/8 — no default route, no
    /// gateway, nothing that could lead anywhere but the other namespace.
    pub fn check_isolated(&self, ns: &str, devs: &[&str]) -> io::Result<()> {
        let links = ip(&["-n", ns, "-o", "link", "show"])?;
        for l in links.lines() {
            let name = l
                .split(':')
                .nth(1)
                .map(|s| s.trim().split('@').next().unwrap_or("").to_owned())
                .unwrap_or_default();
            if name != "lo" && !devs.contains(&name.as_str()) {
                return Err(io::Error::other(format!(
                    "namespace {ns} has an unexpected link {name:?}: {l}"
                )));
            }
        }
        for fam in ["-4", "-6"] {
            let routes = ip(&["-n", ns, fam, "route", "show", "table", "all"])?;
            for r in routes.lines().filter(|l| !l.trim().is_empty()) {
                check_route(r, devs).map_err(|why| {
                    io::Error::other(format!("namespace {ns}: route {r:?} refused: {why}"))
                })?;
            }
        }
        Ok(())
    }
}

/// One `ip route show table all` line: allowed or why not.
fn check_route(line: &str, devs: &[&str]) -> Result<(), String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let mut i = 0;
    if matches!(
        words.first(),
        Some(&("local" | "broadcast" | "multicast" | "unicast" | "anycast"))
    ) {
        i = 1;
    }
    let dst = words.get(i).copied().unwrap_or("");
    if dst == "default" || words.contains(&"via") || words.contains(&"nexthop") {
        return Err("a default route or a gateway".into());
    }
    let on = words
        .windows(2)
        .find(|w| w[0] == "dev")
        .map(|w| w[1])
        .unwrap_or("");
    if !devs.contains(&on) && on != "lo" {
        return Err(format!("on device {on:?}"));
    }
    let allowed = [
        "127.0.0.0/8",
        "127.0.0.1",
        "127.255.255.255",
        "198.18.0.0/24",
        "::1",
        "2001:db8::/64",
        "fe80::/64",
        "ff00::/8",
    ];
    let in_range = allowed.contains(&dst)
        || dst
            .parse::<IpAddr>()
            .map(|a| match a {
                IpAddr::V4(a) => a.octets()[..3] == [198, 18, 0],
                IpAddr::V6(a) => a.segments()[..4] == [0x2001, 0xdb8, 0, 0],
            })
            .unwrap_or(false);
    if !in_range {
        return Err(format!("destination {dst:?} outside the test ranges"));
    }
    Ok(())
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in self.created.drain(..) {
            if let Err(e) = ip(&["netns", "del", &name]) {
                eprintln!("impair: cannot remove namespace {name}: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::check_route;

    #[test]
    fn route_check() {
        let ok = [
            "198.18.0.0/24 dev pmp0 proto kernel scope link src 198.18.0.1",
            "local 198.18.0.1 dev pmp0 table local proto kernel scope host src 198.18.0.1",
            "broadcast 198.18.0.255 dev pmp0 table local proto kernel scope link src 198.18.0.1",
            "local 127.0.0.0/8 dev lo table local proto kernel scope host src 127.0.0.1",
            "2001:db8::/64 dev pmp0 proto kernel metric 256 pref medium",
            "fe80::/64 dev pmp0 proto kernel metric 256 pref medium",
            "local 2001:db8::1 dev pmp0 table local proto kernel metric 0 pref medium",
            "multicast ff00::/8 dev pmp0 table local proto kernel metric 256 pref medium",
            "local ::1 dev lo table local proto kernel metric 0 pref medium",
        ];
        // The host namespace's relay table.
        let relay = [
            "198.18.0.1 dev pmr0 table 100 scope link",
            "2001:db8::1 dev pmr0 table 100 metric 1024 pref medium",
            "198.18.0.0/24 dev pmh0 proto kernel scope link src 198.18.0.2",
        ];
        for r in relay {
            assert_eq!(check_route(r, &["pmh0", "pmr0", "pmr1"]), Ok(()), "{r}");
            assert!(check_route(r, &["pmp0"]).is_err(), "{r}");
        }
        for r in ok {
            assert_eq!(check_route(r, &["pmp0"]), Ok(()), "{r}");
        }
        let bad = [
            "default via 192.0.2.1 dev eth0",
            "default dev pmp0 scope link",
            "192.0.2.0/24 dev pmp0 proto kernel scope link src 192.0.2.2",
            "198.18.0.0/24 via 198.18.0.2 dev pmp0",
            "198.18.0.0/24 dev eth0 proto kernel scope link",
            "fd00::/64 dev pmp0 proto kernel metric 256 pref medium",
        ];
        for r in bad {
            assert!(check_route(r, &["pmp0"]).is_err(), "{r}");
        }
    }
}

/// A lone network namespace with only loopback, up: for a test that needs
/// a per-namespace setting the machine's own namespace lacks (such as
/// `net.ipv4.ping_group_range` for unprivileged ICMP sockets), without
/// changing the machine's. Named `PREFIX<pid>-<n>-lo`, so a crashed run's
/// is removed by [`remove_stale`]; removed on drop. Needs root.
#[derive(Debug)]
pub struct LoopbackNamespace {
    pub name: String,
}

impl LoopbackNamespace {
    /// Creates the namespace and brings its loopback up.
    pub fn create() -> io::Result<LoopbackNamespace> {
        remove_stale();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("{PREFIX}{}-{n}-lo", std::process::id());
        ip(&["netns", "add", &name])?;
        let ns = LoopbackNamespace { name };
        ip(&["-n", &ns.name, "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Sets `KEY=VALUE` inside the namespace only.
    pub fn sysctl(&self, setting: &str) -> io::Result<()> {
        sysctl(&self.name, setting)
    }

    /// Runs `f` on a thread that has entered the namespace and returns its
    /// result: sockets it opens, and threads it starts, live there. `f`
    /// must bound its own running time.
    pub fn run<T, F>(&self, f: F) -> io::Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        use std::os::fd::AsFd;
        let path = format!("/run/netns/{}", self.name);
        std::thread::Builder::new()
            .name("loopback-ns".into())
            .spawn(move || -> io::Result<T> {
                let ns = std::fs::File::open(&path)?;
                nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(|e| io::Error::other(format!("setns {path}: {e}")))?;
                Ok(f())
            })?
            .join()
            // A failed assertion inside `f` fails the caller with its message.
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }
}

impl Drop for LoopbackNamespace {
    fn drop(&mut self) {
        if let Err(e) = ip(&["netns", "del", &self.name]) {
            eprintln!("cannot remove namespace {}: {e}", self.name);
        }
    }
}
