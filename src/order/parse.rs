//! YAML → [`Order`]: parse the file into a YAML tree, then check each field
//! with a small rule function whose error names file, field, value and rule.
//!
//! Policy decisions (documented in the README):
//! * unknown top-level keys are accepted (the original ignored them) and
//!   reported as warnings, so typos are visible in the log;
//! * numbers may be written quoted (`step: "300"`), as Perl clients often do;
//! * a file is at most [`MAX_ORDER_BYTES`] and must be UTF-8.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use serde_yaml_ng::{Mapping, Value};

use super::{
    DnsSpec, ExecSpec, FpingSpec, Host, HttpMethod, HttpingSpec, Interface, Order, OrderError,
    OrderId, ProbeSpec, RrdTemplate, ScionSpec, SshSpec, TcpSpec, TelegrafMeta,
};

/// Largest order file accepted.
pub const MAX_ORDER_BYTES: usize = 64 * 1024;
/// Reply timeout of the fping probe (SPEC A5), used in the fit rules.
pub const FPING_TIMEOUT_MS: u64 = 3000;
/// Smallest computed interval between two pings to one target (SPEC A5).
pub const FPING_MIN_INTERVAL_MS: u64 = 1000;
/// Largest `step` accepted (one day).
pub const MAX_STEP: u32 = 86_400;
/// Largest `pings` accepted (each ping is a data source in `main.rrd`).
pub const MAX_PINGS: u32 = 1000;

/// Every top-level field an order may have.
pub const TOP_LEVEL_KEYS: &[&str] = &[
    "user",
    "task",
    "step",
    "pings",
    "probe",
    "rrd_template",
    "measurement_name",
    "tags",
    "fping",
    "httping",
    "sping",
    "pping",
    "ssh",
    "tcp",
    "dns",
    "exec",
];

/// A parsed order and the warnings found on the way (unknown keys).
#[derive(Debug)]
pub struct Parsed {
    /// The order.
    pub order: Order,
    /// Things worth a log line that do not make the order invalid.
    pub warnings: Vec<String>,
}

/// Error-building context: the file being parsed.
struct Ctx<'a> {
    file: &'a Path,
}

impl Ctx<'_> {
    fn err(&self, field: &str, value: Option<&Value>, reason: impl Into<String>) -> OrderError {
        OrderError {
            file: self.file.to_path_buf(),
            field: (!field.is_empty()).then(|| field.to_owned()),
            value: value.map(show_value),
            reason: reason.into(),
            line: None,
        }
    }
}

/// Short text form of a YAML value for error messages.
fn show_value(v: &Value) -> String {
    let s = match v {
        Value::Null => "~".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Sequence(_) => "[a list]".to_owned(),
        Value::Mapping(_) => "{a mapping}".to_owned(),
        Value::Tagged(t) => format!("!{} …", t.tag),
    };
    if s.chars().count() > 80 {
        let mut short: String = s.chars().take(77).collect();
        short.push('…');
        short
    } else {
        s
    }
}

/// Parses `bytes`, the content of order file `file` with id `id`.
pub fn parse_order(file: &Path, id: &OrderId, bytes: &[u8]) -> Result<Parsed, OrderError> {
    let cx = Ctx { file };
    let root = load_yaml(&cx, bytes)?;
    let map = match &root {
        Value::Mapping(m) => m,
        other => return Err(cx.err("", Some(other), "an order is a YAML mapping of fields")),
    };
    let mut warnings = Vec::new();
    for key in map.keys() {
        match key.as_str() {
            Some(k) if TOP_LEVEL_KEYS.contains(&k) => {}
            _ => warnings.push(format!(
                "{}: unknown field `{}` ignored",
                file.display(),
                show_value(key)
            )),
        }
    }

    let user = req_string(&cx, map, "user", "user")?;
    let task = opt_string(&cx, map, "task", "task")?;
    let step = req_uint(&cx, map, "step", "step", 1, MAX_STEP)?;
    let pings = req_uint(&cx, map, "pings", "pings", 1, MAX_PINGS)?;
    if step < pings {
        return Err(cx.err(
            "pings",
            map.get("pings"),
            format!("step / pings must be at least 1 (step is {step})"),
        ));
    }
    let probe_name = req_string(&cx, map, "probe", "probe")?;
    let section = |name: &str| -> Result<&Mapping, OrderError> {
        match map.get(name) {
            Some(Value::Mapping(m)) => Ok(m),
            Some(other) => Err(cx.err(
                name,
                Some(other),
                "the probe section is a mapping of options",
            )),
            None => Err(cx.err(
                name,
                None,
                format!("missing section `{name}:` for `probe: {name}`"),
            )),
        }
    };
    let probe = match probe_name.as_str() {
        "fping" => ProbeSpec::Fping(fping_section(&cx, section("fping")?, step, pings)?),
        "httping" => ProbeSpec::Httping(httping_section(&cx, section("httping")?, step, pings)?),
        "sping" => ProbeSpec::Sping(scion_section(&cx, section("sping")?, "sping")?),
        "pping" => ProbeSpec::Pping(scion_section(&cx, section("pping")?, "pping")?),
        "ssh" => ProbeSpec::Ssh(ssh_section(&cx, section("ssh")?, step, pings)?),
        "tcp" => ProbeSpec::Tcp(tcp_section(&cx, section("tcp")?, step, pings)?),
        "dns" => ProbeSpec::Dns(dns_section(&cx, section("dns")?, step, pings)?),
        "exec" => ProbeSpec::Exec(exec_section(&cx, section("exec")?, step, pings)?),
        _ => {
            return Err(cx.err(
                "probe",
                map.get("probe"),
                "unknown probe; expected one of fping, httping, sping, pping, ssh, tcp, dns, exec",
            ))
        }
    };
    let rrd = match opt_string(&cx, map, "rrd_template", "rrd_template")?.as_deref() {
        None | Some("smokeping") => RrdTemplate::Smokeping,
        Some("norrd") => RrdTemplate::NoRrd,
        Some(_) => {
            return Err(cx.err(
                "rrd_template",
                map.get("rrd_template"),
                "expected `smokeping` or `norrd`",
            ))
        }
    };
    let telegraf = telegraf_fields(&cx, map)?;
    Ok(Parsed {
        order: Order {
            id: id.clone(),
            user,
            task,
            step,
            pings,
            probe,
            rrd,
            telegraf,
        },
        warnings,
    })
}

/// Parses an old-interface `telegraf/<id>` sidecar (`measurement_name`, `tags`).
pub fn parse_telegraf_sidecar(file: &Path, bytes: &[u8]) -> Result<TelegrafMeta, OrderError> {
    let cx = Ctx { file };
    let root = load_yaml(&cx, bytes)?;
    match &root {
        Value::Mapping(m) => Ok(telegraf_fields(&cx, m)?.unwrap_or_default()),
        Value::Null => Ok(TelegrafMeta::default()),
        other => Err(cx.err("", Some(other), "a telegraf file is a YAML mapping")),
    }
}

fn load_yaml(cx: &Ctx<'_>, bytes: &[u8]) -> Result<Value, OrderError> {
    if bytes.len() > MAX_ORDER_BYTES {
        return Err(cx.err(
            "",
            None,
            format!(
                "file is {} bytes; orders are at most {MAX_ORDER_BYTES} bytes",
                bytes.len()
            ),
        ));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        cx.err(
            "",
            None,
            format!(
                "file is not UTF-8 text (invalid byte at offset {})",
                e.valid_up_to()
            ),
        )
    })?;
    if text.trim().is_empty() {
        return Err(cx.err("", None, "file is empty"));
    }
    serde_yaml_ng::from_str::<Value>(text).map_err(|e| {
        let msg = e.to_string();
        let reason = if msg.contains("repetition limit exceeded") {
            format!("YAML aliases expand too much (an alias bomb?): {msg}")
        } else if msg.contains("recursion limit exceeded") {
            format!("YAML nested too deeply: {msg}")
        } else {
            format!("YAML syntax error: {msg}")
        };
        let mut err = cx.err("", None, reason);
        err.line = e.location().map(|l| l.line());
        err
    })
}

fn telegraf_fields(cx: &Ctx<'_>, map: &Mapping) -> Result<Option<TelegrafMeta>, OrderError> {
    let measurement_name = opt_string(cx, map, "measurement_name", "measurement_name")?;
    if let Some(m) = &measurement_name {
        if m.is_empty() {
            return Err(cx.err(
                "measurement_name",
                map.get("measurement_name"),
                "must not be empty",
            ));
        }
    }
    let mut tags = BTreeMap::new();
    match map.get("tags") {
        None | Some(Value::Null) => {}
        Some(Value::Mapping(m)) => {
            for (k, v) in m {
                let key = scalar_text(k)
                    .ok_or_else(|| cx.err("tags", Some(k), "tag names are strings or numbers"))?;
                let field = format!("tags.{key}");
                if key.is_empty() || key.chars().any(char::is_control) {
                    return Err(cx.err(
                        &field,
                        Some(k),
                        "tag names are non-empty text without control characters",
                    ));
                }
                let val = scalar_text(v).ok_or_else(|| {
                    cx.err(
                        &field,
                        Some(v),
                        "tag values are strings, numbers or booleans",
                    )
                })?;
                if val.chars().any(char::is_control) {
                    return Err(cx.err(
                        &field,
                        Some(v),
                        "tag values contain no control characters",
                    ));
                }
                tags.insert(key, val);
            }
        }
        Some(other) => {
            return Err(cx.err("tags", Some(other), "tags are a mapping of name: value"))
        }
    }
    if measurement_name.is_none() && tags.is_empty() {
        return Ok(None);
    }
    Ok(Some(TelegrafMeta {
        measurement_name,
        tags,
    }))
}

fn fping_section(
    cx: &Ctx<'_>,
    m: &Mapping,
    step: u32,
    pings: u32,
) -> Result<FpingSpec, OrderError> {
    let host = req_host(cx, m, "fping.host")?;
    let interface = opt_interface(cx, m, "fping.interface")?;
    let source_ip = opt_ip(cx, m, "fping.source_ip")?;
    let interval_ms = opt_uint(cx, m, "interval", "fping.interval", 1, 3_600_000)?;
    let ipv6 = family_rule(cx, m, "fping", &host, source_ip)?;
    check_fping_fit(cx, m, step, pings, interval_ms)?;
    Ok(FpingSpec {
        host,
        interface,
        source_ip,
        interval_ms,
        ipv6,
    })
}

/// The `ipv6` flag and its agreement with the host and source address.
fn family_rule(
    cx: &Ctx<'_>,
    m: &Mapping,
    section: &str,
    host: &Host,
    source_ip: Option<IpAddr>,
) -> Result<bool, OrderError> {
    let field = format!("{section}.ipv6");
    let given = opt_bool(cx, m, "ipv6", &field)?;
    let ipv6 = match (host, given) {
        (Host::Ip(ip), Some(flag)) if ip.is_ipv6() != flag => {
            return Err(cx.err(
                &field,
                m.get("ipv6"),
                format!("does not match the address family of host {ip}"),
            ))
        }
        (Host::Ip(ip), _) => ip.is_ipv6(),
        (Host::Name(_), flag) => flag.unwrap_or(false),
    };
    if let Some(src) = source_ip {
        if src.is_ipv6() != ipv6 {
            return Err(cx.err(
                &format!("{section}.source_ip"),
                m.get("source_ip"),
                format!(
                    "source address family differs from the probed family (IPv{})",
                    if ipv6 { 6 } else { 4 }
                ),
            ));
        }
    }
    Ok(ipv6)
}

/// The interval the fping probe uses between two pings to one target for a
/// job of `targets` targets (SPEC A5), before the 1000 ms floor is checked.
pub fn fping_interval_ms(step: u32, pings: u32, targets: usize) -> i64 {
    let budget = i64::from(step) * 800 - targets as i64 - FPING_TIMEOUT_MS as i64;
    budget / i64::from(pings.max(1))
}

/// A round of `pings` pings must fit in the step with its reply timeout.
fn check_fping_fit(
    cx: &Ctx<'_>,
    m: &Mapping,
    step: u32,
    pings: u32,
    interval_ms: Option<u32>,
) -> Result<(), OrderError> {
    let step_ms = u64::from(step) * 1000;
    let interval = match interval_ms {
        Some(i) => u64::from(i),
        None if pings >= 2 => {
            let computed = fping_interval_ms(step, pings, 1);
            if computed < FPING_MIN_INTERVAL_MS as i64 {
                return Err(cx.err(
                    "pings",
                    None,
                    format!(
                        "{pings} pings do not fit in a step of {step} s: the computed interval \
                         floor((step*800 - targets - 3000) / pings) is {computed} ms, below \
                         the {FPING_MIN_INTERVAL_MS} ms minimum; use fewer pings, a longer \
                         step, or set fping.interval"
                    ),
                ));
            }
            computed as u64
        }
        None => 0,
    };
    let round = u64::from(pings - 1) * interval + FPING_TIMEOUT_MS;
    if round >= step_ms {
        let (field, value) = if interval_ms.is_some() {
            ("fping.interval", m.get("interval"))
        } else {
            ("step", None)
        };
        return Err(cx.err(
            field,
            value,
            format!(
                "a round ((pings-1) * interval + {FPING_TIMEOUT_MS} ms reply timeout = {round} ms) \
                 must end within the step ({step_ms} ms)"
            ),
        ));
    }
    Ok(())
}

fn httping_section(
    cx: &Ctx<'_>,
    m: &Mapping,
    step: u32,
    pings: u32,
) -> Result<HttpingSpec, OrderError> {
    let url = req_string(cx, m, "url", "httping.url")?;
    check_url(&url).map_err(|why| cx.err("httping.url", m.get("url"), why))?;
    let interval_s = opt_uint(cx, m, "interval", "httping.interval", 1, 3600)?.unwrap_or(1);
    // The last request must start within the step; a request's timeout is
    // 15 s, cut short at the next round's start.
    if u64::from(pings - 1) * u64::from(interval_s) >= u64::from(step) {
        return Err(cx.err(
            "httping.interval",
            m.get("interval"),
            format!(
                "the last request ((pings-1) * interval = {} s) must start within the step ({step} s)",
                u64::from(pings - 1) * u64::from(interval_s)
            ),
        ));
    }
    let method = match opt_string(cx, m, "method", "httping.method")?
        .map(|s| s.to_ascii_uppercase())
        .as_deref()
    {
        None | Some("HEAD") => HttpMethod::Head,
        Some("GET") => HttpMethod::Get,
        Some(_) => return Err(cx.err("httping.method", m.get("method"), "expected HEAD or GET")),
    };
    let user_agent = opt_string(cx, m, "user_agent", "httping.user_agent")?;
    if let Some(ua) = &user_agent {
        if ua.chars().any(char::is_control) {
            return Err(cx.err(
                "httping.user_agent",
                m.get("user_agent"),
                "contains a control character",
            ));
        }
    }
    let proxy = opt_string(cx, m, "proxy", "httping.proxy")?;
    if let Some(p) = &proxy {
        check_url(p).map_err(|why| cx.err("httping.proxy", m.get("proxy"), why))?;
    }
    let http_codes_as_failure = match m.get("http_codes_as_failure") {
        None | Some(Value::Null) => Vec::new(),
        Some(v) => parse_status_list(v)
            .map_err(|why| cx.err("httping.http_codes_as_failure", Some(v), why))?,
    };
    Ok(HttpingSpec {
        url,
        interval_s,
        user_agent,
        proxy,
        http_codes_as_failure,
        method,
    })
}

/// `403,407,503` (string), `403` (number) or `[403, 407]` (list).
fn parse_status_list(v: &Value) -> Result<Vec<u16>, String> {
    let items: Vec<String> = match v {
        Value::Sequence(seq) => seq
            .iter()
            .map(|x| scalar_text(x).ok_or_else(|| "list items are status codes".to_owned()))
            .collect::<Result<_, _>>()?,
        other => scalar_text(other)
            .ok_or_else(|| "expected status codes like \"403,407,503\"".to_owned())?
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect(),
    };
    items
        .iter()
        .map(|s| match s.parse::<u16>() {
            Ok(code) if (100..=599).contains(&code) => Ok(code),
            _ => Err(format!("{s:?} is not an HTTP status code (100-599)")),
        })
        .collect()
}

fn check_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or("expected an http:// or https:// URL")?;
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("a URL contains no white space or control characters".into());
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or("");
    if host_port.is_empty() || host_port.starts_with(':') {
        return Err("the URL has no host".into());
    }
    Ok(())
}

fn scion_section(cx: &Ctx<'_>, m: &Mapping, name: &str) -> Result<ScionSpec, OrderError> {
    let field = |f: &str| format!("{name}.{f}");
    let host = req_string(cx, m, "host", &field("host"))?;
    if host.is_empty()
        || host.chars().any(|c| c.is_whitespace() || c.is_control())
        || host.starts_with('-')
    {
        return Err(cx.err(
            &field("host"),
            m.get("host"),
            "a SCION address is non-empty, without white space, and does not start with `-`",
        ));
    }
    let interface = opt_interface(cx, m, &field("interface"))?;
    let source_ip = opt_ip(cx, m, &field("source_ip"))?;
    let flags = match m.get("flags") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Sequence(seq)) => seq
            .iter()
            .map(|x| {
                scalar_text(x).ok_or_else(|| cx.err(&field("flags"), Some(x), "flags are text"))
            })
            .collect::<Result<_, _>>()?,
        Some(v) => scalar_text(v)
            .ok_or_else(|| cx.err(&field("flags"), Some(v), "flags are text or a list of text"))?
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
    };
    let interval_ms = opt_uint(cx, m, "interval", &field("interval"), 1, 3_600_000)?;
    let ipv6 = opt_bool(cx, m, "ipv6", &field("ipv6"))?.unwrap_or(false);
    Ok(ScionSpec {
        host,
        interface,
        source_ip,
        flags,
        interval_ms,
        ipv6,
    })
}

/// Per-ping timeout of the tcp, ssh and dns probes.
pub const CONNECT_TIMEOUT_MS: u64 = 3000;
/// Per-request timeout of the httping probe (SPEC A9).
pub const HTTP_TIMEOUT_MS: u64 = 15_000;

/// `interval` in ms (default 1000), and a round —
/// `(pings-1) * interval + timeout_ms` — must end within the step.
fn interval_fit(
    cx: &Ctx<'_>,
    m: &Mapping,
    section: &str,
    step: u32,
    pings: u32,
    timeout_ms: u64,
) -> Result<u32, OrderError> {
    let field = format!("{section}.interval");
    let interval = opt_uint(cx, m, "interval", &field, 1, 3_600_000)?.unwrap_or(1000);
    let round = u64::from(pings - 1) * u64::from(interval) + timeout_ms;
    if round >= u64::from(step) * 1000 {
        return Err(cx.err(
            &field,
            m.get("interval"),
            format!(
                "a round ((pings-1) * interval + {timeout_ms} ms timeout = {round} ms) must end \
                 within the step ({} ms)",
                u64::from(step) * 1000
            ),
        ));
    }
    Ok(interval)
}

fn port(cx: &Ctx<'_>, m: &Mapping, field: &str, default: Option<u16>) -> Result<u16, OrderError> {
    match (opt_uint(cx, m, "port", field, 1, 65_535)?, default) {
        (Some(p), _) => Ok(p as u16),
        (None, Some(d)) => Ok(d),
        (None, None) => Err(cx.err(field, None, "missing required field `port`")),
    }
}

/// The `ipv6` flag of a connect-style probe: agrees with an IP literal,
/// chooses the family of a host name.
fn ipv6_flag(cx: &Ctx<'_>, m: &Mapping, section: &str, host: &Host) -> Result<bool, OrderError> {
    family_rule(cx, m, section, host, None)
}

fn ssh_section(cx: &Ctx<'_>, m: &Mapping, step: u32, pings: u32) -> Result<SshSpec, OrderError> {
    let host = req_host(cx, m, "ssh.host")?;
    let port = port(cx, m, "ssh.port", Some(22))?;
    let key_type = opt_string(cx, m, "key_type", "ssh.key_type")?;
    if let Some(k) = &key_type {
        if k.is_empty()
            || !k
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '@' || c == '.')
        {
            return Err(cx.err(
                "ssh.key_type",
                m.get("key_type"),
                "a key type is a word like rsa or ed25519",
            ));
        }
    }
    let ipv6 = ipv6_flag(cx, m, "ssh", &host)?;
    let interval_ms = interval_fit(cx, m, "ssh", step, pings, CONNECT_TIMEOUT_MS)?;
    Ok(SshSpec {
        host,
        port,
        key_type,
        interval_ms,
        ipv6,
    })
}

fn tcp_section(cx: &Ctx<'_>, m: &Mapping, step: u32, pings: u32) -> Result<TcpSpec, OrderError> {
    let host = req_host(cx, m, "tcp.host")?;
    let port = port(cx, m, "tcp.port", None)?;
    let source_ip = opt_ip(cx, m, "tcp.source_ip")?;
    let ipv6 = family_rule(cx, m, "tcp", &host, source_ip)?;
    let interval_ms = interval_fit(cx, m, "tcp", step, pings, CONNECT_TIMEOUT_MS)?;
    Ok(TcpSpec {
        host,
        port,
        source_ip,
        interval_ms,
        ipv6,
    })
}

fn dns_section(cx: &Ctx<'_>, m: &Mapping, step: u32, pings: u32) -> Result<DnsSpec, OrderError> {
    let server = match req_host(cx, m, "dns.server")? {
        Host::Ip(ip) => ip,
        Host::Name(_) => {
            return Err(cx.err(
                "dns.server",
                m.get("server"),
                "the DNS server is an IP address",
            ))
        }
    };
    let port = port(cx, m, "dns.port", Some(53))?;
    let name = req_string(cx, m, "name", "dns.name")?;
    if name != "." {
        parse_host(&name)
            .ok()
            .filter(|h| matches!(h, Host::Name(_)))
            .ok_or_else(|| cx.err("dns.name", m.get("name"), "not a valid DNS name"))?;
    }
    let record_type = opt_string(cx, m, "type", "dns.type")?
        .unwrap_or_else(|| "A".to_owned())
        .to_ascii_uppercase();
    if !probes::dns::valid_record_type(&record_type) {
        return Err(cx.err(
            "dns.type",
            m.get("type"),
            "unknown record type (A, AAAA, MX, TXT, NS, SOA, CNAME, PTR, SRV, …)",
        ));
    }
    let expect_rcode =
        opt_string(cx, m, "expect_rcode", "dns.expect_rcode")?.map(|r| r.to_ascii_uppercase());
    if let Some(r) = &expect_rcode {
        if !probes::dns::valid_rcode(r) {
            return Err(cx.err(
                "dns.expect_rcode",
                m.get("expect_rcode"),
                "unknown response code (NOERROR, NXDOMAIN, SERVFAIL, REFUSED, …)",
            ));
        }
    }
    let interval_ms = interval_fit(cx, m, "dns", step, pings, CONNECT_TIMEOUT_MS)?;
    Ok(DnsSpec {
        server,
        port,
        name,
        record_type,
        expect_rcode,
        interval_ms,
    })
}

fn exec_section(cx: &Ctx<'_>, m: &Mapping, step: u32, pings: u32) -> Result<ExecSpec, OrderError> {
    let probe = req_string(cx, m, "probe", "exec.probe")?;
    if probe.is_empty()
        || !probe
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(cx.err(
            "exec.probe",
            m.get("probe"),
            "an exec probe name is letters, digits, `-` and `_` (configured with --exec-probe NAME=COMMAND)",
        ));
    }
    let host = req_string(cx, m, "host", "exec.host")?;
    check_tool_arg(&host).map_err(|why| cx.err("exec.host", m.get("host"), why))?;
    let args = string_list(cx, m, "args", "exec.args")?;
    let interval_ms = interval_fit(cx, m, "exec", step, pings, 0)?;
    Ok(ExecSpec {
        probe,
        host,
        args,
        interval_ms,
    })
}

/// A target passed to an external tool: non-empty, no white space or
/// control characters, and not an option (`-x`).
fn check_tool_arg(s: &str) -> Result<(), &'static str> {
    if s.is_empty() || s.starts_with('-') || s.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        Err("a target is non-empty, without white space, and does not start with `-`")
    } else {
        Ok(())
    }
}

/// A list of strings, or one string split on white space.
fn string_list(
    cx: &Ctx<'_>,
    m: &Mapping,
    key: &str,
    field: &str,
) -> Result<Vec<String>, OrderError> {
    let v: Vec<String> = match m.get(key) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Sequence(seq)) => seq
            .iter()
            .map(|x| scalar_text(x).ok_or_else(|| cx.err(field, Some(x), "list items are text")))
            .collect::<Result<_, _>>()?,
        Some(v) => scalar_text(v)
            .ok_or_else(|| cx.err(field, Some(v), "text or a list of text"))?
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
    };
    if let Some(bad) = v.iter().find(|a| a.chars().any(char::is_control)) {
        return Err(cx.err(
            field,
            Some(&Value::String(bad.clone())),
            "arguments contain no control characters",
        ));
    }
    Ok(v)
}

// ---- field helpers ---------------------------------------------------------

/// Text of a scalar (string, number, bool); `None` for null, lists, maps.
fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn leaf(field: &str) -> &str {
    field.rsplit('.').next().unwrap_or(field)
}

fn req_string(cx: &Ctx<'_>, m: &Mapping, key: &str, field: &str) -> Result<String, OrderError> {
    opt_string(cx, m, key, field)?.ok_or_else(|| {
        cx.err(
            field,
            None,
            format!("missing required field `{}`", leaf(field)),
        )
    })
}

fn opt_string(
    cx: &Ctx<'_>,
    m: &Mapping,
    key: &str,
    field: &str,
) -> Result<Option<String>, OrderError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v @ Value::Number(_)) => Ok(scalar_text(v)),
        Some(v) => Err(cx.err(field, Some(v), "expected text")),
    }
}

fn opt_uint(
    cx: &Ctx<'_>,
    m: &Mapping,
    key: &str,
    field: &str,
    min: u32,
    max: u32,
) -> Result<Option<u32>, OrderError> {
    let v = match m.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(v) => v,
    };
    let n: Option<u64> = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    match n {
        Some(n) if n >= u64::from(min) && n <= u64::from(max) => Ok(Some(n as u32)),
        Some(_) => Err(cx.err(
            field,
            Some(v),
            format!("must be an integer from {min} to {max}"),
        )),
        None => Err(cx.err(
            field,
            Some(v),
            format!("expected an integer from {min} to {max}"),
        )),
    }
}

fn req_uint(
    cx: &Ctx<'_>,
    m: &Mapping,
    key: &str,
    field: &str,
    min: u32,
    max: u32,
) -> Result<u32, OrderError> {
    opt_uint(cx, m, key, field, min, max)?.ok_or_else(|| {
        cx.err(
            field,
            None,
            format!("missing required field `{}`", leaf(field)),
        )
    })
}

fn opt_bool(cx: &Ctx<'_>, m: &Mapping, key: &str, field: &str) -> Result<Option<bool>, OrderError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v @ Value::Number(n)) => match n.as_u64() {
            Some(0) => Ok(Some(false)),
            Some(1) => Ok(Some(true)),
            _ => Err(cx.err(field, Some(v), "expected true or false")),
        },
        Some(v @ Value::String(s)) => match s.to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => Ok(Some(true)),
            "false" | "no" | "0" | "" => Ok(Some(false)),
            _ => Err(cx.err(field, Some(v), "expected true or false")),
        },
        Some(v) => Err(cx.err(field, Some(v), "expected true or false")),
    }
}

fn opt_ip(cx: &Ctx<'_>, m: &Mapping, field: &str) -> Result<Option<IpAddr>, OrderError> {
    let key = leaf(field);
    match opt_string(cx, m, key, field)? {
        None => Ok(None),
        Some(s) => s
            .trim()
            .parse::<IpAddr>()
            .map(Some)
            .map_err(|_| cx.err(field, m.get(key), "not an IPv4 or IPv6 address")),
    }
}

fn opt_interface(cx: &Ctx<'_>, m: &Mapping, field: &str) -> Result<Option<Interface>, OrderError> {
    let key = leaf(field);
    match opt_string(cx, m, key, field)? {
        None => Ok(None),
        Some(s) => Interface::new(&s)
            .map(Some)
            .map_err(|why| cx.err(field, m.get(key), why)),
    }
}

fn req_host(cx: &Ctx<'_>, m: &Mapping, field: &str) -> Result<Host, OrderError> {
    let key = leaf(field);
    let s = req_string(cx, m, key, field)?;
    parse_host(&s).map_err(|why| cx.err(field, m.get(key), why))
}

/// An IP literal (IPv6 optionally in brackets) or a DNS name (RFC 1123).
pub fn parse_host(s: &str) -> Result<Host, String> {
    let t = s.trim();
    let unbracketed = t
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(t);
    if let Ok(ip) = unbracketed.parse::<IpAddr>() {
        return Ok(Host::Ip(ip));
    }
    let name = t.strip_suffix('.').unwrap_or(t);
    let why = "not an IP address or a valid host name";
    if name.is_empty() || name.len() > 253 {
        return Err(why.into());
    }
    for label in name.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !ok {
            return Err(why.into());
        }
    }
    // All-numeric dotted names are malformed addresses, not host names.
    if name
        .split('.')
        .all(|l| l.chars().all(|c| c.is_ascii_digit()))
    {
        return Err(why.into());
    }
    Ok(Host::Name(name.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn parse(yaml: &str) -> Result<Order, OrderError> {
        let id = OrderId::new("app/t1").unwrap();
        parse_order(&PathBuf::from("orders/app/t1"), &id, yaml.as_bytes()).map(|p| p.order)
    }

    fn err(yaml: &str) -> OrderError {
        parse(yaml).expect_err("order should be invalid")
    }

    const GOOD: &str = "user: tmon\ntask: tun_eth0_4061\nstep: 300\npings: 20\nprobe: fping\nfping:\n    host: 62.179.116.250\n";

    #[test]
    fn parses_the_documented_example() {
        let o = parse(GOOD).unwrap();
        assert_eq!(o.user, "tmon");
        assert_eq!(o.task.as_deref(), Some("tun_eth0_4061"));
        assert_eq!((o.step, o.pings), (300, 20));
        assert_eq!(o.rrd, RrdTemplate::Smokeping);
        assert_eq!(o.telegraf, None);
        let ProbeSpec::Fping(f) = &o.probe else {
            panic!("not fping")
        };
        assert_eq!(f.host, Host::Ip("62.179.116.250".parse().unwrap()));
        assert!(!f.ipv6);
        assert_eq!(f.interval_ms, None);
    }

    #[test]
    fn parses_every_fping_option_and_telegraf_fields() {
        let o = parse(
            "user: u\nstep: 60\npings: 5\nprobe: fping\nrrd_template: norrd\nmeasurement_name: tunnel\n\
             tags:\n  tunnel_id: 12458\n  interface: eth2\n  up: true\n\
             fping:\n  host: '::1'\n  interface: eth0\n  source_ip: '::1'\n  interval: 2000\n  ipv6: true\n",
        )
        .unwrap();
        assert_eq!(o.rrd, RrdTemplate::NoRrd);
        let t = o.telegraf.unwrap();
        assert_eq!(t.measurement_name.as_deref(), Some("tunnel"));
        assert_eq!(t.tags["tunnel_id"], "12458");
        assert_eq!(t.tags["up"], "true");
        let ProbeSpec::Fping(f) = o.probe else {
            panic!()
        };
        assert!(f.ipv6);
        assert_eq!(f.interface.unwrap().as_str(), "eth0");
        assert_eq!(f.interval_ms, Some(2000));
        assert_eq!(f.source_ip, Some("::1".parse().unwrap()));
    }

    #[test]
    fn ipv6_defaults_from_the_host() {
        let o = parse("user: u\nstep: 60\npings: 5\nprobe: fping\nfping: {host: '2001:db8::1'}\n")
            .unwrap();
        let ProbeSpec::Fping(f) = o.probe else {
            panic!()
        };
        assert!(f.ipv6);
        let o = parse("user: u\nstep: 60\npings: 5\nprobe: fping\nfping: {host: Example.NET}\n")
            .unwrap();
        let ProbeSpec::Fping(f) = o.probe else {
            panic!()
        };
        assert_eq!(f.host, Host::Name("example.net".into()));
        assert!(!f.ipv6);
    }

    #[test]
    fn quoted_numbers_are_accepted() {
        let o =
            parse("user: u\nstep: '60'\npings: \"5\"\nprobe: fping\nfping: {host: 127.0.0.1}\n")
                .unwrap();
        assert_eq!((o.step, o.pings), (60, 5));
    }

    #[test]
    fn other_probe_sections() {
        let o = parse(
            "user: u\nstep: 60\npings: 5\nprobe: httping\nhttping:\n  url: https://example.com/x\n  interval: 2\n  \
             user_agent: pm\n  proxy: http://10.0.0.24:8080\n  http_codes_as_failure: 403,407, 503\n",
        )
        .unwrap();
        let ProbeSpec::Httping(h) = o.probe else {
            panic!()
        };
        assert_eq!(h.http_codes_as_failure, vec![403, 407, 503]);
        assert_eq!(h.interval_s, 2);
        let o = parse("user: u\nstep: 60\npings: 5\nprobe: sping\nsping:\n  host: 1-ff00:0:110,10.0.0.1\n  flags: -x --y\n").unwrap();
        let ProbeSpec::Sping(s) = o.probe else {
            panic!()
        };
        assert_eq!(s.flags, vec!["-x", "--y"]);
        let o = parse(
            "user: u\nstep: 60\npings: 1\nprobe: pping\npping: {host: '1-ff00:0:110,[::1]'}\n",
        )
        .unwrap();
        assert_eq!(o.probe.name(), "pping");
        let o = parse(
            "user: u\nstep: 60\npings: 1\nprobe: ssh\nssh: {host: 10.1.2.3, key_type: ed25519}\n",
        )
        .unwrap();
        let ProbeSpec::Ssh(s) = o.probe else { panic!() };
        assert_eq!(s.key_type.as_deref(), Some("ed25519"));
    }

    #[test]
    fn unknown_keys_warn_but_pass() {
        let id = OrderId::new("x").unwrap();
        let p = parse_order(
            Path::new("orders/x"),
            &id,
            format!("{GOOD}stpe: 5\n").as_bytes(),
        )
        .unwrap();
        assert_eq!(p.warnings.len(), 1);
        assert!(p.warnings[0].contains("stpe"), "{:?}", p.warnings);
    }

    /// Each rule: (yaml, expected field, fragment of the reason).
    #[test]
    fn every_rule_names_field_and_reason() {
        let cases: &[(&str, Option<&str>, &str)] = &[
            ("user: [", None, "YAML syntax error"),
            ("- a\n- b\n", None, "YAML mapping"),
            ("", None, "empty"),
            ("step: 60\npings: 5\nprobe: fping\nfping: {host: 127.0.0.1}\n", Some("user"), "missing required field"),
            ("user: u\npings: 5\nprobe: fping\nfping: {host: 127.0.0.1}\n", Some("step"), "missing required field"),
            ("user: u\nstep: 60\nprobe: fping\nfping: {host: 127.0.0.1}\n", Some("pings"), "missing required field"),
            ("user: u\nstep: 60\npings: 5\nfping: {host: 127.0.0.1}\n", Some("probe"), "missing required field"),
            ("user: u\nstep: 0\npings: 5\nprobe: fping\nfping: {host: 127.0.0.1}\n", Some("step"), "from 1 to 86400"),
            ("user: u\nstep: -5\npings: 5\nprobe: fping\nfping: {host: 127.0.0.1}\n", Some("step"), "integer"),
            ("user: u\nstep: 1.5\npings: 5\nprobe: fping\nfping: {host: 127.0.0.1}\n", Some("step"), "integer"),
            ("user: u\nstep: abc\npings: 5\nprobe: fping\nfping: {host: 127.0.0.1}\n", Some("step"), "integer"),
            ("user: u\nstep: 60\npings: 0\nprobe: fping\nfping: {host: 127.0.0.1}\n", Some("pings"), "from 1"),
            ("user: u\nstep: 10\npings: 20\nprobe: fping\nfping: {host: 127.0.0.1}\n", Some("pings"), "step / pings"),
            ("user: u\nstep: 10\npings: 5\nprobe: fping\nfping: {host: 127.0.0.1}\n", Some("pings"), "1000 ms minimum"),
            ("user: u\nstep: 3\npings: 1\nprobe: fping\nfping: {host: 127.0.0.1}\n", Some("step"), "must end within the step"),
            ("user: u\nstep: 10\npings: 5\nprobe: fping\nfping: {host: 127.0.0.1, interval: 2000}\n", Some("fping.interval"), "must end within the step"),
            ("user: u\nstep: 60\npings: 5\nprobe: icmp\n", Some("probe"), "unknown probe"),
            ("user: u\nstep: 60\npings: 5\nprobe: fping\n", Some("fping"), "missing section"),
            ("user: u\nstep: 60\npings: 5\nprobe: fping\nfping: 127.0.0.1\n", Some("fping"), "mapping"),
            ("user: u\nstep: 60\npings: 5\nprobe: fping\nfping: {}\n", Some("fping.host"), "missing required field `host`"),
            ("user: u\nstep: 60\npings: 5\nprobe: fping\nfping: {host: 300.1.1.1}\n", Some("fping.host"), "not an IP address"),
            ("user: u\nstep: 60\npings: 5\nprobe: fping\nfping: {host: 'bad host'}\n", Some("fping.host"), "not an IP address"),
            ("user: u\nstep: 60\npings: 5\nprobe: fping\nfping: {host: 127.0.0.1, ipv6: true}\n", Some("fping.ipv6"), "address family"),
            ("user: u\nstep: 60\npings: 5\nprobe: fping\nfping: {host: 127.0.0.1, ipv6: maybe}\n", Some("fping.ipv6"), "true or false"),
            ("user: u\nstep: 60\npings: 5\nprobe: fping\nfping: {host: 127.0.0.1, source_ip: '::1'}\n", Some("fping.source_ip"), "family"),
            ("user: u\nstep: 60\npings: 5\nprobe: fping\nfping: {host: 127.0.0.1, source_ip: nowhere}\n", Some("fping.source_ip"), "not an IPv4"),
            ("user: u\nstep: 60\npings: 5\nprobe: fping\nfping: {host: 127.0.0.1, interface: 'eth 0'}\n", Some("fping.interface"), "white space"),
            ("user: u\nstep: 60\npings: 5\nprobe: fping\nfping: {host: 127.0.0.1, interval: 0}\n", Some("fping.interval"), "from 1"),
            ("user: [a]\nstep: 60\npings: 5\nprobe: fping\nfping: {host: 127.0.0.1}\n", Some("user"), "expected text"),
            ("user: u\nstep: 60\npings: 5\nprobe: fping\nrrd_template: fancy\nfping: {host: 127.0.0.1}\n", Some("rrd_template"), "norrd"),
            ("user: u\nstep: 60\npings: 5\nprobe: fping\ntags: [a]\nfping: {host: 127.0.0.1}\n", Some("tags"), "mapping"),
            ("user: u\nstep: 60\npings: 5\nprobe: fping\ntags: {a: [1]}\nfping: {host: 127.0.0.1}\n", Some("tags.a"), "tag values"),
            ("user: u\nstep: 60\npings: 5\nprobe: fping\nmeasurement_name: ''\nfping: {host: 127.0.0.1}\n", Some("measurement_name"), "empty"),
            ("user: u\nstep: 60\npings: 5\nprobe: httping\nhttping: {url: 'ftp://x'}\n", Some("httping.url"), "http://"),
            ("user: u\nstep: 60\npings: 5\nprobe: httping\nhttping: {url: 'http://'}\n", Some("httping.url"), "no host"),
            ("user: u\nstep: 60\npings: 5\nprobe: httping\nhttping: {url: 'http://x', http_codes_as_failure: '403,abc'}\n", Some("httping.http_codes_as_failure"), "not an HTTP status"),
            ("user: u\nstep: 60\npings: 30\nprobe: httping\nhttping: {url: 'http://x', interval: 3}\n", Some("httping.interval"), "must start within the step"),
            ("user: u\nstep: 60\npings: 5\nprobe: sping\nsping: {host: '-rf'}\n", Some("sping.host"), "SCION address"),
            ("user: u\nstep: 60\npings: 5\nprobe: ssh\nssh: {host: 10.0.0.1, key_type: 'a b'}\n", Some("ssh.key_type"), "key type"),
        ];
        for (yaml, field, reason) in cases {
            let e = err(yaml);
            assert_eq!(e.field.as_deref(), *field, "field for {yaml:?}: {e}");
            assert!(e.reason.contains(reason), "reason for {yaml:?}: {e}");
            assert!(e.to_string().starts_with("orders/app/t1"), "{e}");
        }
    }

    #[test]
    fn errors_show_value_and_line() {
        let e = err("user: u\nstep: 60\npings: 5\nprobe: fping\nfping: {host: 300.1.1.1}\n");
        assert_eq!(e.value.as_deref(), Some("300.1.1.1"));
        assert_eq!(
            e.to_string(),
            "orders/app/t1: field `fping.host`: value \"300.1.1.1\": not an IP address or a valid host name"
        );
        let e = err("user: u\nstep: 60\n  pings: 5\n");
        assert_eq!(e.line, Some(3), "{e}");
    }

    #[test]
    fn oversize_and_binary_files() {
        let id = OrderId::new("x").unwrap();
        let big = format!("{GOOD}# {}\n", "x".repeat(MAX_ORDER_BYTES));
        let e = parse_order(Path::new("f"), &id, big.as_bytes()).unwrap_err();
        assert!(e.reason.contains("at most"), "{e}");
        let e = parse_order(Path::new("f"), &id, b"user: \xff\xfe\n").unwrap_err();
        assert!(e.reason.contains("UTF-8"), "{e}");
    }

    #[test]
    fn alias_bombs_and_deep_nesting_are_refused() {
        let mut bomb = String::from(
            "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
        );
        for (i, name) in ["b", "c", "d", "e", "f", "g", "h", "i"].iter().enumerate() {
            let prev = if i == 0 {
                "a".to_string()
            } else {
                ["b", "c", "d", "e", "f", "g", "h"][i - 1].to_string()
            };
            bomb.push_str(&format!("{name}: &{name} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"));
        }
        bomb.push_str("user: u\nstep: 60\npings: 5\nprobe: fping\nfping: {host: 127.0.0.1}\n");
        let started = std::time::Instant::now();
        let e = err(&bomb);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "alias bomb took {:?}",
            started.elapsed()
        );
        assert!(e.reason.contains("YAML aliases expand too much"), "{e}");
        let deep = format!("user: {}{}\n", "[".repeat(5000), "]".repeat(5000));
        let e = err(&deep);
        assert!(e.reason.contains("YAML nested too deeply"), "{e}");
    }

    #[test]
    fn telegraf_sidecar() {
        let t = parse_telegraf_sidecar(
            Path::new("telegraf/x"),
            b"measurement_name: tunnel\ntags:\n    tunnel_id: 12458\n    remote_host: 5292\n",
        )
        .unwrap();
        assert_eq!(t.measurement_name.as_deref(), Some("tunnel"));
        assert_eq!(t.tags.len(), 2);
        assert!(parse_telegraf_sidecar(Path::new("t"), b"- 1\n").is_err());
    }

    #[test]
    fn hosts() {
        assert_eq!(
            parse_host("[::1]").unwrap(),
            Host::Ip("::1".parse().unwrap())
        );
        assert_eq!(
            parse_host("a-b.example.").unwrap(),
            Host::Name("a-b.example".into())
        );
        for bad in ["", "-a.b", "a..b", "1.2.3", "a b", &"x".repeat(64)] {
            assert!(parse_host(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn fixture_and_demo_orders_are_valid() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/orders");
        let mut n = 0;
        for dir in ["good", "demo/demo"] {
            for ent in std::fs::read_dir(root.join(dir)).unwrap() {
                let path = ent.unwrap().path();
                let id = OrderId::new(path.file_name().unwrap().to_str().unwrap()).unwrap();
                let p = parse_order(&path, &id, &std::fs::read(&path).unwrap())
                    .unwrap_or_else(|e| panic!("{e}"));
                assert!(p.warnings.is_empty(), "{:?}", p.warnings);
                n += 1;
            }
        }
        assert!(n >= 8, "only {n} fixtures");
    }

    #[test]
    fn interval_formula() {
        // SPEC A5: floor((step*1000*0.8 - targets*1 - 3000) / pings)
        assert_eq!(fping_interval_ms(60, 20, 1000), 2200);
        assert_eq!(fping_interval_ms(300, 20, 1), 11849);
        assert_eq!(fping_interval_ms(10, 5, 1), 999);
    }
}
