//! `history`: hours of rounds for orders of a base directory, written with
//! the store's own librrd calls (`create_rrd`, `update_rrd` of a round's
//! `Summary`) and its `last_result` format: a base whose web page shows
//! hours of smoke at once, for screenshots and for trying the page. Each
//! order gets a character: a delay, a jitter, a loss ratio, and optionally
//! an evening rise and an outage. The RTTs come from a seeded generator,
//! so a run is repeatable.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use pingmachine::order::OrderId;
use pingmachine::result::{RoundOutcome, Summary};

/// What one order's rounds look like.
#[derive(Debug, Clone)]
pub(crate) struct Character {
    pub(crate) id: String,
    /// Typical RTT, ms.
    pub(crate) delay_ms: f64,
    /// Spread of the RTTs around it, ms.
    pub(crate) jitter_ms: f64,
    /// Share of pings lost, 0..1.
    pub(crate) loss: f64,
    /// Extra delay at the busiest hour of the day (18:00 UTC), ms.
    pub(crate) evening_ms: f64,
    /// An outage (every ping lost) this many hours ago, for 20 minutes.
    pub(crate) outage_h: Option<f64>,
}

/// `ID:DELAY_MS:JITTER_MS:LOSS[:EVENING_MS[:OUTAGE_HOURS_AGO]]`.
pub(crate) fn parse_character(s: &str) -> Result<Character, String> {
    let f: Vec<&str> = s.split(':').collect();
    if !(4..=6).contains(&f.len()) {
        return Err(format!(
            "{s:?}: ID:DELAY_MS:JITTER_MS:LOSS[:EVENING_MS[:OUTAGE_HOURS_AGO]]"
        ));
    }
    let num = |i: usize, name: &str| -> Result<f64, String> {
        f.get(i)
            .map_or(Ok(0.0), |v| v.parse::<f64>())
            .map_err(|e| format!("{s:?}: {name}: {e}"))
    };
    let loss = num(3, "LOSS")?;
    if !(0.0..=1.0).contains(&loss) {
        return Err(format!("{s:?}: LOSS is from 0 to 1"));
    }
    Ok(Character {
        id: f[0].to_owned(),
        delay_ms: num(1, "DELAY_MS")?,
        jitter_ms: num(2, "JITTER_MS")?,
        loss,
        evening_ms: num(4, "EVENING_MS")?,
        outage_h: if f.len() == 6 {
            Some(num(5, "OUTAGE_HOURS_AGO")?)
        } else {
            None
        },
    })
}

/// xorshift64*: repeatable, good enough for smoke.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// About normal (the sum of four uniforms), mean 0, deviation 1.
    fn normal(&mut self) -> f64 {
        ((0..4).map(|_| self.next()).sum::<f64>() - 2.0) * 3f64.sqrt()
    }
}

/// Writes `hours` of rounds, up to now, for each order of `characters`
/// in the base directory `base` (its `orders/ID` gives step and pings).
/// An existing `main.rrd` is replaced.
pub(crate) fn history(base: &Path, hours: u32, characters: &[Character]) -> anyhow::Result<()> {
    let now = pingmachine::clock::unix_s();
    for (n, c) in characters.iter().enumerate() {
        let id = OrderId::new(&c.id).map_err(|e| anyhow::anyhow!("{}: {e}", c.id))?;
        let parsed = pingmachine::order::read_order_file(&id.under(&base.join("orders")), &id)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let (step, pings) = (parsed.order.step, parsed.order.pings);
        let step_s = i64::from(step);
        let out = id.under(&base.join("output"));
        std::fs::create_dir_all(&out).with_context(|| format!("{}", out.display()))?;
        let rrd = out.join("main.rrd");
        let _ = std::fs::remove_file(&rrd);
        let end = now - now.rem_euclid(step_s);
        let start = end - i64::from(hours) * 3600;
        pingmachine::store::rrd::create_rrd(&rrd, step, pings, start - step_s)
            .with_context(|| format!("{}", rrd.display()))?;
        let mut rng =
            Rng(0x9E37_79B9_7F4A_7C15 ^ (n as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03));
        let mut last = None;
        let mut t = start;
        while t <= end {
            // 0 at 06:00 UTC, 1 at 18:00.
            let hour = (t.rem_euclid(86_400)) as f64 / 3600.0;
            let evening = (1.0 + ((hour - 18.0) / 12.0 * std::f64::consts::PI).cos()) / 2.0;
            let down = c.outage_h.is_some_and(|h| {
                let at = now - (h * 3600.0) as i64;
                t >= at && t < at + 1200
            });
            let busy = c.loss * (0.5 + evening);
            let rtts = (0..pings)
                .map(|_| {
                    if down || rng.next() < busy {
                        return None;
                    }
                    let ms =
                        c.delay_ms + c.evening_ms * evening + (c.jitter_ms * rng.normal()).abs();
                    Some(Duration::from_secs_f64(ms.max(0.01) / 1000.0))
                })
                .collect();
            let s = Summary::of(&RoundOutcome { rtts });
            pingmachine::store::rrd::update_rrd(
                &rrd,
                t,
                &pingmachine::store::rrd::update_values(&s),
            )
            .with_context(|| format!("{} at {t}", rrd.display()))?;
            last = Some((t, s));
            t += step_s;
        }
        if let Some((t, s)) = last {
            let text = pingmachine::store::last_result::format(t, t + 1, step, pings, &s);
            pingmachine::store::last_result::write_atomic(&out, &text)
                .with_context(|| format!("{}: last_result", out.display()))?;
        }
        println!(
            "{}: {} rounds of {pings} pings every {step} s ({hours} hours)",
            c.id,
            (end - start) / step_s + 1
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn characters_parse() {
        let c = parse_character("demo/slow:40:15:0.01:10:2.5").unwrap();
        assert_eq!(c.id, "demo/slow");
        assert_eq!(
            (c.delay_ms, c.jitter_ms, c.loss, c.evening_ms),
            (40.0, 15.0, 0.01, 10.0)
        );
        assert_eq!(c.outage_h, Some(2.5));
        assert_eq!(parse_character("a:1:0:0").unwrap().outage_h, None);
        assert!(parse_character("a:1:0").is_err());
        assert!(parse_character("a:1:0:2").is_err());
        assert!(parse_character("a:x:0:0").is_err());
    }

    #[test]
    fn the_generator_is_repeatable_and_spread() {
        let (mut a, mut b) = (Rng(7), Rng(7));
        let xs: Vec<f64> = (0..1000).map(|_| a.next()).collect();
        assert!(xs.iter().all(|x| (0.0..1.0).contains(x)));
        assert_eq!(xs[999], (0..1000).map(|_| b.next()).last().unwrap());
        let mean = xs.iter().sum::<f64>() / 1000.0;
        assert!((mean - 0.5).abs() < 0.05, "{mean}");
    }
}
