//! `--remote-write` into a real Prometheus (`--web.enable-remote-write-receiver`)
//! and a real VictoriaMetrics (Debian's `victoria-metrics`), both started
//! here on loopback: the values are the daemon's (`last_result`), every
//! series the daemon says it sent is there and no other, and a receiver
//! that is down for a while loses nothing that fits the queue.

use std::process::Command;
use std::time::Duration;

use crate::support::store::{total, try_get, Receiver};
use crate::support::{can_ping, tool, wait_for, Base, Daemon};

#[test]
fn rounds_reach_prometheus_and_victoria_metrics_and_survive_an_outage() {
    let test = "rounds_reach_prometheus_and_victoria_metrics_and_survive_an_outage";
    let (Some(prom_bin), Some(vm_bin)) = (
        tool(test, "prometheus", "prometheus"),
        tool(test, "victoria-metrics", "victoria-metrics"),
    ) else {
        return;
    };
    if !can_ping(test) {
        return;
    }
    let prom = Receiver::prometheus(&prom_bin);
    let mut vm = Receiver::victoria(&vm_bin);
    let base = Base::new();
    base.write_order(
        "ok",
        "user: u\nstep: 10\npings: 4\nprobe: fping\nfping: {host: 127.0.0.1}\nmeasurement_name: m\ntags: {team: net}\n",
    );
    let refused = testkit::refused_addr();
    base.write_order(
        "down",
        &format!(
            "user: u\nstep: 10\npings: 2\nprobe: tcp\ntcp: {{host: 127.0.0.1, port: {}}}\n",
            refused.port()
        ),
    );
    let mut d = Daemon::start(
        &base,
        &[
            "--remote-write",
            &prom.write_url(),
            "--remote-write",
            &vm.write_url(),
            "--tag",
            "site=a",
        ],
    );
    // Two rounds of "ok", then VictoriaMetrics goes away for three steps.
    let first = wait_for(Duration::from_secs(60), || base.last_result("ok"))
        .unwrap_or_else(|| panic!("no round; log:\n{}", d.log_text()))
        .int("time");
    wait_for(Duration::from_secs(60), || {
        (base.last_result("ok")?.int("time") > first).then_some(())
    })
    .unwrap_or_else(|| panic!("no second round; log:\n{}", d.log_text()));
    vm.stop();
    std::thread::sleep(Duration::from_secs(30));
    vm.start();
    // Two more rounds after it is back, then the daemon stops (its queue
    // is sent first) and says what it sent.
    let back = base.last_result("ok").unwrap().int("time");
    wait_for(Duration::from_secs(60), || {
        (base.last_result("ok")?.int("time") >= back + 20).then_some(())
    })
    .unwrap_or_else(|| panic!("no rounds after the outage; log:\n{}", d.log_text()));
    let last = base.last_result("ok").unwrap();
    d.stop();
    let log = d.log_text();
    assert!(
        log.contains("remote write failing"),
        "the outage was noticed; log:\n{log}"
    );
    for r in [&prom, &vm] {
        let url = r.write_url();
        assert_eq!(total(&log, &url, "dropped"), 0, "{}: {log}", r.name);
        let sent = total(&log, &url, "sent");
        // Every series the daemon sent is there, once. (A store may make
        // what it acknowledged searchable a moment later: VictoriaMetrics
        // turns its buffered rows into searchable parts every second or
        // two. More than was sent never shows.)
        let count = || -> usize {
            r.query("{__name__=~\"pingmachine_round_.+\"}[1h]")
                .iter()
                .map(|s| s["values"].as_array().map_or(0, Vec::len))
                .sum()
        };
        let stored = wait_for(Duration::from_secs(30), || {
            let n = count();
            (n as u64 >= sent).then_some(n)
        })
        .unwrap_or_else(count);
        assert_eq!(
            stored as u64,
            sent,
            "{}: stored vs sent; log:\n{}",
            r.name,
            r.log()
        );
        // The latest round's values are the daemon's.
        let median = r.samples("pingmachine_round_rtt_median_seconds{order=\"ok\",site=\"a\",team=\"net\",user=\"u\",probe=\"fping\",ip=\"127.0.0.1\"}");
        let ok = &median["ok"];
        let (t, v) = *ok.last().unwrap();
        assert_eq!(t, last.int("time"), "{}: {ok:?}", r.name);
        let want = last.rtt("median").unwrap();
        assert!((v - want).abs() <= want * 1e-5, "{}: {v} vs {want}", r.name);
        let loss = r.samples("pingmachine_round_loss_ratio{order=\"down\"}");
        assert!(
            loss["down"].iter().all(|(_, v)| *v == 1.0),
            "{}: {loss:?}",
            r.name
        );
        assert!(
            r.samples("pingmachine_round_rtt_median_seconds{order=\"down\"}")
                .is_empty(),
            "{}: no RTT series for a round with every ping lost",
            r.name
        );
    }
    // No hole: VictoriaMetrics, down for three steps, has every round
    // Prometheus has, at the same times.
    let times = |r: &Receiver| -> Vec<i64> {
        r.samples("pingmachine_round_loss_ratio{order=\"ok\"}")["ok"]
            .iter()
            .map(|(t, _)| *t)
            .collect()
    };
    let (p, v) = (times(&prom), times(&vm));
    assert_eq!(p, v, "the rounds in Prometheus and in VictoriaMetrics");
    assert!(p.len() >= 5, "{p:?}");
    assert!(
        p.windows(2).all(|w| w[1] - w[0] == 10),
        "one round per step, none missing: {p:?}"
    );
}

#[test]
fn bad_remote_write_settings_are_clear_errors() {
    let base = Base::new();
    let run = |args: &[&str]| {
        let out = Command::new(crate::support::bin())
            .arg("--basedir")
            .arg(base.path())
            .arg("run")
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(&["--remote-write", "ftp://x/api/v1/write"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("--remote-write") && err.contains("http(s)://"),
        "{err}"
    );
    let (code, err) = run(&[
        "--remote-write",
        "http://127.0.0.1:1/api/v1/write",
        "--remote-write-user",
        "u",
        "--remote-write-password-file",
        "/nonexistent/pw",
    ]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("--remote-write-password-file /nonexistent/pw"),
        "{err}"
    );
    // A user needs a password file.
    let (code, err) = run(&["--remote-write-user", "u"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--remote-write-password-file"), "{err}");
}

/// The series of a text-format exposition: `name{labels}` (labels
/// sorted, `site` left out) → value.
fn exposition(text: &str) -> std::collections::BTreeMap<String, f64> {
    let mut out = std::collections::BTreeMap::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap();
        let v: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap(),
        };
        if v.is_nan() {
            continue;
        }
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (n, l.trim_end_matches('}')),
            None => (series, ""),
        };
        let mut pairs: Vec<String> = labels
            .split("\",")
            .map(|p| p.trim_end_matches('"').to_owned())
            .filter(|p| !p.is_empty() && !p.starts_with("site="))
            .map(|p| {
                let (k, v) = p.split_once("=\"").unwrap();
                format!("{k}={v}")
            })
            .collect();
        pairs.sort();
        out.insert(format!("{name}{{{}}}", pairs.join(",")), v);
    }
    out
}

/// Whether the store's `stored` is `sent`. VictoriaMetrics keeps a value
/// as a decimal of about 14 significant digits, so a sum of RTTs such as
/// 0.00021714200000000003 reads back as 0.000217142: equal to within
/// 1e-12 of the value, and exactly equal for counters.
fn stored_as(sent: f64, stored: f64) -> bool {
    sent == stored || (sent - stored).abs() <= 1e-12 * sent.abs().max(stored.abs())
}

#[test]
fn stored_values_compare_to_the_stores_precision() {
    // What VictoriaMetrics 1.79 answered for these values.
    assert!(stored_as(0.000_217_142_000_000_000_03, 0.000_217_142));
    assert!(stored_as(0.300_000_000_000_000_04, 0.3));
    assert!(stored_as(12.0, 12.0));
    assert!(!stored_as(0.000_217_142, 0.000_217_143));
    assert!(!stored_as(12.0, 13.0));
}

/// The same key for a series of the query API.
fn key_of(metric: &serde_json::Value) -> String {
    let m = metric.as_object().unwrap();
    let mut pairs: Vec<String> = m
        .iter()
        .filter(|(k, _)| *k != "__name__" && *k != "site")
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap()))
        .collect();
    pairs.sort();
    format!("{}{{{}}}", m["__name__"].as_str().unwrap(), pairs.join(","))
}

#[test]
fn full_series_push_what_metrics_shows() {
    let test = "full_series_push_what_metrics_shows";
    let Some(vm_bin) = tool(test, "victoria-metrics", "victoria-metrics") else {
        return;
    };
    if !can_ping(test) {
        return;
    }
    let vm = Receiver::victoria(&vm_bin);
    let base = Base::new();
    // One round every 30 s: between two rounds smokeping_* stand still.
    base.write_order(
        "once",
        "user: u\nstep: 30\npings: 3\nprobe: fping\nfping: {host: 127.0.0.1}\ntags: {team: net}\n",
    );
    let port = testkit::free_tcp_port();
    let listen = format!("127.0.0.1:{port}");
    let d = Daemon::start(
        &base,
        &[
            "--listen",
            &listen,
            "--remote-write",
            &vm.write_url(),
            "--remote-write-series",
            "full",
            "--remote-write-interval",
            "5",
            "--tag",
            "site=x",
        ],
    );
    wait_for(Duration::from_secs(150), || base.last_result("once"))
        .unwrap_or_else(|| panic!("no round; log:\n{}", d.log_text()));
    let addr: std::net::SocketAddr = listen.parse().unwrap();
    let metrics = || exposition(&try_get(addr, "/metrics").unwrap().1);
    // The store holds what /metrics shows: every series, and the same
    // values where they change only with rounds (smokeping_*), read while
    // no round ran.
    let mut last = String::new();
    let same = wait_for(Duration::from_secs(40), || {
        let before = metrics();
        let stored: std::collections::BTreeMap<String, f64> = vm
            .query("{site=\"x\",__name__!~\"pingmachine_round_(loss_ratio|rtt_.+)\"}")
            .iter()
            .map(|s| {
                (
                    key_of(&s["metric"]),
                    s["value"][1].as_str().unwrap().parse::<f64>().unwrap(),
                )
            })
            .collect();
        let after = metrics();
        let rounds = |m: &std::collections::BTreeMap<String, f64>| {
            m.iter()
                .filter(|(k, _)| k.starts_with("smokeping_"))
                .map(|(k, v)| (k.clone(), *v))
                .collect::<Vec<_>>()
        };
        let keys = |m: &std::collections::BTreeMap<String, f64>| {
            m.keys().cloned().collect::<std::collections::BTreeSet<_>>()
        };
        let ok = rounds(&before) == rounds(&after)
            && !rounds(&before).is_empty()
            && rounds(&before)
                .iter()
                .all(|(k, v)| stored.get(k).is_some_and(|s| stored_as(*v, *s)))
            && keys(&stored) == keys(&after);
        if !ok {
            let missing: Vec<_> = keys(&after).difference(&keys(&stored)).cloned().collect();
            let extra: Vec<_> = keys(&stored).difference(&keys(&after)).cloned().collect();
            let differ: Vec<_> = rounds(&before)
                .into_iter()
                .filter(|(k, v)| {
                    !stored.get(k).is_some_and(|s| stored_as(*v, *s)) || after.get(k) != Some(v)
                })
                .map(|(k, v)| {
                    format!(
                        "{k}: /metrics {v} then {:?}, store {:?}",
                        after.get(&k),
                        stored.get(&k)
                    )
                })
                .collect();
            last = format!(
                "missing in the store: {missing:?}\nonly in the store: {extra:?}\nvalues that differ: {differ:#?}"
            );
        }
        ok.then_some(())
    });
    assert!(same.is_some(), "{last}\nlog:\n{}", d.log_text());
    // The summary series come too, and the daemon counts what it sent.
    assert!(!vm
        .query("pingmachine_round_loss_ratio{order=\"once\",site=\"x\"}")
        .is_empty());
    let sent = metrics()
        .iter()
        .filter(|(k, _)| {
            k.starts_with("pingmachine_remote_write_series_total{") && k.contains("outcome=sent")
        })
        .map(|(_, v)| *v)
        .sum::<f64>();
    assert!(sent > 100.0, "full pushes count as sent: {sent}");
}
