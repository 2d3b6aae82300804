//! The return path of the simulated TCP servers (HTTP), carried through
//! user space so that their packets reach the prober as packets from
//! another machine do.
//!
//! A segment that a TCP socket on this machine sends keeps its departure
//! time (the kernel's pacing stamp) when it crosses the veth into the
//! prober namespace. The kernel there gives it a receive stamp only when IP
//! delivers it to the socket, 2–10 µs after the prober's packet taps (the
//! test's capture, the daemon's) stamped the same packet. A packet from a
//! network card has no such stamp: it is stamped once, as the device
//! passes it up, and the receiving socket reads the capture's stamp. So
//! without this relay the test would measure the prober against an
//! artefact of two network stacks sharing one kernel.
//!
//! The servers' answers to the prober are routed into a veth pair inside
//! the host namespace (a policy rule per server address, see
//! `Namespaces::add_relay`). A real-time thread reads them from the pair's
//! far end with a packet socket, fills in the TCP checksum (the kernel
//! left it to the device) and sends each as a new packet from a raw IP
//! socket whose firewall mark takes the main routing table, i.e. out of the
//! host's end of the prober's veth. Only packets from the configured
//! server addresses are relayed; everything is counted ([`RelayStats`]).

use super::*;

/// `ETH_P_ALL`: every protocol.
const ETH_P_ALL: u16 = 0x0003;
/// `PACKET_OUTGOING`: a packet the host sent on the interface.
const PACKET_OUTGOING: u8 = 4;
/// The largest packet relayed (a larger one would be a GSO aggregate,
/// which the simulator's small answers never are).
const MAX_PACKET: usize = 1500;

/// What the relay did so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// Packets sent on to the prober.
    pub relayed: u64,
    /// Packets from an address that is not relayed, or not IP: dropped.
    pub foreign: u64,
    /// Packets that could not be sent on (malformed, too large, or the
    /// send failed).
    pub errors: u64,
}

/// The relay's sockets, opened in the host namespace.
#[derive(Debug)]
pub(super) struct RelaySockets {
    /// Packet socket: what arrives on the relay's end of its veth pair.
    rx: Socket,
    /// Raw IPv4 and IPv6 senders (`IPPROTO_RAW`: the packet as it is).
    tx4: Socket,
    tx6: Socket,
    /// Interface index of the relay's end (`RELAY_OUT`).
    ifindex: u32,
}

/// The classic BPF program of the packet socket, as (code, jt, jf, k):
/// accept whole packets that arrive on interface `ifindex`, nothing else
/// (so the relay never wakes for the host's other traffic).
fn program(ifindex: u32) -> [(u16, u8, u8, u32); 6] {
    // Linux's ancillary loads (`SKF_AD_OFF` + `SKF_AD_IFINDEX` / `_PKTTYPE`).
    const LD_W_ABS: u16 = 0x20;
    const LD_IFINDEX: u32 = 0xffff_f000 + 8;
    const LD_PKTTYPE: u32 = 0xffff_f000 + 4;
    const JEQ_K: u16 = 0x15;
    const RET_K: u16 = 0x06;
    [
        (LD_W_ABS, 0, 0, LD_IFINDEX),
        (JEQ_K, 0, 3, ifindex),
        (LD_W_ABS, 0, 0, LD_PKTTYPE),
        (JEQ_K, 1, 0, u32::from(PACKET_OUTGOING)),
        (RET_K, 0, 0, 0x0004_0000),
        (RET_K, 0, 0, 0),
    ]
}

/// Opens the relay's sockets; must run on a thread inside the host
/// namespace, after `Namespaces::add_relay`.
pub(super) fn open_relay() -> io::Result<RelaySockets> {
    let ifindex = nix::net::if_::if_nametoindex(netns::RELAY_OUT)
        .map_err(|e| io::Error::other(format!("no interface {}: {e}", netns::RELAY_OUT)))?;
    let rx = Socket::new(
        Domain::PACKET,
        Type::DGRAM,
        Some(Protocol::from(i32::from(ETH_P_ALL.to_be()))),
    )?;
    let prog: Vec<socket2::SockFilter> = program(ifindex)
        .iter()
        .map(|&(code, jt, jf, k)| socket2::SockFilter::new(code, jt, jf, k))
        .collect();
    rx.attach_filter(&prog)?;
    rx.set_nonblocking(true)?;
    rx.set_recv_buffer_size(4 << 20)?;
    let raw = |domain| -> io::Result<Socket> {
        let s = Socket::new(domain, Type::RAW, Some(Protocol::from(255)))?;
        s.set_mark(netns::RELAY_MARK)?;
        Ok(s)
    };
    Ok(RelaySockets {
        rx,
        tx4: raw(Domain::IPV4)?,
        tx6: raw(Domain::IPV6)?,
        ifindex,
    })
}

/// Relays until stopped: every packet that arrives on the relay's end and
/// comes from one of `sources` is sent on to its destination at once.
pub(super) fn relay_loop(sh: &Shared, s: &RelaySockets, sources: &[IpAddr]) {
    make_realtime("impair-relay");
    sh.ready.fetch_add(1, Ordering::SeqCst);
    let mut buf = vec![0u8; 65536];
    while sh.running() {
        let mut fds = [PollFd::new(s.rx.as_fd(), PollFlags::POLLIN)];
        let tick = u16::try_from(TICK.as_millis()).unwrap_or(100);
        if !matches!(nix::poll::poll(&mut fds, tick), Ok(n) if n > 0) {
            continue;
        }
        for _ in 0..64 {
            let mut iov = [IoSliceMut::new(&mut buf)];
            let Ok(msg) = nsock::recvmsg::<SockaddrStorage>(
                s.rx.as_raw_fd(),
                &mut iov,
                None,
                MsgFlags::MSG_DONTWAIT,
            ) else {
                break;
            };
            let len = msg.bytes;
            // The filter already keeps only what arrives on the relay's end;
            // a packet queued before it was attached is told apart here.
            let arrived = msg
                .address
                .as_ref()
                .and_then(|a| a.as_link_addr())
                .is_some_and(|l| {
                    l.ifindex() == s.ifindex as usize && l.pkttype() != PACKET_OUTGOING
                });
            let pkt = &mut buf[..len.min(65536)];
            let outcome = if arrived {
                relay_one(s, sources, pkt)
            } else {
                Relayed::Foreign
            };
            sh.relayed(outcome);
        }
    }
}

/// What became of one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Relayed {
    Sent,
    Foreign,
    Error,
}

fn relay_one(s: &RelaySockets, sources: &[IpAddr], pkt: &mut [u8]) -> Relayed {
    let Some((src, dst)) = packet::ip_addresses(pkt) else {
        return Relayed::Foreign;
    };
    if !sources.contains(&src) {
        return Relayed::Foreign;
    }
    if pkt.len() > MAX_PACKET || packet::fill_tcp_checksum(pkt).is_none() {
        return Relayed::Error;
    }
    let (sock, to) = match dst {
        IpAddr::V4(_) => (&s.tx4, SocketAddr::new(dst, 0)),
        IpAddr::V6(_) => (&s.tx6, SocketAddr::new(dst, 0)),
    };
    match sock.send_to(pkt, &SockAddr::from(to)) {
        Ok(n) if n == pkt.len() => Relayed::Sent,
        _ => Relayed::Error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the filter program on the two values it loads.
    fn run(prog: &[(u16, u8, u8, u32)], ifindex: u32, pkttype: u32) -> u32 {
        let (mut pc, mut acc) = (0, 0u32);
        for _ in 0..16 {
            let (code, jt, jf, k) = prog[pc];
            match code {
                0x20 if k == 0xffff_f008 => acc = ifindex,
                0x20 if k == 0xffff_f004 => acc = pkttype,
                0x15 => {
                    pc += 1 + usize::from(if acc == k { jt } else { jf });
                    continue;
                }
                0x06 => return k,
                other => panic!("unexpected instruction {other:#x}"),
            }
            pc += 1;
        }
        panic!("the program did not return");
    }

    #[test]
    fn the_filter_keeps_what_arrives_on_the_relay_end() {
        let prog = program(7);
        assert_ne!(run(&prog, 7, 0), 0, "host");
        assert_ne!(run(&prog, 7, 3), 0, "otherhost");
        assert_eq!(run(&prog, 7, u32::from(PACKET_OUTGOING)), 0, "outgoing");
        assert_eq!(run(&prog, 8, 0), 0, "another interface");
    }
}
