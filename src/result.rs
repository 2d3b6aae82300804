//! The result of one round for one order, and the statistics derived from
//! it (the original's rule): lost count, RTTs sorted ascending, median
//! `sorted[floor(n/2)]`, min and max.

use std::time::Duration;

/// What one round measured for one order: `pings` values in send order,
/// each an RTT or lost.
#[derive(Debug, Clone, PartialEq)]
pub struct RoundOutcome {
    /// RTT per ping in send order; `None` = lost.
    pub rtts: Vec<Option<Duration>>,
}

/// Statistics of a round.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Pings sent.
    pub pings: usize,
    /// Pings without an answer.
    pub lost: usize,
    /// Answered RTTs in seconds, ascending.
    pub sorted: Vec<f64>,
}

impl Summary {
    /// Summarises an outcome.
    pub fn of(outcome: &RoundOutcome) -> Summary {
        let mut sorted: Vec<f64> = outcome
            .rtts
            .iter()
            .flatten()
            .map(Duration::as_secs_f64)
            .collect();
        sorted.sort_by(f64::total_cmp);
        Summary {
            pings: outcome.rtts.len(),
            lost: outcome.rtts.len() - sorted.len(),
            sorted,
        }
    }

    /// `sorted[floor(n/2)]`, `None` without replies.
    pub fn median(&self) -> Option<f64> {
        self.sorted.get(self.sorted.len() / 2).copied()
    }

    /// Smallest RTT.
    pub fn min(&self) -> Option<f64> {
        self.sorted.first().copied()
    }

    /// Largest RTT.
    pub fn max(&self) -> Option<f64> {
        self.sorted.last().copied()
    }

    /// Standard deviation of the answered RTTs (of the population, in
    /// seconds); `None` with fewer than two answers.
    pub fn stddev(&self) -> Option<f64> {
        let n = self.sorted.len();
        if n < 2 {
            return None;
        }
        let mean = self.sorted.iter().sum::<f64>() / n as f64;
        let var = self.sorted.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
        Some(var.sqrt())
    }
}

/// Jitter of a round, in seconds: the mean absolute difference of the RTTs
/// of consecutive pings, in send order, over every pair of neighbours that
/// were both answered (a lost ping has no neighbour pair; RFC 3550's
/// interarrival jitter without its smoothing). `None` without such a pair.
pub fn jitter(rtts: &[Option<Duration>]) -> Option<f64> {
    let (mut sum, mut pairs) = (0.0, 0u32);
    for w in rtts.windows(2) {
        if let [Some(a), Some(b)] = w {
            sum += (b.as_secs_f64() - a.as_secs_f64()).abs();
            pairs += 1;
        }
    }
    (pairs > 0).then(|| sum / f64::from(pairs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_pairs_answered_neighbours_in_send_order() {
        let ms = |v: u64| Some(Duration::from_millis(v));
        // |12-10| + |11-12| = 3 over 2 pairs; the pair around the loss is
        // left out.
        let j = jitter(&[ms(10), ms(12), ms(11), None, ms(30)]).unwrap();
        assert!((j - 0.0015).abs() < 1e-12, "{j}");
        assert_eq!(jitter(&[ms(10), None, ms(12)]), None);
        assert_eq!(jitter(&[ms(10)]), None);
        assert_eq!(jitter(&[]), None);
        // Send order, not sorted order: 10, 20, 10 is 10 ms of jitter.
        let j = jitter(&[ms(10), ms(20), ms(10)]).unwrap();
        assert!((j - 0.010).abs() < 1e-12, "{j}");
    }

    #[test]
    fn stddev_of_the_answers() {
        let ms = |v: u64| Some(Duration::from_millis(v));
        let s = Summary::of(&RoundOutcome {
            rtts: vec![ms(2), ms(4), ms(4), ms(4), ms(5), ms(5), ms(7), ms(9), None],
        });
        assert!((s.stddev().unwrap() - 0.002).abs() < 1e-12);
        let one = Summary::of(&RoundOutcome {
            rtts: vec![ms(2), None],
        });
        assert_eq!(one.stddev(), None);
    }

    fn ms(v: &[Option<u64>]) -> RoundOutcome {
        RoundOutcome {
            rtts: v.iter().map(|x| x.map(Duration::from_millis)).collect(),
        }
    }

    #[test]
    fn statistics() {
        let s = Summary::of(&ms(&[Some(30), None, Some(10), Some(20), None]));
        assert_eq!(s.lost, 2);
        assert_eq!(s.sorted, vec![0.010, 0.020, 0.030]);
        assert_eq!(s.median(), Some(0.020));
        assert_eq!((s.min(), s.max()), (Some(0.010), Some(0.030)));
        // even count: sorted[n/2] is the upper middle value, as the original
        let s = Summary::of(&ms(&[Some(4), Some(1), Some(3), Some(2)]));
        assert_eq!(s.median(), Some(0.003));
        let s = Summary::of(&ms(&[None, None]));
        assert_eq!(
            (s.lost, s.median(), s.min(), s.max()),
            (2, None, None, None)
        );
    }
}
