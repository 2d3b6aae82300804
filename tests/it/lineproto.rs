//! Line-protocol output verified against a real InfluxDB (Debian's
//! `influxdb`, started by the test on loopback ports): UDP (`--telegraf`),
//! the HTTP write API (`--influx-url http://…/write?db=`), TCP (a test
//! collector standing in for Telegraf's socket listener), global tags,
//! old-interface sidecars, and an endpoint that is down and then comes up.
//! The probes are TCP connects to a local listener, so no root is needed.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::influx::{influxd, Influx};
use crate::support::{wait_for, Base, Daemon};
use serde_json::Value;
use testkit::TcpListenerServer;

fn tcp_order(port: u16, extra: &str) -> String {
    format!("user: test\nstep: 10\npings: 3\nprobe: tcp\ntcp:\n  host: 127.0.0.1\n  port: {port}\n{extra}")
}

/// `SELECT count(field) … GROUP BY *` → (tags, count) per series.
fn counts(
    influx: &Influx,
    db: &str,
    field: &str,
    measurement: &str,
) -> Vec<(serde_json::Map<String, Value>, u64)> {
    let text = influx.query(
        db,
        &format!("SELECT count(\"{field}\") FROM \"{measurement}\" GROUP BY *"),
    );
    let v: Value = serde_json::from_str(&text).unwrap();
    let mut out = Vec::new();
    for series in v["results"][0]["series"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let tags = series["tags"].as_object().cloned().unwrap_or_default();
        let n = series["values"][0][1].as_u64().unwrap_or(0);
        out.push((tags, n));
    }
    out
}

fn tag(t: &serde_json::Map<String, Value>, k: &str) -> String {
    t.get(k).and_then(Value::as_str).unwrap_or("").to_owned()
}

/// A TCP listener collecting received lines (a stand-in for Telegraf's
/// socket_listener).
fn collector() -> (u16, Arc<Mutex<Vec<String>>>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        // Bounded: a few connections, each read until EOF.
        for conn in l.incoming().take(8).flatten() {
            conn.set_read_timeout(Some(Duration::from_secs(120))).ok();
            for line in BufReader::new(conn).lines() {
                match line {
                    Ok(l) => sink.lock().unwrap().push(l),
                    Err(_) => break,
                }
            }
        }
    });
    (port, lines)
}

#[test]
fn timing_results_reach_influxdb_over_udp_http_and_tcp() {
    let Some(bin) = influxd("timing_results_reach_influxdb_over_udp_http_and_tcp") else {
        return;
    };
    let influx = Influx::start(&bin, 0, "pm_udp");
    influx.create_db("pm_http");
    let target = TcpListenerServer::start(None);
    let (tcp_port, collected) = collector();
    let base = Base::new();
    let p = target.addr().port();
    base.write_order(
        "lp/a",
        &tcp_order(
            p,
            "measurement_name: latency\ntags:\n  target: svc a\n  team: net\n",
        ),
    );
    base.write_order(
        "lp/b",
        &tcp_order(
            p,
            "measurement_name: latency\ntags:\n  target: svc,b\n  site: order-wins\n",
        ),
    );
    base.write_order("lp/none", &tcp_order(p, ""));
    // Old interface: md5-named order with a telegraf/ sidecar.
    let content = tcp_order(p, "");
    let id = crate::support::md5_hex(content.as_bytes());
    std::fs::create_dir_all(base.path().join("telegraf")).unwrap();
    std::fs::write(
        base.path().join("telegraf").join(&id),
        "measurement_name: tunnel\ntags:\n  tunnel_id: 12458\n",
    )
    .unwrap();
    base.write_order(&id, &content);
    // New interface with a sidecar, as the original reads it for any id;
    // and an order with both: the sidecar wins.
    std::fs::create_dir_all(base.path().join("telegraf/lp")).unwrap();
    std::fs::write(
        base.path().join("telegraf/lp/side"),
        "measurement_name: sidecar_new\ntags:\n  via: sidecar\n",
    )
    .unwrap();
    base.write_order("lp/side", &tcp_order(p, ""));
    std::fs::write(
        base.path().join("telegraf/lp/both"),
        "measurement_name: sidecar_wins\n",
    )
    .unwrap();
    base.write_order(
        "lp/both",
        &tcp_order(p, "measurement_name: inline_ignored\n"),
    );

    let d = Daemon::start(
        &base,
        &[
            "--telegraf",
            &format!("127.0.0.1:{}", influx.udp_port),
            "--influx-url",
            &format!("http://127.0.0.1:{}/write?db=pm_http", influx.http_port),
            "--influx-url",
            &format!("tcp://127.0.0.1:{tcp_port}"),
            "--tag",
            "site=zrh",
        ],
    );
    for db in ["pm_udp", "pm_http"] {
        let ok = wait_for(Duration::from_secs(60), || {
            let c = counts(&influx, db, "loss", "latency");
            (c.len() == 2 && c.iter().all(|(_, n)| *n >= 2)).then_some(c)
        });
        let c = ok.unwrap_or_else(|| {
            panic!(
                "{db}: two rounds of two series never arrived; log:\n{}",
                d.log_text()
            )
        });
        let mut targets: Vec<String> = c.iter().map(|(t, _)| tag(t, "target")).collect();
        targets.sort();
        assert_eq!(
            targets,
            ["svc a", "svc,b"],
            "{db}: tag values survive escaping"
        );
        for (t, _) in &c {
            if tag(t, "target") == "svc a" {
                assert_eq!(
                    (tag(t, "site"), tag(t, "team")),
                    ("zrh".into(), "net".into()),
                    "{db}: global tag added"
                );
            } else {
                assert_eq!(
                    tag(t, "site"),
                    "order-wins",
                    "{db}: the order's tag wins over --tag"
                );
            }
        }
        // Per round: one summary point and one individual_rtt point per answered ping.
        let loss = counts(&influx, db, "loss", "latency");
        let indiv = counts(&influx, db, "individual_rtt", "latency");
        for (t, n) in &loss {
            let m = indiv
                .iter()
                .find(|(ti, _)| ti == t)
                .map(|(_, m)| *m)
                .unwrap_or(0);
            assert!(
                m >= 3 * n.saturating_sub(1) && m <= 3 * (n + 1),
                "{db}: {n} rounds but {m} individual RTTs for {t:?}"
            );
        }
        for f in ["median_rtt", "min_rtt", "max_rtt"] {
            assert!(
                counts(&influx, db, f, "latency")
                    .iter()
                    .all(|(_, n)| *n >= 2),
                "{db}: field {f}"
            );
        }
        // The old interface's sidecar metadata is used.
        let tun = wait_for(Duration::from_secs(30), || {
            let c = counts(&influx, db, "loss", "tunnel");
            (!c.is_empty()).then_some(c)
        })
        .unwrap_or_else(|| panic!("{db}: no tunnel series"));
        assert_eq!(tag(&tun[0].0, "tunnel_id"), "12458");
        // So is a new-interface order's sidecar.
        let side = wait_for(Duration::from_secs(30), || {
            let c = counts(&influx, db, "loss", "sidecar_new");
            (!c.is_empty()).then_some(c)
        })
        .unwrap_or_else(|| panic!("{db}: no series from telegraf/lp/side"));
        assert_eq!(tag(&side[0].0, "via"), "sidecar");
        wait_for(Duration::from_secs(30), || {
            (!counts(&influx, db, "loss", "sidecar_wins").is_empty()).then_some(())
        })
        .unwrap_or_else(|| panic!("{db}: no series from telegraf/lp/both"));
        // An order without a measurement name sends nothing.
        let measurements = influx.query(db, "SHOW MEASUREMENTS");
        let v: Value = serde_json::from_str(&measurements).unwrap();
        let names: Vec<String> = v["results"][0]["series"][0]["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r[0].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            names,
            ["latency", "sidecar_new", "sidecar_wins", "tunnel"],
            "{db}: an order without a measurement sends nothing; a sidecar wins over the order's own"
        );
    }
    // The stored median equals last_result's for the same round.
    let r = base.last_result("lp/a").unwrap();
    let q = format!(
        "SELECT median_rtt, loss FROM latency WHERE target = 'svc a' AND time = {}s",
        r.int("time")
    );
    let found = wait_for(Duration::from_secs(15), || {
        let v: Value = serde_json::from_str(&influx.query("pm_http", &q)).unwrap();
        v["results"][0]["series"][0]["values"][0]
            .as_array()
            .cloned()
    })
    .expect("point at last_result's time");
    let median = found[1].as_f64().unwrap();
    let want = r.rtt("median").unwrap();
    assert!(
        (median - want).abs() <= want * 1e-5 + 1e-9,
        "influx {median} vs last_result {want}"
    );
    assert_eq!(found[2].as_f64(), Some(0.0));
    // TCP (socket listener) received the same kind of lines.
    let lines = collected.lock().unwrap().clone();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("latency,site=zrh,target=svc\\ a,team=net median_rtt=")),
        "{lines:?}"
    );
    assert!(lines.iter().any(|l| l.contains(" individual_rtt=")));
    assert!(!lines.iter().any(|l| l.contains("NaN")));
    // The sidecar's precedence is logged once for that order.
    assert_eq!(
        d.log_text()
            .lines()
            .filter(|l| l.contains("order=lp/both") && l.contains("the sidecar's are used"))
            .count(),
        1,
        "{}",
        d.log_text()
    );
}

#[test]
fn timing_endpoint_down_then_up_drops_oldest_and_resumes() {
    let Some(bin) = influxd("timing_endpoint_down_then_up_drops_oldest_and_resumes") else {
        return;
    };
    let port = testkit::free_tcp_port();
    let target = TcpListenerServer::start(None);
    let base = Base::new();
    for i in 0..5 {
        base.write_order(
            &format!("down/o{i}"),
            &tcp_order(
                target.addr().port(),
                &format!("measurement_name: lat\ntags: {{o: \"{i}\"}}\n"),
            ),
        );
    }
    // 5 orders x (1 + 3) lines per round = 20 lines a round; keep at most 25.
    let mut d = Daemon::start(
        &base,
        &[
            "--influx-url",
            &format!("http://127.0.0.1:{port}/write?db=pm_late"),
            "--influx-buffer",
            "25",
        ],
    );
    d.wait_log_line(
        &["line-protocol write failed; retrying"],
        Duration::from_secs(30),
    );
    // Two rounds while down: more than the buffer holds.
    let before = base
        .last_result("down/o0")
        .map(|r| r.int("time"))
        .unwrap_or(0);
    assert!(
        wait_for(Duration::from_secs(40), || base
            .last_result("down/o0")
            .filter(|r| r.int("time") >= before + 10))
        .is_some(),
        "{}",
        d.log_text()
    );
    let influx = Influx::start(&bin, port, "unused");
    influx.create_db("pm_late");
    d.wait_log_line(&["line-protocol output recovered"], Duration::from_secs(70));
    let arrived = wait_for(Duration::from_secs(30), || {
        let c = counts(&influx, "pm_late", "loss", "lat");
        (c.len() == 5).then_some(c)
    });
    assert!(
        arrived.is_some(),
        "writes did not resume; log:\n{}",
        d.log_text()
    );
    let st = d.stop();
    assert!(st.success());
    let totals = d
        .log_text()
        .lines()
        .find(|l| l.contains("line-protocol output totals"))
        .map(str::to_owned)
        .unwrap();
    let dropped: u64 = totals
        .split("dropped=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        dropped > 0,
        "the bounded buffer dropped the oldest lines: {totals}"
    );
}

/// The InfluxQL of a Grafana dashboard: every panel target's `query`
/// (several statements split at `;`) and every template variable's, with
/// the variables as "everything" (`$measurement` → `.*`), `$timeFilter`
/// as the last hour and `$__interval` as ten seconds.
fn influxql_queries(path: &std::path::Path) -> Vec<String> {
    let d: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let fill = |q: &str| {
        q.replace("$timeFilter", "time > now() - 1h")
            .replace("$__interval", "10s")
            .replace("$measurement", ".*")
    };
    let mut out = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().into_iter().flatten() {
            let q = t["query"].as_str().expect("a raw InfluxQL query");
            assert_eq!(t["rawQuery"], Value::Bool(true), "{q}");
            out.push(fill(q));
        }
    }
    for v in d["templating"]["list"].as_array().unwrap() {
        if v["type"] == "query" {
            out.push(fill(v["query"].as_str().unwrap()));
        }
    }
    out
}

/// The shipped Grafana dashboard for InfluxDB: against a real InfluxDB fed
/// by the daemon (an order that answers and one that loses every ping),
/// every panel query and template variable runs without an error and
/// returns data, names only fields the daemon writes, and the rounds'
/// medians come out in the loss class of their loss.
#[test]
fn shipped_influxdb_dashboard_queries_return_data() {
    let Some(bin) = influxd("shipped_influxdb_dashboard_queries_return_data") else {
        return;
    };
    let influx = Influx::start(&bin, 0, "pm_udp");
    influx.create_db("pingmachine");
    let target = TcpListenerServer::start(None);
    let closed = testkit::free_tcp_port();
    let base = Base::new();
    let tags = |t: &str| format!("measurement_name: latency\ntags:\n  target: {t}\n");
    base.write_order("ok", &tcp_order(target.addr().port(), &tags("ok")));
    base.write_order("dead", &tcp_order(closed, &tags("dead")));
    let _d = Daemon::start(
        &base,
        &[
            "--influx-url",
            &format!("http://127.0.0.1:{}/write?db=pingmachine", influx.http_port),
        ],
    );
    let fed = wait_for(Duration::from_secs(120), || {
        let c = counts(&influx, "pingmachine", "loss", "latency");
        let rounds = |t: &str| {
            c.iter()
                .find(|(tags, _)| tag(tags, "target") == t)
                .map_or(0, |(_, n)| *n)
        };
        (rounds("ok") >= 2 && rounds("dead") >= 2).then_some(())
    });
    assert!(fed.is_some(), "two rounds of each order in InfluxDB");

    let fields: Vec<String> = {
        let v: Value =
            serde_json::from_str(&influx.query("pingmachine", "SHOW FIELD KEYS FROM \"latency\""))
                .unwrap();
        v["results"][0]["series"][0]["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r[0].as_str().unwrap().to_owned())
            .collect()
    };
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("packaging/grafana/pingmachine-influxdb.json");
    let queries = influxql_queries(&path);
    assert!(queries.len() >= 5, "{queries:?}");
    for q in &queries {
        for (i, part) in q.split("\"").enumerate() {
            // Every quoted identifier after a function's "(" is a field.
            if i % 2 == 1 && q.contains(&format!("(\"{part}\"")) {
                assert!(
                    fields.contains(&part.to_owned()),
                    "{part} in {q}; the daemon writes {fields:?}"
                );
            }
        }
        let v: Value = serde_json::from_str(&influx.query("pingmachine", q)).unwrap();
        let results = v["results"].as_array().unwrap();
        assert_eq!(results.len(), q.split("; ").count(), "{q}: {v}");
        for r in results {
            assert!(r.get("error").is_none(), "{q}: {r}");
        }
        assert!(
            results
                .iter()
                .any(|r| r["series"].as_array().is_some_and(|s| !s.is_empty())),
            "the dashboard's query returns nothing: {q}"
        );
    }

    // The rounds' medians by loss: the answering order's in class "0", the
    // other's nowhere (no median without a reply).
    let median = queries
        .iter()
        .find(|q| q.contains("median, loss 0"))
        .expect("the median-by-loss query");
    let v: Value = serde_json::from_str(&influx.query("pingmachine", median)).unwrap();
    let mut classes = Vec::new();
    for r in v["results"].as_array().unwrap() {
        for s in r["series"].as_array().into_iter().flatten() {
            classes.push((
                s["columns"][1].as_str().unwrap().to_owned(),
                tag(s["tags"].as_object().unwrap(), "target"),
            ));
        }
    }
    assert_eq!(
        classes,
        [("median, loss 0".to_owned(), "ok".to_owned())],
        "{v}"
    );
}
