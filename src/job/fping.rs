//! fping rounds: every distinct target of the job is pinged once, as one
//! round of the shared ICMP engine, and the series is fanned out to every
//! order of that target.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use probes::icmp::{Binding, EchoOptions, Family, RoundRequest, RoundResult, Rtts};
use tracing::error;

use super::{resolve_hosts, JobCtx, Member, MemberResult};
use crate::order::{FpingSpec, Host, Interface, ProbeSpec};
use crate::result::RoundOutcome;
use crate::schedule::{self, FPING_SPACING};

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
    /// Size, TOS and TTL of the echo requests.
    pub options: EchoOptions,
    /// IPv4 don't-fragment setting (`None` for IPv6: nothing to set).
    pub dont_fragment: Option<bool>,
    /// Reply timeout, ms.
    pub timeout_ms: u16,
}

impl FpingKey {
    /// The job key of an fping order.
    pub fn of(step: u32, pings: u32, f: &FpingSpec) -> FpingKey {
        FpingKey {
            step,
            pings,
            ipv6: f.ipv6,
            interface: f.interface.clone(),
            source_ip: f.source_ip,
            interval_ms: f.interval_ms.map(std::num::NonZeroU32::get),
            options: EchoOptions {
                data_bytes: f.data_bytes,
                tos: f.tos,
                ttl: f.ttl.map(std::num::NonZeroU8::get),
            },
            dont_fragment: f.dont_fragment.filter(|_| !f.ipv6),
            timeout_ms: f.timeout_ms,
        }
    }
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
) -> Option<Fanned<'m>> {
    let family = if key.ipv6 { Family::V6 } else { Family::V4 };
    let resolved = resolve_hosts(
        &ctx.deps.names,
        members.iter().filter_map(host_of).map(|h| (h, key.ipv6)),
    )
    .await;
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
    let result = if targets.is_empty() {
        RoundResult::default()
    } else {
        let interval = schedule::job_interval_ms(
            key.step,
            key.pings,
            targets.len(),
            key.interval_ms,
            u64::from(key.timeout_ms),
        );
        let req = RoundRequest {
            binding: Binding {
                family,
                source: key.source_ip,
                interface: key.interface.as_ref().map(|i| i.as_str().to_owned()),
                dont_fragment: key.dont_fragment,
            },
            targets: targets.clone(),
            pings: key.pings,
            interval: Duration::from_millis(interval),
            spacing: FPING_SPACING,
            timeout: Duration::from_millis(u64::from(key.timeout_ms)),
            start: Instant::now(),
            options: key.options,
        };
        match ctx.deps.icmp.submit(req).await {
            Ok(result) => result,
            Err(e) => {
                // Nothing was measured: store nothing rather than fake 100 % loss.
                error!(job = %ctx.name, orders = members.len(), error = %e, "ICMP round failed; no results stored for this round");
                return None;
            }
        }
    };
    Some(fan_out(members, addrs, &targets, result, key.pings))
}

/// A round's results, handed out member by member: each member gets the
/// series of its target's address (`targets[i]` ↔ row `i`), cut from the
/// round's compact RTTs only when the store takes it, so a job waiting for
/// the writers holds four bytes per ping rather than a vector per member.
/// Members whose name did not resolve, or whose series is missing, get
/// `pings` losses; each gets the count of its target's unsent pings.
pub(super) struct Fanned<'m> {
    members: &'m [Member],
    addrs: Vec<Option<IpAddr>>,
    /// Per member: its target's row, if its address was pinged.
    rows: Vec<Option<u32>>,
    rtts: Rtts,
    send_errors: Vec<u32>,
    /// Per target row: the TTL of its last reply.
    reply_ttl: Vec<Option<u8>>,
    pings: u32,
    next: usize,
}

fn fan_out<'m>(
    members: &'m [Member],
    addrs: Vec<Option<IpAddr>>,
    targets: &[IpAddr],
    result: RoundResult,
    pings: u32,
) -> Fanned<'m> {
    let index: HashMap<IpAddr, u32> = targets
        .iter()
        .enumerate()
        .map(|(i, a)| (*a, u32::try_from(i).unwrap_or(u32::MAX)))
        .collect();
    let rows = addrs
        .iter()
        .map(|a| a.and_then(|a| index.get(&a).copied()))
        .collect();
    Fanned {
        members,
        addrs,
        rows,
        rtts: result.rtts,
        send_errors: result.send_errors,
        reply_ttl: result.reply_ttl,
        pings,
        next: 0,
    }
}

impl<'m> Iterator for Fanned<'m> {
    type Item = MemberResult<'m>;

    fn next(&mut self) -> Option<MemberResult<'m>> {
        let i = self.next;
        let member = self.members.get(i)?;
        self.next += 1;
        let addr = self.addrs.get(i).copied().flatten();
        let row = self.rows.get(i).copied().flatten().map(|r| r as usize);
        let series = row.filter(|&r| r < self.rtts.len() && self.rtts.pings() == self.pings);
        let rtts = match series {
            Some(r) => self.rtts.row(r).collect(),
            None => vec![None; self.pings as usize],
        };
        let send_errors = row
            .and_then(|r| self.send_errors.get(r))
            .copied()
            .unwrap_or(0);
        let reply_ttl = series
            .and_then(|r| self.reply_ttl.get(r))
            .copied()
            .flatten();
        let shown = addr.map_or_else(|| "unresolved".to_owned(), |a| a.to_string());
        Some((member, shown, RoundOutcome { rtts }, send_errors, reply_ttl))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.members.len().saturating_sub(self.next);
        (n, Some(n))
    }
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
                    data_bytes: 56,
                    tos: 0,
                    ttl: None,
                    dont_fragment: None,
                    timeout_ms: 3000,
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
        let rtts = Rtts::from_rows(&[vec![ms(5), None], vec![ms(2), ms(1)]], 2);
        let result = RoundResult {
            rtts,
            send_errors: vec![0, 3],
            reply_ttl: vec![Some(61), None],
        };
        let out: Vec<_> = fan_out(&members, addrs, &targets, result, 2).collect();
        assert_eq!(out.len(), 4);
        let s = |i: usize| crate::result::Summary::of(&out[i].2);
        assert_eq!(out[0].2, out[1].2, "a and b share one series");
        assert_eq!(
            out.iter().map(|r| r.3).collect::<Vec<_>>(),
            [3, 3, 0, 0],
            "unsent pings by target"
        );
        assert_eq!(
            out.iter().map(|r| r.4).collect::<Vec<_>>(),
            [None, None, Some(61), None],
            "reply TTL by target"
        );
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
        let out: Vec<_> =
            fan_out(&members, addrs.clone(), &[], RoundResult::default(), 2).collect();
        assert_eq!(out[0].2.rtts, vec![None, None]);
        // a series of the wrong length is not trusted either
        let ms = Some(Duration::from_millis(1));
        let out: Vec<_> = fan_out(
            &members,
            addrs,
            &["127.0.0.1".parse().unwrap()],
            RoundResult {
                rtts: Rtts::from_rows(&[vec![ms]], 1),
                send_errors: vec![0],
                reply_ttl: vec![Some(64)],
            },
            2,
        )
        .collect();
        assert_eq!(out[0].2.rtts, vec![None, None]);
    }
}
