//! Prometheus: every order's results as smokeping_prober exports them, plus
//! gauges of each order's latest round, kept in memory and rendered on
//! scrape (`/metrics`, see `crate::web`).
//!
//! Per order, with the labels `ip`, `host`, `source`, `tos` (as
//! smokeping_prober sets them), `order`, `user`, `probe` and the order's own
//! tags (sanitised, see [`label_names`]):
//! * `smokeping_requests_total` — pings sent;
//! * `smokeping_response_duration_seconds` — a histogram of the RTTs of
//!   the replies (buckets from `--metrics-buckets`, by default
//!   smokeping_prober's 5e-05 doubling to 26.2144);
//! * `smokeping_send_errors_total` — pings the kernel refused to send.
//!
//! Both advance when a round's results are delivered, together, so
//! `requests − count` is exactly the pings lost. A round abandoned at the
//! next round's start adds its pings to `requests` and nothing to the
//! histogram: they were sent, and their results thrown away. With labels `order`, `user`, `probe`, the
//! latest round: `pingmachine_last_loss_ratio`,
//! `pingmachine_last_rtt_{median,min,max}_seconds` and
//! `pingmachine_last_round_timestamp_seconds`.
//!
//! An order's series disappear once it has had no round for three steps
//! (it ended or changed its labels).

use probes::sync::lock;
use std::collections::{BTreeMap, HashMap};

use std::sync::{Arc, Mutex};

pub mod buckets;

use super::{Common, Env, Plan, RoundReport, Sink};
use crate::order::{Order, OrderId};
use crate::telemetry::exposition::{go_float, render_labels, Exposition, Kind};
pub use buckets::{parse_bucket_list, parse_buckets, Buckets, BucketsError, DEFAULT_BUCKETS};

/// The Prometheus flags (the series are served with `--listen`).
#[derive(Debug, Clone, clap::Args)]
#[group(skip)]
pub struct Args {
    /// Upper bounds (seconds, comma-separated, increasing) of the
    /// smokeping_response_duration_seconds histogram; smokeping_prober's by
    /// default.
    #[arg(
        long,
        value_name = "SECONDS,...",
        default_value = "5e-05,0.0001,0.0002,0.0004,0.0008,0.0016,0.0032,0.0064,0.0128,0.0256,0.0512,0.1024,0.2048,0.4096,0.8192,1.6384,3.2768,6.5536,13.1072,26.2144",
        value_parser = parse_buckets
    )]
    pub metrics_buckets: Buckets,
}

#[derive(Debug)]
struct PrometheusPlan {
    buckets: Vec<f64>,
}

/// A sink with `--listen` (the series are only read there).
pub fn plan(args: &Args, common: &Common<'_>) -> anyhow::Result<Option<Box<dyn Plan>>> {
    Ok(common.listen.then(|| {
        Box::new(PrometheusPlan {
            buckets: args.metrics_buckets.0.clone(),
        }) as Box<dyn Plan>
    }))
}

impl Plan for PrometheusPlan {
    fn start(self: Box<Self>, _env: &Env<'_>) -> Arc<dyn Sink> {
        Arc::new(Metrics::new(self.buckets))
    }
}

impl Sink for Metrics {
    fn report(&self, r: &RoundReport<'_>) {
        self.record(r);
    }

    fn abandoned(&self, order: &Order, pings: u32) {
        Metrics::abandoned(self, order, pings);
    }

    fn expose(&self, out: &mut Exposition, now: i64) {
        self.render(out, now);
    }

    fn round_spread(&self, id: &OrderId, t: i64) -> Option<super::RoundSpread> {
        let map = lock(&self.series);
        let s = map.get(id)?;
        if s.last.t == t {
            return Some(super::RoundSpread {
                jitter: s.last.jitter,
                stddev: s.last.stddev,
            });
        }
        s.before
            .filter(|(bt, _)| *bt == t)
            .map(|(_, spread)| spread)
    }
}

/// Labels every per-order series has; an order tag of one of these names is
/// renamed `tag_<name>`.
pub const RESERVED_LABELS: [&str; 8] = [
    "ip", "host", "source", "tos", "order", "user", "probe", "le",
];

/// One order's series.
#[derive(Debug, Clone)]
struct OrderSeries {
    /// The rendered label set of the smokeping_* series.
    labels: Arc<str>,
    /// The rendered label set of the gauges.
    gauge_labels: Arc<str>,
    requests: u64,
    send_errors: u64,
    /// Replies per bucket (not cumulative), the last one above every bound.
    buckets: Vec<u64>,
    count: u64,
    sum: f64,
    /// TTL (hop limit) of the last reply, as smokeping_prober keeps it.
    reply_ttl: Option<u8>,
    last: LastRound,
    /// The spread of the round before `last` and its time (the web page
    /// may still show its `last_result` while the latest is being
    /// written).
    before: Option<(i64, super::RoundSpread)>,
    /// Unix time of the last delivery, and the order's step.
    updated: i64,
    step: u32,
}

#[derive(Debug, Clone, Copy)]
struct LastRound {
    t: i64,
    loss_ratio: f64,
    median: Option<f64>,
    min: Option<f64>,
    max: Option<f64>,
    jitter: Option<f64>,
    stddev: Option<f64>,
}

/// The Prometheus sink; see the module docs.
#[derive(Debug)]
pub struct Metrics {
    buckets: Vec<f64>,
    series: Mutex<HashMap<OrderId, OrderSeries>>,
}

impl Metrics {
    /// A sink with these histogram bucket bounds (seconds, increasing).
    pub fn new(buckets: Vec<f64>) -> Metrics {
        Metrics {
            buckets,
            series: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one delivered round.
    pub fn record(&self, r: &RoundReport<'_>) {
        let labels = series_labels(r);
        let gauge_labels = gauge_labels(r);
        let mut map = lock(&self.series);
        let s = map
            .entry(r.order.id.clone())
            .or_insert_with(|| OrderSeries {
                labels: Arc::from(""),
                gauge_labels: Arc::from(""),
                requests: 0,
                send_errors: 0,
                buckets: vec![0; self.buckets.len() + 1],
                count: 0,
                sum: 0.0,
                reply_ttl: None,
                before: None,
                last: LastRound {
                    t: 0,
                    loss_ratio: 0.0,
                    median: None,
                    min: None,
                    max: None,
                    jitter: None,
                    stddev: None,
                },
                updated: 0,
                step: r.step,
            });
        if *s.labels != *labels {
            // New labels are a new series: its counters start at zero.
            s.labels = Arc::from(labels);
            s.requests = 0;
            s.send_errors = 0;
            s.buckets.iter_mut().for_each(|b| *b = 0);
            s.count = 0;
            s.sum = 0.0;
            s.reply_ttl = None;
        }
        if r.reply_ttl.is_some() {
            s.reply_ttl = r.reply_ttl;
        }
        if *s.gauge_labels != *gauge_labels {
            s.gauge_labels = Arc::from(gauge_labels);
        }
        s.requests += r.rtts.len() as u64;
        s.send_errors += u64::from(r.send_errors);
        for rtt in r.rtts.iter().flatten() {
            let v = rtt.as_secs_f64();
            let i = self.buckets.partition_point(|b| *b < v);
            s.buckets[i] += 1;
            s.count += 1;
            s.sum += v;
        }
        let pings = r.summary.pings.max(1);
        s.before = (s.last.t != 0).then_some((
            s.last.t,
            super::RoundSpread {
                jitter: s.last.jitter,
                stddev: s.last.stddev,
            },
        ));
        s.last = LastRound {
            t: r.t,
            loss_ratio: r.summary.lost as f64 / pings as f64,
            median: r.summary.median(),
            min: r.summary.min(),
            max: r.summary.max(),
            jitter: crate::result::jitter(r.rtts),
            stddev: r.summary.stddev(),
        };
        s.updated = crate::clock::unix_s();
        s.step = r.step;
    }

    /// Counts `pings` sent and unanswered for `order` (an abandoned round),
    /// if it has series already.
    pub fn abandoned(&self, order: &Order, pings: u32) {
        let mut map = lock(&self.series);
        if let Some(s) = map.get_mut(&order.id) {
            s.requests += u64::from(pings);
            s.updated = crate::clock::unix_s();
        }
    }

    /// Number of orders with series.
    pub fn len(&self) -> usize {
        lock(&self.series).len()
    }

    /// True without any order's series.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes the per-order families to `out`, dropping the series of
    /// orders without a round for three steps (as of `now`, Unix s).
    pub fn render(&self, out: &mut Exposition, now: i64) {
        // A copy taken under the lock (labels are shared, not copied), so
        // rounds delivered meanwhile never wait for the formatting.
        let snapshot: Vec<OrderSeries> = {
            let mut map = lock(&self.series);
            map.retain(|_, s| now - s.updated <= 3 * i64::from(s.step));
            map.values().cloned().collect()
        };
        let mut all: Vec<&OrderSeries> = snapshot.iter().collect();
        all.sort_unstable_by(|a, b| a.labels.cmp(&b.labels));
        let bounds: Vec<String> = self.buckets.iter().map(|b| go_float(*b)).collect();

        out.family(
            "smokeping_requests",
            Kind::Counter,
            "Number of ping requests sent",
        );
        for s in &all {
            out.sample("smokeping_requests_total", &s.labels, "", s.requests as f64);
        }
        out.family(
            "smokeping_response_duration_seconds",
            Kind::Histogram,
            "A histogram of latencies for ping responses.",
        );
        for s in &all {
            let mut cumulative = 0;
            for (i, le) in bounds.iter().enumerate() {
                cumulative += s.buckets[i];
                out.bucket(
                    "smokeping_response_duration_seconds_bucket",
                    &s.labels,
                    le,
                    cumulative,
                );
            }
            out.bucket(
                "smokeping_response_duration_seconds_bucket",
                &s.labels,
                "+Inf",
                s.count,
            );
            out.sample(
                "smokeping_response_duration_seconds_sum",
                &s.labels,
                "",
                s.sum,
            );
            out.sample(
                "smokeping_response_duration_seconds_count",
                &s.labels,
                "",
                s.count as f64,
            );
        }
        out.family(
            "smokeping_response_ttl",
            Kind::Gauge,
            "The last response Time To Live (TTL).",
        );
        for s in &all {
            if let Some(ttl) = s.reply_ttl {
                out.sample("smokeping_response_ttl", &s.labels, "", f64::from(ttl));
            }
        }
        out.family(
            "smokeping_send_errors",
            Kind::Counter,
            "The number of errors when Pinger attempts to send packets.",
        );
        for s in &all {
            out.sample(
                "smokeping_send_errors_total",
                &s.labels,
                "",
                s.send_errors as f64,
            );
        }
        all.sort_unstable_by(|a, b| a.gauge_labels.cmp(&b.gauge_labels));
        type Get = fn(&LastRound) -> Option<f64>;
        let gauges: [(&str, &str, Get); 7] = [
            (
                "pingmachine_last_loss_ratio",
                "Share of the pings of the order's latest round that were lost (0 to 1).",
                |l| Some(l.loss_ratio),
            ),
            (
                "pingmachine_last_rtt_median_seconds",
                "Median RTT of the order's latest round (absent when every ping was lost).",
                |l| l.median,
            ),
            (
                "pingmachine_last_rtt_min_seconds",
                "Smallest RTT of the order's latest round.",
                |l| l.min,
            ),
            (
                "pingmachine_last_rtt_max_seconds",
                "Largest RTT of the order's latest round.",
                |l| l.max,
            ),
            (
                "pingmachine_last_rtt_jitter_seconds",
                "Jitter of the order's latest round: the mean absolute difference of the RTTs of consecutive pings both answered, in send order.",
                |l| l.jitter,
            ),
            (
                "pingmachine_last_rtt_stddev_seconds",
                "Standard deviation of the RTTs of the order's latest round.",
                |l| l.stddev,
            ),
            (
                "pingmachine_last_round_timestamp_seconds",
                "RRD time of the order's latest round (Unix seconds).",
                |l| Some(l.t as f64),
            ),
        ];
        for (name, help, get) in gauges {
            out.family(name, Kind::Gauge, help);
            for s in &all {
                if let Some(v) = get(&s.last) {
                    out.sample(name, &s.gauge_labels, "", v);
                }
            }
        }
    }
}

/// The label set of an order's smokeping_* series.
fn series_labels(r: &RoundReport<'_>) -> String {
    let ip = r.probed_ip().map(|ip| ip.to_string()).unwrap_or_default();
    let mut labels = vec![
        ("ip".to_owned(), ip),
        ("host".to_owned(), r.order.probe.label_host()),
        (
            "source".to_owned(),
            r.order
                .probe
                .source()
                .map(|s| s.to_string())
                .unwrap_or_default(),
        ),
        ("tos".to_owned(), r.order.probe.tos().to_string()),
        ("order".to_owned(), r.order.id.as_str().to_owned()),
        ("user".to_owned(), r.order.user.clone()),
        ("probe".to_owned(), r.order.probe.name().to_owned()),
    ];
    if let Some(meta) = &r.order.telegraf {
        for (name, key) in label_names(&meta.tags) {
            labels.push((name, meta.tags[key].clone()));
        }
    }
    render_labels(&labels)
}

fn gauge_labels(r: &RoundReport<'_>) -> String {
    render_labels(&[
        ("order".to_owned(), r.order.id.as_str().to_owned()),
        ("user".to_owned(), r.order.user.clone()),
        ("probe".to_owned(), r.order.probe.name().to_owned()),
    ])
}

/// Label names for an order's tags: characters other than `[A-Za-z0-9_]`
/// become `_`, a leading digit gets a `_` in front, a leading `__`
/// (reserved by Prometheus) becomes `tag__`, and a name equal to one of
/// [`RESERVED_LABELS`] becomes `tag_<name>`. When two tags end up with the
/// same name, the first in key order keeps it and the next get `_2`, `_3` …
/// Returns `(label name, tag key)` pairs in tag-key order.
pub fn label_names(tags: &BTreeMap<String, String>) -> Vec<(String, &str)> {
    let mut used: Vec<String> = RESERVED_LABELS.iter().map(|s| (*s).to_owned()).collect();
    let mut out = Vec::new();
    for key in tags.keys() {
        let mut name: String = key
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        if name.starts_with(|c: char| c.is_ascii_digit()) {
            name.insert(0, '_');
        }
        if name.starts_with("__") {
            name.insert_str(0, "tag");
        }
        if RESERVED_LABELS.contains(&name.as_str()) {
            name.insert_str(0, "tag_");
        }
        let mut unique = name.clone();
        let mut n = 2;
        while used.contains(&unique) {
            unique = format!("{name}_{n}");
            n += 1;
        }
        used.push(unique.clone());
        out.push((unique, key.as_str()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::{parse_order, OrderId};
    use crate::result::{RoundOutcome, Summary};
    use std::time::Duration;

    #[test]
    fn tag_names_are_sanitised_and_clashes_resolved() {
        let tags: BTreeMap<String, String> = [
            ("1st", "a"),
            ("a-b", "b"),
            ("a_b", "c"),
            ("host", "d"),
            ("__x", "e"),
            ("zürich", "f"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        let names: Vec<(String, &str)> = label_names(&tags);
        assert_eq!(
            names,
            vec![
                ("_1st".to_owned(), "1st"),
                ("tag__x".to_owned(), "__x"),
                ("a_b".to_owned(), "a-b"),
                ("a_b_2".to_owned(), "a_b"),
                ("tag_host".to_owned(), "host"),
                ("z_rich".to_owned(), "zürich"),
            ]
        );
    }

    fn report_for<'a>(
        order: &'a crate::order::Order,
        rtts: &'a [Option<Duration>],
        summary: &'a Summary,
        addr: &'a str,
    ) -> RoundReport<'a> {
        RoundReport {
            order,
            generation: 1,
            t: 1_700_000_000,
            step: 60,
            rtts,
            summary,
            addr,
            send_errors: 0,
            reply_ttl: Some(57),
        }
    }

    #[test]
    fn rounds_become_smokeping_series_and_gauges() {
        let id = OrderId::new("app/t1").unwrap();
        let order = parse_order(
            std::path::Path::new("x"),
            &id,
            b"user: tmon\nstep: 60\npings: 4\nprobe: fping\nmeasurement_name: m\ntags: {site: \"z\\\"rh\", host: h2}\nfping: {host: example.net, source_ip: 192.0.2.1}\n",
        )
        .unwrap()
        .order;
        let ms = |v| Some(Duration::from_micros(v));
        let rtts = vec![ms(70), None, ms(300), ms(30_000_000)];
        let summary = Summary::of(&RoundOutcome { rtts: rtts.clone() });
        let m = Metrics::new(DEFAULT_BUCKETS.to_vec());
        m.record(&report_for(&order, &rtts, &summary, "203.0.113.7"));
        m.record(&report_for(&order, &rtts, &summary, "203.0.113.7"));
        let mut e = Exposition::new(false);
        m.render(&mut e, crate::clock::unix_s());
        let text = e.finish();
        let labels = r#"ip="203.0.113.7",host="example.net",source="192.0.2.1",tos="0",order="app/t1",user="tmon",probe="fping",tag_host="h2",site="z\"rh""#;
        assert!(
            text.contains(&format!("smokeping_requests_total{{{labels}}} 8\n")),
            "{text}"
        );
        let bucket = |le: &str| {
            let key =
                format!("smokeping_response_duration_seconds_bucket{{{labels},le=\"{le}\"}} ");
            let line = text.lines().find(|l| l.starts_with(&key)).unwrap();
            line[key.len()..].parse::<u64>().unwrap()
        };
        assert_eq!(bucket("5e-05"), 0);
        assert_eq!(bucket("0.0001"), 2, "70 µs twice");
        assert_eq!(bucket("0.0004"), 4);
        assert_eq!(bucket("26.2144"), 4, "30 s is above every bound");
        assert_eq!(bucket("+Inf"), 6);
        assert!(text.contains(&format!(
            "smokeping_response_duration_seconds_count{{{labels}}} 6\n"
        )));
        // requests - count = lost, exactly.
        let g = r#"order="app/t1",user="tmon",probe="fping""#;
        assert!(
            text.contains(&format!("pingmachine_last_loss_ratio{{{g}}} 0.25\n")),
            "{text}"
        );
        assert!(text.contains(&format!(
            "pingmachine_last_rtt_median_seconds{{{g}}} 0.0003\n"
        )));
        assert!(text.contains(&format!(
            "pingmachine_last_round_timestamp_seconds{{{g}}} 1.7e+09\n"
        )));
        // Jitter: the one pair of answered neighbours, 300 µs and 30 s.
        assert!(
            text.contains(&format!(
                "pingmachine_last_rtt_jitter_seconds{{{g}}} 29.9997\n"
            )),
            "{text}"
        );
        assert!(text.contains(&format!("pingmachine_last_rtt_stddev_seconds{{{g}}} ")));
        assert!(text.contains("# TYPE smokeping_requests_total counter\n"));
        // The last reply's TTL, as smokeping_prober exports it.
        assert!(
            text.contains(&format!("smokeping_response_ttl{{{labels}}} 57\n")),
            "{text}"
        );
        // A round without a TTL (nothing answered) keeps the last one.
        let kept = Metrics::new(DEFAULT_BUCKETS.to_vec());
        kept.record(&report_for(&order, &rtts, &summary, "203.0.113.7"));
        let mut lost = report_for(&order, &rtts, &summary, "203.0.113.7");
        lost.reply_ttl = None;
        kept.record(&lost);
        let mut e = Exposition::new(false);
        kept.render(&mut e, crate::clock::unix_s());
        assert!(e
            .finish()
            .contains(&format!("smokeping_response_ttl{{{labels}}} 57\n")));

        // The latest round's spread, and the one before's, for the web page.
        let two = Metrics::new(DEFAULT_BUCKETS.to_vec());
        two.record(&report_for(&order, &rtts, &summary, "203.0.113.7"));
        let spread = two.round_spread(&order.id, 1_700_000_000).expect("kept");
        assert!(spread.jitter.is_some() && spread.stddev.is_some());
        let mut next = report_for(&order, &rtts, &summary, "203.0.113.7");
        next.t += 60;
        two.record(&next);
        for (t, which) in [
            (1_700_000_000, "the one before"),
            (1_700_000_060, "the latest"),
        ] {
            assert!(two.round_spread(&order.id, t).is_some(), "{which}");
        }
        assert_eq!(two.round_spread(&order.id, 1_699_999_940), None);

        // OpenMetrics: counter family without _total, and # EOF.
        let mut e = Exposition::new(true);
        m.render(&mut e, crate::clock::unix_s());
        let om = e.finish();
        assert!(om.contains("# TYPE smokeping_requests counter\n"));
        assert!(om.ends_with("# EOF\n"));

        // The tos label is the order's TOS byte.
        let id = OrderId::new("app/dscp").unwrap();
        let dscp = parse_order(
            std::path::Path::new("x"),
            &id,
            b"user: tmon\nstep: 60\npings: 4\nprobe: fping\nfping: {host: 192.0.2.9, tos: 184}\n",
        )
        .unwrap()
        .order;
        kept.record(&report_for(&dscp, &rtts, &summary, "192.0.2.9"));
        let mut e = Exposition::new(false);
        kept.render(&mut e, crate::clock::unix_s());
        let text = e.finish();
        assert!(
            text.contains(r#"smokeping_requests_total{ip="192.0.2.9",host="192.0.2.9",tos="184",order="app/dscp""#),
            "{text}"
        );

        // An abandoned round: its pings count as sent and unanswered.
        m.abandoned(&order, 4);
        let mut e = Exposition::new(false);
        m.render(&mut e, crate::clock::unix_s());
        let text = e.finish();
        assert!(
            text.contains(&format!("smokeping_requests_total{{{labels}}} 12\n")),
            "{text}"
        );
        assert!(text.contains(&format!(
            "smokeping_response_duration_seconds_count{{{labels}}} 6\n"
        )));

        // Three steps without a round: the series are gone.
        let mut e = Exposition::new(false);
        m.render(&mut e, crate::clock::unix_s() + 181);
        assert!(!e.finish().contains("app/t1"));
        assert!(m.is_empty());
    }

    #[test]
    fn new_labels_start_a_new_series() {
        let id = OrderId::new("t").unwrap();
        let order = parse_order(
            std::path::Path::new("x"),
            &id,
            b"user: u\nstep: 60\npings: 2\nprobe: fping\nfping: {host: example.net}\n",
        )
        .unwrap()
        .order;
        let rtts = vec![Some(Duration::from_millis(1)), None];
        let summary = Summary::of(&RoundOutcome { rtts: rtts.clone() });
        let m = Metrics::new(vec![0.01]);
        m.record(&report_for(&order, &rtts, &summary, "192.0.2.1"));
        m.record(&report_for(&order, &rtts, &summary, "192.0.2.2"));
        let mut e = Exposition::new(false);
        m.render(&mut e, crate::clock::unix_s());
        let text = e.finish();
        assert!(!text.contains("192.0.2.1"));
        assert!(text.contains(r#"smokeping_requests_total{ip="192.0.2.2",host="example.net",tos="0",order="t",user="u",probe="fping"} 2"#), "{text}");
    }
}
