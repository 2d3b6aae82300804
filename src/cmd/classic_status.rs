//! `pingmachine-status`: the original tool's table, byte for byte, for the
//! scripts that parse it. (`pingmachine status` has the richer format.)
//!
//! Like the original it reads the raw YAML of every file below `orders/`
//! (hidden and temporary names too, symlinks followed), skips files without
//! a `user`, and for each user prints a bold `- <user>` line, a blank line,
//! the header `order step pings probe host updated m.rtt loss` and a line
//! of dashes, then one row per order. Rows are sorted by the target as a
//! sortable IP (IPv4 zero-padded, IPv6 as `a.` and zero-padded groups,
//! names as they are, no host last), then probe, step and id. Columns:
//! step `N s`; the age of `last_result`'s `updated` as `%3d s  `,
//! `%3d min`, `%3d h  ` or `%3d d  ` (red when older than one step); the
//! median as `%.0f ms`; loss as `%3.0f%%` (green when nothing or only one
//! of more than two pings was lost, yellow when some, red when all). fping
//! rows end with `  (iface, source=IP)`. Any IPv6 host widens the host
//! column. Colours only on a terminal, and never with `NO_COLOR` or
//! `ANSI_COLORS_DISABLED`, applied as the original applies them (escape
//! codes count towards the column widths).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde_yaml_ng::Value;

use crate::basedir::BaseDir;

/// Deepest directory nesting followed (the original had no limit).
const MAX_DEPTH: usize = 32;

const BOLD: &str = "\x1b[1m";
const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const RESET: &str = "\x1b[0m";

/// One order as the original read it.
#[derive(Debug, Default)]
struct Row {
    id: String,
    user: String,
    step: String,
    pings: String,
    pings_num: Option<f64>,
    step_num: Option<f64>,
    probe: String,
    host: Option<String>,
    interface: Option<String>,
    source_ip: Option<String>,
    sort_key: String,
    result: Option<Value>,
}

/// A YAML scalar as Perl would print it (`true` is 1, `false` and null
/// are empty).
fn text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::Bool(true) => Some("1".into()),
        Value::Bool(false) => Some(String::new()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        Value::Sequence(_) => Some("ARRAY".into()),
        Value::Mapping(_) => Some("HASH".into()),
        Value::Tagged(t) => text(&t.value),
    }
}

/// A YAML scalar as a Perl number (strings are read as numbers).
fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => perl_number(s),
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        _ => None,
    }
}

/// The leading number of a string, as Perl's numeric conversion reads it.
fn perl_number(s: &str) -> Option<f64> {
    let t = s.trim_start();
    let mut end = 0;
    let b = t.as_bytes();
    if end < b.len() && (b[end] == b'+' || b[end] == b'-') {
        end += 1;
    }
    let digits = |i: &mut usize| {
        let s = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i > s
    };
    let mut any = digits(&mut end);
    if end < b.len() && b[end] == b'.' {
        end += 1;
        any |= digits(&mut end);
    }
    if !any {
        return Some(0.0);
    }
    if end < b.len() && (b[end] == b'e' || b[end] == b'E') {
        let mut e = end + 1;
        if e < b.len() && (b[e] == b'+' || b[e] == b'-') {
            e += 1;
        }
        if digits(&mut e) {
            end = e;
        }
    }
    t[..end].parse().ok()
}

fn truthy(v: Option<&Value>) -> bool {
    v.and_then(text).is_some_and(|s| !s.is_empty() && s != "0")
}

fn get<'a>(v: &'a Value, k: &str) -> Option<&'a Value> {
    v.as_mapping()?.get(k)
}

/// Matches `/^[:0-9a-f]+$/i`: what the original took for an IPv6 address.
fn looks_ipv6(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| c == b':' || c.is_ascii_hexdigit())
}

/// The original's `sortable_ip`.
pub fn sortable_ip(ip: &str) -> String {
    if looks_ipv6(ip) {
        // Perl's split drops trailing empty fields; hex("") is 0.
        let mut parts: Vec<&str> = ip.split(':').collect();
        while parts.last().is_some_and(|p| p.is_empty()) {
            parts.pop();
        }
        let groups: Vec<String> = parts
            .iter()
            .map(|p| format!("{:04x}", u64::from_str_radix(p, 16).unwrap_or(0)))
            .collect();
        return format!("a.{}", groups.join(":"));
    }
    let octets: Vec<&str> = ip.split('.').collect();
    if octets.len() == 4
        && octets
            .iter()
            .all(|o| !o.is_empty() && o.bytes().all(|c| c.is_ascii_digit()))
    {
        let n: Vec<String> = octets
            .iter()
            .map(|o| format!("{:03}", o.parse::<u128>().unwrap_or(0)))
            .collect();
        return n.join(".");
    }
    ip.to_owned()
}

/// Perl's `%d` of a number: truncated towards zero.
fn perl_int(x: f64) -> i64 {
    x.trunc() as i64
}

/// The original's age column.
fn pretty_time(now: i64, updated: f64) -> String {
    let delta = now as f64 - updated;
    if delta < 120.0 {
        format!("{:>3} s  ", perl_int(delta))
    } else if delta < 7200.0 {
        format!("{:>3} min", perl_int(delta / 60.0))
    } else if delta < 48.0 * 3600.0 {
        format!("{:>3} h  ", perl_int(delta / 3600.0))
    } else {
        format!("{:>3} d  ", perl_int(delta / 86_400.0))
    }
}

struct Paint(bool);

impl Paint {
    fn wrap(&self, code: &str, s: &str) -> String {
        if self.0 {
            format!("{code}{s}{RESET}")
        } else {
            s.to_owned()
        }
    }
}

/// Perl's `%-Ns` / `%Ns`: pads by bytes, never cuts.
fn pad(s: &str, w: usize, left: bool) -> String {
    let fill = " ".repeat(w.saturating_sub(s.len()));
    if left {
        format!("{s}{fill}")
    } else {
        format!("{fill}{s}")
    }
}

fn scan(dir: &Path, prefix: &str, depth: usize, rows: &mut Vec<Row>, warnings: &mut Vec<String>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for ent in rd.flatten() {
        let name = ent.file_name().to_string_lossy().into_owned();
        let id = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        let path = ent.path();
        // -d and -f follow symlinks.
        let Ok(md) = std::fs::metadata(&path) else {
            continue;
        };
        if md.is_dir() {
            if depth < MAX_DEPTH {
                scan(&path, &id, depth + 1, rows, warnings);
            }
            continue;
        }
        if !md.is_file() {
            continue;
        }
        let parsed = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_yaml_ng::from_slice::<Value>(&b).ok());
        let Some(order) = parsed else {
            warnings.push(format!("WARNING: can't parse {}\n", path.display()));
            continue;
        };
        if !truthy(get(&order, "user")) {
            continue;
        }
        let probe = get(&order, "probe").and_then(text).unwrap_or_default();
        let section = get(&order, &probe);
        let host = section.and_then(|s| get(s, "host")).and_then(text);
        let step = get(&order, "step");
        let sort_key = match &host {
            Some(h) => format!(
                "{}:{probe}:{}:{id}",
                sortable_ip(h),
                step.and_then(text).unwrap_or_default()
            ),
            None => format!(
                "ZZZ:{probe}:{}:{id}",
                step.and_then(text).unwrap_or_default()
            ),
        };
        let fping = (probe == "fping").then(|| get(&order, "fping")).flatten();
        let nonempty = |k: &str| {
            fping
                .and_then(|f| get(f, k))
                .filter(|v| truthy(Some(v)))
                .and_then(text)
        };
        rows.push(Row {
            user: get(&order, "user").and_then(text).unwrap_or_default(),
            step: step.and_then(text).unwrap_or_default(),
            step_num: step.and_then(number),
            pings: get(&order, "pings").and_then(text).unwrap_or_default(),
            pings_num: get(&order, "pings").and_then(number),
            interface: nonempty("interface"),
            source_ip: nonempty("source_ip"),
            probe,
            host,
            sort_key,
            id,
            result: None,
        });
    }
}

/// The table and the warnings (for standard error) for `base` at `now`.
pub fn render(base: &BaseDir, now: i64, color: bool) -> Result<(String, Vec<String>), NoOrdersDir> {
    std::fs::read_dir(&base.orders).map_err(|source| NoOrdersDir {
        path: base.orders.clone(),
        source,
    })?;
    let mut rows = Vec::new();
    let mut warnings = Vec::new();
    scan(&base.orders, "", 0, &mut rows, &mut warnings);
    let any_ipv6 = rows
        .iter()
        .any(|r| r.host.as_deref().is_some_and(looks_ipv6));
    let id_len = rows.iter().map(|r| r.id.len()).max().unwrap_or(0).max(8);
    read_results(base, &mut rows, &mut warnings);
    let p = Paint(color);
    let mut by_user: BTreeMap<String, Vec<&Row>> = BTreeMap::new();
    for r in &rows {
        by_user.entry(r.user.clone()).or_default().push(r);
    }
    let host_w = if any_ipv6 { 36 } else { 15 };
    // The original's two formats differ in the spaces around probe.
    let line = |cols: [&str; 8], extra: &str| -> String {
        let [id, step, pings, probe, host, updated, rtt, loss] = cols;
        let sep = if any_ipv6 { " " } else { "  " };
        format!(
            "  {} {} {}{sep}{}{sep}{} {} {} {}{extra}\n",
            pad(id, id_len, true),
            pad(step, 7, false),
            pad(pings, 5, false),
            pad(probe, 8, true),
            pad(host, host_w, true),
            pad(updated, 7, true),
            pad(rtt, 7, false),
            pad(loss, 4, false),
        )
    };
    let mut out = String::new();
    for (i, (user, orders)) in by_user.iter_mut().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let _ = writeln!(out, "{}", p.wrap(BOLD, &format!("- {user}")));
        out.push('\n');
        let head = line(
            [
                "order", "step", "pings", "probe", "host", "updated", "m.rtt", "loss",
            ],
            "",
        );
        // The original colours its whole format string, newline included.
        if color {
            out.push_str(BOLD);
            out.push_str(&head);
            out.push_str(RESET);
        } else {
            out.push_str(&head);
        }
        let dashes = |n: usize| "-".repeat(n);
        out.push_str(&line(
            [
                &dashes(id_len),
                &dashes(7),
                &dashes(5),
                &dashes(8),
                &dashes(if any_ipv6 { 32 } else { 15 }),
                &dashes(7),
                &dashes(7),
                &dashes(4),
            ],
            "",
        ));
        orders.sort_by(|a, b| a.sort_key.cmp(&b.sort_key));
        for r in orders.iter() {
            let [updated, rtt, loss, extra] = cells(r, now, &p);
            out.push_str(&line(
                [
                    &r.id,
                    &format!("{} s", r.step),
                    &r.pings,
                    &r.probe,
                    r.host.as_deref().unwrap_or("-"),
                    &updated,
                    &rtt,
                    &loss,
                ],
                &extra,
            ));
        }
    }
    Ok((out, warnings))
}

/// Reads each order's `last_result` (a file that does not parse is a
/// warning, as in the original).
fn read_results(base: &BaseDir, rows: &mut [Row], warnings: &mut Vec<String>) {
    for r in rows {
        let path = base
            .output
            .join(&r.id)
            .join(crate::store::last_result::FILE);
        if path.is_file() {
            match std::fs::read(&path)
                .ok()
                .and_then(|b| serde_yaml_ng::from_slice::<Value>(&b).ok())
            {
                Some(v) => r.result = Some(v),
                None => warnings.push(format!("WARNING: can't parse {}\n", path.display())),
            }
        }
    }
}

/// An order's updated, median RTT and loss cells, and what follows the
/// row (interface, source address).
fn cells(r: &Row, now: i64, p: &Paint) -> [String; 4] {
    let res = r.result.as_ref();
    let field = |k: &str| res.and_then(|v| get(v, k));
    let updated = match res {
        None => "-".to_owned(),
        Some(_) => {
            let u = field("updated").and_then(number).unwrap_or(0.0);
            let t = pretty_time(now, u);
            if now as f64 - u > r.step_num.unwrap_or(0.0) {
                p.wrap(RED, &t)
            } else {
                t
            }
        }
    };
    let rtt = match res {
        None => "-".to_owned(),
        Some(_) => match field("median").filter(|v| !v.is_null()).and_then(number) {
            Some(m) => format!("{:.0} ms", m * 1000.0),
            None => "-".to_owned(),
        },
    };
    let loss = match res {
        None => "-".to_owned(),
        Some(_) => match (
            field("loss").filter(|v| !v.is_null()).and_then(number),
            r.pings_num.filter(|n| *n != 0.0),
        ) {
            (Some(l), Some(pings)) => {
                let t = format!("{:>3.0}%", l * 100.0 / pings);
                let code = if l == 0.0 || (pings > 2.0 && l == 1.0) {
                    GREEN
                } else if l < pings {
                    YELLOW
                } else {
                    RED
                };
                p.wrap(code, &t)
            }
            _ => "-".to_owned(),
        },
    };
    let extra: Vec<String> = r
        .interface
        .iter()
        .cloned()
        .chain(r.source_ip.iter().map(|s| format!("source={s}")))
        .collect();
    let extra = if extra.is_empty() {
        String::new()
    } else {
        format!("  ({})", extra.join(", "))
    };
    [updated, rtt, loss, extra]
}

/// Colours as the original decides: on a terminal, unless disabled.
pub fn use_color() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stdout())
        && std::env::var_os("NO_COLOR").is_none()
        && std::env::var_os("ANSI_COLORS_DISABLED").is_none_or(|v| v.is_empty())
}

/// `orders/` cannot be read; shown as the original showed it.
#[derive(Debug, thiserror::Error)]
#[error("ERROR: can't open {}: {source}\n", path.display())]
pub struct NoOrdersDir {
    /// The `orders/` directory.
    pub path: std::path::PathBuf,
    /// Why.
    pub source: std::io::Error,
}

/// Runs `pingmachine-status`: the table on standard output, warnings on
/// standard error. `Err` is a base directory without `orders/`.
pub fn run(base: &BaseDir, now: Option<i64>) -> Result<(), NoOrdersDir> {
    let now = now.unwrap_or_else(crate::clock::unix_s);
    let (out, warnings) = render(base, now, use_color())?;
    for w in warnings {
        eprint!("{w}");
    }
    print!("{out}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sortable_ips_as_the_original() {
        assert_eq!(sortable_ip("10.0.0.12"), "010.000.000.012");
        assert_eq!(sortable_ip("::1"), "a.0000:0000:0001");
        assert_eq!(sortable_ip("fe80::"), "a.fe80");
        assert_eq!(sortable_ip("2001:db8::a"), "a.2001:0db8:0000:000a");
        assert_eq!(sortable_ip("host.example"), "host.example");
        // Hex-only names pass for IPv6, as in the original.
        assert_eq!(sortable_ip("cafe"), "a.cafe");
    }

    #[test]
    fn ages_as_the_original() {
        assert_eq!(pretty_time(1000, 995.0), "  5 s  ");
        assert_eq!(pretty_time(1000, 1005.0), " -5 s  ");
        assert_eq!(pretty_time(10_000, 10_000.0 - 150.0), "  2 min");
        assert_eq!(pretty_time(100_000, 100_000.0 - 7200.0), "  2 h  ");
        assert_eq!(pretty_time(1_000_000, 0.0), " 11 d  ");
    }

    #[test]
    fn perl_numbers() {
        assert_eq!(perl_number("5.700000e-04"), Some(5.7e-4));
        assert_eq!(perl_number("12abc"), Some(12.0));
        assert_eq!(perl_number("abc"), Some(0.0));
        assert_eq!(perl_number(" -3.5"), Some(-3.5));
    }
}
