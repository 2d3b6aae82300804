//! Order lifecycle, bad input and faults, against the real binary: the bad
//! order corpus through `check` and the daemon, `rejected/`, expiry,
//! archive and restore, shape changes, corrupted RRDs, kill -9 and restart,
//! and a full disk (tmpfs, root only).

#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use crate::support::{
    can_ping, require_root, rrd_info, rrdtool, skip, wait_for, Base, Daemon, Tmpfs, EVENTUALLY,
};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/orders")
}

/// (name, field, reason fragment) of every bad fixture.
fn expected_errors() -> Vec<(String, Option<String>, String)> {
    fs::read_to_string(fixtures().join("bad.expected"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let mut it = l.split('\t');
            let name = it.next().unwrap().to_owned();
            let field = it.next().unwrap();
            let frag = it.next().unwrap().to_owned();
            (name, (field != "-").then(|| field.to_owned()), frag)
        })
        .collect()
}

fn order(host: &str, step: u32, pings: u32) -> String {
    format!("user: test\nstep: {step}\npings: {pings}\nprobe: fping\nfping:\n  host: '{host}'\n")
}

fn set_mtime(path: &Path, ago: Duration) {
    let f = fs::File::options().write(true).open(path).unwrap();
    f.set_modified(SystemTime::now() - ago).unwrap();
}

fn check(files: &[PathBuf]) -> (bool, String) {
    let out = Command::new(crate::support::bin())
        .arg("check")
        .args(files)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// `check DIR` walks the tree as the daemon does and fails on the bad
/// fixtures; `check -` reads standard input.
#[test]
fn check_reads_directories_and_standard_input() {
    let (ok, out) = check(&[fixtures().join("good")]);
    assert!(ok, "{out}");
    assert!(out.contains("order files checked, 0 invalid"), "{out}");
    let (ok, out) = check(&[fixtures().join("bad")]);
    assert!(!ok, "{out}");
    let n = fs::read_dir(fixtures().join("bad")).unwrap().count();
    assert!(
        out.contains(&format!("{n} order files checked, {n} invalid")),
        "{out}"
    );
    let run = |input: &str| {
        let mut child = Command::new(crate::support::bin())
            .args(["check", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), input.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (ok, out) = run(
        "user: u\nstep: 60\npings: 5\nprobe: fping\nfping: {host: 127.0.0.1, intervall: 500}\n",
    );
    assert!(ok, "{out}");
    assert!(
        out.contains("unknown field `fping.intervall`") && out.contains("-: ok"),
        "{out}"
    );
    let (ok, out) = run("user: u\nstep: 60\n");
    assert!(!ok, "{out}");
}

#[test]
fn check_reports_every_bad_order_with_its_reason() {
    let expected = expected_errors();
    let on_disk = fs::read_dir(fixtures().join("bad")).unwrap().count();
    assert_eq!(
        expected.len(),
        on_disk,
        "every bad fixture has an expected error and vice versa"
    );
    for (name, field, frag) in &expected {
        let path = fixtures().join("bad").join(name);
        let (ok, out) = check(std::slice::from_ref(&path));
        assert!(!ok, "{name}: check accepted it:\n{out}");
        assert!(
            out.contains(&path.display().to_string()),
            "{name}: file not named:\n{out}"
        );
        if let Some(f) = field {
            assert!(
                out.contains(&format!("field `{f}`")),
                "{name}: field {f} not named:\n{out}"
            );
        }
        assert!(
            out.contains(frag.as_str()),
            "{name}: reason {frag:?} missing:\n{out}"
        );
    }
    // Good and demo orders pass; an unknown key passes with a warning.
    let mut good: Vec<PathBuf> = fs::read_dir(fixtures().join("good"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    for demo in ["demo/demo", "demo-netns/demo"] {
        good.extend(
            fs::read_dir(fixtures().join(demo))
                .unwrap()
                .map(|e| e.unwrap().path()),
        );
    }
    let (ok, out) = check(&good);
    assert!(ok, "{out}");
    assert_eq!(out.matches(": ok").count(), good.len(), "{out}");
    let (ok, out) = check(&[fixtures().join("warn/unknown-key")]);
    assert!(
        ok && out.contains("warning:") && out.contains("unknown field `stpe`"),
        "{out}"
    );
    // One bad file among good ones fails the whole check.
    let (ok, _) = check(&[good[0].clone(), fixtures().join("bad/syntax")]);
    assert!(!ok);
}

#[test]
fn daemon_moves_bad_orders_to_rejected_and_keeps_the_good_ones() {
    let base = Base::new();
    let bad_dir = base.orders().join("bad");
    fs::create_dir_all(&bad_dir).unwrap();
    let expected = expected_errors();
    for (name, _, _) in &expected {
        fs::copy(fixtures().join("bad").join(name), bad_dir.join(name)).unwrap();
    }
    std::os::unix::fs::symlink("/etc/hostname", bad_dir.join("symlink-outside")).unwrap();
    fs::write(bad_dir.join("control\u{1}char"), order("127.0.0.1", 60, 5)).unwrap();
    base.write_order("good/one", &order("127.0.0.1", 10, 2));
    let d = Daemon::start(&base, &[]);
    d.wait_log_line(&["order started", "order=good/one"], EVENTUALLY);

    let rejected = base.path().join("rejected/bad");
    for (name, field, frag) in &expected {
        let err_file = rejected.join(format!("{name}.error"));
        let text = wait_for(Duration::from_secs(20), || {
            fs::read_to_string(&err_file).ok()
        })
        .unwrap_or_else(|| {
            panic!(
                "{name}: no rejected/bad/{name}.error; log:\n{}",
                d.log_text()
            )
        });
        if let Some(f) = field {
            assert!(text.contains(&format!("field: {f}\n")), "{name}: {text}");
        }
        assert!(text.contains(frag.as_str()), "{name}: {text}");
        assert!(
            text.contains("file: ") && text.contains("time: ") && text.contains("rule: "),
            "{name}: {text}"
        );
        // Moved, byte for byte, never deleted.
        assert!(!bad_dir.join(name).exists(), "{name} still in orders/");
        assert_eq!(
            fs::read(rejected.join(name)).unwrap(),
            fs::read(fixtures().join("bad").join(name)).unwrap(),
            "{name}: content changed"
        );
    }
    let text = wait_for(Duration::from_secs(10), || {
        fs::read_to_string(rejected.join("symlink-outside.error")).ok()
    })
    .unwrap();
    assert!(text.contains("symlink leads outside orders/"), "{text}");
    assert_eq!(
        fs::read_link(rejected.join("symlink-outside")).unwrap(),
        PathBuf::from("/etc/hostname")
    );
    assert!(
        Path::new("/etc/hostname").exists(),
        "the symlink target is untouched"
    );

    // A name that cannot be an id is left alone, reported once.
    d.wait_log_line(
        &["file in orders/ ignored", "control character"],
        EVENTUALLY,
    );
    assert!(bad_dir.join("control\u{1}char").exists());

    // One log line per rejection.
    std::thread::sleep(Duration::from_millis(300));
    d.signal("HUP");
    d.wait_log("SIGHUP: rescanning", EVENTUALLY);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        d.log_text().matches("invalid order").count(),
        expected.len() + 1,
        "{}",
        d.log_text()
    );
    assert_eq!(d.log_text().matches("file in orders/ ignored").count(), 1);

    // A fixed order is accepted and its rejection cleared.
    base.write_order("bad/wrong-type", &order("127.0.0.2", 10, 2));
    d.wait_log_line(&["order started", "order=bad/wrong-type"], EVENTUALLY);
    assert!(
        wait_for(EVENTUALLY, || (!rejected.join("wrong-type").exists())
            .then_some(()))
        .is_some()
    );
    assert!(!rejected.join("wrong-type.error").exists());

    // The good order kept running beside all of this.
    if can_ping("daemon_moves_bad_orders_to_rejected_and_keeps_the_good_ones (rounds part)") {
        let r = wait_for(Duration::from_secs(30), || base.last_result("good/one"));
        assert!(
            r.is_some(),
            "good order produced no result; log:\n{}",
            d.log_text()
        );
    }
}

/// Ids with files in `tree` (output/ or archive/).
fn ids_with_files(tree: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![tree.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = fs::read_dir(&dir) else { continue };
        let mut files = false;
        for e in rd.flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                files = true;
            }
        }
        if files && dir != tree {
            out.push(dir.strip_prefix(tree).unwrap().to_str().unwrap().to_owned());
        }
    }
    out.sort();
    out
}

fn assert_never_both(base: &Base) {
    let out = ids_with_files(&base.path().join("output"));
    let arch = ids_with_files(&base.path().join("archive"));
    for id in &out {
        assert!(!arch.contains(id), "{id} is in both output/ and archive/");
    }
}

fn make_rrd(path: &Path, step: u32) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    rrdtool(&[
        "create",
        path.to_str().unwrap(),
        "--step",
        &step.to_string(),
        "DS:loss:GAUGE:120:0:5",
        "RRA:AVERAGE:0.5:1:10",
    ]);
}

/// `--max-age 0`: an order written two days ago (and never touched) keeps
/// running, through rescans too.
#[test]
fn orders_never_expire_with_max_age_0() {
    if !crate::support::can_ping("orders_never_expire_with_max_age_0") {
        return;
    }
    let base = Base::new();
    base.write_order("app/old", &order("127.0.0.1", 10, 2));
    let file = base.orders().join("app/old");
    set_mtime(&file, Duration::from_secs(2 * 86_400));
    let d = Daemon::start(&base, &["--max-age", "0"]);
    let first = wait_for(EVENTUALLY, || base.last_result("app/old"))
        .unwrap_or_else(|| panic!("no round of a two-day-old order; log:\n{}", d.log_text()))
        .int("time");
    d.signal("HUP");
    d.wait_log("full rescan done", EVENTUALLY);
    let later = wait_for(EVENTUALLY, || {
        let t = base.last_result("app/old")?.int("time");
        (t > first).then_some(t)
    });
    assert!(later.is_some(), "rounds go on; log:\n{}", d.log_text());
    assert!(file.exists(), "the order file stays");
    assert!(!d.log_text().contains("order expired"), "{}", d.log_text());
}

#[test]
fn expiry_archive_and_restore() {
    let base = Base::new();
    // Expired before start (older than --max-age 100): removed and archived at start-up.
    base.write_order("app/old", &order("127.0.0.1", 60, 5));
    set_mtime(&base.orders().join("app/old"), Duration::from_secs(200));
    make_rrd(&base.output("app/old").join("main.rrd"), 60);
    // Its line-protocol sidecar is a user file: expiry keeps it (as the
    // original did), for a new-interface id as for an md5 one.
    let sidecar = base.path().join("telegraf/app/old");
    fs::create_dir_all(sidecar.parent().unwrap()).unwrap();
    fs::write(&sidecar, "measurement_name: m\n").unwrap();
    // An output directory without an order: archived at start-up.
    fs::create_dir_all(base.output("gone/orphan")).unwrap();
    fs::write(base.output("gone/orphan/last_result"), "time: 1\n").unwrap();
    // A fresh order.
    base.write_order("app/live", &order("127.0.0.1", 60, 5));

    let d = Daemon::start(&base, &["--max-age", "100"]);
    d.wait_log_line(&["order expired", "order=app/old"], EVENTUALLY);
    assert!(
        !base.orders().join("app/old").exists(),
        "expired order file removed"
    );
    assert!(
        sidecar.exists(),
        "the telegraf/ sidecar of an expired order is never deleted"
    );
    let archived = base.path().join("archive/app/old/main.rrd");
    assert!(
        wait_for(EVENTUALLY, || archived.exists().then_some(())).is_some(),
        "{}",
        d.log_text()
    );
    assert!(!base.output("app/old").exists());
    assert!(wait_for(EVENTUALLY, || base
        .path()
        .join("archive/gone/orphan/last_result")
        .exists()
        .then_some(()))
    .is_some());
    assert!(
        !base.path().join("output/gone").exists(),
        "emptied output parents pruned"
    );
    let live_rrd = base.output("app/live").join("main.rrd");
    assert!(wait_for(EVENTUALLY, || live_rrd.exists().then_some(())).is_some());

    // Expiry while running (noticed at a rescan; SIGHUP forces one).
    set_mtime(&base.orders().join("app/live"), Duration::from_secs(200));
    d.signal("HUP");
    d.wait_log_line(&["order expired", "order=app/live"], EVENTUALLY);
    let live_archived = base.path().join("archive/app/live/main.rrd");
    assert!(
        wait_for(EVENTUALLY, || live_archived.exists().then_some(())).is_some(),
        "{}",
        d.log_text()
    );
    assert!(!live_rrd.exists());
    assert_never_both(&base);

    // The order comes back: its data moves back from the archive.
    let before = fs::read(&live_archived).unwrap();
    base.write_order("app/live", &order("127.0.0.1", 60, 5));
    d.wait_log_line(&["output restored", "order=app/live"], EVENTUALLY);
    assert_eq!(fs::read(&live_rrd).unwrap(), before, "the same RRD is back");
    assert!(!base.path().join("archive/app/live").exists());
    assert_never_both(&base);

    // Removal archives again.
    base.remove_order("app/live");
    assert!(wait_for(EVENTUALLY, || live_archived.exists().then_some(())).is_some());
    assert!(!live_rrd.exists());
    assert_never_both(&base);
}

#[test]
fn shape_change_and_corrupted_rrd_keep_old_files() {
    let base = Base::new();
    // A main.rrd that is not an RRD.
    fs::create_dir_all(base.output("app/c")).unwrap();
    fs::write(base.output("app/c/main.rrd"), "definitely not an rrd\n").unwrap();
    base.write_order("app/c", &order("127.0.0.1", 60, 5));
    base.write_order("app/s", &order("127.0.0.1", 60, 5));
    let d = Daemon::start(&base, &[]);
    let corrupted = base.output("app/c/corrupted_main.rrd");
    assert!(
        wait_for(EVENTUALLY, || corrupted.exists().then_some(())).is_some(),
        "{}",
        d.log_text()
    );
    assert_eq!(
        fs::read_to_string(&corrupted).unwrap(),
        "definitely not an rrd\n"
    );
    assert_eq!(rrd_info(&base.output("app/c/main.rrd"))["step"], "60");

    let rrd = base.output("app/s/main.rrd");
    assert!(wait_for(EVENTUALLY, || rrd.exists().then_some(())).is_some());
    // pings 5 → 4: the old file is kept aside, a new one started.
    base.write_order("app/s", &order("127.0.0.1", 60, 4));
    d.wait_log_line(&["step or pings changed", "order=app/s"], EVENTUALLY);
    let kept: Vec<PathBuf> = wait_for(EVENTUALLY, || {
        let v: Vec<PathBuf> = fs::read_dir(base.output("app/s"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let n = p.file_name().unwrap().to_str().unwrap();
                n.starts_with("main.") && n.ends_with(".rrd") && n != "main.rrd"
            })
            .collect();
        (!v.is_empty() && rrd.exists()).then_some(v)
    })
    .unwrap_or_else(|| panic!("{}", d.log_text()));
    assert_eq!(kept.len(), 1);
    let old = rrd_info(&kept[0]);
    assert!(old.contains_key("ds[ping5].index"), "old file has 5 pings");
    let new = rrd_info(&rrd);
    assert!(
        new.contains_key("ds[ping4].index") && !new.contains_key("ds[ping5].index"),
        "new file has 4 pings"
    );
    // step 60 → 300 too.
    base.write_order("app/s", &order("127.0.0.1", 300, 4));
    d.wait_log_line(&["step or pings changed", "old_step=60"], EVENTUALLY);
}

#[test]
fn kill_9_and_restart_leave_consistent_files() {
    if !can_ping("kill_9_and_restart_leave_consistent_files") {
        return;
    }
    let base = Base::new();
    let ids: Vec<String> = (1..=6).map(|i| format!("k/o{i}")).collect();
    for (i, id) in ids.iter().enumerate() {
        base.write_order(id, &order(&format!("127.0.1.{}", i + 1), 10, 2));
    }
    let mut d = Daemon::start(&base, &[]);
    for id in &ids {
        assert!(
            wait_for(Duration::from_secs(30), || base.last_result(id)).is_some(),
            "{id}; {}",
            d.log_text()
        );
    }
    // Kill somewhere inside the next step, at a pseudo-random point.
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    std::thread::sleep(Duration::from_millis(u64::from(nanos % 10_000)));
    d.child.kill().unwrap();
    d.child.wait().unwrap();
    // While it is down, one order goes away.
    base.remove_order("k/o6");
    let before = base.last_result("k/o1").unwrap().int("time");

    let d2 = Daemon::start(&base, &[]);
    let archived = base.path().join("archive/k/o6/main.rrd");
    assert!(
        wait_for(EVENTUALLY, || archived.exists().then_some(())).is_some(),
        "{}",
        d2.log_text()
    );
    assert!(wait_for(Duration::from_secs(30), || base
        .last_result("k/o1")
        .filter(|r| r.int("time") > before))
    .is_some());
    for id in &ids[..5] {
        let info = rrd_info(&base.output(id).join("main.rrd"));
        assert_eq!(info["step"], "10", "{id}");
        let r = base.last_result(id).unwrap();
        assert_eq!(r.int("pings"), 2);
    }
    rrd_info(&archived);
    assert_never_both(&base);
}

#[test]
fn full_disk_read_only_and_deleted_output_recover() {
    const TEST: &str = "full_disk_read_only_and_deleted_output_recover";
    if !require_root(TEST, "a tmpfs mount") || !can_ping(TEST) {
        return;
    }
    let outer = tempfile::tempdir().unwrap();
    let root = outer.path().join("base");
    let Some(tmpfs) = Tmpfs::mount(&root, "3m") else {
        skip(TEST, "cannot mount a tmpfs here (mount -t tmpfs failed)");
        return;
    };
    let base = Base::at(&root);
    base.write_order("f/a", &order("127.0.0.1", 10, 2));
    base.write_order("f/b", &order("127.0.0.2", 10, 2));
    let d = Daemon::start(&base, &[]);
    let first = wait_for(Duration::from_secs(30), || base.last_result("f/a")).expect("first round");
    let t0 = first.int("time");

    // Fill the disk.
    let filler = root.join("filler");
    {
        use std::io::Write;
        let mut f = fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        for _ in 0..1000 {
            if f.write_all(&chunk).is_err() {
                break;
            }
        }
    }
    d.wait_log_line(&["cannot write round", "order=f/"], Duration::from_secs(30));
    // Room for an order file but not for its RRD: the failed create says
    // why (librrd itself gives no message then).
    {
        let f = fs::OpenOptions::new().write(true).open(&filler).unwrap();
        let len = f.metadata().unwrap().len();
        f.set_len(len.saturating_sub(64 * 1024)).unwrap();
    }
    base.write_order("f/new", &order("127.0.0.3", 10, 2));
    let line = d.wait_log_line(
        &["cannot prepare output", "order=f/new"],
        Duration::from_secs(30),
    );
    assert!(
        line.to_lowercase().contains("no space left") && !line.contains("librrd: \"\""),
        "a failed create must say why: {line}"
    );
    // Free it: the daemon recovers by itself.
    fs::remove_file(&filler).unwrap();
    d.wait_log_line(&["writes recovered", "order=f/"], Duration::from_secs(30));
    let r = wait_for(Duration::from_secs(30), || {
        base.last_result("f/a").filter(|r| r.int("time") > t0 + 10)
    })
    .expect("results after recovery");
    rrd_info(&base.output("f/a").join("main.rrd"));

    // Read-only file system, then writable again.
    let t1 = r.int("time");
    {
        let _ro = tmpfs.read_only(&root.join("output"));
        assert!(
            fs::write(base.output("f/a").join("probe"), "x").is_err(),
            "output/ is read-only"
        );
        std::thread::sleep(Duration::from_secs(12));
    }
    assert!(
        wait_for(Duration::from_secs(30), || base
            .last_result("f/a")
            .filter(|r| r.int("time") > t1 + 10))
        .is_some(),
        "{}",
        d.log_text()
    );
    let recoveries = d
        .log_text()
        .lines()
        .filter(|l| l.contains("writes recovered") && l.contains("order=f/a"))
        .count();
    assert!(
        recoveries >= 2,
        "read-only phase not noticed and recovered from:\n{}",
        d.log_text()
    );

    // A deleted output directory is recreated.
    fs::remove_dir_all(base.output("f/b")).unwrap();
    assert!(wait_for(Duration::from_secs(30), || base.last_result("f/b")).is_some());
    rrd_info(&base.output("f/b").join("main.rrd"));
    assert!(d.log_text().contains("order=f/a"), "errors name the order");
}

/// A FIFO (or anything else that is not a regular file) in orders/ is
/// handled the same at start-up as later: moved to rejected/ with its
/// reason, and logged.
#[test]
fn fifo_in_orders_is_rejected_at_start_up_too() {
    let base = Base::new();
    fs::create_dir_all(base.orders().join("app")).unwrap();
    let fifo = base.orders().join("app/pipe");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    base.write_order("app/good", &order("127.0.0.1", 60, 5));
    let d = Daemon::start(&base, &[]);
    let line = d.wait_log_line(
        &["invalid order", "order=app/pipe"],
        Duration::from_secs(10),
    );
    assert!(line.contains("not a regular file"), "{line}");
    let moved = base.path().join("rejected/app/pipe");
    assert!(
        fs::symlink_metadata(&moved).is_ok_and(|m| !m.is_file()),
        "the FIFO is moved to rejected/, not deleted"
    );
    let error = fs::read_to_string(base.path().join("rejected/app/pipe.error")).unwrap();
    assert!(error.contains("not a regular file"), "{error}");
    assert!(!fifo.exists());
    d.wait_log_line(
        &["order started", "order=app/good"],
        Duration::from_secs(10),
    );
}
