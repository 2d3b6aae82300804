//! Packet parsing and building for the simulator: ICMP/ICMPv6 echo
//! requests in, echo replies, destination-unreachable errors and TCP SYN-ACKs
//! out. Pure functions on byte slices that never panic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// ICMPv4 echo request / reply types.
const ICMP4_ECHO_REQUEST: u8 = 8;
const ICMP4_ECHO_REPLY: u8 = 0;
const ICMP4_DEST_UNREACH: u8 = 3;
/// Code 1: host unreachable.
const ICMP4_HOST_UNREACH: u8 = 1;
/// ICMPv6 echo request / reply types.
const ICMP6_ECHO_REQUEST: u8 = 128;
const ICMP6_ECHO_REPLY: u8 = 129;
const ICMP6_DEST_UNREACH: u8 = 1;
/// Code 3: address unreachable.
const ICMP6_ADDR_UNREACH: u8 = 3;

/// At most this many bytes of the offending packet go into an ICMP error
/// (keeps an IPv4 error below 576 bytes, as RFC 1812 asks).
const ERROR_QUOTE_MAX: usize = 548;

/// The Internet checksum (RFC 1071) of `data`.
pub(crate) fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(u16::from_be_bytes([*last, 0]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An echo request as received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct EchoRequest {
    /// Who sent it (the reply goes there).
    pub from: IpAddr,
    pub ident: u16,
    pub seq: u16,
    /// The ICMP message (header and payload), without the IP header.
    pub icmp: Vec<u8>,
    /// IPv4 only: the IP header as received (quoted in ICMP errors).
    pub ip_header: Vec<u8>,
    /// IPv6 only: the hop limit is not visible on a raw socket; 64 is used
    /// when the header is rebuilt for an error quote.
    pub v6_dst: Option<Ipv6Addr>,
}

/// Parses an IPv4 packet (IP header included, as a raw `IPPROTO_ICMP`
/// socket returns it). `None` unless it is an echo request.
pub(crate) fn parse_v4_echo_request(data: &[u8]) -> Option<EchoRequest> {
    let first = *data.first()?;
    if first >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(first & 0x0f) * 4;
    if ihl < 20 || data.len() < ihl + 8 {
        return None;
    }
    let total = usize::from(u16::from_be_bytes([data[2], data[3]]));
    let end = if total >= ihl + 8 && total <= data.len() {
        total
    } else {
        data.len()
    };
    let src = Ipv4Addr::new(data[12], data[13], data[14], data[15]);
    let icmp = &data[ihl..end];
    if icmp[0] != ICMP4_ECHO_REQUEST || icmp[1] != 0 || checksum(icmp) != 0 {
        return None;
    }
    Some(EchoRequest {
        from: IpAddr::V4(src),
        ident: u16::from_be_bytes([icmp[4], icmp[5]]),
        seq: u16::from_be_bytes([icmp[6], icmp[7]]),
        icmp: icmp.to_vec(),
        ip_header: data[..ihl].to_vec(),
        v6_dst: None,
    })
}

/// Parses an ICMPv6 message as a raw `IPPROTO_ICMPV6` socket returns it (no
/// IP header; the kernel has verified the checksum). `None` unless it is an
/// echo request.
pub(crate) fn parse_v6_echo_request(
    data: &[u8],
    from: Ipv6Addr,
    to: Ipv6Addr,
) -> Option<EchoRequest> {
    if data.len() < 8 || data[0] != ICMP6_ECHO_REQUEST || data[1] != 0 {
        return None;
    }
    Some(EchoRequest {
        from: IpAddr::V6(from),
        ident: u16::from_be_bytes([data[4], data[5]]),
        seq: u16::from_be_bytes([data[6], data[7]]),
        icmp: data.to_vec(),
        ip_header: Vec::new(),
        v6_dst: Some(to),
    })
}

/// The echo reply to `req`, with `ident` in place of the request's
/// identifier (pass `req.ident` for a normal reply). IPv4: checksum
/// computed here; IPv6: the kernel computes it on a raw ICMPv6 socket.
pub(crate) fn echo_reply(req: &EchoRequest, ident: u16) -> Vec<u8> {
    let mut icmp = req.icmp.clone();
    if icmp.len() < 8 {
        return icmp;
    }
    icmp[4..6].copy_from_slice(&ident.to_be_bytes());
    icmp[2..4].copy_from_slice(&[0, 0]);
    match req.from {
        IpAddr::V4(_) => {
            icmp[0] = ICMP4_ECHO_REPLY;
            let c = checksum(&icmp);
            icmp[2..4].copy_from_slice(&c.to_be_bytes());
        }
        IpAddr::V6(_) => icmp[0] = ICMP6_ECHO_REPLY,
    }
    icmp
}

/// A destination-unreachable error about `req` (IPv4: host unreachable,
/// quoting the IP header and the echo request; IPv6: address unreachable,
/// quoting a rebuilt IPv6 header and the echo request).
pub(crate) fn unreachable(req: &EchoRequest) -> Vec<u8> {
    let mut quote = Vec::new();
    let mut msg = match req.from {
        IpAddr::V4(_) => {
            quote.extend_from_slice(&req.ip_header);
            vec![ICMP4_DEST_UNREACH, ICMP4_HOST_UNREACH, 0, 0, 0, 0, 0, 0]
        }
        IpAddr::V6(from) => {
            let len = u16::try_from(req.icmp.len()).unwrap_or(u16::MAX);
            quote.extend_from_slice(&[0x60, 0, 0, 0]);
            quote.extend_from_slice(&len.to_be_bytes());
            quote.extend_from_slice(&[58, 64]);
            quote.extend_from_slice(&from.octets());
            quote.extend_from_slice(&req.v6_dst.unwrap_or(Ipv6Addr::UNSPECIFIED).octets());
            vec![ICMP6_DEST_UNREACH, ICMP6_ADDR_UNREACH, 0, 0, 0, 0, 0, 0]
        }
    };
    quote.extend_from_slice(&req.icmp);
    quote.truncate(ERROR_QUOTE_MAX);
    msg.extend_from_slice(&quote);
    if req.from.is_ipv4() {
        let c = checksum(&msg);
        msg[2..4].copy_from_slice(&c.to_be_bytes());
    }
    msg
}

/// A TCP SYN seen on the packet tap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Syn {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
}

/// Parses an IPv4 packet (from an `AF_PACKET`/`SOCK_DGRAM` tap): `Some` for
/// a TCP segment with SYN set and ACK clear.
pub(crate) fn parse_syn(data: &[u8]) -> Option<Syn> {
    let first = *data.first()?;
    if first >> 4 != 4 || data.len() < 20 || data[9] != 6 {
        return None;
    }
    let ihl = usize::from(first & 0x0f) * 4;
    let tcp = data.get(ihl..)?;
    if ihl < 20 || tcp.len() < 20 {
        return None;
    }
    let flags = tcp[13];
    if flags & 0x02 == 0 || flags & 0x10 != 0 {
        return None;
    }
    Some(Syn {
        src: Ipv4Addr::new(data[12], data[13], data[14], data[15]),
        dst: Ipv4Addr::new(data[16], data[17], data[18], data[19]),
        src_port: u16::from_be_bytes([tcp[0], tcp[1]]),
        dst_port: u16::from_be_bytes([tcp[2], tcp[3]]),
        seq: u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]),
    })
}

/// The SYN-ACK answering `syn`, as a whole IPv4 packet (for a raw
/// `IPPROTO_RAW` socket, i.e. `IP_HDRINCL`): from `syn.dst` to `syn.src`,
/// our initial sequence number `isn`, MSS option 1460, both checksums set.
pub(crate) fn syn_ack(syn: &Syn, isn: u32) -> Vec<u8> {
    let mut tcp = Vec::with_capacity(24);
    tcp.extend_from_slice(&syn.dst_port.to_be_bytes());
    tcp.extend_from_slice(&syn.src_port.to_be_bytes());
    tcp.extend_from_slice(&isn.to_be_bytes());
    tcp.extend_from_slice(&syn.seq.wrapping_add(1).to_be_bytes());
    tcp.push(6 << 4); // data offset: 6 words (20 + 4 bytes of options)
    tcp.push(0x12); // SYN | ACK
    tcp.extend_from_slice(&65535u16.to_be_bytes()); // window
    tcp.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
    tcp.extend_from_slice(&[2, 4, 0x05, 0xb4]); // MSS 1460

    let mut pseudo = Vec::with_capacity(12 + tcp.len());
    pseudo.extend_from_slice(&syn.dst.octets());
    pseudo.extend_from_slice(&syn.src.octets());
    pseudo.extend_from_slice(&[0, 6]);
    pseudo.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
    pseudo.extend_from_slice(&tcp);
    let c = checksum(&pseudo);
    tcp[16..18].copy_from_slice(&c.to_be_bytes());

    let total = (20 + tcp.len()) as u16;
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&[0, 0, 0x40, 0]); // id (kernel fills), DF
    ip.extend_from_slice(&[64, 6, 0, 0]); // TTL, TCP, checksum
    ip.extend_from_slice(&syn.dst.octets());
    ip.extend_from_slice(&syn.src.octets());
    let c = checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    ip.extend_from_slice(&tcp);
    ip
}

/// The addresses of an IP packet (no link header), IPv4 or IPv6.
pub(crate) fn ip_addresses(data: &[u8]) -> Option<(IpAddr, IpAddr)> {
    match data.first()? >> 4 {
        4 if data.len() >= 20 => Some((
            Ipv4Addr::new(data[12], data[13], data[14], data[15]).into(),
            Ipv4Addr::new(data[16], data[17], data[18], data[19]).into(),
        )),
        6 if data.len() >= 40 => {
            let a = |o: usize| -> Option<Ipv6Addr> {
                let b: [u8; 16] = data.get(o..o + 16)?.try_into().ok()?;
                Some(Ipv6Addr::from(b))
            };
            Some((a(8)?.into(), a(24)?.into()))
        }
        _ => None,
    }
}

/// Sets the TCP checksum of a whole IP packet (IPv4, or IPv6 without
/// extension headers) in place. A segment that a local TCP socket sent
/// through a veth carries only the pseudo-header's partial sum, the rest
/// being left to the device (checksum offload); a copy sent on as a new
/// packet needs the whole sum. `Some(false)`: not TCP, left alone; `None`:
/// malformed or truncated, left alone.
pub(crate) fn fill_tcp_checksum(pkt: &mut [u8]) -> Option<bool> {
    let (l4, mut pseudo) = match pkt.first()? >> 4 {
        4 => {
            let ihl = usize::from(pkt.first()? & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([*pkt.get(2)?, *pkt.get(3)?]));
            if ihl < 20 || total < ihl || total > pkt.len() {
                return None;
            }
            if pkt[9] != 6 {
                return Some(false);
            }
            let mut pseudo = Vec::with_capacity(12 + total - ihl);
            pseudo.extend_from_slice(&pkt[12..20]);
            pseudo.extend_from_slice(&[0, 6]);
            pseudo.extend_from_slice(&u16::try_from(total - ihl).ok()?.to_be_bytes());
            (ihl..total, pseudo)
        }
        6 => {
            let payload = usize::from(u16::from_be_bytes([*pkt.get(4)?, *pkt.get(5)?]));
            if pkt.len() < 40 || 40 + payload > pkt.len() {
                return None;
            }
            if pkt[6] != 6 {
                return Some(false);
            }
            let mut pseudo = Vec::with_capacity(40 + payload);
            pseudo.extend_from_slice(&pkt[8..40]);
            pseudo.extend_from_slice(&u32::try_from(payload).ok()?.to_be_bytes());
            pseudo.extend_from_slice(&[0, 0, 0, 6]);
            (40..40 + payload, pseudo)
        }
        _ => return None,
    };
    let seg = pkt.get_mut(l4)?;
    if seg.len() < 20 {
        return None;
    }
    seg[16] = 0;
    seg[17] = 0;
    pseudo.extend_from_slice(seg);
    let c = checksum(&pseudo);
    seg[16..18].copy_from_slice(&c.to_be_bytes());
    Some(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn ip6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn v4_request(ident: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
        let mut icmp = vec![ICMP4_ECHO_REQUEST, 0, 0, 0];
        icmp.extend_from_slice(&ident.to_be_bytes());
        icmp.extend_from_slice(&seq.to_be_bytes());
        icmp.extend_from_slice(payload);
        let c = checksum(&icmp);
        icmp[2..4].copy_from_slice(&c.to_be_bytes());
        let total = (20 + icmp.len()) as u16;
        let mut ip = vec![0x45, 0];
        ip.extend_from_slice(&total.to_be_bytes());
        ip.extend_from_slice(&[0, 1, 0, 0, 64, 1, 0, 0, 198, 18, 0, 1, 198, 18, 0, 10]);
        let c = checksum(&ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        ip.extend_from_slice(&icmp);
        ip
    }

    #[test]
    fn checksum_rfc1071_example() {
        // RFC 1071 section 3: 0001 f203 f4f5 f6f7 sums to ddf2.
        assert_eq!(
            checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            !0xddf2
        );
        assert_eq!(checksum(&[0xff]), !0xff00);
    }

    #[test]
    fn v4_reply_and_foreign_ident_have_valid_checksums() {
        let pkt = v4_request(0x1234, 7, b"payload-token-xyz");
        let req = parse_v4_echo_request(&pkt).expect("echo request");
        assert_eq!((req.ident, req.seq), (0x1234, 7));
        assert_eq!(req.from, IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)));
        let reply = echo_reply(&req, req.ident);
        assert_eq!(reply[0], ICMP4_ECHO_REPLY);
        assert_eq!(checksum(&reply), 0, "reply checksum");
        assert_eq!(&reply[8..], b"payload-token-xyz");
        let foreign = echo_reply(&req, 0x4321);
        assert_eq!(u16::from_be_bytes([foreign[4], foreign[5]]), 0x4321);
        assert_eq!(checksum(&foreign), 0, "foreign reply checksum");
    }

    #[test]
    fn v4_rejects_non_requests_and_bad_checksums() {
        let mut pkt = v4_request(1, 1, b"x");
        pkt[20] = ICMP4_ECHO_REPLY;
        assert!(parse_v4_echo_request(&pkt).is_none());
        let mut pkt = v4_request(1, 1, b"xy");
        pkt[29] ^= 0xff;
        assert!(parse_v4_echo_request(&pkt).is_none());
        assert!(parse_v4_echo_request(&[0x45]).is_none());
        assert!(parse_v4_echo_request(&[]).is_none());
    }

    #[test]
    fn v4_unreachable_quotes_the_request() {
        let pkt = v4_request(9, 3, b"abc");
        let req = parse_v4_echo_request(&pkt).expect("request");
        let err = unreachable(&req);
        assert_eq!((err[0], err[1]), (3, 1));
        assert_eq!(checksum(&err), 0);
        assert_eq!(&err[8..], &pkt[..]);
    }

    #[test]
    fn v6_reply_and_unreachable() {
        let from: Ipv6Addr = "2001:db8::1".parse().expect("addr");
        let to: Ipv6Addr = "2001:db8::10".parse().expect("addr");
        let msg = [ICMP6_ECHO_REQUEST, 0, 0xaa, 0xbb, 0, 5, 0, 6, 1, 2, 3];
        let req = parse_v6_echo_request(&msg, from, to).expect("request");
        assert_eq!((req.ident, req.seq), (5, 6));
        let reply = echo_reply(&req, 5);
        assert_eq!(reply[0], ICMP6_ECHO_REPLY);
        assert_eq!(&reply[2..4], &[0, 0], "kernel fills the ICMPv6 checksum");
        let err = unreachable(&req);
        assert_eq!((err[0], err[1]), (1, 3));
        assert_eq!(err[8] >> 4, 6);
        assert_eq!(&err[8 + 8..8 + 24], &from.octets());
        assert_eq!(&err[8 + 24..8 + 40], &to.octets());
        assert_eq!(&err[8 + 40..], &msg);
        assert!(parse_v6_echo_request(&reply, from, to).is_none());
    }

    /// The TCP checksum of a whole packet verifies (sums to zero).
    fn tcp_sum_ok(pkt: &[u8]) -> bool {
        let mut pseudo = Vec::new();
        if pkt[0] >> 4 == 4 {
            let seg = &pkt[20..];
            pseudo.extend_from_slice(&pkt[12..20]);
            pseudo.extend_from_slice(&[0, 6]);
            pseudo.extend_from_slice(&(seg.len() as u16).to_be_bytes());
            pseudo.extend_from_slice(seg);
        } else {
            let seg = &pkt[40..];
            pseudo.extend_from_slice(&pkt[8..40]);
            pseudo.extend_from_slice(&(seg.len() as u32).to_be_bytes());
            pseudo.extend_from_slice(&[0, 0, 0, 6]);
            pseudo.extend_from_slice(seg);
        }
        checksum(&pseudo) == 0
    }

    #[test]
    fn tcp_checksums_are_filled_in_v4_and_v6() {
        // IPv4: a SYN-ACK built with a correct checksum, then a partial one
        // in its place, as checksum offload leaves it.
        let syn = Syn {
            src: Ipv4Addr::new(198, 18, 0, 1),
            dst: Ipv4Addr::new(198, 18, 0, 22),
            src_port: 40000,
            dst_port: 8080,
            seq: 5,
        };
        let good = syn_ack(&syn, 9);
        let mut v4 = good.clone();
        v4.extend_from_slice(&[0xee; 3]); // trailing bytes past the IP length
        v4[36] = 0x12;
        v4[37] = 0x34;
        assert_eq!(fill_tcp_checksum(&mut v4), Some(true));
        assert_eq!(&v4[..good.len()], &good[..]);
        assert_eq!(
            ip_addresses(&v4),
            Some((ip("198.18.0.22"), ip("198.18.0.1")))
        );

        // IPv6: 2001:db8::22 port 8080 to 2001:db8::1, 5 bytes of data.
        let mut tcp = vec![0x1f, 0x90, 0x9c, 0x40, 0, 0, 0, 1, 0, 0, 0, 2, 0x50, 0x18];
        tcp.extend_from_slice(&[0xff, 0xff, 0xab, 0xcd, 0, 0]);
        tcp.extend_from_slice(b"HTTP/");
        let mut v6 = vec![0x60, 0, 0, 0];
        v6.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
        v6.extend_from_slice(&[6, 64]);
        v6.extend_from_slice(&ip6("2001:db8::22").octets());
        v6.extend_from_slice(&ip6("2001:db8::1").octets());
        v6.extend_from_slice(&tcp);
        assert!(!tcp_sum_ok(&v6));
        assert_eq!(fill_tcp_checksum(&mut v6), Some(true));
        assert!(tcp_sum_ok(&v6));
        assert_eq!(
            ip_addresses(&v6),
            Some((ip("2001:db8::22"), ip("2001:db8::1")))
        );

        // Not TCP, or malformed: left alone.
        let mut icmp = v4_request(1, 2, b"x");
        let before = icmp.clone();
        assert_eq!(fill_tcp_checksum(&mut icmp), Some(false));
        assert_eq!(icmp, before);
        let mut short = v6[..50].to_vec();
        assert_eq!(fill_tcp_checksum(&mut short), None);
        assert_eq!(fill_tcp_checksum(&mut []), None);
        assert_eq!(ip_addresses(&[0x45, 0, 0]), None);
    }

    #[test]
    fn syn_ack_answers_a_syn_with_valid_checksums() {
        // A SYN from 198.18.0.1:40000 to 198.18.0.30:8082, seq 1000.
        let mut tcp = vec![
            0x9c, 0x40, 0x1f, 0x92, 0, 0, 0x03, 0xe8, 0, 0, 0, 0, 0x50, 0x02,
        ];
        tcp.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0]);
        let mut pkt = vec![0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0];
        pkt.extend_from_slice(&[198, 18, 0, 1, 198, 18, 0, 30]);
        pkt.extend_from_slice(&tcp);
        let syn = parse_syn(&pkt).expect("syn");
        assert_eq!(syn.src_port, 40000);
        assert_eq!(syn.dst_port, 8082);
        assert_eq!(syn.seq, 1000);
        let out = syn_ack(&syn, 77);
        assert_eq!(checksum(&out[..20]), 0, "IP header checksum");
        assert_eq!(&out[12..16], &[198, 18, 0, 30]);
        assert_eq!(&out[16..20], &[198, 18, 0, 1]);
        let seg = &out[20..];
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&out[12..20]);
        pseudo.extend_from_slice(&[0, 6, 0, seg.len() as u8]);
        pseudo.extend_from_slice(seg);
        assert_eq!(checksum(&pseudo), 0, "TCP checksum");
        assert_eq!(u32::from_be_bytes([seg[8], seg[9], seg[10], seg[11]]), 1001);
        assert_eq!(seg[13], 0x12);
        // An ACK (or the SYN-ACK itself) is not a SYN.
        let mut ack = pkt.clone();
        ack[20 + 13] = 0x10;
        assert!(parse_syn(&ack).is_none());
        assert!(parse_syn(&out).is_none());
    }
}
