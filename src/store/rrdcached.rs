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

use std::collections::{HashSet, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use crate::telemetry::Sheet;

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

/// Parses an address as rrdtool's `--daemon` and `RRDCACHED_ADDRESS` take
/// it: `unix:/path`, `/path`, `host`, `host:port`, `[v6addr]:port`.
pub fn parse_addr(s: &str) -> Result<Addr, String> {
    let s = s.trim();
    if let Some(p) = s.strip_prefix("unix:") {
        if !p.starts_with('/') {
            return Err(format!("{s:?}: a unix socket path must be absolute"));
        }
        return Ok(Addr::Unix(PathBuf::from(p)));
    }
    if s.starts_with('/') {
        return Ok(Addr::Unix(PathBuf::from(s)));
    }
    if s.is_empty() || s.contains(char::is_whitespace) {
        return Err(format!("{s:?}: expected unix:/path, host or host:port"));
    }
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("{s:?}: missing ']' after an IPv6 address"))?;
        match after.strip_prefix(':') {
            Some(p) => (format!("[{h}]"), p),
            None if after.is_empty() => (format!("[{h}]"), ""),
            None => return Err(format!("{s:?}: expected [address]:port")),
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
            _ => return Err(format!("{s:?}: port {port:?} is not 1-65535")),
        }
    };
    if host.is_empty() || host == "[]" {
        return Err(format!("{s:?}: no host"));
    }
    Ok(Addr::Tcp(format!("{host}:{port}")))
}

/// Whether `path` can be named in rrdcached's protocol (no white space).
pub fn check_path(path: &Path) -> Result<(), String> {
    match path.to_str() {
        Some(s) if !s.contains(char::is_whitespace) => Ok(()),
        Some(_) => Err(format!(
            "{}: rrdcached's protocol cannot name a path with white space",
            path.display()
        )),
        None => Err(format!("{}: not UTF-8", path.display())),
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
struct Reply {
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
    fn command(&mut self, line: &str) -> Result<Reply, CachedError> {
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
    fn batch(&mut self, lines: &[String]) -> Result<Vec<(usize, String)>, CachedError> {
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
fn create_args(step: u32, pings: u32, start: i64) -> String {
    let heartbeat = u64::from(step) * 2;
    let mut s = format!("-b {start} -s {step} -O");
    for d in super::rrd::data_sources(pings) {
        s.push_str(&format!(
            " DS:{}:GAUGE:{heartbeat}:{}:{}",
            d.name, d.min, d.max
        ));
    }
    for r in super::rrd::archives(step) {
        s.push_str(&format!(" RRA:{}:0.5:{}:{}", r.cf.name(), r.steps, r.rows));
    }
    s
}

/// How a synchronous request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// rrdcached did it.
    Done,
    /// rrdcached cannot be reached (or did not answer in time).
    Down,
    /// rrdcached refused, with its message.
    Refused(String),
}

#[derive(Debug)]
enum Sync {
    Create { args: String },
    FlushForget,
}

#[derive(Debug)]
enum Item {
    Update {
        path: Arc<str>,
        line: String,
    },
    Sync {
        op: Sync,
        path: Arc<str>,
        reply: std::sync::mpsc::SyncSender<Answer>,
    },
}

#[derive(Debug, Default)]
struct Queue {
    items: VecDeque<Item>,
    updates: usize,
    shutdown: bool,
    /// Dropping updates because the queue is full (logged once).
    overflowing: bool,
}

/// Counters of the rrdcached client (`.stats.json` and `/metrics`).
#[derive(Debug, Default)]
pub struct CachedStats {
    /// Updates rrdcached took.
    pub sent: AtomicU64,
    /// Updates rrdcached refused (file missing, time not newer, …).
    pub refused: AtomicU64,
    /// Updates dropped: queue full, or their file moved while rrdcached was
    /// down, or still queued at shutdown with rrdcached down.
    pub dropped: AtomicU64,
    /// Updates waiting now.
    pub queued: AtomicU64,
    /// Most updates waiting at once.
    pub queue_high_water: AtomicU64,
    /// 1 while connected.
    pub connected: AtomicU64,
    /// Connections made.
    pub connects: AtomicU64,
    /// Connections lost or refused.
    pub connect_failures: AtomicU64,
    /// `BATCH`es sent.
    pub batches: AtomicU64,
    /// Files flushed and forgotten before a move.
    pub flushes: AtomicU64,
    /// Files created through rrdcached.
    pub creates: AtomicU64,
}

impl RrdCached {
    /// Its figures: the object `rrdcached` of `.stats.json`, and its series.
    pub fn telemetry(&self, s: &mut Sheet) {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let st = self.stats();
        s.object("rrdcached", |s| {
            s.json("address", self.addr().to_string());
            s.figure("connected", get(&st.connected) == 1)
                .gauge("pingmachine_rrdcached_up", "1 while the connection to rrdcached is up.");
            const UPDATES: &str = "RRD updates for rrdcached: sent (taken), refused by it, or dropped (queue full, file moved while it was down).";
            s.figure("sent", get(&st.sent)).counter_with(
                "pingmachine_rrdcached_updates",
                UPDATES,
                &[("result", "sent")],
            );
            s.figure("refused", get(&st.refused)).counter_with(
                "pingmachine_rrdcached_updates",
                UPDATES,
                &[("result", "refused")],
            );
            s.figure("dropped", get(&st.dropped)).counter_with(
                "pingmachine_rrdcached_updates",
                UPDATES,
                &[("result", "dropped")],
            );
            s.figure("queued", get(&st.queued)).gauge(
                "pingmachine_rrdcached_queue_length",
                "RRD updates waiting for rrdcached.",
            );
            s.json("queue_high_water", get(&st.queue_high_water));
            s.json("batches", get(&st.batches));
            s.json("flushes", get(&st.flushes));
            s.json("creates", get(&st.creates));
            s.json("connects", get(&st.connects));
            s.figure("connect_failures", get(&st.connect_failures)).counter(
                "pingmachine_rrdcached_connect_failures",
                "Connections to rrdcached that failed or were lost.",
            );
        });
    }
}

#[derive(Debug)]
struct Shared {
    addr: Addr,
    bound: usize,
    queue: Mutex<Queue>,
    cv: Condvar,
    stats: CachedStats,
}

/// The rrdcached client: a bounded queue and the thread that sends it.
#[derive(Debug)]
pub struct RrdCached {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl RrdCached {
    /// Starts the client thread for `addr`, queuing at most `bound`
    /// updates. Nothing is connected yet: a down rrdcached is not a
    /// start-up error (it is logged, and updates queue). A panic of the
    /// thread is reported through `guard`.
    pub fn start(
        addr: Addr,
        bound: usize,
        guard: Option<crate::supervise::Guard>,
    ) -> std::io::Result<Arc<RrdCached>> {
        let shared = Arc::new(Shared {
            addr,
            bound: bound.max(1),
            queue: Mutex::new(Queue::default()),
            cv: Condvar::new(),
            stats: CachedStats::default(),
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("rrdcached".into())
            .spawn(move || {
                let _guard = guard;
                Sender::new(s).run();
            })?;
        Ok(Arc::new(RrdCached {
            shared,
            thread: Mutex::new(Some(thread)),
        }))
    }

    /// The address.
    pub fn addr(&self) -> &Addr {
        &self.shared.addr
    }

    /// The counters.
    pub fn stats(&self) -> &CachedStats {
        &self.shared.stats
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.shared
            .queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues `UPDATE path t:v:…`; never blocks. Returns false when the
    /// queue is full and the update was dropped.
    pub fn update(&self, path: &Path, values: &str) -> bool {
        let path: Arc<str> = Arc::from(path.to_string_lossy().as_ref());
        let mut q = self.lock();
        let st = &self.shared.stats;
        if q.updates >= self.shared.bound {
            st.dropped.fetch_add(1, Ordering::Relaxed);
            if !q.overflowing {
                q.overflowing = true;
                warn!(
                    rrdcached = %self.shared.addr,
                    queued = q.updates,
                    "rrdcached update queue is full: RRD updates are dropped (and counted) until it drains"
                );
            }
            return false;
        }
        let line = format!("UPDATE {path} {values}");
        q.items.push_back(Item::Update { path, line });
        q.updates += 1;
        st.queued.store(q.updates as u64, Ordering::Relaxed);
        st.queue_high_water
            .fetch_max(q.updates as u64, Ordering::Relaxed);
        drop(q);
        self.shared.cv.notify_one();
        true
    }

    fn sync(&self, op: Sync, path: &Path) -> Answer {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let path: Arc<str> = Arc::from(path.to_string_lossy().as_ref());
        self.lock().items.push_back(Item::Sync {
            op,
            path,
            reply: tx,
        });
        self.shared.cv.notify_one();
        rx.recv_timeout(SYNC_WAIT).unwrap_or(Answer::Down)
    }

    /// `CREATE`s a `main.rrd` through rrdcached, after every update queued
    /// before it.
    pub fn create(&self, path: &Path, step: u32, pings: u32, start: i64) -> Answer {
        let args = create_args(step, pings, start);
        self.sync(Sync::Create { args }, path)
    }

    /// Sends every update of `path` queued so far, then has rrdcached
    /// write and forget the file: call before moving or renaming it. While
    /// rrdcached is down: [`Answer::Down`] at once, and the queued updates
    /// of `path` are dropped.
    pub fn flush_forget(&self, path: &Path) -> Answer {
        self.sync(Sync::FlushForget, path)
    }

    /// Sends what is queued (for at most `wait`, then drops the rest,
    /// counted), and stops the thread.
    pub fn shutdown(&self, wait: Duration) {
        self.lock().shutdown = true;
        self.shared.cv.notify_all();
        let deadline = Instant::now() + wait;
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(t) = thread {
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if t.is_finished() {
                let _ = t.join();
            } else {
                let n = self.stats().queued.load(Ordering::Relaxed);
                warn!(rrdcached = %self.shared.addr, queued = n, "rrdcached did not take the queued updates in time; they are lost");
            }
        }
    }
}

/// The client thread.
struct Sender {
    shared: Arc<Shared>,
    conn: Option<Conn>,
    /// Logged that rrdcached is down (until it is back).
    down_since: Option<Instant>,
    dropped_at_down: u64,
    backoff: Duration,
    next_try: Instant,
    /// Files whose update was refused (logged once each until flushed).
    refused: HashSet<Arc<str>>,
    creates_unsupported: bool,
}

impl Sender {
    fn new(shared: Arc<Shared>) -> Sender {
        Sender {
            shared,
            conn: None,
            down_since: None,
            dropped_at_down: 0,
            backoff: Duration::from_secs(1),
            next_try: Instant::now(),
            refused: HashSet::new(),
            creates_unsupported: false,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.shared
            .queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn run(mut self) {
        loop {
            // Wait for work (or the next reconnection attempt).
            let (work, shutdown) = {
                let mut q = self.lock();
                while q.items.is_empty() && !q.shutdown {
                    q = self
                        .shared
                        .cv
                        .wait_timeout(q, Duration::from_secs(1))
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .0;
                }
                (!q.items.is_empty(), q.shutdown)
            };
            if !work && shutdown {
                return;
            }
            if self.conn.is_none() && !self.reconnect() {
                if shutdown {
                    self.drop_all("at shutdown");
                    return;
                }
                // Down: answer what waits for an answer, then wait.
                self.answer_down();
                let until = self.next_try;
                let mut q = self.lock();
                while Instant::now() < until && !q.shutdown {
                    let left = until.saturating_duration_since(Instant::now());
                    q = self
                        .shared
                        .cv
                        .wait_timeout(q, left.min(Duration::from_millis(200)))
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .0;
                    if q.items.iter().any(|i| matches!(i, Item::Sync { .. })) {
                        drop(q);
                        self.answer_down();
                        q = self.lock();
                    }
                }
                continue;
            }
            self.send_some();
        }
    }

    fn reconnect(&mut self) -> bool {
        if Instant::now() < self.next_try {
            return false;
        }
        let st = &self.shared.stats;
        match Conn::connect(&self.shared.addr) {
            Ok(c) => {
                self.conn = Some(c);
                st.connected.store(1, Ordering::Relaxed);
                st.connects.fetch_add(1, Ordering::Relaxed);
                self.backoff = Duration::from_secs(1);
                if let Some(since) = self.down_since.take() {
                    let dropped = st.dropped.load(Ordering::Relaxed) - self.dropped_at_down;
                    info!(
                        rrdcached = %self.shared.addr,
                        down_s = since.elapsed().as_secs(),
                        queued = st.queued.load(Ordering::Relaxed),
                        dropped,
                        "rrdcached is reachable again: sending the queued RRD updates"
                    );
                } else {
                    debug!(rrdcached = %self.shared.addr, "connected to rrdcached");
                }
                true
            }
            Err(e) => {
                st.connect_failures.fetch_add(1, Ordering::Relaxed);
                self.went_down(&e);
                false
            }
        }
    }

    fn went_down(&mut self, e: &CachedError) {
        let st = &self.shared.stats;
        self.conn = None;
        st.connected.store(0, Ordering::Relaxed);
        if self.down_since.is_none() {
            self.down_since = Some(Instant::now());
            self.dropped_at_down = st.dropped.load(Ordering::Relaxed);
            warn!(
                error = %e,
                bound = self.shared.bound,
                "rrdcached cannot be reached: RRD updates queue (up to the bound, then are dropped and counted); retrying"
            );
        }
        self.next_try = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }

    /// While down: answers every waiting request with `Down`; a flush
    /// drops the queued updates of its file first (the file is about to
    /// move, and rrdcached would write them into whatever is there later).
    fn answer_down(&mut self) {
        let mut q = self.lock();
        let items: Vec<Item> = q.items.drain(..).collect();
        // Where each file's last flush waits: updates of that file queued
        // before it go (later ones belong to the order's next life there).
        let mut last_flush: std::collections::HashMap<Arc<str>, usize> =
            std::collections::HashMap::new();
        for (n, i) in items.iter().enumerate() {
            if let Item::Sync {
                op: Sync::FlushForget,
                path,
                ..
            } = i
            {
                last_flush.insert(path.clone(), n);
            }
        }
        let mut keep = VecDeque::with_capacity(items.len());
        let mut dropped = 0usize;
        let mut replies = Vec::new();
        for (n, i) in items.into_iter().enumerate() {
            match i {
                Item::Sync { reply, .. } => replies.push(reply),
                Item::Update { ref path, .. } if last_flush.get(path).is_some_and(|f| n < *f) => {
                    dropped += 1;
                }
                u @ Item::Update { .. } => keep.push_back(u),
            }
        }
        q.items = keep;
        q.updates -= dropped;
        let st = &self.shared.stats;
        st.dropped.fetch_add(dropped as u64, Ordering::Relaxed);
        st.queued.store(q.updates as u64, Ordering::Relaxed);
        drop(q);
        // Answered once the counters say what happened.
        for r in replies {
            let _ = r.try_send(Answer::Down);
        }
    }

    fn drop_all(&mut self, why: &str) {
        let mut q = self.lock();
        let n = q.updates;
        let replies: Vec<_> = q
            .items
            .drain(..)
            .filter_map(|i| match i {
                Item::Sync { reply, .. } => Some(reply),
                Item::Update { .. } => None,
            })
            .collect();
        q.updates = 0;
        let st = &self.shared.stats;
        st.dropped.fetch_add(n as u64, Ordering::Relaxed);
        st.queued.store(0, Ordering::Relaxed);
        drop(q);
        for r in replies {
            let _ = r.try_send(Answer::Down);
        }
        if n > 0 {
            warn!(rrdcached = %self.shared.addr, dropped = n, "rrdcached cannot be reached {why}: queued RRD updates dropped");
        }
    }

    /// Sends the next run of updates as one batch, or the next request.
    fn send_some(&mut self) {
        let mut batch: Vec<(Arc<str>, String)> = Vec::new();
        let mut sync = None;
        {
            let mut q = self.lock();
            while batch.len() < BATCH {
                match q.items.front() {
                    Some(Item::Update { .. }) => {
                        if let Some(Item::Update { path, line }) = q.items.pop_front() {
                            batch.push((path, line));
                        }
                    }
                    Some(Item::Sync { .. }) if batch.is_empty() => {
                        sync = q.items.pop_front();
                        break;
                    }
                    _ => break,
                }
            }
        }
        if !batch.is_empty() {
            self.send_batch(batch);
        } else if let Some(Item::Sync { op, path, reply }) = sync {
            // Every update queued before it was sent already.
            let _ = reply.try_send(self.request(&op, &path));
        }
    }

    fn send_batch(&mut self, batch: Vec<(Arc<str>, String)>) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        let lines: Vec<String> = batch.iter().map(|(_, l)| l.clone()).collect();
        let r = if lines.len() == 1 {
            match conn.command(&lines[0]) {
                Ok(_) => Ok(Vec::new()),
                Err(CachedError::Refused { message, .. }) => Ok(vec![(0, message)]),
                Err(e) => Err(e),
            }
        } else {
            conn.batch(&lines)
        };
        let st = &self.shared.stats;
        match r {
            Ok(errors) => {
                st.batches.fetch_add(1, Ordering::Relaxed);
                st.sent
                    .fetch_add((batch.len() - errors.len()) as u64, Ordering::Relaxed);
                st.refused.fetch_add(errors.len() as u64, Ordering::Relaxed);
                for (i, msg) in errors {
                    let Some((path, _)) = batch.get(i) else {
                        continue;
                    };
                    if msg.contains("minimum one second step") || msg.contains("illegal attempt") {
                        // The file already has this time (restart, restore).
                        debug!(path = %path, error = %msg, "rrdcached: update not newer than the file; skipped");
                    } else if self.refused.insert(path.clone()) {
                        warn!(path = %path, error = %msg, "rrdcached refused an RRD update (further refusals of this file at debug)");
                    } else {
                        debug!(path = %path, error = %msg, "rrdcached refused an RRD update");
                    }
                }
                let mut q = self.lock();
                q.updates -= batch.len();
                if q.overflowing && q.updates < self.shared.bound / 2 {
                    q.overflowing = false;
                    info!(rrdcached = %self.shared.addr, "rrdcached update queue has room again");
                }
                st.queued.store(q.updates as u64, Ordering::Relaxed);
            }
            Err(e) => {
                // Not taken: put the batch back in front, in order.
                let mut q = self.lock();
                for (path, line) in batch.into_iter().rev() {
                    q.items.push_front(Item::Update { path, line });
                }
                drop(q);
                self.went_down(&e);
            }
        }
    }

    fn request(&mut self, op: &Sync, path: &Arc<str>) -> Answer {
        let Some(conn) = self.conn.as_mut() else {
            return Answer::Down;
        };
        let st = &self.shared.stats;
        let r = match op {
            Sync::Create { args } => {
                if self.creates_unsupported {
                    return Answer::Refused("unknown command".into());
                }
                let r = conn.command(&format!("CREATE {path} {args}"));
                if let Err(CachedError::Refused { message, .. }) = &r {
                    if message.to_ascii_lowercase().contains("unknown command") {
                        self.creates_unsupported = true;
                        warn!(rrdcached = %self.shared.addr, "this rrdcached has no CREATE command (before 1.5): RRD files are created locally, then updated through it");
                    }
                } else if r.is_ok() {
                    st.creates.fetch_add(1, Ordering::Relaxed);
                }
                r.map(|_| ())
            }
            Sync::FlushForget => {
                // FLUSH of a file rrdcached does not hold is refused ("no
                // such file" in its cache): nothing was pending.
                let flushed = match conn.flush(path) {
                    Ok(()) => Ok(()),
                    Err(CachedError::Refused { message, .. }) => {
                        debug!(path = %path, error = %message, "rrdcached: nothing to flush");
                        Ok(())
                    }
                    Err(e) => Err(e),
                };
                flushed
                    .and_then(|()| match conn.forget(path) {
                        Err(CachedError::Refused { .. }) | Ok(()) => Ok(()),
                        Err(e) => Err(e),
                    })
                    .inspect(|()| {
                        st.flushes.fetch_add(1, Ordering::Relaxed);
                        self.refused.remove(path);
                    })
            }
        };
        match r {
            Ok(()) => Answer::Done,
            Err(CachedError::Refused { message, .. }) => Answer::Refused(message),
            Err(e) => {
                self.went_down(&e);
                Answer::Down
            }
        }
    }
}

#[cfg(test)]
mod tests;
