//! `remote-write`: the cost of `--remote-write`. N orders run twice for
//! the same window: without it, then pushing every round to a real
//! VictoriaMetrics started here (on loopback, its storage in a temporary
//! directory). Prints the daemon's CPU and RSS of both runs, and of the
//! second the series per order and round, compressed bytes per second on
//! the wire, the queue's high water and anything dropped.

use crate::web::scrape_window;
use crate::*;

/// VictoriaMetrics on loopback; killed when dropped.
struct Receiver {
    child: Child,
    dir: PathBuf,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

fn start_receiver(cli: &Cli, bin: &Path) -> anyhow::Result<(Receiver, u16)> {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    let dir = tempbase(&cli.dir, "remote-write-receiver")?;
    let child = Command::new(bin)
        .arg(format!("-storageDataPath={}", dir.display()))
        .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| {
            format!(
                "cannot run {} (apt-get install victoria-metrics)",
                bin.display()
            )
        })?;
    let r = Receiver { child, dir };
    if !wait(Duration::from_secs(60), || {
        http_get(port, "/health").is_ok_and(|(_, status, _)| status == 200)
    }) {
        bail!("VictoriaMetrics did not answer on 127.0.0.1:{port}");
    }
    Ok((r, port))
}

pub(crate) fn remote_write(
    cli: &Cli,
    orders: usize,
    (step, pings, steps): (u32, u32, u32),
    receiver: &Path,
    series: &str,
) -> anyhow::Result<()> {
    let base = tempbase(&cli.dir, "remote-write")?;
    write_orders(&base.join("orders"), 0..orders, |i| {
        order(i, step, pings, None, false)
    })?;
    let secs = u64::from(step) * u64::from(steps);
    println!("{orders} orders (step {step}, pings {pings}, norrd), {secs} s windows after every job's first round, --remote-write-series {series}");
    let off = scrape_window(cli, &base, step, secs, None, &[])?;
    let (vm, port) = start_receiver(cli, receiver)?;
    let url = format!("http://127.0.0.1:{port}/api/v1/write");
    let on = scrape_window(
        cli,
        &base,
        step,
        secs,
        None,
        &[
            "--remote-write".to_owned(),
            url,
            "--tag".to_owned(),
            "site=bench".to_owned(),
            "--remote-write-series".to_owned(),
            series.to_owned(),
        ],
    )?;
    drop(vm);
    std::fs::remove_dir_all(&base).ok();
    let (s0, s1) = &on.stats;
    // A figure the daemon did not write is an error, never a 0.
    let dest = |s: &serde_json::Value, k: &str| -> anyhow::Result<f64> {
        s["remote_write"][0][k]
            .as_f64()
            .with_context(|| format!("the daemon's .stats.json has no remote_write[0].{k}"))
    };
    let figure = |k: &str| -> anyhow::Result<f64> { Ok(dest(s1, k)? - dest(s0, k)?) };
    let (sent, bytes) = (figure("sent")?, figure("bytes")?);
    let rounds_per_order = on.secs / f64::from(step);
    println!("--- without --remote-write ---");
    println!(
        "CPU                              {:>10.2} % of one core",
        off.cpu
    );
    println!("peak RSS                         {:>10.1} MB", off.rss);
    println!("--- with --remote-write to VictoriaMetrics ---");
    // Rounds end within seconds of each other every step and the queue
    // drains over the step, so the window's sends include what the step
    // before left queued: per order and round is at most eight (summary;
    // full adds /metrics every 60 s).
    println!(
        "series sent                      {:>10.0} ({:.0}/s; {:.2} per order and step, the queue's backlog included)",
        sent,
        sent / on.secs,
        sent / (orders as f64 * rounds_per_order)
    );
    println!(
        "on the wire                      {:>10.1} kB/s ({:.1} bytes per series, snappy)",
        bytes / on.secs / 1000.0,
        bytes / sent.max(1.0)
    );
    println!(
        "queue high water                 {:>10.0} series",
        dest(s1, "queue_high_water")?
    );
    println!(
        "dropped, retries                 {:>10.0}, {:.0}",
        figure("dropped")?,
        figure("retries")?
    );
    println!(
        "CPU                              {:>10.2} % of one core (+{:.2})",
        on.cpu,
        on.cpu - off.cpu
    );
    println!(
        "peak RSS                         {:>10.1} MB (+{:.1})",
        on.rss,
        on.rss - off.rss
    );
    Ok(())
}
