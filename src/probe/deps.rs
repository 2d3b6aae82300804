//! What probe rounds share: the ICMP engine, HTTP clients (one per proxy and
//! user agent), the external command templates, per-probe-type concurrency
//! limits (one per [`ProbeKind`]), and once-per-order error reporting.

use probes::sync::lock;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use probes::http::{HttpConfig, HttpProber, SetupError};
use probes::icmp::IcmpEngine;
use tokio::sync::Semaphore;
use tracing::{debug, warn};

use super::ProbeKind;
use crate::names::Names;
use crate::schedule::HTTP_TIMEOUT;
use crate::spec::OrderId;

/// An HTTP client per (proxy, user agent).
type HttpKey = (Option<String>, Option<String>);

/// Shared probe resources; see the module docs.
#[derive(Debug)]
pub struct ProbeDeps {
    /// The ICMP engine.
    pub icmp: Arc<IcmpEngine>,
    http: Mutex<HashMap<HttpKey, Arc<HttpProber>>>,
    http_ca: Vec<Vec<u8>>,
    /// Command of the `sping` probe.
    pub sping: CommandTemplate,
    /// Command of the `pping` probe.
    pub pping: CommandTemplate,
    /// Commands of `exec` probes by name.
    pub exec: HashMap<String, CommandTemplate>,
    /// Concurrency limit of each probe type, by [`ProbeKind::index`].
    limits: [Arc<Semaphore>; ProbeKind::COUNT],
    warned: Mutex<HashSet<(OrderId, String)>>,
    /// The addresses of the orders' host names.
    pub names: Arc<Names>,
}

/// Settings of [`ProbeDeps`].
#[derive(Debug, Clone)]
pub struct DepsConfig {
    /// Extra trusted root certificates (PEM) for https.
    pub http_ca: Vec<Vec<u8>>,
    /// `sping` command template.
    pub sping: CommandTemplate,
    /// `pping` command template.
    pub pping: CommandTemplate,
    /// `exec` probes by name.
    pub exec: HashMap<String, CommandTemplate>,
    /// Most probes of one type running at once.
    pub max_parallel: usize,
}

impl ProbeDeps {
    /// Shared resources around `icmp`.
    pub fn new(icmp: Arc<IcmpEngine>, cfg: DepsConfig, names: Arc<Names>) -> ProbeDeps {
        let n = cfg.max_parallel.max(1);
        let limits = std::array::from_fn(|_| Arc::new(Semaphore::new(n)));
        ProbeDeps {
            icmp,
            http: Mutex::new(HashMap::new()),
            http_ca: cfg.http_ca,
            sping: cfg.sping,
            pping: cfg.pping,
            exec: cfg.exec,
            limits,
            warned: Mutex::new(HashSet::new()),
            names,
        }
    }

    /// The HTTP client for this proxy and user agent (built once).
    pub fn http(
        &self,
        proxy: Option<&str>,
        user_agent: Option<&str>,
    ) -> Result<Arc<HttpProber>, SetupError> {
        let key = (proxy.map(str::to_owned), user_agent.map(str::to_owned));
        let mut map = lock(&self.http);
        if let Some(p) = map.get(&key) {
            return Ok(p.clone());
        }
        let prober = Arc::new(HttpProber::new(HttpConfig {
            proxy: key.0.clone(),
            user_agent: key.1.clone(),
            timeout: HTTP_TIMEOUT,
            extra_root_certs_pem: self.http_ca.clone(),
        })?);
        map.insert(key, prober.clone());
        Ok(prober)
    }

    /// The concurrency limit of a probe type.
    pub fn limit(&self, kind: ProbeKind) -> Arc<Semaphore> {
        self.limits[kind.index()].clone()
    }

    /// Logs `msg` for `id` at warn the first time, at debug afterwards.
    pub fn warn_once(&self, id: &OrderId, msg: &str) {
        let first = lock(&self.warned).insert((id.clone(), msg.to_owned()));
        if first {
            warn!(order = %id, "{msg} (repeats are logged at debug)");
        } else {
            debug!(order = %id, "{msg}");
        }
    }
}

/// Why a command template or `--exec-probe` is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// Nothing but white space.
    #[error("empty command")]
    Empty,
    /// `--exec-probe` without `=`.
    #[error("expected NAME=COMMAND")]
    NoName,
    /// A name with other characters.
    #[error("bad exec probe name {0:?}: letters, digits, `-`, `_`")]
    BadName(String),
}

/// Values substituted into command templates.
#[derive(Debug, Clone, Copy)]
pub struct Vars {
    /// Pings per round.
    pub pings: u32,
    /// Interval between pings, ms.
    pub interval_ms: u32,
    /// Time the command has, ms.
    pub timeout_ms: u64,
    /// Step, s.
    pub step: u32,
}

/// An external command: a program and argument templates, split on white
/// space (no shell). Arguments may contain `{pings}`, `{interval_ms}`,
/// `{interval_s}`, `{timeout_ms}` and `{step}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandTemplate {
    /// Program (a path, or a name looked up in `PATH`).
    pub program: PathBuf,
    /// Argument templates.
    pub args: Vec<String>,
}

impl CommandTemplate {
    /// Parses `"PROGRAM ARG ARG…"`.
    pub fn parse(s: &str) -> Result<CommandTemplate, CommandError> {
        let mut it = s.split_whitespace();
        let program = it.next().ok_or(CommandError::Empty)?;
        Ok(CommandTemplate {
            program: PathBuf::from(program),
            args: it.map(str::to_owned).collect(),
        })
    }

    /// The template arguments with the placeholders replaced.
    pub fn args(&self, v: Vars) -> Vec<String> {
        let interval_s = format!("{}", f64::from(v.interval_ms) / 1000.0);
        self.args
            .iter()
            .map(|a| {
                a.replace("{pings}", &v.pings.to_string())
                    .replace("{interval_ms}", &v.interval_ms.to_string())
                    .replace("{interval_s}", &interval_s)
                    .replace("{timeout_ms}", &v.timeout_ms.to_string())
                    .replace("{step}", &v.step.to_string())
            })
            .collect()
    }
}

/// `NAME=COMMAND` of `--exec-probe`.
pub fn parse_exec_probe(s: &str) -> Result<(String, CommandTemplate), CommandError> {
    let (name, cmd) = s.split_once('=').ok_or(CommandError::NoName)?;
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(CommandError::BadName(name.to_owned()));
    }
    Ok((name.to_owned(), CommandTemplate::parse(cmd)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates() {
        let t =
            CommandTemplate::parse("/usr/bin/sping -C {pings} -p {interval_ms} -x{interval_s}s")
                .unwrap();
        assert_eq!(t.program, PathBuf::from("/usr/bin/sping"));
        let v = Vars {
            pings: 5,
            interval_ms: 1500,
            timeout_ms: 9000,
            step: 60,
        };
        assert_eq!(t.args(v), vec!["-C", "5", "-p", "1500", "-x1.5s"]);
        assert!(CommandTemplate::parse("  ").is_err());
        let (n, t) = parse_exec_probe("mtr=/opt/mtr-wrap --count {pings}").unwrap();
        assert_eq!((n.as_str(), t.args.len()), ("mtr", 2));
        assert!(parse_exec_probe("bad name=/x").is_err());
        assert!(parse_exec_probe("/x").is_err());
    }
}
