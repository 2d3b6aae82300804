use super::*;

fn round(id: &str) -> StoreCmd {
    round_at(id, 60)
}

fn round_at(id: &str, t: i64) -> StoreCmd {
    StoreCmd::Round {
        id: OrderId::new(id).unwrap(),
        generation: 1,
        shape: Shape {
            step: 60,
            pings: 1,
            rrd: false,
        },
        t,
        summary: Summary::of(&crate::result::RoundOutcome { rtts: vec![None] }),
        queued: std::time::Instant::now(),
    }
}

fn drain(q: &Queue) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(w) = q.try_next() {
        if let Work::Rounds(id, _) = w {
            out.push(id.to_string());
        }
    }
    out
}

/// A handle whose queue knows `ids` (their prepare commands taken).
fn capture_with(ids: impl Iterator<Item = String>) -> (StoreHandle, Arc<Queue>) {
    let (handle, q) = StoreHandle::capture();
    for id in ids {
        handle.send(StoreCmd::Prepare {
            id: OrderId::new(&id).unwrap(),
            generation: 1,
            shape: Shape {
                step: 60,
                pings: 1,
                rrd: false,
            },
            rrd_start: 0,
        });
    }
    drain(&q);
    (handle, q)
}

#[test]
fn batches_hand_over_a_full_batch_then_the_rest_on_flush_in_order() {
    let (handle, q) = capture_with(
        (0..BATCH)
            .map(|i| format!("o{i:03}"))
            .chain((0..10).map(|i| format!("p{i}"))),
    );
    let mut out = handle.batches();
    for i in 0..BATCH - 1 {
        out.push(round(&format!("o{i:03}")));
    }
    assert!(drain(&q).is_empty(), "nothing before a batch is full");
    out.push(round("o063"));
    let first = drain(&q);
    assert_eq!(first.len(), BATCH);
    for i in 0..10 {
        out.push(round(&format!("p{i}")));
    }
    assert!(drain(&q).is_empty());
    out.flush();
    let rest = drain(&q);
    let want: Vec<String> = (0..10).map(|i| format!("p{i}")).collect();
    assert_eq!(rest, want);
    let want: Vec<String> = (0..BATCH).map(|i| format!("o{i:03}")).collect();
    assert_eq!(first, want, "in the order pushed");
}

#[test]
fn handing_over_never_waits_for_the_writer() {
    // No writer takes anything: three rounds of 10,000 orders are
    // handed over at once, each order once (the queue is per order).
    let (handle, q) = capture_with((0..10_000).map(|i| format!("o{i}")));
    let mut out = handle.batches();
    for round_no in 0..3 {
        for i in 0..10_000 {
            out.push(round_at(&format!("o{i}"), 60 * (round_no + 1)));
        }
    }
    out.flush();
    assert_eq!(q.depth(), (10_000, 10_000), "one entry per order");
    let st = handle.stats();
    assert_eq!(st.waiting_rounds.load(Ordering::Relaxed), 10_000);
    assert!(st.queue_high_water.load(Ordering::Relaxed) >= 10_000);
    assert_eq!(drain(&q).len(), 10_000);
    assert_eq!(st.waiting_rounds.load(Ordering::Relaxed), 0);
}
