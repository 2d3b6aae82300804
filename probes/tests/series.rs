#![allow(clippy::unwrap_used)]
//! `series`: sequential pings, `interval` apart, in order (paused clock).

use std::time::Duration;

use probes::{series, Lost};
use tokio::time::Instant;

#[tokio::test(start_paused = true)]
async fn spacing_and_order() {
    let start = Instant::now();
    let mut starts = Vec::new();
    let mut n = 0u32;
    let results = series(4, Duration::from_secs(1), || {
        starts.push(start.elapsed());
        n += 1;
        let i = n;
        async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if i == 2 {
                Err(Lost::Timeout)
            } else {
                Ok(Duration::from_millis(u64::from(i)))
            }
        }
    })
    .await;
    assert_eq!(
        results,
        vec![
            Some(Duration::from_millis(1)),
            None,
            Some(Duration::from_millis(3)),
            Some(Duration::from_millis(4)),
        ]
    );
    let secs: Vec<u64> = starts.iter().map(|d| d.as_millis() as u64).collect();
    assert_eq!(secs, vec![0, 1000, 2000, 3000]);
    assert_eq!(start.elapsed(), Duration::from_millis(3100));
}

#[tokio::test(start_paused = true)]
async fn slow_pings_push_the_next_ones() {
    let start = Instant::now();
    let mut starts = Vec::new();
    let mut n = 0u32;
    let results = series(4, Duration::from_secs(1), || {
        starts.push(start.elapsed().as_millis() as u64);
        n += 1;
        // Ping 1 (index 0) takes 2.5 s, the others 10 ms.
        let took = if n == 1 { 2500 } else { 10 };
        async move {
            tokio::time::sleep(Duration::from_millis(took)).await;
            Ok(Duration::from_millis(took))
        }
    })
    .await;
    assert_eq!(results.len(), 4);
    assert!(results.iter().all(Option::is_some));
    // Ping 1 was due at 1000 but ping 0 ended at 2500; ping 2 is due at
    // 2000 < 2510, so it starts right after; ping 3 is on schedule.
    assert_eq!(starts, vec![0, 2500, 2510, 3000]);
}

#[tokio::test(start_paused = true)]
async fn zero_pings_and_zero_interval() {
    let none = series(0, Duration::from_secs(1), || async { Ok(Duration::ZERO) }).await;
    assert!(none.is_empty());
    let start = Instant::now();
    let all = series(3, Duration::ZERO, || async { Err(Lost::Refused) }).await;
    assert_eq!(all, vec![None, None, None]);
    assert_eq!(start.elapsed(), Duration::ZERO);
}
