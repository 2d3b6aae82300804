//! The receive threads: each drains its socket's replies and transmit
//! stamps into the shared [`Matcher`], sleeping between drains while the
//! kernel stamps both directions.

use super::*;
use crate::sync::lock;

/// While rounds are in progress on a socket whose kernel stamps sends and
/// receives, its receive thread drains it every `drain` interval, adapted
/// between these bounds to the rate it reads at, so that what arrives
/// between two drains fills at most a quarter of the socket's receive
/// buffer (a reply the buffer cannot take would be lost): long when little
/// comes (few wake-ups), short at high rates or with a small buffer.
pub(super) const DRAIN_MIN: Duration = Duration::from_millis(1);
pub(in crate::icmp) const DRAIN_MAX: Duration = Duration::from_millis(100);
/// Receive-buffer bytes one queued entry (a reply, or a transmit stamp with
/// its packet) is counted as: more than a small packet's `truesize`.
const DRAIN_ENTRY_BYTES: usize = 2048;
/// After drops, a receive thread reckons its buffer at most this many
/// times smaller than it is (and drains that much sooner).
const MAX_DRAIN_PRESSURE: usize = 16;
/// At most this many packets per queue per drain, so `stopping` is seen
/// promptly.
pub(in crate::icmp) const DRAIN_CAP: usize = 8192;

/// Packets read per system call when draining.
pub(in crate::icmp) const DRAIN_BATCH: usize = 64;

/// Reads what is queued on `endpoint` without waiting — transmit
/// timestamps first, then replies, then stamps that came meanwhile — in
/// batches (`recvmmsg`), and matches it. Returns the number of entries
/// read, the number of replies among them, and whether every reply had a
/// kernel receive timestamp.
pub(super) fn drain(
    endpoint: &dyn Endpoint,
    info: SocketInfo,
    shared: &Shared,
    commands: &mpsc::Sender<Command>,
    batch: &mut RecvBatch,
) -> (usize, usize, bool) {
    let mut got = 0;
    let mut replies = 0;
    let mut stamped = true;
    let notify = |o: Outcome| {
        if let Outcome::Answered {
            round_complete: Some(id),
            ..
        }
        | Outcome::Late {
            round_complete: Some(id),
        } = o
        {
            let _ = commands.send(Command::Answered(id));
        }
    };
    // Transmit stamps, replies, then stamps again.
    for errqueue in [true, false, true] {
        if errqueue && !endpoint.tx_timestamps() {
            continue;
        }
        for _ in 0..DRAIN_CAP / DRAIN_BATCH {
            let n = match endpoint.recv_batch(batch, errqueue) {
                Ok(n) => n,
                Err(e) => {
                    Counters::inc(&shared.matcher.counters.recv_errors);
                    tracing::debug!("ICMP receive error: {e}");
                    break;
                }
            };
            let mono = Instant::now();
            if let Some(d) = batch.got.iter().filter_map(|r| r.drops).max() {
                note_drops(shared, info.id, d);
            }
            for (r, buf) in batch.got.iter().zip(&batch.bufs) {
                let data = buf.get(..r.len).unwrap_or(&buf[..]);
                if errqueue {
                    notify(shared.matcher.on_tx(info, data, r.timestamp));
                } else {
                    replies += 1;
                    stamped &= r.timestamp.is_some();
                    notify(
                        shared
                            .matcher
                            .on_reply(info, data, r.timestamp, mono, r.ttl),
                    );
                }
            }
            got += n;
            if n < batch.bufs.len() {
                break;
            }
        }
    }
    (got, replies, stamped)
}

/// Adds what socket `id`'s cumulative drop count `total` says is new to
/// the engine's `rx_dropped` (the count only grows; it is reported with the
/// packets read after a drop, so only once drops happened).
fn note_drops(shared: &Shared, id: u32, total: u32) {
    let mut seen = lock(&shared.drops_seen);
    let last = seen.entry(id).or_insert(0);
    if total > *last {
        Counters::add(
            &shared.matcher.counters.rx_dropped,
            u64::from(total - *last),
        );
        *last = total;
    }
}

/// The drain interval after a drain that read `got` entries `interval`
/// after the previous one: what arrives at that rate within the next
/// interval must fit in a quarter of a receive buffer of `rcvbuf` bytes.
pub(in crate::icmp) fn next_drain_interval(
    interval: Duration,
    got: usize,
    rcvbuf: usize,
) -> Duration {
    let room = (rcvbuf / DRAIN_ENTRY_BYTES / 4).max(1) as f64;
    let per_s = got as f64 / interval.as_secs_f64().max(1e-6);
    if per_s <= 0.0 {
        return DRAIN_MAX;
    }
    Duration::from_secs_f64(room / per_s).clamp(DRAIN_MIN, DRAIN_MAX)
}

/// A socket's receive thread: receive, match, tell the sender thread when a
/// round got its last answer; until the engine stops.
///
/// When the kernel stamps this socket's sends and receives, reading a
/// packet late changes no RTT. Then, while rounds are in progress, the
/// thread sleeps and drains the socket every `drain` interval (adapted
/// between [`DRAIN_MIN`] and [`DRAIN_MAX`] to the rate): a packet arriving
/// for a sleeping reader would cost the sender a wake-up of this thread and
/// this thread a context switch per packet, the largest cost at small scale.
/// Otherwise (no stamps, or no round in progress) it waits for each packet.
pub(super) fn receive_loop(
    endpoint: &dyn Endpoint,
    info: SocketInfo,
    shared: &Shared,
    commands: &mpsc::Sender<Command>,
) {
    let _watch = DeathWatch {
        shared,
        name: format!("the receive thread of socket {}", info.id),
    };
    let mut batch = RecvBatch::new(DRAIN_BATCH, RECV_BUF_LEN);
    let mut errors: u64 = 0;
    let mut interval = DRAIN_MAX;
    // The replies of the last drain that read any came with receive stamps
    // taken at arrival. Until then (the kernel turns timestamping on for
    // the system a moment after the first socket asks) every packet is
    // read as it comes.
    let mut rx_stamped = false;
    let lazy_possible = endpoint.tx_timestamps() && endpoint.rx_stamps_at_arrival();
    // How much smaller than its size the receive buffer is reckoned (1 until
    // the kernel reports a drop on a socket).
    let mut pressure: usize = 1;
    while !shared.stopping.load(Ordering::Acquire) {
        // A round in progress: replies are coming (even when none is
        // pending this instant, between two sends).
        let active = shared
            .matcher
            .counters
            .rounds_active
            .load(Ordering::Relaxed)
            > 0;
        if lazy_possible && rx_stamped && active {
            thread::sleep(interval);
        } else {
            match endpoint.wait(socket::RECV_TIMEOUT) {
                Ok(_) => {}
                Err(e) => {
                    Counters::inc(&shared.matcher.counters.recv_errors);
                    errors += 1;
                    if errors.is_power_of_two() {
                        tracing::debug!("ICMP socket wait error ({errors} so far): {e}");
                    }
                    // Do not spin on a persistent error.
                    thread::sleep(Duration::from_millis(10));
                }
            }
        }
        let dropped_before = shared.matcher.counters.rx_dropped.load(Ordering::Relaxed);
        let (got, replies, stamped) = drain(endpoint, info, shared, commands, &mut batch);
        if replies > 0 {
            rx_stamped = stamped;
        }
        // The kernel dropped replies: the buffer held less than reckoned
        // (bigger packets, or this thread was kept from running). From now
        // on this socket is drained as if its buffer were half as large,
        // down to a sixteenth.
        if shared.matcher.counters.rx_dropped.load(Ordering::Relaxed) > dropped_before {
            pressure = (pressure * 2).min(MAX_DRAIN_PRESSURE);
            tracing::debug!(pressure, "ICMP receive buffer overflowed; draining sooner");
        }
        interval = next_drain_interval(interval, got, endpoint.recv_buffer_bytes() / pressure);
    }
}
