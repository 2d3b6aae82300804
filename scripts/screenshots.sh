#!/usr/bin/env bash
# Draws the web page's screenshots in docs/img/ from a demo base directory
# with 30 hours of rounds: the demo's orders (loopback, a slow and jittery
# host, a lossy host) and three more characters (a link that slows down in
# the evening, one with an outage, a quiet one far away). The rounds are
# written with the store's own librrd calls (pingmachine-bench history),
# then `pingmachine serve` shows them to headless Chromium.
#
# Usage: scripts/screenshots.sh [OUTDIR]   (default docs/img)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-docs/img}
browser=$(command -v chromium || command -v chromium-browser || true)
[ -n "$browser" ] || { echo "screenshots: needs chromium (apt-get install chromium)" >&2; exit 1; }
cargo build --release --locked -p pingmachine -p pingmachine-bench
bin=./target/release
base=$(mktemp -d -t pingmachine-shots.XXXXXX)
profile=$(mktemp -d -t pingmachine-shots-chromium.XXXXXX)
serve_pid=""
cleanup() {
  [ -z "$serve_pid" ] || kill "$serve_pid" 2>/dev/null || true
  [ -z "$serve_pid" ] || wait "$serve_pid" 2>/dev/null || true
  rm -rf "$base" "$profile"
}
trap cleanup EXIT

mkdir -p "$base/orders"
cp -r tests/fixtures/orders/demo/. tests/fixtures/orders/demo-netns/. "$base/orders/"
order() { # ID TASK STEP PINGS HOST
  cat >"$base/orders/$1" <<EOF
user: demo
task: $2
step: $3
pings: $4
probe: fping
fping:
  host: $5
EOF
}
order demo/evening "an office link, busy in the evening" 60 20 198.18.0.5
order demo/outage "a branch that lost its uplink" 60 20 198.18.0.6
order demo/far "a host across the ocean" 60 20 198.18.0.7
"$bin/pingmachine-bench" history --basedir "$base" --hours 30 \
  --order demo/loopback-v4:0.04:0.01:0 \
  --order demo/loopback-v6:0.05:0.01:0 \
  --order demo/loopback-60s:0.04:0.01:0 \
  --order demo/slow:40:15:0.002 \
  --order demo/lossy:4:1:0.15 \
  --order demo/evening:12:2:0.01:25 \
  --order demo/outage:18:3:0.005:0:5 \
  --order demo/far:145:4:0.001

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin/pingmachine" --basedir "$base" serve --listen "$port" >/dev/null 2>&1 &
serve_pid=$!
for ((i = 0; i < 100; i++)); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done

shot() { # FILE SIZE PATH
  rm -f "$out/$1"
  "$browser" --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run \
    --hide-scrollbars --virtual-time-budget=8000 --user-data-dir="$profile" \
    --screenshot="$out/$1" --window-size="$2" "http://127.0.0.1:$port$3" >/dev/null 2>&1
  [ -s "$out/$1" ] || { echo "screenshots: no $out/$1" >&2; exit 1; }
  echo "$out/$1"
}
mkdir -p "$out"
shot web-status.png 1200,560 "/?sort=loss&period=86400"
shot web-order.png 1200,1900 "/order/demo/evening"
shot web-charts.png 1200,900 "/charts?range=108000"
shot web-compare.png 1200,760 "/compare?ids=demo/slow&ids=demo/evening&ids=demo/outage&range=108000"
