//! `probe: sping` and `probe: pping` — SCION SCMP echo and ping-pong,
//! through the external commands configured with `--sping-command` and
//! `--pping-command`: one run per order and round, its fping `-C` output
//! parsed. Both share this section type.

use std::net::IpAddr;

use serde_yaml_ng::Value;

use super::{Probe, ProbeKind, Probed, RoundCx};
use crate::schedule;
use crate::spec::fields::{scalar_text, Section};
use crate::spec::{Interface, OrderError};

/// The `sping:` / `pping:` sections (SCION).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScionSpec {
    /// SCION address of the target (`ISD-AS,IP`), passed to the tool as is.
    pub host: String,
    /// Interface option passed to the tool.
    pub interface: Option<Interface>,
    /// Source address option passed to the tool.
    pub source_ip: Option<IpAddr>,
    /// Extra flags passed to the tool, split on whitespace (no shell).
    pub flags: Vec<String>,
    /// Milliseconds between pings, when given.
    pub interval_ms: Option<u32>,
    /// Whether IPv6 is used.
    pub ipv6: bool,
}

impl Probe for ScionSpec {
    fn parse(s: &Section<'_>, _step: u32, _pings: u32) -> Result<Self, OrderError> {
        let host = s.req_string("host")?;
        if host.is_empty()
            || host.chars().any(|c| c.is_whitespace() || c.is_control())
            || host.starts_with('-')
        {
            return Err(s.err(
                "host",
                "a SCION address is non-empty, without white space, and does not start with `-`",
            ));
        }
        let interface = s.opt_interface("interface")?;
        let source_ip = s.opt_ip("source_ip")?;
        let flags = match s.get("flags") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Sequence(seq)) => seq
                .iter()
                .map(|x| scalar_text(x).ok_or_else(|| s.err_value("flags", x, "flags are text")))
                .collect::<Result<_, _>>()?,
            Some(v) => scalar_text(v)
                .ok_or_else(|| s.err_value("flags", v, "flags are text or a list of text"))?
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
        };
        let interval_ms = s.opt_uint("interval", 1, schedule::MAX_INTERVAL_MS)?;
        let ipv6 = s.opt_bool("ipv6")?.unwrap_or(false);
        Ok(ScionSpec {
            host,
            interface,
            source_ip,
            flags,
            interval_ms,
            ipv6,
        })
    }

    fn target(&self) -> String {
        self.host.clone()
    }

    fn source(&self) -> Option<IpAddr> {
        self.source_ip
    }

    async fn round<'a>(&'a self, cx: &'a RoundCx<'a>) -> Option<Probed> {
        let template = if cx.kind == ProbeKind::Sping {
            &cx.deps.sping
        } else {
            &cx.deps.pping
        };
        let interval_ms = self.interval_ms.unwrap_or(schedule::DEFAULT_INTERVAL_MS);
        let mut args = template.args(cx.vars(interval_ms));
        if let Some(i) = &self.interface {
            args.extend(["-I".to_owned(), i.as_str().to_owned()]);
        }
        if let Some(src) = self.source_ip {
            args.extend(["-S".to_owned(), src.to_string()]);
        }
        args.extend(self.flags.iter().cloned());
        args.push(self.host.clone());
        cx.run_command(&template.program, &args, &self.host).await
    }
}
