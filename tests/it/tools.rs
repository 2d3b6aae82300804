//! The operator tools against real base directories: `status` (golden
//! text, `--json`), `graph` (a real PNG from a real RRD), `order
//! put|touch|rm|ls` (atomic, idempotent, validated), `completions`.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime};

use crate::support::Base;
use pingmachine::result::{RoundOutcome, Summary};
use pingmachine::store::rrd::{create_rrd, update_rrd, update_values};

fn pm(base: &Path, args: &[&str]) -> Output {
    Command::new(crate::support::bin())
        .arg("--basedir")
        .arg(base)
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const NOW: i64 = 1_795_240_000;

fn fixture() -> Base {
    let base = Base::new();
    let b = base.path();
    for d in ["orders", "output", "archive", "rejected", "telegraf"] {
        std::fs::create_dir_all(b.join(d)).unwrap();
    }
    base.write_order(
        "tmon/tun1",
        "user: tmon\nstep: 300\npings: 20\nprobe: fping\nfping: {host: 62.179.116.250}\n",
    );
    base.write_order(
        "tmon/tun2",
        "user: tmon\nstep: 60\npings: 10\nprobe: fping\nfping: {host: '2001:db8::1'}\n",
    );
    base.write_order("web/site", "user: web\nstep: 60\npings: 5\nprobe: httping\nhttping: {url: 'https://www.example.com/'}\n");
    base.write_order(
        "web/fresh",
        "user: web\nstep: 60\npings: 5\nprobe: tcp\ntcp: {host: 127.0.0.1, port: 443}\n",
    );
    std::fs::write(
        base.orders().join("tmon/broken"),
        "user: tmon\nstep: zero\n",
    )
    .unwrap();
    let lr = |id: &str, t: i64, upd: i64, step: u32, pings: u32, loss: u32, rtt: &str| {
        std::fs::create_dir_all(base.output(id)).unwrap();
        let (mn, md, mx) = if rtt == "~" {
            ("~", "~", "~")
        } else {
            (rtt, rtt, rtt)
        };
        std::fs::write(
            base.output(id).join("last_result"),
            format!("time: {t}\nupdated: {upd}\nstep: {step}\npings: {pings}\nloss: {loss}\nmin: {mn}\nmedian: {md}\nmax: {mx}\n"),
        )
        .unwrap();
    };
    lr("tmon/tun1", NOW - 600, NOW - 50, 300, 20, 0, "5.700000e-04");
    lr("tmon/tun2", NOW - 120, NOW - 200, 60, 10, 3, "1.234500e-02");
    lr("web/site", NOW - 120, NOW - 30, 60, 5, 5, "~");
    std::fs::create_dir_all(b.join("rejected/app")).unwrap();
    std::fs::write(b.join("rejected/app/bad"), "x").unwrap();
    std::fs::write(
        b.join("rejected/app/bad.error"),
        "file: orders/app/bad\nrule: expected an integer\ntime: 2026-11-21T06:12:40Z (1795241560)\nmessage: orders/app/bad: field `step`: expected an integer\n",
    )
    .unwrap();
    std::fs::create_dir_all(b.join("archive/old/one")).unwrap();
    std::fs::write(b.join("archive/old/one/main.rrd"), "x").unwrap();
    base
}

const GOLDEN: &str = "\
user tmon (2 orders)
  ID         STEP  PINGS  PROBE  TARGET            AGE    MEDIAN   LOSS
  tmon/tun1   300     20  fping  62.179.116.250    50s  0.570 ms   0.0%
  tmon/tun2    60     10  fping  2001:db8::1     3m20s   12.3 ms  30.0%

user web (2 orders)
  ID         STEP  PINGS  PROBE    TARGET                    AGE  MEDIAN    LOSS
  web/fresh    60      5  tcp      127.0.0.1:443               -       -       -
  web/site     60      5  httping  https://www.example.com/  30s       -  100.0%

invalid (1)
  tmon/broken: ORDERS/tmon/broken: field `step`: value \"zero\": expected an integer from 1 to 86400

rejected (1)
  app/bad: orders/app/bad: field `step`: expected an integer

archived: 1
";

#[test]
fn status_table_is_stable_and_json_parses_back() {
    let base = fixture();
    let out = pm(base.path(), &["status", "--now", &NOW.to_string()]);
    assert!(out.status.success(), "{}", err(&out));
    let want = GOLDEN.replace("ORDERS", &base.orders().display().to_string());
    assert_eq!(text(&out), want, "golden status text");
    assert!(
        !text(&out).contains('\x1b'),
        "no colours when not on a terminal"
    );

    let out = pm(
        base.path(),
        &["status", "--json", "--now", &NOW.to_string()],
    );
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_str(&text(&out)).unwrap();
    assert_eq!(v["now"], NOW);
    let orders = v["orders"].as_array().unwrap();
    assert_eq!(orders.len(), 4);
    let tun2 = orders.iter().find(|o| o["id"] == "tmon/tun2").unwrap();
    assert_eq!(tun2["user"], "tmon");
    assert_eq!(tun2["age_s"], 200);
    assert_eq!(tun2["stale"], true, "older than its 60 s step");
    assert_eq!(tun2["loss_pct"], 30.0);
    assert_eq!(tun2["last_result"]["loss"], 3);
    assert!((tun2["median_ms"].as_f64().unwrap() - 12.345).abs() < 1e-9);
    let fresh = orders.iter().find(|o| o["id"] == "web/fresh").unwrap();
    assert!(fresh["last_result"].is_null() && fresh["stale"] == true);
    assert_eq!(v["rejected"][0]["id"], "app/bad");
    assert_eq!(v["invalid"][0]["id"], "tmon/broken");
    assert_eq!(v["archived"], 1);

    // Filters.
    let out = pm(
        base.path(),
        &["status", "--user", "web", "--now", &NOW.to_string()],
    );
    let t = text(&out);
    assert!(
        t.contains("web/site") && !t.contains("tmon/") && !t.contains("rejected"),
        "{t}"
    );
    let out = pm(
        base.path(),
        &["status", "tmon/tun1", "--now", &NOW.to_string()],
    );
    let t = text(&out);
    assert!(
        t.contains("tmon/tun1") && !t.contains("tmon/tun2") && !t.contains("web/"),
        "{t}"
    );
    // A wrong base directory is a clear error.
    let out = pm(&base.path().join("nope"), &["status"]);
    assert!(
        !out.status.success() && err(&out).contains("no orders/ directory"),
        "{}",
        err(&out)
    );
}

/// A day of step-300, 20-ping data with a realistic spread and a lossy hour.
fn make_rrd(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let end = now / 300 * 300;
    let start = end - 86_400;
    create_rrd(path, 300, 20, start - 300).unwrap();
    let mut seed = 12345u64;
    let mut rnd = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as f64 / (1u64 << 31) as f64
    };
    let mut t = start;
    while t <= end {
        let hour = (t - start) / 3600;
        let base_ms = 20.0 + 5.0 * ((hour as f64) / 4.0).sin();
        let loss_p = if (10..12).contains(&hour) { 0.3 } else { 0.0 };
        let rtts: Vec<Option<Duration>> = (0..20)
            .map(|_| {
                (rnd() >= loss_p)
                    .then(|| Duration::from_secs_f64((base_ms + 8.0 * rnd() * rnd()) / 1000.0))
            })
            .collect();
        let s = Summary::of(&RoundOutcome { rtts });
        update_rrd(path, t, &update_values(&s)).unwrap();
        t += 300;
    }
}

fn decode(png: &Path) -> (u32, u32, Vec<[u8; 4]>) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(png).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let px = info.line_size / info.width as usize;
    let pixels = buf[..info.buffer_size()]
        .chunks(px)
        .map(|c| match px {
            4 => [c[0], c[1], c[2], c[3]],
            3 => [c[0], c[1], c[2], 255],
            _ => [c[0], c[0], c[0], 255],
        })
        .collect();
    (info.width, info.height, pixels)
}

#[test]
fn graph_draws_a_smokeping_png_of_the_requested_size() {
    let base = Base::new();
    std::fs::create_dir_all(base.orders()).unwrap();
    make_rrd(&base.output("lab/router1").join("main.rrd"));
    make_rrd(&base.output("lab/router2").join("main.rrd"));
    let out_png: PathBuf = base.path().join("g.png");
    let o = pm(
        base.path(),
        &[
            "graph",
            "lab/router1",
            "--period",
            "day",
            "--out",
            out_png.to_str().unwrap(),
            "--width",
            "640",
            "--height",
            "240",
        ],
    );
    assert!(o.status.success(), "{}", err(&o));
    if let Ok(keep) = std::env::var("PINGMACHINE_KEEP_GRAPH") {
        std::fs::copy(&out_png, keep).unwrap();
    }
    let bytes = std::fs::read(&out_png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    let (w, h, pixels) = decode(&out_png);
    assert_eq!((w, h), (640, 240), "full image size as requested");
    let mut colours: Vec<[u8; 4]> = pixels.clone();
    colours.sort_unstable();
    colours.dedup();
    assert!(
        colours.len() > 20,
        "a blank image has few colours: {}",
        colours.len()
    );
    let grey = pixels
        .iter()
        .filter(|p| p[0] == p[1] && p[1] == p[2] && (0x88..=0xdd).contains(&p[0]))
        .count();
    assert!(grey > 2000, "smoke bands: {grey} grey pixels");
    let green = pixels
        .iter()
        .filter(|p| p[0] == 0x26 && p[1] == 0xC4 && p[2] == 0x00)
        .count();
    assert!(green > 300, "loss-free median line: {green} green pixels");
    let tinted = pixels
        .iter()
        .filter(|p| p[0] == 255 && p[1] < 250 && p[1] > 150 && p[1] == p[2])
        .count();
    assert!(tinted > 500, "loss-tinted background: {tinted} pixels");

    // Ambiguous and unknown prefixes are clear errors.
    let o = pm(
        base.path(),
        &["graph", "lab/router", "--out", out_png.to_str().unwrap()],
    );
    assert!(!o.status.success());
    assert!(
        err(&o).contains("matches 2 orders") && err(&o).contains("lab/router1, lab/router2"),
        "{}",
        err(&o)
    );
    let o = pm(
        base.path(),
        &["graph", "nothing", "--out", out_png.to_str().unwrap()],
    );
    assert!(
        !o.status.success() && err(&o).contains("no order"),
        "{}",
        err(&o)
    );
    let o = pm(
        base.path(),
        &[
            "graph",
            "lab/router2",
            "--period",
            "fortnight",
            "--out",
            out_png.to_str().unwrap(),
        ],
    );
    assert!(
        !o.status.success() && err(&o).contains("--period"),
        "{}",
        err(&o)
    );
    // A numeric period works too.
    let o = pm(
        base.path(),
        &[
            "graph",
            "lab/router2",
            "-p",
            "7200",
            "-o",
            out_png.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", err(&o));
}

const ORDER: &str = "user: ops\nstep: 60\npings: 5\nprobe: fping\nfping: {host: 127.0.0.1}\n";

#[test]
fn order_put_touch_rm_ls() {
    let base = Base::new();
    std::fs::create_dir_all(base.orders()).unwrap();
    let file = base.path().join("o.yaml");
    std::fs::write(&file, ORDER).unwrap();
    // --id: written where asked, same bytes.
    let o = pm(
        base.path(),
        &["order", "put", file.to_str().unwrap(), "--id", "ops/r1"],
    );
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(text(&o).trim(), "ops/r1");
    assert_eq!(
        std::fs::read_to_string(base.orders().join("ops/r1")).unwrap(),
        ORDER
    );
    // Idempotent: the same put again is fine and only refreshes it.
    let old = SystemTime::now() - Duration::from_secs(3000);
    std::fs::File::options()
        .write(true)
        .open(base.orders().join("ops/r1"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    assert!(pm(
        base.path(),
        &["order", "put", file.to_str().unwrap(), "--id", "ops/r1"]
    )
    .status
    .success());
    let m = std::fs::metadata(base.orders().join("ops/r1"))
        .unwrap()
        .modified()
        .unwrap();
    assert!(m > old + Duration::from_secs(2000));
    // From stdin, old interface: the id is the md5 of the content.
    let mut child = Command::new(crate::support::bin())
        .arg("--basedir")
        .arg(base.path())
        .args(["order", "put", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(ORDER.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(id, crate::support::md5_hex(ORDER.as_bytes()));
    assert!(base.orders().join(&id).is_file());
    // Invalid orders are refused with the check message; nothing is written.
    std::fs::write(
        &file,
        "user: ops\nstep: 60\npings: 5\nprobe: fping\nfping: {host: 999.1.1.1}\n",
    )
    .unwrap();
    let o = pm(
        base.path(),
        &["order", "put", file.to_str().unwrap(), "--id", "ops/bad"],
    );
    assert!(
        !o.status.success() && err(&o).contains("field `fping.host`"),
        "{}",
        err(&o)
    );
    assert!(!base.orders().join("ops/bad").exists());
    let o = pm(
        base.path(),
        &["order", "put", file.to_str().unwrap(), "--id", "../escape"],
    );
    assert!(
        !o.status.success() && err(&o).contains("--id"),
        "{}",
        err(&o)
    );
    // No temp files left behind.
    let leftovers: Vec<_> = std::fs::read_dir(base.orders().join("ops"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, vec![std::ffi::OsString::from("r1")]);
    // touch, ls, rm.
    std::fs::File::options()
        .write(true)
        .open(base.orders().join("ops/r1"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    assert!(pm(base.path(), &["order", "touch", "ops/r1"])
        .status
        .success());
    let m = std::fs::metadata(base.orders().join("ops/r1"))
        .unwrap()
        .modified()
        .unwrap();
    assert!(SystemTime::now().duration_since(m).unwrap() < Duration::from_secs(60));
    let ls = text(&pm(base.path(), &["order", "ls"]));
    assert!(
        ls.starts_with("ID")
            && ls.contains("ops/r1")
            && ls.contains(&id)
            && ls.contains("127.0.0.1"),
        "{ls}"
    );
    assert!(pm(base.path(), &["order", "rm", "ops/r1"]).status.success());
    assert!(!base.orders().join("ops/r1").exists());
    let o = pm(base.path(), &["order", "rm", "ops/r1"]);
    assert!(!o.status.success() && err(&o).contains("no order ops/r1"));
    assert!(!pm(base.path(), &["order", "touch", "ops/none"])
        .status
        .success());
}

#[test]
fn order_put_is_atomic_for_a_watching_reader() {
    let base = Base::new();
    std::fs::create_dir_all(base.orders().join("big")).unwrap();
    // A large valid order (60 KB of comments), so a non-atomic write would
    // be seen half-written.
    let big = format!(
        "{ORDER}{}",
        "# padding padding padding padding padding padding\n".repeat(1100)
    );
    let file = base.path().join("big.yaml");
    std::fs::write(&file, &big).unwrap();
    let target = base.orders().join("big/o");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (target, big, stop) = (target.clone(), big.clone(), stop.clone());
        std::thread::spawn(move || {
            let (mut reads, mut partial) = (0u32, 0u32);
            for _ in 0..200_000 {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                if let Ok(s) = std::fs::read_to_string(&target) {
                    reads += 1;
                    if s != big {
                        partial += 1;
                    }
                }
            }
            (reads, partial)
        })
    };
    for _ in 0..40 {
        let o = pm(
            base.path(),
            &["order", "put", file.to_str().unwrap(), "--id", "big/o"],
        );
        assert!(o.status.success(), "{}", err(&o));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (reads, partial) = reader.join().unwrap();
    assert!(reads > 0, "the reader saw the file");
    assert_eq!(partial, 0, "{partial} of {reads} reads saw a partial file");
}

#[test]
fn completions_and_help() {
    let base = Base::new();
    let o = pm(base.path(), &["completions", "bash"]);
    assert!(o.status.success() && text(&o).contains("pingmachine") && text(&o).contains("graph"));
    let o = Command::new(crate::support::bin())
        .arg("--help")
        .output()
        .unwrap();
    for sub in [
        "run",
        "check",
        "status",
        "graph",
        "order",
        "completions",
        "healthcheck",
    ] {
        assert!(text(&o).contains(sub), "--help lists {sub}");
    }
    let o = Command::new(crate::support::bin())
        .arg("bogus")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "usage errors exit 2");
}

/// The completion scripts the package installs (`packaging/completions/`)
/// are what the binary prints now. When a flag changes, regenerate them
/// with `scripts/package.sh --completions`.
#[test]
fn packaged_completions_are_current() {
    let base = Base::new();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/completions");
    for (shell, file) in [
        ("bash", "pingmachine.bash"),
        ("zsh", "_pingmachine"),
        ("fish", "pingmachine.fish"),
    ] {
        let o = pm(base.path(), &["completions", shell]);
        assert!(o.status.success());
        let packaged = std::fs::read_to_string(dir.join(file)).unwrap();
        assert!(
            text(&o) == packaged,
            "packaging/completions/{file} is out of date: run scripts/package.sh --completions"
        );
    }
}

/// A directory holding `pingmachine-status` and `pingmachine-graph` as
/// symbolic links to the binary, as the install steps create them.
fn old_names() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in ["pingmachine-status", "pingmachine-graph"] {
        std::os::unix::fs::symlink(crate::support::bin(), dir.path().join(name)).unwrap();
    }
    dir
}

/// `pingmachine-status` prints what the original Perl tool prints on the
/// same base directory, byte for byte: the golden files were produced by
/// the original (`faketime '@1800000000' perl pingmachine-status`, with its
/// two paths pointed at the fixture; colours under `script`, i.e. on a
/// terminal). Several users, fping with interface and source address, a
/// host name, httping (no host), ssh, tcp, no result yet, 100 % loss, stale
/// results, an order without user, a file that is not YAML; `wide` adds an
/// IPv6 host.
#[test]
fn pingmachine_status_matches_the_original_byte_for_byte() {
    let names = old_names();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/classic-status");
    for v in ["narrow", "wide"] {
        let base = fixtures.join(v);
        let out = Command::new(names.path().join("pingmachine-status"))
            .args(["--basedir", base.to_str().unwrap(), "--now", "1800000000"])
            .env_remove("NO_COLOR")
            .output()
            .unwrap();
        assert!(out.status.success(), "{v}: {}", err(&out));
        let want = std::fs::read_to_string(fixtures.join(format!("{v}.expected"))).unwrap();
        assert_eq!(text(&out), want, "{v}: table");
        let want_err =
            std::fs::read_to_string(fixtures.join(format!("{v}.stderr.expected"))).unwrap();
        assert_eq!(
            err(&out).replace(base.to_str().unwrap(), "BASE"),
            want_err,
            "{v}: warnings"
        );
        // On a terminal: the original's colours, escape codes and all.
        let (colored, _) = pingmachine::cmd::classic_status::render(
            &pingmachine::basedir::BaseDir::new(&base),
            1_800_000_000,
            true,
        )
        .unwrap();
        let want = std::fs::read_to_string(fixtures.join(format!("{v}.color.expected"))).unwrap();
        assert_eq!(colored, want, "{v}: colours");
    }
    // No orders/: the original's error.
    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(names.path().join("pingmachine-status"))
        .args(["--basedir", empty.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(err(&out).starts_with("ERROR: can't open "), "{}", err(&out));
}

/// `pingmachine-graph -i ID -p PERIOD -o FILE` draws the 510x300 graph and
/// says so as the original did; `pingmachine graph -i` works too.
#[test]
fn pingmachine_graph_takes_the_original_flags() {
    let names = old_names();
    let base = Base::new();
    let rrd = base.output("0123abcd").join("main.rrd");
    std::fs::create_dir_all(rrd.parent().unwrap()).unwrap();
    make_rrd(&rrd);
    base.write_order(
        "0123abcd",
        "user: u\nstep: 60\npings: 3\nprobe: fping\nfping: {host: 127.0.0.1}\n",
    );
    let png = base.path().join("out.png");
    let out = Command::new(names.path().join("pingmachine-graph"))
        .args(["--basedir", base.path().to_str().unwrap()])
        .args(["-i", "0123", "-p", "day", "-o", png.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", text(&out), err(&out));
    assert_eq!(
        text(&out),
        format!("image {} successfully created\n", png.display())
    );
    let (w, h, _) = decode(&png);
    assert_eq!((w, h), (510, 300));
    // An unknown id: an ERROR line on standard output, as the original.
    let out = Command::new(names.path().join("pingmachine-graph"))
        .args(["--basedir", base.path().to_str().unwrap()])
        .args(["-i", "nope", "-p", "week", "-o", png.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out).starts_with("ERROR: "), "{}", text(&out));
    // pingmachine graph -i
    let png2 = base.path().join("out2.png");
    let out = pm(
        base.path(),
        &[
            "graph",
            "-i",
            "0123abcd",
            "-p",
            "3600",
            "-o",
            png2.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", err(&out));
    assert!(png2.exists());
}

/// `import smokeping_prober`: one order per host, written atomically; what
/// cannot be converted is listed with file and line (exit status 1); the
/// imported tree passes `check`; `--dry-run` writes nothing.
#[test]
fn import_smokeping_prober_writes_checked_orders_and_lists_the_rest() {
    let base = Base::new();
    let config =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/import/smokeping_prober.yml");
    let config = config.to_str().unwrap();

    let dry = pm(
        base.path(),
        &["import", "smokeping_prober", config, "--dry-run"],
    );
    assert!(
        text(&dry).contains("--- orders/smokeping_prober/localhost"),
        "{}",
        text(&dry)
    );
    assert!(
        !base.orders().join("smokeping_prober").exists(),
        "--dry-run wrote orders"
    );

    let o = pm(base.path(), &["import", "smokeping_prober", config]);
    assert_eq!(o.status.code(), Some(1), "{}{}", text(&o), err(&o));
    let out = text(&o);
    let written: Vec<&str> = out.lines().collect();
    assert_eq!(
        written,
        [
            "smokeping_prober/127.0.0.1",
            "smokeping_prober/localhost",
            "smokeping_prober/::1",
            "smokeping_prober/127.0.0.1-2",
            "smokeping_prober/127.0.0.3",
            "smokeping_prober/127.0.0.4",
        ],
        "{}",
        err(&o)
    );
    let e = err(&o);
    for note in [
        "smokeping_prober.yml:23: protocol udp not converted",
        "smokeping_prober.yml:27: option `tos` not converted",
        "smokeping_prober.yml:30: size 8 not converted",
        "6 orders written, 3 things not converted",
    ] {
        assert!(e.contains(note), "{note}: {e}");
    }
    let big = std::fs::read_to_string(base.orders().join("smokeping_prober/127.0.0.3")).unwrap();
    assert!(big.contains("size: 1400"), "{big}");
    let v6 = std::fs::read_to_string(base.orders().join("smokeping_prober/::1")).unwrap();
    assert!(
        v6.contains("ipv6: true") && v6.contains("source_ip: '::1'") && v6.contains("site: 'lab'"),
        "{v6}"
    );
    let slow = std::fs::read_to_string(base.orders().join("smokeping_prober/127.0.0.1-2")).unwrap();
    assert!(
        slow.contains("interval: 5000") && slow.contains("pings: 10"),
        "{slow}"
    );

    let check = pm(base.path(), &["check", base.orders().to_str().unwrap()]);
    assert!(check.status.success(), "{}", text(&check));
    assert!(
        text(&check).contains("6 order files checked, 0 invalid"),
        "{}",
        text(&check)
    );
}

/// `import smokeping`: a whole configuration with includes, continuation
/// lines and comments; one order per target, its id the hierarchy; what
/// cannot be converted is listed with file and line; the tree passes
/// `check`.
#[test]
fn import_smokeping_converts_a_configuration_and_lists_the_rest() {
    let base = Base::new();
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/import/smokeping.conf");
    let config = config.to_str().unwrap();
    let o = pm(base.path(), &["import", "smokeping", config]);
    assert_eq!(o.status.code(), Some(1), "{}{}", text(&o), err(&o));
    let out = text(&o);
    let written: Vec<&str> = out.lines().collect();
    assert_eq!(
        written,
        [
            "Lab/gw",
            "Lab/v6",
            "Lab/resolver",
            "Lab/ssh",
            "Lab/web",
            "Lab/echo",
            "Remote/gw"
        ],
        "{}",
        err(&o)
    );
    let e = err(&o);
    for note in [
        "smokeping.conf:76: Lab/keyscan: probe SSH not converted",
        "smokeping.conf:80: Lab/both: a multihost entry",
        "targets-more.conf:7: Remote/gw: a second target of that name",
        "targets-more.conf:10: Remote/noport: TCPPing without `port`",
        "7 orders written, 4 things not converted",
    ] {
        assert!(e.contains(note), "{note}: {e}");
    }
    let read = |id: &str| std::fs::read_to_string(base.orders().join(id)).unwrap();
    let gw = read("Lab/gw");
    assert!(
        gw.contains("task: 'The lab''s gateway router'")
            && gw.contains("step: 300")
            && gw.contains("pings: 20"),
        "{gw}"
    );
    let v6 = read("Lab/v6");
    assert!(
        v6.contains("ipv6: true")
            && v6.contains("size: 1000")
            && v6.contains("tos: 32")
            && v6.contains("timeout: 1500"),
        "{v6}"
    );
    let dns = read("Lab/resolver");
    assert!(
        dns.contains("name: 'example.org'")
            && dns.contains("step: 180")
            && dns.contains("pings: 5"),
        "{dns}"
    );
    assert!(read("Lab/ssh").contains("port: 22"));
    assert!(read("Lab/web").contains("url: 'http://127.0.0.1/'"));
    let check = pm(base.path(), &["check", base.orders().to_str().unwrap()]);
    assert!(check.status.success(), "{}", text(&check));
    assert!(
        text(&check).contains("7 order files checked, 0 invalid"),
        "{}",
        text(&check)
    );
}
