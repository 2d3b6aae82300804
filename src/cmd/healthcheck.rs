//! `pingmachine healthcheck`: is a daemon running on this base directory,
//! and alive? For a container's `HEALTHCHECK` and for scripts: one line on
//! standard output, exit status 0 (healthy) or 1.
//!
//! It reads what the daemon writes anyway, and never takes the lock (a
//! check that took it, even for a moment, could make a daemon that is
//! starting refuse to run):
//!
//! 1. `BASEDIR/.stats.json` names the daemon's pid, the time it was
//!    written, how often it is rewritten (`stats_interval_s`) and its
//!    `--listen` address. It must be younger than two intervals and ten
//!    seconds.
//! 2. `/proc/locks` must show a `flock` held on `BASEDIR/.lock` (by
//!    inode): only a running daemon holds it, and the kernel releases it
//!    when the daemon dies, so a stale file is not taken for a live daemon.
//!    (The pid there is not compared: a daemon that detached took the lock
//!    before it forked, and the kernel shows the pid that took it.)
//! 3. When the daemon listens (`--listen`), `GET /-/healthy` must answer
//!    200 within five seconds (a wildcard address is asked on loopback).
//!    Over HTTPS (`tls_server_config`) the daemon's certificate is not
//!    checked: the address is the daemon's own, read from its file, and
//!    nothing secret is sent. When the listener wants a client
//!    certificate, which this check has none of, a TLS handshake that
//!    gets as far as the server's request for one is the answer.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::basedir::BaseDir;
use crate::stats;

/// How long the HTTP check may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);

/// The fields of `.stats.json` the check reads.
#[derive(Debug, Deserialize)]
struct Stats {
    time: i64,
    pid: u32,
    #[serde(default)]
    stats_interval_s: u64,
    #[serde(default)]
    listen: Option<String>,
    #[serde(default)]
    route_prefix: String,
    #[serde(default)]
    web_auth: bool,
    #[serde(default)]
    web_tls: String,
}

/// Runs the check; prints one line. `Ok(true)`: healthy.
pub fn run(base: &BaseDir) -> anyhow::Result<bool> {
    match check(base, crate::clock::unix_s()) {
        Ok(line) => {
            println!("healthy: {line}");
            Ok(true)
        }
        Err(why) => {
            println!("unhealthy: {why}");
            Ok(false)
        }
    }
}

/// Why the daemon is not healthy (the line printed after `unhealthy: `).
#[derive(Debug, thiserror::Error)]
enum Unhealthy {
    #[error("cannot read {} ({source}): no daemon has run on this base directory", path.display())]
    NoStats {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    BadStats {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{} was last written {age} s ago (limit {limit} s): the daemon (pid {pid}) is stopped or hung", path.display())]
    Stale {
        path: PathBuf,
        age: i64,
        limit: i64,
        pid: u32,
    },
    #[error("{}: {source}", path.display())]
    LockFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read /proc/locks: {0}")]
    Locks(std::io::Error),
    #[error("nothing holds the lock on {}: the daemon (pid {pid}) has stopped", path.display())]
    NotLocked { path: PathBuf, pid: u32 },
    #[error("listen address {listen:?} in {}: {source}", path.display())]
    ListenAddr {
        listen: String,
        path: PathBuf,
        source: std::net::AddrParseError,
    },
    #[error("{url}: {source}")]
    Http { url: String, source: ureq::Error },
    #[error("{url} answered {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: {why}")]
    Https { url: String, why: String },
}

fn check(base: &BaseDir, now: i64) -> Result<String, Unhealthy> {
    let path = base.root.join(stats::FILE);
    let text = std::fs::read_to_string(&path).map_err(|source| Unhealthy::NoStats {
        path: path.clone(),
        source,
    })?;
    let s: Stats = serde_json::from_str(&text).map_err(|source| Unhealthy::BadStats {
        path: path.clone(),
        source,
    })?;
    let interval = if s.stats_interval_s == 0 {
        stats::INTERVAL.as_secs()
    } else {
        s.stats_interval_s
    };
    let age = now - s.time;
    let limit = i64::try_from(2 * interval + 10).unwrap_or(i64::MAX);
    if age > limit {
        return Err(Unhealthy::Stale {
            path,
            age,
            limit,
            pid: s.pid,
        });
    }
    let lock = base.root.join(".lock");
    let ino = std::fs::metadata(&lock)
        .map_err(|source| Unhealthy::LockFile {
            path: lock.clone(),
            source,
        })?
        .ino();
    let locks = std::fs::read_to_string("/proc/locks").map_err(Unhealthy::Locks)?;
    if !flock_held(&locks, ino) {
        return Err(Unhealthy::NotLocked {
            path: lock,
            pid: s.pid,
        });
    }
    match s.listen.as_deref() {
        None => Ok(format!(
            "pid {} holds the lock; {} written {age} s ago",
            s.pid,
            path.display()
        )),
        Some(listen) => {
            let addr: SocketAddr = listen.parse().map_err(|source| Unhealthy::ListenAddr {
                listen: listen.to_owned(),
                path: path.clone(),
                source,
            })?;
            let addr = loopback_for(addr);
            let scheme = if s.web_tls.is_empty() {
                "http"
            } else {
                "https"
            };
            let url = format!("{scheme}://{addr}{}/-/healthy", s.route_prefix);
            let status = match s.web_tls.as_str() {
                "" => get_healthy(&url)?,
                tag => {
                    let path = format!("{}/-/healthy", s.route_prefix);
                    let wants_cert = tag.contains("client-cert");
                    match https_status(addr, &path, wants_cert) {
                        Ok(Some(status)) => status,
                        Ok(None) => {
                            return Ok(format!(
                                "pid {} holds the lock; {url} asked for a client certificate",
                                s.pid
                            ))
                        }
                        Err(why) => return Err(Unhealthy::Https { url, why }),
                    }
                }
            };
            match status {
                200 => Ok(format!("pid {} holds the lock; {url} answered 200", s.pid)),
                // Behind --web-config-file's users: it answers, and wants
                // credentials that this check does not have.
                401 if s.web_auth => Ok(format!(
                    "pid {} holds the lock; {url} answered 401 (credentials needed)",
                    s.pid
                )),
                status => Err(Unhealthy::Status { url, status }),
            }
        }
    }
}

/// Whether a line of `/proc/locks` shows an exclusive `flock` held on the
/// file with inode `ino`. Lines look like
/// `1: FLOCK  ADVISORY  WRITE 1234 fe:01:5678 0 EOF`.
fn flock_held(locks: &str, ino: u64) -> bool {
    locks.lines().any(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        // A waiting lock is shown as "1: -> FLOCK ..."; it holds nothing.
        f.len() >= 6
            && f[1] == "FLOCK"
            && f[3] == "WRITE"
            && f[5].rsplit(':').next().and_then(|i| i.parse().ok()) == Some(ino)
    })
}

/// A wildcard listen address is reached on loopback.
fn loopback_for(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), addr.port())
        }
        _ => addr,
    }
}

/// `GET url` (`/-/healthy`); the HTTP status.
fn get_healthy(url: &str) -> Result<u16, Unhealthy> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(HTTP_TIMEOUT))
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let resp = agent.get(url).call().map_err(|source| Unhealthy::Http {
        url: url.to_owned(),
        source,
    })?;
    Ok(resp.status().as_u16())
}

/// `GET path` over TLS to `addr` without checking its certificate; the
/// HTTP status, or `None` when the server wants a client certificate
/// (`wants_cert`) and ends the handshake for the lack of one.
fn https_status(addr: SocketAddr, path: &str, wants_cert: bool) -> Result<Option<u16>, String> {
    use std::io::{Read, Write};
    use std::sync::Arc;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let mut conn =
        rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    let mut sock =
        std::net::TcpStream::connect_timeout(&addr, HTTP_TIMEOUT).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(HTTP_TIMEOUT))
        .and_then(|()| sock.set_write_timeout(Some(HTTP_TIMEOUT)))
        .map_err(|e| e.to_string())?;
    let mut tls = rustls::Stream::new(&mut conn, &mut sock);
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: pingmachine-healthcheck\r\nConnection: close\r\n\r\n"
    );
    let mut head = Vec::new();
    let sent = tls.write_all(request.as_bytes()).and_then(|()| tls.flush());
    let read = sent.and_then(|()| {
        let mut buf = [0u8; 512];
        // The status line is in the first bytes; bounded by the timeouts.
        for _ in 0..64 {
            let n = tls.read(&mut buf)?;
            head.extend_from_slice(&buf[..n]);
            if n == 0 || head.windows(2).any(|w| w == b"\r\n") {
                break;
            }
        }
        Ok(())
    });
    if let Err(e) = read {
        let refused_for_cert = e
            .get_ref()
            .and_then(|i| i.downcast_ref::<rustls::Error>())
            .is_some_and(|t| {
                matches!(
                    t,
                    rustls::Error::AlertReceived(
                        rustls::AlertDescription::CertificateRequired
                            | rustls::AlertDescription::HandshakeFailure
                            | rustls::AlertDescription::BadCertificate
                    )
                )
            });
        return if wants_cert && refused_for_cert {
            Ok(None)
        } else {
            Err(e.to_string())
        };
    }
    let line = String::from_utf8_lossy(&head);
    line.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .map(Some)
        .ok_or_else(|| {
            format!(
                "not an HTTP answer: {:?}",
                line.lines().next().unwrap_or("")
            )
        })
}

/// Takes any server certificate (see [`https_status`]); signatures are
/// still checked, so the handshake is a real one.
#[derive(Debug)]
struct AnyCertificate(std::sync::Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flock_lines() {
        let locks = "1: FLOCK  ADVISORY  WRITE 1234 fe:01:5678 0 EOF\n\
                     1: -> FLOCK  ADVISORY  WRITE 77 fe:01:5678 0 EOF\n\
                     2: POSIX  ADVISORY  WRITE 99 fe:01:42 0 EOF\n\
                     3: -> FLOCK  ADVISORY  WRITE 77 fe:01:9 0 EOF\n\
                     4: FLOCK  ADVISORY  READ 5 fe:01:8 0 EOF\n";
        assert!(flock_held(locks, 5678));
        assert!(!flock_held(locks, 5679), "another file");
        assert!(!flock_held(locks, 42), "a POSIX lock is not ours");
        assert!(!flock_held(locks, 9), "waiting is not holding");
        assert!(!flock_held(locks, 8), "a shared lock is not the daemon's");
        assert!(!flock_held("", 1));
    }

    #[test]
    fn wildcard_is_asked_on_loopback() {
        let a: SocketAddr = "0.0.0.0:9374".parse().unwrap();
        assert_eq!(loopback_for(a).to_string(), "127.0.0.1:9374");
        let a: SocketAddr = "[::]:9374".parse().unwrap();
        assert_eq!(loopback_for(a).to_string(), "[::1]:9374");
        let a: SocketAddr = "192.0.2.1:1".parse().unwrap();
        assert_eq!(loopback_for(a), a);
    }

    #[test]
    fn stale_missing_and_unlocked_are_unhealthy() {
        let dir = tempfile::tempdir().unwrap();
        let base = BaseDir::new(dir.path());
        let e = check(&base, 100).unwrap_err().to_string();
        assert!(e.contains("no daemon has run"), "{e}");
        std::fs::write(
            dir.path().join(stats::FILE),
            r#"{"time": 100, "pid": 1, "stats_interval_s": 10}"#,
        )
        .unwrap();
        let e = check(&base, 131).unwrap_err().to_string();
        assert!(e.contains("31 s ago (limit 30 s)"), "{e}");
        std::fs::write(dir.path().join(".lock"), "").unwrap();
        let e = check(&base, 110).unwrap_err().to_string();
        assert!(e.contains("nothing holds the lock"), "{e}");
        // Held by this process: healthy.
        let lock = base.lock().unwrap();
        std::fs::write(
            dir.path().join(stats::FILE),
            format!(
                r#"{{"time": 100, "pid": {}, "stats_interval_s": 10}}"#,
                std::process::id()
            ),
        )
        .unwrap();
        let ok = check(&base, 110).unwrap();
        assert!(ok.contains("holds the lock"), "{ok}");
        drop(lock);
        assert!(check(&base, 110).is_err());
    }
}
