//! `probe: httping` — HTTP(S) request round trips, like `httping`: a series
//! of `pings` HEAD (or GET) requests `interval` seconds apart, each bounded
//! by the HTTP timeout and the round's deadline.

use serde_yaml_ng::Value;

use super::{bounded, Probe, Probed, RoundCx};
use crate::schedule;
use crate::spec::fields::{scalar_text, Section};
use crate::spec::{HttpUrl, OrderError};

/// The `httping:` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpingSpec {
    /// `http://` or `https://` URL, checked as the HTTP client checks it.
    pub url: HttpUrl,
    /// Seconds between two requests (default 1).
    pub interval_s: u32,
    /// `User-Agent` header.
    pub user_agent: Option<String>,
    /// Proxy URL.
    pub proxy: Option<HttpUrl>,
    /// HTTP status codes that count as a lost ping.
    pub http_codes_as_failure: Vec<u16>,
    /// Request method (default HEAD).
    pub method: HttpMethod,
}

/// `httping.method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum HttpMethod {
    /// HEAD (default): no body.
    #[default]
    Head,
    /// GET: the whole body is read.
    Get,
}

impl Probe for HttpingSpec {
    fn parse(s: &Section<'_>, step: u32, pings: u32) -> Result<Self, OrderError> {
        let url = s.req_string("url")?;
        let url = HttpUrl::parse(&url).map_err(|why| s.err("url", why.to_string()))?;
        let interval_s = s
            .opt_uint("interval", 1, schedule::MAX_HTTP_INTERVAL_S)?
            .unwrap_or(1);
        // The last request must start within the step; a request's timeout
        // is cut short at the next round's start.
        if let Err(last) = schedule::httping_fit(step, pings, interval_s) {
            return Err(s.err(
                "interval",
                format!(
                    "the last request ((pings-1) * interval = {last} s) must start within the step ({step} s)"
                ),
            ));
        }
        let method = match s
            .opt_string("method")?
            .map(|m| m.to_ascii_uppercase())
            .as_deref()
        {
            None | Some("HEAD") => HttpMethod::Head,
            Some("GET") => HttpMethod::Get,
            Some(_) => return Err(s.err("method", "expected HEAD or GET")),
        };
        let user_agent = s.opt_string("user_agent")?;
        if let Some(ua) = &user_agent {
            if ua.chars().any(char::is_control) {
                return Err(s.err("user_agent", "contains a control character"));
            }
        }
        let proxy = match s.opt_string("proxy")? {
            None => None,
            Some(p) => Some(HttpUrl::parse(&p).map_err(|why| s.err("proxy", why.to_string()))?),
        };
        let http_codes_as_failure = match s.get("http_codes_as_failure") {
            None | Some(Value::Null) => Vec::new(),
            Some(v) => parse_status_list(v)
                .map_err(|why| s.err_value("http_codes_as_failure", v, why.to_string()))?,
        };
        Ok(HttpingSpec {
            url,
            interval_s,
            user_agent,
            proxy,
            http_codes_as_failure,
            method,
        })
    }

    fn target(&self) -> String {
        self.url.as_str().to_owned()
    }

    fn label_host(&self) -> String {
        self.url.url().host_str().unwrap_or_default().to_owned()
    }

    async fn round<'a>(&'a self, cx: &'a RoundCx<'a>) -> Option<Probed> {
        let prober = match cx.deps.http(
            self.proxy.as_ref().map(HttpUrl::as_str),
            self.user_agent.as_deref(),
        ) {
            Ok(p) => p,
            Err(e) => {
                cx.deps
                    .warn_once(cx.id, &format!("httping: cannot build HTTP client: {e}"));
                return None;
            }
        };
        let method = match self.method {
            HttpMethod::Head => probes::http::Method::Head,
            HttpMethod::Get => probes::http::Method::Get,
        };
        let interval = std::time::Duration::from_secs(u64::from(self.interval_s));
        let rtts = probes::series(cx.pings, interval, || {
            let prober = prober.clone();
            async move {
                bounded(cx.deadline, schedule::HTTP_TIMEOUT, |_| async {
                    prober
                        .ping_url(self.url.url(), method, &self.http_codes_as_failure)
                        .await
                })
                .await
            }
        })
        .await;
        Some((self.url.as_str().to_owned(), rtts))
    }
}

/// Why `http_codes_as_failure` is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum StatusListError {
    #[error("list items are status codes")]
    Item,
    #[error("expected status codes like \"403,407,503\"")]
    Shape,
    #[error("{0:?} is not an HTTP status code (100-599)")]
    Code(String),
}

/// `403,407,503` (string), `403` (number) or `[403, 407]` (list).
fn parse_status_list(v: &Value) -> Result<Vec<u16>, StatusListError> {
    let items: Vec<String> = match v {
        Value::Sequence(seq) => seq
            .iter()
            .map(|x| scalar_text(x).ok_or(StatusListError::Item))
            .collect::<Result<_, _>>()?,
        other => scalar_text(other)
            .ok_or(StatusListError::Shape)?
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect(),
    };
    items
        .iter()
        .map(|s| match s.parse::<u16>() {
            Ok(code) if (100..=599).contains(&code) => Ok(code),
            _ => Err(StatusListError::Code(s.clone())),
        })
        .collect()
}
