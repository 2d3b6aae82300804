//! `pingmachine import smokeping FILE [--dry-run]`: a SmokePing
//! configuration (its Database, Probes and Targets sections, `@include`d
//! files, continuation lines, comments) or a Targets file alone, one order
//! per target, its id the target's place in the `+`/`++`/`+++` hierarchy.
//!
//! `pingmachine import smokeping_prober FILE [--dry-run]`: a
//! smokeping_prober configuration (`targets:` groups of `hosts` with
//! `interval`, `network`, `protocol`, `size`, `source`, `labels`) turned
//! into one order per host, written atomically below `orders/` (or printed
//! with `--dry-run`).
//!
//! smokeping_prober pings each host every `interval` without end; an order
//! groups pings into rounds: a 60-second step of up to 20 pings spaced by
//! the group's interval (fewer when the interval is long, so that a round
//! fits in its step). What cannot be converted is listed with the file and
//! the line where it is, never dropped silently: a `udp` protocol (ICMP
//! only), a packet `size` below 16 data bytes, an unknown key.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::Context as _;
use serde_yaml_ng::Value;

use crate::basedir::BaseDir;
use crate::order::{self, OrderId};

/// The step of the imported orders, seconds.
const STEP: u32 = 60;
/// Pings per round at most.
const PINGS: u32 = 20;
/// What a round may take of its step, ms (the rest: reply timeout and the
/// start offset).
const ROUND_BUDGET_MS: u64 = 50_000;

/// One order to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// Its id below `orders/`.
    pub id: String,
    /// The order file.
    pub text: String,
}

/// What an import made, and what it could not convert.
#[derive(Debug, Default)]
pub struct Import {
    /// The orders.
    pub orders: Vec<Imported>,
    /// `FILE:LINE: what` for everything not converted.
    pub notes: Vec<String>,
}

/// A Go `time.ParseDuration` value (`1s`, `500ms`, `1m30s`, `2.5s`), ms.
fn go_duration_ms(s: &str) -> Option<u64> {
    let mut rest = s.trim();
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total = 0.0;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter(|n| *n > 0)?;
        let value: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let ms = match &rest[..unit_len] {
            "ns" => 1e-6,
            "us" | "µs" => 1e-3,
            "ms" => 1.0,
            "s" => 1e3,
            "m" => 60e3,
            "h" => 3600e3,
            _ => return None,
        };
        total += value * ms;
        rest = &rest[unit_len..];
    }
    Some(total.round() as u64)
}

/// The 1-based line of the first occurrence of `needle` at or after line
/// `from` in `text` (else `from`).
fn line_of(text: &str, needle: &str, from: usize) -> usize {
    text.lines()
        .enumerate()
        .skip(from.saturating_sub(1))
        .find(|(_, l)| l.contains(needle))
        .map_or(from, |(i, _)| i + 1)
}

/// A YAML scalar as text.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// An id part from a host: itself when it is a valid id, else with the
/// characters an id cannot hold replaced.
fn id_part(host: &str) -> String {
    let clean: String = host
        .chars()
        .map(|c| {
            if c == '/' || c.is_control() || c.is_whitespace() {
                '_'
            } else {
                c
            }
        })
        .collect();
    let clean = clean.trim_start_matches('.').to_owned();
    if clean.is_empty() {
        "host".to_owned()
    } else {
        clean
    }
}

/// A target group's options but `hosts`, `interval` and `labels`: the
/// fping section's extra lines, and whether the group cannot be converted
/// at all (`protocol: udp`). What is not converted goes to `notes`.
fn group_options(
    g: &serde_yaml_ng::Mapping,
    text: &str,
    line: usize,
    f: &str,
    notes: &mut Vec<String>,
) -> (String, bool) {
    let mut fping = String::new();
    let mut skip_group = false;
    for (k, v) in g {
        let key = scalar(k).unwrap_or_default();
        let at = line_of(text, &key, line);
        match key.as_str() {
            "hosts" | "labels" => {}
            "interval" => {}
            "network" => match scalar(v).as_deref() {
                Some("ip6") => fping.push_str("  ipv6: true\n"),
                Some("ip" | "ip4") => {}
                other => notes.push(format!(
                    "{f}:{at}: network {other:?} not converted (ip, ip4 or ip6)"
                )),
            },
            "protocol" => match scalar(v).as_deref() {
                Some("icmp") => {}
                other => {
                    notes.push(format!(
                        "{f}:{at}: protocol {} not converted: ICMP only; the group's hosts are left out",
                        other.unwrap_or("?")
                    ));
                    skip_group = true;
                }
            },
            "size" => match scalar(v).and_then(|s| s.trim().parse::<u16>().ok()) {
                Some(n)
                    if (probes::icmp::MIN_DATA_BYTES..=probes::icmp::MAX_DATA_BYTES)
                        .contains(&n) =>
                {
                    if n != probes::icmp::DEFAULT_DATA_BYTES {
                        fping.push_str(&format!("  size: {n}\n"));
                    }
                }
                _ => notes.push(format!(
                    "{f}:{at}: size {} not converted: from {} to {} data bytes",
                    scalar(v).unwrap_or_default(),
                    probes::icmp::MIN_DATA_BYTES,
                    probes::icmp::MAX_DATA_BYTES
                )),
            },
            "source" => match scalar(v) {
                Some(s) => fping.push_str(&format!("  source_ip: '{s}'\n")),
                None => notes.push(format!("{f}:{at}: source is not an address")),
            },
            other => notes.push(format!("{f}:{at}: option `{other}` not converted")),
        }
    }
    (fping, skip_group)
}

/// Converts a smokeping_prober configuration read from `file`.
pub fn smokeping_prober(file: &Path, text: &str) -> anyhow::Result<Import> {
    let root: Value =
        serde_yaml_ng::from_str(text).with_context(|| format!("{}: not YAML", file.display()))?;
    let targets = root
        .get("targets")
        .and_then(Value::as_sequence)
        .with_context(|| format!("{}: no `targets:` list", file.display()))?;
    let mut out = Import::default();
    let mut used: BTreeMap<String, u32> = BTreeMap::new();
    let mut line = 1;
    let f = file.display();
    for group in targets {
        let Some(g) = group.as_mapping() else {
            out.notes
                .push(format!("{f}:{line}: a target group that is not a mapping"));
            continue;
        };
        line = line_of(text, "hosts", line);
        let (fping, skip_group) = group_options(g, text, line, &f.to_string(), &mut out.notes);
        let interval_ms = match g.get("interval") {
            None => 1000,
            Some(v) => match scalar(v).as_deref().and_then(go_duration_ms) {
                Some(ms) if ms >= 1 => ms,
                _ => {
                    let at = line_of(text, "interval", line);
                    out.notes.push(format!(
                        "{f}:{at}: interval {:?} is not a duration; 1s taken",
                        scalar(v).unwrap_or_default()
                    ));
                    1000
                }
            },
        };
        let pings = (ROUND_BUDGET_MS / interval_ms).clamp(1, u64::from(PINGS));
        let mut tags = String::new();
        if let Some(labels) = g.get("labels").and_then(Value::as_mapping) {
            for (k, v) in labels {
                if let (Some(k), Some(v)) = (scalar(k), scalar(v)) {
                    tags.push_str(&format!("  {k}: '{}'\n", v.replace('\'', "''")));
                }
            }
        }
        let hosts = g.get("hosts").and_then(Value::as_sequence);
        let Some(hosts) = hosts.filter(|h| !h.is_empty()) else {
            out.notes
                .push(format!("{f}:{line}: a target group without hosts"));
            continue;
        };
        for h in hosts {
            let Some(host) = scalar(h) else {
                out.notes
                    .push(format!("{f}:{line}: a host that is not text"));
                continue;
            };
            let at = line_of(text, &host, line);
            if skip_group {
                continue;
            }
            let base_id = format!("smokeping_prober/{}", id_part(&host));
            let n = used.entry(base_id.clone()).or_insert(0);
            *n += 1;
            let id = if *n == 1 {
                base_id
            } else {
                format!("{base_id}-{n}")
            };
            let mut text_out = format!(
                "# Imported from {f}:{at}.\nuser: smokeping_prober\nstep: {STEP}\npings: {pings}\nprobe: fping\nfping:\n  host: '{host}'\n  interval: {interval_ms}\n{fping}"
            );
            if !tags.is_empty() {
                text_out.push_str("tags:\n");
                text_out.push_str(&tags);
            }
            let oid = OrderId::new(&id).map_err(|e| anyhow::anyhow!("{f}:{at}: {e}"))?;
            match order::parse_order(file, &oid, text_out.as_bytes()) {
                Ok(_) => out.orders.push(Imported { id, text: text_out }),
                Err(e) => out
                    .notes
                    .push(format!("{f}:{at}: host {host} not converted: {e}")),
            }
        }
        line += 1;
    }
    Ok(out)
}

/// One line of a SmokePing configuration, after includes and
/// continuations: where it came from, and its text.
#[derive(Debug, Clone)]
struct Line {
    at: String,
    text: String,
}

/// The lines of `file` with `@include`s expanded (relative to the including
/// file's directory, at most 8 deep) and `\`-continued lines joined;
/// comments and blank lines dropped. `read` reads a file.
fn smokeping_lines(
    file: &Path,
    read: &dyn Fn(&Path) -> std::io::Result<String>,
    depth: usize,
    notes: &mut Vec<String>,
) -> anyhow::Result<Vec<Line>> {
    let text = read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let mut out: Vec<Line> = Vec::new();
    let mut pending: Option<Line> = None;
    for (n, raw) in text.lines().enumerate() {
        let at = format!("{}:{}", file.display(), n + 1);
        let content = raw.trim_end();
        let (content, continued) = match content.strip_suffix('\\') {
            Some(c) => (c.trim_end(), true),
            None => (content, false),
        };
        let joined = match pending.take() {
            Some(mut p) => {
                p.text.push(' ');
                p.text.push_str(content.trim());
                p
            }
            None => Line {
                at,
                text: content.to_owned(),
            },
        };
        if continued {
            pending = Some(joined);
            continue;
        }
        let t = joined.text.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        if let Some(inc) = t.strip_prefix("@include") {
            let inc = inc.trim();
            let path = file.parent().unwrap_or(Path::new(".")).join(inc);
            if depth >= 8 {
                notes.push(format!("{}: @include {inc} too deep, not read", joined.at));
                continue;
            }
            match smokeping_lines(&path, read, depth + 1, notes) {
                Ok(lines) => out.extend(lines),
                Err(e) => notes.push(format!("{}: @include {inc}: {e:#}", joined.at)),
            }
            continue;
        }
        out.push(Line {
            at: joined.at,
            text: t.to_owned(),
        });
    }
    if let Some(p) = pending {
        out.push(p);
    }
    Ok(out)
}

/// A `key = value` line.
fn key_value(t: &str) -> Option<(&str, &str)> {
    let (k, v) = t.split_once('=')?;
    let k = k.trim();
    (!k.is_empty() && !k.contains(char::is_whitespace)).then(|| (k, v.trim()))
}

/// A node of the Targets tree (or a probe of the Probes section): its
/// depth (`+` count), name, variables and where it starts.
#[derive(Debug, Clone, Default)]
struct Node {
    depth: usize,
    name: String,
    vars: BTreeMap<String, String>,
    at: String,
}

/// The `+`-sections of `lines`.
fn nodes(lines: &[Line]) -> (BTreeMap<String, String>, Vec<Node>) {
    let mut top = BTreeMap::new();
    let mut out: Vec<Node> = Vec::new();
    for l in lines {
        let t = l.text.as_str();
        let plus = t.chars().take_while(|c| *c == '+').count();
        if plus > 0 {
            out.push(Node {
                depth: plus,
                name: t[plus..].trim().to_owned(),
                vars: BTreeMap::new(),
                at: l.at.clone(),
            });
        } else if let Some((k, v)) = key_value(t) {
            match out.last_mut() {
                Some(n) => n.vars.insert(k.to_owned(), v.to_owned()),
                None => top.insert(k.to_owned(), v.to_owned()),
            };
        }
    }
    (top, out)
}

/// Converts a whole SmokePing configuration, or a Targets file alone (its
/// step and pings then SmokePing's defaults, 300 and 20, and its probes
/// FPing unless named), read from `file` by `read`.
pub fn smokeping(
    file: &Path,
    read: &dyn Fn(&Path) -> std::io::Result<String>,
) -> anyhow::Result<Import> {
    let mut out = Import::default();
    let lines = smokeping_lines(file, read, 0, &mut out.notes)?;
    // Split into sections; a file without `***` headers is a Targets file.
    let mut sections: BTreeMap<String, Vec<Line>> = BTreeMap::new();
    let mut current = "Targets".to_owned();
    for l in lines {
        let t = l.text.trim();
        if let Some(name) = t.strip_prefix("***").and_then(|r| r.strip_suffix("***")) {
            current = name.trim().to_owned();
            continue;
        }
        sections.entry(current.clone()).or_default().push(l);
    }
    let db = sections
        .get("Database")
        .map(|l| nodes(l).0)
        .unwrap_or_default();
    let num = |m: &BTreeMap<String, String>, k: &str| m.get(k).and_then(|v| v.parse::<u32>().ok());
    let step = num(&db, "step").unwrap_or(300);
    let pings = num(&db, "pings").unwrap_or(20);
    let probes: BTreeMap<String, Node> = sections
        .get("Probes")
        .map(|l| nodes(l).1)
        .unwrap_or_default()
        .into_iter()
        .map(|n| (n.name.clone(), n))
        .collect();
    let (top, targets) = sections
        .get("Targets")
        .map(|l| nodes(l))
        .unwrap_or_default();
    // Each node's variables inherit its ancestors'.
    let mut stack: Vec<(Vec<String>, BTreeMap<String, String>)> = vec![(Vec::new(), top)];
    for n in targets {
        stack.truncate(n.depth.min(stack.len()));
        let (parent_path, parent_vars) = stack.last().cloned().unwrap_or_default();
        let mut vars = parent_vars.clone();
        for (k, v) in &n.vars {
            vars.insert(k.clone(), v.clone());
        }
        let mut path = parent_path.clone();
        path.push(n.name.clone());
        if n.vars.contains_key("host") {
            smokeping_target(&n, &path, &vars, &probes, (step, pings), &mut out);
        }
        // `host` is not inherited; everything else is.
        vars.remove("host");
        stack.push((path, vars));
    }
    Ok(out)
}

/// The fping section's lines for SmokePing's FPing options `packetsize`
/// (data bytes), `tos` (decimal or `0x` hex) and `timeout` (seconds); a
/// value out of range is a note.
fn fping_options(
    var: &dyn Fn(&str) -> Option<String>,
    at: &str,
    path: &[String],
    notes: &mut Vec<String>,
) -> String {
    let mut out = String::new();
    let mut bad = |what: &str, v: &str| {
        notes.push(format!(
            "{at}: {}: {what} {v} not converted",
            path.join("/")
        ));
    };
    if let Some(v) = var("packetsize") {
        match v.trim().parse::<u16>() {
            Ok(n) if (probes::icmp::MIN_DATA_BYTES..=probes::icmp::MAX_DATA_BYTES).contains(&n) => {
                out.push_str(&format!("  size: {n}\n"));
            }
            _ => bad("packetsize", &v),
        }
    }
    if let Some(v) = var("tos") {
        let t = v.trim();
        let n = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
            Some(hex) => u8::from_str_radix(hex, 16).ok(),
            None => t.parse::<u8>().ok(),
        };
        match n {
            Some(n) => out.push_str(&format!("  tos: {n}\n")),
            None => bad("tos", &v),
        }
    }
    if let Some(v) = var("timeout") {
        match v.trim().parse::<f64>() {
            Ok(s) if (0.01..=60.0).contains(&s) => {
                out.push_str(&format!("  timeout: {}\n", (s * 1000.0).round() as u32));
            }
            _ => bad("timeout", &v),
        }
    }
    out
}

/// The order of one target, or a note saying why there is none.
fn smokeping_target(
    n: &Node,
    path: &[String],
    vars: &BTreeMap<String, String>,
    probes: &BTreeMap<String, Node>,
    (step, pings): (u32, u32),
    out: &mut Import,
) {
    let at = &n.at;
    let host = n.vars.get("host").map(String::as_str).unwrap_or_default();
    if host.starts_with('/') {
        out.notes.push(format!(
            "{at}: {}: a multihost entry, not converted",
            path.join("/")
        ));
        return;
    }
    let probe_name = vars.get("probe").map_or("FPing", String::as_str);
    let probe_vars = probes
        .get(probe_name)
        .map(|p| p.vars.clone())
        .unwrap_or_default();
    let var = |k: &str| vars.get(k).or_else(|| probe_vars.get(k)).cloned();
    let step = var("step").and_then(|v| v.parse().ok()).unwrap_or(step);
    let pings = var("pings").and_then(|v| v.parse().ok()).unwrap_or(pings);
    let section = match probe_name {
        "FPing" => format!(
            "probe: fping\nfping:\n  host: '{host}'\n{}",
            fping_options(&var, at, path, &mut out.notes)
        ),
        "FPing6" => format!(
            "probe: fping\nfping:\n  host: '{host}'\n  ipv6: true\n{}",
            fping_options(&var, at, path, &mut out.notes)
        ),
        "DNS" => match var("lookup") {
            Some(name) => format!("probe: dns\ndns:\n  server: '{host}'\n  name: '{name}'\n"),
            None => {
                out.notes.push(format!(
                    "{at}: {}: DNS without `lookup`, not converted",
                    path.join("/")
                ));
                return;
            }
        },
        "TCPPing" => match var("port") {
            Some(port) => format!("probe: tcp\ntcp:\n  host: '{host}'\n  port: {port}\n"),
            None => {
                out.notes.push(format!(
                    "{at}: {}: TCPPing without `port`, not converted",
                    path.join("/")
                ));
                return;
            }
        },
        "Curl" => {
            let url = var("urlformat").unwrap_or_else(|| "http://%host%/".to_owned());
            format!(
                "probe: httping\nhttping:\n  url: '{}'\n",
                url.replace("%host%", host)
            )
        }
        "EchoPingHttp" => {
            let url = var("url").unwrap_or_else(|| "/".to_owned());
            format!("probe: httping\nhttping:\n  url: 'http://{host}{url}'\n")
        }
        other => {
            out.notes.push(format!(
                "{at}: {}: probe {other} not converted (FPing, FPing6, DNS, TCPPing, Curl, EchoPingHttp)",
                path.join("/")
            ));
            return;
        }
    };
    // The target's own title (or menu), not one inherited from a section.
    let task = n.vars.get("title").or_else(|| n.vars.get("menu"));
    let mut text = format!("# Imported from {at}.\nuser: smokeping\n");
    if let Some(t) = task {
        text.push_str(&format!("task: '{}'\n", t.replace('\'', "''")));
    }
    text.push_str(&format!("step: {step}\npings: {pings}\n{section}"));
    let id = path
        .iter()
        .map(|p| id_part(p))
        .collect::<Vec<_>>()
        .join("/");
    let Ok(oid) = OrderId::new(&id) else {
        out.notes.push(format!("{at}: {id}: not a valid order id"));
        return;
    };
    if out.orders.iter().any(|o| o.id == id) {
        out.notes.push(format!(
            "{at}: {id}: a second target of that name, not converted"
        ));
        return;
    }
    match order::parse_order(Path::new(at.as_str()), &oid, text.as_bytes()) {
        Ok(_) => out.orders.push(Imported { id, text }),
        Err(e) => out.notes.push(format!("{at}: {id} not converted: {e}")),
    }
}

/// What `import` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A SmokePing configuration or Targets file.
    Smokeping,
    /// A smokeping_prober configuration.
    SmokepingProber,
}

/// Runs `import`: writes the orders (or prints them with `dry_run`), then
/// lists what was not converted. `Ok(false)` when something was not.
pub fn run(base: &BaseDir, source: Source, file: &Path, dry_run: bool) -> anyhow::Result<bool> {
    let import = match source {
        Source::Smokeping => smokeping(file, &|p| std::fs::read_to_string(p))?,
        Source::SmokepingProber => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            smokeping_prober(file, &text)?
        }
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for o in &import.orders {
        if dry_run {
            writeln!(out, "--- orders/{}\n{}", o.id, o.text)?;
        } else {
            let id = super::order::put_bytes(base, o.text.as_bytes(), Some(&o.id), file)?;
            writeln!(out, "{id}")?;
        }
    }
    for n in &import.notes {
        eprintln!("not converted: {n}");
    }
    eprintln!(
        "{} orders {}, {} things not converted",
        import.orders.len(),
        if dry_run { "to write" } else { "written" },
        import.notes.len()
    );
    Ok(import.notes.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        for (s, ms) in [
            ("1s", 1000),
            ("500ms", 500),
            ("1m30s", 90_000),
            ("2.5s", 2500),
            ("0", 0),
            ("1h", 3_600_000),
        ] {
            assert_eq!(go_duration_ms(s), Some(ms), "{s}");
        }
        for bad in ["", "1", "s", "1x", "-1s"] {
            assert_eq!(go_duration_ms(bad), None, "{bad}");
        }
    }
}
