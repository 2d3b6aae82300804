//! Probing jobs (as the original does). Orders that share a probe, step, pings and probe
//! options form a job (at most 1000 fping orders, 15 httping orders, 100 of
//! the others). A job is one task that, once per step at `boundary +
//! offset`, runs one round for all its orders and sends each order's result
//! to the store.
//!
//! * [`fping`] — ICMP rounds through the shared engine: one ping series per
//!   distinct target, fanned out to every order of that target.
//! * [`other`] — httping, tcp, ssh, dns, sping, pping and exec rounds: one
//!   round per order (each probe's own, in `crate::probe`), run as futures
//!   inside the job task, bounded per probe type by a semaphore.
//!
//! What rounds share (the ICMP engine, HTTP clients, command templates,
//! limits) is `crate::probe::deps`; the timing rules are `crate::schedule`.
//!
//! The registry owns membership and publishes it through a `watch` channel;
//! the job reads it at the start of a round and again when results arrive,
//! so results for orders removed or changed during the round are dropped.

pub mod fping;
pub mod other;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::clock::{instant_at, unix_ms};
use crate::counters::JobStats;
use crate::names::Names;
use crate::order::{Host, Order, OrderId, ProbeSpec};
use crate::result::{RoundOutcome, Summary};
use crate::schedule;
use crate::sink::{RoundReport, Sinks};
use crate::store::{Shape, StoreCmd, StoreHandle};

pub use crate::probe::ProbeDeps;
pub use fping::FpingKey;
pub use other::OtherKey;

/// What orders must share to be in one job.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum JobKey {
    /// ICMP.
    Fping(FpingKey),
    /// Every other probe.
    Other(OtherKey),
}

impl JobKey {
    /// The job key of `order`: what it must share with the other orders of
    /// its job.
    pub fn of(order: &Order) -> JobKey {
        match &order.probe {
            ProbeSpec::Fping(f) => JobKey::Fping(FpingKey::of(order.step, order.pings, f)),
            other => JobKey::Other(OtherKey {
                probe: other.kind(),
                step: order.step,
                pings: order.pings,
            }),
        }
    }

    /// Seconds between rounds.
    pub fn step(&self) -> u32 {
        match self {
            JobKey::Fping(k) => k.step,
            JobKey::Other(k) => k.step,
        }
    }

    /// Pings per round.
    pub fn pings(&self) -> u32 {
        match self {
            JobKey::Fping(k) => k.pings,
            JobKey::Other(k) => k.pings,
        }
    }

    /// Most orders in one job.
    pub fn capacity(&self) -> usize {
        match self {
            JobKey::Fping(k) => schedule::job_capacity(
                k.step,
                k.pings,
                k.interval_ms.is_some(),
                u64::from(k.timeout_ms),
            ),
            JobKey::Other(k) => k.probe.job_capacity(),
        }
    }

    /// Name for logs.
    pub fn label(&self) -> String {
        match self {
            JobKey::Fping(k) => {
                let mut label = format!(
                    "fping step={} pings={} ipv{}",
                    k.step,
                    k.pings,
                    if k.ipv6 { 6 } else { 4 }
                );
                // Settings other than the defaults, as the order names them.
                let o = &k.options;
                if o.data_bytes != probes::icmp::DEFAULT_DATA_BYTES {
                    label.push_str(&format!(" size={}", o.data_bytes));
                }
                if o.tos != 0 {
                    label.push_str(&format!(" tos={}", o.tos));
                }
                if let Some(ttl) = o.ttl {
                    label.push_str(&format!(" ttl={ttl}"));
                }
                if let Some(df) = k.dont_fragment {
                    label.push_str(&format!(" dont_fragment={df}"));
                }
                if u64::from(k.timeout_ms) != schedule::FPING_TIMEOUT_MS {
                    label.push_str(&format!(" timeout={}", k.timeout_ms));
                }
                label
            }
            JobKey::Other(k) => format!("{} step={} pings={}", k.probe, k.step, k.pings),
        }
    }
}

/// One order in a job.
#[derive(Debug, Clone)]
pub struct Member {
    /// The order.
    pub order: Arc<Order>,
    /// Changes whenever the order's content changes.
    pub generation: u64,
    /// Unix ms of the first step boundary after the order was (re)started:
    /// it takes part in rounds from there on, so its first result is never
    /// stamped at its new `main.rrd`'s start time (the original's rule).
    pub active_from_ms: i64,
}

/// The members of a job as published by the registry.
pub type Members = Arc<Vec<Member>>;

/// What a job task needs.
#[derive(Debug)]
pub struct JobCtx {
    /// Grouping key.
    pub key: JobKey,
    /// Fixed offset after each step boundary, ms.
    pub offset_ms: u64,
    /// Shared probe resources.
    pub deps: Arc<ProbeDeps>,
    /// The daemon's counters of rounds.
    pub counters: Arc<JobStats>,
    /// Where results go.
    pub store: StoreHandle,
    /// Line-protocol destinations.
    pub sinks: Arc<Sinks>,
    /// Current members.
    pub members: watch::Receiver<Members>,
    /// Stops the job.
    pub cancel: CancellationToken,
    /// Name for logs.
    pub name: String,
}

/// Runs the job until cancelled.
pub async fn run_job(mut ctx: JobCtx) {
    let (step, pings) = (ctx.key.step(), ctx.key.pings());
    let step_ms = i64::from(step) * 1000;
    let mut start_ms = schedule::next_round_start_ms(unix_ms(), step, ctx.offset_ms);
    debug!(job = %ctx.name, offset_ms = ctx.offset_ms, first_round = start_ms, "job started");
    let mut skipped_before = false;
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(instant_at(start_ms).into()) => {}
            () = ctx.cancel.cancelled() => return,
        }
        let late_us = u64::try_from((unix_ms() - start_ms).max(0) * 1000).unwrap_or(0);
        ctx.counters.round_started(late_us);
        let next_ms = start_ms + step_ms;
        let published_at_start = ctx.members.borrow_and_update().clone();
        let members: Members = if published_at_start
            .iter()
            .all(|m| m.active_from_ms <= start_ms)
        {
            published_at_start.clone()
        } else {
            Arc::new(
                published_at_start
                    .iter()
                    .filter(|m| m.active_from_ms <= start_ms)
                    .cloned()
                    .collect(),
            )
        };
        // A round that cannot end before the next one starts is not begun
        // (it would be abandoned there): the job waits for the next start.
        let planned_ms = planned_round_ms(&ctx.key, members.len());
        let now_ms = unix_ms();
        if !members.is_empty() && planned_ms.is_some_and(|p| now_ms + p as i64 > next_ms) {
            ctx.counters
                .rounds_skipped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if !skipped_before {
                skipped_before = true;
                warn!(
                    job = %ctx.name,
                    orders = members.len(),
                    late_ms = now_ms - start_ms,
                    round_ms = planned_ms.unwrap_or(0),
                    "round skipped: started too late to end before the next one (said once per job; later skips are counted in rounds_skipped)"
                );
            }
        } else if !members.is_empty() {
            // Probes that are not ICMP stop just before the next round, so
            // their partial results are still stored.
            let deadline = instant_at(next_ms - schedule::ROUND_STOP_MARGIN_MS);
            let round = async {
                match &ctx.key {
                    JobKey::Fping(k) => fping::round(&ctx, k, &members)
                        .await
                        .map(|r| Box::new(r) as RoundResults<'_>),
                    JobKey::Other(k) => other::round(&ctx, k, &members, deadline)
                        .await
                        .map(|r| Box::new(r.into_iter()) as RoundResults<'_>),
                }
            };
            let results = tokio::select! {
                results = round => results,
                () = tokio::time::sleep_until(instant_at(next_ms).into()) => {
                    ctx.counters.rounds_abandoned.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    warn!(job = %ctx.name, orders = members.len(), "round still running at the next round's start: abandoned");
                    for m in members.iter() {
                        ctx.sinks.abandoned(&m.order, pings);
                    }
                    None
                }
                () = ctx.cancel.cancelled() => return,
            };
            // Delivered outside the race with the next start: once probed,
            // a round is handed over whole; handing over never waits for
            // storage, so the next round starts on time.
            if let Some(results) = results {
                deliver(&ctx, &published_at_start, step, pings, start_ms, results);
                ctx.counters
                    .rounds
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        // Normally the next boundary; after a long stall (suspend, clock
        // jump) skip to the first start in the future instead of bursting.
        let now = unix_ms();
        start_ms = if next_ms + step_ms / 2 < now {
            schedule::next_round_start_ms(now, step, ctx.offset_ms)
        } else {
            next_ms
        };
    }
}

/// How long a round of `members` orders of this job lasts, when that is
/// known in advance: an ICMP round sends `pings` waves `interval` apart and
/// waits the reply timeout after the last. (A wave's sends, 1 ms apart, are
/// left out: the order rules guarantee only that this much fits in a step,
/// and a round whose replies come early ends before its timeout.) The
/// other probes are cut short just before the next round, so they never
/// run into it (`None`).
pub fn planned_round_ms(key: &JobKey, members: usize) -> Option<u64> {
    match key {
        JobKey::Fping(k) => {
            let timeout = u64::from(k.timeout_ms);
            let interval =
                schedule::job_interval_ms(k.step, k.pings, members, k.interval_ms, timeout);
            Some(schedule::series_round_ms(
                k.pings,
                u32::try_from(interval).unwrap_or(u32::MAX),
                timeout,
            ))
        }
        JobKey::Other(_) => None,
    }
}

/// A member's result: the member, what it was probed at (for logs), its
/// RTTs in send order, how many of its pings could not be sent, and the
/// TTL (hop limit) of its last reply (ICMP).
pub(crate) type MemberResult<'m> = (&'m Member, String, RoundOutcome, u32, Option<u8>);

/// A round's member results, produced as the store takes them.
type RoundResults<'m> = Box<dyn Iterator<Item = MemberResult<'m>> + Send + 'm>;

/// Stamps the results with the round's RRD time and hands those of orders
/// still present and unchanged to the sinks and the store. Never waits:
/// the store keeps what it has not written yet (bounded per order).
fn deliver(
    ctx: &JobCtx,
    published: &Members,
    step: u32,
    pings: u32,
    start_ms: i64,
    results: RoundResults<'_>,
) {
    // The original takes floor(now/step)*step - step when the results are
    // collected; a round ends within its step, so that is the step the
    // round started in. Taking it from the start keeps a round that ran
    // past the boundary on its own step instead of the next one's.
    let t = schedule::rrd_time(start_ms.div_euclid(1000), step);
    // The members as published now. Unchanged since the round began (the
    // same allocation), every result is current and none is looked up.
    let now_published = ctx.members.borrow().clone();
    let current: Option<HashMap<&OrderId, u64>> = if Arc::ptr_eq(&now_published, published) {
        None
    } else {
        Some(
            now_published
                .iter()
                .map(|m| (&m.order.id, m.generation))
                .collect(),
        )
    };
    let mut out = ctx.store.batches();
    for (member, addr, outcome, send_errors, reply_ttl) in results {
        if let Some(current) = &current {
            if current.get(&member.order.id) != Some(&member.generation) {
                debug!(order = %member.order.id, "order removed or changed during the round; result dropped");
                continue;
            }
        }
        let summary = Summary::of(&outcome);
        log_round(member, &addr, t, &summary);
        ctx.sinks.report(&RoundReport {
            order: &member.order,
            generation: member.generation,
            t,
            step,
            rtts: &outcome.rtts,
            summary: &summary,
            addr: &addr,
            send_errors,
            reply_ttl,
        });
        out.push(StoreCmd::Round {
            id: member.order.id.clone(),
            generation: member.generation,
            shape: Shape {
                step,
                pings,
                rrd: member.order.rrd == crate::order::RrdTemplate::Smokeping,
            },
            t,
            summary,
            queued: std::time::Instant::now(),
        });
    }
    out.flush();
}

fn log_round(member: &Member, addr: &str, t: i64, s: &Summary) {
    let ms = |x: Option<f64>| x.map_or_else(|| "-".to_owned(), |v| format!("{:.3}", v * 1000.0));
    debug!(
        order = %member.order.id,
        probe = %member.order.probe.name(),
        target = %member.order.probe.target(),
        addr = %addr,
        time = t,
        loss = s.lost,
        pings = s.pings,
        min_ms = %ms(s.min()),
        median_ms = %ms(s.median()),
        max_ms = %ms(s.max()),
        "round"
    );
}

/// The address of each distinct host (IP literals pass through; names
/// from [`Names`], which waits only for a name's first lookup); `None`
/// when a name has no address of the wanted family.
pub(crate) async fn resolve_hosts<'h>(
    names: &Names,
    hosts: impl IntoIterator<Item = (&'h Host, bool)>,
) -> HashMap<(Host, bool), Option<IpAddr>> {
    let mut out: HashMap<(Host, bool), Option<IpAddr>> = HashMap::new();
    let mut pending = Vec::new();
    for (host, ipv6) in hosts {
        if out.contains_key(&(host.clone(), ipv6)) {
            continue;
        }
        match host {
            Host::Ip(ip) => {
                out.insert((host.clone(), ipv6), Some(*ip));
            }
            Host::Name(name) => {
                out.insert((host.clone(), ipv6), None);
                pending.push((host, name, ipv6));
            }
        }
    }
    let found = futures_util::future::join_all(
        pending
            .iter()
            .map(|(_, name, ipv6)| names.addr(name, *ipv6)),
    )
    .await;
    for ((host, _, ipv6), addr) in pending.into_iter().zip(found) {
        out.insert((host.clone(), ipv6), addr);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::{parse_order, OrderId};

    fn key(yaml: &str) -> JobKey {
        let id = OrderId::new("x").unwrap();
        JobKey::of(
            &parse_order(std::path::Path::new("x"), &id, yaml.as_bytes())
                .unwrap()
                .order,
        )
    }

    fn member(id: &str, generation: u64) -> Member {
        let id = OrderId::new(id).unwrap();
        let yaml = "user: u\nstep: 60\npings: 2\nprobe: fping\nfping: {host: 127.0.0.1}\n";
        Member {
            order: Arc::new(
                parse_order(std::path::Path::new("x"), &id, yaml.as_bytes())
                    .unwrap()
                    .order,
            ),
            generation,
            active_from_ms: 0,
        }
    }

    /// What `deliver` hands to the store when the job's members were
    /// `at_start` when the round began and `now` when it ended.
    fn delivered(at_start: &Members, now: Option<Members>) -> Vec<String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (store, rx) = StoreHandle::capture();
            // The orders as the registry prepared them when the round began
            // (the store drops rounds of orders it does not know).
            for m in at_start.iter() {
                store.send(StoreCmd::Prepare {
                    id: m.order.id.clone(),
                    generation: m.generation,
                    shape: Shape {
                        step: 60,
                        pings: 2,
                        rrd: true,
                    },
                    rrd_start: 0,
                });
            }
            let (tx, members) = watch::channel(at_start.clone());
            if let Some(now) = now {
                tx.send_replace(now);
            }
            let engine =
                probes::icmp::IcmpEngine::new(probes::icmp::IcmpConfig::default()).unwrap();
            let template = crate::probe::deps::CommandTemplate::parse("true").unwrap();
            let ctx = JobCtx {
                key: key("user: u\nstep: 60\npings: 2\nprobe: fping\nfping: {host: 127.0.0.1}\n"),
                offset_ms: 0,
                deps: Arc::new(ProbeDeps::new(
                    Arc::new(engine),
                    crate::probe::deps::DepsConfig {
                        http_ca: Vec::new(),
                        sping: template.clone(),
                        pping: template,
                        exec: HashMap::new(),
                        max_parallel: 1,
                    },
                    Arc::new(Names::new(&crate::names::NamesConfig::default()).unwrap()),
                )),
                counters: Arc::new(JobStats::default()),
                store,
                sinks: Arc::new(Sinks::none()),
                members,
                cancel: CancellationToken::new(),
                name: "job".into(),
            };
            let results: Vec<MemberResult<'_>> = at_start
                .iter()
                .map(|m| {
                    let outcome = RoundOutcome {
                        rtts: vec![Some(std::time::Duration::from_millis(1)), None],
                    };
                    (m, "127.0.0.1".to_owned(), outcome, 0, None)
                })
                .collect();
            deliver(
                &ctx,
                at_start,
                60,
                2,
                120_000,
                Box::new(results.into_iter()),
            );
            drop(ctx);
            let mut out = Vec::new();
            while let Some(work) = rx.try_next() {
                if let crate::store::queue::Work::Rounds(id, p) = work {
                    assert_eq!(p.latest.t, schedule::rrd_time(120, 60));
                    out.push(id.to_string());
                }
            }
            out
        })
    }

    #[test]
    fn a_round_is_stored_for_the_members_still_current_at_its_end() {
        let many: Vec<Member> = (0..150).map(|i| member(&format!("o{i:03}"), 1)).collect();
        let at_start: Members = Arc::new(many.clone());
        // Unchanged (the very list published at the start): every result,
        // in order, past the store's batches.
        let all = delivered(&at_start, None);
        let want: Vec<String> = (0..150).map(|i| format!("o{i:03}")).collect();
        assert_eq!(all, want);
        // Republished with the same content: still every result.
        assert_eq!(delivered(&at_start, Some(Arc::new(many.clone()))), want);
        // o001 removed and o002 changed during the round: their results
        // are dropped, the others kept.
        let mut now = many;
        now.remove(1);
        now[1] = member("o002", 2);
        let got = delivered(&at_start, Some(Arc::new(now)));
        assert_eq!(got.len(), 148);
        assert!(got.iter().all(|id| id != "o001" && id != "o002"));
    }

    #[test]
    fn planned_round_lengths() {
        let fping = |yaml: &str| key(yaml);
        // The original's formula: 1000 targets, step 300, 20 pings: interval 11,800 ms;
        // 19 intervals and the 3 s timeout.
        let k = fping("user: u\nstep: 300\npings: 20\nprobe: fping\nfping: {host: 127.0.0.1}\n");
        assert_eq!(planned_round_ms(&k, 1000), Some(19 * 11_800 + 3000));
        assert_eq!(planned_round_ms(&k, 1), Some(19 * 11_849 + 3000));
        // Every round the interval formula allows ends within its step.
        let k = fping("user: u\nstep: 60\npings: 20\nprobe: fping\nfping: {host: 127.0.0.1}\n");
        assert!(planned_round_ms(&k, 1000).unwrap() < 60_000);
        let k = fping(
            "user: u\nstep: 10\npings: 4\nprobe: fping\nfping: {host: 127.0.0.1, interval: 1000}\n",
        );
        assert_eq!(planned_round_ms(&k, 1), Some(3 * 1000 + 3000));
        // The longest interval an order may have still fits with 1000
        // targets: such a round is never skipped when it starts on time.
        let k = fping(
            "user: u\nstep: 10\npings: 4\nprobe: fping\nfping: {host: 127.0.0.1, interval: 2333}\n",
        );
        assert!(planned_round_ms(&k, 1000).unwrap() < 10_000);
        let tcp = key("user: u\nstep: 60\npings: 5\nprobe: tcp\ntcp: {host: 127.0.0.1, port: 1}\n");
        assert_eq!(
            planned_round_ms(&tcp, 10),
            None,
            "cut short at the deadline instead"
        );
    }

    #[test]
    fn job_keys_capacities_and_labels() {
        let fping = key(
            "user: u\nstep: 60\npings: 20\nprobe: fping\nfping: {host: '::1', interval: 1500}\n",
        );
        let JobKey::Fping(f) = &fping else {
            panic!("{fping:?}")
        };
        assert!(f.ipv6);
        assert_eq!(f.interval_ms, Some(1500));
        assert_eq!(fping.capacity(), 1000);
        assert_eq!(fping.label(), "fping step=60 pings=20 ipv6");
        let custom = key(
            "user: u\nstep: 60\npings: 20\nprobe: fping\nfping: {host: 192.0.2.1, size: 1400, tos: 184, ttl: 9, dont_fragment: true, timeout: 500}\n",
        );
        assert_eq!(
            custom.label(),
            "fping step=60 pings=20 ipv4 size=1400 tos=184 ttl=9 dont_fragment=true timeout=500"
        );
        assert_ne!(custom, fping);
        // IPv6 has no don't-fragment flag to set: the same job as without.
        let v6 = |df: &str| {
            key(&format!("user: u\nstep: 60\npings: 20\nprobe: fping\nfping: {{host: '::1', interval: 1500{df}}}\n"))
        };
        assert_eq!(v6(", dont_fragment: true"), v6(""));
        let dns = key("user: u\nstep: 60\npings: 5\nprobe: dns\ndns: {server: 127.0.0.1, name: example.com}\n");
        assert_eq!(
            dns,
            JobKey::Other(OtherKey {
                probe: crate::probe::ProbeKind::Dns,
                step: 60,
                pings: 5
            })
        );
        assert_eq!((dns.capacity(), dns.step(), dns.pings()), (100, 60, 5));
        assert_eq!(dns.label(), "dns step=60 pings=5");
        let http =
            key("user: u\nstep: 60\npings: 5\nprobe: httping\nhttping: {url: 'http://h/'}\n");
        assert_eq!(http.capacity(), 15);
        // Other probes share a job whatever their targets.
        let tcp_a =
            key("user: u\nstep: 60\npings: 5\nprobe: tcp\ntcp: {host: 127.0.0.1, port: 1}\n");
        let tcp_b = key("user: u\nstep: 60\npings: 5\nprobe: tcp\ntcp: {host: '::1', port: 2}\n");
        assert_eq!(tcp_a, tcp_b);
    }
}
