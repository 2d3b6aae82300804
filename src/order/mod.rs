//! Orders: what a client asked pingmachine to measure.
//!
//! An order file is YAML (see `docs/ORDERS.md` and `pingmachine-orders(5)`). This
//! module turns the bytes of one file into a validated [`Order`]: a value that
//! is correct by construction, so the rest of the daemon never re-checks it.
//! Every error names the file, the field, the offending value and the rule.
//!
//! * [`parse`] — YAML → [`Order`]: the top-level fields, then the probe's
//!   section, parsed by its module in `crate::probe`.
//!
//! The values an order holds (its id, hosts, interfaces, URLs) and the
//! reader of one field are `crate::spec`, below both this module and the
//! probes; they are re-exported here.

pub mod parse;

use std::collections::BTreeMap;
use std::path::Path;

pub use crate::spec::{fields, id, url, Host, HttpUrl, Interface, OrderError, OrderId};
pub use parse::{parse_order, parse_telegraf_sidecar, Parsed};

pub use crate::probe::{
    DnsSpec, ExecSpec, FpingSpec, HttpMethod, HttpingSpec, ProbeKind, ProbeSpec, ScionSpec,
    SshSpec, TcpSpec,
};

/// Reads and validates the order file at `path` with id `id`: at most
/// [`parse::MAX_ORDER_BYTES`] are read, so an oversized file is refused
/// without reading it whole. Used by the daemon and by `pingmachine check`.
pub fn read_order_file(path: &Path, id: &OrderId) -> Result<Parsed, OrderError> {
    use std::os::unix::fs::OpenOptionsExt;
    // O_NONBLOCK: a FIFO put here cannot block the reader.
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| file_error(path, "open", &e))?;
    let md = f.metadata().map_err(|e| file_error(path, "stat", &e))?;
    read_opened_order(path, id, f, &md)
}

/// Opens `path` for reading without following a symbolic link in its last
/// component (`ELOOP` then) and without blocking on a FIFO, and stats the
/// open file: what the registry does first for a file it has not seen.
pub fn open_order_nofollow(path: &Path) -> std::io::Result<(std::fs::File, std::fs::Metadata)> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOFOLLOW)
        .open(path)?;
    let md = f.metadata()?;
    Ok((f, md))
}

fn file_error(path: &Path, what: &str, e: &std::io::Error) -> OrderError {
    OrderError {
        file: path.to_path_buf(),
        field: None,
        value: None,
        reason: format!("cannot {what} file: {e}"),
        line: None,
    }
}

/// Reads and validates an order file already open as `f`, whose metadata
/// is `md` (see [`read_order_file`]).
pub fn read_opened_order(
    path: &Path,
    id: &OrderId,
    f: std::fs::File,
    md: &std::fs::Metadata,
) -> Result<Parsed, OrderError> {
    if !md.is_file() {
        return Err(OrderError {
            file: path.to_path_buf(),
            field: None,
            value: None,
            reason: "not a regular file".into(),
            line: None,
        });
    }
    let len = md.len();
    if len > parse::MAX_ORDER_BYTES as u64 {
        return Err(OrderError {
            file: path.to_path_buf(),
            field: None,
            value: None,
            reason: format!(
                "file is {len} bytes; orders are at most {} bytes",
                parse::MAX_ORDER_BYTES
            ),
            line: None,
        });
    }
    let buf = read_known_size(f, len, parse::MAX_ORDER_BYTES as u64 + 1)
        .map_err(|e| file_error(path, "read", &e))?;
    parse_order(path, id, &buf)
}

/// Reads a file whose size was `len` when it was stat'ed, at most `cap`
/// bytes: one `read` when the size still holds (a regular file's read
/// stops short only at its end, and a file rewritten meanwhile is
/// noticed and read again), more only when it grew.
fn read_known_size(mut f: std::fs::File, len: u64, cap: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let want = usize::try_from(len.saturating_add(1).min(cap)).unwrap_or(0);
    let mut buf = vec![0u8; want];
    let mut got = 0;
    while got < want {
        match f.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => {
                got += n;
                if got as u64 == len {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(got);
    if got == want && (got as u64) < cap {
        // It grew past its size: read on, up to the cap.
        f.take(cap - got as u64).read_to_end(&mut buf)?;
    }
    Ok(buf)
}

/// What an order's `telegraf/<id>` sidecar is.
#[derive(Debug)]
pub enum Sidecar {
    /// There is none.
    Absent,
    /// Its line-protocol settings.
    Meta(TelegrafMeta),
    /// It cannot be used (why).
    Broken(OrderError),
}

/// Reads the `telegraf/<id>` sidecar of order `id` below `telegraf_dir`,
/// for any id (the original read it for new-interface ids too). Only a
/// regular file (symlinks followed) of at most [`parse::MAX_ORDER_BYTES`]
/// is read.
pub fn read_sidecar(telegraf_dir: &Path, id: &OrderId) -> Sidecar {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let path = id.under(telegraf_dir);
    let broken = |reason: String| {
        Sidecar::Broken(OrderError {
            file: path.clone(),
            field: None,
            value: None,
            reason,
            line: None,
        })
    };
    let f = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Sidecar::Absent,
        Err(e) if e.raw_os_error() == Some(nix::libc::ENOTDIR) => return Sidecar::Absent,
        Err(e) => return broken(format!("cannot open file: {e}")),
    };
    match f.metadata() {
        Ok(md) if md.is_dir() => return Sidecar::Absent,
        Ok(md) if !md.is_file() => return broken("not a regular file".into()),
        Ok(md) if md.len() > parse::MAX_ORDER_BYTES as u64 => {
            return broken(format!(
                "file is {} bytes; at most {} are read",
                md.len(),
                parse::MAX_ORDER_BYTES
            ))
        }
        Ok(_) => {}
        Err(e) => return broken(format!("cannot stat file: {e}")),
    }
    let mut buf = Vec::new();
    if let Err(e) = f
        .take(parse::MAX_ORDER_BYTES as u64 + 1)
        .read_to_end(&mut buf)
    {
        return broken(format!("cannot read file: {e}"));
    }
    match parse_telegraf_sidecar(&path, &buf) {
        Ok(m) => Sidecar::Meta(m),
        Err(e) => Sidecar::Broken(e),
    }
}

/// How an order's line-protocol settings were decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaSource {
    /// From the order file, or none at all.
    Order,
    /// From the sidecar; the order file has none.
    Sidecar,
    /// From the sidecar, over the order file's own `measurement_name` or
    /// `tags`, which are ignored (the original read only the sidecar).
    SidecarOverOrder,
}

/// What [`merge_sidecar`] did.
#[derive(Debug)]
pub struct SidecarMerge {
    /// How the order's line-protocol settings were decided.
    pub source: MetaSource,
    /// Why the sidecar was not used, when it is broken.
    pub broken: Option<OrderError>,
}

/// Reads order `order`'s `telegraf/<id>` sidecar below `telegraf_dir` and
/// applies it ([`Order::apply_sidecar`]): the one merge used by the daemon
/// and the operator tools.
pub fn merge_sidecar(order: &mut Order, telegraf_dir: &Path) -> SidecarMerge {
    let sidecar = read_sidecar(telegraf_dir, &order.id);
    let source = order.apply_sidecar(&sidecar);
    SidecarMerge {
        source,
        broken: match sidecar {
            Sidecar::Broken(e) => Some(e),
            Sidecar::Absent | Sidecar::Meta(_) => None,
        },
    }
}

impl Order {
    /// Applies `sidecar` (see [`read_sidecar`]): a usable sidecar wins over
    /// the order's own settings. A broken one changes nothing.
    pub fn apply_sidecar(&mut self, sidecar: &Sidecar) -> MetaSource {
        match sidecar {
            Sidecar::Meta(m) => {
                let over = self.telegraf.is_some();
                self.telegraf = Some(Box::new(m.clone()));
                if over {
                    MetaSource::SidecarOverOrder
                } else {
                    MetaSource::Sidecar
                }
            }
            Sidecar::Absent | Sidecar::Broken(_) => MetaSource::Order,
        }
    }
}

/// A validated order.
#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    /// Path relative to `orders/`; names the output directory too.
    pub id: OrderId,
    /// Owner application (`user:`), used for grouping in `status`.
    pub user: String,
    /// Free text (`task:`).
    pub task: Option<String>,
    /// Seconds between rounds.
    pub step: u32,
    /// Probes sent per round.
    pub pings: u32,
    /// What to probe and how.
    pub probe: ProbeSpec,
    /// Whether a `main.rrd` is kept.
    pub rrd: RrdTemplate,
    /// Line-protocol metadata: from the order, or from its `telegraf/<id>`
    /// sidecar, which wins when both exist ([`Order::apply_sidecar`]).
    /// Boxed: most orders have none, and a million orders are in memory.
    pub telegraf: Option<Box<TelegrafMeta>>,
}

/// `rrd_template:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RrdTemplate {
    /// The default SmokePing layout of `main.rrd` (the original's rule).
    #[default]
    Smokeping,
    /// No RRD is written; `last_result` still is.
    NoRrd,
}

/// `measurement_name` and `tags` for the line-protocol output.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TelegrafMeta {
    /// Measurement name; `None` when only tags were given.
    pub measurement_name: Option<String>,
    /// Tag key → value, values converted from YAML scalars to strings.
    pub tags: BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A million orders are in memory at once: keep an order small.
    #[test]
    fn an_order_stays_small() {
        let size = std::mem::size_of::<Order>();
        assert!(size <= 184, "Order is {size} bytes");
    }

    #[test]
    fn reads_what_the_file_holds_even_when_its_size_changed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let read = |len: u64, cap: u64| read_known_size(std::fs::File::open(&p).unwrap(), len, cap);
        std::fs::write(&p, "").unwrap();
        assert!(read(0, 10).unwrap().is_empty());
        std::fs::write(&p, "abcdef").unwrap();
        assert_eq!(read(6, 100).unwrap(), b"abcdef");
        // Grew after the stat: read on to its end.
        assert_eq!(read(2, 100).unwrap(), b"abcdef");
        // Shrank after the stat: what is there.
        assert_eq!(read(60, 100).unwrap(), b"abcdef");
        // Never more than the cap.
        assert_eq!(read(2, 4).unwrap(), b"abcd");
        assert_eq!(read(6, 4).unwrap(), b"abcd");
    }

    #[test]
    fn open_nofollow_refuses_links_and_reads_files() {
        let dir = tempfile::tempdir().unwrap();
        let (f, l) = (dir.path().join("f"), dir.path().join("l"));
        let yaml = "user: u\nstep: 60\npings: 5\nprobe: fping\nfping: {host: 127.0.0.1}\n";
        std::fs::write(&f, yaml).unwrap();
        std::os::unix::fs::symlink(&f, &l).unwrap();
        let e = open_order_nofollow(&l).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(nix::libc::ELOOP));
        let (file, md) = open_order_nofollow(&f).unwrap();
        let id = OrderId::new("f").unwrap();
        let p = read_opened_order(&f, &id, file, &md).unwrap();
        assert_eq!(p.order.pings, 5);
        // A directory opens, and is no order.
        let (file, md) = open_order_nofollow(dir.path()).unwrap();
        let e = read_opened_order(dir.path(), &id, file, &md).unwrap_err();
        assert_eq!(e.reason, "not a regular file");
    }
}
