//! Send-time maths of one round, as pure code (no sockets, no clocks read).
//!
//! fping semantics: the targets are shuffled once per round; ping `i`
//! (0-based) to the `j`-th shuffled target is nominally due at
//! `start + i*interval + j*spacing`. Sends happen in order of nominal due
//! time, and two consecutive sends of the round are at least `spacing`
//! apart: when a send happens late, the following ones shift.
//!
//! The cursor merges the `pings` sorted sequences (one per ping index) with a
//! small binary heap, so memory is `O(targets + pings)` and never
//! `O(targets * pings)`.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use rand::Rng;

/// Offsets and deadlines are capped at this, so adding them to an `Instant`
/// cannot overflow whatever a request says.
pub const MAX_OFFSET: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// `instant + d`, saturating at [`MAX_OFFSET`] and never panicking.
pub fn add_capped(instant: Instant, d: Duration) -> Instant {
    instant.checked_add(d.min(MAX_OFFSET)).unwrap_or(instant)
}

/// Nominal offset from the round start of ping `ping` to the shuffled target
/// at position `pos`: `ping*interval + pos*spacing`, saturating at [`MAX_OFFSET`].
pub fn nominal_offset(interval: Duration, spacing: Duration, ping: u32, pos: usize) -> Duration {
    let pos = u32::try_from(pos).unwrap_or(u32::MAX);
    let a = interval.checked_mul(ping).unwrap_or(MAX_OFFSET);
    let b = spacing.checked_mul(pos).unwrap_or(MAX_OFFSET);
    a.checked_add(b).unwrap_or(MAX_OFFSET).min(MAX_OFFSET)
}

/// One send to perform: ping number `ping` to target `target` (index into the
/// request's target list).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    /// Index into the request's target list.
    pub target: usize,
    /// Ping index for that target (0-based, in send order).
    pub ping: u32,
}

/// The cursor over the sends of one round.
#[derive(Debug)]
pub struct Schedule {
    /// Target indices in shuffled order (position `j` → target index).
    order: Vec<usize>,
    interval: Duration,
    spacing: Duration,
    start: Instant,
    /// Next position per ping index, ordered by (nominal offset, ping index).
    heads: BinaryHeap<Reverse<(Duration, u32, usize)>>,
    last_send: Option<Instant>,
    total: u64,
}

impl Schedule {
    /// A schedule over `targets` (indices into the request; only those to be
    /// pinged), shuffled with `rng`.
    pub fn new<R: Rng + ?Sized>(
        mut targets: Vec<usize>,
        pings: u32,
        interval: Duration,
        spacing: Duration,
        start: Instant,
        rng: &mut R,
    ) -> Schedule {
        targets.shuffle(rng);
        let mut heads = BinaryHeap::new();
        if !targets.is_empty() {
            for i in 0..pings {
                heads.push(Reverse((nominal_offset(interval, spacing, i, 0), i, 0)));
            }
        }
        let total = u64::try_from(targets.len())
            .unwrap_or(u64::MAX)
            .saturating_mul(u64::from(pings));
        Schedule {
            order: targets,
            interval,
            spacing,
            start,
            heads,
            last_send: None,
            total,
        }
    }

    /// The shuffled order (target indices by position).
    #[cfg(test)]
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    /// Number of sends in the round.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Time of the last send, if any.
    pub fn last_send(&self) -> Option<Instant> {
        self.last_send
    }

    /// True when every send has been taken.
    pub fn is_done(&self) -> bool {
        self.heads.is_empty()
    }

    /// When the next send is due: its nominal time, pushed back to at least
    /// `spacing` after the previous send. `None` when all are taken.
    pub fn next_due(&self) -> Option<Instant> {
        let Reverse((offset, _, _)) = self.heads.peek()?;
        let nominal = add_capped(self.start, *offset);
        Some(match self.last_send {
            Some(last) => nominal.max(add_capped(last, self.spacing)),
            None => nominal,
        })
    }

    /// Takes the next send, recording that it happens at `at` (which the
    /// caller picks `>= next_due()`).
    pub fn take(&mut self, at: Instant) -> Option<Slot> {
        let Reverse((_, ping, pos)) = self.heads.pop()?;
        let target = *self.order.get(pos)?;
        let next = pos + 1;
        if next < self.order.len() {
            self.heads.push(Reverse((
                nominal_offset(self.interval, self.spacing, ping, next),
                ping,
                next,
            )));
        }
        self.last_send = Some(at);
        Some(Slot { target, ping })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    const MS: Duration = Duration::from_millis(1);

    fn sched(n: usize, pings: u32, interval: Duration, start: Instant) -> Schedule {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        Schedule::new((0..n).collect(), pings, interval, MS, start, &mut rng)
    }

    #[test]
    fn nominal_offsets() {
        assert_eq!(nominal_offset(200 * MS, MS, 0, 0), Duration::ZERO);
        assert_eq!(nominal_offset(200 * MS, MS, 2, 3), 403 * MS);
        assert_eq!(nominal_offset(Duration::MAX, MS, 5, 3), MAX_OFFSET);
        assert_eq!(nominal_offset(MS, Duration::MAX, 0, usize::MAX), MAX_OFFSET);
    }

    #[test]
    fn add_capped_never_panics() {
        let now = Instant::now();
        assert!(add_capped(now, Duration::MAX) > now);
        assert_eq!(add_capped(now, MS), now + MS);
    }

    #[test]
    fn due_times_on_time() {
        // Sends happen exactly when due: the due time of ping i to position j
        // is start + i*interval + j*spacing.
        let start = Instant::now();
        let mut s = sched(3, 2, 100 * MS, start);
        assert_eq!(s.total(), 6);
        let order = s.order().to_vec();
        let mut seen = Vec::new();
        while let Some(due) = s.next_due() {
            let slot = s.take(due).expect("slot");
            seen.push((due - start, slot));
        }
        assert!(s.is_done());
        let expected: Vec<(Duration, Slot)> =
            [(0u32, 0usize), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
                .iter()
                .map(|&(i, j)| {
                    (
                        100 * MS * i + MS * u32::try_from(j).unwrap_or(0),
                        Slot {
                            target: order[j],
                            ping: i,
                        },
                    )
                })
                .collect();
        assert_eq!(seen, expected);
    }

    #[test]
    fn interleaves_when_interval_is_short() {
        // 4 targets, interval 2 ms: ping 1 to position 0 (2 ms) comes before
        // ping 0 to position 3 (3 ms); ties go to the lower ping index.
        let start = Instant::now();
        let mut s = sched(4, 2, 2 * MS, start);
        let order = s.order().to_vec();
        let mut seq = Vec::new();
        while let Some(due) = s.next_due() {
            let slot = s.take(due).expect("slot");
            let pos = order.iter().position(|&t| t == slot.target).unwrap_or(99);
            seq.push((slot.ping, pos, (due - start).as_millis()));
        }
        assert_eq!(
            seq,
            vec![
                (0, 0, 0),
                (0, 1, 1),
                (0, 2, 2),
                (1, 0, 3), // nominal 2 ms, spacing pushes it to 3 ms
                (0, 3, 4),
                (1, 1, 5),
                (1, 2, 6),
                (1, 3, 7),
            ]
        );
    }

    #[test]
    fn spacing_enforced_after_late_send() {
        let start = Instant::now();
        let mut s = sched(4, 1, 100 * MS, start);
        assert_eq!(s.next_due(), Some(start));
        // First send happens 10 ms late.
        s.take(start + 10 * MS);
        // Position 1 was due at 1 ms, now at last send + spacing.
        assert_eq!(s.next_due(), Some(start + 11 * MS));
        s.take(start + 11 * MS);
        assert_eq!(s.next_due(), Some(start + 12 * MS));
        s.take(start + 12 * MS);
        assert_eq!(s.next_due(), Some(start + 13 * MS));
        s.take(start + 13 * MS);
        assert_eq!(s.next_due(), None);
        assert!(s.take(start + 14 * MS).is_none());

        // A later ping index is not shifted when its nominal time is later.
        let mut s = sched(2, 2, 100 * MS, start);
        s.take(start + 5 * MS);
        assert_eq!(s.next_due(), Some(start + 6 * MS));
        s.take(start + 6 * MS);
        assert_eq!(s.next_due(), Some(start + 100 * MS));
    }

    #[test]
    fn start_in_the_past_sends_at_once() {
        let now = Instant::now();
        let start = now.checked_sub(Duration::from_secs(5)).unwrap_or(now);
        let s = sched(2, 1, MS, start);
        assert!(s.next_due().is_some_and(|d| d <= now));
    }

    #[test]
    fn shuffle_covers_all_targets_once_per_ping() {
        let start = Instant::now();
        let mut rng = rand::rngs::StdRng::seed_from_u64(99);
        let n = 500;
        let mut s = Schedule::new((0..n).collect(), 3, 10 * MS, MS, start, &mut rng);
        let mut order = s.order().to_vec();
        assert_ne!(order, (0..n).collect::<Vec<_>>(), "shuffled");
        order.sort_unstable();
        assert_eq!(order, (0..n).collect::<Vec<_>>());
        let mut counts = vec![[0u32; 3]; n];
        let mut at = start;
        while let Some(due) = s.next_due() {
            at = at.max(due);
            let slot = s.take(at).expect("slot");
            // Pings to one target go out in ping-index order.
            let c = &mut counts[slot.target];
            assert_eq!(c.iter().sum::<u32>(), slot.ping);
            c[slot.ping as usize] += 1;
        }
        assert!(counts.iter().all(|c| *c == [1, 1, 1]));
    }

    #[test]
    fn empty_schedule() {
        let s = sched(0, 3, MS, Instant::now());
        assert!(s.is_done());
        assert_eq!(s.next_due(), None);
        assert_eq!(s.total(), 0);
        let s = sched(3, 0, MS, Instant::now());
        assert!(s.is_done());
    }
}
