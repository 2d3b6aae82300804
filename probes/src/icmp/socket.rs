//! Opening ICMP sockets and the socket I/O boundary.
//!
//! [`Endpoint`] is the small trait the engine talks to (send one packet,
//! receive one packet with its kernel timestamp); [`IcmpSocket`] implements it
//! over a real socket, and tests implement it with an in-memory fake so the
//! scheduling and matching logic runs without sockets.
//!
//! [`open`] creates one socket for a [`Binding`]: an unprivileged ICMP
//! datagram ("ping") socket or a raw socket as [`SocketKind`] says, bound to
//! the source address (`bind`) and interface (`SO_BINDTODEVICE`), with a
//! large receive buffer (`SO_RCVBUFFORCE`, else `SO_RCVBUF`), kernel receive
//! timestamps (`SO_TIMESTAMPNS`) and a short receive timeout so the receive
//! thread notices shutdown.

use std::io::{self, IoSliceMut};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use nix::errno::Errno;
use nix::sys::socket::{self as nsock, sockopt, ControlMessageOwned, MsgFlags, SockaddrStorage};
use nix::sys::time::TimeSpec;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::{Binding, Family, IcmpConfig, SocketKind};

/// How long a blocking receive waits before the receive thread re-checks for
/// shutdown.
pub const RECV_TIMEOUT: Duration = Duration::from_millis(200);

/// Size of the send buffer asked for (best effort): bursts of due sends must
/// not block the sender thread.
const SEND_BUFFER_BYTES: usize = 4 << 20;

/// One received packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    /// Bytes written into the buffer.
    pub len: usize,
    /// Kernel receive timestamp (CLOCK_REALTIME), when the socket gave one.
    pub timestamp: Option<SystemTime>,
}

/// The socket I/O the engine needs. One endpoint per [`Binding`]; one thread
/// sends on it, one thread receives from it.
pub trait Endpoint: Send + Sync + std::fmt::Debug {
    /// Address family of the socket.
    fn family(&self) -> Family;
    /// [`SocketKind::Datagram`] or [`SocketKind::Raw`] (never `Auto`).
    fn kind(&self) -> SocketKind;
    /// Sends one ICMP message (starting at the ICMP header) to `dest`.
    fn send_to(&self, packet: &[u8], dest: IpAddr) -> io::Result<()>;
    /// Receives one packet; `Ok(None)` when nothing came. With `wait` it
    /// waits at most a short time (timeout or interrupt give `None`);
    /// without, it returns at once.
    fn recv(&self, buf: &mut [u8], wait: bool) -> io::Result<Option<Received>>;
}

/// A real ICMP socket.
#[derive(Debug)]
pub struct IcmpSocket {
    socket: Socket,
    family: Family,
    kind: SocketKind,
    /// Control-message buffer for `recvmsg` (only the receive thread uses it).
    cmsg: Mutex<Vec<u8>>,
}

impl Endpoint for IcmpSocket {
    fn family(&self) -> Family {
        self.family
    }

    fn kind(&self) -> SocketKind {
        self.kind
    }

    fn send_to(&self, packet: &[u8], dest: IpAddr) -> io::Result<()> {
        let addr = SockAddr::from(SocketAddr::new(dest, 0));
        self.socket.send_to(packet, &addr).map(|_| ())
    }

    fn recv(&self, buf: &mut [u8], wait: bool) -> io::Result<Option<Received>> {
        let mut cmsg = self.cmsg.lock().unwrap_or_else(|e| e.into_inner());
        let mut iov = [IoSliceMut::new(buf)];
        let msg = match nsock::recvmsg::<SockaddrStorage>(
            self.socket.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            if wait {
                MsgFlags::empty()
            } else {
                MsgFlags::MSG_DONTWAIT
            },
        ) {
            Ok(m) => m,
            Err(Errno::EAGAIN | Errno::EINTR) => return Ok(None),
            Err(e) => return Err(io::Error::from(e)),
        };
        let mut timestamp = None;
        if let Ok(cmsgs) = msg.cmsgs() {
            for c in cmsgs {
                if let ControlMessageOwned::ScmTimestampns(ts) = c {
                    timestamp = timespec_to_system_time(ts);
                }
            }
        }
        Ok(Some(Received {
            len: msg.bytes,
            timestamp,
        }))
    }
}

fn timespec_to_system_time(ts: TimeSpec) -> Option<SystemTime> {
    let secs = u64::try_from(ts.tv_sec()).ok()?;
    let nanos = u32::try_from(ts.tv_nsec())
        .ok()
        .filter(|n| *n < 1_000_000_000)?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
}

fn family_name(family: Family) -> &'static str {
    match family {
        Family::V4 => "IPv4",
        Family::V6 => "IPv6",
    }
}

fn create(family: Family, kind: SocketKind) -> io::Result<Socket> {
    let (domain, protocol) = match family {
        Family::V4 => (Domain::IPV4, Protocol::ICMPV4),
        Family::V6 => (Domain::IPV6, Protocol::ICMPV6),
    };
    let ty = match kind {
        SocketKind::Raw => Type::RAW,
        SocketKind::Datagram | SocketKind::Auto => Type::DGRAM,
    };
    Socket::new(domain, ty, Some(protocol))
}

fn is_permission(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error().map(Errno::from_raw),
        Some(Errno::EACCES | Errno::EPERM)
    )
}

/// Datagram ICMP sockets unsupported by this kernel: also worth trying raw.
fn is_unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error().map(Errno::from_raw),
        Some(Errno::EPROTONOSUPPORT | Errno::ESOCKTNOSUPPORT)
    )
}

/// The error message for a failed socket creation: what failed, why, and
/// (for permission errors) what would allow it.
pub(crate) fn open_error_message(
    family: Family,
    requested: SocketKind,
    datagram_err: Option<&io::Error>,
    raw_err: Option<&io::Error>,
    gid: u32,
) -> String {
    let fam = family_name(family);
    let permission = datagram_err.is_some_and(is_permission) || raw_err.is_some_and(is_permission);
    let mut msg = match requested {
        SocketKind::Auto => format!("cannot open ICMP socket for {fam}"),
        SocketKind::Datagram => format!("cannot open ICMP datagram socket for {fam}"),
        SocketKind::Raw => format!("cannot open raw ICMP socket for {fam}"),
    };
    if permission {
        msg.push_str(&match requested {
            SocketKind::Auto => {
                format!(": need CAP_NET_RAW or net.ipv4.ping_group_range covering gid {gid}")
            }
            SocketKind::Datagram => {
                format!(": need net.ipv4.ping_group_range covering gid {gid}")
            }
            SocketKind::Raw => ": need CAP_NET_RAW".to_string(),
        });
    }
    let details: Vec<String> = [("datagram socket", datagram_err), ("raw socket", raw_err)]
        .into_iter()
        .filter_map(|(what, e)| e.map(|e| format!("{what}: {e}")))
        .collect();
    if !details.is_empty() {
        msg.push_str(&format!(" ({})", details.join("; ")));
    }
    msg
}

/// Opens the socket for `binding` as `config` says. The error is a message
/// for the user saying what failed and why.
pub fn open(binding: &Binding, config: &IcmpConfig) -> Result<IcmpSocket, String> {
    let family = binding.family;
    let fam = family_name(family);
    let (socket, kind) = match config.socket_kind {
        SocketKind::Raw => match create(family, SocketKind::Raw) {
            Ok(s) => (s, SocketKind::Raw),
            Err(e) => {
                return Err(open_error_message(
                    family,
                    SocketKind::Raw,
                    None,
                    Some(&e),
                    nix::unistd::getegid().as_raw(),
                ))
            }
        },
        SocketKind::Datagram => match create(family, SocketKind::Datagram) {
            Ok(s) => (s, SocketKind::Datagram),
            Err(e) => {
                return Err(open_error_message(
                    family,
                    SocketKind::Datagram,
                    Some(&e),
                    None,
                    nix::unistd::getegid().as_raw(),
                ))
            }
        },
        SocketKind::Auto => match create(family, SocketKind::Datagram) {
            Ok(s) => (s, SocketKind::Datagram),
            Err(de) if is_permission(&de) || is_unsupported(&de) => {
                match create(family, SocketKind::Raw) {
                    Ok(s) => {
                        tracing::debug!(
                            "ICMP datagram socket for {fam} unavailable ({de}); using a raw socket"
                        );
                        (s, SocketKind::Raw)
                    }
                    Err(re) => {
                        return Err(open_error_message(
                            family,
                            SocketKind::Auto,
                            Some(&de),
                            Some(&re),
                            nix::unistd::getegid().as_raw(),
                        ))
                    }
                }
            }
            Err(de) => {
                return Err(open_error_message(
                    family,
                    SocketKind::Auto,
                    Some(&de),
                    None,
                    nix::unistd::getegid().as_raw(),
                ))
            }
        },
    };

    if let Some(source) = binding.source {
        let source_family = match source {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        };
        if source_family != family {
            return Err(format!(
                "cannot bind ICMP socket for {fam} to source {source}: address family mismatch"
            ));
        }
        socket
            .bind(&SockAddr::from(SocketAddr::new(source, 0)))
            .map_err(|e| format!("cannot bind ICMP socket for {fam} to source {source}: {e}"))?;
    }
    if let Some(interface) = &binding.interface {
        socket
            .bind_device(Some(interface.as_bytes()))
            .map_err(|e| {
                format!("cannot bind ICMP socket for {fam} to interface {interface:?}: {e}")
            })?;
    }
    if kind == SocketKind::Raw {
        if let Err(e) = super::filter::install(&socket, family) {
            tracing::debug!("cannot install the ICMP type filter on the raw {fam} socket ({e}); unrelated ICMP is filtered in user space");
        }
    }
    socket
        .set_read_timeout(Some(RECV_TIMEOUT))
        .map_err(|e| format!("cannot set receive timeout on ICMP socket for {fam}: {e}"))?;

    // Large receive buffer: SO_RCVBUFFORCE ignores rmem_max (needs
    // CAP_NET_ADMIN); SO_RCVBUF is capped by it.
    let want = config.recv_buffer_bytes;
    if want > 0 {
        if let Err(force_err) = nsock::setsockopt(&socket, sockopt::RcvBufForce, &want) {
            if let Err(e) = socket.set_recv_buffer_size(want) {
                tracing::warn!(
                    "cannot enlarge ICMP receive buffer for {fam} ({force_err}; {e}); replies may be dropped under load"
                );
            }
        }
    }
    let _ = socket.set_send_buffer_size(SEND_BUFFER_BYTES);
    if let Err(e) = nsock::setsockopt(&socket, sockopt::ReceiveTimestampns, &true) {
        tracing::debug!(
            "SO_TIMESTAMPNS unavailable on ICMP socket for {fam} ({e}); RTTs use user-space receive times"
        );
    }
    let rcvbuf = socket.recv_buffer_size().unwrap_or(0);
    tracing::info!(
        "opened ICMP {} socket for {fam} (source {:?}, interface {:?}, receive buffer {} bytes)",
        match kind {
            SocketKind::Raw => "raw",
            _ => "datagram",
        },
        binding.source,
        binding.interface,
        rcvbuf
    );

    Ok(IcmpSocket {
        socket,
        family,
        kind,
        cmsg: Mutex::new(nix::cmsg_space!(TimeSpec, [u64; 4])),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_say_what_and_why() {
        let eacces = io::Error::from_raw_os_error(Errno::EACCES as i32);
        let eperm = io::Error::from_raw_os_error(Errno::EPERM as i32);
        let m = open_error_message(
            Family::V4,
            SocketKind::Auto,
            Some(&eacces),
            Some(&eperm),
            1000,
        );
        assert_eq!(
            m,
            format!(
                "cannot open ICMP socket for IPv4: need CAP_NET_RAW or net.ipv4.ping_group_range \
                 covering gid 1000 (datagram socket: {eacces}; raw socket: {eperm})"
            )
        );
        let m = open_error_message(Family::V6, SocketKind::Datagram, Some(&eacces), None, 5);
        assert!(
            m.starts_with(
                "cannot open ICMP datagram socket for IPv6: need net.ipv4.ping_group_range covering gid 5"
            ),
            "{m}"
        );
        let m = open_error_message(Family::V4, SocketKind::Raw, None, Some(&eperm), 5);
        assert!(
            m.starts_with("cannot open raw ICMP socket for IPv4: need CAP_NET_RAW ("),
            "{m}"
        );

        let eafno = io::Error::from_raw_os_error(Errno::EAFNOSUPPORT as i32);
        let m = open_error_message(Family::V6, SocketKind::Raw, None, Some(&eafno), 0);
        assert_eq!(
            m,
            format!("cannot open raw ICMP socket for IPv6 (raw socket: {eafno})")
        );
    }

    /// A real socket on loopback delivers kernel receive timestamps.
    #[test]
    fn loopback_echo_has_kernel_timestamp() {
        let sock = match open(&Binding::any(Family::V4), &IcmpConfig::default()) {
            Ok(s) => s,
            Err(e) => {
                println!("skipping: needs root (CAP_NET_RAW) or net.ipv4.ping_group_range ({e})");
                return;
            }
        };
        let magic = *b"tstamp!!";
        let token = super::super::packet::Token {
            magic,
            socket_id: 1,
            key: 0x5151_0001,
        };
        let req =
            super::super::packet::build_echo_request(Family::V4, 0x5151, 0x0001, &token.encode());
        let before = SystemTime::now();
        sock.send_to(&req, IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))
            .expect("send to 127.0.0.1");
        let mut buf = [0u8; 2048];
        // Bounded: at most 50 packets or 2 s.
        let give_up = std::time::Instant::now() + Duration::from_secs(2);
        for _ in 0..50 {
            if std::time::Instant::now() > give_up {
                break;
            }
            let Ok(Some(r)) = sock.recv(&mut buf, true) else {
                continue;
            };
            let with_hdr = sock.kind() == SocketKind::Raw;
            let data = &buf[..r.len];
            if let Ok(super::super::packet::Message::EchoReply { payload, .. }) =
                super::super::packet::parse(Family::V4, with_hdr, data)
            {
                if super::super::packet::Token::decode(payload).is_some_and(|t| t.magic == magic) {
                    let ts = r.timestamp.expect("kernel timestamp");
                    let rtt = ts.duration_since(before).expect("after send");
                    assert!(rtt < Duration::from_millis(50), "{rtt:?}");
                    return;
                }
            }
        }
        panic!("no echo reply from 127.0.0.1");
    }

    #[test]
    fn timespec_conversion() {
        let t = timespec_to_system_time(TimeSpec::new(1, 5));
        assert_eq!(t, Some(SystemTime::UNIX_EPOCH + Duration::new(1, 5)));
        assert_eq!(timespec_to_system_time(TimeSpec::new(-1, 0)), None);
    }

    #[test]
    fn source_family_mismatch_is_an_error() {
        let b = Binding {
            family: Family::V4,
            source: Some(IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)),
            interface: None,
        };
        // Whether or not we may open sockets, this must be an error.
        assert!(open(&b, &IcmpConfig::default()).is_err());
    }
}
