//! `--listen`: `/metrics` read by `promtool` and by a real Prometheus
//! (Debian's `prometheus` package) scraping the daemon, `/-/healthy`,
//! `/-/ready`, and the start-up errors of bad settings.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{bin, can_ping, tool, wait_for, Base, Daemon};
use testkit::impair::{HostCfg, Mode, Sim, SimConfig};
use testkit::{HttpServer, TcpListenerServer};

/// A GET: status, content type and body.
pub(crate) fn get(addr: SocketAddr, path: &str, accept: Option<&str>) -> (u16, String, String) {
    crate::support::http_get(addr, path, accept)
}

/// Samples of `name` by their `order` label.
fn by_order(text: &str, name: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let Some(rest) = rest.strip_prefix('{') else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let Some(order) = labels
            .split(',')
            .find_map(|l| l.strip_prefix("order=\""))
            .and_then(|o| o.strip_suffix('"'))
        else {
            continue;
        };
        out.insert(order.to_owned(), value.parse().unwrap());
    }
    out
}

fn promtool_check(test: &str, text: &str) {
    let Some(promtool) = tool(test, "promtool", "prometheus") else {
        return;
    };
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn metrics_export_every_probe_and_pass_promtool() {
    let base = Base::new();
    let open = TcpListenerServer::start(None);
    let closed = testkit::free_tcp_port();
    let http = HttpServer::start(false);
    let mut expected = vec!["tcp-open", "tcp-closed", "http"];
    base.write_order(
        "tcp-open",
        &format!(
            "user: u\nstep: 10\npings: 3\nprobe: tcp\nmeasurement_name: m\ntags: {{site: zrh, 'bad key': x, host: h}}\ntcp: {{host: 127.0.0.1, port: {}}}\n",
            open.addr().port()
        ),
    );
    base.write_order(
        "tcp-closed",
        &format!(
            "user: u\nstep: 10\npings: 3\nprobe: tcp\ntcp: {{host: 127.0.0.1, port: {closed}}}\n"
        ),
    );
    base.write_order(
        "http",
        &format!(
            "user: web\nstep: 10\npings: 2\nprobe: httping\nhttping: {{url: '{}'}}\n",
            http.url("/")
        ),
    );
    if can_ping("metrics_export_every_probe_and_pass_promtool (fping part)") {
        base.write_order(
            "icmp",
            "user: u\nstep: 10\npings: 3\nprobe: fping\nfping: {host: 127.0.0.1}\n",
        );
        expected.push("icmp");
    }
    let port = testkit::free_tcp_port();
    let daemon = Daemon::start(&base, &["--listen", &port.to_string()]);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();

    assert_eq!(get(addr, "/-/healthy", None).0, 200);
    assert_eq!(
        get(addr, "/-/ready", None).0,
        200,
        "ready after the first scan"
    );
    for junk in [
        "/nope",
        "/metrics/../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/api/v1/orders/..%2f..%2fx",
    ] {
        let (status, _, body) = get(addr, junk, None);
        assert_eq!(status, 404, "{junk}");
        assert!(!body.contains("root:"), "{junk}: {body}");
    }

    // Every order has at least one round in the series.
    let text = wait_for(Duration::from_secs(60), || {
        let (_, _, body) = get(addr, "/metrics", None);
        let req = by_order(&body, "smokeping_requests_total");
        expected
            .iter()
            .all(|o| req.get(*o).is_some_and(|v| *v > 0.0))
            .then_some(body)
    })
    .unwrap_or_else(|| panic!("not every order in /metrics; log:\n{}", daemon.log_text()));
    let (_, content_type, _) = get(addr, "/metrics", None);
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");

    let requests = by_order(&text, "smokeping_requests_total");
    let count = by_order(&text, "smokeping_response_duration_seconds_count");
    let loss = by_order(&text, "pingmachine_last_loss_ratio");
    for o in &expected {
        let pings = if *o == "http" { 2.0 } else { 3.0 };
        assert_eq!(requests[*o] % pings, 0.0, "{o}: whole rounds only: {text}");
        if *o == "tcp-closed" {
            assert_eq!(count[*o], 0.0, "{o}: nothing answers");
            assert_eq!(loss[*o], 1.0);
        } else {
            assert_eq!(count[*o], requests[*o], "{o}: requests - count = lost = 0");
            assert_eq!(loss[*o], 0.0);
        }
    }
    // Labels as smokeping_prober sets them, plus order, user, probe and the
    // order's tags, renamed where they clash or are not label names.
    assert!(
        text.contains(&format!(
            "smokeping_requests_total{{ip=\"127.0.0.1\",host=\"127.0.0.1\",tos=\"0\",order=\"tcp-open\",user=\"u\",probe=\"tcp\",bad_key=\"x\",tag_host=\"h\",site=\"zrh\"}} {}",
            requests["tcp-open"]
        )),
        "{text}"
    );
    assert!(text.contains("probe=\"httping\""));
    for family in [
        "pingmachine_build_info{version=",
        "pingmachine_orders{state=\"active\"} ",
        "pingmachine_rounds_total ",
        "pingmachine_round_start_lateness_seconds_bucket{le=\"+Inf\"} ",
        "pingmachine_icmp_timestamp_fallbacks_total{direction=\"transmit\"} ",
        "pingmachine_writer_queue_high_water ",
        "pingmachine_store_waiting_rounds ",
        "pingmachine_last_result_superseded_total ",
        "pingmachine_rrd_updates_dropped_total ",
        "pingmachine_icmp_receive_buffer_drops_total ",
        "pingmachine_rescans_total ",
        "process_resident_memory_bytes ",
        "process_open_fds ",
    ] {
        assert!(text.contains(family), "{family} missing:\n{text}");
    }
    assert_eq!(
        by_order(&text, "pingmachine_last_round_timestamp_seconds").len(),
        expected.len()
    );
    promtool_check(
        "metrics_export_every_probe_and_pass_promtool (promtool lint)",
        &text,
    );

    let (status, content_type, om) = get(
        addr,
        "/metrics",
        Some("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"),
    );
    assert_eq!(status, 200);
    assert_eq!(
        content_type,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(om.contains("# TYPE smokeping_requests counter\n"), "{om}");
    assert!(om.contains("# TYPE pingmachine_build info\n"));
    assert!(om.ends_with("# EOF\n"));
    drop(daemon);
}

#[test]
fn bad_listen_settings_are_clear_errors() {
    let base = Base::new();
    let run = |args: &[&str]| {
        let out = Command::new(bin())
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
    let (code, err) = run(&["--listen", "127.0.0.1"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--listen") && err.contains("IP address"),
        "{err}"
    );
    let (code, err) = run(&["--listen", "0"]);
    assert_eq!(code, Some(2), "{err}");
    let (code, err) = run(&["--metrics-buckets", "0.1,0.05"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("strictly increasing"), "{err}");
    let (code, err) = run(&["--metrics-buckets", "0.1,abc"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("\"abc\" is not a number"), "{err}");
    // A port in use: the daemon does not start, and says why.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let (code, err) = run(&["--listen", &port.to_string()]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("already in use"), "{err}");
}

/// `--listen` as Prometheus users write it: `:PORT` (every interface),
/// `localhost:PORT`, repeated; with `--max-age 0` a two-day-old order runs.
#[test]
fn listen_on_every_interface_and_a_host_name_at_once() {
    let base = Base::new();
    let server = TcpListenerServer::start(None);
    base.write_order(
        "old",
        &format!(
            "user: u\nstep: 10\npings: 2\nprobe: tcp\ntcp: {{host: 127.0.0.1, port: {}}}\n",
            server.addr().port()
        ),
    );
    let f = std::fs::File::options()
        .write(true)
        .open(base.orders().join("old"))
        .unwrap();
    f.set_modified(std::time::SystemTime::now() - Duration::from_secs(2 * 86_400))
        .unwrap();
    let (all, local) = (testkit::free_tcp_port(), testkit::free_tcp_port());
    let mut daemon = Daemon::start(
        &base,
        &[
            "--listen",
            &format!(":{all}"),
            "--listen",
            &format!("localhost:{local}"),
            "--max-age",
            "0",
        ],
    );
    for port in [all, local] {
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let ok = wait_for(Duration::from_secs(30), || {
            std::net::TcpStream::connect(addr).ok()
        });
        assert!(
            ok.is_some(),
            "nothing listens on {addr}; log:\n{}",
            daemon.log_text()
        );
        assert_eq!(get(addr, "/-/healthy", None).0, 200, "{addr}");
    }
    let addr: SocketAddr = format!("127.0.0.1:{all}").parse().unwrap();
    let series = wait_for(Duration::from_secs(60), || {
        let body = get(addr, "/metrics", None).2;
        body.contains("smokeping_requests_total{").then_some(body)
    });
    assert!(
        series.is_some(),
        "the two-day-old order runs; log:\n{}",
        daemon.log_text()
    );
    assert!(base.orders().join("old").exists());
    assert!(daemon.stop().success());
}

/// `--listen systemd` serves on the sockets socket activation passes
/// (`systemd-socket-activate`, as a `.socket` unit does), next to an
/// address of its own; without such sockets it refuses to start and says
/// why.
#[test]
fn listen_on_sockets_passed_by_socket_activation() {
    let Some(activate) = tool(
        "listen_on_sockets_passed_by_socket_activation",
        "systemd-socket-activate",
        "systemd",
    ) else {
        return;
    };
    let base = Base::new();
    let server = TcpListenerServer::start(None);
    base.write_order(
        "t",
        &format!(
            "user: u\nstep: 10\npings: 2\nprobe: tcp\ntcp: {{host: 127.0.0.1, port: {}}}\n",
            server.addr().port()
        ),
    );
    let (passed, own) = (testkit::free_tcp_port(), testkit::free_tcp_port());
    let passed: SocketAddr = format!("127.0.0.1:{passed}").parse().unwrap();
    let mut daemon = Daemon::start_activated(
        &base,
        &activate,
        &[passed],
        &["--listen", "systemd", "--listen", &own.to_string()],
    );
    for addr in [passed, format!("127.0.0.1:{own}").parse().unwrap()] {
        let ok = wait_for(Duration::from_secs(30), || {
            (get(addr, "/-/healthy", None).0 == 200).then_some(())
        });
        assert!(ok.is_some(), "{addr}; log:\n{}", daemon.log_text());
    }
    let series = wait_for(Duration::from_secs(60), || {
        let body = get(passed, "/metrics", None).2;
        body.contains("smokeping_requests_total{").then_some(body)
    });
    assert!(series.is_some(), "log:\n{}", daemon.log_text());
    assert!(daemon.stop().success());

    let out = Command::new(bin())
        .arg("--basedir")
        .arg(base.path())
        .args(["run", "--listen", "systemd"])
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_PID")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("--listen systemd: no socket was passed"),
        "{err}"
    );
}

/// The shipped alert rules load (`promtool check rules`), fire on the
/// series that should raise them and stay quiet otherwise (`promtool test
/// rules`), and name only series the daemon exports.
#[test]
fn shipped_alert_rules_pass_promtool_and_name_exported_series() {
    let Some(promtool) = tool("shipped_alert_rules", "promtool", "prometheus") else {
        return;
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/prometheus");
    for (what, file) in [
        ("check", "pingmachine-rules.yml"),
        ("test", "pingmachine-rules.test.yml"),
    ] {
        let out = Command::new(&promtool)
            .args([what, "rules", file])
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {what} rules {file}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let exported = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/telemetry/metrics-series.txt"),
    )
    .unwrap();
    let exported: Vec<&str> = exported
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let rules = std::fs::read_to_string(dir.join("pingmachine-rules.yml")).unwrap();
    let mut named = 0;
    for expr in rules.lines().filter(|l| !l.trim_start().starts_with('#')) {
        for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if word.starts_with("pingmachine_") || word.starts_with("smokeping_") {
                named += 1;
                assert!(
                    exported.contains(&word),
                    "the rules use {word}, which the daemon does not export"
                );
            }
        }
    }
    assert!(named >= 8, "{named}");
}

/// The PromQL of a Grafana dashboard: every panel target's `expr`, and for
/// each `label_values(SELECTOR, LABEL)` template variable its selector,
/// with the variables as "everything" (`$instance` → `.*`) and
/// `$__rate_interval` as two minutes.
fn dashboard_queries(path: &Path) -> Vec<String> {
    let d: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let fill = |q: &str| {
        q.replace("$__rate_interval", "2m")
            .replace("$instance", ".*")
            .replace("$order", ".*")
    };
    let mut out = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().into_iter().flatten() {
            if let Some(e) = t["expr"].as_str() {
                out.push(fill(e));
            }
        }
    }
    for v in d["templating"]["list"].as_array().unwrap() {
        if let Some(q) = v["query"]
            .as_str()
            .and_then(|q| q.strip_prefix("label_values("))
        {
            let selector = q.rsplit_once(',').map_or(q, |(s, _)| s);
            out.push(fill(selector));
        }
    }
    out
}

/// A real Prometheus in a network namespace.
struct Prometheus {
    child: Child,
    netns: String,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(bin: &Path, netns: &str, target: SocketAddr) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let port = testkit::free_tcp_port();
        let cfg = dir.path().join("prometheus.yml");
        std::fs::write(
            &cfg,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: pingmachine\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", netns])
            .arg(bin)
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("log")).unwrap())
            .spawn()
            .unwrap();
        Prometheus {
            child,
            netns: netns.to_owned(),
            port,
            _dir: dir,
        }
    }

    /// An instant query through the HTTP API: the values by `order` label.
    fn query(&self, q: &str) -> BTreeMap<String, f64> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.netns, "curl", "-s", "-G"])
            .arg(format!("http://127.0.0.1:{}/api/v1/query", self.port))
            .arg("--data-urlencode")
            .arg(format!("query={q}"))
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let mut res = BTreeMap::new();
        for r in v["data"]["result"].as_array().cloned().unwrap_or_default() {
            let order = r["metric"]["order"].as_str().unwrap_or("").to_owned();
            let value = r["value"][1].as_str().and_then(|s| s.parse().ok());
            if let Some(value) = value {
                res.insert(order, value);
            }
        }
        res
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("log")).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Index of the bucket (smokeping_prober's default bounds) holding `v`.
fn bucket_of(v: f64) -> usize {
    pingmachine::sink::prometheus::DEFAULT_BUCKETS.partition_point(|b| *b < v)
}

#[test]
fn timing_prometheus_scrapes_smokeping_series() {
    const TEST: &str = "timing_prometheus_scrapes_smokeping_series";
    if !testkit::require::netns(TEST) {
        return;
    }
    let (Some(prometheus), Some(_)) = (
        tool(TEST, "prometheus", "prometheus"),
        tool(TEST, "curl", "curl"),
    ) else {
        return;
    };
    let host = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
    let sim = Sim::start(SimConfig {
        hosts: vec![
            HostCfg::delay(host("198.18.0.10"), 1.0),
            HostCfg {
                addr: host("198.18.0.11"),
                delay_ms: 0.0,
                jitter_ms: 0.0,
                loss: 1.0,
                mode: Mode::Normal,
                reply_ttl: None,
            },
        ],
        max_lifetime: Some(Duration::from_secs(300)),
        ..SimConfig::default()
    })
    .unwrap();
    const STEP: f64 = 10.0;
    const PINGS: f64 = 4.0;
    let base = Base::new();
    for (id, ip) in [("ok", "198.18.0.10"), ("dead", "198.18.0.11")] {
        base.write_order(
            id,
            &format!("user: u\nstep: 10\npings: 4\nprobe: fping\nfping: {{host: {ip}}}\n"),
        );
    }
    let port = testkit::free_tcp_port();
    let target: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let daemon = Daemon::start_in_netns(&base, sim.prober_ns(), &["--listen", &target.to_string()]);
    let prom = Prometheus::start(&prometheus, sim.prober_ns(), target);

    // rate() over a minute wants a minute of samples after the first round.
    let started = Instant::now();
    let first = wait_for(Duration::from_secs(60), || {
        let r = prom.query("smokeping_requests_total");
        (r.len() == 2).then_some(())
    });
    assert!(
        first.is_some(),
        "Prometheus never saw the series\nprometheus log:\n{}\ndaemon log:\n{}",
        prom.log(),
        daemon.log_text()
    );
    std::thread::sleep(
        Duration::from_secs(70).saturating_sub(started.elapsed().min(Duration::from_secs(10))),
    );

    // The true rate is pings/step. A one-minute window holds either
    // floor(60/step) or ceil(60/step) rounds' increments of `pings`, and
    // Prometheus extrapolates to the window's edges by at most one scrape
    // interval (1 s of 60): the estimate is within one round's increment
    // over the window of the truth, plus that extrapolation.
    let truth = PINGS / STEP;
    let bound = PINGS / 60.0 + truth * (1.0 / 60.0);
    let rate = prom.query("rate(smokeping_requests_total[1m])");
    for order in ["ok", "dead"] {
        let r = rate.get(order).copied().unwrap_or(f64::NAN);
        assert!(
            (r - truth).abs() <= bound,
            "{order}: rate {r}/s, expected {truth} ± {bound:.3}; all: {rate:?}"
        );
    }

    // Loss: requests - count, 0 for the host that answers, every ping for
    // the one that never does.
    let lost = prom.query("smokeping_requests_total - smokeping_response_duration_seconds_count");
    let requests = prom.query("smokeping_requests_total");
    assert_eq!(lost.get("ok"), Some(&0.0), "{lost:?}");
    assert!(requests["dead"] >= PINGS);
    assert_eq!(
        lost.get("dead"),
        requests.get("dead"),
        "{lost:?} of {requests:?}"
    );

    // The median from the histogram lies within a bucket of last_result's.
    let q = prom.query(
        "histogram_quantile(0.5, sum by (le, order) (rate(smokeping_response_duration_seconds_bucket[1m])))",
    );
    let from_histogram = q.get("ok").copied().unwrap_or(f64::NAN);
    let text = std::fs::read_to_string(base.output("ok").join("last_result")).unwrap();
    let last = pingmachine::inspect::LastResult::parse(&text).expect("last_result of ok");
    let median = last.median.expect("ok has replies");
    assert!(
        bucket_of(from_histogram).abs_diff(bucket_of(median)) <= 1,
        "histogram median {from_histogram} s vs last_result median {median} s"
    );

    // The README's join gives the latest-round gauges the target labels;
    // smokeping_prober's dashboard finds the prober by its build info.
    let joined = prom.query(
        "pingmachine_last_loss_ratio * on (instance, order) group_left (host, ip) group by (instance, order, host, ip) (smokeping_requests_total)",
    );
    assert_eq!(joined.get("ok"), Some(&0.0), "{joined:?}");
    assert_eq!(joined.get("dead"), Some(&1.0), "{joined:?}");
    let hosts = prom.query(
        "count by (order) (pingmachine_last_loss_ratio * on (instance, order) group_left (host, ip) group by (instance, order, host, ip) (smokeping_requests_total{host!=\"\"}))",
    );
    assert_eq!(hosts.len(), 2, "host labels after the join: {hosts:?}");
    assert!(
        !prom.query("smokeping_prober_build_info").is_empty(),
        "smokeping_prober_build_info"
    );

    // Every query of the shipped dashboard, and of its template variables,
    // returns data.
    let dashboard =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/grafana/pingmachine-prometheus.json");
    let queries = dashboard_queries(&dashboard);
    assert!(queries.len() >= 10, "{queries:?}");
    for q in &queries {
        assert!(
            !prom.query(q).is_empty(),
            "the dashboard's query returns nothing: {q}"
        );
    }
    // smokeping_prober's own dashboard, unchanged: its every query, with
    // its prober variable as every instance and its target as "ok"'s host.
    let theirs = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/grafana/smokeping_prober-dashboard-queries.txt"),
    )
    .unwrap();
    let theirs: Vec<&str> = theirs
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert!(theirs.len() >= 8, "{theirs:?}");
    for q in theirs {
        let q = q
            .replace("${target:raw}", "198.18.0.10")
            .replace("$target", "198.18.0.10")
            .replace("$prober", ".*");
        assert!(
            prom.query(&q).values().any(|v| v.is_finite()),
            "smokeping_prober's dashboard query returns nothing: {q}"
        );
    }
    // Each round's median in the class of its loss: the answering order's
    // in "0", the other's nowhere (no median without a reply).
    let by_loss = queries
        .iter()
        .find(|q| q.contains("\"loss\", \"0\""))
        .expect("the median-by-loss query");
    let mut classes = Vec::new();
    for part in by_loss.split(" or ") {
        let class = part.split('"').nth_back(5).unwrap_or_default().to_owned();
        for order in prom.query(part).into_keys() {
            classes.push((class.clone(), order));
        }
    }
    assert_eq!(classes, [("0".to_owned(), "ok".to_owned())], "{by_loss}");
    drop(prom);
    drop(daemon);
}
