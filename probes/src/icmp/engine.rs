//! The engine: the sender thread (scheduling every send of every round), the
//! per-socket receive threads, and [`IcmpEngine`], the handle to both.
//!
//! The sender thread owns all round state and the socket cache. It keeps a
//! binary heap of `(next due time, round id)`, one live entry per round, and
//! sleeps in `recv_timeout` until the earliest due time or a command:
//! `Submit` (a new round), `Answered` (a receive thread saw a round's last
//! answer, so it can complete early) or `Shutdown`. It wakes only when a
//! send or a round's end is due: nothing ticks while nothing is due. The
//! sends due at one wake-up are prepared (key, packet, pending entry) and
//! then sent per socket in one `sendmmsg`.
//!
//! A receive thread reads its socket's replies and, on its error queue, the
//! kernel's transmit timestamps; both only touch the shared [`Matcher`].
//! When the kernel stamps both directions, reading late changes no RTT, so
//! while rounds are in progress the thread sleeps and drains both queues
//! every few milliseconds (see [`DRAIN_MAX`]) instead of waking for every
//! packet; at a round's end the sender thread drains the socket once more
//! itself, so nothing that arrived in time is missed.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::oneshot;

use super::matching::{Counters, Matcher, Outcome, Pending, RoundShared, SocketInfo, KEY_LIMIT};
use super::packet::{build_echo_request, Token};
use super::schedule::{add_capped, Schedule};
use super::socket::{self, Endpoint, RecvBatch};
use super::{
    Binding, EngineStats, Family, IcmpConfig, RoundError, RoundHandle, RoundRequest, RoundResult,
    Rtts, SocketKind,
};

/// Receive buffer for one packet; ours are under 64 bytes, anything longer is
/// someone else's and may be truncated.
pub(super) const RECV_BUF_LEN: usize = 2048;
/// While rounds are in progress on a socket whose kernel stamps sends and
/// receives, its receive thread drains it every `drain` interval, adapted
/// between these bounds to the rate it reads at, so that what arrives
/// between two drains fills at most a quarter of the socket's receive
/// buffer (a reply the buffer cannot take would be lost): long when little
/// comes (few wake-ups), short at high rates or with a small buffer.
const DRAIN_MIN: Duration = Duration::from_millis(1);
pub(super) const DRAIN_MAX: Duration = Duration::from_millis(100);
/// Receive-buffer bytes one queued entry (a reply, or a transmit stamp with
/// its packet) is counted as: more than a small packet's `truesize`.
const DRAIN_ENTRY_BYTES: usize = 2048;
/// After drops, a receive thread reckons its buffer at most this many
/// times smaller than it is (and drains that much sooner).
const MAX_DRAIN_PRESSURE: usize = 16;
/// At most this many packets per queue per drain, so `stopping` is seen
/// promptly.
pub(super) const DRAIN_CAP: usize = 8192;
/// A round ends this long after its last ping's timeout (replies in time
/// but still queued are read first: the sender drains the socket at the
/// end too). Whether a reply was in time is decided by its kernel
/// timestamp, not by when it is read.
const RECEIVE_GRACE: Duration = Duration::from_millis(5);

type Reply = oneshot::Sender<Result<RoundResult, RoundError>>;

/// Opens the endpoint of a binding (a real socket, or a fake in tests).
pub(crate) type OpenFn = Box<dyn FnMut(&Binding) -> Result<Arc<dyn Endpoint>, String> + Send>;

enum Command {
    Submit(Box<RoundRequest>, Reply),
    Quantum(Duration),
    Answered(u64),
    Shutdown,
}

/// State shared by the engine handle, the sender thread and the receive threads.
#[derive(Debug)]
struct Shared {
    matcher: Matcher,
    stopping: AtomicBool,
    /// Socket kind opened per family: 0 none, 1 datagram, 2 raw.
    kinds: [AtomicU8; 2],
    /// Set when a thread of the engine died (panicked): what died.
    dead: std::sync::Mutex<Option<String>>,
    /// The receive-buffer drop count each socket reported last
    /// (`SO_RXQ_OVFL`, cumulative per socket), by socket id.
    drops_seen: std::sync::Mutex<HashMap<u32, u32>>,
}

/// Held by each engine thread: records the thread's death if it unwinds.
struct DeathWatch<'a> {
    shared: &'a Shared,
    name: String,
}

impl Drop for DeathWatch<'_> {
    fn drop(&mut self) {
        if thread::panicking() {
            let mut dead = self.shared.dead.lock().unwrap_or_else(|e| e.into_inner());
            dead.get_or_insert_with(|| format!("{} panicked", self.name));
        }
    }
}

fn family_index(family: Family) -> usize {
    match family {
        Family::V4 => 0,
        Family::V6 => 1,
    }
}

/// The ICMP probe engine. `Send + Sync`; share it in an `Arc`.
///
/// Dropping it stops its threads and resolves outstanding round handles
/// with [`RoundError::Stopped`].
pub struct IcmpEngine {
    shared: Arc<Shared>,
    commands: mpsc::Sender<Command>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for IcmpEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IcmpEngine")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// Why the engine no longer measures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineDown {
    /// A thread of the engine died (what it was doing).
    #[error("ICMP engine: {0}")]
    Thread(String),
    /// The sender thread has stopped.
    #[error("ICMP engine: the sender thread stopped")]
    SenderStopped,
}

impl IcmpEngine {
    /// Starts the engine's sender thread. Sockets are opened lazily, one per
    /// [`Binding`], on the first round that uses it, and kept.
    pub fn new(config: IcmpConfig) -> io::Result<IcmpEngine> {
        IcmpEngine::with_preopened(config, PreOpened::default())
    }

    /// Like [`IcmpEngine::new`], using the sockets in `pre` for their
    /// bindings (opened earlier, e.g. before the process gave up its
    /// privileges) and opening the others lazily.
    pub fn with_preopened(config: IcmpConfig, pre: PreOpened) -> io::Result<IcmpEngine> {
        let quantum = config.send_quantum;
        let mut pre = pre.sockets;
        let mut engine = IcmpEngine::with_opener(Box::new(move |binding: &Binding| {
            if let Some(s) = pre.remove(binding) {
                return Ok(s);
            }
            socket::open(binding, &config)
                .map(|s| Arc::new(s) as Arc<dyn Endpoint>)
                .map_err(|e| e.to_string())
        }))?;
        engine.set_quantum(quantum);
        Ok(engine)
    }

    /// Sets the send quantum (see [`IcmpConfig::send_quantum`]).
    fn set_quantum(&mut self, quantum: Duration) {
        let _ = self.commands.send(Command::Quantum(quantum));
    }

    /// An engine whose endpoints come from `opener`.
    pub(crate) fn with_opener(opener: OpenFn) -> io::Result<IcmpEngine> {
        let mut rng = StdRng::from_os_rng();
        let magic: [u8; 8] = rng.random();
        let shared = Arc::new(Shared {
            matcher: Matcher::new(magic),
            stopping: AtomicBool::new(false),
            kinds: [AtomicU8::new(0), AtomicU8::new(0)],
            dead: std::sync::Mutex::new(None),
            drops_seen: std::sync::Mutex::new(HashMap::new()),
        });
        let (tx, rx) = mpsc::channel();
        let scheduler = Scheduler {
            shared: Arc::clone(&shared),
            commands: tx.clone(),
            opener,
            sockets: HashMap::new(),
            rounds: rustc_hash::FxHashMap::default(),
            queue: BinaryHeap::new(),
            next_round: 0,
            next_key: rng.random_range(0..KEY_LIMIT),
            next_socket_id: rng.random(),
            rng,
            epoch: Instant::now(),
            quantum: Duration::ZERO,
            batch: Vec::new(),
            batch_results: Vec::new(),
            drain_batch: RecvBatch::new(DRAIN_BATCH, RECV_BUF_LEN),
        };
        let thread = thread::Builder::new()
            .name("icmp-sender".into())
            .spawn(move || scheduler.run(rx))?;
        Ok(IcmpEngine {
            shared,
            commands: tx,
            thread: Some(thread),
        })
    }

    /// Submits a round. Never blocks: the round is handed to the sender
    /// thread. Await the handle for the result; drop it to abandon the round.
    pub fn submit(&self, req: RoundRequest) -> RoundHandle {
        let (reply, rx) = oneshot::channel();
        // If the sender thread is gone, `reply` is dropped with the failed
        // command and the handle resolves to `Stopped`.
        let _ = self.commands.send(Command::Submit(Box::new(req), reply));
        RoundHandle { rx }
    }

    /// Current counters.
    pub fn stats(&self) -> EngineStats {
        let c = &self.shared.matcher.counters;
        let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        EngineStats {
            sent: get(&c.sent),
            send_errors: get(&c.send_errors),
            recv_errors: get(&c.recv_errors),
            received: get(&c.received),
            late: get(&c.late),
            unmatched: get(&c.unmatched),
            foreign: get(&c.foreign),
            icmp_errors: get(&c.icmp_errors),
            rounds_active: get(&c.rounds_active),
            pending: get(&c.pending),
            tx_stamped: get(&c.tx_stamped),
            tx_fallbacks: get(&c.tx_fallbacks),
            rx_fallbacks: get(&c.rx_fallbacks),
            rx_dropped: get(&c.rx_dropped),
        }
    }

    /// `Err` with what died when a thread of the engine is gone while the
    /// engine runs (rounds would no longer complete): the caller should stop
    /// (and be restarted) rather than go on without measuring.
    pub fn health(&self) -> Result<(), EngineDown> {
        if let Some(what) = self
            .shared
            .dead
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            return Err(EngineDown::Thread(what));
        }
        if self.thread.as_ref().is_none_or(JoinHandle::is_finished) {
            return Err(EngineDown::SenderStopped);
        }
        Ok(())
    }

    /// The kind of socket opened for `family` (the last one, if several
    /// bindings of that family exist); `None` if none was opened yet.
    pub fn socket_kind_for(&self, family: Family) -> Option<SocketKind> {
        match self.shared.kinds[family_index(family)].load(Ordering::Relaxed) {
            1 => Some(SocketKind::Datagram),
            2 => Some(SocketKind::Raw),
            _ => None,
        }
    }
}

impl Drop for IcmpEngine {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Shutdown);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.shared.stopping.store(true, Ordering::Release);
    }
}

/// ICMP sockets opened ahead of the engine (see
/// [`IcmpEngine::with_preopened`]).
#[derive(Default)]
pub struct PreOpened {
    sockets: HashMap<Binding, Arc<dyn Endpoint>>,
}

impl std::fmt::Debug for PreOpened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreOpened")
            .field("bindings", &self.sockets.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl PreOpened {
    /// Opens a socket for each of `bindings` now, in the calling thread.
    /// Returns them and a message for each one that could not be opened
    /// (the engine tries those again when a round needs them).
    pub fn open(config: &IcmpConfig, bindings: &[Binding]) -> (PreOpened, Vec<String>) {
        let mut sockets = HashMap::new();
        let mut errors = Vec::new();
        for b in bindings {
            match socket::open(b, config) {
                Ok(s) => {
                    sockets.insert(b.clone(), Arc::new(s) as Arc<dyn Endpoint>);
                }
                Err(e) => errors.push(e.to_string()),
            }
        }
        (PreOpened { sockets }, errors)
    }

    /// Number of sockets held.
    pub fn len(&self) -> usize {
        self.sockets.len()
    }

    /// True when no socket is held.
    pub fn is_empty(&self) -> bool {
        self.sockets.is_empty()
    }
}

/// A socket of the engine and its receive thread.
struct OpenSocket {
    endpoint: Arc<dyn Endpoint>,
    id: u32,
    receiver: Option<JoinHandle<()>>,
}

/// A round in progress (owned by the sender thread).
struct Round {
    shared: Arc<RoundShared>,
    schedule: Schedule,
    targets: Vec<IpAddr>,
    endpoint: Arc<dyn Endpoint>,
    socket_id: u32,
    reply: Reply,
    /// Pings prepared so far (their keys are in `shared`'s slots while
    /// they are pending).
    prepared: u64,
    timeout: Duration,
    deadline: Option<Instant>,
    send_errors: u64,
    /// Pings that could not be sent, by target index.
    target_send_errors: Vec<u32>,
}

enum Finish {
    Completed,
    Abandoned,
    Stopped,
}

/// The sender thread.
struct Scheduler {
    shared: Arc<Shared>,
    commands: mpsc::Sender<Command>,
    opener: OpenFn,
    sockets: HashMap<Binding, OpenSocket>,
    /// Round ids are ours (sequential): a fast non-keyed hash is safe.
    rounds: rustc_hash::FxHashMap<u64, Round>,
    /// `(due, round id)`; entries of finished rounds are skipped when popped.
    queue: BinaryHeap<Reverse<(Instant, u64)>>,
    next_round: u64,
    next_key: u32,
    next_socket_id: u32,
    rng: StdRng,
    /// Origin of the send ticks.
    epoch: Instant,
    /// Tick length; zero sends as soon as due.
    quantum: Duration,
    /// Sends prepared at this wake-up, sent together by `flush`.
    batch: Vec<Prepared>,
    /// Scratch for `flush` (kept to reuse its allocation).
    batch_results: Vec<io::Result<()>>,
    /// Buffers for draining a socket at a round's end.
    drain_batch: RecvBatch,
}

/// A send prepared for this wake-up's batch: its pending entry is in the
/// table; the packet goes out in `flush`.
struct Prepared {
    endpoint: Arc<dyn Endpoint>,
    socket_id: u32,
    round: u64,
    key: u32,
    target: IpAddr,
    /// Index of `target` in its round.
    target_index: usize,
    packet: Vec<u8>,
}

impl Scheduler {
    fn run(mut self, rx: mpsc::Receiver<Command>) {
        let shared = Arc::clone(&self.shared);
        let _watch = DeathWatch {
            shared: &shared,
            name: "the sender thread".into(),
        };
        // Wake up on time for sub-millisecond spacings (default slack: 50 µs).
        if let Err(e) = nix::sys::prctl::set_timerslack(1_000) {
            tracing::debug!("cannot lower the sender thread's timer slack: {e}");
        }
        loop {
            let now = Instant::now();
            let command = match self.wait_time(now) {
                None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                Some(d) => rx.recv_timeout(d),
            };
            match command {
                Ok(Command::Submit(req, reply)) => self.submit(*req, reply),
                Ok(Command::Quantum(q)) => self.quantum = q,
                Ok(Command::Answered(id)) => self.answered(id),
                Ok(Command::Shutdown) | Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {}
            }
            self.run_due();
        }
        self.shutdown();
    }

    /// How long to sleep: until the earliest due send or round end (never
    /// a periodic tick). An abandoned round is noticed at its next due time.
    fn wait_time(&self, now: Instant) -> Option<Duration> {
        self.queue
            .peek()
            .map(|Reverse((due, _))| quantize(*due, self.epoch, self.quantum))
            .map(|w| w.saturating_duration_since(now))
    }

    fn submit(&mut self, req: RoundRequest, reply: Reply) {
        if reply.is_closed() {
            return;
        }
        let n = req.targets.len();
        if n == 0 || req.pings == 0 {
            let _ = reply.send(Ok(RoundResult {
                rtts: Rtts::new(n, 0),
                send_errors: vec![0; n],
            }));
            return;
        }
        let (endpoint, socket_id) = match self.socket_for(&req.binding) {
            Ok(s) => s,
            Err(msg) => {
                tracing::debug!("round for {:?} failed: {msg}", req.binding);
                let _ = reply.send(Err(RoundError::Socket(msg)));
                return;
            }
        };
        let family = req.binding.family;
        let eligible: Vec<usize> = (0..n)
            .filter(|&i| Family::of(&req.targets[i]) == family)
            .collect();
        let mismatched = n - eligible.len();
        if mismatched > 0 {
            tracing::debug!(
                "{mismatched} of {n} targets are not {family:?} addresses; their pings are lost"
            );
            Counters::add(
                &self.shared.matcher.counters.send_errors,
                (mismatched as u64).saturating_mul(u64::from(req.pings)),
            );
        }
        let id = self.next_round;
        self.next_round += 1;
        let schedule = Schedule::new(
            eligible,
            req.pings,
            req.interval,
            req.spacing,
            req.start,
            &mut self.rng,
        );
        let next_due = schedule.next_due();
        let round = Round {
            shared: Arc::new(RoundShared::new(id, n, req.pings, req.timeout)),
            schedule,
            targets: req.targets,
            endpoint,
            socket_id,
            reply,
            prepared: 0,
            timeout: req.timeout,
            deadline: None,
            send_errors: 0,
            target_send_errors: vec![0; n],
        };
        Counters::inc(&self.shared.matcher.counters.rounds_active);
        self.rounds.insert(id, round);
        match next_due {
            Some(due) => self.queue.push(Reverse((due, id))),
            None => self.finish(id, Finish::Completed),
        }
    }

    /// The cached socket of a binding, opening it (and starting its receive
    /// thread) on first use. Failures are not cached: a later round retries.
    fn socket_for(&mut self, binding: &Binding) -> Result<(Arc<dyn Endpoint>, u32), String> {
        if let Some(s) = self.sockets.get(binding) {
            return Ok((Arc::clone(&s.endpoint), s.id));
        }
        let endpoint = (self.opener)(binding)?;
        if endpoint.family() != binding.family {
            return Err(format!(
                "ICMP socket for {:?} has family {:?}",
                binding.family,
                endpoint.family()
            ));
        }
        let id = self.next_socket_id;
        self.next_socket_id = self.next_socket_id.wrapping_add(1);
        let info = SocketInfo {
            id,
            family: endpoint.family(),
            kind: endpoint.kind(),
        };
        let receiver = {
            let endpoint = Arc::clone(&endpoint);
            let shared = Arc::clone(&self.shared);
            let commands = self.commands.clone();
            thread::Builder::new()
                .name(format!(
                    "icmp-recv-{}",
                    match info.family {
                        Family::V4 => "v4",
                        Family::V6 => "v6",
                    }
                ))
                .spawn(move || receive_loop(endpoint.as_ref(), info, &shared, &commands))
                .map_err(|e| format!("cannot start ICMP receive thread: {e}"))?
        };
        self.shared.kinds[family_index(info.family)].store(
            match info.kind {
                SocketKind::Raw => 2,
                _ => 1,
            },
            Ordering::Relaxed,
        );
        self.sockets.insert(
            binding.clone(),
            OpenSocket {
                endpoint: Arc::clone(&endpoint),
                id,
                receiver: Some(receiver),
            },
        );
        Ok((endpoint, id))
    }

    fn answered(&mut self, id: u64) {
        if let Some(r) = self.rounds.get(&id) {
            if r.schedule.is_done() && r.shared.is_complete() {
                self.finish(id, Finish::Completed);
            }
        }
    }

    /// Processes every due queue entry: one send (or the completion) per
    /// entry, re-queued at its next due time, until nothing is due.
    fn run_due(&mut self) {
        let clock = (SystemTime::now(), Instant::now());
        loop {
            let now = Instant::now();
            let id = match self.queue.peek() {
                Some(Reverse((due, id))) if *due <= now => *id,
                _ => break,
            };
            self.queue.pop();
            // With a send quantum, the schedule works on the tick we woke
            // for: a wake-up a few µs late must not push the round's next
            // send (due one spacing after this one) past the next tick.
            let sched_now = floor_quantize(now, self.epoch, self.quantum);
            self.step(id, sched_now, clock);
        }
        self.flush();
    }

    /// Sends the prepared batch: per socket, in one `sendmmsg`. A send that
    /// fails takes its ping out of the pending table and counts an error.
    fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let mut batch = std::mem::take(&mut self.batch);
        // One group per socket, in send order within each.
        batch.sort_by_key(|p| p.socket_id);
        let counters = &self.shared.matcher.counters;
        let mut start = 0;
        while start < batch.len() {
            let sid = batch[start].socket_id;
            let end = batch[start..]
                .iter()
                .position(|p| p.socket_id != sid)
                .map_or(batch.len(), |n| start + n);
            let group = &batch[start..end];
            let packets: Vec<(&[u8], IpAddr)> = group
                .iter()
                .map(|p| (p.packet.as_slice(), p.target))
                .collect();
            group[0]
                .endpoint
                .send_batch(&packets, &mut self.batch_results);
            for (i, p) in group.iter().enumerate() {
                match self.batch_results.get(i) {
                    Some(Ok(())) => Counters::inc(&counters.sent),
                    failed => {
                        self.shared.matcher.expire(p.key);
                        Counters::inc(&counters.send_errors);
                        if let Some(round) = self.rounds.get_mut(&p.round) {
                            round.send_errors += 1;
                            if let Some(e) = round.target_send_errors.get_mut(p.target_index) {
                                *e += 1;
                            }
                            if round.send_errors == 1 {
                                let why = match failed {
                                    Some(Err(e)) => e.to_string(),
                                    _ => "not sent".into(),
                                };
                                tracing::debug!(
                                    "round {}: sending to {} failed: {why}",
                                    p.round,
                                    p.target
                                );
                            }
                        }
                    }
                }
            }
            start = end;
        }
        batch.clear();
        self.batch = batch;
    }

    fn step(&mut self, id: u64, now: Instant, clock: (SystemTime, Instant)) {
        let Some(round) = self.rounds.get_mut(&id) else {
            return; // finished earlier; stale entry
        };
        if round.reply.is_closed() {
            self.finish(id, Finish::Abandoned);
            return;
        }
        match round.schedule.next_due() {
            Some(due) if due <= now => {
                if let Some(p) =
                    prepare_one(&self.shared, &mut self.next_key, id, round, now, clock)
                {
                    self.batch.push(p);
                }
                if let Some(next) = round.schedule.next_due() {
                    self.queue.push(Reverse((next, id)));
                } else {
                    let last = round.schedule.last_send().unwrap_or(now);
                    let deadline = add_capped(last, round.timeout + RECEIVE_GRACE);
                    round.deadline = Some(deadline);
                    if round.shared.mark_all_sent() {
                        self.finish(id, Finish::Completed);
                    } else {
                        self.queue.push(Reverse((deadline, id)));
                    }
                }
            }
            Some(due) => self.queue.push(Reverse((due, id))),
            None => match round.deadline {
                Some(deadline) if deadline > now => self.queue.push(Reverse((deadline, id))),
                _ => self.finish(id, Finish::Completed),
            },
        }
    }

    fn finish(&mut self, id: u64, how: Finish) {
        let Some(round) = self.rounds.remove(&id) else {
            return;
        };
        if matches!(how, Finish::Completed) {
            // Replies in time may still be queued (the receive thread drains
            // only every few ms): read them now.
            let info = SocketInfo {
                id: round.socket_id,
                family: round.endpoint.family(),
                kind: round.endpoint.kind(),
            };
            drain(
                round.endpoint.as_ref(),
                info,
                &self.shared,
                &self.commands,
                &mut self.drain_batch,
            );
        }
        // Remove the remaining pending pings (lost, or answered without a
        // transmit timestamp) before reading results: the receive threads
        // store RTTs under the same locks. Their keys are in the slots.
        for key in round.shared.pending_keys() {
            self.shared.matcher.expire(key);
        }
        Counters::dec(&self.shared.matcher.counters.rounds_active);
        match how {
            Finish::Completed => {
                if round.send_errors > 0 {
                    tracing::debug!(
                        "round {id}: {} of {} pings could not be sent",
                        round.send_errors,
                        round.schedule.total()
                    );
                }
                let _ = round.reply.send(Ok(RoundResult {
                    rtts: round.shared.results(),
                    send_errors: round.target_send_errors,
                }));
            }
            Finish::Abandoned => {
                tracing::debug!("round {id} abandoned ({} pings sent)", round.prepared);
            }
            Finish::Stopped => {
                let _ = round.reply.send(Err(RoundError::Stopped));
            }
        }
    }

    fn shutdown(mut self) {
        let ids: Vec<u64> = self.rounds.keys().copied().collect();
        for id in ids {
            self.finish(id, Finish::Stopped);
        }
        self.shared.stopping.store(true, Ordering::Release);
        for (_, mut s) in self.sockets.drain() {
            if let Some(t) = s.receiver.take() {
                let _ = t.join();
            }
        }
    }
}

/// `t` rounded up to the next tick of `quantum` after `epoch` (unchanged
/// for a zero quantum or a time before the epoch).
fn quantize(t: Instant, epoch: Instant, quantum: Duration) -> Instant {
    let q = quantum.as_nanos();
    if q == 0 || t <= epoch {
        return t;
    }
    let since = (t - epoch).as_nanos();
    let ticks = since.div_ceil(q);
    let nanos = u64::try_from(ticks.saturating_mul(q)).unwrap_or(u64::MAX);
    add_capped(epoch, Duration::from_nanos(nanos))
}

/// `t` rounded down to the last tick of `quantum` at or before it
/// (unchanged for a zero quantum or a time before the epoch).
fn floor_quantize(t: Instant, epoch: Instant, quantum: Duration) -> Instant {
    let q = quantum.as_nanos();
    if q == 0 || t <= epoch {
        return t;
    }
    let ticks = (t - epoch).as_nanos() / q;
    let nanos = u64::try_from(ticks.saturating_mul(q)).unwrap_or(u64::MAX);
    add_capped(epoch, Duration::from_nanos(nanos))
}

/// Prepares the next send of `round` (id `id`): takes its slot, allocates
/// a key, builds the packet and enters the ping in the pending table. The
/// packet is sent by `flush` with the rest of this wake-up's batch.
fn prepare_one(
    shared: &Shared,
    next_key: &mut u32,
    id: u64,
    round: &mut Round,
    sched_now: Instant,
    clock: (SystemTime, Instant),
) -> Option<Prepared> {
    let slot = round.schedule.take(sched_now)?;
    let counters = &shared.matcher.counters;
    let Some(&target) = round.targets.get(slot.target) else {
        Counters::inc(&counters.send_errors);
        round.send_errors += 1;
        return None;
    };
    let target_index = slot.target;
    round.shared.add_outstanding();
    // The user-space send time (read once per wake-up): used only when the
    // kernel gives no transmit timestamp.
    let mut pending = Pending::new(
        Arc::clone(&round.shared),
        round.shared.slot(slot.target, slot.ping),
        clock.0,
        clock.1,
        round.endpoint.tx_timestamps(),
    );
    // The next free key; only the sender thread inserts, so a free key
    // stays free until then.
    let mut key = None;
    for _ in 0..4096 {
        let k = *next_key;
        *next_key = (k + 1) % KEY_LIMIT;
        match shared.matcher.insert(k, pending) {
            Ok(()) => {
                key = Some(k);
                break;
            }
            Err(p) => pending = p,
        }
    }
    let Some(key) = key else {
        round.shared.finish_one();
        Counters::inc(&counters.send_errors);
        round.send_errors += 1;
        if let Some(e) = round.target_send_errors.get_mut(target_index) {
            *e += 1;
        }
        return None;
    };
    let (ident, seq) = SocketInfo::ident_seq(key);
    let token = Token {
        magic: shared.matcher.magic(),
        socket_id: round.socket_id,
        key,
    };
    let packet = build_echo_request(round.endpoint.family(), ident, seq, &token.encode());
    round.prepared += 1;
    Some(Prepared {
        endpoint: Arc::clone(&round.endpoint),
        socket_id: round.socket_id,
        round: id,
        key,
        target,
        target_index,
        packet,
    })
}

/// Packets read per system call when draining.
pub(super) const DRAIN_BATCH: usize = 64;

/// Reads what is queued on `endpoint` without waiting — transmit
/// timestamps first, then replies, then stamps that came meanwhile — in
/// batches (`recvmmsg`), and matches it. Returns the number of entries
/// read, the number of replies among them, and whether every reply had a
/// kernel receive timestamp.
fn drain(
    endpoint: &dyn Endpoint,
    info: SocketInfo,
    shared: &Shared,
    commands: &mpsc::Sender<Command>,
    batch: &mut RecvBatch,
) -> (usize, usize, bool) {
    let mut got = 0;
    let mut replies = 0;
    let mut stamped = true;
    let notify = |o: Outcome| {
        if let Outcome::Answered {
            round_complete: Some(id),
            ..
        }
        | Outcome::Late {
            round_complete: Some(id),
        } = o
        {
            let _ = commands.send(Command::Answered(id));
        }
    };
    // Transmit stamps, replies, then stamps again.
    for errqueue in [true, false, true] {
        if errqueue && !endpoint.tx_timestamps() {
            continue;
        }
        for _ in 0..DRAIN_CAP / DRAIN_BATCH {
            let n = match endpoint.recv_batch(batch, errqueue) {
                Ok(n) => n,
                Err(e) => {
                    Counters::inc(&shared.matcher.counters.recv_errors);
                    tracing::debug!("ICMP receive error: {e}");
                    break;
                }
            };
            let mono = Instant::now();
            if let Some(d) = batch.got.iter().filter_map(|r| r.drops).max() {
                note_drops(shared, info.id, d);
            }
            for (r, buf) in batch.got.iter().zip(&batch.bufs) {
                let data = buf.get(..r.len).unwrap_or(&buf[..]);
                if errqueue {
                    notify(shared.matcher.on_tx(info, data, r.timestamp));
                } else {
                    replies += 1;
                    stamped &= r.timestamp.is_some();
                    notify(shared.matcher.on_packet(info, data, r.timestamp, mono));
                }
            }
            got += n;
            if n < batch.bufs.len() {
                break;
            }
        }
    }
    (got, replies, stamped)
}

/// Adds what socket `id`'s cumulative drop count `total` says is new to
/// the engine's `rx_dropped` (the count only grows; it is reported with the
/// packets read after a drop, so only once drops happened).
fn note_drops(shared: &Shared, id: u32, total: u32) {
    let mut seen = shared.drops_seen.lock().unwrap_or_else(|e| e.into_inner());
    let last = seen.entry(id).or_insert(0);
    if total > *last {
        Counters::add(
            &shared.matcher.counters.rx_dropped,
            u64::from(total - *last),
        );
        *last = total;
    }
}

/// The drain interval after a drain that read `got` entries `interval`
/// after the previous one: what arrives at that rate within the next
/// interval must fit in a quarter of a receive buffer of `rcvbuf` bytes.
pub(super) fn next_drain_interval(interval: Duration, got: usize, rcvbuf: usize) -> Duration {
    let room = (rcvbuf / DRAIN_ENTRY_BYTES / 4).max(1) as f64;
    let per_s = got as f64 / interval.as_secs_f64().max(1e-6);
    if per_s <= 0.0 {
        return DRAIN_MAX;
    }
    Duration::from_secs_f64(room / per_s).clamp(DRAIN_MIN, DRAIN_MAX)
}

/// A socket's receive thread: receive, match, tell the sender thread when a
/// round got its last answer; until the engine stops.
///
/// When the kernel stamps this socket's sends and receives, reading a
/// packet late changes no RTT. Then, while rounds are in progress, the
/// thread sleeps and drains the socket every `drain` interval (adapted
/// between [`DRAIN_MIN`] and [`DRAIN_MAX`] to the rate): a packet arriving
/// for a sleeping reader would cost the sender a wake-up of this thread and
/// this thread a context switch per packet, the largest cost at small scale.
/// Otherwise (no stamps, or no round in progress) it waits for each packet.
fn receive_loop(
    endpoint: &dyn Endpoint,
    info: SocketInfo,
    shared: &Shared,
    commands: &mpsc::Sender<Command>,
) {
    let _watch = DeathWatch {
        shared,
        name: format!("the receive thread of socket {}", info.id),
    };
    let mut batch = RecvBatch::new(DRAIN_BATCH, RECV_BUF_LEN);
    let mut errors: u64 = 0;
    let mut interval = DRAIN_MAX;
    // The replies of the last drain that read any came with receive stamps
    // taken at arrival. Until then (the kernel turns timestamping on for
    // the system a moment after the first socket asks) every packet is
    // read as it comes.
    let mut rx_stamped = false;
    let lazy_possible = endpoint.tx_timestamps() && endpoint.rx_stamps_at_arrival();
    // How much smaller than its size the receive buffer is reckoned (1 until
    // the kernel reports a drop on a socket).
    let mut pressure: usize = 1;
    while !shared.stopping.load(Ordering::Acquire) {
        // A round in progress: replies are coming (even when none is
        // pending this instant, between two sends).
        let active = shared
            .matcher
            .counters
            .rounds_active
            .load(Ordering::Relaxed)
            > 0;
        if lazy_possible && rx_stamped && active {
            thread::sleep(interval);
        } else {
            match endpoint.wait(socket::RECV_TIMEOUT) {
                Ok(_) => {}
                Err(e) => {
                    Counters::inc(&shared.matcher.counters.recv_errors);
                    errors += 1;
                    if errors.is_power_of_two() {
                        tracing::debug!("ICMP socket wait error ({errors} so far): {e}");
                    }
                    // Do not spin on a persistent error.
                    thread::sleep(Duration::from_millis(10));
                }
            }
        }
        let dropped_before = shared.matcher.counters.rx_dropped.load(Ordering::Relaxed);
        let (got, replies, stamped) = drain(endpoint, info, shared, commands, &mut batch);
        if replies > 0 {
            rx_stamped = stamped;
        }
        // The kernel dropped replies: the buffer held less than reckoned
        // (bigger packets, or this thread was kept from running). From now
        // on this socket is drained as if its buffer were half as large,
        // down to a sixteenth.
        if shared.matcher.counters.rx_dropped.load(Ordering::Relaxed) > dropped_before {
            pressure = (pressure * 2).min(MAX_DRAIN_PRESSURE);
            tracing::debug!(pressure, "ICMP receive buffer overflowed; draining sooner");
        }
        interval = next_drain_interval(interval, got, endpoint.recv_buffer_bytes() / pressure);
    }
}

#[cfg(test)]
mod tests;
