//! SSH banner probe: the round-trip time is the TCP connect time, and the
//! ping only counts as answered when the server then sends its
//! identification line (`SSH-2.0-...`, RFC 4253 §4.2) within the same
//! timeout. No key exchange is made; the connection is closed right after.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;

use crate::outcome::{Lost, PingResult};
use crate::tcp;

/// Longest identification line read (RFC 4253: 255 bytes with CR LF).
const MAX_LINE: usize = 255;

/// Connects to `addr`, then reads the server's first line. Answered with
/// the connect time when that line starts with `SSH-`; lost with
/// [`Lost::BadAnswer`] when it does not, [`Lost::ShortRead`] when the
/// connection ends before a whole line, [`Lost::Timeout`] when connect and
/// line together take longer than `timeout`.
pub async fn banner_ping(addr: SocketAddr, timeout: Duration) -> PingResult {
    let started = Instant::now();
    let (mut stream, rtt) = tcp::connect(addr, None, timeout).await?;
    let remaining = timeout.saturating_sub(started.elapsed());
    let line = tokio::time::timeout(remaining, read_first_line(&mut stream))
        .await
        .map_err(|_| Lost::Timeout)??;
    drop(stream);
    check_banner(&line)?;
    Ok(rtt)
}

/// Reads up to the first `\n` (or [`MAX_LINE`] bytes).
async fn read_first_line(stream: &mut tokio::net::TcpStream) -> Result<Vec<u8>, Lost> {
    let mut line = Vec::with_capacity(64);
    let mut buf = [0u8; MAX_LINE];
    loop {
        let want = MAX_LINE - line.len();
        let n = stream
            .read(&mut buf[..want])
            .await
            .map_err(|e| Lost::from_io(&e))?;
        if n == 0 {
            return Err(Lost::ShortRead(format!(
                "connection closed after {} bytes, before an SSH banner",
                line.len()
            )));
        }
        let chunk = &buf[..n];
        if let Some(end) = chunk.iter().position(|&b| b == b'\n') {
            line.extend_from_slice(&chunk[..end]);
            return Ok(line);
        }
        line.extend_from_slice(chunk);
        if line.len() >= MAX_LINE {
            return Ok(line);
        }
    }
}

/// Accepts a line starting with `SSH-`.
fn check_banner(line: &[u8]) -> Result<(), Lost> {
    if line.starts_with(b"SSH-") {
        return Ok(());
    }
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end_matches('\r');
    let shown: String = text.chars().take(64).collect();
    Err(Lost::BadAnswer(format!("no SSH banner: {shown:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banners_are_checked() {
        assert!(check_banner(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r").is_ok());
        assert!(check_banner(b"SSH-1.99-old").is_ok());
        assert_eq!(
            check_banner(b"HTTP/1.0 400 Bad Request\r"),
            Err(Lost::BadAnswer(
                "no SSH banner: \"HTTP/1.0 400 Bad Request\"".into()
            ))
        );
        assert!(matches!(check_banner(b""), Err(Lost::BadAnswer(_))));
        assert!(matches!(
            check_banner(b"ssh-2.0-lower"),
            Err(Lost::BadAnswer(_))
        ));
    }
}
