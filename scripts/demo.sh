#!/usr/bin/env bash
# Runs pingmachine on a demo base directory (./demo by default) with example
# orders to 127.0.0.1 and ::1, in the foreground with --debug, serving the
# web page and /metrics on loopback (port 8374, or $PINGMACHINE_DEMO_PORT):
# open the printed URL in a browser on this machine, and watch
# demo/output/*/*/last_result and main.rrd appear. Stop with Ctrl-C.
# Installs missing system packages first.
# Usage: scripts/demo.sh [BASEDIR] [RUN-FLAGS...], e.g.
#   scripts/demo.sh demo --influx-url 'http://127.0.0.1:8086/write?db=pingmachine'
set -euo pipefail
cd "$(dirname "$0")/.."
base="demo"
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
  base="$1"
  shift
fi
bash scripts/deps.sh
cargo build --release --locked
mkdir -p "$base/orders"
cp -r tests/fixtures/orders/demo/. "$base/orders/"
# Orders must be refreshed hourly; the demo copies are fresh now.
touch "$base"/orders/demo/*
if [ "$(id -u)" != 0 ]; then
  range=$(cat /proc/sys/net/ipv4/ping_group_range 2>/dev/null || echo "1 0")
  echo "note: not root; ICMP needs root or: sudo sysctl -w net.ipv4.ping_group_range='0 2147483647' (now: $range)" >&2
fi
port=${PINGMACHINE_DEMO_PORT:-8374}
echo "pingmachine: base directory $base; results in $base/output/ (Ctrl-C to stop)" >&2
echo "  web page: http://127.0.0.1:$port/" >&2
echo "  metrics:  curl -s http://127.0.0.1:$port/metrics" >&2
echo "  a result: cat $base/output/demo/loopback-v4/last_result (after its first round)" >&2
exec ./target/release/pingmachine --basedir "$base" run --debug --listen "$port" "$@"
