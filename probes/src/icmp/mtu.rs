//! IPv4's don't-fragment setting (`IP_MTU_DISCOVER`), which neither
//! socket2 nor nix wraps, hence `libc`.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::AsRawFd;

/// Sets `IP_MTU_DISCOVER` to `IP_PMTUDISC_DO` (the DF flag on every
/// packet) when `dont_fragment`, else `IP_PMTUDISC_DONT` (never).
pub fn set_dont_fragment(socket: &impl AsRawFd, dont_fragment: bool) -> io::Result<()> {
    let mode: libc::c_int = if dont_fragment {
        libc::IP_PMTUDISC_DO
    } else {
        libc::IP_PMTUDISC_DONT
    };
    // SAFETY: `socket` is an open socket borrowed for the duration of this
    // call; `mode` is a live, initialised c_int and the length passed is
    // exactly its size, which is what the kernel reads for IP_MTU_DISCOVER.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            (&raw const mode).cast::<libc::c_void>(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
