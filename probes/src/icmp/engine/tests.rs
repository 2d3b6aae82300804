//! Engine tests over an in-memory fake network: scheduling, matching and
//! round life cycle without sockets.

use std::collections::{HashSet, VecDeque};
use std::net::Ipv4Addr;
use std::sync::atomic::AtomicUsize;
use std::sync::{Condvar, Mutex};

use super::receive::DRAIN_MIN;
use super::*;
use crate::icmp::packet::tests::make_reply;
use crate::icmp::socket::{PacketSettings, Received};

const MS: Duration = Duration::from_millis(1);
const HOUR: Duration = Duration::from_secs(3600);

/// How the fake network treats packets to each target.
#[derive(Debug, Default)]
struct Behaviour {
    /// Never answered.
    drop: HashSet<IpAddr>,
    /// `send_to` fails.
    fail: HashSet<IpAddr>,
    /// Every reply delivered twice.
    duplicate: bool,
    /// Extra delay per target: last octet (v4) times this.
    delay_per_octet: Duration,
    /// Fixed delay.
    delay: Duration,
    /// Receive timestamps from the "kernel".
    timestamps: bool,
    /// Transmit timestamps from the "kernel", on the error queue: the wall
    /// time of the send plus this (as if the send left the device later
    /// than the user-space clock read).
    tx_stamps: Option<Duration>,
    /// The socket's cumulative receive-buffer drop count, as `SO_RXQ_OVFL`
    /// reports it with each packet read (0: not reported).
    drops: std::sync::atomic::AtomicU32,
}

#[derive(Debug)]
struct Fake {
    family: Family,
    kind: SocketKind,
    behaviour: Behaviour,
    /// Replies by delivery time, with the wall-clock time of delivery
    /// (what a kernel receive timestamp would say).
    queue: Mutex<VecDeque<(Instant, SystemTime, Vec<u8>)>>,
    cv: Condvar,
    sends: Mutex<Vec<(Instant, IpAddr)>>,
    /// Error queue: transmit timestamps with the looped packet.
    errq: Mutex<VecDeque<(SystemTime, Vec<u8>)>>,
    /// Sends per `send_batch` call.
    batches: Mutex<Vec<usize>>,
}

impl Fake {
    fn new(family: Family, kind: SocketKind, behaviour: Behaviour) -> Arc<Fake> {
        Arc::new(Fake {
            family,
            kind,
            behaviour,
            queue: Mutex::new(VecDeque::new()),
            cv: Condvar::new(),
            sends: Mutex::new(Vec::new()),
            errq: Mutex::new(VecDeque::new()),
            batches: Mutex::new(Vec::new()),
        })
    }

    fn sends(&self) -> Vec<(Instant, IpAddr)> {
        self.sends.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Endpoint for Fake {
    fn family(&self) -> Family {
        self.family
    }

    fn kind(&self) -> SocketKind {
        self.kind
    }

    fn tx_timestamps(&self) -> bool {
        self.behaviour.tx_stamps.is_some()
    }

    fn rx_stamps_at_arrival(&self) -> bool {
        self.behaviour.timestamps
    }

    fn send_batch(
        &self,
        packets: &[(&[u8], IpAddr)],
        _set: PacketSettings,
        results: &mut Vec<io::Result<()>>,
    ) {
        if let Ok(mut b) = self.batches.lock() {
            b.push(packets.len());
        }
        results.clear();
        for (p, dest) in packets {
            results.push(self.send_to(p, *dest));
        }
    }

    fn recv_tx(&self, buf: &mut [u8]) -> io::Result<Option<Received>> {
        let mut q = self.errq.lock().map_err(|_| io::Error::other("poisoned"))?;
        Ok(q.pop_front().map(|(at, pkt)| {
            let n = pkt.len().min(buf.len());
            buf[..n].copy_from_slice(&pkt[..n]);
            Received {
                len: n,
                timestamp: Some(at),
                drops: None,
                ttl: None,
            }
        }))
    }

    fn wait(&self, timeout: Duration) -> io::Result<bool> {
        let give_up = Instant::now() + timeout.min(20 * MS);
        let mut q = self
            .queue
            .lock()
            .map_err(|_| io::Error::other("poisoned"))?;
        loop {
            let now = Instant::now();
            let due = q.front().is_some_and(|(at, _, _)| *at <= now);
            let stamps = self.errq.lock().is_ok_and(|e| !e.is_empty());
            if due || stamps {
                return Ok(true);
            }
            if now >= give_up {
                return Ok(false);
            }
            let until = q.front().map_or(give_up, |(at, _, _)| (*at).min(give_up));
            let (guard, _) = self
                .cv
                .wait_timeout(q, until.saturating_duration_since(now))
                .map_err(|_| io::Error::other("poisoned"))?;
            q = guard;
        }
    }

    fn send_to(&self, packet: &[u8], dest: IpAddr) -> io::Result<()> {
        // One reading of each clock per send: the transmit stamp and the
        // reply's receive stamp derive from the same wall-clock reading, so
        // an RTT from kernel stamps is exactly `delay - tx_stamps`, however
        // busy the machine is.
        let now = Instant::now();
        let wall_now = SystemTime::now();
        if let Ok(mut s) = self.sends.lock() {
            s.push((now, dest));
        }
        let b = &self.behaviour;
        if b.fail.contains(&dest) {
            return Err(io::Error::from_raw_os_error(113)); // EHOSTUNREACH
        }
        if let Some(late) = b.tx_stamps {
            // The device stamps the packet; the kernel loops it back with a
            // link-layer header in front.
            let mut looped = vec![0u8; 14];
            looped.extend_from_slice(packet);
            if let Ok(mut q) = self.errq.lock() {
                q.push_back((wall_now + late, looped));
            }
        }
        if b.drop.contains(&dest) {
            return Ok(());
        }
        let mut request = packet.to_vec();
        if self.kind == SocketKind::Datagram {
            // The kernel replaces the identifier with the socket's port.
            request[4] = 0x42;
            request[5] = 0x42;
            if self.family == Family::V4 {
                request[2] = 0;
                request[3] = 0;
                let c = crate::icmp::packet::checksum(&request);
                request[2..4].copy_from_slice(&c.to_be_bytes());
            }
        }
        let reply = make_reply(
            self.family,
            self.family == Family::V4 && self.kind == SocketKind::Raw,
            &request,
        );
        let octet = match dest {
            IpAddr::V4(a) => u32::from(a.octets()[3]),
            IpAddr::V6(_) => 0,
        };
        let delay = b.delay + b.delay_per_octet * octet;
        let at = now + delay;
        let wall_at = wall_now + delay;
        let mut q = self
            .queue
            .lock()
            .map_err(|_| io::Error::other("poisoned"))?;
        q.push_back((at, wall_at, reply.clone()));
        if b.duplicate {
            q.push_back((at, wall_at, reply));
        }
        // Keep the queue ordered by delivery time.
        q.make_contiguous().sort_by_key(|(t, _, _)| *t);
        self.cv.notify_all();
        Ok(())
    }

    fn recv(&self, buf: &mut [u8], wait: bool) -> io::Result<Option<Received>> {
        let give_up = Instant::now() + if wait { 20 * MS } else { Duration::ZERO };
        let mut q = self
            .queue
            .lock()
            .map_err(|_| io::Error::other("poisoned"))?;
        loop {
            let now = Instant::now();
            if let Some((at, _, _)) = q.front() {
                if *at <= now {
                    let Some((_, wall_at, pkt)) = q.pop_front() else {
                        return Ok(None);
                    };
                    let n = pkt.len().min(buf.len());
                    buf[..n].copy_from_slice(&pkt[..n]);
                    let drops = self.behaviour.drops.load(Ordering::Relaxed);
                    return Ok(Some(Received {
                        len: n,
                        timestamp: self.behaviour.timestamps.then_some(wall_at),
                        drops: (drops > 0).then_some(drops),
                        ttl: None,
                    }));
                }
            }
            if now >= give_up {
                return Ok(None);
            }
            let until = q.front().map_or(give_up, |(at, _, _)| (*at).min(give_up));
            let (guard, _) = self
                .cv
                .wait_timeout(q, until.saturating_duration_since(now))
                .map_err(|_| io::Error::other("poisoned"))?;
            q = guard;
        }
    }
}

/// An engine whose every binding gets `fake`; counts opener calls.
fn engine_with(fake: Arc<Fake>) -> (IcmpEngine, Arc<AtomicUsize>) {
    let opens = Arc::new(AtomicUsize::new(0));
    let o = Arc::clone(&opens);
    let engine = IcmpEngine::with_opener(Box::new(move |_b: &Binding| {
        o.fetch_add(1, Ordering::SeqCst);
        Ok(Arc::clone(&fake) as Arc<dyn Endpoint>)
    }))
    .expect("engine");
    (engine, opens)
}

fn v4(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
}

fn request(family: Family, targets: Vec<IpAddr>, pings: u32) -> RoundRequest {
    RoundRequest {
        binding: Binding::any(family),
        targets,
        pings,
        interval: 20 * MS,
        spacing: MS,
        timeout: 300 * MS,
        start: Instant::now(),
        options: EchoOptions::default(),
    }
}

async fn wait_for(engine: &IcmpEngine, what: impl Fn(&EngineStats) -> bool) -> EngineStats {
    for _ in 0..200 {
        let s = engine.stats();
        if what(&s) {
            return s;
        }
        tokio::time::sleep(10 * MS).await;
    }
    engine.stats()
}

#[tokio::test]
async fn results_in_request_order_raw_v4() {
    let fake = Fake::new(
        Family::V4,
        SocketKind::Raw,
        Behaviour {
            delay_per_octet: 2 * MS,
            timestamps: true,
            tx_stamps: Some(Duration::ZERO),
            ..Behaviour::default()
        },
    );
    let (engine, _) = engine_with(Arc::clone(&fake));
    let targets = vec![v4(30), v4(1), v4(15), v4(8)];
    let r = engine
        .submit(request(Family::V4, targets.clone(), 3))
        .await
        .expect("round");
    assert_eq!(r.rtts.len(), 4);
    for (t, row) in targets.iter().zip(&r.rtts.to_vecs()) {
        assert_eq!(row.len(), 3);
        let IpAddr::V4(a) = t else { panic!("v4") };
        let expect = 2 * MS * u32::from(a.octets()[3]);
        for rtt in row {
            let rtt = rtt.expect("answered");
            // Both stamps from one reading of the fake's clock: exact.
            assert_eq!(rtt, expect, "{t}");
        }
    }
    let s = wait_for(&engine, |s| s.rounds_active == 0).await;
    assert_eq!(s.sent, 12);
    assert_eq!(s.received, 12);
    assert_eq!(s.pending, 0);
    assert_eq!(s.rounds_active, 0);
    assert_eq!(engine.socket_kind_for(Family::V4), Some(SocketKind::Raw));
    assert_eq!(engine.socket_kind_for(Family::V6), None);
}

/// Many rounds at once, above the rate at which the receive thread polls
/// instead of waiting in recvmsg: every reply is still read and matched,
/// with its kernel timestamp.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_reply_read_at_a_high_rate() {
    let fake = Fake::new(
        Family::V4,
        SocketKind::Raw,
        Behaviour {
            delay: 2 * MS,
            timestamps: true,
            tx_stamps: Some(Duration::ZERO),
            ..Behaviour::default()
        },
    );
    let (engine, _) = engine_with(fake);
    let engine = Arc::new(engine);
    // 40 rounds of 100 targets, 3 pings, 1 ms apart: 40,000 sends/s.
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..40 {
        let engine = Arc::clone(&engine);
        set.spawn(async move {
            let mut req = request(Family::V4, (1..=100).map(v4).collect(), 3);
            req.interval = 100 * MS;
            engine.submit(req).await
        });
    }
    while let Some(r) = set.join_next().await {
        let r = r.expect("task").expect("round");
        for rtt in r.rtts.to_vecs().iter().flatten() {
            let rtt = rtt.expect("answered");
            assert_eq!(rtt, 2 * MS, "read late, but stamped when it arrived");
        }
    }
    let s = wait_for(&engine, |s| s.rounds_active == 0).await;
    assert_eq!(s.sent, 12_000);
    assert_eq!(s.received, 12_000);
    assert_eq!(s.late, 0);
}

#[tokio::test]
async fn datagram_v6_and_early_completion() {
    let fake = Fake::new(Family::V6, SocketKind::Datagram, Behaviour::default());
    let (engine, _) = engine_with(fake);
    let targets: Vec<IpAddr> = (1..=5u16)
        .map(|i| IpAddr::V6(std::net::Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, i)))
        .collect();
    let mut req = request(Family::V6, targets, 2);
    req.timeout = HOUR;
    let t0 = Instant::now();
    let r = engine.submit(req).await.expect("round");
    // All answers in: completes without waiting for its one-hour timeout
    // (the bound is a sixtieth of it: not a speed, whatever the load).
    assert!(t0.elapsed() < HOUR / 60, "{:?}", t0.elapsed());
    assert!(r.rtts.to_vecs().iter().flatten().all(Option::is_some));
    assert_eq!(
        engine.socket_kind_for(Family::V6),
        Some(SocketKind::Datagram)
    );
}

#[tokio::test]
async fn lost_failed_duplicate_and_wrong_family() {
    let fake = Fake::new(
        Family::V4,
        SocketKind::Raw,
        Behaviour {
            drop: [v4(2)].into_iter().collect(),
            fail: [v4(3)].into_iter().collect(),
            duplicate: true,
            ..Behaviour::default()
        },
    );
    let (engine, _) = engine_with(fake);
    let targets = vec![
        v4(1),
        v4(2),
        v4(3),
        IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
    ];
    let r = engine
        .submit(request(Family::V4, targets, 2))
        .await
        .expect("round");
    assert!(r.rtts.to_vecs()[0].iter().all(Option::is_some));
    assert_eq!(r.rtts.to_vecs()[1], vec![None, None]);
    assert_eq!(r.rtts.to_vecs()[2], vec![None, None]);
    assert_eq!(r.rtts.to_vecs()[3], vec![None, None]);
    let s = wait_for(&engine, |s| s.unmatched >= 2).await;
    assert_eq!(s.sent, 4); // targets 1 and 2
    assert_eq!(s.send_errors, 4); // 2 failed sends + 2 wrong family
    assert_eq!(s.received, 2);
    assert_eq!(s.unmatched, 2); // the duplicates
    assert_eq!(s.pending, 0);
}

#[tokio::test]
async fn late_reply_counts_as_lost() {
    // Replies take 150 ms, timeout 100 ms, pings 2 s apart: ping 0's reply
    // arrives late (counted: its ping is still pending, unless the receive
    // thread were held up for almost 2 s), ping 1's after the round
    // completed.
    let fake = Fake::new(
        Family::V4,
        SocketKind::Raw,
        Behaviour {
            delay: 150 * MS,
            ..Behaviour::default()
        },
    );
    let (engine, _) = engine_with(fake);
    let mut req = request(Family::V4, vec![v4(1)], 2);
    req.interval = 2000 * MS;
    req.timeout = 100 * MS;
    let r = engine.submit(req).await.expect("round");
    assert_eq!(r.rtts.to_vecs(), vec![vec![None, None]]);
    let s = wait_for(&engine, |s| s.unmatched >= 1).await;
    assert_eq!(s.late, 1);
    assert_eq!(s.unmatched, 1);
    assert_eq!(s.received, 0);
}

/// Runs a round of 40 targets x 2 pings, 2 ms apart (interval 10 ms, so
/// the pings interleave), and returns the sends the fake saw.
async fn spaced_round() -> (Vec<IpAddr>, Vec<(Instant, IpAddr)>) {
    let fake = Fake::new(Family::V4, SocketKind::Raw, Behaviour::default());
    let (engine, _) = engine_with(Arc::clone(&fake));
    let targets: Vec<IpAddr> = (1..=40).map(v4).collect();
    let mut req = request(Family::V4, targets.clone(), 2);
    req.spacing = 2 * MS;
    req.interval = 10 * MS; // shorter than 40 * spacing: pings interleave
    let r = engine.submit(req).await.expect("round");
    assert!(r.rtts.to_vecs().iter().flatten().all(Option::is_some));
    (targets, fake.sends())
}

#[tokio::test]
async fn sends_are_shuffled_and_every_target_gets_its_pings() {
    let (targets, sends) = spaced_round().await;
    assert_eq!(sends.len(), 80);
    let first: Vec<IpAddr> = sends.iter().take(40).map(|s| s.1).collect();
    // Every target exactly twice.
    for t in &targets {
        assert_eq!(sends.iter().filter(|s| s.1 == *t).count(), 2);
    }
    assert_ne!(
        first, targets,
        "shuffled (1 in 40! chance of a false failure)"
    );
}

/// The spacing as the fake's clock sees it. The rule itself (send times
/// from the schedule, shifted after a late send) is tested without clocks
/// in `schedule.rs`; this checks that the sender thread follows it, so it
/// reads the wall clock and runs in the serial `timing_` phase.
#[tokio::test]
async fn timing_engine_sends_are_spaced() {
    let (_, sends) = spaced_round().await;
    assert_eq!(sends.len(), 80);
    // The engine spaces its clock reads before `sendto`; the fake records a
    // little later, so allow for scheduling noise on each send but not
    // cumulatively: send k is at least k * spacing after the first.
    let first_at = sends[0].0;
    for (k, (at, _)) in sends.iter().enumerate() {
        let min = 2 * MS * u32::try_from(k).unwrap_or(0);
        let since = *at - first_at;
        assert!(since + MS >= min, "send {k} only {since:?} after the first");
    }
    let close = sends
        .windows(2)
        .filter(|w| w[1].0 - w[0].0 < 2 * MS - Duration::from_micros(300))
        .count();
    assert!(close <= 8, "{close} of 79 gaps well below the spacing");
}

#[tokio::test]
async fn one_socket_per_binding_shared_by_rounds() {
    let fake = Fake::new(Family::V4, SocketKind::Raw, Behaviour::default());
    let (engine, opens) = engine_with(fake);
    let handles: Vec<RoundHandle> = (0..5u8)
        .map(|i| engine.submit(request(Family::V4, vec![v4(i * 2 + 1), v4(i * 2 + 2)], 2)))
        .collect();
    for h in handles {
        let r = h.await.expect("round");
        assert!(r.rtts.to_vecs().iter().flatten().all(Option::is_some));
    }
    assert_eq!(opens.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn dropped_handle_abandons_round() {
    let fake = Fake::new(
        Family::V4,
        SocketKind::Raw,
        Behaviour {
            drop: (1..=3).map(v4).collect(),
            ..Behaviour::default()
        },
    );
    let (engine, _) = engine_with(Arc::clone(&fake));
    // 100 pings 100 ms apart: 10 s to send them all, far longer than the
    // test takes to drop its handle, however busy the machine.
    let mut req = request(Family::V4, (1..=3).map(v4).collect(), 100);
    req.interval = 100 * MS;
    req.timeout = Duration::from_secs(60);
    let handle = engine.submit(req);
    let s = wait_for(&engine, |s| s.pending >= 3).await;
    assert!(s.pending >= 3);
    drop(handle);
    let s = wait_for(&engine, |s| s.pending == 0 && s.rounds_active == 0).await;
    assert_eq!((s.pending, s.rounds_active), (0, 0));
    let sent = fake.sends().len();
    assert!(sent < 300, "kept sending after abandonment: {sent}");
    tokio::time::sleep(300 * MS).await;
    assert_eq!(fake.sends().len(), sent);
}

#[tokio::test]
async fn open_failure_and_stop() {
    let engine = IcmpEngine::with_opener(Box::new(|b: &Binding| {
        if b.family == Family::V6 {
            Err(SocketError::new(
                SocketCause::Other,
                "cannot open ICMP socket for IPv6: test",
            ))
        } else {
            Ok(Fake::new(
                Family::V4,
                SocketKind::Raw,
                Behaviour {
                    drop: [v4(1)].into_iter().collect(),
                    ..Behaviour::default()
                },
            ) as Arc<dyn Endpoint>)
        }
    }))
    .expect("engine");
    let err = engine
        .submit(request(
            Family::V6,
            vec![IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)],
            1,
        ))
        .await;
    assert_eq!(
        err,
        Err(RoundError::Socket(SocketError::new(
            SocketCause::Other,
            "cannot open ICMP socket for IPv6: test"
        )))
    );
    // Empty and zero-ping rounds resolve at once with the right shape.
    let r = engine.submit(request(Family::V4, vec![], 3)).await;
    assert_eq!(
        r,
        Ok(RoundResult {
            rtts: Rtts::new(0, 0),
            send_errors: vec![],
            reply_ttl: vec![],
        })
    );
    let r = engine.submit(request(Family::V4, vec![v4(1)], 0)).await;
    assert_eq!(
        r,
        Ok(RoundResult {
            rtts: Rtts::new(1, 0),
            send_errors: vec![0],
            reply_ttl: vec![None],
        })
    );

    // A round outstanding when the engine is dropped resolves to Stopped.
    let mut req = request(Family::V4, vec![v4(1)], 1);
    req.timeout = HOUR;
    let handle = engine.submit(req);
    wait_for(&engine, |s| s.pending == 1).await;
    let t0 = Instant::now();
    drop(engine);
    // Dropping does not wait for the round's one-hour timeout.
    assert!(t0.elapsed() < HOUR / 60, "{:?}", t0.elapsed());
    assert_eq!(handle.await, Err(RoundError::Stopped));
}

#[test]
fn engine_is_send_sync() {
    fn check<T: Send + Sync>() {}
    check::<IcmpEngine>();
}

#[test]
fn quantize_rounds_up_to_ticks() {
    let epoch = Instant::now();
    let q = Duration::from_millis(1);
    let at = |us: u64| epoch + Duration::from_micros(us);
    assert_eq!(super::scheduler::quantize(at(0), epoch, q), at(0));
    assert_eq!(super::scheduler::quantize(at(1), epoch, q), at(1000));
    assert_eq!(super::scheduler::quantize(at(999), epoch, q), at(1000));
    assert_eq!(super::scheduler::quantize(at(1000), epoch, q), at(1000));
    assert_eq!(super::scheduler::quantize(at(1001), epoch, q), at(2000));
    assert_eq!(
        super::scheduler::quantize(at(1234), epoch, Duration::ZERO),
        at(1234),
        "zero quantum: unchanged"
    );
    // The schedule's clock when sending on ticks: the tick woken for.
    assert_eq!(
        super::scheduler::floor_quantize(at(1999), epoch, q),
        at(1000)
    );
    assert_eq!(
        super::scheduler::floor_quantize(at(2000), epoch, q),
        at(2000)
    );
    assert_eq!(
        super::scheduler::floor_quantize(at(2001), epoch, Duration::ZERO),
        at(2001)
    );
}

/// With kernel transmit timestamps the RTT starts when the "device" sent
/// the packet, not when the sender thread read its clock: here the stamp is
/// 2 ms after the user-space time, so every RTT is 2 ms shorter than the
/// fake's 10 ms delay. The receive thread drains lazily meanwhile, and
/// every round still completes with every answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kernel_transmit_timestamps_make_the_rtt() {
    let fake = Fake::new(
        Family::V4,
        SocketKind::Raw,
        Behaviour {
            delay: 10 * MS,
            timestamps: true,
            tx_stamps: Some(2 * MS),
            ..Behaviour::default()
        },
    );
    let (engine, _) = engine_with(Arc::clone(&fake));
    let engine = Arc::new(engine);
    let mut set = tokio::task::JoinSet::new();
    // All four rounds start at the same instant.
    let start = Instant::now() + 50 * MS;
    for r in 0..4u8 {
        let engine = Arc::clone(&engine);
        set.spawn(async move {
            let targets = (1..=5).map(|i| v4(r * 10 + i)).collect();
            let mut req = request(Family::V4, targets, 3);
            req.start = start;
            engine.submit(req).await
        });
    }
    while let Some(r) = set.join_next().await {
        let r = r.expect("task").expect("round");
        for rtt in r.rtts.to_vecs().iter().flatten() {
            let rtt = rtt.expect("answered");
            // Receive stamp minus transmit stamp, both from one reading of
            // the fake's clock: exactly 10 ms - 2 ms.
            assert_eq!(rtt, 8 * MS);
        }
    }
    let s = wait_for(&engine, |s| s.rounds_active == 0).await;
    assert_eq!((s.sent, s.received, s.tx_stamped), (60, 60, 60));
    assert_eq!((s.tx_fallbacks, s.rx_fallbacks, s.pending), (0, 0, 0));
    // Rounds that start together send their first pings in one batch.
    let batches = fake.batches.lock().unwrap().clone();
    assert!(
        batches.iter().any(|n| *n >= 4),
        "sends of one wake-up go out together: {batches:?}"
    );
}

/// Without stamps from the kernel the RTT uses the user-space send time,
/// and every such ping is counted as a fallback.
#[tokio::test]
async fn missing_stamps_are_counted_as_fallbacks() {
    let fake = Fake::new(
        Family::V4,
        SocketKind::Raw,
        Behaviour {
            delay: 3 * MS,
            timestamps: true,
            ..Behaviour::default()
        },
    );
    let (engine, _) = engine_with(fake);
    let r = engine
        .submit(request(Family::V4, vec![v4(1), v4(2)], 2))
        .await
        .expect("round");
    assert!(r.rtts.to_vecs().iter().flatten().all(Option::is_some));
    let s = wait_for(&engine, |s| s.rounds_active == 0).await;
    assert_eq!((s.received, s.tx_stamped, s.tx_fallbacks), (4, 0, 4));
}

/// Drops the kernel reports on a socket (`SO_RXQ_OVFL`, a cumulative count
/// with each packet read) are counted once each, however often they are
/// reported again.
#[tokio::test]
async fn receive_buffer_drops_reported_by_the_kernel_are_counted_once() {
    let fake = Fake::new(Family::V4, SocketKind::Raw, Behaviour::default());
    fake.behaviour.drops.store(5, Ordering::Relaxed);
    let (engine, _) = engine_with(Arc::clone(&fake));
    engine
        .submit(request(Family::V4, vec![v4(1), v4(2)], 2))
        .await
        .expect("round");
    assert_eq!(
        engine.stats().rx_dropped,
        5,
        "4 replies read, each saying 5"
    );
    fake.behaviour.drops.store(8, Ordering::Relaxed);
    engine
        .submit(request(Family::V4, vec![v4(1)], 1))
        .await
        .expect("round");
    assert_eq!(engine.stats().rx_dropped, 8, "3 more");
}

#[test]
fn drains_are_spaced_to_fit_the_receive_buffer() {
    let ms = |n| Duration::from_millis(n);
    // 16 MiB: room for 2048 entries per interval.
    let big = 16 << 20;
    // Nothing read: the longest interval.
    assert_eq!(next_drain_interval(ms(10), 0, big), DRAIN_MAX);
    // 100 entries in 100 ms (1,000/s): 2 s of room, capped at 100 ms.
    assert_eq!(next_drain_interval(ms(100), 100, big), DRAIN_MAX);
    // 200,000 entries/s: 10 ms.
    assert_eq!(
        next_drain_interval(ms(10), 2000, big),
        ms(10) + Duration::from_micros(240)
    );
    // A small (unprivileged) buffer, 425,984 bytes: 52 entries of room;
    // at 10,000 entries/s that is 5.2 ms.
    let small = 425_984;
    let i = next_drain_interval(ms(10), 100, small);
    assert!(i > ms(5) && i < ms(6), "{i:?}");
    // Never below 1 ms.
    assert_eq!(next_drain_interval(ms(1), 100_000, small), DRAIN_MIN);
}
