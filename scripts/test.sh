#!/usr/bin/env bash
# The full test suite: installs missing system packages, then formatting,
# lints, the man pages, unit and integration tests of the whole workspace,
# the timing-sensitive tests one at a time, the Debian package
# (scripts/install-test.sh), the demo (scripts/demo-test.sh), the container
# image (scripts/container-test.sh)
# and a benchmark smoke run. docs/TESTING.md describes the phases.
#
# Tests that need root, network namespaces, a tool or a server say
# "skipping ..." and pass when they lack it, and the suite ends with the
# count of skipped tests and their reasons. Under CI (the CI environment
# variable set, as CI services do) nothing skips: such a test fails and
# names what is missing. CI runs this as root.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/require.sh
. scripts/require.sh
bash scripts/deps.sh --test
export CARGO_TERM_COLOR=never
# Every skip, from a test or a script, is appended here (one line each:
# test, tab, reason) and listed at the end.
PINGMACHINE_SKIP_LOG=$(mktemp -t pingmachine-skips.XXXXXX)
export PINGMACHINE_SKIP_LOG
report_skips() {
  local n
  n=$(wc -l <"$PINGMACHINE_SKIP_LOG")
  if [ "$n" -gt 0 ]; then
    echo "== $n test(s) or check(s) skipped; the suite tested less than it can:"
    sort "$PINGMACHINE_SKIP_LOG" | uniq -c | sed 's/^/   /'
  else
    echo "== nothing skipped"
  fi
  rm -f "$PINGMACHINE_SKIP_LOG"
}
trap report_skips EXIT
# Each phase prints when it starts, with the seconds since the suite began.
phase() { echo "== $* (at ${SECONDS} s)"; }
phase "cargo fmt --check"
cargo fmt --all -- --check
phase "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
phase "man pages: no control characters, no troff warnings in C and C.UTF-8"
bash scripts/check-man.sh man/*.[0-9] packaging/man/*.[0-9]
# Tests whose outcome depends on timeliness (a wall-clock bound: accuracy
# against the wire, pickup, RTTs on loopback, line protocol into a real
# InfluxDB) are named timing_*: they run after the rest, one at a time,
# with nothing else alongside. Every other test holds on a busy machine
# (docs/TESTING.md).
phase "cargo test (all but the timing-sensitive tests)"
cargo test --workspace --locked -- --skip timing_ 2>&1
phase "cargo test: timing-sensitive tests, one at a time"
cargo test --workspace --locked -- timing_ --test-threads=1 --nocapture 2>&1
phase "Debian package: build, lintian, install, run as the unit does, remove, purge (root)"
bash scripts/install-test.sh
phase "the demo: scripts/demo.sh answers, and Ctrl-C leaves nothing behind (root)"
bash scripts/demo-test.sh
phase "container image: podman build and run (root)"
bash scripts/container-test.sh
phase "benchmark smoke run (1000 loopback targets, one step; prints figures, no thresholds)"
cargo build --locked -p pingmachine-bench 2>&1
if [ "$(id -u)" = 0 ]; then
  ./target/debug/pingmachine-bench --bin target/debug/pingmachine run --orders 1000 --step 10 --pings 4 --steps 1 --fping
else
  skip "benchmark smoke run" "needs root (the daemon under the benchmark uses raw ICMP sockets)"
fi
echo "== suite passed in ${SECONDS} s"
