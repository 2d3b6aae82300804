//! The HTTP server (`--listen`, and `pingmachine serve`): `/metrics` for
//! Prometheus (the text format, or OpenMetrics when the scraper asks for
//! it), `/-/healthy`, `/-/ready`, and the web page (`crate::web`). In the
//! daemon it runs on the daemon's runtime; scrapes, pages and graphs are
//! rendered on blocking threads, so they never delay probing. Anything
//! else is 404. `pingmachine serve` has the page without probing (no
//! `/metrics`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio_util::sync::CancellationToken;

use super::ctx::ServeCtx;

use crate::telemetry::Exposition;

/// Why `--listen` is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListenError {
    /// Neither `PORT` nor `ADDR:PORT`.
    #[error("{0:?}: expected PORT (loopback), or ADDRESS:PORT with an IP address ([ADDR]:PORT for IPv6)")]
    Syntax(String),
    /// Port 0.
    #[error("{0:?}: the port is a number from 1 to 65535")]
    Port(String),
}

/// Parses `--listen [ADDR:]PORT`: a bare port binds loopback only; any
/// other address must be named (`0.0.0.0:9374`, `[::]:9374`).
pub fn parse_listen(s: &str) -> Result<SocketAddr, ListenError> {
    let t = s.trim();
    let addr = if let Ok(port) = t.parse::<u16>() {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
    } else {
        t.parse::<SocketAddr>()
            .map_err(|_| ListenError::Syntax(s.to_owned()))?
    };
    if addr.port() == 0 {
        return Err(ListenError::Port(s.to_owned()));
    }
    Ok(addr)
}

/// Binds `addr` (before privileges are dropped), with a clear error when
/// the port is taken or not allowed.
pub fn bind(addr: SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    let l = std::net::TcpListener::bind(addr).map_err(|e| match e.kind() {
        std::io::ErrorKind::AddrInUse => {
            anyhow::anyhow!("--listen {addr}: the port is already in use ({e})")
        }
        _ => anyhow::anyhow!("--listen {addr}: cannot listen: {e}"),
    })?;
    l.set_nonblocking(true)
        .map_err(|e| anyhow::anyhow!("--listen {addr}: {e}"))?;
    Ok(l)
}

/// Serves on `listener` until `cancel` fires.
pub async fn run(
    listener: std::net::TcpListener,
    ctx: Arc<ServeCtx>,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    // Parse every order file once now, so the first page is not the one
    // that pays for it.
    {
        let ctx = ctx.clone();
        tokio::task::spawn_blocking(move || super::site::warm_up(&ctx));
    }
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/-/healthy", get(healthy))
        .route("/-/ready", get(ready))
        .merge(super::site::routes())
        .fallback(not_found)
        .layer(axum::middleware::map_response(
            super::site::defensive_headers,
        ))
        .with_state(ctx);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { cancel.cancelled().await })
        .await
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

async fn healthy() -> Response {
    (StatusCode::OK, "pingmachine is healthy.\n").into_response()
}

async fn ready(State(ctx): State<Arc<ServeCtx>>) -> Response {
    let ready = ctx
        .daemon
        .as_ref()
        .is_none_or(|d| d.jobs.initial_scan_ms.load(Ordering::Relaxed) > 0);
    if ready {
        (StatusCode::OK, "pingmachine is ready.\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "pingmachine is loading its orders.\n",
        )
            .into_response()
    }
}

/// True when the scraper prefers OpenMetrics.
fn wants_openmetrics(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"))
}

async fn metrics(State(ctx): State<Arc<ServeCtx>>, headers: HeaderMap) -> Response {
    if ctx.daemon.is_none() {
        return not_found().await;
    }
    let open_metrics = wants_openmetrics(&headers);
    let rendered = tokio::task::spawn_blocking(move || render(&ctx, open_metrics)).await;
    match rendered {
        Ok(Some((content_type, body))) => {
            ([(header::CONTENT_TYPE, content_type)], body).into_response()
        }
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "rendering failed\n").into_response(),
    }
}

/// The whole scrape (`None` without a daemon).
pub fn render(ctx: &ServeCtx, open_metrics: bool) -> Option<(&'static str, String)> {
    let d = ctx.daemon.as_ref()?;
    let mut out = Exposition::new(open_metrics);
    d.expose(&mut out, ctx.dir_counts.get(&ctx.base));
    let ct = out.content_type();
    Some((ct, out.finish()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses() {
        assert_eq!(
            parse_listen("9374").unwrap(),
            "127.0.0.1:9374".parse().unwrap()
        );
        assert_eq!(
            parse_listen("0.0.0.0:80").unwrap(),
            "0.0.0.0:80".parse().unwrap()
        );
        assert_eq!(
            parse_listen("[::1]:9374").unwrap(),
            "[::1]:9374".parse().unwrap()
        );
        for bad in ["", "localhost:9374", "::1:9374", "99999", "1.2.3.4", "x:1"] {
            assert!(
                matches!(parse_listen(bad), Err(ListenError::Syntax(_))),
                "{bad}"
            );
        }
        assert!(matches!(parse_listen("0"), Err(ListenError::Port(_))));
        assert!(matches!(
            parse_listen("127.0.0.1:0"),
            Err(ListenError::Port(_))
        ));
    }

    #[test]
    fn a_taken_port_is_a_clear_error() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let e = bind(l.local_addr().unwrap()).unwrap_err().to_string();
        assert!(e.contains("already in use"), "{e}");
    }
}
