//! `probe: ssh` — TCP connect to an SSH server, timed until its banner
//! arrives: a series of `pings` connects `interval` ms apart.

use super::{Probe, Probed, RoundCx};
use crate::schedule::CONNECT_TIMEOUT_MS;
use crate::spec::fields::Section;
use crate::spec::{Host, OrderError};

/// The `ssh:` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshSpec {
    /// Target host.
    pub host: Host,
    /// TCP port (default 22).
    pub port: u16,
    /// Key type the original passed to its scanner (kept for compatibility).
    pub key_type: Option<String>,
    /// Milliseconds between two pings (default 1000).
    pub interval_ms: u32,
    /// Use IPv6 for a host name.
    pub ipv6: bool,
}

impl Probe for SshSpec {
    fn parse(s: &Section<'_>, step: u32, pings: u32) -> Result<Self, OrderError> {
        let host = s.req_host("host")?;
        let port = s.port(Some(22))?;
        let key_type = s.opt_string("key_type")?;
        if let Some(k) = &key_type {
            if k.is_empty()
                || !k.chars().all(|c| {
                    c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '@' || c == '.'
                })
            {
                return Err(s.err("key_type", "a key type is a word like rsa or ed25519"));
            }
        }
        let ipv6 = s.family(&host, None)?;
        let interval_ms = s.interval_fit(step, pings, CONNECT_TIMEOUT_MS)?;
        Ok(SshSpec {
            host,
            port,
            key_type,
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

    async fn round<'a>(&'a self, cx: &'a RoundCx<'a>) -> Option<Probed> {
        Some(
            cx.connect_series(self.port, self.interval_ms, probes::ssh::banner_ping)
                .await,
        )
    }
}
