//! Rounds of the probes other than ICMP: each order runs its own probe's
//! round ([`crate::probe::Probe::round`]): a series of `pings` probes
//! (httping, tcp, ssh, dns), or one run of an external command (sping,
//! pping, exec). They run as futures inside the job task — not a task per
//! order — bounded per probe type by a semaphore, and every probe is cut
//! short at the round's deadline (just before the next round).

use std::time::Instant;

use super::{resolve_hosts, JobCtx, Member, MemberResult};
use crate::probe::{ProbeKind, RoundCx};
use crate::result::RoundOutcome;

/// What orders must share to be in one job of these probes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OtherKey {
    /// Probe type.
    pub probe: ProbeKind,
    /// Seconds between rounds.
    pub step: u32,
    /// Pings per round.
    pub pings: u32,
}

/// One round for every member. Members whose probe could not run at all
/// (missing command, HTTP client error) get no result.
pub(super) async fn round<'m>(
    ctx: &JobCtx,
    key: &OtherKey,
    members: &'m [Member],
    deadline: Instant,
) -> Option<Vec<MemberResult<'m>>> {
    let resolved = resolve_hosts(
        &ctx.deps.names,
        members.iter().filter_map(|m| m.order.probe.host()),
    )
    .await;
    let sem = ctx.deps.limit(key.probe);
    let futs = members.iter().map(|m| {
        let sem = sem.clone();
        let resolved = &resolved;
        async move {
            let _permit = sem.acquire_owned().await.ok()?;
            let addr = m
                .order
                .probe
                .host()
                .and_then(|(h, v6)| resolved.get(&(h.clone(), v6)).copied().flatten());
            let cx = RoundCx {
                deps: &ctx.deps,
                kind: key.probe,
                id: &m.order.id,
                step: key.step,
                pings: key.pings,
                deadline,
                addr,
            };
            let (shown, rtts) = m.order.probe.round(&cx).await?;
            Some((m, shown, RoundOutcome { rtts }, 0, None))
        }
    });
    let results: Vec<MemberResult<'m>> = futures_util::future::join_all(futs)
        .await
        .into_iter()
        .flatten()
        .collect();
    Some(results)
}
