//! The responder: reads requests with kernel timestamps, decides each
//! one's fate, and sends answers when due from a real-time timer thread.

use super::*;

/// A packet to send at `due`.
#[derive(Debug)]
pub(super) struct Scheduled {
    pub(super) due: Instant,
    pub(super) n: u64,
    pub(super) out: usize,
    pub(super) dest: SockAddr,
    pub(super) bytes: Vec<u8>,
    /// If set: write `bytes` to this connection and close it (HTTP
    /// response) instead of sending a packet.
    pub(super) stream: Option<TcpStream>,
    /// Index of the request in the log whose first answer this is.
    pub(super) log: Option<usize>,
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
pub(super) fn make_realtime(name: &str) {
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
pub(super) fn timer_loop(sh: &Shared, rx: &mpsc::Receiver<Scheduled>, outs: &[Socket]) {
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

pub(super) fn send_scheduled(sh: &Shared, outs: &[Socket], s: Scheduled) {
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
pub(super) struct HostState {
    cfg: HostCfg,
    socket: Socket,
    loss_rng: StdRng,
    jitter_rng: StdRng,
}

/// Where the receive thread puts its answers: sent at once when already
/// due, else handed to the timer thread.
#[derive(Debug)]
pub(super) struct Outputs {
    /// Same order as the timer thread's: ICMP sockets, then the raw sender.
    pub(super) sockets: Vec<Socket>,
    /// Index of the raw IP sender (SYN-ACKs).
    pub(super) raw: Option<usize>,
    pub(super) tx: mpsc::Sender<Scheduled>,
}

#[derive(Debug)]
pub(super) struct Responder {
    hosts: Vec<HostState>,
    tap: Option<Socket>,
    tcp_delay: Vec<TcpDelayCfg>,
    isn_rng: StdRng,
    out: Outputs,
    n: u64,
    cmsg: Vec<u8>,
}

impl Responder {
    pub(super) fn new(
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

    pub(super) fn run(&mut self, sh: &Shared) {
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
pub(super) fn due_at(sh: &Shared, at: SystemTime, delay: Duration) -> Instant {
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
pub(super) fn recv_stamped(
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
