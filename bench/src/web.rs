//! `web`: the web page and `/metrics` under load: response times while
//! the daemon probes.

use crate::*;

pub(crate) fn web(
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

    let now = page_and_graph_times(port, orders)?;
    browse_times(port, orders, rrd_orders)?;
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
        let pages = (orders + rrd_orders).div_ceil(500).max(1) as i64;
        threads.push(std::thread::spawn(move || {
            let mut k = c as i64;
            while !stop.load(Ordering::Relaxed) {
                let id = &ids[k as usize % ids.len()];
                // Another range each time: nothing from the cache.
                let end = now - (k % 1000) * 7;
                let range = [10_800, 108_000, 864_000][k as usize % 3];
                // What a person browsing does: graphs, list pages with
                // their sparklines, order pages, series, charts.
                let path = match k % 6 {
                    0 | 1 => format!("/graph/{id}?start={}&end={end}", end - range),
                    2 => format!("/?page={}", 1 + k % pages),
                    3 => format!("/order/{id}"),
                    4 => format!("/api/v1/orders/{id}/series?start={}&end={end}", end - range),
                    _ => format!("/charts?range={}", [10_800, 108_000][k as usize % 2]),
                };
                if http_get(port, &path).is_ok() {
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
        "requests served meanwhile          {} ({:.1}/s: graphs, list pages, order pages, series, charts)",
        fetched.load(Ordering::Relaxed),
        fetched.load(Ordering::Relaxed) as f64 / secs
    );
    d.stop()?;
    std::fs::remove_dir_all(&base).ok();
    Ok(())
}

/// Server time of what the page's newer parts ask for: list pages of
/// orders with a main.rrd (500 sparklines each, none from the cache),
/// series requests, `/charts` computed and then from the cache, and the
/// list sorted over the last hour.
fn browse_times(port: u16, orders: usize, rrd_orders: usize) -> anyhow::Result<()> {
    let stats = |v: &[f64]| {
        (
            v.iter().sum::<f64>() / v.len().max(1) as f64 * 1000.0,
            v.iter().copied().fold(0.0, f64::max) * 1000.0,
        )
    };
    // The list in id order: the RRD orders come after the others.
    let first_rrd_page = orders / 500 + 1;
    let rrd_pages = rrd_orders.div_ceil(500).clamp(1, 10);
    let mut times = Vec::new();
    for p in 0..rrd_pages {
        let (t, status, _) = http_get(port, &format!("/?sort=id&page={}", first_rrd_page + p))?;
        anyhow::ensure!(status == 200, "list page returned {status}");
        times.push(t);
    }
    let (avg, max) = stats(&times);
    let (cached, _, _) = http_get(port, &format!("/?sort=id&page={first_rrd_page}"))?;
    println!(
        "list page with 500 sparklines      avg {avg:.0} ms, max {max:.0} ms ({rrd_pages} pages, every RRD read); again from the cache {:.0} ms",
        cached * 1000.0
    );
    let mut times = Vec::new();
    for k in 0..20 {
        let id = format!("bench/o{:06}", orders + k % rrd_orders.max(1));
        let (t, status, _) = http_get(port, &format!("/api/v1/orders/{id}/series?range=108000"))?;
        anyhow::ensure!(status == 200, "series returned {status}");
        times.push(t);
    }
    let (avg, max) = stats(&times);
    println!("series of 30 hours (JSON)          avg {avg:.1} ms, max {max:.1} ms");
    let (first, status, _) = http_get(port, "/charts?range=10800")?;
    anyhow::ensure!(status == 200, "charts returned {status}");
    let (again, _, _) = http_get(port, "/charts?range=10800")?;
    println!(
        "/charts over 3 hours               {:.0} ms computed (every main.rrd read twice), {:.0} ms from the cache",
        first * 1000.0,
        again * 1000.0
    );
    let (first, status, _) = http_get(port, "/?sort=loss&period=3600")?;
    anyhow::ensure!(
        status == 200,
        "the list by loss over an hour returned {status}"
    );
    let (again, _, _) = http_get(port, "/?sort=loss&period=3600&page=2")?;
    println!(
        "list sorted by the last hour's loss {:.0} ms computed, {:.0} ms from the cache (another page)",
        first * 1000.0,
        again * 1000.0
    );
    Ok(())
}

/// Server time of `/` (fresh report, then cached) and of uncached 30-hour
/// graphs; returns the Unix time the graphs end at.
fn page_and_graph_times(port: u16, orders: usize) -> anyhow::Result<i64> {
    // `/` after more than a minute without requests: the report is built
    // while the request waits.
    std::thread::sleep(Duration::from_secs(61));
    let (built, status, _) = http_get(port, "/")?;
    anyhow::ensure!(status == 200, "/ returned {status}");
    // `/`: each request after the 5 s report cache expired (the last
    // report served at once while the next is built), then cached.
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
        "/ after a minute without requests  {:.0} ms (the report built while it waits)",
        built * 1000.0
    );
    println!(
        "/ every 5.2 s                      avg {:.0} ms, max {:.0} ms ({:.1} MB of HTML, first page of 500 rows; the last report served, the next built meanwhile); from the cache {:.0} ms",
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

    Ok(now)
}

/// One GET of `/metrics` on `port`: time to the whole body, and its size.
pub(crate) fn scrape_once(port: u16) -> anyhow::Result<(f64, usize)> {
    let (t, _, len) = http_get(port, "/metrics")?;
    Ok((t, len))
}

/// What [`scrape_window`] measured.
pub(crate) struct Window {
    /// CPU, % of one core.
    pub(crate) cpu: f64,
    /// Peak RSS, MiB.
    pub(crate) rss: f64,
    /// Scrape times, s.
    pub(crate) times: Vec<f64>,
    /// The last scrape's size.
    pub(crate) size: usize,
    /// `.stats.json` at the window's start and end.
    pub(crate) stats: (serde_json::Value, serde_json::Value),
    /// The window's length, s.
    pub(crate) secs: f64,
}

/// The daemon's CPU seconds and RSS over `secs` seconds after every job's
/// first round, started with `extra` flags, scraping `/metrics` every
/// `every` seconds when `port` is set.
pub(crate) fn scrape_window(
    cli: &Cli,
    base: &Path,
    step: u32,
    secs: u64,
    port: Option<(u16, u64)>,
    extra: &[String],
) -> anyhow::Result<Window> {
    let mut extra = extra.to_vec();
    if let Some((p, _)) = port {
        extra.extend(["--listen".to_owned(), p.to_string()]);
    }
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
    let stats0 = d.read_stats()?;
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
    let stats1 = d.read_stats()?;
    let window = start.elapsed().as_secs_f64();
    d.stop()?;
    Ok(Window {
        cpu: (cpu1 - cpu0) * 100.0 / window,
        rss: peak_rss.max(rss) as f64 / 1024.0,
        times,
        size,
        stats: (stats0, stats1),
        secs: window,
    })
}

pub(crate) fn scrape(
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
    let off = scrape_window(cli, &base, step, secs, None, &[])?;
    let (cpu_off, rss_off) = (off.cpu, off.rss);
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    let on = scrape_window(cli, &base, step, secs, Some((port, every)), &[])?;
    let (cpu_on, rss_on, times, size) = (on.cpu, on.rss, on.times, on.size);
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
