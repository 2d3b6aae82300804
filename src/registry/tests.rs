use super::jobs::tests::Recorder;
use super::safety_net::pace_slice_len;
use super::*;
use std::time::SystemTime;

/// Sets the mtime of `path` `secs` seconds into the past.
fn age(path: &Path, secs: u64) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(secs))
        .unwrap();
}

const FPING: &str = "user: u\nstep: 60\npings: 5\nprobe: fping\nfping: {host: 127.0.0.1}\n";

struct Fixture {
    _dir: tempfile::TempDir,
    base: BaseDir,
    reg: Registry<Recorder>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let base = BaseDir::new(dir.path());
    base.create().unwrap();
    let (store, _rx) = StoreHandle::capture();
    let reg = Registry::new(
        base.clone(),
        Recorder::default(),
        store,
        Arc::new(JobStats::default()),
        CancellationToken::new(),
        Duration::from_secs(3600),
    );
    Fixture {
        _dir: dir,
        base,
        reg,
    }
}

impl Fixture {
    fn write(&self, id: &str, yaml: &str) -> PathBuf {
        let path = self.base.orders.join(id);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, yaml).unwrap();
        path
    }

    /// Store commands queued so far, as `prepare <id> <generation>
    /// <step>` and `archive <id>`.
    fn store_cmds(&mut self) -> Vec<String> {
        std::mem::take(&mut self.reg.pending_store)
            .into_iter()
            .map(|c| match c {
                StoreCmd::Prepare {
                    id,
                    generation,
                    shape,
                    ..
                } => format!("prepare {id} {generation} {}", shape.step),
                StoreCmd::Archive { id } => format!("archive {id}"),
                StoreCmd::Round { id, .. } => format!("round {id}"),
            })
            .collect()
    }

    /// Published members of the running jobs.
    fn running(&mut self) -> Vec<(String, Vec<String>)> {
        self.reg.publish();
        let mut r = self.reg.pool.launcher().running();
        r.sort();
        r
    }
}

#[test]
fn places_orders_in_jobs_by_key_and_capacity() {
    let mut f = fixture();
    f.write("app/a", FPING);
    f.write("app/b", &FPING.replace("127.0.0.1", "127.0.0.2"));
    f.write(
        "app/c",
        "user: u\nstep: 60\npings: 5\nprobe: tcp\ntcp: {host: 127.0.0.1, port: 1}\n",
    );
    for i in 0..16 {
        f.write(
            &format!("web/h{i:02}"),
            "user: u\nstep: 60\npings: 5\nprobe: httping\nhttping: {url: 'http://127.0.0.1:1/'}\n",
        );
    }
    f.reg.full_rescan();
    assert_eq!(
        f.reg.counts(),
        Counts {
            orders: 19,
            invalid: 0,
            jobs: 4
        }
    );
    let running = f.running();
    let mut sizes: Vec<(String, usize)> = running
        .iter()
        .map(|(name, m)| (name.split_once(' ').unwrap().1.to_owned(), m.len()))
        .collect();
    sizes.sort();
    assert_eq!(
        sizes,
        [
            ("fping step=60 pings=5 ipv4".to_owned(), 2),
            ("httping step=60 pings=5".to_owned(), 1),
            ("httping step=60 pings=5".to_owned(), 15),
            ("tcp step=60 pings=5".to_owned(), 1),
        ]
    );
    let cmds = f.store_cmds();
    assert_eq!(cmds.len(), 19);
    assert!(cmds.iter().all(|c| c.starts_with("prepare ")), "{cmds:?}");
    // A rescan of unchanged files changes nothing.
    f.reg.full_rescan();
    assert!(f.store_cmds().is_empty());
    assert_eq!(f.reg.pool.launcher().jobs.len(), 4);
}

#[test]
fn a_change_of_shape_moves_the_order_to_another_job() {
    let mut f = fixture();
    let path = f.write("app/a", FPING);
    f.reg.full_rescan();
    assert_eq!(f.store_cmds(), ["prepare app/a 1 60"]);
    f.write("app/a", &FPING.replace("step: 60", "step: 300"));
    f.reg.handle_path(&path);
    // Changed, not ended: no archive; a new generation with the new shape.
    assert_eq!(f.store_cmds(), ["prepare app/a 2 300"]);
    let running = f.running();
    assert_eq!(running.len(), 1, "the emptied job stopped: {running:?}");
    assert!(running[0].0.contains("step=300"), "{running:?}");
    assert_eq!(f.reg.pool.launcher().jobs.len(), 2);
    assert!(f.reg.pool.launcher().jobs[0].cancel.is_cancelled());
}

#[test]
fn an_old_order_file_expires_and_its_output_is_archived() {
    let mut f = fixture();
    let path = f.write("app/a", FPING);
    let sidecar = f.base.telegraf.join("app/a");
    std::fs::create_dir_all(sidecar.parent().unwrap()).unwrap();
    std::fs::write(&sidecar, "measurement_name: m\n").unwrap();
    f.reg.full_rescan();
    assert_eq!(f.reg.counts().orders, 1);
    f.store_cmds();
    age(&path, 7200);
    f.reg.full_rescan();
    assert_eq!(f.reg.counts(), Counts::default());
    assert!(!path.exists(), "the expired order file is removed");
    assert!(sidecar.exists(), "the sidecar is a user file and stays");
    assert_eq!(f.store_cmds(), ["archive app/a"]);
    assert!(f.running().is_empty());
}

/// Sets the mtime of directory `dir` `secs` seconds into the past.
fn age_dir(dir: &Path, secs: u64) {
    std::fs::File::open(dir)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(secs))
        .unwrap();
}

#[test]
fn the_directory_check_sees_added_and_removed_files_without_hints() {
    let mut f = fixture();
    let a = f.write("app/a", FPING);
    let app = f.base.orders.join("app");
    age_dir(&app, 60);
    age_dir(&f.base.orders, 60);
    age_dir(&f.base.telegraf, 60);
    f.reg.full_rescan();
    f.store_cmds();
    let listed = |f: &Fixture| {
        f.reg
            .stats
            .dirs_listed
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    // Nothing changed: no directory is listed again.
    f.reg.check_dirs();
    assert_eq!(listed(&f), 0, "unchanged directories are not listed");
    // A new file changes its directory's mtime.
    f.write("app/b", FPING);
    f.reg.check_dirs();
    assert_eq!(listed(&f), 1);
    assert_eq!(f.running()[0].1, ["app/a", "app/b"]);
    // Listed within MTIME_TRUST of its mtime: listed again next time.
    f.reg.check_dirs();
    assert_eq!(listed(&f), 2, "a fresh mtime is not trusted");
    age_dir(&app, 60);
    f.reg.check_dirs();
    f.reg.check_dirs();
    assert_eq!(listed(&f), 3, "trusted once old enough");
    // A removed file: its order stops and its output is archived.
    std::fs::remove_file(&a).unwrap();
    f.store_cmds();
    f.reg.check_dirs();
    assert_eq!(f.store_cmds(), ["archive app/a"]);
    assert_eq!(f.running()[0].1, ["app/b"]);
    // A new subdirectory is walked; a removed one stops its orders.
    f.write("app/sub/c", FPING);
    f.reg.check_dirs();
    assert_eq!(f.reg.counts().orders, 2);
    std::fs::remove_dir_all(app.join("sub")).unwrap();
    f.reg.check_dirs();
    assert_eq!(f.reg.counts().orders, 1);
    // A new sidecar reloads its order.
    std::fs::create_dir_all(f.base.telegraf.join("app")).unwrap();
    std::fs::write(f.base.telegraf.join("app/b"), "measurement_name: m\n").unwrap();
    f.reg.check_dirs();
    let b = &f.reg.orders[&OrderId::new("app/b").unwrap()];
    assert_eq!(
        b.order
            .telegraf
            .as_ref()
            .and_then(|t| t.measurement_name.as_deref()),
        Some("m")
    );
}

#[test]
fn the_paced_pass_is_sliced_by_rate() {
    let i = Duration::from_secs(30);
    assert_eq!(
        pace_slice_len(20_000, i),
        667,
        "30 s for 300,000 files or fewer"
    );
    assert_eq!(pace_slice_len(300_000, i), 10_000);
    assert_eq!(
        pace_slice_len(1_000_000, i),
        PACE_RATE,
        "100 s at a million"
    );
    assert_eq!(pace_slice_len(1, i), 1);
}

#[test]
fn the_paced_pass_sees_in_place_rewrites_and_expiry() {
    let mut f = fixture();
    f.reg =
        std::mem::replace(&mut f.reg, fixture().reg).with_rescan_interval(Duration::from_secs(2));
    for i in 0..4 {
        f.write(&format!("app/o{i}"), FPING);
    }
    f.reg.full_rescan();
    f.store_cmds();
    // Rewritten in place (no hint; the directory's mtime unchanged).
    let o1 = f.base.orders.join("app/o1");
    std::fs::write(&o1, FPING.replace("step: 60", "step: 30")).unwrap();
    age(&f.base.orders.join("app/o2"), 7200);
    // Few files: the whole pass runs with the directory check, once
    // per interval (an idle daemon does not wake every second).
    f.reg.pace_tick();
    assert_eq!(
        f.reg
            .stats
            .files_checked
            .load(std::sync::atomic::Ordering::Relaxed),
        0,
        "not before the interval"
    );
    f.reg.dirs_checked = Instant::now() - Duration::from_secs(2);
    let next = f.reg.pace_tick();
    assert!(
        next > Duration::from_secs(1) && next <= Duration::from_secs(2),
        "{next:?}"
    );
    assert_eq!(
        f.reg
            .stats
            .files_checked
            .load(std::sync::atomic::Ordering::Relaxed),
        4
    );
    assert_eq!(
        f.reg.orders[&OrderId::new("app/o1").unwrap()].order.step,
        30
    );
    assert!(!f.base.orders.join("app/o2").exists(), "expired");
    assert_eq!(f.reg.counts().orders, 3);
}

#[test]
fn a_sidecar_change_reloads_the_order() {
    let mut f = fixture();
    f.write("app/a", FPING);
    f.reg.full_rescan();
    f.store_cmds();
    let telegraf = |f: &Fixture| {
        f.reg.orders[&OrderId::new("app/a").unwrap()]
            .order
            .telegraf
            .clone()
    };
    assert_eq!(telegraf(&f), None);
    let sidecar = f.base.telegraf.join("app/a");
    std::fs::create_dir_all(sidecar.parent().unwrap()).unwrap();
    std::fs::write(&sidecar, "measurement_name: tunnel\ntags: {id: 7}\n").unwrap();
    f.reg.handle_path(&sidecar);
    let meta = telegraf(&f).expect("the sidecar's settings are used");
    assert_eq!(meta.measurement_name.as_deref(), Some("tunnel"));
    assert_eq!(meta.tags["id"], "7");
    assert_eq!(f.store_cmds(), ["prepare app/a 2 60"], "a new generation");
    let running = f.running();
    assert_eq!(running[0].1, ["app/a"]);
    std::fs::remove_file(&sidecar).unwrap();
    f.reg.handle_path(&sidecar);
    assert_eq!(telegraf(&f), None);
    assert_eq!(f.store_cmds(), ["prepare app/a 3 60"]);
    // A sidecar without an order file starts nothing.
    std::fs::write(f.base.telegraf.join("app/b"), "measurement_name: x\n").unwrap();
    f.reg.handle_path(&f.base.telegraf.join("app/b"));
    assert_eq!(f.reg.counts().orders, 1);
}

#[test]
fn invalid_orders_are_retried_while_fresh_then_rejected() {
    let mut f = fixture();
    let path = f.write("app/bad", "user: u\nstep: 60\n");
    f.reg.full_rescan();
    assert!(path.exists(), "a fresh file may be half-written: retried");
    assert!(f.reg.next_due().is_some());
    age(&path, 60);
    f.reg.retry.clear();
    f.reg.full_rescan();
    assert!(!path.exists());
    assert!(f.base.rejected.join("app/bad").exists());
    assert_eq!(f.reg.counts(), Counts::default());
    assert!(f.store_cmds().is_empty());
}
