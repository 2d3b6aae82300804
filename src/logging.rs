//! Logging that can never stop the daemon.
//!
//! `tracing-subscriber` formats each event into a [`LineBuf`], which hands
//! the finished line to a bounded queue without ever blocking or failing:
//! when the queue is full the line is dropped and counted. One worker
//! thread writes the queue out — to standard error, or to syslog
//! (`/dev/log`, facility daemon, ident `pingmachine`) — and a line it
//! cannot write (a closed pipe, a full disk, `/dev/full`, no syslog) is
//! dropped and counted too. A blocked terminal blocks only the worker; the
//! queue then fills and further lines are dropped. Nothing here panics.
//!
//! The queue exists from [`install`] on, but the worker starts only with
//! [`Logging::start`], so the daemon can detach (fork) and drop its
//! privileges before any thread exists; lines logged before that wait in
//! the queue. [`Logging::finish`] drains what is left, bounded in time.

use probes::sync::lock;
use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// Lines waiting for the worker, at most.
const QUEUE_LINES: usize = 8192;
/// The syslog socket.
pub const SYSLOG_SOCKET: &str = "/dev/log";
/// Syslog facility "daemon" (3 << 3).
const FACILITY_DAEMON: u8 = 3 << 3;
/// The ident of syslog lines, as the original's.
const IDENT: &str = "pingmachine";
/// How long a syslog send may block before the line is dropped.
const SYSLOG_SEND_TIMEOUT: Duration = Duration::from_secs(1);
/// A lost syslog socket is looked for again at most this often.
const SYSLOG_RECONNECT: Duration = Duration::from_secs(5);

/// Lines dropped since start: queue full, or the write failed.
static DROPPED: AtomicU64 = AtomicU64::new(0);
/// Lines written.
static WRITTEN: AtomicU64 = AtomicU64::new(0);

/// Lines dropped so far (queue full or write failed).
pub fn dropped() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// Lines written so far.
pub fn written() -> u64 {
    WRITTEN.load(Ordering::Relaxed)
}

/// Where the lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Standard error, with timestamps (colours on a terminal).
    Stderr,
    /// Syslog through `/dev/log`: facility daemon, ident `pingmachine`,
    /// the severity from the level.
    Syslog,
}

/// One formatted event.
#[derive(Debug)]
struct Line {
    level: Level,
    text: Vec<u8>,
}

/// The writer `tracing-subscriber` formats into: one per event.
#[derive(Debug)]
pub struct QueueWriter {
    tx: SyncSender<Line>,
}

/// The bytes of one event; queued when dropped.
#[derive(Debug)]
pub struct LineBuf<'a> {
    owner: &'a QueueWriter,
    level: Level,
    buf: Vec<u8>,
}

impl Write for LineBuf<'_> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineBuf<'_> {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let line = Line {
            level: self.level,
            text: std::mem::take(&mut self.buf),
        };
        match self.owner.tx.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                DROPPED.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl<'a> MakeWriter<'a> for QueueWriter {
    type Writer = LineBuf<'a>;

    fn make_writer(&'a self) -> LineBuf<'a> {
        LineBuf {
            owner: self,
            level: Level::INFO,
            buf: Vec::new(),
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> LineBuf<'a> {
        LineBuf {
            owner: self,
            level: *meta.level(),
            buf: Vec::new(),
        }
    }
}

/// The installed logger: start its worker, then finish it at exit.
#[derive(Debug)]
pub struct Logging {
    target: Target,
    rx: Mutex<Option<Receiver<Line>>>,
    stop: Arc<AtomicBool>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

/// The filter: `PINGMACHINE_LOG` if set, else `default` (`info` or
/// `debug`) with the chattier dependencies held back.
fn filter(default: &str) -> EnvFilter {
    EnvFilter::try_from_env("PINGMACHINE_LOG").unwrap_or_else(|_| {
        EnvFilter::new(format!(
            "{default},notify=warn,rrd=warn,hyper_util=info,reqwest=info,rustls=info,hickory_proto=info,hickory_net=info,hickory_resolver=info"
        ))
    })
}

/// Installs the global subscriber writing to `target` at `default_level`
/// (see [`filter`]). Lines queue until [`Logging::start`].
pub fn install(target: Target, default_level: &str) -> Logging {
    let (tx, rx) = mpsc::sync_channel(QUEUE_LINES);
    let writer = QueueWriter { tx };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(default_level))
        .with_writer(writer);
    // A second install (only in tests) keeps the first subscriber.
    let _ = match target {
        Target::Stderr => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        Target::Syslog => builder
            .with_ansi(false)
            .without_time()
            .with_level(false)
            .try_init(),
    };
    Logging {
        target,
        rx: Mutex::new(Some(rx)),
        stop: Arc::new(AtomicBool::new(false)),
        worker: Mutex::new(None),
    }
}

impl Logging {
    /// Starts the worker thread (once). Falls back to writing nothing
    /// (counting every line as dropped) if the thread cannot start.
    pub fn start(&self) {
        let Some(rx) = lock(&self.rx).take() else {
            return;
        };
        let (target, stop) = (self.target, Arc::clone(&self.stop));
        let spawned = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || work(target, &rx, &stop));
        if let Ok(h) = spawned {
            *lock(&self.worker) = Some(h);
        }
    }

    /// Writes out what is queued (starting the worker if needed), waiting
    /// at most `timeout`: a blocked output cannot hold up the exit.
    pub fn finish(&self, timeout: Duration) {
        self.start();
        self.stop.store(true, Ordering::Relaxed);
        let Some(h) = lock(&self.worker).take() else {
            return;
        };
        let deadline = Instant::now() + timeout;
        while !h.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if h.is_finished() {
            let _ = h.join();
        }
    }
}

/// The worker: writes queued lines until stopped and drained.
fn work(target: Target, rx: &Receiver<Line>, stop: &AtomicBool) {
    let mut out = Output::new(target);
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => out.write(&line),
            Err(RecvTimeoutError::Timeout) if stop.load(Ordering::Relaxed) => {
                // Drained (nothing came for 100 ms) and asked to stop.
                return;
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// Where the worker writes.
enum Output {
    Stderr,
    Syslog {
        socket: Option<UnixDatagram>,
        last_try: Option<Instant>,
        pid: u32,
    },
}

impl Output {
    fn new(target: Target) -> Output {
        match target {
            Target::Stderr => Output::Stderr,
            Target::Syslog => Output::Syslog {
                socket: None,
                last_try: None,
                pid: std::process::id(),
            },
        }
    }

    fn write(&mut self, line: &Line) {
        let ok = match self {
            Output::Stderr => std::io::stderr().write_all(&line.text).is_ok(),
            Output::Syslog {
                socket,
                last_try,
                pid,
            } => {
                if socket.is_none() && last_try.is_none_or(|t| t.elapsed() >= SYSLOG_RECONNECT) {
                    *last_try = Some(Instant::now());
                    *socket = connect_syslog();
                }
                match socket {
                    Some(s) => {
                        let msg = syslog_message(line.level, *pid, &line.text);
                        let sent = s.send(&msg).is_ok();
                        if !sent {
                            // Syslog restarted or went away: reconnect later.
                            *socket = None;
                        }
                        sent
                    }
                    None => false,
                }
            }
        };
        if ok {
            WRITTEN.fetch_add(1, Ordering::Relaxed);
        } else {
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn connect_syslog() -> Option<UnixDatagram> {
    let s = UnixDatagram::unbound().ok()?;
    s.connect(SYSLOG_SOCKET).ok()?;
    s.set_write_timeout(Some(SYSLOG_SEND_TIMEOUT)).ok()?;
    Some(s)
}

/// The syslog severity of a level (RFC 5424 numbers).
fn severity(level: Level) -> u8 {
    match level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

/// `<PRI>pingmachine[PID]: message` (the local syslog socket's format;
/// the receiver adds the time and host).
fn syslog_message(level: Level, pid: u32, text: &[u8]) -> Vec<u8> {
    let mut msg = format!("<{}>{IDENT}[{pid}]: ", FACILITY_DAEMON + severity(level)).into_bytes();
    let text = text.strip_suffix(b"\n").unwrap_or(text);
    // One line per message: a multi-line event becomes one line.
    msg.extend(text.iter().map(|&b| if b == b'\n' { b' ' } else { b }));
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syslog_lines_carry_facility_severity_and_ident() {
        let m = syslog_message(Level::WARN, 42, b"registry: disk full\nsecond\n");
        assert_eq!(
            m,
            b"<28>pingmachine[42]: registry: disk full second".to_vec()
        );
        assert!(syslog_message(Level::INFO, 1, b"x").starts_with(b"<30>"));
        assert!(syslog_message(Level::ERROR, 1, b"x").starts_with(b"<27>"));
        assert!(syslog_message(Level::DEBUG, 1, b"x").starts_with(b"<31>"));
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_blocking() {
        let (tx, rx) = mpsc::sync_channel(2);
        let w = QueueWriter { tx };
        let before = dropped();
        for i in 0..5 {
            let mut b = w.make_writer();
            let _ = write!(b, "line {i}");
        }
        assert_eq!(dropped() - before, 3);
        assert_eq!(rx.try_iter().count(), 2);
        // No receiver at all: still no panic, still counted.
        drop(rx);
        let mut b = w.make_writer();
        let _ = write!(b, "x");
        drop(b);
        assert_eq!(dropped() - before, 4);
    }
}
