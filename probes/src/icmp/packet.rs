//! ICMP / ICMPv6 echo packets as pure functions: the Internet checksum,
//! building echo requests, parsing whatever a socket hands back, and the
//! engine's echo payload (magic + socket id + key).
//!
//! Everything here works on byte slices and never panics: packets from the
//! network are untrusted, so every parser returns an error or a harmless
//! classification for truncated or garbage input.

use super::Family;

/// ICMPv4 type of an echo reply.
pub const ICMP4_ECHO_REPLY: u8 = 0;
/// ICMPv4 type of an echo request.
pub const ICMP4_ECHO_REQUEST: u8 = 8;
/// ICMPv6 type of an echo request.
pub const ICMP6_ECHO_REQUEST: u8 = 128;
/// ICMPv6 type of an echo reply.
pub const ICMP6_ECHO_REPLY: u8 = 129;

/// Length of the ICMP echo header (type, code, checksum, identifier, sequence).
pub const ECHO_HEADER_LEN: usize = 8;
/// Length of the engine magic at the start of every echo payload.
pub const MAGIC_LEN: usize = 8;
/// Length of the echo payload the engine sends: magic (8) + socket id (4) + key (4).
pub const PAYLOAD_LEN: usize = 16;

/// The Internet checksum (RFC 1071): one's complement of the one's complement
/// sum of 16-bit big-endian words; an odd trailing byte is padded with zero.
///
/// Computed over a packet that already carries a correct checksum, the result is 0.
pub fn checksum(data: &[u8]) -> u16 {
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
    // `sum` is at most 0xffff here, so the truncation is exact.
    !(sum as u16)
}

/// The token the engine puts in every echo payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token {
    /// Random per engine: tells our replies from other processes'.
    pub magic: [u8; MAGIC_LEN],
    /// Which of the engine's sockets sent the request (a raw socket sees the
    /// replies to every socket on the host).
    pub socket_id: u32,
    /// The pending-table key of this ping.
    pub key: u32,
}

impl Token {
    /// Encodes the token as the echo payload.
    pub fn encode(&self) -> [u8; PAYLOAD_LEN] {
        let mut p = [0u8; PAYLOAD_LEN];
        p[..MAGIC_LEN].copy_from_slice(&self.magic);
        p[8..12].copy_from_slice(&self.socket_id.to_be_bytes());
        p[12..16].copy_from_slice(&self.key.to_be_bytes());
        p
    }

    /// The echo payload of `data_bytes` bytes: the token, then zeros (at
    /// least the token).
    pub fn payload(&self, data_bytes: usize) -> Vec<u8> {
        let mut p = self.encode().to_vec();
        p.resize(data_bytes.max(PAYLOAD_LEN), 0);
        p
    }

    /// Finds the token carrying `magic` anywhere in `data` (a packet as the
    /// kernel loops it back with a transmit timestamp: link, network and
    /// ICMP headers before the payload, maybe padding after it).
    pub fn find(data: &[u8], magic: &[u8; MAGIC_LEN]) -> Option<Token> {
        let at = data.windows(MAGIC_LEN).position(|w| w == magic)?;
        Token::decode(data.get(at..)?)
    }

    /// Decodes a payload; `None` when it is too short to hold a token.
    pub fn decode(payload: &[u8]) -> Option<Token> {
        let magic: [u8; MAGIC_LEN] = payload.get(..MAGIC_LEN)?.try_into().ok()?;
        let socket_id = u32::from_be_bytes(payload.get(8..12)?.try_into().ok()?);
        let key = u32::from_be_bytes(payload.get(12..16)?.try_into().ok()?);
        Some(Token {
            magic,
            socket_id,
            key,
        })
    }
}

/// Builds an echo request: header + `payload`.
///
/// For IPv4 the checksum is computed here. For IPv6 it is left zero: the
/// kernel computes the ICMPv6 checksum (it needs the pseudo-header) on both
/// raw and datagram ICMPv6 sockets. On datagram ("ping") sockets the kernel
/// also replaces `ident` with the socket's port.
pub fn build_echo_request(family: Family, ident: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut pkt = Vec::with_capacity(ECHO_HEADER_LEN + payload.len());
    pkt.push(match family {
        Family::V4 => ICMP4_ECHO_REQUEST,
        Family::V6 => ICMP6_ECHO_REQUEST,
    });
    pkt.push(0); // code
    pkt.extend_from_slice(&[0, 0]); // checksum, filled below for IPv4
    pkt.extend_from_slice(&ident.to_be_bytes());
    pkt.extend_from_slice(&seq.to_be_bytes());
    pkt.extend_from_slice(payload);
    if family == Family::V4 {
        let c = checksum(&pkt);
        pkt[2..4].copy_from_slice(&c.to_be_bytes());
    }
    pkt
}

/// What a received ICMP message is, as far as the engine cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message<'a> {
    /// An echo reply: candidate answer to one of our pings.
    EchoReply {
        /// Echo identifier.
        ident: u16,
        /// Echo sequence number.
        seq: u16,
        /// Everything after the echo header.
        payload: &'a [u8],
    },
    /// An echo request (a raw socket sees requests to local addresses, ours included).
    EchoRequest,
    /// An ICMP error (destination unreachable, time exceeded, ...): never an answer.
    Error {
        /// ICMP type.
        icmp_type: u8,
        /// ICMP code.
        code: u8,
    },
    /// Any other ICMP message (neighbour discovery, router advertisements, ...).
    Other {
        /// ICMP type.
        icmp_type: u8,
    },
}

/// Why a received buffer could not be parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Shorter than the headers it must hold.
    #[error("truncated packet")]
    Truncated,
    /// The IPv4 header is not an IPv4 header carrying ICMP.
    #[error("bad IPv4 header")]
    BadIpHeader,
    /// The ICMPv4 checksum does not verify.
    #[error("bad ICMP checksum")]
    BadChecksum,
}

/// Parses what a socket returned.
///
/// `with_ip_header` is true for raw IPv4 sockets, whose reads start with the
/// IPv4 header; datagram IPv4 sockets and all IPv6 sockets return the ICMP
/// message alone. The ICMPv4 checksum is verified; the ICMPv6 one (which
/// covers a pseudo-header) has been verified by the kernel.
pub fn parse(family: Family, with_ip_header: bool, data: &[u8]) -> Result<Message<'_>, ParseError> {
    let icmp = if family == Family::V4 && with_ip_header {
        strip_ipv4_header(data)?
    } else {
        data
    };
    if icmp.len() < ECHO_HEADER_LEN {
        return Err(ParseError::Truncated);
    }
    if family == Family::V4 && checksum(icmp) != 0 {
        return Err(ParseError::BadChecksum);
    }
    let (icmp_type, code) = (icmp[0], icmp[1]);
    let echo_reply = || Message::EchoReply {
        ident: u16::from_be_bytes([icmp[4], icmp[5]]),
        seq: u16::from_be_bytes([icmp[6], icmp[7]]),
        payload: &icmp[ECHO_HEADER_LEN..],
    };
    Ok(match family {
        Family::V4 => match icmp_type {
            ICMP4_ECHO_REPLY => echo_reply(),
            ICMP4_ECHO_REQUEST => Message::EchoRequest,
            // Destination unreachable, source quench, redirect, time exceeded,
            // parameter problem.
            3 | 4 | 5 | 11 | 12 => Message::Error { icmp_type, code },
            _ => Message::Other { icmp_type },
        },
        Family::V6 => match icmp_type {
            ICMP6_ECHO_REPLY => echo_reply(),
            ICMP6_ECHO_REQUEST => Message::EchoRequest,
            // Types 0..=127 are ICMPv6 error messages (RFC 4443).
            0..=127 => Message::Error { icmp_type, code },
            _ => Message::Other { icmp_type },
        },
    })
}

/// Returns the ICMP part of an IPv4 packet (as read from a raw socket).
fn strip_ipv4_header(data: &[u8]) -> Result<&[u8], ParseError> {
    let first = *data.first().ok_or(ParseError::Truncated)?;
    if first >> 4 != 4 {
        return Err(ParseError::BadIpHeader);
    }
    let ihl = usize::from(first & 0x0f) * 4;
    if ihl < 20 {
        return Err(ParseError::BadIpHeader);
    }
    if data.len() < ihl {
        return Err(ParseError::Truncated);
    }
    if data[9] != 1 {
        // Not ICMP.
        return Err(ParseError::BadIpHeader);
    }
    // Trust the IP total length only to shorten the packet (never to read past
    // what was received).
    let total = usize::from(u16::from_be_bytes([data[2], data[3]]));
    let end = if total >= ihl && total < data.len() {
        total
    } else {
        data.len()
    };
    Ok(&data[ihl..end])
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Turns an echo request built by [`build_echo_request`] into the reply a
    /// host would send, as the given socket would return it.
    pub(crate) fn make_reply(family: Family, with_ip_header: bool, request: &[u8]) -> Vec<u8> {
        let mut icmp = request.to_vec();
        icmp[0] = match family {
            Family::V4 => ICMP4_ECHO_REPLY,
            Family::V6 => ICMP6_ECHO_REPLY,
        };
        if family == Family::V4 {
            icmp[2] = 0;
            icmp[3] = 0;
            let c = checksum(&icmp);
            icmp[2..4].copy_from_slice(&c.to_be_bytes());
        }
        if family == Family::V4 && with_ip_header {
            let total = u16::try_from(20 + icmp.len()).unwrap_or(u16::MAX);
            let mut ip = vec![
                0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 1, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1,
            ];
            ip[2..4].copy_from_slice(&total.to_be_bytes());
            let c = checksum(&ip);
            ip[10..12].copy_from_slice(&c.to_be_bytes());
            ip.extend_from_slice(&icmp);
            ip
        } else {
            icmp
        }
    }

    #[test]
    fn checksum_known_vectors() {
        // RFC 1071 section 3 example: sum 0xddf2, checksum its complement.
        assert_eq!(
            checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            !0xddf2
        );
        assert_eq!(checksum(&[]), 0xffff);
        assert_eq!(checksum(&[0xff, 0xff]), 0x0000);
        // Odd length: trailing byte padded with zero.
        assert_eq!(checksum(&[0x01]), !0x0100);
        // A classic IPv4 header (Wikipedia example) has checksum 0xb861.
        let hdr = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(checksum(&hdr), 0xb861);
        let mut with = hdr;
        with[10] = 0xb8;
        with[11] = 0x61;
        assert_eq!(checksum(&with), 0);
        // Echo request id 1 seq 1, no payload: 0x0800 + 0x0001 + 0x0001 = 0x0802.
        let p = build_echo_request(Family::V4, 1, 1, &[]);
        assert_eq!(p, vec![8, 0, 0xf7, 0xfd, 0, 1, 0, 1]);
    }

    fn token() -> Token {
        Token {
            magic: *b"pingmach",
            socket_id: 7,
            key: 0x0102_0304,
        }
    }

    #[test]
    fn token_roundtrip() {
        let t = token();
        assert_eq!(Token::decode(&t.encode()), Some(t));
        assert_eq!(Token::decode(&t.encode()[..15]), None);
        assert_eq!(Token::decode(&[]), None);
    }

    #[test]
    fn v4_request_has_valid_checksum() {
        let req = build_echo_request(Family::V4, 0xabcd, 0x1234, &token().encode());
        assert_eq!(req.len(), (ECHO_HEADER_LEN + PAYLOAD_LEN));
        assert_eq!(req[0], ICMP4_ECHO_REQUEST);
        assert_eq!(checksum(&req), 0);
        assert_eq!(parse(Family::V4, false, &req), Ok(Message::EchoRequest));
    }

    #[test]
    fn v4_raw_reply_with_ip_header() {
        let payload = token().encode();
        let req = build_echo_request(Family::V4, 0xabcd, 0x1234, &payload);
        let reply = make_reply(Family::V4, true, &req);
        assert_eq!(reply.len(), 20 + (ECHO_HEADER_LEN + PAYLOAD_LEN));
        match parse(Family::V4, true, &reply) {
            Ok(Message::EchoReply {
                ident,
                seq,
                payload: p,
            }) => {
                assert_eq!((ident, seq), (0xabcd, 0x1234));
                assert_eq!(Token::decode(p), Some(token()));
            }
            other => panic!("unexpected {other:?}"),
        }
        // Options in the IP header (IHL 6) are skipped.
        let mut opt = reply[..20].to_vec();
        opt[0] = 0x46;
        let total = u16::try_from(reply.len() + 4).unwrap_or(0);
        opt[2..4].copy_from_slice(&total.to_be_bytes());
        opt.extend_from_slice(&[1, 1, 1, 1]);
        opt.extend_from_slice(&reply[20..]);
        assert!(matches!(
            parse(Family::V4, true, &opt),
            Ok(Message::EchoReply { ident: 0xabcd, .. })
        ));
        // Trailing padding beyond the IP total length is ignored.
        let mut padded = reply.clone();
        padded.extend_from_slice(&[0, 0, 0]);
        assert!(matches!(
            parse(Family::V4, true, &padded),
            Ok(Message::EchoReply { .. })
        ));
    }

    #[test]
    fn v4_datagram_reply() {
        let req = build_echo_request(Family::V4, 0, 42, &token().encode());
        let reply = make_reply(Family::V4, false, &req);
        match parse(Family::V4, false, &reply) {
            Ok(Message::EchoReply { seq, payload, .. }) => {
                assert_eq!(seq, 42);
                assert_eq!(Token::decode(payload), Some(token()));
            }
            other => panic!("unexpected {other:?}"),
        }
        // A corrupted byte breaks the checksum.
        let mut bad = reply.clone();
        bad[10] ^= 0x40;
        assert_eq!(parse(Family::V4, false, &bad), Err(ParseError::BadChecksum));
    }

    #[test]
    fn v6_request_and_reply() {
        let req = build_echo_request(Family::V6, 0x1111, 0x2222, &token().encode());
        assert_eq!(req[0], ICMP6_ECHO_REQUEST);
        assert_eq!(&req[2..4], &[0, 0]); // kernel computes the checksum
        assert_eq!(parse(Family::V6, false, &req), Ok(Message::EchoRequest));
        let reply = make_reply(Family::V6, false, &req);
        match parse(Family::V6, false, &reply) {
            Ok(Message::EchoReply {
                ident,
                seq,
                payload,
            }) => {
                assert_eq!((ident, seq), (0x1111, 0x2222));
                assert_eq!(Token::decode(payload), Some(token()));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn errors_and_others_classified() {
        let mut unreach = vec![3, 1, 0, 0, 0, 0, 0, 0];
        let c = checksum(&unreach);
        unreach[2..4].copy_from_slice(&c.to_be_bytes());
        assert_eq!(
            parse(Family::V4, false, &unreach),
            Ok(Message::Error {
                icmp_type: 3,
                code: 1
            })
        );
        let v6_unreach = [1, 4, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            parse(Family::V6, false, &v6_unreach),
            Ok(Message::Error {
                icmp_type: 1,
                code: 4
            })
        );
        let ns = [135, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            parse(Family::V6, false, &ns),
            Ok(Message::Other { icmp_type: 135 })
        );
    }

    #[test]
    fn rejects_truncated_and_garbage() {
        assert_eq!(parse(Family::V4, true, &[]), Err(ParseError::Truncated));
        assert_eq!(parse(Family::V4, false, &[]), Err(ParseError::Truncated));
        assert_eq!(
            parse(Family::V6, false, &[129, 0, 0]),
            Err(ParseError::Truncated)
        );
        // IPv6 version nibble on a v4 raw socket.
        assert_eq!(
            parse(Family::V4, true, &[0x60; 40]),
            Err(ParseError::BadIpHeader)
        );
        // IHL below 5.
        assert_eq!(
            parse(Family::V4, true, &[0x44; 40]),
            Err(ParseError::BadIpHeader)
        );
        // IHL 15 (60 bytes) but only 30 received.
        let mut short = [0u8; 30];
        short[0] = 0x4f;
        short[9] = 1;
        assert_eq!(parse(Family::V4, true, &short), Err(ParseError::Truncated));
        // Header fine, ICMP part truncated.
        let req = build_echo_request(Family::V4, 1, 2, &token().encode());
        let reply = make_reply(Family::V4, true, &req);
        assert_eq!(
            parse(Family::V4, true, &reply[..24]),
            Err(ParseError::Truncated)
        );
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
        let mut buf = [0u8; 96];
        for round in 0..20_000u32 {
            let len = rng.random_range(0..buf.len());
            rng.fill(&mut buf[..len]);
            if round % 3 == 0 && len > 0 {
                // Make it look like IPv4-carrying-ICMP more often.
                buf[0] = 0x40 | (buf[0] & 0x0f);
                if len > 9 {
                    buf[9] = 1;
                }
            }
            let data = &buf[..len];
            for (family, hdr) in [(Family::V4, true), (Family::V4, false), (Family::V6, false)] {
                if let Ok(Message::EchoReply { payload, .. }) = parse(family, hdr, data) {
                    let _ = Token::decode(payload);
                }
            }
        }
    }
}
