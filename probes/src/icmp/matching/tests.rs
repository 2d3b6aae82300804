use super::*;
use crate::icmp::packet::tests::make_reply;
use crate::icmp::packet::{build_echo_request, Token};

const MAGIC: [u8; 8] = *b"TESTMAGC";
const MS: Duration = Duration::from_millis(1);

const RAW4: SocketInfo = SocketInfo {
    id: 1,
    family: Family::V4,
    kind: SocketKind::Raw,
};
const DGRAM6: SocketInfo = SocketInfo {
    id: 2,
    family: Family::V6,
    kind: SocketKind::Datagram,
};

/// A reply to `key` as `socket` would return it.
fn reply(socket: SocketInfo, magic: [u8; 8], key: u32) -> Vec<u8> {
    let (ident, seq) = SocketInfo::ident_seq(key);
    // Datagram sockets: the kernel put its own identifier in.
    let ident = if socket.kind == SocketKind::Datagram {
        0x4242
    } else {
        ident
    };
    let payload = Token {
        magic,
        socket_id: socket.id,
        key,
    }
    .encode();
    let req = build_echo_request(socket.family, ident, seq, &payload);
    make_reply(socket.family, socket.with_ip_header(), &req)
}

struct Fixture {
    m: Matcher,
    round: Arc<RoundShared>,
    t0: Instant,
    w0: SystemTime,
}

/// A round of 2 targets x 2 pings, all four pings pending under keys
/// 0x0001_0000 + slot, sent at t0 / w0.
fn fixture() -> Fixture {
    let m = Matcher::new(MAGIC);
    let round = Arc::new(RoundShared::new(7, 2, 2, 100 * MS));
    let t0 = Instant::now();
    let w0 = SystemTime::now();
    for slot in 0..4 {
        round.add_outstanding();
        let p = Pending::new(Arc::clone(&round), slot, w0, t0, false);
        assert!(m.insert(0x0001_0000 + slot as u32, p).is_ok());
    }
    assert!(!round.mark_all_sent());
    Fixture { m, round, t0, w0 }
}

#[test]
fn first_reply_wins_duplicate_ignored() {
    let f = fixture();
    let pkt = reply(RAW4, MAGIC, 0x0001_0002);
    let out =
        f.m.on_packet(RAW4, &pkt, Some(f.w0 + 5 * MS), f.t0 + 6 * MS);
    assert_eq!(
        out,
        Outcome::Answered {
            rtt: 5 * MS,
            round_complete: None
        }
    );
    // Same reply again: duplicate.
    let out =
        f.m.on_packet(RAW4, &pkt, Some(f.w0 + 7 * MS), f.t0 + 8 * MS);
    assert_eq!(out, Outcome::Unmatched);
    let c = &f.m.counters;
    assert_eq!(c.received.load(Ordering::Relaxed), 1);
    assert_eq!(c.unmatched.load(Ordering::Relaxed), 1);
    assert_eq!(c.pending.load(Ordering::Relaxed), 3);
    let r = f.round.results().to_vecs();
    assert_eq!(r, vec![vec![None, None], vec![Some(5 * MS), None]]);
}

#[test]
fn slot_encoding() {
    use slot::{decode, Value};
    // Nanoseconds below 2^30 ns, exactly.
    for ns in [0u64, 1, 123_456, 999_999_999, (1 << 30) - 1] {
        let d = Duration::from_nanos(ns);
        assert_eq!(decode(slot::rtt(d)), Value::Rtt(d), "{ns} ns");
    }
    // Longer: whole microseconds, then capped.
    let d = Duration::from_nanos(1 << 30);
    assert_eq!(
        decode(slot::rtt(d)),
        Value::Rtt(Duration::from_micros(1_073_741))
    );
    let d = Duration::from_millis(2_500) + Duration::from_nanos(789);
    assert_eq!(
        decode(slot::rtt(d)),
        Value::Rtt(Duration::from_micros(2_500_000))
    );
    let cap = Duration::from_micros((1 << 30) - 1);
    assert_eq!(
        decode(slot::rtt(Duration::from_secs(86_400))),
        Value::Rtt(cap)
    );
    // Keys and the empty slot are told apart from every RTT.
    for key in [0, 1, 0x0001_0000, KEY_LIMIT - 1] {
        assert_eq!(decode(slot::pending(key)), Value::Pending(key));
    }
    assert_eq!(decode(slot::EMPTY), Value::Empty);
    assert_ne!(slot::pending(KEY_LIMIT - 1), slot::EMPTY);
}

#[test]
fn slots_hold_keys_until_answered_or_expired() {
    let f = fixture();
    let keys = |f: &Fixture| f.round.pending_keys().collect::<Vec<_>>();
    assert_eq!(
        keys(&f),
        vec![0x0001_0000, 0x0001_0001, 0x0001_0002, 0x0001_0003]
    );
    // Pending pings read as lost.
    assert_eq!(
        f.round.results().to_vecs(),
        vec![vec![None, None], vec![None, None]]
    );
    let pkt = reply(RAW4, MAGIC, 0x0001_0001);
    f.m.on_packet(RAW4, &pkt, Some(f.w0 + 2 * MS), f.t0 + 3 * MS);
    // Late: the entry leaves, the slot reads as lost.
    let pkt = reply(RAW4, MAGIC, 0x0001_0003);
    f.m.on_packet(RAW4, &pkt, Some(f.w0 + 200 * MS), f.t0 + 200 * MS);
    assert_eq!(keys(&f), vec![0x0001_0000, 0x0001_0002]);
    for key in keys(&f) {
        assert!(f.m.expire(key));
    }
    assert!(keys(&f).is_empty());
    assert_eq!(f.m.counters.pending.load(Ordering::Relaxed), 0);
    assert!(f.round.is_complete());
    assert_eq!(
        f.round.results().to_vecs(),
        vec![vec![None, Some(2 * MS)], vec![None, None]]
    );
    // A key outside 31 bits is refused.
    let p = Pending::new(Arc::clone(&f.round), 0, f.w0, f.t0, false);
    assert!(f.m.insert(KEY_LIMIT, p).is_err());
}

#[test]
fn late_reply_is_lost() {
    let f = fixture();
    let pkt = reply(RAW4, MAGIC, 0x0001_0000);
    let out =
        f.m.on_packet(RAW4, &pkt, Some(f.w0 + 150 * MS), f.t0 + 150 * MS);
    assert_eq!(
        out,
        Outcome::Late {
            round_complete: None
        }
    );
    assert_eq!(f.m.counters.late.load(Ordering::Relaxed), 1);
    assert_eq!(f.m.counters.received.load(Ordering::Relaxed), 0);
    assert_eq!(f.round.results().to_vecs()[0][0], None);
    // Entry gone: a second copy is unmatched.
    let out = f.m.on_packet(RAW4, &pkt, None, f.t0 + 151 * MS);
    assert_eq!(out, Outcome::Unmatched);
}

#[test]
fn reply_after_round_removed_is_unmatched() {
    let f = fixture();
    for key in 0x0001_0000..0x0001_0004 {
        assert!(f.m.remove(key).is_some());
    }
    assert_eq!(f.m.counters.pending.load(Ordering::Relaxed), 0);
    let pkt = reply(RAW4, MAGIC, 0x0001_0001);
    assert_eq!(
        f.m.on_packet(RAW4, &pkt, None, f.t0 + MS),
        Outcome::Unmatched
    );
}

#[test]
fn foreign_magic_and_other_socket_ignored() {
    let f = fixture();
    let pkt = reply(RAW4, *b"someone!", 0x0001_0000);
    assert_eq!(f.m.on_packet(RAW4, &pkt, None, f.t0 + MS), Outcome::Foreign);
    // Our magic, but sent through socket 9.
    let other = SocketInfo { id: 9, ..RAW4 };
    let pkt = reply(other, MAGIC, 0x0001_0000);
    assert_eq!(
        f.m.on_packet(RAW4, &pkt, None, f.t0 + MS),
        Outcome::OtherSocket
    );
    // Right magic and key but wrong identifier on a raw socket.
    let mut pkt = reply(RAW4, MAGIC, 0x0001_0000);
    pkt[24] ^= 0xff; // ident high byte (20-byte IP header + 4)
    pkt[22] = 0;
    pkt[23] = 0;
    let c = packet::checksum(&pkt[20..]);
    pkt[22..24].copy_from_slice(&c.to_be_bytes());
    assert_eq!(
        f.m.on_packet(RAW4, &pkt, None, f.t0 + MS),
        Outcome::Unmatched
    );
    // Garbage.
    assert_eq!(
        f.m.on_packet(RAW4, &[1, 2, 3], None, f.t0 + MS),
        Outcome::Foreign
    );
    assert_eq!(f.m.counters.pending.load(Ordering::Relaxed), 4);
    assert_eq!(f.m.counters.foreign.load(Ordering::Relaxed), 2);
    assert!(f
        .round
        .results()
        .to_vecs()
        .iter()
        .flatten()
        .all(Option::is_none));
}

#[test]
fn icmp_error_never_answers() {
    let f = fixture();
    // Destination unreachable quoting our request.
    let mut pkt = reply(RAW4, MAGIC, 0x0001_0000);
    pkt[20] = 3;
    pkt[21] = 1;
    pkt[22] = 0;
    pkt[23] = 0;
    let c = packet::checksum(&pkt[20..]);
    pkt[22..24].copy_from_slice(&c.to_be_bytes());
    assert_eq!(
        f.m.on_packet(RAW4, &pkt, None, f.t0 + MS),
        Outcome::IcmpError
    );
    assert_eq!(f.m.counters.pending.load(Ordering::Relaxed), 4);
}

#[test]
fn datagram_ignores_identifier_and_completes_round() {
    let f = fixture();
    let mut last = None;
    for (i, key) in (0x0001_0000..0x0001_0004u32).enumerate() {
        let pkt = reply(DGRAM6, MAGIC, key);
        let ms = u32::try_from(i).unwrap_or(0) + 1;
        last = Some(f.m.on_packet(DGRAM6, &pkt, Some(f.w0 + ms * MS), f.t0 + ms * MS));
    }
    assert_eq!(
        last,
        Some(Outcome::Answered {
            rtt: 4 * MS,
            round_complete: Some(7)
        })
    );
    assert!(f.round.is_complete());
    assert_eq!(
        f.round.results().to_vecs(),
        vec![
            vec![Some(MS), Some(2 * MS)],
            vec![Some(3 * MS), Some(4 * MS)]
        ]
    );
}

#[test]
fn rtt_falls_back_to_monotonic() {
    let f = fixture();
    // No kernel timestamp.
    let pkt = reply(DGRAM6, MAGIC, 0x0001_0000);
    assert!(matches!(
        f.m.on_packet(DGRAM6, &pkt, None, f.t0 + 3 * MS),
        Outcome::Answered { rtt, .. } if rtt == 3 * MS
    ));
    // Wall clock stepped back: timestamp before the send.
    let pkt = reply(DGRAM6, MAGIC, 0x0001_0001);
    let before = f.w0.checked_sub(Duration::from_secs(60));
    assert!(matches!(
        f.m.on_packet(DGRAM6, &pkt, before, f.t0 + 4 * MS),
        Outcome::Answered { rtt, .. } if rtt == 4 * MS
    ));
    // Wall clock stepped forward by a minute.
    let pkt = reply(DGRAM6, MAGIC, 0x0001_0002);
    let after = Some(f.w0 + Duration::from_secs(60));
    assert!(matches!(
        f.m.on_packet(DGRAM6, &pkt, after, f.t0 + 5 * MS),
        Outcome::Answered { rtt, .. } if rtt == 5 * MS
    ));
}

#[test]
fn insert_rejects_taken_key() {
    let f = fixture();
    let p = Pending::new(Arc::clone(&f.round), 0, f.w0, f.t0, false);
    assert!(f.m.insert(0x0001_0000, p).is_err());
    assert!(f.m.contains(0x0001_0000));
    assert!(!f.m.contains(0x0002_0000));
}

/// A round of one target x 2 pings on a socket that stamps its sends.
fn stamped_fixture() -> Fixture {
    let m = Matcher::new(MAGIC);
    let round = Arc::new(RoundShared::new(9, 1, 2, 100 * MS));
    let t0 = Instant::now();
    let w0 = SystemTime::now();
    for slot in 0..2 {
        round.add_outstanding();
        let p = Pending::new(Arc::clone(&round), slot, w0, t0, true);
        assert!(m.insert(0x0001_0000 + slot as u32, p).is_ok());
    }
    assert!(!round.mark_all_sent());
    Fixture { m, round, t0, w0 }
}

/// The packet as the kernel loops it back with a transmit timestamp:
/// some link and network header, then the request.
fn looped(socket: SocketInfo, key: u32) -> Vec<u8> {
    let (ident, seq) = SocketInfo::ident_seq(key);
    let payload = Token {
        magic: MAGIC,
        socket_id: socket.id,
        key,
    }
    .encode();
    let mut v = vec![0u8; 34];
    v.extend(build_echo_request(socket.family, ident, seq, &payload));
    v
}

#[test]
fn rtt_is_kernel_receive_minus_kernel_transmit() {
    let f = stamped_fixture();
    // The user-space send time is 3 ms before the kernel's stamp (the
    // sender was preempted before the send): it must not count.
    let tx = f.w0 + 3 * MS;
    assert_eq!(
        f.m.on_tx(RAW4, &looped(RAW4, 0x0001_0000), Some(tx)),
        Outcome::Stamped
    );
    let pkt = reply(RAW4, MAGIC, 0x0001_0000);
    assert_eq!(
        f.m.on_packet(RAW4, &pkt, Some(tx + 5 * MS), f.t0 + 9 * MS),
        Outcome::Answered {
            rtt: 5 * MS,
            round_complete: None
        }
    );
    // The reply read before the stamp waits for it.
    let pkt = reply(RAW4, MAGIC, 0x0001_0001);
    assert_eq!(
        f.m.on_packet(RAW4, &pkt, Some(f.w0 + 10 * MS), f.t0 + 11 * MS),
        Outcome::AwaitingStamp
    );
    // A duplicate meanwhile is only counted.
    assert_eq!(
        f.m.on_packet(RAW4, &pkt, Some(f.w0 + 11 * MS), f.t0 + 12 * MS),
        Outcome::Unmatched
    );
    assert_eq!(
        f.m.on_tx(RAW4, &looped(RAW4, 0x0001_0001), Some(f.w0 + 4 * MS)),
        Outcome::Answered {
            rtt: 6 * MS,
            round_complete: Some(9)
        }
    );
    assert_eq!(
        f.round.results().to_vecs(),
        vec![vec![Some(5 * MS), Some(6 * MS)]]
    );
    let c = &f.m.counters;
    assert_eq!(c.tx_stamped.load(Ordering::Relaxed), 2);
    assert_eq!(c.tx_fallbacks.load(Ordering::Relaxed), 0);
    assert_eq!(c.pending.load(Ordering::Relaxed), 0);
    // A stamp after its round ended, of another socket, or not ours.
    assert_eq!(
        f.m.on_tx(RAW4, &looped(RAW4, 0x0001_0001), Some(f.w0)),
        Outcome::Unmatched
    );
    let other = SocketInfo { id: 5, ..RAW4 };
    assert_eq!(
        f.m.on_tx(RAW4, &looped(other, 0x0001_0001), Some(f.w0)),
        Outcome::OtherSocket
    );
    assert_eq!(f.m.on_tx(RAW4, &[0u8; 40], Some(f.w0)), Outcome::Ignored);
}

#[test]
fn no_stamp_by_the_round_end_falls_back_to_the_user_space_send_time() {
    let f = stamped_fixture();
    let pkt = reply(RAW4, MAGIC, 0x0001_0000);
    assert_eq!(
        f.m.on_packet(RAW4, &pkt, Some(f.w0 + 7 * MS), f.t0 + 8 * MS),
        Outcome::AwaitingStamp
    );
    // The round ends: answered without a stamp, and a lost one.
    assert!(f.m.expire(0x0001_0000));
    assert!(f.m.expire(0x0001_0001));
    assert!(!f.m.expire(0x0001_0001));
    assert_eq!(f.round.results().to_vecs(), vec![vec![Some(7 * MS), None]]);
    assert!(f.round.is_complete());
    let c = &f.m.counters;
    assert_eq!(c.tx_fallbacks.load(Ordering::Relaxed), 1);
    assert_eq!(c.received.load(Ordering::Relaxed), 1);
    assert_eq!(c.pending.load(Ordering::Relaxed), 0);
}
