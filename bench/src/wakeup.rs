//! `wakeup`: the CPU one timed sleep and wake-up of a thread costs.

use crate::*;

/// CPU time this thread has run, ns (`/proc/thread-self/schedstat`, the
/// scheduler's own count, not sampled).
pub(crate) fn thread_cpu_ns() -> anyhow::Result<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat")?;
    s.split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .context("cannot read /proc/thread-self/schedstat")
}

/// Times `count` sleeps of several lengths and prints the CPU each sleep
/// and wake-up costs this thread.
pub(crate) fn wakeup(count: u32) -> anyhow::Result<()> {
    let (_tx, rx) = std::sync::mpsc::channel::<()>();
    println!("--- CPU per timed sleep and wake-up of one thread ({count} of each) ---");
    for us in [100u64, 1000, 10_000] {
        let n = if us >= 10_000 { count / 10 } else { count }.max(1);
        let c0 = thread_cpu_ns()?;
        let t0 = Instant::now();
        for _ in 0..n {
            let _ = rx.recv_timeout(Duration::from_micros(us));
        }
        let cpu = (thread_cpu_ns()? - c0) as f64 / f64::from(n) / 1000.0;
        let wall = t0.elapsed().as_secs_f64() / f64::from(n) * 1e6;
        println!("sleep {us:>6} µs                     {cpu:>8.2} µs CPU per wake-up (wall {wall:.0} µs)");
    }
    Ok(())
}
