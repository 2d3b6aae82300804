//! TCP connect probe: the round-trip time is the time `connect` takes (SYN
//! out, SYN-ACK in), like `tcpping` / SmokePing's `TCPPing`, timed by the
//! kernel, without the wake-ups of this process on either side:
//! * with the packet tap ([`crate::syn_tap`], when the process has
//!   `CAP_NET_RAW`), the SYN leaving to the SYN-ACK arriving as the device
//!   handed them over, which is what a capture on the interface shows;
//! * else `TCP_INFO`'s sample, which also holds the kernel's own work on
//!   the SYN-ACK before TCP takes it (5–30 µs).
//!
//! When the kernel has no sample, or a SYN was sent again (the connect
//! then took its retransmission time too, which the kernel's sample leaves
//! out), the time measured around `connect` here. The connection is
//! closed right after.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::net::{TcpSocket, TcpStream};

use crate::outcome::{Lost, PingResult};

/// Connects to `addr` (from `source` if given) and returns the time the
/// connect took. Refused → [`Lost::Refused`]; no connection within
/// `timeout` → [`Lost::Timeout`]. The connection is closed at once.
pub async fn connect_time(
    addr: SocketAddr,
    source: Option<IpAddr>,
    timeout: Duration,
) -> PingResult {
    let (stream, rtt) = connect(addr, source, timeout).await?;
    drop(stream);
    Ok(rtt)
}

/// Connects and returns the stream and the connect time (shared with the
/// probes that talk over TCP after connecting).
pub(crate) async fn connect(
    addr: SocketAddr,
    source: Option<IpAddr>,
    timeout: Duration,
) -> Result<(TcpStream, Duration), Lost> {
    let (stream, info, elapsed) = connect_parts(addr, source, timeout).await?;
    Ok((stream, handshake_rtt(info, elapsed)))
}

/// Connects and returns the stream, what `TCP_INFO` says right after, and
/// the time measured around `connect`.
pub(crate) async fn connect_parts(
    addr: SocketAddr,
    source: Option<IpAddr>,
    timeout: Duration,
) -> Result<(TcpStream, Option<crate::tcp_info::Info>, Duration), Lost> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
    .map_err(|e| Lost::Io(format!("socket: {e}")))?;
    if let Some(source) = source {
        socket
            .bind(SocketAddr::new(source, 0))
            .map_err(|e| Lost::Io(format!("bind to source {source}: {e}")))?;
    }
    // Open before the first SYN leaves, so that the tap sees it.
    let _ = crate::syn_tap::tap();
    let started = Instant::now();
    let connected = tokio::time::timeout(timeout, socket.connect(addr)).await;
    let elapsed = started.elapsed();
    map_connect(connected.map_err(|_| Lost::Timeout)).map(|stream| {
        let mut info = crate::tcp_info::read(&stream).ok();
        if let Some(i) = info.as_mut() {
            i.wire = wire_handshake(&stream);
        }
        (stream, info, elapsed)
    })
}

/// The handshake as the packet tap saw it, when the tap is open.
fn wire_handshake(stream: &TcpStream) -> Option<Duration> {
    let tap = crate::syn_tap::tap()?;
    tap.handshake(stream.local_addr().ok()?, stream.peer_addr().ok()?)
}

/// The kernel's handshake time, when it has one, no segment was sent
/// again, and it fits in `elapsed` (measured around `connect`): the
/// tap's, else `TCP_INFO`'s sample.
pub(crate) fn kernel_handshake(
    info: Option<crate::tcp_info::Info>,
    elapsed: Duration,
) -> Option<Duration> {
    let fits = |d: Duration| d > Duration::ZERO && d <= elapsed;
    let (got, counter) = match info {
        Some(i) if i.total_retrans == 0 => match (i.wire.filter(|d| fits(*d)), i.rtt) {
            (Some(w), _) => (Some(w), &TAPPED),
            (None, r) if fits(r) => (Some(r), &TCP_INFO),
            _ => (None, &ELAPSED),
        },
        _ => (None, &ELAPSED),
    };
    counter.fetch_add(1, Ordering::Relaxed);
    got
}

static TAPPED: AtomicU64 = AtomicU64::new(0);
static TCP_INFO: AtomicU64 = AtomicU64::new(0);
static ELAPSED: AtomicU64 = AtomicU64::new(0);

/// How this process's TCP handshakes (tcp, httping, ssh) were timed so
/// far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HandshakeCounts {
    /// By the packet tap: SYN and SYN-ACK as the device handed them over.
    pub tapped: u64,
    /// By `TCP_INFO`'s sample (no tap, or it missed a packet).
    pub tcp_info: u64,
    /// Around the `connect` call (a SYN sent again, or no kernel sample).
    pub elapsed: u64,
}

/// The counts so far.
pub fn handshake_counts() -> HandshakeCounts {
    HandshakeCounts {
        tapped: TAPPED.load(Ordering::Relaxed),
        tcp_info: TCP_INFO.load(Ordering::Relaxed),
        elapsed: ELAPSED.load(Ordering::Relaxed),
    }
}

/// The connect time: the kernel's handshake sample when it has one and no
/// segment was sent again, else `elapsed` (measured around `connect`).
fn handshake_rtt(info: Option<crate::tcp_info::Info>, elapsed: Duration) -> Duration {
    kernel_handshake(info, elapsed).unwrap_or(elapsed)
}

/// Maps the outcome of a connect under a timeout (outer error: the timeout
/// expired) to the stream or why the ping is lost.
fn map_connect(res: Result<std::io::Result<TcpStream>, Lost>) -> Result<TcpStream, Lost> {
    match res {
        Err(lost) => Err(lost),
        Ok(Err(e)) => Err(Lost::from_io(&e)),
        Ok(Ok(stream)) => Ok(stream),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    #[test]
    fn connect_outcomes_are_mapped() {
        assert_eq!(map_connect(Err(Lost::Timeout)).err(), Some(Lost::Timeout));
        let refused = Ok(Err(io::Error::from(io::ErrorKind::ConnectionRefused)));
        assert_eq!(map_connect(refused).err(), Some(Lost::Refused));
        let timed_out = Ok(Err(io::Error::from(io::ErrorKind::TimedOut)));
        assert_eq!(map_connect(timed_out).err(), Some(Lost::Timeout));
        let unreachable = Ok(Err(io::Error::from(io::ErrorKind::HostUnreachable)));
        assert!(matches!(map_connect(unreachable), Err(Lost::Io(_))));
    }

    #[test]
    fn the_kernel_sample_unless_a_syn_was_sent_again() {
        use crate::tcp_info::Info;
        let us = Duration::from_micros;
        let info = |rtt, total_retrans| {
            Some(Info {
                rtt,
                total_retrans,
                wire: None,
            })
        };
        assert_eq!(handshake_rtt(info(us(120), 0), us(300)), us(120));
        // The tap's figure first, when it fits.
        let tapped = |wire| {
            Some(Info {
                rtt: us(120),
                total_retrans: 0,
                wire: Some(wire),
            })
        };
        assert_eq!(handshake_rtt(tapped(us(97)), us(300)), us(97));
        assert_eq!(handshake_rtt(tapped(us(0)), us(300)), us(120));
        assert_eq!(handshake_rtt(tapped(us(301)), us(300)), us(120));
        // No sample, a retransmitted SYN, no TCP_INFO: the elapsed time.
        assert_eq!(handshake_rtt(info(us(0), 0), us(300)), us(300));
        assert_eq!(
            handshake_rtt(info(us(120), 1), us(1_000_300)),
            us(1_000_300)
        );
        assert_eq!(handshake_rtt(None, us(300)), us(300));
        // Never more than what was measured around the call.
        assert_eq!(handshake_rtt(info(us(500), 0), us(300)), us(300));
    }

    #[tokio::test(start_paused = true)]
    async fn elapsed_timeout_is_timeout() {
        // A future that never completes stands in for a connect that hangs.
        let never = std::future::pending::<io::Result<TcpStream>>();
        let res = tokio::time::timeout(Duration::from_millis(50), never).await;
        assert_eq!(
            map_connect(res.map_err(|_| Lost::Timeout)).err(),
            Some(Lost::Timeout)
        );
    }
}
