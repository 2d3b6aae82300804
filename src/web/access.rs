//! Who may read the web page, how, and where it sits: `--web-config-file`
//! (the format of the Prometheus exporters' web configuration: basic-auth
//! users with bcrypt hashes, and HTTPS, `super::tls`) and
//! `--web-route-prefix` (the page behind a reverse proxy at a path of its
//! own). Shared by `run --listen` and `serve`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use probes::sync::lock;
use serde::Deserialize;

/// Credentials that passed, kept so that bcrypt runs once per user and
/// password (it takes tens of milliseconds by design).
const VERIFIED_CACHE: usize = 256;

/// The web flags of `run` and `serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct WebOpts {
    /// Serve every path under this prefix (/smokeping: the page at
    /// /smokeping/, /metrics at /smokeping/metrics), for a reverse proxy
    /// that passes the path on unchanged.
    #[arg(long, value_name = "PATH", value_parser = parse_prefix, default_value = "")]
    pub web_route_prefix: String,
    /// Web configuration file (the Prometheus exporters' format):
    /// basic_auth_users with bcrypt hashes (every request then needs one
    /// of them) and tls_server_config (HTTPS).
    #[arg(long, value_name = "FILE")]
    pub web_config_file: Option<PathBuf>,
}

/// `/smokeping` from `/smokeping`, `smokeping/` or `/smokeping/`; `""` for
/// none or `/`.
pub fn parse_prefix(s: &str) -> Result<String, String> {
    let t = s.trim().trim_matches('/');
    if t.is_empty() {
        return Ok(String::new());
    }
    let ok = t.split('/').all(|seg| {
        !seg.is_empty()
            && seg != "."
            && seg != ".."
            && seg
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
    });
    if ok {
        Ok(format!("/{t}"))
    } else {
        Err(format!(
            "{s:?}: a path of letters, digits, '-', '.', '_' and '~' between slashes"
        ))
    }
}

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    tls_server_config: Option<super::tls::TlsFile>,
    http_server_config: Option<serde_yaml_ng::Value>,
    basic_auth_users: Option<BTreeMap<String, String>>,
}

/// The checked web configuration.
#[derive(Debug, Default)]
pub struct Access {
    /// User → bcrypt hash; empty: no authentication.
    users: BTreeMap<String, String>,
    /// md5 of user, NUL, password → passed.
    verified: Mutex<HashMap<[u8; 16], ()>>,
    /// `tls_server_config`: HTTPS.
    pub tls: Option<super::tls::Tls>,
}

impl Access {
    /// Reads `path`; a clear error names the file and what is wrong.
    pub fn load(path: &Path) -> anyhow::Result<Access> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("--web-config-file {}: {e}", path.display()))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        Access::parse_in(&text, dir)
            .map_err(|e| anyhow::anyhow!("--web-config-file {}: {e}", path.display()))
    }

    /// The configuration in `text`, its files in the current directory.
    #[cfg(test)]
    pub fn parse(text: &str) -> Result<Access, String> {
        Access::parse_in(text, Path::new("."))
    }

    /// The configuration in `text`; relative paths in it are read from
    /// `dir` (the file's directory).
    pub fn parse_in(text: &str, dir: &Path) -> Result<Access, String> {
        let f: File = if text.trim().is_empty() {
            File {
                tls_server_config: None,
                http_server_config: None,
                basic_auth_users: None,
            }
        } else {
            serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?
        };
        if f.http_server_config.is_some() {
            return Err("http_server_config: not supported".into());
        }
        let users = f.basic_auth_users.unwrap_or_default();
        for (user, hash) in &users {
            if user.is_empty() || user.contains(':') {
                return Err(format!(
                    "basic_auth_users: {user:?}: a user name is not empty and has no ':'"
                ));
            }
            hash.parse::<bcrypt::HashParts>()
                .map_err(|e| format!("basic_auth_users: {user}: not a bcrypt hash ($2y$…): {e}"))?;
        }
        let tls = match f.tls_server_config {
            Some(t) => Some(super::tls::Tls::new(t, dir)?),
            None => None,
        };
        Ok(Access {
            users,
            verified: Mutex::new(HashMap::new()),
            tls,
        })
    }

    /// What `.stats.json` says of TLS: `""` (none), `https`, or
    /// `https+client-cert`.
    pub fn scheme_tag(&self) -> &'static str {
        match &self.tls {
            None => "",
            Some(t) if t.client_certs => "https+client-cert",
            Some(_) => "https",
        }
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// True when requests need credentials.
    pub fn required(&self) -> bool {
        !self.users.is_empty()
    }

    /// Whether the `Authorization` header value grants access.
    pub fn allows(&self, authorization: Option<&HeaderValue>) -> bool {
        if !self.required() {
            return true;
        }
        let Some((user, password)) = authorization
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, rest) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("basic").then_some(rest)
            })
            .and_then(|b64| base64_decode(b64.trim()))
            .and_then(|raw| String::from_utf8(raw).ok())
            .and_then(|s| {
                let (u, p) = s.split_once(':')?;
                Some((u.to_owned(), p.to_owned()))
            })
        else {
            return false;
        };
        let Some(hash) = self.users.get(&user) else {
            // As long as a known user's check, so that names cannot be
            // told apart by time.
            let _ = bcrypt::verify(&password, DUMMY_HASH);
            return false;
        };
        let key = md5::compute(format!("{user}\0{password}\0{hash}")).0;
        if lock(&self.verified).contains_key(&key) {
            return true;
        }
        let ok = bcrypt::verify(&password, hash).unwrap_or(false);
        if ok {
            let mut v = lock(&self.verified);
            if v.len() >= VERIFIED_CACHE {
                v.clear();
            }
            v.insert(key, ());
        }
        ok
    }
}

/// A bcrypt hash of nothing anyone knows (cost 10).
const DUMMY_HASH: &str = "$2y$10$k8uZ8yFv5Ryh3p3hR9lC0u0cX6aP1c1mVbUq0rP3mN3pQ2dL9mQ2a";

/// Standard base64 (with or without padding).
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let s = s.trim_end_matches('=').as_bytes();
    if s.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for chunk in s.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= val(*c)? << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

/// The middleware: 401 without valid credentials (the check runs on a
/// blocking thread: bcrypt is slow by design).
pub async fn require(
    State(access): State<std::sync::Arc<Access>>,
    req: Request,
    next: Next,
) -> Response {
    if access.required() {
        let auth = req.headers().get(header::AUTHORIZATION).cloned();
        let a = access.clone();
        let ok = super::site::background(move || a.allows(auth.as_ref()))
            .await
            .unwrap_or(false);
        if !ok {
            return (
                StatusCode::UNAUTHORIZED,
                [(
                    header::WWW_AUTHENTICATE,
                    "Basic realm=\"pingmachine\", charset=\"UTF-8\"",
                )],
                "credentials needed\n",
            )
                .into_response();
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, pw: &str) -> HeaderValue {
        const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let raw = format!("{user}:{pw}").into_bytes();
        let mut s = String::new();
        for c in raw.chunks(3) {
            let n = (u32::from(c[0]) << 16)
                | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
                | u32::from(*c.get(2).unwrap_or(&0));
            for i in 0..=c.len() {
                s.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            }
            for _ in c.len()..3 {
                s.push('=');
            }
        }
        HeaderValue::from_str(&format!("Basic {s}")).unwrap()
    }

    #[test]
    fn prefixes_are_checked_and_normalised() {
        assert_eq!(parse_prefix("/smokeping").unwrap(), "/smokeping");
        assert_eq!(parse_prefix("smokeping/").unwrap(), "/smokeping");
        assert_eq!(parse_prefix("/a/b-c/").unwrap(), "/a/b-c");
        assert_eq!(parse_prefix("/").unwrap(), "");
        assert_eq!(parse_prefix("").unwrap(), "");
        for bad in ["/a/../b", "/a b", "/a//b", "/%2e", "/a?b"] {
            assert!(parse_prefix(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bcrypt_users_are_checked_and_bad_files_are_clear_errors() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let a = Access::parse(&format!("basic_auth_users:\n  alice: '{hash}'\n")).unwrap();
        assert!(a.required());
        assert!(a.allows(Some(&basic("alice", "s3cret"))));
        // Again, from the cache.
        assert!(a.allows(Some(&basic("alice", "s3cret"))));
        assert!(!a.allows(Some(&basic("alice", "wrong"))));
        assert!(!a.allows(Some(&basic("bob", "s3cret"))));
        assert!(!a.allows(None));
        assert!(!a.allows(Some(&HeaderValue::from_static("Bearer x"))));
        assert!(!a.allows(Some(&HeaderValue::from_static("Basic !!!"))));
        assert!(
            bcrypt::verify("x", DUMMY_HASH).is_ok(),
            "the dummy is a hash"
        );
        let open = Access::parse("").unwrap();
        assert!(!open.required() && open.allows(None));
        let e = Access::parse("basic_auth_users:\n  alice: plain\n").unwrap_err();
        assert!(e.contains("alice") && e.contains("bcrypt"), "{e}");
        let e = Access::parse("tls_server_config:\n  cert_file: x\n").unwrap_err();
        assert!(
            e.contains("tls_server_config") && e.contains("key_file"),
            "{e}"
        );
        let e = Access::parse("basic_auth: {}\n").unwrap_err();
        assert!(e.contains("basic_auth"), "{e}");
    }

    #[test]
    fn base64_decodes_with_and_without_padding() {
        assert_eq!(base64_decode("YWxpY2U6eA==").unwrap(), b"alice:x");
        assert_eq!(base64_decode("YWxpY2U6eA").unwrap(), b"alice:x");
        assert_eq!(base64_decode("").unwrap(), b"");
        assert!(base64_decode("Y").is_none());
        assert!(base64_decode("a*b=").is_none());
    }
}
