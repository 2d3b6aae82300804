//! `--remote-write` into a real Prometheus (`--web.enable-remote-write-receiver`)
//! and a real VictoriaMetrics (Debian's `victoria-metrics`), both started
//! here on loopback: the values are the daemon's (`last_result`), every
//! series the daemon says it sent is there and no other, and a receiver
//! that is down for a while loses nothing that fits the queue.

use std::process::Command;
use std::time::Duration;

use crate::support::store::{total, Receiver};
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
