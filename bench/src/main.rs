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
//! * `history`: hours of rounds written into a base directory's RRDs, for
//!   screenshots of the web page.
//! * `web`: server time of the web page, its sparklines, graphs, series
//!   and charts with N orders, and round start lateness while clients
//!   browse.
//! * `scrape`: `/metrics` scrape time and round start lateness while
//!   scraped.
//! * `rrdcached`: RRD writes without and with rrdcached on a cold page
//!   cache: disk bytes and CPU per update.
//! * `remote-write`: the cost of `--remote-write` into a real
//!   VictoriaMetrics: CPU, RSS, series and bytes per second.
//!
//! One module per subcommand (`run`, `saturate`, `pickup`, `writer`,
//! `floor`, `wakeup`, `web`, `rrdcached`, `remote_write`); `common` holds what they share
//! (orders, the daemon under measurement and its `/proc` figures), `netns`
//! the test network.

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};

mod common;
mod figures;
mod floor;
mod history;
mod netns;
mod pickup;
mod remote_write;
mod rrdcached;
mod run;
mod saturate;
mod wakeup;
mod web;
mod writer;

use common::*;
use figures::*;
use floor::*;
use pickup::*;
use run::*;
use saturate::*;
use serde_json::Value;
use wakeup::*;
use web::*;
use writer::*;

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
        /// This share of the orders (every order whose number modulo 100 is
        /// below it) set packet options of their own (`size: 200`, `tos:
        /// 184`, `ttl: 32`): their jobs send with control messages on the
        /// shared socket, beside the others.
        #[arg(long, default_value_t = 0, value_name = "PERCENT", value_parser = clap::value_parser!(u32).range(0..=100))]
        with_options: u32,
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
    /// Cost of remote write: N orders run twice for the same window,
    /// without `--remote-write`, then pushing to a VictoriaMetrics started
    /// for the run: CPU, RSS, series per order and round, bytes per second.
    RemoteWrite {
        #[arg(long, default_value_t = 10_000)]
        orders: usize,
        #[arg(long, default_value_t = 60)]
        step: u32,
        #[arg(long, default_value_t = 20)]
        pings: u32,
        /// Steps to measure after the first round of every job.
        #[arg(long, default_value_t = 2)]
        steps: u32,
        /// The VictoriaMetrics binary.
        #[arg(long, default_value = "victoria-metrics")]
        receiver: PathBuf,
        /// The daemon's --remote-write-series: summary, or full (the
        /// summary and /metrics every 60 s).
        #[arg(long, default_value = "summary", value_parser = ["summary", "full"])]
        series: String,
    },
    /// Hours of rounds for orders of a base directory (`--basedir`),
    /// written with the store's own librrd calls: a base whose web page
    /// shows hours of smoke at once, for screenshots and trying the page.
    History {
        /// The base directory (its orders/ holds the orders named).
        #[arg(long)]
        basedir: std::path::PathBuf,
        /// Hours of rounds, up to now.
        #[arg(long, default_value_t = 30)]
        hours: u32,
        /// An order and its character:
        /// ID:DELAY_MS:JITTER_MS:LOSS[:EVENING_MS[:OUTAGE_HOURS_AGO]]
        /// (LOSS from 0 to 1; EVENING_MS more at 18:00 UTC; a 20-minute
        /// outage that many hours ago).
        #[arg(long = "order", value_name = "CHARACTER", required = true, value_parser = history::parse_character)]
        orders: Vec<history::Character>,
    },
    /// The web page: server time of `/` with N orders, of list pages with
    /// sparklines, a 30-hour graph, a series, /charts, and round start
    /// lateness with and without `--clients` browsing in a loop.
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

/// The daemon's binary is there, and this is root.
fn check_can_run(cli: &Cli) -> anyhow::Result<()> {
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
    check_can_run(&cli)?;
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
            with_options,
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
                with_options: *with_options,
            },
            fping.then_some(*fping_mode),
        ),
        Cmd::Web {
            orders,
            rrd_orders,
            clients,
            window,
        } => web(&cli, *orders, *rrd_orders, *clients, *window),
        Cmd::History {
            basedir,
            hours,
            orders,
        } => history::history(basedir, *hours, orders),
        Cmd::Scrape {
            orders,
            step,
            pings,
            steps,
            every,
        } => scrape(&cli, *orders, *step, *pings, *steps, *every),
        Cmd::RemoteWrite {
            orders,
            step,
            pings,
            steps,
            receiver,
            series,
        } => remote_write::remote_write(&cli, *orders, (*step, *pings, *steps), receiver, series),
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
                with_options: 0,
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
