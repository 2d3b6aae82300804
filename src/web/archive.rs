//! `/archive`: the orders that ended (their output moved to `archive/`),
//! listed and searched, each with its graphs up to the time it ended
//! (`/archive/order/<id>`, drawn by `/archive/graph/<id>`).

use std::sync::Arc;

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;

use super::ctx::{ServeCtx, RANGES};
use super::pages::{enc, natural_cmp, page};
use crate::inspect::LastResult;
use crate::order::OrderId;
use crate::report::age;
use crate::store::writer::RRD_FILE;

/// Rows per page of the list.
const PAGE_ROWS: usize = 500;

/// An ended order.
#[derive(Debug, Clone, PartialEq)]
pub struct Ended {
    pub id: String,
    /// When it ended: its last round (`last_result`), or when its
    /// `main.rrd` was last written.
    pub ended: Option<i64>,
    pub last: Option<LastResult>,
    pub has_rrd: bool,
}

/// Query of `/archive`.
#[derive(Debug, Default, Deserialize)]
pub struct ArchiveQuery {
    /// Only ids containing this.
    pub q: Option<String>,
}

fn ended_of(ctx: &ServeCtx, id: &OrderId) -> Ended {
    let last = super::site::archive_file(ctx, id, crate::store::last_result::FILE)
        .and_then(|p| std::fs::read_to_string(p).ok())
        .as_deref()
        .and_then(LastResult::parse);
    let rrd = super::site::archive_file(ctx, id, RRD_FILE);
    let mtime = rrd
        .as_ref()
        .and_then(|p| std::fs::metadata(p).ok())
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64);
    Ended {
        id: id.as_str().to_owned(),
        ended: last.as_ref().map(|l| l.time).or(mtime),
        last,
        has_rrd: rrd.is_some(),
    }
}

fn html_response(body: String) -> Response {
    (
        [
            (axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (axum::http::header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

/// `/archive`.
pub async fn list(State(ctx): State<Arc<ServeCtx>>, Query(q): Query<ArchiveQuery>) -> Response {
    let c = ctx.clone();
    let body = super::site::background(move || {
        let needle = q.q.clone().unwrap_or_default();
        let mut ids: Vec<String> = crate::inspect::archived(&c.base)
            .into_iter()
            .filter(|id| id.contains(needle.as_str()))
            .collect();
        ids.sort_by(|a, b| natural_cmp(a, b));
        let total = ids.len();
        let rows: Vec<Ended> = ids
            .iter()
            .take(PAGE_ROWS)
            .filter_map(|id| OrderId::new(id).ok())
            .map(|id| ended_of(&c, &id))
            .collect();
        let now = crate::clock::unix_s();
        let body = html! {
            header {
                h1 { a href="./" { "pingmachine" } " / archive" }
                form method="get" action="archive" {
                    input name="q" placeholder="id contains" value=(needle) aria-label="id contains";
                    button { "search" }
                }
                span.muted { (total) " ended orders" @if total > PAGE_ROWS { ", the first " (PAGE_ROWS) " shown" } }
            }
            main {
                div.table-wrap {
                    table #archive {
                        thead { tr { th { "id" } th.num { "ended" } th.num { "last median" } th.num { "last loss" } } }
                        tbody {
                            @for e in &rows {
                                tr data-id=(e.id) {
                                    td { a href={ "archive/order/" (enc(&e.id, true)) } { (e.id) } }
                                    td.num {
                                        @match e.ended {
                                            Some(t) => span title=(utc(t)) { (age(now - t)) " ago" },
                                            None => span.muted { "unknown" },
                                        }
                                    }
                                    td.num { (e.last.as_ref().and_then(|l| l.median).map_or("-".into(), |m| format!("{:.3} ms", m * 1000.0))) }
                                    td.num { (e.last.as_ref().map_or("-".into(), |l| format!("{:.0} %", l.loss_pct()))) }
                                }
                            }
                            @if rows.is_empty() {
                                tr { td colspan="4" .muted { "no ended orders" } }
                            }
                        }
                    }
                }
            }
        };
        page(&c.prefix, "archive — pingmachine", body)
    })
    .await;
    match body {
        Ok(b) => html_response(b),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// `2026-12-06 04:58:30` (UTC).
pub fn utc_seconds(t: i64) -> String {
    let s = utc(t);
    format!("{}:{:02}", s.trim_end_matches(" UTC"), t.rem_euclid(60))
}

/// `2026-12-06 04:58 UTC`.
pub fn utc(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let s = t.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        s / 3600,
        s % 3600 / 60
    )
}

/// `/archive/order/<id>`.
pub async fn order(
    State(ctx): State<Arc<ServeCtx>>,
    uri: Uri,
    UrlPath(id): UrlPath<String>,
) -> Response {
    let Some(id) = super::site::checked_id(&uri, &id) else {
        return super::site::not_found();
    };
    let c = ctx.clone();
    let body = super::site::background(move || {
        // Only what is in the archive.
        super::site::archive_file(&c, &id, RRD_FILE)
            .or_else(|| super::site::archive_file(&c, &id, crate::store::last_result::FILE))?;
        let e = ended_of(&c, &id);
        let path = enc(&e.id, true);
        let end = e.ended.unwrap_or_else(crate::clock::unix_s);
        let now = crate::clock::unix_s();
        let body = html! {
            header {
                h1 { a href="./" { "pingmachine" } " / " a href="archive" { "archive" } " / " span #order-id { (e.id) } }
            }
            main {
                p #ended {
                    "Ended "
                    @match e.ended {
                        Some(t) => { (utc(t)) " (" (age(now - t)) " ago)" },
                        None => "at an unknown time",
                    }
                    ": its files are in archive/, and it is probed no more."
                }
                @if e.has_rrd {
                    @for (range, title) in RANGES {
                        figure {
                            img.graph src=(format!("archive/graph/{path}?start={}&end={end}", end - range)) alt={ (e.id) ", " (title) " before it ended" } loading="lazy";
                            figcaption { (title) " before it ended" }
                        }
                    }
                } @else {
                    p.muted { "No main.rrd was kept (a norrd order)." }
                }
                @if let Some(l) = &e.last {
                    h2 { "Its last result" }
                    dl.facts {
                        dt { "time" } dd { (utc(l.time)) }
                        dt { "median" } dd { (l.median.map_or("-".into(), |m| format!("{:.3} ms", m * 1000.0))) }
                        dt { "loss" } dd { (format!("{:.0} %", l.loss_pct())) }
                    }
                }
            }
        };
        Some(page(&c.prefix, &format!("{} (ended) — pingmachine", e.id), body))
    })
    .await
    .ok()
    .flatten();
    match body {
        Some(b) => html_response(b),
        None => super::site::not_found(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(1_796_011_200), "2026-11-30 04:00 UTC");
        assert_eq!(utc(951_827_415), "2000-02-29 12:30 UTC");
        assert_eq!(utc_seconds(951_827_415), "2000-02-29 12:30:15");
    }
}
