//! The daemon's own telemetry, each figure defined once: a [`Sheet`] is
//! filled by every part that counts something (jobs, store, sinks, the
//! ICMP engine, rrdcached, logging), each figure with its key in
//! `BASEDIR/.stats.json` and, when it is one, its Prometheus series. The
//! same sheet renders both: [`Sheet::to_json`] and [`Sheet::expose`].
//!
//! * A *figure* ([`Sheet::figure`]) has a key in `.stats.json`; calling
//!   [`Figure::counter`] or [`Figure::gauge`] on it publishes the same
//!   value on `/metrics` too.
//! * [`Sheet::json`] is for what only the file shows (time, pid, settings,
//!   addresses), [`Sheet::metric`] for what only `/metrics` shows
//!   (process figures, counts that need a directory walk).
//! * [`Sheet::object`] and [`Sheet::item`] nest keys (`store.rrd_updates`,
//!   `line_protocol[].sent`).
//!
//! A leaf: it knows the formats, not the parts.

pub mod exposition;

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::Value;

pub use exposition::{go_float, Exposition, Kind};

/// A number of the sheet: kept as it is for JSON (an integer stays an
/// integer), as a float for Prometheus.
pub trait Num: Copy + Into<Value> {
    /// The value as Prometheus writes it.
    fn as_f64(self) -> f64;
}

impl Num for u64 {
    fn as_f64(self) -> f64 {
        self as f64
    }
}

impl Num for f64 {
    fn as_f64(self) -> f64 {
        self
    }
}

impl Num for bool {
    fn as_f64(self) -> f64 {
        if self {
            1.0
        } else {
            0.0
        }
    }
}

/// One metric family and its samples so far.
#[derive(Debug)]
struct Family {
    name: &'static str,
    kind: Kind,
    help: &'static str,
    samples: Vec<Sample>,
}

#[derive(Debug)]
enum Sample {
    Value {
        labels: String,
        value: f64,
    },
    Histogram {
        bounds: Vec<f64>,
        /// Counts per bucket, not cumulative; the last is of values above
        /// every bound.
        counts: Vec<u64>,
        sum: f64,
    },
}

/// A value in the JSON tree, in the order it was added.
#[derive(Debug)]
enum Node {
    Value(Value),
    Object(Vec<(String, Node)>),
    List(Vec<Vec<(String, Node)>>),
}

/// The figures of one moment. Families render in the order of their
/// first sample; keys in the order they were added.
#[derive(Debug, Default)]
pub struct Sheet {
    keys: Vec<(String, Node)>,
    families: Vec<Family>,
}

/// A figure on its way to `/metrics` too.
#[derive(Debug)]
#[must_use = "a figure is published on /metrics only by counter() or gauge()"]
pub struct Figure<'a> {
    families: &'a mut Vec<Family>,
    value: f64,
}

impl Figure<'_> {
    /// Also the counter `NAME_total` (`name` without `_total`).
    pub fn counter(self, name: &'static str, help: &'static str) {
        self.publish(name, Kind::Counter, help, &[]);
    }

    /// Also the counter `NAME_total{labels}`.
    pub fn counter_with(self, name: &'static str, help: &'static str, labels: &[(&str, &str)]) {
        self.publish(name, Kind::Counter, help, labels);
    }

    /// Also the gauge `NAME`.
    pub fn gauge(self, name: &'static str, help: &'static str) {
        self.publish(name, Kind::Gauge, help, &[]);
    }

    /// Also the gauge `NAME{labels}`.
    pub fn gauge_with(self, name: &'static str, help: &'static str, labels: &[(&str, &str)]) {
        self.publish(name, Kind::Gauge, help, labels);
    }

    /// Also the info metric `NAME_info{labels} 1`.
    pub fn info(self, name: &'static str, help: &'static str, labels: &[(&str, &str)]) {
        self.publish(name, Kind::Info, help, labels);
    }

    /// Not on `/metrics` after all (an optional series that is absent).
    pub fn none(self) {}

    fn publish(self, name: &'static str, kind: Kind, help: &'static str, labels: &[(&str, &str)]) {
        let labels = exposition::labels(labels);
        family(self.families, name, kind, help)
            .samples
            .push(Sample::Value {
                labels,
                value: self.value,
            });
    }
}

fn family<'f>(
    families: &'f mut Vec<Family>,
    name: &'static str,
    kind: Kind,
    help: &'static str,
) -> &'f mut Family {
    let i = match families.iter().position(|f| f.name == name) {
        Some(i) => i,
        None => {
            families.push(Family {
                name,
                kind,
                help,
                samples: Vec::new(),
            });
            families.len() - 1
        }
    };
    &mut families[i]
}

impl Sheet {
    /// An empty sheet.
    pub fn new() -> Sheet {
        Sheet::default()
    }

    /// `key` in `.stats.json` only.
    pub fn json(&mut self, key: &str, value: impl Into<Value>) {
        self.keys.push((key.to_owned(), Node::Value(value.into())));
    }

    /// `key` in `.stats.json`; on `/metrics` too through the [`Figure`].
    pub fn figure<T: Num>(&mut self, key: &str, value: T) -> Figure<'_> {
        self.keys.push((key.to_owned(), Node::Value(value.into())));
        Figure {
            families: &mut self.families,
            value: value.as_f64(),
        }
    }

    /// A value on `/metrics` only.
    pub fn metric<T: Num>(&mut self, value: T) -> Figure<'_> {
        Figure {
            families: &mut self.families,
            value: value.as_f64(),
        }
    }

    /// A histogram on `/metrics` only: `counts` per bucket of `bounds`
    /// (not cumulative; one more for values above every bound) and their
    /// `sum`.
    pub fn histogram(
        &mut self,
        name: &'static str,
        help: &'static str,
        bounds: &[f64],
        counts: Vec<u64>,
        sum: f64,
    ) {
        family(&mut self.families, name, Kind::Histogram, help)
            .samples
            .push(Sample::Histogram {
                bounds: bounds.to_vec(),
                counts,
                sum,
            });
    }

    /// The keys `fill` adds go into the object `key`.
    pub fn object(&mut self, key: &str, fill: impl FnOnce(&mut Sheet)) {
        let inner = self.nested(fill);
        self.keys.push((key.to_owned(), Node::Object(inner)));
    }

    /// The list `key` (empty until [`Sheet::item`] adds to it).
    pub fn list(&mut self, key: &str) {
        if !self.keys.iter().any(|(k, _)| k == key) {
            self.keys.push((key.to_owned(), Node::List(Vec::new())));
        }
    }

    /// One more object, filled by `fill`, in the list `key`.
    pub fn item(&mut self, key: &str, fill: impl FnOnce(&mut Sheet)) {
        self.list(key);
        let inner = self.nested(fill);
        if let Some((_, Node::List(items))) = self.keys.iter_mut().find(|(k, _)| k == key) {
            items.push(inner);
        }
    }

    fn nested(&mut self, fill: impl FnOnce(&mut Sheet)) -> Vec<(String, Node)> {
        let mut inner = Sheet {
            keys: Vec::new(),
            families: std::mem::take(&mut self.families),
        };
        fill(&mut inner);
        self.families = inner.families;
        inner.keys
    }

    /// The text of `.stats.json`.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(&Obj(&self.keys))
            .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// Writes every family to `out`.
    pub fn expose(&self, out: &mut Exposition) {
        for f in &self.families {
            out.family(f.name, f.kind, f.help);
            let sample = match f.kind {
                Kind::Counter => format!("{}_total", f.name),
                Kind::Info => format!("{}_info", f.name),
                Kind::Gauge | Kind::Histogram => f.name.to_owned(),
            };
            for s in &f.samples {
                match s {
                    Sample::Value { labels, value } => out.sample(&sample, labels, "", *value),
                    Sample::Histogram {
                        bounds,
                        counts,
                        sum,
                    } => histogram(out, f.name, bounds, counts, *sum),
                }
            }
        }
    }
}

fn histogram(out: &mut Exposition, name: &str, bounds: &[f64], counts: &[u64], sum: f64) {
    let bucket = format!("{name}_bucket");
    let mut cumulative = 0;
    for (b, c) in bounds.iter().zip(counts) {
        cumulative += c;
        out.bucket(&bucket, "", &go_float(*b), cumulative);
    }
    let count: u64 = counts.iter().sum();
    out.bucket(&bucket, "", "+Inf", count);
    out.sample(&format!("{name}_sum"), "", "", sum);
    out.sample(&format!("{name}_count"), "", "", count as f64);
}

/// Serialises keys in their order.
struct Obj<'a>(&'a [(String, Node)]);

impl Serialize for Obj<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            match v {
                Node::Value(v) => m.serialize_entry(k, v)?,
                Node::Object(o) => m.serialize_entry(k, &Obj(o))?,
                Node::List(items) => m.serialize_entry(k, &List(items))?,
            }
        }
        m.end()
    }
}

struct List<'a>(&'a [Vec<(String, Node)>]);

impl Serialize for List<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for o in self.0 {
            seq.serialize_element(&Obj(o))?;
        }
        seq.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_figure_renders_in_both_formats() {
        let mut s = Sheet::new();
        s.json("pid", 7u64);
        s.figure("rounds", 3u64)
            .counter("x_rounds", "Rounds delivered.");
        s.object("store", |s| {
            s.figure("waiting", 2u64).gauge("x_waiting", "Waiting.");
            s.figure("delay_ms", 1.5f64).none();
        });
        s.list("outputs");
        for d in ["a", "b"] {
            s.item("outputs", |s| {
                s.json("destination", d);
                s.figure("sent", 5u64)
                    .counter_with("x_lines", "Lines.", &[("destination", d)]);
            });
        }
        s.metric(true).gauge("x_up", "Up.");
        s.histogram(
            "x_late_seconds",
            "Lateness.",
            &[0.1, 1.0],
            vec![1, 2, 3],
            9.5,
        );

        assert_eq!(
            s.to_json(),
            r#"{
  "pid": 7,
  "rounds": 3,
  "store": {
    "waiting": 2,
    "delay_ms": 1.5
  },
  "outputs": [
    {
      "destination": "a",
      "sent": 5
    },
    {
      "destination": "b",
      "sent": 5
    }
  ]
}"#
        );
        let mut out = Exposition::new(false);
        s.expose(&mut out);
        assert_eq!(
            out.finish(),
            "# HELP x_rounds_total Rounds delivered.\n# TYPE x_rounds_total counter\nx_rounds_total 3\n\
             # HELP x_waiting Waiting.\n# TYPE x_waiting gauge\nx_waiting 2\n\
             # HELP x_lines_total Lines.\n# TYPE x_lines_total counter\n\
             x_lines_total{destination=\"a\"} 5\nx_lines_total{destination=\"b\"} 5\n\
             # HELP x_up Up.\n# TYPE x_up gauge\nx_up 1\n\
             # HELP x_late_seconds Lateness.\n# TYPE x_late_seconds histogram\n\
             x_late_seconds_bucket{le=\"0.1\"} 1\nx_late_seconds_bucket{le=\"1\"} 3\n\
             x_late_seconds_bucket{le=\"+Inf\"} 6\nx_late_seconds_sum 9.5\nx_late_seconds_count 6\n"
        );
    }

    #[test]
    fn an_empty_list_stays_in_the_file() {
        let mut s = Sheet::new();
        s.list("line_protocol");
        assert_eq!(s.to_json(), "{\n  \"line_protocol\": []\n}");
    }
}
