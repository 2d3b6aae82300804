use super::*;
use crate::result::RoundOutcome;
use crate::store::last_result::LastResult;
use std::time::Duration;

fn summary(rtts_ms: &[Option<u64>]) -> Summary {
    Summary::of(&RoundOutcome {
        rtts: rtts_ms
            .iter()
            .map(|r| r.map(Duration::from_millis))
            .collect(),
    })
}

fn run(base: &BaseDir, cmds: Vec<StoreCmd>) {
    let (handle, writers) = Writers::start(base, 2).unwrap();
    for c in cmds {
        handle.send(c);
    }
    assert_eq!(writers.stop(None), 0, "everything written");
}

#[test]
fn prepare_round_and_archive() {
    let dir = tempfile::tempdir().unwrap();
    let base = BaseDir::new(dir.path());
    base.create().unwrap();
    let id = OrderId::new("app/t").unwrap();
    let shape = Shape {
        step: 60,
        pings: 3,
        rrd: true,
    };
    let t = crate::schedule::rrd_time(now_unix(), 60);
    let round = |generation, rtts: &[Option<u64>]| StoreCmd::Round {
        id: id.clone(),
        generation,
        shape,
        t,
        summary: summary(rtts),
        queued: std::time::Instant::now(),
    };
    run(
        &base,
        vec![
            StoreCmd::Prepare {
                id: id.clone(),
                generation: 2,
                shape,
                rrd_start: t - 60,
            },
            round(2, &[Some(3), None, Some(1)]),
            // A round of an older generation of the order is dropped.
            round(1, &[None, None, None]),
        ],
    );
    let out = id.under(&base.output);
    assert!(out.join(RRD_FILE).is_file());
    let text = std::fs::read_to_string(out.join(last_result::FILE)).unwrap();
    let r = LastResult::parse(&text).unwrap();
    assert_eq!((r.time, r.step, r.pings, r.loss), (t, 60, 3, 1));
    assert_eq!(r.median, Some(0.003));

    run(&base, vec![StoreCmd::Archive { id: id.clone() }]);
    assert!(!out.exists(), "output moved away");
    let archived = id.under(&base.archive);
    assert!(archived.join(RRD_FILE).is_file());
    assert!(archived.join(last_result::FILE).is_file());

    // Preparing the order again restores its archive.
    run(
        &base,
        vec![StoreCmd::Prepare {
            id: id.clone(),
            generation: 3,
            shape,
            rrd_start: t - 60,
        }],
    );
    assert!(out.join(RRD_FILE).is_file());
    assert!(!archived.exists());
}

#[test]
fn a_norrd_order_writes_only_last_result() {
    let dir = tempfile::tempdir().unwrap();
    let base = BaseDir::new(dir.path());
    base.create().unwrap();
    let id = OrderId::new("n").unwrap();
    let shape = Shape {
        step: 20,
        pings: 2,
        rrd: false,
    };
    let t = crate::schedule::rrd_time(now_unix(), 20);
    run(
        &base,
        vec![
            StoreCmd::Prepare {
                id: id.clone(),
                generation: 1,
                shape,
                rrd_start: t - 20,
            },
            StoreCmd::Round {
                id: id.clone(),
                generation: 1,
                shape,
                t,
                summary: summary(&[None, None]),
                queued: std::time::Instant::now(),
            },
        ],
    );
    let out = id.under(&base.output);
    assert!(!out.join(RRD_FILE).exists());
    let r =
        LastResult::parse(&std::fs::read_to_string(out.join(last_result::FILE)).unwrap()).unwrap();
    assert_eq!((r.loss, r.median), (2, None));
}
