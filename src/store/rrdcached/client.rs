//! The queued client: a bounded queue of updates and synchronous requests,
//! one thread that sends it over a [`Conn`] in order, reconnects with a
//! back-off, and counts what it sends, drops and is refused.

use std::collections::{HashSet, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use super::codec::{create_args, Conn};
use super::{Addr, CachedError, BACKOFF_MAX, BATCH, SYNC_WAIT};
use crate::telemetry::Sheet;

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
        probes::sync::lock(&self.shared.queue)
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
        let thread = probes::sync::lock(&self.thread).take();
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
        probes::sync::lock(&self.shared.queue)
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
