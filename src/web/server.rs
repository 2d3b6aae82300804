//! The HTTP server (`--listen`, and `pingmachine serve`): `/metrics` for
//! Prometheus (the text format, or OpenMetrics when the scraper asks for
//! it), `/-/healthy`, `/-/ready`, and the web page (`crate::web`). In the
//! daemon it runs on the daemon's runtime; scrapes, pages and graphs are
//! rendered on blocking threads, so they never delay probing. Anything
//! else is 404. `pingmachine serve` has the page without probing (no
//! `/metrics`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
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
    /// None of the forms.
    #[error("{0:?}: expected PORT (loopback), :PORT (every interface), HOST:PORT, or an IP address with its port ([ADDR]:PORT for IPv6)")]
    Syntax(String),
    /// Port 0.
    #[error("{0:?}: the port is a number from 1 to 65535")]
    Port(String),
    /// A host name that does not resolve.
    #[error("{0:?}: cannot resolve the host: {1}")]
    Resolve(String, String),
}

/// What one `--listen` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// Addresses to bind (a host name may have several).
    Addrs(Vec<SocketAddr>),
    /// `systemd`: the listening sockets the service manager passed
    /// (socket activation: `LISTEN_FDS`, `LISTEN_PID`).
    Systemd,
}

impl Listen {
    /// The addresses to bind (none for [`Listen::Systemd`]).
    pub fn addrs(&self) -> &[SocketAddr] {
        match self {
            Listen::Addrs(a) => a,
            Listen::Systemd => &[],
        }
    }
}

/// Parses `--listen`: `PORT` is loopback only (127.0.0.1); `:PORT` every
/// interface, IPv4 and IPv6 (as Go exporters read it); `HOST:PORT` every
/// address of a host name (`localhost:PORT`); an IP address with its port
/// (`0.0.0.0:PORT`, `[::1]:PORT`); `systemd` the sockets passed by socket
/// activation.
pub fn parse_listen(s: &str) -> Result<Listen, ListenError> {
    let t = s.trim();
    if t == "systemd" {
        return Ok(Listen::Systemd);
    }
    let syntax = || ListenError::Syntax(s.to_owned());
    let port_of = |p: &str| -> Result<u16, ListenError> {
        match p.parse::<u16>() {
            Ok(0) => Err(ListenError::Port(s.to_owned())),
            Ok(p) => Ok(p),
            Err(_) => Err(syntax()),
        }
    };
    let addrs = if let Ok(port) = t.parse::<u16>() {
        if port == 0 {
            return Err(ListenError::Port(s.to_owned()));
        }
        vec![SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)]
    } else if let Some(p) = t.strip_prefix(':') {
        vec![SocketAddr::new(
            IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            port_of(p)?,
        )]
    } else if let Ok(a) = t.parse::<SocketAddr>() {
        if a.port() == 0 {
            return Err(ListenError::Port(s.to_owned()));
        }
        vec![a]
    } else {
        let (host, port) = t.rsplit_once(':').ok_or_else(syntax)?;
        // An IPv6 address needs its brackets; a name has no white space.
        if host.is_empty() || host.contains([':', '[', ']']) || host.contains(char::is_whitespace) {
            return Err(syntax());
        }
        let port = port_of(port)?;
        let mut addrs: Vec<SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
            .map_err(|e| ListenError::Resolve(s.to_owned(), e.to_string()))?
            .collect();
        addrs.sort_unstable();
        addrs.dedup();
        if addrs.is_empty() {
            return Err(ListenError::Resolve(s.to_owned(), "no address".into()));
        }
        addrs
    };
    Ok(Listen::Addrs(addrs))
}

/// Binds `addr` (before privileges are dropped), with a clear error when
/// the port is taken or not allowed. Every interface (`[::]`) falls back
/// to IPv4's `0.0.0.0` where IPv6 is off.
pub fn bind(addr: SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    let bound = std::net::TcpListener::bind(addr).or_else(|e| {
        if addr.ip() == IpAddr::V6(Ipv6Addr::UNSPECIFIED)
            && e.kind() != std::io::ErrorKind::AddrInUse
        {
            std::net::TcpListener::bind(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                addr.port(),
            ))
        } else {
            Err(e)
        }
    });
    let l = bound.map_err(|e| match e.kind() {
        std::io::ErrorKind::AddrInUse => {
            anyhow::anyhow!("--listen {addr}: the port is already in use ({e})")
        }
        _ => anyhow::anyhow!("--listen {addr}: cannot listen: {e}"),
    })?;
    l.set_nonblocking(true)
        .map_err(|e| anyhow::anyhow!("--listen {addr}: {e}"))?;
    Ok(l)
}

/// Binds every address of every `--listen`, and takes the sockets of
/// socket activation when `--listen systemd` is among them.
pub fn bind_all(listen: &[Listen]) -> anyhow::Result<Vec<std::net::TcpListener>> {
    let mut out: Vec<std::net::TcpListener> = listen
        .iter()
        .flat_map(Listen::addrs)
        .map(|a| bind(*a))
        .collect::<anyhow::Result<_>>()?;
    if listen.contains(&Listen::Systemd) {
        out.extend(activated(listenfd::ListenFd::from_env())?);
    }
    Ok(out)
}

/// The listening TCP sockets passed by socket activation: every one of
/// them, or an error that says what is missing or wrong.
fn activated(mut fds: listenfd::ListenFd) -> anyhow::Result<Vec<std::net::TcpListener>> {
    let n = fds.len();
    if n == 0 {
        anyhow::bail!(
            "--listen systemd: no socket was passed (LISTEN_FDS and LISTEN_PID are not set \
             for this process); start it from a systemd .socket unit, or bind an address instead"
        );
    }
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let fd = 3 + i;
        let l = fds
            .take_tcp_listener(i)
            .map_err(|e| anyhow::anyhow!("--listen systemd: socket {fd}: {e}"))?
            .ok_or_else(|| anyhow::anyhow!("--listen systemd: socket {fd} was already taken"))?;
        let listening = nix::sys::socket::getsockopt(&l, nix::sys::socket::sockopt::AcceptConn)
            .map_err(|e| anyhow::anyhow!("--listen systemd: socket {fd}: {e}"))?;
        if !listening {
            anyhow::bail!(
                "--listen systemd: socket {fd} is not listening (the unit needs Accept=no)"
            );
        }
        l.set_nonblocking(true)
            .map_err(|e| anyhow::anyhow!("--listen systemd: socket {fd}: {e}"))?;
        out.push(l);
    }
    Ok(out)
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
        super::site::background(move || super::site::warm_up(&ctx));
    }
    let access = ctx.access.clone();
    let web_config = ctx.access.clone();
    let prefix = ctx.prefix.clone();
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/-/healthy", get(healthy))
        .route("/-/ready", get(ready))
        .merge(super::site::routes())
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            access,
            super::access::require,
        ))
        .layer(axum::middleware::map_response(
            super::site::defensive_headers,
        ))
        .with_state(ctx);
    // Under a prefix, the path is cut before routing; anything outside
    // it is 404.
    let app = tower::ServiceExt::map_request(app, move |req| under_prefix(&prefix, req));
    let app = axum::ServiceExt::into_make_service(app);
    let stop = async move { cancel.cancelled().await };
    match &web_config.tls {
        Some(tls) => {
            axum::serve(tls.listener(listener)?, app)
                .with_graceful_shutdown(stop)
                .await
        }
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await
        }
    }
}

/// `req` with `prefix` cut from its path (`/p` and `/p/x` become `/` and
/// `/x`); a path outside the prefix goes to a path no route has.
fn under_prefix(prefix: &str, mut req: axum::extract::Request) -> axum::extract::Request {
    if prefix.is_empty() {
        return req;
    }
    let uri = req.uri();
    let path = uri.path();
    let rest = match path.strip_prefix(prefix) {
        Some("") => "/".to_owned(),
        Some(r) if r.starts_with('/') => r.to_owned(),
        _ => "/-/outside-the-route-prefix".to_owned(),
    };
    let pq = match uri.query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest,
    };
    let mut parts = uri.clone().into_parts();
    if let Ok(p) = pq.parse() {
        parts.path_and_query = Some(p);
    }
    if let Ok(u) = axum::http::Uri::from_parts(parts) {
        *req.uri_mut() = u;
    }
    req
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
    let rendered = super::site::background(move || render(&ctx, open_metrics)).await;
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
        let one = |s: &str| parse_listen(s).unwrap().addrs().to_vec();
        assert_eq!(one("9374"), ["127.0.0.1:9374".parse().unwrap()]);
        assert_eq!(one("0.0.0.0:80"), ["0.0.0.0:80".parse().unwrap()]);
        assert_eq!(one("[::1]:9374"), ["[::1]:9374".parse().unwrap()]);
        assert_eq!(one(":9374"), ["[::]:9374".parse().unwrap()]);
        let local = one("localhost:9374");
        assert!(
            !local.is_empty()
                && local
                    .iter()
                    .all(|a| a.ip().is_loopback() && a.port() == 9374),
            "{local:?}"
        );
        for bad in [
            "", "::1:9374", "99999", "1.2.3.4", "x y:1", ":", ":x", "[::1]",
        ] {
            assert!(
                matches!(parse_listen(bad), Err(ListenError::Syntax(_))),
                "{bad}"
            );
        }
        assert_eq!(parse_listen(" systemd "), Ok(Listen::Systemd));
        assert!(matches!(parse_listen("0"), Err(ListenError::Port(_))));
        assert!(matches!(parse_listen(":0"), Err(ListenError::Port(_))));
        assert!(matches!(
            parse_listen("127.0.0.1:0"),
            Err(ListenError::Port(_))
        ));
    }

    #[test]
    fn socket_activation_without_sockets_is_a_clear_error() {
        let e = activated(listenfd::ListenFd::empty())
            .unwrap_err()
            .to_string();
        assert!(e.contains("no socket was passed"), "{e}");
    }

    #[test]
    fn a_taken_port_is_a_clear_error() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let e = bind(l.local_addr().unwrap()).unwrap_err().to_string();
        assert!(e.contains("already in use"), "{e}");
    }
}
