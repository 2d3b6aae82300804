//! Native ICMP echo ("ping") engine: rounds of `fping -C`-style pings to many
//! targets over a few shared sockets.
//!
//! # Design
//!
//! * One socket per [`Binding`] (address family, source address, interface),
//!   opened lazily on first use and shared by every target and round of that
//!   binding: never a socket, task or thread per target or per round.
//! * One sender thread schedules all sends of all rounds: a priority queue of
//!   round cursors ordered by next due time; it sleeps in
//!   `mpsc::Receiver::recv_timeout` until the earliest due send or a new
//!   command, and sends everything due at each wake-up.
//! * One receive thread per socket does blocking `recvmsg` with kernel receive
//!   timestamps (`SO_TIMESTAMPNS`) and matches replies to pings through a
//!   shared pending table (identifier, sequence and a payload token carrying
//!   a per-engine random magic, the socket id and a 32-bit key).
//! * RTT = kernel receive timestamp − kernel transmit timestamp
//!   (`SO_TIMESTAMPING`, read from the socket's error queue); the user-space
//!   time read just before the send only when the kernel gives no stamp
//!   (counted as a fallback).
//!
//! # Schedule of a round
//!
//! Targets are shuffled once per round; ping `i` to the `j`-th shuffled
//! target is due at `start + i*interval + j*spacing`, and consecutive sends
//! of the round are at least `spacing` apart. The round completes at last
//! send + `timeout`, or as soon as every answer is in; a reply later than
//! `timeout` after its send counts as lost. Dropping the [`RoundHandle`]
//! abandons the round: its remaining sends are not made.

mod engine;
mod filter;
pub mod floor;
mod matching;
mod mtu;
mod packet;
mod schedule;
mod socket;

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

pub use engine::{IcmpEngine, PreOpened};

/// Address family of a binding or target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4 (ICMP).
    V4,
    /// IPv6 (ICMPv6).
    V6,
}

impl Family {
    /// The family of an address.
    pub fn of(addr: &IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }
}

/// Which kind of ICMP socket to open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SocketKind {
    /// Unprivileged datagram socket if allowed (`net.ipv4.ping_group_range`),
    /// else raw.
    #[default]
    Auto,
    /// Unprivileged ICMP datagram socket (`SOCK_DGRAM`, `IPPROTO_ICMP[V6]`).
    Datagram,
    /// Raw socket (`SOCK_RAW`; needs `CAP_NET_RAW`).
    Raw,
}

/// Engine configuration.
#[derive(Clone, Debug)]
pub struct IcmpConfig {
    /// Kind of socket to open.
    pub socket_kind: SocketKind,
    /// Receive buffer asked for on each socket (`SO_RCVBUFFORCE`, else
    /// `SO_RCVBUF`, which `net.core.rmem_max` caps); the kernel doubles it
    /// for its own bookkeeping. Memory is used only while replies wait in
    /// it: 64 MiB hold a second of replies and transmit stamps at 66,667
    /// pings/s, for a receive thread kept from running (the kernel drops
    /// what does not fit, counted as `rx_dropped`).
    pub recv_buffer_bytes: usize,
    /// Sends are released on ticks of this length (zero: as soon as due).
    /// With a 1 ms quantum the sender thread wakes at most once per
    /// millisecond and sends every due packet of every round at once, while
    /// each round's sends stay at least its `spacing` apart. A send may be
    /// up to one quantum later than its due time; RTTs are measured from the
    /// actual send.
    pub send_quantum: std::time::Duration,
    /// Ask the kernel for transmit timestamps (`SO_TIMESTAMPING`): an RTT is
    /// then kernel receive time − kernel transmit time, whatever the
    /// sending thread did in between. Off: the send time is read in user
    /// space just before the send (for comparison in benchmarks).
    pub tx_timestamps: bool,
}

impl Default for IcmpConfig {
    fn default() -> IcmpConfig {
        IcmpConfig {
            socket_kind: SocketKind::Auto,
            recv_buffer_bytes: 64 << 20,
            send_quantum: std::time::Duration::ZERO,
            tx_timestamps: true,
        }
    }
}

/// What a socket is bound to. Rounds with equal bindings share one socket.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Binding {
    /// Address family of the socket (targets of the other family are lost).
    pub family: Family,
    /// Source address (`bind`).
    pub source: Option<IpAddr>,
    /// Interface name (`SO_BINDTODEVICE`).
    pub interface: Option<String>,
    /// IPv4's don't-fragment flag (`IP_MTU_DISCOVER`): `Some(true)` sets it
    /// on every packet (fping `-M`; a packet larger than the path's MTU is
    /// not sent), `Some(false)` never, `None` as the kernel does by default
    /// (set, and cleared for a path that needs fragments). A socket option,
    /// so each setting is its own socket. Ignored for IPv6, whose routers
    /// never fragment.
    pub dont_fragment: Option<bool>,
}

impl Binding {
    /// A binding of `family` with no source address or interface.
    pub fn any(family: Family) -> Binding {
        Binding {
            family,
            source: None,
            interface: None,
            dont_fragment: None,
        }
    }
}

/// Data bytes of an echo request by default: fping's (and the original
/// pingmachine's) 56, an 84-byte IPv4 packet.
pub const DEFAULT_DATA_BYTES: u16 = 56;
/// Fewest data bytes of an echo request: the engine's token.
pub const MIN_DATA_BYTES: u16 = packet::PAYLOAD_LEN as u16;
/// Most data bytes of an echo request: an IPv4 packet of 65,535 bytes
/// (20 of IP header, 8 of ICMP header).
pub const MAX_DATA_BYTES: u16 = 65_507;

/// What every echo request of a round carries, set per packet (control
/// messages on the shared socket).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EchoOptions {
    /// Data bytes after the ICMP header ([`MIN_DATA_BYTES`] to
    /// [`MAX_DATA_BYTES`]; fping `-b`, SmokePing's `packetsize`).
    pub data_bytes: u16,
    /// IPv4 type of service / IPv6 traffic class byte (DSCP and ECN; fping
    /// `-O`, SmokePing's `tos`); 0 is the kernel's default.
    pub tos: u8,
    /// IPv4 time to live / IPv6 hop limit (fping `-H`); `None` is the
    /// kernel's default.
    pub ttl: Option<u8>,
}

impl Default for EchoOptions {
    fn default() -> EchoOptions {
        EchoOptions {
            data_bytes: DEFAULT_DATA_BYTES,
            tos: 0,
            ttl: None,
        }
    }
}

/// One round: `pings` pings to each target.
#[derive(Clone, Debug)]
pub struct RoundRequest {
    /// Socket to use.
    pub binding: Binding,
    /// Distinct addresses; results come back in this order.
    pub targets: Vec<IpAddr>,
    /// Pings per target (>= 1; 0 gives empty results at once).
    pub pings: u32,
    /// Between two pings to one target.
    pub interval: Duration,
    /// Minimum gap between consecutive sends of this round.
    pub spacing: Duration,
    /// How long a ping may wait for its reply.
    pub timeout: Duration,
    /// When the first send is due (in the past: start at once).
    pub start: Instant,
    /// Size, TOS and TTL of every echo request.
    pub options: EchoOptions,
}

/// The outcome of a round.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoundResult {
    /// Per target index, per ping in send order: the RTT, or lost.
    pub rtts: Rtts,
    /// `[target index]`: pings that could not be sent (lost, and counted
    /// in [`EngineStats::send_errors`] too).
    pub send_errors: Vec<u32>,
    /// `[target index]`: the TTL (IPv4) or hop limit (IPv6) of the last
    /// answer in time, `None` when nothing answered or the kernel did not
    /// say.
    pub reply_ttl: Vec<Option<u8>>,
}

/// The RTTs of a round, `targets × pings`, four bytes each (nanoseconds
/// below 1.07 s, microseconds above): a round of a million targets is
/// 80 MB at 20 pings, not the 350 MB of a vector of vectors, and results
/// are often held a while (until the store takes them).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Rtts {
    targets: usize,
    pings: u32,
    /// `[target * pings + ping]`, see [`matching::slot`].
    slots: Vec<u32>,
}

impl Rtts {
    /// `targets` rows of `pings` lost pings.
    pub fn new(targets: usize, pings: u32) -> Rtts {
        Rtts {
            targets,
            pings,
            slots: vec![matching::slot::EMPTY; targets.saturating_mul(pings as usize)],
        }
    }

    /// From rows of equal length (`pings` each; a shorter row's missing
    /// pings are lost, a longer row's extra ones dropped).
    pub fn from_rows(rows: &[Vec<Option<Duration>>], pings: u32) -> Rtts {
        let mut r = Rtts::new(rows.len(), pings);
        for (t, row) in rows.iter().enumerate() {
            for (p, rtt) in row.iter().take(pings as usize).enumerate() {
                if let Some(rtt) = rtt {
                    r.slots[t * pings as usize + p] = matching::slot::rtt(*rtt);
                }
            }
        }
        r
    }

    pub(crate) fn from_slots(targets: usize, pings: u32, slots: Vec<u32>) -> Rtts {
        debug_assert_eq!(slots.len(), targets * pings as usize);
        Rtts {
            targets,
            pings,
            slots,
        }
    }

    /// Number of targets (rows).
    pub fn len(&self) -> usize {
        self.targets
    }

    /// True without targets.
    pub fn is_empty(&self) -> bool {
        self.targets == 0
    }

    /// Pings per target.
    pub fn pings(&self) -> u32 {
        self.pings
    }

    /// The RTTs of target `target` in send order (`None` = lost); empty
    /// for a target that is not in the round.
    pub fn row(&self, target: usize) -> impl ExactSizeIterator<Item = Option<Duration>> + '_ {
        let p = self.pings as usize;
        let row = if target < self.targets {
            self.slots.get(target * p..(target + 1) * p).unwrap_or(&[])
        } else {
            &[]
        };
        row.iter().map(|&v| match matching::slot::decode(v) {
            matching::slot::Value::Rtt(d) => Some(d),
            _ => None,
        })
    }

    /// Every row as a vector (for tests and small rounds).
    pub fn to_vecs(&self) -> Vec<Vec<Option<Duration>>> {
        (0..self.targets).map(|t| self.row(t).collect()).collect()
    }
}

impl std::fmt::Debug for Rtts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.to_vecs()).finish()
    }
}

/// What kept a binding's ICMP socket from opening.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SocketCause {
    /// Not allowed: neither `CAP_NET_RAW` nor `net.ipv4.ping_group_range`
    /// covering a group of the process.
    NotPermitted,
    /// The source address cannot be used (other family, not local).
    Source,
    /// The interface cannot be bound (missing, or not allowed).
    Interface,
    /// Anything else: the kernel refused for another reason, a socket
    /// option failed, a thread could not start.
    Other,
}

/// Why a binding's ICMP socket could not be opened: the cause to act on,
/// and the message for the user.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SocketError {
    /// What kept it from opening.
    pub cause: SocketCause,
    /// What failed and why, with what would allow it.
    pub message: String,
}

impl SocketError {
    /// An error of `cause` saying `message`.
    pub fn new(cause: SocketCause, message: impl Into<String>) -> SocketError {
        SocketError {
            cause,
            message: message.into(),
        }
    }
}

/// Why a round has no result.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RoundError {
    /// The binding's socket could not be opened.
    #[error("{0}")]
    Socket(SocketError),
    /// The engine was dropped before the round completed.
    #[error("ICMP engine stopped")]
    Stopped,
}

/// The pending result of a submitted round. Dropping it abandons the round.
#[derive(Debug)]
pub struct RoundHandle {
    rx: oneshot::Receiver<Result<RoundResult, RoundError>>,
}

impl Future for RoundHandle {
    type Output = Result<RoundResult, RoundError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(RoundError::Stopped)))
    }
}

/// Engine counters (totals since start, except the two gauges).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Echo requests sent.
    pub sent: u64,
    /// Pings not sent: `sendto` failed, or the target's family does not match
    /// the binding's.
    pub send_errors: u64,
    /// Failed reads of a socket (receive or wait errors).
    pub recv_errors: u64,
    /// Matched answers in time.
    pub received: u64,
    /// Matched answers later than the round's timeout (counted as lost).
    pub late: u64,
    /// Replies carrying our magic that match no pending ping (duplicates,
    /// replies after their round completed).
    pub unmatched: u64,
    /// Echo replies that are not ours (other processes' pings seen on a raw
    /// socket) and unparseable packets.
    pub foreign: u64,
    /// ICMP error messages received (never counted as answers).
    pub icmp_errors: u64,
    /// Gauge: rounds in progress.
    pub rounds_active: u64,
    /// Gauge: pings waiting for their reply.
    pub pending: u64,
    /// Sends whose kernel transmit timestamp was read.
    pub tx_stamped: u64,
    /// Answered pings whose RTT used the user-space send time (the kernel
    /// gave no transmit timestamp).
    pub tx_fallbacks: u64,
    /// Answered pings whose RTT used the user-space receive time (the
    /// kernel gave no receive timestamp).
    pub rx_fallbacks: u64,
    /// Packets the kernel dropped on the engine's sockets because a receive
    /// buffer was full (`SO_RXQ_OVFL`): replies lost on this machine, not
    /// on the network.
    pub rx_dropped: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtts_rows() {
        let ms = |x| Some(Duration::from_millis(x));
        let long = Some(Duration::from_micros(2_345_678));
        let rows = vec![vec![ms(1), None, ms(3)], vec![None, long, None]];
        let r = Rtts::from_rows(&rows, 3);
        assert_eq!((r.len(), r.pings(), r.is_empty()), (2, 3, false));
        assert_eq!(r.to_vecs(), rows);
        assert_eq!(r.row(1).len(), 3);
        // Not in the round: an empty row.
        assert_eq!(r.row(2).count(), 0);
        // Short rows are padded with losses, long ones cut.
        let r = Rtts::from_rows(&[vec![ms(1)], vec![ms(1), ms(2), ms(3), ms(4)]], 2);
        assert_eq!(r.to_vecs(), vec![vec![ms(1), None], vec![ms(1), ms(2)]]);
        assert_eq!(format!("{:?}", Rtts::new(1, 1)), "[[None]]");
        assert!(Rtts::default().is_empty());
    }
}
