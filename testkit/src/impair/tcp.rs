//! The simulated host's TCP and HTTP side: accepts, delays and answers.

use super::*;

/// A connection whose request is being read.
#[derive(Debug)]
pub(super) struct Conn {
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
pub(super) fn tcp_loop(
    sh: &Shared,
    listeners: &[(Socket, Option<Duration>)],
    tx: &mpsc::Sender<Scheduled>,
) {
    make_realtime("impair-tcp");
    sh.ready.fetch_add(1, Ordering::SeqCst);
    let mut conns: Vec<Conn> = Vec::new();
    let mut n: u64 = 0;
    let mut buf = [0u8; 4096];
    let mut cmsg: Vec<u8> = nix::cmsg_space!(TimeSpec, [u64; 4]);
    while sh.running() {
        let (ready_l, ready_c) = poll_ready(listeners, &conns);
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
                n += 1;
                answer(sh, conns.swap_remove(i), at, n, tx);
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

/// Which listeners and connections are readable within a [`TICK`].
fn poll_ready(listeners: &[(Socket, Option<Duration>)], conns: &[Conn]) -> (Vec<bool>, Vec<bool>) {
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
}

/// A whole request read at `at` (kernel time): logged, and its `200 OK`
/// scheduled `c.delay` later as the `n`-th send.
fn answer(sh: &Shared, c: Conn, at: SystemTime, n: u64, tx: &mpsc::Sender<Scheduled>) {
    let local = c.stream.local_addr();
    let peer = c.stream.peer_addr();
    let (Ok(local), Ok(peer)) = (local, peer) else {
        return;
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
    let _ = tx.send(Scheduled {
        due: due_at(sh, at, c.delay),
        n,
        out: usize::MAX,
        dest: SockAddr::from(SocketAddr::from(([0, 0, 0, 0], 0))),
        bytes,
        stream: Some(c.stream),
        log: Some(index),
    });
}

/// What [`http_head_stamped`] read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StampedResponse {
    /// The client's port (to find the connection in a capture).
    pub local_port: u16,
    pub response: Vec<u8>,
    /// The kernel's receive stamp (`SO_TIMESTAMPNS`) of the last data read.
    pub last_data_at: Option<SystemTime>,
}

/// A plain HTTP client: connects to `addr`, sends `HEAD /`, reads the
/// response to the end with kernel receive stamps. Run it inside the
/// prober namespace ([`Sim::run_in_prober`]); each step is bounded by
/// `timeout`, the whole by 64 reads.
pub fn http_head_stamped(addr: SocketAddr, timeout: Duration) -> io::Result<StampedResponse> {
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    nsock::setsockopt(&s, sockopt::ReceiveTimestampns, &true).map_err(io::Error::from)?;
    let local_port = s.local_addr()?.port();
    s.write_all(b"HEAD / HTTP/1.1\r\nHost: sim\r\n\r\n")?;
    let mut out = StampedResponse {
        local_port,
        response: Vec::new(),
        last_data_at: None,
    };
    let mut buf = [0u8; 4096];
    let mut cmsg: Vec<u8> = nix::cmsg_space!(TimeSpec);
    for _ in 0..64 {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = nsock::recvmsg::<SockaddrStorage>(
            s.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::empty(),
        )
        .map_err(io::Error::from)?;
        let n = msg.bytes;
        if n == 0 {
            return Ok(out);
        }
        if let Ok(cmsgs) = msg.cmsgs() {
            for c in cmsgs {
                if let ControlMessageOwned::ScmTimestampns(ts) = c {
                    out.last_data_at = u64::try_from(ts.tv_sec()).ok().and_then(|sec| {
                        let ns = u32::try_from(ts.tv_nsec()).ok()?;
                        UNIX_EPOCH.checked_add(Duration::new(sec, ns))
                    });
                }
            }
        }
        out.response.extend_from_slice(&buf[..n]);
    }
    Err(io::Error::other("http_head_stamped: no end after 64 reads"))
}
