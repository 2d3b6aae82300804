#!/usr/bin/env bash
# The full test suite: installs missing system packages, then formatting,
# lints, unit and integration tests of the whole workspace, the Debian
# package (scripts/install-test.sh) and the container image
# (scripts/container-test.sh), and a benchmark smoke run.
# Tests that send ICMP need root (raw sockets) or net.ipv4.ping_group_range;
# without them they print "skipping ..." and pass. CI runs this as root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh --test
export CARGO_TERM_COLOR=never
# Each phase prints when it starts, with the seconds since the suite began.
phase() { echo "== $* (at ${SECONDS} s)"; }
phase "cargo fmt --check"
cargo fmt --all -- --check
phase "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
phase "man pages render without warnings"
if command -v man >/dev/null; then
  for m in man/*.[0-9]; do
    out=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$m" 2>&1 >/dev/null || echo "man failed on $m")
    if [ -n "$out" ]; then echo "$m: $out"; exit 1; fi
  done
else
  echo "skipping: man not installed"
fi
# Tests whose outcome depends on timeliness (accuracy against the wire,
# pickup, line protocol into a real InfluxDB) are named timing_*: they run
# after the rest, one at a time, with nothing else timing-sensitive
# alongside. Their bounds hold on a busy machine (docs/ACCURACY.md).
phase "cargo test (all but the timing-sensitive tests)"
cargo test --workspace --locked -- --skip timing_ 2>&1
phase "cargo test: timing-sensitive tests, one at a time"
cargo test --workspace --locked -- timing_ --test-threads=1 --nocapture 2>&1
phase "Debian package: build, lintian, install, run as the unit does, remove, purge (root)"
bash scripts/install-test.sh
phase "container image: podman build and run (root)"
bash scripts/container-test.sh
phase "benchmark smoke run (1000 loopback targets, one step; prints figures, no thresholds)"
cargo build --locked -p pingmachine-bench 2>&1
./target/debug/pingmachine-bench --bin target/debug/pingmachine run --orders 1000 --step 10 --pings 4 --steps 1 --fping
echo "== suite passed in ${SECONDS} s"
