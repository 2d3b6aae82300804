//! End-to-end tests of `pingmachine run`: the real binary on a temporary
//! base directory, loopback targets only, files read back with the real
//! `rrdtool`. Tests that send ICMP skip (with a message) unless root or
//! `ping_group_range` allows ICMP sockets; CI runs them as root.

#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::support::{
    bin, can_ping, rrd_fetch, rrd_info, rrd_lastupdate, wait_for, Base, Daemon, EVENTUALLY,
};

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn fping_order(host: &str, step: u32, pings: u32, extra: &str) -> String {
    format!("user: test\ntask: t\nstep: {step}\npings: {pings}\nprobe: fping\n{extra}fping:\n  host: '{host}'\n")
}

fn num(info: &std::collections::HashMap<String, String>, k: &str) -> f64 {
    info.get(k)
        .unwrap_or_else(|| panic!("no {k} in rrdtool info"))
        .parse()
        .unwrap_or_else(|_| panic!("{k} not numeric"))
}

/// Expected archives (cf, pdp_per_row, rows) as the original creates them.
fn expected_rras(step: u32) -> Vec<(&'static str, u32, u32)> {
    let amm = |s, r| [("AVERAGE", s, r), ("MIN", s, r), ("MAX", s, r)];
    let axn = |s, r| [("AVERAGE", s, r), ("MAX", s, r), ("MIN", s, r)];
    let mut v = Vec::new();
    if step < 300 {
        v.push(("AVERAGE", 1, 900));
        v.extend(amm(300 / step, 864));
        v.extend(amm(1800 / step, 480));
        v.extend(amm(3600 / step, 960));
        v.extend(axn(43200 / step, 800));
        v.extend(axn(604800 / step, 520));
    } else if step == 300 {
        v.push(("AVERAGE", 1, 864));
        v.extend(amm(6, 480));
        v.extend(amm(12, 960));
        v.extend(axn(144, 800));
        v.extend(axn(2016, 520));
    } else {
        v.push(("AVERAGE", 1, 1008));
        v.extend(amm(12, 4320));
        v.extend(axn(144, 720));
    }
    v
}

fn check_rrd_layout(base: &Base, id: &str, step: u32, pings: u32, created_around: i64) {
    let path = base.output(id).join("main.rrd");
    let info = rrd_info(&path);
    assert_eq!(num(&info, "step"), f64::from(step), "{id}: step");
    let last = num(&info, "last_update") as i64;
    let expect = created_around.div_euclid(i64::from(step)) * i64::from(step) - i64::from(step);
    assert!(
        (last - expect).abs() <= i64::from(step),
        "{id}: start {last}, expected about {expect} (floor(now/step)*step - step)"
    );
    let mut names = vec!["loss".to_owned(), "median".to_owned()];
    names.extend((1..=pings).map(|i| format!("ping{i}")));
    for (i, n) in names.iter().enumerate() {
        assert_eq!(info[&format!("ds[{n}].type")], "GAUGE", "{id}: {n} type");
        assert_eq!(
            num(&info, &format!("ds[{n}].minimal_heartbeat")),
            f64::from(2 * step),
            "{id}: {n} heartbeat"
        );
        assert_eq!(
            num(&info, &format!("ds[{n}].index")),
            i as f64,
            "{id}: {n} order"
        );
        assert_eq!(num(&info, &format!("ds[{n}].min")), 0.0, "{id}: {n} min");
        let max = if n == "loss" { f64::from(pings) } else { 180.0 };
        assert_eq!(num(&info, &format!("ds[{n}].max")), max, "{id}: {n} max");
    }
    assert!(
        !info.contains_key(&format!("ds[ping{}].type", pings + 1)),
        "{id}: extra data source"
    );
    let rras = expected_rras(step);
    for (i, (cf, pdp, rows)) in rras.iter().enumerate() {
        assert_eq!(info[&format!("rra[{i}].cf")], *cf, "{id}: rra[{i}].cf");
        assert_eq!(
            num(&info, &format!("rra[{i}].pdp_per_row")),
            f64::from(*pdp),
            "{id}: rra[{i}].pdp_per_row"
        );
        assert_eq!(
            num(&info, &format!("rra[{i}].rows")),
            f64::from(*rows),
            "{id}: rra[{i}].rows"
        );
        assert_eq!(
            num(&info, &format!("rra[{i}].xff")),
            0.5,
            "{id}: rra[{i}].xff"
        );
    }
    assert!(
        !info.contains_key(&format!("rra[{}].cf", rras.len())),
        "{id}: extra archive"
    );
}

#[test]
fn rrd_files_have_the_original_layout_for_every_step_case() {
    let base = Base::new();
    let created = now();
    base.write_order("steps/s10", &fping_order("127.0.0.1", 10, 3, ""));
    base.write_order("steps/s300", &fping_order("127.0.0.1", 300, 20, ""));
    base.write_order("steps/s600", &fping_order("127.0.0.1", 600, 5, ""));
    base.write_order(
        "steps/s60norrd",
        &fping_order("127.0.0.1", 60, 5, "rrd_template: norrd\n"),
    );
    let d = Daemon::start(&base, &[]);
    for id in ["steps/s10", "steps/s300", "steps/s600"] {
        let p = base.output(id).join("main.rrd");
        assert!(
            wait_for(Duration::from_secs(10), || p.exists().then_some(())).is_some(),
            "{id}: no main.rrd; log:\n{}",
            d.log_text()
        );
    }
    check_rrd_layout(&base, "steps/s10", 10, 3, created);
    check_rrd_layout(&base, "steps/s300", 300, 20, created);
    check_rrd_layout(&base, "steps/s600", 600, 5, created);
    assert!(
        base.output("steps/s60norrd").is_dir(),
        "norrd order has an output directory"
    );
    assert!(
        !base.output("steps/s60norrd").join("main.rrd").exists(),
        "norrd order must not get an RRD"
    );
}

#[test]
fn loopback_rounds_write_rrd_and_last_result() {
    if !can_ping("loopback_rounds_write_rrd_and_last_result") {
        return;
    }
    let base = Base::new();
    base.write_order("v4/one", &fping_order("127.0.0.1", 10, 3, ""));
    base.write_order("shared/a", &fping_order("127.0.0.2", 10, 3, ""));
    base.write_order("shared/b", &fping_order("127.0.0.2", 10, 3, ""));
    base.write_order(
        "norrd/x",
        &fping_order("127.0.0.3", 10, 3, "rrd_template: norrd\n"),
    );
    let v6 =
        testkit::require::ipv6_loopback("loopback_rounds_write_rrd_and_last_result (IPv6 order)");
    if v6 {
        base.write_order("v6/one", &fping_order("::1", 10, 3, ""));
    }
    let d = Daemon::start(&base, &[]);
    let mut ids = vec!["v4/one", "shared/a", "shared/b", "norrd/x"];
    if v6 {
        ids.push("v6/one");
    }
    for id in &ids {
        let r = wait_for(Duration::from_secs(45), || base.last_result(id));
        let r = r.unwrap_or_else(|| panic!("{id}: no last_result; log:\n{}", d.log_text()));
        let t = r.int("time");
        assert_eq!(t % 10, 0, "{id}: time is a step boundary");
        let updated = r.int("updated");
        assert!(
            updated >= t + 10 && updated < t + 20 + 2,
            "{id}: updated {updated} vs time {t}"
        );
        assert_eq!(r.int("step"), 10);
        assert_eq!(r.int("pings"), 3);
        assert_eq!(
            r.int("loss"),
            0,
            "{id}: loopback loses nothing; log:\n{}",
            d.log_text()
        );
        let (min, med, max) = (
            r.rtt("min").unwrap(),
            r.rtt("median").unwrap(),
            r.rtt("max").unwrap(),
        );
        assert!(
            0.0 < min && min <= med && med <= max && max < 0.05,
            "{id}: {min} {med} {max}"
        );
        for k in ["min", "median", "max"] {
            let v = r.get(k);
            assert!(
                v.len() == 12 && v.as_bytes()[8] == b'e',
                "{id}: {k} {v:?} not in %.6e format"
            );
        }
        let rrd = base.output(id).join("main.rrd");
        if *id == "norrd/x" {
            assert!(!rrd.exists(), "norrd wrote an RRD");
            continue;
        }
        // The last update holds exactly what last_result reports.
        let (last, values) = rrd_lastupdate(&rrd);
        assert_eq!(last, t, "{id}: RRD update time equals last_result time");
        let names: Vec<&str> = values.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["loss", "median", "ping1", "ping2", "ping3"]);
        assert_eq!(values[0].1, Some(0.0), "{id}: loss");
        let close = |a: Option<f64>, b: f64| a.is_some_and(|a| (a - b).abs() <= b * 1e-5 + 1e-9);
        assert!(
            close(values[1].1, med),
            "{id}: median {:?} vs {med}",
            values[1].1
        );
        assert!(close(values[2].1, min), "{id}: ping1 is the smallest RTT");
        assert!(close(values[4].1, max), "{id}: ping3 is the largest RTT");
        // And rrdtool fetch reads the stored row at that time.
        let rows = rrd_fetch(&rrd, "AVERAGE", 10, t - 10, t);
        let row = rows
            .iter()
            .find(|(rt, _)| *rt == t)
            .unwrap_or_else(|| panic!("{id}: no fetch row at {t}: {rows:?}"));
        assert_eq!(row.1.len(), 5);
        assert_eq!(row.1[0], Some(0.0));
        assert!(
            row.1[1].is_some_and(|m| m > 0.0 && m < 0.05),
            "{id}: fetched median {:?}",
            row.1[1]
        );
    }
    // Two orders on one host share one ping series: identical results.
    let (a, b) = (
        base.last_result("shared/a").unwrap(),
        base.last_result("shared/b").unwrap(),
    );
    if a.int("time") == b.int("time") {
        for k in ["min", "median", "max"] {
            assert_eq!(
                a.get(k),
                b.get(k),
                "shared target: {k} differs, so it was pinged twice"
            );
        }
    }
    // --debug logs one line per order per round with its results.
    let line = d.wait_log_line(&["round", "order=v4/one", "median_ms="], EVENTUALLY);
    assert!(line.contains("loss=0"), "{line}");
}

/// Orders are picked up from file-watcher hints, not from the safety-net
/// rescan: the daemon runs with its rescan an hour apart, so every pickup
/// below is a hint's. The waits are generous bounds, not timing
/// assertions (pickup latency is a benchmark figure: `pingmachine-bench
/// pickup`).
#[test]
fn timing_orders_are_picked_up_changed_and_removed_while_running() {
    let base = Base::new();
    std::fs::create_dir_all(base.orders()).unwrap();
    let d = Daemon::start(&base, &["--rescan-interval", "3600"]);
    let hint = Duration::from_secs(30);

    // A new order is noticed from its file-watcher hint.
    base.write_order("app/new", &fping_order("127.0.0.1", 10, 2, ""));
    d.wait_log_line(&["order started", "order=app/new"], hint);
    let rrd = base.output("app/new").join("main.rrd");
    assert!(
        wait_for(hint, || rrd.exists().then_some(())).is_some(),
        "main.rrd created at order start"
    );

    // A new directory with a file written into it immediately.
    let deep = base.orders().join("deep/er/dir");
    std::fs::create_dir_all(&deep).unwrap();
    std::fs::write(deep.join("o1"), fping_order("127.0.0.4", 10, 2, "")).unwrap();
    d.wait_log_line(&["order started", "order=deep/er/dir/o1"], hint);

    // A half-written file (written in place, not renamed) is retried, not rejected.
    let partial = base.orders().join("app/partial");
    std::fs::write(&partial, "user: u\nstep: 10\npings: 2\nprobe: fp").unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    std::fs::write(&partial, fping_order("127.0.0.7", 10, 2, "")).unwrap();
    d.wait_log_line(&["order started", "order=app/partial"], hint);
    assert!(
        !d.log_text().contains("invalid order"),
        "half-written file was rejected:\n{}",
        d.log_text()
    );

    // Hidden and temporary files are never orders.
    std::fs::write(
        base.orders().join("app/.hidden"),
        fping_order("127.0.0.5", 10, 2, ""),
    )
    .unwrap();
    std::fs::write(
        base.orders().join("app/x.tmp"),
        fping_order("127.0.0.5", 10, 2, ""),
    )
    .unwrap();

    // Rewriting the same content is a refresh, not a change.
    base.write_order("app/new", &fping_order("127.0.0.1", 10, 2, ""));
    d.wait_log_line(&["order refreshed", "order=app/new"], hint);

    // A changed order is restarted with its new content.
    base.write_order("app/new", &fping_order("127.0.0.6", 10, 2, ""));
    d.wait_log_line(
        &["order changed", "order=app/new", "target=127.0.0.6"],
        hint,
    );

    // An invalid order is reported with file, field and value; others go on.
    std::fs::create_dir_all(base.orders().join("bad")).unwrap();
    std::fs::write(
        base.orders().join("bad/x"),
        "user: u\nstep: 0\npings: 1\nprobe: fping\nfping: {host: 127.0.0.1}\n",
    )
    .unwrap();
    let line = d.wait_log_line(&["invalid order", "bad/x"], hint);
    assert!(
        line.contains("field `step`") && line.contains("value \"0\""),
        "{line}"
    );
    // Every pickup so far came from a hint: no rescan has run.
    assert!(
        !d.log_text().contains("rescan"),
        "a rescan ran before SIGHUP:\n{}",
        d.log_text()
    );
    // Logged once, not at every look: a SIGHUP rescan looks again, and an
    // order written after it is picked up after it (the registry handles
    // one thing at a time), so the rescan is over when it starts.
    d.signal("HUP");
    d.wait_log("SIGHUP: rescanning", hint);
    base.write_order("app/after-hup", &fping_order("127.0.0.8", 10, 2, ""));
    d.wait_log_line(&["order started", "order=app/after-hup"], hint);
    assert_eq!(
        d.log_text().matches("invalid order").count(),
        1,
        "rejection logged more than once"
    );
    assert!(!base.orders().join("bad/x").exists());
    assert!(
        base.path().join("rejected/bad/x").exists(),
        "an invalid order file is moved to rejected/, never deleted"
    );

    // Removal stops the order.
    base.remove_order("app/new");
    d.wait_log_line(&["order file removed", "order=app/new"], hint);
    // Removing a whole directory stops the orders in it.
    std::fs::remove_dir_all(base.orders().join("deep")).unwrap();
    d.wait_log_line(&["order stopped", "order=deep/er/dir/o1"], hint);

    let log = d.log_text();
    assert!(
        !log.contains(".hidden") && !log.contains("x.tmp"),
        "hidden/temp files were looked at:\n{log}"
    );
}

#[test]
fn old_interface_orders_with_telegraf_sidecar() {
    let base = Base::new();
    let content = fping_order("127.0.0.1", 60, 5, "");
    let id = md5_of(content.as_bytes());
    assert_eq!(id.len(), 32);
    std::fs::create_dir_all(base.path().join("telegraf")).unwrap();
    std::fs::write(
        base.path().join("telegraf").join(&id),
        "measurement_name: tunnel\ntags:\n  tunnel_id: 12458\n",
    )
    .unwrap();
    base.write_order(&id, &content);
    let d = Daemon::start(&base, &[]);
    d.wait_log_line(
        &[
            "order started",
            &format!("order={id}"),
            "measurement=tunnel",
        ],
        EVENTUALLY,
    );
    assert!(wait_for(EVENTUALLY, || base
        .output(&id)
        .join("main.rrd")
        .exists()
        .then_some(()))
    .is_some());
}

fn md5_of(b: &[u8]) -> String {
    let out = Command::new("md5sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().expect("stdin").write_all(b)?;
            c.wait_with_output()
        });
    let out = out.expect("md5sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_owned()
}

#[test]
fn second_instance_is_refused_and_sigterm_stops_cleanly() {
    let base = Base::new();
    let mut d = Daemon::start(&base, &[]);
    for sub in ["orders", "output", "archive", "telegraf", ".lock"] {
        assert!(base.path().join(sub).exists(), "{sub} not created");
    }
    let out = Command::new(crate::support::bin())
        .arg("--basedir")
        .arg(base.path())
        .arg("run")
        .output()
        .expect("run second instance");
    assert!(!out.status.success(), "second instance started");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("another pingmachine is already running"),
        "{err}"
    );
    let st = d.stop();
    assert!(st.success(), "exit status {st:?}; log:\n{}", d.log_text());
    assert!(d.log_text().contains("stopped"));
}

/// `pingmachine healthcheck` against a real daemon: healthy through
/// `/-/healthy` with `--listen`, healthy through the lock without it, and
/// unhealthy once the daemon has stopped (its `.stats.json` stays behind).
#[test]
fn healthcheck_follows_the_daemon() {
    let check = |base: &Base| {
        let o = Command::new(bin())
            .args(["--basedir", base.path().to_str().unwrap(), "healthcheck"])
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
        )
    };
    let base = Base::new();
    let (code, out) = check(&base);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.starts_with("unhealthy: ") && out.contains("no daemon has run"),
        "{out}"
    );

    let port = testkit::free_tcp_port();
    let mut daemon = Daemon::start(&base, &["--listen", &port.to_string()]);
    let out = wait_for(Duration::from_secs(10), || {
        let (code, out) = check(&base);
        (code == Some(0)).then_some(out)
    })
    .expect("healthy within 10 s of start");
    assert!(
        out.contains(&format!("http://127.0.0.1:{port}/-/healthy answered 200")),
        "{out}"
    );
    daemon.stop();
    let (code, out) = check(&base);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("nothing holds the lock"), "{out}");

    let mut daemon = Daemon::start(&base, &[]);
    let out = wait_for(Duration::from_secs(10), || {
        let (code, out) = check(&base);
        (code == Some(0)).then_some(out)
    })
    .expect("healthy within 10 s of start");
    assert!(
        out.contains("holds the lock") && !out.contains("http://"),
        "{out}"
    );
    daemon.stop();
}
