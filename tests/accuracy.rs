//! Measurement accuracy: the real `pingmachine` binary, run inside a network
//! namespace, measures test hosts whose delay, jitter, loss and misbehaviour
//! a user-space simulator (`testkit::impair`) controls; what it records in
//! `main.rrd` and `last_result` must match what the simulator did, within
//! stated bounds. See docs/ACCURACY.md for the design and the figures.
//!
//! Needs root (network namespaces, raw sockets); prints "skipping ..."
//! otherwise. CI runs it as root:
//! `sudo cargo test --test accuracy -- --nocapture`.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::{rrd_fetch, rrd_lastupdate, Base, Daemon};
use testkit::impair::{
    self, Fate, HostCfg, HttpCfg, Mode, Proto, Request, Sim, SimConfig, TcpDelayCfg, DUPLICATE_GAP,
};

/// The tests must not overlap: each wants the machine to itself (one of
/// them loads a core on purpose).
static SERIAL: Mutex<()> = Mutex::new(());

const STEP: i64 = 10;
/// ICMP pings per round of the loss, jitter and misbehaviour cases (at
/// step 10 the default-interval rule allows at most 4).
const PINGS: usize = 4;
/// ICMP pings per round of the delay cases, with an explicit interval:
/// (7 - 1) * 1000 + 3000 < 10000. A round median of 7 moves only when 4
/// replies are late, so a rare scheduling hiccup of this VM (a reply
/// delayed by a few ms) cannot move it; their rounds end well within the
/// step because every reply arrives.
const DELAY_PINGS: usize = 7;
const DELAY_INTERVAL_MS: u32 = 1000;
const HTTP_PINGS: usize = 3;
const TCP_PINGS: usize = 4;
/// Rounds measured with the machine otherwise idle, then with one core busy.
const ROUNDS_PER_PHASE: usize = 3;
/// Generous bounds on waiting (never on the assertions).
const PHASE_TIMEOUT: Duration = Duration::from_secs(75);
/// Upper bound (ms above the delay) on the round median of the probes timed
/// in user space (httping, tcp) with one core busy; idle it is 5 ms.
const USERSPACE_BUSY_SLACK_MS: f64 = 25.0;
/// fping samples per target per run.
const FPING_COUNT: usize = 10;

fn skip_unless_possible(test: &str) -> bool {
    match impair::available() {
        Ok(()) => true,
        Err(why) => {
            eprintln!(
                "skipping {test}: needs root (network namespaces): {why}; CI runs it as root"
            );
            false
        }
    }
}

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

/// What a case expects, and so how it is checked.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    /// Every round: no loss, median within max(0.3 ms, 1 %) of `ms`.
    Delay { ms: f64 },
    /// Every ping within [ms - jitter - 0.3, ms + jitter + 0.3], no loss.
    Jitter { ms: f64, jitter: f64 },
    /// Every round: loss = what the simulator dropped in that round.
    Loss,
    /// Every round: everything lost (late, foreign identifier, unreachable).
    AllLost,
    /// Duplicated replies: no loss, median within the delay bound of the
    /// first reply's delay.
    Duplicate { ms: f64 },
    /// httping / delayed tcp connect: no loss, median in [ms, ms + 5].
    AtLeast { ms: f64 },
    /// A baseline (nothing delayed): no loss, median <= `limit_ms`.
    Baseline { limit_ms: f64 },
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
    /// The simulated address (for the request log), if ICMP/TCP-SYN.
    addr: IpAddr,
    /// Compared with fping.
    fping: bool,
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
    fn answered(&self) -> Vec<f64> {
        self.pings.iter().flatten().copied().collect()
    }
}

/// Clock-reading slack (ms) for "an RTT is never below the delay".
const MIN_RTT_SLACK_MS: f64 = 0.005;

fn delay_bound(ms: f64) -> f64 {
    (0.01 * ms).max(0.3)
}

fn median(v: &[f64]) -> Option<f64> {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s.get(s.len() / 2).copied()
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
            let delay_case = matches!(
                expect,
                Expect::Delay { .. } | Expect::Baseline { .. } | Expect::Duplicate { .. }
            );
            cases.push(Case {
                id,
                target: h.addr.to_string(),
                configured,
                pings: if delay_case { DELAY_PINGS } else { PINGS },
                interval_ms: delay_case.then_some(DELAY_INTERVAL_MS),
                expect,
                addr: h.addr,
                fping,
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
        // Delay 0 is the simulator's baseline: reported, with only a
        // sanity bound (and the fping comparison).
        let expect = if ms == 0.0 {
            Expect::Baseline { limit_ms: 1.0 }
        } else {
            Expect::Delay { ms }
        };
        icmp(
            id,
            HostCfg::delay(ip(addr), ms),
            format!("delay {ms} ms"),
            expect,
            true,
        );
    }
    let h = |addr: &str, delay_ms: f64, jitter_ms: f64, loss: f64, mode: Mode| HostCfg {
        addr: ip(addr),
        delay_ms,
        jitter_ms,
        loss,
        mode,
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
        Expect::Loss,
        false,
    );
    icmp(
        "v4/loss50",
        h("198.18.0.17", 2.0, 0.0, 0.50, Mode::Normal),
        "delay 2 ms, loss 50 %".into(),
        Expect::Loss,
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
        Expect::Loss,
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
    };
    cases.push(other(
        "http/delay50",
        format!("http://{http_delayed}/"),
        "response after 50 ms",
        HTTP_PINGS,
        Expect::AtLeast { ms: 50.0 },
        http_delayed.ip(),
    ));
    cases.push(other(
        "http/delay0",
        format!("http://{http_base}/"),
        "response at once",
        HTTP_PINGS,
        Expect::Baseline { limit_ms: 20.0 },
        http_base.ip(),
    ));
    cases.push(other(
        "tcp/kernel",
        tcp_accept.to_string(),
        "kernel listener",
        TCP_PINGS,
        Expect::Baseline { limit_ms: 5.0 },
        tcp_accept.ip(),
    ));
    cases.push(other(
        "tcp/delay30",
        tcp_delay.addr.to_string(),
        "SYN-ACK after 30 ms",
        TCP_PINGS,
        Expect::AtLeast { ms: 30.0 },
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
    if c.id.starts_with("http/") {
        format!(
            "{}probe: httping\nhttping:\n  url: '{}'\n  interval: 1\n",
            head(c.pings),
            c.target
        )
    } else if c.id.starts_with("tcp/") {
        let sa: SocketAddr = c.target.parse().unwrap();
        format!(
            "{}probe: tcp\ntcp:\n  host: '{}'\n  port: {}\n  interval: 1000\n",
            head(c.pings),
            sa.ip(),
            sa.port()
        )
    } else {
        fping_order(&c.target, c.pings, c.interval_ms)
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

/// fping's `-C` summary: target → one entry per ping, `None` when lost.
type FpingSummary = BTreeMap<String, Vec<Option<f64>>>;

/// Runs `fping ARGS TARGETS` in the prober namespace and parses its `-C`
/// summary (fping prints it on stderr: "ADDR : 1.23 4.56 -"). Returns when
/// the successful attempt started, its output (for messages) and the
/// summary. fping is a third-party tool: an attempt that ends without a
/// summary line for every target (seen once here, cause unknown) is
/// reported and retried once.
fn fping_c(sim: &Sim, args: &[&str], targets: &[String]) -> (SystemTime, String, FpingSummary) {
    let mut failures = Vec::new();
    for attempt in 1..=2 {
        let started = SystemTime::now();
        let mut argv = vec!["fping"];
        argv.extend_from_slice(args);
        argv.extend(targets.iter().map(String::as_str));
        let out = sim
            .prober_exec(&argv, Duration::from_secs(60))
            .expect("run fping in the prober namespace");
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
            return (started, text, summary);
        }
        failures.push(format!("attempt {attempt}: {text}"));
    }
    panic!(
        "fping gave no complete -C summary twice:\n{}",
        failures.join("\n")
    );
}

/// `fping -C N -q -p 1000 -i 1 -t 3000 TARGETS` in the prober namespace:
/// target → answered samples (ms).
fn run_fping(sim: &Sim, targets: &[String]) -> BTreeMap<String, Vec<f64>> {
    let count = FPING_COUNT.to_string();
    let args = ["-C", &count, "-q", "-p", "1000", "-i", "1", "-t", "3000"];
    let (_, _, summary) = fping_c(sim, &args, targets);
    summary
        .into_iter()
        .map(|(a, v)| (a, v.into_iter().flatten().collect()))
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
    let a = r.answered();
    if a.windows(2).any(|w| w[0] > w[1]) {
        fail.push(format!("{id} @{}: pings not sorted: {a:?}", r.t));
    }
    let m = a.get(a.len() / 2).copied();
    let same = match (m, r.median) {
        (None, None) => true,
        (Some(x), Some(y)) => (x - y).abs() <= 1e-9 + 1e-9 * x.abs(),
        _ => false,
    };
    if !same {
        fail.push(format!(
            "{id} @{}: median {:?} is not sorted[n/2] of {a:?}",
            r.t, r.median
        ));
    }
}

/// ICMP message size of fping's echo requests (8 + its default 56 bytes);
/// the daemon's are smaller.
const FPING_ICMP_SIZE: usize = 64;

/// The daemon's requests the simulator saw for `addr` in the round recorded
/// at `t`: that round's pings were sent in [t + step, t + 2 step). fping's
/// requests to the same hosts are told apart by their size.
fn requests_in_round(reqs: &[Request], addr: IpAddr, t: i64) -> Vec<&Request> {
    let (lo, hi) = ((t + STEP) as f64, (t + 2 * STEP) as f64);
    reqs.iter()
        .filter(|r| r.addr == addr && !(r.proto == Proto::Icmp && r.size == FPING_ICMP_SIZE))
        .filter(|r| {
            let at = unix(r.at);
            at >= lo && at < hi
        })
        .collect()
}

#[derive(Default)]
struct Row {
    case: String,
    target: String,
    configured: String,
    phase: &'static str,
    rounds: usize,
    loss: usize,
    sim_drops: Option<usize>,
    min: Option<f64>,
    median: Option<f64>,
    max: Option<f64>,
    round_medians: Option<(f64, f64)>,
    fping: Option<f64>,
    /// The simulator's worst lateness (µs) on this order's answers.
    sim_late_us: Option<f64>,
    bound: String,
    ok: bool,
    note: String,
}

fn fmt_ms(v: Option<f64>) -> String {
    v.map_or("–".into(), |x| format!("{x:.3}"))
}

fn table(rows: &[Row]) -> String {
    let mut s = String::new();
    s.push_str("| case | target | configured | phase | rounds | loss (daemon) | dropped (sim) | min ms | median ms | max ms | round medians ms | fping median ms | sim late max µs | bound | ok |\n");
    s.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {}{} |",
            r.case,
            r.target,
            r.configured,
            r.phase,
            r.rounds,
            r.loss,
            r.sim_drops.map_or("–".into(), |d| d.to_string()),
            fmt_ms(r.min),
            fmt_ms(r.median),
            fmt_ms(r.max),
            r.round_medians
                .map_or("–".into(), |(a, b)| format!("{a:.3}–{b:.3}")),
            fmt_ms(r.fping),
            r.sim_late_us.map_or("–".into(), |v| format!("{v:.0}")),
            r.bound,
            if r.ok { "yes" } else { "**NO**" },
            r.note
        );
    }
    s
}

/// Checks the rounds of one case in one phase; pushes failures, returns the
/// table row.
fn check_case(
    c: &Case,
    phase: &'static str,
    rounds: &[Round],
    reqs: &[Request],
    fping: Option<&Vec<f64>>,
    fail: &mut Vec<String>,
) -> Row {
    let before = fail.len();
    let id = format!("{} [{phase}]", c.id);
    let all: Vec<f64> = rounds
        .iter()
        .flat_map(Round::answered)
        .map(|s| s * 1000.0)
        .collect();
    let medians: Vec<f64> = rounds
        .iter()
        .filter_map(|r| r.median)
        .map(|m| m * 1000.0)
        .collect();
    let mut row = Row {
        case: c.id.into(),
        target: c.target.clone(),
        configured: c.configured.clone(),
        phase,
        rounds: rounds.len(),
        loss: rounds.iter().map(|r| r.loss).sum(),
        min: all.iter().copied().reduce(f64::min),
        median: median(&all),
        max: all.iter().copied().reduce(f64::max),
        round_medians: medians
            .iter()
            .copied()
            .reduce(f64::min)
            .zip(medians.iter().copied().reduce(f64::max)),
        fping: fping.and_then(|v| median(v)),
        ..Row::default()
    };
    if rounds.len() < ROUNDS_PER_PHASE {
        fail.push(format!(
            "{id}: only {} rounds recorded, wanted {ROUNDS_PER_PHASE}",
            rounds.len()
        ));
    }
    let is_icmp = !(c.id.starts_with("http/") || c.id.starts_with("tcp/"));
    let busy = phase != "idle";
    let mut jitter_excluded: Vec<String> = Vec::new();
    row.sim_late_us = rounds
        .iter()
        .flat_map(|r| requests_in_round(reqs, c.addr, r.t))
        .filter_map(Request::lateness)
        .map(|d| d.as_secs_f64() * 1e6)
        .reduce(f64::max);
    for r in rounds {
        check_rrd_rule(&id, r, fail);
        let m = r.median.map(|x| x * 1000.0);
        // The simulator saw exactly the round's pings (ICMP and SYNs).
        let seen = requests_in_round(reqs, c.addr, r.t);
        let logged = is_icmp || c.id == "tcp/delay30" || c.id.starts_with("http/");
        if logged && seen.len() != c.pings {
            fail.push(format!(
                "{id} @{}: simulator saw {} requests in the round, expected {}",
                r.t,
                seen.len(),
                c.pings
            ));
        }
        match c.expect {
            Expect::Delay { ms } | Expect::Duplicate { ms } => {
                let b = delay_bound(ms);
                row.bound = format!("median ±{b:.2} ms");
                // An answer can never come before its delay.
                if let Some(min) = r.answered().first().map(|x| x * 1000.0) {
                    if min < ms - MIN_RTT_SLACK_MS {
                        fail.push(format!(
                            "{id} @{}: ping of {min} ms, below the {ms} ms delay",
                            r.t
                        ));
                    }
                }
                if r.loss != 0 || m.is_none_or(|m| (m - ms).abs() > b) {
                    fail.push(format!(
                        "{id} @{}: loss {} median {m:?} ms, expected loss 0 and median {ms} ± {b} ms (pings {:?})",
                        r.t, r.loss, r.pings
                    ));
                }
                if matches!(c.expect, Expect::Duplicate { .. }) {
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
            }
            Expect::Jitter { ms, jitter } => {
                let (lo, hi) = (ms - jitter - 0.3, ms + jitter + 0.3);
                row.bound = format!("all in [{lo:.1}, {hi:.1}] ms");
                let a: Vec<f64> = r.answered().iter().map(|s| s * 1000.0).collect();
                // A bound on every single ping: a round in which the
                // simulator itself answered > 0.3 ms later than configured
                // (this VM can stall a thread for milliseconds) says
                // nothing about the daemon; it is left out, and reported.
                let sim_late = seen
                    .iter()
                    .filter_map(|q| q.lateness())
                    .max()
                    .unwrap_or_default();
                if sim_late > Duration::from_micros(300) {
                    jitter_excluded.push(format!(
                        "@{} (simulator {:.1} ms late; pings {a:.3?})",
                        r.t,
                        sim_late.as_secs_f64() * 1000.0
                    ));
                    continue;
                }
                if r.loss != 0 || a.iter().any(|&x| x < lo || x > hi) {
                    fail.push(format!(
                        "{id} @{}: loss {} pings {a:?} ms, expected all in [{lo}, {hi}]",
                        r.t, r.loss
                    ));
                }
            }
            Expect::Loss => {
                row.bound = "loss = dropped, per round".into();
                let dropped = seen.iter().filter(|q| q.fate == Fate::Dropped).count();
                *row.sim_drops.get_or_insert(0) += dropped;
                if r.loss != dropped {
                    fail.push(format!(
                        "{id} @{}: daemon recorded loss {}, simulator dropped {dropped} (requests {:?})",
                        r.t,
                        r.loss,
                        seen.iter().map(|q| (q.ident, q.seq, q.fate)).collect::<Vec<_>>()
                    ));
                }
                // An answer can never come before its delay (2 ms).
                for x in r.answered() {
                    let x = x * 1000.0;
                    if x < 2.0 - MIN_RTT_SLACK_MS {
                        fail.push(format!(
                            "{id} @{}: answered ping {x} ms, below the 2 ms delay",
                            r.t
                        ));
                    }
                }
            }
            Expect::AllLost => {
                row.bound = format!("loss = {} per round", c.pings);
                let answered = seen
                    .iter()
                    .filter(|q| !matches!(q.fate, Fate::Dropped))
                    .count();
                if answered != c.pings {
                    fail.push(format!(
                        "{id} @{}: simulator answered {answered} of the round's requests, expected {}",
                        r.t, c.pings
                    ));
                }
                if r.loss != c.pings || r.median.is_some() {
                    fail.push(format!(
                        "{id} @{}: loss {} median {m:?}, expected loss {} and no median (pings {:?})",
                        r.t, r.loss, c.pings, r.pings
                    ));
                }
            }
            Expect::AtLeast { ms } => {
                // httping and tcp are timed in user space (the connect
                // future's wake-up; request and parsing for HTTP): with a
                // core busy, a debug build of the daemon adds several ms of
                // its own while the simulator stays within a fraction of a
                // ms (the "sim late max" column). The 5 ms bound applies
                // with the machine idle; busy, the lower bound stays and
                // the upper one is a sanity bound (figures in ACCURACY.md).
                let slack = if busy { USERSPACE_BUSY_SLACK_MS } else { 5.0 };
                row.bound = format!("median in [{ms}, {}] ms", ms + slack);
                if r.loss != 0 || m.is_none_or(|m| m < ms || m > ms + slack) {
                    fail.push(format!(
                        "{id} @{}: loss {} median {m:?} ms, expected loss 0 and median in [{ms}, {}] ms",
                        r.t,
                        r.loss,
                        ms + slack
                    ));
                }
            }
            Expect::Baseline { limit_ms } => {
                row.bound = format!("baseline: median ≤ {limit_ms} ms");
                if r.loss != 0 || m.is_none_or(|m| m > limit_ms) {
                    fail.push(format!(
                        "{id} @{}: loss {} median {m:?} ms, expected loss 0 and median ≤ {limit_ms} ms",
                        r.t, r.loss
                    ));
                }
            }
        }
    }
    if !jitter_excluded.is_empty() {
        row.note = format!(
            " ({} round(s) left out of the per-ping bound: simulator late)",
            jitter_excluded.len()
        );
        println!(
            "{id}: left out of the per-ping bound: {}",
            jitter_excluded.join("; ")
        );
        if rounds.len() == jitter_excluded.len() {
            fail.push(format!(
                "{id}: no round in which the simulator kept its delays: {}",
                jitter_excluded.join("; ")
            ));
        }
    }
    if let (Some(f), Some(d)) = (row.fping, row.median) {
        let b = (0.02 * f).max(0.3);
        row.bound.push_str(&format!("; fping ±{b:.2} ms"));
        if (f - d).abs() > b {
            fail.push(format!(
                "{id}: daemon median {d:.3} ms vs fping median {f:.3} ms differ by more than {b:.3} ms (fping {:?})",
                fping.unwrap()
            ));
        }
    } else if c.fping {
        fail.push(format!("{id}: no fping result to compare with"));
    }
    row.ok = fail.len() == before;
    row
}

/// The whole accuracy run: one simulator, one daemon with an order per
/// case, rounds with the machine idle and then with one core busy.
#[test]
fn daemon_measures_what_the_simulator_does() {
    if !skip_unless_possible("daemon_measures_what_the_simulator_does") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let started = Instant::now();
    let (cfg, cases) = setup();
    let sim = Sim::start(cfg).expect("start the simulator");
    let base = Base::new();
    for c in &cases {
        base.write_order(c.id, &order_yaml(c));
    }
    let mut daemon = Daemon::start_in_netns(&base, sim.prober_ns(), &[]);
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
                "{phase} phase: not every order completed {ROUNDS_PER_PHASE} rounds in {PHASE_TIMEOUT:?}: {seen:?}\nlog:\n{}",
                daemon.log_text()
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
        let rounds = read_rounds(&base, c.id, c.pings, first - STEP, last + STEP);
        // last_result and `rrdtool lastupdate` agree with the RRD's last row.
        let lr = base.last_result(c.id).unwrap();
        let last_row = rounds.last().cloned();
        match &last_row {
            Some(r) if r.t == lr.int("time") => {
                assert_eq!(
                    lr.int("loss") as usize,
                    r.loss,
                    "{}: last_result loss",
                    c.id
                );
                let close = |a: Option<f64>, b: Option<f64>| match (a, b) {
                    (None, None) => true,
                    (Some(x), Some(y)) => (x - y).abs() <= 1e-6 * x.abs().max(1e-6),
                    _ => false,
                };
                let a = r.answered();
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
                assert_eq!(
                    lu.len(),
                    row_vals.len(),
                    "{}: lastupdate data sources",
                    c.id
                );
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
                other.as_ref().map(|r| r.t)
            )),
        }
        // Every round's `rrdtool lastupdate`, read when it was new, equals
        // what `rrdtool fetch` gives for it now.
        for r in &rounds {
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
        let (idle, load): (Vec<Round>, Vec<Round>) = rounds
            .into_iter()
            .partition(|r| ((r.t + STEP) as f64) < load_start);
        let fp = |m: &BTreeMap<String, Vec<f64>>| m.get(&c.target).cloned();
        let fi = fp(&idle_fping);
        let fl = fp(&load_fping);
        rows.push(check_case(
            c,
            "idle",
            &idle,
            &reqs,
            fi.as_ref().filter(|_| c.fping),
            &mut fail,
        ));
        rows.push(check_case(
            c,
            "1 core busy",
            &load,
            &reqs,
            fl.as_ref().filter(|_| c.fping),
            &mut fail,
        ));
    }
    println!("\n## Measured (pingmachine in the prober namespace; step {STEP}; ICMP delay cases {DELAY_PINGS} pings at {DELAY_INTERVAL_MS} ms, other ICMP cases {PINGS} pings, httping {HTTP_PINGS}, tcp {TCP_PINGS}; fping -C {FPING_COUNT})\n");
    println!("{}", table(&rows));
    let (l, s) = (stats.receive_lag_us, stats.send_lateness_us);
    println!(
        "simulator: {} packets sent, {} send errors; receive lag mean {:.0} µs, p99 {:.0} µs, max {:.0} µs; send lateness mean {:.0} µs, p99 {:.0} µs, max {:.0} µs",
        stats.packets_sent, stats.send_errors, l.mean, l.p99, l.max, s.mean, s.p99, s.max
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
        "{} accuracy check(s) failed:\n{}\n\n{}\ndaemon log:\n{}",
        fail.len(),
        fail.join("\n"),
        table(&rows),
        daemon.log_text()
    );
    drop(daemon);
    drop(sim);
}

/// The simulator itself, checked with tools that are not pingmachine: fping
/// sees every ICMP behaviour; plain sockets time the HTTP delay and the
/// delayed connect. A failure here is the simulator's, not the daemon's.
#[test]
fn simulator_behaves_as_configured() {
    if !skip_unless_possible("simulator_behaves_as_configured") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let h = |addr: &str, delay_ms: f64, loss: f64, mode: Mode| HostCfg {
        addr: ip(addr),
        delay_ms,
        jitter_ms: 0.0,
        loss,
        mode,
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
        http: vec![HttpCfg {
            addr: "198.18.0.22:8080".parse().unwrap(),
            delay_ms: 50.0,
        }],
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
    let args = ["-C", "10", "-q", "-p", "200", "-i", "1", "-t", "3000"];
    let (started, ctx, summary) = fping_c(&sim, &args, &targets);
    let vals = |a: &str| {
        summary
            .get(a)
            .unwrap_or_else(|| panic!("no fping line for {a}; {ctx}"))
    };
    for a in ["198.18.0.10", "2001:db8::10"] {
        let v: Vec<f64> = vals(a).iter().map(|x| x.unwrap()).collect();
        let m = median(&v).unwrap();
        assert!(
            (m - 20.0).abs() <= 0.3,
            "{a}: fping median {m} for a 20 ms delay; {ctx}"
        );
    }
    // Loss: fping's lost pings are exactly the simulator's drops.
    let dropped = sim
        .dropped()
        .iter()
        .filter(|d| d.addr == ip("198.18.0.11") && d.at >= started)
        .count();
    let lost = vals("198.18.0.11").iter().filter(|x| x.is_none()).count();
    assert_eq!(
        lost, dropped,
        "198.18.0.11: fping lost vs simulator dropped; {ctx}"
    );
    assert!(
        dropped > 0 && dropped < 10,
        "50 % loss over 10 pings dropped {dropped}"
    );
    for a in ["198.18.0.12", "198.18.0.14", "198.18.0.15"] {
        assert!(
            vals(a).iter().all(Option::is_none),
            "{a}: fping got answers; {ctx}"
        );
    }
    // Duplicates: fping reports them and keeps the first reply's RTT.
    let v: Vec<f64> = vals("198.18.0.13").iter().map(|x| x.unwrap()).collect();
    assert!(
        (median(&v).unwrap() - 5.0).abs() <= 0.3,
        "duplicate: {v:?}; {ctx}"
    );
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

    // HTTP after 50 ms, delayed connect after 30 ms, kernel listener at
    // once, timed from a thread inside the prober namespace.
    let (http_totals, connects, kernel_connects) = sim
        .run_in_prober(|| {
            let connect = |a: &str| {
                let t = Instant::now();
                let s = TcpStream::connect_timeout(&a.parse().unwrap(), Duration::from_secs(2));
                (t.elapsed().as_secs_f64() * 1000.0, s)
            };
            let (mut http, mut delayed, mut kernel) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..5 {
                let t = Instant::now();
                let (_, s) = connect("198.18.0.22:8080");
                let mut s = s.expect("connect to the HTTP server");
                s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                s.write_all(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
                let mut resp = Vec::new();
                let _ = s.read_to_end(&mut resp);
                http.push(t.elapsed().as_secs_f64() * 1000.0);
                assert!(
                    resp.starts_with(b"HTTP/1.1 200 OK"),
                    "{:?}",
                    String::from_utf8_lossy(&resp)
                );
                let (ms, s) = connect("198.18.0.30:8082");
                s.expect("delayed connect");
                delayed.push(ms);
                let (ms, s) = connect("198.18.0.23:8081");
                s.expect("connect to the kernel listener");
                kernel.push(ms);
            }
            (http, delayed, kernel)
        })
        .unwrap();
    let m = median(&http_totals).unwrap();
    assert!(
        (50.0..=55.0).contains(&m),
        "HTTP 50 ms: totals {http_totals:?}"
    );
    // Relative to the kernel listener's connect time (the system call's
    // own cost).
    let m = median(&connects).unwrap();
    let k = median(&kernel_connects).unwrap();
    assert!(k < 5.0, "kernel listener connect {kernel_connects:?}");
    assert!(
        m >= 30.0 && m - k <= 30.0 + delay_bound(30.0),
        "connect 30 ms: {connects:?} (kernel listener {kernel_connects:?})"
    );
    let stats = sim.stats();
    println!(
        "simulator self-test: fping {summary:?}; http {http_totals:?} ms; delayed connect {connects:?} ms; {stats:?}"
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

/// Regression test for a daemon issue this harness found: the RRD time of a
/// round used to be `floor(now/step)*step - step` taken when the round was
/// *delivered*. With an explicit fping `interval`, validation only asks
/// `(pings-1)*interval + 3000 < step*1000`, but the round starts at the job's
/// random offset (up to step/(pings+1)), so a round that waited for its 3 s
/// timeout could end after the next step boundary, be stamped one step late,
/// and the next round (ending early) then got the same time and was refused
/// by librrd. Rounds are now stamped from the step they started in.
#[test]
fn explicit_interval_rounds_keep_their_rrd_time() {
    if !skip_unless_possible("explicit_interval_rounds_keep_their_rrd_time") {
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
    assert!(
        problems.is_empty(),
        "{}\nRRD rows (t, loss): {:?}\n'update skipped' lines in the log: {skipped}\nlog:\n{}",
        problems.join("\n"),
        rows.iter().map(|r| (r.t, r.loss)).collect::<Vec<_>>(),
        daemon.log_text()
    );
}
