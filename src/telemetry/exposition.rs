//! The Prometheus exposition formats: the text format (0.0.4) and
//! OpenMetrics 1.0, written family by family, with label values escaped
//! and floats written as Go writes them (as smokeping_prober's read).

use std::fmt::Write as _;

/// `name="value",…` with values escaped; empty values are left out (an
/// empty label is the same as none).
pub(crate) fn render_labels(labels: &[(String, String)]) -> String {
    let mut out = String::new();
    for (k, v) in labels {
        if v.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(k);
        out.push_str("=\"");
        escape_label_value(&mut out, v);
        out.push('"');
    }
    out
}

fn escape_label_value(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// A float as Go's `strconv.FormatFloat(f, 'g', -1, 64)` writes it, which
/// is how smokeping_prober's `le` labels and values read (`5e-05`,
/// `0.0001`, `26.2144`, `1e+06`).
pub fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if f == 0.0 {
        return "0".into();
    }
    // Rust's `{:e}` gives the shortest digits that read back exactly.
    let e = format!("{f:e}");
    let (mantissa, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    // Go uses the exponent form below 1e-4 and from 1e6 on.
    if (-4..6).contains(&exp) {
        return format!("{f}");
    }
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exp.abs())
}

/// A metric family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// Any value.
    Gauge,
    /// Buckets, sum and count.
    Histogram,
    /// Labels with the value 1 (`_info`).
    Info,
}

/// The text of a scrape: the Prometheus text format (0.0.4), or
/// OpenMetrics 1.0 when the scraper asked for it.
#[derive(Debug)]
pub struct Exposition {
    /// The text so far.
    pub text: String,
    open_metrics: bool,
}

/// Content type of the Prometheus text format.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Content type of OpenMetrics.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

impl Exposition {
    /// An empty scrape; `open_metrics` chooses the format.
    pub fn new(open_metrics: bool) -> Exposition {
        Exposition {
            text: String::with_capacity(64 * 1024),
            open_metrics,
        }
    }

    /// Its content type.
    pub fn content_type(&self) -> &'static str {
        if self.open_metrics {
            OPENMETRICS_CONTENT_TYPE
        } else {
            TEXT_CONTENT_TYPE
        }
    }

    /// Starts a family. `name` is without `_total` (counters) or `_info`
    /// (info): the samples carry the suffix.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let (shown, ty) = match (kind, self.open_metrics) {
            (Kind::Counter, true) => (name.to_owned(), "counter"),
            (Kind::Counter, false) => (format!("{name}_total"), "counter"),
            (Kind::Info, true) => (name.to_owned(), "info"),
            (Kind::Info, false) => (format!("{name}_info"), "gauge"),
            (Kind::Gauge, _) => (name.to_owned(), "gauge"),
            (Kind::Histogram, _) => (name.to_owned(), "histogram"),
        };
        let _ = writeln!(self.text, "# HELP {shown} {help}");
        let _ = writeln!(self.text, "# TYPE {shown} {ty}");
    }

    /// One sample: `name{labels,extra} value`.
    pub fn sample(&mut self, name: &str, labels: &str, extra: &str, value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() || !extra.is_empty() {
            self.text.push('{');
            self.text.push_str(labels);
            if !labels.is_empty() && !extra.is_empty() {
                self.text.push(',');
            }
            self.text.push_str(extra);
            self.text.push('}');
        }
        self.text.push(' ');
        self.text.push_str(&go_float(value));
        self.text.push('\n');
    }

    /// One histogram bucket.
    pub fn bucket(&mut self, name: &str, labels: &str, le: &str, cumulative: u64) {
        self.text.push_str(name);
        self.text.push('{');
        if !labels.is_empty() {
            self.text.push_str(labels);
            self.text.push(',');
        }
        let _ = write!(self.text, "le=\"{le}\"}} {cumulative}");
        self.text.push('\n');
    }

    /// Finishes the scrape (OpenMetrics needs `# EOF`).
    pub fn finish(mut self) -> String {
        if self.open_metrics {
            self.text.push_str("# EOF\n");
        }
        self.text
    }
}

/// Renders `labels` (pairs) for a health metric.
pub fn labels(pairs: &[(&str, &str)]) -> String {
    render_labels(
        &pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<Vec<_>>(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_read_as_go_writes_them() {
        for (f, s) in [
            (0.0, "0"),
            (1.0, "1"),
            (100_000.0, "100000"),
            (1_000_000.0, "1e+06"),
            (1_234_567.0, "1.234567e+06"),
            (0.5, "0.5"),
            (1.5e-7, "1.5e-07"),
            (-2.0, "-2"),
            (f64::INFINITY, "+Inf"),
        ] {
            assert_eq!(go_float(f), s, "{f}");
        }
    }
}
