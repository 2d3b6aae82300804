//! A user-space network impairment simulator for accuracy tests (the
//! kernel here has no netem).
//!
//! [`Sim::start`] creates two network namespaces — a *prober* namespace,
//! where the code under test runs (`ip netns exec PROBER ...`, see
//! [`Sim::prober_command`]), and a *host* namespace holding the test
//! hosts — joined by one veth pair, addressed from 198.18.0.0/24 and
//! 2001:db8::/64 only. Before anything is sent it checks that the prober
//! namespace has nothing but `lo`, the veth and their connected routes.
//!
//! In the host namespace the kernel's own echo replies are switched off
//! (`net.ipv4.icmp_echo_ignore_all`, `net.ipv6.icmp.echo_ignore_all`) and
//! the simulator answers instead, from this process: one raw ICMP (or
//! ICMPv6) socket per configured address, opened by a short-lived thread
//! that entered the host namespace with `setns(2)`. A receive thread reads
//! echo requests with kernel receive timestamps and, per address, drops
//! them (seeded RNG, every drop logged), or schedules a reply at *kernel
//! receive time + delay ± jitter*, a late reply, a duplicate, a reply with
//! a foreign identifier, or an ICMP destination-unreachable error. A timer
//! thread sends everything scheduled from a heap (sleeping with 1 ns timer
//! slack, then spinning for the last 200 µs), so a long delay never holds
//! up another reply; what is already due is sent by the receive thread at
//! once. The responder threads run `SCHED_FIFO` (`chrt`), so other work on
//! the machine cannot hold a reply back by a scheduler slice. Every request
//! is logged ([`Sim::requests`]) with its fate and when its answer actually
//! left ([`Request::lateness`] is the simulator's own error).
//!
//! Neighbour entries are permanent both ways (no ARP or neighbour
//! discovery delays a first packet). Code can also run on a thread inside
//! the prober namespace ([`Sim::run_in_prober`]).
//!
//! TCP and HTTP in the host namespace:
//! * [`HttpCfg`]: an HTTP/1.1 server that answers every request after a
//!   delay (counted from the end of the request), `Connection: close`,
//!   served by a real-time thread with non-blocking sockets, the response
//!   written by the timer thread.
//! * [`SimConfig::tcp_accept`]: plain kernel listeners that accept and close
//!   (baseline connect time).
//! * [`TcpDelayCfg`]: a delayed TCP *connect*: the address is not assigned
//!   in the host namespace (the prober has a static neighbour entry for it),
//!   so the host kernel drops the SYN silently (forwarding is off); the
//!   simulator sees it on a packet socket and sends the SYN-ACK itself
//!   after the delay from a raw IP socket. The prober's connect completes
//!   then; the rest of the connection is never answered, so it is only good
//!   for connect-time probes.
//!
//! [`Sim::capture`] records every packet on the prober's end of the veth
//! with kernel timestamps ([`wire`]): what actually happened on the wire,
//! the ground truth the accuracy tests compare the prober with. The
//! simulator's configured delays are only what it was asked to do.
//!
//! Dropping the [`Sim`] stops its threads and removes both namespaces;
//! [`Sim::start`] also removes namespaces of earlier runs that crashed
//! (named `pm-acc-<pid>-...` after a process that no longer exists).

mod netns;
mod packet;
pub mod wire;

use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, IoSliceMut, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::os::fd::{AsFd, AsRawFd};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::poll::{PollFd, PollFlags};
use nix::sys::socket::{self as nsock, sockopt, ControlMessageOwned, MsgFlags, SockaddrStorage};
use nix::sys::time::TimeSpec;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

pub use netns::{
    available, remove_stale, run_bounded, run_command_bounded, LoopbackNamespace, PREFIX,
};

/// The prober's addresses.
pub const PROBER_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub const PROBER_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
/// The host namespace's own (primary) addresses.
pub const HOST_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
pub const HOST_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);

/// A [`Mode::Late`] reply comes this long after the configured delay.
pub const LATE_EXTRA: Duration = Duration::from_millis(3500);
/// A [`Mode::Duplicate`] second reply follows the first this long after.
pub const DUPLICATE_GAP: Duration = Duration::from_millis(2);
/// The identifier of a [`Mode::ForeignId`] reply is the request's plus this.
pub const FOREIGN_ID_OFFSET: u16 = 0x4321;

/// Upper bound of the simulator's life: every loop ends by then.
const DEFAULT_MAX_LIFETIME: Duration = Duration::from_secs(900);
/// How often blocking loops look at the stop flag.
const TICK: Duration = Duration::from_millis(100);
/// The timer thread spins (instead of sleeping) this close to a due time.
const SPIN: Duration = Duration::from_micros(200);
/// A request older than this when it is read (by its kernel timestamp) is
/// still scheduled from the time it was read (guards a bad timestamp).
const MAX_AGE: Duration = Duration::from_secs(1);
/// Most HTTP requests being read at once (more connections are closed).
const MAX_HTTP_CONNECTIONS: usize = 64;
/// A connection that has not sent a whole request by then is closed.
const HTTP_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Real-time priority (SCHED_FIFO) of the receive and timer threads, so a
/// busy machine (a compiler on every core) cannot delay a reply by a
/// scheduler time slice.
const RT_PRIORITY: &str = "50";
/// Most lateness samples kept for [`SimStats`].
const MAX_LATENESS_SAMPLES: usize = 200_000;

/// What a host address does with an echo request it does not drop.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// An echo reply after the delay.
    #[default]
    Normal,
    /// An echo reply [`LATE_EXTRA`] (3.5 s) after the delay.
    Late,
    /// Two identical echo replies, [`DUPLICATE_GAP`] apart.
    Duplicate,
    /// An echo reply with the identifier changed (correct checksum).
    ForeignId,
    /// An ICMP destination-unreachable error instead of a reply.
    Unreachable,
}

/// One impaired address in the host namespace.
#[derive(Clone, Debug, PartialEq)]
pub struct HostCfg {
    /// In 198.18.0.3-254 or 2001:db8::3-ffff (assigned in the host namespace).
    pub addr: IpAddr,
    /// Delay of every answer, in milliseconds.
    pub delay_ms: f64,
    /// Uniform jitter: each answer's delay is in `delay ± jitter`.
    pub jitter_ms: f64,
    /// Probability that a request is dropped (0..=1).
    pub loss: f64,
    pub mode: Mode,
}

impl HostCfg {
    /// An address answering normally after `delay_ms`.
    pub fn delay(addr: IpAddr, delay_ms: f64) -> HostCfg {
        HostCfg {
            addr,
            delay_ms,
            jitter_ms: 0.0,
            loss: 0.0,
            mode: Mode::Normal,
        }
    }
}

/// An HTTP server answering every request after `delay_ms`.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpCfg {
    pub addr: SocketAddr,
    pub delay_ms: f64,
}

/// A delayed TCP connect: SYN-ACK after `delay_ms` (IPv4 only; `addr`'s IP
/// must not be used by anything else).
#[derive(Clone, Debug, PartialEq)]
pub struct TcpDelayCfg {
    pub addr: SocketAddrV4,
    pub delay_ms: f64,
}

/// Everything the simulator serves.
#[derive(Clone, Debug, PartialEq)]
pub struct SimConfig {
    pub hosts: Vec<HostCfg>,
    pub http: Vec<HttpCfg>,
    /// Kernel TCP listeners that accept and close at once.
    pub tcp_accept: Vec<SocketAddr>,
    pub tcp_delay: Vec<TcpDelayCfg>,
    /// Seed of the loss and jitter RNGs (one stream per address and purpose).
    pub seed: u64,
    /// If set, every request is also appended to this file as it is handled
    /// (one line: time, address, from, identifier, sequence, fate).
    pub log_file: Option<PathBuf>,
    /// Hard bound on the simulator's life (default 900 s).
    pub max_lifetime: Option<Duration>,
}

impl Default for SimConfig {
    fn default() -> SimConfig {
        SimConfig {
            hosts: Vec::new(),
            http: Vec::new(),
            tcp_accept: Vec::new(),
            tcp_delay: Vec::new(),
            seed: 0x5eed,
            log_file: None,
            max_lifetime: None,
        }
    }
}

/// What became of one request.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fate {
    /// Answered (first reply) `delay` after the request arrived.
    Replied { delay: Duration },
    /// Dropped (the RNG said so).
    Dropped,
    /// Answered late ([`Mode::Late`]).
    Late { delay: Duration },
    /// Answered twice ([`Mode::Duplicate`]); `delay` of the first reply.
    Duplicated { delay: Duration },
    /// Answered with a foreign identifier ([`Mode::ForeignId`]).
    ForeignId { delay: Duration },
    /// Answered with a destination-unreachable error ([`Mode::Unreachable`]).
    Unreachable { delay: Duration },
    /// A TCP SYN answered with a SYN-ACK ([`TcpDelayCfg`]).
    SynAck { delay: Duration },
}

/// What kind of request a [`Request`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    /// An ICMP or ICMPv6 echo request.
    Icmp,
    /// A TCP SYN to a [`TcpDelayCfg`] address.
    TcpSyn,
    /// An HTTP request to an [`HttpCfg`] server.
    Http,
}

/// One request the simulator saw. For TCP SYNs `ident` is the client's port,
/// `seq` the low 16 bits of its sequence number and `size` the IP packet's
/// length; for HTTP requests `ident` is the client's port and `size` the
/// request's length, and `at` the kernel receive time of its last bytes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Request {
    /// Kernel receive time in the host namespace.
    pub at: SystemTime,
    /// The address it was sent to.
    pub addr: IpAddr,
    /// The address it came from.
    pub from: IpAddr,
    pub proto: Proto,
    pub ident: u16,
    pub seq: u16,
    /// Length of the ICMP message (header and payload): tells one sender's
    /// requests from another's (fping's default is 64, 8 + 56 bytes).
    pub size: usize,
    pub fate: Fate,
    /// When the (first) answer actually left the simulator; `None` when
    /// dropped or not sent yet.
    pub sent: Option<SystemTime>,
}

impl Request {
    /// The delay the simulator was configured to apply to this request
    /// (jitter included); `None` when dropped.
    pub fn configured_delay(&self) -> Option<Duration> {
        match self.fate {
            Fate::Dropped => None,
            Fate::Replied { delay }
            | Fate::Late { delay }
            | Fate::Duplicated { delay }
            | Fate::ForeignId { delay }
            | Fate::Unreachable { delay }
            | Fate::SynAck { delay } => Some(delay),
        }
    }

    /// How much later than configured the answer actually left: the
    /// simulator's own error for this request (receive lag beyond the delay
    /// plus send lateness). `None` when dropped or not sent yet.
    pub fn lateness(&self) -> Option<Duration> {
        let applied = self.sent?.duration_since(self.at).ok()?;
        Some(applied.saturating_sub(self.configured_delay()?))
    }
}

/// A request the simulator dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dropped {
    pub at: SystemTime,
    pub addr: IpAddr,
    pub ident: u16,
    pub seq: u16,
}

/// Mean, 99th percentile and maximum of a set of samples (µs).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Spread {
    pub n: usize,
    pub mean: f64,
    pub p99: f64,
    pub max: f64,
}

impl Spread {
    fn of(samples: &[f64]) -> Spread {
        let mut v = samples.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        if n == 0 {
            return Spread::default();
        }
        Spread {
            n,
            mean: v.iter().sum::<f64>() / n as f64,
            p99: v[(n * 99 / 100).min(n - 1)],
            max: v[n - 1],
        }
    }
}

/// The simulator's own accuracy (µs): `receive_lag` is how long after its
/// kernel receive timestamp a request was handled; `send_lateness` how
/// long after its due time (receive timestamp + delay, or the time it was
/// handled if that is later) a packet was sent.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SimStats {
    pub packets_sent: u64,
    pub send_errors: u64,
    pub receive_lag_us: Spread,
    pub send_lateness_us: Spread,
}

#[derive(Debug, Default)]
struct Log {
    requests: Vec<Request>,
    file: Option<File>,
}

#[derive(Debug, Default)]
struct Lateness {
    sent: u64,
    errors: u64,
    samples_us: Vec<f64>,
    lag_us: Vec<f64>,
}

#[derive(Debug)]
struct Shared {
    stop: AtomicBool,
    deadline: Instant,
    log: Mutex<Log>,
    lateness: Mutex<Lateness>,
    /// Responder threads that have finished starting (real-time priority set).
    ready: AtomicUsize,
}

impl Shared {
    fn running(&self) -> bool {
        !self.stop.load(Ordering::Relaxed) && Instant::now() < self.deadline
    }

    fn log(&self) -> MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Logs a request; returns its index in the log.
    fn record(&self, r: Request) -> usize {
        let mut log = self.log();
        if let Some(f) = log.file.as_mut() {
            let t = r.at.duration_since(UNIX_EPOCH).unwrap_or_default();
            let _ = writeln!(
                f,
                "{}.{:06} {:?} {} from {} ident {} seq {} size {} {:?}",
                t.as_secs(),
                t.subsec_micros(),
                r.proto,
                r.addr,
                r.from,
                r.ident,
                r.seq,
                r.size,
                r.fate
            );
        }
        log.requests.push(r);
        log.requests.len() - 1
    }
}

/// The sockets opened inside the host namespace.
#[derive(Debug)]
struct HostSockets {
    /// One raw ICMP/ICMPv6 socket per [`HostCfg`], same order.
    icmp: Vec<Socket>,
    /// Packet tap (`AF_PACKET`, IPv4) and raw IP sender, if `tcp_delay`.
    tap: Option<(Socket, Socket)>,
    http: Vec<Socket>,
    accept: Vec<Socket>,
}

/// A running simulator. Dropping it stops it and removes its namespaces.
#[derive(Debug)]
pub struct Sim {
    cfg: SimConfig,
    shared: Arc<Shared>,
    threads: Vec<(&'static str, JoinHandle<()>)>,
    ns: netns::Namespaces,
}

impl Sim {
    /// Creates the namespaces, checks the prober's isolation, opens the
    /// host sockets and starts the responder threads.
    pub fn start(cfg: SimConfig) -> io::Result<Sim> {
        netns::available().map_err(io::Error::other)?;
        validate(&cfg)?;
        let ns = netns::Namespaces::create()?;
        let mut host_addrs: Vec<IpAddr> = vec![HOST_V4.into(), HOST_V6.into()];
        let extra = cfg
            .hosts
            .iter()
            .map(|h| h.addr)
            .chain(cfg.http.iter().map(|h| h.addr.ip()))
            .chain(cfg.tcp_accept.iter().map(SocketAddr::ip));
        for a in extra {
            if !host_addrs.contains(&a) {
                host_addrs.push(a);
            }
        }
        let neighbours: Vec<IpAddr> = cfg
            .tcp_delay
            .iter()
            .map(|t| (*t.addr.ip()).into())
            .collect();
        ns.configure(
            &[PROBER_V4.into(), PROBER_V6.into()],
            &host_addrs,
            &neighbours,
        )?;
        ns.check_isolated(&ns.prober, netns::PROBER_IF)?;
        ns.check_isolated(&ns.host, netns::HOST_IF)?;

        let sockets = open_in_namespace(&ns.host, &cfg)?;
        let file = match &cfg.log_file {
            Some(p) => Some(File::create(p)?),
            None => None,
        };
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            deadline: Instant::now() + cfg.max_lifetime.unwrap_or(DEFAULT_MAX_LIFETIME),
            log: Mutex::new(Log {
                requests: Vec::new(),
                file,
            }),
            lateness: Mutex::new(Lateness::default()),
            ready: AtomicUsize::new(0),
        });
        let mut sim = Sim {
            cfg: cfg.clone(),
            shared: Arc::clone(&shared),
            threads: Vec::new(),
            ns,
        };

        // Outputs of the timer thread: the ICMP sockets, then the raw IP
        // sender for SYN-ACKs.
        let mut outs = Vec::new();
        for s in &sockets.icmp {
            outs.push(s.try_clone()?);
        }
        let raw_out = match &sockets.tap {
            Some((_, raw)) => {
                outs.push(raw.try_clone()?);
                Some(outs.len() - 1)
            }
            None => None,
        };
        let (tx, rx) = mpsc::channel::<Scheduled>();
        let tcp_tx = tx.clone();
        // The receive thread's own copies, for what is due at once.
        let direct = Outputs {
            sockets: outs
                .iter()
                .map(Socket::try_clone)
                .collect::<io::Result<_>>()?,
            raw: raw_out,
            tx,
        };
        let sh = Arc::clone(&shared);
        sim.spawn("impair-timer", move || timer_loop(&sh, &rx, &outs))?;

        let sh = Arc::clone(&shared);
        let hosts = cfg.hosts.clone();
        let tcp_delay = cfg.tcp_delay.clone();
        let seed = cfg.seed;
        let HostSockets {
            icmp,
            tap,
            http,
            accept,
        } = sockets;
        let tap = tap.map(|(t, _)| t);
        sim.spawn("impair-recv", move || {
            let mut r = Responder::new(hosts, icmp, tap, tcp_delay, seed, direct);
            r.run(&sh);
        })?;
        let listeners: Vec<(Socket, Option<Duration>)> = http
            .into_iter()
            .zip(cfg.http.iter().map(|h| Some(ms(h.delay_ms))))
            .chain(accept.into_iter().map(|s| (s, None)))
            .collect();
        let sh = Arc::clone(&shared);
        sim.spawn("impair-tcp", move || tcp_loop(&sh, &listeners, &tcp_tx))?;
        // The three responder threads up (and real-time) before anyone sends.
        let deadline = Instant::now() + Duration::from_secs(10);
        while shared.ready.load(Ordering::SeqCst) < 3 {
            if Instant::now() >= deadline {
                return Err(io::Error::other("impair: responder threads did not start"));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(sim)
    }

    fn spawn(&mut self, name: &'static str, f: impl FnOnce() + Send + 'static) -> io::Result<()> {
        let h = std::thread::Builder::new().name(name.into()).spawn(f)?;
        self.threads.push((name, h));
        Ok(())
    }

    /// The configuration the simulator runs with.
    pub fn config(&self) -> &SimConfig {
        &self.cfg
    }

    /// Name of the prober namespace (run the code under test there).
    pub fn prober_ns(&self) -> &str {
        &self.ns.prober
    }

    /// Name of the host namespace.
    pub fn host_ns(&self) -> &str {
        &self.ns.host
    }

    /// Starts capturing every packet on the prober's end of the veth pair
    /// (kernel timestamps): the ground truth of what the prober sent and
    /// received. The capture ends when dropped, or with the simulator's
    /// lifetime.
    pub fn capture(&self) -> io::Result<wire::Capture> {
        let left = self
            .shared
            .deadline
            .saturating_duration_since(Instant::now());
        wire::Capture::start(&self.ns.prober, netns::PROBER_IF, left)
    }

    /// `ip netns exec PROBER program`: add arguments, then spawn or run it.
    pub fn prober_command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns.prober, program]);
        c
    }

    /// Runs `args` in the prober namespace and returns its output; killed
    /// after `timeout`.
    pub fn prober_exec(&self, args: &[&str], timeout: Duration) -> io::Result<Output> {
        let (program, rest) = args
            .split_first()
            .ok_or_else(|| io::Error::other("prober_exec: empty command"))?;
        let mut c = self.prober_command(program);
        c.args(rest);
        run_command_bounded(&mut c, timeout)
    }

    /// Runs `f` on a thread that has entered the prober namespace (sockets
    /// it opens live there) and returns its result. `f` must bound its own
    /// running time.
    pub fn run_in_prober<T, F>(&self, f: F) -> io::Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let path = format!("/run/netns/{}", self.ns.prober);
        std::thread::Builder::new()
            .name("impair-prober".into())
            .spawn(move || -> io::Result<T> {
                let ns = File::open(&path)?;
                nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(|e| io::Error::other(format!("setns {path}: {e}")))?;
                Ok(f())
            })?
            .join()
            .map_err(|_| io::Error::other("impair: prober thread panicked"))?
    }

    /// Every request seen so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.log().requests.clone()
    }

    /// Every request dropped so far, in arrival order.
    pub fn dropped(&self) -> Vec<Dropped> {
        self.shared
            .log()
            .requests
            .iter()
            .filter(|r| r.fate == Fate::Dropped)
            .map(|r| Dropped {
                at: r.at,
                addr: r.addr,
                ident: r.ident,
                seq: r.seq,
            })
            .collect()
    }

    /// The timer thread's lateness and counts so far.
    pub fn stats(&self) -> SimStats {
        let l = self
            .shared
            .lateness
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        SimStats {
            packets_sent: l.sent,
            send_errors: l.errors,
            receive_lag_us: Spread::of(&l.lag_us),
            send_lateness_us: Spread::of(&l.samples_us),
        }
    }

    /// Stops the threads and removes the namespaces (also done on drop).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        // Every loop looks at the flag at least every TICK; wait a bounded
        // time for them, then leave any straggler (its sockets keep only the
        // already unnamed namespace alive until the process exits).
        let deadline = Instant::now() + Duration::from_secs(5);
        for (name, h) in self.threads.drain(..) {
            while !h.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if h.is_finished() {
                let _ = h.join();
            } else {
                eprintln!("impair: thread {name} did not stop in time; leaving it");
            }
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.shutdown();
        // self.ns drops after this: `ip netns del` of both namespaces.
    }
}

fn ms(v: f64) -> Duration {
    Duration::from_secs_f64((v.max(0.0)) / 1000.0)
}

fn validate(cfg: &SimConfig) -> io::Result<()> {
    let bad = |m: String| Err(io::Error::new(io::ErrorKind::InvalidInput, m));
    let mut seen: Vec<IpAddr> = vec![
        PROBER_V4.into(),
        PROBER_V6.into(),
        HOST_V4.into(),
        HOST_V6.into(),
    ];
    for h in &cfg.hosts {
        if !in_test_range(h.addr) {
            return bad(format!(
                "{} is outside 198.18.0.0/24 and 2001:db8::/64",
                h.addr
            ));
        }
        if seen.contains(&h.addr) {
            return bad(format!("{} is used twice or is a reserved address", h.addr));
        }
        if !(0.0..=1.0).contains(&h.loss) || h.delay_ms < 0.0 || h.jitter_ms < 0.0 {
            return bad(format!("{}: bad loss, delay or jitter", h.addr));
        }
        seen.push(h.addr);
    }
    for a in cfg
        .http
        .iter()
        .map(|h| h.addr.ip())
        .chain(cfg.tcp_accept.iter().map(SocketAddr::ip))
    {
        if !in_test_range(a) {
            return bad(format!("{a} is outside 198.18.0.0/24 and 2001:db8::/64"));
        }
    }
    for t in &cfg.tcp_delay {
        let a = IpAddr::V4(*t.addr.ip());
        if !in_test_range(a) || seen.contains(&a) {
            return bad(format!(
                "{a}: a delayed-connect address must be unused and in 198.18.0.0/24"
            ));
        }
        let listeners = cfg
            .http
            .iter()
            .map(|h| h.addr.ip())
            .chain(cfg.tcp_accept.iter().map(SocketAddr::ip));
        if listeners.clone().any(|l| l == a) {
            return bad(format!(
                "{a}: a delayed-connect address must not have listeners"
            ));
        }
    }
    Ok(())
}

fn in_test_range(a: IpAddr) -> bool {
    match a {
        IpAddr::V4(a) => {
            a.octets()[..3] == [198, 18, 0] && a.octets()[3] > 2 && a.octets()[3] < 255
        }
        IpAddr::V6(a) => {
            a.segments()[..4] == [0x2001, 0xdb8, 0, 0] && u128::from(a) & 0xffff_ffff_ffff_ffff > 2
        }
    }
}

/// Opens every host-side socket from a thread that first enters the host
/// namespace; the sockets stay in that namespace wherever they are used.
fn open_in_namespace(host_ns: &str, cfg: &SimConfig) -> io::Result<HostSockets> {
    let path = format!("/run/netns/{host_ns}");
    let cfg = cfg.clone();
    let h = std::thread::Builder::new()
        .name("impair-setns".into())
        .spawn(move || -> io::Result<HostSockets> {
            let f = File::open(&path)?;
            nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| io::Error::other(format!("setns {path}: {e}")))?;
            open_sockets(&cfg)
        })?;
    h.join()
        .map_err(|_| io::Error::other("impair: socket thread panicked"))?
}

fn open_sockets(cfg: &SimConfig) -> io::Result<HostSockets> {
    let mut icmp = Vec::new();
    for h in &cfg.hosts {
        let (domain, proto) = match h.addr {
            IpAddr::V4(_) => (Domain::IPV4, Protocol::ICMPV4),
            IpAddr::V6(_) => (Domain::IPV6, Protocol::ICMPV6),
        };
        let s = Socket::new(domain, Type::RAW, Some(proto))?;
        s.bind(&SockAddr::from(SocketAddr::new(h.addr, 0)))?;
        prepare_rx(&s)?;
        icmp.push(s);
    }
    let tap = if cfg.tcp_delay.is_empty() {
        None
    } else {
        const ETH_P_IP: u16 = 0x0800;
        let tap = Socket::new(
            Domain::PACKET,
            Type::DGRAM,
            Some(Protocol::from(i32::from(ETH_P_IP.to_be()))),
        )?;
        prepare_rx(&tap)?;
        // IPPROTO_RAW: we write the whole IP header (IP_HDRINCL).
        let raw = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(255)))?;
        Some((tap, raw))
    };
    let listen = |addr: SocketAddr| -> io::Result<Socket> {
        let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        s.set_reuse_address(true)?;
        s.bind(&addr.into())?;
        s.listen(128)?;
        s.set_nonblocking(true)?;
        Ok(s)
    };
    let http = cfg
        .http
        .iter()
        .map(|h| listen(h.addr))
        .collect::<io::Result<_>>()?;
    let accept = cfg
        .tcp_accept
        .iter()
        .map(|a| listen(*a))
        .collect::<io::Result<_>>()?;
    Ok(HostSockets {
        icmp,
        tap,
        http,
        accept,
    })
}

fn prepare_rx(s: &Socket) -> io::Result<()> {
    s.set_nonblocking(true)?;
    s.set_recv_buffer_size(4 << 20)?;
    nsock::setsockopt(s, sockopt::ReceiveTimestampns, &true).map_err(io::Error::from)?;
    Ok(())
}

/// A packet to send at `due`.
#[derive(Debug)]
struct Scheduled {
    due: Instant,
    n: u64,
    out: usize,
    dest: SockAddr,
    bytes: Vec<u8>,
    /// If set: write `bytes` to this connection and close it (HTTP
    /// response) instead of sending a packet.
    stream: Option<TcpStream>,
    /// Index of the request in the log whose first answer this is.
    log: Option<usize>,
}

impl PartialEq for Scheduled {
    fn eq(&self, o: &Self) -> bool {
        (self.due, self.n) == (o.due, o.n)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scheduled {
    // Reversed: BinaryHeap is a max-heap, we want the earliest first.
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (o.due, o.n).cmp(&(self.due, self.n))
    }
}

/// Puts the calling thread under SCHED_FIFO (`chrt -f -p`, best effort:
/// a warning when it fails).
fn make_realtime(name: &str) {
    let tid = nix::unistd::gettid().to_string();
    let ok = run_bounded(
        "chrt",
        &["-f", "-p", RT_PRIORITY, &tid],
        Duration::from_secs(5),
    )
    .map(|o| o.status.success())
    .unwrap_or(false);
    if !ok {
        eprintln!(
            "impair: cannot make {name} real-time (chrt); replies may be late on a busy machine"
        );
    }
}

/// Sends scheduled packets at their due times.
fn timer_loop(sh: &Shared, rx: &mpsc::Receiver<Scheduled>, outs: &[Socket]) {
    // 1 ns timer slack: sleeps end as close to their deadline as the
    // scheduler allows (the default slack is 50 µs).
    let _ = nix::sys::prctl::set_timerslack(1);
    make_realtime("impair-timer");
    sh.ready.fetch_add(1, Ordering::SeqCst);
    let mut heap: BinaryHeap<Scheduled> = BinaryHeap::new();
    let mut disconnected = false;
    while sh.running() {
        while let Ok(s) = rx.try_recv() {
            heap.push(s);
        }
        let now = Instant::now();
        while heap.peek().is_some_and(|s| s.due <= now) {
            if let Some(s) = heap.pop() {
                send_scheduled(sh, outs, s);
            }
        }
        let wait = heap
            .peek()
            .map(|s| s.due.saturating_duration_since(Instant::now()))
            .unwrap_or(TICK)
            .min(TICK);
        if wait > SPIN && !disconnected {
            match rx.recv_timeout(wait - SPIN) {
                Ok(s) => heap.push(s),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => disconnected = true,
            }
        } else if wait > SPIN {
            std::thread::sleep(wait - SPIN);
        } else if let Some(due) = heap.peek().map(|s| s.due) {
            // At most SPIN (200 µs) of spinning.
            while Instant::now() < due {
                std::hint::spin_loop();
            }
        }
        if disconnected && heap.is_empty() {
            break;
        }
    }
}

fn send_scheduled(sh: &Shared, outs: &[Socket], s: Scheduled) {
    let late = Instant::now().saturating_duration_since(s.due);
    let ok = match s.stream {
        Some(mut stream) => {
            // A small response into an empty send buffer: never blocks.
            let ok = stream.write_all(&s.bytes).is_ok();
            let _ = stream.shutdown(std::net::Shutdown::Write);
            ok
        }
        None => outs
            .get(s.out)
            .map(|o| o.send_to(&s.bytes, &s.dest).is_ok())
            .unwrap_or(false),
    };
    if ok {
        if let Some(i) = s.log {
            let now = SystemTime::now();
            if let Some(r) = sh.log().requests.get_mut(i) {
                r.sent.get_or_insert(now);
            }
        }
    }
    let mut l = sh.lateness.lock().unwrap_or_else(|e| e.into_inner());
    if ok {
        l.sent += 1;
        if l.samples_us.len() < MAX_LATENESS_SAMPLES {
            l.samples_us.push(late.as_secs_f64() * 1e6);
        }
    } else {
        l.errors += 1;
    }
}

/// Per-address state of the receive thread.
#[derive(Debug)]
struct HostState {
    cfg: HostCfg,
    socket: Socket,
    loss_rng: StdRng,
    jitter_rng: StdRng,
}

/// Where the receive thread puts its answers: sent at once when already
/// due, else handed to the timer thread.
#[derive(Debug)]
struct Outputs {
    /// Same order as the timer thread's: ICMP sockets, then the raw sender.
    sockets: Vec<Socket>,
    /// Index of the raw IP sender (SYN-ACKs).
    raw: Option<usize>,
    tx: mpsc::Sender<Scheduled>,
}

#[derive(Debug)]
struct Responder {
    hosts: Vec<HostState>,
    tap: Option<Socket>,
    tcp_delay: Vec<TcpDelayCfg>,
    isn_rng: StdRng,
    out: Outputs,
    n: u64,
    cmsg: Vec<u8>,
}

impl Responder {
    fn new(
        cfgs: Vec<HostCfg>,
        sockets: Vec<Socket>,
        tap: Option<Socket>,
        tcp_delay: Vec<TcpDelayCfg>,
        seed: u64,
        out: Outputs,
    ) -> Responder {
        let hosts = cfgs
            .into_iter()
            .zip(sockets)
            .enumerate()
            .map(|(i, (cfg, socket))| {
                let base = seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                HostState {
                    cfg,
                    socket,
                    loss_rng: StdRng::seed_from_u64(base),
                    jitter_rng: StdRng::seed_from_u64(base ^ 0x6a09_e667_f3bc_c909),
                }
            })
            .collect();
        Responder {
            hosts,
            tap,
            tcp_delay,
            isn_rng: StdRng::seed_from_u64(seed ^ 0x7c9),
            out,
            n: 0,
            cmsg: nix::cmsg_space!(TimeSpec, [u64; 4]),
        }
    }

    fn run(&mut self, sh: &Shared) {
        make_realtime("impair-recv");
        sh.ready.fetch_add(1, Ordering::SeqCst);
        let mut buf = vec![0u8; 65536];
        while sh.running() {
            let ready: Vec<bool> = {
                let mut fds: Vec<PollFd<'_>> = self
                    .hosts
                    .iter()
                    .map(|h| PollFd::new(h.socket.as_fd(), PollFlags::POLLIN))
                    .chain(
                        self.tap
                            .iter()
                            .map(|t| PollFd::new(t.as_fd(), PollFlags::POLLIN)),
                    )
                    .collect();
                match nix::poll::poll(
                    &mut fds,
                    nix::poll::PollTimeout::from(TICK.as_millis() as u16),
                ) {
                    Ok(0) | Err(_) => continue,
                    Ok(_) => fds
                        .iter()
                        .map(|f| f.revents().is_some_and(|r| r.contains(PollFlags::POLLIN)))
                        .collect(),
                }
            };
            for (i, r) in ready.iter().enumerate() {
                if !r {
                    continue;
                }
                // Drain a bounded number of packets per wake-up.
                for _ in 0..256 {
                    let fd = if i < self.hosts.len() {
                        self.hosts[i].socket.as_raw_fd()
                    } else if let Some(t) = &self.tap {
                        t.as_raw_fd()
                    } else {
                        break;
                    };
                    let Some((len, from, at)) = recv_stamped(fd, &mut buf, &mut self.cmsg) else {
                        break;
                    };
                    let data = &buf[..len];
                    if i < self.hosts.len() {
                        self.on_icmp(sh, i, data, from, at);
                    } else {
                        self.on_tap(sh, data, at);
                    }
                }
            }
        }
    }

    fn due(sh: &Shared, at: SystemTime, delay: Duration) -> Instant {
        due_at(sh, at, delay)
    }

    fn schedule(
        &mut self,
        sh: &Shared,
        due: Instant,
        out: usize,
        dest: SocketAddr,
        bytes: Vec<u8>,
        log: Option<usize>,
    ) {
        self.n += 1;
        let s = Scheduled {
            due,
            n: self.n,
            out,
            dest: SockAddr::from(dest),
            bytes,
            stream: None,
            log,
        };
        if due <= Instant::now() {
            send_scheduled(sh, &self.out.sockets, s);
        } else {
            let _ = self.out.tx.send(s);
        }
    }

    fn on_icmp(
        &mut self,
        sh: &Shared,
        i: usize,
        data: &[u8],
        from: Option<IpAddr>,
        at: SystemTime,
    ) {
        let cfg = self.hosts[i].cfg.clone();
        let req = match (cfg.addr, from) {
            (IpAddr::V4(_), _) => packet::parse_v4_echo_request(data),
            (IpAddr::V6(to), Some(IpAddr::V6(from))) => {
                packet::parse_v6_echo_request(data, from, to)
            }
            _ => None,
        };
        let Some(req) = req else {
            return;
        };
        let h = &mut self.hosts[i];
        let dropped = cfg.loss > 0.0 && h.loss_rng.random::<f64>() < cfg.loss;
        let mut delay = cfg.delay_ms;
        if cfg.jitter_ms > 0.0 {
            delay += h.jitter_rng.random_range(-cfg.jitter_ms..=cfg.jitter_ms);
        }
        let delay = ms(delay);
        let dest = SocketAddr::new(req.from, 0);
        // What to send, `(extra delay, packet)`; the first is the answer.
        let (fate, packets): (Fate, Vec<(Duration, Vec<u8>)>) = if dropped {
            (Fate::Dropped, Vec::new())
        } else {
            match cfg.mode {
                Mode::Normal => (
                    Fate::Replied { delay },
                    vec![(delay, packet::echo_reply(&req, req.ident))],
                ),
                Mode::Late => {
                    let delay = delay + LATE_EXTRA;
                    (
                        Fate::Late { delay },
                        vec![(delay, packet::echo_reply(&req, req.ident))],
                    )
                }
                Mode::Duplicate => {
                    let reply = packet::echo_reply(&req, req.ident);
                    (
                        Fate::Duplicated { delay },
                        vec![(delay, reply.clone()), (delay + DUPLICATE_GAP, reply)],
                    )
                }
                Mode::ForeignId => {
                    let ident = req.ident.wrapping_add(FOREIGN_ID_OFFSET);
                    (
                        Fate::ForeignId { delay },
                        vec![(delay, packet::echo_reply(&req, ident))],
                    )
                }
                Mode::Unreachable => (
                    Fate::Unreachable { delay },
                    vec![(delay, packet::unreachable(&req))],
                ),
            }
        };
        let index = sh.record(Request {
            at,
            addr: cfg.addr,
            from: req.from,
            proto: Proto::Icmp,
            ident: req.ident,
            seq: req.seq,
            size: req.icmp.len(),
            fate,
            sent: None,
        });
        for (k, (d, bytes)) in packets.into_iter().enumerate() {
            let log = (k == 0).then_some(index);
            self.schedule(sh, Self::due(sh, at, d), i, dest, bytes, log);
        }
    }

    fn on_tap(&mut self, sh: &Shared, data: &[u8], at: SystemTime) {
        let Some(syn) = packet::parse_syn(data) else {
            return;
        };
        let Some(t) = self
            .tcp_delay
            .iter()
            .find(|t| *t.addr.ip() == syn.dst && t.addr.port() == syn.dst_port)
            .cloned()
        else {
            return;
        };
        let Some(out) = self.out.raw else {
            return;
        };
        let delay = ms(t.delay_ms);
        let isn = self.isn_rng.random::<u32>();
        let dest = SocketAddr::new(IpAddr::V4(syn.src), 0);
        let index = sh.record(Request {
            at,
            addr: IpAddr::V4(syn.dst),
            from: IpAddr::V4(syn.src),
            proto: Proto::TcpSyn,
            ident: syn.src_port,
            seq: (syn.seq & 0xffff) as u16,
            size: data.len(),
            fate: Fate::SynAck { delay },
            sent: None,
        });
        self.schedule(
            sh,
            Self::due(sh, at, delay),
            out,
            dest,
            packet::syn_ack(&syn, isn),
            Some(index),
        );
    }
}

/// When to act on a request received at `at` (kernel time) after `delay`:
/// never before now. Records the receive lag.
fn due_at(sh: &Shared, at: SystemTime, delay: Duration) -> Instant {
    let now = Instant::now();
    let age = SystemTime::now()
        .duration_since(at)
        .unwrap_or_default()
        .min(MAX_AGE);
    {
        let mut l = sh.lateness.lock().unwrap_or_else(|e| e.into_inner());
        if l.lag_us.len() < MAX_LATENESS_SAMPLES {
            l.lag_us.push(age.as_secs_f64() * 1e6);
        }
    }
    (now + delay).checked_sub(age).unwrap_or(now).max(now)
}

/// One non-blocking `recvmsg` with the kernel receive timestamp: (length,
/// source address, timestamp — now if the kernel gave none). `None` when
/// nothing is waiting or on error.
fn recv_stamped(
    fd: std::os::fd::RawFd,
    buf: &mut [u8],
    cmsg: &mut [u8],
) -> Option<(usize, Option<IpAddr>, SystemTime)> {
    let mut iov = [IoSliceMut::new(buf)];
    let msg =
        nsock::recvmsg::<SockaddrStorage>(fd, &mut iov, Some(cmsg), MsgFlags::MSG_DONTWAIT).ok()?;
    let mut at = None;
    if let Ok(cmsgs) = msg.cmsgs() {
        for c in cmsgs {
            if let ControlMessageOwned::ScmTimestampns(ts) = c {
                let d = Duration::new(
                    u64::try_from(ts.tv_sec()).unwrap_or(0),
                    u32::try_from(ts.tv_nsec()).unwrap_or(0),
                );
                at = Some(UNIX_EPOCH + d);
            }
        }
    }
    let from = msg.address.and_then(|a: SockaddrStorage| {
        if let Some(v4) = a.as_sockaddr_in() {
            Some(IpAddr::V4(v4.ip()))
        } else {
            a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
        }
    });
    Some((msg.bytes, from, at.unwrap_or_else(SystemTime::now)))
}

/// A connection whose request is being read.
#[derive(Debug)]
struct Conn {
    stream: TcpStream,
    request: Vec<u8>,
    delay: Duration,
    since: Instant,
}

/// Serves the TCP listeners until stopped, on one real-time thread with
/// non-blocking sockets: a listener with a delay is HTTP — each request,
/// once read, gets `200 OK` `delay` later through the timer thread, then
/// the connection is closed; a listener without one accepts and closes.
/// At most [`MAX_HTTP_CONNECTIONS`] requests are read at once, each for at
/// most [`HTTP_READ_TIMEOUT`].
fn tcp_loop(sh: &Shared, listeners: &[(Socket, Option<Duration>)], tx: &mpsc::Sender<Scheduled>) {
    make_realtime("impair-tcp");
    sh.ready.fetch_add(1, Ordering::SeqCst);
    let mut conns: Vec<Conn> = Vec::new();
    let mut n: u64 = 0;
    let mut buf = [0u8; 4096];
    let mut cmsg: Vec<u8> = nix::cmsg_space!(TimeSpec, [u64; 4]);
    while sh.running() {
        let (ready_l, ready_c): (Vec<bool>, Vec<bool>) = {
            let mut fds: Vec<PollFd<'_>> = listeners
                .iter()
                .map(|(l, _)| PollFd::new(l.as_fd(), PollFlags::POLLIN))
                .chain(
                    conns
                        .iter()
                        .map(|c| PollFd::new(c.stream.as_fd(), PollFlags::POLLIN)),
                )
                .collect();
            match nix::poll::poll(
                &mut fds,
                nix::poll::PollTimeout::from(TICK.as_millis() as u16),
            ) {
                Ok(0) | Err(_) => (vec![false; listeners.len()], vec![false; conns.len()]),
                Ok(_) => {
                    let r: Vec<bool> = fds
                        .iter()
                        .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
                        .collect();
                    let (a, b) = r.split_at(listeners.len());
                    (a.to_vec(), b.to_vec())
                }
            }
        };
        // Requests first (their delay counts from now), newest index first
        // so removals keep the earlier indices valid.
        for i in (0..ready_c.len()).rev() {
            if !ready_c[i] {
                continue;
            }
            let mut done = false;
            let mut complete = None;
            for _ in 0..64 {
                // Kernel receive time of the data read (SO_TIMESTAMPNS).
                match recv_stamped(conns[i].stream.as_raw_fd(), &mut buf, &mut cmsg) {
                    Some((0, _, _)) => {
                        done = true;
                        break;
                    }
                    Some((k, _, at)) => {
                        conns[i].request.extend_from_slice(&buf[..k]);
                        if conns[i].request.windows(4).any(|w| w == b"\r\n\r\n") {
                            complete = Some(at);
                            break;
                        }
                        if conns[i].request.len() > 16 * 1024 {
                            done = true;
                            break;
                        }
                    }
                    // Nothing more now (or an error: the read timeout ends it).
                    None => break,
                }
            }
            if let Some(at) = complete {
                let c = conns.swap_remove(i);
                let local = c.stream.local_addr();
                let peer = c.stream.peer_addr();
                let (Ok(local), Ok(peer)) = (local, peer) else {
                    continue;
                };
                let index = sh.record(Request {
                    at,
                    addr: local.ip(),
                    from: peer.ip(),
                    proto: Proto::Http,
                    ident: peer.port(),
                    seq: 0,
                    size: c.request.len(),
                    fate: Fate::Replied { delay: c.delay },
                    sent: None,
                });
                let body: &[u8] = if c.request.starts_with(b"HEAD ") {
                    b""
                } else {
                    b"ok\n"
                };
                let mut bytes = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\n".to_vec();
                bytes.extend_from_slice(body);
                n += 1;
                let _ = tx.send(Scheduled {
                    due: due_at(sh, at, c.delay),
                    n,
                    out: usize::MAX,
                    dest: SockAddr::from(SocketAddr::from(([0, 0, 0, 0], 0))),
                    bytes,
                    stream: Some(c.stream),
                    log: Some(index),
                });
            } else if done {
                conns.swap_remove(i);
            }
        }
        conns.retain(|c| c.since.elapsed() < HTTP_READ_TIMEOUT);
        for (j, (l, delay)) in listeners.iter().enumerate() {
            if !ready_l[j] {
                continue;
            }
            for _ in 0..64 {
                let Ok((conn, _)) = l.accept() else {
                    break; // WouldBlock or a transient error
                };
                let Some(delay) = delay else {
                    continue; // accept-and-close
                };
                if conns.len() >= MAX_HTTP_CONNECTIONS
                    || conn.set_nonblocking(true).is_err()
                    || nsock::setsockopt(&conn, sockopt::ReceiveTimestampns, &true).is_err()
                {
                    continue;
                }
                let _ = conn.set_tcp_nodelay(true);
                conns.push(Conn {
                    stream: conn.into(),
                    request: Vec::new(),
                    delay: *delay,
                    since: Instant::now(),
                });
            }
        }
    }
}
