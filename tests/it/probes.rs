//! Every non-ICMP probe end to end through the real daemon, against real
//! loopback servers from `testkit`: HTTP/HTTPS (delays, statuses, early
//! close, TLS), TCP, an SSH banner server, a DNS responder, and fping `-C`
//! fixture scripts for sping/pping/exec. Results are read back from
//! `last_result` and with the real `rrdtool`. No root needed.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use crate::support::{rrd_lastupdate, wait_for, Base, Daemon, LastResult, EVENTUALLY};
use testkit::{DnsServer, HttpServer, SshBannerServer, TcpListenerServer};

const HEAD: &str = "user: test\nstep: 10\npings: 2\n";

fn wait_result(base: &Base, d: &Daemon, id: &str) -> LastResult {
    wait_for(Duration::from_secs(40), || base.last_result(id))
        .unwrap_or_else(|| panic!("{id}: no last_result; log:\n{}", d.log_text()))
}

#[test]
fn every_probe_type_measures_through_the_daemon() {
    let base = Base::new();
    let http = HttpServer::start(false);
    let https = HttpServer::start(true);
    let tcp = TcpListenerServer::start(None);
    let ssh = SshBannerServer::start("SSH-2.0-testkit\r\n", Duration::ZERO);
    let not_ssh = SshBannerServer::start("220 smtp.example ESMTP\r\n", Duration::ZERO);
    let dns = DnsServer::start(Duration::ZERO, "NOERROR");
    let dns_slow = DnsServer::start(Duration::from_millis(200), "NOERROR");
    let dns_nx = DnsServer::start(Duration::ZERO, "NXDOMAIN");
    let refused = testkit::refused_addr();
    let scripts = base.path().join("scripts");
    std::fs::create_dir_all(&scripts).unwrap();
    let exec_dir = scripts.join("exec");
    let sping_dir = scripts.join("sping");
    std::fs::create_dir_all(&exec_dir).unwrap();
    std::fs::create_dir_all(&sping_dir).unwrap();
    let exec_script = testkit::fping_c_script(&exec_dir, "target-a : 1.00 3.00\n");
    let sping_script = testkit::fping_c_script(&sping_dir, "1-ff00:0:110,127.0.0.1 : 2.50 -\n");
    let ca = base.path().join("ca.pem");
    std::fs::write(&ca, https.ca_pem()).unwrap();

    let orders: Vec<(&str, String)> = vec![
        ("web/delay", format!("{HEAD}probe: httping\nhttping:\n  url: {}\n", http.url("/delay/200"))),
        ("web/fail", format!("{HEAD}probe: httping\nhttping:\n  url: {}\n  http_codes_as_failure: 503\n", http.url("/status/503"))),
        ("web/notfound", format!("{HEAD}probe: httping\nhttping:\n  url: {}\n", http.url("/status/404"))),
        ("web/short", format!("{HEAD}probe: httping\nhttping:\n  url: {}\n  method: GET\n", http.url("/close-early"))),
        ("web/tls", format!("{HEAD}probe: httping\nhttping:\n  url: {}\n  method: GET\n", https.url("/"))),
        ("tcp/ok", format!("{HEAD}probe: tcp\ntcp:\n  host: 127.0.0.1\n  port: {}\n", tcp.addr().port())),
        ("tcp/refused", format!("{HEAD}probe: tcp\ntcp:\n  host: 127.0.0.1\n  port: {}\n", refused.port())),
        ("ssh/ok", format!("{HEAD}probe: ssh\nssh:\n  host: 127.0.0.1\n  port: {}\n", ssh.addr().port())),
        ("ssh/notssh", format!("{HEAD}probe: ssh\nssh:\n  host: 127.0.0.1\n  port: {}\n", not_ssh.addr().port())),
        ("dns/ok", format!("{HEAD}probe: dns\ndns:\n  server: 127.0.0.1\n  port: {}\n  name: example.com\n", dns.addr().port())),
        ("dns/slow", format!("{HEAD}probe: dns\ndns:\n  server: 127.0.0.1\n  port: {}\n  name: example.com\n", dns_slow.addr().port())),
        ("dns/rcode", format!("{HEAD}probe: dns\ndns:\n  server: 127.0.0.1\n  port: {}\n  name: example.com\n  expect_rcode: NOERROR\n", dns_nx.addr().port())),
        ("ext/exec", format!("{HEAD}probe: exec\nexec:\n  probe: fake\n  host: target-a\n  args: [--extra]\n")),
        ("ext/sping", format!("{HEAD}probe: sping\nsping:\n  host: 1-ff00:0:110,127.0.0.1\n  flags: --sciond 127.0.0.1:30255\n")),
        ("ext/pping", format!("{HEAD}probe: pping\npping:\n  host: 1-ff00:0:110,127.0.0.1\n")),
        ("ext/unconfigured", format!("{HEAD}probe: exec\nexec:\n  probe: nosuch\n  host: target-a\n")),
    ];
    for (id, yaml) in &orders {
        base.write_order(id, yaml);
    }
    let exec_flag = format!(
        "fake={} -C {{pings}} -p {{interval_ms}}",
        exec_script.display()
    );
    let sping_flag = format!(
        "{} -C {{pings}} -q -p {{interval_ms}}",
        sping_script.display()
    );
    let d = Daemon::start(
        &base,
        &[
            "--http-ca-file",
            ca.to_str().unwrap(),
            "--exec-probe",
            &exec_flag,
            "--sping-command",
            &sping_flag,
            "--pping-command",
            "/nonexistent/pping -C {pings}",
        ],
    );

    let r = |id: &str| wait_result(&base, &d, id);
    let loss = |id: &str| r(id).int("loss");
    let median = |id: &str| {
        r(id)
            .rtt("median")
            .unwrap_or_else(|| panic!("{id}: no median"))
    };

    // httping: RTT includes the server's delay; statuses; early close; TLS.
    let m = median("web/delay");
    assert!((0.2..1.0).contains(&m), "web/delay median {m}");
    assert_eq!(loss("web/delay"), 0);
    assert_eq!(loss("web/fail"), 2, "a listed status is a failure");
    assert_eq!(loss("web/notfound"), 0, "an unlisted status is an answer");
    assert_eq!(loss("web/short"), 2, "a short read is a failure");
    assert_eq!(
        loss("web/tls"),
        0,
        "https with the CA from --http-ca-file; log:\n{}",
        d.log_text()
    );
    assert!(
        http.connections() >= 8,
        "one connection per ping: {}",
        http.connections()
    );
    // tcp and ssh
    assert_eq!(loss("tcp/ok"), 0);
    assert!(median("tcp/ok") < 0.05);
    assert_eq!(loss("tcp/refused"), 2);
    assert_eq!(loss("ssh/ok"), 0);
    assert_eq!(loss("ssh/notssh"), 2, "no SSH banner: lost");
    // dns
    assert_eq!(loss("dns/ok"), 0);
    let m = median("dns/slow");
    assert!((0.2..1.0).contains(&m), "dns/slow median {m}");
    assert_eq!(loss("dns/rcode"), 2, "unexpected rcode: lost");
    // external commands: fping -C output parsed, host last, no shell
    let e = r("ext/exec");
    assert_eq!(e.int("loss"), 0);
    assert_eq!(e.get("median"), "3.000000e-03");
    assert_eq!(e.get("min"), "1.000000e-03");
    let argv = std::fs::read_to_string(exec_dir.join("argv.txt")).unwrap();
    let argv: Vec<&str> = argv.lines().collect();
    assert_eq!(
        argv,
        ["-C", "2", "-p", "1000", "--extra", "target-a"],
        "exec argv"
    );
    let s = r("ext/sping");
    assert_eq!((s.int("loss"), s.get("median")), (1, "2.500000e-03"));
    let argv = std::fs::read_to_string(sping_dir.join("argv.txt")).unwrap();
    assert!(
        argv.ends_with("--sciond\n127.0.0.1:30255\n1-ff00:0:110,127.0.0.1\n"),
        "sping argv:\n{argv}"
    );
    // A missing command or an unconfigured exec probe: a clear per-order error, nothing stored.
    d.wait_log_line(
        &[
            "order=ext/pping",
            "probe command failed",
            "/nonexistent/pping",
        ],
        EVENTUALLY,
    );
    d.wait_log_line(&["order=ext/unconfigured", "not configured"], EVENTUALLY);
    assert!(base.last_result("ext/pping").is_none());
    assert!(base.last_result("ext/unconfigured").is_none());

    // RRDs of the probes hold the same loss.
    for (id, want) in [
        ("web/delay", 0.0),
        ("web/fail", 2.0),
        ("tcp/refused", 2.0),
        ("dns/ok", 0.0),
        ("ext/sping", 1.0),
    ] {
        let (_, values) = rrd_lastupdate(&base.output(id).join("main.rrd"));
        assert_eq!(
            values[0].1,
            Some(want),
            "{id}: loss in main.rrd: {values:?}; log:\n{}",
            d.log_text()
        );
    }
}
