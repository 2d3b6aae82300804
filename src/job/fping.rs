//! fping rounds: every distinct target of the job is pinged once, as one
//! round of the shared ICMP engine, and the series is fanned out to every
//! order of that target.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use probes::icmp::{Binding, Family, RoundRequest};
use tracing::error;

use super::{resolve_hosts, JobCtx, Member, MemberResult};
use crate::order::{Host, Interface, ProbeSpec};
use crate::result::RoundOutcome;
use crate::schedule::{self, FPING_SPACING, FPING_TIMEOUT};

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

fn host_of(m: &Member) -> Option<&Host> {
    match &m.order.probe {
        ProbeSpec::Fping(f) => Some(&f.host),
        _ => None,
    }
}

/// One round: resolve, ping, fan out. `None` when nothing was measured.
pub(super) async fn round<'m>(
    ctx: &JobCtx,
    key: &FpingKey,
    members: &'m [Member],
) -> Option<Vec<MemberResult<'m>>> {
    let family = if key.ipv6 { Family::V6 } else { Family::V4 };
    let resolved = resolve_hosts(members.iter().filter_map(host_of).map(|h| (h, key.ipv6))).await;
    let addrs: Vec<Option<IpAddr>> = members
        .iter()
        .map(|m| host_of(m).and_then(|h| resolved.get(&(h.clone(), key.ipv6)).copied().flatten()))
        .collect();
    // The lookup tables are not kept across the round's await: at a million
    // orders they would be 150 MB held for most of every step.
    drop(resolved);
    let targets: Vec<IpAddr> = {
        let mut seen = std::collections::HashSet::with_capacity(addrs.len());
        addrs
            .iter()
            .flatten()
            .copied()
            .filter(|a| seen.insert(*a))
            .collect()
    };
    let (rtts, send_errors): (Vec<Vec<Option<Duration>>>, Vec<u32>) = if targets.is_empty() {
        (Vec::new(), Vec::new())
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
        match ctx.deps.icmp.submit(req).await {
            Ok(result) => (result.rtts, result.send_errors),
            Err(e) => {
                // Nothing was measured: store nothing rather than fake 100 % loss.
                error!(job = %ctx.name, orders = members.len(), error = %e, "ICMP round failed; no results stored for this round");
                return None;
            }
        }
    };
    let mut out = fan_out(members, &addrs, &targets, rtts, key.pings);
    // Pings to a target that could not be sent, for each of its orders.
    let index: HashMap<IpAddr, usize> = targets.iter().enumerate().map(|(i, a)| (*a, i)).collect();
    for (r, addr) in out.iter_mut().zip(&addrs) {
        r.3 = addr
            .and_then(|a| index.get(&a))
            .and_then(|&i| send_errors.get(i))
            .copied()
            .unwrap_or(0);
    }
    Some(out)
}

/// Distributes a round's results: each member gets the series of its
/// target's address (`targets[i]` ↔ `rtts[i]`); members whose name did not
/// resolve, or whose series is missing, get `pings` losses.
fn fan_out<'m>(
    members: &'m [Member],
    addrs: &[Option<IpAddr>],
    targets: &[IpAddr],
    mut rtts: Vec<Vec<Option<Duration>>>,
    pings: u32,
) -> Vec<MemberResult<'m>> {
    let pings = pings as usize;
    let index: HashMap<IpAddr, usize> = targets.iter().enumerate().map(|(i, a)| (*a, i)).collect();
    // A series is moved to the last member that takes it, copied for the
    // others: one copy of a round's results in memory, not two.
    let mut takers = vec![0u32; rtts.len()];
    let slot = |addr: &Option<IpAddr>| {
        addr.and_then(|a| index.get(&a).copied())
            .filter(|&i| rtts.get(i).is_some_and(|v| v.len() == pings))
    };
    let slots: Vec<Option<usize>> = addrs.iter().map(slot).collect();
    for i in slots.iter().flatten() {
        takers[*i] += 1;
    }
    members
        .iter()
        .zip(addrs)
        .zip(slots)
        .map(|((member, addr), slot)| {
            let values = match slot {
                Some(i) => {
                    takers[i] -= 1;
                    if takers[i] == 0 {
                        std::mem::take(&mut rtts[i])
                    } else {
                        rtts[i].clone()
                    }
                }
                None => vec![None; pings],
            };
            let shown = addr.map_or_else(|| "unresolved".to_owned(), |a| a.to_string());
            (member, shown, RoundOutcome { rtts: values }, 0)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::{FpingSpec, Order, OrderId, RrdTemplate};
    use std::sync::Arc;

    fn member(id: &str, host: &str) -> Member {
        let host = crate::order::fields::parse_host(host).unwrap();
        Member {
            order: Arc::new(Order {
                id: OrderId::new(id).unwrap(),
                user: "u".into(),
                task: None,
                step: 60,
                pings: 2,
                probe: ProbeSpec::Fping(FpingSpec {
                    host,
                    interface: None,
                    source_ip: None,
                    interval_ms: None,
                    ipv6: false,
                }),
                rrd: RrdTemplate::Smokeping,
                telegraf: None,
            }),
            generation: 1,
            active_from_ms: 0,
        }
    }

    #[test]
    fn fan_out_shares_series() {
        let members = vec![
            member("a", "127.0.0.1"),
            member("b", "127.0.0.1"),
            member("c", "127.0.0.2"),
            member("unresolved", "no.such.name"),
        ];
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        let addrs = vec![ip("127.0.0.1"), ip("127.0.0.1"), ip("127.0.0.2"), None];
        let targets = vec!["127.0.0.2".parse().unwrap(), "127.0.0.1".parse().unwrap()];
        let ms = |x| Some(Duration::from_millis(x));
        let rtts = vec![vec![ms(5), None], vec![ms(2), ms(1)]];
        let out = fan_out(&members, &addrs, &targets, rtts, 2);
        assert_eq!(out.len(), 4);
        let s = |i: usize| crate::result::Summary::of(&out[i].2);
        assert_eq!(out[0].2, out[1].2, "a and b share one series");
        assert_eq!(s(0).sorted, vec![0.001, 0.002]);
        assert_eq!((s(2).lost, s(2).sorted), (1, vec![0.005]));
        assert_eq!(
            (out[3].1.as_str(), s(3).lost),
            ("unresolved", 2),
            "unresolved name: all lost"
        );
    }

    #[test]
    fn fan_out_treats_missing_series_as_lost() {
        let members = vec![member("a", "127.0.0.1")];
        let addrs = vec![Some("127.0.0.1".parse().unwrap())];
        let out = fan_out(&members, &addrs, &[], Vec::new(), 2);
        assert_eq!(out[0].2.rtts, vec![None, None]);
        // a series of the wrong length is not trusted either
        let out = fan_out(
            &members,
            &addrs,
            &["127.0.0.1".parse().unwrap()],
            vec![vec![None]],
            2,
        );
        assert_eq!(out[0].2.rtts, vec![None, None]);
    }
}
