//! `pingmachine-bench`: measures the real `pingmachine` daemon against
//! loopback targets (distinct addresses in 127.0.0.0/8) or, with `run --net
//! netns`, IPv6 targets behind a veth pair in two network namespaces that
//! the run creates and removes (2001:db8::/64, see `netns.rs`), and
//! `fping` on the same targets for comparison. Prints figures; never asserts on
//! timing. See docs/PERFORMANCE.md for the commands and results.
//!
//! * `run`: N fping orders for K steps: pings sent/s, loss, CPU per 100,000
//!   pings, peak RSS, time until all orders are scheduled, round start
//!   lateness, RRD updates/s, writer queue high-water; `--fping` adds the
//!   fping comparison on the same targets in the same run: by default its
//!   most efficient form, one process (`fping -C P -q -p 1000 -i 0.1 -t
//!   3000 -f FILE`); `--fping-mode jobs` runs jobs of 1000 targets, as the
//!   original pingmachine did.
//! * `saturate`: `run` at rising rates until a level loses a ping, abandons
//!   a round or sends less than asked; prints the highest rate held.
//! * `pickup`: time from an order file's rename into `orders/` until the
//!   daemon has scheduled it, p50/p99, over M new orders while N run.
//! * `writer`: RRD writer throughput with N orders whose files are warm.
//! * `floor`: the kernel's floor under `run`'s ICMP threads: the same rate
//!   through the engine's own socket and batching with nothing else.
//! * `wakeup`: the CPU one timed sleep and wake-up of a thread costs on
//!   this machine: the floor under a sender that must wake once per
//!   millisecond (the original's 1 ms spacing).

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};

mod netns;
mod rrdcached;
use serde_json::Value;

#[derive(Parser)]
#[command(
    name = "pingmachine-bench",
    about = "Benchmarks of pingmachine (loopback, or network namespaces it creates)"
)]
struct Cli {
    /// The pingmachine binary to measure.
    #[arg(long, default_value = "target/release/pingmachine")]
    bin: PathBuf,
    /// Where to put the temporary base directory.
    #[arg(long, default_value = "/tmp")]
    dir: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// N orders for K steps; figures of the daemon (and fping with --fping).
    Run {
        #[arg(long, default_value_t = 10_000)]
        orders: usize,
        #[arg(long, default_value_t = 60)]
        step: u32,
        #[arg(long, default_value_t = 20)]
        pings: u32,
        /// Explicit interval between pings to one target, ms.
        #[arg(long)]
        interval: Option<u32>,
        /// Steps to measure after the first round starts.
        #[arg(long, default_value_t = 2)]
        steps: u32,
        /// Keep main.rrd (default: rrd_template norrd).
        #[arg(long)]
        rrd: bool,
        /// Also run fping on the same targets and compare CPU per ping.
        #[arg(long)]
        fping: bool,
        /// How fping runs: one process for every target (`single`, its
        /// cheapest per ping), or jobs of 1000 as the original ran it.
        #[arg(long, value_enum, default_value_t = FpingMode::Single)]
        fping_mode: FpingMode,
        /// After the window, write this many new orders (5 ms apart) while
        /// the others run, and print their pickup latency.
        #[arg(long, default_value_t = 0)]
        pickup: usize,
        /// Whole steps to let pass after every job's first round before
        /// the window: an order's first two rounds create its
        /// `last_result` and `last_result.tmp` (once per order), later
        /// ones only rewrite them.
        #[arg(long, default_value_t = 0)]
        warmup: u32,
        /// Where the targets are: loopback addresses (the kernel answers
        /// inside the daemon's own send calls), or IPv6 hosts behind a veth
        /// pair in network namespaces made for the run (answered by kernel
        /// threads, as on a network; their CPU is printed apart).
        #[arg(long, value_enum, default_value_t = Net::Loopback)]
        net: Net,
        /// During the measured window, drop the page cache every SECONDS
        /// (`sync`, then 3 into `/proc/sys/vm/drop_caches`), as on a host
        /// whose memory is needed elsewhere, or a cold disk (0: never).
        #[arg(long, default_value_t = 0, value_name = "SECONDS")]
        drop_caches_every: u64,
    },
    /// Cost of Prometheus metrics: N orders run twice for the same window,
    /// without `--listen`, then with it and a scrape of /metrics every
    /// `--every` seconds: render time, size, CPU and RSS of both runs.
    Scrape {
        #[arg(long, default_value_t = 10_000)]
        orders: usize,
        #[arg(long, default_value_t = 60)]
        step: u32,
        #[arg(long, default_value_t = 20)]
        pings: u32,
        /// Steps to measure after the first round of every job.
        #[arg(long, default_value_t = 2)]
        steps: u32,
        /// Seconds between scrapes.
        #[arg(long, default_value_t = 15)]
        every: u64,
    },
    /// The web page: server time of `/` with N orders, of a 30-hour graph,
    /// and round start lateness with and without `--clients` fetching
    /// graphs in a loop.
    Web {
        /// Orders on the status page (norrd, step 60, 20 pings).
        #[arg(long, default_value_t = 10_000)]
        orders: usize,
        /// Orders with a main.rrd whose graphs are fetched (step 10, 4 pings).
        #[arg(long, default_value_t = 20)]
        rrd_orders: usize,
        /// Clients fetching graphs at once.
        #[arg(long, default_value_t = 20)]
        clients: usize,
        /// Seconds of each lateness window.
        #[arg(long, default_value_t = 120)]
        window: u64,
    },
    /// Throughput of the real store writer threads: N RRDs (step 60,
    /// 20 pings) created, then M rounds each written (RRD update +
    /// last_result) on a warm cache.
    Writer {
        #[arg(long, default_value_t = 2000)]
        orders: usize,
        #[arg(long, default_value_t = 10)]
        rounds: u32,
        #[arg(long, default_value_t = 2)]
        threads: usize,
    },
    /// The highest rate sustained: runs `run` at rising rates (one daemon
    /// per level) and stops at the first level that loses a ping, abandons
    /// a round or sends less than asked.
    Saturate {
        /// First rate, pings/s.
        #[arg(long, default_value_t = 100_000)]
        from: u32,
        /// Increment between levels, pings/s.
        #[arg(long, default_value_t = 25_000)]
        by: u32,
        /// Last rate tried, pings/s.
        #[arg(long, default_value_t = 200_000)]
        to: u32,
        #[arg(long, default_value_t = 60)]
        step: u32,
        #[arg(long, default_value_t = 40)]
        pings: u32,
        #[arg(long, default_value_t = 1200)]
        interval: u32,
        /// Steps measured per level.
        #[arg(long, default_value_t = 1)]
        steps: u32,
    },
    /// CPU cost of one sleep and wake-up of a thread on this machine (the
    /// floor of a sender that must wake once per millisecond): N timed
    /// sleeps of each length, CPU from /proc/thread-self/schedstat.
    Wakeup {
        #[arg(long, default_value_t = 2000)]
        count: u32,
    },
    /// RRD writes without and with rrdcached: N orders with main.rrd, the
    /// same window each on a cold page cache; disk bytes and CPU per
    /// update (daemon and rrdcached, from /proc/PID/io), writer delay.
    Rrdcached {
        #[arg(long, default_value_t = 10_000)]
        orders: usize,
        #[arg(long, default_value_t = 60)]
        step: u32,
        #[arg(long, default_value_t = 20)]
        pings: u32,
        /// Seconds measured in each mode.
        #[arg(long, default_value_t = 600)]
        window: u64,
        /// rrdcached's -w and -z: a file's values wait this long, plus up
        /// to as long again, before they are written.
        #[arg(long, default_value_t = 300)]
        write_interval: u64,
        /// Drop the page cache every N seconds in the windows (0: only
        /// before them).
        #[arg(long, default_value_t = 60)]
        drop_every: u64,
    },
    /// Pickup latency of M new orders while N run.
    Pickup {
        #[arg(long, default_value_t = 10_000)]
        running: usize,
        #[arg(long, default_value_t = 1000)]
        new: usize,
    },
    /// The kernel's floor under `run`'s ICMP threads: RATE pings/s
    /// round-robin over N targets (as `run` places them) through the
    /// engine's own socket, send batches and drain cadence, with nothing
    /// else (no schedule, matching, results or store). The daemon's ICMP
    /// threads in `run` at the same rate, minus this, is what the daemon
    /// adds per ping.
    Floor {
        #[arg(long, default_value_t = 100_000)]
        targets: usize,
        /// Pings per second (`run`'s rate is orders × pings / step).
        #[arg(long, default_value_t = 66_667)]
        rate: u32,
        /// Seconds measured.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Where the targets are (as for `run`).
        #[arg(long, value_enum, default_value_t = Net::Loopback)]
        net: Net,
    },
    /// `floor` inside the prober's namespace (started by `floor --net netns`).
    #[command(hide = true)]
    FloorChild {
        #[arg(long)]
        targets: usize,
        #[arg(long)]
        rate: u32,
        #[arg(long)]
        seconds: u64,
    },
}

/// How fping is run for the comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum FpingMode {
    /// `fping -C P -q -p 1000 -i 0.1 -t 3000 -f FILE`: every target in one
    /// process, sends 0.1 ms apart.
    Single,
    /// `fping -C P -q -p INTERVAL -i 1 -t 3000` per 1000 targets, as the
    /// original pingmachine ran it.
    Jobs,
}

/// Where the targets of `run` are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Net {
    /// 127.A.B.C, distinct per order.
    Loopback,
    /// 2001:db8::1:0:H:L, distinct per order, behind a veth pair in two
    /// network namespaces made for the run (see `netns.rs`).
    Netns,
}

impl Net {
    fn target(self, i: usize) -> std::net::IpAddr {
        match self {
            Net::Loopback => target(i).into(),
            Net::Netns => netns::target(i).into(),
        }
    }
}

/// The i-th loopback target: 127.A.B.C with A ≥ 1 and C in 1..=254.
fn target(i: usize) -> Ipv4Addr {
    let c = 1 + (i % 254) as u8;
    let b = ((i / 254) % 256) as u8;
    let a = 1 + (i / (254 * 256)) as u8;
    Ipv4Addr::new(127, a, b, c)
}

fn order(i: usize, step: u32, pings: u32, interval: Option<u32>, rrd: bool) -> String {
    order_to(target(i).into(), step, pings, interval, rrd)
}

fn order_to(
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

fn write_orders(
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

struct Daemon {
    child: Child,
    base: PathBuf,
    log: PathBuf,
}

impl Daemon {
    fn start(bin: &Path, base: &Path, extra: &[String]) -> anyhow::Result<Daemon> {
        Daemon::start_in(None, bin, base, extra)
    }

    /// Starts the daemon, in the prober's namespace of `net` if given.
    fn start_in(
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
    fn stats(&self) -> Option<Value> {
        self.read_stats().ok()
    }

    /// The daemon's `.stats.json`; an error when it is missing or cannot be
    /// parsed, so that a figure is never printed from a file not read.
    fn read_stats(&self) -> anyhow::Result<Value> {
        let path = self.base.join(".stats.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("cannot parse {}", path.display()))
    }

    /// (user+sys seconds, peak RSS in KiB) from /proc.
    fn cpu_rss(&self) -> (f64, u64) {
        let pid = self.child.id();
        (proc_cpu_s(pid), proc_hwm_kib(pid))
    }

    /// CPU seconds (user+sys) per thread name, summed over threads with
    /// the same name.
    fn thread_cpu(&self) -> std::collections::BTreeMap<String, f64> {
        self.thread_cpu_split()
            .into_iter()
            .map(|(name, (user, sys))| (name, user + sys))
            .collect()
    }

    /// CPU seconds by thread name, (user, system): user time is the
    /// daemon's own code (and libc's), system time the kernel's work for it.
    fn thread_cpu_split(&self) -> std::collections::BTreeMap<String, (f64, f64)> {
        let pid = self.child.id();
        let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .unwrap_or(100) as f64;
        let mut out = std::collections::BTreeMap::new();
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return out;
        };
        for t in tasks.flatten() {
            let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
            let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
                continue;
            };
            let name = stat[open + 1..close].to_owned();
            let f: Vec<&str> = stat[close + 1..].split_whitespace().collect();
            let field = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
            let e = out.entry(name).or_insert((0.0, 0.0));
            e.0 += field(11) / ticks;
            e.1 += field(12) / ticks;
        }
        out
    }

    /// Context switches by thread name over its threads, (voluntary,
    /// involuntary), from `/proc/PID/task/TID/status`: a thread that
    /// waits for another is switched out voluntarily each time.
    fn thread_switches(&self) -> std::collections::BTreeMap<String, (u64, u64)> {
        let pid = self.child.id();
        let mut out = std::collections::BTreeMap::new();
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return out;
        };
        for t in tasks.flatten() {
            let status = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
            let field = |key: &str| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(key))
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .unwrap_or(0)
            };
            let name = status
                .lines()
                .find_map(|l| l.strip_prefix("Name:"))
                .unwrap_or("")
                .trim()
                .to_owned();
            let e = out.entry(name).or_insert((0, 0));
            e.0 += field("voluntary_ctxt_switches:");
            e.1 += field("nonvoluntary_ctxt_switches:");
        }
        out
    }

    /// Bytes the daemon has read from the disk (`read_bytes` of
    /// `/proc/PID/io`): pages it needed that were not in the page cache.
    fn disk_read_bytes(&self) -> u64 {
        let pid = self.child.id();
        std::fs::read_to_string(format!("/proc/{pid}/io"))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("read_bytes:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    fn stop(mut self) -> anyhow::Result<String> {
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

/// User+system CPU seconds of process `pid` (`/proc/PID/stat`).
fn proc_cpu_s(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    (f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0))
        / ticks
}

/// Peak RSS (`VmHWM`) of process `pid`, KiB.
fn proc_hwm_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// An error unless `dir`'s file system has room for `orders` RRDs (2.2 MB
/// each, step 60 and 20 pings) and `spare` bytes more: a benchmark that
/// cannot measure fails, it never prints figures it did not measure.
fn room_for_rrds(dir: &Path, orders: usize, spare: u64) -> anyhow::Result<()> {
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
fn fig(v: &Value, path: &[&str]) -> anyhow::Result<f64> {
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
fn n(v: &Value, path: &[&str]) -> f64 {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_f64().unwrap_or(0.0)
}

/// Waits (bounded) until `f` holds.
fn wait(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

fn tempbase(dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let base = dir.join(format!("pingmachine-bench-{name}-{}", std::process::id()));
    if base.exists() {
        std::fs::remove_dir_all(&base)?;
    }
    std::fs::create_dir_all(base.join("orders"))?;
    Ok(base)
}

fn interval_ms(step: u32, pings: u32, targets: usize, explicit: Option<u32>) -> u64 {
    explicit.map_or_else(
        || ((i64::from(step) * 800 - targets as i64 - 3000) / i64::from(pings)).max(1000) as u64,
        u64::from,
    )
}

/// What one `run` level is asked to do.
#[derive(Clone, Copy)]
struct Load {
    orders: usize,
    step: u32,
    pings: u32,
    interval: Option<u32>,
    steps: u32,
    rrd: bool,
    /// New orders written after the window (pickup latency); 0: none.
    pickup: usize,
    /// Whole steps waited after every job's first round, before the window.
    warmup: u32,
    /// Where the targets are.
    net: Net,
    /// Seconds between drops of the page cache in the window (0: never).
    drop_caches_every: u64,
}

/// Where the lost pings of a run went, as far as they can be told apart.
struct LossCauses {
    /// Replies the targets' kernel could not send (network namespaces).
    targets_kernel: Option<f64>,
    /// Replies our sockets' receive buffers dropped (`SO_RXQ_OVFL`).
    receive_buffer: f64,
    /// Replies that came after their ping's timeout, within its round.
    late: f64,
    /// Replies that came after their round ended (or duplicates).
    after_round: f64,
}

impl LossCauses {
    /// One line: how many of `lost` each cause explains, and how many no
    /// counter explains.
    fn explain(&self, lost: f64) -> String {
        let known =
            self.targets_kernel.unwrap_or(0.0) + self.receive_buffer + self.late + self.after_round;
        let mut parts = Vec::new();
        if let Some(t) = self.targets_kernel {
            parts.push(format!(
                "{t:.0} dropped by the targets' kernel (Ip6OutDiscards)"
            ));
        }
        parts.push(format!(
            "{:.0} dropped by our receive buffer (SO_RXQ_OVFL)",
            self.receive_buffer
        ));
        parts.push(format!("{:.0} replies after their timeout", self.late));
        parts.push(format!(
            "{:.0} replies after their round (or duplicates)",
            self.after_round
        ));
        format!(
            "lost by cause                  {}; unexplained {:.0}",
            parts.join(", "),
            (lost - known).max(0.0)
        )
    }
}

/// The figures of one measured daemon run.
struct Figures {
    /// Pings sent per second over the measured window.
    sent_rate: f64,
    /// Pings asked per second by the orders.
    asked_rate: f64,
    lost: f64,
    late: f64,
    send_errors: f64,
    abandoned: f64,
    /// Rounds skipped as too late to end in time (since start-up).
    skipped: f64,
    /// Average round start lateness in the window, ms.
    late_start_ms: f64,
    cpu_share: f64,
    /// CPU seconds per ping over the window.
    cpu_per_ping: f64,
    rss_mb: f64,
}

/// Starts the daemon on `load` (in `testnet`'s prober namespace if
/// given), waits for steady state, measures `load.steps` whole steps and
/// prints the figures.
fn measure(cli: &Cli, load: Load, testnet: Option<&netns::TestNet>) -> anyhow::Result<Figures> {
    let Load {
        orders,
        step,
        pings,
        interval,
        steps,
        rrd,
        pickup,
        warmup,
        net,
        drop_caches_every,
    } = load;
    let base = tempbase(&cli.dir, "run")?;
    let t0 = Instant::now();
    write_orders(&base.join("orders"), 0..orders, |i| {
        order_to(net.target(i), step, pings, interval, rrd)
    })?;
    println!(
        "wrote {orders} orders (step {step}, pings {pings}, rrd {rrd}) in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let d = Daemon::start_in(testnet, &cli.bin, &base, &[])?;
    let mut scheduled_after = 0.0;
    let ok = wait(Duration::from_secs(180), || {
        scheduled_after = started.elapsed().as_secs_f64();
        std::fs::read_to_string(&d.log)
            .unwrap_or_default()
            .contains("initial scan done")
    });
    if !ok {
        d.stop()?;
        std::fs::remove_dir_all(&base).ok();
        bail!("daemon never finished its initial scan");
    }
    let log = std::fs::read_to_string(&d.log).unwrap_or_default();
    let scan_ms = log
        .lines()
        .find(|l| l.contains("initial scan done"))
        .and_then(|l| l.split("elapsed_ms=").nth(1))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    // The writers create the output directories after the scan (every
    // order's before its first round ends).
    let mut dirs_after = f64::NAN;
    wait(Duration::from_secs(u64::from(step) + 600), || {
        let ready = d
            .stats()
            .is_some_and(|s| n(&s, &["store", "prepared"]) >= orders as f64);
        if ready {
            dirs_after = started.elapsed().as_secs_f64();
        }
        ready
    });
    // Steady state: wait until every job has finished its first round,
    // then measure exactly `steps` whole steps.
    let mut jobs = 0.0;
    wait(Duration::from_secs(15), || {
        jobs = d.stats().map_or(0.0, |s| n(&s, &["jobs"]));
        jobs > 0.0
    });
    let jobs = jobs.max(1.0);
    let first = wait(Duration::from_secs(u64::from(step) * 2 + 30), || {
        d.stats().is_some_and(|s| n(&s, &["rounds"]) >= jobs)
    });
    if !first {
        println!("warning: not every job finished a first round in time");
    }
    std::thread::sleep(Duration::from_secs(u64::from(step) * u64::from(warmup)));
    let s0 = d.read_stats()?;
    let (cpu_start, _) = d.cpu_rss();
    let threads_start = d.thread_cpu_split();
    let switches_start = d.thread_switches();
    let read_start = d.disk_read_bytes();
    let napi_start = netns::napi_cpu_s();
    let discards_start = testnet.as_ref().and_then(|_| netns::targets_out_discards());
    let window_start = Instant::now();
    let window_end = window_start + Duration::from_secs(u64::from(step) * u64::from(steps));
    let mut cache_drops = 0u32;
    if drop_caches_every > 0 {
        let every = Duration::from_secs(drop_caches_every);
        let mut next = window_start + every;
        while next < window_end {
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
            rrdcached::drop_caches("3")?;
            cache_drops += 1;
            next += every;
        }
    }
    std::thread::sleep(window_end.saturating_duration_since(Instant::now()));
    let (cpu_end, rss_kib) = d.cpu_rss();
    let threads_end = d.thread_cpu_split();
    let switches_end = d.thread_switches();
    let disk_read = d.disk_read_bytes().saturating_sub(read_start);
    let napi = netns::napi_cpu_s() - napi_start;
    let window = window_start.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(1500)); // a fresh stats file
    let s = d.read_stats()?;
    let sent_start = fig(&s0, &["icmp", "sent"])?;
    let pickups = if pickup > 0 {
        Some(pickup_latency(
            &d,
            &base,
            orders,
            pickup,
            (step, pings),
            net,
        )?)
    } else {
        None
    };
    let (_, rss_kib) = {
        let (_, rss) = d.cpu_rss();
        (0, rss.max(rss_kib))
    };
    let discards = testnet.as_ref().and_then(|_| netns::targets_out_discards());
    let log = d.stop()?;
    let sent = fig(&s, &["icmp", "sent"])?;
    let received = fig(&s, &["icmp", "received"])?;
    // The counters are read while pings are in flight: `pending` of them
    // have no answer yet, which is not loss. Loss counts since start-up.
    let lost = (sent - received - fig(&s, &["icmp", "pending"])?).max(0.0);
    let cpu = cpu_end - cpu_start;
    let rrd_updates = fig(&s, &["store", "rrd_updates"])?;
    let asked_rate = orders as f64 * f64::from(pings) / f64::from(step);
    let sent_window = sent - sent_start;
    println!("--- pingmachine ({} targets, {} jobs) ---", orders, jobs);
    println!(
        "time to all orders scheduled     {:>10.2} s (daemon clock; seen {:.2} s after process start)",
        scan_ms / 1000.0,
        scheduled_after
    );
    println!(
        "output directories ready         {:>10.2} s after process start",
        dirs_after
    );
    println!(
        "measured window                  {:>10.1} s ({steps} whole steps, starting {warmup} steps after every job's first round{})",
        window,
        if cache_drops > 0 {
            format!("; page cache dropped {cache_drops} times in it, every {drop_caches_every} s")
        } else {
            String::new()
        }
    );
    println!(
        "pings sent                       {:>10.0} ({:.0}/s over the window; {:.0}/s asked by the orders)",
        sent_window,
        sent_window / window,
        asked_rate
    );
    println!(
        "loss                             {:>10.4} % ({} lost of {} sent since start-up; send errors {}, not sent)",
        if sent > 0.0 { lost * 100.0 / sent } else { 0.0 },
        lost,
        sent,
        fig(&s, &["icmp", "send_errors"])?
    );
    let causes = LossCauses {
        targets_kernel: discards.map(|x| x as f64),
        receive_buffer: fig(&s, &["icmp", "rx_dropped"])?,
        late: fig(&s, &["icmp", "late"])?,
        after_round: fig(&s, &["icmp", "unmatched"])?,
    };
    println!("  {}", causes.explain(lost));
    // The same in the window alone (from the snapshot at its start).
    let lost_at = |v: &Value| -> anyhow::Result<f64> {
        Ok(fig(v, &["icmp", "sent"])?
            - fig(v, &["icmp", "received"])?
            - fig(v, &["icmp", "pending"])?)
    };
    let lost_window = (lost_at(&s)? - lost_at(&s0)?).max(0.0);
    let window_causes = LossCauses {
        targets_kernel: discards
            .zip(discards_start)
            .map(|(end, start)| end.saturating_sub(start) as f64),
        receive_buffer: fig(&s, &["icmp", "rx_dropped"])? - fig(&s0, &["icmp", "rx_dropped"])?,
        late: fig(&s, &["icmp", "late"])? - fig(&s0, &["icmp", "late"])?,
        after_round: fig(&s, &["icmp", "unmatched"])? - fig(&s0, &["icmp", "unmatched"])?,
    };
    println!(
        "loss in the window               {:>10.4} % ({lost_window} lost of {sent_window} sent)",
        if sent_window > 0.0 {
            lost_window * 100.0 / sent_window
        } else {
            0.0
        }
    );
    println!("  {}", window_causes.explain(lost_window));
    println!(
        "CPU (user+sys)                   {:>10.2} s = {:.1} % of one core",
        cpu,
        cpu * 100.0 / window
    );
    let shares = |part: fn((f64, f64)) -> f64| -> Vec<String> {
        threads_end
            .iter()
            .map(|(name, end)| {
                let start = threads_start.get(name).copied().unwrap_or((0.0, 0.0));
                (name, (part(*end) - part(start)) * 100.0 / window)
            })
            .filter(|(_, share)| *share >= 0.05)
            .map(|(name, share)| format!("{name} {share:.1} %"))
            .collect()
    };
    println!(
        "  by thread                      {}",
        shares(|(u, k)| u + k).join(", ")
    );
    println!(
        "  of which in user space         {} (the daemon's own code; the rest is system calls)",
        shares(|(u, _)| u).join(", ")
    );
    let switches: Vec<String> = switches_end
        .iter()
        .map(|(name, end)| {
            let start = switches_start.get(name).copied().unwrap_or((0, 0));
            (
                name,
                end.0.saturating_sub(start.0),
                end.1.saturating_sub(start.1),
            )
        })
        .filter(|(_, v, i)| v + i >= 100)
        .map(|(name, v, i)| format!("{name} {v}/{i}"))
        .collect();
    println!(
        "  context switches               {} (voluntary/involuntary, in the window)",
        switches.join(", ")
    );
    if testnet.is_some() {
        println!(
            "network kernel threads           {:>10.2} s = {:.1} % of one core (NAPI of the veth pair: receiving the pings, answering them in the targets' namespace, receiving the replies; not the daemon's)",
            napi,
            napi * 100.0 / window
        );
    }
    println!(
        "CPU per 100,000 pings            {:>10.3} s",
        if sent_window > 0.0 {
            cpu / sent_window * 1e5
        } else {
            0.0
        }
    );
    println!(
        "peak RSS                         {:>10.1} MB",
        rss_kib as f64 / 1024.0
    );
    println!(
        "rounds                           {:>10.0} (abandoned {}, skipped as too late to end in time {}; since start-up)",
        fig(&s, &["rounds"])?,
        fig(&s, &["rounds_abandoned"])?,
        fig(&s, &["rounds_skipped"])?
    );
    let window_starts = fig(&s, &["round_starts"])? - fig(&s0, &["round_starts"])?;
    let window_late_avg = if window_starts > 0.0 {
        (fig(&s, &["round_start_late_ms_sum"])? - fig(&s0, &["round_start_late_ms_sum"])?)
            / window_starts
    } else {
        0.0
    };
    println!(
        "round start lateness             {:>10.2} ms avg in the window ({window_starts} starts); since start-up {:.2} ms avg, {:.2} ms max",
        window_late_avg,
        fig(&s, &["round_start_late_ms_avg"])?,
        fig(&s, &["round_start_late_ms_max"])?
    );
    let (p50, p99) = (
        window_late_quantile(&s0, &s, 0.5),
        window_late_quantile(&s0, &s, 0.99),
    );
    println!(
        "round start lateness quantiles   {:>10} p50, {} p99 in the window (histogram bucket upper bounds)",
        p50, p99
    );
    println!(
        "registry safety net              {:>10.0} order files looked at by the paced pass in the window, {} directories listed again, {} full rescans since start-up",
        fig(&s, &["files_checked"])? - fig(&s0, &["files_checked"])?,
        fig(&s, &["dirs_listed"])? - fig(&s0, &["dirs_listed"])?,
        fig(&s, &["rescans"])?
    );
    println!(
        "RRD updates                      {:>10.0} ({:.1}/s), last_result files {}",
        rrd_updates,
        rrd_updates / window,
        fig(&s, &["store", "last_results"])?
    );
    let rewrites = fig(&s, &["store", "last_results"])? - fig(&s0, &["store", "last_results"])?;
    println!(
        "disk reads                       {:>10.1} MB in the window ({:.0} bytes per last_result written: pages that were no longer cached)",
        disk_read as f64 / 1e6,
        if rewrites > 0.0 {
            disk_read as f64 / rewrites
        } else {
            0.0
        }
    );
    println!(
        "writer queue high-water          {:>10.0}",
        fig(&s, &["store", "queue_high_water"])?
    );
    println!(
        "write errors                     {:>10.0}",
        fig(&s, &["store", "errors"])?
    );
    println!(
        "round write delay                {:>10.1} ms max, {} orders' rounds written later than one step",
        fig(&s, &["store", "write_delay_ms_max"])?,
        fig(&s, &["store", "late_writes"])?
    );
    println!(
        "storage behind                   {:>10.0} rounds waiting at most (now {}); last_result versions superseded {}, RRD updates dropped {} (since start-up)",
        fig(&s, &["store", "waiting_high_water"])?,
        fig(&s, &["store", "waiting_rounds"])?,
        fig(&s, &["store", "superseded"])?,
        fig(&s, &["store", "rrd_dropped"])?
    );
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .collect();
    println!("warnings/errors in the log       {:>10}", warnings.len());
    for w in warnings.iter().take(5) {
        println!("  {w}");
    }
    if let Some(lat) = &pickups {
        print_pickup(lat, pickup, orders);
    }
    std::fs::remove_dir_all(&base).ok();
    Ok(Figures {
        sent_rate: sent_window / window,
        asked_rate,
        lost,
        late: fig(&s, &["icmp", "late"])?,
        send_errors: fig(&s, &["icmp", "send_errors"])?,
        abandoned: fig(&s, &["rounds_abandoned"])?,
        skipped: fig(&s, &["rounds_skipped"])?,
        late_start_ms: window_late_avg,
        cpu_share: cpu / window,
        cpu_per_ping: if sent_window > 0.0 {
            cpu / sent_window
        } else {
            0.0
        },
        rss_mb: rss_kib as f64 / 1024.0,
    })
}

fn run(cli: &Cli, load: Load, fping: Option<FpingMode>) -> anyhow::Result<()> {
    let Load {
        orders,
        step,
        pings,
        interval,
        ..
    } = load;
    let testnet = match load.net {
        Net::Loopback => None,
        Net::Netns => Some(netns::TestNet::create()?),
    };
    let ours_per_ping = measure(cli, load, testnet.as_ref())?.cpu_per_ping;

    if let Some(mode) = fping {
        let targets: Vec<String> = (0..orders)
            .map(|i| load.net.target(i).to_string())
            .collect();
        let t = Instant::now();
        let before = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)?;
        let mut children = Vec::new();
        let chunk_len = match mode {
            FpingMode::Single => targets.len().max(1),
            FpingMode::Jobs => 1000,
        };
        for chunk in targets.chunks(chunk_len) {
            let iv = match mode {
                FpingMode::Single => 1000,
                FpingMode::Jobs => interval_ms(step, pings, chunk.len(), interval),
            };
            let spacing = match mode {
                FpingMode::Single => "0.1",
                FpingMode::Jobs => "1",
            };
            let fping_bin = Path::new("fping");
            let mut c = testnet
                .as_ref()
                .map_or_else(|| Command::new(fping_bin), |n| n.command(fping_bin))
                .args([
                    "-C",
                    &pings.to_string(),
                    "-q",
                    "-p",
                    &iv.to_string(),
                    "-i",
                    spacing,
                    "-t",
                    "3000",
                ])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .context("cannot run fping (apt-get install fping)")?;
            let mut stdin = c.stdin.take().context("fping stdin")?;
            stdin.write_all(chunk.join("\n").as_bytes())?;
            drop(stdin);
            children.push(c);
        }
        let mut f_lost = 0usize;
        for c in children {
            let out = c.wait_with_output()?;
            f_lost += String::from_utf8_lossy(&out.stderr)
                .split_whitespace()
                .filter(|w| *w == "-")
                .count();
        }
        let after = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)?;
        let secs = |r: &nix::sys::resource::Usage| {
            let u = r.user_time();
            let s = r.system_time();
            u.tv_sec() as f64
                + u.tv_usec() as f64 / 1e6
                + s.tv_sec() as f64
                + s.tv_usec() as f64 / 1e6
        };
        let fcpu = secs(&after) - secs(&before);
        let fpings = (orders as u64 * u64::from(pings)) as f64;
        match mode {
            FpingMode::Single => println!(
                "--- fping -C {pings} -q -p 1000 -i 0.1 -t 3000, one process for all {orders} targets ---"
            ),
            FpingMode::Jobs => println!(
                "--- fping -C {pings} -q -p <interval> -i 1 -t 3000, jobs of 1000 targets ---"
            ),
        }
        println!(
            "wall time                        {:>10.1} s",
            t.elapsed().as_secs_f64()
        );
        println!(
            "pings                            {:>10.0} (lost {})",
            fpings, f_lost
        );
        println!("CPU (user+sys)                   {:>10.2} s", fcpu);
        println!(
            "CPU per 100,000 pings            {:>10.3} s",
            fcpu / fpings * 1e5
        );
        println!(
            "pingmachine CPU per ping / fping {:>10.3}",
            ours_per_ping / (fcpu / fpings)
        );
    }
    Ok(())
}

/// One GET of `path` on `port`: seconds to the whole response, status.
fn http_get(port: u16, path: &str) -> anyhow::Result<(f64, u16, usize)> {
    use std::io::{Read, Write};
    let t = Instant::now();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
    )?;
    let mut body = Vec::new();
    s.read_to_end(&mut body)?;
    let status = String::from_utf8_lossy(&body[..body.len().min(16)])
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((t.elapsed().as_secs_f64(), status, body.len()))
}

/// Round start lateness so far, from the daemon's histogram: (count, sum
/// s, cumulative bucket counts by bound).
type Lateness = (f64, f64, Vec<(String, f64)>);

fn lateness(port: u16) -> anyhow::Result<Lateness> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let mut count = 0.0;
    let mut sum = 0.0;
    let mut buckets = Vec::new();
    for l in text.lines() {
        let v = |l: &str| {
            l.rsplit(' ')
                .next()
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        if let Some(rest) = l.strip_prefix("pingmachine_round_start_lateness_seconds_bucket{le=\"")
        {
            let le = rest.split('"').next().unwrap_or("").to_owned();
            buckets.push((le, v(l)));
        } else if l.starts_with("pingmachine_round_start_lateness_seconds_count ") {
            count = v(l);
        } else if l.starts_with("pingmachine_round_start_lateness_seconds_sum ") {
            sum = v(l);
        }
    }
    Ok((count, sum, buckets))
}

/// Prints a lateness window: starts, average, and the bucket bounds that
/// hold the 99th percentile and the latest start.
fn print_lateness(
    name: &str,
    a: &(f64, f64, Vec<(String, f64)>),
    b: &(f64, f64, Vec<(String, f64)>),
) {
    let n = b.0 - a.0;
    let avg_ms = if n > 0.0 {
        (b.1 - a.1) / n * 1000.0
    } else {
        0.0
    };
    let delta: Vec<(String, f64)> =
        b.2.iter()
            .zip(&a.2)
            .map(|((le, x), (_, y))| (le.clone(), x - y))
            .collect();
    let bound = |q: f64| {
        delta
            .iter()
            .find(|(_, c)| *c >= (q * n).ceil())
            .map_or("-".to_owned(), |(le, _)| le.clone())
    };
    println!(
        "{name:<34} {n:>6.0} starts, avg {avg_ms:.2} ms, p99 <= {} s, max <= {} s",
        bound(0.99),
        bound(1.0)
    );
}

fn web(
    cli: &Cli,
    orders: usize,
    rrd_orders: usize,
    clients: usize,
    window: u64,
) -> anyhow::Result<()> {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let base = tempbase(&cli.dir, "web")?;
    write_orders(&base.join("orders"), 0..orders, |i| {
        order(i, 60, 20, None, false)
    })?;
    write_orders(&base.join("orders"), orders..orders + rrd_orders, |i| {
        order(i, 10, 4, None, true)
    })?;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    let d = Daemon::start(&cli.bin, &base, &["--listen".to_owned(), port.to_string()])?;
    wait(Duration::from_secs(180), || {
        std::fs::read_to_string(&d.log)
            .unwrap_or_default()
            .contains("initial scan done")
    });
    // Every job's first round, and a few rounds of the RRD orders.
    std::thread::sleep(Duration::from_secs(75));
    println!(
        "{orders} orders on the page, {rrd_orders} with graphs (step 10), {clients} graph clients"
    );

    // `/`: each request after the 5 s report cache expired (server time
    // of a fresh report), then cached.
    let mut fresh = Vec::new();
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(5200));
        let (t, status, len) = http_get(port, "/")?;
        anyhow::ensure!(status == 200, "/ returned {status}");
        fresh.push((t, len));
    }
    let (cached, _, _) = http_get(port, "/")?;
    let max = fresh.iter().map(|f| f.0).fold(0.0, f64::max);
    let avg = fresh.iter().map(|f| f.0).sum::<f64>() / fresh.len() as f64;
    println!(
        "/ with a fresh report              avg {:.0} ms, max {:.0} ms ({:.1} MB of HTML, first page of 500 rows); from the cache {:.0} ms",
        avg * 1000.0,
        max * 1000.0,
        fresh[0].1 as f64 / 1e6,
        cached * 1000.0
    );
    // 30-hour graphs, each of another range so none comes from the cache.
    let id = format!("bench/o{orders:06}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64;
    let mut times = Vec::new();
    for k in 0..10 {
        let end = now - 60 * k;
        let (t, status, _) = http_get(
            port,
            &format!("/graph/{id}?start={}&end={end}", end - 108_000),
        )?;
        anyhow::ensure!(status == 200, "graph returned {status}");
        times.push(t);
    }
    println!(
        "30-hour graph (800x260 PNG)        avg {:.0} ms, max {:.0} ms",
        times.iter().sum::<f64>() / times.len() as f64 * 1000.0,
        times.iter().copied().fold(0.0, f64::max) * 1000.0
    );

    let a = lateness(port)?;
    std::thread::sleep(Duration::from_secs(window));
    let b = lateness(port)?;
    print_lateness("round start lateness, idle", &a, &b);
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let fetched = std::sync::Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    for c in 0..clients {
        let (stop, fetched) = (stop.clone(), fetched.clone());
        let ids: Vec<String> = (orders..orders + rrd_orders)
            .map(|i| format!("bench/o{i:06}"))
            .collect();
        threads.push(std::thread::spawn(move || {
            let mut k = c as i64;
            while !stop.load(Ordering::Relaxed) {
                let id = &ids[k as usize % ids.len()];
                // Another range each time: nothing from the cache.
                let end = now - (k % 1000) * 7;
                let range = [10_800, 108_000, 864_000][k as usize % 3];
                if http_get(
                    port,
                    &format!("/graph/{id}?start={}&end={end}", end - range),
                )
                .is_ok()
                {
                    fetched.fetch_add(1, Ordering::Relaxed);
                }
                k += clients as i64;
            }
        }));
    }
    let c0 = lateness(port)?;
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(window));
    let c1 = lateness(port)?;
    let secs = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    print_lateness(
        &format!("round start lateness, {clients} clients"),
        &c0,
        &c1,
    );
    println!(
        "graphs drawn meanwhile             {} ({:.1}/s)",
        fetched.load(Ordering::Relaxed),
        fetched.load(Ordering::Relaxed) as f64 / secs
    );
    d.stop()?;
    std::fs::remove_dir_all(&base).ok();
    Ok(())
}

/// One GET of `/metrics` on `port`: time to the whole body, and its size.
fn scrape_once(port: u16) -> anyhow::Result<(f64, usize)> {
    use std::io::{Read, Write};
    let t = Instant::now();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
    )?;
    let mut body = Vec::new();
    s.read_to_end(&mut body)?;
    Ok((t.elapsed().as_secs_f64(), body.len()))
}

/// The daemon's CPU seconds and RSS over `secs` seconds after every job's
/// first round, scraping `/metrics` every `every` seconds when `port` is
/// set: (CPU % of one core, peak RSS MiB, scrape times s, last size).
fn scrape_window(
    cli: &Cli,
    base: &Path,
    step: u32,
    secs: u64,
    port: Option<(u16, u64)>,
) -> anyhow::Result<(f64, f64, Vec<f64>, usize)> {
    let extra: Vec<String> = port
        .map(|(p, _)| vec!["--listen".to_owned(), p.to_string()])
        .unwrap_or_default();
    let d = Daemon::start(&cli.bin, base, &extra)?;
    wait(Duration::from_secs(180), || {
        std::fs::read_to_string(&d.log)
            .unwrap_or_default()
            .contains("initial scan done")
    });
    let mut jobs = 0.0;
    wait(Duration::from_secs(15), || {
        jobs = d.stats().map_or(0.0, |s| n(&s, &["jobs"]));
        jobs > 0.0
    });
    wait(Duration::from_secs(u64::from(step) * 2 + 30), || {
        d.stats()
            .is_some_and(|s| n(&s, &["rounds"]) >= jobs.max(1.0))
    });
    let (cpu0, _) = d.cpu_rss();
    let start = Instant::now();
    let mut times = Vec::new();
    let mut size = 0;
    let mut peak_rss = 0u64;
    while start.elapsed() < Duration::from_secs(secs) {
        if let Some((p, every)) = port {
            let (t, len) = scrape_once(p)?;
            times.push(t);
            size = len;
            peak_rss = peak_rss.max(d.cpu_rss().1);
            let next = Duration::from_secs(every * times.len() as u64);
            std::thread::sleep(
                next.saturating_sub(start.elapsed())
                    .min(Duration::from_secs(secs).saturating_sub(start.elapsed())),
            );
        } else {
            peak_rss = peak_rss.max(d.cpu_rss().1);
            std::thread::sleep(
                Duration::from_secs(1)
                    .min(Duration::from_secs(secs).saturating_sub(start.elapsed())),
            );
        }
    }
    let (cpu1, rss) = d.cpu_rss();
    let window = start.elapsed().as_secs_f64();
    d.stop()?;
    Ok((
        (cpu1 - cpu0) * 100.0 / window,
        peak_rss.max(rss) as f64 / 1024.0,
        times,
        size,
    ))
}

fn scrape(
    cli: &Cli,
    orders: usize,
    step: u32,
    pings: u32,
    steps: u32,
    every: u64,
) -> anyhow::Result<()> {
    let base = tempbase(&cli.dir, "scrape")?;
    write_orders(&base.join("orders"), 0..orders, |i| {
        order(i, step, pings, None, false)
    })?;
    let secs = u64::from(step) * u64::from(steps);
    println!("{orders} orders (step {step}, pings {pings}, norrd), {secs} s windows after every job's first round");
    let (cpu_off, rss_off, _, _) = scrape_window(cli, &base, step, secs, None)?;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    let (cpu_on, rss_on, times, size) = scrape_window(cli, &base, step, secs, Some((port, every)))?;
    std::fs::remove_dir_all(&base).ok();
    let max = times.iter().copied().fold(0.0, f64::max);
    let avg = times.iter().sum::<f64>() / times.len().max(1) as f64;
    println!("--- without --listen ---");
    println!("CPU                              {cpu_off:>10.2} % of one core");
    println!("peak RSS                         {rss_off:>10.1} MB");
    println!("--- with --listen, a scrape every {every} s ---");
    println!(
        "scrapes                          {:>10} (render and transfer: avg {:.3} s, max {:.3} s)",
        times.len(),
        avg,
        max
    );
    println!(
        "body                             {:>10.1} MB",
        size as f64 / 1e6
    );
    println!(
        "CPU                              {cpu_on:>10.2} % of one core (+{:.2})",
        cpu_on - cpu_off
    );
    println!(
        "peak RSS                         {rss_on:>10.1} MB (+{:.1})",
        rss_on - rss_off
    );
    Ok(())
}

/// Rounds starting later than this on average in the window mean the
/// engine is behind, even if nothing is lost yet.
const HELD_LATE_START_MS: f64 = 100.0;

/// Whether a level held: nothing lost, late, failed or abandoned, rounds
/// started on time, and (almost) everything asked for was sent.
fn sustained(f: &Figures) -> bool {
    f.lost == 0.0
        && f.late == 0.0
        && f.send_errors == 0.0
        && f.abandoned == 0.0
        && f.skipped == 0.0
        && f.late_start_ms <= HELD_LATE_START_MS
        && f.sent_rate >= 0.98 * f.asked_rate
}

fn saturate(cli: &Cli, (from, by, to): (u32, u32, u32), load: Load) -> anyhow::Result<()> {
    if by == 0 || from == 0 || from > to {
        bail!("need 0 < --from <= --to and --by > 0");
    }
    let mut levels: Vec<(u32, Figures)> = Vec::new();
    let mut rate = from;
    while rate <= to {
        let orders =
            (u64::from(rate) * u64::from(load.step)).div_ceil(u64::from(load.pings)) as usize;
        println!("=== level {rate} pings/s: {orders} orders ===");
        let f = measure(cli, Load { orders, ..load }, None)?;
        let held = sustained(&f);
        levels.push((rate, f));
        if !held {
            break;
        }
        rate += by;
    }
    println!(
        "--- saturation (step {}, pings {}, interval {} ms, {} measured step(s) per level) ---",
        load.step,
        load.pings,
        load.interval.unwrap_or(0),
        load.steps
    );
    println!("asked/s    sent/s     lost  late  abandoned  skipped  start late ms  CPU (% of one core)  CPU/100k pings  RSS MB  held");
    for (rate, f) in &levels {
        println!(
            "{:>7}  {:>8.0}  {:>7.0}  {:>4.0}  {:>9.0}  {:>7.0}  {:>13.1}  {:>19.1}  {:>14.3}  {:>6.0}  {}",
            rate,
            f.sent_rate,
            f.lost,
            f.late,
            f.abandoned,
            f.skipped,
            f.late_start_ms,
            f.cpu_share * 100.0,
            f.cpu_per_ping * 1e5,
            f.rss_mb,
            if sustained(f) { "yes" } else { "no" }
        );
    }
    match levels.iter().rev().find(|(_, f)| sustained(f)) {
        Some((rate, _)) => println!(
            "highest rate sustained with 0 % loss and no round abandoned or skipped: {rate} pings/s"
        ),
        None => println!("no level was sustained"),
    }
    Ok(())
}

/// `2026-11-21T06:02:57.673765Z` → unix microseconds.
fn parse_ts(s: &str) -> Option<i64> {
    let (date, time) = s.trim_end_matches('Z').split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>().ok());
    let (y, m, dd) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':').map(|x| x.parse::<i64>().ok());
    let (h, mi, se) = (t.next()??, t.next()??, t.next()??);
    let us: i64 = format!("{frac:0<6}")[..6].parse().ok()?;
    // days from civil (Howard Hinnant)
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + dd - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + h * 3600 + mi * 60 + se) * 1_000_000) + us)
}

/// CPU time this thread has run, ns (`/proc/thread-self/schedstat`, the
/// scheduler's own count, not sampled).
fn thread_cpu_ns() -> anyhow::Result<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat")?;
    s.split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .context("cannot read /proc/thread-self/schedstat")
}

/// Times `count` sleeps of several lengths and prints the CPU each sleep
/// and wake-up costs this thread.
fn wakeup(count: u32) -> anyhow::Result<()> {
    let (_tx, rx) = std::sync::mpsc::channel::<()>();
    println!("--- CPU per timed sleep and wake-up of one thread ({count} of each) ---");
    for us in [100u64, 1000, 10_000] {
        let n = if us >= 10_000 { count / 10 } else { count }.max(1);
        let c0 = thread_cpu_ns()?;
        let t0 = Instant::now();
        for _ in 0..n {
            let _ = rx.recv_timeout(Duration::from_micros(us));
        }
        let cpu = (thread_cpu_ns()? - c0) as f64 / f64::from(n) / 1000.0;
        let wall = t0.elapsed().as_secs_f64() / f64::from(n) * 1e6;
        println!("sleep {us:>6} µs                     {cpu:>8.2} µs CPU per wake-up (wall {wall:.0} µs)");
    }
    Ok(())
}

fn pickup(cli: &Cli, running: usize, new: usize) -> anyhow::Result<()> {
    let base = tempbase(&cli.dir, "pickup")?;
    write_orders(&base.join("orders"), 0..running, |i| {
        order(i, 60, 20, None, false)
    })?;
    let d = Daemon::start(&cli.bin, &base, &[])?;
    if !wait(Duration::from_secs(120), || {
        std::fs::read_to_string(&d.log)
            .unwrap_or_default()
            .contains("initial scan done")
    }) {
        d.stop()?;
        bail!("daemon never finished its initial scan");
    }
    let lat = pickup_latency(&d, &base, running, new, (60, 20), Net::Loopback)?;
    d.stop()?;
    print_pickup(&lat, new, running);
    std::fs::remove_dir_all(&base).ok();
    Ok(())
}

/// Writes `new` orders into `orders/new/` (each renamed into place, 5 ms
/// apart) while `running` others run, and returns the latency from each
/// rename to the daemon's "order started" log line, ms, sorted (orders
/// not seen within 60 s are missing: [`print_pickup`] counts them).
fn pickup_latency(
    d: &Daemon,
    base: &Path,
    running: usize,
    new: usize,
    (step, pings): (u32, u32),
    net: Net,
) -> anyhow::Result<Vec<f64>> {
    let dir = base.join("orders/new");
    std::fs::create_dir_all(&dir)?;
    std::thread::sleep(Duration::from_secs(1));
    let mut written = std::collections::HashMap::with_capacity(new);
    for i in 0..new {
        let tmp = dir.join(format!(".n{i:05}.tmp"));
        std::fs::write(
            &tmp,
            order_to(net.target(running + i), step, pings, None, false),
        )?;
        let final_path = dir.join(format!("n{i:05}"));
        std::fs::rename(&tmp, &final_path)?;
        let at = SystemTime::now().duration_since(UNIX_EPOCH)?.as_micros() as i64;
        written.insert(format!("new/n{i:05}"), at);
        std::thread::sleep(Duration::from_millis(5));
    }
    let started = |log: &str| log.matches("order started order=new/").count();
    wait(Duration::from_secs(60), || {
        started(&std::fs::read_to_string(&d.log).unwrap_or_default()) >= new
    });
    let log = std::fs::read_to_string(&d.log).unwrap_or_default();
    let mut lat: Vec<f64> = Vec::new();
    for line in log
        .lines()
        .filter(|l| l.contains("order started order=new/"))
    {
        let ts = line.split_whitespace().next().and_then(parse_ts);
        let id = line
            .split("order=")
            .nth(1)
            .and_then(|r| r.split_whitespace().next());
        if let (Some(ts), Some(id)) = (ts, id) {
            if let Some(at) = written.get(id) {
                lat.push((ts - at) as f64 / 1000.0);
            }
        }
    }
    lat.sort_by(f64::total_cmp);
    Ok(lat)
}

/// Percentiles over every order written: an order the daemon never
/// started counts as slower than any that it did (so a p99 with more than
/// 1 % of the orders unseen says "not picked up", never a fast figure).
fn print_pickup(lat: &[f64], new: usize, running: usize) {
    let unseen = new.saturating_sub(lat.len());
    let pct = |p: f64| -> String {
        if new == 0 {
            return "-".into();
        }
        let i = ((new as f64 - 1.0) * p).round() as usize;
        match lat.get(i) {
            Some(v) => format!("{v:.2} ms"),
            None => "not picked up within 60 s".into(),
        }
    };
    println!("--- pickup latency: {new} new orders while {running} run ---");
    println!(
        "orders picked up                 {:>10} of {new}",
        lat.len()
    );
    println!("orders not picked up in 60 s     {unseen:>10}");
    println!("p50                              {:>10}", pct(0.5));
    println!("p99                              {:>10}", pct(0.99));
    println!("max                              {:>10}", pct(1.0));
}

/// The `q` quantile of round start lateness between two stats snapshots,
/// as the upper bound of its histogram bucket ("> 5 s" beyond the last).
fn window_late_quantile(s0: &Value, s: &Value, q: f64) -> String {
    let counts = |v: &Value| -> Vec<f64> {
        v["round_start_late_buckets"]
            .as_array()
            .map(|a| a.iter().map(|x| x.as_f64().unwrap_or(0.0)).collect())
            .unwrap_or_default()
    };
    let bounds: Vec<f64> = s["round_start_late_bounds_s"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default();
    let (a, b) = (counts(s0), counts(s));
    let delta: Vec<f64> = b
        .iter()
        .enumerate()
        .map(|(i, x)| x - a.get(i).copied().unwrap_or(0.0))
        .collect();
    let total: f64 = delta.iter().sum();
    if total <= 0.0 {
        return "-".into();
    }
    let mut seen = 0.0;
    for (i, c) in delta.iter().enumerate() {
        seen += c;
        if seen >= q * total {
            return match bounds.get(i) {
                Some(le) => format!("<= {:.1} ms", le * 1000.0),
                None => format!("> {:.0} ms", bounds.last().copied().unwrap_or(0.0) * 1000.0),
            };
        }
    }
    "-".into()
}

fn writer(cli: &Cli, orders: usize, rounds: u32, threads: usize) -> anyhow::Result<()> {
    use pingmachine::basedir::BaseDir;
    use pingmachine::order::OrderId;
    use pingmachine::result::{RoundOutcome, Summary};
    use pingmachine::store::writer::Writers;
    use pingmachine::store::{Shape, StoreCmd};

    let root = tempbase(&cli.dir, "writer")?;
    if let Err(e) = room_for_rrds(&root, orders, 1 << 30) {
        std::fs::remove_dir_all(&root).ok();
        return Err(e);
    }
    let base = BaseDir::new(&root);
    base.create()?;
    let shape = Shape {
        step: 60,
        pings: 20,
        rrd: true,
    };
    let ids: Vec<OrderId> = (0..orders)
        .map(|i| OrderId::new(&format!("w/o{i:05}")))
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!(e))?;
    let summary = Summary::of(&RoundOutcome {
        rtts: (0..20)
            .map(|i| Some(Duration::from_micros(20_000 + i * 37)))
            .collect(),
    });
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as i64;
    let t0 = now / 60 * 60;

    // Prepare every order, as the daemon does at order start.
    let prepare_all = |store: &pingmachine::store::writer::StoreHandle| {
        for id in &ids {
            store.send(StoreCmd::Prepare {
                id: id.clone(),
                generation: 1,
                shape,
                rrd_start: t0 - 60,
            });
        }
    };

    // Create the files.
    let (store, writers) = Writers::start(&base, threads)?;
    let created = Instant::now();
    prepare_all(&store);
    writers.stop(None);
    let create_s = created.elapsed().as_secs_f64();
    // Flush the gigabytes just created, so that their write-back does not
    // run during the measurement: "warm" means cached and clean.
    nix::unistd::sync();

    // Then write rounds to the (now warm) files.
    let (store, writers) = Writers::start(&base, threads)?;
    prepare_all(&store);
    // Wait until the writers have prepared (checked) every file, so that
    // only round writes are timed.
    let prepared = wait(Duration::from_secs(600), || {
        store
            .stats()
            .prepared
            .load(std::sync::atomic::Ordering::Relaxed)
            >= orders as u64
    });
    if !prepared {
        bail!("the writers did not prepare {orders} orders within 10 minutes");
    }
    nix::unistd::sync();
    let started = Instant::now();
    // One round of every order at a time, each written before the next is
    // handed over (a newer round of an order would otherwise supersede its
    // unwritten last_result, and fewer files would be written than rounds).
    let last_results = || {
        store
            .stats()
            .last_results
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    for r in 1..=i64::from(rounds) {
        for id in &ids {
            store.send(StoreCmd::Round {
                id: id.clone(),
                generation: 1,
                shape,
                t: t0 + r * 60,
                summary: summary.clone(),
                queued: Instant::now(),
            });
        }
        let want = r as u64 * orders as u64;
        let deadline = Instant::now() + Duration::from_secs(600);
        while last_results() < want {
            if Instant::now() > deadline {
                bail!("round {r} was not written within 10 minutes");
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    let stats = store.stats();
    let updates = stats.rrd_updates.load(std::sync::atomic::Ordering::Relaxed);
    let errors = stats.errors.load(std::sync::atomic::Ordering::Relaxed);
    writers.stop(None);
    let secs = started.elapsed().as_secs_f64();
    println!("--- store writer: {orders} RRDs (step 60, 20 pings, ~2.1 MB each), {threads} writer threads ---");
    println!(
        "RRD files created                {:>10} in {:.1} s ({:.0}/s)",
        orders,
        create_s,
        orders as f64 / create_s
    );
    println!(
        "rounds written (RRD + last_result) {:>8} in {:.2} s",
        u64::from(rounds) * orders as u64,
        secs
    );
    println!(
        "writer throughput                {:>10.0} round writes/s (RRD updates written {updates}, errors {errors})",
        f64::from(rounds) * orders as f64 / secs
    );
    // librrd alone: the same updates straight to the warm files, one
    // thread per writer, without last_result.
    let values = pingmachine::store::rrd::update_values(&summary);
    let n_writes = u64::from(rounds) * orders as u64;
    let rrd_secs = timed_per_thread(&ids, threads, rounds, |r, id| {
        let path = id.under(&base.output).join("main.rrd");
        let _ =
            pingmachine::store::rrd::update_rrd(&path, t0 + (i64::from(rounds) + r) * 60, &values);
    });
    println!(
        "librrd updates alone             {:>10.0} updates/s ({n_writes} updates in {rrd_secs:.2} s)",
        n_writes as f64 / rrd_secs
    );
    // last_result alone, the same way.
    let lr_secs = timed_per_thread(&ids, threads, rounds, |r, id| {
        let text = pingmachine::store::last_result::format(t0 + r * 60, now, 60, 20, &summary);
        let _ = pingmachine::store::last_result::write_atomic(&id.under(&base.output), &text);
    });
    println!(
        "last_result writes alone         {:>10.0} writes/s ({n_writes} writes in {lr_secs:.2} s)",
        n_writes as f64 / lr_secs
    );
    std::fs::remove_dir_all(&root).ok();
    Ok(())
}

/// Syncs, then runs `write(round, id)` for rounds 1..=`rounds` over `ids`
/// split across `threads` threads; returns the seconds it took.
fn timed_per_thread<T: Sync>(
    ids: &[T],
    threads: usize,
    rounds: u32,
    write: impl Fn(i64, &T) + Sync,
) -> f64 {
    nix::unistd::sync();
    let started = Instant::now();
    std::thread::scope(|sc| {
        for part in ids.chunks(ids.len().div_ceil(threads.max(1)).max(1)) {
            let write = &write;
            sc.spawn(move || {
                for r in 1..=i64::from(rounds) {
                    for id in part {
                        write(r, id);
                    }
                }
            });
        }
    });
    started.elapsed().as_secs_f64()
}

/// `floor`: on loopback in this process; with `--net netns` in the
/// prober's namespace (this program again, as `floor-child`), with the
/// veth pair's kernel threads measured around it.
fn floor(targets: usize, rate: u32, seconds: u64, net: Net) -> anyhow::Result<()> {
    println!(
        "--- kernel floor: {rate} pings/s round-robin over {targets} targets for {seconds} s ({}) ---",
        match net {
            Net::Loopback => "loopback",
            Net::Netns => "network namespaces",
        }
    );
    match net {
        Net::Loopback => floor_measure(targets, rate, seconds, net),
        Net::Netns => {
            let testnet = netns::TestNet::create()?;
            let me = std::env::current_exe().context("cannot find this program")?;
            let napi0 = netns::napi_cpu_s();
            let status = testnet
                .command(&me)
                .arg("floor-child")
                .args(["--targets", &targets.to_string()])
                .args(["--rate", &rate.to_string()])
                .args(["--seconds", &seconds.to_string()])
                .status()
                .context("cannot start the floor in the prober's namespace")?;
            let napi = netns::napi_cpu_s() - napi0;
            if !status.success() {
                bail!("the floor's measurement failed ({status})");
            }
            if let Some(x) = netns::targets_out_discards() {
                println!("  dropped by the targets' kernel {x:>10} (replies it could not send: Ip6OutDiscards in their namespace)");
            }
            println!(
                "network kernel threads  {napi:.2} s (not the prober's: the veth pair's NAPI, over the whole run)"
            );
            Ok(())
        }
    }
}

/// Runs the floor here and prints its figures.
fn floor_measure(targets: usize, rate: u32, seconds: u64, net: Net) -> anyhow::Result<()> {
    let addrs: Vec<std::net::IpAddr> = (0..targets.max(1)).map(|i| net.target(i)).collect();
    let config = probes::icmp::IcmpConfig {
        // As the daemon opens its sockets (cmd/run.rs).
        send_quantum: Duration::from_millis(1),
        ..probes::icmp::IcmpConfig::default()
    };
    let r = probes::icmp::floor::run(
        &addrs,
        rate,
        Duration::from_secs(seconds),
        Duration::from_millis(500),
        &config,
    )
    .context("the floor's socket")?;
    let pct = |cpu: f64| 100.0 * cpu / r.seconds.max(1e-9);
    let per_ping = |cpu: f64| 1e6 * cpu / (r.sent.max(1) as f64);
    let lost = r.sent.saturating_sub(r.replies);
    println!(
        "pings sent           {:>10} ({:.0}/s; {rate}/s asked), send errors {}",
        r.sent,
        r.sent as f64 / r.seconds.max(1e-9),
        r.send_errors
    );
    println!(
        "read                 {:>10} error-queue entries (transmit stamps), {} replies ({lost} unanswered, {:.3} %), {} other packets, {} read errors",
        r.tx_stamps,
        r.replies,
        100.0 * lost as f64 / r.sent.max(1) as f64,
        r.others,
        r.recv_errors
    );
    for (name, cpu) in [
        ("sender", r.sender_cpu_s),
        ("receiver", r.receiver_cpu_s),
        ("both", r.sender_cpu_s + r.receiver_cpu_s),
    ] {
        println!(
            "CPU {name:<9}        {cpu:>8.2} s = {:.1} % of one core, {:.2} µs per ping",
            pct(cpu),
            per_ping(cpu)
        );
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Cmd::Wakeup { count } = &cli.cmd {
        return wakeup(*count);
    }
    if let Cmd::FloorChild {
        targets,
        rate,
        seconds,
    } = &cli.cmd
    {
        return floor_measure(*targets, *rate, *seconds, Net::Netns);
    }
    if !cli.bin.exists() {
        bail!(
            "{} not found (cargo build --release first, or pass --bin)",
            cli.bin.display()
        );
    }
    if !nix::unistd::geteuid().is_root() {
        let range =
            std::fs::read_to_string("/proc/sys/net/ipv4/ping_group_range").unwrap_or_default();
        bail!(
            "the benchmark runs the daemon with raw ICMP sockets and needs root (ping_group_range is {:?})",
            range.trim()
        );
    }
    match &cli.cmd {
        Cmd::Run {
            orders,
            step,
            pings,
            interval,
            steps,
            rrd,
            fping,
            fping_mode,
            pickup,
            warmup,
            net,
            drop_caches_every,
        } => run(
            &cli,
            Load {
                orders: *orders,
                step: *step,
                pings: *pings,
                interval: *interval,
                steps: *steps,
                rrd: *rrd,
                pickup: *pickup,
                warmup: *warmup,
                net: *net,
                drop_caches_every: *drop_caches_every,
            },
            fping.then_some(*fping_mode),
        ),
        Cmd::Web {
            orders,
            rrd_orders,
            clients,
            window,
        } => web(&cli, *orders, *rrd_orders, *clients, *window),
        Cmd::Scrape {
            orders,
            step,
            pings,
            steps,
            every,
        } => scrape(&cli, *orders, *step, *pings, *steps, *every),
        Cmd::Saturate {
            from,
            by,
            to,
            step,
            pings,
            interval,
            steps,
        } => saturate(
            &cli,
            (*from, *by, *to),
            Load {
                orders: 0,
                step: *step,
                pings: *pings,
                interval: Some(*interval),
                steps: *steps,
                rrd: false,
                pickup: 0,
                warmup: 0,
                net: Net::Loopback,
                drop_caches_every: 0,
            },
        ),
        Cmd::Pickup { running, new } => pickup(&cli, *running, *new),
        Cmd::Rrdcached {
            orders,
            step,
            pings,
            window,
            write_interval,
            drop_every,
        } => rrdcached::run(
            &cli,
            *orders,
            *step,
            *pings,
            *window,
            *write_interval,
            *drop_every,
        ),
        Cmd::Floor {
            targets,
            rate,
            seconds,
            net,
        } => floor(*targets, *rate, *seconds, *net),
        Cmd::Wakeup { .. } | Cmd::FloorChild { .. } => Ok(()),
        Cmd::Writer {
            orders,
            rounds,
            threads,
        } => writer(&cli, *orders, *rounds, *threads),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_distinct_loopback_addresses() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..200_000 {
            let t = target(i);
            assert!(
                t.is_loopback() && t.octets()[3] != 0 && t.octets()[3] != 255,
                "{t}"
            );
            assert!(seen.insert(t), "{t} twice");
        }
    }

    #[test]
    fn log_timestamps() {
        assert_eq!(parse_ts("1970-01-01T00:00:01.5Z"), Some(1_500_000));
        assert_eq!(
            parse_ts("2026-11-21T06:12:40.000001Z"),
            Some(1_795_241_560_000_001)
        );
    }
}
