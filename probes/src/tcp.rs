//! TCP connect probe: the round-trip time is the time `connect` takes (SYN
//! out, SYN-ACK in), like `tcpping` / SmokePing's `TCPPing`. The connection
//! is closed right after.

use std::net::{IpAddr, SocketAddr};
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
    let started = Instant::now();
    let connected = tokio::time::timeout(timeout, socket.connect(addr)).await;
    let rtt = started.elapsed();
    map_connect(connected.map_err(|_| Lost::Timeout)).map(|stream| (stream, rtt))
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
