//! `--remote-write-series full`: the daemon's whole `/metrics` (the
//! Prometheus text format, as a scrape reads it) turned into remote-write
//! series, one sample each at the time of the reading. Histograms become
//! their `_bucket`, `_sum` and `_count` series, as Prometheus stores a
//! scraped histogram.

use std::collections::BTreeMap;

use super::proto::{Label, Sample, TimeSeries};

/// Why a line of the text format is not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {why}")]
pub struct ParseError {
    pub line: usize,
    pub why: &'static str,
}

/// A value of the text format: Go's float forms and the infinities.
fn value(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

/// The labels of `{…}` (after the `{`): pairs, and the rest after `}`.
fn labels(mut s: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut out = Vec::new();
    loop {
        s = s.trim_start_matches([' ', ',']);
        if let Some(rest) = s.strip_prefix('}') {
            return Some((out, rest));
        }
        let eq = s.find('=')?;
        let name = s[..eq].trim().to_owned();
        s = s[eq + 1..].trim_start().strip_prefix('"')?;
        let mut v = String::new();
        let mut chars = s.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '\\' => match chars.next()?.1 {
                    'n' => v.push('\n'),
                    other => v.push(other),
                },
                '"' => break i,
                c => v.push(c),
            }
        };
        out.push((name, v));
        s = &s[end + 1..];
    }
}

/// Every sample of `text` as a series at `at_ms`, with `global` labels
/// added where the series has no label of that name.
#[cfg(test)]
pub fn series(
    text: &str,
    at_ms: i64,
    global: &BTreeMap<String, String>,
) -> Result<Vec<TimeSeries>, ParseError> {
    let mut out = Vec::new();
    for_each(text, at_ms, global, |ts| out.push(ts))?;
    Ok(out)
}

/// Hands every sample of `text` to `f` as a series at `at_ms`, one at a
/// time (a scrape of 10,000 orders is 300,000 series: they are never all
/// held as structures at once). Stops at the first line it cannot read.
pub fn for_each(
    text: &str,
    at_ms: i64,
    global: &BTreeMap<String, String>,
    mut f: impl FnMut(TimeSeries),
) -> Result<(), ParseError> {
    for (n, line) in text.lines().enumerate() {
        let err = |why| ParseError { line: n + 1, why };
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name_end = line
            .find(|c: char| c == '{' || c.is_whitespace())
            .ok_or_else(|| err("no value"))?;
        let name = &line[..name_end];
        let (mut pairs, rest) = if line[name_end..].starts_with('{') {
            labels(&line[name_end + 1..]).ok_or_else(|| err("bad labels"))?
        } else {
            (Vec::new(), &line[name_end..])
        };
        let v = rest
            .split_whitespace()
            .next()
            .and_then(value)
            .ok_or_else(|| err("bad value"))?;
        // A store reads NaN as the end of a series (a staleness marker).
        if v.is_nan() {
            continue;
        }
        for (k, gv) in global {
            if !pairs.iter().any(|(pk, _)| pk == k) {
                pairs.push((k.clone(), gv.clone()));
            }
        }
        pairs.push(("__name__".into(), name.to_owned()));
        pairs.retain(|(_, v)| !v.is_empty());
        pairs.sort();
        f(TimeSeries {
            labels: pairs
                .into_iter()
                .map(|(name, value)| Label { name, value })
                .collect(),
            samples: vec![Sample {
                value: v,
                timestamp: at_ms,
            }],
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(ts: &TimeSeries) -> (Vec<(String, String)>, f64) {
        (
            ts.labels
                .iter()
                .map(|l| (l.name.clone(), l.value.clone()))
                .collect(),
            ts.samples[0].value,
        )
    }

    #[test]
    fn the_text_format_becomes_series_with_the_global_labels() {
        let text = "# HELP x_total Things.\n# TYPE x_total counter\nx_total 3\n\
            smokeping_response_duration_seconds_bucket{host=\"h\\\"1\",le=\"+Inf\",site=\"own\"} 7\n\
            g{a=\"x,y}z\"} -Inf\nn{} NaN\n\n";
        let global: BTreeMap<String, String> = [("site".to_owned(), "zrh".to_owned())].into();
        let s = series(text, 5000, &global).unwrap();
        assert_eq!(s.len(), 3, "NaN is left out");
        let (l, v) = flat(&s[0]);
        assert_eq!(
            l,
            [
                ("__name__".to_owned(), "x_total".to_owned()),
                ("site".to_owned(), "zrh".to_owned())
            ]
        );
        assert_eq!(v, 3.0);
        assert_eq!(s[0].samples[0].timestamp, 5000);
        let (l, v) = flat(&s[1]);
        assert!(l.contains(&("host".into(), "h\"1".into())), "{l:?}");
        assert!(l.contains(&("le".into(), "+Inf".into())), "{l:?}");
        assert!(
            l.contains(&("site".into(), "own".into())),
            "its own label wins"
        );
        assert_eq!(v, 7.0);
        let (l, v) = flat(&s[2]);
        assert!(l.contains(&("a".into(), "x,y}z".into())), "{l:?}");
        assert_eq!(v, f64::NEG_INFINITY);
    }

    #[test]
    fn junk_is_an_error_with_its_line() {
        assert_eq!(
            series("ok 1\nbad\n", 0, &BTreeMap::new()).unwrap_err().line,
            2
        );
        assert!(series("x{a=\"1} 2\n", 0, &BTreeMap::new()).is_err());
        assert!(series("x 1x\n", 0, &BTreeMap::new()).is_err());
    }
}
