//! The kernel's view of a TCP connection (`TCP_INFO`), which neither
//! socket2 nor nix reads, hence `libc`: the handshake's round trip as the
//! kernel timed it.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

/// What the probes use of `TCP_INFO`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Info {
    /// The smoothed RTT; right after the handshake, its one sample: SYN
    /// sent to SYN-ACK received, timed by the kernel (µs resolution).
    /// Zero when the kernel took no sample.
    pub rtt: Duration,
    /// Segments retransmitted so far (a retransmitted SYN among them).
    pub total_retrans: u32,
    /// The handshake as the packet tap saw it (SYN leaving to SYN-ACK
    /// arriving, stamped at the device), when the tap is open and saw
    /// both; not part of `TCP_INFO`, filled in by the caller.
    pub wire: Option<Duration>,
}

/// Reads `TCP_INFO` of a connected socket.
pub fn read(socket: &impl AsRawFd) -> io::Result<Info> {
    // SAFETY: tcp_info is a C struct of integers only, for which all-zero
    // bytes are a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `socket` is an open socket borrowed for the call; `info` is a
    // live, writable tcp_info and `len` holds its exact size, so the kernel
    // writes at most that many bytes (it copies the smaller of `len` and
    // its own struct's size, and stores the count in `len`).
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&raw mut info).cast::<libc::c_void>(),
            &raw mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Info {
        rtt: Duration::from_micros(u64::from(info.tcpi_rtt)),
        total_retrans: info.tcpi_total_retrans,
        wire: None,
    })
}
