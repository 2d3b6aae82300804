//! `probe: tcp` — TCP connect time: a series of `pings` connects
//! `interval` ms apart, optionally from a source address.

use std::net::IpAddr;

use super::{Probe, Probed, RoundCx};
use crate::schedule::CONNECT_TIMEOUT_MS;
use crate::spec::fields::Section;
use crate::spec::{Host, OrderError};

/// The `tcp:` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpSpec {
    /// Target host.
    pub host: Host,
    /// TCP port.
    pub port: u16,
    /// Connect from this address.
    pub source_ip: Option<IpAddr>,
    /// Milliseconds between two pings (default 1000).
    pub interval_ms: u32,
    /// Use IPv6 for a host name.
    pub ipv6: bool,
}

impl Probe for TcpSpec {
    fn parse(s: &Section<'_>, step: u32, pings: u32) -> Result<Self, OrderError> {
        let host = s.req_host("host")?;
        let port = s.port(None)?;
        let source_ip = s.opt_ip("source_ip")?;
        let ipv6 = s.family(&host, source_ip)?;
        let interval_ms = s.interval_fit(step, pings, CONNECT_TIMEOUT_MS)?;
        Ok(TcpSpec {
            host,
            port,
            source_ip,
            interval_ms,
            ipv6,
        })
    }

    fn target(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    fn host(&self) -> Option<(&Host, bool)> {
        Some((&self.host, self.ipv6))
    }

    fn label_host(&self) -> String {
        self.host.to_string()
    }

    fn source(&self) -> Option<IpAddr> {
        self.source_ip
    }

    async fn round<'a>(&'a self, cx: &'a RoundCx<'a>) -> Option<Probed> {
        let source = self.source_ip;
        Some(
            cx.connect_series(self.port, self.interval_ms, move |addr, to| {
                probes::tcp::connect_time(addr, source, to)
            })
            .await,
        )
    }
}
