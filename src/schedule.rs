//! Step boundaries, per-job offsets, round start times and RRD timestamps
//! (SPEC A5, A6). Pure functions of time values so they are unit-tested
//! without clocks.

use rand::Rng;

use crate::order::parse::{fping_interval_ms, FPING_MIN_INTERVAL_MS};

/// Largest number of orders in one fping job (SPEC A5).
pub const MAX_JOB_ORDERS: usize = 1000;

/// Unix seconds → the RRD timestamp of a round collected at that time:
/// `floor(now/step)*step - step` (SPEC A6).
pub fn rrd_time(now_unix: i64, step: u32) -> i64 {
    let step = i64::from(step);
    now_unix.div_euclid(step) * step - step
}

/// The start time given to a new `main.rrd`: the same formula as [`rrd_time`].
pub fn rrd_create_start(now_unix: i64, step: u32) -> i64 {
    rrd_time(now_unix, step)
}

/// A random job offset in `[0, step/(pings+1))` seconds, in milliseconds.
pub fn random_offset_ms(step: u32, pings: u32, rng: &mut impl Rng) -> u64 {
    let span = u64::from(step) * 1000 / (u64::from(pings) + 1);
    if span == 0 {
        0
    } else {
        rng.random_range(0..span)
    }
}

/// The first round start (unix ms) strictly after `after_ms`: a step
/// boundary plus the job's offset.
pub fn next_round_start_ms(after_ms: i64, step: u32, offset_ms: u64) -> i64 {
    let step_ms = i64::from(step) * 1000;
    let offset = offset_ms as i64 % step_ms;
    let mut start = (after_ms - offset).div_euclid(step_ms) * step_ms + offset;
    while start <= after_ms {
        start += step_ms;
    }
    start
}

/// The interval between two pings to one target for a job of `targets`
/// targets: the order's `interval`, else the SPEC A5 formula, never below
/// 1000 ms (job sizes are capped by [`job_capacity`] so the formula holds).
pub fn job_interval_ms(step: u32, pings: u32, targets: usize, explicit: Option<u32>) -> u64 {
    match explicit {
        Some(ms) => u64::from(ms),
        None => fping_interval_ms(step, pings, targets).max(FPING_MIN_INTERVAL_MS as i64) as u64,
    }
}

/// How many orders fit in one job with this step and pings: at most 1000,
/// and (without an explicit interval, with pings ≥ 2) few enough that the
/// computed interval stays at or above 1000 ms.
pub fn job_capacity(step: u32, pings: u32, explicit_interval: bool) -> usize {
    if explicit_interval || pings < 2 {
        return MAX_JOB_ORDERS;
    }
    let budget = i64::from(step) * 800 - 3000 - FPING_MIN_INTERVAL_MS as i64 * i64::from(pings);
    budget.clamp(1, MAX_JOB_ORDERS as i64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn rrd_timestamps() {
        assert_eq!(rrd_time(1_310_116_524, 20), 1_310_116_500);
        assert_eq!(rrd_time(1_310_116_520, 20), 1_310_116_500);
        assert_eq!(rrd_time(1_310_116_519, 20), 1_310_116_480);
        assert_eq!(rrd_time(600, 300), 300);
        assert_eq!(rrd_time(899, 300), 300);
        assert_eq!(rrd_create_start(1000, 60), 900);
    }

    #[test]
    fn offsets_stay_in_range() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..1000 {
            let o = random_offset_ms(60, 20, &mut rng);
            assert!(o < 60_000 / 21, "{o}");
        }
        let o = random_offset_ms(10, 1, &mut rng);
        assert!(o < 5000);
        assert_eq!(random_offset_ms(1, 1000, &mut rng), 0);
    }

    #[test]
    fn round_starts() {
        // boundary 60 s, offset 1.5 s
        assert_eq!(next_round_start_ms(0, 60, 1500), 1500);
        assert_eq!(next_round_start_ms(1500, 60, 1500), 61_500);
        assert_eq!(next_round_start_ms(61_499, 60, 1500), 61_500);
        assert_eq!(next_round_start_ms(119_999, 60, 0), 120_000);
        assert_eq!(next_round_start_ms(120_000, 60, 0), 180_000);
    }

    #[test]
    fn intervals() {
        assert_eq!(job_interval_ms(60, 20, 1000, None), 2200);
        assert_eq!(job_interval_ms(10, 3, 1, None), 1666);
        assert_eq!(job_interval_ms(10, 4, 1000, None), 1000);
        assert_eq!(job_interval_ms(10, 4, 2000, None), 1000);
        assert_eq!(job_interval_ms(10, 4, 1, Some(250)), 250);
    }

    #[test]
    fn capacities_keep_the_interval_formula_valid() {
        assert_eq!(job_capacity(60, 20, false), 1000);
        assert_eq!(job_capacity(10, 4, false), 1000);
        assert_eq!(job_capacity(10, 3, false), 1000);
        let c = job_capacity(10, 4, false);
        assert!(fping_interval_ms(10, 4, c) >= 1000);
        let c = job_capacity(20, 12, false);
        assert_eq!(c, 1000);
        let c = job_capacity(6, 1, false);
        assert_eq!(c, 1000);
        let c = job_capacity(8, 3, false);
        assert!(fping_interval_ms(8, 3, c) >= 1000, "{c}");
        assert_eq!(job_capacity(60, 20, true), 1000);
    }
}
