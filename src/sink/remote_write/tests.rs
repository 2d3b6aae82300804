use super::*;
use crate::order::{parse_order, OrderId};
use crate::result::{RoundOutcome, Summary};

fn order(yaml: &str) -> crate::order::Order {
    parse_order(
        std::path::Path::new("x"),
        &OrderId::new("app/t1").unwrap(),
        yaml.as_bytes(),
    )
    .unwrap()
    .order
}

fn ms(v: u64) -> Option<Duration> {
    Some(Duration::from_millis(v))
}

#[test]
fn a_round_is_at_most_eight_series_with_the_orders_labels() {
    let o = order("user: tmon\nstep: 60\npings: 5\nprobe: fping\nfping: {host: 192.0.2.1}\nmeasurement_name: m\ntags: {site: order-site, 'bad key': x}\n");
    let rtts = [ms(10), None, ms(30), ms(20), ms(40)];
    let summary = Summary::of(&RoundOutcome {
        rtts: rtts.to_vec(),
    });
    let r = RoundReport {
        order: &o,
        generation: 1,
        t: 1_800_000_000,
        step: 60,
        rtts: &rtts,
        summary: &summary,
        addr: "192.0.2.1",
        send_errors: 0,
        reply_ttl: None,
    };
    let global: BTreeMap<String, String> =
        [("site".into(), "zrh".into()), ("host".into(), "vp1".into())].into();
    let series = round_series(&r, &global);
    assert_eq!(series.len(), 8);
    let value = |name: &str, q: Option<&str>| {
        series
            .iter()
            .find(|s| {
                s.labels
                    .iter()
                    .any(|l| l.name == "__name__" && l.value == name)
                    && q.is_none_or(|q| {
                        s.labels
                            .iter()
                            .any(|l| l.name == "quantile" && l.value == q)
                    })
            })
            .map(|s| s.samples[0].value)
    };
    assert_eq!(value("pingmachine_round_loss_ratio", None), Some(0.2));
    // The median as main.rrd and last_result have it: sorted[n/2].
    assert_eq!(
        value("pingmachine_round_rtt_median_seconds", None),
        Some(0.03)
    );
    assert_eq!(value("pingmachine_round_rtt_min_seconds", None), Some(0.01));
    assert_eq!(value("pingmachine_round_rtt_max_seconds", None), Some(0.04));
    // Consecutive answered pings: 10→(lost) 30→20→40: |20-30| and |40-20|.
    assert_eq!(
        value("pingmachine_round_rtt_jitter_seconds", None),
        crate::result::jitter(&rtts)
    );
    assert_eq!(
        value("pingmachine_round_rtt_quantile_seconds", Some("0.1")),
        Some(0.01)
    );
    assert_eq!(
        value("pingmachine_round_rtt_quantile_seconds", Some("0.9")),
        Some(0.04)
    );
    let s = &series[0];
    assert_eq!(s.samples[0].timestamp, 1_800_000_000_000);
    let labels: Vec<(&str, &str)> = s
        .labels
        .iter()
        .map(|l| (l.name.as_str(), l.value.as_str()))
        .collect();
    // Sorted by name; the order's tag wins over --tag; a --tag named like
    // a reserved label is renamed as order tags are.
    assert_eq!(
        labels,
        [
            ("__name__", "pingmachine_round_loss_ratio"),
            ("bad_key", "x"),
            ("host", "192.0.2.1"),
            ("ip", "192.0.2.1"),
            ("order", "app/t1"),
            ("probe", "fping"),
            ("site", "order-site"),
            ("tag_host", "vp1"),
            ("user", "tmon"),
        ]
    );
}

#[test]
fn a_round_with_every_ping_lost_is_its_loss_only() {
    let o = order("user: u\nstep: 60\npings: 2\nprobe: fping\nfping: {host: 192.0.2.1}\n");
    let rtts = [None, None];
    let summary = Summary::of(&RoundOutcome {
        rtts: rtts.to_vec(),
    });
    let r = RoundReport {
        order: &o,
        generation: 1,
        t: 60,
        step: 60,
        rtts: &rtts,
        summary: &summary,
        addr: "unresolved",
        send_errors: 0,
        reply_ttl: None,
    };
    let series = round_series(&r, &BTreeMap::new());
    assert_eq!(series.len(), 1);
    assert_eq!(series[0].samples[0].value, 1.0);
    assert!(series[0].labels.iter().all(|l| l.name != "ip"));
}

#[test]
fn quantiles_are_nearest_rank() {
    let v = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0];
    assert_eq!(quantile(&v, 0.1), Some(1.0));
    assert_eq!(quantile(&v, 0.9), Some(9.0));
    assert_eq!(quantile(&[5.0], 0.9), Some(5.0));
    assert_eq!(quantile(&[], 0.5), None);
}

#[test]
fn a_full_queue_drops_its_oldest_and_a_sent_batch_leaves_it() {
    let dest = Destination {
        url: "http://127.0.0.1:1/api/v1/write".into(),
        auth: Auth::None,
        ca: Vec::new(),
    };
    let out = Output::new(dest, 3);
    let s = |v: u8| Encoded::from(vec![v]);
    out.push(&[s(1), s(2)]);
    let (body, n, last) = out.batch().unwrap();
    assert_eq!((body, n), (vec![1, 2], 2));
    // While the batch is out, two more come and the oldest goes.
    out.push(&[s(3), s(4)]);
    assert_eq!(get(&out.dropped), 1);
    assert_eq!(out.take_through(last), 1, "what was left of the batch");
    let (body, n, _) = out.batch().unwrap();
    assert_eq!((body, n), (vec![3, 4], 2));
    assert_eq!(out.queue().bytes, 2);
}

#[test]
fn encoded_series_concatenated_are_a_write_request() {
    let o = order("user: u\nstep: 60\npings: 2\nprobe: fping\nfping: {host: 192.0.2.1}\n");
    let rtts = [ms(1), ms(2)];
    let summary = Summary::of(&RoundOutcome {
        rtts: rtts.to_vec(),
    });
    let r = RoundReport {
        order: &o,
        generation: 1,
        t: 60,
        step: 60,
        rtts: &rtts,
        summary: &summary,
        addr: "192.0.2.1",
        send_errors: 0,
        reply_ttl: None,
    };
    let series = round_series(&r, &BTreeMap::new());
    let raw: Vec<u8> = encode_all(&series)
        .iter()
        .flat_map(|e| e.to_vec())
        .collect();
    let back: WriteRequest = prost::Message::decode(raw.as_slice()).unwrap();
    assert_eq!(back.timeseries, series);
}
