//! The wire as ground truth: a packet capture on the prober's end of the
//! veth pair, with kernel timestamps, and the pairing of requests with
//! their answers.
//!
//! [`Capture`] opens an `AF_PACKET` socket (`SOCK_DGRAM`, `ETH_P_ALL`)
//! inside the prober namespace with `SO_TIMESTAMPNS`, and a thread drains
//! it every few milliseconds into a log of [`WirePacket`]s until it is
//! dropped. It never sleeps on the socket: a waiting reader would be woken
//! from the transmit path of every packet, between the tap's timestamp and
//! the device's, and stretch exactly the interval being measured. The timestamps are
//! the kernel's own: an outgoing packet is stamped as the device hands it
//! to its taps (`dev_queue_xmit_nit`, just before the veth transmits it),
//! an incoming one as the veth delivers it (`netif_rx`), which is the same
//! `skb` timestamp a receiving socket reads with `SO_TIMESTAMPNS`. So a
//! round trip measured here is what happened on the wire, independent of
//! any user-space scheduling, ours or the simulator's.
//!
//! The pairing functions are pure (unit-tested below):
//! * [`echoes`]: each echo request sent, with the first echo reply from its
//!   destination carrying the same identifier and sequence;
//! * [`tcp_connections`]: each TCP connection opened, with its SYN, SYN-ACK,
//!   the first segment of data sent and the last one that came back.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::socket::{self as nsock, sockopt, ControlMessageOwned, MsgFlags, SockaddrStorage};
use socket2::{Domain, Protocol, Socket, Type};

/// `ETH_P_ALL`: every protocol.
const ETH_P_ALL: u16 = 0x0003;
/// `PACKET_OUTGOING`: a packet this host sent.
const PACKET_OUTGOING: u8 = 4;
/// The capture's receive buffer (forced past `rmem_max` as root).
const CAPTURE_BUFFER: usize = 32 << 20;
/// How often the capture thread drains its socket (and looks at its stop
/// flag), ms.
const TICK_MS: u64 = 5;
/// Most packets kept (the tests send a few thousand).
const MAX_PACKETS: usize = 2_000_000;

/// Direction of a packet, seen from the prober.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// Sent by the prober.
    Out,
    /// Received by the prober.
    In,
}

/// The transport part of a captured packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// ICMP or ICMPv6: type, code, and for echo messages identifier and
    /// sequence; `size` is the ICMP message's length (header and payload).
    Icmp {
        typ: u8,
        code: u8,
        ident: u16,
        seq: u16,
        size: usize,
    },
    /// TCP: ports, flags (the low byte: FIN 0x01, SYN 0x02, RST 0x04, ACK
    /// 0x10), sequence number and payload length.
    Tcp {
        sport: u16,
        dport: u16,
        flags: u8,
        seq: u32,
        len: usize,
    },
    /// Anything else (neighbour discovery is off, so rare).
    Other { protocol: u8 },
}

/// One packet on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WirePacket {
    /// Kernel timestamp (CLOCK_REALTIME).
    pub at: SystemTime,
    pub dir: Dir,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// The IP header: IPv4's total length (IPv6: 40 + payload length), its
    /// TOS byte (traffic class), TTL (hop limit), and IPv4's
    /// don't-fragment flag (false for IPv6).
    pub ip: IpHeader,
    pub transport: Transport,
}

/// What the tests look at in an IP header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IpHeader {
    pub length: usize,
    pub tos: u8,
    pub ttl: u8,
    pub dont_fragment: bool,
}

/// TCP flag bits.
pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_ACK: u8 = 0x10;

#[derive(Debug, Default)]
struct CaptureLog {
    packets: Vec<WirePacket>,
    /// Packets without a kernel timestamp (none expected: timestamps on).
    unstamped: u64,
    /// Packets not kept because the log was full.
    overflow: u64,
}

/// A running capture. Dropping it stops the capture thread.
#[derive(Debug)]
pub struct Capture {
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<CaptureLog>>,
    thread: Option<JoinHandle<()>>,
}

impl Capture {
    /// Starts capturing every packet on interface `ifname` of the network
    /// namespace `ns` (by name, `/run/netns/<ns>`), for at most `max_life`.
    pub fn start(ns: &str, ifname: &str, max_life: Duration) -> io::Result<Capture> {
        let path = format!("/run/netns/{ns}");
        let ifname_owned = ifname.to_owned();
        // Open the socket on a thread that entered the namespace: the socket
        // stays there wherever it is read.
        let (socket, ifindex) = std::thread::Builder::new()
            .name("wire-setns".into())
            .spawn(move || -> io::Result<(Socket, u32)> {
                let f = File::open(&path)?;
                nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(|e| io::Error::other(format!("setns {path}: {e}")))?;
                let ifindex = nix::net::if_::if_nametoindex(ifname_owned.as_str())
                    .map_err(|e| io::Error::other(format!("no interface {ifname_owned}: {e}")))?;
                let s = Socket::new(
                    Domain::PACKET,
                    Type::DGRAM,
                    Some(Protocol::from(i32::from(ETH_P_ALL.to_be()))),
                )?;
                if nsock::setsockopt(&s, sockopt::RcvBufForce, &CAPTURE_BUFFER).is_err() {
                    s.set_recv_buffer_size(CAPTURE_BUFFER)?;
                }
                nsock::setsockopt(&s, sockopt::ReceiveTimestampns, &true)
                    .map_err(io::Error::from)?;
                s.set_nonblocking(true)?;
                Ok((s, ifindex))
            })?
            .join()
            .map_err(|_| io::Error::other("wire: setns thread panicked"))??;
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(CaptureLog::default()));
        let (st, lg) = (Arc::clone(&stop), Arc::clone(&log));
        let deadline = Instant::now() + max_life;
        let thread = std::thread::Builder::new()
            .name("wire-capture".into())
            .spawn(move || capture_loop(&socket, ifindex, &st, &lg, deadline))?;
        Ok(Capture {
            stop,
            log,
            thread: Some(thread),
        })
    }

    /// Every packet captured so far, in capture order.
    pub fn packets(&self) -> Vec<WirePacket> {
        self.lock().packets.clone()
    }

    /// Packets that came without a kernel timestamp or did not fit in the
    /// log (both should be zero; a test can assert it).
    pub fn problems(&self) -> (u64, u64) {
        let l = self.lock();
        (l.unstamped, l.overflow)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CaptureLog> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            // The loop looks at the flag every TICK_MS.
            let deadline = Instant::now() + Duration::from_secs(5);
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }
}

fn capture_loop(
    socket: &Socket,
    ifindex: u32,
    stop: &AtomicBool,
    log: &Mutex<CaptureLog>,
    deadline: Instant,
) {
    let mut buf = vec![0u8; 65536];
    let mut cmsg = nix::cmsg_space!(nix::sys::time::TimeSpec);
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        // Never wait on the socket: a reader sleeping in poll() would be
        // woken from the transmit path of every packet, between the tap's
        // timestamp and the device's, and lengthen that path. The kernel
        // stamps each packet as it passes, so reading it a few ms later
        // changes nothing.
        std::thread::sleep(Duration::from_millis(TICK_MS));
        // Drain what is queued, a bounded number per wake-up.
        for _ in 0..4096 {
            let mut iov = [IoSliceMut::new(&mut buf)];
            let Ok(msg) = nsock::recvmsg::<SockaddrStorage>(
                socket.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::MSG_DONTWAIT,
            ) else {
                break;
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
            let Some(link) = msg.address.as_ref().and_then(|a| a.as_link_addr()) else {
                continue;
            };
            if link.ifindex() != ifindex as usize {
                continue;
            }
            let dir = if link.pkttype() == PACKET_OUTGOING {
                Dir::Out
            } else {
                Dir::In
            };
            let len = msg.bytes;
            let data = &buf[..len.min(buf.len())];
            let mut l = log.lock().unwrap_or_else(|e| e.into_inner());
            let Some(at) = at else {
                l.unstamped += 1;
                continue;
            };
            if let Some(p) = parse_ip(at, dir, data) {
                if l.packets.len() < MAX_PACKETS {
                    l.packets.push(p);
                } else {
                    l.overflow += 1;
                }
            }
        }
    }
}

/// Parses an IP packet (no link header) into a [`WirePacket`]; `None` for
/// what is not IPv4 or IPv6 or is truncated.
pub fn parse_ip(at: SystemTime, dir: Dir, data: &[u8]) -> Option<WirePacket> {
    let version = data.first()? >> 4;
    let (src, dst, protocol, l4, ip): (IpAddr, IpAddr, u8, &[u8], IpHeader) = match version {
        4 => {
            let ihl = usize::from(data.first()? & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([*data.get(2)?, *data.get(3)?]));
            let src = Ipv4Addr::new(data[12], data[13], data[14], data[15]);
            let dst = Ipv4Addr::new(data[16], data[17], data[18], data[19]);
            let end = total.min(data.len());
            let ip = IpHeader {
                length: total,
                tos: *data.get(1)?,
                ttl: *data.get(8)?,
                dont_fragment: data.get(6)? & 0x40 != 0,
            };
            (
                src.into(),
                dst.into(),
                *data.get(9)?,
                data.get(ihl..end)?,
                ip,
            )
        }
        6 => {
            let payload = usize::from(u16::from_be_bytes([*data.get(4)?, *data.get(5)?]));
            let octets = |o: usize| -> Option<[u8; 16]> { data.get(o..o + 16)?.try_into().ok() };
            let src = Ipv6Addr::from(octets(8)?);
            let dst = Ipv6Addr::from(octets(24)?);
            let end = (40 + payload).min(data.len());
            let ip = IpHeader {
                length: 40 + payload,
                tos: ((data.first()? & 0x0f) << 4) | (data.get(1)? >> 4),
                ttl: *data.get(7)?,
                dont_fragment: false,
            };
            (
                src.into(),
                dst.into(),
                *data.get(6)?,
                data.get(40..end)?,
                ip,
            )
        }
        _ => return None,
    };
    let transport = match protocol {
        1 | 58 => Transport::Icmp {
            typ: *l4.first()?,
            code: *l4.get(1)?,
            ident: u16::from_be_bytes([*l4.get(4)?, *l4.get(5)?]),
            seq: u16::from_be_bytes([*l4.get(6)?, *l4.get(7)?]),
            size: l4.len(),
        },
        6 => {
            let offset = usize::from(l4.get(12)? >> 4) * 4;
            Transport::Tcp {
                sport: u16::from_be_bytes([*l4.first()?, *l4.get(1)?]),
                dport: u16::from_be_bytes([*l4.get(2)?, *l4.get(3)?]),
                flags: *l4.get(13)?,
                seq: u32::from_be_bytes(l4.get(4..8)?.try_into().ok()?),
                len: l4.len().saturating_sub(offset),
            }
        }
        p => Transport::Other { protocol: p },
    };
    Some(WirePacket {
        at,
        dir,
        src,
        dst,
        ip,
        transport,
    })
}

fn is_echo_request(src: IpAddr, typ: u8) -> bool {
    match src {
        IpAddr::V4(_) => typ == 8,
        IpAddr::V6(_) => typ == 128,
    }
}

fn is_echo_reply(src: IpAddr, typ: u8) -> bool {
    match src {
        IpAddr::V4(_) => typ == 0,
        IpAddr::V6(_) => typ == 129,
    }
}

/// One echo request the prober sent, and the first echo reply to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Echo {
    pub dst: IpAddr,
    pub ident: u16,
    pub seq: u16,
    /// ICMP message length: tells one pinger from another when their
    /// sizes differ.
    pub size: usize,
    pub sent: SystemTime,
    /// When the first echo reply from `dst` with the same identifier and
    /// sequence came back, if one did.
    pub reply: Option<SystemTime>,
    /// Echo replies to it after the first (duplicates).
    pub duplicates: usize,
}

impl Echo {
    /// The round trip on the wire, if answered.
    pub fn rtt(&self) -> Option<Duration> {
        self.reply?.duration_since(self.sent).ok()
    }

    /// The round trip, if answered within `timeout`.
    pub fn rtt_within(&self, timeout: Duration) -> Option<Duration> {
        self.rtt().filter(|r| *r <= timeout)
    }
}

/// Pairs every outgoing echo request with the first incoming echo reply
/// from its destination with the same identifier and sequence that came
/// after it (a later request with the same triple starts a new pairing).
/// Replies with another identifier, ICMP errors and replies to nothing are
/// ignored. In order of sending.
pub fn echoes(packets: &[WirePacket]) -> Vec<Echo> {
    let mut out: Vec<Echo> = Vec::new();
    // (dst, ident, seq) -> index of the latest request with that triple.
    let mut open: HashMap<(IpAddr, u16, u16), usize> = HashMap::new();
    let mut sorted: Vec<&WirePacket> = packets.iter().collect();
    sorted.sort_by_key(|p| p.at);
    for p in sorted {
        let Transport::Icmp {
            typ,
            ident,
            seq,
            size,
            ..
        } = p.transport
        else {
            continue;
        };
        match p.dir {
            Dir::Out if is_echo_request(p.src, typ) => {
                open.insert((p.dst, ident, seq), out.len());
                out.push(Echo {
                    dst: p.dst,
                    ident,
                    seq,
                    size,
                    sent: p.at,
                    reply: None,
                    duplicates: 0,
                });
            }
            Dir::In if is_echo_reply(p.src, typ) => {
                if let Some(&i) = open.get(&(p.src, ident, seq)) {
                    let e = &mut out[i];
                    if e.reply.is_none() {
                        e.reply = Some(p.at);
                    } else {
                        e.duplicates += 1;
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// One TCP connection the prober opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpConn {
    pub dst: SocketAddr,
    pub sport: u16,
    /// The first SYN.
    pub syn: SystemTime,
    /// SYNs sent for it (more than one: retransmitted).
    pub syns: usize,
    /// The first SYN-ACK.
    pub synack: Option<SystemTime>,
    /// The first outgoing segment that carried data.
    pub first_data_out: Option<SystemTime>,
    /// The last incoming segment that carried data.
    pub last_data_in: Option<SystemTime>,
    /// Bytes of data that came in.
    pub bytes_in: usize,
}

impl TcpConn {
    /// SYN to SYN-ACK: the connect time on the wire.
    pub fn connect_rtt(&self) -> Option<Duration> {
        self.synack?.duration_since(self.syn).ok()
    }

    /// First SYN to the last byte of data that came back: a request's
    /// round trip on the wire (HTTP over a new connection).
    pub fn exchange_rtt(&self) -> Option<Duration> {
        self.last_data_in?.duration_since(self.syn).ok()
    }

    /// The network's part of an exchange: SYN to SYN-ACK, plus the first
    /// byte of data sent to the last byte of data that came back (what
    /// the httping probe times with the kernel's stamps; the prober's own
    /// time between the handshake and its first send is left out).
    pub fn network_rtt(&self) -> Option<Duration> {
        let exchange = self
            .last_data_in?
            .duration_since(self.first_data_out?)
            .ok()?;
        Some(self.connect_rtt()? + exchange)
    }
}

/// Every TCP connection the prober opened (outgoing SYN without ACK), with
/// what came back on it, in order of the first SYN. A SYN with a new
/// sequence number on the same ports starts a new connection; one with the
/// same sequence is a retransmission.
pub fn tcp_connections(packets: &[WirePacket]) -> Vec<TcpConn> {
    let mut out: Vec<TcpConn> = Vec::new();
    // (dst, sport) -> (index, SYN sequence) of the latest connection.
    let mut open: HashMap<(SocketAddr, u16), (usize, u32)> = HashMap::new();
    let mut sorted: Vec<&WirePacket> = packets.iter().collect();
    sorted.sort_by_key(|p| p.at);
    for p in sorted {
        let Transport::Tcp {
            sport,
            dport,
            flags,
            seq,
            len,
        } = p.transport
        else {
            continue;
        };
        match p.dir {
            Dir::Out => {
                if len > 0 {
                    let key = (SocketAddr::new(p.dst, dport), sport);
                    if let Some(&(i, _)) = open.get(&key) {
                        out[i].first_data_out.get_or_insert(p.at);
                    }
                }
                if flags & (TCP_SYN | TCP_ACK) != TCP_SYN {
                    continue;
                }
                let key = (SocketAddr::new(p.dst, dport), sport);
                match open.get(&key) {
                    Some(&(i, s)) if s == seq => out[i].syns += 1,
                    _ => {
                        open.insert(key, (out.len(), seq));
                        out.push(TcpConn {
                            dst: key.0,
                            sport,
                            syn: p.at,
                            syns: 1,
                            synack: None,
                            first_data_out: None,
                            last_data_in: None,
                            bytes_in: 0,
                        });
                    }
                }
            }
            Dir::In => {
                let key = (SocketAddr::new(p.src, sport), dport);
                let Some(&(i, _)) = open.get(&key) else {
                    continue;
                };
                let c = &mut out[i];
                if flags & (TCP_SYN | TCP_ACK) == TCP_SYN | TCP_ACK && c.synack.is_none() {
                    c.synack = Some(p.at);
                }
                if len > 0 {
                    c.last_data_in = Some(p.at);
                    c.bytes_in += len;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000) + Duration::from_micros(ms)
    }

    fn icmp(at: u64, dir: Dir, peer: &str, typ: u8, ident: u16, seq: u16) -> WirePacket {
        let me: IpAddr = if peer.contains(':') {
            "2001:db8::1".parse().unwrap()
        } else {
            "198.18.0.1".parse().unwrap()
        };
        let peer: IpAddr = peer.parse().unwrap();
        let (src, dst) = match dir {
            Dir::Out => (me, peer),
            Dir::In => (peer, me),
        };
        WirePacket {
            at: t(at),
            dir,
            src,
            dst,
            ip: IpHeader::default(),
            transport: Transport::Icmp {
                typ,
                code: 0,
                ident,
                seq,
                size: 24,
            },
        }
    }

    #[test]
    fn echo_pairing_first_reply_foreign_ident_errors_and_v6() {
        let p = vec![
            icmp(0, Dir::Out, "198.18.0.10", 8, 7, 1),
            icmp(10, Dir::Out, "198.18.0.11", 8, 7, 2),
            // Reply with a foreign identifier: not an answer.
            icmp(20, Dir::In, "198.18.0.11", 0, 99, 2),
            // Destination unreachable: not an answer.
            icmp(25, Dir::In, "198.18.0.11", 3, 7, 2),
            icmp(30, Dir::In, "198.18.0.10", 0, 7, 1),
            // Duplicate.
            icmp(35, Dir::In, "198.18.0.10", 0, 7, 1),
            // A reply from the wrong address.
            icmp(36, Dir::In, "198.18.0.12", 0, 7, 1),
            icmp(40, Dir::Out, "2001:db8::10", 128, 7, 3),
            icmp(45, Dir::In, "2001:db8::10", 129, 7, 3),
            // A reply that came before its request is not its reply.
            icmp(50, Dir::In, "198.18.0.13", 0, 7, 4),
            icmp(60, Dir::Out, "198.18.0.13", 8, 7, 4),
        ];
        let e = echoes(&p);
        assert_eq!(e.len(), 4);
        assert_eq!(e[0].rtt(), Some(Duration::from_micros(30)));
        assert_eq!(e[0].duplicates, 1);
        assert_eq!(e[1].reply, None);
        assert_eq!(e[2].rtt(), Some(Duration::from_micros(5)));
        assert_eq!(e[3].reply, None);
        assert_eq!(e[0].rtt_within(Duration::from_micros(29)), None);
    }

    fn tcp(at: u64, dir: Dir, sport: u16, flags: u8, seq: u32, len: usize) -> WirePacket {
        let me: IpAddr = "198.18.0.1".parse().unwrap();
        let peer: IpAddr = "198.18.0.22".parse().unwrap();
        let (src, dst, s, d) = match dir {
            Dir::Out => (me, peer, sport, 8080),
            Dir::In => (peer, me, 8080, sport),
        };
        WirePacket {
            at: t(at),
            dir,
            src,
            dst,
            ip: IpHeader::default(),
            transport: Transport::Tcp {
                sport: s,
                dport: d,
                flags,
                seq,
                len,
            },
        }
    }

    #[test]
    fn tcp_pairing_retransmits_and_data() {
        let p = vec![
            tcp(0, Dir::Out, 40000, TCP_SYN, 100, 0),
            tcp(1000, Dir::Out, 40000, TCP_SYN, 100, 0),
            tcp(1100, Dir::In, 40000, TCP_SYN | TCP_ACK, 5, 0),
            tcp(1110, Dir::Out, 40000, TCP_ACK, 101, 0),
            tcp(1120, Dir::Out, 40000, TCP_ACK, 101, 40),
            tcp(1500, Dir::In, 40000, TCP_ACK, 6, 100),
            tcp(1510, Dir::In, 40000, TCP_ACK | TCP_FIN, 106, 0),
            // Same ports, new sequence: a new connection, never answered.
            tcp(5000, Dir::Out, 40000, TCP_SYN, 900, 0),
        ];
        let c = tcp_connections(&p);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].syns, 2);
        assert_eq!(c[0].connect_rtt(), Some(Duration::from_micros(1100)));
        assert_eq!(c[0].exchange_rtt(), Some(Duration::from_micros(1500)));
        assert_eq!(c[0].first_data_out, Some(t(1120)));
        // 1100 (SYN to SYN-ACK) + 380 (request out to the answer's last byte).
        assert_eq!(c[0].network_rtt(), Some(Duration::from_micros(1480)));
        assert_eq!(c[0].bytes_in, 100);
        assert_eq!(c[1].synack, None);
    }

    #[test]
    fn parses_ipv4_icmp_and_tcp() {
        let mut v4 = vec![0x45, 0, 0, 28, 0, 0, 0, 0, 64, 1, 0, 0];
        v4.extend([198, 18, 0, 1, 198, 18, 0, 10]);
        v4.extend([8, 0, 0, 0, 0x12, 0x34, 0, 5]);
        let p = parse_ip(t(0), Dir::Out, &v4).unwrap();
        assert_eq!(
            p.transport,
            Transport::Icmp {
                typ: 8,
                code: 0,
                ident: 0x1234,
                seq: 5,
                size: 8
            }
        );
        let mut tcp = vec![0x45, 0, 0, 44, 0, 0, 0, 0, 64, 6, 0, 0];
        tcp.extend([198, 18, 0, 1, 198, 18, 0, 10]);
        tcp.extend([0x9c, 0x40, 0x1f, 0x90, 0, 0, 0, 7, 0, 0, 0, 0, 0x50, 0x12]);
        tcp.extend([0u8; 6]);
        tcp.extend([1, 2, 3, 4]);
        let p = parse_ip(t(0), Dir::In, &tcp).unwrap();
        assert_eq!(
            p.transport,
            Transport::Tcp {
                sport: 40000,
                dport: 8080,
                flags: 0x12,
                seq: 7,
                len: 4
            }
        );
        assert_eq!(parse_ip(t(0), Dir::In, &[0x45, 0]), None);
    }
}
