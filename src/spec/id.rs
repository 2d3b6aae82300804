//! [`OrderId`]: an order's path relative to `orders/`, checked so that it can
//! never name anything outside the base directory's trees; and [`Interface`],
//! a network interface name.

use std::fmt;
use std::path::{Component, Path, PathBuf};

/// Longest id accepted, in bytes (well below `PATH_MAX` once prefixed).
const MAX_ID_LEN: usize = 1024;

/// Why text or a path is not an order id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The path is not below the directory.
    #[error("{} is not below {}", path.display(), dir.display())]
    NotBelow {
        /// The path.
        path: PathBuf,
        /// The directory.
        dir: PathBuf,
    },
    /// A component is not UTF-8.
    #[error("{}: name is not UTF-8", .0.display())]
    NotUtf8(PathBuf),
    /// `..`, `.` or a root in the path.
    #[error("{}: not a plain relative path", .0.display())]
    NotPlain(PathBuf),
    /// Nothing.
    #[error("empty order id")]
    Empty,
    /// Too long.
    #[error("order id longer than {MAX_ID_LEN} bytes")]
    TooLong,
    /// Starts with `/`.
    #[error("order id {0:?} is absolute")]
    Absolute(String),
    /// An empty, `.` or `..` component.
    #[error("order id {0:?} has an empty, `.` or `..` component")]
    BadComponent(String),
    /// A control character.
    #[error("order id {0:?} contains a control character")]
    Control(String),
    /// A hidden or temporary name.
    #[error("order id {0:?} has a hidden or temporary name component")]
    Ignored(String),
}

/// The relative path of an order below `orders/` (`app1/target1`), using `/`.
///
/// Valid by construction: no empty, `.` or `..` components, no absolute path,
/// no control characters, no hidden or temporary file names (those are for
/// clients writing a file before renaming it into place).
///
/// Shared, not copied: the registry, the job and the writer hold the same
/// text (one allocation per order).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrderId(std::sync::Arc<str>);

impl OrderId {
    /// The id of the file at `path` below `orders_dir`, or why it has none.
    pub fn from_path(orders_dir: &Path, path: &Path) -> Result<OrderId, IdError> {
        let rel = path
            .strip_prefix(orders_dir)
            .map_err(|_| IdError::NotBelow {
                path: path.to_path_buf(),
                dir: orders_dir.to_path_buf(),
            })?;
        let mut parts = Vec::new();
        for comp in rel.components() {
            match comp {
                Component::Normal(s) => {
                    let s = s
                        .to_str()
                        .ok_or_else(|| IdError::NotUtf8(path.to_path_buf()))?;
                    parts.push(s);
                }
                _ => return Err(IdError::NotPlain(path.to_path_buf())),
            }
        }
        OrderId::new(&parts.join("/"))
    }

    /// Checks `s` (components separated by `/`).
    pub fn new(s: &str) -> Result<OrderId, IdError> {
        if s.is_empty() {
            return Err(IdError::Empty);
        }
        if s.len() > MAX_ID_LEN {
            return Err(IdError::TooLong);
        }
        if s.starts_with('/') {
            return Err(IdError::Absolute(s.to_owned()));
        }
        for part in s.split('/') {
            if part.is_empty() || part == "." || part == ".." {
                return Err(IdError::BadComponent(s.to_owned()));
            }
            if part.chars().any(char::is_control) {
                return Err(IdError::Control(s.to_owned()));
            }
            if is_ignored_name(part) {
                return Err(IdError::Ignored(s.to_owned()));
            }
        }
        Ok(OrderId(std::sync::Arc::from(s)))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `base/<id>` as a path (the id is already known to be safe).
    pub fn under(&self, base: &Path) -> PathBuf {
        let mut p = base.to_path_buf();
        for part in self.0.split('/') {
            p.push(part);
        }
        p
    }

    /// True for the old interface: a flat name of 32 hex digits (an md5).
    pub fn is_old_interface(&self) -> bool {
        self.0.len() == 32 && self.0.bytes().all(|b| b.is_ascii_hexdigit())
    }
}

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// File names that clients use while writing and that are never orders:
/// hidden files (`.name`), `*.tmp`, `*~`, `*.swp`.
pub fn is_ignored_name(name: &str) -> bool {
    name.starts_with('.') || name.ends_with(".tmp") || name.ends_with('~') || name.ends_with(".swp")
}

/// A network interface name, as Linux accepts it (1–15 bytes, no `/`,
/// whitespace or control characters).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Interface(String);

/// Why text is not an interface name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InterfaceError {
    /// Empty or longer than 15 bytes.
    #[error("an interface name has 1 to 15 characters")]
    Length,
    /// A character Linux does not allow.
    #[error("an interface name has no `/`, `:`, white space or control characters")]
    Character,
}

impl Interface {
    /// Checks `s`.
    pub fn new(s: &str) -> Result<Interface, InterfaceError> {
        if s.is_empty() || s.len() > 15 {
            return Err(InterfaceError::Length);
        }
        if s == "."
            || s == ".."
            || s.chars()
                .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
        {
            return Err(InterfaceError::Character);
        }
        Ok(Interface(s.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Interface {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_from_paths() {
        let base = Path::new("/b/orders");
        let id = OrderId::from_path(base, Path::new("/b/orders/app1/t1")).unwrap();
        assert_eq!(id.as_str(), "app1/t1");
        assert_eq!(
            id.under(Path::new("/b/output")),
            PathBuf::from("/b/output/app1/t1")
        );
        assert!(OrderId::from_path(base, Path::new("/b/other/x")).is_err());
    }

    #[test]
    fn bad_ids() {
        for bad in [
            "",
            "/abs",
            "a/../b",
            "..",
            "a//b",
            "a/./b",
            "a/\u{7}b",
            "a/.hidden",
            "x.tmp",
            "x~",
            "a/x.swp",
        ] {
            assert!(OrderId::new(bad).is_err(), "{bad:?} accepted");
        }
        assert!(OrderId::new(&"a".repeat(2000)).is_err());
    }

    #[test]
    fn old_interface_ids() {
        assert!(OrderId::new("6dd803dc5d29b72564467de7ddbfc695")
            .unwrap()
            .is_old_interface());
        assert!(!OrderId::new("app/6dd803dc5d29b72564467de7ddbfc695")
            .unwrap()
            .is_old_interface());
        assert!(!OrderId::new("target1").unwrap().is_old_interface());
    }

    #[test]
    fn interfaces() {
        assert!(Interface::new("eth0").is_ok());
        assert!(Interface::new("veth-pm.1").is_ok());
        for bad in ["", "abcdefghijklmnop", "a/b", "a b", "..", "a:1"] {
            assert!(Interface::new(bad).is_err(), "{bad:?} accepted");
        }
    }
}
