//! Drop-in for the Perl original, through the real binary: its command
//! line (foreground `--debug`, and the detached form logging to syslog),
//! `--user`, sidecars of new-interface ids, the process title, and the
//! rules that logging can never stop the daemon and that a dead thread
//! stops it with an error.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::io::Read;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::support::{bin, can_ping, require_root, skip, tool, wait_for, Base, Tmpfs};
use testkit::TcpListenerServer;

fn fping_order(host: &str, extra: &str) -> String {
    format!("user: dropin\nstep: 10\npings: 2\nprobe: fping\nfping:\n  host: {host}\n{extra}")
}

fn tcp_order(port: u16) -> String {
    format!(
        "user: dropin\nstep: 10\npings: 2\nprobe: tcp\ntcp:\n  host: 127.0.0.1\n  port: {port}\n  interval: 1000\n"
    )
}

/// Waits (bounded) for the child to exit.
fn wait_exit(child: &mut Child, within: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            return Some(st);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn kill(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

/// Kills the child on drop (every exit path).
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// `/proc/PID/cmdline` as shown by `ps`: NULs as spaces, trimmed.
fn cmdline(pid: u32) -> String {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    String::from_utf8_lossy(&raw)
        .replace('\0', " ")
        .trim()
        .to_owned()
}

/// A field of `/proc/PID/status` (`Uid:` → the tab-separated rest).
fn status_field(pid: u32, key: &str) -> String {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// The original's foreground form: `pingmachine --debug --basedir DIR
/// --telegraf HOST:PORT` logs to the terminal, probes, sends line protocol
/// for old- and new-interface sidecars, and shows its process title.
#[test]
fn timing_original_debug_form_runs_in_the_foreground() {
    if !can_ping("timing_original_debug_form_runs_in_the_foreground") {
        return;
    }
    let base = Base::new();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let old = fping_order("127.0.0.1", "");
    let md5 = crate::support::md5_hex(old.as_bytes());
    base.write_order(&md5, &old);
    base.write_order("app/t1", &fping_order("127.0.0.2", ""));
    fs::create_dir_all(base.path().join("telegraf/app")).unwrap();
    fs::write(
        base.path().join("telegraf").join(&md5),
        "measurement_name: old_if\n",
    )
    .unwrap();
    fs::write(
        base.path().join("telegraf/app/t1"),
        "measurement_name: new_if\n",
    )
    .unwrap();
    let log = base.path().join("daemon.log");
    let child = Command::new(bin())
        .args(["--debug", "--basedir"])
        .arg(base.path())
        .arg("--telegraf")
        .arg(udp.local_addr().unwrap().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut d = Reaper(child);
    let pid = d.0.id();
    let log_text = || fs::read_to_string(&log).unwrap_or_default();
    for id in [md5.as_str(), "app/t1"] {
        wait_for(Duration::from_secs(45), || base.last_result(id))
            .unwrap_or_else(|| panic!("{id}: no result; log:\n{}", log_text()));
    }
    // Both sidecars reach the line-protocol destination.
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(45);
    while Instant::now() < deadline
        && !(seen.contains("old_if median_rtt=") && seen.contains("new_if median_rtt="))
    {
        let mut buf = [0u8; 2048];
        if let Ok(n) = udp.recv(&mut buf) {
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            seen.push('\n');
        }
    }
    assert!(
        seen.contains("old_if median_rtt=") && seen.contains("new_if median_rtt="),
        "line protocol seen: {seen}\nlog:\n{}",
        log_text()
    );
    // In the foreground, logging to the terminal at debug level.
    assert!(
        log_text().contains("DEBUG pingmachine::job: round"),
        "{}",
        log_text()
    );
    // The original's process title.
    assert_eq!(cmdline(pid), "pingmachine [orders: 2]");
    kill(pid, "TERM");
    let st = wait_exit(&mut d.0, Duration::from_secs(15)).expect("stops on SIGTERM");
    assert!(st.success(), "{st:?}\n{}", log_text());
}

/// The listener on `/dev/log` in a private mount namespace: every datagram
/// becomes a line of the file given as its argument.
const SYSLOG_LISTENER: &str = r#"
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("/dev/log")
with open(sys.argv[1], "ab", buffering=0) as f:
    while True:
        f.write(s.recv(65536) + b"\n")
"#;

/// The original's default form: `pingmachine --basedir DIR` detaches (a
/// new session, `/` as working directory, standard streams on /dev/null)
/// and logs to syslog, here a listener on `/dev/log` in a private mount
/// namespace (a tmpfs on /dev there), so the machine's own /dev is not
/// touched.
#[test]
fn timing_original_daemon_form_detaches_and_logs_to_syslog() {
    const TEST: &str = "timing_original_daemon_form_detaches_and_logs_to_syslog";
    if !require_root(TEST, "a mount namespace") || !can_ping(TEST) {
        return;
    }
    if tool(TEST, "unshare", "util-linux").is_none() || tool(TEST, "python3", "python3").is_none() {
        return;
    }
    let base = Base::new();
    base.write_order("app/v4", &fping_order("127.0.0.1", ""));
    let syslog = base.path().join("syslog.txt");
    fs::write(&syslog, "").unwrap();
    let script = format!(
        r#"set -e
mount -t tmpfs -o size=1m,mode=755 pm-test-dev /dev
mknod -m 666 /dev/null c 1 3
mknod -m 666 /dev/zero c 1 5
mknod -m 666 /dev/urandom c 1 9
timeout 300 python3 -c '{SYSLOG_LISTENER}' '{out}' >/dev/null 2>&1 &
echo "listener=$!"
i=0; while [ ! -S /dev/log ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done
'{bin}' --basedir '{base}' --stats-interval 1
echo "rc=$?"
"#,
        out = syslog.display(),
        bin = bin(),
        base = base.path().display(),
    );
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let listener: Option<u32> = text
        .lines()
        .find_map(|l| l.strip_prefix("listener="))
        .and_then(|p| p.trim().parse().ok());
    struct KillListener(Option<u32>);
    impl Drop for KillListener {
        fn drop(&mut self) {
            if let Some(p) = self.0 {
                kill(p, "TERM");
            }
        }
    }
    let _listener = KillListener(listener);
    assert!(
        out.status.success() && text.contains("rc=0"),
        "the launching process returns at once with status 0: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The daemon runs on: its pid from .stats.json.
    let stats = base.path().join(".stats.json");
    let pid: u32 = wait_for(Duration::from_secs(20), || {
        let t = fs::read_to_string(&stats).ok()?;
        let v: serde_json::Value = serde_json::from_str(&t).ok()?;
        v["pid"].as_u64().map(|p| p as u32)
    })
    .expect("the detached daemon writes .stats.json");
    struct KillDaemon(u32);
    impl Drop for KillDaemon {
        fn drop(&mut self) {
            kill(self.0, "KILL");
        }
    }
    let guard = KillDaemon(pid);
    // Detached: its own session, / as working directory, no terminal.
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    assert_eq!(
        fields[3],
        pid.to_string(),
        "session leader (setsid): {stat}"
    );
    assert_eq!(
        fs::read_link(format!("/proc/{pid}/cwd")).unwrap(),
        PathBuf::from("/")
    );
    for fd in 0..3 {
        assert_eq!(
            fs::read_link(format!("/proc/{pid}/fd/{fd}")).unwrap(),
            PathBuf::from("/dev/null"),
            "fd {fd}"
        );
    }
    assert_eq!(cmdline(pid), "pingmachine [orders: 1]");
    wait_for(Duration::from_secs(45), || base.last_result("app/v4")).expect("results");
    // Syslog: facility daemon, ident pingmachine, the pid.
    let prefix = format!("<30>pingmachine[{pid}]: ");
    let started = wait_for(Duration::from_secs(10), || {
        let t = fs::read_to_string(&syslog).ok()?;
        t.lines()
            .find(|l| l.starts_with(&prefix) && l.contains("pingmachine started"))
            .map(str::to_owned)
    });
    assert!(
        started.is_some(),
        "no start line in syslog: {}",
        fs::read_to_string(&syslog).unwrap_or_default()
    );
    // Debug lines are not sent without --debug.
    assert!(!fs::read_to_string(&syslog).unwrap().contains("<31>"));
    kill(pid, "TERM");
    let gone = wait_for(Duration::from_secs(15), || {
        (!Path::new(&format!("/proc/{pid}")).exists()).then_some(())
    });
    assert!(gone.is_some(), "the daemon stops on SIGTERM");
    std::mem::forget(guard);
    let t = fs::read_to_string(&syslog).unwrap();
    assert!(
        t.lines()
            .any(|l| l.starts_with(&prefix) && l.contains("stopped")),
        "{t}"
    );
}

/// A system user for one test, removed on every exit path.
struct TestUser {
    name: String,
}

impl TestUser {
    fn create() -> Option<TestUser> {
        let name = format!("pmtest{}", std::process::id() % 1_000_000);
        let ok = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--user-group",
                "--shell",
                "/usr/sbin/nologin",
                &name,
            ])
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(TestUser { name })
    }

    fn ids(&self) -> (u32, u32) {
        let out = |flag: &str| -> u32 {
            let o = Command::new("id")
                .args([flag, &self.name])
                .output()
                .unwrap();
            String::from_utf8_lossy(&o.stdout).trim().parse().unwrap()
        };
        (out("-u"), out("-g"))
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.name).status();
        let _ = Command::new("groupdel")
            .arg(&self.name)
            .stderr(Stdio::null())
            .status();
    }
}

fn chown(path: &Path, user: &str) {
    let st = Command::new("chown")
        .arg(format!("{user}:{user}"))
        .arg(path)
        .status()
        .unwrap();
    assert!(st.success());
}

/// `--user`: the daemon takes the lock and opens its ICMP sockets as root,
/// then runs as the user (uid, gid, groups) with CAP_NET_RAW only, and
/// writes its files as that user. An unknown user, or a base directory the
/// user cannot write, is a clear start-up error.
#[test]
fn timing_user_switch_keeps_only_cap_net_raw() {
    const TEST: &str = "timing_user_switch_keeps_only_cap_net_raw";
    if !require_root(TEST, "useradd") || !can_ping(TEST) {
        return;
    }
    if tool(TEST, "useradd", "passwd").is_none() {
        return;
    }
    let user = TestUser::create().expect("useradd a test user");
    let (uid, gid) = user.ids();
    let outer = tempfile::tempdir().unwrap();
    fs::set_permissions(
        outer.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let root = outer.path().join("base");
    fs::create_dir_all(root.join("orders")).unwrap();
    chown(&root, &user.name);
    chown(&root.join("orders"), &user.name);
    let base = Base::at(&root);
    base.write_order("app/v4", &fping_order("127.0.0.1", ""));
    let log = outer.path().join("daemon.log");
    let child = Command::new(bin())
        .arg("--basedir")
        .arg(&root)
        .args(["run", "--debug", "--user", &user.name])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut d = Reaper(child);
    let pid = d.0.id();
    let log_text = || fs::read_to_string(&log).unwrap_or_default();
    wait_for(Duration::from_secs(45), || base.last_result("app/v4"))
        .unwrap_or_else(|| panic!("no result as {}; log:\n{}", user.name, log_text()));
    let four = |v: u32| format!("{v}\t{v}\t{v}\t{v}");
    assert_eq!(status_field(pid, "Uid:"), four(uid));
    assert_eq!(status_field(pid, "Gid:"), four(gid));
    assert_eq!(status_field(pid, "Groups:"), gid.to_string());
    let cap_eff = status_field(pid, "CapEff:");
    assert!(
        cap_eff == "0000000000002000" || cap_eff == "0000000000000000",
        "CapEff {cap_eff}: CAP_NET_RAW (bit 13) or nothing"
    );
    assert_eq!(status_field(pid, "CapPrm:"), "0000000000002000");
    assert_eq!(status_field(pid, "CapBnd:"), "0000000000002000");
    assert_eq!(status_field(pid, "CapAmb:"), "0000000000000000");
    use std::os::unix::fs::MetadataExt;
    for f in [
        base.output("app/v4").join("last_result"),
        base.output("app/v4").join("main.rrd"),
        root.join(".lock"),
    ] {
        assert_eq!(
            fs::metadata(&f).unwrap().uid(),
            uid,
            "{} owner",
            f.display()
        );
    }
    assert!(log_text().contains("running as an unprivileged user"));
    kill(pid, "TERM");
    let st = wait_exit(&mut d.0, Duration::from_secs(15)).expect("stops");
    assert!(st.success(), "{st:?}\n{}", log_text());

    // Refusals, with the reason on standard error and status 1.
    let refuse = |base: &Path, user: &str| -> String {
        let o = Command::new(bin())
            .arg("--basedir")
            .arg(base)
            .args(["run", "--user", user])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "{o:?}");
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let e = refuse(&root, "pm-no-such-user-zz");
    assert!(e.contains("--user pm-no-such-user-zz: no such user"), "{e}");
    let root_owned = outer.path().join("root-owned");
    fs::create_dir_all(&root_owned).unwrap();
    let e = refuse(&root_owned, &user.name);
    assert!(
        e.contains("cannot use the base directory")
            && e.contains(&format!("install -d -o {}", user.name)),
        "{e}"
    );
    let e = refuse(&outer.path().join("missing"), &user.name);
    assert!(e.contains("does not exist"), "{e}");
}

/// SIGTERM stops the daemon promptly although its standard error is a pipe
/// whose reader has gone (every log write fails with EPIPE).
#[test]
fn timing_sigterm_with_a_closed_stderr_pipe_exits_promptly() {
    let base = Base::new();
    let server = TcpListenerServer::start(None);
    base.write_order("app/tcp", &tcp_order(server.addr().port()));
    // A short command line ("pm run -d", the base directory from the
    // environment): the process title needs the environment's room too.
    use std::os::unix::process::CommandExt;
    let mut child = Command::new(bin())
        .arg0("pm")
        .args(["run", "-d"])
        .env("PINGMACHINE_BASEDIR", base.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read the first bytes, then close the pipe: the reader has gone.
    let mut first = [0u8; 16];
    let mut err = child.stderr.take().unwrap();
    let _ = err.read(&mut first);
    drop(err);
    let mut d = Reaper(child);
    // Results keep coming meanwhile.
    wait_for(Duration::from_secs(45), || base.last_result("app/tcp"))
        .expect("results with a broken log pipe");
    assert_eq!(cmdline(d.0.id()), "pingmachine [orders: 1]");
    kill(d.0.id(), "TERM");
    let st = wait_exit(&mut d.0, Duration::from_secs(5));
    assert!(
        st.is_some_and(|s| s.success()),
        "exit within 5 s of SIGTERM: {st:?}"
    );
}

/// Results, by their round times, until `n` more rounds than `after`.
fn rounds_after(base: &Base, id: &str, after: i64, n: i64) -> bool {
    wait_for(Duration::from_secs(60), || {
        base.last_result(id)
            .filter(|r| r.int("time") >= after + n * 10)
    })
    .is_some()
}

/// Logging to /dev/full, or to a file on a full disk, never stops results;
/// log lines resume once there is room; nothing panics.
#[test]
fn timing_a_full_log_never_stops_results() {
    let server = TcpListenerServer::start(None);
    // Standard error on /dev/full: every write fails with ENOSPC.
    let base = Base::new();
    base.write_order("app/tcp", &tcp_order(server.addr().port()));
    let child = Command::new(bin())
        .arg("--basedir")
        .arg(base.path())
        .args(["run", "--debug", "--stats-interval", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(
            fs::OpenOptions::new()
                .write(true)
                .open("/dev/full")
                .unwrap(),
        )
        .spawn()
        .unwrap();
    let mut d = Reaper(child);
    let first = wait_for(Duration::from_secs(45), || base.last_result("app/tcp"))
        .expect("results with stderr on /dev/full");
    assert!(rounds_after(&base, "app/tcp", first.int("time"), 2));
    let dropped = wait_for(Duration::from_secs(10), || {
        let t = fs::read_to_string(base.path().join(".stats.json")).ok()?;
        let v: serde_json::Value = serde_json::from_str(&t).ok()?;
        v["log"]["lines_dropped"].as_u64().filter(|n| *n > 0)
    });
    assert!(dropped.is_some(), "dropped log lines are counted");
    kill(d.0.id(), "TERM");
    let st = wait_exit(&mut d.0, Duration::from_secs(15)).expect("stops");
    assert!(st.success(), "{st:?}");

    // A log file on a full tmpfs (root only).
    const PART: &str = "timing_a_full_log_never_stops_results (full-disk part)";
    if !require_root(PART, "a tmpfs mount") {
        return;
    }
    let outer = tempfile::tempdir().unwrap();
    let logdir = outer.path().join("logs");
    let Some(_tmpfs) = Tmpfs::mount(&logdir, "256k") else {
        skip(PART, "cannot mount a tmpfs here (mount -t tmpfs failed)");
        return;
    };
    let log = logdir.join("daemon.log");
    let log_file = fs::File::create(&log).unwrap();
    let filler = logdir.join("filler");
    {
        use std::io::Write;
        let mut f = fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 4096];
        for _ in 0..1000 {
            if f.write_all(&chunk).is_err() {
                break;
            }
        }
    }
    let base = Base::new();
    base.write_order("app/tcp", &tcp_order(server.addr().port()));
    let child = Command::new(bin())
        .arg("--basedir")
        .arg(base.path())
        .args(["run", "--debug"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .unwrap();
    let mut d = Reaper(child);
    let first = wait_for(Duration::from_secs(45), || base.last_result("app/tcp"))
        .expect("results with a full log disk");
    assert!(rounds_after(&base, "app/tcp", first.int("time"), 1));
    let before = fs::metadata(&log).unwrap().len();
    fs::remove_file(&filler).unwrap();
    // Room again: results go on, and so do log lines.
    let now = base.last_result("app/tcp").unwrap().int("time");
    assert!(rounds_after(&base, "app/tcp", now, 2));
    assert!(
        fs::metadata(&log).unwrap().len() > before,
        "log lines are written again once there is room"
    );
    kill(d.0.id(), "TERM");
    let st = wait_exit(&mut d.0, Duration::from_secs(15)).expect("stops");
    assert!(st.success(), "{st:?}");
    let text = fs::read_to_string(&log).unwrap();
    assert!(!text.contains("panicked"), "{text}");
}

/// A store writer thread that dies stops the daemon with an error (exit
/// 1), so that its service manager restarts it; it does not run on
/// without writing. The failure is injected through a failpoint that only
/// debug builds have.
#[test]
fn timing_a_dead_writer_thread_stops_the_daemon_with_an_error() {
    if !cfg!(debug_assertions) {
        skip(
            "timing_a_dead_writer_thread_stops_the_daemon_with_an_error",
            "the failpoint exists in debug builds only (run the tests without --release)",
        );
        return;
    }
    let server = TcpListenerServer::start(None);
    let base = Base::new();
    base.write_order("app/tcp", &tcp_order(server.addr().port()));
    let log = base.path().join("daemon.log");
    let child = Command::new(bin())
        .arg("--basedir")
        .arg(base.path())
        .args(["run", "--debug"])
        .env("PINGMACHINE_FAILPOINT", "store-writer-panic")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut d = Reaper(child);
    let st = wait_exit(&mut d.0, Duration::from_secs(60)).expect("the daemon stops by itself");
    let text = fs::read_to_string(&log).unwrap();
    assert_eq!(st.code(), Some(1), "{text}");
    assert!(
        text.contains("panicked")
            && text.contains("stopped so that its service manager restarts it"),
        "{text}"
    );
}
