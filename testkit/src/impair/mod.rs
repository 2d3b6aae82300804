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
//!   Its packets to the prober go through a relay (`relay.rs`), so they
//!   arrive as a network card hands packets over, stamped once where the
//!   capture stamps them, not as a local TCP stack's segments, which the
//!   receiving socket stamps a few µs later.
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

pub mod forward;
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
    /// TTL (hop limit) of the answers; `None`: the kernel's default.
    pub reply_ttl: Option<u8>,
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
            reply_ttl: None,
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
    /// The HTTP servers' packets carried to the prober by the relay.
    pub relay: RelayStats,
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
    relay: Mutex<RelayStats>,
}

impl Shared {
    fn running(&self) -> bool {
        !self.stop.load(Ordering::Relaxed) && Instant::now() < self.deadline
    }

    fn log(&self) -> MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts what the relay did with one packet.
    fn relayed(&self, what: Relayed) {
        let mut r = self.relay.lock().unwrap_or_else(|e| e.into_inner());
        match what {
            Relayed::Sent => r.relayed += 1,
            Relayed::Foreign => r.foreign += 1,
            Relayed::Error => r.errors += 1,
        }
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
    /// The HTTP servers' return path, if there are any.
    relay: Option<RelaySockets>,
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
        // The HTTP servers' answers reach the prober through the relay.
        let mut relayed: Vec<IpAddr> = Vec::new();
        for a in cfg.http.iter().map(|h| h.addr.ip()) {
            if !relayed.contains(&a) {
                relayed.push(a);
            }
        }
        if !relayed.is_empty() {
            ns.add_relay(&relayed, &[PROBER_V4.into(), PROBER_V6.into()])?;
        }
        ns.check_isolated(&ns.prober, &[netns::PROBER_IF])?;
        ns.check_isolated(
            &ns.host,
            &[netns::HOST_IF, netns::RELAY_IN, netns::RELAY_OUT],
        )?;

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
            relay: Mutex::new(RelayStats::default()),
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
            relay,
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
        let mut threads = 3;
        if let Some(relay) = relay {
            let sh = Arc::clone(&shared);
            sim.spawn("impair-relay", move || relay_loop(&sh, &relay, &relayed))?;
            threads += 1;
        }
        // The responder threads up (and real-time) before anyone sends.
        let deadline = Instant::now() + Duration::from_secs(10);
        while shared.ready.load(Ordering::SeqCst) < threads {
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
            relay: *self.shared.relay.lock().unwrap_or_else(|e| e.into_inner()),
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

mod relay;
mod responder;
mod sockets;
mod tcp;

pub use relay::RelayStats;
use relay::*;
use responder::*;
use sockets::*;
use tcp::*;
pub use tcp::{http_head_stamped, StampedResponse};
