//! The handshake as the wire saw it. A packet socket (`AF_PACKET`, every
//! interface of the daemon's network namespace) with a classic BPF filter
//! that lets through only the SYNs this host sends and the SYN-ACKs it
//! receives, each stamped by the kernel where the device hands the packet
//! over: an outgoing one as it goes to the device's taps, just before the
//! driver; an incoming one as the driver passes it up. That is the point a
//! packet capture reads, so a connect's round trip from these stamps (SYN
//! out to SYN-ACK in) is the network's, without the 5–30 µs the kernel
//! spends taking the SYN-ACK through IP and TCP before `TCP_INFO` takes its
//! sample.
//!
//! The socket is opened at the first connect that asks for it and needs
//! `CAP_NET_RAW` (the daemon has it for ICMP); without it nothing is
//! opened and the probes use `TCP_INFO`. It is never waited on: whoever
//! wants a handshake drains what is queued (the SYN and its SYN-ACK are
//! queued before the connect completes, since the taps run before TCP
//! sees the packet) and looks its connection up. What the filter lets
//! through from other programs' connections is kept for at most
//! [`KEEP`] and [`MAX_KEPT`] connections.
#![allow(unsafe_code)]

use std::collections::HashMap;
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::sys::socket::{self as nsock, sockopt, ControlMessageOwned, MsgFlags, SockaddrStorage};
use socket2::{Domain, Protocol, SockFilter, Socket, Type};

/// `ETH_P_ALL`: every protocol.
const ETH_P_ALL: u16 = 0x0003;
/// `PACKET_OUTGOING`: a packet this host sent.
const PACKET_OUTGOING: u8 = 4;
/// Bytes of each packet kept: the largest IPv4 header and the TCP
/// header's ports, sequence and acknowledgement numbers.
const SNAPLEN: u32 = 96;
/// How long a connection's stamps are kept when nobody asks for them.
const KEEP: Duration = Duration::from_secs(120);
/// Most connections kept.
const MAX_KEPT: usize = 65_536;
/// Most packets read in one drain.
const MAX_DRAIN: usize = 65_536;
/// TCP flags.
const SYN: u8 = 0x02;
const ACK: u8 = 0x10;

/// A connection, seen from this host: (local address, remote address).
type Key = (IpAddr, u16, IpAddr, u16);

/// What was seen of one connection's handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Seen {
    /// The first SYN: its sequence number and when it left.
    syn_seq: u32,
    syn_at: SystemTime,
    /// When the SYN-ACK acknowledging it arrived.
    synack_at: Option<SystemTime>,
}

/// The open tap and the handshakes read from it.
#[derive(Debug)]
pub struct SynTap {
    socket: Socket,
    seen: Mutex<Book>,
}

/// The handshakes read so far, by connection.
#[derive(Debug, Default)]
struct Book {
    seen: HashMap<Key, Seen>,
}

impl Book {
    /// Takes in one packet (already through the filter).
    fn note(&mut self, outgoing: bool, at: SystemTime, p: &Segment) {
        if outgoing && p.flags & (SYN | ACK) == SYN {
            let key = (p.src, p.sport, p.dst, p.dport);
            match self.seen.get(&key) {
                // The SYN sent again: the first one counts.
                Some(s) if s.syn_seq == p.seq && s.synack_at.is_none() => {}
                _ => {
                    self.seen.insert(
                        key,
                        Seen {
                            syn_seq: p.seq,
                            syn_at: at,
                            synack_at: None,
                        },
                    );
                }
            }
        } else if !outgoing && p.flags & (SYN | ACK) == SYN | ACK {
            let key = (p.dst, p.dport, p.src, p.sport);
            if let Some(s) = self.seen.get_mut(&key) {
                if s.synack_at.is_none() && p.ack == s.syn_seq.wrapping_add(1) {
                    s.synack_at = Some(at);
                }
            }
        }
    }

    /// Forgets what nobody asked for in time, and everything when full.
    fn prune(&mut self, now: SystemTime) {
        if self.seen.len() < MAX_KEPT / 2 {
            return;
        }
        self.seen.retain(|_, s| {
            now.duration_since(s.syn_at)
                .map(|age| age < KEEP)
                .unwrap_or(true)
        });
        if self.seen.len() >= MAX_KEPT {
            self.seen.clear();
        }
    }

    /// The handshake of `key`, SYN out to SYN-ACK in, taken out of the
    /// book.
    fn take(&mut self, key: &Key) -> Option<Duration> {
        let s = self.seen.get(key)?;
        let rtt = s.synack_at?.duration_since(s.syn_at).ok()?;
        self.seen.remove(key);
        Some(rtt)
    }
}

/// The tap of this process, opened at the first call; `None` when it
/// cannot be (no `CAP_NET_RAW`).
pub fn tap() -> Option<&'static SynTap> {
    static TAP: OnceLock<Option<SynTap>> = OnceLock::new();
    TAP.get_or_init(|| match SynTap::open() {
        Ok(t) => {
            tracing::debug!("TCP handshakes timed from a packet tap");
            Some(t)
        }
        Err(e) => {
            tracing::debug!(error = %e, "no packet tap for TCP handshakes; TCP_INFO times them");
            None
        }
    })
    .as_ref()
}

impl SynTap {
    /// Opens the packet socket with its filter.
    pub fn open() -> io::Result<SynTap> {
        // Bound to no protocol first, so nothing is queued before the
        // filter is on; then to every protocol.
        let socket = Socket::new(Domain::PACKET, Type::DGRAM, Some(Protocol::from(0)))?;
        socket.attach_filter(&filter())?;
        nsock::setsockopt(&socket, sockopt::ReceiveTimestampns, &true).map_err(io::Error::from)?;
        socket.set_nonblocking(true)?;
        bind_all(&socket)?;
        Ok(SynTap {
            socket,
            seen: Mutex::new(Book::default()),
        })
    }

    /// The handshake of the connection from `local` to `remote` (SYN out
    /// to SYN-ACK in, by the kernel's stamps on the wire), once the
    /// connect has completed; `None` when the tap did not see both.
    pub fn handshake(&self, local: SocketAddr, remote: SocketAddr) -> Option<Duration> {
        let key = (
            canonical(local.ip()),
            local.port(),
            canonical(remote.ip()),
            remote.port(),
        );
        let mut book = crate::sync::lock(&self.seen);
        self.drain(&mut book);
        let rtt = book.take(&key);
        book.prune(SystemTime::now());
        rtt
    }

    /// Reads everything queued into `book`.
    fn drain(&self, book: &mut Book) {
        let mut buf = [0u8; SNAPLEN as usize];
        let mut cmsg = nix::cmsg_space!(nix::sys::time::TimeSpec);
        for _ in 0..MAX_DRAIN {
            let mut iov = [IoSliceMut::new(&mut buf)];
            let Ok(msg) = nsock::recvmsg::<SockaddrStorage>(
                self.socket.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_TRUNC,
            ) else {
                break; // EAGAIN: all read (or an error: next time)
            };
            let mut at = None;
            if let Ok(cmsgs) = msg.cmsgs() {
                for c in cmsgs {
                    if let ControlMessageOwned::ScmTimestampns(ts) = c {
                        at = u64::try_from(ts.tv_sec()).ok().and_then(|s| {
                            let n = u32::try_from(ts.tv_nsec()).ok()?;
                            UNIX_EPOCH.checked_add(Duration::new(s, n))
                        });
                    }
                }
            }
            let outgoing = msg
                .address
                .as_ref()
                .and_then(|a| a.as_link_addr())
                .map(|l| l.pkttype() == PACKET_OUTGOING);
            let len = msg.bytes.min(buf.len());
            if let (Some(at), Some(outgoing), Some(seg)) = (at, outgoing, segment(&buf[..len])) {
                book.note(outgoing, at, &seg);
            }
        }
    }
}

/// An IPv4-mapped address as the IPv4 one it is (a packet carries that).
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// What a TCP segment's headers say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Segment {
    src: IpAddr,
    sport: u16,
    dst: IpAddr,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
}

/// The TCP segment of an IP packet (no link header); `None` for anything
/// else, a fragment, an IPv6 extension header, or too few bytes.
fn segment(data: &[u8]) -> Option<Segment> {
    let be16 = |d: &[u8], o: usize| Some(u16::from_be_bytes([*d.get(o)?, *d.get(o + 1)?]));
    let be32 = |d: &[u8], o: usize| -> Option<u32> {
        Some(u32::from_be_bytes(d.get(o..o + 4)?.try_into().ok()?))
    };
    let (src, dst, tcp): (IpAddr, IpAddr, &[u8]) = match data.first()? >> 4 {
        4 => {
            let ihl = usize::from(data[0] & 0x0f) * 4;
            if ihl < 20 || *data.get(9)? != 6 || be16(data, 6)? & 0x1fff != 0 {
                return None;
            }
            let a: [u8; 4] = data.get(12..16)?.try_into().ok()?;
            let b: [u8; 4] = data.get(16..20)?.try_into().ok()?;
            (
                Ipv4Addr::from(a).into(),
                Ipv4Addr::from(b).into(),
                data.get(ihl..)?,
            )
        }
        6 => {
            if *data.get(6)? != 6 {
                return None;
            }
            let a: [u8; 16] = data.get(8..24)?.try_into().ok()?;
            let b: [u8; 16] = data.get(24..40)?.try_into().ok()?;
            (
                Ipv6Addr::from(a).into(),
                Ipv6Addr::from(b).into(),
                data.get(40..)?,
            )
        }
        _ => return None,
    };
    Some(Segment {
        src,
        sport: be16(tcp, 0)?,
        dst,
        dport: be16(tcp, 2)?,
        seq: be32(tcp, 4)?,
        ack: be32(tcp, 8)?,
        flags: *tcp.get(13)?,
    })
}

/// The filter: TCP over IPv4 (not a fragment) or IPv6 (TCP the first
/// header); of those, a SYN without ACK leaving, or a SYN-ACK arriving;
/// the first [`SNAPLEN`] bytes of it. A packet socket of type `SOCK_DGRAM`
/// runs it on the packet from its network header.
fn filter() -> Vec<SockFilter> {
    // Classic BPF opcodes (linux/filter.h).
    const LD_W_ABS: u16 = 0x20;
    const LD_H_ABS: u16 = 0x28;
    const LD_B_ABS: u16 = 0x30;
    const LD_B_IND: u16 = 0x50;
    const LDX_B_MSH: u16 = 0xb1;
    const JA: u16 = 0x05;
    const JEQ_K: u16 = 0x15;
    const JSET_K: u16 = 0x45;
    const AND_K: u16 = 0x54;
    const TAX: u16 = 0x07;
    const TXA: u16 = 0x87;
    const RET_K: u16 = 0x06;
    // The kernel's ancillary loads: the protocol (host order) and the
    // packet type.
    let ad = |what: i32| (libc::SKF_AD_OFF + what) as u32;
    let f = SockFilter::new;
    // Jump offsets count from the next instruction; DROP is 21, ACCEPT 22.
    vec![
        /* 0 */ f(LD_H_ABS, 0, 0, ad(libc::SKF_AD_PROTOCOL)),
        /* 1 */ f(JEQ_K, 0, 7, 0x0800), // IPv4, else 9
        /* 2 */ f(LD_B_ABS, 0, 0, 9), // protocol
        /* 3 */ f(JEQ_K, 0, 17, 6),
        /* 4 */ f(LD_H_ABS, 0, 0, 6), // flags and fragment offset
        /* 5 */ f(JSET_K, 15, 0, 0x1fff),
        /* 6 */ f(LDX_B_MSH, 0, 0, 0), // X = header length
        /* 7 */ f(LD_B_IND, 0, 0, 13), // TCP flags
        /* 8 */ f(JA, 0, 0, 4), // to 13
        /* 9 */ f(JEQ_K, 0, 11, 0x86dd), // IPv6
        /* 10 */ f(LD_B_ABS, 0, 0, 6), // next header
        /* 11 */ f(JEQ_K, 0, 9, 6),
        /* 12 */ f(LD_B_ABS, 0, 0, 40 + 13), // TCP flags
        /* 13 */ f(AND_K, 0, 0, u32::from(SYN | ACK)),
        /* 14 */ f(TAX, 0, 0, 0),
        /* 15 */ f(LD_W_ABS, 0, 0, ad(libc::SKF_AD_PKTTYPE)),
        /* 16 */ f(JEQ_K, 0, 2, u32::from(PACKET_OUTGOING)), // else 19
        /* 17 */ f(TXA, 0, 0, 0),
        /* 18 */ f(JEQ_K, 3, 2, u32::from(SYN)),
        /* 19 */ f(TXA, 0, 0, 0),
        /* 20 */ f(JEQ_K, 1, 0, u32::from(SYN | ACK)),
        /* 21 */ f(RET_K, 0, 0, 0),
        /* 22 */ f(RET_K, 0, 0, SNAPLEN),
    ]
}

/// Binds the packet socket to every protocol on every interface.
fn bind_all(socket: &Socket) -> io::Result<()> {
    // SAFETY: sockaddr_ll is a C struct of integers and byte arrays only,
    // for which all-zero bytes are a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as libc::sa_family_t;
    sll.sll_protocol = ETH_P_ALL.to_be();
    sll.sll_ifindex = 0; // every interface
                         // SAFETY: `socket` is an open socket; `sll` is a live, initialised
                         // sockaddr_ll and the length passed is its exact size, so the kernel
                         // reads only those bytes.
    let rc = unsafe {
        libc::bind(
            socket.as_raw_fd(),
            (&raw const sll).cast::<libc::sockaddr>(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4_syn(flags: u8, seq: u32, ack: u32, frag: u16) -> Vec<u8> {
        let mut p = vec![0u8; 40];
        p[0] = 0x45;
        p[6..8].copy_from_slice(&frag.to_be_bytes());
        p[9] = 6;
        p[12..16].copy_from_slice(&[198, 18, 0, 1]);
        p[16..20].copy_from_slice(&[198, 18, 0, 30]);
        p[20..22].copy_from_slice(&40000u16.to_be_bytes());
        p[22..24].copy_from_slice(&80u16.to_be_bytes());
        p[24..28].copy_from_slice(&seq.to_be_bytes());
        p[28..32].copy_from_slice(&ack.to_be_bytes());
        p[33] = flags;
        p
    }

    #[test]
    fn segments_are_read_from_ipv4_and_ipv6_and_nothing_else() {
        let s = segment(&v4_syn(SYN, 7, 0, 0x4000)).unwrap();
        assert_eq!(
            (s.src, s.sport, s.dst, s.dport, s.seq, s.flags),
            (
                "198.18.0.1".parse().unwrap(),
                40000,
                "198.18.0.30".parse().unwrap(),
                80,
                7,
                SYN
            )
        );
        // A fragment (offset set), UDP, a short packet: nothing.
        assert_eq!(segment(&v4_syn(SYN, 7, 0, 0x0010)), None);
        let mut udp = v4_syn(SYN, 7, 0, 0);
        udp[9] = 17;
        assert_eq!(segment(&udp), None);
        assert_eq!(segment(&v4_syn(SYN, 7, 0, 0)[..30]), None);
        let mut v6 = vec![0u8; 60];
        v6[0] = 0x60;
        v6[6] = 6;
        v6[23] = 1; // ::1
        v6[39] = 1;
        v6[40..42].copy_from_slice(&443u16.to_be_bytes());
        v6[53] = SYN | ACK;
        let s = segment(&v6).unwrap();
        assert_eq!(
            (s.src, s.sport, s.flags),
            ("::1".parse().unwrap(), 443, SYN | ACK)
        );
        v6[6] = 0; // a hop-by-hop header first
        assert_eq!(segment(&v6), None);
    }

    #[test]
    fn the_book_pairs_the_first_syn_with_the_syn_ack_that_acknowledges_it() {
        let t0 = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let us = Duration::from_micros;
        let syn = segment(&v4_syn(SYN, 100, 0, 0)).unwrap();
        let reply = |ack: u32| Segment {
            src: syn.dst,
            sport: syn.dport,
            dst: syn.src,
            dport: syn.sport,
            seq: 5,
            ack,
            flags: SYN | ACK,
        };
        let key = (syn.src, syn.sport, syn.dst, syn.dport);
        let mut b = Book::default();
        b.note(true, t0, &syn);
        // Sent again: the first SYN counts.
        b.note(true, t0 + us(1000), &syn);
        // A SYN-ACK for another sequence, or one leaving, is not it.
        b.note(false, t0 + us(1500), &reply(7));
        b.note(true, t0 + us(1600), &reply(101));
        assert_eq!(b.take(&key), None);
        b.note(false, t0 + us(2000), &reply(101));
        // A later duplicate does not move it.
        b.note(false, t0 + us(2500), &reply(101));
        assert_eq!(b.take(&key), Some(us(2000)));
        assert_eq!(b.take(&key), None, "taken once");
        // A new connection on the same ports starts afresh.
        b.note(true, t0 + us(9000), &syn);
        let mut again = syn;
        again.seq = 900;
        b.note(true, t0 + us(9100), &again);
        b.note(false, t0 + us(9400), &reply(901));
        assert_eq!(b.take(&key), Some(us(300)));
    }

    #[test]
    fn the_book_forgets_what_nobody_asked_for() {
        let t0 = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut b = Book::default();
        for port in 0..(MAX_KEPT / 2) as u16 {
            let mut s = segment(&v4_syn(SYN, 1, 0, 0)).unwrap();
            s.sport = port;
            b.note(true, t0, &s);
        }
        b.prune(t0 + KEEP / 2);
        assert_eq!(b.seen.len(), MAX_KEPT / 2, "young ones stay");
        b.prune(t0 + KEEP);
        assert!(b.seen.is_empty(), "old ones go");
    }

    /// A real connect over loopback (IPv4 and IPv6), with the tap open:
    /// it sees the handshake, and its figure is within the kernel's own
    /// (`TCP_INFO` starts at or before the SYN leaves and ends at or after
    /// the SYN-ACK arrives). Needs `CAP_NET_RAW`.
    #[tokio::test]
    async fn a_loopback_connect_is_seen_on_the_tap() {
        let Some(tap) = crate::syn_tap::tap() else {
            testkit::require::skip(
                "a_loopback_connect_is_seen_on_the_tap",
                "a packet socket needs CAP_NET_RAW: run as root",
            );
            return;
        };
        for host in ["127.0.0.1", "::1"] {
            let listener = tokio::net::TcpListener::bind((host, 0)).await.unwrap();
            let remote = listener.local_addr().unwrap();
            for _ in 0..5 {
                // connect_parts asks the tap.
                let (stream, info, elapsed) =
                    crate::tcp::connect_parts(remote, None, Duration::from_secs(3))
                        .await
                        .unwrap();
                let info = info.unwrap();
                let wire = info.wire.expect("the tap saw it");
                let local = stream.local_addr().unwrap();
                assert_eq!(tap.handshake(local, remote), None, "taken once");
                assert!(
                    wire > Duration::ZERO && wire <= elapsed,
                    "{wire:?} {elapsed:?}"
                );
                assert!(
                    wire <= info.rtt + Duration::from_micros(1),
                    "the wire's {wire:?} within TCP_INFO's {:?}",
                    info.rtt
                );
                let _ = listener.accept().await.unwrap();
            }
        }
    }
}
