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
}

#[cfg(test)]
mod tests {
    use super::*;

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
