//! Wall-clock helpers: Unix time now, Unix time of a `SystemTime`, and the
//! monotonic `Instant` at a Unix time (for sleeping until a round start).
//! The one place the daemon reads the wall clock for timestamps.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Unix time of `t` in seconds (0 before 1970).
pub fn unix_s_of(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Unix time now, in seconds.
pub fn unix_s() -> i64 {
    unix_s_of(SystemTime::now())
}

/// Unix time now, in milliseconds.
pub fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The `Instant` at Unix time `ms` (now when that is in the past).
pub fn instant_at(ms: i64) -> Instant {
    let now_ms = unix_ms();
    let now = Instant::now();
    if ms <= now_ms {
        now
    } else {
        now + Duration::from_millis((ms - now_ms) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions() {
        assert_eq!(unix_s_of(UNIX_EPOCH + Duration::from_secs(42)), 42);
        assert_eq!(unix_s_of(UNIX_EPOCH - Duration::from_secs(1)), 0);
        let (s, ms) = (unix_s(), unix_ms());
        assert!((ms / 1000 - s).abs() <= 1);
        let now = Instant::now();
        assert!(instant_at(0) >= now, "the past is now");
        let later = instant_at(unix_ms() + 10_000);
        assert!(later > now + Duration::from_secs(9));
    }
}
