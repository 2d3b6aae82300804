//! The probes, one module each: an order's probe section (its spec type
//! and validation) and its round, i.e. how one order's `pings` probes are
//! run. [`ProbeKind`] is the single list of probe types; the
//! [`probe_kinds!`] table below generates it, [`ProbeSpec`] and every
//! dispatch from that table, so the accepted `probe:` names, the top-level
//! keys of an order, job keys, per-kind limits and display names cannot
//! disagree. ARCHITECTURE.md has the recipe for adding a probe.
//!
//! The wire-level measurement itself (sockets, timestamps, protocols) is in
//! the `probes` crate; these modules are the glue between an order and it.
//!
//! * [`fping`] — ICMP echo. Its rounds are batched per job over the shared
//!   ICMP engine (`job::fping`), so it has no per-order round here.
//! * [`httping`], [`tcp`], [`ssh`], [`dns`] — a series of `pings` probes.
//! * [`scion`] (`sping`, `pping`) and [`exec`] — one run of an external
//!   command that prints fping `-C` output.
//! * [`deps`] — what rounds share: the ICMP engine, HTTP clients, command
//!   templates, per-kind concurrency limits.

pub mod deps;
pub mod dns;
pub mod exec;
pub mod fping;
pub mod httping;
pub mod scion;
pub mod ssh;
pub mod tcp;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use probes::Lost;
use tokio::time::timeout_at;

pub use deps::ProbeDeps;
pub use dns::DnsSpec;
pub use exec::ExecSpec;
pub use fping::FpingSpec;
pub use httping::{HttpMethod, HttpingSpec};
pub use scion::ScionSpec;
pub use ssh::SshSpec;
pub use tcp::TcpSpec;

use crate::spec::fields::Section;
use crate::spec::{Host, OrderError, OrderId};

/// What a probe type provides; implemented by each spec type.
pub trait Probe: Sized {
    /// Reads and validates the probe's section of an order with this
    /// `step` and `pings`; errors name the field as `section.key`.
    fn parse(section: &Section<'_>, step: u32, pings: u32) -> Result<Self, OrderError>;

    /// The target as shown to operators (host, URL, `host:port` …).
    fn target(&self) -> String;

    /// The `host` label of its Prometheus series: the host as the order
    /// names it (default: the target).
    fn label_host(&self) -> String {
        self.target()
    }

    /// The source address it sends from, if the order sets one.
    fn source(&self) -> Option<IpAddr> {
        None
    }

    /// The TOS (traffic class) byte of its packets (the `tos` label).
    fn tos(&self) -> u8 {
        0
    }

    /// The host to resolve before a round, and whether over IPv6; `None`
    /// when the probe resolves nothing itself.
    fn host(&self) -> Option<(&Host, bool)> {
        None
    }

    /// One order's round: what was probed (for logs) and its RTTs in send
    /// order; `None` when the probe could not run at all (it is then
    /// reported once and no result is stored). The default is for a probe
    /// that is batched per job instead (fping).
    fn round<'a>(
        &'a self,
        _cx: &'a RoundCx<'a>,
    ) -> impl Future<Output = Option<Probed>> + Send + 'a {
        async { None }
    }
}

/// A large spec is kept behind a box, so that every order's [`ProbeSpec`]
/// stays the size of the small ones.
impl<T: Probe + Sync> Probe for Box<T> {
    fn parse(section: &Section<'_>, step: u32, pings: u32) -> Result<Self, OrderError> {
        T::parse(section, step, pings).map(Box::new)
    }

    fn target(&self) -> String {
        (**self).target()
    }

    fn label_host(&self) -> String {
        (**self).label_host()
    }

    fn source(&self) -> Option<IpAddr> {
        (**self).source()
    }

    fn tos(&self) -> u8 {
        (**self).tos()
    }

    fn host(&self) -> Option<(&Host, bool)> {
        (**self).host()
    }

    fn round<'a>(
        &'a self,
        cx: &'a RoundCx<'a>,
    ) -> impl Future<Output = Option<Probed>> + Send + 'a {
        (**self).round(cx)
    }
}

/// What one order's round measured: the address or target probed (for
/// logs) and its RTTs in send order (`None` = lost).
pub type Probed = (String, Vec<Option<Duration>>);

/// What one order's round needs.
#[derive(Debug)]
pub struct RoundCx<'a> {
    /// Shared resources.
    pub deps: &'a ProbeDeps,
    /// The probe type (sping and pping share a spec type).
    pub kind: ProbeKind,
    /// The order, for once-only warnings.
    pub id: &'a OrderId,
    /// Step, s.
    pub step: u32,
    /// Pings per round.
    pub pings: u32,
    /// When the round's probes must stop (just before the next round).
    pub deadline: Instant,
    /// The address [`Probe::host`] resolved to, if it did.
    pub addr: Option<IpAddr>,
}

impl RoundCx<'_> {
    /// `pings` probes `interval_ms` apart to `addr:port`, each bounded by
    /// the connect timeout and the deadline; all lost when the host did
    /// not resolve.
    pub async fn connect_series<F, Fut>(&self, port: u16, interval_ms: u32, probe: F) -> Probed
    where
        F: Fn(SocketAddr, Duration) -> Fut,
        Fut: Future<Output = probes::PingResult>,
    {
        let Some(ip) = self.addr else {
            return ("unresolved".into(), vec![None; self.pings as usize]);
        };
        let addr = SocketAddr::new(ip, port);
        let interval = Duration::from_millis(u64::from(interval_ms));
        let rtts = probes::series(self.pings, interval, || {
            bounded(self.deadline, crate::schedule::CONNECT_TIMEOUT, |to| {
                probe(addr, to)
            })
        })
        .await;
        (addr.to_string(), rtts)
    }

    /// Values for an external command's template.
    pub fn vars(&self, interval_ms: u32) -> deps::Vars {
        deps::Vars {
            pings: self.pings,
            interval_ms,
            timeout_ms: self
                .deadline
                .saturating_duration_since(Instant::now())
                .as_millis() as u64,
            step: self.step,
        }
    }

    /// Runs an external probe command and takes `host`'s values from its
    /// fping `-C` output (or the only line, when the tool names the host
    /// differently).
    pub async fn run_command(
        &self,
        program: &std::path::Path,
        args: &[String],
        host: &str,
    ) -> Option<Probed> {
        let timeout = self.deadline.saturating_duration_since(Instant::now());
        match probes::exec::run(program, args, timeout).await {
            Ok(out) => {
                let parsed = probes::exec::parse_fping_c(&out);
                let rtts = if parsed.len() == 1 && parsed.iter().all(|(h, _)| h != host) {
                    probes::exec::results_for(&parsed, &parsed[0].0.clone(), self.pings)
                } else {
                    probes::exec::results_for(&parsed, host, self.pings)
                };
                Some((host.to_owned(), rtts))
            }
            Err(e) => {
                self.deps.warn_once(
                    self.id,
                    &format!("{} probe command failed: {e}", self.kind.name()),
                );
                None
            }
        }
    }
}

/// Runs `f` with a timeout of `min(limit, deadline - now)`; lost as a
/// timeout when the deadline has passed.
pub async fn bounded<F>(
    deadline: Instant,
    limit: Duration,
    f: impl FnOnce(Duration) -> F,
) -> probes::PingResult
where
    F: Future<Output = probes::PingResult>,
{
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(Lost::Timeout);
    }
    let t = limit.min(left);
    match timeout_at(tokio::time::Instant::from_std(deadline), f(t)).await {
        Ok(r) => r,
        Err(_) => Err(Lost::Timeout),
    }
}

/// The table of probe types: `Variant(SpecType) = "name"`, in the order
/// they are listed to users. Generates [`ProbeKind`], [`ProbeSpec`] and
/// their dispatch.
macro_rules! probe_kinds {
    ($( $(#[$doc:meta])* $variant:ident($spec:ty) = $name:literal, )*) => {
        /// A probe type: what `probe:` names.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum ProbeKind {
            $( $(#[$doc])* $variant, )*
        }

        impl ProbeKind {
            /// Every probe type, in the order listed to users.
            pub const ALL: &'static [ProbeKind] = &[$(ProbeKind::$variant),*];

            /// The name written in `probe:` and as the section's key.
            pub const fn name(self) -> &'static str {
                match self {
                    $(ProbeKind::$variant => $name,)*
                }
            }

            /// The probe type called `name`.
            pub fn from_name(name: &str) -> Option<ProbeKind> {
                match name {
                    $($name => Some(ProbeKind::$variant),)*
                    _ => None,
                }
            }
        }

        /// The probe of an order, with its section's options.
        #[derive(Debug, Clone, PartialEq)]
        pub enum ProbeSpec {
            $( $(#[$doc])* $variant($spec), )*
        }

        impl ProbeSpec {
            /// Its type.
            pub fn kind(&self) -> ProbeKind {
                match self {
                    $(ProbeSpec::$variant(_) => ProbeKind::$variant,)*
                }
            }

            /// Parses the `kind` section.
            pub(crate) fn parse(
                kind: ProbeKind,
                section: &Section<'_>,
                step: u32,
                pings: u32,
            ) -> Result<ProbeSpec, OrderError> {
                match kind {
                    $(ProbeKind::$variant => {
                        <$spec as Probe>::parse(section, step, pings).map(ProbeSpec::$variant)
                    })*
                }
            }

            /// The target as shown to operators (host or URL).
            pub fn target(&self) -> String {
                match self {
                    $(ProbeSpec::$variant(s) => Probe::target(s),)*
                }
            }

            /// The `host` label of its Prometheus series.
            pub fn label_host(&self) -> String {
                match self {
                    $(ProbeSpec::$variant(s) => Probe::label_host(s),)*
                }
            }

            /// The source address it sends from, if set.
            pub fn source(&self) -> Option<IpAddr> {
                match self {
                    $(ProbeSpec::$variant(s) => Probe::source(s),)*
                }
            }

            /// The TOS (traffic class) byte of its packets.
            pub fn tos(&self) -> u8 {
                match self {
                    $(ProbeSpec::$variant(s) => Probe::tos(s),)*
                }
            }

            /// The host to resolve before a round, and whether over IPv6.
            pub fn host(&self) -> Option<(&Host, bool)> {
                match self {
                    $(ProbeSpec::$variant(s) => Probe::host(s),)*
                }
            }

            /// One order's round (see [`Probe::round`]).
            pub async fn round(&self, cx: &RoundCx<'_>) -> Option<Probed> {
                match self {
                    $(ProbeSpec::$variant(s) => Probe::round(s, cx).await,)*
                }
            }
        }
    };
}

probe_kinds! {
    /// ICMP echo, like `fping` (probed natively).
    Fping(FpingSpec) = "fping",
    /// HTTP(S) request round trips, like `httping`.
    Httping(Box<HttpingSpec>) = "httping",
    /// SCION SCMP echo (`sping`), through an external command.
    Sping(Box<ScionSpec>) = "sping",
    /// SCION ping-pong (`pping`), through an external command.
    Pping(Box<ScionSpec>) = "pping",
    /// TCP connect to an SSH server, checking its banner.
    Ssh(SshSpec) = "ssh",
    /// TCP connect time.
    Tcp(TcpSpec) = "tcp",
    /// DNS query time.
    Dns(DnsSpec) = "dns",
    /// An operator-configured external command printing fping `-C` output.
    Exec(ExecSpec) = "exec",
}

impl ProbeKind {
    /// How many probe types there are.
    pub const COUNT: usize = ProbeKind::ALL.len();

    /// Index into per-kind arrays (`[T; ProbeKind::COUNT]`).
    pub fn index(self) -> usize {
        self as usize
    }

    /// Most orders in one job of this probe type (see `schedule`).
    pub fn job_capacity(self) -> usize {
        match self {
            ProbeKind::Httping => crate::schedule::HTTPING_JOB_ORDERS,
            _ => crate::schedule::OTHER_JOB_ORDERS,
        }
    }

    /// The names, comma-separated, for messages.
    pub fn names() -> String {
        ProbeKind::ALL
            .iter()
            .map(|k| k.name())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl std::fmt::Display for ProbeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl ProbeSpec {
    /// The probe's name as written in `probe:`.
    pub fn name(&self) -> &'static str {
        self.kind().name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_and_index_arrays() {
        assert_eq!(ProbeKind::COUNT, 8);
        for (i, k) in ProbeKind::ALL.iter().enumerate() {
            assert_eq!(k.index(), i);
            assert_eq!(ProbeKind::from_name(k.name()), Some(*k));
        }
        assert_eq!(ProbeKind::from_name("icmp"), None);
        assert_eq!(
            ProbeKind::names(),
            "fping, httping, sping, pping, ssh, tcp, dns, exec"
        );
        assert_eq!(ProbeKind::Httping.job_capacity(), 15);
        assert_eq!(ProbeKind::Tcp.job_capacity(), 100);
    }
}
