//! The values an order file holds, and how one is read: an order's id
//! ([`OrderId`], its path relative to `orders/`), target hosts
//! ([`Host`]), interfaces, HTTP URLs, and [`fields`], the reader of one
//! YAML field whose errors ([`OrderError`]) name file, field, value and
//! rule. Below both `crate::order` (the whole order file) and
//! `crate::probe` (each probe's section), which both use it.
//!
//! * [`id`] — [`OrderId`] and [`Interface`].
//! * [`fields`] — reading one field: the helpers every rule uses.
//! * [`url`] — [`HttpUrl`], a URL checked as the HTTP client checks it.

pub mod fields;
pub mod id;
pub mod url;

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

pub use id::{Interface, OrderId};
pub use url::HttpUrl;

/// A target host: an IP literal or a DNS name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Host {
    /// An IPv4 or IPv6 literal.
    Ip(IpAddr),
    /// A syntactically valid DNS name, looked up again as its DNS TTL says
    /// (`crate::names`).
    Name(String),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Ip(ip) => write!(f, "{ip}"),
            Host::Name(n) => f.write_str(n),
        }
    }
}

/// Why an order file was not accepted: file, field, value and rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct OrderError {
    /// The order file.
    pub file: PathBuf,
    /// Dotted field path (`fping.host`), `None` for whole-file errors.
    pub field: Option<String>,
    /// The offending value, shortened, when there is one.
    pub value: Option<String>,
    /// The rule that was broken, in words.
    pub reason: String,
    /// 1-based line in the file, when known.
    pub line: Option<usize>,
}

impl fmt::Display for OrderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(field) = &self.field {
            write!(f, ": field `{field}`")?;
        }
        if let Some(value) = &self.value {
            write!(f, ": value {value:?}")?;
        }
        write!(f, ": {}", self.reason)
    }
}
