//! InfluxDB line protocol, as pure functions (the original's format): escaping, the lines
//! of one round, and packing lines into datagrams.
//!
//! Per round and order with a measurement name: one line with `median_rtt`,
//! `min_rtt`, `max_rtt` (seconds, omitted without replies) and `loss`
//! (percent) at the round's RRD time, then `jitter_rtt` and `stddev_rtt`
//! (seconds, [`crate::result::jitter`] and the standard deviation, omitted
//! when a round has too few answers; not in the original's lines, which
//! are otherwise unchanged), and one `individual_rtt` line per
//! answered ping at `time + step*i/pings` (i = the ping's index in send
//! order). Timestamps in nanoseconds; all fields are floats.
//!
//! The encoder is written here rather than with `influxdb-line-protocol`'s
//! `LineProtocolBuilder`: the builder escapes `\` as `\\` in measurement
//! names and tags, which InfluxDB 1.x (checked with influxd 1.6) stores as
//! two backslashes, so every series whose name or tags hold a backslash
//! would get a new key, unlike the original's. Everywhere else the two
//! agree byte for byte, which a test checks with the builder as the
//! reference (ARCHITECTURE.md, "Line protocol").

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::order::TelegrafMeta;

fn escape(out: &mut String, s: &str, specials: &[char]) {
    for c in s.chars() {
        if c == '\n' || c == '\r' || c == '\t' {
            // Line protocol has no escape for line breaks.
            out.push(' ');
            continue;
        }
        if specials.contains(&c) {
            out.push('\\');
        }
        out.push(c);
    }
}

/// The series key `measurement,tag=value,...` (tags sorted by key; tags
/// with an empty key or value are left out, as line protocol has no way to
/// write them). Order tags win over the tag `ip` (the probed address, with
/// `--influx-ip-tag`), which wins over `global` tags of the same key.
/// `None` without a measurement name.
pub fn series_key(
    meta: Option<&TelegrafMeta>,
    global: &BTreeMap<String, String>,
    ip: Option<&str>,
) -> Option<String> {
    let meta = meta?;
    let name = meta.measurement_name.as_deref().filter(|n| !n.is_empty())?;
    let mut tags: BTreeMap<&str, &str> = global
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    if let Some(ip) = ip {
        tags.insert("ip", ip);
    }
    for (k, v) in &meta.tags {
        tags.insert(k, v);
    }
    let mut out = String::with_capacity(64);
    escape(&mut out, name, &[',', ' ']);
    for (k, v) in tags {
        if k.is_empty() || v.is_empty() {
            continue;
        }
        out.push(',');
        escape(&mut out, k, &[',', '=', ' ']);
        out.push('=');
        escape(&mut out, v, &[',', '=', ' ']);
    }
    Some(out)
}

/// A float field value: finite values only (never NaN or inf).
fn float(out: &mut String, v: f64) {
    // Rust prints the shortest representation that reads back exactly.
    let _ = write!(out, "{v}");
}

/// The lines of one round (see the module docs). `rtts` are in send order.
pub fn round_lines(series: &str, t: i64, step: u32, rtts: &[Option<Duration>]) -> Vec<String> {
    let pings = rtts.len();
    let mut sorted: Vec<f64> = rtts.iter().flatten().map(Duration::as_secs_f64).collect();
    sorted.sort_by(f64::total_cmp);
    let lost = pings - sorted.len();
    let t_ns = i128::from(t) * 1_000_000_000;
    let mut lines = Vec::with_capacity(1 + sorted.len());

    let mut line = String::with_capacity(series.len() + 96);
    line.push_str(series);
    line.push(' ');
    if let (Some(median), Some(min), Some(max)) =
        (sorted.get(sorted.len() / 2), sorted.first(), sorted.last())
    {
        line.push_str("median_rtt=");
        float(&mut line, *median);
        line.push_str(",min_rtt=");
        float(&mut line, *min);
        line.push_str(",max_rtt=");
        float(&mut line, *max);
        line.push(',');
    }
    line.push_str("loss=");
    let loss_pct = if pings == 0 {
        0.0
    } else {
        lost as f64 * 100.0 / pings as f64
    };
    float(&mut line, loss_pct);
    if let Some(j) = crate::result::jitter(rtts) {
        line.push_str(",jitter_rtt=");
        float(&mut line, j);
    }
    let summary = crate::result::Summary {
        pings,
        lost,
        sorted,
    };
    if let Some(sd) = summary.stddev() {
        line.push_str(",stddev_rtt=");
        float(&mut line, sd);
    }

    let _ = write!(line, " {t_ns}");
    lines.push(line);

    let step_ns = i128::from(step) * 1_000_000_000;
    for (i, rtt) in rtts.iter().enumerate() {
        let Some(rtt) = rtt else { continue };
        let ts = t_ns + step_ns * i as i128 / pings as i128;
        let mut l = String::with_capacity(series.len() + 48);
        l.push_str(series);
        l.push_str(" individual_rtt=");
        float(&mut l, rtt.as_secs_f64());
        let _ = write!(l, " {ts}");
        lines.push(l);
    }
    lines
}

/// Packs lines into datagrams of at most `max` bytes (newline-separated).
/// A single line longer than `max` gets a datagram of its own.
pub fn pack(lines: &[String], max: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut cur: Vec<u8> = Vec::with_capacity(max);
    for l in lines {
        let need = l.len() + 1;
        if !cur.is_empty() && cur.len() + need > max {
            out.push(std::mem::take(&mut cur));
        }
        cur.extend_from_slice(l.as_bytes());
        cur.push(b'\n');
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use influxdb_line_protocol::{parse_lines, FieldValue};

    fn meta(name: &str, tags: &[(&str, &str)]) -> TelegrafMeta {
        TelegrafMeta {
            measurement_name: Some(name.into()),
            tags: tags
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
        }
    }

    fn ms(v: u64) -> Option<Duration> {
        Some(Duration::from_millis(v))
    }

    #[test]
    fn series_keys_escape_and_sort() {
        let none = BTreeMap::new();
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
        let cases: &[Case] = &[
            (
                "tunnel",
                &[("tunnel_id", "12458"), ("interface", "eth2")],
                "tunnel,interface=eth2,tunnel_id=12458",
            ),
            ("my meas,x", &[], "my\\ meas\\,x"),
            (
                "m",
                &[("a key", "a value"), ("k=1", "v,2")],
                "m,a\\ key=a\\ value,k\\=1=v\\,2",
            ),
            (
                "m",
                &[("quote", "say \"hi\""), ("uni", "Zürich ✓")],
                "m,quote=say\\ \"hi\",uni=Zürich\\ ✓",
            ),
            ("m=eq", &[("empty", "")], "m=eq"),
        ];
        for (name, tags, want) in cases {
            assert_eq!(
                series_key(Some(&meta(name, tags)), &none, None).unwrap(),
                *want
            );
        }
        assert_eq!(series_key(None, &none, None), None);
        assert_eq!(
            series_key(Some(&TelegrafMeta::default()), &none, None),
            None,
            "no measurement: nothing sent"
        );
        let global: BTreeMap<String, String> =
            [("site".into(), "zrh".into()), ("a".into(), "global".into())].into();
        assert_eq!(
            series_key(Some(&meta("m", &[("a", "order")])), &global, None).unwrap(),
            "m,a=order,site=zrh",
            "order tags win over global tags"
        );
        // --influx-ip-tag: between the two; an order's own `ip` wins.
        let global: BTreeMap<String, String> = [
            ("site".into(), "zrh".into()),
            ("ip".into(), "global".into()),
        ]
        .into();
        assert_eq!(
            series_key(
                Some(&meta("m", &[("a", "x")])),
                &global,
                Some("2001:db8::1")
            )
            .unwrap(),
            "m,a=x,ip=2001:db8::1,site=zrh"
        );
        assert_eq!(
            series_key(
                Some(&meta("m", &[("ip", "mine")])),
                &global,
                Some("192.0.2.1")
            )
            .unwrap(),
            "m,ip=mine,site=zrh"
        );
    }

    #[test]
    fn round_lines_match_the_original() {
        let lines = round_lines(
            "tunnel,id=1",
            1_310_116_500,
            20,
            &[ms(3), None, ms(1), ms(2)],
        );
        assert_eq!(
            lines,
            vec![
                // The original's fields, then the jitter of the one pair of
                // answered neighbours (1 ms, 2 ms) and the standard
                // deviation of the three answers.
                "tunnel,id=1 median_rtt=0.002,min_rtt=0.001,max_rtt=0.003,loss=25,jitter_rtt=0.001,stddev_rtt=0.000816496580927726 1310116500000000000",
                "tunnel,id=1 individual_rtt=0.003 1310116500000000000",
                "tunnel,id=1 individual_rtt=0.001 1310116510000000000",
                "tunnel,id=1 individual_rtt=0.002 1310116515000000000",
            ]
        );
        // No reply: RTT fields omitted (never NaN), loss 100.
        assert_eq!(
            round_lines("m", 60, 60, &[None, None]),
            vec!["m loss=100 60000000000"]
        );
        // One reply: no pair and no spread, so neither field.
        assert_eq!(
            round_lines("m", 60, 60, &[ms(4), None])[0],
            "m median_rtt=0.004,min_rtt=0.004,max_rtt=0.004,loss=50 60000000000"
        );
        // step*i/pings with a remainder: integer nanoseconds.
        let l = round_lines("m", 0, 10, &[ms(1), ms(1), ms(1)]);
        assert!(
            l[2].ends_with(" 3333333333") && l[3].ends_with(" 6666666666"),
            "{l:?}"
        );
    }

    #[test]
    fn output_parses_back_with_the_reference_parser() {
        let g = BTreeMap::new();
        let series = series_key(
            Some(&meta(
                "lat ency,1",
                &[("t a=g", "v,a l\"u=e"), ("zürich", "✓")],
            )),
            &g,
            None,
        )
        .unwrap();
        let lines = round_lines(
            &series,
            1_700_000_000,
            60,
            &[ms(12), None, Some(Duration::from_nanos(1500))],
        );
        let text = lines.join("\n");
        let parsed: Vec<_> = parse_lines(&text)
            .collect::<Result<_, _>>()
            .expect("reference parser accepts our lines");
        assert_eq!(parsed.len(), 3);
        let first = &parsed[0];
        assert_eq!(first.series.measurement.as_str(), "lat ency,1");
        let tags: Vec<(String, String)> = first
            .series
            .tag_set
            .as_ref()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(
            tags,
            vec![
                ("t a=g".into(), "v,a l\"u=e".into()),
                ("zürich".into(), "✓".into())
            ]
        );
        let fields: Vec<(String, f64)> = first
            .field_set
            .iter()
            .map(|(k, v)| match v {
                FieldValue::F64(f) => (k.to_string(), *f),
                other => panic!("{k} is not a float: {other:?}"),
            })
            .collect();
        assert_eq!(fields[0], ("median_rtt".into(), 0.012));
        assert_eq!(fields[1], ("min_rtt".into(), 0.0000015));
        assert!((fields[3].1 - 100.0 / 3.0).abs() < 1e-9, "{fields:?}");
        assert_eq!(first.timestamp, Some(1_700_000_000_000_000_000));
        assert_eq!(parsed[2].timestamp, Some(1_700_000_040_000_000_000));
    }

    /// The builder of `influxdb-line-protocol` is the reference encoder:
    /// for every name and tag without a backslash our lines are the same
    /// bytes. With a backslash the builder writes `\\` (InfluxDB 1.x would
    /// store both), we write it as the original did.
    #[test]
    fn lines_match_the_reference_builder_except_for_backslashes() {
        use influxdb_line_protocol::LineProtocolBuilder;
        let texts = [
            "plain",
            "a b",
            "a,b",
            "a=b",
            "say \"hi\"",
            "Zürich ✓",
            " lead",
            "trail ",
            "=,= ,",
            "#comment",
            "ends,",
            "x=",
        ];
        let none = BTreeMap::new();
        let reference = |name: &str, tags: &[(&str, &str)], v: f64, ts: i64| {
            let mut sorted = tags.to_vec();
            sorted.sort();
            let mut b = LineProtocolBuilder::new().measurement(name);
            for (k, val) in sorted {
                b = b.tag(k, val);
            }
            let bytes = b
                .field("individual_rtt", v)
                .timestamp(ts)
                .close_line()
                .build();
            String::from_utf8(bytes).unwrap().trim_end().to_owned()
        };
        for name in texts {
            for value in texts {
                let tags = [("k", value), (value, "v")];
                let series = series_key(Some(&meta(name, &tags)), &none, None).unwrap();
                let ours = round_lines(&series, 1, 10, &[ms(2)]);
                assert_eq!(
                    ours[1],
                    reference(name, &tags, 0.002, 1_000_000_000),
                    "name {name:?}, tag {value:?}"
                );
            }
        }
        let series = series_key(Some(&meta("m", &[("path", "C:\\x")])), &none, None).unwrap();
        let ours = &round_lines(&series, 1, 10, &[ms(2)])[1];
        let theirs = reference("m", &[("path", "C:\\x")], 0.002, 1_000_000_000);
        assert_eq!(ours, "m,path=C:\\x individual_rtt=0.002 1000000000");
        assert_eq!(theirs, "m,path=C:\\\\x individual_rtt=0.002 1000000000");
    }

    #[test]
    fn datagrams_stay_below_the_limit() {
        let lines: Vec<String> = (0..100)
            .map(|i| format!("m,i={i} individual_rtt=0.001 {i}"))
            .collect();
        let grams = pack(&lines, 1400);
        assert!(grams.len() > 1);
        assert!(grams.iter().all(|g| g.len() <= 1400));
        let joined: Vec<u8> = grams.concat();
        assert_eq!(String::from_utf8(joined).unwrap().lines().count(), 100);
        let big = vec!["x".repeat(2000), "y".into()];
        assert_eq!(pack(&big, 1400).len(), 2);
        assert!(pack(&[], 1400).is_empty());
    }
}
