//! `saturate`: `run` at rising rates until a level loses a ping, abandons
//! a round or sends less than asked.

use crate::*;

/// Rounds starting later than this on average in the window mean the
/// engine is behind, even if nothing is lost yet.
pub(crate) const HELD_LATE_START_MS: f64 = 100.0;

/// Whether a level held: nothing lost, late, failed or abandoned, rounds
/// started on time, and (almost) everything asked for was sent.
pub(crate) fn sustained(f: &Figures) -> bool {
    f.lost == 0.0
        && f.late == 0.0
        && f.send_errors == 0.0
        && f.abandoned == 0.0
        && f.skipped == 0.0
        && f.late_start_ms <= HELD_LATE_START_MS
        && f.sent_rate >= 0.98 * f.asked_rate
}

pub(crate) fn saturate(
    cli: &Cli,
    (from, by, to): (u32, u32, u32),
    load: Load,
) -> anyhow::Result<()> {
    if by == 0 || from == 0 || from > to {
        bail!("need 0 < --from <= --to and --by > 0");
    }
    let mut levels: Vec<(u32, Figures)> = Vec::new();
    let mut rate = from;
    while rate <= to {
        let orders =
            (u64::from(rate) * u64::from(load.step)).div_ceil(u64::from(load.pings)) as usize;
        println!("=== level {rate} pings/s: {orders} orders ===");
        let f = measure(cli, Load { orders, ..load }, None)?;
        let held = sustained(&f);
        levels.push((rate, f));
        if !held {
            break;
        }
        rate += by;
    }
    println!(
        "--- saturation (step {}, pings {}, interval {} ms, {} measured step(s) per level) ---",
        load.step,
        load.pings,
        load.interval.unwrap_or(0),
        load.steps
    );
    println!("asked/s    sent/s     lost  late  abandoned  skipped  start late ms  CPU (% of one core)  CPU/100k pings  RSS MB  held");
    for (rate, f) in &levels {
        println!(
            "{:>7}  {:>8.0}  {:>7.0}  {:>4.0}  {:>9.0}  {:>7.0}  {:>13.1}  {:>19.1}  {:>14.3}  {:>6.0}  {}",
            rate,
            f.sent_rate,
            f.lost,
            f.late,
            f.abandoned,
            f.skipped,
            f.late_start_ms,
            f.cpu_share * 100.0,
            f.cpu_per_ping * 1e5,
            f.rss_mb,
            if sustained(f) { "yes" } else { "no" }
        );
    }
    match levels.iter().rev().find(|(_, f)| sustained(f)) {
        Some((rate, _)) => println!(
            "highest rate sustained with 0 % loss and no round abandoned or skipped: {rate} pings/s"
        ),
        None => println!("no level was sustained"),
    }
    Ok(())
}
