//! [`HttpUrl`]: an `http://` or `https://` URL as the HTTP client will use
//! it. It is parsed once, with the same parser and rules as the client
//! (reqwest's `Url`, the WHATWG URL standard), so an order is refused when
//! the client would refuse its URL on every request.

use std::fmt;

use reqwest::Url;

/// A checked HTTP(S) URL, with the text the order gave (shown to operators
/// unchanged) and its parsed form (used for requests).
#[derive(Clone)]
pub struct HttpUrl {
    text: String,
    url: Url,
}

/// Why a URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Not `http://` or `https://`.
    #[error("expected an http:// or https:// URL")]
    Scheme,
    /// White space or control characters, which the parser would silently
    /// remove.
    #[error("a URL contains no white space or control characters")]
    Whitespace,
    /// `http://` or `http://:80/`.
    #[error("the URL has no host")]
    NoHost,
    /// A port outside 1-65535.
    #[error("the port is not a number from 1 to 65535")]
    Port,
    /// Anything else the parser refuses.
    #[error("not a valid URL: {0}")]
    Invalid(url::ParseError),
}

impl HttpUrl {
    /// Checks `text`.
    pub fn parse(text: &str) -> Result<HttpUrl, UrlError> {
        if !(text.starts_with("http://") || text.starts_with("https://")) {
            return Err(UrlError::Scheme);
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(UrlError::Whitespace);
        }
        let url = Url::parse(text).map_err(|e| match e {
            url::ParseError::EmptyHost => UrlError::NoHost,
            url::ParseError::InvalidPort => UrlError::Port,
            other => UrlError::Invalid(other),
        })?;
        if url.host_str().is_none_or(str::is_empty) {
            return Err(UrlError::NoHost);
        }
        if url.port() == Some(0) {
            return Err(UrlError::Port);
        }
        Ok(HttpUrl {
            text: text.to_owned(),
            url,
        })
    }

    /// The URL as the order wrote it.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The parsed URL.
    pub fn url(&self) -> &Url {
        &self.url
    }
}

impl PartialEq for HttpUrl {
    fn eq(&self, other: &HttpUrl) -> bool {
        self.text == other.text
    }
}

impl Eq for HttpUrl {}

impl fmt::Debug for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.text, f)
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl PartialEq<&str> for HttpUrl {
    fn eq(&self, other: &&str) -> bool {
        self.text == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_what_the_client_accepts() {
        for ok in [
            "http://example.com/",
            "https://example.com:8443/x?y=1#z",
            "http://user:pw@10.0.0.1:8080",
            "http://[::1]:80/",
            "http://h:65535/",
        ] {
            let u = HttpUrl::parse(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
            assert_eq!(u.as_str(), ok, "shown as written");
        }
    }

    #[test]
    fn refuses_what_the_client_refuses() {
        let cases: &[(&str, UrlError)] = &[
            ("ftp://x", UrlError::Scheme),
            ("example.com", UrlError::Scheme),
            ("http://", UrlError::NoHost),
            ("http://:80/", UrlError::NoHost),
            ("http://h:99999/", UrlError::Port),
            ("http://h:0/", UrlError::Port),
            ("http://h:8o/", UrlError::Port),
            ("http://a b/", UrlError::Whitespace),
            ("http://ab/\t", UrlError::Whitespace),
        ];
        for (text, want) in cases {
            assert_eq!(HttpUrl::parse(text).err().as_ref(), Some(want), "{text}");
        }
        assert!(matches!(
            HttpUrl::parse("http://[::1/"),
            Err(UrlError::Invalid(_))
        ));
    }
}
