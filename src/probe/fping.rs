//! `probe: fping` — ICMP echo, probed natively by the shared ICMP engine.
//! The section and its fit rule live here; rounds are batched per job
//! (every distinct target of a job in one engine round), see `job::fping`.

use std::net::IpAddr;

use super::Probe;
use crate::schedule::{self, FpingFit, FPING_MIN_INTERVAL_MS, FPING_TIMEOUT_MS};
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
    /// Milliseconds between two pings to the target; `None` = computed (as the original does).
    pub interval_ms: Option<u32>,
    /// Probe over IPv6 (default: true for IPv6 literals, false otherwise).
    pub ipv6: bool,
}

impl Probe for FpingSpec {
    fn parse(s: &Section<'_>, step: u32, pings: u32) -> Result<Self, OrderError> {
        let host = s.req_host("host")?;
        let interface = s.opt_interface("interface")?;
        let source_ip = s.opt_ip("source_ip")?;
        let interval_ms = s.opt_uint("interval", 1, schedule::MAX_INTERVAL_MS)?;
        let ipv6 = s.family(&host, source_ip)?;
        check_fit(s, step, pings, interval_ms)?;
        Ok(FpingSpec {
            host,
            interface,
            source_ip,
            interval_ms,
            ipv6,
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
}

/// A round of `pings` pings must fit in the step with its reply timeout
/// ([`schedule::fping_fit`]).
fn check_fit(
    s: &Section<'_>,
    step: u32,
    pings: u32,
    interval_ms: Option<u32>,
) -> Result<(), OrderError> {
    match schedule::fping_fit(step, pings, interval_ms) {
        Ok(_) => Ok(()),
        Err(FpingFit::IntervalTooShort { computed }) => Err(s.err_top(
            "pings",
            format!(
                "{pings} pings do not fit in a step of {step} s: the computed interval \
                 floor((step*800 - targets - 3000) / pings) is {computed} ms, below \
                 the {FPING_MIN_INTERVAL_MS} ms minimum; use fewer pings, a longer \
                 step, or set fping.interval"
            ),
        )),
        Err(FpingFit::RoundTooLong { round_ms }) => {
            let reason = format!(
                "a round ((pings-1) * interval + {FPING_TIMEOUT_MS} ms reply timeout = {round_ms} ms) \
                 must end within the step ({} ms)",
                u64::from(step) * 1000
            );
            if interval_ms.is_some() {
                Err(s.err("interval", reason))
            } else {
                Err(s.err_top("step", reason))
            }
        }
    }
}
