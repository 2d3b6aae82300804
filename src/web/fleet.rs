//! The fleet view (`--prometheus-url`): pages under `/fleet` that read
//! what every node of a fleet pushed by remote write (the
//! `pingmachine_round_*` series) back from the cluster, through the
//! Prometheus HTTP API (`/api/v1/query` and `/api/v1/query_range`), which
//! Prometheus, VictoriaMetrics, Thanos and Mimir all answer.
//!
//! * `/fleet`: sites × targets over a period (1 h, 3 h, 24 h): each
//!   site's mean loss and median RTT per target, worst first, and which
//!   sites are stale (no round for `--fleet-stale-after`).
//! * `/fleet/target/<order>`: one target as every site sees it: one colour
//!   per site, its median as a line in the smoke of its 0.1–0.9 quantiles,
//!   and its loss below; values under the mouse.
//!
//! A site is the value of one label (`--fleet-site-label`, `site` unless
//! told), which each node adds with `--tag site=NAME`; a target is an
//! order id, the same on every node. Graphs are SVG drawn here, so the
//! pages need no script. Answers are kept for [`CACHE_TTL`].

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use maud::{html, Markup};
use probes::sync::lock;
use serde::Deserialize;

use super::ctx::ServeCtx;
use super::pages::{enc, natural_cmp, page};

/// How long an answer of the store is reused.
pub const CACHE_TTL: Duration = Duration::from_secs(10);
/// Most answers kept.
const CACHE_SIZE: usize = 64;
/// How long the store may take.
const QUERY_TIMEOUT: Duration = Duration::from_secs(20);
/// The periods of the overview: seconds and name.
pub const PERIODS: [(i64, &str); 3] = [(3600, "1 h"), (3 * 3600, "3 h"), (86_400, "24 h")];
/// The ranges of a target's graph.
pub const TARGET_RANGES: [(i64, &str); 5] = [
    (900, "15 minutes"),
    (3600, "1 hour"),
    (3 * 3600, "3 hours"),
    (30 * 3600, "30 hours"),
    (10 * 86_400, "10 days"),
];
/// Points across a graph.
const GRAPH_POINTS: i64 = 360;
/// One colour per site, in the order of their names.
pub(super) const COLOURS: [&str; 10] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
    "#7f7f7f", "#bcbd22",
];

/// The fleet view's settings, shared by `run` and `serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct FleetOpts {
    /// Show the fleet view under /fleet, read from this Prometheus HTTP
    /// API (Prometheus, VictoriaMetrics, Thanos Query, Mimir; the base
    /// that /api/v1/query follows, user:password@ for basic auth) holding
    /// what the fleet's nodes sent with --remote-write.
    #[arg(long, value_name = "URL", value_parser = parse_url)]
    pub prometheus_url: Option<url::Url>,
    /// The label that names a node's site (its --tag NAME=VALUE).
    #[arg(long, default_value = "site", value_name = "LABEL", value_parser = parse_label)]
    pub fleet_site_label: String,
    /// A site whose newest round is older than this many seconds is shown
    /// as stale. A round is stamped with the start of its step and sent
    /// when it ends, so the newest is up to two steps old: allow three.
    #[arg(long, default_value_t = 900, value_parser = clap::value_parser!(u64).range(10..=86_400 * 7), value_name = "SECONDS")]
    pub fleet_stale_after: u64,
}

fn parse_url(s: &str) -> Result<url::Url, String> {
    let u = url::Url::parse(s.trim()).map_err(|e| format!("{s:?}: {e}"))?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
        return Err(format!("{s:?}: expected an http(s):// URL"));
    }
    if u.query().is_some() || u.fragment().is_some() {
        return Err(format!(
            "{s:?}: no query or fragment: the base that /api/v1/query follows"
        ));
    }
    Ok(u)
}

/// A Prometheus label name.
fn parse_label(s: &str) -> Result<String, String> {
    let ok = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with("__");
    if ok {
        Ok(s.to_owned())
    } else {
        Err(format!("{s:?}: a label name is [a-zA-Z_][a-zA-Z0-9_]*"))
    }
}

/// The fleet view: where to read, and the answers kept.
#[derive(Debug)]
pub struct Fleet {
    /// The API's base, without a trailing slash, and without credentials.
    base: String,
    /// Shown on the pages.
    pub shown: String,
    auth: Option<(String, String)>,
    site_label: String,
    stale_after: i64,
    client: reqwest::Client,
    cache: Mutex<HashMap<String, Answer>>,
    /// `--web-route-prefix`.
    prefix: String,
}

/// An answer of the store and when it came.
type Answer = (Instant, Arc<Vec<Series>>);

/// One series of an answer: its labels and its points (Unix s, value).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: BTreeMap<String, String>,
    pub points: Vec<(f64, f64)>,
}

impl Fleet {
    /// The view for `opts`, or `None` without `--prometheus-url`. `ca`:
    /// extra trusted certificates (PEM) for https.
    pub fn new(opts: &FleetOpts, ca: &[Vec<u8>], prefix: &str) -> anyhow::Result<Option<Fleet>> {
        let Some(url) = &opts.prometheus_url else {
            return Ok(None);
        };
        let mut u = url.clone();
        let auth = (!u.username().is_empty()).then(|| {
            let user = decode(u.username());
            let pw = decode(u.password().unwrap_or(""));
            (user, pw)
        });
        let _ = u.set_username("");
        let _ = u.set_password(None);
        let base = u.as_str().trim_end_matches('/').to_owned();
        let tls =
            probes::http::tls_config(ca).map_err(|e| anyhow::anyhow!("--prometheus-url: {e}"))?;
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(QUERY_TIMEOUT)
            .no_proxy()
            .build()
            .map_err(|e| anyhow::anyhow!("--prometheus-url: {e}"))?;
        Ok(Some(Fleet {
            shown: base.clone(),
            base,
            auth,
            site_label: opts.fleet_site_label.clone(),
            stale_after: i64::try_from(opts.fleet_stale_after).unwrap_or(900),
            client,
            cache: Mutex::new(HashMap::new()),
            prefix: prefix.to_owned(),
        }))
    }

    /// Runs `path?params` against the API (cached): its series.
    async fn ask(&self, path: &str, params: &[(&str, String)]) -> Result<Arc<Vec<Series>>, String> {
        let mut key = format!("{}{path}", self.base);
        for (i, (k, v)) in params.iter().enumerate() {
            let sep = if i == 0 { '?' } else { '&' };
            let _ = write!(key, "{sep}{k}={}", enc(v, false));
        }
        if let Some((at, v)) = lock(&self.cache).get(&key) {
            if at.elapsed() < CACHE_TTL {
                return Ok(v.clone());
            }
        }
        let mut req = self.client.get(&key);
        if let Some((u, p)) = &self.auth {
            req = req.basic_auth(u, Some(p));
        }
        let resp = req.send().await.map_err(|e| chain(&e))?;
        let status = resp.status();
        let body = resp.text().await.map_err(|e| chain(&e))?;
        if !status.is_success() {
            let text: String = body.chars().take(300).collect();
            return Err(format!("HTTP {}: {text}", status.as_u16()));
        }
        let series = Arc::new(parse_answer(&body)?);
        let mut cache = lock(&self.cache);
        if cache.len() >= CACHE_SIZE {
            cache.retain(|_, (at, _)| at.elapsed() < CACHE_TTL);
            if cache.len() >= CACHE_SIZE {
                cache.clear();
            }
        }
        cache.insert(key, (Instant::now(), series.clone()));
        Ok(series)
    }

    async fn instant(&self, query: String, at: i64) -> Result<Arc<Vec<Series>>, String> {
        self.ask(
            "/api/v1/query",
            &[("query", query), ("time", at.to_string())],
        )
        .await
    }

    async fn range(
        &self,
        query: String,
        start: i64,
        end: i64,
        step: i64,
    ) -> Result<Arc<Vec<Series>>, String> {
        self.ask(
            "/api/v1/query_range",
            &[
                ("query", query),
                ("start", start.to_string()),
                ("end", end.to_string()),
                ("step", step.to_string()),
            ],
        )
        .await
    }
}

fn decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        parts.push(s.to_string());
        cur = s.source();
    }
    parts.join(": ")
}

/// The series of a Prometheus API answer (a vector or a matrix); points
/// that are not finite numbers are left out.
pub fn parse_answer(body: &str) -> Result<Vec<Series>, String> {
    let v: serde_json::Value =
        serde_json::from_str(body).map_err(|e| format!("not a Prometheus API answer: {e}"))?;
    if v["status"] != "success" {
        return Err(format!(
            "the store says: {}",
            v["error"].as_str().unwrap_or("an error")
        ));
    }
    let point = |p: &serde_json::Value| -> Option<(f64, f64)> {
        let t = p.get(0)?.as_f64()?;
        let x: f64 = p.get(1)?.as_str()?.parse().ok()?;
        x.is_finite().then_some((t, x))
    };
    let mut out = Vec::new();
    for r in v["data"]["result"].as_array().into_iter().flatten() {
        let labels = r["metric"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        let points: Vec<(f64, f64)> = match r.get("values") {
            Some(vs) => vs
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(point)
                .collect(),
            None => r.get("value").and_then(point).into_iter().collect(),
        };
        out.push(Series { labels, points });
    }
    Ok(out)
}

/// A PromQL string literal.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The fleet routes (404 without `--prometheus-url`).
pub fn routes() -> Router<Arc<ServeCtx>> {
    Router::new()
        .route("/fleet", get(overview))
        .route("/fleet/target/{*id}", get(target))
}

/// Query of the fleet pages.
#[derive(Debug, Default, Deserialize)]
pub struct FleetQuery {
    /// Seconds back from now.
    pub range: Option<i64>,
}

fn html_page(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (axum::http::header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

fn now() -> i64 {
    crate::clock::unix_s()
}

/// One cell of the overview: a site's view of a target over the period.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Cell {
    /// Mean loss ratio of the rounds (0..=1).
    pub loss: Option<f64>,
    /// Median of the rounds' medians, in seconds.
    pub median: Option<f64>,
}

/// A target's row of the overview.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Row {
    pub order: String,
    pub host: String,
    pub cells: BTreeMap<String, Cell>,
}

impl Row {
    fn worst_loss(&self) -> f64 {
        self.cells
            .values()
            .filter_map(|c| c.loss)
            .fold(0.0, f64::max)
    }
    fn worst_median(&self) -> f64 {
        self.cells
            .values()
            .filter_map(|c| c.median)
            .fold(0.0, f64::max)
    }
}

/// The overview: sites (name, fresh) and rows, worst first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overview {
    pub sites: Vec<(String, bool)>,
    pub rows: Vec<Row>,
}

/// Builds the overview from the answers: `loss` and `median` by site,
/// order and host; `fresh` the sites with a round lately.
pub fn overview_of(site: &str, loss: &[Series], median: &[Series], fresh: &[Series]) -> Overview {
    let mut rows: BTreeMap<String, Row> = BTreeMap::new();
    let mut sites: BTreeMap<String, bool> = BTreeMap::new();
    let mut put = |s: &Series, f: &dyn Fn(&mut Cell, f64)| {
        let (Some(order), Some((_, v))) = (s.labels.get("order"), s.points.last()) else {
            return;
        };
        let name = s.labels.get(site).cloned().unwrap_or_default();
        sites.entry(name.clone()).or_insert(false);
        let row = rows.entry(order.clone()).or_insert_with(|| Row {
            order: order.clone(),
            host: s.labels.get("host").cloned().unwrap_or_default(),
            cells: BTreeMap::new(),
        });
        f(row.cells.entry(name).or_default(), *v);
    };
    for s in loss {
        put(s, &|c, v| c.loss = Some(v));
    }
    for s in median {
        put(s, &|c, v| c.median = Some(v));
    }
    for s in fresh {
        if s.points.last().is_some_and(|(_, n)| *n > 0.0) {
            let name = s.labels.get(site).cloned().unwrap_or_default();
            sites.insert(name, true);
        }
    }
    let mut rows: Vec<Row> = rows.into_values().collect();
    rows.sort_by(|a, b| {
        b.worst_loss()
            .total_cmp(&a.worst_loss())
            .then(b.worst_median().total_cmp(&a.worst_median()))
            .then_with(|| natural_cmp(&a.order, &b.order))
    });
    Overview {
        sites: sites.into_iter().collect(),
        rows,
    }
}

async fn overview(State(ctx): State<Arc<ServeCtx>>, Query(q): Query<FleetQuery>) -> Response {
    let Some(f) = ctx.fleet.as_ref() else {
        return super::site::not_found();
    };
    let period = q.range.unwrap_or(PERIODS[0].0);
    if !PERIODS.iter().any(|(p, _)| *p == period) {
        return (StatusCode::BAD_REQUEST, "range is 3600, 10800 or 86400\n").into_response();
    }
    let s = &f.site_label;
    let at = now();
    let loss = format!(
        "avg by ({s}, order, host) (avg_over_time(pingmachine_round_loss_ratio[{period}s]))"
    );
    let median = format!(
        "avg by ({s}, order, host) (quantile_over_time(0.5, pingmachine_round_rtt_median_seconds[{period}s]))"
    );
    let fresh = format!(
        "sum by ({s}) (count_over_time(pingmachine_round_loss_ratio[{}s]))",
        f.stale_after
    );
    let answers = futures_util::future::try_join3(
        f.instant(loss, at),
        f.instant(median, at),
        f.instant(fresh, at),
    )
    .await;
    match answers {
        Ok((l, m, fr)) => {
            let o = overview_of(s, &l, &m, &fr);
            html_page(StatusCode::OK, overview_page(f, &o, period))
        }
        Err(e) => store_error(f, &e),
    }
}

fn store_error(f: &Fleet, e: &str) -> Response {
    let body = html! {
        (heading(f))
        main {
            h2 { "The store did not answer" }
            p { "Asking " code { (f.shown) } ": " (e) }
        }
    };
    html_page(
        StatusCode::BAD_GATEWAY,
        page(&f.prefix, "fleet: no answer", body),
    )
}

fn heading(f: &Fleet) -> Markup {
    html! {
        header {
            h1 { a href="fleet" { "pingmachine fleet" } }
            span.muted { "from " (f.shown) }
            a href="./" { "this node" }
        }
    }
}

pub(super) fn ms(s: f64) -> String {
    let v = s * 1000.0;
    if v == 0.0 {
        "0".to_owned()
    } else if v < 0.1 {
        format!("{:.1} µs", v * 1000.0)
    } else if v >= 100.0 {
        format!("{v:.0} ms")
    } else if v >= 10.0 {
        format!("{v:.1} ms")
    } else {
        format!("{v:.2} ms")
    }
}

pub(super) fn pct(r: f64) -> String {
    let p = r * 100.0;
    if p == 0.0 || p >= 10.0 {
        format!("{p:.0} %")
    } else {
        format!("{p:.1} %")
    }
}

fn loss_class(r: f64) -> &'static str {
    if r <= 0.0 {
        "loss-ok"
    } else if r < 0.2 {
        "loss-some"
    } else {
        "loss-bad"
    }
}

fn overview_page(f: &Fleet, o: &Overview, period: i64) -> String {
    let stale = o.sites.iter().filter(|(_, fresh)| !fresh).count();
    let body = html! {
        (heading(f))
        main {
            p.range {
                "Over the last "
                @for (p, name) in PERIODS {
                    @if p == period { strong { (name) } } @else { a href=(format!("fleet?range={p}")) { (name) } }
                    " "
                }
                span.muted { "· worst first: mean loss, then median of the medians" }
            }
            @if o.rows.is_empty() {
                p.muted { "No data: no series pingmachine_round_loss_ratio in this period. Each node sends them with --remote-write." }
            } @else {
                p #sites {
                    (o.sites.len()) " sites"
                    @if stale > 0 { ", " span.stale { (stale) " stale" } " (no round for " (f.stale_after) " s)" }
                }
                div.table-wrap {
                    table #fleet {
                        thead {
                            tr {
                                th { "target" }
                                th.hide-narrow { "host" }
                                @for (site, fresh) in &o.sites {
                                    th.num data-site=(site) data-stale=(if *fresh { "no" } else { "yes" }) {
                                        (site)
                                        @if !fresh { " " span.stale title="no round lately" { "stale" } }
                                    }
                                }
                            }
                        }
                        tbody {
                            @for r in &o.rows {
                                tr data-order=(r.order) {
                                    td { a href=(format!("fleet/target/{}?range={}", enc(&r.order, true), period.max(3 * 3600))) { (r.order) } }
                                    td.hide-narrow { (r.host) }
                                    @for (site, _) in &o.sites {
                                        @match r.cells.get(site) {
                                            Some(c) => td.num data-site=(site)
                                                data-loss=(c.loss.map(|l| format!("{l}")).unwrap_or_default())
                                                data-median=(c.median.map(|m| format!("{m}")).unwrap_or_default()) {
                                                @if let Some(l) = c.loss { span class=(loss_class(l)) { (pct(l)) } }
                                                @if let Some(m) = c.median { " · " (ms(m)) }
                                            },
                                            None => td.num.muted data-site=(site) { "no data" },
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    page(&f.prefix, "pingmachine fleet", body)
}

/// A target's lines: by site, the median, the 0.1 and 0.9 quantiles and
/// the loss, as (Unix s, value).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SiteLines {
    pub median: Vec<(f64, f64)>,
    pub low: Vec<(f64, f64)>,
    pub high: Vec<(f64, f64)>,
    pub loss: Vec<(f64, f64)>,
}

async fn target(
    State(ctx): State<Arc<ServeCtx>>,
    uri: Uri,
    UrlPath(id): UrlPath<String>,
    Query(q): Query<FleetQuery>,
) -> Response {
    let Some(f) = ctx.fleet.as_ref() else {
        return super::site::not_found();
    };
    let Some(id) = super::site::checked_id(&uri, &id) else {
        return super::site::not_found();
    };
    let span = q.range.unwrap_or(TARGET_RANGES[2].0);
    if !TARGET_RANGES.iter().any(|(r, _)| *r == span) {
        return (
            StatusCode::BAD_REQUEST,
            "range is 900, 3600, 10800, 108000 or 864000\n",
        )
            .into_response();
    }
    let s = &f.site_label;
    let end = now();
    let start = end - span;
    let step = (span / GRAPH_POINTS).max(10);
    let sel = |metric: &str, extra: &str| {
        format!(
            "avg by ({s}) ({metric}{{order={}{extra}}})",
            quote(id.as_str())
        )
    };
    let answers = futures_util::future::try_join4(
        f.range(
            sel("pingmachine_round_rtt_median_seconds", ""),
            start,
            end,
            step,
        ),
        f.range(
            sel(
                "pingmachine_round_rtt_quantile_seconds",
                ",quantile=\"0.1\"",
            ),
            start,
            end,
            step,
        ),
        f.range(
            sel(
                "pingmachine_round_rtt_quantile_seconds",
                ",quantile=\"0.9\"",
            ),
            start,
            end,
            step,
        ),
        f.range(sel("pingmachine_round_loss_ratio", ""), start, end, step),
    )
    .await;
    let (m, lo, hi, l) = match answers {
        Ok(a) => a,
        Err(e) => return store_error(f, &e),
    };
    let mut sites: BTreeMap<String, SiteLines> = BTreeMap::new();
    let mut put = |series: &[Series], pick: fn(&mut SiteLines) -> &mut Vec<(f64, f64)>| {
        for x in series {
            let name = x.labels.get(s).cloned().unwrap_or_default();
            *pick(sites.entry(name).or_default()) = x.points.clone();
        }
    };
    put(&m, |x| &mut x.median);
    put(&lo, |x| &mut x.low);
    put(&hi, |x| &mut x.high);
    put(&l, |x| &mut x.loss);
    let body = target_page(f, id.as_str(), &sites, (start, end, step), span);
    html_page(StatusCode::OK, body)
}

fn target_page(
    f: &Fleet,
    id: &str,
    sites: &BTreeMap<String, SiteLines>,
    (start, end, step): (i64, i64, i64),
    span: i64,
) -> String {
    let colour = |i: usize| COLOURS[i % COLOURS.len()];
    let body = html! {
        (heading(f))
        main {
            h2 { (id) " from every site" }
            p.range {
                @for (r, name) in TARGET_RANGES {
                    @if r == span { strong { (name) } } @else { a href=(format!("fleet/target/{}?range={r}", enc(id, true))) { (name) } }
                    " "
                }
            }
            @if sites.is_empty() {
                p.muted #nodata { "No data for this target in this period." }
            } @else {
                figure {
                    (latency_svg(sites, start, end, step))
                    figcaption { "Median RTT per site (line) in the smoke of its rounds' 0.1 to 0.9 quantiles; hover a point for its value." }
                }
                figure {
                    (loss_svg(sites, start, end, step))
                    figcaption { "Loss per site." }
                }
                table #legend {
                    thead { tr { th { "site" } th.num { "median" } th.num { "loss" } th.num { "rounds" } } }
                    tbody {
                        @for (i, (site, lines)) in sites.iter().enumerate() {
                            tr data-site=(site) {
                                td { svg width="12" height="12" { rect width="12" height="12" fill=(colour(i)) {} } " " (site) }
                                td.num { (median_of(&lines.median).map_or("no data".into(), ms)) }
                                td.num { (mean_of(&lines.loss).map_or("no data".into(), pct)) }
                                td.num { (lines.loss.len()) }
                            }
                        }
                    }
                }
            }
        }
    };
    page(&f.prefix, &format!("{id}: fleet"), body)
}

pub(super) fn median_of(p: &[(f64, f64)]) -> Option<f64> {
    let mut v: Vec<f64> = p.iter().map(|(_, x)| *x).collect();
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

pub(super) fn mean_of(p: &[(f64, f64)]) -> Option<f64> {
    (!p.is_empty()).then(|| p.iter().map(|(_, x)| x).sum::<f64>() / p.len() as f64)
}

/// The runs of `points` with no gap wider than two steps.
fn runs(points: &[(f64, f64)], step: i64) -> Vec<&[(f64, f64)]> {
    let mut out = Vec::new();
    let mut from = 0;
    for i in 1..=points.len() {
        if i == points.len() || points[i].0 - points[i - 1].0 > 2.0 * step as f64 {
            if i > from {
                out.push(&points[from..i]);
            }
            from = i;
        }
    }
    out
}

const W: f64 = 860.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 28.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 26.0;

/// A round upper bound for an axis from 0 to at least `v`.
fn nice_max(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let mag = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if m * mag >= v {
            return m * mag;
        }
    }
    10.0 * mag
}

fn hhmm(t: i64, span: i64) -> String {
    let day = t.div_euclid(86_400);
    let s = t.rem_euclid(86_400);
    if span > 2 * 86_400 {
        // Month and day (UTC).
        let z = day + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        format!("{m:02}-{d:02}")
    } else if span == 0 {
        format!("{:02}:{:02}:{:02}", s / 3600, s % 3600 / 60, s % 60)
    } else {
        format!("{:02}:{:02}", s / 3600, s % 3600 / 60)
    }
}

/// The frame of a graph: axes, grid and labels; `y_label(v)` writes a
/// value of the y axis.
fn frame(
    out: &mut String,
    (start, end): (i64, i64),
    h: f64,
    ymax: f64,
    y_label: &dyn Fn(f64) -> String,
) {
    let (x0, x1, y0, y1) = (LEFT, W - RIGHT, h - BOTTOM, TOP);
    let _ = write!(
        out,
        r##"<rect x="{x0}" y="{y1}" width="{}" height="{}" fill="none" stroke="#8888"/>"##,
        x1 - x0,
        y0 - y1
    );
    for i in 0..=4 {
        let v = ymax * f64::from(i) / 4.0;
        let y = y0 - (y0 - y1) * f64::from(i) / 4.0;
        let _ = write!(
            out,
            r##"<line x1="{x0}" x2="{x1}" y1="{y:.1}" y2="{y:.1}" stroke="#8884"/><text x="{}" y="{:.1}" text-anchor="end" font-size="11" fill="currentColor">{}</text>"##,
            x0 - 4.0,
            y + 4.0,
            y_label(v)
        );
    }
    let span = end - start;
    for i in 0..=5 {
        let t = start + span * i / 5;
        let x = x0 + (x1 - x0) * i as f64 / 5.0;
        let _ = write!(
            out,
            r##"<line x1="{x:.1}" x2="{x:.1}" y1="{y1}" y2="{y0}" stroke="#8884"/><text x="{x:.1}" y="{}" text-anchor="middle" font-size="11" fill="currentColor">{}</text>"##,
            y0 + 16.0,
            hhmm(t, span)
        );
    }
}

fn xy((start, end): (i64, i64), h: f64, ymax: f64) -> impl Fn(f64, f64) -> (f64, f64) {
    move |t, v| {
        let x = LEFT + (W - LEFT - RIGHT) * (t - start as f64) / (end - start) as f64;
        let y = (h - BOTTOM) - (h - BOTTOM - TOP) * (v / ymax).clamp(0.0, 1.0);
        (x, y)
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub(super) fn latency_svg(
    sites: &BTreeMap<String, SiteLines>,
    start: i64,
    end: i64,
    step: i64,
) -> Markup {
    let h = 300.0;
    // The axis holds the medians and most of the smoke.
    let top = sites
        .values()
        .flat_map(|l| l.high.iter().chain(&l.median))
        .map(|(_, v)| *v)
        .fold(0.0, f64::max);
    let ymax = nice_max(top * 1.05);
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg id="latency" viewBox="0 0 {W} {h}" width="{W}" height="{h}" role="img" aria-label="median RTT per site">"#
    );
    frame(&mut out, (start, end), h, ymax, &|v| ms(v));
    let at = xy((start, end), h, ymax);
    for (i, (site, l)) in sites.iter().enumerate() {
        let c = COLOURS[i % COLOURS.len()];
        let site_e = escape(site);
        // The smoke: the 0.9 quantile forth, the 0.1 quantile back.
        let low: HashMap<i64, f64> = l.low.iter().map(|(t, v)| (*t as i64, *v)).collect();
        let both: Vec<(f64, f64)> = l.high.clone();
        for run in runs(&both, step) {
            let pairs: Vec<(f64, f64, f64)> = run
                .iter()
                .filter_map(|(t, hi)| low.get(&(*t as i64)).map(|lo| (*t, *lo, *hi)))
                .collect();
            if pairs.is_empty() {
                continue;
            }
            let mut pts = String::new();
            for (t, _, hi) in &pairs {
                let (x, y) = at(*t, *hi);
                let _ = write!(pts, "{x:.1},{y:.1} ");
            }
            for (t, lo, _) in pairs.iter().rev() {
                let (x, y) = at(*t, *lo);
                let _ = write!(pts, "{x:.1},{y:.1} ");
            }
            let _ = write!(
                out,
                r#"<polygon class="smoke" data-site="{site_e}" points="{}" fill="{c}" fill-opacity="0.18" stroke="none"/>"#,
                pts.trim_end()
            );
        }
        for run in runs(&l.median, step) {
            let mut pts = String::new();
            for (t, v) in run {
                let (x, y) = at(*t, *v);
                let _ = write!(pts, "{x:.1},{y:.1} ");
            }
            let _ = write!(
                out,
                r#"<polyline class="median" data-site="{site_e}" points="{}" fill="none" stroke="{c}" stroke-width="2"/>"#,
                pts.trim_end()
            );
        }
        let loss: HashMap<i64, f64> = l.loss.iter().map(|(t, v)| (*t as i64, *v)).collect();
        for (t, v) in &l.median {
            let (x, y) = at(*t, *v);
            let lost = loss
                .get(&(*t as i64))
                .map(|r| format!(", loss {}", pct(*r)));
            let _ = write!(
                out,
                r#"<circle class="point" data-site="{site_e}" data-time="{t}" data-value="{v}" cx="{x:.1}" cy="{y:.1}" r="3" fill="{c}" fill-opacity="0.01"><title>{site_e} {} UTC: median {}{}</title></circle>"#,
                hhmm(*t as i64, 0),
                ms(*v),
                lost.unwrap_or_default()
            );
        }
    }
    out.push_str("</svg>");
    maud::PreEscaped(out)
}

pub(super) fn loss_svg(
    sites: &BTreeMap<String, SiteLines>,
    start: i64,
    end: i64,
    step: i64,
) -> Markup {
    let h = 140.0;
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg id="loss" viewBox="0 0 {W} {h}" width="{W}" height="{h}" role="img" aria-label="loss per site">"#
    );
    frame(&mut out, (start, end), h, 1.0, &|v| {
        format!("{:.0} %", v * 100.0)
    });
    let at = xy((start, end), h, 1.0);
    for (i, (site, l)) in sites.iter().enumerate() {
        let c = COLOURS[i % COLOURS.len()];
        let site_e = escape(site);
        for run in runs(&l.loss, step) {
            let mut pts = String::new();
            for (t, v) in run {
                let (x, y) = at(*t, *v);
                let _ = write!(pts, "{x:.1},{y:.1} ");
            }
            let _ = write!(
                out,
                r#"<polyline class="loss" data-site="{site_e}" points="{}" fill="none" stroke="{c}" stroke-width="2"/>"#,
                pts.trim_end()
            );
        }
    }
    out.push_str("</svg>");
    maud::PreEscaped(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(labels: &[(&str, &str)], points: &[(f64, f64)]) -> Series {
        Series {
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            points: points.to_vec(),
        }
    }

    #[test]
    fn answers_of_the_api_are_read_and_junk_is_an_error() {
        let vector = r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"site":"a","order":"t1"},"value":[1700000000.5,"0.25"]},
            {"metric":{"site":"b","order":"t1"},"value":[1700000000,"NaN"]}]}}"#;
        let s = parse_answer(vector).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].labels["site"], "a");
        assert_eq!(s[0].points, [(1_700_000_000.5, 0.25)]);
        assert!(s[1].points.is_empty(), "NaN is no point");
        let matrix = r#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"site":"a"},"values":[[10,"1"],[20,"+Inf"],[30,"2"]]}]}}"#;
        assert_eq!(
            parse_answer(matrix).unwrap()[0].points,
            [(10.0, 1.0), (30.0, 2.0)]
        );
        let e = parse_answer(r#"{"status":"error","error":"parse error at char 3"}"#).unwrap_err();
        assert!(e.contains("parse error"), "{e}");
        assert!(parse_answer("<html>").is_err());
    }

    #[test]
    fn label_values_are_quoted() {
        assert_eq!(quote("t1"), "\"t1\"");
        assert_eq!(quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
    }

    #[test]
    fn flags_are_checked() {
        assert!(parse_url("http://vm:8428").is_ok());
        assert!(parse_url("https://u:p@thanos/prefix").is_ok());
        assert!(parse_url("ftp://x").is_err());
        assert!(parse_url("http://x/?q=1").is_err());
        assert!(parse_label("site").is_ok());
        for bad in ["", "1site", "si-te", "__name__"] {
            assert!(parse_label(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_overview_puts_the_worst_first_and_knows_stale_sites() {
        let loss = vec![
            series(
                &[("site", "a"), ("order", "t2"), ("host", "h2")],
                &[(0.0, 0.0)],
            ),
            series(
                &[("site", "b"), ("order", "t2"), ("host", "h2")],
                &[(0.0, 0.0)],
            ),
            series(
                &[("site", "a"), ("order", "t10"), ("host", "h10")],
                &[(0.0, 0.0)],
            ),
            series(
                &[("site", "b"), ("order", "t10"), ("host", "h10")],
                &[(0.0, 0.3)],
            ),
            series(
                &[("site", "a"), ("order", "t1"), ("host", "h1")],
                &[(0.0, 0.0)],
            ),
        ];
        let median = vec![
            series(&[("site", "a"), ("order", "t2")], &[(0.0, 0.040)]),
            series(&[("site", "a"), ("order", "t1")], &[(0.0, 0.010)]),
        ];
        let fresh = vec![series(&[("site", "a")], &[(0.0, 12.0)])];
        let o = overview_of("site", &loss, &median, &fresh);
        assert_eq!(o.sites, [("a".to_owned(), true), ("b".to_owned(), false)]);
        let order: Vec<&str> = o.rows.iter().map(|r| r.order.as_str()).collect();
        // Loss first, then the median, then natural order.
        assert_eq!(order, ["t10", "t2", "t1"]);
        assert_eq!(o.rows[0].cells["b"].loss, Some(0.3));
        assert_eq!(o.rows[1].cells["a"].median, Some(0.040));
        assert_eq!(o.rows[1].host, "h2");
    }

    #[test]
    fn gaps_split_the_lines_and_axes_are_round() {
        let p = [(0.0, 1.0), (10.0, 1.0), (50.0, 1.0), (60.0, 1.0)];
        let r = runs(&p, 10);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].len(), 2);
        assert!(runs(&[], 10).is_empty());
        assert_eq!(nice_max(0.0123), 0.02);
        assert_eq!(nice_max(0.04), 0.05);
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(hhmm(1_700_000_000, 3600), "22:13");
        assert_eq!(hhmm(1_700_000_000, 864_000), "11-14");
    }

    #[test]
    fn a_graph_has_a_line_a_smoke_and_points_per_site() {
        let mut sites = BTreeMap::new();
        sites.insert(
            "a<b".to_owned(),
            SiteLines {
                median: vec![(100.0, 0.01), (110.0, 0.012)],
                low: vec![(100.0, 0.009), (110.0, 0.011)],
                high: vec![(100.0, 0.02), (110.0, 0.03)],
                loss: vec![(100.0, 0.0), (110.0, 0.5)],
            },
        );
        let svg = latency_svg(&sites, 90, 130, 10).into_string();
        assert_eq!(svg.matches("<polyline class=\"median\"").count(), 1);
        assert_eq!(svg.matches("<polygon class=\"smoke\"").count(), 1);
        assert_eq!(svg.matches("<circle").count(), 2);
        assert!(svg.contains("data-site=\"a&lt;b\""), "escaped: {svg}");
        assert!(svg.contains("loss 50 %"), "{svg}");
        assert!(!svg.to_lowercase().contains("nan"), "{svg}");
    }
}
