//! Rounds of the probes other than ICMP: each order gets its own series of
//! `pings` probes (httping, tcp, ssh, dns), or one run of an external
//! command (sping, pping, exec). They run as futures inside the job task —
//! not a task per order — bounded per probe type by a semaphore, and every
//! probe is cut short at the round's deadline (just before the next round).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use probes::Lost;
use tokio::time::timeout_at;

use super::deps::Vars;
use super::{resolve_hosts, JobCtx, Member, MemberResult};
use crate::order::parse::CONNECT_TIMEOUT_MS;
use crate::order::{Host, HttpMethod, ProbeSpec};
use crate::result::RoundOutcome;

/// What orders must share to be in one job of these probes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OtherKey {
    /// Probe name.
    pub probe: &'static str,
    /// Seconds between rounds.
    pub step: u32,
    /// Pings per round.
    pub pings: u32,
}

impl OtherKey {
    /// Most orders in one job (httping: 15, as the original).
    pub fn capacity(&self) -> usize {
        if self.probe == "httping" {
            15
        } else {
            100
        }
    }
}

/// Runs `f` with a timeout of `min(limit, deadline - now)`; lost as a
/// timeout when the deadline has passed.
async fn bounded<F>(
    deadline: Instant,
    limit: Duration,
    f: impl FnOnce(Duration) -> F,
) -> probes::PingResult
where
    F: std::future::Future<Output = probes::PingResult>,
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

/// One round for every member. Members whose probe could not run at all
/// (missing command, HTTP client error) get no result.
pub(super) async fn round<'m>(
    ctx: &JobCtx,
    key: &OtherKey,
    members: &'m [Member],
    deadline: Instant,
) -> Option<Vec<MemberResult<'m>>> {
    let hosts = members.iter().filter_map(|m| match &m.order.probe {
        ProbeSpec::Tcp(t) => Some((&t.host, t.ipv6)),
        ProbeSpec::Ssh(s) => Some((&s.host, s.ipv6)),
        _ => None,
    });
    let resolved = resolve_hosts(hosts).await;
    let sem = ctx.deps.limit(key.probe);
    let futs = members.iter().map(|m| {
        let sem = sem.clone();
        let resolved = &resolved;
        async move {
            let _permit = sem.acquire_owned().await.ok()?;
            let (shown, rtts) = probe_member(ctx, key, m, resolved, deadline).await?;
            Some((m, shown, RoundOutcome { rtts }))
        }
    });
    let results: Vec<MemberResult<'m>> = futures_util::future::join_all(futs)
        .await
        .into_iter()
        .flatten()
        .collect();
    Some(results)
}

fn resolved_addr(
    resolved: &HashMap<(Host, bool), Option<IpAddr>>,
    host: &Host,
    ipv6: bool,
) -> Option<IpAddr> {
    resolved.get(&(host.clone(), ipv6)).copied().flatten()
}

/// Probes one member: what it was probed at, and the RTTs.
async fn probe_member(
    ctx: &JobCtx,
    key: &OtherKey,
    m: &Member,
    resolved: &HashMap<(Host, bool), Option<IpAddr>>,
    deadline: Instant,
) -> Option<(String, Vec<Option<Duration>>)> {
    let pings = key.pings;
    let connect_timeout = Duration::from_millis(CONNECT_TIMEOUT_MS);
    let all_lost = || vec![None; pings as usize];
    match &m.order.probe {
        ProbeSpec::Httping(h) => {
            let prober = match ctx.deps.http(h.proxy.as_deref(), h.user_agent.as_deref()) {
                Ok(p) => p,
                Err(e) => {
                    ctx.deps.warn_once(
                        &m.order.id,
                        &format!("httping: cannot build HTTP client: {e}"),
                    );
                    return None;
                }
            };
            let method = match h.method {
                HttpMethod::Head => probes::http::Method::Head,
                HttpMethod::Get => probes::http::Method::Get,
            };
            let interval = Duration::from_secs(u64::from(h.interval_s));
            let rtts = probes::series(pings, interval, || {
                let prober = prober.clone();
                async move {
                    bounded(deadline, super::deps::HTTP_TIMEOUT, |_| async {
                        prober.ping(&h.url, method, &h.http_codes_as_failure).await
                    })
                    .await
                }
            })
            .await;
            Some((h.url.clone(), rtts))
        }
        ProbeSpec::Tcp(t) => {
            let Some(ip) = resolved_addr(resolved, &t.host, t.ipv6) else {
                return Some(("unresolved".into(), all_lost()));
            };
            let addr = SocketAddr::new(ip, t.port);
            let interval = Duration::from_millis(u64::from(t.interval_ms));
            let rtts = probes::series(pings, interval, || {
                bounded(deadline, connect_timeout, move |to| {
                    probes::tcp::connect_time(addr, t.source_ip, to)
                })
            })
            .await;
            Some((addr.to_string(), rtts))
        }
        ProbeSpec::Ssh(s) => {
            let Some(ip) = resolved_addr(resolved, &s.host, s.ipv6) else {
                return Some(("unresolved".into(), all_lost()));
            };
            let addr = SocketAddr::new(ip, s.port);
            let interval = Duration::from_millis(u64::from(s.interval_ms));
            let rtts = probes::series(pings, interval, || {
                bounded(deadline, connect_timeout, move |to| {
                    probes::ssh::banner_ping(addr, to)
                })
            })
            .await;
            Some((addr.to_string(), rtts))
        }
        ProbeSpec::Dns(d) => {
            let server = SocketAddr::new(d.server, d.port);
            let interval = Duration::from_millis(u64::from(d.interval_ms));
            let rtts = probes::series(pings, interval, || {
                bounded(deadline, connect_timeout, move |to| {
                    probes::dns::query_time(
                        server,
                        &d.name,
                        &d.record_type,
                        d.expect_rcode.as_deref(),
                        to,
                    )
                })
            })
            .await;
            Some((server.to_string(), rtts))
        }
        ProbeSpec::Sping(s) | ProbeSpec::Pping(s) => {
            let template = if key.probe == "sping" {
                &ctx.deps.sping
            } else {
                &ctx.deps.pping
            };
            let interval_ms = s.interval_ms.unwrap_or(1000);
            let mut args = template.args(vars(key, interval_ms, deadline));
            if let Some(i) = &s.interface {
                args.extend(["-I".to_owned(), i.as_str().to_owned()]);
            }
            if let Some(src) = s.source_ip {
                args.extend(["-S".to_owned(), src.to_string()]);
            }
            args.extend(s.flags.iter().cloned());
            args.push(s.host.clone());
            run_command(ctx, m, &template.program, &args, &s.host, pings, deadline).await
        }
        ProbeSpec::Exec(e) => {
            let Some(template) = ctx.deps.exec.get(&e.probe) else {
                ctx.deps.warn_once(
                    &m.order.id,
                    &format!("exec probe {:?} is not configured (pingmachine run --exec-probe {}=COMMAND)", e.probe, e.probe),
                );
                return None;
            };
            let mut args = template.args(vars(key, e.interval_ms, deadline));
            args.extend(e.args.iter().cloned());
            args.push(e.host.clone());
            run_command(ctx, m, &template.program, &args, &e.host, pings, deadline).await
        }
        ProbeSpec::Fping(_) => None,
    }
}

fn vars(key: &OtherKey, interval_ms: u32, deadline: Instant) -> Vars {
    Vars {
        pings: key.pings,
        interval_ms,
        timeout_ms: deadline
            .saturating_duration_since(Instant::now())
            .as_millis() as u64,
        step: key.step,
    }
}

/// Runs an external probe command and takes `host`'s values from its fping
/// `-C` output (or the only line, when the tool names the host differently).
async fn run_command(
    ctx: &JobCtx,
    m: &Member,
    program: &std::path::Path,
    args: &[String],
    host: &str,
    pings: u32,
    deadline: Instant,
) -> Option<(String, Vec<Option<Duration>>)> {
    let timeout = deadline.saturating_duration_since(Instant::now());
    match probes::exec::run(program, args, timeout).await {
        Ok(out) => {
            let parsed = probes::exec::parse_fping_c(&out);
            let rtts = if parsed.len() == 1 && parsed.iter().all(|(h, _)| h != host) {
                probes::exec::results_for(&parsed, &parsed[0].0.clone(), pings)
            } else {
                probes::exec::results_for(&parsed, host, pings)
            };
            Some((host.to_owned(), rtts))
        }
        Err(e) => {
            ctx.deps.warn_once(
                &m.order.id,
                &format!("{} probe command failed: {e}", m.order.probe.name()),
            );
            None
        }
    }
}
