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

#[cfg(test)]
mod tests {
    use super::*;

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
