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
//! timestamps (`SO_TIMESTAMPNS`), kernel *transmit* timestamps
//! (`SO_TIMESTAMPING` with `SOF_TIMESTAMPING_TX_SOFTWARE`: the device stamps
//! each packet as it transmits it, and the stamp comes back on the socket's
//! error queue together with the packet, from which the engine reads its
//! token) and a short receive timeout so the receive thread notices
//! shutdown. Sends of one tick go out in one `sendmmsg`, with the TOS and
//! TTL of their round as control messages (`IP_TOS`, `IP_TTL`,
//! `IPV6_TCLASS`, `IPV6_HOPLIMIT`), so rounds with different settings share
//! the socket. Each reply's TTL (or hop limit) comes with it
//! (`IP_RECVTTL`, `IPV6_RECVHOPLIMIT`; a raw IPv4 socket's packets carry
//! their IP header). The don't-fragment setting is a socket option
//! (`IP_MTU_DISCOVER`), part of the binding.

use crate::sync::lock;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{
    self as nsock, sockopt, ControlMessageOwned, MsgFlags, SockaddrStorage, TimestampingFlag,
};
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
    /// Kernel receive timestamp (CLOCK_REALTIME), when the socket gave one;
    /// for an error-queue entry, the kernel's transmit timestamp.
    pub timestamp: Option<SystemTime>,
    /// Packets the kernel dropped on this socket so far because its receive
    /// buffer was full (`SO_RXQ_OVFL`), when the socket reports it.
    pub drops: Option<u32>,
    /// The packet's TTL (IPv4) or hop limit (IPv6), when the kernel gave it
    /// in a control message.
    pub ttl: Option<u8>,
}

/// What is set per packet: the TOS (traffic class) byte and the TTL (hop
/// limit). The default leaves both to the kernel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacketSettings {
    /// 0: the socket's (the kernel's default, 0).
    pub tos: u8,
    /// `None`: the socket's (the kernel's default).
    pub ttl: Option<u8>,
}

/// Buffers for reading several packets with one system call.
#[derive(Debug)]
pub struct RecvBatch {
    /// One buffer per packet.
    pub bufs: Vec<Vec<u8>>,
    /// What the last read put into `bufs[i]`.
    pub got: Vec<Received>,
}

impl RecvBatch {
    /// `n` buffers of `len` bytes.
    pub fn new(n: usize, len: usize) -> RecvBatch {
        RecvBatch {
            bufs: vec![vec![0u8; len]; n.max(1)],
            got: Vec::with_capacity(n.max(1)),
        }
    }
}

/// The socket I/O the engine needs. One endpoint per [`Binding`]; one thread
/// sends on it, one thread receives from it.
pub trait Endpoint: Send + Sync + std::fmt::Debug {
    /// Address family of the socket.
    fn family(&self) -> Family;
    /// [`SocketKind::Datagram`] or [`SocketKind::Raw`] (never `Auto`).
    fn kind(&self) -> SocketKind;
    /// True when the kernel stamps this socket's sends: every send then
    /// gets a transmit timestamp on the error queue ([`Endpoint::recv_tx`]).
    fn tx_timestamps(&self) -> bool {
        false
    }
    /// True when a receive timestamp, if present, was taken as the packet
    /// arrived (`SO_TIMESTAMPING`), never when it was read: then a packet
    /// may be read late without changing its RTT.
    fn rx_stamps_at_arrival(&self) -> bool {
        false
    }
    /// The socket's receive buffer, bytes (as the kernel counts it).
    fn recv_buffer_bytes(&self) -> usize {
        16 << 20
    }
    /// Sends one ICMP message (starting at the ICMP header) to `dest`.
    fn send_to(&self, packet: &[u8], dest: IpAddr) -> io::Result<()>;
    /// Sends one ICMP message with `set`'s TOS and TTL.
    fn send_with(&self, packet: &[u8], dest: IpAddr, set: PacketSettings) -> io::Result<()> {
        let _ = set;
        self.send_to(packet, dest)
    }
    /// Sends `packets` in order, each with `set`'s TOS and TTL, in as few
    /// system calls as the socket allows; `results` gets one entry per
    /// packet.
    fn send_batch(
        &self,
        packets: &[(&[u8], IpAddr)],
        set: PacketSettings,
        results: &mut Vec<io::Result<()>>,
    ) {
        results.clear();
        for (p, dest) in packets {
            results.push(self.send_with(p, *dest, set));
        }
    }
    /// Receives one packet; `Ok(None)` when nothing came. With `wait` it
    /// waits at most a short time (timeout or interrupt give `None`);
    /// without, it returns at once.
    fn recv(&self, buf: &mut [u8], wait: bool) -> io::Result<Option<Received>>;
    /// Reads one error-queue entry without waiting: a transmit timestamp
    /// (in `timestamp`) and the packet it stamps, as the kernel returns it
    /// (from the link-layer header on). `Ok(None)` when the queue is empty.
    fn recv_tx(&self, _buf: &mut [u8]) -> io::Result<Option<Received>> {
        Ok(None)
    }
    /// Waits until a packet or an error-queue entry can be read, at most
    /// `timeout`; false when nothing came.
    fn wait(&self, timeout: Duration) -> io::Result<bool>;
    /// Reads what is queued, without waiting, into `batch` (as many as it
    /// holds): error-queue entries if `errqueue`, else packets. Returns how
    /// many were read (`batch.got`); a short read means the queue is empty.
    fn recv_batch(&self, batch: &mut RecvBatch, errqueue: bool) -> io::Result<usize> {
        batch.got.clear();
        for buf in &mut batch.bufs {
            let r = if errqueue {
                self.recv_tx(buf)?
            } else {
                self.recv(buf, false)?
            };
            match r {
                Some(r) => batch.got.push(r),
                None => break,
            }
        }
        Ok(batch.got.len())
    }
}

/// A real ICMP socket.
#[derive(Debug)]
pub struct IcmpSocket {
    socket: Socket,
    family: Family,
    kind: SocketKind,
    /// The kernel stamps sends (`SO_TIMESTAMPING`).
    tx_stamps: bool,
    /// Receive stamps come from `SO_TIMESTAMPING` (taken at arrival; a
    /// packet that arrived before timestamping was on has none) rather
    /// than `SO_TIMESTAMPNS` (which stamps such a packet when it is read).
    rx_at_arrival: bool,
    /// `SO_RCVBUF` as the kernel reports it.
    rcvbuf: usize,
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

    fn tx_timestamps(&self) -> bool {
        self.tx_stamps
    }

    fn rx_stamps_at_arrival(&self) -> bool {
        self.rx_at_arrival
    }

    fn recv_buffer_bytes(&self) -> usize {
        self.rcvbuf
    }

    fn send_to(&self, packet: &[u8], dest: IpAddr) -> io::Result<()> {
        let addr = SockAddr::from(SocketAddr::new(dest, 0));
        self.socket.send_to(packet, &addr).map(|_| ())
    }

    fn send_with(&self, packet: &[u8], dest: IpAddr, set: PacketSettings) -> io::Result<()> {
        if set == PacketSettings::default() {
            return self.send_to(packet, dest);
        }
        let addr = SockaddrStorage::from(SocketAddr::new(dest, 0));
        let values = CmsgValues::of(set);
        let cmsgs = values.messages(self.family);
        loop {
            match nsock::sendmsg(
                self.socket.as_raw_fd(),
                &[IoSlice::new(packet)],
                &cmsgs,
                MsgFlags::empty(),
                Some(&addr),
            ) {
                Ok(_) => return Ok(()),
                Err(Errno::EINTR) => {}
                Err(e) => return Err(io::Error::from(e)),
            }
        }
    }

    fn send_batch(
        &self,
        packets: &[(&[u8], IpAddr)],
        set: PacketSettings,
        results: &mut Vec<io::Result<()>>,
    ) {
        results.clear();
        if packets.len() < 2 {
            // One packet: sendto is cheaper than setting up sendmmsg.
            for (p, dest) in packets {
                results.push(self.send_with(p, *dest, set));
            }
            return;
        }
        let values = CmsgValues::of(set);
        let cmsgs = values.messages(self.family);
        let addrs: Vec<Option<SockaddrStorage>> = packets
            .iter()
            .map(|(_, d)| Some(SockaddrStorage::from(SocketAddr::new(*d, 0))))
            .collect();
        let iovs: Vec<[IoSlice<'_>; 1]> = packets.iter().map(|(p, _)| [IoSlice::new(p)]).collect();
        let mut done = 0;
        // sendmmsg sends a prefix of the batch; an error is reported for the
        // first packet that could not be sent, which is then skipped.
        while done < packets.len() {
            let n = packets.len() - done;
            // Room for the TOS and TTL messages of every packet (an int
            // each at most), when there are any.
            let room = (!cmsgs.is_empty()).then(|| nix::cmsg_space!(libc::c_int, libc::c_int));
            let mut headers = nsock::MultiHeaders::<SockaddrStorage>::preallocate(n, room);
            match nsock::sendmmsg(
                self.socket.as_raw_fd(),
                &mut headers,
                &iovs[done..],
                &addrs[done..],
                &cmsgs,
                MsgFlags::empty(),
            ) {
                Ok(sent) => {
                    let sent = sent.count();
                    if sent == 0 {
                        // Nothing sent and no error: try them one by one.
                        for (p, dest) in &packets[done..] {
                            results.push(self.send_with(p, *dest, set));
                        }
                        return;
                    }
                    results.extend((0..sent).map(|_| Ok(())));
                    done += sent;
                }
                Err(Errno::EINTR) => {}
                Err(e) => {
                    results.push(Err(io::Error::from(e)));
                    done += 1;
                }
            }
        }
    }

    fn recv(&self, buf: &mut [u8], wait: bool) -> io::Result<Option<Received>> {
        self.recv_from_queue(
            buf,
            if wait {
                MsgFlags::empty()
            } else {
                MsgFlags::MSG_DONTWAIT
            },
        )
    }

    fn recv_tx(&self, buf: &mut [u8]) -> io::Result<Option<Received>> {
        if !self.tx_stamps {
            return Ok(None);
        }
        self.recv_from_queue(buf, MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_ERRQUEUE)
    }

    fn recv_batch(&self, batch: &mut RecvBatch, errqueue: bool) -> io::Result<usize> {
        batch.got.clear();
        if errqueue && !self.tx_stamps {
            return Ok(0);
        }
        let flags = if errqueue {
            MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_ERRQUEUE
        } else {
            MsgFlags::MSG_DONTWAIT
        };
        let n = batch.bufs.len();
        let mut headers = nsock::MultiHeaders::<SockaddrStorage>::preallocate(
            n,
            Some(nix::cmsg_space!(
                TimeSpec,
                [TimeSpec; 3],
                [u64; 8],
                u32,
                i32
            )),
        );
        let mut slices: Vec<[IoSliceMut<'_>; 1]> = batch
            .bufs
            .iter_mut()
            .map(|b| [IoSliceMut::new(b)])
            .collect();
        let results = match nsock::recvmmsg(
            self.socket.as_raw_fd(),
            &mut headers,
            slices.iter_mut(),
            flags,
            None,
        ) {
            Ok(r) => r,
            Err(Errno::EAGAIN | Errno::EINTR) => return Ok(0),
            Err(e) => return Err(io::Error::from(e)),
        };
        for msg in results {
            let c = msg.cmsgs().ok().map(control).unwrap_or_default();
            batch.got.push(Received {
                len: msg.bytes,
                timestamp: c.timestamp,
                drops: c.drops,
                ttl: c.ttl,
            });
        }
        Ok(batch.got.len())
    }

    fn wait(&self, timeout: Duration) -> io::Result<bool> {
        let ms = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(
            self.socket.as_fd(),
            PollFlags::POLLIN | PollFlags::POLLERR,
        )];
        match nix::poll::poll(&mut fds, PollTimeout::from(ms)) {
            Ok(n) => Ok(n > 0),
            Err(Errno::EINTR) => Ok(false),
            Err(e) => Err(io::Error::from(e)),
        }
    }
}

impl IcmpSocket {
    /// One `recvmsg` with `flags`; the kernel timestamp from
    /// `SO_TIMESTAMPING` (error queue) or `SO_TIMESTAMPNS` (data).
    fn recv_from_queue(&self, buf: &mut [u8], flags: MsgFlags) -> io::Result<Option<Received>> {
        let mut cmsg = lock(&self.cmsg);
        let mut iov = [IoSliceMut::new(buf)];
        let msg = match nsock::recvmsg::<SockaddrStorage>(
            self.socket.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            flags,
        ) {
            Ok(m) => m,
            Err(Errno::EAGAIN | Errno::EINTR) => return Ok(None),
            Err(e) => return Err(io::Error::from(e)),
        };
        let c = msg.cmsgs().ok().map(control).unwrap_or_default();
        Ok(Some(Received {
            len: msg.bytes,
            timestamp: c.timestamp,
            drops: c.drops,
            ttl: c.ttl,
        }))
    }
}

/// The control-message values of [`PacketSettings`], kept alive while
/// the messages point at them.
struct CmsgValues {
    tos: u8,
    tclass: i32,
    ttl: Option<i32>,
}

impl CmsgValues {
    fn of(set: PacketSettings) -> CmsgValues {
        CmsgValues {
            tos: set.tos,
            tclass: i32::from(set.tos),
            ttl: set.ttl.map(i32::from),
        }
    }

    /// The messages for a socket of `family` (none for the defaults).
    fn messages(&self, family: Family) -> Vec<nsock::ControlMessage<'_>> {
        let mut out = Vec::with_capacity(2);
        match family {
            Family::V4 => {
                if self.tos != 0 {
                    out.push(nsock::ControlMessage::Ipv4Tos(&self.tos));
                }
                if let Some(ttl) = &self.ttl {
                    out.push(nsock::ControlMessage::Ipv4Ttl(ttl));
                }
            }
            Family::V6 => {
                if self.tclass != 0 {
                    out.push(nsock::ControlMessage::Ipv6TClass(&self.tclass));
                }
                if let Some(hops) = &self.ttl {
                    out.push(nsock::ControlMessage::Ipv6HopLimit(hops));
                }
            }
        }
        out
    }
}

/// What a message's control messages say.
#[derive(Clone, Copy, Debug, Default)]
struct Control {
    /// The kernel timestamp: the software time of `SCM_TIMESTAMPING`
    /// (zero, i.e. absent, when the packet was not stamped), else
    /// `SCM_TIMESTAMPNS`.
    timestamp: Option<SystemTime>,
    /// The socket's drop count (`SO_RXQ_OVFL`).
    drops: Option<u32>,
    /// The TTL or hop limit (`IP_RECVTTL`, `IPV6_RECVHOPLIMIT`).
    ttl: Option<u8>,
}

fn control(cmsgs: nsock::CmsgIterator<'_>) -> Control {
    let (mut ts_ing, mut ns, mut out) = (None, None, Control::default());
    for c in cmsgs {
        match c {
            ControlMessageOwned::ScmTimestampsns(ts) => {
                ts_ing = Some(
                    timespec_to_system_time(ts.system).filter(|t| *t > SystemTime::UNIX_EPOCH),
                );
            }
            ControlMessageOwned::ScmTimestampns(ts) => ns = timespec_to_system_time(ts),
            ControlMessageOwned::RxqOvfl(n) => out.drops = Some(n),
            ControlMessageOwned::Ipv4Ttl(t) => out.ttl = u8::try_from(t).ok(),
            ControlMessageOwned::Ipv6HopLimit(t) => out.ttl = u8::try_from(t).ok(),
            _ => {}
        }
    }
    out.timestamp = ts_ing.unwrap_or(ns);
    out
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

/// Why an ICMP socket could not be opened; its text says what failed and
/// why, for the user.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The socket could not be created (with what would allow it).
    #[error("{}", open_error_message(*family, *requested, datagram.as_ref(), raw.as_ref(), *gid))]
    Create {
        /// IPv4 or IPv6.
        family: Family,
        /// The kind asked for.
        requested: SocketKind,
        /// Why a datagram socket failed, if one was tried.
        datagram: Option<io::Error>,
        /// Why a raw socket failed, if one was tried.
        raw: Option<io::Error>,
        /// The effective group id (for `ping_group_range`).
        gid: u32,
    },
    /// The source address is of the other family.
    #[error("cannot bind ICMP socket for {} to source {address}: address family mismatch", family_name(*family))]
    SourceFamily {
        /// The socket's family.
        family: Family,
        /// The source address.
        address: IpAddr,
    },
    /// Binding to the source address failed.
    #[error("cannot bind ICMP socket for {} to source {address}: {error}", family_name(*family))]
    Bind {
        /// The socket's family.
        family: Family,
        /// The source address.
        address: IpAddr,
        /// Why.
        error: io::Error,
    },
    /// Binding to the interface failed.
    #[error("cannot bind ICMP socket for {} to interface {interface:?}: {error}", family_name(*family))]
    Device {
        /// The socket's family.
        family: Family,
        /// The interface.
        interface: String,
        /// Why.
        error: io::Error,
    },
    /// The receive timeout could not be set.
    #[error("cannot set receive timeout on ICMP socket for {}: {error}", family_name(*family))]
    Timeout {
        /// The socket's family.
        family: Family,
        /// Why.
        error: io::Error,
    },
    /// A socket option an order asked for could not be set.
    #[error("cannot set {option} on ICMP socket for {}: {error}", family_name(*family))]
    Option {
        /// The socket's family.
        family: Family,
        /// The option.
        option: &'static str,
        /// Why.
        error: io::Error,
    },
}

impl From<&OpenError> for super::SocketError {
    fn from(e: &OpenError) -> super::SocketError {
        use super::SocketCause;
        let cause = match e {
            OpenError::Create { datagram, raw, .. }
                if datagram.as_ref().is_some_and(is_permission)
                    || raw.as_ref().is_some_and(is_permission) =>
            {
                SocketCause::NotPermitted
            }
            OpenError::SourceFamily { .. } | OpenError::Bind { .. } => SocketCause::Source,
            OpenError::Device { .. } => SocketCause::Interface,
            OpenError::Create { .. } | OpenError::Timeout { .. } | OpenError::Option { .. } => {
                SocketCause::Other
            }
        };
        super::SocketError::new(cause, e.to_string())
    }
}

/// Opens the socket for `binding` as `config` says.
pub fn open(binding: &Binding, config: &IcmpConfig) -> Result<IcmpSocket, OpenError> {
    let family = binding.family;
    let fam = family_name(family);
    let (socket, kind) = create_kind(family, config.socket_kind)?;
    bind(&socket, binding)?;
    let (rx_at_arrival, tx_stamps) = set_options(&socket, family, kind, config)?;
    set_fragmenting(&socket, binding)?;
    let rcvbuf = socket.recv_buffer_size().unwrap_or(0);
    tracing::info!(
        "opened ICMP {} socket for {fam} (source {:?}, interface {:?}, don't fragment {}, receive buffer {} bytes)",
        match kind {
            SocketKind::Raw => "raw",
            _ => "datagram",
        },
        binding.source,
        binding.interface,
        match binding.dont_fragment {
            Some(true) => "always",
            Some(false) => "never",
            None => "as the kernel does",
        },
        rcvbuf
    );

    Ok(IcmpSocket {
        socket,
        family,
        kind,
        tx_stamps,
        rx_at_arrival,
        rcvbuf,
        // SO_TIMESTAMPNS, SO_TIMESTAMPING (three timespecs), an extended
        // error from the error queue, the drop count and the TTL.
        cmsg: Mutex::new(nix::cmsg_space!(
            TimeSpec,
            [TimeSpec; 3],
            [u64; 8],
            u32,
            i32
        )),
    })
}

/// Creates the socket of the kind `config` asks for (`Auto`: a datagram
/// socket, else a raw one).
fn create_kind(family: Family, requested: SocketKind) -> Result<(Socket, SocketKind), OpenError> {
    let fam = family_name(family);
    let (socket, kind) = match requested {
        SocketKind::Raw => match create(family, SocketKind::Raw) {
            Ok(s) => (s, SocketKind::Raw),
            Err(e) => {
                return Err(OpenError::Create {
                    family,
                    requested: SocketKind::Raw,
                    datagram: None,
                    raw: Some(e),
                    gid: nix::unistd::getegid().as_raw(),
                })
            }
        },
        SocketKind::Datagram => match create(family, SocketKind::Datagram) {
            Ok(s) => (s, SocketKind::Datagram),
            Err(e) => {
                return Err(OpenError::Create {
                    family,
                    requested: SocketKind::Datagram,
                    datagram: Some(e),
                    raw: None,
                    gid: nix::unistd::getegid().as_raw(),
                })
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
                        return Err(OpenError::Create {
                            family,
                            requested: SocketKind::Auto,
                            datagram: Some(de),
                            raw: Some(re),
                            gid: nix::unistd::getegid().as_raw(),
                        })
                    }
                }
            }
            Err(de) => {
                return Err(OpenError::Create {
                    family,
                    requested: SocketKind::Auto,
                    datagram: Some(de),
                    raw: None,
                    gid: nix::unistd::getegid().as_raw(),
                })
            }
        },
    };
    Ok((socket, kind))
}

/// Binds `socket` to the binding's source address and interface.
fn bind(socket: &Socket, binding: &Binding) -> Result<(), OpenError> {
    let family = binding.family;
    if let Some(source) = binding.source {
        let source_family = match source {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        };
        if source_family != family {
            return Err(OpenError::SourceFamily {
                family,
                address: source,
            });
        }
        socket
            .bind(&SockAddr::from(SocketAddr::new(source, 0)))
            .map_err(|error| OpenError::Bind {
                family,
                address: source,
                error,
            })?;
    }
    if let Some(interface) = &binding.interface {
        socket
            .bind_device(Some(interface.as_bytes()))
            .map_err(|error| OpenError::Device {
                family,
                interface: interface.clone(),
                error,
            })?;
    }
    Ok(())
}

/// The socket's options: type filter, receive timeout, buffers, kernel
/// timestamps, drop counts. Returns whether receive stamps are taken at
/// arrival and whether sends are stamped.
fn set_options(
    socket: &Socket,
    family: Family,
    kind: SocketKind,
    config: &IcmpConfig,
) -> Result<(bool, bool), OpenError> {
    let fam = family_name(family);
    if kind == SocketKind::Raw {
        if let Err(e) = super::filter::install(socket, family) {
            tracing::debug!("cannot install the ICMP type filter on the raw {fam} socket ({e}); unrelated ICMP is filtered in user space");
        }
    }
    socket
        .set_read_timeout(Some(RECV_TIMEOUT))
        .map_err(|error| OpenError::Timeout { family, error })?;

    // Large receive buffer: SO_RCVBUFFORCE ignores rmem_max (needs
    // CAP_NET_ADMIN); SO_RCVBUF is capped by it.
    let want = config.recv_buffer_bytes;
    if want > 0 {
        if let Err(force_err) = nsock::setsockopt(socket, sockopt::RcvBufForce, &want) {
            if let Err(e) = socket.set_recv_buffer_size(want) {
                tracing::warn!(
                    "cannot enlarge ICMP receive buffer for {fam} ({force_err}; {e}); replies may be dropped under load"
                );
            }
        }
    }
    let _ = socket.set_send_buffer_size(SEND_BUFFER_BYTES);
    // Receive stamps taken at arrival and, if asked for, transmit stamps
    // (SO_TIMESTAMPING); else SO_TIMESTAMPNS receive stamps only.
    let mut flags = TimestampingFlag::SOF_TIMESTAMPING_RX_SOFTWARE
        | TimestampingFlag::SOF_TIMESTAMPING_SOFTWARE;
    if config.tx_timestamps {
        flags |= TimestampingFlag::SOF_TIMESTAMPING_TX_SOFTWARE;
    }
    let (rx_at_arrival, tx_stamps) = match nsock::setsockopt(socket, sockopt::Timestamping, &flags)
    {
        Ok(()) => (true, config.tx_timestamps),
        Err(e) => {
            tracing::info!("SO_TIMESTAMPING unavailable on the ICMP socket for {fam} ({e}); send times are taken in user space");
            if let Err(e) = nsock::setsockopt(socket, sockopt::ReceiveTimestampns, &true) {
                tracing::debug!(
                    "SO_TIMESTAMPNS unavailable on ICMP socket for {fam} ({e}); RTTs use user-space receive times"
                );
            }
            (false, false)
        }
    };
    // Every packet read then says how many the kernel dropped on this
    // socket so far because its receive buffer was full: a lost ping of
    // ours is then told from one the network lost.
    if let Err(e) = nsock::setsockopt(socket, sockopt::RxqOvfl, &1) {
        tracing::debug!("SO_RXQ_OVFL unavailable on the ICMP socket for {fam} ({e}); receive-buffer drops are not counted");
    }
    // Each reply's TTL or hop limit, for smokeping_response_ttl. A raw
    // IPv4 socket reads it from the IP header.
    let ttl = match (family, kind) {
        (Family::V4, SocketKind::Raw) => Ok(()),
        (Family::V4, _) => nsock::setsockopt(socket, sockopt::Ipv4RecvTtl, &true),
        (Family::V6, _) => nsock::setsockopt(socket, sockopt::Ipv6RecvHopLimit, &true),
    };
    if let Err(e) = ttl {
        tracing::debug!("cannot ask for the TTL of replies on the ICMP socket for {fam} ({e})");
    }
    Ok((rx_at_arrival, tx_stamps))
}

/// IPv4's don't-fragment setting of the binding (`IP_MTU_DISCOVER`):
/// always (`IP_PMTUDISC_DO`) or never (`IP_PMTUDISC_DONT`); unset leaves
/// the kernel's default. IPv6 has nothing to set.
fn set_fragmenting(socket: &Socket, binding: &Binding) -> Result<(), OpenError> {
    let (Family::V4, Some(df)) = (binding.family, binding.dont_fragment) else {
        return Ok(());
    };
    super::mtu::set_dont_fragment(socket, df).map_err(|error| OpenError::Option {
        family: binding.family,
        option: "IP_MTU_DISCOVER",
        error,
    })
}

#[cfg(test)]
mod tests;
