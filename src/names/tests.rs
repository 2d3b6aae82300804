use super::*;
use std::sync::atomic::AtomicUsize;

/// A lookup answering from a script the test changes, counting calls.
#[derive(Clone, Default)]
struct Script {
    answer: Arc<Mutex<Option<Answer>>>,
    calls: Arc<AtomicUsize>,
    delay: Arc<Mutex<Duration>>,
}

impl Script {
    fn set(&self, a: Answer) {
        *self.answer.lock().unwrap() = Some(a);
    }
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
    fn names(&self, min_s: u64, max_s: u64) -> Arc<Names> {
        let me = self.clone();
        Arc::new(Names::with_lookup(
            Box::new(move |_name, _v6| {
                let me = me.clone();
                Box::pin(async move {
                    me.calls.fetch_add(1, Ordering::SeqCst);
                    let delay = *me.delay.lock().unwrap();
                    tokio::time::sleep(delay).await;
                    me.answer
                        .lock()
                        .unwrap()
                        .clone()
                        .unwrap_or_else(|| Err("no answer scripted".into()))
                })
            }),
            Duration::from_secs(min_s),
            Duration::from_secs(max_s),
        ))
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn ok(a: &str, ttl_s: u64) -> Answer {
    Ok((ip(a), Some(Duration::from_secs(ttl_s))))
}

#[tokio::test(start_paused = true)]
async fn the_first_lookup_is_shared_and_later_rounds_read_the_cache() {
    let s = Script::default();
    s.set(ok("192.0.2.1", 300));
    *s.delay.lock().unwrap() = Duration::from_millis(200);
    let names = s.names(30, 3600);
    let (a, b) = tokio::join!(names.addr("h.test", false), names.addr("h.test", false));
    assert_eq!((a, b), (Some(ip("192.0.2.1")), Some(ip("192.0.2.1"))));
    assert_eq!(s.calls(), 1, "two rounds asking at once: one lookup");
    // Once known, asking never waits, even when a lookup would be slow.
    *s.delay.lock().unwrap() = Duration::from_secs(60);
    let t = tokio::time::Instant::now();
    assert_eq!(names.addr("h.test", false).await, Some(ip("192.0.2.1")));
    assert_eq!(t.elapsed(), Duration::ZERO);
    assert_eq!(s.calls(), 1);
    // The other family is another name.
    *s.delay.lock().unwrap() = Duration::ZERO;
    s.set(ok("2001:db8::1", 300));
    assert_eq!(names.addr("h.test", true).await, Some(ip("2001:db8::1")));
    assert_eq!(s.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_first_lookup_that_hangs_gives_up_after_its_timeout() {
    let s = Script::default();
    s.set(ok("192.0.2.1", 300));
    *s.delay.lock().unwrap() = Duration::from_secs(3600);
    let names = s.names(30, 3600);
    let t = tokio::time::Instant::now();
    assert_eq!(names.addr("slow.test", false).await, None);
    assert_eq!(t.elapsed(), FIRST_LOOKUP_TIMEOUT);
    assert_eq!(names.stats.failures.load(Ordering::Relaxed), 1);
}

/// Runs the refresher for `secs` seconds of paused time.
async fn run_for(names: &Arc<Names>, secs: u64) {
    let cancel = CancellationToken::new();
    let task = tokio::spawn(names.clone().run(cancel.clone()));
    tokio::time::sleep(Duration::from_secs(secs)).await;
    cancel.cancel();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn answers_are_looked_up_again_when_their_ttl_runs_out_within_the_bounds() {
    let s = Script::default();
    let names = s.names(30, 3600);
    // TTL 100 s: looked up again at 100 s, not before.
    s.set(ok("192.0.2.1", 100));
    names.addr("h.test", false).await;
    run_for(&names, 99).await;
    assert_eq!(s.calls(), 1);
    s.set(ok("192.0.2.2", 100));
    run_for(&names, 2).await;
    assert_eq!(s.calls(), 2);
    assert_eq!(names.addr("h.test", false).await, Some(ip("192.0.2.2")));
    assert_eq!(names.stats.changes.load(Ordering::Relaxed), 1);
    // TTL 1 s is held for the lower bound (30 s): 3 lookups in 100 s.
    s.set(ok("192.0.2.2", 1));
    run_for(&names, 100).await; // up to 201 s: the lookup at 200 s
    assert_eq!(s.calls(), 3);
    run_for(&names, 91).await; // up to 292 s: at 230, 260 and 290 s
    assert_eq!(s.calls(), 6);
    // A day's TTL is held for the upper bound (an hour).
    s.set(ok("192.0.2.2", 86_400));
    run_for(&names, 31).await;
    let before = s.calls();
    names.addr("h.test", false).await;
    run_for(&names, 3590).await; // up to 3,913 s; the next lookup is at 3,920 s
    assert_eq!(s.calls(), before, "nothing before the hour is up");
    names.addr("h.test", false).await;
    run_for(&names, 10).await;
    assert_eq!(s.calls(), before + 1, "again after an hour");
}

#[tokio::test(start_paused = true)]
async fn a_failed_lookup_keeps_the_last_address_and_is_counted() {
    let s = Script::default();
    let names = s.names(30, 3600);
    s.set(ok("192.0.2.1", 30));
    assert_eq!(names.addr("h.test", false).await, Some(ip("192.0.2.1")));
    s.set(Err("SERVFAIL".into()));
    run_for(&names, 95).await;
    assert_eq!(names.addr("h.test", false).await, Some(ip("192.0.2.1")));
    let failures = names.stats.failures.load(Ordering::Relaxed);
    assert!(failures >= 2, "{failures} failures counted");
    s.set(ok("192.0.2.9", 30));
    run_for(&names, 31).await;
    assert_eq!(names.addr("h.test", false).await, Some(ip("192.0.2.9")));
    assert_eq!(names.stats.changes.load(Ordering::Relaxed), 1);
    // A name that never resolved has no address, and is tried again.
    s.set(Err("NXDOMAIN".into()));
    assert_eq!(names.addr("gone.test", false).await, None);
    s.set(ok("192.0.2.7", 30));
    run_for(&names, 31).await;
    assert_eq!(names.addr("gone.test", false).await, Some(ip("192.0.2.7")));
}

#[tokio::test(start_paused = true)]
async fn names_no_round_asks_for_are_forgotten() {
    let s = Script::default();
    let names = s.names(30, 60);
    s.set(ok("192.0.2.1", 30));
    names.addr("old.test", false).await;
    names.addr("kept.test", false).await;
    // Forgotten once unused for 2 × 60 s: at the first look after 120 s.
    for _ in 0..6 {
        run_for(&names, 30).await;
        names.addr("kept.test", false).await;
    }
    let kept: Vec<String> = names.entries().keys().map(|(n, _)| n.to_string()).collect();
    assert_eq!(kept, ["kept.test"]);
}

#[test]
fn dns_server_values() {
    assert_eq!(
        parse_server("127.0.0.1").unwrap().to_string(),
        "127.0.0.1:53"
    );
    assert_eq!(
        parse_server("127.0.0.1:5353").unwrap().to_string(),
        "127.0.0.1:5353"
    );
    assert_eq!(parse_server("::1").unwrap().to_string(), "[::1]:53");
    assert_eq!(parse_server("[::1]:53").unwrap().to_string(), "[::1]:53");
    assert!(parse_server("ns.example").is_err());
}
