//! Matching replies to pings: the pending table, the per-round answer slots,
//! and the engine's counters.
//!
//! The sender thread inserts one [`Pending`] entry per ping under a 31-bit key
//! just before the send, and the ping's slot in its round holds that key
//! while the entry is in the table; a receive thread that gets a reply
//! carrying our magic, our socket id and that key removes the entry and
//! stores the RTT into the slot instead. The first matching reply wins: a
//! duplicate finds no entry (or one already answered) and is only counted.
//! When a round completes, the sender thread removes the entries whose keys
//! its slots still hold (those pings are lost), so a reply arriving after
//! that is only counted too. One slot is four bytes ([`slot`]): a round's
//! memory is `targets × pings × 4` bytes, nothing more per ping.
//!
//! **Transmit timestamps.** On a socket where the kernel stamps sends, the
//! RTT is kernel receive time − kernel transmit time. The transmit stamp
//! comes back on the socket's error queue with the sent packet, whose token
//! names the entry ([`Matcher::on_tx`]). It nearly always comes before the
//! reply; when the reply is read first it waits in the entry for the stamp.
//! Without a stamp (the kernel gave none, or it came too late) the RTT uses
//! the user-space send time read just before the send, and that fallback is
//! counted.
//!
//! The table is sharded by key so the sender and receive threads rarely
//! contend; an RTT is stored while the shard lock is held, so once the
//! sender thread has removed a round's keys no late write can race with
//! reading its results.

// Keys are small sequential integers chosen by us, not by the network:
// a fast non-keyed hash is safe, and SipHash was a visible share of the
// sender's user time at 66,667 pings/s.
use crate::sync::lock;
use rustc_hash::FxHashMap as HashMap;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use super::packet::{self, Message, Token, MAGIC_LEN};
use super::{Family, Rtts, SocketKind};

const SHARDS: usize = 64;

/// Keys are below this (31 bits, so a slot can tell a key from an RTT).
pub(crate) const KEY_LIMIT: u32 = slot::PENDING - 1;

/// What one answer slot holds, in 32 bits:
///
/// - [`slot::EMPTY`]: no answer (not sent yet, lost, late or not sent);
/// - `PENDING | key`: the ping is in the pending table under `key`;
/// - else an RTT: below 2^30 ns (1.07 s) in nanoseconds, longer ones in
///   microseconds with bit 30 set (up to 17.9 minutes, then capped).
pub(crate) mod slot {
    use std::time::Duration;

    pub const EMPTY: u32 = u32::MAX;
    pub const PENDING: u32 = 1 << 31;
    const MICROS: u32 = 1 << 30;
    const LOW: u32 = MICROS - 1;

    /// What a slot holds.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Value {
        Empty,
        Pending(u32),
        Rtt(Duration),
    }

    pub fn pending(key: u32) -> u32 {
        debug_assert!(key < super::KEY_LIMIT);
        PENDING | (key & !PENDING)
    }

    pub fn rtt(rtt: Duration) -> u32 {
        let nanos = rtt.as_nanos();
        if nanos < u128::from(MICROS) {
            nanos as u32
        } else {
            let micros = u32::try_from(rtt.as_micros()).unwrap_or(LOW);
            MICROS | micros.min(LOW)
        }
    }

    pub fn decode(v: u32) -> Value {
        if v == EMPTY {
            Value::Empty
        } else if v & PENDING != 0 {
            Value::Pending(v & !PENDING)
        } else if v & MICROS != 0 {
            Value::Rtt(Duration::from_micros(u64::from(v & LOW)))
        } else {
            Value::Rtt(Duration::from_nanos(u64::from(v)))
        }
    }
}

/// A wall-clock RTT more than this above the monotonic one means the wall
/// clock was stepped during the ping: use the monotonic one.
const CLOCK_STEP_TOLERANCE: Duration = Duration::from_millis(10);

/// Engine-wide counters (see [`crate::icmp::EngineStats`]).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub sent: AtomicU64,
    pub send_errors: AtomicU64,
    pub recv_errors: AtomicU64,
    pub received: AtomicU64,
    pub late: AtomicU64,
    pub unmatched: AtomicU64,
    pub foreign: AtomicU64,
    pub icmp_errors: AtomicU64,
    pub rounds_active: AtomicU64,
    pub pending: AtomicU64,
    /// Sends stamped by the kernel (transmit timestamps read).
    pub tx_stamped: AtomicU64,
    /// Answered pings whose RTT used the user-space send time.
    pub tx_fallbacks: AtomicU64,
    /// Answered pings whose RTT used the user-space receive time.
    pub rx_fallbacks: AtomicU64,
    /// Packets the kernel dropped on our sockets because a receive buffer
    /// was full (`SO_RXQ_OVFL`, summed over the sockets).
    pub rx_dropped: AtomicU64,
}

impl Counters {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
    pub fn dec(counter: &AtomicU64) {
        // Gauges never go below zero, even on a bookkeeping slip.
        let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
            Some(v.saturating_sub(1))
        });
    }
}

/// The part of a round shared with the receive threads: its answer slots.
#[derive(Debug)]
pub(crate) struct RoundShared {
    pub id: u64,
    pub pings: u32,
    targets: usize,
    pub timeout: Duration,
    /// `[target * pings + ping]`: see [`slot`].
    slots: Vec<AtomicU32>,
    /// `[target]`: TTL + 1 of the target's last answer in time (0: none).
    ttls: Vec<AtomicU16>,
    /// Pings in the pending table.
    outstanding: AtomicUsize,
    /// Every send of the round has been done (or failed).
    all_sent: AtomicBool,
}

impl RoundShared {
    pub fn new(id: u64, targets: usize, pings: u32, timeout: Duration) -> RoundShared {
        let n = targets.saturating_mul(pings as usize);
        RoundShared {
            id,
            pings,
            targets,
            timeout,
            slots: (0..n).map(|_| AtomicU32::new(slot::EMPTY)).collect(),
            ttls: (0..targets).map(|_| AtomicU16::new(0)).collect(),
            outstanding: AtomicUsize::new(0),
            all_sent: AtomicBool::new(false),
        }
    }

    /// The slot index of ping `ping` to target `target`.
    pub fn slot(&self, target: usize, ping: u32) -> usize {
        target
            .saturating_mul(self.pings as usize)
            .saturating_add(ping as usize)
    }

    fn set(&self, index: usize, value: u32) {
        if let Some(s) = self.slots.get(index) {
            s.store(value, Ordering::Relaxed);
        }
    }

    /// Keys of this round's pings still in the pending table (as far as
    /// its slots say; an entry answered meanwhile is simply gone).
    pub fn pending_keys(&self) -> impl Iterator<Item = u32> + '_ {
        self.slots
            .iter()
            .filter_map(|s| match slot::decode(s.load(Ordering::Relaxed)) {
                slot::Value::Pending(key) => Some(key),
                _ => None,
            })
    }

    /// Notes the TTL of an answer in time to the ping in slot `index`.
    fn set_ttl(&self, index: usize, ttl: u8) {
        let target = index / (self.pings.max(1) as usize);
        if let Some(t) = self.ttls.get(target) {
            t.store(u16::from(ttl) + 1, Ordering::Relaxed);
        }
    }

    /// Per target, the TTL of its last answer in time.
    pub fn reply_ttls(&self) -> Vec<Option<u8>> {
        self.ttls
            .iter()
            .map(|t| u8::try_from(t.load(Ordering::Relaxed).checked_sub(1)?).ok())
            .collect()
    }

    /// The RTTs; a ping still pending reads as lost.
    pub fn results(&self) -> Rtts {
        let slots = self
            .slots
            .iter()
            .map(|v| match v.load(Ordering::Relaxed) {
                x if x & slot::PENDING != 0 => slot::EMPTY,
                x => x,
            })
            .collect();
        Rtts::from_slots(self.targets, self.pings, slots)
    }

    /// A ping is about to enter the pending table.
    pub fn add_outstanding(&self) {
        self.outstanding.fetch_add(1, Ordering::SeqCst);
    }

    /// A ping left the pending table (answered, late or failed to send).
    /// Returns true when that made the round complete.
    pub fn finish_one(&self) -> bool {
        let before = self.outstanding.fetch_sub(1, Ordering::SeqCst);
        before == 1 && self.all_sent.load(Ordering::SeqCst)
    }

    /// Every send is done. Returns true when no ping is outstanding.
    pub fn mark_all_sent(&self) -> bool {
        self.all_sent.store(true, Ordering::SeqCst);
        self.outstanding.load(Ordering::SeqCst) == 0
    }

    /// True when all sends are done and all answers are in.
    pub fn is_complete(&self) -> bool {
        self.all_sent.load(Ordering::SeqCst) && self.outstanding.load(Ordering::SeqCst) == 0
    }
}

/// One ping waiting for its reply.
#[derive(Debug)]
pub(crate) struct Pending {
    pub round: Arc<RoundShared>,
    pub slot: usize,
    /// CLOCK_REALTIME read in user space just before the send (used when
    /// the kernel gives no transmit timestamp).
    pub sent_wall: SystemTime,
    /// Monotonic time of the send (fallback when the wall clock misbehaves).
    pub sent_mono: Instant,
    /// The socket stamps its sends: the RTT waits for the stamp.
    pub wants_tx: bool,
    /// The kernel's transmit timestamp, once read.
    pub tx: Option<SystemTime>,
    /// The reply (kernel receive time, if any; when read), when it was read
    /// before the transmit timestamp.
    pub reply: Option<(Option<SystemTime>, Instant)>,
    /// That reply's TTL (or hop limit), when known.
    pub reply_ttl: Option<u8>,
}

impl Pending {
    /// A ping sent now-ish (user-space clocks read by the caller).
    pub fn new(
        round: Arc<RoundShared>,
        slot: usize,
        sent_wall: SystemTime,
        sent_mono: Instant,
        wants_tx: bool,
    ) -> Pending {
        Pending {
            round,
            slot,
            sent_wall,
            sent_mono,
            wants_tx,
            tx: None,
            reply: None,
            reply_ttl: None,
        }
    }
}

/// The socket a packet came in on, as far as matching cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SocketInfo {
    pub id: u32,
    pub family: Family,
    pub kind: SocketKind,
}

impl SocketInfo {
    /// Raw IPv4 sockets return the IP header too.
    pub fn with_ip_header(&self) -> bool {
        self.family == Family::V4 && self.kind == SocketKind::Raw
    }

    /// The (identifier, sequence) pair the engine puts on the wire for `key`.
    ///
    /// On datagram sockets the kernel replaces the identifier with the
    /// socket's port, so only the sequence is checked there.
    pub fn ident_seq(key: u32) -> (u16, u16) {
        ((key >> 16) as u16, (key & 0xffff) as u16)
    }
}

/// What one received packet turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Answer to one of our pings; `round_complete` names the round if this
    /// was its last outstanding answer.
    Answered {
        rtt: Duration,
        round_complete: Option<u64>,
    },
    /// Answer to one of our pings, read before its transmit timestamp: the
    /// RTT follows with the stamp.
    AwaitingStamp,
    /// A transmit timestamp recorded (the reply is still to come).
    Stamped,
    /// Ours, but later than the round's timeout: the ping counts as lost.
    Late { round_complete: Option<u64> },
    /// Carries our magic but matches no pending ping (duplicate, expired,
    /// or mangled).
    Unmatched,
    /// An echo reply for one of our other sockets (raw sockets see them all).
    OtherSocket,
    /// An echo reply that is not ours, or an unparseable packet.
    Foreign,
    /// An ICMP error message: never an answer.
    IcmpError,
    /// Anything else (echo requests, neighbour discovery, ...).
    Ignored,
}

/// The pending table, the engine magic and the counters.
#[derive(Debug)]
pub(crate) struct Matcher {
    magic: [u8; MAGIC_LEN],
    shards: Box<[Mutex<HashMap<u32, Pending>>]>,
    pub counters: Counters,
}

impl Matcher {
    pub fn new(magic: [u8; MAGIC_LEN]) -> Matcher {
        Matcher {
            magic,
            shards: (0..SHARDS)
                .map(|_| Mutex::new(HashMap::default()))
                .collect(),
            counters: Counters::default(),
        }
    }

    pub fn magic(&self) -> [u8; MAGIC_LEN] {
        self.magic
    }

    fn shard(&self, key: u32) -> MutexGuard<'_, HashMap<u32, Pending>> {
        let m = &self.shards[key as usize % SHARDS];
        // A poisoned shard only means a thread panicked while holding it; the
        // map itself is still consistent (single inserts/removes).
        lock(m)
    }

    #[cfg(test)]
    pub fn contains(&self, key: u32) -> bool {
        self.shard(key).contains_key(&key)
    }

    /// Inserts a pending ping and puts its key in its slot. Fails
    /// (returning it) if the key is taken or not below [`KEY_LIMIT`].
    pub fn insert(&self, key: u32, pending: Pending) -> Result<(), Pending> {
        if key >= KEY_LIMIT {
            return Err(pending);
        }
        let mut shard = self.shard(key);
        if shard.contains_key(&key) {
            return Err(pending);
        }
        pending.round.set(pending.slot, slot::pending(key));
        shard.insert(key, pending);
        Counters::inc(&self.counters.pending);
        Ok(())
    }

    /// Removes a pending ping.
    #[cfg(test)]
    pub fn remove(&self, key: u32) -> Option<Pending> {
        let removed = self.shard(key).remove(&key);
        if let Some(p) = &removed {
            p.round.set(p.slot, slot::EMPTY);
            Counters::dec(&self.counters.pending);
        }
        removed
    }

    /// Handles one received packet. `recv_wall` is the kernel receive
    /// timestamp (CLOCK_REALTIME) if the socket delivered one; `recv_mono`
    /// is the monotonic clock read when the packet was handed to us.
    #[cfg(test)]
    pub fn on_packet(
        &self,
        socket: SocketInfo,
        data: &[u8],
        recv_wall: Option<SystemTime>,
        recv_mono: Instant,
    ) -> Outcome {
        self.on_reply(socket, data, recv_wall, recv_mono, None)
    }

    /// [`Matcher::on_packet`] with the TTL (or hop limit) the kernel gave
    /// in a control message; a raw IPv4 socket's packet carries its own in
    /// its IP header, which wins.
    pub fn on_reply(
        &self,
        socket: SocketInfo,
        data: &[u8],
        recv_wall: Option<SystemTime>,
        recv_mono: Instant,
        ttl: Option<u8>,
    ) -> Outcome {
        let ttl = if socket.with_ip_header() {
            data.get(8).copied()
        } else {
            ttl
        };
        let (ident, seq, payload) =
            match packet::parse(socket.family, socket.with_ip_header(), data) {
                Ok(Message::EchoReply {
                    ident,
                    seq,
                    payload,
                }) => (ident, seq, payload),
                Ok(Message::Error { .. }) => {
                    Counters::inc(&self.counters.icmp_errors);
                    return Outcome::IcmpError;
                }
                Ok(Message::EchoRequest | Message::Other { .. }) => return Outcome::Ignored,
                Err(_) => {
                    Counters::inc(&self.counters.foreign);
                    return Outcome::Foreign;
                }
            };
        let token = match Token::decode(payload) {
            Some(t) if t.magic == self.magic => t,
            _ => {
                Counters::inc(&self.counters.foreign);
                return Outcome::Foreign;
            }
        };
        if token.socket_id != socket.id {
            return Outcome::OtherSocket;
        }
        let (want_ident, want_seq) = SocketInfo::ident_seq(token.key);
        if seq != want_seq || (socket.kind == SocketKind::Raw && ident != want_ident) {
            Counters::inc(&self.counters.unmatched);
            return Outcome::Unmatched;
        }

        // Remove the entry and store the RTT under the shard lock (see the
        // module docs).
        let mut shard = self.shard(token.key);
        let Some(entry) = shard.get_mut(&token.key) else {
            drop(shard);
            Counters::inc(&self.counters.unmatched);
            return Outcome::Unmatched;
        };
        if entry.reply.is_some() {
            // A duplicate of a reply still waiting for its stamp.
            drop(shard);
            Counters::inc(&self.counters.unmatched);
            return Outcome::Unmatched;
        }
        entry.reply_ttl = ttl;
        if entry.wants_tx && entry.tx.is_none() {
            entry.reply = Some((recv_wall, recv_mono));
            return Outcome::AwaitingStamp;
        }
        let Some(p) = shard.remove(&token.key) else {
            return Outcome::Unmatched;
        };
        self.finalize(p, recv_wall, recv_mono, shard)
    }

    /// Handles one error-queue entry of `socket`: the kernel's transmit
    /// timestamp `tx` of the packet `data`. Completes the ping when its
    /// reply was already read.
    pub fn on_tx(&self, socket: SocketInfo, data: &[u8], tx: Option<SystemTime>) -> Outcome {
        let Some(tx) = tx else {
            return Outcome::Ignored;
        };
        let Some(token) = Token::find(data, &self.magic) else {
            return Outcome::Ignored;
        };
        if token.socket_id != socket.id {
            return Outcome::OtherSocket;
        }
        let mut shard = self.shard(token.key);
        let Some(entry) = shard.get_mut(&token.key) else {
            // Its round ended already.
            return Outcome::Unmatched;
        };
        Counters::inc(&self.counters.tx_stamped);
        entry.tx = Some(tx);
        let Some((recv_wall, recv_mono)) = entry.reply else {
            return Outcome::Stamped;
        };
        let Some(p) = shard.remove(&token.key) else {
            return Outcome::Unmatched;
        };
        self.finalize(p, recv_wall, recv_mono, shard)
    }

    /// Removes the entry of a ping whose round ended: lost, or answered
    /// without a transmit timestamp (then its RTT uses the user-space send
    /// time). Returns whether an entry was removed; the round's count of
    /// outstanding pings is updated either way.
    pub fn expire(&self, key: u32) -> bool {
        let mut shard = self.shard(key);
        let Some(p) = shard.remove(&key) else {
            return false;
        };
        match p.reply {
            Some((recv_wall, recv_mono)) => {
                self.finalize(p, recv_wall, recv_mono, shard);
            }
            None => {
                p.round.set(p.slot, slot::EMPTY);
                drop(shard);
                Counters::dec(&self.counters.pending);
                p.round.finish_one();
            }
        }
        true
    }

    /// Stores the RTT of a removed entry (under its shard lock, see the
    /// module docs) and counts it.
    fn finalize(
        &self,
        p: Pending,
        recv_wall: Option<SystemTime>,
        recv_mono: Instant,
        shard: MutexGuard<'_, HashMap<u32, Pending>>,
    ) -> Outcome {
        Counters::dec(&self.counters.pending);
        let rtt = rtt(&p, recv_wall, recv_mono);
        let late = rtt > p.round.timeout;
        p.round
            .set(p.slot, if late { slot::EMPTY } else { slot::rtt(rtt) });
        if let (false, Some(ttl)) = (late, p.reply_ttl) {
            p.round.set_ttl(p.slot, ttl);
        }
        drop(shard);
        if !late {
            if p.tx.is_none() {
                Counters::inc(&self.counters.tx_fallbacks);
            }
            if recv_wall.is_none() {
                Counters::inc(&self.counters.rx_fallbacks);
            }
        }
        let round_complete = p.round.finish_one().then_some(p.round.id);
        if late {
            Counters::inc(&self.counters.late);
            Outcome::Late { round_complete }
        } else {
            Counters::inc(&self.counters.received);
            Outcome::Answered {
                rtt,
                round_complete,
            }
        }
    }
}

/// RTT of a ping: kernel receive timestamp minus the send time — the
/// kernel's transmit timestamp when there is one, else the user-space time
/// read just before the send — both CLOCK_REALTIME; the monotonic clock
/// when there is no kernel receive timestamp or the wall clock was stepped
/// in between.
fn rtt(p: &Pending, recv_wall: Option<SystemTime>, recv_mono: Instant) -> Duration {
    let mono = recv_mono.saturating_duration_since(p.sent_mono);
    let sent = p.tx.unwrap_or(p.sent_wall);
    match recv_wall.and_then(|w| w.duration_since(sent).ok()) {
        Some(wall) if wall <= mono + CLOCK_STEP_TOLERANCE => wall,
        _ => mono,
    }
}

#[cfg(test)]
mod tests;
