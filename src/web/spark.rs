//! The status list's sparklines: per order, its median over the last 3
//! hours from `main.rrd`, as a small inline SVG (no script), each stretch
//! in the colour of its loss as SmokePing colours the median; rounds that
//! lost every ping are red ticks at the bottom. Read for the rows of the
//! page only, on a blocking thread, and kept for [`SPARK_TTL`].

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use maud::{html, Markup, PreEscaped};
use probes::sync::lock;

use super::ctx::ServeCtx;
use crate::order::OrderId;
use crate::store::writer::RRD_FILE;

/// The span drawn.
pub const SPAN: i64 = 3 * 3600;
/// How long a sparkline is served again.
pub const SPARK_TTL: Duration = Duration::from_secs(60);
/// Sparklines kept at most (the cache is emptied beyond).
const KEPT: usize = 20_000;
/// Points across (the SVG is twice as wide, in pixels).
const BUCKETS: usize = 60;
const WIDTH: f64 = 120.0;
const HEIGHT: f64 = 22.0;

/// One order's last 3 hours, in buckets: the mean median (ms) and the
/// worst loss (0..=1) of the rows in each; `None` where nothing is known.
#[derive(Debug, Clone, PartialEq)]
pub struct Spark {
    pub buckets: Vec<(Option<f64>, Option<f64>)>,
}

impl Spark {
    /// The buckets of `rows` (time, loss, median in seconds) from `start`
    /// over [`SPAN`].
    pub fn of(rows: &[(i64, Option<f64>, Option<f64>)], start: i64) -> Spark {
        let mut sum = vec![(0.0, 0usize, None::<f64>); BUCKETS];
        for &(t, loss, median) in rows {
            let k = ((t - start) * BUCKETS as i64).div_euclid(SPAN);
            let Ok(k) = usize::try_from(k) else { continue };
            let Some(b) = sum.get_mut(k.min(BUCKETS - 1)) else {
                continue;
            };
            if let Some(m) = median {
                b.0 += m * 1000.0;
                b.1 += 1;
            }
            if let Some(l) = loss {
                b.2 = Some(b.2.map_or(l, |w: f64| w.max(l)));
            }
        }
        Spark {
            buckets: sum
                .into_iter()
                .map(|(s, n, loss)| ((n > 0).then(|| s / n as f64), loss))
                .collect(),
        }
    }

    /// Whether anything is known.
    pub fn is_empty(&self) -> bool {
        self.buckets.iter().all(|(m, l)| m.is_none() && l.is_none())
    }

    /// The SVG: stretches of consecutive known medians in one loss
    /// colour as one polyline each; all-lost buckets as red ticks.
    pub fn svg(&self) -> Markup {
        let max = self
            .buckets
            .iter()
            .filter_map(|b| b.0)
            .fold(0.0_f64, f64::max);
        let y = |m: f64| {
            if max > 0.0 {
                HEIGHT - 2.0 - m / max * (HEIGHT - 4.0)
            } else {
                HEIGHT - 2.0
            }
        };
        let dx = WIDTH / BUCKETS as f64;
        let x = |k: usize| (k as f64 + 0.5) * dx;
        let mut lines: Vec<(&str, String)> = Vec::new();
        let mut prev: Option<(usize, &str)> = None;
        let mut ticks = String::new();
        for (k, (median, loss)) in self.buckets.iter().enumerate() {
            let Some(m) = median else {
                if loss.is_some_and(|l| l > 0.0) {
                    let _ = write!(ticks, "M{:.1} {HEIGHT}V{:.1}", x(k), HEIGHT - 5.0);
                }
                prev = None;
                continue;
            };
            let colour = colour_of(loss.unwrap_or(0.0));
            let point = format!("{:.1},{:.1}", x(k), y(*m));
            match prev {
                // Continues the stretch of the same colour.
                Some((p, c)) if p + 1 == k && c == colour => {
                    if let Some(last) = lines.last_mut() {
                        last.1.push(' ');
                        last.1.push_str(&point);
                    }
                }
                // A new colour starts where the last stretch ended, so
                // the line stays unbroken.
                Some((p, _)) if p + 1 == k => {
                    let from = lines
                        .last()
                        .and_then(|l| l.1.rsplit(' ').next())
                        .unwrap_or(&point)
                        .to_owned();
                    lines.push((colour, format!("{from} {point}")));
                }
                _ => lines.push((colour, point)),
            }
            prev = Some((k, colour));
        }
        let (lo, hi) = self
            .buckets
            .iter()
            .filter_map(|b| b.0)
            .fold((f64::INFINITY, 0.0_f64), |(a, b), m| (a.min(m), b.max(m)));
        let worst = self
            .buckets
            .iter()
            .filter_map(|b| b.1)
            .fold(0.0_f64, f64::max);
        let title = if lo.is_finite() {
            format!(
                "last 3 hours: median {lo:.1}–{hi:.1} ms, worst loss {:.0} %",
                worst * 100.0
            )
        } else {
            format!("last 3 hours: every ping lost ({:.0} %)", worst * 100.0)
        };
        html! {
            svg.spark width=(WIDTH) height=(HEIGHT) viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } role="img" aria-label=(title) {
                title { (title) }
                @for (colour, points) in &lines {
                    @if points.contains(' ') {
                        polyline fill="none" stroke=(colour) stroke-width="1.5" points=(points) {}
                    } @else {
                        // A lone point: a dot.
                        circle r="1.2" fill=(colour) cx=(points.split(',').next().unwrap_or("0")) cy=(points.split(',').nth(1).unwrap_or("0")) {}
                    }
                }
                @if !ticks.is_empty() {
                    path.lost stroke="#FF0000" stroke-width="1.5" d=(PreEscaped(&ticks)) {}
                }
            }
        }
    }
}

/// SmokePing's colour of a round's loss (0..=1).
fn colour_of(loss: f64) -> &'static str {
    crate::graph::LOSS_COLOURS
        .iter()
        .find(|(upper, _, _)| loss <= *upper)
        .map_or("#FF0000", |(_, hex, _)| *hex)
}

/// The sparklines kept between requests: id → (when, sparkline; `None`
/// for an order without `main.rrd`).
pub type Kept = Mutex<HashMap<String, (Instant, Option<Arc<Spark>>)>>;

/// The sparklines of `ids` (blocking: reads the RRDs not kept).
pub fn for_ids(ctx: &ServeCtx, ids: &[&str]) -> HashMap<String, Arc<Spark>> {
    let now = crate::clock::unix_s();
    let mut out = HashMap::new();
    let mut missing = Vec::new();
    {
        let kept = lock(&ctx.web.sparks);
        for id in ids {
            match kept.get(*id) {
                Some((at, s)) if at.elapsed() < SPARK_TTL => {
                    if let Some(s) = s {
                        out.insert((*id).to_owned(), s.clone());
                    }
                }
                _ => missing.push(*id),
            }
        }
    }
    let mut read = Vec::with_capacity(missing.len());
    for id in missing {
        let spark = OrderId::new(id)
            .ok()
            .and_then(|oid| super::site::output_file(ctx, &oid, RRD_FILE))
            .and_then(|rrd| crate::graph::series(&rrd, now - SPAN, now, BUCKETS as u32 * 3).ok())
            .map(|s| {
                let rows: Vec<_> = s.rows.iter().map(|r| (r.time, r.loss, r.median)).collect();
                Arc::new(Spark::of(&rows, now - SPAN))
            });
        read.push((id.to_owned(), spark));
    }
    let mut kept = lock(&ctx.web.sparks);
    if kept.len() + read.len() > KEPT {
        kept.clear();
    }
    for (id, spark) in read {
        if let Some(s) = &spark {
            out.insert(id.clone(), s.clone());
        }
        kept.insert(id, (Instant::now(), spark));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_average_the_median_and_keep_the_worst_loss() {
        let start = 1_000_000;
        let step = SPAN / BUCKETS as i64;
        let rows = vec![
            (start, Some(0.0), Some(0.010)),
            (start + 1, Some(0.2), Some(0.020)),
            (start + step, Some(1.0), None),
            (start + 5 * step, None, None),
            (start - 60, Some(0.0), Some(1.0)),
            (start + SPAN, Some(0.0), Some(0.030)),
        ];
        let s = Spark::of(&rows, start);
        assert_eq!(s.buckets.len(), BUCKETS);
        assert_eq!(s.buckets[0].1, Some(0.2));
        assert!((s.buckets[0].0.unwrap() - 15.0).abs() < 1e-9);
        assert_eq!(s.buckets[1], (None, Some(1.0)));
        assert_eq!(s.buckets[5], (None, None));
        // The row at the end falls into the last bucket.
        assert!((s.buckets[BUCKETS - 1].0.unwrap() - 30.0).abs() < 1e-9);
        assert!(!s.is_empty());
        assert!(Spark::of(&[], start).is_empty());
    }

    #[test]
    fn the_svg_colours_stretches_by_loss_and_marks_lost_rounds() {
        let start = 0;
        let step = SPAN / BUCKETS as i64;
        let mut rows = Vec::new();
        for k in 0..10 {
            let loss = if k < 5 { 0.0 } else { 0.6 };
            rows.push((k * step, Some(loss), Some(0.010 + 0.001 * k as f64)));
        }
        rows.push((12 * step, Some(1.0), None));
        let svg = Spark::of(&rows, start).svg().into_string();
        assert_eq!(svg.matches("<polyline").count(), 2, "{svg}");
        assert!(svg.contains("stroke=\"#26C400\""), "{svg}");
        assert!(svg.contains("stroke=\"#FF0000\""), "{svg}");
        assert!(svg.contains("class=\"lost\""), "{svg}");
        assert!(
            svg.contains("median 10.0–19.0 ms, worst loss 100 %"),
            "{svg}"
        );
        assert!(!svg.to_lowercase().contains("nan"), "{svg}");
    }
}
