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

use crate::sync::lock;
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
use super::socket::{self, Endpoint, PacketSettings, RecvBatch};
use super::{
    Binding, EchoOptions, EngineStats, Family, IcmpConfig, RoundError, RoundHandle, RoundRequest,
    RoundResult, Rtts, SocketCause, SocketError, SocketKind,
};

/// Receive buffer for one packet; ours are under 64 bytes, anything longer is
/// someone else's and may be truncated.
pub(super) const RECV_BUF_LEN: usize = 2048;
/// A round ends this long after its last ping's timeout (replies in time
/// but still queued are read first: the sender drains the socket at the
/// end too). Whether a reply was in time is decided by its kernel
/// timestamp, not by when it is read.
const RECEIVE_GRACE: Duration = Duration::from_millis(5);

type Reply = oneshot::Sender<Result<RoundResult, RoundError>>;

/// Opens the endpoint of a binding (a real socket, or a fake in tests).
pub(crate) type OpenFn = Box<dyn FnMut(&Binding) -> Result<Arc<dyn Endpoint>, SocketError> + Send>;

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
            let mut dead = lock(&self.shared.dead);
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
                .map_err(|e| SocketError::from(&e))
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
        let scheduler = Scheduler::new(Arc::clone(&shared), tx.clone(), opener, rng);
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
        if let Some(what) = lock(&self.shared.dead).clone() {
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

mod receive;
mod scheduler;

pub(super) use receive::{next_drain_interval, DRAIN_BATCH, DRAIN_CAP, DRAIN_MAX};
use scheduler::Scheduler;

#[cfg(test)]
mod tests;
