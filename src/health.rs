//! The daemon's telemetry: one [`Sheet`] of every figure, filled by each
//! part from the counters it keeps (jobs and registry, the ICMP engine,
//! the store writers, the sinks, rrdcached, logging) plus build info,
//! orders by state and the standard `process_*` figures. The same sheet
//! is `BASEDIR/.stats.json` ([`Telemetry::stats_json`]) and the daemon's
//! part of `/metrics` ([`Telemetry::expose`]); nothing is mapped twice.

use probes::sync::lock;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use probes::icmp::{EngineStats, IcmpEngine};

use crate::basedir::BaseDir;
use crate::counters::JobStats;
use crate::names::Names;
use crate::sink::Sinks;
use crate::stats::Started;
use crate::store::StoreHandle;
use crate::telemetry::{Exposition, Sheet};

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
        let mut c = lock(&self.cached);
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

/// Everything the daemon's telemetry is read from; shared by the
/// `.stats.json` writer and `/metrics`.
#[derive(Debug)]
pub struct Telemetry {
    /// What the daemon was started with.
    pub started: Started,
    /// Jobs and registry.
    pub jobs: Arc<JobStats>,
    /// The ICMP engine.
    pub icmp: Arc<IcmpEngine>,
    /// The store writers.
    pub store: StoreHandle,
    /// The sinks.
    pub sinks: Arc<Sinks>,
    /// The orders' host names.
    pub names: Arc<Names>,
}

impl Telemetry {
    /// Every figure now. `dir_counts` (rejected, archived orders) are on
    /// `/metrics` only: counting them walks directories.
    pub fn sheet(&self, dir_counts: Option<(u64, u64)>) -> Sheet {
        let mut s = Sheet::new();
        s.metric(1u64).info(
            "pingmachine_build",
            "Version of pingmachine.",
            &[("version", env!("CARGO_PKG_VERSION"))],
        );
        // Dashboards made for smokeping_prober find their probers by it.
        s.metric(1u64).info(
            "smokeping_prober_build",
            "Compatibility alias of pingmachine_build_info, for dashboards made for smokeping_prober (pingmachine's version).",
            &[("version", env!("CARGO_PKG_VERSION"))],
        );
        s.json("time", crate::clock::unix_s());
        s.json("pid", std::process::id());
        s.json("stats_interval_s", self.started.stats_interval_s);
        if let Some(a) = self.started.listen {
            s.json("listen", a.to_string());
            if !self.started.route_prefix.is_empty() {
                s.json("route_prefix", self.started.route_prefix.clone());
            }
            if self.started.web_auth {
                s.json("web_auth", true);
            }
            if !self.started.web_tls.is_empty() {
                s.json("web_tls", self.started.web_tls);
            }
        }
        self.jobs.telemetry(&mut s);
        if let Some((rejected, archived)) = dir_counts {
            for (state, v) in [("rejected", rejected), ("archived", archived)] {
                s.metric(v).gauge_with(
                    "pingmachine_orders",
                    "Orders by state: active (valid and probed), rejected (in rejected/), archived (output in archive/).",
                    &[("state", state)],
                );
            }
        }
        icmp(&mut s, &self.icmp.stats());
        tcp(&mut s, probes::tcp::handshake_counts());
        self.store.stats().telemetry(&mut s);
        self.sinks.telemetry(&mut s);
        self.names.telemetry(&mut s);
        if let Some(c) = &self.started.rrdcached {
            c.telemetry(&mut s);
        }
        s.object("log", |s| {
            s.json("lines_written", crate::logging::written());
            s.figure("lines_dropped", crate::logging::dropped())
                .counter(
                    "pingmachine_log_lines_dropped",
                    "Log lines that could not be written (queue full, output failing).",
                );
        });
        process(&mut s);
        s
    }

    /// The text of `.stats.json`.
    pub fn stats_json(&self) -> String {
        self.sheet(None).to_json()
    }

    /// The whole scrape: every sink's series, then the daemon's figures.
    pub fn expose(&self, out: &mut Exposition, dir_counts: (u64, u64)) {
        self.sinks.expose(out, crate::clock::unix_s());
        self.sheet(Some(dir_counts)).expose(out);
    }
}

/// The ICMP engine's figures: the object `icmp` of `.stats.json`.
fn icmp(s: &mut Sheet, e: &EngineStats) {
    s.object("icmp", |s| {
        s.figure("sent", e.sent)
            .counter("pingmachine_icmp_requests", "ICMP echo requests sent.");
        s.figure("send_errors", e.send_errors).counter(
            "pingmachine_icmp_send_errors",
            "ICMP echo requests the kernel refused.",
        );
        s.figure("received", e.received).counter(
            "pingmachine_icmp_replies",
            "ICMP echo replies matched to a ping in time.",
        );
        s.figure("late", e.late).counter(
            "pingmachine_icmp_replies_late",
            "ICMP echo replies after their round's timeout (the ping counts as lost).",
        );
        s.figure("unmatched", e.unmatched).counter(
            "pingmachine_icmp_replies_unmatched",
            "ICMP echo replies with pingmachine's mark that match no waiting ping (duplicates, expired, mangled).",
        );
        s.json("foreign", e.foreign);
        s.figure("icmp_errors", e.icmp_errors).counter(
            "pingmachine_icmp_errors_received",
            "ICMP error messages received (never an answer).",
        );
        s.metric(e.recv_errors).counter(
            "pingmachine_icmp_receive_errors",
            "Failed reads of an ICMP socket.",
        );
        s.json("rounds_active", e.rounds_active);
        s.json("pending", e.pending);
        s.json("tx_stamped", e.tx_stamped);
        const FALLBACKS: &str = "Answered pings whose RTT used a user-space time because the kernel gave no timestamp.";
        s.figure("tx_fallbacks", e.tx_fallbacks).counter_with(
            "pingmachine_icmp_timestamp_fallbacks",
            FALLBACKS,
            &[("direction", "transmit")],
        );
        s.figure("rx_fallbacks", e.rx_fallbacks).counter_with(
            "pingmachine_icmp_timestamp_fallbacks",
            FALLBACKS,
            &[("direction", "receive")],
        );
        s.figure("rx_dropped", e.rx_dropped).counter(
            "pingmachine_icmp_receive_buffer_drops",
            "Packets the kernel dropped on pingmachine's ICMP sockets because a receive buffer was full (SO_RXQ_OVFL): replies lost on this machine, not on the network.",
        );
    });
}

/// How the TCP handshakes of tcp, httping and ssh pings were timed: the
/// object `tcp` of `.stats.json`.
fn tcp(s: &mut Sheet, c: probes::tcp::HandshakeCounts) {
    const HELP: &str = "TCP handshakes (tcp, httping and ssh pings) by how they were timed: tap (SYN and SYN-ACK stamped at the device by a packet socket), tcp_info (the kernel's TCP sample), elapsed (around the connect call: a SYN sent again).";
    s.object("tcp", |s| {
        for (key, source, v) in [
            ("handshakes_tapped", "tap", c.tapped),
            ("handshakes_tcp_info", "tcp_info", c.tcp_info),
            ("handshakes_elapsed", "elapsed", c.elapsed),
        ] {
            s.figure(key, v).counter_with(
                "pingmachine_tcp_handshakes_timed",
                HELP,
                &[("source", source)],
            );
        }
    });
}

/// The standard `process_*` figures, from `/proc/self` (on `/metrics`).
fn process(s: &mut Sheet) {
    let Ok(me) = procfs::process::Process::myself() else {
        return;
    };
    if let Ok(st) = me.stat() {
        let ticks = procfs::ticks_per_second() as f64;
        s.metric((st.utime + st.stime) as f64 / ticks).counter(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds.",
        );
        s.metric(st.vsize).gauge(
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
        );
        s.metric(st.rss * procfs::page_size()).gauge(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
        );
        if let Ok(boot) = procfs::boot_time_secs() {
            s.metric((boot as f64 + st.starttime as f64 / ticks).round())
                .gauge(
                    "process_start_time_seconds",
                    "Start time of the process since unix epoch in seconds.",
                );
        }
    }
    if let Ok(n) = me.fd_count() {
        s.metric(n as u64)
            .gauge("process_open_fds", "Number of open file descriptors.");
    }
    if let Ok((soft, _)) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
    {
        s.metric(soft).gauge(
            "process_max_fds",
            "Maximum number of open file descriptors.",
        );
    }
}
