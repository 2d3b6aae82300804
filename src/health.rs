//! The daemon's own health as Prometheus metrics (`pingmachine_*` and the
//! standard `process_*`): orders by state, rounds, round start lateness,
//! ICMP engine counters, the store writers, line-protocol queues, the file
//! watcher, build info, and the process's CPU, memory and descriptors.
//! Read from the counters the parts already keep (the same ones
//! `.stats.json` shows); nothing is counted twice.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use probes::icmp::EngineStats;

use crate::basedir::BaseDir;
use crate::counters::{JobStats, LATENESS_BUCKETS_S};
use crate::sink::prometheus::{go_float, labels, Exposition, Kind};
use crate::sink::Sinks;
use crate::store::StoreStats;

/// How long counts that need a directory walk (rejected and archived
/// orders) are reused.
pub const DIR_COUNT_TTL: Duration = Duration::from_secs(60);

/// Rejected and archived orders, counted by walking their directories at
/// most once per [`DIR_COUNT_TTL`].
#[derive(Debug, Default)]
pub struct DirCounts {
    cached: Mutex<Option<(Instant, u64, u64)>>,
}

impl DirCounts {
    /// `(rejected, archived)`, walking the directories when the last count
    /// is older than [`DIR_COUNT_TTL`]. Blocking.
    pub fn get(&self, base: &BaseDir) -> (u64, u64) {
        let mut c = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, r, a)) = *c {
            if at.elapsed() < DIR_COUNT_TTL {
                return (r, a);
            }
        }
        let rejected = crate::inspect::rejected(base).len() as u64;
        let archived = crate::inspect::archived(base).len() as u64;
        *c = Some((Instant::now(), rejected, archived));
        (rejected, archived)
    }
}

/// What the health metrics are read from.
#[derive(Debug)]
pub struct Sources<'a> {
    /// Jobs and registry.
    pub jobs: &'a JobStats,
    /// The ICMP engine.
    pub icmp: EngineStats,
    /// The store writers.
    pub store: &'a StoreStats,
    /// The sinks.
    pub sinks: &'a Sinks,
    /// The rrdcached client, if any.
    pub rrdcached: Option<&'a crate::store::rrdcached::CachedStats>,
    /// `(rejected, archived)` orders.
    pub dir_counts: (u64, u64),
}

fn get(a: &AtomicU64) -> f64 {
    a.load(Ordering::Relaxed) as f64
}

/// Writes the health families to `out`.
pub fn render(out: &mut Exposition, s: &Sources<'_>) {
    let one = |out: &mut Exposition, name: &str, kind: Kind, help: &str, v: f64| {
        out.family(name, kind, help);
        let sample = if kind == Kind::Counter {
            format!("{name}_total")
        } else {
            name.to_owned()
        };
        out.sample(&sample, "", "", v);
    };

    out.family("pingmachine_build", Kind::Info, "Version of pingmachine.");
    out.sample(
        "pingmachine_build_info",
        &labels(&[("version", env!("CARGO_PKG_VERSION"))]),
        "",
        1.0,
    );
    out.family(
        "pingmachine_orders",
        Kind::Gauge,
        "Orders by state: active (valid and probed), rejected (in rejected/), archived (output in archive/).",
    );
    let (rejected, archived) = s.dir_counts;
    for (state, v) in [
        ("active", get(&s.jobs.orders)),
        ("rejected", rejected as f64),
        ("archived", archived as f64),
    ] {
        out.sample("pingmachine_orders", &labels(&[("state", state)]), "", v);
    }
    one(
        out,
        "pingmachine_jobs",
        Kind::Gauge,
        "Running probing jobs.",
        get(&s.jobs.jobs),
    );
    one(
        out,
        "pingmachine_ready",
        Kind::Gauge,
        "1 once the first scan of orders/ is done and its jobs run.",
        if s.jobs.initial_scan_ms.load(Ordering::Relaxed) > 0 {
            1.0
        } else {
            0.0
        },
    );
    one(
        out,
        "pingmachine_rounds",
        Kind::Counter,
        "Rounds whose results were delivered.",
        get(&s.jobs.rounds),
    );
    one(
        out,
        "pingmachine_rounds_abandoned",
        Kind::Counter,
        "Rounds still running at the next round's start, thrown away.",
        get(&s.jobs.rounds_abandoned),
    );
    one(
        out,
        "pingmachine_rounds_skipped",
        Kind::Counter,
        "Rounds not begun because they started too late to end before the next round.",
        get(&s.jobs.rounds_skipped),
    );
    out.family(
        "pingmachine_round_start_lateness_seconds",
        Kind::Histogram,
        "How late rounds started after their scheduled time.",
    );
    let mut cumulative = 0;
    for (i, b) in LATENESS_BUCKETS_S.iter().enumerate() {
        cumulative += s.jobs.start_late_buckets[i].load(Ordering::Relaxed);
        out.bucket(
            "pingmachine_round_start_lateness_seconds_bucket",
            "",
            &go_float(*b),
            cumulative,
        );
    }
    let starts = s.jobs.starts.load(Ordering::Relaxed);
    out.bucket(
        "pingmachine_round_start_lateness_seconds_bucket",
        "",
        "+Inf",
        starts,
    );
    out.sample(
        "pingmachine_round_start_lateness_seconds_sum",
        "",
        "",
        get(&s.jobs.start_late_us_sum) / 1e6,
    );
    out.sample(
        "pingmachine_round_start_lateness_seconds_count",
        "",
        "",
        starts as f64,
    );

    let i = &s.icmp;
    for (name, help, v) in [
        ("pingmachine_icmp_requests", "ICMP echo requests sent.", i.sent),
        ("pingmachine_icmp_send_errors", "ICMP echo requests the kernel refused.", i.send_errors),
        ("pingmachine_icmp_replies", "ICMP echo replies matched to a ping in time.", i.received),
        ("pingmachine_icmp_replies_late", "ICMP echo replies after their round's timeout (the ping counts as lost).", i.late),
        ("pingmachine_icmp_replies_unmatched", "ICMP echo replies with pingmachine's mark that match no waiting ping (duplicates, expired, mangled).", i.unmatched),
        ("pingmachine_icmp_errors_received", "ICMP error messages received (never an answer).", i.icmp_errors),
        ("pingmachine_icmp_receive_errors", "Failed reads of an ICMP socket.", i.recv_errors),
        ("pingmachine_icmp_receive_buffer_drops", "Packets the kernel dropped on pingmachine's ICMP sockets because a receive buffer was full (SO_RXQ_OVFL): replies lost on this machine, not on the network.", i.rx_dropped),
    ] {
        one(out, name, Kind::Counter, help, v as f64);
    }
    out.family(
        "pingmachine_icmp_timestamp_fallbacks",
        Kind::Counter,
        "Answered pings whose RTT used a user-space time because the kernel gave no timestamp.",
    );
    for (dir, v) in [("transmit", i.tx_fallbacks), ("receive", i.rx_fallbacks)] {
        out.sample(
            "pingmachine_icmp_timestamp_fallbacks_total",
            &labels(&[("direction", dir)]),
            "",
            v as f64,
        );
    }

    let st = s.store;
    one(
        out,
        "pingmachine_rrd_updates",
        Kind::Counter,
        "Successful RRD updates.",
        get(&st.rrd_updates),
    );
    one(
        out,
        "pingmachine_last_result_writes",
        Kind::Counter,
        "last_result files written.",
        get(&st.last_results),
    );
    one(
        out,
        "pingmachine_write_errors",
        Kind::Counter,
        "Failed writes of main.rrd, last_result or archive moves.",
        get(&st.errors),
    );
    one(
        out,
        "pingmachine_writer_queue_high_water",
        Kind::Gauge,
        "Most entries (orders with unwritten rounds, and commands) that waited in one store writer's queue since start.",
        get(&st.queue_high_water),
    );
    one(
        out,
        "pingmachine_store_waiting_rounds",
        Kind::Gauge,
        "Rounds measured and not yet written (main.rrd updates, or an order's last_result): storage is behind by this much.",
        get(&st.waiting_rounds),
    );
    one(
        out,
        "pingmachine_last_result_superseded",
        Kind::Counter,
        "last_result versions replaced by a newer round of the order before storage wrote them (not lost: the file shows the latest round).",
        get(&st.superseded),
    );
    one(
        out,
        "pingmachine_rrd_updates_dropped",
        Kind::Counter,
        "main.rrd updates dropped, oldest first, because their order already had --rrd-backlog unwritten ones (gaps in those RRDs).",
        get(&st.rrd_dropped),
    );

    if let Some(c) = s.rrdcached {
        out.family(
            "pingmachine_rrdcached_updates",
            Kind::Counter,
            "RRD updates for rrdcached: sent (taken), refused by it, or dropped (queue full, file moved while it was down).",
        );
        for (result, v) in [
            ("sent", &c.sent),
            ("refused", &c.refused),
            ("dropped", &c.dropped),
        ] {
            out.sample(
                "pingmachine_rrdcached_updates_total",
                &labels(&[("result", result)]),
                "",
                get(v),
            );
        }
        one(
            out,
            "pingmachine_rrdcached_queue_length",
            Kind::Gauge,
            "RRD updates waiting for rrdcached.",
            get(&c.queued),
        );
        one(
            out,
            "pingmachine_rrdcached_up",
            Kind::Gauge,
            "1 while the connection to rrdcached is up.",
            get(&c.connected),
        );
        one(
            out,
            "pingmachine_rrdcached_connect_failures",
            Kind::Counter,
            "Connections to rrdcached that failed or were lost.",
            get(&c.connect_failures),
        );
    }

    out.family(
        "pingmachine_lineproto_lines",
        Kind::Counter,
        "Line-protocol lines per destination: sent, or dropped (queue full, refused, send failure).",
    );
    for o in s.sinks.outputs() {
        let dest = o.destination().label();
        for (outcome, v) in [("sent", &o.stats.sent), ("dropped", &o.stats.dropped)] {
            out.sample(
                "pingmachine_lineproto_lines_total",
                &labels(&[("destination", &dest), ("outcome", outcome)]),
                "",
                get(v),
            );
        }
    }
    out.family(
        "pingmachine_lineproto_queued_lines",
        Kind::Gauge,
        "Line-protocol lines waiting per destination.",
    );
    for o in s.sinks.outputs() {
        out.sample(
            "pingmachine_lineproto_queued_lines",
            &labels(&[("destination", &o.destination().label())]),
            "",
            o.queued() as f64,
        );
    }

    one(
        out,
        "pingmachine_rescans",
        Kind::Counter,
        "Full rescans of orders/ (every 30 s, on SIGHUP, after lost watcher hints).",
        get(&s.jobs.rescans),
    );
    one(
        out,
        "pingmachine_watcher_overflows",
        Kind::Counter,
        "Times the file watcher's hint queue overflowed (a rescan follows).",
        get(&s.jobs.watcher_overflows),
    );
    one(
        out,
        "pingmachine_log_lines_dropped",
        Kind::Counter,
        "Log lines that could not be written (queue full, output failing).",
        crate::logging::dropped() as f64,
    );
    process(out);
}

/// The standard `process_*` metrics, from `/proc/self`.
fn process(out: &mut Exposition) {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return;
    };
    // Fields after the command name, which is in parentheses.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
        return;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| f.get(n - 3).and_then(|v| v.parse::<f64>().ok());
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .map_or(100.0, |t| t as f64);
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .map_or(4096.0, |p| p as f64);
    if let (Some(utime), Some(stime)) = (field(14), field(15)) {
        out.family(
            "process_cpu_seconds",
            Kind::Counter,
            "Total user and system CPU time spent in seconds.",
        );
        out.sample("process_cpu_seconds_total", "", "", (utime + stime) / ticks);
    }
    if let Some(vsize) = field(23) {
        out.family(
            "process_virtual_memory_bytes",
            Kind::Gauge,
            "Virtual memory size in bytes.",
        );
        out.sample("process_virtual_memory_bytes", "", "", vsize);
    }
    if let Some(rss) = field(24) {
        out.family(
            "process_resident_memory_bytes",
            Kind::Gauge,
            "Resident memory size in bytes.",
        );
        out.sample("process_resident_memory_bytes", "", "", rss * page);
    }
    if let (Some(start), Ok(uptime)) = (field(22), std::fs::read_to_string("/proc/uptime")) {
        if let Some(up) = uptime
            .split_whitespace()
            .next()
            .and_then(|u| u.parse::<f64>().ok())
        {
            let boot = crate::clock::unix_ms() as f64 / 1000.0 - up;
            out.family(
                "process_start_time_seconds",
                Kind::Gauge,
                "Start time of the process since unix epoch in seconds.",
            );
            out.sample(
                "process_start_time_seconds",
                "",
                "",
                (boot + start / ticks).round(),
            );
        }
    }
    if let Ok(rd) = std::fs::read_dir("/proc/self/fd") {
        out.family(
            "process_open_fds",
            Kind::Gauge,
            "Number of open file descriptors.",
        );
        out.sample("process_open_fds", "", "", rd.count() as f64);
    }
    if let Ok((soft, _)) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
    {
        out.family(
            "process_max_fds",
            Kind::Gauge,
            "Maximum number of open file descriptors.",
        );
        out.sample("process_max_fds", "", "", soft as f64);
    }
}
