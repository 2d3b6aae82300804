//! Measurement accuracy against the wire: the real `pingmachine` binary,
//! run inside a network namespace, measures test hosts whose delay,
//! jitter, loss and misbehaviour a user-space simulator (`testkit::impair`)
//! controls, while a packet capture on the prober's veth records every
//! request and answer with kernel timestamps. What the daemon stored in
//! `main.rrd` and `last_result` is compared with the wire, ping by ping and
//! round by round. The simulator's configured delays are not the truth (a
//! user-space responder on a busy 2-core machine is late by up to
//! milliseconds); they are only checked loosely, as "the simulator roughly
//! did its job". fping measures the same hosts in the same run and its
//! error against the wire is printed beside ours, with nothing asserted.
//! See docs/ACCURACY.md for the design and the figures.
//!
//! Needs root (network namespaces, raw and packet sockets); prints
//! "skipping ..." otherwise. The tests run one at a time, with nothing else
//! timing-sensitive alongside: their names start with `timing_`, which
//! scripts/test.sh runs after the rest of the suite with
//! `--test-threads=1` (and a lock here keeps them apart anyway):
//! `sudo cargo test --test it accuracy:: -- --nocapture --test-threads=1`.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::support::{rrd_fetch, rrd_lastupdate, Base, Daemon};
use testkit::impair::wire::{self, Echo, TcpConn, WirePacket};
use testkit::impair::{
    self, Fate, HostCfg, HttpCfg, Mode, Request, Sim, SimConfig, TcpDelayCfg, DUPLICATE_GAP,
};

/// The tests must not overlap: each wants the machine to itself (one of
/// them loads a core on purpose).
static SERIAL: Mutex<()> = Mutex::new(());

const STEP: i64 = 10;
/// ICMP pings per round of the loss, jitter and misbehaviour cases (at
/// step 10 the default-interval rule allows at most 4).
const PINGS: usize = 4;
/// ICMP pings per round of the delay cases, with an explicit interval:
/// (7 - 1) * 1000 + 3000 < 10000.
const DELAY_PINGS: usize = 7;
const DELAY_INTERVAL_MS: u32 = 1000;
/// httping requests per round, a second apart: (9 - 1) * 1 s fits the
/// step with the job's offset (< 1 s) to spare; 4 cases of 3 rounds make
/// 108 exchanges per phase, so the 99th percentile is not the largest.
const HTTP_PINGS: usize = 9;
const TCP_PINGS: usize = 4;
/// Rounds measured with the machine otherwise idle, then with one core busy.
const ROUNDS_PER_PHASE: usize = 3;
/// Generous bounds on waiting (never on the assertions).
const PHASE_TIMEOUT: Duration = Duration::from_secs(75);
/// fping samples per target per run.
const FPING_COUNT: usize = 10;
/// The daemon's reply timeout (the original's rule): a later reply is lost.
const REPLY_TIMEOUT: Duration = Duration::from_secs(3);

/// Bound on the median |daemon − wire| of every ICMP ping of the idle
/// phase, in µs.
const ICMP_IDLE_P50_US: f64 = 50.0;
/// Bounds on the 99th percentile and the largest |daemon − wire| of the
/// ICMP pings of each phase (idle and one core busy), in µs: the send time
/// is the kernel's transmit timestamp.
const ICMP_P99_US: f64 = 50.0;
const ICMP_MAX_US: f64 = 200.0;
/// The same for the tcp probe's connects: the daemon's packet tap reads
/// the very stamps the capture reads (SYN out, SYN-ACK in), so what is
/// left is rounding (0–2 µs measured).
const TCP_P99_US: f64 = 10.0;
const TCP_MAX_US: f64 = 20.0;
/// And for the httping probe's exchanges: the handshake from the tap plus
/// the data's transmit and receive stamps (`SO_TIMESTAMPING`).
const HTTP_P99_US: f64 = 50.0;
const HTTP_MAX_US: f64 = 200.0;
/// "The simulator roughly did its job": a round's wire median may exceed
/// the configured delay by this much (ms) before the simulator is blamed.
/// Its lower bound is exact: nothing answers before its delay.
const SIM_SLACK_MS: f64 = 10.0;
/// Clock-reading slack (ms) for "nothing answers before its delay".
const MIN_RTT_SLACK_MS: f64 = 0.005;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn now_f64() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

fn ms_of(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// What a case is, and so how the wire is read and the simulator checked.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    /// ICMP answered after `ms` (0: the baseline).
    Delay { ms: f64 },
    /// ICMP answered after `ms ± jitter`.
    Jitter { ms: f64, jitter: f64 },
    /// ICMP after `ms`, some requests dropped.
    Loss { ms: f64 },
    /// ICMP answered too late, with a foreign identifier or an error:
    /// every ping lost.
    AllLost,
    /// ICMP answered twice, the first after `ms`.
    Duplicate { ms: f64 },
    /// TCP connect: SYN-ACK after `ms` (0: a kernel listener).
    Connect { ms: f64 },
    /// HTTP over a new connection: response `ms` after the request.
    Http { ms: f64 },
}

impl Expect {
    fn is_icmp(self) -> bool {
        !matches!(self, Expect::Connect { .. } | Expect::Http { .. })
    }

    /// The least RTT the simulator can produce (ms), if it answers.
    fn floor_ms(self) -> Option<f64> {
        match self {
            Expect::Delay { ms }
            | Expect::Loss { ms }
            | Expect::Duplicate { ms }
            | Expect::Connect { ms }
            | Expect::Http { ms } => Some(ms),
            Expect::Jitter { ms, jitter } => Some(ms - jitter),
            Expect::AllLost => None,
        }
    }

    /// The most a round's wire median may be for the simulator to have
    /// "roughly done its job" (ms).
    fn ceiling_ms(self) -> Option<f64> {
        match self {
            Expect::Jitter { ms, jitter } => Some(ms + jitter + SIM_SLACK_MS),
            Expect::AllLost => None,
            e => e.floor_ms().map(|f| f + SIM_SLACK_MS),
        }
    }
}

#[derive(Clone, Debug)]
struct Case {
    id: &'static str,
    target: String,
    configured: String,
    pings: usize,
    /// Explicit fping `interval` (ms), if any.
    interval_ms: Option<u32>,
    expect: Expect,
    /// The simulated address.
    addr: IpAddr,
    /// Measured by fping too.
    fping: bool,
    /// Probed by the second daemon, on unprivileged ICMP datagram sockets.
    datagram: bool,
}

/// `rrdtool lastupdate` values per (order, round time).
type LastUpdates = BTreeMap<(&'static str, i64), Vec<Option<f64>>>;

/// One round as read back from `main.rrd`.
#[derive(Clone, Debug)]
struct Round {
    t: i64,
    loss: usize,
    median: Option<f64>,
    /// ping1..pingN in seconds, `None` = unknown.
    pings: Vec<Option<f64>>,
}

impl Round {
    /// The answered pings in ms, sorted (as the RRD stores them).
    fn answered_ms(&self) -> Vec<f64> {
        self.pings.iter().flatten().map(|s| s * 1000.0).collect()
    }
}

/// The median by the RRD rule: `sorted[floor(n/2)]`.
fn median(v: &[f64]) -> Option<f64> {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s.get(s.len() / 2).copied()
}

/// Nearest-rank percentile `p` (0..=1) of `v`.
fn percentile(v: &[f64], p: f64) -> Option<f64> {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return None;
    }
    let rank = ((p * s.len() as f64).ceil() as usize).clamp(1, s.len());
    Some(s[rank - 1])
}

/// p50, p99 and max of |errors| (µs), formatted.
fn spread(errs_us: &[f64]) -> String {
    let abs: Vec<f64> = errs_us.iter().map(|e| e.abs()).collect();
    match (
        percentile(&abs, 0.5),
        percentile(&abs, 0.99),
        percentile(&abs, 1.0),
    ) {
        (Some(a), Some(b), Some(c)) => format!("{a:.0} / {b:.0} / {c:.0}"),
        _ => "–".into(),
    }
}

fn median_bound_ms(wire_ms: f64) -> f64 {
    (0.01 * wire_ms).max(0.3)
}

fn fping_order(host: &str, pings: usize, interval_ms: Option<u32>) -> String {
    let interval = interval_ms.map_or(String::new(), |i| format!("  interval: {i}\n"));
    format!("user: accuracy\ntask: t\nstep: {STEP}\npings: {pings}\nprobe: fping\nfping:\n  host: '{host}'\n{interval}")
}

/// The simulator's configuration and the cases it serves.
fn setup() -> (SimConfig, Vec<Case>) {
    let mut hosts = Vec::new();
    let mut cases = Vec::new();
    let mut icmp =
        |id: &'static str, h: HostCfg, configured: String, expect: Expect, fping: bool| {
            let delay_case = matches!(expect, Expect::Delay { .. } | Expect::Duplicate { .. });
            cases.push(Case {
                id,
                target: h.addr.to_string(),
                configured,
                pings: if delay_case { DELAY_PINGS } else { PINGS },
                interval_ms: delay_case.then_some(DELAY_INTERVAL_MS),
                expect,
                addr: h.addr,
                fping,
                datagram: id.starts_with("dgram/"),
            });
            hosts.push(h);
        };
    for (id, addr, ms) in [
        ("v4/delay0", "198.18.0.10", 0.0),
        ("v4/delay1", "198.18.0.11", 1.0),
        ("v4/delay20", "198.18.0.12", 20.0),
        ("v4/delay100", "198.18.0.13", 100.0),
        ("v4/delay500", "198.18.0.14", 500.0),
        ("v6/delay0", "2001:db8::12", 0.0),
        ("v6/delay1", "2001:db8::11", 1.0),
        ("v6/delay20", "2001:db8::10", 20.0),
    ] {
        icmp(
            id,
            HostCfg::delay(ip(addr), ms),
            format!("delay {ms} ms"),
            Expect::Delay { ms },
            true,
        );
    }
    // The same on unprivileged ICMP datagram ("ping") sockets, which a
    // second daemon uses (--icmp-socket datagram).
    for (id, addr, ms) in [
        ("dgram/v4/delay20", "198.18.0.25", 20.0),
        ("dgram/v6/delay1", "2001:db8::16", 1.0),
    ] {
        icmp(
            id,
            HostCfg::delay(ip(addr), ms),
            format!("delay {ms} ms, datagram socket"),
            Expect::Delay { ms },
            false,
        );
    }
    let h = |addr: &str, delay_ms: f64, jitter_ms: f64, loss: f64, mode: Mode| HostCfg {
        addr: ip(addr),
        delay_ms,
        jitter_ms,
        loss,
        mode,
        reply_ttl: None,
    };
    icmp(
        "v4/jitter",
        h("198.18.0.15", 50.0, 10.0, 0.0, Mode::Normal),
        "delay 50 ± 10 ms".into(),
        Expect::Jitter {
            ms: 50.0,
            jitter: 10.0,
        },
        false,
    );
    icmp(
        "v4/loss10",
        h("198.18.0.16", 2.0, 0.0, 0.10, Mode::Normal),
        "delay 2 ms, loss 10 %".into(),
        Expect::Loss { ms: 2.0 },
        false,
    );
    icmp(
        "v4/loss50",
        h("198.18.0.17", 2.0, 0.0, 0.50, Mode::Normal),
        "delay 2 ms, loss 50 %".into(),
        Expect::Loss { ms: 2.0 },
        false,
    );
    icmp(
        "v4/late",
        h("198.18.0.18", 0.0, 0.0, 0.0, Mode::Late),
        "reply after 3.5 s".into(),
        Expect::AllLost,
        false,
    );
    icmp(
        "v4/duplicate",
        h("198.18.0.19", 5.0, 0.0, 0.0, Mode::Duplicate),
        format!("delay 5 ms, duplicate +{} ms", DUPLICATE_GAP.as_millis()),
        Expect::Duplicate { ms: 5.0 },
        false,
    );
    icmp(
        "v4/foreign-id",
        h("198.18.0.20", 5.0, 0.0, 0.0, Mode::ForeignId),
        "reply with foreign identifier".into(),
        Expect::AllLost,
        false,
    );
    icmp(
        "v4/unreachable",
        h("198.18.0.21", 5.0, 0.0, 0.0, Mode::Unreachable),
        "ICMP host unreachable".into(),
        Expect::AllLost,
        false,
    );
    icmp(
        "v6/loss50",
        h("2001:db8::13", 2.0, 0.0, 0.50, Mode::Normal),
        "delay 2 ms, loss 50 %".into(),
        Expect::Loss { ms: 2.0 },
        false,
    );
    icmp(
        "v6/foreign-id",
        h("2001:db8::14", 5.0, 0.0, 0.0, Mode::ForeignId),
        "reply with foreign identifier".into(),
        Expect::AllLost,
        false,
    );
    icmp(
        "v6/unreachable",
        h("2001:db8::15", 5.0, 0.0, 0.0, Mode::Unreachable),
        "ICMPv6 address unreachable".into(),
        Expect::AllLost,
        false,
    );
    let http_delayed: SocketAddr = "198.18.0.22:8080".parse().unwrap();
    let http_base: SocketAddr = "198.18.0.24:8080".parse().unwrap();
    let http6_delayed: SocketAddr = "[2001:db8::22]:8080".parse().unwrap();
    let http6_base: SocketAddr = "[2001:db8::24]:8080".parse().unwrap();
    let tcp_accept: SocketAddr = "198.18.0.23:8081".parse().unwrap();
    let tcp_delay = TcpDelayCfg {
        addr: "198.18.0.30:8082".parse().unwrap(),
        delay_ms: 30.0,
    };
    let other = |id, target: String, configured: &str, pings, expect, addr| Case {
        id,
        target,
        configured: configured.into(),
        pings,
        interval_ms: None,
        expect,
        addr,
        fping: false,
        datagram: false,
    };
    cases.push(other(
        "http/delay50",
        format!("http://{http_delayed}/"),
        "response after 50 ms",
        HTTP_PINGS,
        Expect::Http { ms: 50.0 },
        http_delayed.ip(),
    ));
    cases.push(other(
        "http/delay0",
        format!("http://{http_base}/"),
        "response at once",
        HTTP_PINGS,
        Expect::Http { ms: 0.0 },
        http_base.ip(),
    ));
    cases.push(other(
        "http6/delay50",
        format!("http://{http6_delayed}/"),
        "response after 50 ms",
        HTTP_PINGS,
        Expect::Http { ms: 50.0 },
        http6_delayed.ip(),
    ));
    cases.push(other(
        "http6/delay0",
        format!("http://{http6_base}/"),
        "response at once",
        HTTP_PINGS,
        Expect::Http { ms: 0.0 },
        http6_base.ip(),
    ));
    cases.push(other(
        "tcp/kernel",
        tcp_accept.to_string(),
        "kernel listener",
        TCP_PINGS,
        Expect::Connect { ms: 0.0 },
        tcp_accept.ip(),
    ));
    cases.push(other(
        "tcp/delay30",
        tcp_delay.addr.to_string(),
        "SYN-ACK after 30 ms",
        TCP_PINGS,
        Expect::Connect { ms: 30.0 },
        IpAddr::V4(*tcp_delay.addr.ip()),
    ));
    let cfg = SimConfig {
        hosts,
        http: vec![
            HttpCfg {
                addr: http_delayed,
                delay_ms: 50.0,
            },
            HttpCfg {
                addr: http_base,
                delay_ms: 0.0,
            },
            HttpCfg {
                addr: http6_delayed,
                delay_ms: 50.0,
            },
            HttpCfg {
                addr: http6_base,
                delay_ms: 0.0,
            },
        ],
        tcp_accept: vec![tcp_accept],
        tcp_delay: vec![tcp_delay],
        seed: 20_261_121,
        log_file: None,
        max_lifetime: Some(Duration::from_secs(600)),
    };
    (cfg, cases)
}

fn order_yaml(c: &Case) -> String {
    let head = |pings| format!("user: accuracy\ntask: t\nstep: {STEP}\npings: {pings}\n");
    match c.expect {
        Expect::Http { .. } => format!(
            "{}probe: httping\nhttping:\n  url: '{}'\n  interval: 1\n",
            head(c.pings),
            c.target
        ),
        Expect::Connect { .. } => {
            let sa: SocketAddr = c.target.parse().unwrap();
            format!(
                "{}probe: tcp\ntcp:\n  host: '{}'\n  port: {}\n  interval: 1000\n",
                head(c.pings),
                sa.ip(),
                sa.port()
            )
        }
        _ => fping_order(&c.target, c.pings, c.interval_ms),
    }
}

/// A CPU burner: one thread spinning until stopped or `limit` passed.
struct Burner {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<u64>>,
}

impl Burner {
    fn start(limit: Duration) -> Burner {
        let stop = Arc::new(AtomicBool::new(false));
        let s = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let end = Instant::now() + limit;
            let mut x: u64 = 1;
            while !s.load(Ordering::Relaxed) && Instant::now() < end {
                for i in 0..10_000u64 {
                    x = std::hint::black_box(
                        x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(i),
                    );
                }
            }
            x
        });
        Burner {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Burner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// fping's `-C` summary: target → one entry per ping (ms), `None` when lost.
type FpingSummary = BTreeMap<String, Vec<Option<f64>>>;

/// One fping run: when it ran and what it printed.
struct FpingRun {
    from: SystemTime,
    to: SystemTime,
    summary: FpingSummary,
}

/// Runs `fping ARGS TARGETS` in the prober namespace and parses its `-C`
/// summary (fping prints it on stderr: "ADDR : 1.23 4.56 -"). fping is a
/// third-party tool and only an anchor here: a run without a complete
/// summary (seen once in about 15 runs, cause unknown) is reported and
/// retried once, and then given up on (`None`) without failing anything.
fn fping_c(sim: &Sim, args: &[&str], targets: &[String]) -> (Option<FpingRun>, String) {
    let mut failures = Vec::new();
    for attempt in 1..=2 {
        let from = SystemTime::now();
        let mut argv = vec!["fping"];
        argv.extend_from_slice(args);
        argv.extend(targets.iter().map(String::as_str));
        let out = match sim.prober_exec(&argv, Duration::from_secs(60)) {
            Ok(o) => o,
            Err(e) => {
                failures.push(format!("attempt {attempt}: cannot run fping: {e}"));
                continue;
            }
        };
        let to = SystemTime::now();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let summary: FpingSummary = stderr
            .lines()
            .filter_map(|l| l.split_once(" : "))
            .filter(|(a, _)| targets.iter().any(|t| t == a.trim()))
            .map(|(a, v)| {
                (
                    a.trim().to_owned(),
                    v.split_whitespace().map(|x| x.parse().ok()).collect(),
                )
            })
            .collect();
        let text = format!(
            "fping exit {:?}; stdout:\n{stdout}\nstderr:\n{stderr}",
            out.status
        );
        if targets.iter().all(|t| summary.contains_key(t)) {
            if !failures.is_empty() {
                println!("fping retried after: {}", failures.join("\n"));
            }
            return (Some(FpingRun { from, to, summary }), text);
        }
        failures.push(format!("attempt {attempt}: {text}"));
    }
    let msg = format!(
        "fping gave no complete -C summary twice (reported, not a failure):\n{}",
        failures.join("\n")
    );
    println!("{msg}");
    (None, msg)
}

/// `fping -C N -q -p 1000 -i 1 -t 3000 -b 40 TARGETS` in the prober
/// namespace.
fn run_fping(sim: &Sim, targets: &[String]) -> Option<FpingRun> {
    let count = FPING_COUNT.to_string();
    let args = [
        "-C",
        &count,
        "-q",
        "-p",
        "1000",
        "-i",
        "1",
        "-t",
        "3000",
        "-b",
        FPING_DATA_BYTES,
    ];
    fping_c(sim, &args, targets).0
}

/// Data bytes of fping's echo requests in these tests (`-b`): fewer than
/// the daemon's (fping's default, 56), so that the capture tells them apart.
const FPING_DATA_BYTES: &str = "40";
/// ICMP message size of those requests (8 + 40 bytes).
const FPING_ICMP_SIZE: usize = 48;

/// fping's error against the wire, per ping (µs, fping − wire): its
/// requests to `target` during the run, in send order, paired with its
/// `-C` values in the same order.
fn fping_errors(run: &FpingRun, echoes: &[Echo], target: &str) -> Vec<f64> {
    let Some(values) = run.summary.get(target) else {
        return Vec::new();
    };
    let addr = ip(target);
    let sent: Vec<&Echo> = echoes
        .iter()
        .filter(|e| e.dst == addr && e.size == FPING_ICMP_SIZE)
        .filter(|e| e.sent >= run.from && e.sent <= run.to)
        .collect();
    values
        .iter()
        .zip(sent)
        .filter_map(|(v, e)| {
            let wire = e.rtt_within(REPLY_TIMEOUT)?;
            Some((v.as_ref()? - ms_of(wire)) * 1000.0)
        })
        .collect()
}

/// Rounds recorded in `main.rrd` (rows with a known `loss`).
fn read_rounds(base: &Base, id: &str, pings: usize, from: i64, to: i64) -> Vec<Round> {
    let rows = rrd_fetch(
        &base.output(id).join("main.rrd"),
        "AVERAGE",
        STEP as u32,
        from,
        to,
    );
    rows.into_iter()
        .filter_map(|(t, v)| {
            assert_eq!(v.len(), 2 + pings, "{id}: data sources in row {t}");
            let loss = v[0]?;
            assert!(
                (loss - loss.round()).abs() < 1e-9,
                "{id}: loss {loss} at {t} not an integer"
            );
            Some(Round {
                t,
                loss: loss.round() as usize,
                median: v[1],
                pings: v[2..].to_vec(),
            })
        })
        .collect()
}

/// The RRD rule: floor(loss/2) unknowns, the sorted RTTs, the remaining
/// unknowns; median = sorted[floor(n/2)].
fn check_rrd_rule(id: &str, r: &Round, fail: &mut Vec<String>) {
    let n = r.pings.len();
    let answered = n.saturating_sub(r.loss);
    let lead = r.loss / 2;
    let expect_known: Vec<bool> = (0..n).map(|i| i >= lead && i < lead + answered).collect();
    let known: Vec<bool> = r.pings.iter().map(Option::is_some).collect();
    if known != expect_known {
        fail.push(format!(
            "{id} @{}: loss {} but pings {:?} (expected known at {:?})",
            r.t, r.loss, r.pings, expect_known
        ));
        return;
    }
    let a = r.answered_ms();
    if a.windows(2).any(|w| w[0] > w[1]) {
        fail.push(format!("{id} @{}: pings not sorted: {a:?}", r.t));
    }
    let m = a.get(a.len() / 2).copied();
    let same = match (m, r.median.map(|x| x * 1000.0)) {
        (None, None) => true,
        (Some(x), Some(y)) => (x - y).abs() <= 1e-6 + 1e-9 * x.abs(),
        _ => false,
    };
    if !same {
        fail.push(format!(
            "{id} @{}: median {:?} is not sorted[n/2] of {a:?}",
            r.t, r.median
        ));
    }
}

/// What the wire shows of one round of one case: every request the
/// daemon sent in the round, and each one's round trip if it was answered
/// in time (`None`: lost on the wire). A round recorded at RRD time `t`
/// sent its pings in `[t + step, t + 2 step)` (the RRD time is the
/// step before the round's start).
fn wire_round(c: &Case, t: i64, echoes: &[Echo], conns: &[TcpConn]) -> Vec<Option<f64>> {
    let (lo, hi) = ((t + STEP) as f64, (t + 2 * STEP) as f64);
    let inside = |at: SystemTime| {
        let x = unix(at);
        x >= lo && x < hi
    };
    match c.expect {
        Expect::Connect { .. } | Expect::Http { .. } => {
            let dst: SocketAddr = match c.expect {
                Expect::Http { .. } => {
                    let hostport = c.target.trim_start_matches("http://").trim_end_matches('/');
                    hostport.parse().unwrap()
                }
                _ => c.target.parse().unwrap(),
            };
            conns
                .iter()
                .filter(|k| k.dst == dst && inside(k.syn))
                .map(|k| match c.expect {
                    Expect::Http { .. } => k.network_rtt().map(ms_of),
                    _ => k.connect_rtt().map(ms_of),
                })
                .collect()
        }
        _ => echoes
            .iter()
            .filter(|e| e.dst == c.addr && e.size != FPING_ICMP_SIZE && inside(e.sent))
            .map(|e| e.rtt_within(REPLY_TIMEOUT).map(ms_of))
            .collect(),
    }
}

/// The simulator's requests for `addr` that arrived in the round recorded
/// at `t` (fping's are told apart by their size).
fn sim_requests_in_round(reqs: &[Request], addr: IpAddr, t: i64) -> Vec<&Request> {
    let (lo, hi) = ((t + STEP) as f64, (t + 2 * STEP) as f64);
    reqs.iter()
        .filter(|r| r.addr == addr && r.size != FPING_ICMP_SIZE)
        .filter(|r| {
            let at = unix(r.at);
            at >= lo && at < hi
        })
        .collect()
}

#[derive(Default)]
struct Row {
    case: String,
    /// An ICMP case (else tcp or http).
    icmp: bool,
    /// A tcp case.
    tcp: bool,
    configured: String,
    phase: &'static str,
    rounds: usize,
    loss: usize,
    wire_loss: usize,
    wire_median: Option<f64>,
    median: Option<f64>,
    /// Largest |daemon − wire| of a round median (µs).
    median_diff_us: Option<f64>,
    /// Per-ping daemon − wire (µs).
    errors_us: Vec<f64>,
    /// Per-ping fping − wire (µs).
    fping_errors_us: Vec<f64>,
    bound: String,
    ok: bool,
}

fn fmt_ms(v: Option<f64>) -> String {
    v.map_or("–".into(), |x| format!("{x:.3}"))
}

fn table(rows: &[Row]) -> String {
    let mut s = String::new();
    s.push_str("| case | configured | phase | rounds | loss (daemon / wire) | wire median ms | daemon median ms | round median Δ max µs | daemon − wire µs, signed median | \\|daemon − wire\\| µs p50 / p99 / max | \\|fping − wire\\| µs p50 / p99 / max | bound | ok |\n");
    s.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} / {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.case,
            r.configured,
            r.phase,
            r.rounds,
            r.loss,
            r.wire_loss,
            fmt_ms(r.wire_median),
            fmt_ms(r.median),
            r.median_diff_us.map_or("–".into(), |d| format!("{d:.0}")),
            median(&r.errors_us).map_or("–".into(), |m| format!("{m:+.1}")),
            spread(&r.errors_us),
            spread(&r.fping_errors_us),
            r.bound,
            if r.ok { "yes" } else { "**NO**" },
        );
    }
    s
}

/// Checks the rounds of one case in one phase against the wire; pushes
/// failures, returns the table row.
fn check_case(
    c: &Case,
    phase: &'static str,
    rounds: &[Round],
    echoes: &[Echo],
    conns: &[TcpConn],
    reqs: &[Request],
    fail: &mut Vec<String>,
) -> Row {
    let before = fail.len();
    let id = format!("{} [{phase}]", c.id);
    let mut row = Row {
        case: c.id.into(),
        icmp: c.expect.is_icmp(),
        tcp: matches!(c.expect, Expect::Connect { .. }),
        configured: c.configured.clone(),
        phase,
        rounds: rounds.len(),
        loss: rounds.iter().map(|r| r.loss).sum(),
        ..Row::default()
    };
    row.bound = if c.expect == Expect::AllLost {
        "loss = requests, all lost on the wire".into()
    } else {
        "loss = wire; round median ± max(0.3 ms, 1 %) of the wire's".into()
    };
    if rounds.len() < ROUNDS_PER_PHASE {
        fail.push(format!(
            "{id}: only {} rounds recorded, wanted {ROUNDS_PER_PHASE}",
            rounds.len()
        ));
    }
    let mut all_daemon = Vec::new();
    let mut all_wire = Vec::new();
    for r in rounds {
        check_rrd_rule(&id, r, fail);
        let wire = wire_round(c, r.t, echoes, conns);
        // The daemon sent exactly the round's pings.
        if wire.len() != c.pings {
            fail.push(format!(
                "{id} @{}: the wire shows {} requests in the round, expected {}",
                r.t,
                wire.len(),
                c.pings
            ));
            continue;
        }
        let mut answered: Vec<f64> = wire.iter().flatten().copied().collect();
        answered.sort_by(f64::total_cmp);
        let wire_lost = c.pings - answered.len();
        row.wire_loss += wire_lost;
        // Loss is exact: the requests without an answer in time.
        if r.loss != wire_lost {
            fail.push(format!(
                "{id} @{}: daemon recorded loss {}, the wire shows {wire_lost} of {} requests unanswered in time (wire RTTs {wire:.3?} ms)",
                r.t, r.loss, c.pings
            ));
            continue;
        }
        // Ping by ping: the RRD keeps the RTTs sorted, so pair them with
        // the wire's sorted RTTs (if every ping is within e of its wire
        // RTT, so is every sorted pair, and conversely).
        let daemon = r.answered_ms();
        for (d, w) in daemon.iter().zip(&answered) {
            row.errors_us.push((d - w) * 1000.0);
        }
        // The round median, by the RRD rule, against the wire's.
        if let (Some(dm), Some(wm)) = (r.median.map(|m| m * 1000.0), median(&answered)) {
            let diff = (dm - wm).abs();
            row.median_diff_us = Some(row.median_diff_us.unwrap_or(0.0).max(diff * 1000.0));
            let b = median_bound_ms(wm);
            let ok = diff <= b;
            if !ok {
                fail.push(format!(
                    "{id} @{}: daemon median {dm:.3} ms vs wire median {wm:.3} ms differ by more than {b:.3} ms (daemon {daemon:.3?}, wire {answered:.3?})",
                    r.t
                ));
            }
        }
        all_daemon.extend(daemon);
        all_wire.extend(answered.iter().copied());

        // The simulator, loosely: nothing before its delay, round medians
        // roughly at it, drops and misbehaviour as configured.
        if let Some(floor) = c.expect.floor_ms() {
            if let Some(w) = answered.first().filter(|w| **w < floor - MIN_RTT_SLACK_MS) {
                fail.push(format!(
                    "{id} @{}: simulator: wire RTT {w:.3} ms below the {floor} ms it is set to",
                    r.t
                ));
            }
        }
        if let (Some(ceil), Some(wm)) = (c.expect.ceiling_ms(), median(&answered)) {
            if wm > ceil {
                fail.push(format!(
                    "{id} @{}: simulator: wire median {wm:.3} ms, more than {SIM_SLACK_MS} ms late (it is set to {})",
                    r.t, c.configured
                ));
            }
        }
        let seen = sim_requests_in_round(reqs, c.addr, r.t);
        match c.expect {
            Expect::Loss { .. } => {
                let dropped = seen.iter().filter(|q| q.fate == Fate::Dropped).count();
                if dropped != wire_lost {
                    fail.push(format!(
                        "{id} @{}: simulator dropped {dropped} requests, the wire shows {wire_lost} unanswered",
                        r.t
                    ));
                }
            }
            Expect::AllLost => {
                let answered_by_sim = seen.iter().filter(|q| q.fate != Fate::Dropped).count();
                if answered_by_sim != c.pings || wire_lost != c.pings {
                    fail.push(format!(
                        "{id} @{}: simulator answered {answered_by_sim} of {} requests (late, foreign identifier or error), the wire shows {} answered in time",
                        r.t,
                        c.pings,
                        c.pings - wire_lost
                    ));
                }
                if r.median.is_some() {
                    fail.push(format!("{id} @{}: a median with every ping lost", r.t));
                }
            }
            Expect::Duplicate { .. } => {
                let dups = seen
                    .iter()
                    .filter(|q| matches!(q.fate, Fate::Duplicated { .. }))
                    .count();
                if dups != c.pings {
                    fail.push(format!(
                        "{id} @{}: simulator duplicated {dups} replies, expected {}",
                        r.t, c.pings
                    ));
                }
            }
            _ => {}
        }
    }
    // Jitter: the simulator spread its answers (pooled over the phase:
    // 12 uniform draws over ±10 ms span at least 5 ms but for a chance of
    // about 3e-6).
    if let Expect::Jitter { jitter, .. } = c.expect {
        let (lo, hi) = (
            all_wire.iter().copied().reduce(f64::min),
            all_wire.iter().copied().reduce(f64::max),
        );
        if let (Some(lo), Some(hi)) = (lo, hi) {
            if hi - lo < jitter / 2.0 {
                fail.push(format!(
                    "{id}: simulator: wire RTTs span only {:.3} ms with ±{jitter} ms jitter",
                    hi - lo
                ));
            }
        }
    }
    // A case whose pings are answered must have had pings compared with
    // the wire, or this phase tested nothing of it.
    if c.expect != Expect::AllLost && row.errors_us.is_empty() {
        fail.push(format!(
            "{id}: no ping of {} rounds was compared with the wire",
            rounds.len()
        ));
    }
    row.wire_median = median(&all_wire);
    row.median = median(&all_daemon);
    row.ok = fail.len() == before;
    row
}

/// The whole accuracy run: one simulator, a capture of the prober's veth,
/// one daemon with an order per case, rounds with the machine idle and
/// then with one core busy.
#[test]
fn timing_daemon_measures_what_the_wire_shows() {
    if !testkit::require::netns("timing_daemon_measures_what_the_wire_shows") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let started = Instant::now();
    let (cfg, cases) = setup();
    let sim = Sim::start(cfg).expect("start the simulator");
    let capture = sim.capture().expect("capture the prober's veth");
    let raw_base = Base::new();
    let dgram_base = Base::new();
    let base_of = |c: &Case| if c.datagram { &dgram_base } else { &raw_base };
    for c in &cases {
        base_of(c).write_order(c.id, &order_yaml(c));
    }
    let mut daemon = Daemon::start_in_netns(&raw_base, sim.prober_ns(), &["--icmp-socket", "raw"]);
    // Unprivileged ICMP sockets for every group, in the prober namespace only.
    let out = sim
        .prober_exec(
            &[
                "sysctl",
                "-q",
                "-w",
                "net.ipv4.ping_group_range=0 2147483647",
            ],
            Duration::from_secs(10),
        )
        .expect("sysctl in the prober namespace");
    assert!(out.status.success(), "ping_group_range: {out:?}");
    let mut dgram_daemon =
        Daemon::start_in_netns(&dgram_base, sim.prober_ns(), &["--icmp-socket", "datagram"]);
    let fping_targets: Vec<String> = cases
        .iter()
        .filter(|c| c.fping)
        .map(|c| c.target.clone())
        .collect();

    // Round times seen in last_result, per order.
    let mut seen: BTreeMap<&'static str, BTreeSet<i64>> = BTreeMap::new();
    // `rrdtool lastupdate` of every round, read as soon as the round's
    // last_result appears (the daemon writes the RRD first). A round counts
    // only once it is in the RRD.
    let mut lastupdates: LastUpdates = BTreeMap::new();
    // Waits (bounded) until every order has ROUNDS_PER_PHASE rounds in its
    // RRD that started at or after `since` (unix seconds).
    let wait_rounds = |seen: &mut BTreeMap<&'static str, BTreeSet<i64>>,
                       lastupdates: &mut LastUpdates,
                       since: f64,
                       phase: &str| {
        let deadline = Instant::now() + PHASE_TIMEOUT;
        loop {
            for c in &cases {
                let base = base_of(c);
                if let Some(r) = base.last_result(c.id) {
                    let t = r.int("time");
                    if seen.entry(c.id).or_default().insert(t) {
                        let (lt, vals) = rrd_lastupdate(&base.output(c.id).join("main.rrd"));
                        if lt == t {
                            lastupdates
                                .insert((c.id, t), vals.into_iter().map(|(_, v)| v).collect());
                        }
                    }
                }
            }
            let done = cases.iter().all(|c| {
                lastupdates
                    .keys()
                    .filter(|(id, t)| *id == c.id && (t + STEP) as f64 >= since)
                    .count()
                    >= ROUNDS_PER_PHASE
            });
            if done {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{phase} phase: not every order completed {ROUNDS_PER_PHASE} rounds in {PHASE_TIMEOUT:?}: {seen:?}\nlog:\n{}\ndatagram daemon's log:\n{}",
                daemon.log_text(),
                dgram_daemon.log_text()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };

    // Phase 1: idle. fping measures the same hosts meanwhile.
    let idle_fping = std::thread::scope(|s| {
        let f = s.spawn(|| run_fping(&sim, &fping_targets));
        wait_rounds(&mut seen, &mut lastupdates, 0.0, "idle");
        f.join().unwrap()
    });

    // Phase 2: one core busy (a bounded burner thread), fping again.
    let load_start = now_f64();
    let burner = Burner::start(PHASE_TIMEOUT + Duration::from_secs(30));
    let load_fping = std::thread::scope(|s| {
        let f = s.spawn(|| run_fping(&sim, &fping_targets));
        wait_rounds(&mut seen, &mut lastupdates, load_start, "load");
        f.join().unwrap()
    });
    drop(burner);
    let status = daemon.stop();
    assert!(status.success(), "daemon exit {status:?}");
    let status = dgram_daemon.stop();
    assert!(status.success(), "datagram daemon exit {status:?}");
    // Both daemons took every send time from the kernel.
    for (what, base) in [("raw", &raw_base), ("datagram", &dgram_base)] {
        let t = std::fs::read_to_string(base.path().join(".stats.json")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&t).unwrap();
        let icmp = &v["icmp"];
        assert!(
            icmp["tx_stamped"].as_u64() > Some(0) && icmp["tx_fallbacks"].as_u64() == Some(0),
            "{what} sockets: kernel transmit timestamps in use: {icmp}"
        );
    }
    // Every handshake of the tcp and httping pings was timed by the
    // packet tap (SYN and SYN-ACK stamped at the device).
    {
        let t = std::fs::read_to_string(raw_base.path().join(".stats.json")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&t).unwrap();
        let tcp = &v["tcp"];
        assert!(
            tcp["handshakes_tapped"].as_u64() > Some(0)
                && tcp["handshakes_tcp_info"].as_u64() == Some(0)
                && tcp["handshakes_elapsed"].as_u64() == Some(0),
            "handshakes timed by the packet tap: {tcp}"
        );
    }
    // The HTTP servers' packets came through the simulator's relay, as
    // from another machine (see the simulator self-test).
    let relay = sim.stats().relay;
    assert!(
        relay.relayed > 0 && relay.errors == 0,
        "the relay carried the HTTP servers' packets: {relay:?}"
    );
    // Replies to the last rounds are all in (the daemon stopped after
    // their last_result appeared); give the capture thread a moment.
    std::thread::sleep(Duration::from_millis(300));
    let packets: Vec<WirePacket> = capture.packets();
    let (unstamped, overflow) = capture.problems();
    drop(capture);
    assert_eq!(
        (unstamped, overflow),
        (0, 0),
        "capture: packets without a kernel timestamp, packets not kept"
    );
    let echoes = wire::echoes(&packets);
    let conns = wire::tcp_connections(&packets);

    // Read everything back and check.
    let reqs = sim.requests();
    let stats = sim.stats();
    let mut fail = Vec::new();
    let mut rows = Vec::new();
    // Rounds that reached last_result but not main.rrd. Only an order's
    // first round may be among them: when it completes in the step the RRD
    // was created in, its time equals the RRD's start and librrd refuses it
    // (the daemon logs "update skipped"); any later one is a failure.
    let mut not_in_rrd = Vec::new();
    for (id, times) in &seen {
        let first_t = times.iter().min().copied();
        for &t in times {
            if !lastupdates.contains_key(&(*id, t)) {
                not_in_rrd.push(format!("{id}@{t}"));
                if Some(t) != first_t {
                    fail.push(format!(
                        "{id}: round {t} is in last_result but not in main.rrd"
                    ));
                }
            }
        }
    }
    let first = seen.values().flat_map(|s| s.iter()).min().copied().unwrap();
    let last = seen.values().flat_map(|s| s.iter()).max().copied().unwrap();
    for c in &cases {
        let base = base_of(c);
        let rounds = read_rounds(base, c.id, c.pings, first - STEP, last + STEP);
        check_last_result_and_lastupdate(base, c, &rounds, &lastupdates, &mut fail);
        let (idle, load): (Vec<Round>, Vec<Round>) = rounds
            .into_iter()
            .partition(|r| ((r.t + STEP) as f64) < load_start);
        for (phase, rs, fp) in [
            ("idle", &idle, &idle_fping),
            ("1 core busy", &load, &load_fping),
        ] {
            let mut row = check_case(c, phase, rs, &echoes, &conns, &reqs, &mut fail);
            if c.fping {
                if let Some(run) = fp {
                    row.fping_errors_us = fping_errors(run, &echoes, &c.target);
                }
            }
            rows.push(row);
        }
    }
    // Every ICMP ping of the idle phase: the median error is within
    // ICMP_IDLE_P50_US of the wire.
    let mut summary = String::new();
    for phase in ["idle", "1 core busy"] {
        let errors = |pick: fn(&Row) -> bool| -> Vec<f64> {
            rows.iter()
                .filter(|r| r.phase == phase && pick(r))
                .flat_map(|r| r.errors_us.iter().copied())
                .collect()
        };
        let icmp = errors(|r| r.icmp);
        let tcp = errors(|r| r.tcp);
        let http = errors(|r| !r.icmp && !r.tcp);
        let fping: Vec<f64> = rows
            .iter()
            .filter(|r| r.phase == phase)
            .flat_map(|r| r.fping_errors_us.iter().copied())
            .collect();
        let _ = writeln!(
            summary,
            "{phase}: ICMP daemon − wire |µs| p50 / p99 / max {} over {} pings; fping − wire {} over {} pings; tcp daemon − wire {} over {} pings; http daemon − wire {} over {} pings",
            spread(&icmp),
            icmp.len(),
            spread(&fping),
            fping.len(),
            spread(&tcp),
            tcp.len(),
            spread(&http),
            http.len()
        );
        let abs: Vec<f64> = icmp.iter().map(|e| e.abs()).collect();
        if phase == "idle" {
            match percentile(&abs, 0.5) {
                Some(p50) if p50 <= ICMP_IDLE_P50_US => {}
                p50 => fail.push(format!(
                    "idle: median |daemon − wire| of the ICMP pings is {p50:?} µs, bound {ICMP_IDLE_P50_US} µs"
                )),
            }
        }
        // Every phase: the tail, with kernel timestamps; tcp connects and
        // http exchanges as the kernel timed them.
        let tcp_abs: Vec<f64> = tcp.iter().map(|e| e.abs()).collect();
        let http_abs: Vec<f64> = http.iter().map(|e| e.abs()).collect();
        for (pings, name, p99, max) in [
            (&abs, "ICMP pings", ICMP_P99_US, ICMP_MAX_US),
            (&tcp_abs, "tcp connects", TCP_P99_US, TCP_MAX_US),
            (&http_abs, "http exchanges", HTTP_P99_US, HTTP_MAX_US),
        ] {
            for (what, p, bound) in [("p99", 0.99, p99), ("max", 1.0, max)] {
                match percentile(pings, p) {
                    Some(v) if v <= bound => {}
                    v => fail.push(format!(
                        "{phase}: {what} |daemon − wire| of the {name} is {v:?} µs, bound {bound} µs"
                    )),
                }
            }
        }
    }
    println!("\n## Measured (pingmachine in the prober namespace; step {STEP}; ICMP delay cases {DELAY_PINGS} pings at {DELAY_INTERVAL_MS} ms, other ICMP cases {PINGS} pings, httping {HTTP_PINGS}, tcp {TCP_PINGS}; fping -C {FPING_COUNT}; truth: the prober veth's capture)\n");
    println!("{}", table(&rows));
    println!("{summary}");
    let (l, s) = (stats.receive_lag_us, stats.send_lateness_us);
    println!(
        "simulator: {} packets sent, {} send errors; receive lag mean {:.0} µs, p99 {:.0} µs, max {:.0} µs; send lateness mean {:.0} µs, p99 {:.0} µs, max {:.0} µs; capture: {} packets",
        stats.packets_sent, stats.send_errors, l.mean, l.p99, l.max, s.mean, s.p99, s.max, packets.len()
    );
    if !not_in_rrd.is_empty() {
        println!(
            "first rounds in last_result but not in main.rrd (completed in the RRD's creation step): {}",
            not_in_rrd.join(", ")
        );
    }
    println!(
        "accuracy test wall time: {:.0} s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        fail.is_empty(),
        "{} accuracy check(s) failed:\n{}\n\n{}\n{summary}\ndaemon log:\n{}",
        fail.len(),
        fail.join("\n"),
        table(&rows),
        daemon.log_text()
    );
    drop(daemon);
    drop(dgram_daemon);
    drop(sim);
}

/// `last_result` equals the last RRD row, and every round's `rrdtool
/// lastupdate` (read when it was new) equals what `rrdtool fetch` gives.
fn check_last_result_and_lastupdate(
    base: &Base,
    c: &Case,
    rounds: &[Round],
    lastupdates: &LastUpdates,
    fail: &mut Vec<String>,
) {
    let lr = base.last_result(c.id).unwrap();
    let close = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (None, None) => true,
        (Some(x), Some(y)) => (x - y).abs() <= 1e-6 * x.abs().max(1e-6),
        _ => false,
    };
    match rounds.last() {
        Some(r) if r.t == lr.int("time") => {
            assert_eq!(
                lr.int("loss") as usize,
                r.loss,
                "{}: last_result loss",
                c.id
            );
            let a: Vec<f64> = r.answered_ms().iter().map(|x| x / 1000.0).collect();
            for (k, v) in [
                ("median", r.median),
                ("min", a.first().copied()),
                ("max", a.last().copied()),
            ] {
                assert!(
                    close(lr.rtt(k), v),
                    "{}: last_result {k} {:?} vs rrd {v:?}",
                    c.id,
                    lr.rtt(k)
                );
            }
            let (t, vals) = rrd_lastupdate(&base.output(c.id).join("main.rrd"));
            assert_eq!(t, r.t, "{}: rrdtool lastupdate time", c.id);
            let lu: Vec<Option<f64>> = vals.iter().map(|(_, v)| *v).collect();
            let mut row_vals = vec![Some(r.loss as f64), r.median];
            row_vals.extend(r.pings.iter().copied());
            assert_eq!(lu.len(), row_vals.len(), "{}: lastupdate sources", c.id);
            for (i, (x, y)) in lu.iter().zip(&row_vals).enumerate() {
                assert!(
                    close(*x, *y),
                    "{}: lastupdate ds {i}: {x:?} vs fetch {y:?}",
                    c.id
                );
            }
        }
        other => fail.push(format!(
            "{}: last_result time {} does not match the last RRD round {:?}",
            c.id,
            lr.int("time"),
            other.map(|r| r.t)
        )),
    }
    for r in rounds {
        let mut fetched = vec![Some(r.loss as f64), r.median];
        fetched.extend(r.pings.iter().copied());
        match lastupdates.get(&(c.id, r.t)) {
            Some(lu) if lu.len() == fetched.len() => {
                let same = lu.iter().zip(&fetched).all(|(a, b)| match (a, b) {
                    (None, None) => true,
                    (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * x.abs().max(1e-9),
                    _ => false,
                });
                if !same {
                    fail.push(format!(
                        "{} @{}: rrdtool lastupdate {lu:?} differs from fetch {fetched:?}",
                        c.id, r.t
                    ));
                }
            }
            other => fail.push(format!(
                "{} @{}: no rrdtool lastupdate of this round ({other:?})",
                c.id, r.t
            )),
        }
    }
}

/// The simulator itself, checked against the wire and with tools that are
/// not pingmachine: every ICMP behaviour (delay, loss, late, duplicate,
/// foreign identifier, unreachable) as fping and the capture see it, the
/// HTTP response and the delayed connect as plain sockets and the capture
/// see them. Delays are checked loosely (never early, at most
/// SIM_SLACK_MS late); behaviours exactly. A failure here is the
/// simulator's, not the daemon's.
#[test]
fn timing_simulator_behaves_as_configured() {
    if !testkit::require::netns("timing_simulator_behaves_as_configured") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let h = |addr: &str, delay_ms: f64, loss: f64, mode: Mode| HostCfg {
        addr: ip(addr),
        delay_ms,
        jitter_ms: 0.0,
        loss,
        mode,
        reply_ttl: None,
    };
    let cfg = SimConfig {
        hosts: vec![
            h("198.18.0.10", 20.0, 0.0, Mode::Normal),
            h("2001:db8::10", 20.0, 0.0, Mode::Normal),
            h("198.18.0.11", 1.0, 0.5, Mode::Normal),
            h("198.18.0.12", 0.0, 0.0, Mode::Late),
            h("198.18.0.13", 5.0, 0.0, Mode::Duplicate),
            h("198.18.0.14", 5.0, 0.0, Mode::ForeignId),
            h("198.18.0.15", 5.0, 0.0, Mode::Unreachable),
        ],
        http: vec![
            HttpCfg {
                addr: "198.18.0.22:8080".parse().unwrap(),
                delay_ms: 50.0,
            },
            HttpCfg {
                addr: "[2001:db8::22]:8080".parse().unwrap(),
                delay_ms: 50.0,
            },
        ],
        tcp_accept: vec!["198.18.0.23:8081".parse().unwrap()],
        tcp_delay: vec![TcpDelayCfg {
            addr: "198.18.0.30:8082".parse().unwrap(),
            delay_ms: 30.0,
        }],
        seed: 7,
        log_file: None,
        max_lifetime: Some(Duration::from_secs(120)),
    };
    // A namespace named like ours after a process that cannot exist (its
    // "pid" is above the kernel's limit of 4194304) is a leftover of a
    // crashed run: starting a simulator removes it.
    let stale = format!("{}4294967-0-prober", impair::PREFIX);
    let listed = || {
        impair::run_bounded("ip", &["netns", "list"], Duration::from_secs(10))
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap()
    };
    let out =
        impair::run_bounded("ip", &["netns", "add", &stale], Duration::from_secs(10)).unwrap();
    assert!(out.status.success(), "ip netns add {stale}: {out:?}");
    let sim = Sim::start(cfg).unwrap();
    assert!(
        !listed().contains(&stale),
        "stale namespace {stale} not removed"
    );
    let capture = sim.capture().expect("capture the prober's veth");
    let prober_ns = sim.prober_ns().to_owned();
    let host_ns = sim.host_ns().to_owned();
    let targets: Vec<String> = [
        "198.18.0.10",
        "2001:db8::10",
        "198.18.0.11",
        "198.18.0.12",
        "198.18.0.13",
        "198.18.0.14",
        "198.18.0.15",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let args = [
        "-C",
        "10",
        "-q",
        "-p",
        "200",
        "-i",
        "1",
        "-t",
        "3000",
        "-b",
        FPING_DATA_BYTES,
    ];
    let (run, ctx) = fping_c(&sim, &args, &targets);
    let run = run.unwrap_or_else(|| panic!("fping is needed to check the simulator: {ctx}"));
    let vals = |a: &str| {
        run.summary
            .get(a)
            .unwrap_or_else(|| panic!("no fping line for {a}; {ctx}"))
    };
    // Late replies come 3.5 s after fping's last request.
    std::thread::sleep(LATE_EXTRA_WAIT);

    // HTTP after 50 ms (IPv4 and IPv6, read with the kernel's receive
    // stamps), delayed connect after 30 ms, kernel listener at once, from a
    // thread inside the prober namespace.
    let (http4, http6) = (ip("198.18.0.22"), ip("2001:db8::22"));
    let responses = sim
        .run_in_prober(move || {
            let connect =
                |a: &str| TcpStream::connect_timeout(&a.parse().unwrap(), Duration::from_secs(2));
            let mut out = Vec::new();
            for _ in 0..5 {
                for a in [http4, http6] {
                    let r =
                        impair::http_head_stamped(SocketAddr::new(a, 8080), Duration::from_secs(2));
                    out.push((a, r.unwrap_or_else(|e| panic!("HTTP to {a}: {e}"))));
                }
                connect("198.18.0.30:8082").expect("delayed connect");
                connect("198.18.0.23:8081").expect("connect to the kernel listener");
            }
            out
        })
        .unwrap();
    for (a, r) in &responses {
        assert!(
            r.response.starts_with(b"HTTP/1.1 200 OK"),
            "HTTP response from {a}: {:?}",
            String::from_utf8_lossy(&r.response)
        );
    }
    std::thread::sleep(Duration::from_millis(300));
    let packets = capture.packets();
    drop(capture);
    let echoes = wire::echoes(&packets);
    let conns = wire::tcp_connections(&packets);
    let fping_echoes = |a: &str| -> Vec<Echo> {
        echoes
            .iter()
            .filter(|e| e.dst == ip(a) && e.size == FPING_ICMP_SIZE)
            .copied()
            .collect()
    };
    let rtts_ms = |es: &[Echo]| -> Vec<f64> {
        es.iter()
            .filter_map(|e| e.rtt_within(REPLY_TIMEOUT))
            .map(ms_of)
            .collect()
    };
    // Delay: never early, roughly on time, on the wire; fping sees it too.
    for a in ["198.18.0.10", "2001:db8::10"] {
        let es = fping_echoes(a);
        let w = rtts_ms(&es);
        assert_eq!(w.len(), 10, "{a}: wire answers {es:?}");
        assert!(
            w.iter().all(|x| *x >= 20.0 - MIN_RTT_SLACK_MS),
            "{a}: early answers {w:?}"
        );
        let m = median(&w).unwrap();
        assert!(m <= 20.0 + SIM_SLACK_MS, "{a}: wire median {m} ms; {ctx}");
        assert!(
            vals(a).iter().all(Option::is_some),
            "{a}: fping lost; {ctx}"
        );
    }
    // Loss: the wire's unanswered requests are exactly the simulator's
    // drops, and fping lost exactly those.
    let dropped = sim
        .dropped()
        .iter()
        .filter(|d| d.addr == ip("198.18.0.11") && d.at >= run.from)
        .count();
    let es = fping_echoes("198.18.0.11");
    let unanswered = es.iter().filter(|e| e.rtt().is_none()).count();
    let lost = vals("198.18.0.11").iter().filter(|x| x.is_none()).count();
    assert_eq!((es.len(), unanswered), (10, dropped), "loss on the wire");
    assert_eq!(lost, dropped, "198.18.0.11: fping lost vs dropped; {ctx}");
    assert!(
        dropped > 0 && dropped < 10,
        "50 % loss over 10 pings dropped {dropped}"
    );
    // Late: answered on the wire, but after more than 3 s; foreign
    // identifier and unreachable: never answered (by an echo reply with
    // our identifier). fping got no answers from any of them.
    for (a, answered_late) in [
        ("198.18.0.12", true),
        ("198.18.0.14", false),
        ("198.18.0.15", false),
    ] {
        let es = fping_echoes(a);
        assert_eq!(es.len(), 10, "{a}: requests on the wire");
        assert!(
            es.iter().all(|e| e.rtt_within(REPLY_TIMEOUT).is_none()),
            "{a}: answered in time on the wire: {es:?}"
        );
        if answered_late {
            assert!(
                es.iter().all(|e| e.rtt().is_some()),
                "{a}: late replies missing on the wire: {es:?}"
            );
        }
        assert!(
            vals(a).iter().all(Option::is_none),
            "{a}: fping got answers; {ctx}"
        );
    }
    // Duplicates: two replies to every request on the wire, the first not
    // early; fping reports them.
    let es = fping_echoes("198.18.0.13");
    assert!(
        es.len() == 10 && es.iter().all(|e| e.duplicates == 1),
        "duplicates on the wire: {es:?}"
    );
    assert!(rtts_ms(&es).iter().all(|x| *x >= 5.0 - MIN_RTT_SLACK_MS));
    assert!(
        ctx.contains("duplicate for ["),
        "fping saw no duplicate; {ctx}"
    );
    // Unreachable: fping sees the ICMP errors (it reports them with -c).
    let out = sim
        .prober_exec(
            &["fping", "-c", "2", "-p", "200", "-t", "500", "198.18.0.15"],
            Duration::from_secs(20),
        )
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("ICMP Host Unreachable from 198.18.0.15"),
        "fping did not report the ICMP unreachable errors: {text}"
    );
    // Every request was seen and answered as configured.
    let reqs = sim.requests();
    for (a, want) in [
        ("198.18.0.12", "Late"),
        ("198.18.0.13", "Duplicated"),
        ("198.18.0.14", "ForeignId"),
        ("198.18.0.15", "Unreachable"),
    ] {
        let fates: Vec<String> = reqs
            .iter()
            .filter(|r| r.addr == ip(a))
            .map(|r| format!("{:?}", r.fate))
            .collect();
        assert!(fates.len() >= 10, "{a}: requests seen: {fates:?}");
        assert!(fates.iter().all(|f| f.starts_with(want)), "{a}: {fates:?}");
    }
    // The HTTP servers' answers reach the prober as a network card would
    // hand them over (through the simulator's relay): a TCP socket's
    // receive stamp of the response is the capture's stamp of the same
    // segment, to the nanosecond. A segment straight from the host
    // namespace's TCP would be stamped a few µs later for the socket.
    for (a, r) in &responses {
        let c = conns
            .iter()
            .find(|c| c.dst == SocketAddr::new(*a, 8080) && c.sport == r.local_port)
            .unwrap_or_else(|| panic!("{a}: connection from port {} not captured", r.local_port));
        assert!(
            r.last_data_at.is_some() && r.last_data_at == c.last_data_in,
            "{a} port {}: the socket's receive stamp {:?} is not the capture's {:?}",
            r.local_port,
            r.last_data_at,
            c.last_data_in
        );
    }
    let relay = sim.stats().relay;
    assert!(
        // At least a SYN-ACK and a response per exchange.
        relay.relayed >= 2 * responses.len() as u64 && relay.errors == 0,
        "the relay carried the HTTP servers' packets: {relay:?}"
    );
    // TCP on the wire: the HTTP response 50 ms after the request (so at
    // least 50 ms after the SYN), the delayed SYN-ACK after 30 ms, the
    // kernel listener at once.
    let by_port =
        |port: u16| -> Vec<&TcpConn> { conns.iter().filter(|c| c.dst.port() == port).collect() };
    let exchanges = |a: IpAddr| -> Vec<f64> {
        by_port(8080)
            .iter()
            .filter(|c| c.dst.ip() == a)
            .filter_map(|c| c.exchange_rtt())
            .map(ms_of)
            .collect()
    };
    let (http, http_v6) = (exchanges(http4), exchanges(http6));
    let delayed: Vec<f64> = by_port(8082)
        .iter()
        .filter_map(|c| c.connect_rtt())
        .map(ms_of)
        .collect();
    let kernel: Vec<f64> = by_port(8081)
        .iter()
        .filter_map(|c| c.connect_rtt())
        .map(ms_of)
        .collect();
    for (what, v, floor) in [
        ("HTTP 50 ms", &http, 50.0),
        ("HTTP 50 ms over IPv6", &http_v6, 50.0),
        ("connect 30 ms", &delayed, 30.0),
        ("kernel listener", &kernel, 0.0),
    ] {
        assert_eq!(v.len(), 5, "{what}: exchanges on the wire {v:?}");
        assert!(
            v.iter().all(|x| *x >= floor - MIN_RTT_SLACK_MS),
            "{what}: early on the wire {v:?}"
        );
        let m = median(v).unwrap();
        assert!(m <= floor + SIM_SLACK_MS, "{what}: wire median {m} ms");
    }
    let fping_err: Vec<f64> = ["198.18.0.10", "2001:db8::10", "198.18.0.13"]
        .iter()
        .flat_map(|a| fping_errors(&run, &echoes, a))
        .collect();
    let stats = sim.stats();
    println!(
        "simulator self-test (wire): http {http:.3?} ms; http over IPv6 {http_v6:.3?} ms; delayed connect {delayed:.3?} ms; kernel listener {kernel:.3?} ms; fping − wire |µs| p50 / p99 / max {}; {stats:?}",
        spread(&fping_err)
    );

    // Namespaces exist while the simulator runs and are gone after it.
    assert!(listed().contains(&prober_ns) && listed().contains(&host_ns));
    drop(sim);
    let after = listed();
    assert!(
        !after.contains(&prober_ns) && !after.contains(&host_ns),
        "namespaces left behind: {after}"
    );

    // A panic while a simulator runs removes its namespaces too (unwinding
    // drops it).
    let names: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let sim = Sim::start(SimConfig {
            hosts: vec![HostCfg::delay(ip("198.18.0.10"), 1.0)],
            ..SimConfig::default()
        })
        .unwrap();
        names
            .lock()
            .unwrap()
            .extend([sim.prober_ns().to_owned(), sim.host_ns().to_owned()]);
        panic!("deliberate panic with a running simulator (expected)");
    }));
    assert!(r.is_err());
    let names = names.into_inner().unwrap();
    assert_eq!(names.len(), 2);
    let after = listed();
    assert!(
        names.iter().all(|n| !after.contains(n.as_str())),
        "namespaces left behind after a panic: {after}"
    );
}

/// Long enough after fping's last request for a Late reply (3.5 s) to be
/// on the wire.
const LATE_EXTRA_WAIT: Duration = Duration::from_millis(3800);

/// Regression test for a daemon issue this harness found: the RRD time of a
/// round used to be `floor(now/step)*step - step` taken when the round was
/// *delivered*. With an explicit fping `interval`, validation only asks
/// `(pings-1)*interval + 3000 < step*1000`, but the round starts at the job's
/// random offset (up to step/(pings+1)), so a round that waited for its 3 s
/// timeout could end after the next step boundary, be stamped one step late,
/// and the next round (ending early) then got the same time and was refused
/// by librrd. Rounds are now stamped from the step they started in.
/// Rounds of the explicit-interval test that must be checked against their
/// RRD rows for the test to have tested anything.
const MIN_INTERVAL_ROUNDS: usize = 5;

#[test]
fn timing_explicit_interval_rounds_keep_their_rrd_time() {
    if !testkit::require::netns("timing_explicit_interval_rounds_keep_their_rrd_time") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let host = ip("198.18.0.10");
    let sim = Sim::start(SimConfig {
        hosts: vec![HostCfg {
            addr: host,
            delay_ms: 1.0,
            jitter_ms: 0.0,
            loss: 0.5,
            mode: Mode::Normal,
            reply_ttl: None,
        }],
        seed: 3,
        max_lifetime: Some(Duration::from_secs(300)),
        ..SimConfig::default()
    })
    .unwrap();
    let base = Base::new();
    // (2 - 1) * 6900 + 3000 = 9900 < 10000: valid. A round with a lost
    // ping ends 9.9 s after its start, i.e. after the next boundary unless
    // the job's offset (0..3.33 s) is below 0.1 s.
    base.write_order("x/interval", &fping_order("198.18.0.10", 2, Some(6900)));
    let mut daemon = Daemon::start_in_netns(&base, sim.prober_ns(), &[]);
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline && sim.requests().iter().filter(|r| r.addr == host).count() < 14
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    // Let the last round finish.
    std::thread::sleep(Duration::from_secs(11));
    let stopped_at = now_f64();
    daemon.stop();
    let reqs: Vec<Request> = sim
        .requests()
        .into_iter()
        .filter(|r| r.addr == host)
        .collect();
    let from = reqs.first().map_or(0, |r| unix(r.at) as i64) - 3 * STEP;
    let rows = read_rounds(&base, "x/interval", 2, from, now_f64() as i64 + STEP);
    let by_t: BTreeMap<i64, usize> = rows.iter().map(|r| (r.t, r.loss)).collect();
    let mut problems = Vec::new();
    let mut checked = 0;
    // Rounds: pairs of requests; the round started in [B, B + 10).
    for (k, pair) in reqs.chunks(2).enumerate().skip(1) {
        if pair.len() < 2 {
            break;
        }
        // A round that had not finished when the daemon stopped has no row.
        if unix(pair[0].at) + STEP as f64 > stopped_at {
            break;
        }
        let b = (unix(pair[0].at) as i64).div_euclid(STEP) * STEP;
        let dropped = pair.iter().filter(|r| r.fate == Fate::Dropped).count();
        checked += 1;
        match by_t.get(&(b - STEP)) {
            Some(&loss) if loss == dropped => {}
            other => problems.push(format!(
                "round {k} started at {b}+: {dropped} dropped; expected RRD row {} with that loss, found {other:?}",
                b - STEP
            )),
        }
    }
    let skipped = daemon
        .log_text()
        .lines()
        .filter(|l| l.contains("update skipped"))
        .count();
    // 14 requests are 7 rounds; the first is left out (the job may start
    // mid-step) and every other one had 11 s to finish: at least 5 checked,
    // or the daemon did not probe as asked and nothing was tested.
    println!("explicit interval: {checked} rounds checked against their RRD rows");
    assert!(
        checked >= MIN_INTERVAL_ROUNDS,
        "only {checked} rounds checked (want >= {MIN_INTERVAL_ROUNDS}) from {} requests on the wire\nlog:\n{}",
        reqs.len(),
        daemon.log_text()
    );
    assert!(
        problems.is_empty(),
        "{}\nRRD rows (t, loss): {:?}\n'update skipped' lines in the log: {skipped}\nlog:\n{}",
        problems.join("\n"),
        rows.iter().map(|r| (r.t, r.loss)).collect::<Vec<_>>(),
        daemon.log_text()
    );
}

/// The packet options of an fping order, on the wire: every captured echo
/// request to a target carries the order's size, TOS byte (traffic class),
/// TTL (hop limit) and don't-fragment flag, IPv4 and IPv6, and the default
/// order fping's 56 data bytes (84-byte IPv4 packets) with TOS 0.
/// `smokeping_response_ttl` is the TTL the responder set on its replies,
/// and the `tos` label the order's. Header fields only: nothing here
/// depends on timing.
#[test]
fn icmp_packet_options_on_the_wire() {
    const TEST: &str = "icmp_packet_options_on_the_wire";
    if !testkit::require::netns(TEST) {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let h = |addr: &str, reply_ttl: u8| HostCfg {
        reply_ttl: Some(reply_ttl),
        ..HostCfg::delay(ip(addr), 1.0)
    };
    let sim = Sim::start(SimConfig {
        hosts: vec![
            h("198.18.0.30", 37),
            h("198.18.0.31", 250),
            h("198.18.0.32", 64),
            h("2001:db8::30", 41),
            h("2001:db8::31", 200),
        ],
        max_lifetime: Some(Duration::from_secs(300)),
        ..SimConfig::default()
    })
    .unwrap();
    let capture = sim.capture().expect("capture the prober's veth");
    let base = Base::new();
    let order = |host: &str, options: &str| {
        format!("user: u\nstep: 10\npings: 3\nprobe: fping\nfping: {{host: '{host}'{options}}}\n")
    };
    let cases = [
        OptionCase {
            id: "v4/options",
            host: "198.18.0.30",
            options: ", size: 1000, tos: 184, ttl: 9, dont_fragment: true, timeout: 1500",
            length: 1028,
            tos: 184,
            ttl: 9,
            dont_fragment: Some(true),
            reply_ttl: 37,
        },
        OptionCase {
            id: "v4/fragmenting",
            host: "198.18.0.31",
            options: ", size: 200, tos: 4, ttl: 200, dont_fragment: false",
            length: 228,
            tos: 4,
            ttl: 200,
            dont_fragment: Some(false),
            reply_ttl: 250,
        },
        OptionCase {
            id: "v4/defaults",
            host: "198.18.0.32",
            options: "",
            length: 84,
            tos: 0,
            ttl: 64,
            dont_fragment: None,
            reply_ttl: 64,
        },
        OptionCase {
            id: "v6/options",
            host: "2001:db8::30",
            options: ", size: 1000, tos: 184, ttl: 9, dont_fragment: true",
            length: 1048,
            tos: 184,
            ttl: 9,
            dont_fragment: None,
            reply_ttl: 41,
        },
        OptionCase {
            id: "v6/defaults",
            host: "2001:db8::31",
            options: "",
            length: 104,
            tos: 0,
            ttl: 64,
            dont_fragment: None,
            reply_ttl: 200,
        },
    ];
    for c in &cases {
        base.write_order(c.id, &order(c.host, c.options));
    }
    let port = testkit::free_tcp_port();
    let listen: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut daemon =
        Daemon::start_in_netns(&base, sim.prober_ns(), &["--listen", &listen.to_string()]);
    // Two answered rounds of every order.
    let deadline = Instant::now() + Duration::from_secs(90);
    let answered = |dst: IpAddr| {
        capture
            .packets()
            .iter()
            .filter(|p| p.src == dst && p.dir == wire::Dir::In)
            .count()
    };
    while Instant::now() < deadline && cases.iter().any(|c| answered(ip(c.host)) < 6) {
        std::thread::sleep(Duration::from_millis(200));
    }
    let metrics = wait_for_metrics(&sim, listen, cases.len());
    daemon.stop();
    let packets = capture.packets();
    let mut problems = Vec::new();
    for OptionCase {
        id,
        host,
        length,
        tos,
        ttl,
        dont_fragment: df,
        reply_ttl,
        ..
    } in cases
    {
        let requests: Vec<&WirePacket> = packets
            .iter()
            .filter(|p| {
                p.dst == ip(host)
                    && p.dir == wire::Dir::Out
                    && matches!(p.transport, wire::Transport::Icmp { typ: 8 | 128, .. })
            })
            .collect();
        if requests.len() < 6 {
            problems.push(format!(
                "{id}: {} requests on the wire, want 6 or more",
                requests.len()
            ));
        }
        for r in &requests {
            let got = (r.ip.length, r.ip.tos, r.ip.ttl);
            if got != (length, tos, ttl) {
                problems.push(format!(
                    "{id}: (length, tos, ttl) {got:?}, want {:?}",
                    (length, tos, ttl)
                ));
            }
            if let Some(df) = df {
                if r.ip.dont_fragment != df {
                    problems.push(format!(
                        "{id}: don't fragment {}, want {df}",
                        r.ip.dont_fragment
                    ));
                }
            }
        }
        let line = metrics.lines().find(|l| {
            l.starts_with("smokeping_response_ttl{") && l.contains(&format!("order=\"{id}\""))
        });
        match line {
            Some(l)
                if l.ends_with(&format!(" {reply_ttl}"))
                    && l.contains(&format!("tos=\"{tos}\"")) => {}
            other => problems.push(format!(
                "{id}: {other:?}, want TTL {reply_ttl} and tos=\"{tos}\""
            )),
        }
    }
    assert!(
        problems.is_empty(),
        "{}\nlog:\n{}",
        problems.join("\n"),
        daemon.log_text()
    );
}

/// One order of [`icmp_packet_options_on_the_wire`] and what its packets
/// must carry.
struct OptionCase {
    id: &'static str,
    host: &'static str,
    /// Appended to the fping section.
    options: &'static str,
    /// Of the IP packet.
    length: usize,
    tos: u8,
    ttl: u8,
    /// Checked when set.
    dont_fragment: Option<bool>,
    /// The TTL the responder sets on its replies.
    reply_ttl: u8,
}

/// `/metrics` of a daemon in the prober namespace, once it has the reply
/// TTL of `orders` orders (at most 30 s).
fn wait_for_metrics(sim: &Sim, listen: SocketAddr, orders: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = sim
            .run_in_prober(move || crate::support::http_get(listen, "/metrics", None).2)
            .unwrap_or_default();
        let n = text
            .lines()
            .filter(|l| l.starts_with("smokeping_response_ttl{"))
            .count();
        if n >= orders || Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Jitter and standard deviation of a round, as the daemon exports them
/// (`pingmachine_last_rtt_jitter_seconds`, `_stddev_seconds`), against the
/// same statistics of the same round's pings on the wire (the capture's
/// RTTs in send order). Each ping is within the accuracy bound (50 µs at
/// p99) of the wire, so a difference of two is within twice that.
#[test]
fn timing_jitter_matches_the_wire() {
    const TEST: &str = "timing_jitter_matches_the_wire";
    if !testkit::require::netns(TEST) {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let host = "198.18.0.40";
    let sim = Sim::start(SimConfig {
        hosts: vec![HostCfg {
            jitter_ms: 3.0,
            ..HostCfg::delay(ip(host), 5.0)
        }],
        max_lifetime: Some(Duration::from_secs(300)),
        ..SimConfig::default()
    })
    .unwrap();
    let capture = sim.capture().expect("capture the prober's veth");
    let base = Base::new();
    base.write_order("j", &fping_order(host, 5, Some(1000)));
    let port = testkit::free_tcp_port();
    let listen: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut daemon =
        Daemon::start_in_netns(&base, sim.prober_ns(), &["--listen", &listen.to_string()]);
    let gauge = |text: &str, name: &str| -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(name) && l.contains("order=\"j\""))?
            .rsplit(' ')
            .next()?
            .parse()
            .ok()
    };
    // Three rounds checked, each from one scrape (its time, jitter and
    // standard deviation together); at most 90 s.
    let mut checked: Vec<(i64, f64, f64, f64, f64)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    while checked.len() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        let text = sim
            .run_in_prober(move || crate::support::http_get(listen, "/metrics", None).2)
            .unwrap_or_default();
        let (Some(t), Some(jitter), Some(sd)) = (
            gauge(&text, "pingmachine_last_round_timestamp_seconds"),
            gauge(&text, "pingmachine_last_rtt_jitter_seconds"),
            gauge(&text, "pingmachine_last_rtt_stddev_seconds"),
        ) else {
            continue;
        };
        let t = t as i64;
        if checked.iter().any(|c| c.0 == t) {
            continue;
        }
        // The round stamped t started in [t + step, t + 2 step).
        let from = UNIX_EPOCH + Duration::from_secs((t + STEP) as u64);
        let to = from + Duration::from_secs(STEP as u64);
        let rtts: Vec<Option<Duration>> = wire::echoes(&capture.packets())
            .iter()
            .filter(|e| e.dst == ip(host) && e.sent >= from && e.sent < to)
            .map(|e| e.rtt_within(Duration::from_secs(3)))
            .collect();
        assert_eq!(rtts.len(), 5, "round {t}: {rtts:?}");
        let wire_jitter = pingmachine::result::jitter(&rtts).expect("answered pings");
        let wire_sd = pingmachine::result::Summary::of(&pingmachine::result::RoundOutcome {
            rtts: rtts.clone(),
        })
        .stddev()
        .expect("answered pings");
        checked.push((t, jitter, wire_jitter, sd, wire_sd));
    }
    daemon.stop();
    println!("round, jitter daemon / wire µs, standard deviation daemon / wire µs");
    for (t, j, wj, s, ws) in &checked {
        println!(
            "{t}, {:.1} / {:.1}, {:.1} / {:.1}",
            j * 1e6,
            wj * 1e6,
            s * 1e6,
            ws * 1e6
        );
    }
    assert_eq!(
        checked.len(),
        3,
        "rounds checked; log:\n{}",
        daemon.log_text()
    );
    for (t, j, wj, s, ws) in checked {
        assert!(
            (j - wj).abs() <= 100e-6,
            "round {t}: jitter {j} s, on the wire {wj} s"
        );
        assert!(
            (s - ws).abs() <= 100e-6,
            "round {t}: standard deviation {s} s, on the wire {ws} s"
        );
        assert!(
            wj > 100e-6,
            "round {t}: the simulator's jitter shows ({wj} s)"
        );
    }
}
