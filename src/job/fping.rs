//! Probing jobs (SPEC A5): orders with the same probe options, step and
//! pings share a job of at most 1000 orders. A job is one task that, once
//! per step at `boundary + offset`, pings every distinct target of its
//! orders once through the shared ICMP engine and fans the results out to
//! every order of that target.
//!
//! The registry owns membership and publishes it through a `watch` channel;
//! the job reads it at the start of a round and again when results arrive,
//! so results for orders removed or changed during the round are dropped.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use probes::icmp::{Binding, Family, IcmpEngine, RoundRequest};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::order::{Host, Interface, Order, OrderId};
use crate::result::{RoundOutcome, Summary};
use crate::schedule;
use crate::store::{Shape, StoreCmd, StoreHandle};

/// Reply timeout of the fping probe (SPEC A5).
pub const FPING_TIMEOUT: Duration = Duration::from_millis(3000);
/// Minimum gap between two sends of one job (SPEC A5).
pub const FPING_SPACING: Duration = Duration::from_millis(1);
/// How long a host name lookup may take before the round goes on without it.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// What orders must share to be in one fping job.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FpingKey {
    /// Seconds between rounds.
    pub step: u32,
    /// Pings per round.
    pub pings: u32,
    /// IPv6 or IPv4.
    pub ipv6: bool,
    /// Bound interface.
    pub interface: Option<Interface>,
    /// Bound source address.
    pub source_ip: Option<IpAddr>,
    /// Explicit interval, ms.
    pub interval_ms: Option<u32>,
}

/// One order in a job.
#[derive(Debug, Clone)]
pub struct Member {
    /// The order.
    pub order: Arc<Order>,
    /// Its target.
    pub host: Host,
    /// Changes whenever the order's content changes.
    pub generation: u64,
}

/// The members of a job as published by the registry.
pub type Members = Arc<Vec<Member>>;

/// What a job task needs.
#[derive(Debug)]
pub struct JobCtx {
    /// Grouping key (step, pings, options).
    pub key: FpingKey,
    /// Fixed offset after each step boundary, ms.
    pub offset_ms: u64,
    /// The shared ICMP engine.
    pub engine: Arc<IcmpEngine>,
    /// Where results go.
    pub store: StoreHandle,
    /// Current members.
    pub members: watch::Receiver<Members>,
    /// Stops the job.
    pub cancel: CancellationToken,
    /// Name for logs.
    pub name: String,
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The `Instant` at unix time `ms` (clamped to now when in the past).
fn instant_at(ms: i64) -> Instant {
    let now_ms = unix_ms();
    let now = Instant::now();
    if ms <= now_ms {
        now
    } else {
        now + Duration::from_millis((ms - now_ms) as u64)
    }
}

/// Runs the job until cancelled.
pub async fn run_fping_job(mut ctx: JobCtx) {
    let key = ctx.key.clone();
    let step_ms = i64::from(key.step) * 1000;
    let mut start_ms = schedule::next_round_start_ms(unix_ms(), key.step, ctx.offset_ms);
    debug!(job = %ctx.name, offset_ms = ctx.offset_ms, first_round = start_ms, "job started");
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(instant_at(start_ms).into()) => {}
            () = ctx.cancel.cancelled() => return,
        }
        let next_ms = start_ms + step_ms;
        let members = ctx.members.borrow_and_update().clone();
        if !members.is_empty() {
            tokio::select! {
                () = round(&ctx, &members) => {}
                () = tokio::time::sleep_until(instant_at(next_ms).into()) => {
                    warn!(job = %ctx.name, orders = members.len(), "round still running at the next round's start: abandoned");
                }
                () = ctx.cancel.cancelled() => return,
            }
        }
        // Normally the next boundary; after a long stall (suspend, clock
        // jump) skip to the first start in the future instead of bursting.
        let now = unix_ms();
        start_ms = if next_ms + step_ms / 2 < now {
            schedule::next_round_start_ms(now, key.step, ctx.offset_ms)
        } else {
            next_ms
        };
    }
}

/// One round: resolve, ping, fan out, store.
async fn round(ctx: &JobCtx, members: &[Member]) {
    let key = &ctx.key;
    let family = if key.ipv6 { Family::V6 } else { Family::V4 };
    let addrs = resolve_all(members, key.ipv6).await;

    let mut seen = std::collections::HashSet::new();
    let targets: Vec<IpAddr> = addrs
        .iter()
        .flatten()
        .copied()
        .filter(|a| seen.insert(*a))
        .collect();
    let rtts: Vec<Vec<Option<Duration>>> = if targets.is_empty() {
        Vec::new()
    } else {
        let interval =
            schedule::job_interval_ms(key.step, key.pings, targets.len(), key.interval_ms);
        let req = RoundRequest {
            binding: Binding {
                family,
                source: key.source_ip,
                interface: key.interface.as_ref().map(|i| i.as_str().to_owned()),
            },
            targets: targets.clone(),
            pings: key.pings,
            interval: Duration::from_millis(interval),
            spacing: FPING_SPACING,
            timeout: FPING_TIMEOUT,
            start: Instant::now(),
        };
        match ctx.engine.submit(req).await {
            Ok(result) => result.rtts,
            Err(e) => {
                // Nothing was measured: store nothing rather than fake 100 % loss.
                error!(job = %ctx.name, orders = members.len(), error = %e, "ICMP round failed; no results stored for this round");
                return;
            }
        }
    };

    let t = schedule::rrd_time(unix_ms().div_euclid(1000), key.step);
    // Only orders still present, unchanged, receive the result.
    let current: HashMap<OrderId, u64> = ctx
        .members
        .borrow()
        .iter()
        .map(|m| (m.order.id.clone(), m.generation))
        .collect();
    for (member, addr, summary) in fan_out(members, &addrs, &targets, &rtts, key.pings, &current) {
        log_round(member, addr.as_ref(), t, &summary);
        ctx.store
            .send(StoreCmd::Round {
                id: member.order.id.clone(),
                generation: member.generation,
                shape: Shape {
                    step: key.step,
                    pings: key.pings,
                    rrd: member.order.rrd == crate::order::RrdTemplate::Smokeping,
                },
                t,
                summary,
            })
            .await;
    }
}

/// Distributes a round's results: each member gets the series of its
/// target's address (`targets[i]` ↔ `rtts[i]`); members whose name did not
/// resolve, or whose series is missing, get `pings` losses; members no longer
/// in `current` with the same generation get nothing.
fn fan_out<'m>(
    members: &'m [Member],
    addrs: &[Option<IpAddr>],
    targets: &[IpAddr],
    rtts: &[Vec<Option<Duration>>],
    pings: u32,
    current: &HashMap<OrderId, u64>,
) -> Vec<(&'m Member, Option<IpAddr>, Summary)> {
    let pings = pings as usize;
    let index: HashMap<IpAddr, usize> = targets.iter().enumerate().map(|(i, a)| (*a, i)).collect();
    let mut out = Vec::with_capacity(members.len());
    for (member, addr) in members.iter().zip(addrs) {
        if current.get(&member.order.id) != Some(&member.generation) {
            debug!(order = %member.order.id, "order removed or changed during the round; result dropped");
            continue;
        }
        let values = addr
            .and_then(|a| index.get(&a))
            .and_then(|&i| rtts.get(i))
            .filter(|v| v.len() == pings)
            .cloned()
            .unwrap_or_else(|| vec![None; pings]);
        out.push((member, *addr, Summary::of(&RoundOutcome { rtts: values })));
    }
    out
}

fn log_round(member: &Member, addr: Option<&IpAddr>, t: i64, s: &Summary) {
    let ms = |x: Option<f64>| x.map_or_else(|| "-".to_owned(), |v| format!("{:.3}", v * 1000.0));
    debug!(
        order = %member.order.id,
        target = %member.host,
        addr = %addr.map_or_else(|| "unresolved".to_owned(), ToString::to_string),
        time = t,
        loss = s.lost,
        pings = s.pings,
        min_ms = %ms(s.min()),
        median_ms = %ms(s.median()),
        max_ms = %ms(s.max()),
        "round"
    );
}

/// The address of each member's host (`None` when a name does not resolve
/// to the job's family). Each distinct name is looked up once per round.
async fn resolve_all(members: &[Member], ipv6: bool) -> Vec<Option<IpAddr>> {
    let mut names: HashMap<&str, Option<IpAddr>> = HashMap::new();
    for m in members {
        if let Host::Name(n) = &m.host {
            names.entry(n.as_str()).or_insert(None);
        }
    }
    let mut set = tokio::task::JoinSet::new();
    for name in names.keys() {
        let name = (*name).to_owned();
        set.spawn(async move {
            let res = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((name.clone(), 0))).await;
            let addr = match res {
                Ok(Ok(mut it)) => it.find(|a| a.is_ipv6() == ipv6).map(|a| a.ip()),
                Ok(Err(e)) => {
                    info!(host = %name, error = %e, "host name does not resolve; its pings count as lost");
                    None
                }
                Err(_) => {
                    info!(host = %name, "host name lookup timed out; its pings count as lost");
                    None
                }
            };
            (name, addr)
        });
    }
    let mut resolved: HashMap<String, Option<IpAddr>> = HashMap::new();
    while let Some(Ok((name, addr))) = set.join_next().await {
        resolved.insert(name, addr);
    }
    members
        .iter()
        .map(|m| match &m.host {
            Host::Ip(ip) => Some(*ip),
            Host::Name(n) => resolved.get(n.as_str()).copied().flatten(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::{FpingSpec, ProbeSpec, RrdTemplate};

    fn member(id: &str, host: &str, generation: u64) -> Member {
        let host = crate::order::parse::parse_host(host).unwrap();
        Member {
            order: Arc::new(Order {
                id: OrderId::new(id).unwrap(),
                user: "u".into(),
                task: None,
                step: 60,
                pings: 2,
                probe: ProbeSpec::Fping(FpingSpec {
                    host: host.clone(),
                    interface: None,
                    source_ip: None,
                    interval_ms: None,
                    ipv6: false,
                }),
                rrd: RrdTemplate::Smokeping,
                telegraf: None,
            }),
            host,
            generation,
        }
    }

    #[test]
    fn fan_out_shares_series_and_drops_stale_members() {
        let members = vec![
            member("a", "127.0.0.1", 1),
            member("b", "127.0.0.1", 2),
            member("c", "127.0.0.2", 3),
            member("gone", "127.0.0.2", 4),
            member("changed", "127.0.0.2", 5),
            member("unresolved", "no.such.name", 6),
        ];
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        let addrs = vec![
            ip("127.0.0.1"),
            ip("127.0.0.1"),
            ip("127.0.0.2"),
            ip("127.0.0.2"),
            ip("127.0.0.2"),
            None,
        ];
        let targets = vec!["127.0.0.2".parse().unwrap(), "127.0.0.1".parse().unwrap()];
        let ms = |x| Some(Duration::from_millis(x));
        let rtts = vec![vec![ms(5), None], vec![ms(2), ms(1)]];
        let current: HashMap<OrderId, u64> = [
            ("a", 1),
            ("b", 2),
            ("c", 3),
            ("changed", 99),
            ("unresolved", 6),
        ]
        .into_iter()
        .map(|(id, g)| (OrderId::new(id).unwrap(), g))
        .collect();
        let out = fan_out(&members, &addrs, &targets, &rtts, 2, &current);
        let ids: Vec<&str> = out.iter().map(|(m, _, _)| m.order.id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c", "unresolved"]);
        assert_eq!(out[0].2, out[1].2, "a and b share one series");
        assert_eq!(out[0].2.sorted, vec![0.001, 0.002]);
        assert_eq!((out[2].2.lost, out[2].2.sorted.clone()), (1, vec![0.005]));
        assert_eq!(
            (out[3].1, out[3].2.lost),
            (None, 2),
            "unresolved name: all lost"
        );
    }

    #[test]
    fn fan_out_treats_missing_series_as_lost() {
        let members = vec![member("a", "127.0.0.1", 1)];
        let current: HashMap<OrderId, u64> =
            [(OrderId::new("a").unwrap(), 1)].into_iter().collect();
        let addrs = vec![Some("127.0.0.1".parse().unwrap())];
        let out = fan_out(&members, &addrs, &[], &[], 2, &current);
        assert_eq!(out[0].2.lost, 2);
        // a series of the wrong length is not trusted either
        let out = fan_out(
            &members,
            &addrs,
            &["127.0.0.1".parse().unwrap()],
            &[vec![None]],
            2,
            &current,
        );
        assert_eq!(out[0].2.lost, 2);
    }
}
