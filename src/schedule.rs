//! The timing rules, in one place (the original pingmachine's): timeouts, the fping
//! interval formula, how many orders fit in a job, step boundaries, per-job
//! offsets, round start times and RRD timestamps. The order parser
//! validates by calling these, and jobs run by them. Pure functions of time
//! values so they are unit-tested without clocks.

use std::time::Duration;

use rand::Rng;

/// Reply timeout of the fping probe by default (the original's rule), in
/// ms; an order may set its own (`fping.timeout`).
pub const FPING_TIMEOUT_MS: u64 = 3000;
/// Shortest and longest `fping.timeout`, ms.
pub const FPING_TIMEOUT_RANGE_MS: (u16, u16) = (10, 60_000);
/// Smallest computed interval between two pings to one target (as the original does).
pub const FPING_MIN_INTERVAL_MS: u64 = 1000;
/// Minimum gap between two sends of one fping job (as the original does).
pub const FPING_SPACING: Duration = Duration::from_millis(1);
/// Per-ping timeout of the tcp, ssh and dns probes, in ms.
pub const CONNECT_TIMEOUT_MS: u64 = 3000;
/// Per-ping timeout of the tcp, ssh and dns probes.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(CONNECT_TIMEOUT_MS);
/// Per-request timeout of the httping probe (the original's rule), cut short at the
/// round's deadline.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(15);
/// Default `interval` of the series probes (tcp, ssh, dns, exec, SCION), ms.
pub const DEFAULT_INTERVAL_MS: u32 = 1000;
/// Largest `interval` accepted, ms (one hour).
pub const MAX_INTERVAL_MS: u32 = 3_600_000;
/// Largest `httping.interval` accepted, s.
pub const MAX_HTTP_INTERVAL_S: u32 = 3600;
/// Probes other than ICMP stop this long before the next round's start, so
/// their partial results are still stored.
pub const ROUND_STOP_MARGIN_MS: i64 = 200;

/// Largest number of orders in one fping job (as the original does).
pub const MAX_JOB_ORDERS: usize = 1000;
/// Largest number of orders in one httping job (as the original).
pub const HTTPING_JOB_ORDERS: usize = 15;
/// Largest number of orders in one job of the other probes.
pub const OTHER_JOB_ORDERS: usize = 100;

/// The interval the fping probe uses between two pings to one target for a
/// job of `targets` targets with reply timeout `timeout_ms` (the original's
/// rule, with its 3000 ms timeout): `floor((step*800 - targets - timeout) /
/// pings)`, before the 1000 ms floor is checked.
pub fn fping_interval_ms(step: u32, pings: u32, targets: usize, timeout_ms: u64) -> i64 {
    let budget = i64::from(step) * 800 - targets as i64 - timeout_ms as i64;
    budget / i64::from(pings.max(1))
}

/// How long a round of `pings` probes `interval_ms` apart lasts when the
/// last one may take `timeout_ms`: `(pings-1) * interval + timeout`. A round
/// must end within its step.
pub fn series_round_ms(pings: u32, interval_ms: u32, timeout_ms: u64) -> u64 {
    u64::from(pings.saturating_sub(1)) * u64::from(interval_ms) + timeout_ms
}

/// Why a round of the fping probe does not fit in its step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FpingFit {
    /// The computed interval is below [`FPING_MIN_INTERVAL_MS`].
    IntervalTooShort {
        /// The computed interval, ms.
        computed: i64,
    },
    /// The round (with its reply timeout) does not end within the step.
    RoundTooLong {
        /// Length of the round, ms.
        round_ms: u64,
    },
}

/// The interval an fping order of one target uses (its own `interval`, or
/// the original's formula), or why its rounds (with reply timeout
/// `timeout_ms`) do not fit in the step.
pub fn fping_fit(
    step: u32,
    pings: u32,
    interval_ms: Option<u32>,
    timeout_ms: u64,
) -> Result<u64, FpingFit> {
    let interval = match interval_ms {
        Some(i) => u64::from(i),
        None if pings >= 2 => {
            let computed = fping_interval_ms(step, pings, 1, timeout_ms);
            if computed < FPING_MIN_INTERVAL_MS as i64 {
                return Err(FpingFit::IntervalTooShort { computed });
            }
            computed as u64
        }
        None => 0,
    };
    let round_ms = u64::from(pings.saturating_sub(1)) * interval + timeout_ms;
    if round_ms >= u64::from(step) * 1000 {
        return Err(FpingFit::RoundTooLong { round_ms });
    }
    Ok(interval)
}

/// The last httping request of a round must start within the step:
/// `(pings-1) * interval < step`. `Err` carries `(pings-1) * interval`.
pub fn httping_fit(step: u32, pings: u32, interval_s: u32) -> Result<(), u64> {
    let last = u64::from(pings.saturating_sub(1)) * u64::from(interval_s);
    if last >= u64::from(step) {
        Err(last)
    } else {
        Ok(())
    }
}

/// Unix seconds → the RRD timestamp of a round collected at that time:
/// `floor(now/step)*step - step` (the original's rule).
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
/// targets: the order's `interval`, else the original's formula, never below
/// 1000 ms (job sizes are capped by [`job_capacity`] so the formula holds).
pub fn job_interval_ms(
    step: u32,
    pings: u32,
    targets: usize,
    explicit: Option<u32>,
    timeout_ms: u64,
) -> u64 {
    match explicit {
        Some(ms) => u64::from(ms),
        None => fping_interval_ms(step, pings, targets, timeout_ms)
            .max(FPING_MIN_INTERVAL_MS as i64) as u64,
    }
}

/// How many orders fit in one job with this step, pings and reply timeout:
/// at most 1000, and (without an explicit interval, with pings ≥ 2) few
/// enough that the computed interval stays at or above 1000 ms.
pub fn job_capacity(step: u32, pings: u32, explicit_interval: bool, timeout_ms: u64) -> usize {
    if explicit_interval || pings < 2 {
        return MAX_JOB_ORDERS;
    }
    let budget =
        i64::from(step) * 800 - timeout_ms as i64 - FPING_MIN_INTERVAL_MS as i64 * i64::from(pings);
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
        assert_eq!(job_interval_ms(60, 20, 1000, None, FPING_TIMEOUT_MS), 2200);
        assert_eq!(job_interval_ms(10, 3, 1, None, FPING_TIMEOUT_MS), 1666);
        assert_eq!(job_interval_ms(10, 4, 1000, None, FPING_TIMEOUT_MS), 1000);
        assert_eq!(job_interval_ms(10, 4, 2000, None, FPING_TIMEOUT_MS), 1000);
        assert_eq!(job_interval_ms(10, 4, 1, Some(250), FPING_TIMEOUT_MS), 250);
    }

    #[test]
    fn interval_formula() {
        // The original's formula: floor((step*1000*0.8 - targets*1 - 3000) / pings)
        assert_eq!(fping_interval_ms(60, 20, 1000, FPING_TIMEOUT_MS), 2200);
        assert_eq!(fping_interval_ms(300, 20, 1, FPING_TIMEOUT_MS), 11849);
        assert_eq!(fping_interval_ms(10, 5, 1, FPING_TIMEOUT_MS), 999);
    }

    #[test]
    fn fit_rules() {
        assert_eq!(fping_fit(300, 20, None, FPING_TIMEOUT_MS), Ok(11849));
        assert_eq!(
            fping_fit(10, 5, None, FPING_TIMEOUT_MS),
            Err(FpingFit::IntervalTooShort { computed: 999 })
        );
        assert_eq!(
            fping_fit(3, 1, None, FPING_TIMEOUT_MS),
            Err(FpingFit::RoundTooLong { round_ms: 3000 })
        );
        assert_eq!(
            fping_fit(10, 5, Some(2000), FPING_TIMEOUT_MS),
            Err(FpingFit::RoundTooLong { round_ms: 11000 })
        );
        assert_eq!(fping_fit(10, 5, Some(1000), FPING_TIMEOUT_MS), Ok(1000));
        // An order's own reply timeout takes the original's 3000 ms place.
        assert_eq!(fping_interval_ms(10, 5, 1, 1000), 1399);
        assert_eq!(fping_fit(10, 5, Some(2000), 1000), Ok(2000));
        assert!(matches!(
            fping_fit(10, 2, Some(1000), 9500),
            Err(FpingFit::RoundTooLong { round_ms: 10_500 })
        ));
        assert_eq!(job_interval_ms(10, 5, 1, None, 1000), 1399);
        assert_eq!(series_round_ms(5, 1000, CONNECT_TIMEOUT_MS), 7000);
        assert_eq!(series_round_ms(1, 1000, 0), 0);
        assert_eq!(httping_fit(60, 30, 3), Err(87));
        assert_eq!(httping_fit(60, 20, 3), Ok(()));
    }

    #[test]
    fn capacities_keep_the_interval_formula_valid() {
        assert_eq!(job_capacity(60, 20, false, FPING_TIMEOUT_MS), 1000);
        assert_eq!(job_capacity(10, 4, false, FPING_TIMEOUT_MS), 1000);
        assert_eq!(job_capacity(10, 3, false, FPING_TIMEOUT_MS), 1000);
        let c = job_capacity(10, 4, false, FPING_TIMEOUT_MS);
        assert!(fping_interval_ms(10, 4, c, FPING_TIMEOUT_MS) >= 1000);
        let c = job_capacity(20, 12, false, FPING_TIMEOUT_MS);
        assert_eq!(c, 1000);
        let c = job_capacity(6, 1, false, FPING_TIMEOUT_MS);
        assert_eq!(c, 1000);
        let c = job_capacity(8, 3, false, FPING_TIMEOUT_MS);
        assert!(fping_interval_ms(8, 3, c, FPING_TIMEOUT_MS) >= 1000, "{c}");
        assert_eq!(job_capacity(60, 20, true, FPING_TIMEOUT_MS), 1000);
    }
}
