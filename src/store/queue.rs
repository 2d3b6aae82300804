//! The pending work of one writer thread: what jobs and the registry
//! handed over and the writer has not written yet.
//!
//! Handing work over never waits: a job pushes a finished round and starts
//! its next one on time, whatever the disk is doing. What bounds the memory
//! is that work is kept **per order**, not per round:
//!
//! * an order's latest round is kept for `last_result`, a "latest value"
//!   file: a newer round replaces an unwritten older one, which is counted
//!   as *superseded* (not lost: the file only ever shows the latest);
//! * an order with `main.rrd` also keeps its unwritten RRD updates, oldest
//!   first, up to `backlog` rounds: they are written late, in time order,
//!   rather than dropped; past the bound the oldest is dropped and counted
//!   for that order (a gap in its RRD, never a silent one);
//! * the registry's commands (prepare an order's output, archive it) keep
//!   their order relative to the rounds of the same order: a round handed
//!   over after a command is never merged into work queued before it;
//! * the queue knows each order's active *generation* (set by its prepare
//!   command, cleared by its archive command, both in order): a round of
//!   an order that ended or changed since is dropped when it is handed
//!   over, counted, so a late round never recreates `output/<id>/` beside
//!   `archive/<id>/`. Checking at hand-over is the same as checking when
//!   the writer gets to it: every command of the order before the round is
//!   already in the queue, and none after it matters to it.
//!
//! So a writer holds at most one pending entry per order it serves (plus a
//! command per order change), each at most `1 + backlog` rounds: see
//! [`Pending`] for the bytes.

use probes::sync::{lock, wait};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

use super::stats::StoreStats;
use super::writer::{Shape, StoreCmd};
use crate::order::OrderId;
use crate::result::Summary;

/// What `last_result` shows of a round: its time and statistics (RTTs in
/// seconds; NaN when nothing answered). 40 bytes, whatever the pings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latest {
    /// RRD time of the round.
    pub t: i64,
    /// Pings without an answer.
    pub lost: u32,
    /// Smallest, median and largest RTT (NaN: none).
    pub min: f64,
    pub median: f64,
    pub max: f64,
}

impl Latest {
    /// The `last_result` figures of `summary` at `t`.
    pub fn of(t: i64, summary: &Summary) -> Latest {
        let nan = |x: Option<f64>| x.unwrap_or(f64::NAN);
        Latest {
            t,
            lost: u32::try_from(summary.lost).unwrap_or(u32::MAX),
            min: nan(summary.min()),
            median: nan(summary.median()),
            max: nan(summary.max()),
        }
    }
}

/// An order's unwritten rounds: 72 bytes (checked by a unit test), plus
/// for an order with `main.rrd` a [`Backlog`].
#[derive(Debug)]
pub struct Pending {
    /// Step, pings and whether `main.rrd` is kept.
    pub shape: Shape,
    /// The newest round, for `last_result`.
    pub latest: Latest,
    /// Unwritten RRD updates (only with `main.rrd`).
    pub rrd: Option<Box<Backlog>>,
    /// Rounds handed over and merged into this entry.
    pub rounds: u32,
    /// `last_result` versions replaced by a newer round before written.
    pub superseded: u32,
    /// When the oldest round of this entry was handed over: milliseconds
    /// after the queue was made (see [`Queue::waited`]).
    queued_ms: u32,
}

/// An order's unwritten RRD updates: at most `backlog` rounds, each a
/// [`Summary`] (`48 + 8 × answered pings` bytes).
#[derive(Debug, Default)]
pub struct Backlog {
    /// The updates, oldest first.
    pub updates: VecDeque<(i64, Summary)>,
    /// Updates dropped, oldest first, because `backlog` were waiting.
    pub dropped: u32,
    /// The RRD time of the newest round dropped: the writer marks it
    /// unknown in the file first, so that the gap is exactly the dropped
    /// rounds (without it, the first round after a gap longer than the
    /// RRD's heartbeat would be unknown too).
    pub gap_until: Option<i64>,
}

impl Pending {
    /// Rounds this entry holds: its RRD updates, or its one `last_result`.
    fn rounds_held(&self) -> u64 {
        self.rrd
            .as_ref()
            .map_or(1, |b| b.updates.len() as u64)
            .max(1)
    }

    /// RRD updates dropped from this entry.
    pub fn rrd_dropped(&self) -> u32 {
        self.rrd.as_ref().map_or(0, |b| b.dropped)
    }
}

/// Work for the writer, in the order it must be done.
#[derive(Debug)]
pub enum Work {
    /// A registry command (prepare, archive).
    Command(StoreCmd),
    /// An order's unwritten rounds.
    Rounds(OrderId, Pending),
}

/// One place in the queue. An order's entry stays where its first round
/// put it; later rounds are merged into it there.
#[derive(Debug)]
enum Slot {
    Command(Box<StoreCmd>),
    Rounds(OrderId, Pending),
}

/// What the queue knows of an order of its writer: 16 bytes, for every
/// active order.
#[derive(Debug, Clone, Copy)]
struct Known {
    /// The active generation, set by the order's last prepare command.
    generation: u64,
    /// The sequence number of the order's entry that later rounds may
    /// still join; [`NOT_OPEN`] when none may (none queued, or a command
    /// for the order was queued after it).
    open: u64,
}

/// [`Known::open`] when no entry of the order may be joined.
const NOT_OPEN: u64 = u64::MAX;

#[derive(Debug, Default)]
struct State {
    /// The work, in order; `fifo[i]` has the sequence number `head + i`.
    fifo: VecDeque<Slot>,
    head: u64,
    /// Every active order of this writer.
    orders: HashMap<OrderId, Known>,
    /// Rounds waiting, RRD backlog included.
    waiting_rounds: u64,
    closed: bool,
    deadline: Option<Instant>,
}

/// Moves the sum `gauge` by this queue's change from `from` to `to`;
/// returns the new sum.
fn adjust(gauge: &AtomicU64, from: u64, to: u64) -> u64 {
    if to >= from {
        gauge.fetch_add(to - from, Ordering::Relaxed) + (to - from)
    } else {
        gauge
            .fetch_sub(from - to, Ordering::Relaxed)
            .saturating_sub(from - to)
    }
}

/// What a writer does when its queue is empty or closed.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Work to do.
    Work,
    /// Closed and empty, or closed and past the deadline: exit.
    Exit,
}

/// The pending work of one writer: pushed by any thread, taken by one.
#[derive(Debug)]
pub struct Queue {
    state: Mutex<State>,
    wake: Condvar,
    backlog: usize,
    /// What `Pending::queued_ms` counts from.
    epoch: Instant,
    /// Where the waiting rounds and entries of every writer's queue are
    /// added up (gauges and high-water marks).
    stats: Arc<StoreStats>,
}

impl Queue {
    /// An empty queue keeping at most `backlog` (at least 1) unwritten RRD
    /// updates per order; its depth is added to `stats`.
    pub fn new(backlog: usize, stats: Arc<StoreStats>) -> Queue {
        Queue {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            backlog: backlog.max(1),
            epoch: Instant::now(),
            stats,
        }
    }

    /// How long the oldest round of `p` has waited.
    pub fn waited(&self, p: &Pending) -> std::time::Duration {
        self.epoch
            .elapsed()
            .saturating_sub(std::time::Duration::from_millis(u64::from(p.queued_ms)))
    }

    fn ms_since_epoch(&self, at: Instant) -> u32 {
        u32::try_from(at.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u32::MAX)
    }

    /// Adds this queue's change of depth to the store's gauges.
    fn account(&self, before: (usize, u64), st: &State) {
        let s = &self.stats;
        adjust(&s.waiting_entries, before.0 as u64, st.fifo.len() as u64);
        let rounds = adjust(&s.waiting_rounds, before.1, st.waiting_rounds);
        s.queue_high_water
            .fetch_max(st.fifo.len() as u64, Ordering::Relaxed);
        s.waiting_high_water.fetch_max(rounds, Ordering::Relaxed);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A writer that panicked while holding the lock stops the daemon
        // (its supervisor); the state itself is never left half-changed.
        lock(&self.state)
    }

    /// Adds `cmds` in order and wakes the writer once. Never waits for the
    /// writer.
    pub fn push_all(&self, cmds: impl IntoIterator<Item = StoreCmd>) {
        let mut st = self.lock();
        let before = (st.fifo.len(), st.waiting_rounds);
        for cmd in cmds {
            self.push_locked(&mut st, cmd);
        }
        self.account(before, &st);
        drop(st);
        self.wake.notify_one();
    }

    fn push_locked(&self, st: &mut State, cmd: StoreCmd) {
        let (id, generation, shape, t, summary, queued) = match cmd {
            StoreCmd::Round {
                id,
                generation,
                shape,
                t,
                summary,
                queued,
            } => (id, generation, shape, t, summary, queued),
            StoreCmd::Prepare {
                ref id, generation, ..
            } => {
                // Later rounds of this generation start a new entry.
                st.orders.insert(
                    id.clone(),
                    Known {
                        generation,
                        open: NOT_OPEN,
                    },
                );
                st.fifo.push_back(Slot::Command(Box::new(cmd)));
                return;
            }
            StoreCmd::Archive { ref id } => {
                st.orders.remove(id);
                st.fifo.push_back(Slot::Command(Box::new(cmd)));
                return;
            }
        };
        let Some(known) = st.orders.get(&id).copied() else {
            self.stats.stale_rounds.fetch_add(1, Ordering::Relaxed);
            return;
        };
        if known.generation != generation {
            self.stats.stale_rounds.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let latest = Latest::of(t, &summary);
        if known.open != NOT_OPEN {
            let i = usize::try_from(known.open.saturating_sub(st.head)).unwrap_or(usize::MAX);
            if let Some(Slot::Rounds(_, p)) = st.fifo.get_mut(i) {
                if p.shape == shape {
                    p.rounds = p.rounds.saturating_add(1);
                    p.superseded = p.superseded.saturating_add(1);
                    p.latest = latest;
                    // Without main.rrd only last_result: the older round
                    // is simply replaced.
                    if let Some(b) = &mut p.rrd {
                        if b.updates.len() >= self.backlog {
                            if let Some((gone, _)) = b.updates.pop_front() {
                                b.gap_until = Some(gone);
                            }
                            b.dropped = b.dropped.saturating_add(1);
                        } else {
                            st.waiting_rounds += 1;
                        }
                        b.updates.push_back((t, summary));
                    }
                    return;
                }
            }
        }
        let rrd = shape.rrd.then(|| {
            let mut b = Box::<Backlog>::default();
            b.updates.push_back((t, summary));
            b
        });
        let seq = st.head + st.fifo.len() as u64;
        if let Some(k) = st.orders.get_mut(&id) {
            k.open = seq;
        }
        st.fifo.push_back(Slot::Rounds(
            id,
            Pending {
                shape,
                latest,
                rrd,
                rounds: 1,
                superseded: 0,
                queued_ms: self.ms_since_epoch(queued),
            },
        ));
        st.waiting_rounds += 1;
    }

    /// The next work, waiting for some; `Exit` once closed and empty (or
    /// closed and past its deadline: the rest is then left for
    /// [`Queue::abandon`]).
    pub fn next(&self) -> (Next, Option<Work>) {
        let mut st = self.lock();
        loop {
            if st.closed && st.deadline.is_some_and(|d| Instant::now() >= d) {
                return (Next::Exit, None);
            }
            let before = (st.fifo.len(), st.waiting_rounds);
            if let Some(work) = Self::pop(&mut st) {
                self.account(before, &st);
                return (Next::Work, Some(work));
            }
            if st.closed {
                return (Next::Exit, None);
            }
            st = wait(&self.wake, st);
        }
    }

    /// The next work, if any, without waiting.
    pub fn try_next(&self) -> Option<Work> {
        let mut st = self.lock();
        let before = (st.fifo.len(), st.waiting_rounds);
        let work = Self::pop(&mut st);
        self.account(before, &st);
        work
    }

    fn pop(st: &mut State) -> Option<Work> {
        let slot = st.fifo.pop_front()?;
        let seq = st.head;
        st.head += 1;
        Some(match slot {
            Slot::Command(cmd) => Work::Command(*cmd),
            Slot::Rounds(id, p) => {
                if let Some(k) = st.orders.get_mut(&id) {
                    if k.open == seq {
                        k.open = NOT_OPEN;
                    }
                }
                st.waiting_rounds -= p.rounds_held();
                Work::Rounds(id, p)
            }
        })
    }

    /// Stops taking work: the writer finishes what is queued, until
    /// `deadline` when given, and then exits.
    pub fn close(&self, deadline: Option<Instant>) {
        let mut st = self.lock();
        st.closed = true;
        st.deadline = deadline;
        drop(st);
        self.wake.notify_all();
    }

    /// Empties the queue; returns the rounds it held (not written).
    pub fn abandon(&self) -> u64 {
        let mut st = self.lock();
        let before = (st.fifo.len(), st.waiting_rounds);
        let n = st.waiting_rounds;
        st.head += st.fifo.len() as u64;
        st.fifo.clear();
        for k in st.orders.values_mut() {
            k.open = NOT_OPEN;
        }
        st.waiting_rounds = 0;
        self.account(before, &st);
        n
    }

    /// (entries queued, rounds waiting) now.
    pub fn depth(&self) -> (usize, u64) {
        let st = self.lock();
        (st.fifo.len(), st.waiting_rounds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::RoundOutcome;
    use std::time::Duration;

    fn id(s: &str) -> OrderId {
        OrderId::new(s).unwrap()
    }

    fn queue(backlog: usize) -> Queue {
        Queue::new(backlog, Arc::default())
    }

    const RRD: Shape = Shape {
        step: 60,
        pings: 2,
        rrd: true,
    };
    const NORRD: Shape = Shape {
        step: 60,
        pings: 2,
        rrd: false,
    };

    fn round(o: &str, generation: u64, shape: Shape, t: i64, ms: u64) -> StoreCmd {
        StoreCmd::Round {
            id: id(o),
            generation,
            shape,
            t,
            summary: Summary::of(&RoundOutcome {
                rtts: vec![Some(Duration::from_millis(ms)), None],
            }),
            queued: Instant::now(),
        }
    }

    fn prepare(o: &str, generation: u64, shape: Shape) -> StoreCmd {
        StoreCmd::Prepare {
            id: id(o),
            generation,
            shape,
            rrd_start: 0,
        }
    }

    /// A queue whose writer already took the prepare commands of `orders`.
    fn queue_with(backlog: usize, orders: &[(&str, Shape)]) -> Queue {
        let q = queue(backlog);
        q.push_all(orders.iter().map(|(o, shape)| prepare(o, 1, *shape)));
        assert_eq!(drain(&q).len(), orders.len());
        q
    }

    fn drain(q: &Queue) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(w) = q.try_next() {
            out.push(match w {
                Work::Command(StoreCmd::Prepare { id, generation, .. }) => {
                    format!("prepare {id} {generation}")
                }
                Work::Command(StoreCmd::Archive { id }) => format!("archive {id}"),
                Work::Command(StoreCmd::Round { .. }) => "round command".into(),
                Work::Rounds(id, p) => {
                    let ts: Vec<i64> = p
                        .rrd
                        .iter()
                        .flat_map(|b| b.updates.iter().map(|(t, _)| *t))
                        .collect();
                    let gap = p
                        .rrd
                        .as_ref()
                        .and_then(|b| b.gap_until)
                        .map_or(String::new(), |t| format!(" gap until {t}"));
                    format!(
                        "rounds {id} latest {} rrd {ts:?} superseded {} dropped {}{gap}",
                        p.latest.t,
                        p.superseded,
                        p.rrd_dropped()
                    )
                }
            });
        }
        out
    }

    #[test]
    fn a_newer_round_supersedes_last_result_and_keeps_every_rrd_update_in_order() {
        let q = queue_with(10, &[("a", RRD), ("b", NORRD)]);
        q.push_all([
            round("a", 1, RRD, 60, 1),
            round("b", 1, NORRD, 60, 1),
            round("a", 1, RRD, 120, 2),
            round("b", 1, NORRD, 120, 2),
            round("a", 1, RRD, 180, 3),
        ]);
        assert_eq!(
            q.depth(),
            (2, 4),
            "two entries: a's 3 RRD updates, b's 1 last_result"
        );
        assert_eq!(
            drain(&q),
            [
                "rounds a latest 180 rrd [60, 120, 180] superseded 2 dropped 0",
                "rounds b latest 120 rrd [] superseded 1 dropped 0",
            ]
        );
        assert_eq!(q.depth(), (0, 0));
    }

    #[test]
    fn past_the_backlog_the_oldest_rrd_update_is_dropped_and_counted() {
        let q = queue_with(3, &[("a", RRD)]);
        for k in 1..=5 {
            q.push_all([round("a", 1, RRD, 60 * k, 1)]);
        }
        assert_eq!(q.depth(), (1, 3));
        assert_eq!(
            drain(&q),
            ["rounds a latest 300 rrd [180, 240, 300] superseded 4 dropped 2 gap until 120"]
        );
    }

    #[test]
    fn rounds_after_a_command_never_join_work_queued_before_it() {
        let q = queue_with(10, &[("a", RRD)]);
        q.push_all([
            round("a", 1, RRD, 60, 1),
            StoreCmd::Archive { id: id("a") },
            prepare("a", 2, RRD),
            round("a", 2, RRD, 120, 1),
            round("a", 2, RRD, 180, 1),
        ]);
        assert_eq!(
            drain(&q),
            [
                "rounds a latest 60 rrd [60] superseded 0 dropped 0",
                "archive a",
                "prepare a 2",
                "rounds a latest 180 rrd [120, 180] superseded 1 dropped 0",
            ]
        );
    }

    #[test]
    fn a_round_of_an_order_that_ended_or_changed_is_dropped_and_counted() {
        let q = queue_with(10, &[("a", NORRD), ("b", NORRD)]);
        q.push_all([
            round("a", 1, NORRD, 60, 1),
            prepare("a", 2, NORRD),
            // Run for the order as it was: dropped.
            round("a", 1, NORRD, 120, 1),
            round("a", 2, NORRD, 120, 1),
            StoreCmd::Archive { id: id("b") },
            round("b", 1, NORRD, 120, 1),
            // Never prepared.
            round("c", 1, NORRD, 120, 1),
        ]);
        assert_eq!(
            drain(&q),
            [
                "rounds a latest 60 rrd [] superseded 0 dropped 0",
                "prepare a 2",
                "rounds a latest 120 rrd [] superseded 0 dropped 0",
                "archive b",
            ]
        );
        assert_eq!(q.stats.stale_rounds.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn close_lets_the_writer_finish_then_exit_and_a_deadline_cuts_it_short() {
        let q = queue_with(10, &[("a", NORRD)]);
        q.push_all([round("a", 1, NORRD, 60, 1)]);
        q.close(None);
        assert!(matches!(q.next(), (Next::Work, Some(_))));
        assert_eq!(q.next().0, Next::Exit);

        let q = queue_with(10, &[("a", RRD)]);
        q.push_all([round("a", 1, RRD, 60, 1), round("a", 1, RRD, 120, 1)]);
        q.close(Some(Instant::now()));
        assert_eq!(q.next().0, Next::Exit, "past the deadline");
        assert_eq!(q.abandon(), 2, "the rounds left are counted");
        assert_eq!(q.depth(), (0, 0));
    }

    #[test]
    fn an_entry_is_small_and_its_size_is_what_the_docs_say() {
        // docs/SCALING.md and the docs of `Pending` quote these sizes.
        assert_eq!(std::mem::size_of::<Pending>(), 72);
        assert_eq!(std::mem::size_of::<Slot>(), 88);
        assert_eq!(std::mem::size_of::<Known>(), 16);
    }

    #[test]
    fn next_waits_for_work_from_another_thread() {
        let q = Arc::new(queue(10));
        let taker = {
            let q = q.clone();
            std::thread::spawn(move || loop {
                match q.next() {
                    (Next::Work, Some(Work::Rounds(id, _))) => return id.to_string(),
                    (Next::Work, Some(Work::Command(_))) => {}
                    other => return format!("{other:?}"),
                }
            })
        };
        q.push_all([prepare("late", 1, NORRD), round("late", 1, NORRD, 60, 1)]);
        assert_eq!(taker.join().unwrap(), "late");
    }
}
