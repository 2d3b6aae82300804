//! `run`: N orders for K steps, with fping on the same targets in the same
//! run; every figure of docs/PERFORMANCE.md's main table.

use crate::*;

/// What one `run` level is asked to do.
#[derive(Clone, Copy)]
pub(crate) struct Load {
    pub(crate) orders: usize,
    pub(crate) step: u32,
    pub(crate) pings: u32,
    pub(crate) interval: Option<u32>,
    pub(crate) steps: u32,
    pub(crate) rrd: bool,
    /// New orders written after the window (pickup latency); 0: none.
    pub(crate) pickup: usize,
    /// Whole steps waited after every job's first round, before the window.
    pub(crate) warmup: u32,
    /// Where the targets are.
    pub(crate) net: Net,
    /// Seconds between drops of the page cache in the window (0: never).
    pub(crate) drop_caches_every: u64,
    /// Percent of the orders with packet options of their own.
    pub(crate) with_options: u32,
}

/// The figures of one measured daemon run.
pub(crate) struct Figures {
    /// Pings sent per second over the measured window.
    pub(crate) sent_rate: f64,
    /// Pings asked per second by the orders.
    pub(crate) asked_rate: f64,
    pub(crate) lost: f64,
    pub(crate) late: f64,
    pub(crate) send_errors: f64,
    pub(crate) abandoned: f64,
    /// Rounds skipped as too late to end in time (since start-up).
    pub(crate) skipped: f64,
    /// Average round start lateness in the window, ms.
    pub(crate) late_start_ms: f64,
    pub(crate) cpu_share: f64,
    /// CPU seconds per ping over the window.
    pub(crate) cpu_per_ping: f64,
    pub(crate) rss_mb: f64,
}

/// Starts the daemon on `load` (in `testnet`'s prober namespace if
/// given), waits for steady state, measures `load.steps` whole steps and
/// prints the figures.
pub(crate) fn measure(
    cli: &Cli,
    load: Load,
    testnet: Option<&netns::TestNet>,
) -> anyhow::Result<Figures> {
    let settled = settle(cli, &load, testnet)?;
    let base = settled.base.clone();
    let o = observe(settled, &load, testnet)?;
    let figures = report(&load, &o);
    std::fs::remove_dir_all(&base).ok();
    figures
}

/// The daemon running on the orders, settled: every job has had its first
/// round and `warmup` more steps have passed.
struct Settled {
    base: PathBuf,
    d: Daemon,
    /// The daemon's own time to schedule every order, ms.
    scan_ms: f64,
    /// When the bench saw that, s after process start.
    scheduled_after: f64,
    /// When every output directory was ready, s after process start.
    dirs_after: f64,
    jobs: f64,
}

fn settle(cli: &Cli, load: &Load, testnet: Option<&netns::TestNet>) -> anyhow::Result<Settled> {
    let Load {
        orders,
        step,
        pings,
        interval,
        rrd,
        warmup,
        net,
        with_options,
        ..
    } = *load;
    let base = tempbase(&cli.dir, "run")?;
    let t0 = Instant::now();
    write_orders(&base.join("orders"), 0..orders, |i| {
        let o = order_to(net.target(i), step, pings, interval, rrd);
        if (i % 100) < with_options as usize {
            o.replace("fping:\n", "fping:\n  size: 200\n  tos: 184\n  ttl: 32\n")
        } else {
            o
        }
    })?;
    println!(
        "wrote {orders} orders (step {step}, pings {pings}, rrd {rrd}, {with_options} % with packet options) in {:.1} s",
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
    Ok(Settled {
        base,
        d,
        scan_ms,
        scheduled_after,
        dirs_after,
        jobs,
    })
}

/// What was read at both ends of the window, and after it.
struct Observed {
    settled: Settled0,
    /// `.stats.json` at the window's start and end.
    s0: Value,
    s: Value,
    /// Process CPU in the window, s; peak RSS, KiB.
    cpu: f64,
    rss_kib: u64,
    threads_start: std::collections::BTreeMap<String, (f64, f64)>,
    threads_end: std::collections::BTreeMap<String, (f64, f64)>,
    switches_start: std::collections::BTreeMap<String, (u64, u64)>,
    switches_end: std::collections::BTreeMap<String, (u64, u64)>,
    disk_read: u64,
    napi: f64,
    /// The window's length, s.
    window: f64,
    cache_drops: u32,
    /// Targets in network namespaces (`--net netns`).
    netns: bool,
    discards_start: Option<u64>,
    discards: Option<u64>,
    /// The daemon's log, once it stopped.
    log: String,
    pickups: Option<Vec<f64>>,
}

/// [`Settled`] without the daemon (stopped).
struct Settled0 {
    scan_ms: f64,
    scheduled_after: f64,
    dirs_after: f64,
    jobs: f64,
}

fn observe(
    settled: Settled,
    load: &Load,
    testnet: Option<&netns::TestNet>,
) -> anyhow::Result<Observed> {
    let Load {
        orders,
        step,
        pings,
        steps,
        pickup,
        net,
        drop_caches_every,
        ..
    } = *load;
    let Settled {
        base,
        d,
        scan_ms,
        scheduled_after,
        dirs_after,
        jobs,
    } = settled;
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
    Ok(Observed {
        settled: Settled0 {
            scan_ms,
            scheduled_after,
            dirs_after,
            jobs,
        },
        s0,
        s,
        cpu: cpu_end - cpu_start,
        rss_kib,
        threads_start,
        threads_end,
        switches_start,
        switches_end,
        disk_read,
        napi,
        window,
        cache_drops,
        netns: testnet.is_some(),
        discards_start,
        discards,
        log,
        pickups,
    })
}

/// Prints every figure; the ones `saturate` needs are returned.
fn report(load: &Load, o: &Observed) -> anyhow::Result<Figures> {
    let Load {
        orders,
        step,
        pings,
        pickup,
        ..
    } = *load;
    let (s0, s, window) = (&o.s0, &o.s, o.window);
    let sent_window = fig(s, &["icmp", "sent"])? - fig(s0, &["icmp", "sent"])?;
    let asked_rate = orders as f64 * f64::from(pings) / f64::from(step);
    let lost = report_loss(load, o, sent_window, asked_rate)?;
    report_cpu(o, sent_window);
    let window_late_avg = report_rounds_and_store(o)?;
    if let Some(lat) = &o.pickups {
        print_pickup(lat, pickup, orders);
    }
    let (cpu, rss_kib) = (o.cpu, o.rss_kib);
    Ok(Figures {
        sent_rate: sent_window / window,
        asked_rate,
        lost,
        late: fig(s, &["icmp", "late"])?,
        send_errors: fig(s, &["icmp", "send_errors"])?,
        abandoned: fig(s, &["rounds_abandoned"])?,
        skipped: fig(s, &["rounds_skipped"])?,
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

/// The loss since start-up and in the window, by cause. Returns the pings
/// lost since start-up.
fn report_loss(
    load: &Load,
    o: &Observed,
    sent_window: f64,
    asked_rate: f64,
) -> anyhow::Result<f64> {
    let Load {
        orders,
        steps,
        warmup,
        drop_caches_every,
        ..
    } = *load;
    let (s0, s, window) = (&o.s0, &o.s, o.window);
    let Settled0 {
        scan_ms,
        scheduled_after,
        dirs_after,
        jobs,
    } = o.settled;
    let (cache_drops, discards, discards_start) = (o.cache_drops, o.discards, o.discards_start);
    let sent = fig(s, &["icmp", "sent"])?;
    let received = fig(s, &["icmp", "received"])?;
    // The counters are read while pings are in flight: `pending` of them
    // have no answer yet, which is not loss. Loss counts since start-up.
    let lost = (sent - received - fig(s, &["icmp", "pending"])?).max(0.0);
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
        fig(s, &["icmp", "send_errors"])?
    );
    let causes = LossCauses {
        targets_kernel: discards.map(|x| x as f64),
        receive_buffer: fig(s, &["icmp", "rx_dropped"])?,
        late: fig(s, &["icmp", "late"])?,
        after_round: fig(s, &["icmp", "unmatched"])?,
    };
    println!("  {}", causes.explain(lost));
    // The same in the window alone (from the snapshot at its start).
    let lost_at = |v: &Value| -> anyhow::Result<f64> {
        Ok(fig(v, &["icmp", "sent"])?
            - fig(v, &["icmp", "received"])?
            - fig(v, &["icmp", "pending"])?)
    };
    let lost_window = (lost_at(s)? - lost_at(s0)?).max(0.0);
    let window_causes = LossCauses {
        targets_kernel: discards
            .zip(discards_start)
            .map(|(end, start)| end.saturating_sub(start) as f64),
        receive_buffer: fig(s, &["icmp", "rx_dropped"])? - fig(s0, &["icmp", "rx_dropped"])?,
        late: fig(s, &["icmp", "late"])? - fig(s0, &["icmp", "late"])?,
        after_round: fig(s, &["icmp", "unmatched"])? - fig(s0, &["icmp", "unmatched"])?,
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
    Ok(lost)
}

/// CPU by thread, context switches, memory.
fn report_cpu(o: &Observed, sent_window: f64) {
    let (cpu, window, rss_kib) = (o.cpu, o.window, o.rss_kib);
    let (threads_start, threads_end) = (&o.threads_start, &o.threads_end);
    let (switches_start, switches_end) = (&o.switches_start, &o.switches_end);
    let napi = o.napi;
    let testnet = o.netns.then_some(());
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
}

/// Rounds, their lateness, the registry's safety net, storage and the
/// log. Returns the average round start lateness in the window, ms.
fn report_rounds_and_store(o: &Observed) -> anyhow::Result<f64> {
    let (s0, s, window) = (&o.s0, &o.s, o.window);
    let (disk_read, log) = (o.disk_read, &o.log);
    let rrd_updates = fig(s, &["store", "rrd_updates"])?;
    println!(
        "rounds                           {:>10.0} (abandoned {}, skipped as too late to end in time {}; since start-up)",
        fig(s, &["rounds"])?,
        fig(s, &["rounds_abandoned"])?,
        fig(s, &["rounds_skipped"])?
    );
    let window_starts = fig(s, &["round_starts"])? - fig(s0, &["round_starts"])?;
    let window_late_avg = if window_starts > 0.0 {
        (fig(s, &["round_start_late_ms_sum"])? - fig(s0, &["round_start_late_ms_sum"])?)
            / window_starts
    } else {
        0.0
    };
    println!(
        "round start lateness             {:>10.2} ms avg in the window ({window_starts} starts); since start-up {:.2} ms avg, {:.2} ms max",
        window_late_avg,
        fig(s, &["round_start_late_ms_avg"])?,
        fig(s, &["round_start_late_ms_max"])?
    );
    let (p50, p99) = (
        window_late_quantile(s0, s, 0.5),
        window_late_quantile(s0, s, 0.99),
    );
    println!(
        "round start lateness quantiles   {:>10} p50, {} p99 in the window (histogram bucket upper bounds)",
        p50, p99
    );
    println!(
        "registry safety net              {:>10.0} order files looked at by the paced pass in the window, {} directories listed again, {} full rescans since start-up",
        fig(s, &["files_checked"])? - fig(s0, &["files_checked"])?,
        fig(s, &["dirs_listed"])? - fig(s0, &["dirs_listed"])?,
        fig(s, &["rescans"])?
    );
    println!(
        "RRD updates                      {:>10.0} ({:.1}/s), last_result files {}",
        rrd_updates,
        rrd_updates / window,
        fig(s, &["store", "last_results"])?
    );
    let rewrites = fig(s, &["store", "last_results"])? - fig(s0, &["store", "last_results"])?;
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
        fig(s, &["store", "queue_high_water"])?
    );
    println!(
        "write errors                     {:>10.0}",
        fig(s, &["store", "errors"])?
    );
    println!(
        "round write delay                {:>10.1} ms max, {} orders' rounds written later than one step",
        fig(s, &["store", "write_delay_ms_max"])?,
        fig(s, &["store", "late_writes"])?
    );
    println!(
        "storage behind                   {:>10.0} rounds waiting at most (now {}); last_result versions superseded {}, RRD updates dropped {} (since start-up)",
        fig(s, &["store", "waiting_high_water"])?,
        fig(s, &["store", "waiting_rounds"])?,
        fig(s, &["store", "superseded"])?,
        fig(s, &["store", "rrd_dropped"])?
    );
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .collect();
    println!("warnings/errors in the log       {:>10}", warnings.len());
    for w in warnings.iter().take(5) {
        println!("  {w}");
    }
    Ok(window_late_avg)
}

pub(crate) fn run(cli: &Cli, load: Load, fping: Option<FpingMode>) -> anyhow::Result<()> {
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
