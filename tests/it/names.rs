//! Host names against a real DNS server (`testkit`'s, on loopback, named
//! by `--dns-server`): looked up again when their TTL runs out, a new
//! address followed by the `ip` label and (`--influx-ip-tag`) the `ip` tag
//! of line protocol read from a UDP socket, a failing server leaving the
//! last address in use, and the lookups counted.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::metrics::get;
use crate::support::{can_ping, wait_for, Base, Daemon};
use testkit::DnsServer;

/// The value of the unlabelled series `name` in a scrape.
fn value(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// The `ip` labels of `smokeping_requests_total` for `order`.
fn ips(text: &str, order: &str) -> Vec<String> {
    let want = format!("order=\"{order}\"");
    text.lines()
        .filter(|l| l.starts_with("smokeping_requests_total{") && l.contains(&want))
        .filter_map(|l| {
            let rest = l.split("ip=\"").nth(1)?;
            Some(rest.split('"').next()?.to_owned())
        })
        .collect()
}

#[test]
fn host_names_follow_their_dns_ttl_and_keep_the_last_address_when_lookups_fail() {
    let test = "host_names_follow_their_dns_ttl_and_keep_the_last_address_when_lookups_fail";
    if !can_ping(test) {
        return;
    }
    let dns = DnsServer::start(Duration::ZERO, "NOERROR");
    dns.set_answer(Ipv4Addr::new(127, 0, 0, 2), Ipv6Addr::LOCALHOST, 1);
    let base = Base::new();
    let order = |host_line: &str| {
        format!("user: u\nstep: 10\npings: 2\nprobe: fping\nfping: {{{host_line}}}\n")
    };
    base.write_order(
        "moving",
        &format!(
            "{}measurement_name: lat\ntags: {{t: x}}\n",
            order("host: moving.test")
        ),
    );
    // Line protocol over UDP, read by the test.
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let udp_addr = udp.local_addr().unwrap();
    let lines = Arc::new(Mutex::new(String::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (lines, stop) = (lines.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            // Bounded: the test stops it, and it gives up after 10 minutes.
            let until = Instant::now() + Duration::from_secs(600);
            while !stop.load(std::sync::atomic::Ordering::SeqCst) && Instant::now() < until {
                if let Ok(n) = udp.recv(&mut buf) {
                    lines
                        .lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            }
        })
    };
    base.write_order("moving6", &order("host: moving.test, ipv6: true"));
    let port = testkit::free_tcp_port();
    let d = Daemon::start(
        &base,
        &[
            "--listen",
            &port.to_string(),
            "--dns-server",
            &dns.addr().to_string(),
            "--dns-min-ttl",
            "1",
            "--dns-max-ttl",
            "60",
            "--influx-url",
            &format!("udp://{udp_addr}"),
            "--influx-ip-tag",
        ],
    );
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let scrape = || get(addr, "/metrics", None).2;
    let wait_ips = |order: &str, want: &str, within_s: u64| {
        wait_for(Duration::from_secs(within_s), || {
            let text = scrape();
            (ips(&text, order) == [want]).then_some(text)
        })
        .unwrap_or_else(|| {
            panic!(
                "{order}: never only ip {want}; ips {:?}; log:\n{}",
                ips(&scrape(), order),
                d.log_text()
            )
        })
    };

    // The first lookups: A for the order that wants IPv4, AAAA for IPv6.
    wait_ips("moving", "127.0.0.2", 40);
    wait_ips("moving6", "::1", 40);

    // A new address, TTL 1 s: followed from a round soon after, said once.
    dns.set_answer(Ipv4Addr::new(127, 0, 0, 3), Ipv6Addr::LOCALHOST, 1);
    let text = wait_ips("moving", "127.0.0.3", 40);
    assert!(value(&text, "pingmachine_host_name_changes_total").unwrap() >= 1.0);
    let said = |needle: &str| d.log_text().matches(needle).count();
    assert_eq!(
        said("host name now resolves to another address"),
        1,
        "log:\n{}",
        d.log_text()
    );
    // The line-protocol tag follows too.
    let tagged = |ip: &str| {
        let want = format!("lat,ip={ip},t=x median_rtt=");
        wait_for(Duration::from_secs(40), || {
            lines.lock().unwrap().contains(&want).then_some(())
        })
        .unwrap_or_else(|| panic!("no line {want:?} in {}", lines.lock().unwrap()))
    };
    tagged("127.0.0.2");
    tagged("127.0.0.3");
    // Its pings reach the new address.
    let time_before = base.last_result("moving").map(|r| r.int("time"));
    wait_for(Duration::from_secs(40), || {
        let r = base.last_result("moving")?;
        (Some(r.int("time")) != time_before && r.int("loss") == 0).then_some(())
    })
    .unwrap_or_else(|| panic!("no clean round after the change; log:\n{}", d.log_text()));

    // The TTL is followed, within the bounds: at 4 s, a lookup per 4 s
    // per family, not one per round nor one per second. (Lookups can only
    // be later than due, never earlier: the bound is an upper one.)
    dns.set_answer(Ipv4Addr::new(127, 0, 0, 3), Ipv6Addr::LOCALHOST, 4);
    std::thread::sleep(Duration::from_secs(2));
    let (q0, t0) = (dns.queries(), Instant::now());
    std::thread::sleep(Duration::from_secs(20));
    let (q1, secs) = (dns.queries(), t0.elapsed().as_secs_f64());
    let most = 2.0 * (secs / 4.0 + 2.0);
    assert!(
        (q1 - q0) as f64 <= most && q1 > q0,
        "{} queries in {secs:.1} s at TTL 4 s for two families (at most {most:.0})",
        q1 - q0
    );

    // A failing server: the last address stays in use, failures are
    // counted, and said once.
    dns.set_rcode("SERVFAIL");
    let failures = wait_for(Duration::from_secs(40), || {
        let v = value(&scrape(), "pingmachine_host_name_lookup_failures_total")?;
        (v >= 4.0).then_some(v)
    })
    .unwrap_or_else(|| panic!("failures not counted; log:\n{}", d.log_text()));
    assert!(failures >= 4.0);
    let since = base.last_result("moving").unwrap().int("time");
    let r = wait_for(Duration::from_secs(40), || {
        let r = base.last_result("moving")?;
        (r.int("time") > since).then_some(r)
    })
    .unwrap_or_else(|| panic!("no round while lookups fail; log:\n{}", d.log_text()));
    assert_eq!(r.int("loss"), 0, "the last address is still probed");
    assert_eq!(ips(&scrape(), "moving"), ["127.0.0.3"]);
    assert_eq!(
        said("host name lookup failed; probing its last address"),
        2,
        "once per name and family; log:\n{}",
        d.log_text()
    );

    // The server answers again: back to normal, said once more.
    dns.set_rcode("NOERROR");
    dns.set_answer(Ipv4Addr::new(127, 0, 0, 2), Ipv6Addr::LOCALHOST, 1);
    wait_ips("moving", "127.0.0.2", 40);
    let text = scrape();
    assert!(value(&text, "pingmachine_host_names").unwrap() >= 2.0);
    assert!(value(&text, "pingmachine_host_name_lookups_total").unwrap() >= 6.0);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    reader.join().unwrap();
}

#[test]
fn bad_dns_settings_are_clear_errors() {
    let base = Base::new();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(crate::support::bin())
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
    let (code, err) = run(&["--dns-server", "ns.example"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--dns-server") && err.contains("IP:PORT"),
        "{err}"
    );
    let (code, err) = run(&["--dns-min-ttl", "0"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--dns-min-ttl"), "{err}");
    let (code, err) = run(&["--dns-max-ttl", "86401"]);
    assert_eq!(code, Some(2), "{err}");
    let (code, err) = run(&["--dns-min-ttl", "100", "--dns-max-ttl", "50"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("--dns-min-ttl 100 is above --dns-max-ttl 50"),
        "{err}"
    );
}
