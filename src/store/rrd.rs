//! `main.rrd`: its layout (data sources and archives, as the original creates them), the values of
//! one update, and the librrd calls that create and update it. Only the
//! writer threads ([`super::writer`]) call the librrd functions.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rrd::ops::{create, update};
use rrd::ConsolidationFn;

pub use ::rrd::error::RrdError;

use crate::result::Summary;

/// Largest RTT stored, in seconds (data source maximum).
pub const MAX_RTT_S: f64 = 180.0;

/// A consolidation function of an archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cf {
    /// AVERAGE
    Average,
    /// MIN
    Min,
    /// MAX
    Max,
}

impl Cf {
    /// The name in rrdtool's syntax (`RRA:AVERAGE:…`).
    pub fn name(self) -> &'static str {
        match self {
            Cf::Average => "AVERAGE",
            Cf::Min => "MIN",
            Cf::Max => "MAX",
        }
    }

    fn to_rrd(self) -> ConsolidationFn {
        match self {
            Cf::Average => ConsolidationFn::Avg,
            Cf::Min => ConsolidationFn::Min,
            Cf::Max => ConsolidationFn::Max,
        }
    }
}

/// One RRA: consolidation function, steps per row, rows (xff is always 0.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rra {
    /// Consolidation function.
    pub cf: Cf,
    /// Primary data points per row.
    pub steps: u32,
    /// Rows kept.
    pub rows: u32,
}

/// One data source: name and allowed range (GAUGE, heartbeat 2*step).
#[derive(Debug, Clone, PartialEq)]
pub struct Ds {
    /// `loss`, `median`, `ping1`, …
    pub name: String,
    /// Minimum.
    pub min: f64,
    /// Maximum.
    pub max: f64,
}

/// The data sources of a `main.rrd`: `loss` (0..pings), `median`, `ping1..N`
/// (0..180 s).
pub fn data_sources(pings: u32) -> Vec<Ds> {
    let mut v = vec![
        Ds {
            name: "loss".into(),
            min: 0.0,
            max: f64::from(pings),
        },
        Ds {
            name: "median".into(),
            min: 0.0,
            max: MAX_RTT_S,
        },
    ];
    v.extend((1..=pings).map(|i| Ds {
        name: format!("ping{i}"),
        min: 0.0,
        max: MAX_RTT_S,
    }));
    v
}

/// The archives of a `main.rrd` for `step` (the original's three layouts, by step).
pub fn archives(step: u32) -> Vec<Rra> {
    use Cf::{Average as A, Max as X, Min as N};
    let rra = |cf, steps: u32, rows| Rra {
        cf,
        steps: steps.max(1),
        rows,
    };
    let avg_min_max = |steps, rows| {
        [
            rra(A, steps, rows),
            rra(N, steps, rows),
            rra(X, steps, rows),
        ]
    };
    let avg_max_min = |steps, rows| {
        [
            rra(A, steps, rows),
            rra(X, steps, rows),
            rra(N, steps, rows),
        ]
    };
    let mut v = Vec::new();
    if step < 300 {
        v.push(rra(A, 1, 900));
        v.extend(avg_min_max(300 / step, 864));
        v.extend(avg_min_max(1800 / step, 480));
        v.extend(avg_min_max(3600 / step, 960));
        v.extend(avg_max_min(43200 / step, 800));
        v.extend(avg_max_min(604_800 / step, 520));
    } else if step == 300 {
        v.push(rra(A, 1, 864));
        v.extend(avg_min_max(6, 480));
        v.extend(avg_min_max(12, 960));
        v.extend(avg_max_min(144, 800));
        v.extend(avg_max_min(2016, 520));
    } else {
        v.push(rra(A, 1, 1008));
        v.extend(avg_min_max(12, 4320));
        v.extend(avg_max_min(144, 720));
    }
    v
}

/// The values of one update, in data-source order: `loss`, `median`, then
/// `floor(loss/2)` unknowns, the sorted RTTs, and the remaining unknowns.
pub fn update_values(s: &Summary) -> Vec<Option<f64>> {
    let mut v = Vec::with_capacity(s.pings + 2);
    v.push(Some(s.lost as f64));
    v.push(s.median());
    let before = s.lost / 2;
    v.extend(std::iter::repeat_n(None, before));
    v.extend(s.sorted.iter().map(|x| Some(*x)));
    v.extend(std::iter::repeat_n(None, s.lost - before));
    v
}

/// The `rrdtool update` argument for `values` at `t` (`t:v1:U:...`), as
/// librrd receives it; used in logs and tests.
pub fn update_string(t: i64, values: &[Option<f64>]) -> String {
    let mut s = t.to_string();
    for v in values {
        s.push(':');
        match v {
            Some(x) => s.push_str(&x.to_string()),
            None => s.push('U'),
        }
    }
    s
}

fn unix(t: i64) -> SystemTime {
    if t >= 0 {
        UNIX_EPOCH + Duration::from_secs(t as u64)
    } else {
        UNIX_EPOCH
    }
}

/// Creates `path` (failing if it exists) with the layout for step and pings.
pub fn create_rrd(
    path: &Path,
    step: u32,
    pings: u32,
    start: i64,
) -> Result<(), rrd::error::RrdError> {
    let heartbeat = u32::try_from(u64::from(step) * 2).unwrap_or(u32::MAX);
    let mut ds = Vec::new();
    for d in data_sources(pings) {
        let name = create::DataSourceName::new(d.name.as_str())
            .map_err(|e| rrd::error::RrdError::InvalidArgument(e.to_string()))?;
        ds.push(create::DataSource::gauge(
            &name,
            heartbeat,
            Some(d.min),
            Some(d.max),
        ));
    }
    let mut rras = Vec::new();
    for r in archives(step) {
        rras.push(
            create::Archive::new(r.cf.to_rrd(), 0.5, r.steps, r.rows)
                .map_err(|e| rrd::error::RrdError::InvalidArgument(e.to_string()))?,
        );
    }
    // The data alone: 8 bytes per data source per archive row.
    let rows: u64 = archives(step).iter().map(|r| u64::from(r.rows)).sum();
    let need = rows * ds.len() as u64 * 8;
    create::create(
        path,
        unix(start),
        Duration::from_secs(u64::from(step)),
        true,
        None,
        &[],
        &ds,
        &rras,
    )
    .map_err(|e| with_reason(e, path, need))
}

/// librrd sometimes fails without a message (a full disk while creating a
/// file): say why, from the free space of `path`'s file system (against
/// `need` bytes) or the last OS error.
fn with_reason(e: rrd::error::RrdError, path: &Path, need: u64) -> rrd::error::RrdError {
    match e {
        rrd::error::RrdError::LibRrdError(msg) if msg.trim().is_empty() => {
            let os = std::io::Error::last_os_error();
            let dir = path.parent().unwrap_or(path);
            let free = nix::sys::statvfs::statvfs(dir).ok().map(|v| {
                (
                    v.blocks_available() * v.fragment_size(),
                    v.files_available(),
                )
            });
            rrd::error::RrdError::LibRrdError(match free {
                Some((bytes, inodes)) if bytes <= need || inodes == 0 => format!(
                    "no space left on the file system of {} ({} KiB free, {} KiB needed)",
                    dir.display(),
                    bytes / 1024,
                    need.div_ceil(1024)
                ),
                _ => format!("librrd gave no reason; last system error: {os}"),
            })
        }
        other => other,
    }
}

/// Writes one update at `t`.
pub fn update_rrd(path: &Path, t: i64, values: &[Option<f64>]) -> Result<(), rrd::error::RrdError> {
    let data: Vec<update::Datum> = values
        .iter()
        .map(|v| match v {
            Some(x) => update::Datum::Float(*x),
            None => update::Datum::Unspecified,
        })
        .collect();
    update::update_all(
        path,
        update::Options::default(),
        &[(update::BatchTime::Timestamp(unix(t)), data.as_slice())],
    )
    .map_err(|e| with_reason(e, path, 0))
}

/// The step and number of `pingN` data sources of an existing RRD.
pub fn shape(path: &Path) -> Result<(u32, u32), rrd::error::RrdError> {
    let info = rrd::ops::info::info(path)?;
    let step = info
        .get("step")
        .and_then(|v| v.clone().into_count())
        .and_then(|s| u32::try_from(s).ok())
        .unwrap_or(0);
    let pings = info
        .keys()
        .filter_map(|k| k.strip_prefix("ds[ping")?.strip_suffix("].index"))
        .filter(|n| n.parse::<u32>().is_ok())
        .count();
    Ok((step, u32::try_from(pings).unwrap_or(u32::MAX)))
}

/// True when librrd refused an update because its time is not after the
/// file's last update.
pub fn is_not_newer(e: &rrd::error::RrdError) -> bool {
    e.to_string()
        .contains("illegal attempt to update using time")
}

/// True when librrd's error says the file is not a (whole) RRD, as opposed
/// to an I/O or permission problem.
pub fn is_corruption(e: &rrd::error::RrdError) -> bool {
    let msg = e.to_string();
    [
        "is not an RRD file",
        "reached EOF while loading",
        "mmaping file",
        "another architecture",
        "short file",
    ]
    .iter()
    .any(|p| msg.contains(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::RoundOutcome;

    fn summary(ms: &[Option<u64>]) -> Summary {
        Summary::of(&RoundOutcome {
            rtts: ms.iter().map(|x| x.map(Duration::from_millis)).collect(),
        })
    }

    #[test]
    fn data_source_layout() {
        let ds = data_sources(3);
        let names: Vec<_> = ds.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["loss", "median", "ping1", "ping2", "ping3"]);
        assert_eq!((ds[0].min, ds[0].max), (0.0, 3.0));
        assert_eq!((ds[1].min, ds[1].max), (0.0, 180.0));
        assert_eq!((ds[4].min, ds[4].max), (0.0, 180.0));
    }

    fn table(step: u32) -> Vec<(Cf, u32, u32)> {
        archives(step)
            .iter()
            .map(|r| (r.cf, r.steps, r.rows))
            .collect()
    }

    #[test]
    fn archives_below_300() {
        use Cf::*;
        assert_eq!(
            table(20),
            vec![
                (Average, 1, 900),
                (Average, 15, 864),
                (Min, 15, 864),
                (Max, 15, 864),
                (Average, 90, 480),
                (Min, 90, 480),
                (Max, 90, 480),
                (Average, 180, 960),
                (Min, 180, 960),
                (Max, 180, 960),
                (Average, 2160, 800),
                (Max, 2160, 800),
                (Min, 2160, 800),
                (Average, 30240, 520),
                (Max, 30240, 520),
                (Min, 30240, 520),
            ]
        );
        assert_eq!(table(60).len(), 16);
        // integer division as the original: 300/7 = 42
        assert_eq!(table(7)[1], (Average, 42, 864));
    }

    #[test]
    fn archives_at_300() {
        use Cf::*;
        assert_eq!(
            table(300),
            vec![
                (Average, 1, 864),
                (Average, 6, 480),
                (Min, 6, 480),
                (Max, 6, 480),
                (Average, 12, 960),
                (Min, 12, 960),
                (Max, 12, 960),
                (Average, 144, 800),
                (Max, 144, 800),
                (Min, 144, 800),
                (Average, 2016, 520),
                (Max, 2016, 520),
                (Min, 2016, 520),
            ]
        );
    }

    #[test]
    fn archives_other_steps() {
        use Cf::*;
        let expect = vec![
            (Average, 1, 1008),
            (Average, 12, 4320),
            (Min, 12, 4320),
            (Max, 12, 4320),
            (Average, 144, 720),
            (Max, 144, 720),
            (Min, 144, 720),
        ];
        assert_eq!(table(600), expect);
        assert_eq!(table(301), expect);
    }

    #[test]
    fn librrd_errors_are_classified() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("main.rrd");
        create_rrd(&path, 10, 2, 1_700_000_000).unwrap();
        assert_eq!(shape(&path).unwrap(), (10, 2));
        let e = update_rrd(&path, 1_700_000_000, &[Some(0.0), None, None, None]).unwrap_err();
        assert!(is_not_newer(&e) && !is_corruption(&e), "{e}");
        update_rrd(
            &path,
            1_700_000_010,
            &[Some(0.0), Some(0.001), Some(0.001), Some(0.002)],
        )
        .unwrap();
        std::fs::write(&path, "not an rrd").unwrap();
        let e = update_rrd(&path, 1_700_000_020, &[Some(0.0), None, None, None]).unwrap_err();
        assert!(is_corruption(&e) && !is_not_newer(&e), "{e}");
        let e = shape(&dir.path().join("missing.rrd")).unwrap_err();
        assert!(!is_corruption(&e), "{e}");
    }

    #[test]
    fn update_values_split_the_losses() {
        // 5 pings, 3 lost: floor(3/2)=1 unknown, sorted RTTs, 2 unknowns
        let s = summary(&[None, Some(30), None, Some(10), None]);
        assert_eq!(
            update_values(&s),
            vec![
                Some(3.0),
                Some(0.030),
                None,
                Some(0.010),
                Some(0.030),
                None,
                None
            ]
        );
        assert_eq!(
            update_string(1200, &update_values(&s)),
            "1200:3:0.03:U:0.01:0.03:U:U"
        );
        // no loss: median is sorted[n/2]
        let s = summary(&[Some(3), Some(1), Some(2)]);
        assert_eq!(
            update_string(60, &update_values(&s)),
            "60:0:0.002:0.001:0.002:0.003"
        );
        // all lost: unknown median, all unknown pings
        let s = summary(&[None, None]);
        assert_eq!(update_string(60, &update_values(&s)), "60:2:U:U:U");
        // one lost: floor(1/2)=0 before, 1 after
        let s = summary(&[None, Some(5)]);
        assert_eq!(update_string(60, &update_values(&s)), "60:1:0.005:0.005:U");
    }
}
