//! What one ping of a request/response probe (TCP, SSH, HTTP, DNS) gives,
//! and [`series`], which runs such pings one at a time to one target.
//!
//! Unlike the ICMP engine, these probes are *sequential*: like `httping`,
//! ping `i` starts `interval` after ping `i-1` started, or as soon as it
//! ended when it took longer than `interval`.

use std::future::Future;
use std::io;
use std::time::Duration;

/// Why one ping counted as lost.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Lost {
    /// No (complete) answer within the timeout.
    #[error("timed out")]
    Timeout,
    /// The target refused the connection (TCP RST, ICMP port unreachable).
    #[error("connection refused")]
    Refused,
    /// The TLS handshake failed (certificate, protocol, ...).
    #[error("TLS error: {0}")]
    Tls(String),
    /// The HTTP status is one of the order's failure codes.
    #[error("HTTP status {0}")]
    Status(u16),
    /// The connection ended before the answer was complete.
    #[error("short read: {0}")]
    ShortRead(String),
    /// An answer came but is not the expected one.
    #[error("bad answer: {0}")]
    BadAnswer(String),
    /// Any other I/O or protocol error.
    #[error("I/O error: {0}")]
    Io(String),
}

impl Lost {
    /// Classifies an I/O error: refused and timed-out connections get their
    /// own variants, everything else is [`Lost::Io`].
    pub fn from_io(err: &io::Error) -> Lost {
        match err.kind() {
            io::ErrorKind::ConnectionRefused => Lost::Refused,
            io::ErrorKind::TimedOut => Lost::Timeout,
            _ => Lost::Io(err.to_string()),
        }
    }
}

/// The result of one ping: its round-trip time, or why it was lost.
pub type PingResult = Result<Duration, Lost>;

/// Runs `pings` probes to one target sequentially and returns, in order,
/// `Some(rtt)` for each answered ping and `None` for each lost one.
///
/// Ping `i` starts at `max(start + i*interval, end of ping i-1)`, where
/// `start` is when `series` is called: one ping at a time, `interval` apart
/// (like `httping`). `f` is called once per ping and must bound its own
/// duration (every probe of this crate takes a timeout). Uses
/// [`tokio::time`], so it follows a paused test clock.
pub async fn series<F, Fut>(pings: u32, interval: Duration, mut f: F) -> Vec<Option<Duration>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = PingResult>,
{
    let start = tokio::time::Instant::now();
    let mut out = Vec::with_capacity(usize::try_from(pings).unwrap_or(0));
    for i in 0..pings {
        // An absurd interval (overflow) means "no wait" rather than "forever".
        if let Some(due) = interval.checked_mul(i).and_then(|d| start.checked_add(d)) {
            tokio::time::sleep_until(due).await;
        }
        match f().await {
            Ok(rtt) => out.push(Some(rtt)),
            Err(lost) => {
                tracing::debug!(ping = i, reason = %lost, "ping lost");
                out.push(None);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_are_classified() {
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(Lost::from_io(&refused), Lost::Refused);
        let timed_out = io::Error::from(io::ErrorKind::TimedOut);
        assert_eq!(Lost::from_io(&timed_out), Lost::Timeout);
        let other = io::Error::other("boom");
        assert_eq!(Lost::from_io(&other), Lost::Io("boom".into()));
    }

    #[test]
    fn messages_are_readable() {
        assert_eq!(Lost::Timeout.to_string(), "timed out");
        assert_eq!(Lost::Refused.to_string(), "connection refused");
        assert_eq!(Lost::Status(503).to_string(), "HTTP status 503");
        assert_eq!(
            Lost::BadAnswer("no SSH banner: \"x\"".into()).to_string(),
            "bad answer: no SSH banner: \"x\""
        );
    }
}
