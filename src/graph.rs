//! SmokePing-style graphs of an order's `main.rrd`, rendered by librrd's
//! graph function, for `pingmachine graph` and the web page.
//!
//! * grey "smoke": for each pair of sorted pings (1st and last, 2nd and
//!   second-to-last, …) a band between them, darker towards the middle, so
//!   the spread of the RTT distribution shows as smoke around the median;
//! * the median line, coloured by the round's loss (green at 0 %, then blue,
//!   violet, magenta and red as loss grows);
//! * a red-tinted background where pings were lost (stronger from 50 %);
//! * a legend with the current, maximum and average median and loss.
//!
//! librrd's graphing is not thread-safe: every call goes through one lock.

use probes::sync::lock;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context};
use rrd::ops::graph::elements::{
    Area, AreaColor, CDef, ColorWithLegend, Comment, Def, GPrint, GraphElement, Legend, Line, VDef,
    VarName,
};
use rrd::ops::graph::props::{GraphProps, ImageFormat, Labels, Limits, Size, TimeRange};
use rrd::ops::graph::Color;
use rrd::ConsolidationFn;

use crate::store::rrd as store_rrd;

/// Serialises librrd graph calls.
static GRAPH_LOCK: Mutex<()> = Mutex::new(());

/// Loss buckets of the median line: (upper bound of the loss fraction, colour, legend).
pub const LOSS_COLOURS: &[(f64, &str, &str)] = &[
    (0.0, "#26C400", "0%"),
    (0.05, "#00B8FF", "<=5%"),
    (0.10, "#0059FF", "<=10%"),
    (0.20, "#5E00FF", "<=20%"),
    (0.50, "#DD00FF", "<=50%"),
    (1.0, "#FF0000", ">50%"),
];

/// A `--period` that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?}: expected day, week, month, year or a number of seconds (at least 60)")]
pub struct PeriodError(String);

/// `day`, `week`, `month`, `year` or a number of seconds.
pub fn parse_period(s: &str) -> Result<Duration, PeriodError> {
    let secs = match s {
        "day" => 86_400,
        "week" => 7 * 86_400,
        "month" => 30 * 86_400,
        "year" => 365 * 86_400,
        n => n
            .parse::<u64>()
            .ok()
            .filter(|n| *n >= 60)
            .ok_or_else(|| PeriodError(s.to_owned()))?,
    };
    Ok(Duration::from_secs(secs))
}

/// The one id matching `prefix` (an exact id wins), or an error listing the
/// candidates.
pub fn resolve(ids: &[String], prefix: &str) -> anyhow::Result<String> {
    if let Some(exact) = ids.iter().find(|i| *i == prefix) {
        return Ok(exact.clone());
    }
    let matches: Vec<&String> = ids.iter().filter(|i| i.starts_with(prefix)).collect();
    match matches.len() {
        0 => bail!("no order with a main.rrd matches {prefix:?}"),
        1 => Ok(matches[0].clone()),
        n => {
            let shown: Vec<&str> = matches.iter().take(20).map(|s| s.as_str()).collect();
            let more = if n > 20 {
                format!(" (and {} more)", n - 20)
            } else {
                String::new()
            };
            bail!(
                "{prefix:?} matches {n} orders: {}{more}; give a longer prefix",
                shown.join(", ")
            )
        }
    }
}

fn var(name: &str) -> anyhow::Result<VarName> {
    VarName::new(name).map_err(|e| anyhow::anyhow!("graph variable {name}: {e}"))
}

fn color(hex: &str) -> anyhow::Result<Color> {
    hex.parse()
        .map_err(|e| anyhow::anyhow!("colour {hex}: {e:?}"))
}

fn cdef(name: &str, rpn: String) -> anyhow::Result<GraphElement> {
    Ok(CDef {
        var_name: var(name)?,
        rpn,
    }
    .into())
}

/// Which of the legend's figures have a known value in the graphed range:
/// librrd prints an all-unknown range's figures as `-nan`, so the legend
/// says "no data" for them instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Known {
    /// Some round in the range has a median (not every ping lost).
    pub median: bool,
    /// Some round in the range has a loss (the order ran).
    pub loss: bool,
}

impl Known {
    /// Both figures known.
    #[cfg(test)]
    pub const ALL: Known = Known {
        median: true,
        loss: true,
    };

    /// What `rrd` holds from `start` to `end`, read at about `points` rows.
    /// A failed read claims nothing is known.
    pub fn of(rrd: &Path, start: i64, end: i64, points: u32) -> Known {
        let rows = series(rrd, start, end, points)
            .map(|s| s.rows)
            .unwrap_or_default();
        Known {
            median: rows.iter().any(|r| r.median.is_some()),
            loss: rows.iter().any(|r| r.loss.is_some()),
        }
    }
}

/// The graph elements for an RRD with `pings` ping data sources, with
/// a legend of the figures `known` in the range.
pub fn elements(rrd: &Path, pings: u32, known: Known) -> anyhow::Result<Vec<GraphElement>> {
    let def = |name: &str, ds: &str| -> anyhow::Result<GraphElement> {
        Ok(Def {
            var_name: var(name)?,
            rrd: rrd.to_path_buf(),
            ds_name: ds.to_owned(),
            consolidation_fn: ConsolidationFn::Avg,
            step: None,
            start: None,
            end: None,
            reduce: None,
        }
        .into())
    };
    let mut e = vec![def("loss", "loss")?, def("median", "median")?];
    for i in 1..=pings {
        e.push(def(&format!("ping{i}"), &format!("ping{i}"))?);
        // Seconds, as stored: librrd's SI prefixes then read "5 m" for
        // 5 ms, SmokePing's convention (the axis says "seconds").
        e.push(cdef(&format!("p{i}"), format!("ping{i}"))?);
    }
    e.push(cdef("med", "median".into())?);
    e.push(cdef("lf", format!("loss,{pings},/"))?);
    e.push(cdef("lp", "lf,100,*".into())?);

    background(&mut e)?;
    smoke(&mut e, pings)?;
    legend(&mut e, known)?;
    Ok(e)
}

/// The loss-tinted background, behind everything.
fn background(e: &mut Vec<GraphElement>) -> anyhow::Result<()> {
    e.push(cdef("bg1", "lf,0,GT,lf,0.5,LT,*,INF,UNKN,IF".into())?);
    e.push(cdef("bg2", "lf,0.5,GE,INF,UNKN,IF".into())?);
    for (name, hex) in [("bg1", "#FF000018"), ("bg2", "#FF000040")] {
        e.push(
            Area {
                value: var(name)?,
                color: Some(ColorWithLegend {
                    color: AreaColor::Color(color(hex)?),
                    legend: None,
                }),
                stack: false,
                skip_scale: true,
            }
            .into(),
        );
    }

    Ok(())
}

/// Smoke: bands between the i-th smallest and i-th largest ping.
fn smoke(e: &mut Vec<GraphElement>, pings: u32) -> anyhow::Result<()> {
    let pairs = pings / 2;
    for i in 1..=pairs {
        let upper = pings + 1 - i;
        e.push(cdef(&format!("s{i}"), format!("p{upper},p{i},-"))?);
        e.push(
            Area {
                value: var(&format!("p{i}"))?,
                color: None,
                stack: false,
                skip_scale: false,
            }
            .into(),
        );
        let shade = if pairs > 1 {
            0xdd - (0xdd - 0x88) * (i - 1) / (pairs - 1)
        } else {
            0xaa
        };
        let grey = format!("#{shade:02X}{shade:02X}{shade:02X}");
        e.push(
            Area {
                value: var(&format!("s{i}"))?,
                color: Some(ColorWithLegend {
                    color: AreaColor::Color(color(&grey)?),
                    legend: None,
                }),
                stack: true,
                skip_scale: false,
            }
            .into(),
        );
    }

    Ok(())
}

/// The legend's figures (or "no data" where the range has none), then
/// the median coloured by loss with its key.
fn legend(e: &mut Vec<GraphElement>, known: Known) -> anyhow::Result<()> {
    // Legend figures first (GPRINT only prints), so the loss colour key
    // below ends the legend and needs no line break.
    let gp = |v: &str, f: &str| -> anyhow::Result<GraphElement> {
        Ok(GPrint {
            var_name: var(v)?,
            format: f.into(),
        }
        .into())
    };
    // Per figure: its VDEF name, RPN and GPRINT format.
    type Prints<'a> = [(&'a str, &'a str, &'a str); 3];
    let figures: [(bool, &str, Prints); 2] = [
        (
            known.median,
            "median RTT      no data\\n",
            [
                ("mednow", "med,LAST", "median RTT  now %6.2lf %ss"),
                ("medmax", "med,MAXIMUM", "max %6.2lf %ss"),
                ("medavg", "med,AVERAGE", "avg %6.2lf %ss\\n"),
            ],
        ),
        (
            known.loss,
            "packet loss     no data\\n",
            [
                ("lpnow", "lp,LAST", "packet loss now %7.2lf %%"),
                ("lpmax", "lp,MAXIMUM", "max %7.2lf %%"),
                ("lpavg", "lp,AVERAGE", "avg %7.2lf %%\\n"),
            ],
        ),
    ];
    for (is_known, none, prints) in figures {
        if !is_known {
            e.push(Comment { text: none.into() }.into());
            continue;
        }
        for (name, rpn, format) in prints {
            e.push(
                VDef {
                    var_name: var(name)?,
                    rpn: rpn.into(),
                }
                .into(),
            );
            e.push(gp(name, format)?);
        }
    }
    // The median, coloured by loss.
    e.push(
        Comment {
            text: "median by loss".into(),
        }
        .into(),
    );
    let mut lower = -1.0;
    for (k, (upper, hex, label)) in LOSS_COLOURS.iter().enumerate() {
        let rpn = if *upper == 0.0 {
            "lf,0,EQ,med,UNKN,IF".to_owned()
        } else {
            format!("lf,{lower},GT,lf,{upper},LE,*,med,UNKN,IF")
        };
        e.push(cdef(&format!("m{k}"), rpn)?);
        e.push(
            Line {
                width: 2.0,
                value: var(&format!("m{k}"))?,
                color: Some(ColorWithLegend {
                    color: color(hex)?,
                    legend: Some(Legend::new(*label)),
                }),
                stack: false,
                skip_scale: false,
                dashes: None,
            }
            .into(),
        );
        lower = *upper;
    }

    Ok(())
}

/// Where the plot area sits in a graph image and what it spans, for
/// drag-to-zoom on the web page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlotArea {
    /// Pixels from the image's left edge.
    pub left: u64,
    /// Pixels from the image's top edge.
    pub top: u64,
    /// Width in pixels.
    pub width: u64,
    /// Height in pixels.
    pub height: u64,
    /// Unix time at the left edge.
    pub start: i64,
    /// Unix time at the right edge.
    pub end: i64,
}

/// Renders the PNG bytes for `rrd` over `period` ending `end`.
pub fn render(
    rrd: &Path,
    title: &str,
    period: Duration,
    end: SystemTime,
    width: u32,
    height: u32,
) -> anyhow::Result<Vec<u8>> {
    render_area(rrd, title, end - period, end, width, height).map(|(png, _)| png)
}

/// Renders the PNG bytes for `rrd` from `start` to `end`, with where its
/// plot area is. librrd's graph call is not thread-safe: one at a time.
pub fn render_area(
    rrd: &Path,
    title: &str,
    start: SystemTime,
    end: SystemTime,
    width: u32,
    height: u32,
) -> anyhow::Result<(Vec<u8>, PlotArea)> {
    render_as(ImageFormat::Png, rrd, title, start, end, width, height)
}

/// [`render_area`] in `format`.
fn render_as(
    format: ImageFormat,
    rrd: &Path,
    title: &str,
    start: SystemTime,
    end: SystemTime,
    width: u32,
    height: u32,
) -> anyhow::Result<(Vec<u8>, PlotArea)> {
    let (_step, pings) =
        store_rrd::shape(rrd).with_context(|| format!("cannot read {}", rrd.display()))?;
    if pings == 0 {
        bail!(
            "{} has no ping data sources; not a pingmachine RRD",
            rrd.display()
        );
    }
    let props = GraphProps {
        time_range: TimeRange {
            start: Some(start),
            end: Some(end),
            step_seconds: None,
        },
        labels: Labels {
            title: Some(title.to_owned()),
            vertical_label: Some("seconds".into()),
        },
        size: Size {
            width: Some(width),
            height: Some(height),
            full_size_mode: true,
            only_graph: false,
        },
        limits: Limits {
            lower_limit: Some(0.0),
            ..Limits::default()
        },
        ..GraphProps::default()
    };
    let known = Known::of(
        rrd,
        crate::clock::unix_s_of(start),
        crate::clock::unix_s_of(end),
        width,
    );
    let elements = elements(rrd, pings, known)?;
    let _guard = lock(&GRAPH_LOCK);
    let (png, meta) = rrd::ops::graph::graph(format, &props, &elements)
        .map_err(|e| anyhow::anyhow!("librrd graph: {e}"))?;
    let unix = |t: &rrd::Timestamp| crate::clock::unix_s_of(*t);
    Ok((
        png,
        PlotArea {
            left: meta.graph_left,
            top: meta.graph_top,
            width: meta.graph_width,
            height: meta.graph_height,
            start: unix(&meta.graph_start),
            end: unix(&meta.graph_end),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods() {
        assert_eq!(parse_period("day").unwrap().as_secs(), 86_400);
        assert_eq!(parse_period("week").unwrap().as_secs(), 604_800);
        assert_eq!(parse_period("3600").unwrap().as_secs(), 3600);
        assert!(parse_period("fortnight").is_err());
        assert!(parse_period("5").is_err());
    }

    #[test]
    fn prefixes() {
        let ids: Vec<String> = ["app/a1", "app/a2", "app/b", "other/x"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(resolve(&ids, "app/b").unwrap(), "app/b");
        assert_eq!(resolve(&ids, "oth").unwrap(), "other/x");
        let e = resolve(&ids, "app/a").unwrap_err().to_string();
        assert!(
            e.contains("matches 2 orders") && e.contains("app/a1, app/a2"),
            "{e}"
        );
        assert!(resolve(&ids, "zzz")
            .unwrap_err()
            .to_string()
            .contains("no order"));
        let ids = vec!["x".to_string(), "xy".to_string()];
        assert_eq!(
            resolve(&ids, "x").unwrap(),
            "x",
            "an exact id wins over longer ones"
        );
    }

    #[test]
    fn smoke_and_median_elements() {
        let els = elements(Path::new("/x/main.rrd"), 20, Known::ALL).unwrap();
        let args = rrd::ops::graph::graph_args(None, &GraphProps::default(), &els).unwrap();
        assert!(args.contains(&"DEF:ping20=/x/main.rrd:ping20:AVERAGE".to_string()));
        assert!(
            args.contains(&"CDEF:s1=p20,p1,-".to_string()),
            "outermost band"
        );
        assert!(
            args.contains(&"CDEF:s10=p11,p10,-".to_string()),
            "innermost band"
        );
        assert_eq!(args.iter().filter(|a| a.starts_with("AREA:s")).count(), 10);
        assert!(args.iter().any(|a| a.starts_with("LINE2:m0#26C400")));
        assert!(args.iter().any(|a| a.starts_with("GPRINT:mednow")));
        assert!(!args.iter().any(|a| a.contains("no data")));
    }

    #[test]
    fn a_range_without_data_says_so_instead_of_nan() {
        let none = Known {
            median: false,
            loss: false,
        };
        let els = elements(Path::new("/x/main.rrd"), 20, none).unwrap();
        let args = rrd::ops::graph::graph_args(None, &GraphProps::default(), &els).unwrap();
        assert!(!args.iter().any(|a| a.starts_with("GPRINT:")), "{args:?}");
        assert!(!args.iter().any(|a| a.starts_with("VDEF:")), "{args:?}");
        assert_eq!(
            args.iter().filter(|a| a.contains("no data")).count(),
            2,
            "{args:?}"
        );
        // All lost: the loss is known, the median is not.
        let lost = Known {
            median: false,
            loss: true,
        };
        let els = elements(Path::new("/x/main.rrd"), 20, lost).unwrap();
        let args = rrd::ops::graph::graph_args(None, &GraphProps::default(), &els).unwrap();
        assert!(args.iter().any(|a| a.starts_with("GPRINT:lpnow")));
        assert!(!args.iter().any(|a| a.starts_with("GPRINT:mednow")));
        assert!(args.iter().any(|a| a.contains("median RTT      no data")));
    }

    #[test]
    fn librrd_prints_no_nan_for_an_empty_range() {
        let dir = tempfile::tempdir().unwrap();
        let rrd = dir.path().join("main.rrd");
        let now = crate::clock::unix_s() / 60 * 60;
        let first = now - 3600;
        store_rrd::create_rrd(&rrd, 60, 5, first - 60).unwrap();
        for k in 0..60 {
            let t = first + k * 60;
            let mut v = vec![Some(0.0), Some(0.010)];
            v.extend((1..=5).map(|i| Some(0.008 + 0.001 * f64::from(i))));
            store_rrd::update_rrd(&rrd, t, &v).unwrap();
        }
        let at = |t: i64| SystemTime::UNIX_EPOCH + Duration::from_secs(t as u64);
        // What the legend's GPRINTs print, as librrd's PRINT gives it back.
        let printed = |start: i64, end: i64, known: Known| -> Vec<String> {
            let els: Vec<GraphElement> = elements(&rrd, 5, known)
                .unwrap()
                .into_iter()
                .map(|e| match e {
                    GraphElement::GPrint(g) => rrd::ops::graph::elements::Print {
                        var_name: g.var_name,
                        format: g.format,
                        format_mode: None,
                    }
                    .into(),
                    other => other,
                })
                .collect();
            let props = GraphProps {
                time_range: TimeRange {
                    start: Some(at(start)),
                    end: Some(at(end)),
                    step_seconds: None,
                },
                ..GraphProps::default()
            };
            let _guard = lock(&GRAPH_LOCK);
            let (_, meta) = rrd::ops::graph::graph(ImageFormat::Png, &props, &els).unwrap();
            let mut out: Vec<(String, String)> = meta
                .extra_info
                .iter()
                .filter(|(k, _)| k.starts_with("print["))
                .map(|(k, v)| (k.clone(), format!("{v:?}")))
                .collect();
            out.sort();
            out.into_iter().map(|(_, v)| v).collect()
        };
        // A range from before the order existed: without the check,
        // librrd prints nan; with it, no figure is printed.
        let (a, b) = (first - 10 * 86400, first - 9 * 86400);
        let unchecked = printed(a, b, Known::ALL);
        assert!(
            unchecked.iter().any(|v| v.to_lowercase().contains("nan")),
            "{unchecked:?}"
        );
        let known = Known::of(&rrd, a, b, 600);
        assert_eq!(
            known,
            Known {
                median: false,
                loss: false
            }
        );
        assert!(printed(a, b, known).is_empty());
        // The last hour: six figures, none nan, the median 10 ms.
        let known = Known::of(&rrd, now - 3600, now, 600);
        assert_eq!(known, Known::ALL);
        let full = printed(now - 3600, now, known);
        assert_eq!(full.len(), 6, "{full:?}");
        assert!(
            !full.iter().any(|v| v.to_lowercase().contains("nan")),
            "{full:?}"
        );
        assert!(full.iter().any(|v| v.contains("10.00 m")), "{full:?}");
    }
}

/// One row of [`series`]: an RRD row at `time` (Unix s), its values in
/// seconds (`None`: unknown, never NaN).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SeriesRow {
    pub time: i64,
    /// Lost pings of the round (an average where rows are consolidated).
    pub lost: Option<f64>,
    /// `lost` over the pings sent, 0 to 1.
    pub loss: Option<f64>,
    pub median: Option<f64>,
    /// `ping1` … `pingN`: the round's RTTs, sorted.
    pub pings: Vec<Option<f64>>,
}

/// What [`series`] read.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The range librrd returned (it aligns to the archive's rows).
    pub start: i64,
    pub end: i64,
    /// Seconds per row.
    pub resolution: u64,
    /// Pings per round.
    pub pings: usize,
    pub rows: Vec<SeriesRow>,
}

/// The rows of `rrd` from `start` to `end` (Unix s), AVERAGE, at the
/// finest archive that gives about `points` rows or fewer. Thread-safe
/// (librrd's `rrd_fetch_r`).
pub fn series(rrd: &Path, start: i64, end: i64, points: u32) -> anyhow::Result<Series> {
    let at = |t: i64| SystemTime::UNIX_EPOCH + Duration::from_secs(t.max(0) as u64);
    let wanted = ((end - start).max(1) as u64 / u64::from(points.max(1))).max(1);
    let data = rrd::ops::fetch::fetch(
        rrd,
        ConsolidationFn::Avg,
        at(start),
        at(end),
        Duration::from_secs(wanted),
    )
    .with_context(|| format!("{}: fetch", rrd.display()))?;
    let names = data.ds_names().to_vec();
    let col = |n: &str| names.iter().position(|x| x == n);
    let (loss_i, median_i) = (col("loss"), col("median"));
    let ping_cols: Vec<usize> = (1..=names.len())
        .map_while(|i| col(&format!("ping{i}")))
        .collect();
    let unix = |t: SystemTime| {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
    };
    let known = |v: f64| v.is_finite().then_some(v);
    let n = ping_cols.len();
    let rows = data
        .rows()
        .iter()
        .map(|r| {
            let v = r.as_slice();
            let get = |i: Option<usize>| i.and_then(|i| v.get(i).copied()).and_then(known);
            let lost = get(loss_i);
            SeriesRow {
                time: unix(r.timestamp()),
                lost,
                loss: lost.filter(|_| n > 0).map(|l| l / n as f64),
                median: get(median_i),
                pings: ping_cols.iter().map(|&i| get(Some(i))).collect(),
            }
        })
        .collect();
    Ok(Series {
        start: unix(data.start()),
        end: unix(data.end()),
        resolution: data.step().as_secs(),
        pings: n,
        rows,
    })
}
