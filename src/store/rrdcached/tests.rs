use super::codec::create_args;
use super::*;
use std::sync::atomic::Ordering;

#[test]
fn addresses_as_rrdtool_takes_them() {
    assert_eq!(
        parse_addr("unix:/run/rrdcached.sock").unwrap(),
        Addr::Unix("/run/rrdcached.sock".into())
    );
    assert_eq!(
        parse_addr("/run/rrdcached.sock").unwrap(),
        Addr::Unix("/run/rrdcached.sock".into())
    );
    assert_eq!(
        parse_addr("127.0.0.1").unwrap(),
        Addr::Tcp("127.0.0.1:42217".into())
    );
    assert_eq!(
        parse_addr("cache.example:4000").unwrap(),
        Addr::Tcp("cache.example:4000".into())
    );
    assert_eq!(
        parse_addr("[::1]:4000").unwrap(),
        Addr::Tcp("[::1]:4000".into())
    );
    assert_eq!(
        parse_addr("[::1]").unwrap(),
        Addr::Tcp("[::1]:42217".into())
    );
    assert_eq!(parse_addr("::1").unwrap(), Addr::Tcp("[::1]:42217".into()));
    assert_eq!(
        parse_addr("unix:/a").unwrap().to_string(),
        "unix:/a",
        "shown as given"
    );
    for bad in [
        "",
        "unix:rel.sock",
        "h:0",
        "h:99999",
        "h:x",
        "[::1",
        "[::1]x",
        "a b",
    ] {
        assert!(parse_addr(bad).is_err(), "{bad:?} is refused");
    }
}

#[test]
fn paths_with_white_space_cannot_be_sent() {
    assert!(check_path(Path::new("/var/lib/pingmachine/output/a/main.rrd")).is_ok());
    assert!(check_path(Path::new("/var/lib/ping machine")).is_err());
}

#[test]
fn create_arguments_match_the_local_layout() {
    let a = create_args(60, 3, 1_796_000_000);
    assert!(a.starts_with("-b 1796000000 -s 60 -O DS:loss:GAUGE:120:0:3 DS:median:GAUGE:120:0:180 DS:ping1:GAUGE:120:0:180"), "{a}");
    let rras = a.matches(" RRA:").count();
    assert_eq!(rras, super::super::rrd::archives(60).len());
    assert!(a.contains(" RRA:AVERAGE:0.5:1:"), "{a}");
}

#[test]
fn a_full_queue_drops_and_counts() {
    // Nothing listens there: updates only queue.
    let dir = tempfile::tempdir().unwrap();
    let c = RrdCached::start(Addr::Unix(dir.path().join("none.sock")), 3, None).unwrap();
    for i in 0..5 {
        let taken = c.update(Path::new("/x/main.rrd"), &format!("{i}:1"));
        assert_eq!(taken, i < 3, "update {i}");
    }
    assert_eq!(c.stats().dropped.load(Ordering::Relaxed), 2);
    assert_eq!(c.stats().queued.load(Ordering::Relaxed), 3);
    // A flush while down answers at once and drops the file's updates.
    assert_eq!(c.flush_forget(Path::new("/x/main.rrd")), Answer::Down);
    assert_eq!(c.stats().dropped.load(Ordering::Relaxed), 5);
    assert_eq!(c.stats().queued.load(Ordering::Relaxed), 0);
    assert_eq!(c.create(Path::new("/y/main.rrd"), 60, 3, 0), Answer::Down);
    c.shutdown(Duration::from_secs(5));
}
