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
//! only), a packet `size` other than the default, an unknown key.

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
                    other => out.notes.push(format!(
                        "{f}:{at}: network {other:?} not converted (ip, ip4 or ip6)"
                    )),
                },
                "protocol" => match scalar(v).as_deref() {
                    Some("icmp") => {}
                    other => {
                        out.notes.push(format!(
                            "{f}:{at}: protocol {} not converted: ICMP only; the group's hosts are left out",
                            other.unwrap_or("?")
                        ));
                        skip_group = true;
                    }
                },
                "size" => {
                    if scalar(v).as_deref() != Some("56") {
                        out.notes.push(format!(
                            "{f}:{at}: size {} not converted: pings carry the default payload",
                            scalar(v).unwrap_or_default()
                        ));
                    }
                }
                "source" => match scalar(v) {
                    Some(s) => fping.push_str(&format!("  source_ip: '{s}'\n")),
                    None => out
                        .notes
                        .push(format!("{f}:{at}: source is not an address")),
                },
                other => out
                    .notes
                    .push(format!("{f}:{at}: option `{other}` not converted")),
            }
        }
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

/// Runs `import`: writes the orders (or prints them with `dry_run`), then
/// lists what was not converted. `Ok(false)` when something was not.
pub fn run(base: &BaseDir, file: &Path, dry_run: bool) -> anyhow::Result<bool> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let import = smokeping_prober(file, &text)?;
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
