#![allow(clippy::unwrap_used)]
//! External fping-style commands: parser, results_for, run().
//!
//! Tests that compare a measured time with a wall-clock upper bound are
//! named `timing_*`: `scripts/test.sh` runs them after the rest, one at a
//! time.

use std::path::Path;
use std::time::Duration;

use probes::exec::{parse_fping_c, results_for, run, ExecError};
use testkit::{fping_c_script, write_script};

fn ms(v: f64) -> Option<Duration> {
    Some(Duration::from_secs_f64(v / 1000.0))
}

#[test]
fn parser_table() {
    type Expected = Vec<(&'static str, Vec<Option<Duration>>)>;
    let cases: Vec<(&str, Expected)> = vec![
        (
            "127.0.0.1 : 0.10 0.12 - 0.09",
            vec![("127.0.0.1", vec![ms(0.10), ms(0.12), None, ms(0.09)])],
        ),
        (
            "  10.0.0.1 :   1.5  -  \n",
            vec![("10.0.0.1", vec![ms(1.5), None])],
        ),
        ("::1 : 0.05 0.06", vec![("::1", vec![ms(0.05), ms(0.06)])]),
        ("2001:db8::1 : - -", vec![("2001:db8::1", vec![None, None])]),
        ("fe80::1%eth0 : 3", vec![("fe80::1%eth0", vec![ms(3.0)])]),
        (
            "1-ff00:0:110,10.0.0.1 : 12.3 - 12.5",
            vec![("1-ff00:0:110,10.0.0.1", vec![ms(12.3), None, ms(12.5)])],
        ),
        (
            "1-ff00:0:110,[fd00::1] : 7",
            vec![("1-ff00:0:110,[fd00::1]", vec![ms(7.0)])],
        ),
        (
            "example.com : - - -",
            vec![("example.com", vec![None, None, None])],
        ),
        ("host.example :", vec![("host.example", vec![])]),
        ("", vec![]),
        ("   \n\n", vec![]),
        ("garbage", vec![]),
        ("a b : 1.0", vec![]),
        (" : 1.0", vec![]),
        ("h : 1.0 x 2.0", vec![]),
        ("h : NaN", vec![]),
        ("h : -1", vec![]),
        // fping's per-ping lines and ICMP reports are not -C summaries.
        (
            "127.0.0.1 : [0], 64 bytes, 0.05 ms (0.05 avg, 0% loss)",
            vec![],
        ),
        (
            "ICMP Host Unreachable from 10.0.0.1 for ICMP Echo sent to 10.0.0.2",
            vec![],
        ),
        (
            "a : 1\nnoise\nb : - 2\r\n\nc : 3",
            vec![
                ("a", vec![ms(1.0)]),
                ("b", vec![None, ms(2.0)]),
                ("c", vec![ms(3.0)]),
            ],
        ),
    ];
    for (input, expected) in cases {
        let got = parse_fping_c(input);
        let expected: Vec<(String, Vec<Option<Duration>>)> = expected
            .into_iter()
            .map(|(h, v)| (h.to_string(), v))
            .collect();
        assert_eq!(got, expected, "input {input:?}");
    }
}

#[test]
fn results_for_pads_and_truncates() {
    let parsed = parse_fping_c("a : 1 - 3\nb : 5\na : 9 9 9");
    assert_eq!(results_for(&parsed, "a", 3), vec![ms(1.0), None, ms(3.0)]);
    assert_eq!(results_for(&parsed, "a", 2), vec![ms(1.0), None]);
    assert_eq!(
        results_for(&parsed, "a", 5),
        vec![ms(1.0), None, ms(3.0), None, None]
    );
    assert_eq!(results_for(&parsed, "b", 3), vec![ms(5.0), None, None]);
    assert_eq!(results_for(&parsed, "missing", 2), vec![None, None]);
    assert_eq!(results_for(&parsed, "a", 0), Vec::<Option<Duration>>::new());
}

const T: Duration = Duration::from_secs(5);

#[tokio::test]
async fn run_fixture_script() {
    let dir = tempfile::tempdir().unwrap();
    let lines = "127.0.0.1 : 0.10 0.12 0.09\n::1 : 0.20 0.21 0.22\n";
    let script = fping_c_script(dir.path(), lines);
    let args: Vec<String> = [
        "-C",
        "3",
        "-q",
        "-p",
        "1000",
        "127.0.0.1",
        "::1",
        "it's $HOME *",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = run(&script, &args, T).await.unwrap();
    assert_eq!(out, lines);
    let argv = std::fs::read_to_string(dir.path().join("argv.txt")).unwrap();
    assert_eq!(argv.lines().collect::<Vec<_>>(), args);
    let parsed = parse_fping_c(&out);
    assert_eq!(
        results_for(&parsed, "::1", 3),
        vec![ms(0.20), ms(0.21), ms(0.22)]
    );
}

#[tokio::test]
async fn run_exit_1_with_results_is_fine() {
    let dir = tempfile::tempdir().unwrap();
    let script = fping_c_script(dir.path(), "10.0.0.1 : - 1.0 -");
    let out = run(&script, &[], T).await.unwrap();
    assert_eq!(
        results_for(&parse_fping_c(&out), "10.0.0.1", 3),
        vec![None, ms(1.0), None]
    );
}

#[tokio::test]
async fn run_missing_binary() {
    let err = run(Path::new("/nonexistent/pingmachine-probe"), &[], T)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ExecError::NotFound("/nonexistent/pingmachine-probe".into())
    );
    assert_eq!(
        err.to_string(),
        "probe command not found: /nonexistent/pingmachine-probe"
    );
}

#[tokio::test]
async fn run_not_executable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plain.txt");
    std::fs::write(&path, "127.0.0.1 : 1\n").unwrap();
    let err = run(&path, &[], T).await.unwrap_err();
    assert_eq!(err, ExecError::NotExecutable(path));
}

#[tokio::test]
async fn run_failure_has_stderr_tail() {
    let dir = tempfile::tempdir().unwrap();
    let script = write_script(
        dir.path(),
        "fail.sh",
        "echo 'first line' >&2\necho 'fping: cannot open socket' >&2\nexit 2",
    );
    let err = run(&script, &[], T).await.unwrap_err();
    match &err {
        ExecError::Failed {
            status,
            stderr_tail,
        } => {
            assert_eq!(status.code(), Some(2));
            assert!(
                stderr_tail.ends_with("fping: cannot open socket"),
                "{stderr_tail}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("cannot open socket"), "{err}");

    // Non-zero exit and only garbage on stdout: failed too.
    let script = write_script(dir.path(), "garbage.sh", "echo 'no results'\nexit 3");
    let err = run(&script, &[], T).await.unwrap_err();
    assert!(
        matches!(&err, ExecError::Failed { stderr_tail, .. } if stderr_tail == "(no output)"),
        "{err:?}"
    );
}

#[tokio::test]
async fn timing_run_timeout_kills_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("sleep.pid");
    let script = write_script(
        dir.path(),
        "slow.sh",
        &format!("sleep 10 &\necho $! > '{}'\nwait", pid_file.display()),
    );
    let started = std::time::Instant::now();
    let err = run(&script, &[], Duration::from_millis(300))
        .await
        .unwrap_err();
    assert_eq!(err, ExecError::Timeout);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // The script's child (same process group) was killed too.
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let proc_dir = format!("/proc/{}", pid.trim());
    let mut gone = false;
    for _ in 0..50 {
        let state = std::fs::read_to_string(format!("{proc_dir}/stat")).unwrap_or_default();
        // Gone, or a zombie waiting for its (killed) parent's reaper.
        if state.is_empty() || state.split_whitespace().nth(2) == Some("Z") {
            gone = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(gone, "sleep child still running");
}

#[tokio::test]
async fn run_caps_output() {
    let dir = tempfile::tempdir().unwrap();
    // ~2 MiB of output: kept to the cap, the command is not blocked.
    let script = write_script(
        dir.path(),
        "big.sh",
        "echo 'h : 1'\ni=0\nwhile [ $i -lt 64 ]; do head -c 32768 /dev/zero | tr '\\0' 'x'; i=$((i+1)); done",
    );
    let out = run(&script, &[], T).await.unwrap();
    assert_eq!(out.len(), probes::exec::MAX_STDOUT);
    assert_eq!(results_for(&parse_fping_c(&out), "h", 1), vec![ms(1.0)]);
}

#[tokio::test]
async fn results_printed_on_stderr_like_fping_are_used() {
    let dir = tempfile::tempdir().unwrap();
    let script = testkit::write_script(
        dir.path(),
        "fping-like.sh",
        "echo '127.0.0.1 : 0.50 -' >&2\nexit 1",
    );
    let out = probes::exec::run(&script, &[], std::time::Duration::from_secs(5))
        .await
        .unwrap();
    let parsed = probes::exec::parse_fping_c(&out);
    assert_eq!(parsed.len(), 1, "{out:?}");
    assert_eq!(parsed[0].0, "127.0.0.1");
}
