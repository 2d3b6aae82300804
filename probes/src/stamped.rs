//! A TCP stream timed by the kernel (`SO_TIMESTAMPING`, software stamps):
//! the time its first byte of data left (the transmit stamp of the first
//! send, from the error queue) and the time the last byte read so far
//! arrived (the receive stamp of the last segment a read consumed). The
//! probes that talk over TCP time their exchange with these, so neither
//! this process's wake-ups nor its parsing are in the round trip.
//!
//! Reads go through `recvmsg` to get the receive stamps; writes are the
//! stream's own.

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::SystemTime;

use nix::errno::Errno;
use nix::sys::socket::{self as nsock, sockopt, ControlMessageOwned, MsgFlags, TimestampingFlag};
use nix::sys::time::TimeSpec;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

use crate::sync::lock;

/// Most error-queue messages read at once (a ping sends a handful).
const ERRQUEUE_BATCH: usize = 64;

/// What the kernel stamped on a stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stamps {
    /// The first send's transmit time (its last segment leaving).
    pub first_tx: Option<SystemTime>,
    /// The arrival of the last segment read.
    pub last_rx: Option<SystemTime>,
}

/// A TCP stream whose sends and reads are stamped; [`Stamped::stamps`]
/// hands out a view that outlives the stream (an HTTP connection owns it).
#[derive(Debug)]
pub struct Stamped {
    stream: TcpStream,
    stamps: Arc<Mutex<Stamps>>,
}

/// A view of the stamps of a [`Stamped`] stream.
#[derive(Clone, Debug)]
pub struct StampView(Arc<Mutex<Stamps>>);

impl StampView {
    /// The stamps so far.
    pub fn get(&self) -> Stamps {
        *lock(&self.0)
    }
}

impl Stamped {
    /// Asks the kernel to stamp `stream`'s sends and receptions; call it
    /// before any data is sent. Where the kernel refuses
    /// (`SO_TIMESTAMPING`), the stamps stay empty and the caller times the
    /// exchange itself.
    pub fn new(stream: TcpStream) -> Stamped {
        let flags = TimestampingFlag::SOF_TIMESTAMPING_RX_SOFTWARE
            | TimestampingFlag::SOF_TIMESTAMPING_TX_SOFTWARE
            | TimestampingFlag::SOF_TIMESTAMPING_SOFTWARE
            | TimestampingFlag::SOF_TIMESTAMPING_OPT_TSONLY;
        if let Err(e) = nsock::setsockopt(&stream, sockopt::Timestamping, &flags) {
            tracing::debug!(error = %e, "SO_TIMESTAMPING refused on a TCP socket; timed in user space");
        }
        Stamped {
            stream,
            stamps: Arc::new(Mutex::new(Stamps::default())),
        }
    }

    /// A view of the stamps that stays valid after the stream is gone.
    pub fn stamps(&self) -> StampView {
        StampView(self.stamps.clone())
    }

    /// The stream.
    pub fn get_ref(&self) -> &TcpStream {
        &self.stream
    }

    /// Reads the transmit stamps waiting in the error queue; keeps the
    /// first one ever seen.
    fn drain_errqueue(&self) {
        let fd = self.stream.as_raw_fd();
        for _ in 0..ERRQUEUE_BATCH {
            let mut cmsg =
                nix::cmsg_space!([TimeSpec; 3], libc::sock_extended_err, libc::sockaddr_in6);
            let mut byte = [0u8; 1];
            let mut iov = [IoSliceMut::new(&mut byte)];
            let msg = match nsock::recvmsg::<()>(
                fd,
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::MSG_ERRQUEUE | MsgFlags::MSG_DONTWAIT,
            ) {
                Ok(m) => m,
                Err(_) => return,
            };
            let Ok(cmsgs) = msg.cmsgs() else { return };
            if let Some(t) = software_stamp(cmsgs) {
                let mut s = lock(&self.stamps);
                if s.first_tx.is_none() {
                    s.first_tx = Some(t);
                }
            }
        }
    }

    /// One `recvmsg` into `buf`: the bytes read and the receive stamp of
    /// the last segment they came from.
    fn recv(&self, buf: &mut [u8]) -> io::Result<(usize, Option<SystemTime>)> {
        let mut cmsg = nix::cmsg_space!([TimeSpec; 3]);
        let mut iov = [IoSliceMut::new(buf)];
        match nsock::recvmsg::<()>(
            self.stream.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_DONTWAIT,
        ) {
            Ok(msg) => {
                let stamp = msg.cmsgs().ok().and_then(software_stamp);
                Ok((msg.bytes, stamp))
            }
            Err(Errno::EAGAIN) => Err(io::ErrorKind::WouldBlock.into()),
            Err(e) => Err(io::Error::from(e)),
        }
    }
}

/// The software time of `SCM_TIMESTAMPING`, if stamped.
fn software_stamp(cmsgs: nsock::CmsgIterator<'_>) -> Option<SystemTime> {
    cmsgs.into_iter().find_map(|c| match c {
        ControlMessageOwned::ScmTimestampsns(ts) => {
            let t = ts.system;
            let d = std::time::Duration::new(
                u64::try_from(t.tv_sec()).ok()?,
                u32::try_from(t.tv_nsec()).ok()?,
            );
            (d > std::time::Duration::ZERO).then(|| SystemTime::UNIX_EPOCH + d)
        }
        _ => None,
    })
}

impl AsyncRead for Stamped {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        // The request's transmit stamp is queued by the time an answer
        // comes (and at once on loopback and veth).
        me.drain_errqueue();
        loop {
            match me.stream.poll_read_ready(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
            let unfilled = buf.initialize_unfilled();
            match me
                .stream
                .try_io(Interest::READABLE, || me.recv_into(unfilled))
            {
                Ok((n, stamp)) => {
                    if n > 0 {
                        if let Some(t) = stamp {
                            lock(&me.stamps).last_rx = Some(t);
                        }
                    }
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl Stamped {
    fn recv_into(&self, buf: &mut [u8]) -> io::Result<(usize, Option<SystemTime>)> {
        self.recv(buf)
    }
}

impl AsyncWrite for Stamped {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

impl Drop for Stamped {
    fn drop(&mut self) {
        // A stamp that came after the last read (a request whose answer
        // was never read) is still wanted by whoever holds the view.
        self.drain_errqueue();
    }
}
