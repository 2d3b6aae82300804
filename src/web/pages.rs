//! The HTML of the web page, as plain functions of the data: the status
//! list (grouped by user, filtered, sorted, paged on the server) and one
//! order with its graphs. Every value is escaped.

use std::fmt::Write as _;

use super::ctx::{ListQuery, RANGES};
use crate::order::{Order, RrdTemplate};
use crate::report::{age, OrderStatus, Report};

/// Rows per page of the status list.
pub const PAGE_ROWS: usize = 500;

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

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
pub const COLUMNS: [(&str, &str); 8] = [
    ("id", "id"),
    ("target", "target"),
    ("probe", "probe"),
    ("step", "step/pings"),
    ("age", "age"),
    ("median", "median"),
    ("loss", "loss"),
    ("user", "user"),
];

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
}

impl<'a> ListView<'a> {
    /// Filters, sorts and pages `r` as `q` asks.
    pub fn of(r: &'a Report, q: &ListQuery) -> ListView<'a> {
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
        let f = |v: Option<f64>| v.unwrap_or(f64::INFINITY);
        match sort {
            "id" => rows.sort_by(|a, b| a.id.cmp(&b.id)),
            "target" => rows.sort_by(|a, b| a.target.cmp(&b.target)),
            "probe" => rows.sort_by(|a, b| (&a.probe, &a.id).cmp(&(&b.probe, &b.id))),
            "step" => rows.sort_by_key(|o| (o.step, o.pings)),
            "age" => rows.sort_by_key(|o| std::cmp::Reverse(o.age_s.unwrap_or(i64::MAX))),
            "median" => rows.sort_by(|a, b| f(b.median_ms).total_cmp(&f(a.median_ms))),
            "loss" => rows.sort_by(|a, b| f(b.loss_pct).total_cmp(&f(a.loss_pct))),
            _ => {} // user, then id: the report's order
        }
        let matching = rows.len();
        let pages = matching.div_ceil(PAGE_ROWS).max(1);
        let page = q.page.unwrap_or(1).clamp(1, pages);
        let rows = rows
            .into_iter()
            .skip((page - 1) * PAGE_ROWS)
            .take(PAGE_ROWS)
            .collect();
        ListView {
            rows,
            matching,
            page,
            pages,
            sort,
        }
    }
}

fn head(title: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><link rel=\"stylesheet\" href=\"/assets/style.css\">\
         <script src=\"/assets/app.js\" defer></script></head><body>\n",
        esc(title)
    )
}

/// The rows of the status table (also the background refresh's fragment).
pub fn rows(v: &ListView<'_>) -> String {
    let mut out = String::with_capacity(v.rows.len() * 400);
    let mut user: Option<&str> = None;
    for o in &v.rows {
        if v.sort == "user" && user != Some(o.user.as_str()) {
            user = Some(o.user.as_str());
            let _ = write!(
                out,
                "<tr class=\"group\"><th colspan=\"8\">{}</th></tr>",
                esc(&o.user)
            );
        }
        let age = match o.age_s {
            Some(a) => format!(
                "<td class=\"num{}\" data-age=\"{a}\">{}</td>",
                if o.stale { " stale" } else { "" },
                age(a)
            ),
            None => "<td class=\"num stale\">never</td>".to_owned(),
        };
        let median = o
            .median_ms
            .map_or_else(|| "-".to_owned(), |m| format!("{m:.3} ms"));
        let loss = match o.loss_pct {
            Some(l) => format!("<td class=\"num {}\">{l:.0} %</td>", loss_class(l)),
            None => "<td class=\"num\">-</td>".to_owned(),
        };
        let _ = write!(
            out,
            "<tr data-id=\"{id}\"><td><a href=\"/order/{path}\">{id}</a></td><td>{target}</td>\
             <td class=\"hide-narrow\">{probe}</td><td class=\"num hide-narrow\">{step}/{pings}</td>{age}\
             <td class=\"num median\">{median}</td>{loss}<td class=\"hide-narrow\">{user}</td></tr>",
            id = esc(&o.id),
            path = esc(&enc(&o.id, true)),
            target = esc(&o.target),
            probe = esc(&o.probe),
            step = o.step,
            pings = o.pings,
            user = esc(&o.user),
        );
    }
    if v.rows.is_empty() {
        out.push_str("<tr><td colspan=\"8\" class=\"muted\">no orders</td></tr>");
    }
    out
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
    if let Some(p) = page {
        parts.push(format!("page={p}"));
    }
    format!("/?{}", parts.join("&"))
}

/// The status page.
pub fn index(r: &Report, v: &ListView<'_>, q: &ListQuery) -> String {
    let mut out = head("pingmachine");
    let mut users: Vec<&str> = r.orders.iter().map(|o| o.user.as_str()).collect();
    users.sort_unstable();
    users.dedup();
    let selected = q.user.as_deref().unwrap_or("");
    let _ = write!(
        out,
        "<header><h1><a href=\"/\">pingmachine</a></h1>\
         <form method=\"get\" action=\"/\"><select name=\"user\" aria-label=\"user\"><option value=\"\">all users</option>"
    );
    for u in users {
        let _ = write!(
            out,
            "<option value=\"{0}\"{1}>{0}</option>",
            esc(u),
            if u == selected { " selected" } else { "" }
        );
    }
    let _ = write!(
        out,
        "</select><input name=\"q\" placeholder=\"id prefix\" value=\"{}\" aria-label=\"id prefix\">\
         <input type=\"hidden\" name=\"sort\" value=\"{}\"><button>filter</button></form>\
         <span class=\"muted\" id=\"updated\">{} orders, {} shown</span></header>\n<main>",
        esc(q.q.as_deref().unwrap_or("")),
        esc(v.sort),
        r.orders.len(),
        v.matching,
    );
    out.push_str("<div class=\"table-wrap\"><table id=\"orders\"><thead><tr>");
    for (key, label) in COLUMNS {
        let class = match key {
            "probe" | "step" | "user" => " class=\"hide-narrow\"",
            "age" | "median" | "loss" => " class=\"num\"",
            _ => "",
        };
        let mark = if key == v.sort { " ▾" } else { "" };
        let _ = write!(
            out,
            "<th{class}><a href=\"{}\">{label}{mark}</a></th>",
            esc(&link(q, Some(key), None))
        );
    }
    out.push_str("</tr></thead><tbody id=\"rows\">");
    out.push_str(&rows(v));
    out.push_str("</tbody></table></div>");
    if v.pages > 1 {
        out.push_str("<nav class=\"pager\">");
        if v.page > 1 {
            let _ = write!(
                out,
                "<a href=\"{}\">← previous</a>",
                esc(&link(q, None, Some(v.page - 1)))
            );
        }
        let _ = write!(out, "<span>page {} of {}</span>", v.page, v.pages);
        if v.page < v.pages {
            let _ = write!(
                out,
                "<a href=\"{}\">next →</a>",
                esc(&link(q, None, Some(v.page + 1)))
            );
        }
        out.push_str("</nav>");
    }
    if !r.invalid.is_empty() {
        out.push_str("<h2>Invalid order files</h2><table><tbody>");
        for i in &r.invalid {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td></tr>",
                esc(&i.id),
                esc(&i.reason)
            );
        }
        out.push_str("</tbody></table>");
    }
    if !r.rejected.is_empty() {
        out.push_str("<h2>Rejected orders</h2><table id=\"rejected\"><tbody>");
        for i in &r.rejected {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td class=\"muted\">{}</td></tr>",
                esc(&i.id),
                esc(&i.reason),
                esc(i.time.as_deref().unwrap_or(""))
            );
        }
        out.push_str("</tbody></table>");
    }
    let _ = writeln!(
        out,
        "<p class=\"muted\" id=\"archived\">{} archived orders</p></main></body></html>",
        r.archived
    );
    out
}

/// One order: its graphs (or a note for `norrd`), then its last result,
/// its file and its line-protocol settings. `zoom` is a chosen range.
pub fn order(
    o: &Order,
    file_text: &str,
    last_result: Option<&str>,
    has_rrd: bool,
    zoom: Option<(i64, i64)>,
) -> String {
    let id = o.id.as_str();
    let mut out = head(&format!("{id} — pingmachine"));
    let _ = write!(
        out,
        "<header><h1><a href=\"/\">pingmachine</a> / <span id=\"order-id\">{}</span></h1></header>\n<main>",
        esc(id)
    );
    let _ = write!(
        out,
        "<dl class=\"facts\"><dt>user</dt><dd>{}</dd><dt>task</dt><dd>{}</dd>\
         <dt>probe</dt><dd>{}</dd><dt>target</dt><dd id=\"target\">{}</dd>\
         <dt>step / pings</dt><dd>{} s / {}</dd><dt>RRD</dt><dd>{}</dd></dl>",
        esc(&o.user),
        esc(o.task.as_deref().unwrap_or("-")),
        esc(o.probe.name()),
        esc(&o.probe.target()),
        o.step,
        o.pings,
        if o.rrd == RrdTemplate::NoRrd {
            "norrd: last result only"
        } else {
            "main.rrd"
        }
    );
    let path = esc(&enc(id, true));
    if o.rrd == RrdTemplate::NoRrd || !has_rrd {
        out.push_str(if o.rrd == RrdTemplate::NoRrd {
            "<p class=\"muted\" id=\"no-graphs\">This order is norrd: no graphs.</p>"
        } else {
            "<p class=\"muted\" id=\"no-graphs\">No main.rrd yet.</p>"
        });
    } else {
        let _ = write!(
            out,
            "<form class=\"range\" method=\"get\" action=\"/order/{path}\">\
             <label>from <input type=\"datetime-local\" name=\"start\" step=\"60\"></label>\
             <label>to <input type=\"datetime-local\" name=\"end\" step=\"60\"></label>\
             <button>show (UTC)</button><span class=\"muted\">or drag across a graph to zoom</span></form>"
        );
        let figure = |out: &mut String, query: &str, caption: &str, class: &str| {
            let src = format!("/graph/{path}?{query}");
            let _ = write!(
                out,
                "<figure class=\"{class}\"><div class=\"graph-box\"><img class=\"graph\" src=\"{src}\" \
                 data-src=\"{src}\" width=\"800\" height=\"260\" alt=\"{} {}\">\
                 <div class=\"zoom-sel\"></div></div><figcaption>{}</figcaption></figure>",
                esc(id),
                esc(caption),
                esc(caption)
            );
        };
        if let Some((s, e)) = zoom {
            figure(
                &mut out,
                &format!("start={s}&amp;end={e}"),
                &format!("from {s} to {e} (Unix time)"),
                "zoomed",
            );
        }
        for (range, caption) in RANGES {
            figure(&mut out, &format!("range={range}"), caption, "range");
        }
    }
    out.push_str("<h2>Last result</h2>");
    match last_result {
        Some(t) => {
            let _ = write!(out, "<pre id=\"last-result\">{}</pre>", esc(t));
        }
        None => out.push_str("<p class=\"muted\" id=\"last-result\">none yet</p>"),
    }
    out.push_str("<h2>Line protocol</h2>");
    match &o.telegraf {
        Some(t) => {
            let tags: Vec<String> = t.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let _ =
                write!(
                out,
                "<dl class=\"facts\"><dt>measurement</dt><dd>{}</dd><dt>tags</dt><dd>{}</dd></dl>",
                esc(t.measurement_name.as_deref().unwrap_or("- (none: nothing is sent)")),
                esc(&tags.join(", "))
            );
        }
        None => out.push_str("<p class=\"muted\">no measurement name: nothing is sent</p>"),
    }
    let _ = writeln!(
        out,
        "<h2>Order file</h2><pre id=\"order-file\">{}</pre></main></body></html>",
        esc(file_text)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(enc("app/t 1?&", true), "app/t%201%3F%26");
        assert_eq!(enc("a/b", false), "a%2Fb");
    }
}
