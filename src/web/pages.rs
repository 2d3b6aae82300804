//! The HTML of the web page, as maud templates of the data: the status
//! list (grouped by user, filtered, sorted, paged on the server) and one
//! order with its graphs. maud escapes every value it is given; the only
//! markup passed through unescaped is the rows fragment, itself a
//! template.

use std::fmt::Write as _;

use maud::{html, Markup, PreEscaped, DOCTYPE};

use std::collections::HashMap;
use std::sync::Arc;

use super::charts::Figures;
use super::ctx::{ListQuery, RANGES};
use super::spark::Spark;
use crate::order::{Order, RrdTemplate};
use crate::report::{age, OrderStatus, Report};

/// Rows per page of the status list.
pub const PAGE_ROWS: usize = 500;

/// Percent-encodes a query value or a path (keeping `/` when `path`).
pub fn enc(s: &str, path: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) || (path && b == b'/') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The CSS class of a loss, as the status tool colours it.
fn loss_class(pct: f64) -> &'static str {
    if pct <= 0.0 {
        "loss-ok"
    } else if pct < 20.0 {
        "loss-some"
    } else {
        "loss-bad"
    }
}

/// The sort columns.
pub const COLUMNS: [(&str, &str); 9] = [
    ("id", "id"),
    ("target", "target"),
    ("probe", "probe"),
    ("step", "step/pings"),
    ("age", "age"),
    ("median", "median"),
    ("loss", "loss"),
    ("jitter", "jitter"),
    ("user", "user"),
];

/// Cells of a row (the check box, the columns, the sparkline).
const ROW_CELLS: usize = COLUMNS.len() + 2;

/// The periods the list shows median, loss and jitter over: seconds and
/// name (0: the last round).
pub const LIST_PERIODS: [(i64, &str); 3] = [
    (0, "last round"),
    (3600, "last hour"),
    (86_400, "last 24 hours"),
];

/// The period of `q` (0: the last round, also for one not offered).
pub fn list_period(q: &ListQuery) -> i64 {
    q.period
        .filter(|p| LIST_PERIODS.iter().any(|(s, _)| s == p))
        .unwrap_or(0)
}

/// The orders to show, sorted and cut to a page.
#[derive(Debug)]
pub struct ListView<'a> {
    /// The rows of this page.
    pub rows: Vec<&'a OrderStatus>,
    /// Rows matching the filter.
    pub matching: usize,
    /// This page, from 1.
    pub page: usize,
    /// Pages.
    pub pages: usize,
    /// Sort column.
    pub sort: &'static str,
    /// The period of median, loss and jitter (0: the last round).
    pub period: i64,
    /// Per id, its figures over `period` (from `main.rrd`).
    pub figures: HashMap<&'a str, &'a Figures>,
}

impl<'a> ListView<'a> {
    /// The median shown for `o`, ms: of its last round, or the median of
    /// its rounds' medians over the period.
    pub fn median_ms(&self, o: &OrderStatus) -> Option<f64> {
        if self.period == 0 {
            return o.median_ms;
        }
        self.figures
            .get(o.id.as_str())
            .and_then(|f| f.median)
            .map(|m| m * 1000.0)
    }

    /// The loss shown for `o`, percent (over the period: the mean of its
    /// rounds').
    pub fn loss_pct(&self, o: &OrderStatus) -> Option<f64> {
        if self.period == 0 {
            return o.loss_pct;
        }
        self.figures
            .get(o.id.as_str())
            .and_then(|f| f.loss)
            .map(|l| l * 100.0)
    }

    /// The jitter shown for `o`, ms: of its last round (a daemon's
    /// figure), or over the period the standard deviation of its rounds'
    /// medians.
    pub fn jitter_ms(&self, o: &OrderStatus) -> Option<f64> {
        if self.period == 0 {
            return o.jitter_ms;
        }
        self.figures
            .get(o.id.as_str())
            .and_then(|f| f.jitter)
            .map(|j| j * 1000.0)
    }

    /// Filters, sorts and pages `r` as `q` asks; `figures`: every order's
    /// over the period `q` names.
    pub fn of(r: &'a Report, q: &ListQuery, figures: Option<&'a [Figures]>) -> ListView<'a> {
        let period = if figures.is_some() { list_period(q) } else { 0 };
        let figures: HashMap<&str, &Figures> = figures
            .unwrap_or_default()
            .iter()
            .map(|f| (f.id.as_str(), f))
            .collect();
        let mut rows: Vec<&OrderStatus> = r
            .orders
            .iter()
            .filter(|o| {
                q.user
                    .as_deref()
                    .is_none_or(|u| u.is_empty() || u == o.user)
            })
            .filter(|o| q.q.as_deref().is_none_or(|p| o.id.starts_with(p)))
            .collect();
        let sort = COLUMNS
            .iter()
            .map(|(k, _)| *k)
            .find(|k| Some(*k) == q.sort.as_deref())
            .unwrap_or("user");
        let mut view = ListView {
            rows: Vec::new(),
            matching: 0,
            page: 1,
            pages: 1,
            sort,
            period,
            figures,
        };
        let f = |v: Option<f64>| v.unwrap_or(f64::INFINITY);
        // Highest first, unknown last.
        let by = |key: &dyn Fn(&OrderStatus) -> Option<f64>, rows: &mut Vec<&OrderStatus>| {
            rows.sort_by(|a, b| {
                let (x, y) = (
                    key(a).unwrap_or(f64::NEG_INFINITY),
                    key(b).unwrap_or(f64::NEG_INFINITY),
                );
                y.total_cmp(&x).then_with(|| natural_cmp(&a.id, &b.id))
            });
        };
        match sort {
            "id" => rows.sort_by(|a, b| natural_cmp(&a.id, &b.id)),
            "target" => rows.sort_by(|a, b| a.target.cmp(&b.target)),
            "probe" => rows.sort_by(|a, b| (&a.probe, &a.id).cmp(&(&b.probe, &b.id))),
            "step" => rows.sort_by_key(|o| (o.step, o.pings)),
            "age" => rows.sort_by_key(|o| std::cmp::Reverse(o.age_s.unwrap_or(i64::MAX))),
            "median" if period > 0 => by(&|o| view.median_ms(o), &mut rows),
            "loss" if period > 0 => by(&|o| view.loss_pct(o), &mut rows),
            "median" => rows.sort_by(|a, b| f(b.median_ms).total_cmp(&f(a.median_ms))),
            "loss" => rows.sort_by(|a, b| f(b.loss_pct).total_cmp(&f(a.loss_pct))),
            "jitter" => by(&|o| view.jitter_ms(o), &mut rows),
            // User, then id, numbers in ids by value (`t2` before `t10`).
            _ => rows.sort_by(|a, b| a.user.cmp(&b.user).then_with(|| natural_cmp(&a.id, &b.id))),
        }
        let matching = rows.len();
        let pages = matching.div_ceil(PAGE_ROWS).max(1);
        let page = q.page.unwrap_or(1).clamp(1, pages);
        view.rows = rows
            .into_iter()
            .skip((page - 1) * PAGE_ROWS)
            .take(PAGE_ROWS)
            .collect();
        (view.matching, view.page, view.pages) = (matching, page, pages);
        view
    }
}

/// Compares ids with their runs of digits by value: `t2` < `t10` <
/// `t10a` < `u1`; ties (`t01`, `t1`) fall back to the plain order.
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let (mut x, mut y) = (a.as_bytes(), b.as_bytes());
    loop {
        match (x.first(), y.first()) {
            (None, None) => return a.cmp(b),
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(c), Some(d)) if c.is_ascii_digit() && d.is_ascii_digit() => {
                let run = |s: &[u8]| s.iter().take_while(|c| c.is_ascii_digit()).count();
                let (n, m) = (run(x), run(y));
                let trim = |s: &[u8]| {
                    let z = s.iter().take_while(|c| **c == b'0').count();
                    s[z..].to_vec()
                };
                let (p, q) = (trim(&x[..n]), trim(&y[..m]));
                let by_value = p.len().cmp(&q.len()).then_with(|| p.cmp(&q));
                if by_value != Ordering::Equal {
                    return by_value;
                }
                (x, y) = (&x[n..], &y[m..]);
            }
            (Some(c), Some(d)) => {
                if c != d {
                    return c.cmp(d);
                }
                (x, y) = (&x[1..], &y[1..]);
            }
        }
    }
}

/// An order with no result whose file is younger than two steps and a
/// minute: its first round has not come yet.
fn awaiting_first_round(o: &OrderStatus) -> bool {
    o.refreshed_age_s
        .is_some_and(|a| a <= 2 * i64::from(o.step) + 60)
}

/// A whole page: the shared head (CSS, script), then `body`. Its links
/// are relative to `prefix` (`--web-route-prefix`, `""` for none), the
/// page's `<base>`.
pub fn page(prefix: &str, title: &str, body: Markup) -> String {
    let mut out = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                base href=(format!("{prefix}/"));
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                link rel="stylesheet" href="assets/style.css";
                script src="assets/app.js" defer {}
            }
            body { (body) }
        }
    }
    .into_string();
    out.push('\n');
    out
}

/// The interactive graph of an order (drawn by the script with uPlot from
/// the series endpoint, from `zoom` or the last 3 hours): the smoke of
/// the sorted pings, the median coloured by loss with its key, the values
/// under the mouse, drag to zoom and a back button. Without scripts the
/// PNGs below stand alone.
fn live(path: &str, zoom: Option<(i64, i64)>, pings: u32) -> Markup {
    let colours = crate::graph::LOSS_COLOURS
        .iter()
        .map(|(upper, hex, label)| format!("[{upper},\"{hex}\",\"{label}\"]"))
        .collect::<Vec<_>>()
        .join(",");
    let (start, end) = match zoom {
        Some((s, e)) => (s.to_string(), e.to_string()),
        None => (String::new(), String::new()),
    };
    html! {
        link rel="stylesheet" href="assets/uplot-1.6.32.css";
        script src="assets/uplot-1.6.32.js" defer {}
        figure #live data-series={ "api/v1/orders/" (path) "/series" } data-start=(start) data-end=(end)
            data-pings=(pings) data-loss-colours={ "[" (colours) "]" } {
            div.live-bar {
                button.live-back type="button" hidden { "◀ back" }
                span.live-range {}
                span.muted.live-help { "drag across the graph to zoom" }
            }
            div.live-chart {}
            p.live-readout aria-live="polite" { "\u{a0}" }
            p.live-key {
                "median by loss: "
                @for (_, hex, label) in crate::graph::LOSS_COLOURS {
                    span.swatch data-colour=(hex) { "\u{25A0}" } " " (label) " "
                }
            }
            noscript { p.muted { "The interactive graph needs scripts; the graphs below do not." } }
        }
    }
}

/// The rows of the status table (also the background refresh's
/// fragment), with the sparklines of `sparks`.
pub fn rows(v: &ListView<'_>, sparks: &HashMap<String, Arc<Spark>>) -> String {
    // Sorted by user, each user's rows start with a group row.
    let starts_group =
        |i: usize| v.sort == "user" && (i == 0 || v.rows[i - 1].user != v.rows[i].user);
    let markup = html! {
        @for (i, o) in v.rows.iter().enumerate() {
            @if starts_group(i) {
                tr.group { th colspan=(ROW_CELLS) { (o.user) } }
            }
            tr data-id=(o.id) {
                td.pick { input type="checkbox" name="ids" value=(o.id) form="compare" aria-label={ "compare " (o.id) }; }
                td {
                    a href={ "order/" (enc(&o.id, true)) } { (o.id) }
                    @if let Some(t) = o.task.as_deref().filter(|t| !t.is_empty()) {
                        br; span.task.muted { (t) }
                    }
                }
                td { (o.target) }
                td.spark.hide-narrow {
                    @match sparks.get(&o.id) {
                        Some(s) if !s.is_empty() => (s.svg()),
                        _ => span.muted { "no data" },
                    }
                }
                td.hide-narrow { (o.probe) }
                td.num.hide-narrow { (o.step) "/" (o.pings) }
                @match o.age_s {
                    Some(a) => td.num.stale[o.stale] data-age=(a) { (age(a)) },
                    // No result yet: calm while the order is new (its
                    // first round is at most two steps away), red after.
                    None if awaiting_first_round(o) => td.num.muted title="waiting for its first round" { "waiting" },
                    None => td.num.stale { "never" },
                }
                td.num.median {
                    @match v.median_ms(o) {
                        Some(m) => (format!("{m:.3} ms")),
                        None => "-",
                    }
                }
                @match v.loss_pct(o) {
                    Some(l) if v.period > 0 => td class={ "num " (loss_class(l)) } { (format!("{l:.1} %")) },
                    Some(l) => td class={ "num " (loss_class(l)) } { (format!("{l:.0} %")) },
                    None => td.num { "-" },
                }
                td.num.jitter.hide-narrow {
                    @match v.jitter_ms(o) {
                        Some(j) => (format!("{j:.3} ms")),
                        None => "-",
                    }
                }
                td.hide-narrow { (o.user) }
            }
        }
        @if v.rows.is_empty() {
            tr { td colspan=(ROW_CELLS) .muted { "no orders" } }
        }
    };
    markup.into_string()
}

fn link(q: &ListQuery, sort: Option<&str>, page: Option<usize>) -> String {
    let mut parts = Vec::new();
    if let Some(u) = q.user.as_deref().filter(|u| !u.is_empty()) {
        parts.push(format!("user={}", enc(u, false)));
    }
    if let Some(p) = q.q.as_deref().filter(|p| !p.is_empty()) {
        parts.push(format!("q={}", enc(p, false)));
    }
    if let Some(s) = sort.or(q.sort.as_deref()) {
        parts.push(format!("sort={}", enc(s, false)));
    }
    let period = list_period(q);
    if period > 0 {
        parts.push(format!("period={period}"));
    }
    if let Some(p) = page {
        parts.push(format!("page={p}"));
    }
    format!("./?{}", parts.join("&"))
}

/// The status page.
/// What an order page shows of its `main.rrd`.
#[derive(Debug, Clone, Copy)]
pub struct OrderRrd<'a> {
    /// The file is there.
    pub present: bool,
    /// A chosen range (Unix start, end).
    pub zoom: Option<(i64, i64)>,
    /// The last rounds, newest first.
    pub rounds: &'a [crate::graph::SeriesRow],
}

/// The status list; `fleet`: link the fleet view; `prefix`: see [`page`].
pub fn index(
    r: &Report,
    v: &ListView<'_>,
    sparks: &HashMap<String, Arc<Spark>>,
    q: &ListQuery,
    fleet: bool,
    prefix: &str,
) -> String {
    let mut users: Vec<&str> = r.orders.iter().map(|o| o.user.as_str()).collect();
    users.sort_unstable();
    users.dedup();
    let selected = q.user.as_deref().unwrap_or("");
    let column_class = |key: &str| match key {
        "probe" | "step" | "user" => Some("hide-narrow"),
        "jitter" => Some("num hide-narrow"),
        "age" | "median" | "loss" => Some("num"),
        _ => None,
    };
    let period = list_period(q);
    let body = html! {
        header {
            h1 { a href="./" { "pingmachine" } }
            form method="get" action="./" {
                select name="user" aria-label="user" {
                    option value="" { "all users" }
                    @for u in &users {
                        option value=(u) selected[*u == selected] { (u) }
                    }
                }
                input name="q" placeholder="id prefix" value=(q.q.as_deref().unwrap_or("")) aria-label="id prefix";
                input type="hidden" name="sort" value=(v.sort);
                select name="period" aria-label="median, loss and jitter over" {
                    @for (secs, name) in LIST_PERIODS {
                        option value=(secs) selected[secs == period] { (name) }
                    }
                }
                button { "filter" }
            }
            span.muted #updated { (r.orders.len()) " orders, " (v.matching) " shown" }
            a href="charts" { "charts" }
            a href="archive" { "archive" }
            @if fleet { a href="fleet" { "fleet" } }
            form #compare method="get" action="compare" {
                button { "compare selected" }
            }
        }
        main {
            div.table-wrap {
                table #orders {
                    thead {
                        tr {
                            th.pick { span.muted title="select orders to compare" { "⧉" } }
                            @for (key, label) in COLUMNS {
                                th class=[column_class(key)] {
                                    a href=(link(q, Some(key), None)) {
                                        (label) @if key == v.sort { " ▾" }
                                    }
                                }
                                @if key == "target" {
                                    th.hide-narrow title="median of the last 3 hours, coloured by loss" { "last 3 hours" }
                                }
                            }
                        }
                    }
                    tbody #rows { (PreEscaped(rows(v, sparks))) }
                }
            }
            @if v.pages > 1 {
                nav.pager {
                    @if v.page > 1 {
                        a href=(link(q, None, Some(v.page - 1))) { "← previous" }
                    }
                    span { "page " (v.page) " of " (v.pages) }
                    @if v.page < v.pages {
                        a href=(link(q, None, Some(v.page + 1))) { "next →" }
                    }
                }
            }
            @if !r.invalid.is_empty() {
                h2 { "Invalid order files" }
                table { tbody {
                    @for i in &r.invalid {
                        tr { td { (i.id) } td { (i.reason) } }
                    }
                } }
            }
            @if !r.rejected.is_empty() {
                h2 { "Rejected orders" }
                table #rejected { tbody {
                    @for i in &r.rejected {
                        tr {
                            td { (i.id) }
                            td { (i.reason) }
                            td.muted { (i.time.as_deref().unwrap_or("")) }
                        }
                    }
                } }
            }
            p.muted #archived { (r.archived) " archived orders" }
        }
    };
    page(prefix, "pingmachine", body)
}

/// One order: its graphs (or a note for `norrd`), then its last result,
/// its file and its line-protocol settings. `zoom` is a chosen range.
pub fn order(
    o: &Order,
    file_text: &str,
    last_result: Option<&str>,
    spread: (Option<f64>, Option<f64>),
    rrd: &OrderRrd<'_>,
    prefix: &str,
) -> String {
    let (has_rrd, zoom, rounds) = (rrd.present, rrd.zoom, rrd.rounds);
    let id = o.id.as_str();
    let path = enc(id, true);
    let norrd = o.rrd == RrdTemplate::NoRrd;
    let figure = |query: String, caption: &str, class: &str| {
        let src = format!("graph/{path}?{query}");
        html! {
            figure class=(class) {
                div.graph-box {
                    img.graph src=(src) data-src=(src) width="800" height="260" alt={ (id) " " (caption) };
                    div.zoom-sel {}
                }
                figcaption { (caption) }
            }
        }
    };
    let body = html! {
        header {
            h1 { a href="./" { "pingmachine" } " / " span #order-id { (id) } }
        }
        main {
            dl.facts {
                dt { "user" } dd { (o.user) }
                dt { "task" } dd { (o.task.as_deref().unwrap_or("-")) }
                dt { "probe" } dd { (o.probe.name()) }
                dt { "target" } dd #target { (o.probe.target()) }
                dt { "step / pings" } dd { (o.step) " s / " (o.pings) }
                dt { "RRD" } dd { @if norrd { "norrd: last result only" } @else { "main.rrd" } }
            }
            @if norrd {
                p.muted #no-graphs { "This order is norrd: no graphs." }
            } @else if !has_rrd {
                p.muted #no-graphs { "No main.rrd yet." }
            } @else {
                form.range method="get" action={ "order/" (path) } {
                    label { "from " input type="datetime-local" name="start" step="60"; }
                    label { "to " input type="datetime-local" name="end" step="60"; }
                    button { "show (UTC)" }
                    span.muted { "or drag across a graph to zoom" }
                }
                (live(&path, zoom, o.pings))
                @if let Some((s, e)) = zoom {
                    (figure(format!("start={s}&end={e}"), &format!("from {s} to {e} (Unix time)"), "zoomed"))
                }
                @for (range, caption) in RANGES {
                    (figure(format!("range={range}"), caption, "range"))
                }
            }
            h2 { "Last result" }
            @match last_result {
                Some(t) => pre #last-result { (t) },
                None => p.muted #last-result { "none yet" },
            }
            @if has_rrd && !norrd {
                h2 { "Last rounds" }
                p {
                    a #csv href={ "api/v1/orders/" (path) "/series?range=108000&format=csv" } { "the last 30 hours as CSV" }
                    span.muted { " (from main.rrd; RTTs in ms, the pings sorted)" }
                }
                @if rounds.is_empty() {
                    p.muted #rounds { "none in the last 60 steps" }
                } @else {
                    div.table-wrap {
                        table #rounds {
                            thead { tr {
                                th { "time (UTC)" } th.num { "loss" } th.num { "median" } th.num { "min" } th.num { "max" }
                                th.hide-narrow { "pings" }
                            } }
                            tbody {
                                @for r in rounds {
                                    @let known: Vec<f64> = r.pings.iter().flatten().copied().collect();
                                    tr data-time=(r.time) {
                                        td { (super::archive::utc_seconds(r.time)) }
                                        td.num { (r.loss.map_or("-".into(), |l| format!("{:.0} %", l * 100.0))) }
                                        td.num { (r.median.map_or("-".into(), |m| format!("{:.3}", m * 1000.0))) }
                                        td.num { (known.first().map_or("-".into(), |m| format!("{:.3}", m * 1000.0))) }
                                        td.num { (known.last().map_or("-".into(), |m| format!("{:.3}", m * 1000.0))) }
                                        td.hide-narrow { (r.pings.iter().map(|p| p.map_or("-".into(), |v| format!("{:.3}", v * 1000.0))).collect::<Vec<String>>().join(" ")) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if let (Some(j), sd) = spread {
                p #spread {
                    "Jitter " (format!("{j:.3}")) " ms"
                    @if let Some(sd) = sd {
                        ", standard deviation " (format!("{sd:.3}")) " ms"
                    }
                    " (this round, from its RTTs in send order)"
                }
            }
            h2 { "Line protocol" }
            @match &o.telegraf {
                Some(t) => dl.facts {
                    dt { "measurement" }
                    dd { (t.measurement_name.as_deref().unwrap_or("- (none: nothing is sent)")) }
                    dt { "tags" }
                    dd { (t.tags.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")) }
                },
                None => p.muted { "no measurement name: nothing is sent" },
            }
            h2 { "Order file" }
            pre #order-file { (file_text) }
        }
    };
    page(prefix, &format!("{id} — pingmachine"), body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_with_their_numbers_by_value() {
        let mut ids = vec![
            "t10", "t2", "t1", "t100", "a", "t10a", "t02", "u1", "t1000", "t101",
        ];
        ids.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            ids,
            ["a", "t1", "t02", "t2", "t10", "t10a", "t100", "t101", "t1000", "u1"]
        );
        assert_eq!(natural_cmp("x", "x"), std::cmp::Ordering::Equal);
        assert_eq!(natural_cmp("app/9", "app/10"), std::cmp::Ordering::Less);
    }

    fn status(id: &str, loss_pct: f64, median_ms: f64) -> OrderStatus {
        OrderStatus {
            id: id.into(),
            user: "u".into(),
            task: Some(format!("task of {id}")),
            step: 60,
            pings: 20,
            probe: "fping".into(),
            target: "192.0.2.1".into(),
            refreshed_age_s: Some(10),
            last_result: None,
            age_s: Some(10),
            stale: false,
            median_ms: Some(median_ms),
            loss_pct: Some(loss_pct),
            jitter_ms: None,
            stddev_ms: None,
        }
    }

    #[test]
    fn a_period_sorts_and_shows_the_figures_from_the_rrd() {
        // Last round: b lost more; over the hour, a did.
        let r = Report {
            now: 0,
            orders: vec![
                status("a", 0.0, 5.0),
                status("b", 50.0, 9.0),
                status("c", 0.0, 1.0),
            ],
            invalid: Vec::new(),
            rejected: Vec::new(),
            archived: 0,
        };
        let fig = |id: &str, loss: f64, median: f64, jitter: f64| Figures {
            id: id.into(),
            target: String::new(),
            loss: Some(loss),
            median: Some(median),
            jitter: Some(jitter),
            rise: None,
        };
        let figures = vec![fig("a", 0.3, 0.002, 0.004), fig("b", 0.01, 0.003, 0.001)];
        let q = |sort: &str, period: Option<i64>| ListQuery {
            sort: Some(sort.into()),
            period,
            ..ListQuery::default()
        };
        fn ids(v: &ListView<'_>) -> Vec<String> {
            v.rows.iter().map(|o| o.id.clone()).collect()
        }
        let last = ListView::of(&r, &q("loss", None), Some(&figures));
        assert_eq!(last.period, 0);
        assert_eq!(ids(&last), ["b", "a", "c"]);
        let hour = ListView::of(&r, &q("loss", Some(3600)), Some(&figures));
        assert_eq!(hour.period, 3600);
        // c has no figures: last.
        assert_eq!(ids(&hour), ["a", "b", "c"]);
        assert_eq!(
            ids(&ListView::of(&r, &q("median", Some(3600)), Some(&figures))),
            ["b", "a", "c"]
        );
        assert_eq!(
            ids(&ListView::of(&r, &q("jitter", Some(3600)), Some(&figures))),
            ["a", "b", "c"]
        );
        // A period not offered is the last round.
        assert_eq!(
            ListView::of(&r, &q("loss", Some(7)), Some(&figures)).period,
            0
        );
        let html = rows(&hour, &HashMap::new());
        assert!(
            html.contains("30.0 %") && html.contains("2.000 ms") && html.contains("4.000 ms"),
            "{html}"
        );
        assert!(
            html.contains("<span class=\"task muted\">task of a</span>"),
            "{html}"
        );
        assert!(html.contains("no data"), "no sparkline: {html}");
        assert_eq!(html.matches("<td").count(), 3 * ROW_CELLS, "{html}");
    }

    #[test]
    fn escaping() {
        let hostile = "<a href=\"x\">&'";
        let o = OrderStatus {
            id: hostile.into(),
            user: hostile.into(),
            task: None,
            step: 60,
            pings: 20,
            probe: "fping".into(),
            target: hostile.into(),
            refreshed_age_s: None,
            last_result: None,
            age_s: None,
            stale: true,
            median_ms: None,
            loss_pct: None,
            jitter_ms: None,
            stddev_ms: None,
        };
        let v = ListView {
            rows: vec![&o],
            matching: 1,
            page: 1,
            pages: 1,
            sort: "user",
            period: 0,
            figures: HashMap::new(),
        };
        let html = rows(&v, &HashMap::new());
        assert!(!html.contains(hostile), "{html}");
        assert!(
            html.contains("<td>&lt;a href=&quot;x&quot;&gt;&amp;'</td>"),
            "{html}"
        );
        assert!(
            html.contains("data-id=\"&lt;a href=&quot;x&quot;&gt;&amp;'\""),
            "{html}"
        );
        assert!(
            html.contains("href=\"order/%3Ca%20href%3D%22x%22%3E%26%27\""),
            "{html}"
        );
        assert_eq!(enc("app/t 1?&", true), "app/t%201%3F%26");
        assert_eq!(enc("a/b", false), "a%2Fb");
    }

    #[test]
    fn a_new_order_is_waiting_and_an_old_one_without_results_is_never() {
        let at = |refreshed: i64| OrderStatus {
            id: "t".into(),
            user: "u".into(),
            task: None,
            step: 60,
            pings: 20,
            probe: "fping".into(),
            target: "192.0.2.1".into(),
            refreshed_age_s: Some(refreshed),
            last_result: None,
            age_s: None,
            stale: true,
            median_ms: None,
            loss_pct: None,
            jitter_ms: None,
            stddev_ms: None,
        };
        let html = |o: &OrderStatus| {
            rows(
                &ListView {
                    rows: vec![o],
                    matching: 1,
                    page: 1,
                    pages: 1,
                    sort: "id",
                    period: 0,
                    figures: HashMap::new(),
                },
                &HashMap::new(),
            )
        };
        let young = html(&at(30));
        assert!(
            young.contains(">waiting<") && !young.contains("never"),
            "{young}"
        );
        let old = html(&at(2 * 60 + 61));
        assert!(old.contains("class=\"num stale\">never<"), "{old}");
    }
}
