//! `pingmachine-bench rrdcached`: the same N RRD orders written directly by
//! the daemon's writer threads, then through a real rrdcached, each for the
//! same window on a cold page cache. Figures per RRD update: bytes read
//! from and written to the disk (`/proc/PID/io` of the daemon, and of
//! rrdcached), CPU, and the writer's delay.
//!
//! The page cache is dropped before each window and again every
//! `--drop-every` seconds during it: at 100,000 orders the files (200 GB)
//! do not stay cached between two updates of one file, and this reproduces
//! that on a machine with fewer files and more memory. Both modes get the
//! same treatment.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use super::{
    fig, n, order, proc_cpu_s, proc_hwm_kib, room_for_rrds, tempbase, wait, write_orders, Cli,
    Daemon,
};

/// What one process did in a window.
#[derive(Debug, Default, Clone, Copy)]
struct Io {
    read: u64,
    write: u64,
    cpu_s: f64,
}

impl Io {
    fn of(pid: u32) -> Io {
        let io = crate::common::process(pid).and_then(|p| p.io().ok());
        Io {
            read: io.as_ref().map_or(0, |io| io.read_bytes),
            write: io.as_ref().map_or(0, |io| io.write_bytes),
            cpu_s: proc_cpu_s(pid),
        }
    }

    fn since(self, before: Io) -> Io {
        Io {
            read: self.read.saturating_sub(before.read),
            write: self.write.saturating_sub(before.write),
            cpu_s: self.cpu_s - before.cpu_s,
        }
    }

    fn plus(self, o: Io) -> Io {
        Io {
            read: self.read + o.read,
            write: self.write + o.write,
            cpu_s: self.cpu_s + o.cpu_s,
        }
    }
}

/// A real rrdcached in the foreground.
struct Cached {
    child: Child,
    sock: PathBuf,
}

impl Cached {
    fn start(dir: &Path, write_interval: u64) -> anyhow::Result<Cached> {
        let sock = dir.join("rrdcached.sock");
        let journal = dir.join("journal");
        std::fs::create_dir_all(&journal)?;
        let log = std::fs::File::create(dir.join("rrdcached.log"))?;
        let w = write_interval.to_string();
        let f = (write_interval * 2).to_string();
        let child = Command::new("rrdcached")
            .arg("-g")
            .args(["-l", &format!("unix:{}", sock.display())])
            .args(["-p", dir.join("rrdcached.pid").to_str().unwrap_or("")])
            .args(["-j", journal.to_str().unwrap_or("")])
            .args(["-w", &w, "-z", &w, "-f", &f, "-t", "4"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("cannot start rrdcached (Debian package rrdcached)")?;
        if !wait(Duration::from_secs(10), || {
            std::os::unix::net::UnixStream::connect(&sock).is_ok()
        }) {
            bail!("rrdcached did not listen on {}", sock.display());
        }
        Ok(Cached { child, sock })
    }

    fn addr(&self) -> String {
        format!("unix:{}", self.sock.display())
    }

    fn stats(&self) -> Vec<(String, u64)> {
        let addr = pingmachine::store::rrdcached::Addr::Unix(self.sock.clone());
        pingmachine::store::rrdcached::Conn::connect(&addr)
            .and_then(|mut c| c.stats())
            .unwrap_or_default()
    }

    fn stop(mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `sync`, then drop clean caches: `3` page cache, dentries and inodes
/// (before a window), `1` the page cache alone (during it: file data that
/// does not fit, while metadata of 100,000 files would stay cached).
pub(crate) fn drop_caches(what: &str) -> anyhow::Result<()> {
    nix::unistd::sync();
    std::fs::write("/proc/sys/vm/drop_caches", what).context("cannot drop the page cache")
}

/// What a window measured.
struct Window {
    updates: u64,
    daemon: Io,
    /// CPU seconds of the daemon's store writer threads and its rrdcached
    /// client thread.
    writing_cpu_s: f64,
    /// Peak RSS of rrdcached, KiB.
    cached_rss_kib: u64,
    cached: Option<Io>,
    late_writes: u64,
    write_delay_ms_max: f64,
    cached_stats: Vec<(String, u64)>,
    dropped: u64,
}

/// Runs the daemon (with `extra` flags) until every order had a round,
/// then measures `window` seconds.
/// The load and the window.
#[derive(Debug, Clone, Copy)]
struct Plan {
    orders: usize,
    step: u32,
    window_s: u64,
    drop_every: u64,
}

fn window(
    cli: &Cli,
    base: &Path,
    plan: Plan,
    cached: Option<&Cached>,
    norrd: bool,
) -> anyhow::Result<Window> {
    let Plan {
        orders,
        step,
        window_s,
        drop_every,
    } = plan;
    let mut extra = vec!["--writers".to_owned(), "2".to_owned()];
    if let Some(c) = cached {
        extra.extend(["--rrdcached".to_owned(), c.addr()]);
    }
    // The previous run's counters must not pass for this one's.
    let _ = std::fs::remove_file(base.join(".stats.json"));
    let d = Daemon::start(&cli.bin, base, &extra)?;
    let pid = f64::from(d.child.id());
    // Rounds written: RRD updates (taken by rrdcached when it is used), or
    // last_result files for orders without RRD.
    let counter = |s: &serde_json::Value| {
        if cached.is_some() {
            n(s, &["rrdcached", "sent"])
        } else if norrd {
            n(s, &["store", "last_results"])
        } else {
            n(s, &["store", "rrd_updates"])
        }
    };
    // Every order prepared and through one round: the steady state.
    let ready = wait(Duration::from_secs(u64::from(step) * 4 + 600), || {
        d.stats().is_some_and(|s| {
            n(&s, &["pid"]) == pid
                && counter(&s) >= orders as f64
                && n(&s, &["orders"]) >= orders as f64
        })
    });
    if !ready {
        let log = d.stop()?;
        bail!(
            "the daemon did not get one update of every order through: {}",
            log.lines().take(20).collect::<Vec<_>>().join("\n")
        );
    }
    let writing = |d: &Daemon| -> f64 {
        d.thread_cpu()
            .iter()
            .filter(|(name, _)| name.starts_with("store-writer") || name.as_str() == "rrdcached")
            .map(|(_, cpu)| cpu)
            .sum()
    };
    drop_caches("3")?;
    let w0 = writing(&d);
    let stats0 = d.read_stats()?;
    let d0 = Io::of(d.child.id());
    let c0 = cached.map(|c| Io::of(c.child.id()));
    let started = Instant::now();
    let end = started + Duration::from_secs(window_s);
    let mut next_drop = started + Duration::from_secs(drop_every.max(1));
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(200));
        if drop_every > 0 && Instant::now() >= next_drop {
            drop_caches("1")?;
            next_drop += Duration::from_secs(drop_every);
        }
    }
    let stats1 = d.read_stats()?;
    let d1 = Io::of(d.child.id());
    let c1 = cached.map(|c| Io::of(c.child.id()));
    let cached_stats = cached.map(Cached::stats).unwrap_or_default();
    let cached_rss_kib = cached.map(|c| proc_hwm_kib(c.child.id())).unwrap_or(0);
    let w = Window {
        updates: (counter(&stats1) - counter(&stats0)) as u64,
        daemon: d1.since(d0),
        writing_cpu_s: writing(&d) - w0,
        cached_rss_kib,
        cached: c1.zip(c0).map(|(a, b)| a.since(b)),
        late_writes: (fig(&stats1, &["store", "late_writes"])?
            - fig(&stats0, &["store", "late_writes"])?) as u64,
        write_delay_ms_max: fig(&stats1, &["store", "write_delay_ms_max"])?,
        cached_stats,
        dropped: fig(&stats1, &["rrdcached", "dropped"])? as u64,
    };
    d.stop()?;
    Ok(w)
}

/// The benchmark.
pub fn run(
    cli: &Cli,
    orders: usize,
    step: u32,
    pings: u32,
    window_s: u64,
    write_interval: u64,
    drop_every: u64,
) -> anyhow::Result<()> {
    if Command::new("rrdcached").arg("-h").output().is_err() {
        anyhow::bail!("rrdcached is not installed (apt-get install rrdcached)");
    }
    let base = tempbase(&cli.dir, "rrdcached")?;
    if let Err(e) = room_for_rrds(&base, orders, 2 << 30) {
        std::fs::remove_dir_all(&base).ok();
        return Err(e);
    }
    write_orders(&base.join("orders"), 0..orders, |i| {
        order(i, step, pings, None, true)
    })?;
    println!(
        "{orders} orders with main.rrd (step {step}, pings {pings}); windows of {window_s} s; \
         page cache dropped before each window and every {drop_every} s in it"
    );

    create_files(cli, &base, orders)?;

    let plan = Plan {
        orders,
        step,
        window_s,
        drop_every,
    };
    let direct = window(cli, &base, plan, None, false)?;
    let cached = Cached::start(&base, write_interval)?;
    let through = window(cli, &base, plan, Some(&cached), false);
    cached.stop();
    let through = through?;
    // The same orders without RRD: what a round costs besides main.rrd
    // (last_result, directories), to tell the RRD's own share.
    write_orders(&base.join("orders"), 0..orders, |i| {
        order(i, step, pings, None, false)
    })?;
    let plain = window(cli, &base, plan, None, true)?;
    std::fs::remove_dir_all(&base).ok();

    report(&direct, &through, &plain, write_interval);
    Ok(())
}

/// The files, created once (not measured): the first daemon run.
fn create_files(cli: &Cli, base: &Path, orders: usize) -> anyhow::Result<()> {
    let t = Instant::now();
    {
        let d = Daemon::start(&cli.bin, base, &[])?;
        let scanned = wait(Duration::from_secs(600), || {
            d.stats().is_some_and(|s| n(&s, &["initial_scan_ms"]) > 0.0)
        });
        let accepted = d.stats().map(|s| n(&s, &["orders"])).unwrap_or(0.0);
        if !scanned || accepted < orders as f64 {
            let log = d.stop()?;
            bail!(
                "{accepted} of {orders} orders accepted: {}",
                log.lines()
                    .find(|l| l.contains("invalid order"))
                    .unwrap_or("")
            );
        }
        let created = wait(Duration::from_secs(3600), || {
            d.stats()
                .is_some_and(|s| n(&s, &["store", "rrd_creates"]) >= orders as f64)
        });
        d.stop()?;
        if !created {
            bail!("the RRD files were not created within an hour");
        }
    }
    let bytes: u64 = std::fs::read_dir(base.join("output/bench"))?
        .flatten()
        .filter_map(|e| e.path().join("main.rrd").metadata().ok())
        .map(|m| m.len())
        .sum();
    println!(
        "created {orders} files ({:.1} GB) in {:.0} s",
        bytes as f64 / 1e9,
        t.elapsed().as_secs_f64()
    );

    Ok(())
}

/// Per RRD update, direct against through rrdcached, and the RRD's own
/// share (each minus the same rounds without RRD).
fn report(direct: &Window, through: &Window, plain: &Window, write_interval: u64) {
    let per = |x: u64, u: u64| x as f64 / u.max(1) as f64 / 1024.0;
    let both = through.daemon.plus(through.cached.unwrap_or_default());
    println!(
        "--- per RRD update ({} direct, {} through rrdcached in the window) ---",
        direct.updates, through.updates
    );
    println!("{:<34}{:>14}{:>16}", "", "direct", "rrdcached");
    println!(
        "{:<34}{:>11.1} KB{:>13.1} KB   (daemon {:.1} + rrdcached {:.1})",
        "read from disk",
        per(direct.daemon.read, direct.updates),
        per(both.read, through.updates),
        per(through.daemon.read, through.updates),
        per(through.cached.unwrap_or_default().read, through.updates)
    );
    println!(
        "{:<34}{:>11.1} KB{:>13.1} KB   (daemon {:.1} + rrdcached {:.1}, its journal included)",
        "written to disk",
        per(direct.daemon.write, direct.updates),
        per(both.write, through.updates),
        per(through.daemon.write, through.updates),
        per(through.cached.unwrap_or_default().write, through.updates)
    );
    let io_direct = per(direct.daemon.read + direct.daemon.write, direct.updates);
    let io_cached = per(both.read + both.write, through.updates);
    println!(
        "{:<34}{:>11.1} KB{:>13.1} KB   ({:.1}x less)",
        "disk I/O",
        io_direct,
        io_cached,
        io_direct / io_cached.max(1e-9)
    );
    let us = |cpu: f64, u: u64| cpu * 1e6 / u.max(1) as f64;
    let cached_cpu = through.cached.unwrap_or_default().cpu_s;
    println!(
        "{:<34}{:>11.1} µs{:>13.1} µs   (daemon's writer and rrdcached-client threads {:.1} + rrdcached {:.1})",
        "CPU of writing",
        us(direct.writing_cpu_s, direct.updates),
        us(through.writing_cpu_s + cached_cpu, through.updates),
        us(through.writing_cpu_s, through.updates),
        us(cached_cpu, through.updates)
    );
    println!(
        "{:<34}{:>11.1} µs{:>13.1} µs   (probing included)",
        "CPU, whole daemon (+ rrdcached)",
        us(direct.daemon.cpu_s, direct.updates),
        us(both.cpu_s, through.updates)
    );
    println!(
        "{:<34}{:>14}{:>13.0} MB",
        "rrdcached peak RSS",
        "-",
        through.cached_rss_kib as f64 / 1024.0
    );
    println!(
        "{:<34}{:>11.0} ms{:>13.0} ms",
        "writer delay, longest", direct.write_delay_ms_max, through.write_delay_ms_max
    );
    println!(
        "{:<34}{:>14}{:>16}",
        "writes later than one step", direct.late_writes, through.late_writes
    );
    println!(
        "{:<34}{:>14}{:>16}",
        "updates dropped", "-", through.dropped
    );
    let get = |k: &str| {
        through
            .cached_stats
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| *v)
            .unwrap_or(0)
    };
    println!(
        "rrdcached (-w {write_interval} -z {write_interval}): {} updates received, {} values written in {} file writes ({:.1} values per write), {} queued",
        get("UpdatesReceived"),
        get("DataSetsWritten"),
        get("UpdatesWritten"),
        get("DataSetsWritten") as f64 / get("UpdatesWritten").max(1) as f64,
        get("QueueLength")
    );
    // The RRD's own share: each mode minus the same rounds without RRD.
    let rrd_only = |io: Io, u: u64| {
        let round = per(io.read + io.write, u);
        let base = per(plain.daemon.read + plain.daemon.write, plain.updates);
        (round - base).max(0.0)
    };
    let rrd_direct = rrd_only(direct.daemon, direct.updates);
    let rrd_cached = rrd_only(both, through.updates);
    println!(
        "--- without main.rrd (the same orders, norrd): {:.1} KB read + {:.1} KB written per round ({} rounds) ---",
        per(plain.daemon.read, plain.updates),
        per(plain.daemon.write, plain.updates),
        plain.updates
    );
    println!(
        "disk I/O of main.rrd alone          {rrd_direct:>10.1} KB{rrd_cached:>13.1} KB   ({:.1}x less)",
        rrd_direct / rrd_cached.max(1e-9)
    );
}
