//! `/compare?ids=a,b`: several orders on one graph (SmokePing's multihost
//! graphs), one colour each: each order's median as a line in the smoke
//! of its rounds' 10th to 90th percentile pings, its loss below, and a
//! legend. The ids come from the list's check boxes (`ids=a&ids=b`) or
//! the URL (`ids=a,b`), so a comparison can be shared.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;

use super::ctx::ServeCtx;
use super::fleet::{latency_svg, loss_svg, mean_of, median_of, ms, pct, SiteLines, COLOURS};
use super::pages::{enc, page};
use crate::order::OrderId;
use crate::store::writer::RRD_FILE;

/// Most orders on one graph (one colour each).
pub const MOST: usize = COLOURS.len();
/// The ranges: seconds and name.
pub const RANGES: [(i64, &str); 4] = [
    (3 * 3600, "3 hours"),
    (30 * 3600, "30 hours"),
    (10 * 86_400, "10 days"),
    (360 * 86_400, "360 days"),
];
/// Rows read per order.
const POINTS: u32 = 400;

/// Query of `/compare` besides the ids.
#[derive(Debug, Default, Deserialize)]
pub struct CompareQuery {
    pub range: Option<i64>,
}

/// The ids of a query string: every `ids` value, split at commas, in
/// order, each once; `None` if one is not an order id.
pub fn ids_of(query: &str) -> Option<Vec<OrderId>> {
    let mut out: Vec<OrderId> = Vec::new();
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        if k != "ids" {
            continue;
        }
        for id in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let id = OrderId::new(id).ok()?;
            if !out.contains(&id) {
                out.push(id);
            }
        }
    }
    Some(out)
}

/// The nearest-rank quantile `q` of the known values.
fn quantile(v: &[Option<f64>], q: f64) -> Option<f64> {
    let mut known: Vec<f64> = v.iter().flatten().copied().collect();
    if known.is_empty() {
        return None;
    }
    known.sort_by(f64::total_cmp);
    let rank = (q * known.len() as f64).ceil() as usize;
    Some(known[rank.clamp(1, known.len()) - 1])
}

/// An order's lines from its rows.
pub fn lines_of(rows: &[crate::graph::SeriesRow]) -> SiteLines {
    let mut l = SiteLines::default();
    for r in rows {
        let t = r.time as f64;
        if let Some(m) = r.median {
            l.median.push((t, m));
        }
        if let (Some(lo), Some(hi)) = (quantile(&r.pings, 0.1), quantile(&r.pings, 0.9)) {
            l.low.push((t, lo));
            l.high.push((t, hi));
        }
        if let Some(x) = r.loss {
            l.loss.push((t, x));
        }
    }
    l
}

/// `/compare`.
pub async fn compare(
    State(ctx): State<Arc<ServeCtx>>,
    uri: Uri,
    Query(q): Query<CompareQuery>,
) -> Response {
    let raw = uri.path().to_ascii_lowercase();
    let query = uri.query().unwrap_or("");
    let lower = query.to_ascii_lowercase();
    if raw.contains("%2f") || lower.contains("%00") || lower.contains("%5c") {
        return super::site::not_found();
    }
    let Some(ids) = ids_of(query) else {
        return super::site::not_found();
    };
    if ids.len() > MOST {
        return (
            StatusCode::BAD_REQUEST,
            format!("at most {MOST} orders on one graph\n"),
        )
            .into_response();
    }
    let span = q.range.unwrap_or(RANGES[0].0);
    if !RANGES.iter().any(|(r, _)| *r == span) {
        return (
            StatusCode::BAD_REQUEST,
            "range is 10800, 108000, 864000 or 31104000\n",
        )
            .into_response();
    }
    let c = ctx.clone();
    let drawn = super::site::background(move || {
        let end = crate::clock::unix_s();
        let start = end - span;
        let mut lines: BTreeMap<String, SiteLines> = BTreeMap::new();
        let mut resolution = 60;
        for id in &ids {
            let rows = super::site::output_file(&c, id, RRD_FILE)
                .and_then(|rrd| {
                    if let Some(addr) = &c.rrdcached {
                        let _ = crate::store::rrdcached::flush_one(addr, &rrd);
                    }
                    crate::graph::series(&rrd, start, end, POINTS).ok()
                })
                .map(|s| {
                    resolution = s.resolution;
                    s.rows
                })
                .unwrap_or_default();
            lines.insert(id.as_str().to_owned(), lines_of(&rows));
        }
        page_of(&ids, &lines, (start, end, resolution), span, &c.prefix)
    })
    .await;
    match drawn {
        Ok(body) => (
            [
                (axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (axum::http::header::CACHE_CONTROL, "no-store"),
            ],
            body,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

fn page_of(
    ids: &[OrderId],
    lines: &BTreeMap<String, SiteLines>,
    (start, end, resolution): (i64, i64, u64),
    span: i64,
    prefix: &str,
) -> String {
    let joined = ids
        .iter()
        .map(|i| enc(i.as_str(), true))
        .collect::<Vec<_>>()
        .join(",");
    let step = i64::try_from(resolution).unwrap_or(60).max(1);
    let with_data: BTreeMap<String, SiteLines> = lines
        .iter()
        .filter(|(_, l)| !l.median.is_empty() || !l.loss.is_empty())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let body = html! {
        header {
            h1 { a href="./" { "pingmachine" } " / compare" }
        }
        main {
            @if ids.is_empty() {
                p #nodata { "Pick orders in the list (the check boxes), or name them: "
                    code { "compare?ids=a,b" } "." }
            } @else {
                p.range {
                    @for (r, name) in RANGES {
                        @if r == span { strong { (name) } } @else { a href=(format!("compare?ids={joined}&range={r}")) { (name) } }
                        " "
                    }
                }
                @if with_data.is_empty() {
                    p.muted #nodata { "No data for these orders in this period." }
                } @else {
                    figure {
                        (latency_svg(&with_data, start, end, step))
                        figcaption { "Median RTT per order (line) in the smoke of its rounds' 10th to 90th percentile pings; hover a point for its value." }
                    }
                    figure {
                        (loss_svg(&with_data, start, end, step))
                        figcaption { "Loss per order." }
                    }
                }
                table #legend {
                    thead { tr { th { "order" } th.num { "median" } th.num { "loss" } th.num { "rows" } } }
                    tbody {
                        @for (i, (id, l)) in with_data.iter().enumerate() {
                            tr data-id=(id) {
                                td {
                                    svg width="12" height="12" { rect width="12" height="12" fill=(COLOURS[i % COLOURS.len()]) {} }
                                    " " a href={ "order/" (enc(id, true)) } { (id) }
                                }
                                td.num { (median_of(&l.median).map_or("no data".into(), ms)) }
                                td.num { (mean_of(&l.loss).map_or("no data".into(), pct)) }
                                td.num { (l.loss.len()) }
                            }
                        }
                        @for id in ids.iter().filter(|i| !with_data.contains_key(i.as_str())) {
                            tr data-id=(id.as_str()) .muted {
                                td { (id.as_str()) } td.num { "no data" } td.num { "no data" } td.num { "0" }
                            }
                        }
                    }
                }
            }
        }
    };
    page(prefix, "compare — pingmachine", body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_come_from_commas_and_repeats_and_junk_is_refused() {
        let ids = |q: &str| {
            ids_of(q).map(|v| v.iter().map(|i| i.as_str().to_owned()).collect::<Vec<_>>())
        };
        assert_eq!(ids("ids=a,b&range=3").unwrap(), ["a", "b"]);
        assert_eq!(ids("ids=a&ids=lab%2Fv4&ids=a").unwrap(), ["a", "lab/v4"]);
        assert_eq!(ids("").unwrap(), Vec::<String>::new());
        assert!(ids("ids=..%2F..%2Fetc").is_none());
        assert!(ids("ids=/etc/passwd").is_none());
    }

    #[test]
    fn an_orders_lines_come_from_its_rows() {
        let row = |t: i64, pings: Vec<Option<f64>>, median: Option<f64>, loss: Option<f64>| {
            crate::graph::SeriesRow {
                time: t,
                lost: None,
                loss,
                median,
                pings,
            }
        };
        let l = lines_of(&[
            row(
                60,
                vec![Some(1.0), Some(2.0), Some(3.0), None],
                Some(2.0),
                Some(0.25),
            ),
            row(120, vec![None, None], None, Some(1.0)),
        ]);
        assert_eq!(l.median, [(60.0, 2.0)]);
        assert_eq!(l.low, [(60.0, 1.0)]);
        assert_eq!(l.high, [(60.0, 3.0)]);
        assert_eq!(l.loss, [(60.0, 0.25), (120.0, 1.0)]);
    }
}
