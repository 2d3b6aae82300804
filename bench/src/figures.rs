//! Figures read from the daemon: lost pings by cause, round start
//! lateness from `.stats.json` and `/metrics`.

use crate::*;

/// Where the lost pings of a run went, as far as they can be told apart.
pub(crate) struct LossCauses {
    /// Replies the targets' kernel could not send (network namespaces).
    pub(crate) targets_kernel: Option<f64>,
    /// Replies our sockets' receive buffers dropped (`SO_RXQ_OVFL`).
    pub(crate) receive_buffer: f64,
    /// Replies that came after their ping's timeout, within its round.
    pub(crate) late: f64,
    /// Replies that came after their round ended (or duplicates).
    pub(crate) after_round: f64,
}

impl LossCauses {
    /// One line: how many of `lost` each cause explains, and how many no
    /// counter explains.
    pub(crate) fn explain(&self, lost: f64) -> String {
        let known =
            self.targets_kernel.unwrap_or(0.0) + self.receive_buffer + self.late + self.after_round;
        let mut parts = Vec::new();
        if let Some(t) = self.targets_kernel {
            parts.push(format!(
                "{t:.0} dropped by the targets' kernel (Ip6OutDiscards)"
            ));
        }
        parts.push(format!(
            "{:.0} dropped by our receive buffer (SO_RXQ_OVFL)",
            self.receive_buffer
        ));
        parts.push(format!("{:.0} replies after their timeout", self.late));
        parts.push(format!(
            "{:.0} replies after their round (or duplicates)",
            self.after_round
        ));
        format!(
            "lost by cause                  {}; unexplained {:.0}",
            parts.join(", "),
            (lost - known).max(0.0)
        )
    }
}

/// Round start lateness so far, from the daemon's histogram: (count, sum
/// s, cumulative bucket counts by bound).
pub(crate) type Lateness = (f64, f64, Vec<(String, f64)>);

pub(crate) fn lateness(port: u16) -> anyhow::Result<Lateness> {
    let (_, _, body) = get(port, "/metrics")?;
    let text = String::from_utf8_lossy(&body);
    let mut count = 0.0;
    let mut sum = 0.0;
    let mut buckets = Vec::new();
    for l in text.lines() {
        let v = |l: &str| {
            l.rsplit(' ')
                .next()
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        if let Some(rest) = l.strip_prefix("pingmachine_round_start_lateness_seconds_bucket{le=\"")
        {
            let le = rest.split('"').next().unwrap_or("").to_owned();
            buckets.push((le, v(l)));
        } else if l.starts_with("pingmachine_round_start_lateness_seconds_count ") {
            count = v(l);
        } else if l.starts_with("pingmachine_round_start_lateness_seconds_sum ") {
            sum = v(l);
        }
    }
    Ok((count, sum, buckets))
}

/// Prints a lateness window: starts, average, and the bucket bounds that
/// hold the 99th percentile and the latest start.
pub(crate) fn print_lateness(
    name: &str,
    a: &(f64, f64, Vec<(String, f64)>),
    b: &(f64, f64, Vec<(String, f64)>),
) {
    let n = b.0 - a.0;
    let avg_ms = if n > 0.0 {
        (b.1 - a.1) / n * 1000.0
    } else {
        0.0
    };
    let delta: Vec<(String, f64)> =
        b.2.iter()
            .zip(&a.2)
            .map(|((le, x), (_, y))| (le.clone(), x - y))
            .collect();
    let bound = |q: f64| {
        delta
            .iter()
            .find(|(_, c)| *c >= (q * n).ceil())
            .map_or("-".to_owned(), |(le, _)| le.clone())
    };
    println!(
        "{name:<34} {n:>6.0} starts, avg {avg_ms:.2} ms, p99 <= {} s, max <= {} s",
        bound(0.99),
        bound(1.0)
    );
}

/// The `q` quantile of round start lateness between two stats snapshots,
/// as the upper bound of its histogram bucket ("> 5 s" beyond the last).
pub(crate) fn window_late_quantile(s0: &Value, s: &Value, q: f64) -> String {
    let counts = |v: &Value| -> Vec<f64> {
        v["round_start_late_buckets"]
            .as_array()
            .map(|a| a.iter().map(|x| x.as_f64().unwrap_or(0.0)).collect())
            .unwrap_or_default()
    };
    let bounds: Vec<f64> = s["round_start_late_bounds_s"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default();
    let (a, b) = (counts(s0), counts(s));
    let delta: Vec<f64> = b
        .iter()
        .enumerate()
        .map(|(i, x)| x - a.get(i).copied().unwrap_or(0.0))
        .collect();
    let total: f64 = delta.iter().sum();
    if total <= 0.0 {
        return "-".into();
    }
    let mut seen = 0.0;
    for (i, c) in delta.iter().enumerate() {
        seen += c;
        if seen >= q * total {
            return match bounds.get(i) {
                Some(le) => format!("<= {:.1} ms", le * 1000.0),
                None => format!("> {:.0} ms", bounds.last().copied().unwrap_or(0.0) * 1000.0),
            };
        }
    }
    "-".into()
}
