#!/usr/bin/env bash
# The demo, tested as a newcomer uses it (run by scripts/test.sh, as
# root): scripts/demo.sh runs in its own session on a free port and a
# temporary base directory; the test waits for the printed URL, then for
# the page (listing the simulated slow and lossy hosts) and /metrics to
# answer, for the slow host's rounds to show its delay (a median of at
# least 25 ms: the simulator can answer late, never early) and the lossy
# host's to show loss. Then it sends SIGINT to the demo's process group,
# as Ctrl-C in its terminal does, and checks that the demo stops within a
# minute and leaves no process, network namespace or listening port
# behind.
#
# Outside CI it skips, saying why, when not root or without network
# namespaces; under CI (scripts/require.sh) it fails instead. Every wait
# is bounded; whatever the demo left is removed on every exit path.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/require.sh
. scripts/require.sh

say() { echo "demo-test: $*" >&2; }
fail() {
  say "FAILED: $*"
  [ -z "${out:-}" ] || { say "the demo's output:"; tail -n 40 "$out" >&2; }
  exit 1
}

if [ "$(id -u)" != 0 ]; then skip demo-test "needs root (the demo's network namespaces)"; exit 0; fi
if ! ip netns list >/dev/null 2>&1; then skip demo-test "needs network namespaces (ip netns)"; exit 0; fi

work=$(mktemp -d -t pingmachine-demo-test.XXXXXX)
out="$work/demo.out"
base="$work/demo"
demo_pid=""
namespaces_before=$(ip netns list | awk '{print $1}' | sort)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

# The namespaces that exist now and did not before the demo.
new_namespaces() {
  comm -13 <(echo "$namespaces_before") <(ip netns list | awk '{print $1}' | sort)
}
cleanup() {
  set +e
  if [ -n "$demo_pid" ]; then
    kill -KILL -- "-$demo_pid" 2>/dev/null
  fi
  local ns
  for ns in $(new_namespaces | grep '^pm-acc-'); do ip netns del "$ns"; done
  rm -rf "$work"
}
trap cleanup EXIT

say "scripts/demo.sh $base (port $port)"
# setsid: the demo leads its own session and process group, as in a
# terminal of its own (its id is the group's).
PINGMACHINE_DEMO_PORT=$port setsid bash scripts/demo.sh "$base" >"$out" 2>&1 </dev/null &
demo_pid=$!

# wait_until SECONDS WHAT COMMAND...: polls COMMAND every second.
wait_until() {
  local seconds=$1 what=$2 i
  shift 2
  for ((i = 0; i < seconds; i++)); do
    if "$@"; then return 0; fi
    kill -0 "$demo_pid" 2>/dev/null || fail "the demo exited while waiting for $what"
    sleep 1
  done
  fail "no $what within $seconds s"
}
# page PATH [CURL-ARGS...]
page() {
  local path=$1
  shift
  curl -sf --max-time 10 "$@" "http://127.0.0.1:$port/$path"
}

# The build is done by earlier phases; a fresh one takes minutes.
wait_until 900 "web page URL in the output" grep -q "web page: http://127.0.0.1:$port/" "$out"
grep -q "simulated hosts: demo/slow" "$out" || fail "the demo left out the simulated hosts"
wait_until 60 "answer from the web page" page "" -o /dev/null
wait_until 60 "answer from /metrics" page metrics -o /dev/null

# Whether some round of demo/lossy lost pings and some round of demo/slow
# had a median of 25 ms or more (its last_result, read as rounds come).
seen_loss=0
slow_ok=0
check_rounds() {
  local f="$base/output/demo/lossy/last_result" g="$base/output/demo/slow/last_result" v
  if [ -f "$f" ]; then
    v=$(sed -n 's/^loss: //p' "$f")
    [ "${v:-0}" -gt 0 ] && seen_loss=1
  fi
  if [ -f "$g" ]; then
    v=$(sed -n 's/^median: //p' "$g")
    [ -n "$v" ] && python3 -c "import sys; sys.exit(0 if float('$v') >= 0.025 else 1)" && slow_ok=1
  fi
  [ "$seen_loss" = 1 ] && [ "$slow_ok" = 1 ]
}
# Rounds every 30 s: loss shows within a few (15 % of 20 pings each).
wait_until 240 "round of demo/lossy with loss and of demo/slow with a median of 25 ms or more" check_rounds

body=$(page "")
for id in demo/slow demo/lossy demo/loopback-v4; do
  grep -q "$id" <<<"$body" || fail "the page does not list $id"
done
metrics=$(page metrics)
grep -q 'smokeping_requests_total{ip="198.18.0.4"' <<<"$metrics" || fail "/metrics has no series of the lossy host"
say "page, /metrics, the slow and the lossy host answer; Ctrl-C"

kill -INT -- "-$demo_pid"
for ((i = 0; i < 600; i++)); do
  kill -0 "$demo_pid" 2>/dev/null || break
  sleep 0.1
done
if kill -0 "$demo_pid" 2>/dev/null; then fail "the demo did not stop within 60 s of Ctrl-C"; fi
wait "$demo_pid" 2>/dev/null || true
left=$(pgrep -s "$demo_pid" || true)
[ -z "$left" ] || fail "processes left behind: $(ps -o pid=,args= -p "$(tr '\n' , <<<"$left" | sed 's/,$//')")"
demo_pid=""
left=$(new_namespaces)
[ -z "$left" ] || fail "network namespaces left behind: $left"
if ss -ltnH "sport = :$port" | grep -q .; then fail "port $port still listens"; fi
grep -q "stopped" "$out" || fail "the daemon did not log its stop"
say "ok: stopped with Ctrl-C, nothing left behind"
