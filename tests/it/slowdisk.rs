//! Probing never waits for the disk. The daemon's base directory is on a
//! file system that the test makes slow on purpose (`testkit::slowdisk`:
//! synchronous writes and a cgroup limit of a few I/O operations a second
//! on its loop device) while 10,000 orders run, then fast again:
//!
//! * while the disk is slow, rounds start on time (p99 of the lateness
//!   histogram ≤ 50 ms) and no ping is lost;
//! * what storage could not keep up with is counted: superseded
//!   `last_result` versions, RRD updates dropped beyond `--rrd-backlog`;
//! * once the disk is fast again, every `last_result` is fresh within two
//!   steps, and every order with `main.rrd` has every round but the ones
//!   counted as dropped;
//! * a stop while the disk is slow stops every job at once and counts the
//!   rounds the writers could not write within their drain.
//!
//! Needs root (a loop device, a mount, a cgroup, raw ICMP).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::support::{can_ping, require_root, rrd_fetch, skip, wait_for, Base, Daemon};

const STEP: i64 = 10;
const NORRD: usize = 9_900;
const RRD: usize = 100;
/// Unwritten RRD updates kept per order: small, so that the slow phase
/// overflows it and drops are exercised.
const BACKLOG: usize = 3;
/// How long the disk stays slow, and its limit.
const SLOW_FOR: Duration = Duration::from_secs(70);
const SLOW_IOPS: u32 = 30;

fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// `floor(now/step)*step - step`: the RRD time of a round started now.
fn rrd_time(now: i64) -> i64 {
    now.div_euclid(STEP) * STEP - STEP
}

fn id(i: usize) -> String {
    if i < RRD {
        format!("rrd/o{i:03}")
    } else {
        format!("n/o{i:05}")
    }
}

fn target(i: usize) -> String {
    let [_, b, c, d] = u32::try_from(i + 0x0001_0001).unwrap().to_be_bytes();
    format!("127.{b}.{c}.{}", d.max(1))
}

/// The daemon's `/metrics`: the value of every sample line, by its name
/// and labels, and the sums of `smokeping_requests_total` and
/// `smokeping_response_duration_seconds_count` over every order.
struct Scrape {
    samples: BTreeMap<String, f64>,
    requests: f64,
    responses: f64,
}

fn scrape(addr: SocketAddr) -> Scrape {
    let (_, _, text) = crate::support::http_get(addr, "/metrics", None);
    let mut out = Scrape {
        samples: BTreeMap::new(),
        requests: 0.0,
        responses: 0.0,
    };
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((key, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(v) = value.parse::<f64>() else {
            continue;
        };
        if key.starts_with("smokeping_requests_total{") {
            out.requests += v;
        } else if key.starts_with("smokeping_response_duration_seconds_count{") {
            out.responses += v;
        } else if key.starts_with("pingmachine_") {
            out.samples.insert(key.to_owned(), v);
        }
    }
    out
}

impl Scrape {
    fn get(&self, key: &str) -> f64 {
        *self
            .samples
            .get(key)
            .unwrap_or_else(|| panic!("no {key} in /metrics"))
    }

    /// Round starts in the lateness histogram at most `le` late.
    fn late_le(&self, le: &str) -> f64 {
        self.get(&format!(
            "pingmachine_round_start_lateness_seconds_bucket{{le=\"{le}\"}}"
        ))
    }
}

#[test]
fn timing_slow_disk_never_delays_probing_and_storage_catches_up() {
    const TEST: &str = "timing_slow_disk_never_delays_probing_and_storage_catches_up";
    if !require_root(TEST, "a loop device, a mount and a cgroup") || !can_ping(TEST) {
        return;
    }
    for tool in ["losetup", "mkfs.ext2", "mount"] {
        if crate::support::tool(TEST, tool, "util-linux e2fsprogs mount").is_none() {
            return;
        }
    }
    let disk = match testkit::slowdisk::SlowDisk::create(1024) {
        Ok(d) => d,
        Err(e) => {
            skip(TEST, &format!("cannot make a slow disk here: {e}"));
            return;
        }
    };
    let root = disk.mount.join("base");
    std::fs::create_dir(&root).unwrap();
    let base = Base::at(&root);
    for i in 0..NORRD + RRD {
        let rrd = if i < RRD { "" } else { "rrd_template: norrd\n" };
        base.write_order(
            &id(i),
            &format!(
                "user: slow\nstep: {STEP}\npings: 4\nprobe: fping\n{rrd}fping: {{host: '{}'}}\n",
                target(i)
            ),
        );
    }
    let port = testkit::free_tcp_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let backlog = BACKLOG.to_string();
    let mut daemon = Daemon::start(
        &base,
        &[
            "--listen",
            &addr.to_string(),
            "--rrd-backlog",
            &backlog,
            "--metrics-buckets",
            "1",
            "--stats-interval",
            "1",
        ],
    );
    disk.add_process(daemon.child.id()).unwrap();

    // Every order has a result before the disk slows down.
    let all = |since: i64| {
        (0..NORRD + RRD).all(|i| {
            base.last_result(&id(i))
                .is_some_and(|r| r.int("time") >= since)
        })
    };
    assert!(
        wait_for(Duration::from_secs(90), || all(0).then_some(())).is_some(),
        "not every order wrote a first result; log:\n{}",
        daemon.log_text()
    );
    // And a later round, so that the window checked below starts after
    // every RRD's first row (its start, which no round fills).
    let second = rrd_time(now_s()) + STEP;
    assert!(
        wait_for(Duration::from_secs(60), || all(second).then_some(())).is_some(),
        "not every order wrote a second result; log:\n{}",
        daemon.log_text()
    );

    // Slow.
    let before = scrape(addr);
    let slow_from = now_s();
    disk.slow(SLOW_IOPS).unwrap();
    std::thread::sleep(SLOW_FOR);
    let during = scrape(addr);
    disk.fast().unwrap();
    let fast_from = now_s();

    let starts = during.get("pingmachine_round_start_lateness_seconds_count")
        - before.get("pingmachine_round_start_lateness_seconds_count");
    let on_time = during.late_le("0.05") - before.late_le("0.05");
    let behind = during.get("pingmachine_store_waiting_rounds");
    let lost = (during.requests - during.responses) - (before.requests - before.responses);
    let pings = during.requests - before.requests;
    println!(
        "disk slow for {} s at {SLOW_IOPS} IOPS: {starts} round starts, {on_time} of them at most 50 ms late; {pings} pings in delivered rounds, {lost} lost; {behind} rounds waiting for storage at the end",
        SLOW_FOR.as_secs()
    );
    assert!(
        starts >= 10.0 * (SLOW_FOR.as_secs_f64() / STEP as f64 - 1.0),
        "{starts} round starts: the jobs did not run"
    );
    assert!(
        on_time >= 0.99 * starts,
        "p99 of round start lateness above 50 ms while the disk was slow: {on_time} of {starts} on time"
    );
    assert!(pings > 0.0);
    assert_eq!(lost, 0.0, "pings lost while the disk was slow");
    assert!(
        behind > 0.0,
        "storage was never behind: the disk was not slow enough to test anything"
    );

    // Fast again: every last_result fresh within two steps.
    std::thread::sleep(Duration::from_secs(2 * STEP as u64));
    let fresh_since = rrd_time(now_s()) - STEP;
    let stale: Vec<String> = (0..NORRD + RRD)
        .filter(|i| {
            base.last_result(&id(*i))
                .is_none_or(|r| r.int("time") < fresh_since)
        })
        .map(id)
        .take(5)
        .collect();
    assert!(
        stale.is_empty(),
        "last_result older than two steps {} s after the disk was fast again: {stale:?}",
        now_s() - fast_from
    );

    // Nothing left to write, then the counts: superseded versions, and
    // every RRD round either in its file or counted as dropped.
    let settled = wait_for(Duration::from_secs(60), || {
        let s = scrape(addr);
        (s.get("pingmachine_store_waiting_rounds") == 0.0).then_some(s)
    })
    .expect("storage caught up");
    let superseded = settled.get("pingmachine_last_result_superseded_total");
    let dropped = settled.get("pingmachine_rrd_updates_dropped_total");
    let (from, to) = (rrd_time(slow_from) - 2 * STEP, rrd_time(now_s()) - 2 * STEP);
    let mut missing = 0.0;
    let mut rows = 0.0;
    let mut examples = Vec::new();
    for i in 0..RRD {
        let rrd = base.output(&id(i)).join("main.rrd");
        let mut gaps = Vec::new();
        for (t, values) in rrd_fetch(&rrd, "AVERAGE", STEP as u32, from, to) {
            if t > from && t <= to {
                rows += 1.0;
                if values.first().copied().flatten().is_none() {
                    missing += 1.0;
                    gaps.push(t - from);
                }
            }
        }
        if examples.len() < 3 {
            examples.push(format!("{}: rows missing at +{gaps:?} s", id(i)));
        }
    }
    println!(
        "storage caught up: {superseded} last_result versions superseded, {dropped} RRD updates dropped (backlog {BACKLOG}); {missing} of {rows} RRD rows missing between {from} and {to}"
    );
    assert!(superseded > 0.0, "no last_result was superseded");
    assert!(
        dropped > 0.0,
        "no RRD update was dropped beyond the backlog"
    );
    assert_eq!(
        missing,
        dropped,
        "every RRD round is in its file or counted as dropped (from {from}, slow from {slow_from}, fast from {fast_from}; write errors {}, stale rounds in .stats.json); {examples:?}; log of rrd/o000: {:#?}",
        settled.get("pingmachine_write_errors_total"),
        daemon
            .log_text()
            .lines()
            .filter(|l| l.contains("order=rrd/o000 ") && !l.contains(" round "))
            .collect::<Vec<_>>()
    );

    // A stop while the disk is slow: every job stops at once, the writers
    // get their drain, and what they could not write is counted.
    disk.slow(SLOW_IOPS).unwrap();
    std::thread::sleep(Duration::from_secs(2 * STEP as u64));
    let waiting = scrape(addr).get("pingmachine_store_waiting_rounds");
    let stop_at = std::time::Instant::now();
    daemon.signal("TERM");
    let status = wait_for(Duration::from_secs(30), || {
        daemon.child.try_wait().ok().flatten()
    });
    let took = stop_at.elapsed();
    disk.fast().unwrap();
    let status = status
        .unwrap_or_else(|| panic!("still running 30 s after SIGTERM:\n{}", daemon.log_text()));
    assert!(status.success(), "{status:?}");
    let log = daemon.log_text();
    assert!(
        !log.contains("did not stop in time"),
        "a job did not stop in time:\n{log}"
    );
    let stats: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(base.path().join(".stats.json")).unwrap())
            .unwrap();
    let unwritten = stats["store"]["unwritten_at_stop"].as_f64().unwrap();
    let said = log
        .lines()
        .find(|l| l.contains("rounds not written at stop"))
        .unwrap_or("");
    println!(
        "stopped in {took:?} with the disk slow: {waiting} rounds waiting at SIGTERM, {unwritten} not written (counted); {said}"
    );
    assert!(
        waiting > 0.0,
        "nothing was waiting at the stop: not a test of it"
    );
    // Between the scrape and SIGTERM at most one more round per order
    // was handed over.
    assert!(
        unwritten <= waiting + (NORRD + RRD) as f64,
        "{unwritten} counted unwritten, {waiting} were waiting"
    );
    // At a few I/O operations a second the drain cannot write thousands
    // of rounds: what is left is in the final .stats.json (the log line
    // saying so may itself wait for the slow disk and be dropped).
    assert!(unwritten > 0.0, "nothing counted as unwritten");
    assert!(took < Duration::from_secs(30), "the stop took {took:?}");
    drop(daemon);
    drop(disk);
}
