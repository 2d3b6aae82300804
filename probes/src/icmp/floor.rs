//! The kernel's floor: what sending and receiving a given rate of pings
//! costs on this machine with the engine's own sockets and system calls,
//! and nothing else.
//!
//! A sender thread wakes once per send quantum (1 ms, as the daemon's) and
//! sends every ping due by then in one `sendmmsg` on a socket opened exactly
//! as the engine opens it (transmit and receive timestamps, filter, buffer
//! sizes). A receive thread drains transmit timestamps and replies in
//! batches at the interval the engine's receive thread would choose for
//! the same rate. There is no schedule, pending table, matching, result or
//! store: the difference between the daemon's ICMP threads and this is what
//! the daemon adds per ping (used by `pingmachine-bench floor`).

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::engine::{next_drain_interval, DRAIN_BATCH, DRAIN_CAP, DRAIN_MAX, RECV_BUF_LEN};
use super::packet::build_echo_request;
use super::socket::{self, Endpoint, RecvBatch};
use super::{Binding, Family, IcmpConfig};

/// What a floor run measured.
#[derive(Clone, Debug, Default)]
pub struct FloorReport {
    /// Wall time the sender ran.
    pub seconds: f64,
    /// Pings the kernel took (`sendmmsg` accepted).
    pub sent: u64,
    /// Pings the kernel refused.
    pub send_errors: u64,
    /// Whether the kernel accepted `SO_TIMESTAMPING` with transmit stamps
    /// on the socket (when the configuration asks for them).
    pub tx_stamps_on: bool,
    /// Transmit timestamps read from the error queue.
    pub tx_stamps: u64,
    /// Echo replies to this run's pings read (they carry its payload).
    pub replies: u64,
    /// Other packets the socket received (a raw socket gets every echo
    /// reply of the host: other programs' pings).
    pub others: u64,
    /// Reads that failed.
    pub recv_errors: u64,
    /// CPU seconds of the sender thread (scheduler run time).
    pub sender_cpu_s: f64,
    /// CPU seconds of the receive thread (scheduler run time).
    pub receiver_cpu_s: f64,
}

/// CPU time the calling thread has run, seconds (`/proc/thread-self/schedstat`).
fn thread_cpu_s() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |ns| ns / 1e9)
}

/// Sends `rate` pings per second, round-robin over `targets` (all of one
/// family), for `duration`, and reads every stamp and reply; then waits
/// `grace` for the last replies. `config` opens the socket as the daemon
/// would (pass the daemon's quantum in `config.send_quantum`).
pub fn run(
    targets: &[IpAddr],
    rate: u32,
    duration: Duration,
    grace: Duration,
    config: &IcmpConfig,
) -> std::io::Result<FloorReport> {
    let Some(first) = targets.first() else {
        return Err(std::io::Error::other("no targets"));
    };
    let family = Family::of(first);
    if targets.iter().any(|t| Family::of(t) != family) {
        return Err(std::io::Error::other("targets of both families"));
    }
    let sock: Arc<dyn Endpoint> = Arc::new(
        socket::open(&Binding::any(family), config)
            .map_err(|e| std::io::Error::other(super::SocketError::from(&e)))?,
    );
    let tx_stamps_on = sock.tx_timestamps();
    let quantum = config.send_quantum.max(Duration::from_micros(100));
    let stop = Arc::new(AtomicBool::new(false));
    // This run's payload: its replies are told from other programs' by it.
    let magic: [u8; 16] = rand::random();
    let counts = Arc::new(Counts::default());
    let receiver = {
        let (sock, stop, counts) = (Arc::clone(&sock), Arc::clone(&stop), Arc::clone(&counts));
        thread::Builder::new()
            .name("floor-recv".into())
            .spawn(move || receive(sock.as_ref(), &stop, &counts, &magic))?
    };
    let sender = {
        let sock = Arc::clone(&sock);
        let targets = targets.to_vec();
        thread::Builder::new()
            .name("floor-send".into())
            .spawn(move || send(sock.as_ref(), &targets, rate, duration, quantum, &magic))
    };
    // The receiver stops on every path, also when the sender could not run.
    let sent = match sender {
        Ok(h) => h
            .join()
            .map_err(|_| std::io::Error::other("the floor's sender thread panicked")),
        Err(e) => Err(e),
    };
    if sent.is_ok() {
        thread::sleep(grace);
    }
    stop.store(true, Ordering::Release);
    let receiver_cpu_s = receiver
        .join()
        .map_err(|_| std::io::Error::other("the floor's receive thread panicked"))?;
    let (seconds, sent, send_errors, sender_cpu_s) = sent?;
    Ok(FloorReport {
        seconds,
        sent,
        send_errors,
        tx_stamps_on,
        tx_stamps: counts.stamps.load(Ordering::Relaxed),
        replies: counts.replies.load(Ordering::Relaxed),
        others: counts.others.load(Ordering::Relaxed),
        recv_errors: counts.errors.load(Ordering::Relaxed),
        sender_cpu_s,
        receiver_cpu_s,
    })
}

/// The sender: per quantum, every ping due by now in one batch.
fn send(
    sock: &dyn Endpoint,
    targets: &[IpAddr],
    rate: u32,
    duration: Duration,
    quantum: Duration,
    magic: &[u8; 16],
) -> (f64, u64, u64, f64) {
    let _ = nix::sys::prctl::set_timerslack(1_000);
    let cpu0 = thread_cpu_s();
    let start = Instant::now();
    let (mut sent, mut errors, mut done) = (0u64, 0u64, 0u64);
    let mut results = Vec::new();
    let mut next = start;
    let total = (f64::from(rate) * duration.as_secs_f64()) as u64;
    // One round of the engine's loop per quantum, bounded by the duration.
    while done < total && start.elapsed() < duration + Duration::from_secs(1) {
        next += quantum;
        if let Some(d) = next.checked_duration_since(Instant::now()) {
            thread::sleep(d);
        }
        let due = ((start.elapsed().as_secs_f64() * f64::from(rate)) as u64).min(total);
        let packets: Vec<(Vec<u8>, IpAddr)> = (done..due)
            .map(|i| {
                let key = (i % u64::from(u32::MAX)) as u32;
                let target = targets[(i % targets.len() as u64) as usize];
                let packet = build_echo_request(
                    Family::of(&target),
                    (key >> 16) as u16,
                    (key & 0xffff) as u16,
                    magic,
                );
                (packet, target)
            })
            .collect();
        done = due;
        let batch: Vec<(&[u8], IpAddr)> = packets.iter().map(|(p, t)| (p.as_slice(), *t)).collect();
        sock.send_batch(&batch, Default::default(), &mut results);
        for r in &results {
            if r.is_ok() {
                sent += 1;
            } else {
                errors += 1;
            }
        }
    }
    (
        start.elapsed().as_secs_f64(),
        sent,
        errors,
        thread_cpu_s() - cpu0,
    )
}

/// What the receive thread read.
#[derive(Default)]
struct Counts {
    stamps: AtomicU64,
    replies: AtomicU64,
    others: AtomicU64,
    errors: AtomicU64,
}

/// The receiver: sleeps the engine's drain interval, then reads stamps,
/// replies and stamps again, as the engine's receive thread does, until
/// told to stop (and one last drain after that).
fn receive(sock: &dyn Endpoint, stop: &AtomicBool, counts: &Counts, magic: &[u8; 16]) -> f64 {
    let cpu0 = thread_cpu_s();
    let mut batch = RecvBatch::new(DRAIN_BATCH, RECV_BUF_LEN);
    let mut interval = DRAIN_MAX;
    loop {
        let stopping = stop.load(Ordering::Acquire);
        thread::sleep(interval);
        let mut got = 0;
        for errqueue in [true, false, true] {
            if errqueue && !sock.tx_timestamps() {
                continue;
            }
            for _ in 0..DRAIN_CAP / DRAIN_BATCH {
                let n = match sock.recv_batch(&mut batch, errqueue) {
                    Ok(n) => n,
                    Err(_) => {
                        counts.errors.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                };
                got += n;
                if errqueue {
                    counts.stamps.fetch_add(n as u64, Ordering::Relaxed);
                } else {
                    // The payload ends the packet (after the IPv4 header on
                    // an IPv4 raw socket).
                    let ours = batch
                        .got
                        .iter()
                        .zip(&batch.bufs)
                        .filter(|(r, buf)| buf.get(..r.len).is_some_and(|d| d.ends_with(magic)))
                        .count() as u64;
                    counts.replies.fetch_add(ours, Ordering::Relaxed);
                    counts.others.fetch_add(n as u64 - ours, Ordering::Relaxed);
                }
                if n < batch.bufs.len() {
                    break;
                }
            }
        }
        interval = next_drain_interval(interval, got, sock.recv_buffer_bytes());
        if stopping {
            break;
        }
    }
    thread_cpu_s() - cpu0
}
