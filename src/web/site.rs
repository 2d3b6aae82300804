//! The web page's handlers: the status of every order (`/`), one order
//! with SmokePing's graphs (`/order/<id>`), the graphs themselves
//! (`/graph/<id>`), the status as JSON (`/api/v1/orders`,
//! `/api/v1/orders/<id>`), and the embedded assets.

use probes::sync::lock;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use super::ctx::{Graph, GraphKey, ListQuery, ServeCtx, RANGES};
use super::pages;
use crate::order::OrderId;
use crate::report::{self, Filter, Report};
use crate::store::writer::RRD_FILE;

/// Rounds in the order page's table.
pub const LAST_ROUNDS: usize = 20;
/// How long a drawn graph is served again.
pub const GRAPH_TTL: Duration = Duration::from_secs(60);
/// Most graphs kept.
pub const GRAPH_CACHE: usize = 256;
/// How long the status report is reused.
pub const REPORT_TTL: Duration = Duration::from_secs(5);
/// How old a report may be and still be served at once, while a newer
/// one is built in the background; an older one is rebuilt while the
/// request waits.
pub const REPORT_STALE: Duration = Duration::from_secs(60);

const CSS: &str = include_str!("assets/style.css");
const JS: &str = include_str!("assets/app.js");
/// uPlot, vendored unchanged (`assets/vendor/uplot/README.md`).
const UPLOT_JS: &str = include_str!("assets/vendor/uplot/uPlot.iife.min.js");
const UPLOT_CSS: &str = include_str!("assets/vendor/uplot/uPlot.min.css");

/// The content security policy: nothing but this server.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; connect-src 'self'; form-action 'self'; base-uri 'self'; frame-ancestors 'none'";

/// The web routes.
pub fn routes() -> Router<Arc<ServeCtx>> {
    Router::new()
        .route("/", get(index))
        .route("/order/{*id}", get(order_page))
        .route("/graph/{*id}", get(graph))
        .route("/api/v1/orders", get(api_orders))
        .route("/api/v1/orders/{*id}", get(api_order))
        .route("/charts", get(super::charts::charts))
        .route("/archive", get(super::archive::list))
        .route("/archive/order/{*id}", get(super::archive::order))
        .route("/archive/graph/{*id}", get(archive_graph))
        .route("/compare", get(super::compare::compare))
        .merge(super::fleet::routes())
        .route(
            "/assets/style.css",
            get(|| async { asset("text/css; charset=utf-8", CSS) }),
        )
        .route(
            "/assets/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", JS) }),
        )
        .route(
            "/assets/uplot-1.6.32.js",
            get(|| async { asset("text/javascript; charset=utf-8", UPLOT_JS) }),
        )
        .route(
            "/assets/uplot-1.6.32.css",
            get(|| async { asset("text/css; charset=utf-8", UPLOT_CSS) }),
        )
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        body,
    )
        .into_response()
}

/// Adds the defensive headers to every response.
pub async fn defensive_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    res
}

/// 404 with a short text.
pub fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

/// The order id in a request path, or `None` (then: 404). Encoded slashes
/// and backslashes are refused before decoding can hide them.
pub fn checked_id(uri: &Uri, id: &str) -> Option<OrderId> {
    let raw = uri.path().to_ascii_lowercase();
    if raw.contains("%2f") || raw.contains("%5c") || raw.contains("%00") || id.contains('\\') {
        return None;
    }
    OrderId::new(id).ok()
}

/// The path of `rel` below `id`'s output directory, if it is a regular
/// file that stays inside `output/` (no symlink out).
pub fn output_file(ctx: &ServeCtx, id: &OrderId, rel: &str) -> Option<PathBuf> {
    let path = id.under(&ctx.base.output).join(rel);
    let canon = std::fs::canonicalize(&path).ok()?;
    (canon.starts_with(&ctx.web.output_canon) && canon.is_file()).then_some(canon)
}

/// The path of `rel` below `id`'s archive directory, if it is a regular
/// file that stays inside `archive/` (no symlink out).
pub fn archive_file(ctx: &ServeCtx, id: &OrderId, rel: &str) -> Option<PathBuf> {
    let path = id.under(&ctx.base.archive).join(rel);
    let canon = std::fs::canonicalize(&path).ok()?;
    (canon.starts_with(&ctx.web.archive_canon) && canon.is_file()).then_some(canon)
}

/// The order file of `id`, if it is one the daemon would read.
fn order_file(ctx: &ServeCtx, id: &OrderId) -> Option<PathBuf> {
    let path = id.under(&ctx.base.orders);
    match crate::tree::order_metadata(&path, &ctx.web.orders_canon) {
        Ok(Some(_)) => Some(path),
        _ => None,
    }
}

/// Builds the first report (parsing every order file) ahead of the first
/// request. Blocking.
pub fn warm_up(ctx: &Arc<ServeCtx>) {
    let _ = report(ctx);
}

/// The status of every order, reused for [`REPORT_TTL`]; after that, and
/// up to [`REPORT_STALE`], it is still served at once while one thread
/// builds the next (a report of 100,000 orders takes over a second: a
/// `stat` of every order file, a read of every `last_result`). Blocking.
pub fn report(ctx: &Arc<ServeCtx>) -> Arc<Report> {
    use std::sync::atomic::Ordering;
    if let Some((at, r)) = lock(&ctx.web.report).as_ref() {
        let age = at.elapsed();
        if age < REPORT_TTL {
            return r.clone();
        }
        if age < REPORT_STALE {
            if !ctx.web.rebuilding.swap(true, Ordering::AcqRel) {
                let c = ctx.clone();
                let spawned = std::thread::Builder::new()
                    .name("pm-web-report".into())
                    .spawn(move || {
                        crate::priority::idle_thread();
                        let _ = rebuild(&c);
                        c.web.rebuilding.store(false, Ordering::Release);
                    });
                if spawned.is_err() {
                    ctx.web.rebuilding.store(false, Ordering::Release);
                }
            }
            return r.clone();
        }
    }
    rebuild(ctx)
}

/// Builds a report (one at a time; a caller that waited for another's
/// gets that one).
fn rebuild(ctx: &ServeCtx) -> Arc<Report> {
    let mut parsed = lock(&ctx.web.parsed);
    if let Some((at, r)) = lock(&ctx.web.report).as_ref() {
        if at.elapsed() < REPORT_TTL {
            return r.clone();
        }
    }
    let filter = Filter {
        shard: ctx.shard,
        ..Filter::default()
    };
    let mut r = report::report_cached(&ctx.base, &filter, &mut parsed);
    if let Some(d) = &ctx.daemon {
        for o in &mut r.orders {
            let (jitter, stddev) = latest_stats(d, &o.id, o.last_result.as_ref());
            (o.jitter_ms, o.stddev_ms) = (jitter, stddev);
        }
    }
    let r = Arc::new(r);
    *lock(&ctx.web.report) = Some((Instant::now(), r.clone()));
    r
}

/// Jitter and standard deviation (ms) of the round `last_result` holds,
/// as the daemon kept them (none for another round, or without them).
fn latest_stats(
    d: &crate::health::Telemetry,
    id: &str,
    last: Option<&crate::inspect::LastResult>,
) -> (Option<f64>, Option<f64>) {
    let (Some(last), Ok(id)) = (last, crate::order::OrderId::new(id)) else {
        return (None, None);
    };
    match d.sinks.round_spread(&id, last.time) {
        Some(l) => (l.jitter.map(|s| s * 1000.0), l.stddev.map(|s| s * 1000.0)),
        None => (None, None),
    }
}

/// Runs `f` on one of the web page's blocking threads ([`background`]):
/// its reading, computing and rendering never runs on the threads that
/// start rounds, and yields the CPU to them on a busy machine
/// (`crate::priority`).
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    background(f).await.ok()
}

/// Threads of the web page's blocking work at once, at most.
const WEB_THREADS: usize = 16;

/// `spawn_blocking` on the web page's own pool of threads, which take the
/// idle scheduling policy (see [`blocking`]); the daemon's own blocking
/// work keeps the runtime's pool at the normal priority.
pub(super) fn background<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> tokio::task::JoinHandle<T> {
    static POOL: std::sync::OnceLock<Option<tokio::runtime::Runtime>> = std::sync::OnceLock::new();
    let pool = POOL.get_or_init(|| {
        // Only its blocking pool is used: nothing runs its scheduler.
        tokio::runtime::Builder::new_current_thread()
            .max_blocking_threads(WEB_THREADS)
            .thread_name("pm-web")
            .on_thread_start(crate::priority::idle_thread)
            .build()
            .map_err(|e| tracing::warn!(error = %e, "no pool of web threads; using the runtime's"))
            .ok()
    });
    match pool {
        Some(rt) => rt.handle().spawn_blocking(f),
        None => tokio::task::spawn_blocking(f),
    }
}

fn html(body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

async fn index(State(ctx): State<Arc<ServeCtx>>, Query(q): Query<ListQuery>) -> Response {
    let c = ctx.clone();
    let Some(r) = blocking(move || report(&c)).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let period = pages::list_period(&q);
    let figures = if period > 0 {
        super::charts::kept(&ctx, period, false).await
    } else {
        None
    };
    // Sorted, read and rendered off the async threads.
    let c = ctx.clone();
    let body = blocking(move || {
        let view = pages::ListView::of(&r, &q, figures.as_deref().map(Vec::as_slice));
        let ids: Vec<&str> = view.rows.iter().map(|o| o.id.as_str()).collect();
        let sparks = super::spark::for_ids(&c, &ids);
        if q.fragment.as_deref() == Some("rows") {
            pages::rows(&view, &sparks)
        } else {
            pages::index(&r, &view, &sparks, &q, c.fleet.is_some(), &c.prefix)
        }
    })
    .await;
    match body {
        Some(b) => html(b),
        None => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// Query of `/order/<id>` and `/graph/<id>`.
#[derive(Debug, Default, Deserialize)]
pub struct RangeQuery {
    /// Seconds back from now.
    pub range: Option<i64>,
    /// Unix start.
    pub start: Option<String>,
    /// Unix end.
    pub end: Option<String>,
    /// Image width.
    pub width: Option<u32>,
    /// Image height.
    pub height: Option<u32>,
    /// `csv`: the series as CSV.
    pub format: Option<String>,
}

/// `1796000000` or `2026-11-30T04:00` (UTC, as an `<input
/// type=datetime-local>` sends it).
pub fn parse_time(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(t) = s.parse::<i64>() {
        return Some(t);
    }
    let (date, time) = s.split_once(['T', ' '])?;
    let mut d = date.split('-').map(|x| x.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.split(':').map(|x| x.parse::<i64>().ok());
    let (h, min) = (t.next()??, t.next()??);
    let sec = t.next().flatten().unwrap_or(0);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || h > 23 || min > 59 || sec > 59 {
        return None;
    }
    // Days from the civil date (proleptic Gregorian).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + min * 60 + sec)
}

/// The time span a request asks for: `(start, end)`, checked.
fn span(q: &RangeQuery, now: i64, default: i64) -> Option<(i64, i64)> {
    let (start, end) = match (&q.start, &q.end) {
        (Some(s), Some(e)) => (parse_time(s)?, parse_time(e)?),
        (None, None) => {
            let range = q.range.unwrap_or(default);
            // Quantised, so that graphs of the last N hours are shared.
            let end = now - now.rem_euclid(60);
            (end - range, end)
        }
        _ => return None,
    };
    let ok = end - start >= 60 && end - start <= 800 * 86_400 && start > 0;
    ok.then_some((start, end))
}

fn now() -> i64 {
    crate::clock::unix_s()
}

async fn order_page(
    State(ctx): State<Arc<ServeCtx>>,
    uri: Uri,
    UrlPath(id): UrlPath<String>,
    Query(q): Query<RangeQuery>,
) -> Response {
    let Some(id) = checked_id(&uri, &id) else {
        return not_found();
    };
    let zoom = match (&q.start, &q.end) {
        (None, None) => None,
        _ => match span(&q, now(), 0) {
            Some(s) => Some(s),
            None => return (StatusCode::BAD_REQUEST, "bad start or end\n").into_response(),
        },
    };
    let c = ctx.clone();
    let page = blocking(move || {
        let path = order_file(&c, &id)?;
        let parsed = crate::order::read_order_file(&path, &id).ok()?;
        let mut order = parsed.order;
        crate::order::merge_sidecar(&mut order, &c.base.telegraf);
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let last = output_file(&c, &id, crate::store::last_result::FILE)
            .and_then(|p| std::fs::read_to_string(p).ok());
        let rrd = output_file(&c, &id, RRD_FILE);
        let has_rrd = rrd.is_some();
        // The last rounds, newest first.
        let mut rounds: Vec<crate::graph::SeriesRow> = rrd
            .and_then(|p| {
                // The last 60 steps at the order's step: its rounds, not a
                // consolidation (a longer span could make librrd pick a
                // coarser archive that covers it).
                let end = now();
                let span = 60 * i64::from(order.step.max(1));
                crate::graph::series(&p, end - span, end, 60).ok()
            })
            .map(|s| s.rows)
            .unwrap_or_default();
        rounds.retain(|r| r.median.is_some() || r.loss.is_some());
        rounds.reverse();
        rounds.truncate(LAST_ROUNDS);
        let spread = match &c.daemon {
            Some(d) => latest_stats(
                d,
                id.as_str(),
                last.as_deref()
                    .and_then(crate::inspect::LastResult::parse)
                    .as_ref(),
            ),
            None => (None, None),
        };
        Some(pages::order(
            &order,
            &text,
            last.as_deref(),
            spread,
            &pages::OrderRrd {
                present: has_rrd,
                zoom,
                rounds: &rounds,
            },
            &c.prefix,
        ))
    })
    .await
    .flatten();
    match page {
        Some(p) => html(p),
        None => not_found(),
    }
}

async fn graph(
    State(ctx): State<Arc<ServeCtx>>,
    uri: Uri,
    UrlPath(id): UrlPath<String>,
    Query(q): Query<RangeQuery>,
) -> Response {
    let Some(id) = checked_id(&uri, &id) else {
        return not_found();
    };
    draw_graph(ctx, id, q, false).await
}

/// `/archive/graph/<id>`: an archived order's graph.
pub async fn archive_graph(
    State(ctx): State<Arc<ServeCtx>>,
    uri: Uri,
    UrlPath(id): UrlPath<String>,
    Query(q): Query<RangeQuery>,
) -> Response {
    let Some(id) = checked_id(&uri, &id) else {
        return not_found();
    };
    draw_graph(ctx, id, q, true).await
}

/// The graph of `id`'s `main.rrd` in `output/`, or in `archive/`.
async fn draw_graph(ctx: Arc<ServeCtx>, id: OrderId, q: RangeQuery, archived: bool) -> Response {
    let Some((start, end)) = span(&q, now(), RANGES[1].0) else {
        return (StatusCode::BAD_REQUEST, "bad range, start or end\n").into_response();
    };
    let width = q.width.unwrap_or(800).clamp(300, 2000);
    let height = q.height.unwrap_or(260).clamp(120, 1000);
    // Archived graphs are kept apart (no order id has a control character).
    let name = if archived {
        format!("\u{1}{id}")
    } else {
        id.as_str().to_owned()
    };
    let key: GraphKey = (name, start, end, width, height);
    if let Some(g) = cached_graph(&ctx, &key) {
        return graph_response(&g);
    }
    let Ok(_permit) = ctx.web.graph_permits.acquire().await else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    // Another request may have drawn it while this one waited.
    if let Some(g) = cached_graph(&ctx, &key) {
        return graph_response(&g);
    }
    let c = ctx.clone();
    let drawn = blocking(move || {
        let rrd = if archived {
            archive_file(&c, &id, RRD_FILE)?
        } else {
            output_file(&c, &id, RRD_FILE)?
        };
        if let Some(addr) = &c.rrdcached {
            if let Err(e) = crate::store::rrdcached::flush_one(addr, &rrd) {
                tracing::debug!(error = %e, "graph drawn without flushing rrdcached");
            }
        }
        let title = format!("{id}");
        let at = |t: i64| UNIX_EPOCH + Duration::from_secs(t.max(0) as u64);
        let (png, area) =
            crate::graph::render_area(&rrd, &title, at(start), at(end), width, height).ok()?;
        let g = Arc::new(Graph { png, area, width });
        let mut cache = lock(&c.web.graphs);
        cache.retain(|_, (t, _)| t.elapsed() < GRAPH_TTL);
        if cache.len() >= GRAPH_CACHE {
            if let Some(oldest) = cache
                .iter()
                .min_by_key(|(_, (t, _))| *t)
                .map(|(k, _)| k.clone())
            {
                cache.remove(&oldest);
            }
        }
        cache.insert(key, (Instant::now(), g.clone()));
        Some(g)
    })
    .await
    .flatten();
    match drawn {
        Some(g) => graph_response(&g),
        None => not_found(),
    }
}

fn cached_graph(ctx: &ServeCtx, key: &GraphKey) -> Option<Arc<Graph>> {
    let cache = lock(&ctx.web.graphs);
    cache
        .get(key)
        .filter(|(t, _)| t.elapsed() < GRAPH_TTL)
        .map(|(_, g)| g.clone())
}

fn graph_response(g: &Graph) -> Response {
    let n = |v: i64| HeaderValue::from_str(&v.to_string()).unwrap_or(HeaderValue::from_static("0"));
    let mut res = (
        [
            (header::CONTENT_TYPE, "image/png"),
            (header::CACHE_CONTROL, "max-age=60"),
        ],
        g.png.clone(),
    )
        .into_response();
    let h = res.headers_mut();
    h.insert("x-graph-left", n(g.area.left as i64));
    h.insert("x-graph-top", n(g.area.top as i64));
    h.insert("x-graph-width", n(g.area.width as i64));
    h.insert("x-graph-height", n(g.area.height as i64));
    h.insert("x-graph-start", n(g.area.start));
    h.insert("x-graph-end", n(g.area.end));
    h.insert("x-graph-image-width", n(i64::from(g.width)));
    res
}

/// Query of `/api/v1/orders`.
#[derive(Debug, Default, Deserialize)]
pub struct ApiQuery {
    /// Only this user's orders.
    pub user: Option<String>,
    /// Only ids starting with this.
    pub prefix: Option<String>,
}

fn json<T: serde::Serialize>(v: &T) -> Response {
    match serde_json::to_vec(v) {
        Ok(body) => (
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            body,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn api_orders(State(ctx): State<Arc<ServeCtx>>, Query(q): Query<ApiQuery>) -> Response {
    let c = ctx.clone();
    let Some(r) = blocking(move || report(&c)).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    if q.user.is_none() && q.prefix.is_none() {
        // 100,000 orders are tens of megabytes of JSON: written off the
        // async threads.
        return match blocking(move || json(&*r)).await {
            Some(resp) => resp,
            None => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        };
    }
    let keep = |id: &str| q.prefix.as_deref().is_none_or(|p| id.starts_with(p));
    let filtered = serde_json::json!({
        "now": r.now,
        "orders": r.orders.iter()
            .filter(|o| keep(&o.id) && q.user.as_deref().is_none_or(|u| u == o.user))
            .collect::<Vec<_>>(),
        "invalid": if q.user.is_none() { r.invalid.iter().filter(|i| keep(&i.id)).collect::<Vec<_>>() } else { Vec::new() },
        "rejected": if q.user.is_none() { r.rejected.iter().filter(|i| keep(&i.id)).collect::<Vec<_>>() } else { Vec::new() },
        "archived": r.archived,
    });
    json(&filtered)
}

async fn api_order(
    State(ctx): State<Arc<ServeCtx>>,
    uri: Uri,
    UrlPath(id): UrlPath<String>,
    Query(q): Query<RangeQuery>,
) -> Response {
    let Some(id) = checked_id(&uri, &id) else {
        return not_found();
    };
    let c = ctx.clone();
    let Some(r) = blocking(move || report(&c)).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    if let Some(o) = r.orders.iter().find(|o| o.id == id.as_str()) {
        return json(o);
    }
    // `<id>/series`: the order's rounds (an order whose own id ends so
    // is its status above).
    let Some(series_of) = id
        .as_str()
        .strip_suffix("/series")
        .and_then(|i| OrderId::new(i).ok())
    else {
        return not_found();
    };
    if !r.orders.iter().any(|o| o.id == series_of.as_str()) {
        return not_found();
    }
    let Some((start, end)) = span(&q, now(), RANGES[0].0) else {
        return (StatusCode::BAD_REQUEST, "bad range, start or end\n").into_response();
    };
    let points = q.width.unwrap_or(800).clamp(50, 4000);
    let c = ctx.clone();
    let rows = blocking(move || {
        let rrd = output_file(&c, &series_of, RRD_FILE)?;
        if let Some(addr) = &c.rrdcached {
            if let Err(e) = crate::store::rrdcached::flush_one(addr, &rrd) {
                tracing::debug!(error = %e, "series read without flushing rrdcached");
            }
        }
        Some(
            crate::graph::series(&rrd, start, end, points)
                .map(|s| (series_of, s))
                .map_err(|e| e.to_string()),
        )
    })
    .await
    .flatten();
    match rows {
        Some(Ok((_, s))) if q.format.as_deref() == Some("csv") => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            series_csv(&s),
        )
            .into_response(),
        Some(Ok((id, s))) => json(&serde_json::json!({
            "id": id.as_str(),
            "start": s.start,
            "end": s.end,
            "resolution": s.resolution,
            "pings": s.pings,
            "rows": s.rows,
        })),
        Some(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
        None => not_found(),
    }
}

/// The series as CSV: a header, then a row per RRD row; RTTs in ms,
/// loss 0 to 1, unknown values empty.
fn series_csv(s: &crate::graph::Series) -> String {
    use std::fmt::Write as _;
    let mut out = String::from("time,lost,loss,median_ms");
    for i in 1..=s.pings {
        let _ = write!(out, ",ping{i}_ms");
    }
    out.push('\n');
    let v = |x: Option<f64>, k: f64| x.map(|x| format!("{}", x * k)).unwrap_or_default();
    for r in &s.rows {
        let _ = write!(
            out,
            "{},{},{},{}",
            r.time,
            v(r.lost, 1.0),
            v(r.loss, 1.0),
            v(r.median, 1000.0)
        );
        for p in &r.pings {
            let _ = write!(out, ",{}", v(*p, 1000.0));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_unix_or_utc_dates() {
        assert_eq!(parse_time("1796000000"), Some(1_796_000_000));
        assert_eq!(parse_time("1970-01-01T00:00"), Some(0));
        assert_eq!(parse_time("2026-11-30T04:00"), Some(1_796_011_200));
        assert_eq!(parse_time("2000-02-29 12:30:15"), Some(951_827_415));
        for bad in [
            "",
            "x",
            "2026-13-01T00:00",
            "2026-11-30",
            "2026-11-30T25:00",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn spans_are_checked() {
        let q = |start: Option<&str>, end: Option<&str>, range: Option<i64>| RangeQuery {
            range,
            start: start.map(str::to_owned),
            end: end.map(str::to_owned),
            width: None,
            height: None,
            format: None,
        };
        assert_eq!(
            span(&q(None, None, Some(3600)), 1_000_030, 60),
            Some((996_420, 1_000_020))
        );
        assert_eq!(
            span(&q(Some("1000"), Some("5000"), None), 0, 60),
            Some((1000, 5000))
        );
        assert_eq!(span(&q(Some("5000"), Some("1000"), None), 0, 60), None);
        assert_eq!(span(&q(Some("1000"), None, None), 0, 60), None);
        assert_eq!(
            span(&q(Some("1000"), Some("1030"), None), 0, 60),
            None,
            "under a minute"
        );
    }

    #[test]
    fn encoded_slashes_and_traversal_are_not_ids() {
        let uri = |s: &str| s.parse::<Uri>().unwrap();
        assert!(checked_id(&uri("/order/app/t1"), "app/t1").is_some());
        assert!(checked_id(&uri("/order/app%2Ft1"), "app/t1").is_none());
        assert!(checked_id(&uri("/order/a/../b"), "a/../b").is_none());
        assert!(checked_id(&uri("/order//etc/passwd"), "/etc/passwd").is_none());
        assert!(checked_id(&uri("/order/a%5cb"), "a\\b").is_none());
        assert!(checked_id(&uri("/order/.hidden"), ".hidden").is_none());
    }
}
