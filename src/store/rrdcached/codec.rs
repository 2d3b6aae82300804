//! rrdcached's line protocol on one connection: connecting (unix or TCP,
//! with timeouts), commands and their replies, `BATCH`, and the one-shot
//! `FLUSH` of readers.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::Path;

use super::{Addr, CachedError, IO_TIMEOUT};

enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Stream {
    fn connect(addr: &Addr) -> std::io::Result<Stream> {
        let s = match addr {
            Addr::Unix(p) => {
                let s = UnixStream::connect(p)?;
                s.set_read_timeout(Some(IO_TIMEOUT))?;
                s.set_write_timeout(Some(IO_TIMEOUT))?;
                Stream::Unix(s)
            }
            Addr::Tcp(a) => {
                use std::net::ToSocketAddrs;
                let mut last = std::io::Error::other("no address");
                let mut found = None;
                for sa in a.to_socket_addrs()? {
                    match TcpStream::connect_timeout(&sa, IO_TIMEOUT) {
                        Ok(s) => {
                            found = Some(s);
                            break;
                        }
                        Err(e) => last = e,
                    }
                }
                let s = found.ok_or(last)?;
                s.set_read_timeout(Some(IO_TIMEOUT))?;
                s.set_write_timeout(Some(IO_TIMEOUT))?;
                s.set_nodelay(true)?;
                Stream::Tcp(s)
            }
        };
        Ok(s)
    }

    fn try_clone(&self) -> std::io::Result<Stream> {
        Ok(match self {
            Stream::Unix(s) => Stream::Unix(s.try_clone()?),
            Stream::Tcp(s) => Stream::Tcp(s.try_clone()?),
        })
    }
}

impl std::io::Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Tcp(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Unix(s) => s.write(buf),
            Stream::Tcp(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Unix(s) => s.flush(),
            Stream::Tcp(s) => s.flush(),
        }
    }
}

/// One connection to rrdcached.
pub struct Conn {
    addr: String,
    reader: BufReader<Stream>,
    writer: Stream,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn").field("addr", &self.addr).finish()
    }
}

/// An answer: status and message, then `status` more lines when positive.
#[derive(Debug)]
pub(super) struct Reply {
    status: i64,
    message: String,
    lines: Vec<String>,
}

impl Conn {
    /// Connects (with [`IO_TIMEOUT`]).
    pub fn connect(addr: &Addr) -> Result<Conn, CachedError> {
        let name = addr.to_string();
        let io = |source| CachedError::Io {
            addr: name.clone(),
            source,
        };
        let stream = Stream::connect(addr).map_err(io)?;
        let writer = stream.try_clone().map_err(io)?;
        Ok(Conn {
            addr: addr.to_string(),
            reader: BufReader::new(stream),
            writer,
        })
    }

    fn io(&self, source: std::io::Error) -> CachedError {
        CachedError::Io {
            addr: self.addr.clone(),
            source,
        }
    }

    fn read_line(&mut self) -> Result<String, CachedError> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => Err(self.io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed",
            ))),
            Ok(_) => Ok(line.trim_end_matches(['\r', '\n']).to_owned()),
            Err(e) => Err(self.io(e)),
        }
    }

    fn reply(&mut self) -> Result<Reply, CachedError> {
        let head = self.read_line()?;
        let (status, message) = head.split_once(' ').unwrap_or((head.as_str(), ""));
        let status: i64 = status.parse().map_err(|_| {
            self.io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("not an rrdcached answer: {head:?}"),
            ))
        })?;
        let message = message.to_owned();
        let mut lines = Vec::new();
        for _ in 0..status.max(0) {
            lines.push(self.read_line()?);
        }
        Ok(Reply {
            status,
            message,
            lines,
        })
    }

    /// Sends one command line; its answer, or [`CachedError::Refused`].
    pub(super) fn command(&mut self, line: &str) -> Result<Reply, CachedError> {
        let mut buf = line.to_owned();
        buf.push('\n');
        if let Err(e) = self.writer.write_all(buf.as_bytes()) {
            return Err(self.io(e));
        }
        let r = self.reply()?;
        if r.status < 0 {
            let command: String = line.split(' ').take(2).collect::<Vec<_>>().join(" ");
            return Err(CachedError::Refused {
                command,
                message: r.message,
            });
        }
        Ok(r)
    }

    /// `FLUSH path`: rrdcached writes the file's pending values now.
    pub fn flush(&mut self, path: &str) -> Result<(), CachedError> {
        self.command(&format!("FLUSH {path}")).map(|_| ())
    }

    /// `FORGET path`: rrdcached drops the file from its cache (pending
    /// values are lost: [`Conn::flush`] first).
    pub fn forget(&mut self, path: &str) -> Result<(), CachedError> {
        self.command(&format!("FORGET {path}")).map(|_| ())
    }

    /// `STATS`: rrdcached's counters (`QueueLength`, `UpdatesReceived`,
    /// `DataSetsWritten`, …).
    pub fn stats(&mut self) -> Result<Vec<(String, u64)>, CachedError> {
        let r = self.command("STATS")?;
        Ok(r.lines
            .iter()
            .filter_map(|l| {
                let (k, v) = l.split_once(':')?;
                Some((k.trim().to_owned(), v.trim().parse().ok()?))
            })
            .collect())
    }

    /// Sends `lines` in one `BATCH`; the errors, as (index into `lines`,
    /// message). A connection failure is an `Err`: nothing is known to have
    /// been taken.
    pub(super) fn batch(&mut self, lines: &[String]) -> Result<Vec<(usize, String)>, CachedError> {
        let r = self.command("BATCH")?;
        if r.status != 0 {
            return Err(CachedError::Refused {
                command: "BATCH".into(),
                message: r.message,
            });
        }
        let mut buf = String::with_capacity(lines.len() * 120 + 2);
        for l in lines {
            buf.push_str(l);
            buf.push('\n');
        }
        buf.push_str(".\n");
        if let Err(e) = self.writer.write_all(buf.as_bytes()) {
            return Err(self.io(e));
        }
        let r = self.reply()?;
        // "<n> errors", then "<command number> <message>" (1-based).
        Ok(r.lines
            .iter()
            .filter_map(|l| {
                let (n, msg) = l.split_once(' ')?;
                let n: usize = n.parse().ok()?;
                Some((n.checked_sub(1)?, msg.to_owned()))
            })
            .collect())
    }
}

/// Flushes one file on a connection of its own (readers: `graph`, the web
/// page), so that what they draw includes every value rrdcached holds.
pub fn flush_one(addr: &Addr, path: &Path) -> Result<(), CachedError> {
    let name = path.to_string_lossy();
    Conn::connect(addr)?.flush(&name)
}

/// [`flush_one`] of `path` by its canonical name, as the daemon names it
/// (readers may reach the base directory through a symbolic link).
pub fn flush_for_reading(addr: &Addr, path: &Path) -> Result<(), CachedError> {
    let canonical = std::fs::canonicalize(path).map_err(|source| CachedError::Io {
        addr: addr.to_string(),
        source,
    })?;
    flush_one(addr, &canonical)
}

/// The `CREATE` arguments of a `main.rrd` (rrdtool create syntax).
pub(super) fn create_args(step: u32, pings: u32, start: i64) -> String {
    let heartbeat = u64::from(step) * 2;
    let mut s = format!("-b {start} -s {step} -O");
    for d in crate::store::rrd::data_sources(pings) {
        s.push_str(&format!(
            " DS:{}:GAUGE:{heartbeat}:{}:{}",
            d.name, d.min, d.max
        ));
    }
    for r in crate::store::rrd::archives(step) {
        s.push_str(&format!(" RRA:{}:0.5:{}:{}", r.cf.name(), r.steps, r.rows));
    }
    s
}
