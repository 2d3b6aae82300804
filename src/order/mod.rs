//! Orders: what a client asked pingmachine to measure.
//!
//! An order file is YAML (see the README and `pingmachine-orders(5)`). This
//! module turns the bytes of one file into a validated [`Order`]: a value that
//! is correct by construction, so the rest of the daemon never re-checks it.
//! Every error names the file, the field, the offending value and the rule.
//!
//! * [`id`] — [`OrderId`], the order's path relative to `orders/`.
//! * [`parse`] — YAML → [`Order`], one small function per rule.

pub mod id;
pub mod parse;

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

pub use id::{Interface, OrderId};
pub use parse::{parse_order, parse_telegraf_sidecar, Parsed};

/// Reads and validates the order file at `path` with id `id`: at most
/// [`parse::MAX_ORDER_BYTES`] are read, so an oversized file is refused
/// without reading it whole. Used by the daemon and by `pingmachine check`.
pub fn read_order_file(path: &Path, id: &OrderId) -> Result<Parsed, OrderError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let io_err = |what: &str, e: std::io::Error| OrderError {
        file: path.to_path_buf(),
        field: None,
        value: None,
        reason: format!("cannot {what} file: {e}"),
        line: None,
    };
    // O_NONBLOCK: a FIFO put here cannot block the reader.
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| io_err("open", e))?;
    let md = f.metadata().map_err(|e| io_err("stat", e))?;
    if !md.is_file() {
        return Err(OrderError {
            file: path.to_path_buf(),
            field: None,
            value: None,
            reason: "not a regular file".into(),
            line: None,
        });
    }
    let len = md.len();
    if len > parse::MAX_ORDER_BYTES as u64 {
        return Err(OrderError {
            file: path.to_path_buf(),
            field: None,
            value: None,
            reason: format!(
                "file is {len} bytes; orders are at most {} bytes",
                parse::MAX_ORDER_BYTES
            ),
            line: None,
        });
    }
    let mut buf = Vec::new();
    f.take(parse::MAX_ORDER_BYTES as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|e| io_err("read", e))?;
    parse_order(path, id, &buf)
}

/// What an order's `telegraf/<id>` sidecar is.
#[derive(Debug)]
pub enum Sidecar {
    /// There is none.
    Absent,
    /// Its line-protocol settings.
    Meta(TelegrafMeta),
    /// It cannot be used (why).
    Broken(OrderError),
}

/// Reads the `telegraf/<id>` sidecar of order `id` below `telegraf_dir`,
/// for any id (the original read it for new-interface ids too). Only a
/// regular file (symlinks followed) of at most [`parse::MAX_ORDER_BYTES`]
/// is read.
pub fn read_sidecar(telegraf_dir: &Path, id: &OrderId) -> Sidecar {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let path = id.under(telegraf_dir);
    let broken = |reason: String| {
        Sidecar::Broken(OrderError {
            file: path.clone(),
            field: None,
            value: None,
            reason,
            line: None,
        })
    };
    let f = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Sidecar::Absent,
        Err(e) if e.raw_os_error() == Some(nix::libc::ENOTDIR) => return Sidecar::Absent,
        Err(e) => return broken(format!("cannot open file: {e}")),
    };
    match f.metadata() {
        Ok(md) if md.is_dir() => return Sidecar::Absent,
        Ok(md) if !md.is_file() => return broken("not a regular file".into()),
        Ok(md) if md.len() > parse::MAX_ORDER_BYTES as u64 => {
            return broken(format!(
                "file is {} bytes; at most {} are read",
                md.len(),
                parse::MAX_ORDER_BYTES
            ))
        }
        Ok(_) => {}
        Err(e) => return broken(format!("cannot stat file: {e}")),
    }
    let mut buf = Vec::new();
    if let Err(e) = f
        .take(parse::MAX_ORDER_BYTES as u64 + 1)
        .read_to_end(&mut buf)
    {
        return broken(format!("cannot read file: {e}"));
    }
    match parse_telegraf_sidecar(&path, &buf) {
        Ok(m) => Sidecar::Meta(m),
        Err(e) => Sidecar::Broken(e),
    }
}

/// How an order's line-protocol settings were decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaSource {
    /// From the order file, or none at all.
    Order,
    /// From the sidecar; the order file has none.
    Sidecar,
    /// From the sidecar, over the order file's own `measurement_name` or
    /// `tags`, which are ignored (the original read only the sidecar).
    SidecarOverOrder,
}

impl Order {
    /// Applies `sidecar` (see [`read_sidecar`]): a usable sidecar wins over
    /// the order's own settings. A broken one changes nothing.
    pub fn apply_sidecar(&mut self, sidecar: &Sidecar) -> MetaSource {
        match sidecar {
            Sidecar::Meta(m) => {
                let over = self.telegraf.is_some();
                self.telegraf = Some(m.clone());
                if over {
                    MetaSource::SidecarOverOrder
                } else {
                    MetaSource::Sidecar
                }
            }
            Sidecar::Absent | Sidecar::Broken(_) => MetaSource::Order,
        }
    }
}

/// A validated order.
#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    /// Path relative to `orders/`; names the output directory too.
    pub id: OrderId,
    /// Owner application (`user:`), used for grouping in `status`.
    pub user: String,
    /// Free text (`task:`).
    pub task: Option<String>,
    /// Seconds between rounds.
    pub step: u32,
    /// Probes sent per round.
    pub pings: u32,
    /// What to probe and how.
    pub probe: ProbeSpec,
    /// Whether a `main.rrd` is kept.
    pub rrd: RrdTemplate,
    /// Line-protocol metadata: from the order, or from its `telegraf/<id>`
    /// sidecar, which wins when both exist ([`Order::apply_sidecar`]).
    pub telegraf: Option<TelegrafMeta>,
}

/// `rrd_template:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RrdTemplate {
    /// The default SmokePing layout of `main.rrd` (SPEC A6).
    #[default]
    Smokeping,
    /// No RRD is written; `last_result` still is.
    NoRrd,
}

/// `measurement_name` and `tags` for the line-protocol output.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TelegrafMeta {
    /// Measurement name; `None` when only tags were given.
    pub measurement_name: Option<String>,
    /// Tag key → value, values converted from YAML scalars to strings.
    pub tags: BTreeMap<String, String>,
}

/// A target host: an IP literal or a DNS name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Host {
    /// An IPv4 or IPv6 literal.
    Ip(IpAddr),
    /// A syntactically valid DNS name, resolved at each round.
    Name(String),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Ip(ip) => write!(f, "{ip}"),
            Host::Name(n) => f.write_str(n),
        }
    }
}

/// The probe of an order, with its section's options.
#[derive(Debug, Clone, PartialEq)]
pub enum ProbeSpec {
    /// ICMP echo, like `fping` (probed natively).
    Fping(FpingSpec),
    /// HTTP(S) request round trips, like `httping`.
    Httping(HttpingSpec),
    /// SCION SCMP echo (`sping`), through an external command.
    Sping(ScionSpec),
    /// SCION ping-pong (`pping`), through an external command.
    Pping(ScionSpec),
    /// TCP connect to an SSH server, checking its banner.
    Ssh(SshSpec),
    /// TCP connect time.
    Tcp(TcpSpec),
    /// DNS query time.
    Dns(DnsSpec),
    /// An operator-configured external command printing fping `-C` output.
    Exec(ExecSpec),
}

impl ProbeSpec {
    /// The probe's name as written in `probe:`.
    pub fn name(&self) -> &'static str {
        match self {
            ProbeSpec::Fping(_) => "fping",
            ProbeSpec::Httping(_) => "httping",
            ProbeSpec::Sping(_) => "sping",
            ProbeSpec::Pping(_) => "pping",
            ProbeSpec::Ssh(_) => "ssh",
            ProbeSpec::Tcp(_) => "tcp",
            ProbeSpec::Dns(_) => "dns",
            ProbeSpec::Exec(_) => "exec",
        }
    }

    /// The target as shown to operators (host or URL).
    pub fn target(&self) -> String {
        match self {
            ProbeSpec::Fping(s) => s.host.to_string(),
            ProbeSpec::Httping(s) => s.url.clone(),
            ProbeSpec::Sping(s) | ProbeSpec::Pping(s) => s.host.clone(),
            ProbeSpec::Ssh(s) => format!("{}:{}", s.host, s.port),
            ProbeSpec::Tcp(s) => format!("{}:{}", s.host, s.port),
            ProbeSpec::Dns(s) => format!("{} {} @{}", s.name, s.record_type, s.server),
            ProbeSpec::Exec(s) => format!("{} {}", s.probe, s.host),
        }
    }
}

/// The `fping:` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FpingSpec {
    /// Target host.
    pub host: Host,
    /// Send through this interface (`SO_BINDTODEVICE`).
    pub interface: Option<Interface>,
    /// Send from this address.
    pub source_ip: Option<IpAddr>,
    /// Milliseconds between two pings to the target; `None` = computed (SPEC A5).
    pub interval_ms: Option<u32>,
    /// Probe over IPv6 (default: true for IPv6 literals, false otherwise).
    pub ipv6: bool,
}

/// The `httping:` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpingSpec {
    /// `http://` or `https://` URL.
    pub url: String,
    /// Seconds between two requests (default 1).
    pub interval_s: u32,
    /// `User-Agent` header.
    pub user_agent: Option<String>,
    /// Proxy URL.
    pub proxy: Option<String>,
    /// HTTP status codes that count as a lost ping.
    pub http_codes_as_failure: Vec<u16>,
    /// Request method (default HEAD).
    pub method: HttpMethod,
}

/// `httping.method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum HttpMethod {
    /// HEAD (default): no body.
    #[default]
    Head,
    /// GET: the whole body is read.
    Get,
}

/// The `sping:` / `pping:` sections (SCION).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScionSpec {
    /// SCION address of the target (`ISD-AS,IP`), passed to the tool as is.
    pub host: String,
    /// Interface option passed to the tool.
    pub interface: Option<Interface>,
    /// Source address option passed to the tool.
    pub source_ip: Option<IpAddr>,
    /// Extra flags passed to the tool, split on whitespace (no shell).
    pub flags: Vec<String>,
    /// Milliseconds between pings, when given.
    pub interval_ms: Option<u32>,
    /// Whether IPv6 is used.
    pub ipv6: bool,
}

/// The `ssh:` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshSpec {
    /// Target host.
    pub host: Host,
    /// TCP port (default 22).
    pub port: u16,
    /// Key type the original passed to its scanner (kept for compatibility).
    pub key_type: Option<String>,
    /// Milliseconds between two pings (default 1000).
    pub interval_ms: u32,
    /// Use IPv6 for a host name.
    pub ipv6: bool,
}

/// The `tcp:` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpSpec {
    /// Target host.
    pub host: Host,
    /// TCP port.
    pub port: u16,
    /// Connect from this address.
    pub source_ip: Option<IpAddr>,
    /// Milliseconds between two pings (default 1000).
    pub interval_ms: u32,
    /// Use IPv6 for a host name.
    pub ipv6: bool,
}

/// The `dns:` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsSpec {
    /// The DNS server queried.
    pub server: IpAddr,
    /// Its UDP port (default 53).
    pub port: u16,
    /// The name queried.
    pub name: String,
    /// Record type (default `A`), upper case.
    pub record_type: String,
    /// Response code that counts as an answer (any when `None`), upper case.
    pub expect_rcode: Option<String>,
    /// Milliseconds between two queries (default 1000).
    pub interval_ms: u32,
}

/// The `exec:` section: an external probe command configured by the
/// operator (`--exec-probe NAME=COMMAND`), chosen by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecSpec {
    /// Name of the configured command.
    pub probe: String,
    /// Target, passed to the command as its last argument.
    pub host: String,
    /// Extra arguments, before the host.
    pub args: Vec<String>,
    /// Milliseconds between pings, passed to the command (default 1000).
    pub interval_ms: u32,
}

/// Why an order file was not accepted: file, field, value and rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct OrderError {
    /// The order file.
    pub file: PathBuf,
    /// Dotted field path (`fping.host`), `None` for whole-file errors.
    pub field: Option<String>,
    /// The offending value, shortened, when there is one.
    pub value: Option<String>,
    /// The rule that was broken, in words.
    pub reason: String,
    /// 1-based line in the file, when known.
    pub line: Option<usize>,
}

impl fmt::Display for OrderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(field) = &self.field {
            write!(f, ": field `{field}`")?;
        }
        if let Some(value) = &self.value {
            write!(f, ": value {value:?}")?;
        }
        write!(f, ": {}", self.reason)
    }
}
