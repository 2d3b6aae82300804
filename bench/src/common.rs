//! What the subcommands share: targets and orders, the daemon under
//! measurement, its `/proc` figures, `.stats.json` readers, waits.

use crate::*;

/// How fping is run for the comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum FpingMode {
    /// `fping -C P -q -p 1000 -i 0.1 -t 3000 -f FILE`: every target in one
    /// process, sends 0.1 ms apart.
    Single,
    /// `fping -C P -q -p INTERVAL -i 1 -t 3000` per 1000 targets, as the
    /// original pingmachine ran it.
    Jobs,
}

/// Where the targets of `run` are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Net {
    /// 127.A.B.C, distinct per order.
    Loopback,
    /// 2001:db8::1:0:H:L, distinct per order, behind a veth pair in two
    /// network namespaces made for the run (see `netns.rs`).
    Netns,
}

impl Net {
    pub(crate) fn target(self, i: usize) -> std::net::IpAddr {
        match self {
            Net::Loopback => target(i).into(),
            Net::Netns => netns::target(i).into(),
        }
    }
}

/// The i-th loopback target: 127.A.B.C with A ≥ 1 and C in 1..=254.
pub(crate) fn target(i: usize) -> Ipv4Addr {
    let c = 1 + (i % 254) as u8;
    let b = ((i / 254) % 256) as u8;
    let a = 1 + (i / (254 * 256)) as u8;
    Ipv4Addr::new(127, a, b, c)
}

pub(crate) fn order(i: usize, step: u32, pings: u32, interval: Option<u32>, rrd: bool) -> String {
    order_to(target(i).into(), step, pings, interval, rrd)
}

pub(crate) fn order_to(
    host: std::net::IpAddr,
    step: u32,
    pings: u32,
    interval: Option<u32>,
    rrd: bool,
) -> String {
    let mut s = format!(
        "user: bench\nstep: {step}\npings: {pings}\nprobe: fping\nfping:\n  host: '{host}'\n"
    );
    if let Some(iv) = interval {
        s.push_str(&format!("  interval: {iv}\n"));
    }
    if !rrd {
        s.push_str("rrd_template: norrd\n");
    }
    s
}

pub(crate) fn write_orders(
    orders_dir: &Path,
    range: std::ops::Range<usize>,
    f: impl Fn(usize) -> String,
) -> anyhow::Result<()> {
    let dir = orders_dir.join("bench");
    std::fs::create_dir_all(&dir)?;
    for i in range {
        std::fs::write(dir.join(format!("o{i:06}")), f(i))?;
    }
    Ok(())
}

pub(crate) struct Daemon {
    pub(crate) child: Child,
    pub(crate) base: PathBuf,
    pub(crate) log: PathBuf,
}

impl Daemon {
    pub(crate) fn start(bin: &Path, base: &Path, extra: &[String]) -> anyhow::Result<Daemon> {
        Daemon::start_in(None, bin, base, extra)
    }

    /// Starts the daemon, in the prober's namespace of `net` if given.
    pub(crate) fn start_in(
        net: Option<&netns::TestNet>,
        bin: &Path,
        base: &Path,
        extra: &[String],
    ) -> anyhow::Result<Daemon> {
        let log = base.join("daemon.log");
        let f = std::fs::File::create(&log)?;
        let child = net
            .map_or_else(|| Command::new(bin), |n| n.command(bin))
            .arg("--basedir")
            .arg(base)
            .arg("run")
            .args(["--stats-interval", "1"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(f.try_clone()?)
            .stderr(f)
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        Ok(Daemon {
            child,
            base: base.to_path_buf(),
            log,
        })
    }

    /// The daemon's `.stats.json`, or `None` while it has not written one
    /// (for polling).
    pub(crate) fn stats(&self) -> Option<Value> {
        self.read_stats().ok()
    }

    /// The daemon's `.stats.json`; an error when it is missing or cannot be
    /// parsed, so that a figure is never printed from a file not read.
    pub(crate) fn read_stats(&self) -> anyhow::Result<Value> {
        let path = self.base.join(".stats.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("cannot parse {}", path.display()))
    }

    /// (user+sys seconds, peak RSS in KiB) from /proc.
    pub(crate) fn cpu_rss(&self) -> (f64, u64) {
        let pid = self.child.id();
        (proc_cpu_s(pid), proc_hwm_kib(pid))
    }

    /// CPU seconds (user+sys) per thread name, summed over threads with
    /// the same name.
    pub(crate) fn thread_cpu(&self) -> std::collections::BTreeMap<String, f64> {
        self.thread_cpu_split()
            .into_iter()
            .map(|(name, (user, sys))| (name, user + sys))
            .collect()
    }

    /// CPU seconds by thread name, (user, system): user time is the
    /// daemon's own code (and libc's), system time the kernel's work for it.
    pub(crate) fn thread_cpu_split(&self) -> std::collections::BTreeMap<String, (f64, f64)> {
        let ticks = procfs::ticks_per_second() as f64;
        let mut out = std::collections::BTreeMap::new();
        for t in tasks(self.child.id()) {
            let Ok(st) = t.stat() else { continue };
            let e = out.entry(st.comm).or_insert((0.0, 0.0));
            e.0 += st.utime as f64 / ticks;
            e.1 += st.stime as f64 / ticks;
        }
        out
    }

    /// Context switches by thread name over its threads, (voluntary,
    /// involuntary), from `/proc/PID/task/TID/status`: a thread that
    /// waits for another is switched out voluntarily each time.
    pub(crate) fn thread_switches(&self) -> std::collections::BTreeMap<String, (u64, u64)> {
        let mut out = std::collections::BTreeMap::new();
        for t in tasks(self.child.id()) {
            let Ok(st) = t.status() else { continue };
            let e = out.entry(st.name).or_insert((0, 0));
            e.0 += st.voluntary_ctxt_switches.unwrap_or(0);
            e.1 += st.nonvoluntary_ctxt_switches.unwrap_or(0);
        }
        out
    }

    /// Bytes the daemon has read from the disk (`read_bytes` of
    /// `/proc/PID/io`): pages it needed that were not in the page cache.
    pub(crate) fn disk_read_bytes(&self) -> u64 {
        process(self.child.id())
            .and_then(|p| p.io().ok())
            .map_or(0, |io| io.read_bytes)
    }

    pub(crate) fn stop(mut self) -> anyhow::Result<String> {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(std::fs::read_to_string(&self.log).unwrap_or_default());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        Ok(std::fs::read_to_string(&self.log).unwrap_or_default())
    }
}

/// `/proc/PID`, if the process exists.
pub(crate) fn process(pid: u32) -> Option<procfs::process::Process> {
    procfs::process::Process::new(i32::try_from(pid).ok()?).ok()
}

/// The threads of process `pid`.
fn tasks(pid: u32) -> Vec<procfs::process::Task> {
    process(pid)
        .and_then(|p| p.tasks().ok())
        .map(|t| t.flatten().collect())
        .unwrap_or_default()
}

/// User+system CPU seconds of process `pid` (`/proc/PID/stat`).
pub(crate) fn proc_cpu_s(pid: u32) -> f64 {
    process(pid).and_then(|p| p.stat().ok()).map_or(0.0, |st| {
        (st.utime + st.stime) as f64 / procfs::ticks_per_second() as f64
    })
}

/// Peak RSS (`VmHWM`) of process `pid`, KiB.
pub(crate) fn proc_hwm_kib(pid: u32) -> u64 {
    process(pid)
        .and_then(|p| p.status().ok())
        .and_then(|st| st.vmhwm)
        .unwrap_or(0)
}

/// An error unless `dir`'s file system has room for `orders` RRDs (2.2 MB
/// each, step 60 and 20 pings) and `spare` bytes more: a benchmark that
/// cannot measure fails, it never prints figures it did not measure.
pub(crate) fn room_for_rrds(dir: &Path, orders: usize, spare: u64) -> anyhow::Result<()> {
    let need = orders as u64 * 2_200_000;
    let vfs = nix::sys::statvfs::statvfs(dir)?;
    let avail = vfs.blocks_available() as u64 * vfs.fragment_size() as u64;
    if avail < need + spare {
        bail!(
            "{orders} RRDs need {:.1} GB and {:.1} GB spare; {} has {:.1} GB free (pass --dir on a larger file system)",
            need as f64 / 1e9,
            spare as f64 / 1e9,
            dir.display(),
            avail as f64 / 1e9
        );
    }
    Ok(())
}

/// A figure of a stats snapshot: an error when the daemon did not write it
/// (a figure that was not measured is never printed as 0).
pub(crate) fn fig(v: &Value, path: &[&str]) -> anyhow::Result<f64> {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_f64().with_context(|| {
        format!(
            "the daemon's .stats.json has no number at {}",
            path.join(".")
        )
    })
}

/// A number of a stats snapshot, 0 when absent (for polling only; figures
/// that are printed go through [`fig`]).
pub(crate) fn n(v: &Value, path: &[&str]) -> f64 {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_f64().unwrap_or(0.0)
}

/// Waits (bounded) until `f` holds.
pub(crate) fn wait(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

pub(crate) fn tempbase(dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let base = dir.join(format!("pingmachine-bench-{name}-{}", std::process::id()));
    if base.exists() {
        std::fs::remove_dir_all(&base)?;
    }
    std::fs::create_dir_all(base.join("orders"))?;
    Ok(base)
}

pub(crate) fn interval_ms(step: u32, pings: u32, targets: usize, explicit: Option<u32>) -> u64 {
    explicit.map_or_else(
        || ((i64::from(step) * 800 - targets as i64 - 3000) / i64::from(pings)).max(1000) as u64,
        u64::from,
    )
}

/// `GET path` on loopback `port` with the one HTTP client (ureq; no
/// redirects, no status taken as an error, 60 s at most): seconds to the
/// whole body, the status, and the body (no size limit: a scrape of a
/// million orders is large).
pub(crate) fn get(port: u16, path: &str) -> anyhow::Result<(f64, u16, Vec<u8>)> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(60)))
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let t = Instant::now();
    let mut resp = agent.get(format!("http://127.0.0.1:{port}{path}")).call()?;
    let status = resp.status().as_u16();
    let body = resp
        .body_mut()
        .with_config()
        .limit(u64::MAX)
        .read_to_vec()?;
    Ok((t.elapsed().as_secs_f64(), status, body))
}

/// Like [`get`]: seconds, status and the body's size.
pub(crate) fn http_get(port: u16, path: &str) -> anyhow::Result<(f64, u16, usize)> {
    let (t, status, body) = get(port, path)?;
    Ok((t, status, body.len()))
}
