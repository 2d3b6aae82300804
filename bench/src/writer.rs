//! `writer`: RRD writer throughput with N orders whose files are warm.

use crate::*;

pub(crate) fn writer(cli: &Cli, orders: usize, rounds: u32, threads: usize) -> anyhow::Result<()> {
    use pingmachine::basedir::BaseDir;
    use pingmachine::order::OrderId;
    use pingmachine::result::{RoundOutcome, Summary};
    use pingmachine::store::writer::Writers;
    use pingmachine::store::{Shape, StoreCmd};

    let root = tempbase(&cli.dir, "writer")?;
    if let Err(e) = room_for_rrds(&root, orders, 1 << 30) {
        std::fs::remove_dir_all(&root).ok();
        return Err(e);
    }
    let base = BaseDir::new(&root);
    base.create()?;
    let shape = Shape {
        step: 60,
        pings: 20,
        rrd: true,
    };
    let ids: Vec<OrderId> = (0..orders)
        .map(|i| OrderId::new(&format!("w/o{i:05}")))
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!(e))?;
    let summary = Summary::of(&RoundOutcome {
        rtts: (0..20)
            .map(|i| Some(Duration::from_micros(20_000 + i * 37)))
            .collect(),
    });
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as i64;
    let t0 = now / 60 * 60;

    // Prepare every order, as the daemon does at order start.
    let prepare_all = |store: &pingmachine::store::writer::StoreHandle| {
        for id in &ids {
            store.send(StoreCmd::Prepare {
                id: id.clone(),
                generation: 1,
                shape,
                rrd_start: t0 - 60,
            });
        }
    };

    // Create the files.
    let (store, writers) = Writers::start(&base, threads)?;
    let created = Instant::now();
    prepare_all(&store);
    writers.stop(None);
    let create_s = created.elapsed().as_secs_f64();
    // Flush the gigabytes just created, so that their write-back does not
    // run during the measurement: "warm" means cached and clean.
    nix::unistd::sync();

    // Then write rounds to the (now warm) files.
    let (store, writers) = Writers::start(&base, threads)?;
    prepare_all(&store);
    // Wait until the writers have prepared (checked) every file, so that
    // only round writes are timed.
    let prepared = wait(Duration::from_secs(600), || {
        store
            .stats()
            .prepared
            .load(std::sync::atomic::Ordering::Relaxed)
            >= orders as u64
    });
    if !prepared {
        bail!("the writers did not prepare {orders} orders within 10 minutes");
    }
    nix::unistd::sync();
    let started = Instant::now();
    write_rounds(&store, &ids, rounds, shape, t0, &summary)?;
    let stats = store.stats();
    let updates = stats.rrd_updates.load(std::sync::atomic::Ordering::Relaxed);
    let errors = stats.errors.load(std::sync::atomic::Ordering::Relaxed);
    writers.stop(None);
    let secs = started.elapsed().as_secs_f64();
    println!("--- store writer: {orders} RRDs (step 60, 20 pings, ~2.1 MB each), {threads} writer threads ---");
    println!(
        "RRD files created                {:>10} in {:.1} s ({:.0}/s)",
        orders,
        create_s,
        orders as f64 / create_s
    );
    println!(
        "rounds written (RRD + last_result) {:>8} in {:.2} s",
        u64::from(rounds) * orders as u64,
        secs
    );
    println!(
        "writer throughput                {:>10.0} round writes/s (RRD updates written {updates}, errors {errors})",
        f64::from(rounds) * orders as f64 / secs
    );
    alone(&base, &ids, threads, rounds, (t0, now), &summary);
    std::fs::remove_dir_all(&root).ok();
    Ok(())
}

/// Syncs, then runs `write(round, id)` for rounds 1..=`rounds` over `ids`
/// split across `threads` threads; returns the seconds it took.
pub(crate) fn timed_per_thread<T: Sync>(
    ids: &[T],
    threads: usize,
    rounds: u32,
    write: impl Fn(i64, &T) + Sync,
) -> f64 {
    nix::unistd::sync();
    let started = Instant::now();
    std::thread::scope(|sc| {
        for part in ids.chunks(ids.len().div_ceil(threads.max(1)).max(1)) {
            let write = &write;
            sc.spawn(move || {
                for r in 1..=i64::from(rounds) {
                    for id in part {
                        write(r, id);
                    }
                }
            });
        }
    });
    started.elapsed().as_secs_f64()
}

/// One round of every order at a time, each written before the next is
/// handed over (a newer round of an order would otherwise supersede its
/// unwritten last_result, and fewer files would be written than rounds).
fn write_rounds(
    store: &pingmachine::store::writer::StoreHandle,
    ids: &[pingmachine::order::OrderId],
    rounds: u32,
    shape: pingmachine::store::Shape,
    t0: i64,
    summary: &pingmachine::result::Summary,
) -> anyhow::Result<()> {
    use pingmachine::store::StoreCmd;
    let orders = ids.len();
    let last_results = || {
        store
            .stats()
            .last_results
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    for r in 1..=i64::from(rounds) {
        for id in ids {
            store.send(StoreCmd::Round {
                id: id.clone(),
                generation: 1,
                shape,
                t: t0 + r * 60,
                summary: summary.clone(),
                queued: Instant::now(),
            });
        }
        let want = r as u64 * orders as u64;
        let deadline = Instant::now() + Duration::from_secs(600);
        while last_results() < want {
            if Instant::now() > deadline {
                bail!("round {r} was not written within 10 minutes");
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    Ok(())
}

/// librrd alone and `last_result` alone: the same writes straight to the
/// warm files, one thread per writer.
fn alone(
    base: &pingmachine::basedir::BaseDir,
    ids: &[pingmachine::order::OrderId],
    threads: usize,
    rounds: u32,
    (t0, now): (i64, i64),
    summary: &pingmachine::result::Summary,
) {
    let orders = ids.len();
    let values = pingmachine::store::rrd::update_values(summary);
    let n_writes = u64::from(rounds) * orders as u64;
    let rrd_secs = timed_per_thread(ids, threads, rounds, |r, id| {
        let path = id.under(&base.output).join("main.rrd");
        let _ =
            pingmachine::store::rrd::update_rrd(&path, t0 + (i64::from(rounds) + r) * 60, &values);
    });
    println!(
        "librrd updates alone             {:>10.0} updates/s ({n_writes} updates in {rrd_secs:.2} s)",
        n_writes as f64 / rrd_secs
    );
    // last_result alone, the same way.
    let lr_secs = timed_per_thread(ids, threads, rounds, |r, id| {
        let text = pingmachine::store::last_result::format(t0 + r * 60, now, 60, 20, summary);
        let _ = pingmachine::store::last_result::write_atomic(&id.under(&base.output), &text);
    });
    println!(
        "last_result writes alone         {:>10.0} writes/s ({n_writes} writes in {lr_secs:.2} s)",
        n_writes as f64 / lr_secs
    );
}
