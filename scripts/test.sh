#!/usr/bin/env bash
# The full test suite: installs missing system packages, then formatting,
# lints, unit and integration tests of the whole workspace.
# Tests that send ICMP need root (raw sockets) or net.ipv4.ping_group_range;
# without them they print "skipping ..." and pass. CI runs this as root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
export CARGO_TERM_COLOR=never
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked 2>&1
