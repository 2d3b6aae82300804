//! Prometheus and VictoriaMetrics as the tests start them: stores that
//! take remote write, read back through their query API.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::wait_for;

/// A store that takes remote write, and its query API.
pub struct Receiver {
    pub name: &'static str,
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    bin: std::path::PathBuf,
}

impl Receiver {
    pub fn prometheus(bin: &Path) -> Receiver {
        let mut r = Receiver {
            name: "prometheus",
            child: None,
            port: testkit::free_tcp_port(),
            dir: tempfile::tempdir().unwrap(),
            bin: bin.to_owned(),
        };
        std::fs::write(r.dir.path().join("prometheus.yml"), "global: {}\n").unwrap();
        r.start();
        r
    }

    pub fn victoria(bin: &Path) -> Receiver {
        let mut r = Receiver {
            name: "victoria-metrics",
            child: None,
            port: testkit::free_tcp_port(),
            dir: tempfile::tempdir().unwrap(),
            bin: bin.to_owned(),
        };
        r.start();
        r
    }

    /// Starts (or starts again, on the same storage) and waits until it
    /// answers.
    pub fn start(&mut self) {
        let d = self.dir.path();
        let mut cmd = Command::new(&self.bin);
        if self.name == "prometheus" {
            cmd.arg(format!(
                "--config.file={}",
                d.join("prometheus.yml").display()
            ))
            .arg(format!("--storage.tsdb.path={}", d.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{}", self.port))
            .arg("--web.enable-remote-write-receiver");
        } else {
            cmd.arg(format!("-storageDataPath={}", d.join("data").display()))
                .arg(format!("-httpListenAddr=127.0.0.1:{}", self.port))
                // Recent samples are queryable at once, and every
                // query reads the storage.
                .arg("-search.latencyOffset=0s")
                .arg("-search.disableCache");
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.join("log"))
            .unwrap();
        self.child = Some(
            cmd.stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("{}: {e}", self.name)),
        );
        let ready = if self.name == "prometheus" {
            "/-/ready"
        } else {
            "/health"
        };
        let addr = self.addr();
        wait_for(Duration::from_secs(60), || {
            let (status, _) = try_get(addr, ready)?;
            (status == 200).then_some(())
        })
        .unwrap_or_else(|| panic!("{} never became ready; log:\n{}", self.name, self.log()));
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let _ = wait_for(Duration::from_secs(30), || c.try_wait().ok().flatten());
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn addr(&self) -> SocketAddr {
        format!("127.0.0.1:{}", self.port).parse().unwrap()
    }

    pub fn write_url(&self) -> String {
        format!("http://{}/api/v1/write", self.addr())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    /// An instant query: the `result` array.
    pub fn query(&self, q: &str) -> Vec<serde_json::Value> {
        let path = format!("/api/v1/query?query={}", urlencode(q));
        let (status, body) = try_get(self.addr(), &path)
            .unwrap_or_else(|| panic!("{}: query {q} failed", self.name));
        assert_eq!(status, 200, "{}: {q}: {body}", self.name);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// The raw samples of the series `selector` over the last hour, by
    /// series (its `order` label), as (Unix s, value).
    pub fn samples(&self, selector: &str) -> std::collections::BTreeMap<String, Vec<(i64, f64)>> {
        let mut out = std::collections::BTreeMap::new();
        for r in self.query(&format!("{selector}[1h]")) {
            let order = r["metric"]["order"].as_str().unwrap_or_default().to_owned();
            let values = r["values"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|p| {
                    let t = p[0].as_f64().unwrap() as i64;
                    let v: f64 = p[1].as_str().unwrap().parse().unwrap();
                    (t, v)
                })
                .collect();
            out.insert(order, values);
        }
        out
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A GET that may fail (the server is starting): status and body.
pub fn try_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .http_status_as_error(false)
        .build()
        .into();
    let mut resp = agent.get(format!("http://{addr}{path}")).call().ok()?;
    let status = resp.status().as_u16();
    let body = resp
        .body_mut()
        .with_config()
        .limit(u64::MAX)
        .read_to_string()
        .ok()?;
    Some((status, body))
}

/// `key=N` from the daemon's "remote-write totals" line for `url`.
pub fn total(log: &str, url: &str, key: &str) -> u64 {
    let line = log
        .lines()
        .find(|l| l.contains("remote-write totals") && l.contains(url))
        .unwrap_or_else(|| panic!("no remote-write totals for {url} in:\n{log}"));
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {line}"))
}
