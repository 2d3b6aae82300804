//! Helpers for the integration tests: run the real `pingmachine` binary on a
//! temporary base directory, write orders the way clients do, poll with
//! bounded waits, and read RRD files back with the real `rrdtool`.

pub mod influx;
pub mod store;

use std::collections::HashMap;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What a test needs from the machine: outside CI a test that lacks it
/// prints "skipping ..." and passes (and `scripts/test.sh` counts it);
/// under CI it fails, naming what is missing.
pub use testkit::require::{icmp as can_ping, root as require_root, skip, tool};

/// How long a functional test waits for something that must happen soon
/// (an order picked up, a file moved, a log line). It bounds a hang, not a
/// speed: a poll returns as soon as the thing happened, and how fast the
/// daemon is (pickup within a second, rounds on time) is asserted only by
/// the `timing_` tests, which run one at a time. A shorter wait here would
/// fail on a busy machine without finding a bug.
pub const EVENTUALLY: Duration = Duration::from_secs(30);

/// Polls `f` every 100 ms until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A temporary base directory.
pub struct Base {
    /// The temporary directory, removed on drop (`None`: owned elsewhere).
    _dir: Option<tempfile::TempDir>,
    pub root: PathBuf,
}

impl Base {
    pub fn new() -> Base {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().to_path_buf();
        Base {
            _dir: Some(dir),
            root,
        }
    }

    /// A base directory at `root`, owned (and removed) by the caller.
    pub fn at(root: &Path) -> Base {
        Base {
            _dir: None,
            root: root.to_path_buf(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    pub fn orders(&self) -> PathBuf {
        self.path().join("orders")
    }

    pub fn output(&self, id: &str) -> PathBuf {
        self.path().join("output").join(id)
    }

    /// Writes an order like a well-behaved client: a hidden temp file, then
    /// a rename into place.
    pub fn write_order(&self, id: &str, yaml: &str) {
        let path = self.orders().join(id);
        let parent = path.parent().expect("parent");
        fs::create_dir_all(parent).expect("mkdir");
        let tmp = parent.join(format!(
            ".{}.tmp",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("x")
        ));
        fs::write(&tmp, yaml).expect("write order");
        fs::rename(&tmp, &path).expect("rename order");
    }

    pub fn remove_order(&self, id: &str) {
        fs::remove_file(self.orders().join(id)).expect("remove order");
    }

    pub fn last_result(&self, id: &str) -> Option<LastResult> {
        let text = fs::read_to_string(self.output(id).join("last_result")).ok()?;
        Some(LastResult::parse(&text))
    }
}

/// A parsed `last_result`.
#[derive(Debug, Clone, PartialEq)]
pub struct LastResult {
    pub fields: Vec<(String, String)>,
}

impl LastResult {
    pub fn parse(text: &str) -> LastResult {
        let fields = text
            .lines()
            .map(|l| {
                let (k, v) = l
                    .split_once(": ")
                    .unwrap_or_else(|| panic!("bad last_result line {l:?} in {text:?}"));
                (k.to_owned(), v.to_owned())
            })
            .collect();
        LastResult { fields }
    }

    pub fn get(&self, k: &str) -> &str {
        self.fields
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {k} in {:?}", self.fields))
    }

    pub fn int(&self, k: &str) -> i64 {
        self.get(k)
            .parse()
            .unwrap_or_else(|_| panic!("{k} not an integer: {:?}", self.get(k)))
    }

    /// An RTT field: `None` for `~`.
    pub fn rtt(&self, k: &str) -> Option<f64> {
        match self.get(k) {
            "~" => None,
            v => Some(
                v.parse()
                    .unwrap_or_else(|_| panic!("{k} not a float: {v:?}")),
            ),
        }
    }
}

/// The running daemon; stopped (SIGTERM, then kill) on drop.
pub struct Daemon {
    pub child: Child,
    pub log: PathBuf,
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_pingmachine")
}

impl Daemon {
    pub fn start(base: &Base, extra: &[&str]) -> Daemon {
        Daemon::launch(base, Command::new(bin()), "", extra)
    }

    /// Starts `cmd` (the daemon binary, possibly behind a prefix such as
    /// `ip netns exec NS`) with `--basedir BASE run --debug EXTRA`, logging
    /// to a file in the base directory, and waits for its first scan.
    fn launch(base: &Base, mut cmd: Command, tag: &str, extra: &[&str]) -> Daemon {
        let log = unique(
            base.path()
                .join(format!("daemon-{}{tag}.log", std::process::id())),
        );
        let f = fs::File::create(&log).expect("log file");
        let child = cmd
            .arg("--basedir")
            .arg(base.path())
            .arg("run")
            .arg("--debug")
            .args(extra)
            .stdin(Stdio::null())
            .stdout(f.try_clone().expect("dup"))
            .stderr(f)
            .spawn()
            .expect("start pingmachine");
        let d = Daemon { child, log };
        d.wait_log("initial scan done", Duration::from_secs(20));
        d
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log contains `needle`; panics with the log otherwise.
    pub fn wait_log(&self, needle: &str, timeout: Duration) {
        if wait_for(timeout, || self.log_text().contains(needle).then_some(())).is_none() {
            panic!("log never showed {needle:?}; log:\n{}", self.log_text());
        }
    }

    /// Waits until some log line contains every needle.
    pub fn wait_log_line(&self, needles: &[&str], timeout: Duration) -> String {
        let found = wait_for(timeout, || {
            self.log_text()
                .lines()
                .find(|l| needles.iter().all(|n| l.contains(n)))
                .map(str::to_owned)
        });
        found.unwrap_or_else(|| panic!("no log line with {needles:?}; log:\n{}", self.log_text()))
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "kill -{sig} failed");
    }

    /// SIGTERM and wait (bounded) for the exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let _ = self.signal_quiet("TERM");
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "daemon did not stop within 15 s after SIGTERM; log:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn signal_quiet(&self, sig: &str) -> bool {
        Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }
}

impl Daemon {
    /// Like [`Daemon::start`], behind `systemd-socket-activate` listening
    /// on `addrs`: the daemon gets those sockets by socket activation
    /// (`systemd-socket-activate` execs it, so `child` is the daemon).
    pub fn start_activated(
        base: &Base,
        tool: &Path,
        addrs: &[SocketAddr],
        extra: &[&str],
    ) -> Daemon {
        let mut cmd = Command::new(tool);
        for a in addrs {
            cmd.arg(format!("--listen={a}"));
        }
        cmd.arg(bin());
        // The tool starts the daemon on the first connection.
        let first = addrs[0];
        let poke = std::thread::spawn(move || {
            wait_for(Duration::from_secs(20), || {
                std::net::TcpStream::connect(first).ok()
            })
        });
        let d = Daemon::launch(base, cmd, "-activated", extra);
        let _ = poke.join();
        d
    }

    /// Like [`Daemon::start`], but the daemon runs inside network namespace
    /// `netns` (`ip netns exec NETNS pingmachine ...`; `ip` execs the
    /// daemon, so `child` is the daemon itself and signals reach it). The
    /// base directory stays on the shared file system.
    pub fn start_in_netns(base: &Base, netns: &str, extra: &[&str]) -> Daemon {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", netns, bin()]);
        Daemon::launch(base, cmd, &format!("-{netns}"), extra)
    }
}

fn unique(p: PathBuf) -> PathBuf {
    let mut candidate = p.clone();
    let mut i = 0;
    while candidate.exists() {
        i += 1;
        candidate = p.with_extension(format!("{i}.log"));
    }
    candidate
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.signal_quiet("TERM");
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `rrdtool ARGS` and returns stdout (panics with stderr on failure).
pub fn rrdtool(args: &[&str]) -> String {
    let out = Command::new("rrdtool")
        .args(args)
        .output()
        .expect("run rrdtool (apt-get install rrdtool)");
    assert!(
        out.status.success(),
        "rrdtool {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `rrdtool info` as key → value (quotes stripped).
pub fn rrd_info(path: &Path) -> HashMap<String, String> {
    rrdtool(&["info", path.to_str().expect("utf8")])
        .lines()
        .filter_map(|l| l.split_once(" = "))
        .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
        .collect()
}

/// `rrdtool lastupdate`: (time, [(ds, value)]) of the last update.
pub fn rrd_lastupdate(path: &Path) -> (i64, Vec<(String, Option<f64>)>) {
    let text = rrdtool(&["lastupdate", path.to_str().expect("utf8")]);
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let names: Vec<String> = lines
        .next()
        .unwrap_or("")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let row = lines
        .next()
        .unwrap_or_else(|| panic!("no lastupdate row: {text}"));
    let (t, vals) = row.split_once(':').expect("row has time");
    let vals: Vec<Option<f64>> = vals
        .split_whitespace()
        .map(|v| v.parse::<f64>().ok().filter(|x| !x.is_nan()))
        .collect();
    (
        t.trim().parse().expect("time"),
        names.into_iter().zip(vals).collect(),
    )
}

/// `rrdtool fetch PATH CF -r RES -s START -e END`: rows (time, values).
pub fn rrd_fetch(
    path: &Path,
    cf: &str,
    res: u32,
    start: i64,
    end: i64,
) -> Vec<(i64, Vec<Option<f64>>)> {
    let text = rrdtool(&[
        "fetch",
        path.to_str().expect("utf8"),
        cf,
        "-r",
        &res.to_string(),
        "-s",
        &start.to_string(),
        "-e",
        &end.to_string(),
    ]);
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .filter_map(|(t, v)| {
            let t = t.trim().parse::<i64>().ok()?;
            Some((
                t,
                v.split_whitespace()
                    .map(|x| x.parse::<f64>().ok().filter(|f| !f.is_nan()))
                    .collect(),
            ))
        })
        .collect()
}

/// md5 hex digest of `b` (via md5sum), for old-interface order names.
pub fn md5_hex(b: &[u8]) -> String {
    use std::io::Write;
    let mut c = Command::new("md5sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("md5sum");
    c.stdin.take().expect("stdin").write_all(b).expect("write");
    let out = c.wait_with_output().expect("md5sum output");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_owned()
}

/// A tmpfs mounted for one test, unmounted on every exit path.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    pub fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        ok.then(|| Tmpfs(dir.to_path_buf()))
    }

    /// Makes `dir` (inside the tmpfs) read-only with a read-only bind mount
    /// over it; returns a guard that removes it.
    pub fn read_only(&self, dir: &Path) -> ReadOnly {
        let run = |args: &[&str]| {
            let st = Command::new("mount")
                .args(args)
                .arg(dir)
                .arg(dir)
                .status()
                .unwrap();
            assert!(st.success(), "mount {args:?}");
        };
        run(&["--bind"]);
        let guard = ReadOnly(dir.to_path_buf());
        let st = Command::new("mount")
            .args(["-o", "remount,bind,ro"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(st.success(), "remount read-only");
        guard
    }
}

/// A read-only bind mount, removed on drop.
pub struct ReadOnly(PathBuf);

impl Drop for ReadOnly {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// `GET path` with the one HTTP client (ureq; no redirects, no status taken
/// as an error, 60 s at most), optionally with an `Accept` header: the
/// status, the content type and the body. (`web.rs` sends its traversal
/// paths byte for byte over a raw socket instead: a client may not send
/// them as written.)
pub fn http_get(
    addr: std::net::SocketAddr,
    path: &str,
    accept: Option<&str>,
) -> (u16, String, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(60)))
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let mut req = agent.get(format!("http://{addr}{path}"));
    if let Some(a) = accept {
        req = req.header("Accept", a);
    }
    let mut resp = req.call().unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = resp
        .body_mut()
        .with_config()
        .limit(u64::MAX)
        .read_to_string()
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    (status, content_type, body)
}
