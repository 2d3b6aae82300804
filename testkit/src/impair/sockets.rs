//! The simulated host's sockets, opened inside its namespace, and the
//! checks of a configuration (test addresses only).

use super::*;

pub(super) fn ms(v: f64) -> Duration {
    Duration::from_secs_f64((v.max(0.0)) / 1000.0)
}

pub(super) fn validate(cfg: &SimConfig) -> io::Result<()> {
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
    // What an HTTP address sends goes through the relay; an ICMP host's
    // answers must not.
    for h in &cfg.http {
        if cfg.hosts.iter().any(|x| x.addr == h.addr.ip()) {
            return bad(format!(
                "{}: an HTTP address must not be an ICMP host's",
                h.addr.ip()
            ));
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

pub(super) fn in_test_range(a: IpAddr) -> bool {
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
pub(super) fn open_in_namespace(host_ns: &str, cfg: &SimConfig) -> io::Result<HostSockets> {
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

pub(super) fn open_sockets(cfg: &SimConfig) -> io::Result<HostSockets> {
    let mut icmp = Vec::new();
    for h in &cfg.hosts {
        let (domain, proto) = match h.addr {
            IpAddr::V4(_) => (Domain::IPV4, Protocol::ICMPV4),
            IpAddr::V6(_) => (Domain::IPV6, Protocol::ICMPV6),
        };
        let s = Socket::new(domain, Type::RAW, Some(proto))?;
        s.bind(&SockAddr::from(SocketAddr::new(h.addr, 0)))?;
        if let Some(ttl) = h.reply_ttl {
            match h.addr {
                IpAddr::V4(_) => s.set_ttl_v4(u32::from(ttl))?,
                IpAddr::V6(_) => s.set_unicast_hops_v6(u32::from(ttl))?,
            }
        }
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
    let relay = if cfg.http.is_empty() {
        None
    } else {
        Some(open_relay()?)
    };
    Ok(HostSockets {
        icmp,
        tap,
        http,
        accept,
        relay,
    })
}

pub(super) fn prepare_rx(s: &Socket) -> io::Result<()> {
    s.set_nonblocking(true)?;
    s.set_recv_buffer_size(4 << 20)?;
    nsock::setsockopt(s, sockopt::ReceiveTimestampns, &true).map_err(io::Error::from)?;
    Ok(())
}
