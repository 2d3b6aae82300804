//! Reading one field of an order: the YAML value helpers every rule uses,
//! and [`Section`], a probe's section (`fping:`, `tcp:` …) whose errors name
//! the field as `section.key`. Each helper's error names file, field, value
//! and rule ([`OrderError`]).

use std::net::IpAddr;
use std::path::Path;

use serde_yaml_ng::{Mapping, Value};

use super::{Host, Interface, OrderError};
use crate::schedule;

/// Error-building context: the file being parsed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ctx<'a> {
    pub(crate) file: &'a Path,
}

impl Ctx<'_> {
    /// An error on `field` (empty: the whole file) about `value`.
    pub(crate) fn err(
        &self,
        field: &str,
        value: Option<&Value>,
        reason: impl Into<String>,
    ) -> OrderError {
        OrderError {
            file: self.file.to_path_buf(),
            field: (!field.is_empty()).then(|| field.to_owned()),
            value: value.map(show_value),
            reason: reason.into(),
            line: None,
        }
    }
}

/// A probe's section of an order: its name (`tcp`) and its mapping. It
/// remembers which keys the probe's rules read, so that the others can be
/// reported as unknown ([`Section::unread`]).
#[derive(Debug, Clone)]
pub struct Section<'a> {
    cx: Ctx<'a>,
    name: &'static str,
    map: &'a Mapping,
    read: std::cell::RefCell<std::collections::BTreeSet<String>>,
}

impl<'a> Section<'a> {
    pub(crate) fn new(cx: Ctx<'a>, name: &'static str, map: &'a Mapping) -> Section<'a> {
        Section {
            cx,
            name,
            map,
            read: Default::default(),
        }
    }

    fn note(&self, key: &str) {
        self.read.borrow_mut().insert(key.to_owned());
    }

    /// The keys of the section that no rule read: unknown options (typos).
    pub fn unread(&self) -> Vec<String> {
        let read = self.read.borrow();
        self.map
            .keys()
            .map(show_value)
            .filter(|k| !read.contains(k.as_str()))
            .collect()
    }

    /// The section's name (`tcp`).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The dotted field name of `key` (`tcp.port`).
    pub fn field(&self, key: &str) -> String {
        format!("{}.{key}", self.name)
    }

    /// The raw value of `key`.
    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.note(key);
        self.map.get(key)
    }

    /// An error on `key`, showing its value.
    pub fn err(&self, key: &str, reason: impl Into<String>) -> OrderError {
        self.cx.err(&self.field(key), self.get(key), reason)
    }

    /// An error on `key` about `value` (an item of a list, say).
    pub fn err_value(&self, key: &str, value: &Value, reason: impl Into<String>) -> OrderError {
        self.cx.err(&self.field(key), Some(value), reason)
    }

    /// An error on a top-level field (`step`, `pings`) found while checking
    /// this section.
    pub fn err_top(&self, field: &str, reason: impl Into<String>) -> OrderError {
        self.cx.err(field, None, reason)
    }

    /// Required text.
    pub fn req_string(&self, key: &str) -> Result<String, OrderError> {
        self.note(key);
        req_string(&self.cx, self.map, key, &self.field(key))
    }

    /// Optional text (numbers are taken as text).
    pub fn opt_string(&self, key: &str) -> Result<Option<String>, OrderError> {
        self.note(key);
        opt_string(&self.cx, self.map, key, &self.field(key))
    }

    /// Optional integer in `min..=max` (quoted numbers accepted).
    pub fn opt_uint(&self, key: &str, min: u32, max: u32) -> Result<Option<u32>, OrderError> {
        self.note(key);
        opt_uint(&self.cx, self.map, key, &self.field(key), min, max)
    }

    /// Optional boolean (`true`, `yes`, `1` …).
    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>, OrderError> {
        self.note(key);
        opt_bool(&self.cx, self.map, key, &self.field(key))
    }

    /// Optional IP address.
    pub fn opt_ip(&self, key: &str) -> Result<Option<IpAddr>, OrderError> {
        match self.opt_string(key)? {
            None => Ok(None),
            Some(s) => s
                .trim()
                .parse::<IpAddr>()
                .map(Some)
                .map_err(|_| self.err(key, "not an IPv4 or IPv6 address")),
        }
    }

    /// Optional interface name.
    pub fn opt_interface(&self, key: &str) -> Result<Option<Interface>, OrderError> {
        match self.opt_string(key)? {
            None => Ok(None),
            Some(s) => Interface::new(&s)
                .map(Some)
                .map_err(|why| self.err(key, why.to_string())),
        }
    }

    /// Required host: an IP literal or a DNS name.
    pub fn req_host(&self, key: &str) -> Result<Host, OrderError> {
        let s = self.req_string(key)?;
        parse_host(&s).map_err(|why| self.err(key, why.to_string()))
    }

    /// `port`, with a default when the probe has one.
    pub fn port(&self, default: Option<u16>) -> Result<u16, OrderError> {
        match (self.opt_uint("port", 1, 65_535)?, default) {
            (Some(p), _) => Ok(p as u16),
            (None, Some(d)) => Ok(d),
            (None, None) => {
                Err(self
                    .cx
                    .err(&self.field("port"), None, "missing required field `port`"))
            }
        }
    }

    /// A list of strings, or one string split on white space; no control
    /// characters.
    pub fn string_list(&self, key: &str) -> Result<Vec<String>, OrderError> {
        let v: Vec<String> = match self.get(key) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Sequence(seq)) => seq
                .iter()
                .map(|x| {
                    scalar_text(x).ok_or_else(|| self.err_value(key, x, "list items are text"))
                })
                .collect::<Result<_, _>>()?,
            Some(v) => scalar_text(v)
                .ok_or_else(|| self.err_value(key, v, "text or a list of text"))?
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
        };
        if let Some(bad) = v.iter().find(|a| a.chars().any(char::is_control)) {
            return Err(self.err_value(
                key,
                &Value::String(bad.clone()),
                "arguments contain no control characters",
            ));
        }
        Ok(v)
    }

    /// The `ipv6` flag and its agreement with the host and source address:
    /// it must match an IP literal, and chooses the family of a host name.
    pub fn family(&self, host: &Host, source_ip: Option<IpAddr>) -> Result<bool, OrderError> {
        let given = self.opt_bool("ipv6")?;
        let ipv6 = match (host, given) {
            (Host::Ip(ip), Some(flag)) if ip.is_ipv6() != flag => {
                return Err(self.err(
                    "ipv6",
                    format!("does not match the address family of host {ip}"),
                ))
            }
            (Host::Ip(ip), _) => ip.is_ipv6(),
            (Host::Name(_), flag) => flag.unwrap_or(false),
        };
        if let Some(src) = source_ip {
            if src.is_ipv6() != ipv6 {
                return Err(self.err(
                    "source_ip",
                    format!(
                        "source address family differs from the probed family (IPv{})",
                        if ipv6 { 6 } else { 4 }
                    ),
                ));
            }
        }
        Ok(ipv6)
    }

    /// `interval` in ms (default 1000), such that a round of `pings` pings,
    /// each allowed `timeout_ms`, ends within the step
    /// ([`schedule::series_round_ms`]).
    pub fn interval_fit(&self, step: u32, pings: u32, timeout_ms: u64) -> Result<u32, OrderError> {
        let interval = self
            .opt_uint("interval", 1, schedule::MAX_INTERVAL_MS)?
            .unwrap_or(schedule::DEFAULT_INTERVAL_MS);
        let round = schedule::series_round_ms(pings, interval, timeout_ms);
        let step_ms = u64::from(step) * 1000;
        if round >= step_ms {
            return Err(self.err(
                "interval",
                format!(
                    "a round ((pings-1) * interval + {timeout_ms} ms timeout = {round} ms) must end \
                     within the step ({step_ms} ms)"
                ),
            ));
        }
        Ok(interval)
    }
}

/// Short text form of a YAML value for error messages.
pub(crate) fn show_value(v: &Value) -> String {
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

/// Text of a scalar (string, number, bool); `None` for null, lists, maps.
pub(crate) fn scalar_text(v: &Value) -> Option<String> {
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

pub(crate) fn req_string(
    cx: &Ctx<'_>,
    m: &Mapping,
    key: &str,
    field: &str,
) -> Result<String, OrderError> {
    opt_string(cx, m, key, field)?.ok_or_else(|| missing(cx, field))
}

/// The error of a required field that is absent.
fn missing(cx: &Ctx<'_>, field: &str) -> OrderError {
    cx.err(
        field,
        None,
        format!("missing required field `{}`", leaf(field)),
    )
}

pub(crate) fn opt_string(
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

pub(crate) fn opt_uint(
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

pub(crate) fn req_uint(
    cx: &Ctx<'_>,
    m: &Mapping,
    key: &str,
    field: &str,
    min: u32,
    max: u32,
) -> Result<u32, OrderError> {
    opt_uint(cx, m, key, field, min, max)?.ok_or_else(|| missing(cx, field))
}

pub(crate) fn opt_bool(
    cx: &Ctx<'_>,
    m: &Mapping,
    key: &str,
    field: &str,
) -> Result<Option<bool>, OrderError> {
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

/// Why text is not a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not an IP address or a valid host name")]
pub struct BadHost;

/// An IP literal (IPv6 optionally in brackets) or a DNS name (RFC 1123).
pub fn parse_host(s: &str) -> Result<Host, BadHost> {
    let t = s.trim();
    let unbracketed = t
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(t);
    if let Ok(ip) = unbracketed.parse::<IpAddr>() {
        return Ok(Host::Ip(ip));
    }
    let name = t.strip_suffix('.').unwrap_or(t);
    if name.is_empty() || name.len() > 253 {
        return Err(BadHost);
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
            return Err(BadHost);
        }
    }
    // All-numeric dotted names are malformed addresses, not host names.
    if name
        .split('.')
        .all(|l| l.chars().all(|c| c.is_ascii_digit()))
    {
        return Err(BadHost);
    }
    Ok(Host::Name(name.to_ascii_lowercase()))
}

/// A target passed to an external tool: non-empty, no white space or
/// control characters, and not an option (`-x`).
pub fn check_tool_arg(s: &str) -> Result<(), &'static str> {
    if s.is_empty() || s.starts_with('-') || s.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        Err("a target is non-empty, without white space, and does not start with `-`")
    } else {
        Ok(())
    }
}
