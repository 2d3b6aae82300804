//! `probe: fping` — ICMP echo, probed natively by the shared ICMP engine.
//! The section and its fit rule live here; rounds are batched per job
//! (every distinct target of a job in one engine round), see `job::fping`.

use std::net::IpAddr;

use probes::icmp::{DEFAULT_DATA_BYTES, MAX_DATA_BYTES, MIN_DATA_BYTES};

use super::Probe;
use crate::schedule::{
    self, FpingFit, FPING_MIN_INTERVAL_MS, FPING_TIMEOUT_MS, FPING_TIMEOUT_RANGE_MS,
};
use crate::spec::fields::Section;
use crate::spec::{Host, Interface, OrderError};

/// The `fping:` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FpingSpec {
    /// Target host.
    pub host: Host,
    /// Send through this interface (`SO_BINDTODEVICE`).
    pub interface: Option<Interface>,
    /// Send from this address.
    pub source_ip: Option<IpAddr>,
    /// Milliseconds between two pings to the target; `None` = computed (as
    /// the original does). Non-zero, so that it takes four bytes: a
    /// million orders are held at once.
    pub interval_ms: Option<std::num::NonZeroU32>,
    /// Probe over IPv6 (default: true for IPv6 literals, false otherwise).
    pub ipv6: bool,
    /// Data bytes of each echo request (`size`, fping `-b`; default 56).
    pub data_bytes: u16,
    /// TOS / traffic class byte (`tos`, fping `-O`; default 0).
    pub tos: u8,
    /// TTL / hop limit (`ttl`, fping `-H`; default: the kernel's).
    pub ttl: Option<std::num::NonZeroU8>,
    /// IPv4 don't-fragment flag (`dont_fragment`, fping `-M`; default: the
    /// kernel's; nothing for IPv6).
    pub dont_fragment: Option<bool>,
    /// Reply timeout, ms (`timeout`, fping `-t`; default 3000; at most
    /// 60,000).
    pub timeout_ms: u16,
}

impl Probe for FpingSpec {
    fn parse(s: &Section<'_>, step: u32, pings: u32) -> Result<Self, OrderError> {
        let host = s.req_host("host")?;
        let interface = s.opt_interface("interface")?;
        let source_ip = s.opt_ip("source_ip")?;
        let interval_ms = s
            .opt_uint("interval", 1, schedule::MAX_INTERVAL_MS)?
            .and_then(std::num::NonZeroU32::new);
        let ipv6 = s.family(&host, source_ip)?;
        let data_bytes = s
            .opt_uint("size", u32::from(MIN_DATA_BYTES), u32::from(MAX_DATA_BYTES))?
            .map_or(DEFAULT_DATA_BYTES, |v| v as u16);
        let tos = s.opt_uint("tos", 0, 255)?.map_or(0, |v| v as u8);
        let ttl = s
            .opt_uint("ttl", 1, 255)?
            .and_then(|v| std::num::NonZeroU8::new(v as u8));
        let dont_fragment = s.opt_bool("dont_fragment")?;
        let (lo, hi) = FPING_TIMEOUT_RANGE_MS;
        let timeout_ms = s
            .opt_uint("timeout", u32::from(lo), u32::from(hi))?
            .map_or(FPING_TIMEOUT_MS as u16, |v| v as u16);
        check_fit(
            s,
            step,
            pings,
            interval_ms.map(std::num::NonZeroU32::get),
            timeout_ms,
        )?;
        Ok(FpingSpec {
            host,
            interface,
            source_ip,
            interval_ms,
            ipv6,
            data_bytes,
            tos,
            ttl,
            dont_fragment,
            timeout_ms,
        })
    }

    fn target(&self) -> String {
        self.host.to_string()
    }

    fn host(&self) -> Option<(&Host, bool)> {
        Some((&self.host, self.ipv6))
    }

    fn source(&self) -> Option<IpAddr> {
        self.source_ip
    }

    fn tos(&self) -> u8 {
        self.tos
    }
}

/// A round of `pings` pings must fit in the step with its reply timeout
/// ([`schedule::fping_fit`]).
fn check_fit(
    s: &Section<'_>,
    step: u32,
    pings: u32,
    interval_ms: Option<u32>,
    timeout_ms: u16,
) -> Result<(), OrderError> {
    match schedule::fping_fit(step, pings, interval_ms, u64::from(timeout_ms)) {
        Ok(_) => Ok(()),
        Err(FpingFit::IntervalTooShort { computed }) => Err(s.err_top(
            "pings",
            format!(
                "{pings} pings do not fit in a step of {step} s: the computed interval \
                 floor((step*800 - targets - {timeout_ms}) / pings) is {computed} ms, below \
                 the {FPING_MIN_INTERVAL_MS} ms minimum; use fewer pings, a longer \
                 step, or set fping.interval"
            ),
        )),
        Err(FpingFit::RoundTooLong { round_ms }) => {
            let reason = format!(
                "a round ((pings-1) * interval + {timeout_ms} ms reply timeout = {round_ms} ms) \
                 must end within the step ({} ms)",
                u64::from(step) * 1000
            );
            if u64::from(timeout_ms) != FPING_TIMEOUT_MS {
                Err(s.err("timeout", reason))
            } else if interval_ms.is_some() {
                Err(s.err("interval", reason))
            } else {
                Err(s.err_top("step", reason))
            }
        }
    }
}
