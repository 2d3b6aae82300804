//! `pickup`: time from an order file's rename into `orders/` until the
//! daemon has scheduled it.

use crate::*;

/// `2026-11-21T06:02:57.673765Z` → unix microseconds.
pub(crate) fn parse_ts(s: &str) -> Option<i64> {
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

pub(crate) fn pickup(cli: &Cli, running: usize, new: usize) -> anyhow::Result<()> {
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
pub(crate) fn pickup_latency(
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
pub(crate) fn print_pickup(lat: &[f64], new: usize, running: usize) {
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
