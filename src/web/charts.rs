//! `/charts`: SmokePing's Charts, the orders ranked over the last 3 or 30
//! hours by loss, median, jitter (the standard deviation of the rounds'
//! medians) and rise of the median against the same hours a day before,
//! computed from every order's `main.rrd` and kept for [`CHARTS_TTL`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::html;
use probes::sync::lock;
use serde::Deserialize;

use super::ctx::ServeCtx;
use super::pages::{enc, page};
use crate::order::OrderId;
use crate::store::writer::RRD_FILE;

/// How long a ranking is served again.
pub const CHARTS_TTL: Duration = Duration::from_secs(120);
/// The periods: seconds and name.
pub const PERIODS: [(i64, &str); 2] = [(3 * 3600, "3 hours"), (30 * 3600, "30 hours")];
/// Rows per chart.
const TOP: usize = 20;
/// Rows read per order and period (the finest archive that gives this
/// many or fewer).
const POINTS: u32 = 360;

/// One order over the period.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    pub id: String,
    pub target: String,
    /// Mean loss ratio of the rounds (0..=1).
    pub loss: Option<f64>,
    /// Median of the rounds' medians, seconds.
    pub median: Option<f64>,
    /// Standard deviation of the rounds' medians, seconds.
    pub jitter: Option<f64>,
    /// `median` less the same figure of the same hours a day before.
    pub rise: Option<f64>,
}

/// The ranking's input: per order, the rounds' (loss ratio, median)
/// now and a day before.
pub fn figures(
    id: &str,
    target: &str,
    now: &[(Option<f64>, Option<f64>)],
    day_before: &[(Option<f64>, Option<f64>)],
) -> Figures {
    let losses: Vec<f64> = now.iter().filter_map(|r| r.0).collect();
    let mut medians: Vec<f64> = now.iter().filter_map(|r| r.1).collect();
    let mut before: Vec<f64> = day_before.iter().filter_map(|r| r.1).collect();
    let median = median_of(&mut medians);
    let jitter = (medians.len() >= 2).then(|| {
        let n = medians.len() as f64;
        let mean = medians.iter().sum::<f64>() / n;
        (medians.iter().map(|m| (m - mean).powi(2)).sum::<f64>() / n).sqrt()
    });
    Figures {
        id: id.to_owned(),
        target: target.to_owned(),
        loss: (!losses.is_empty()).then(|| losses.iter().sum::<f64>() / losses.len() as f64),
        median,
        jitter,
        rise: median.zip(median_of(&mut before)).map(|(a, b)| a - b),
    }
}

fn median_of(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// The top rows by `key`, highest first, leaving out orders without it
/// (and, for loss and rise, those at 0 or below).
pub fn top(all: &[Figures], key: fn(&Figures) -> Option<f64>, positive: bool) -> Vec<&Figures> {
    let mut v: Vec<&Figures> = all
        .iter()
        .filter(|f| key(f).is_some_and(|x| !positive || x > 0.0))
        .collect();
    v.sort_by(|a, b| {
        key(b)
            .unwrap_or(0.0)
            .total_cmp(&key(a).unwrap_or(0.0))
            .then_with(|| super::pages::natural_cmp(&a.id, &b.id))
    });
    v.truncate(TOP);
    v
}

/// Query of `/charts`.
#[derive(Debug, Default, Deserialize)]
pub struct ChartsQuery {
    pub range: Option<i64>,
}

/// Every order's figures over `period` (blocking: reads every RRD; the
/// same hours a day before too with `rise`).
fn compute(ctx: &Arc<ServeCtx>, period: i64, rise: bool) -> Vec<Figures> {
    let report = super::site::report(ctx);
    let now = crate::clock::unix_s();
    let rows = |rrd: &std::path::Path, end: i64| -> Vec<(Option<f64>, Option<f64>)> {
        crate::graph::series(rrd, end - period, end, POINTS)
            .map(|s| s.rows.into_iter().map(|r| (r.loss, r.median)).collect())
            .unwrap_or_default()
    };
    report
        .orders
        .iter()
        .filter_map(|o| {
            let id = OrderId::new(&o.id).ok()?;
            let rrd = super::site::output_file(ctx, &id, RRD_FILE)?;
            let before = if rise {
                rows(&rrd, now - 86_400)
            } else {
                Vec::new()
            };
            let f = figures(&o.id, &o.target, &rows(&rrd, now), &before);
            (f.loss.is_some() || f.median.is_some()).then_some(f)
        })
        .collect()
}

/// `/charts?range=SECONDS`.
pub async fn charts(State(ctx): State<Arc<ServeCtx>>, Query(q): Query<ChartsQuery>) -> Response {
    let period = q.range.unwrap_or(PERIODS[0].0);
    if !PERIODS.iter().any(|(p, _)| *p == period) {
        return (StatusCode::BAD_REQUEST, "range is 10800 or 108000\n").into_response();
    }
    let Some(all) = kept(&ctx, period, true).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let prefix = ctx.prefix.clone();
    let Some(body) = super::site::blocking(move || page_of(&all, period, &prefix)).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    (
        [
            (axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (axum::http::header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

/// Every order's figures over `period`, computed on a blocking thread
/// and kept for [`CHARTS_TTL`] (`rise`: with the rise against the day
/// before, which `/charts` shows and the status list does not).
pub async fn kept(ctx: &Arc<ServeCtx>, period: i64, rise: bool) -> Option<Arc<Vec<Figures>>> {
    let cached = lock(&ctx.web.charts)
        .get(&period)
        .filter(|(at, _)| at.elapsed() < CHARTS_TTL)
        .map(|(_, f)| f.clone());
    if cached.is_some() {
        return cached;
    }
    let c = ctx.clone();
    let f = super::site::background(move || Arc::new(compute(&c, period, rise)))
        .await
        .ok()?;
    lock(&ctx.web.charts).insert(period, (Instant::now(), f.clone()));
    Some(f)
}

/// The charts kept between requests: period → (when, figures).
pub type Kept = std::sync::Mutex<HashMap<i64, (Instant, Arc<Vec<Figures>>)>>;

fn ms(s: f64) -> String {
    format!("{:.2} ms", s * 1000.0)
}

fn page_of(all: &[Figures], period: i64, prefix: &str) -> String {
    type Chart = (
        &'static str,
        &'static str,
        fn(&Figures) -> Option<f64>,
        bool,
        fn(f64) -> String,
    );
    let charts: [Chart; 4] = [
        (
            "loss",
            "Most loss",
            |f| f.loss,
            true,
            |v| format!("{:.1} %", v * 100.0),
        ),
        ("median", "Highest median", |f| f.median, false, ms),
        (
            "jitter",
            "Most jitter (standard deviation of the medians)",
            |f| f.jitter,
            false,
            ms,
        ),
        (
            "rise",
            "Biggest rise of the median against the day before",
            |f| f.rise,
            true,
            |v| format!("+{}", ms(v)),
        ),
    ];
    let body = html! {
        header {
            h1 { a href="./" { "pingmachine" } " / charts" }
        }
        main {
            p.range {
                "Over the last "
                @for (p, name) in PERIODS {
                    @if p == period { strong { (name) } } @else { a href=(format!("charts?range={p}")) { (name) } }
                    " "
                }
                span.muted { "· " (all.len()) " orders with data · from main.rrd, updated every " (CHARTS_TTL.as_secs()) " s" }
            }
            @for (key, title, get, positive, show) in charts {
                h2 { (title) }
                @let rows = top(all, get, positive);
                @if rows.is_empty() {
                    p.muted data-chart=(key) { "no data" }
                } @else {
                    div.table-wrap {
                        table data-chart=(key) {
                            thead { tr { th.num { "#" } th { "order" } th.hide-narrow { "target" } th.num { (key) } } }
                            tbody {
                                @for (i, f) in rows.iter().enumerate() {
                                    tr data-id=(f.id) {
                                        td.num { (i + 1) }
                                        td { a href={ "order/" (enc(&f.id, true)) } { (f.id) } }
                                        td.hide-narrow { (f.target) }
                                        td.num { (get(f).map(show).unwrap_or_default()) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    page(prefix, "charts — pingmachine", body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_of_the_rounds() {
        let now = [
            (Some(0.0), Some(0.010)),
            (Some(0.5), Some(0.030)),
            (None, None),
            (Some(0.25), Some(0.020)),
        ];
        let before = [(Some(0.0), Some(0.005)), (Some(0.0), Some(0.007))];
        let f = figures("a", "h", &now, &before);
        assert_eq!(f.loss, Some(0.25));
        assert_eq!(f.median, Some(0.020));
        let j = f.jitter.unwrap();
        assert!((j - 0.008_164_965_8).abs() < 1e-9, "{j}");
        assert!((f.rise.unwrap() - 0.014).abs() < 1e-12);
        let empty = figures("b", "h", &[], &[]);
        assert_eq!(
            (empty.loss, empty.median, empty.jitter, empty.rise),
            (None, None, None, None)
        );
    }

    #[test]
    fn rankings_put_the_highest_first_and_leave_out_nothing_to_show() {
        let f = |id: &str, loss: f64, rise: Option<f64>| Figures {
            id: id.into(),
            target: String::new(),
            loss: Some(loss),
            median: Some(loss),
            jitter: None,
            rise,
        };
        let all = vec![
            f("t10", 0.1, Some(-1.0)),
            f("t2", 0.5, Some(0.2)),
            f("t1", 0.0, None),
        ];
        let ids = |v: Vec<&Figures>| v.iter().map(|f| f.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(top(&all, |f| f.loss, true)), ["t2", "t10"]);
        assert_eq!(ids(top(&all, |f| f.median, false)), ["t2", "t10", "t1"]);
        assert_eq!(ids(top(&all, |f| f.rise, true)), ["t2"]);
        assert!(top(&all, |f| f.jitter, false).is_empty());
    }
}
