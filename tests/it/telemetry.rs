//! The daemon's own telemetry is a contract: scripts read `.stats.json` by
//! its keys, and dashboards and alerts use the series of `/metrics` by
//! name, type and labels. Both are compared with the lists kept in
//! `tests/fixtures/telemetry/`; a key or series that disappears or changes
//! fails here. A series added on purpose is added to the list.
//!
//! Every optional part is on: `--listen`, `--rrdcached` (a real rrdcached),
//! a line-protocol destination, and a probed order.

use std::collections::BTreeSet;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;

use testkit::TcpListenerServer;

use crate::metrics::get;
use crate::rrdcached::Cached;
use crate::support::{wait_for, Base, Daemon, EVENTUALLY};

fn fixture(name: &str) -> BTreeSet<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/telemetry")
        .join(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

/// Key paths of a JSON document: `a.b`, and `list[].key` for the objects
/// of a list.
fn json_keys(v: &serde_json::Value, path: &str, out: &mut BTreeSet<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                json_keys(x, &p, out);
            }
        }
        serde_json::Value::Array(items) if items.first().is_some_and(|i| i.is_object()) => {
            for i in items {
                json_keys(i, &format!("{path}[]"), out);
            }
        }
        _ => {
            out.insert(path.to_owned());
        }
    }
}

/// `sample_name type label,names` for every sample of an exposition (`-`
/// for no labels).
fn metric_series(text: &str) -> BTreeSet<String> {
    let mut kind = String::new();
    let mut out = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            kind = rest.split_whitespace().nth(1).unwrap_or("").to_owned();
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let end = line.find(['{', ' ']).unwrap_or(line.len());
        let name = &line[..end];
        let mut labels: Vec<&str> = Vec::new();
        if line[end..].starts_with('{') {
            let body = &line[end + 1..line.rfind('}').unwrap()];
            // Label values here hold no `="`.
            for part in body.split("\",") {
                if let Some((k, _)) = part.split_once("=\"") {
                    labels.push(k);
                }
            }
        }
        labels.sort_unstable();
        let labels = if labels.is_empty() {
            "-".to_owned()
        } else {
            labels.join(",")
        };
        out.insert(format!("{name} {kind} {labels}"));
    }
    out
}

fn diff(what: &str, expected: &BTreeSet<String>, got: &BTreeSet<String>) {
    let missing: Vec<_> = expected.difference(got).collect();
    let extra: Vec<_> = got.difference(expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what} differ from the list in tests/fixtures/telemetry:\n  missing: {missing:?}\n  not in the list: {extra:?}"
    );
}

#[test]
fn stats_json_keys_and_metrics_series_are_kept() {
    let Some(cached) = Cached::start("stats_json_keys_and_metrics_series_are_kept") else {
        return;
    };
    let base = Base::new();
    let open = TcpListenerServer::start(None);
    let telegraf = UdpSocket::bind("127.0.0.1:0").unwrap();
    base.write_order(
        "a",
        &format!(
            "user: u\nstep: 10\npings: 2\nprobe: tcp\ntcp: {{host: 127.0.0.1, port: {}}}\n",
            open.addr().port()
        ),
    );
    // An ICMP order: its replies' TTL is a series of its own.
    let icmp = crate::support::can_ping("stats_json_keys_and_metrics_series_are_kept");
    if icmp {
        base.write_order(
            "b",
            "user: u\nstep: 10\npings: 2\nprobe: fping\nfping: {host: 127.0.0.1}\n",
        );
    }
    let port = testkit::free_tcp_port();
    let mut daemon = Daemon::start(
        &base,
        &[
            "--listen",
            &port.to_string(),
            "--rrdcached",
            &cached.addr(),
            "--telegraf",
            &telegraf.local_addr().unwrap().to_string(),
            "--stats-interval",
            "1",
        ],
    );
    let stats_file = base.path().join(".stats.json");
    let stats: serde_json::Value = wait_for(EVENTUALLY, || {
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&stats_file).ok()?).ok()?;
        (v["rounds"].as_u64()? >= if icmp { 2 } else { 1 }).then_some(v)
    })
    .unwrap_or_else(|| panic!("no round in .stats.json; log:\n{}", daemon.log_text()));
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let (status, _, text) = get(addr, "/metrics", None);
    assert_eq!(status, 200);

    let mut keys = BTreeSet::new();
    json_keys(&stats, "", &mut keys);
    diff(".stats.json keys", &fixture("stats-json-keys.txt"), &keys);
    let mut expected = fixture("metrics-series.txt");
    if !icmp {
        expected.retain(|s| !s.starts_with("smokeping_response_ttl "));
    }
    diff("/metrics series", &expected, &metric_series(&text));
    assert!(daemon.stop().success());
}
