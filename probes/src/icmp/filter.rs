//! Kernel-side filters on raw ICMP sockets (`ICMP_FILTER`, `ICMP6_FILTER`).
//!
//! A raw ICMP socket otherwise receives *every* ICMP message the host gets:
//! other programs' pings, neighbour discovery, and — on loopback — our own
//! echo requests on their way in. Filtering in the kernel lets only echo
//! replies and the error messages we count reach our receive thread, which
//! halves the wake-ups on loopback and keeps unrelated traffic away under
//! load. Neither socket2 nor nix wraps these options, hence `libc`.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::AsRawFd;

use super::Family;

/// `ICMP_FILTER` (linux/icmp.h), at level `SOL_RAW`.
const ICMP_FILTER: libc::c_int = 1;
/// `ICMP6_FILTER` (linux/icmpv6.h), at level `IPPROTO_ICMPV6`.
const ICMP6_FILTER: libc::c_int = 1;

/// ICMPv4 types let through: echo reply, destination unreachable, time
/// exceeded, parameter problem.
const V4_PASS: [u8; 4] = [0, 3, 11, 12];
/// ICMPv6 types let through: echo reply, destination unreachable, packet too
/// big, time exceeded, parameter problem.
const V6_PASS: [u8; 5] = [129, 1, 2, 3, 4];

/// The `ICMP_FILTER` mask: a set bit blocks that type.
pub fn v4_mask() -> u32 {
    let mut pass = 0u32;
    for t in V4_PASS {
        pass |= 1 << t;
    }
    !pass
}

/// The `ICMP6_FILTER` bitmap (256 bits): a set bit blocks that type.
pub fn v6_mask() -> [u32; 8] {
    let mut m = [u32::MAX; 8];
    for t in V6_PASS {
        m[usize::from(t >> 5)] &= !(1u32 << (t & 31));
    }
    m
}

/// Installs the filter on a raw socket of `family`.
pub fn install(socket: &impl AsRawFd, family: Family) -> io::Result<()> {
    let fd = socket.as_raw_fd();
    let rc = match family {
        Family::V4 => {
            let mask = v4_mask();
            // SAFETY: `fd` is an open socket owned by the caller for the
            // duration of this call; `mask` is a live, initialised u32 and the
            // length passed is exactly its size, which is what the kernel
            // reads for ICMP_FILTER (struct icmp_filter { __u32 data; }).
            unsafe {
                libc::setsockopt(
                    fd,
                    libc::SOL_RAW,
                    ICMP_FILTER,
                    (&raw const mask).cast::<libc::c_void>(),
                    std::mem::size_of::<u32>() as libc::socklen_t,
                )
            }
        }
        Family::V6 => {
            let mask = v6_mask();
            // SAFETY: as above; `mask` is struct icmp6_filter { __u32 data[8]; }
            // and its exact size is passed.
            unsafe {
                libc::setsockopt(
                    fd,
                    libc::IPPROTO_ICMPV6,
                    ICMP6_FILTER,
                    mask.as_ptr().cast::<libc::c_void>(),
                    std::mem::size_of::<[u32; 8]>() as libc::socklen_t,
                )
            }
        }
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_pass_only_replies_and_errors() {
        let m = v4_mask();
        for t in 0..32u32 {
            let passes = m & (1 << t) == 0;
            assert_eq!(passes, [0, 3, 11, 12].contains(&t), "ICMPv4 type {t}");
        }
        let m = v6_mask();
        for t in 0..=255u32 {
            let passes = m[(t >> 5) as usize] & (1 << (t & 31)) == 0;
            assert_eq!(passes, [1, 2, 3, 4, 129].contains(&t), "ICMPv6 type {t}");
        }
    }
}
