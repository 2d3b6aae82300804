//! A real InfluxDB 1.x (`influxd` from Debian's `influxdb` package) on
//! loopback ports with a temporary data directory, for line-protocol tests.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::wait_for;

/// A running influxd; killed on drop.
pub struct Influx {
    child: Child,
    _dir: tempfile::TempDir,
    /// HTTP API port.
    pub http_port: u16,
    /// UDP listener port (database `udp_db`).
    pub udp_port: u16,
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Path of influxd, or `None` after a skip (a failure under CI).
pub fn influxd(test: &str) -> Option<PathBuf> {
    testkit::require::tool(test, "influxd", "influxdb")
}

impl Influx {
    /// Starts influxd with its HTTP API on `http_port` (0: any free port)
    /// and a UDP listener writing into `udp_db`.
    pub fn start(bin: &Path, http_port: u16, udp_db: &str) -> Influx {
        let dir = tempfile::tempdir().unwrap();
        let http_port = if http_port == 0 {
            testkit::free_tcp_port()
        } else {
            http_port
        };
        let udp_port = free_udp_port();
        let rpc_port = testkit::free_tcp_port();
        let d = dir.path().display();
        let conf = format!(
            "reporting-disabled = true\nbind-address = \"127.0.0.1:{rpc_port}\"\n\
             [meta]\n  dir = \"{d}/meta\"\n\
             [data]\n  dir = \"{d}/data\"\n  wal-dir = \"{d}/wal\"\n  query-log-enabled = false\n\
             [http]\n  enabled = true\n  bind-address = \"127.0.0.1:{http_port}\"\n  log-enabled = false\n\
             [[udp]]\n  enabled = true\n  bind-address = \"127.0.0.1:{udp_port}\"\n  database = \"{udp_db}\"\n  \
             batch-size = 100\n  batch-timeout = \"100ms\"\n  precision = \"n\"\n\
             [monitor]\n  store-enabled = false\n\
             [continuous_queries]\n  enabled = false\n\
             [subscriber]\n  enabled = false\n"
        );
        let conf_path = dir.path().join("influxdb.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let log = std::fs::File::create(dir.path().join("influxd.log")).unwrap();
        let child = Command::new(bin)
            .arg("-config")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start influxd");
        let influx = Influx {
            child,
            _dir: dir,
            http_port,
            udp_port,
        };
        let up = wait_for(Duration::from_secs(30), || {
            influx.get("/ping").ok().filter(|(s, _)| *s == 204)
        });
        assert!(up.is_some(), "influxd did not come up on port {http_port}");
        influx.create_db(udp_db);
        influx
    }

    /// `GET path` → (status, body).
    pub fn get(&self, path_and_query: &str) -> std::io::Result<(u16, String)> {
        let mut s = TcpStream::connect(("127.0.0.1", self.http_port))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            s,
            "GET {path_and_query} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"
        )?;
        let mut resp = String::new();
        s.read_to_string(&mut resp)?;
        let status = resp
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = resp
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        Ok((status, body))
    }

    /// Runs an InfluxQL query and returns the JSON text.
    pub fn query(&self, db: &str, q: &str) -> String {
        let path = format!("/query?db={}&q={}", enc(db), enc(q));
        match self.get(&path) {
            Ok((200, body)) => body,
            Ok((s, body)) => panic!("query {q:?}: HTTP {s}: {body}"),
            Err(e) => panic!("query {q:?}: {e}"),
        }
    }

    /// `CREATE DATABASE name`.
    pub fn create_db(&self, name: &str) {
        self.query("", &format!("CREATE DATABASE \"{name}\""));
    }
}

impl Drop for Influx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
