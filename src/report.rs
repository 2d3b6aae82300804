//! The state of every order, grouped by user: the model behind `pingmachine
//! status` (its table and `--json`) and the web page, read from a base
//! directory through `inspect`: orders with their last result, invalid
//! order files, rejected orders and the archive count.
//!
//! Colours (only on a terminal, never with `NO_COLOR`): the age of the last
//! result is red when older than the order's step; loss is green at 0 %,
//! yellow below 20 % and red from 20 %.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::SystemTime;

use serde::Serialize;

use crate::basedir::BaseDir;
use crate::inspect::{self, LastResult, Rejected};

/// The `--json` document (schema documented in `docs/OPERATIONS.md` and the man page).
#[derive(Debug, Serialize)]
pub struct Report {
    /// Unix time of the report.
    pub now: i64,
    /// Valid orders, sorted by user then id.
    pub orders: Vec<OrderStatus>,
    /// Order files in `orders/` that do not validate (not yet moved to
    /// `rejected/`, e.g. no daemon running).
    pub invalid: Vec<Invalid>,
    /// Orders in `rejected/`.
    pub rejected: Vec<Rejected>,
    /// Number of ids in `archive/`.
    pub archived: usize,
}

/// One valid order.
#[derive(Debug, Serialize)]
pub struct OrderStatus {
    /// Order id.
    pub id: String,
    /// Owner application.
    pub user: String,
    /// Free text.
    pub task: Option<String>,
    /// Seconds between rounds.
    pub step: u32,
    /// Pings per round.
    pub pings: u32,
    /// Probe name.
    pub probe: String,
    /// Target as shown to operators.
    pub target: String,
    /// Seconds since the order file was refreshed.
    pub refreshed_age_s: Option<i64>,
    /// The latest result, if any.
    pub last_result: Option<LastResult>,
    /// Seconds since `last_result` was written.
    pub age_s: Option<i64>,
    /// True when there is no result or it is older than one step.
    pub stale: bool,
    /// Median RTT of the latest round, milliseconds.
    pub median_ms: Option<f64>,
    /// Loss of the latest round, percent.
    pub loss_pct: Option<f64>,
    /// Jitter of the latest round (the mean absolute difference of the
    /// RTTs of consecutive answered pings, in send order), milliseconds;
    /// only from a daemon with `--listen`, which keeps it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jitter_ms: Option<f64>,
    /// Standard deviation of the latest round's RTTs, milliseconds (as
    /// `jitter_ms`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stddev_ms: Option<f64>,
}

/// An invalid order file.
#[derive(Debug, Serialize)]
pub struct Invalid {
    /// Order id.
    pub id: String,
    /// Why.
    pub reason: String,
}

use crate::clock::unix_s_of as unix;

/// Which orders a report covers, and when it is made.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only orders whose id starts with this.
    pub prefix: Option<String>,
    /// Only orders of this user.
    pub user: Option<String>,
    /// The time to report at (unix seconds); now when `None`.
    pub now: Option<i64>,
    /// Only the orders of this node's share (`--shard K/N`).
    pub shard: Option<crate::shard::Shard>,
}

/// Collects the report.
pub fn report(base: &BaseDir, opts: &Filter) -> Report {
    report_cached(base, opts, &mut inspect::OrderCache::default())
}

/// [`report`], parsing only the order files that changed since `cache`
/// saw them (the web page keeps one).
pub fn report_cached(base: &BaseDir, opts: &Filter, cache: &mut inspect::OrderCache) -> Report {
    let now = opts.now.unwrap_or_else(|| unix(SystemTime::now()));
    let wanted = |id: &str| {
        opts.prefix.as_deref().is_none_or(|p| id.starts_with(p))
            && crate::shard::owned(opts.shard.as_ref(), id)
    };
    let mut orders = Vec::new();
    let mut invalid = Vec::new();
    for f in inspect::order_files_cached(base, cache) {
        if !wanted(f.id.as_str()) {
            continue;
        }
        match f.order {
            Ok(o) => {
                if opts.user.as_deref().is_some_and(|u| u != o.user) {
                    continue;
                }
                let lr = inspect::last_result(base, &o.id);
                let age = lr.as_ref().map(|r| now - r.updated);
                orders.push(OrderStatus {
                    id: o.id.to_string(),
                    user: o.user.clone(),
                    task: o.task.clone(),
                    step: o.step,
                    pings: o.pings,
                    probe: o.probe.name().to_owned(),
                    target: o.probe.target(),
                    refreshed_age_s: f.mtime.map(|m| now - unix(m)),
                    stale: age.is_none_or(|a| a > i64::from(o.step)),
                    median_ms: lr.as_ref().and_then(|r| r.median).map(|m| m * 1000.0),
                    loss_pct: lr.as_ref().map(LastResult::loss_pct),
                    jitter_ms: None,
                    stddev_ms: None,
                    age_s: age,
                    last_result: lr,
                });
            }
            Err(e) => {
                if opts.user.is_none() {
                    invalid.push(Invalid {
                        id: f.id.to_string(),
                        reason: e.to_string(),
                    });
                }
            }
        }
    }
    orders.sort_by(|a, b| (a.user.as_str(), a.id.as_str()).cmp(&(b.user.as_str(), b.id.as_str())));
    let rejected = if opts.user.is_none() {
        inspect::rejected(base)
            .into_iter()
            .filter(|r| wanted(&r.id))
            .collect()
    } else {
        Vec::new()
    };
    Report {
        now,
        orders,
        invalid,
        rejected,
        archived: inspect::archived(base).len(),
    }
}

/// `5s`, `3m07s`, `2h05m`, `3d04h`.
pub fn age(s: i64) -> String {
    let s = s.max(0);
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

fn ms(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.3} ms")
    } else if v < 1000.0 {
        format!("{v:.1} ms")
    } else {
        format!("{v:.0} ms")
    }
}

struct Paint(bool);

impl Paint {
    fn wrap(&self, code: &str, s: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_owned()
        }
    }
}

/// Pads `s` (which may hold colour codes) to `w` visible characters.
fn pad(s: &str, visible: usize, w: usize, right: bool) -> String {
    let fill = " ".repeat(w.saturating_sub(visible));
    if right {
        format!("{fill}{s}")
    } else {
        format!("{s}{fill}")
    }
}

/// The text table.
pub fn render(r: &Report, color: bool) -> String {
    let p = Paint(color);
    let mut out = String::new();
    let mut by_user: BTreeMap<&str, Vec<&OrderStatus>> = BTreeMap::new();
    for o in &r.orders {
        by_user.entry(o.user.as_str()).or_default().push(o);
    }
    let head = [
        "ID", "STEP", "PINGS", "PROBE", "TARGET", "AGE", "MEDIAN", "LOSS",
    ];
    let right = [false, true, true, false, false, true, true, true];
    for (user, orders) in &by_user {
        let n = orders.len();
        let _ = writeln!(
            out,
            "{}",
            p.wrap(
                "1",
                &format!("user {user} ({n} order{})", if n == 1 { "" } else { "s" })
            )
        );
        let rows: Vec<Vec<(String, String)>> = orders.iter().map(|o| cells(o, &p)).collect();
        let widths: Vec<usize> = (0..head.len())
            .map(|c| {
                rows.iter()
                    .map(|r| r[c].0.chars().count())
                    .chain([head[c].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: Vec<String>| {
            let mut l = String::from(" ");
            for c in cells {
                l.push(' ');
                l.push_str(&c);
                l.push(' ');
            }
            l.trim_end().to_owned()
        };
        let _ = writeln!(
            out,
            "{}",
            line(
                head.iter()
                    .enumerate()
                    .map(|(c, h)| pad(h, h.len(), widths[c], right[c]))
                    .collect()
            )
        );
        for row in rows {
            let cells = row
                .iter()
                .enumerate()
                .map(|(c, (plain, shown))| pad(shown, plain.chars().count(), widths[c], right[c]))
                .collect();
            let _ = writeln!(out, "{}", line(cells));
        }
        out.push('\n');
    }
    if r.orders.is_empty() {
        out.push_str("no orders\n\n");
    }
    if !r.invalid.is_empty() {
        let _ = writeln!(
            out,
            "{}",
            p.wrap("1;31", &format!("invalid ({})", r.invalid.len()))
        );
        for i in &r.invalid {
            let _ = writeln!(out, "  {}: {}", i.id, i.reason);
        }
        out.push('\n');
    }
    if !r.rejected.is_empty() {
        let _ = writeln!(
            out,
            "{}",
            p.wrap("1;31", &format!("rejected ({})", r.rejected.len()))
        );
        for x in &r.rejected {
            let _ = writeln!(out, "  {}: {}", x.id, x.reason);
        }
        out.push('\n');
    }
    let _ = writeln!(out, "archived: {}", r.archived);
    out
}

/// An order's cells: each as it reads (for widths) and as it is shown
/// (coloured).
fn cells(o: &OrderStatus, p: &Paint) -> Vec<(String, String)> {
    let age_text = o.age_s.map_or_else(|| "-".to_owned(), age);
    let age_col = if o.stale {
        p.wrap("31", &age_text)
    } else {
        age_text.clone()
    };
    let med = o.median_ms.map_or_else(|| "-".to_owned(), ms);
    let (loss_text, loss_col) = match o.loss_pct {
        Some(l) => {
            let t = format!("{l:.1}%");
            let code = if l == 0.0 {
                "32"
            } else if l < 20.0 {
                "33"
            } else {
                "31"
            };
            (t.clone(), p.wrap(code, &t))
        }
        None => ("-".to_owned(), "-".to_owned()),
    };
    vec![
        (o.id.clone(), o.id.clone()),
        (o.step.to_string(), o.step.to_string()),
        (o.pings.to_string(), o.pings.to_string()),
        (o.probe.clone(), o.probe.clone()),
        (o.target.clone(), o.target.clone()),
        (age_text, age_col),
        (med.clone(), med),
        (loss_text, loss_col),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages() {
        assert_eq!(age(5), "5s");
        assert_eq!(age(187), "3m07s");
        assert_eq!(age(7500), "2h05m");
        assert_eq!(age(3 * 86400 + 4 * 3600), "3d04h");
        assert_eq!(age(-3), "0s");
    }

    #[test]
    fn colours_only_when_asked() {
        let r = Report {
            now: 100,
            orders: vec![OrderStatus {
                id: "a/b".into(),
                user: "u".into(),
                task: None,
                step: 10,
                pings: 4,
                probe: "fping".into(),
                target: "127.0.0.1".into(),
                refreshed_age_s: Some(1),
                last_result: None,
                age_s: Some(30),
                stale: true,
                median_ms: Some(1.5),
                loss_pct: Some(25.0),
                jitter_ms: None,
                stddev_ms: None,
            }],
            invalid: vec![],
            rejected: vec![],
            archived: 0,
        };
        let plain = render(&r, false);
        assert!(!plain.contains('\x1b'));
        let col = render(&r, true);
        assert!(
            col.contains("\x1b[31m30s\x1b[0m") && col.contains("\x1b[31m25.0%\x1b[0m"),
            "{col}"
        );
        // columns line up whatever the colour codes
        let strip = |s: &str| {
            s.replace("\x1b[31m", "")
                .replace("\x1b[0m", "")
                .replace("\x1b[1m", "")
        };
        assert_eq!(strip(&col), plain);
    }
}
