//! `--rrdcached ADDR`: RRD updates through rrdcached, which journals them
//! and writes each file's rows in batches (the engine rrdtool, collectd and
//! SmokePing installations already use).
//!
//! It speaks rrdcached's documented line protocol (`rrdcached(1)`) over a
//! unix or TCP socket, in safe Rust, rather than librrd's C client: the
//! client owns its timeouts and its queue, so a slow or dead rrdcached
//! costs probing nothing.
//!
//! * The writer threads hand each round's update to [`RrdCached::update`],
//!   which only queues it (bounded: when the queue is full the update is
//!   dropped and counted, with one log line until updates flow again).
//! * One client thread sends the queue in `BATCH`es over one connection,
//!   in order. When rrdcached cannot be reached it logs once, keeps queuing
//!   up to the bound, and reconnects with a back-off (1 s doubling to 10 s);
//!   when it is back, the queue drains. Nothing needs a restart.
//! * What must be ordered with the updates goes through the same queue and
//!   waits for its answer: `CREATE` (a new `main.rrd`), and `FLUSH` then
//!   `FORGET` of a file before it is moved (archive) or renamed (shape
//!   change, corruption), so that no pending update lands in the wrong
//!   file. While rrdcached is down these answer [`Answer::Down`] at once and
//!   the queued updates of that file are dropped (counted): the caller
//!   creates the file locally, or moves it.
//! * Readers (`graph`, the web page) send `FLUSH` on a connection of their
//!   own before drawing ([`flush_one`]).
//!
//! Paths are absolute; rrdcached keys its cache by the name it is given, so
//! every user of one file sends the same canonical path (the base directory
//! is canonicalised once). rrdcached's protocol separates arguments by
//! spaces, so a path with white space cannot be sent ([`check_path`]).
//!
//! * [`codec`] — the protocol on one connection.
//! * [`client`] — the queue and its sender thread.

mod client;
mod codec;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use client::{Answer, CachedStats, RrdCached};
pub use codec::{flush_for_reading, flush_one, Conn};

/// rrdcached's default TCP port.
pub const DEFAULT_PORT: u16 = 42217;
/// Connect, read and write timeout of one operation.
const IO_TIMEOUT: Duration = Duration::from_secs(3);
/// Most updates in one `BATCH`.
const BATCH: usize = 2000;
/// How long [`RrdCached::create`] and [`RrdCached::flush_forget`] wait for
/// their turn and answer.
const SYNC_WAIT: Duration = Duration::from_secs(10);
/// Longest wait between reconnection attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// Default bound of the update queue (`--rrdcached-queue`).
pub const DEFAULT_QUEUE: usize = 100_000;

/// Where rrdcached listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addr {
    /// `unix:/path` or `/path`.
    Unix(PathBuf),
    /// `host:port`, `[v6]:port`, or a host alone (port 42217).
    Tcp(String),
}

impl std::fmt::Display for Addr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Addr::Unix(p) => write!(f, "unix:{}", p.display()),
            Addr::Tcp(a) => f.write_str(a),
        }
    }
}

/// Why an rrdcached address is refused (each names the address given).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddrError {
    /// `unix:` with a relative path.
    #[error("{0:?}: a unix socket path must be absolute")]
    RelativeUnix(String),
    /// Empty, or white space inside.
    #[error("{0:?}: expected unix:/path, host or host:port")]
    Malformed(String),
    /// `[` without `]`.
    #[error("{0:?}: missing ']' after an IPv6 address")]
    UnclosedBracket(String),
    /// Something after `]` that is not `:port`.
    #[error("{0:?}: expected [address]:port")]
    AfterBracket(String),
    /// A port that is not 1-65535.
    #[error("{0:?}: port {1:?} is not 1-65535")]
    Port(String, String),
    /// No host before the port.
    #[error("{0:?}: no host")]
    NoHost(String),
}

/// Parses an address as rrdtool's `--daemon` and `RRDCACHED_ADDRESS` take
/// it: `unix:/path`, `/path`, `host`, `host:port`, `[v6addr]:port`.
pub fn parse_addr(s: &str) -> Result<Addr, AddrError> {
    let s = s.trim();
    if let Some(p) = s.strip_prefix("unix:") {
        if !p.starts_with('/') {
            return Err(AddrError::RelativeUnix(s.to_owned()));
        }
        return Ok(Addr::Unix(PathBuf::from(p)));
    }
    if s.starts_with('/') {
        return Ok(Addr::Unix(PathBuf::from(s)));
    }
    if s.is_empty() || s.contains(char::is_whitespace) {
        return Err(AddrError::Malformed(s.to_owned()));
    }
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest
            .split_once(']')
            .ok_or_else(|| AddrError::UnclosedBracket(s.to_owned()))?;
        match after.strip_prefix(':') {
            Some(p) => (format!("[{h}]"), p),
            None if after.is_empty() => (format!("[{h}]"), ""),
            None => return Err(AddrError::AfterBracket(s.to_owned())),
        }
    } else if s.matches(':').count() == 1 {
        let (h, p) = s.split_once(':').unwrap_or((s, ""));
        (h.to_owned(), p)
    } else if s.contains(':') {
        // A bare IPv6 address.
        (format!("[{s}]"), "")
    } else {
        (s.to_owned(), "")
    };
    let port = if port.is_empty() {
        DEFAULT_PORT
    } else {
        match port.parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => return Err(AddrError::Port(s.to_owned(), port.to_owned())),
        }
    };
    if host.is_empty() || host == "[]" {
        return Err(AddrError::NoHost(s.to_owned()));
    }
    Ok(Addr::Tcp(format!("{host}:{port}")))
}

/// Why a path cannot be named in rrdcached's protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Arguments are separated by spaces.
    #[error("{}: rrdcached's protocol cannot name a path with white space", .0.display())]
    WhiteSpace(PathBuf),
    /// The protocol is text.
    #[error("{}: not UTF-8", .0.display())]
    NotUtf8(PathBuf),
}

/// Whether `path` can be named in rrdcached's protocol (no white space).
pub fn check_path(path: &Path) -> Result<(), PathError> {
    match path.to_str() {
        Some(s) if !s.contains(char::is_whitespace) => Ok(()),
        Some(_) => Err(PathError::WhiteSpace(path.to_owned())),
        None => Err(PathError::NotUtf8(path.to_owned())),
    }
}

/// A failed protocol exchange.
#[derive(Debug, thiserror::Error)]
pub enum CachedError {
    /// The connection failed (refused, reset, timed out): retry later.
    #[error("rrdcached at {addr}: {source}")]
    Io {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// rrdcached answered with an error status.
    #[error("rrdcached refused {command}: {message}")]
    Refused {
        /// The command's first word and file.
        command: String,
        /// rrdcached's message.
        message: String,
    },
}

#[cfg(test)]
mod tests;
