//! The real ICMP engine against loopback addresses only (127.0.0.0/8, ::1).
//!
//! Tests that bound an RTT or a round's duration (loopback answers within
//! 50 ms) are named `timing_*`: `scripts/test.sh` runs them after the rest,
//! one at a time.
//!
//! These need root (CAP_NET_RAW) or `net.ipv4.ping_group_range` covering this
//! process's group; without either they print why they skip and pass, or
//! fail under CI (`testkit::require`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use probes::{
    Binding, EchoOptions, EngineStats, Family, IcmpConfig, IcmpEngine, RoundError, RoundRequest,
    RoundResult, SocketCause, SocketError, SocketKind,
};

const MS: Duration = Duration::from_millis(1);

fn request(binding: Binding, targets: Vec<IpAddr>, pings: u32) -> RoundRequest {
    RoundRequest {
        binding,
        targets,
        pings,
        interval: 200 * MS,
        spacing: MS,
        timeout: Duration::from_secs(1),
        start: Instant::now(),
        options: EchoOptions::default(),
    }
}

/// True (after saying so) when the round failed for lack of permission.
fn skip_for_permission(what: &str, r: &Result<RoundResult, RoundError>) -> bool {
    match r {
        Err(RoundError::Socket(e)) if e.cause == SocketCause::NotPermitted => {
            let msg = &e.message;
            testkit::require::skip(
                what,
                &format!("needs root (CAP_NET_RAW) or net.ipv4.ping_group_range covering a group of this user ({msg})"),
            );
            true
        }
        _ => false,
    }
}

fn assert_all_answered(r: &RoundResult, targets: usize, pings: usize) -> Vec<Duration> {
    assert_eq!(r.rtts.len(), targets, "one row per target");
    let mut all = Vec::new();
    for (t, row) in r.rtts.to_vecs().iter().enumerate() {
        assert_eq!(row.len(), pings, "target {t}: one column per ping");
        for (p, rtt) in row.iter().enumerate() {
            let rtt = rtt.unwrap_or_else(|| panic!("target {t} ping {p} lost"));
            assert!(
                rtt > Duration::ZERO && rtt < 50 * MS,
                "target {t} ping {p}: {rtt:?}"
            );
            all.push(rtt);
        }
    }
    all
}

fn summary(rtts: &[Duration]) -> String {
    let min = rtts.iter().min().copied().unwrap_or_default();
    let max = rtts.iter().max().copied().unwrap_or_default();
    let n = u32::try_from(rtts.len()).unwrap_or(u32::MAX).max(1);
    let avg = rtts.iter().sum::<Duration>() / n;
    format!("{} RTTs: min {min:?} avg {avg:?} max {max:?}", rtts.len())
}

async fn wait_idle(engine: &IcmpEngine) -> EngineStats {
    for _ in 0..300 {
        let s = engine.stats();
        if s.pending == 0 && s.rounds_active == 0 {
            return s;
        }
        tokio::time::sleep(10 * MS).await;
    }
    engine.stats()
}

#[tokio::test]
async fn timing_ipv4_two_targets_three_pings() {
    let engine = IcmpEngine::new(IcmpConfig::default()).expect("engine");
    let targets = vec![
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)),
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)),
    ];
    let t0 = Instant::now();
    // A long reply timeout: a round that waited for it would take 30.4 s.
    let mut req = request(Binding::any(Family::V4), targets, 3);
    req.timeout = Duration::from_secs(30);
    let r = engine.submit(req).await;
    if skip_for_permission("IPv4 loopback test", &r) {
        return;
    }
    let r = r.expect("round");
    let rtts = assert_all_answered(&r, 2, 3);
    // 2 pings 200 ms apart after the first: at least 400 ms; and the round
    // completes as soon as every answer is in, long before its timeout.
    let took = t0.elapsed();
    assert!(
        took >= 390 * MS && took < Duration::from_secs(15),
        "round took {took:?}"
    );
    println!(
        "IPv4 via {:?} socket: {}; per target {:?}",
        engine.socket_kind_for(Family::V4),
        summary(&rtts),
        r.rtts
    );
    let s = wait_idle(&engine).await;
    assert_eq!(s.sent, 6);
    assert_eq!(s.received, 6);
    assert_eq!(s.send_errors, 0);
    println!("stats: {s:?}");
}

#[tokio::test]
async fn timing_ipv6_loopback() {
    if !testkit::require::ipv6_loopback("IPv6 loopback test") {
        return;
    }
    let engine = IcmpEngine::new(IcmpConfig::default()).expect("engine");
    let r = engine
        .submit(request(
            Binding::any(Family::V6),
            vec![IpAddr::V6(Ipv6Addr::LOCALHOST)],
            3,
        ))
        .await;
    if skip_for_permission("IPv6 loopback test", &r) {
        return;
    }
    let r = r.expect("round");
    let rtts = assert_all_answered(&r, 1, 3);
    println!(
        "IPv6 via {:?} socket: {}",
        engine.socket_kind_for(Family::V6),
        summary(&rtts)
    );
}

#[tokio::test]
async fn timing_two_hundred_targets() {
    let engine = IcmpEngine::new(IcmpConfig::default()).expect("engine");
    let targets: Vec<IpAddr> = (0..200u32)
        .map(|i| {
            let [_, b, c, d] = (i * 7919 + 1).to_be_bytes();
            IpAddr::V4(Ipv4Addr::new(127, b, c, d.max(1)))
        })
        .collect();
    let mut distinct = targets.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 200);
    let t0 = Instant::now();
    let r = engine
        .submit(request(Binding::any(Family::V4), targets, 2))
        .await;
    if skip_for_permission("200-target test", &r) {
        return;
    }
    let r = r.expect("round");
    let rtts = assert_all_answered(&r, 200, 2);
    println!(
        "200 targets x 2 pings in {:?}: {}",
        t0.elapsed(),
        summary(&rtts)
    );
}

#[tokio::test]
async fn dropped_handle_abandons_round() {
    let engine = IcmpEngine::new(IcmpConfig::default()).expect("engine");
    // Open the socket first (and find out whether we may).
    let r = engine
        .submit(request(
            Binding::any(Family::V4),
            vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
            1,
        ))
        .await;
    if skip_for_permission("abandonment test", &r) {
        return;
    }
    r.expect("round");
    let before = engine.stats().sent;

    let mut req = request(
        Binding::any(Family::V4),
        (1..=3)
            .map(|d| IpAddr::V4(Ipv4Addr::new(127, 0, 1, d)))
            .collect(),
        20,
    );
    req.interval = 100 * MS;
    req.timeout = Duration::from_secs(30);
    let handle = engine.submit(req);
    tokio::time::sleep(250 * MS).await;
    assert_eq!(engine.stats().rounds_active, 1);
    drop(handle);
    let s = wait_idle(&engine).await;
    assert_eq!((s.pending, s.rounds_active), (0, 0));
    let sent = s.sent - before;
    assert!(sent > 0 && sent < 60, "sent {sent} of 60");
    tokio::time::sleep(300 * MS).await;
    assert_eq!(engine.stats().sent - before, sent, "kept sending");
    println!("abandoned round after {sent} of 60 sends");
}

#[tokio::test]
async fn timing_source_bound_binding() {
    let engine = IcmpEngine::new(IcmpConfig::default()).expect("engine");
    let binding = Binding {
        family: Family::V4,
        source: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        interface: None,
        dont_fragment: None,
    };
    let targets = vec![
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)),
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3)),
    ];
    let r = engine
        .submit(request(binding.clone(), targets.clone(), 3))
        .await;
    if skip_for_permission("source binding test", &r) {
        return;
    }
    assert_all_answered(&r.expect("round"), 2, 3);
    // Two rounds at once on the bound socket and an unbound one.
    let a = engine.submit(request(binding, targets.clone(), 2));
    let b = engine.submit(request(Binding::any(Family::V4), targets, 2));
    assert_all_answered(&a.await.expect("round a"), 2, 2);
    assert_all_answered(&b.await.expect("round b"), 2, 2);
}

#[tokio::test]
async fn timing_interface_binding_lo() {
    let engine = IcmpEngine::new(IcmpConfig::default()).expect("engine");
    let binding = Binding {
        family: Family::V4,
        source: None,
        interface: Some("lo".into()),
        dont_fragment: None,
    };
    let r = engine
        .submit(request(binding, vec![IpAddr::V4(Ipv4Addr::LOCALHOST)], 2))
        .await;
    if skip_for_permission("interface binding test", &r) {
        return;
    }
    match r {
        Ok(r) => {
            assert_all_answered(&r, 1, 2);
        }
        // SO_BINDTODEVICE itself may need CAP_NET_RAW on old kernels.
        Err(RoundError::Socket(e)) if e.cause == SocketCause::Interface => {
            testkit::require::skip("interface binding test", &e.message);
        }
        Err(e) => panic!("{e}"),
    }
}

/// Every family with each forced socket kind. A datagram ("ping") socket
/// needs `net.ipv4.ping_group_range` to cover a group of ours; when it does
/// not here and we are root, that kind is checked inside a namespace of the
/// test's own whose range is opened (the setting is per namespace; the
/// machine's stays as it is).
#[tokio::test]
async fn timing_forced_socket_kinds() {
    for kind in [SocketKind::Raw, SocketKind::Datagram] {
        let private = kind == SocketKind::Datagram
            && testkit::require::is_root()
            && !testkit::require::may_ping_unprivileged();
        if private {
            let ns = testkit::impair::LoopbackNamespace::create().expect("a loopback namespace");
            ns.sysctl("net.ipv4.ping_group_range=0 2147483647")
                .expect("open ping_group_range in the namespace");
            ns.run(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime")
                    .block_on(check_socket_kind(kind))
            })
            .expect("run in the loopback namespace");
        } else {
            check_socket_kind(kind).await;
        }
    }
}

async fn check_socket_kind(kind: SocketKind) {
    let engine = IcmpEngine::new(IcmpConfig {
        socket_kind: kind,
        ..IcmpConfig::default()
    })
    .expect("engine");
    let mut families = vec![(Family::V4, IpAddr::V4(Ipv4Addr::LOCALHOST))];
    if testkit::require::ipv6_loopback("forced socket kinds, IPv6") {
        families.push((Family::V6, IpAddr::V6(Ipv6Addr::LOCALHOST)));
    }
    for (family, target) in families {
        let r = engine
            .submit(request(Binding::any(family), vec![target], 2))
            .await;
        if skip_for_permission(&format!("{kind:?} {family:?} test"), &r) {
            continue;
        }
        let rtts = assert_all_answered(&r.expect("round"), 1, 2);
        assert_eq!(engine.socket_kind_for(family), Some(kind));
        println!("{kind:?} {family:?}: {}", summary(&rtts));
    }
}

/// CPU time (user + system) of this process so far, from /proc/self/stat.
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields overall, in clock ticks (100 Hz on Linux).
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

/// Load check, run by hand: `cargo test -p probes --test icmp_loopback -- --ignored --nocapture`.
/// 50,000 loopback targets x 2 pings, 20 µs spacing (100,000 sends in ~2 s).
#[tokio::test]
#[ignore = "load check; run by hand"]
async fn load_50k_loopback_targets() {
    let engine = IcmpEngine::new(IcmpConfig::default()).expect("engine");
    let targets: Vec<IpAddr> = (0..50_000u32)
        .map(|i| {
            let [_, b, c, d] = (i + 0x0002_0001).to_be_bytes();
            IpAddr::V4(Ipv4Addr::new(127, b, c, d))
        })
        .collect();
    let mut req = request(Binding::any(Family::V4), targets, 2);
    req.spacing = Duration::from_micros(20);
    req.interval = Duration::from_secs(1);
    let cpu0 = cpu_time();
    let t0 = Instant::now();
    let r = engine.submit(req).await;
    if skip_for_permission("load check", &r) {
        return;
    }
    let took = t0.elapsed();
    let cpu = cpu_time().zip(cpu0).map(|(a, b)| a.saturating_sub(b));
    let r = r.expect("round");
    let rtts: Vec<Duration> = r.rtts.to_vecs().into_iter().flatten().flatten().collect();
    let lost = 100_000 - rtts.len();
    println!(
        "50k targets x 2: {took:?} wall, {cpu:?} CPU, {lost} lost, {}; stats {:?}",
        summary(&rtts),
        engine.stats()
    );
    assert!(lost < 1000, "{lost} lost");
}

/// The kernel floor (`pingmachine-bench floor`) sends the rate asked and
/// reads back one transmit stamp and one reply per ping.
#[test]
fn floor_sends_the_rate_and_reads_every_stamp_and_reply() {
    use probes::icmp::floor;
    let targets: Vec<IpAddr> = (1..=3)
        .map(|i| Ipv4Addr::new(127, 0, 0, i).into())
        .collect();
    let config = IcmpConfig {
        send_quantum: MS,
        ..IcmpConfig::default()
    };
    let r = match floor::run(&targets, 2000, Duration::from_secs(1), 300 * MS, &config) {
        Err(e)
            if e.get_ref()
                .and_then(|i| i.downcast_ref::<SocketError>())
                .is_some_and(|s| s.cause == SocketCause::NotPermitted) =>
        {
            testkit::require::skip("the floor", &e.to_string());
            return;
        }
        r => r.expect("floor run"),
    };
    assert_eq!(r.sent, 2000, "every ping due in the second: {r:?}");
    assert_eq!(r.send_errors, 0, "{r:?}");
    assert_eq!(r.replies, r.sent, "loopback answers every ping: {r:?}");
    // Every kernel this runs on accepts SO_TIMESTAMPING on an ICMP socket;
    // one that refuses it leaves the floor without transmit stamps, and
    // that is a skip of this check outside CI, never a silent pass.
    if r.tx_stamps_on {
        assert!(r.tx_stamps >= r.sent, "one stamp per send: {r:?}");
    } else {
        testkit::require::skip(
            "floor transmit stamps",
            "the kernel refused SO_TIMESTAMPING on the ICMP socket",
        );
    }
    assert!(r.sender_cpu_s > 0.0 && r.receiver_cpu_s > 0.0, "{r:?}");

    // Targets of both families, or none, are refused before anything is sent.
    let mixed = vec![targets[0], Ipv6Addr::LOCALHOST.into()];
    assert!(floor::run(&mixed, 10, MS, MS, &config).is_err());
    assert!(floor::run(&[], 10, MS, MS, &config).is_err());
}

/// Rounds with their own size, TOS and TTL (set per packet on the shared
/// socket) and don't-fragment settings (a socket each) are answered on
/// loopback, beside a round with the defaults; each reply's TTL (hop
/// limit) is the one loopback's echo replies carry.
#[tokio::test]
async fn timing_echo_options_and_reply_ttl() {
    let engine = IcmpEngine::new(IcmpConfig::default()).expect("engine");
    let kernel_ttl =
        |path: &str| -> Option<u8> { std::fs::read_to_string(path).ok()?.trim().parse().ok() };
    for (family, target, ttl_file) in [
        (
            Family::V4,
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            "/proc/sys/net/ipv4/ip_default_ttl",
        ),
        (
            Family::V6,
            IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
            "/proc/sys/net/ipv6/conf/lo/hop_limit",
        ),
    ] {
        let mut custom = request(Binding::any(family), vec![target], 3);
        custom.options = EchoOptions {
            data_bytes: 1400,
            tos: 0x28,
            ttl: Some(9),
        };
        let mut df = request(
            Binding {
                dont_fragment: Some(true),
                ..Binding::any(family)
            },
            vec![target],
            2,
        );
        df.options.data_bytes = 65_507 - 40;
        let plain = request(Binding::any(family), vec![target], 3);
        let (a, b, c) = tokio::join!(
            engine.submit(custom),
            engine.submit(df),
            engine.submit(plain)
        );
        if skip_for_permission("echo options test", &a) {
            return;
        }
        let want = kernel_ttl(ttl_file);
        assert!(want.is_some(), "{ttl_file}");
        for (name, r, pings) in [("custom", a, 3), ("don't fragment", b, 2), ("plain", c, 3)] {
            let r = r.unwrap_or_else(|e| panic!("{family:?} {name}: {e}"));
            assert_all_answered(&r, 1, pings);
            assert_eq!(r.reply_ttl, vec![want], "{family:?} {name}");
        }
    }
}

/// Sends released together (a send quantum, no spacing: every target's
/// ping of a wave in one `sendmmsg`) carry their round's TOS and TTL: a
/// raw socket of the test's own sees the requests come in on loopback
/// with both in their IP header. (Needs root for that socket.)
#[tokio::test]
async fn timing_batched_sends_carry_their_options() {
    use socket2::{Domain, Protocol, Socket, Type};
    if !testkit::require::root(
        "timing_batched_sends_carry_their_options",
        "a raw socket of its own to see the requests",
    ) {
        return;
    }
    let sniffer = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4)).expect("raw socket");
    sniffer
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    // Room for what other tests send meanwhile (it sees all ICMP).
    let _ = sniffer.set_recv_buffer_size(16 << 20);
    let engine = IcmpEngine::new(IcmpConfig {
        send_quantum: 20 * MS,
        ..IcmpConfig::default()
    })
    .expect("engine");
    let targets: Vec<IpAddr> = (1..=6)
        .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 9, i)))
        .collect();
    let mut req = request(Binding::any(Family::V4), targets.clone(), 2);
    req.spacing = Duration::ZERO;
    req.options = EchoOptions {
        data_bytes: 321,
        tos: 0x28,
        ttl: Some(9),
    };
    let r = engine.submit(req).await.expect("round");
    assert_all_answered(&r, targets.len(), 2);
    // Every request of that size the sniffer saw: 20 + 8 + 321 bytes.
    let mut seen = 0;
    let mut pkt = [0u8; 2048];
    for _ in 0..1000 {
        let Ok(n) = std::io::Read::read(&mut &sniffer, &mut pkt) else {
            break;
        };
        if n == 349 && pkt[20] == 8 {
            assert_eq!((pkt[1], pkt[8]), (0x28, 9), "TOS and TTL of a request");
            seen += 1;
        }
    }
    assert_eq!(seen, targets.len() * 2, "requests seen on loopback");
}
