//! Several daemons as one fleet: `--shard K/N` splits one set of order
//! files so that every order runs on exactly one node, and the others
//! leave it alone.

use std::time::Duration;

use crate::support::{bin, can_ping, wait_for, Base, Daemon};

#[test]
fn three_shards_split_one_set_of_orders_with_none_twice_and_none_left_out() {
    let test = "three_shards_split_one_set_of_orders_with_none_twice_and_none_left_out";
    if !can_ping(test) {
        return;
    }
    let ids: Vec<String> = (0..24).map(|i| format!("app/t{i}")).collect();
    let bases: Vec<Base> = (0..3).map(|_| Base::new()).collect();
    for b in &bases {
        for id in &ids {
            b.write_order(
                id,
                "user: u\nstep: 10\npings: 1\nprobe: fping\nfping: {host: 127.0.0.1}\nrrd_template: norrd\n",
            );
        }
        // An invalid order is the business of its node only, too.
        b.write_order("app/broken", "user: u\nstep: 10\n");
    }
    let daemons: Vec<Daemon> = bases
        .iter()
        .enumerate()
        .map(|(i, b)| Daemon::start(b, &["--shard", &format!("{}/3", i + 1), "--max-age", "0"]))
        .collect();
    let owner =
        |id: &str| -> Vec<usize> { (0..3).filter(|&i| bases[i].output(id).exists()).collect() };
    // Every order gets a result on exactly one node.
    wait_for(Duration::from_secs(60), || {
        ids.iter()
            .all(|id| (0..3).any(|i| bases[i].last_result(id).is_some()))
            .then_some(())
    })
    .unwrap_or_else(|| panic!("not every order ran; logs:\n{}", daemons[0].log_text()));
    // A round more, so that a node probing someone else's order would
    // have written it by now.
    std::thread::sleep(Duration::from_secs(12));
    let mut per_node = [0usize; 3];
    for id in &ids {
        let o = owner(id);
        assert_eq!(o.len(), 1, "{id} has output on nodes {o:?}");
        per_node[o[0]] += 1;
    }
    assert!(per_node.iter().all(|n| *n > 0), "{per_node:?}");
    // Nobody's order files were touched: every node still has all of them.
    for b in &bases {
        for id in &ids {
            assert!(b.orders().join(id).exists(), "{id} gone from a node");
        }
    }
    // The broken order was set aside by its node only.
    let rejected: Vec<usize> = (0..3)
        .filter(|&i| bases[i].path().join("rejected/app/broken").exists())
        .collect();
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    // `status --shard` lists the node's orders only.
    for (i, b) in bases.iter().enumerate() {
        let out = std::process::Command::new(bin())
            .arg("--basedir")
            .arg(b.path())
            .args(["status", "--json", "--shard", &format!("{}/3", i + 1)])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let listed = v["orders"].as_array().map_or(0, Vec::len);
        assert_eq!(listed, per_node[i], "node {}: {v}", i + 1);
    }
    drop(daemons);
}

#[test]
fn a_bad_shard_is_a_clear_error() {
    let base = Base::new();
    for (arg, why) in [
        ("4/3", "K must be 1 to N"),
        ("3", "expected K/N"),
        ("0/0", "N must be 1 to"),
    ] {
        let out = std::process::Command::new(bin())
            .arg("--basedir")
            .arg(base.path())
            .args(["run", "--shard", arg])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{arg}: {err}");
        assert!(err.contains("--shard") && err.contains(why), "{arg}: {err}");
    }
}

/// A child process killed when dropped, on every path out of a test.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One site of the fleet: a simulated path to the three targets (its own
/// network namespaces), a base directory, ports that lead from its
/// namespace to the stores, and its daemon.
struct Site {
    name: &'static str,
    sim: testkit::impair::Sim,
    base: Base,
    daemon: Option<Daemon>,
    _forwards: Vec<testkit::impair::forward::Forward>,
}

impl Site {
    /// `GET /metrics` of the site's daemon, from inside its namespace.
    fn metrics(&self) -> String {
        self.sim
            .run_in_prober(|| {
                crate::support::store::try_get("127.0.0.1:9374".parse().unwrap(), "/metrics")
                    .map(|(_, b)| b)
                    .unwrap_or_default()
            })
            .unwrap_or_default()
    }

    /// The sum of the `/metrics` samples whose line starts with `prefix`.
    fn metric(&self, prefix: &str) -> Option<f64> {
        let m = self.metrics();
        let v: Vec<f64> = m
            .lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
            .collect();
        (!v.is_empty()).then(|| v.iter().sum())
    }
}

/// A target: order id, address, and per site (delay ms, loss).
type Target = (&'static str, &'static str, [(f64, f64); 3]);

/// Targets as every site names them: order id, address, and per site
/// (a, b, c) the one-way delay (ms) and loss of its path.
/// Site b's path to t-near has 4 ms of jitter too.
const TARGETS: [Target; 3] = [
    (
        "t-near",
        "198.18.0.10",
        [(2.0, 0.0), (15.0, 0.0), (40.0, 0.0)],
    ),
    (
        "t-lossy",
        "198.18.0.11",
        [(5.0, 0.0), (5.0, 0.3), (5.0, 0.0)],
    ),
    (
        "t-far",
        "198.18.0.12",
        [(30.0, 0.0), (10.0, 0.0), (3.0, 0.0)],
    ),
];
const SITES: [&str; 3] = ["a", "b", "c"];

/// The jitter (ms) of site `i`'s path to `addr`.
fn jitter(addr: &str, i: usize) -> f64 {
    if addr == "198.18.0.10" && i == 1 {
        4.0
    } else {
        0.0
    }
}
const STEP: i64 = 10;
const PINGS: f64 = 4.0;

/// `rrdtool fetch` of `path` at the step: rows of (time, value of `ds`).
fn rrd_column(path: &std::path::Path, ds: &str, start: i64, end: i64) -> Vec<(i64, Option<f64>)> {
    let text = crate::support::rrdtool(&[
        "fetch",
        path.to_str().unwrap(),
        "AVERAGE",
        "-r",
        &STEP.to_string(),
        "-s",
        &start.to_string(),
        "-e",
        &end.to_string(),
    ]);
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let i = header
        .iter()
        .position(|h| *h == ds)
        .unwrap_or_else(|| panic!("no {ds} in {header:?}"));
    lines
        .filter_map(|l| l.split_once(':'))
        .filter_map(|(t, v)| {
            let t = t.trim().parse::<i64>().ok()?;
            let x = v.split_whitespace().nth(i)?.parse::<f64>().ok();
            Some((t, x.filter(|f| !f.is_nan())))
        })
        .collect()
}

/// Three sites (each a daemon in its own network namespace, with
/// `--tag site=a|b|c`) measure the same three targets over paths of their
/// own (the simulator's delay and loss), and push to one VictoriaMetrics
/// and one Prometheus by remote write and to one InfluxDB by line
/// protocol. VictoriaMetrics is down for 60 s; one site stops. Then: every
/// site's rounds are in every store, once, with no hole, equal to the
/// site's own main.rrd; each site shows its own path's delay and loss;
/// and `serve --prometheus-url` shows the fleet (sites × targets, worst
/// first, the stopped site stale) and one target from every site, in
/// headless Chromium.
#[test]
fn three_sites_push_to_one_cluster_and_the_fleet_view_shows_them() {
    use crate::support::influx::{influxd, Influx};
    use crate::support::store::{total, try_get, Receiver};
    use testkit::impair::{forward::forward_tcp, HostCfg, Sim, SimConfig};

    let test = "three_sites_push_to_one_cluster_and_the_fleet_view_shows_them";
    if !testkit::require::netns(test) {
        return;
    }
    let (Some(prom_bin), Some(vm_bin), Some(influx_bin), Some(browser)) = (
        crate::support::tool(test, "prometheus", "prometheus"),
        crate::support::tool(test, "victoria-metrics", "victoria-metrics"),
        influxd(test),
        crate::web::chromium(test),
    ) else {
        return;
    };
    let prom = Receiver::prometheus(&prom_bin);
    let mut vm = Receiver::victoria(&vm_bin);
    let influx = Influx::start(&influx_bin, 0, "unused");
    influx.create_db("fleet");
    let life = Duration::from_secs(600);
    let mut sites: Vec<Site> = SITES
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let hosts = TARGETS
                .iter()
                .map(|(_, addr, paths)| {
                    let (delay, loss) = paths[i];
                    HostCfg {
                        loss,
                        jitter_ms: jitter(addr, i),
                        ..HostCfg::delay(addr.parse().unwrap(), delay)
                    }
                })
                .collect();
            let sim = Sim::start(SimConfig {
                hosts,
                seed: 0x5eed + i as u64,
                max_lifetime: Some(life),
                ..SimConfig::default()
            })
            .expect("start the simulator");
            let ns = sim.prober_ns().to_owned();
            let fw = |to: std::net::SocketAddr| forward_tcp(&ns, to, life).unwrap();
            let forwards = vec![
                fw(prom.addr()),
                fw(vm.addr()),
                fw(format!("127.0.0.1:{}", influx.http_port).parse().unwrap()),
            ];
            let base = Base::new();
            for (id, addr, _) in TARGETS {
                base.write_order(
                    id,
                    &format!(
                        "user: noc\nstep: {STEP}\npings: {PINGS}\nprobe: fping\nfping: {{host: {addr}}}\nmeasurement_name: fleet\ntags: {{target: {id}}}\n"
                    ),
                );
            }
            let w = |f: &testkit::impair::forward::Forward| {
                format!("http://127.0.0.1:{}/api/v1/write", f.port)
            };
            let daemon = Daemon::start_in_netns(
                &base,
                &ns,
                &[
                    "--tag",
                    &format!("site={name}"),
                    "--remote-write",
                    &w(&forwards[0]),
                    "--remote-write",
                    &w(&forwards[1]),
                    "--influx-url",
                    &format!("http://127.0.0.1:{}/write?db=fleet", forwards[2].port),
                    "--listen",
                    "127.0.0.1:9374",
                ],
            );
            Site {
                name,
                sim,
                base,
                daemon: Some(daemon),
                _forwards: forwards,
            }
        })
        .collect();
    let log = |s: &Site| s.daemon.as_ref().map(Daemon::log_text).unwrap_or_default();
    let round_of = |s: &Site| s.base.last_result("t-near").map(|r| r.int("time"));
    // Two rounds everywhere.
    let started: Vec<i64> = sites
        .iter()
        .map(|s| {
            wait_for(Duration::from_secs(60), || round_of(s))
                .unwrap_or_else(|| panic!("site {}: no round; log:\n{}", s.name, log(s)))
        })
        .collect();
    for (s, t0) in sites.iter().zip(&started) {
        wait_for(Duration::from_secs(60), || {
            (round_of(s)? > *t0).then_some(())
        })
        .unwrap_or_else(|| panic!("site {}: no second round; log:\n{}", s.name, log(s)));
    }
    // VictoriaMetrics is away for 60 s: six rounds of every site wait in
    // their queues.
    vm.stop();
    std::thread::sleep(Duration::from_secs(60));
    vm.start();
    // Every site's queue empties (the back-off is 30 s at most), and two
    // more rounds follow.
    for s in &sites {
        wait_for(Duration::from_secs(90), || {
            let queued = s.metric("pingmachine_remote_write_queued_series{")?;
            (queued == 0.0).then_some(())
        })
        .unwrap_or_else(|| panic!("site {}: the queue never emptied:\n{}", s.name, s.metrics()));
    }
    let back: Vec<i64> = sites.iter().map(|s| round_of(s).unwrap()).collect();
    for (s, t) in sites.iter().zip(&back) {
        wait_for(Duration::from_secs(60), || {
            (round_of(s)? >= t + 2 * STEP).then_some(())
        })
        .unwrap_or_else(|| {
            panic!(
                "site {}: no rounds after the outage; log:\n{}",
                s.name,
                log(s)
            )
        });
    }
    // Site c stops; the fleet view shows it stale once it has sent nothing
    // for --fleet-stale-after.
    let mut stopped_logs = std::collections::BTreeMap::new();
    {
        let c = &mut sites[2];
        let mut d = c.daemon.take().unwrap();
        d.stop();
        stopped_logs.insert(c.name, d.log_text());
    }
    let serve_base = Base::new();
    std::fs::create_dir_all(serve_base.orders()).unwrap();
    let port = testkit::free_tcp_port();
    let serve_log = serve_base.path().join("serve.log");
    let serve = std::process::Command::new(bin())
        .arg("--basedir")
        .arg(serve_base.path())
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--prometheus-url",
            &format!("http://{}", vm.addr()),
            // Three steps: the newest round of a running site is up to
            // two steps old (stamped at its start, sent at its end).
            "--fleet-stale-after",
            "30",
        ])
        .stderr(std::fs::File::create(&serve_log).unwrap())
        .spawn()
        .unwrap();
    let serve = Killed(serve);
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let page = wait_for(Duration::from_secs(60), || {
        let (status, body) = try_get(addr, "/fleet")?;
        (status == 200 && body.contains("data-site=\"c\" data-stale=\"yes\"")).then_some(body)
    });
    let Some(page) = page else {
        panic!(
            "/fleet never showed site c stale: {:?}\nserve log:\n{}",
            try_get(addr, "/fleet"),
            std::fs::read_to_string(&serve_log).unwrap_or_default()
        );
    };
    // In a real browser: the overview, then one target from every site.
    let dom = crate::web::browse(&browser, &["--dump-dom"], &format!("http://{addr}/fleet"));
    let _ = crate::web::browse(
        &browser,
        &[
            "--window-size=1100,420",
            &format!(
                "--screenshot={}",
                crate::web::screenshot_dir().join("fleet.png").display()
            ),
        ],
        &format!("http://{addr}/fleet"),
    );
    let target_url = format!("http://{addr}/fleet/target/t-near?range=900");
    let target_dom = crate::web::browse(&browser, &["--dump-dom"], &target_url);
    let _ = crate::web::browse(
        &browser,
        &[
            "--window-size=1100,760",
            &format!(
                "--screenshot={}",
                crate::web::screenshot_dir()
                    .join("fleet-target.png")
                    .display()
            ),
        ],
        &target_url,
    );
    drop(serve);
    for s in ["a", "b"] {
        assert!(
            dom.contains(&format!("data-site=\"{s}\" data-stale=\"no\"")),
            "site {s} fresh: {dom}"
        );
    }
    assert!(dom.contains("data-site=\"c\" data-stale=\"yes\""), "{dom}");
    // Worst first: the lossy target leads.
    let rows: Vec<&str> = dom
        .match_indices("<tr data-order=\"")
        .map(|(i, _)| {
            let rest = &dom[i + 16..];
            &rest[..rest.find('"').unwrap()]
        })
        .collect();
    assert_eq!(rows.len(), 3, "{dom}");
    assert_eq!(rows[0], "t-lossy", "{rows:?}: {page}");
    for s in SITES {
        assert_eq!(
            target_dom
                .matches(&format!("class=\"median\" data-site=\"{s}\""))
                .count(),
            1,
            "one median line of site {s} (no gap): {target_dom}"
        );
        assert!(
            target_dom.contains(&format!("class=\"smoke\" data-site=\"{s}\"")),
            "the smoke of site {s}"
        );
        assert!(
            target_dom.contains(&format!("<tr data-site=\"{s}\">")),
            "legend {s}"
        );
    }
    assert!(!target_dom.to_lowercase().contains("nan"), "{target_dom}");

    // The other two stop; each says what it sent.
    for s in &mut sites {
        if let Some(mut d) = s.daemon.take() {
            d.stop();
            stopped_logs.insert(s.name, d.log_text());
        }
    }
    for s in &sites {
        let log = &stopped_logs[s.name];
        let first = started[SITES.iter().position(|n| *n == s.name).unwrap()];
        for (r, fwd) in [(&prom, 0), (&vm, 1)] {
            let url = format!("http://127.0.0.1:{}/api/v1/write", s._forwards[fwd].port);
            assert_eq!(
                total(log, &url, "dropped"),
                0,
                "site {} {}: {log}",
                s.name,
                r.name
            );
            let sent = total(log, &url, "sent");
            let count = || -> u64 {
                r.query(&format!(
                    "{{__name__=~\"pingmachine_round_.+\",site=\"{}\"}}[1h]",
                    s.name
                ))
                .iter()
                .map(|x| x["values"].as_array().map_or(0, Vec::len) as u64)
                .sum()
            };
            let stored = wait_for(Duration::from_secs(30), || {
                let n = count();
                (n >= sent).then_some(n)
            })
            .unwrap_or_else(count);
            assert_eq!(
                stored, sent,
                "site {} in {}: stored vs sent",
                s.name, r.name
            );
        }
        for (id, _, paths) in TARGETS {
            let i = SITES.iter().position(|n| *n == s.name).unwrap();
            let (delay_ms, loss) = paths[i];
            let sel = |m: &str| format!("{m}{{order=\"{id}\",site=\"{}\"}}", s.name);
            let losses = &vm.samples(&sel("pingmachine_round_loss_ratio"))[id];
            let medians = vm.samples(&sel("pingmachine_round_rtt_median_seconds"));
            // One round per step, none missing across the outage.
            let times: Vec<i64> = losses.iter().map(|(t, _)| *t).collect();
            assert!(times.len() >= 9, "site {} {id}: {times:?}", s.name);
            assert!(
                times.windows(2).all(|w| w[1] - w[0] == STEP),
                "site {} {id}: a hole: {times:?}",
                s.name
            );
            assert!(
                times[0] <= first,
                "site {} {id}: {times:?} from {first}",
                s.name
            );
            // Prometheus has the same rounds.
            let p: Vec<i64> = prom.samples(&sel("pingmachine_round_loss_ratio"))[id]
                .iter()
                .map(|(t, _)| *t)
                .collect();
            assert_eq!(
                p, times,
                "site {} {id}: Prometheus vs VictoriaMetrics",
                s.name
            );
            // Equal to the site's own main.rrd, round by round.
            let rrd = s.base.output(id).join("main.rrd");
            let rrd_loss = rrd_column(&rrd, "loss", times[0] - STEP, times[times.len() - 1]);
            let rrd_median = rrd_column(&rrd, "median", times[0] - STEP, times[times.len() - 1]);
            for (t, v) in losses {
                let want = rrd_loss
                    .iter()
                    .find(|(rt, _)| rt == t)
                    .and_then(|(_, x)| *x)
                    .unwrap_or_else(|| panic!("site {} {id}: no RRD row at {t}", s.name));
                assert!(
                    (v * PINGS - want).abs() < 1e-9,
                    "site {} {id} at {t}: loss {v} vs {want} of {PINGS} in main.rrd",
                    s.name
                );
            }
            for (t, v) in medians.get(id).into_iter().flatten() {
                let want = rrd_median
                    .iter()
                    .find(|(rt, _)| rt == t)
                    .and_then(|(_, x)| *x)
                    .unwrap_or_else(|| panic!("site {} {id}: no RRD median at {t}", s.name));
                assert!(
                    (v - want).abs() <= want * 1e-6,
                    "site {} {id} at {t}: median {v} vs {want} in main.rrd",
                    s.name
                );
                // Nothing answers before its path's delay (both ways:
                // the simulator delays the answer by the whole RTT).
                let least = delay_ms - jitter(TARGETS.iter().find(|x| x.0 == id).unwrap().1, i);
                assert!(
                    *v >= least / 1000.0 - 5e-6,
                    "site {} {id} at {t}: {v} s below the path's {delay_ms} ms",
                    s.name
                );
            }
            // The path's loss, and none where there is none.
            let lost: f64 = losses.iter().map(|(_, v)| v).sum();
            if loss > 0.0 {
                assert!(lost > 0.0, "site {} {id}: no loss on a lossy path", s.name);
            } else {
                assert_eq!(lost, 0.0, "site {} {id}: {losses:?}", s.name);
            }
            // Line protocol: the same rounds in InfluxDB, tagged with the site.
            let q = format!(
                "SELECT count(loss) FROM fleet WHERE site='{}' AND target='{id}'",
                s.name
            );
            let n = wait_for(Duration::from_secs(20), || {
                let body = influx.query("fleet", &q);
                let v: serde_json::Value = serde_json::from_str(&body).ok()?;
                let n = v["results"][0]["series"][0]["values"][0][1].as_u64()?;
                (n as usize >= times.len()).then_some(n)
            });
            assert_eq!(
                n,
                Some(times.len() as u64),
                "site {} {id}: rounds in InfluxDB: {}",
                s.name,
                influx.query("fleet", &q)
            );
        }
    }
    // Each site sees its own path: the near target's medians in the
    // order of the paths' delays.
    let overall = |site: &str| -> f64 {
        let m = vm.samples(&format!(
            "pingmachine_round_rtt_median_seconds{{order=\"t-near\",site=\"{site}\"}}"
        ));
        let mut v: Vec<f64> = m["t-near"].iter().map(|(_, x)| *x).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (a, b, c) = (overall("a"), overall("b"), overall("c"));
    assert!(a < b && b < c, "t-near from a, b, c: {a} {b} {c}");
}

#[test]
fn the_fleet_view_is_off_by_default_says_when_the_store_is_down_and_checks_its_flags() {
    use crate::support::store::try_get;
    let base = Base::new();
    std::fs::create_dir_all(base.orders()).unwrap();
    let start = |extra: &[&str]| {
        let port = testkit::free_tcp_port();
        let child = std::process::Command::new(bin())
            .arg("--basedir")
            .arg(base.path())
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(extra)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let child = Killed(child);
        let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        wait_for(Duration::from_secs(20), || try_get(addr, "/-/healthy")).expect("serve answers");
        (child, addr)
    };
    // Without --prometheus-url there is no fleet view.
    let (plain, addr) = start(&[]);
    assert_eq!(try_get(addr, "/fleet").unwrap().0, 404);
    assert_eq!(try_get(addr, "/fleet/target/x").unwrap().0, 404);
    assert!(!try_get(addr, "/").unwrap().1.contains("/fleet"));
    drop(plain);
    // A store that is down: 502 and what went wrong; junk ids are 404.
    let refused = testkit::refused_addr();
    let (fleet, addr) = start(&["--prometheus-url", &format!("http://{refused}")]);
    let (status, body) = try_get(addr, "/fleet").unwrap();
    assert_eq!(status, 502, "{body}");
    assert!(
        body.contains("did not answer") && body.contains(&refused.to_string()),
        "{body}"
    );
    for junk in [
        "/fleet/target/..%2f..%2fetc%2fpasswd",
        "/fleet/target/a/../../b",
        "/fleet/target/%00",
    ] {
        assert_eq!(try_get(addr, junk).unwrap().0, 404, "{junk}");
    }
    assert_eq!(try_get(addr, "/fleet?range=5").unwrap().0, 400);
    // The status page links the fleet view.
    assert!(try_get(addr, "/")
        .unwrap()
        .1
        .contains("<a href=\"fleet\">fleet</a>"));
    drop(fleet);
    // Bad flags.
    let run = |args: &[&str]| {
        let out = std::process::Command::new(bin())
            .arg("--basedir")
            .arg(base.path())
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(&["serve", "--listen", "1", "--prometheus-url", "ftp://x"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--prometheus-url") && err.contains("http(s)://"),
        "{err}"
    );
    let (code, err) = run(&[
        "serve",
        "--listen",
        "1",
        "--prometheus-url",
        "http://x",
        "--fleet-site-label",
        "si-te",
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--fleet-site-label") && err.contains("label name"),
        "{err}"
    );
    let (code, err) = run(&["run", "--prometheus-url", "http://127.0.0.1:1"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("--prometheus-url") && err.contains("--listen"),
        "{err}"
    );
    let (code, err) = run(&["run", "--web-route-prefix", "/x"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("--web-route-prefix") && err.contains("--listen"),
        "{err}"
    );
    // A web configuration that is not one is a start-up error naming it.
    let cfg = base.path().join("web.yml");
    std::fs::write(&cfg, "basic_auth_users:\n  alice: plain\n").unwrap();
    let (code, err) = run(&[
        "serve",
        "--listen",
        "1",
        "--web-config-file",
        cfg.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("web.yml") && err.contains("alice") && err.contains("bcrypt"),
        "{err}"
    );
}
