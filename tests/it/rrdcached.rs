//! `--rrdcached`: the daemon against a real rrdcached (Debian's package),
//! started here on a unix socket in a temporary directory, with a write
//! interval of an hour so that values stay in its cache until flushed.
//! Files are read back with the real `rrdtool`, and flushed with rrdtool's
//! own client (`rrdtool flushcached --daemon`). TCP probes to a loopback
//! listener: no root needed. Skips (saying so) without rrdcached.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use testkit::TcpListenerServer;

use crate::support::{
    bin, rrd_fetch, rrd_lastupdate, rrdtool, tool, wait_for, Base, Daemon, EVENTUALLY,
};

/// A real rrdcached in the foreground on `DIR/sock`, journal in `DIR/j`.
pub(crate) struct Cached {
    child: Option<Child>,
    dir: tempfile::TempDir,
    bin: PathBuf,
}

impl Cached {
    pub(crate) fn start(test: &str) -> Option<Cached> {
        let bin = tool(test, "rrdcached", "rrdcached")?;
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("j")).unwrap();
        let mut c = Cached {
            child: None,
            dir,
            bin,
        };
        c.spawn();
        Some(c)
    }

    fn sock(&self) -> PathBuf {
        self.dir.path().join("sock")
    }

    pub(crate) fn addr(&self) -> String {
        format!("unix:{}", self.sock().display())
    }

    fn spawn(&mut self) {
        // A socket left by a killed rrdcached is in the way (its init
        // script removes it too).
        let _ = std::fs::remove_file(self.sock());
        let log = std::fs::File::create(self.dir.path().join("rrdcached.log")).unwrap();
        let child = Command::new(&self.bin)
            .arg("-g")
            .args(["-l", &self.addr()])
            .args(["-p", self.dir.path().join("pid").to_str().unwrap()])
            .args(["-j", self.dir.path().join("j").to_str().unwrap()])
            .args(["-w", "3600", "-z", "1", "-f", "7200"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start rrdcached");
        self.child = Some(child);
        let sock = self.sock();
        assert!(
            wait_for(Duration::from_secs(10), || {
                std::os::unix::net::UnixStream::connect(&sock).ok()
            })
            .is_some(),
            "rrdcached did not listen: {}",
            std::fs::read_to_string(self.dir.path().join("rrdcached.log")).unwrap_or_default()
        );
    }

    /// kill -9: no flush, no goodbye.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `rrdtool flushcached --daemon ADDR FILE`.
    fn flush(&self, file: &Path) {
        let canonical = std::fs::canonicalize(file).unwrap();
        let o = Command::new("rrdtool")
            .args(["flushcached", "--daemon", &self.addr()])
            .arg(&canonical)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "rrdtool flushcached: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

impl Drop for Cached {
    fn drop(&mut self) {
        self.kill();
    }
}

fn order(port: u16, pings: u32) -> String {
    format!(
        "user: cached\nstep: 10\npings: {pings}\nprobe: tcp\ntcp:\n  host: 127.0.0.1\n  port: {port}\n  interval: 1000\n"
    )
}

/// The time of the next `last_result` of `id` after `after` (bounded).
fn next_round(base: &Base, d: &Daemon, id: &str, after: i64) -> i64 {
    wait_for(Duration::from_secs(30), || {
        let t = base.last_result(id)?.int("time");
        (t > after).then_some(t)
    })
    .unwrap_or_else(|| panic!("no round of {id} after {after}; log:\n{}", d.log_text()))
}

fn stats(base: &Base) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(base.path().join(".stats.json")).unwrap())
        .unwrap()
}

/// Values wait in rrdcached until flushed; `pingmachine graph` and the web
/// page flush before they draw; creates go through rrdcached.
#[test]
fn updates_wait_in_rrdcached_until_flushed_and_readers_flush() {
    let Some(cached) = Cached::start("updates_wait_in_rrdcached_until_flushed_and_readers_flush")
    else {
        return;
    };
    let target = TcpListenerServer::start(None);
    let base = Base::new();
    base.write_order("c/a", &order(target.addr().port(), 2));
    let port = testkit::free_tcp_port();
    let d = Daemon::start(
        &base,
        &[
            "--rrdcached",
            &cached.addr(),
            "--stats-interval",
            "1",
            "--listen",
            &port.to_string(),
        ],
    );
    let rrd = base.output("c/a").join("main.rrd");
    let t1 = next_round(&base, &d, "c/a", 0);
    assert!(rrd.exists());
    let held = wait_for(EVENTUALLY, || {
        let s = stats(&base);
        (s["rrdcached"]["sent"].as_u64()? >= 1).then_some(s)
    })
    .unwrap_or_else(|| panic!("no update sent: {}", d.log_text()));
    assert_eq!(held["rrdcached"]["creates"], 1, "created through rrdcached");
    assert_eq!(held["rrdcached"]["connected"], true);
    // Held in rrdcached's cache, not yet in the file.
    assert!(
        rrd_lastupdate(&rrd).0 < t1,
        "the round at {t1} reached the file before a flush"
    );
    cached.flush(&rrd);
    assert_eq!(rrd_lastupdate(&rrd).0, t1, "flushed by rrdtool's client");

    // `pingmachine graph --rrdcached` flushes before it draws.
    let t2 = next_round(&base, &d, "c/a", t1);
    wait_for(EVENTUALLY, || {
        (stats(&base)["rrdcached"]["sent"].as_u64()? >= 2).then_some(())
    })
    .unwrap();
    assert_eq!(rrd_lastupdate(&rrd).0, t1);
    let png = base.path().join("g.png");
    let o = Command::new(bin())
        .args(["--basedir", base.path().to_str().unwrap()])
        .args(["graph", "c/a", "--out", png.to_str().unwrap()])
        .args(["--rrdcached", &cached.addr()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(rrd_lastupdate(&rrd).0, t2, "graph flushed the file");

    // The web page's graph too.
    let t3 = next_round(&base, &d, "c/a", t2);
    wait_for(EVENTUALLY, || {
        (stats(&base)["rrdcached"]["sent"].as_u64()? >= 3).then_some(())
    })
    .unwrap();
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    use std::io::{Read, Write};
    write!(
        conn,
        "GET /graph/c/a?range=3600 HTTP/1.0\r\nHost: x\r\n\r\n"
    )
    .unwrap();
    let mut body = Vec::new();
    conn.read_to_end(&mut body).unwrap();
    assert!(body.starts_with(b"HTTP/1.0 200") || body.starts_with(b"HTTP/1.1 200"));
    assert_eq!(rrd_lastupdate(&rrd).0, t3, "the web graph flushed the file");
    // The metrics say how it goes.
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(conn, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut text = String::new();
    conn.read_to_string(&mut text).unwrap();
    assert!(
        text.contains("pingmachine_rrdcached_up 1"),
        "{}",
        text.lines()
            .filter(|l| l.contains("rrdcached"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(text.contains("pingmachine_rrdcached_updates_total{result=\"sent\"}"));
}

/// rrdcached killed (-9) and restarted mid-run: probing goes on, one log
/// line says so, updates queue and arrive once it is back: no gap.
#[test]
fn rrdcached_killed_and_restarted_mid_run_leaves_no_gap() {
    let Some(mut cached) = Cached::start("rrdcached_killed_and_restarted_mid_run_leaves_no_gap")
    else {
        return;
    };
    let target = TcpListenerServer::start(None);
    let base = Base::new();
    base.write_order("c/k", &order(target.addr().port(), 2));
    let d = Daemon::start(
        &base,
        &["--rrdcached", &cached.addr(), "--stats-interval", "1"],
    );
    let rrd = base.output("c/k").join("main.rrd");
    let t1 = next_round(&base, &d, "c/k", 0);
    wait_for(EVENTUALLY, || {
        (stats(&base)["rrdcached"]["sent"].as_u64()? >= 1).then_some(())
    })
    .unwrap_or_else(|| panic!("{}", d.log_text()));
    cached.kill();
    // Rounds go on, one step apart, while it is down.
    let t2 = next_round(&base, &d, "c/k", t1);
    let t3 = next_round(&base, &d, "c/k", t2);
    assert_eq!((t2 - t1, t3 - t2), (10, 10), "rounds kept their step");
    let down = d.log_text().matches("rrdcached cannot be reached").count();
    assert_eq!(down, 1, "one line says it is down:\n{}", d.log_text());
    assert_eq!(stats(&base)["rrdcached"]["connected"], false);
    cached.spawn();
    d.wait_log("rrdcached is reachable again", Duration::from_secs(20));
    let t4 = next_round(&base, &d, "c/k", t3);
    wait_for(EVENTUALLY, || {
        let s = stats(&base);
        (s["rrdcached"]["queued"].as_u64()? == 0 && s["rrdcached"]["sent"].as_u64()? >= 4)
            .then_some(())
    })
    .unwrap_or_else(|| panic!("{}", d.log_text()));
    cached.flush(&rrd);
    assert_eq!(rrd_lastupdate(&rrd).0, t4);
    // Every round is in the file: those sent before the kill (kept in
    // rrdcached's journal), while it was down (queued here), and after.
    let rows = rrd_fetch(&rrd, "AVERAGE", 10, t1 - 10, t4);
    for t in [t1, t2, t3, t4] {
        let row = rows.iter().find(|(rt, _)| *rt == t);
        assert!(
            row.is_some_and(|(_, v)| v[0] == Some(0.0)),
            "round {t} missing from main.rrd: {rows:?}"
        );
    }
    assert_eq!(stats(&base)["rrdcached"]["dropped"], 0);
}

/// A shape change sets the old file aside, and an ended order is archived,
/// each with the values rrdcached still held written into it first.
#[test]
fn rrdcached_values_are_flushed_before_set_aside_and_archive() {
    let Some(cached) = Cached::start("rrdcached_values_are_flushed_before_set_aside_and_archive")
    else {
        return;
    };
    let target = TcpListenerServer::start(None);
    let port = target.addr().port();
    let base = Base::new();
    base.write_order("c/m", &order(port, 2));
    // A main.rrd that is not an RRD: set aside, a new one created.
    std::fs::create_dir_all(base.output("c/bad")).unwrap();
    std::fs::write(base.output("c/bad").join("main.rrd"), "not an rrd\n").unwrap();
    base.write_order("c/bad", &order(port, 2));
    let d = Daemon::start(
        &base,
        &["--rrdcached", &cached.addr(), "--stats-interval", "1"],
    );
    let rrd = base.output("c/m").join("main.rrd");
    let bad = base.output("c/bad");
    let tb = next_round(&base, &d, "c/bad", 0);
    assert_eq!(
        std::fs::read_to_string(bad.join("corrupted_main.rrd")).unwrap(),
        "not an rrd\n"
    );
    cached.flush(&bad.join("main.rrd"));
    assert_eq!(
        rrd_lastupdate(&bad.join("main.rrd")).0,
        tb,
        "the new file takes the rounds"
    );
    let t1 = next_round(&base, &d, "c/m", 0);
    let t2 = next_round(&base, &d, "c/m", t1);
    // pings 2 → 3: the old file is set aside with its pending values.
    base.write_order("c/m", &order(port, 3));
    d.wait_log_line(
        &["step or pings changed", "order=c/m"],
        Duration::from_secs(10),
    );
    let aside: PathBuf = std::fs::read_dir(base.output("c/m"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            let n = p.file_name().unwrap().to_str().unwrap();
            n.starts_with("main.") && n.ends_with(".rrd") && n != "main.rrd"
        })
        .unwrap_or_else(|| panic!("no file set aside: {}", d.log_text()));
    assert!(
        rrd_lastupdate(&aside).0 >= t2,
        "the set-aside file lacks the rounds rrdcached held (last {} < {t2})",
        rrd_lastupdate(&aside).0
    );
    assert_eq!(
        rrdtool(&["info", aside.to_str().unwrap()])
            .matches("].index")
            .count(),
        4
    );
    // The new file gets the new rounds.
    let t3 = wait_for(Duration::from_secs(30), || {
        let r = base.last_result("c/m")?;
        (r.int("pings") == 3).then(|| r.int("time"))
    })
    .unwrap();
    // The order ends: archived, with what rrdcached held, and no flush by
    // anyone but the daemon.
    let flushes = stats(&base)["rrdcached"]["flushes"].as_u64().unwrap();
    base.remove_order("c/m");
    let archived = base.path().join("archive/c/m/main.rrd");
    wait_for(Duration::from_secs(10), || archived.exists().then_some(()))
        .unwrap_or_else(|| panic!("not archived: {}", d.log_text()));
    assert!(!rrd.exists());
    let last = rrd_lastupdate(&archived).0;
    assert!(
        last >= t3,
        "the archived file lacks rounds (last {last} < {t3})"
    );
    wait_for(EVENTUALLY, || {
        (stats(&base)["rrdcached"]["flushes"].as_u64()? > flushes).then_some(())
    })
    .unwrap();
}

/// rrdcached down from the start, with a queue of one update: rounds and
/// last_result go on, main.rrd is created locally, the overflow is counted
/// and said once.
#[test]
fn rrdcached_down_with_a_full_queue_drops_and_counts() {
    let target = TcpListenerServer::start(None);
    let base = Base::new();
    base.write_order("c/x", &order(target.addr().port(), 2));
    base.write_order("c/y", &order(target.addr().port(), 2));
    let nowhere = base.path().join("no-rrdcached.sock");
    let d = Daemon::start(
        &base,
        &[
            "--rrdcached",
            &format!("unix:{}", nowhere.display()),
            "--rrdcached-queue",
            "1",
            "--stats-interval",
            "1",
        ],
    );
    let tx = next_round(&base, &d, "c/x", 0);
    next_round(&base, &d, "c/y", 0);
    next_round(&base, &d, "c/x", tx);
    assert!(
        base.output("c/x").join("main.rrd").exists(),
        "created locally"
    );
    let s = wait_for(EVENTUALLY, || {
        let s = stats(&base);
        (s["rrdcached"]["dropped"].as_u64()? >= 2).then_some(s)
    })
    .unwrap_or_else(|| panic!("{}\n{}", stats(&base), d.log_text()));
    assert_eq!(s["rrdcached"]["queued"], 1);
    assert_eq!(s["rrdcached"]["connected"], false);
    let log = d.log_text();
    assert_eq!(
        log.matches("rrdcached cannot be reached").count(),
        1,
        "{log}"
    );
    assert_eq!(log.matches("update queue is full").count(), 1, "{log}");
    assert!(!log.contains("panicked"));
}

/// Bad addresses are usage errors that name the flag.
#[test]
fn bad_rrdcached_addresses_are_usage_errors() {
    let base = Base::new();
    for bad in ["unix:relative.sock", "host:0", "[::1"] {
        let o = Command::new(bin())
            .args(["--basedir", base.path().to_str().unwrap(), "run"])
            .args(["--rrdcached", bad])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{bad}: {err}");
        assert!(err.contains("--rrdcached"), "{bad}: {err}");
    }
}
