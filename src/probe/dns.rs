//! `probe: dns` — DNS query time over UDP: a series of `pings` queries
//! `interval` ms apart to one server, optionally requiring a response code.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::{bounded, Probe, Probed, RoundCx};
use crate::schedule::{CONNECT_TIMEOUT, CONNECT_TIMEOUT_MS};
use crate::spec::fields::{parse_host, Section};
use crate::spec::{Host, OrderError};

/// The `dns:` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsSpec {
    /// The DNS server queried.
    pub server: IpAddr,
    /// Its UDP port (default 53).
    pub port: u16,
    /// The name queried.
    pub name: String,
    /// Record type (default `A`), upper case.
    pub record_type: String,
    /// Response code that counts as an answer (any when `None`), upper case.
    pub expect_rcode: Option<String>,
    /// Milliseconds between two queries (default 1000).
    pub interval_ms: u32,
}

impl Probe for DnsSpec {
    fn parse(s: &Section<'_>, step: u32, pings: u32) -> Result<Self, OrderError> {
        let server = match s.req_host("server")? {
            Host::Ip(ip) => ip,
            Host::Name(_) => return Err(s.err("server", "the DNS server is an IP address")),
        };
        let port = s.port(Some(53))?;
        let name = s.req_string("name")?;
        if name != "." {
            parse_host(&name)
                .ok()
                .filter(|h| matches!(h, Host::Name(_)))
                .ok_or_else(|| s.err("name", "not a valid DNS name"))?;
        }
        let record_type = s
            .opt_string("type")?
            .unwrap_or_else(|| "A".to_owned())
            .to_ascii_uppercase();
        if !probes::dns::valid_record_type(&record_type) {
            return Err(s.err(
                "type",
                "unknown record type (A, AAAA, MX, TXT, NS, SOA, CNAME, PTR, SRV, …)",
            ));
        }
        let expect_rcode = s
            .opt_string("expect_rcode")?
            .map(|r| r.to_ascii_uppercase());
        if let Some(r) = &expect_rcode {
            if !probes::dns::valid_rcode(r) {
                return Err(s.err(
                    "expect_rcode",
                    "unknown response code (NOERROR, NXDOMAIN, SERVFAIL, REFUSED, …)",
                ));
            }
        }
        let interval_ms = s.interval_fit(step, pings, CONNECT_TIMEOUT_MS)?;
        Ok(DnsSpec {
            server,
            port,
            name,
            record_type,
            expect_rcode,
            interval_ms,
        })
    }

    fn target(&self) -> String {
        format!("{} {} @{}", self.name, self.record_type, self.server)
    }

    fn label_host(&self) -> String {
        self.server.to_string()
    }

    async fn round<'a>(&'a self, cx: &'a RoundCx<'a>) -> Option<Probed> {
        let server = SocketAddr::new(self.server, self.port);
        let interval = Duration::from_millis(u64::from(self.interval_ms));
        let rtts = probes::series(cx.pings, interval, || {
            bounded(cx.deadline, CONNECT_TIMEOUT, move |to| {
                probes::dns::query_time(
                    server,
                    &self.name,
                    &self.record_type,
                    self.expect_rcode.as_deref(),
                    to,
                )
            })
        })
        .await;
        Some((server.to_string(), rtts))
    }
}
