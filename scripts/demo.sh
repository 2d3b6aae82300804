#!/usr/bin/env bash
# Runs pingmachine on a demo base directory (./demo by default), in the
# foreground with --debug, serving the web page and /metrics on loopback
# (port 8374, or $PINGMACHINE_DEMO_PORT): open the printed URL in a browser
# on this machine, and watch demo/output/*/*/last_result and main.rrd
# appear. Stop with Ctrl-C. Installs missing system packages first.
#
# The orders ping 127.0.0.1 and ::1. As root, two more hosts show what
# smoke and loss look like: a slow one (198.18.0.3, about 40 ms with
# jitter) and a lossy one (198.18.0.4, about one ping in six lost). They
# are simulated in two network namespaces the demo creates (the daemon
# runs in one of them, the hosts in the other; nothing is added to this
# machine's own network) and removes when it stops, for at most a day.
# The web page still listens on this machine's 127.0.0.1: the demo binds
# the port here and hands the socket to the daemon (--listen systemd).
#
# Usage: scripts/demo.sh [BASEDIR] [RUN-FLAGS...], e.g.
#   scripts/demo.sh demo --influx-url 'http://127.0.0.1:8086/write?db=pingmachine'
# With RUN-FLAGS (which may name this machine's 127.0.0.1), or with
# PINGMACHINE_DEMO_NETNS=0, the daemon stays in this machine's network
# and the demo pings loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
base="demo"
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
  base="$1"
  shift
fi
port=${PINGMACHINE_DEMO_PORT:-8374}
# The simulated hosts answer for at most this long (seconds).
hold=86400
bin=./target/release

# Why the simulated hosts are left out (empty: they are not).
without=""
if [ "${PINGMACHINE_DEMO_NETNS:-1}" = 0 ]; then
  without="PINGMACHINE_DEMO_NETNS=0"
elif [ $# -gt 0 ]; then
  without="run flags were given, and inside a network namespace 127.0.0.1 is not this machine"
elif [ "$(id -u)" != 0 ]; then
  without="they need root (network namespaces)"
elif ! ip netns list >/dev/null 2>&1; then
  without="this machine has no network namespaces"
fi

bash scripts/deps.sh
if [ -z "$without" ]; then
  # One build for both (built apart, they would build shared crates twice).
  cargo build --release --locked -p pingmachine -p testkit --bin pingmachine --bin impairsim
else
  cargo build --release --locked -p pingmachine
fi
mkdir -p "$base/orders"
cp -r tests/fixtures/orders/demo/. "$base/orders/"
# Orders must be refreshed hourly; the demo's copies are fresh now.
(cd tests/fixtures/orders/demo && find . -type f) | while read -r f; do touch "$base/orders/$f"; done

sim_pid="" sim_out="" daemon_pid="" namespaces=""

# alive PID: the process exists and is not a zombie.
alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [ "${stat%% *}" != Z ]
}

# stop PID SIGNAL SECONDS: signal, wait at most SECONDS, then SIGKILL;
# then reap it (a child of this script).
stop() {
  local i
  if kill -"$2" "$1" 2>/dev/null; then
    for ((i = 0; i < $3 * 10; i++)); do
      alive "$1" || break
      sleep 0.1
    done
    if alive "$1"; then
      echo "demo: process $1 did not stop within $3 s; killing it" >&2
      kill -KILL "$1" 2>/dev/null || true
    fi
  fi
  wait "$1" 2>/dev/null || true
}

cleanup() {
  trap - INT TERM HUP
  [ -z "$daemon_pid" ] || stop "$daemon_pid" TERM 20
  [ -z "$sim_pid" ] || stop "$sim_pid" TERM 20
  # The simulator removes its namespaces as it exits; after a SIGKILL the
  # demo does.
  local ns
  for ns in $namespaces; do
    if ip netns list 2>/dev/null | grep -qw "^$ns"; then
      ip netns del "$ns" 2>/dev/null || true
    fi
  done
  [ -z "$sim_out" ] || rm -f "$sim_out"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

if [ -z "$without" ]; then
  sim_out=$(mktemp -t pingmachine-demo.XXXXXX)
  "$bin/impairsim" --quiet --hold "$hold" \
    --host 198.18.0.3,delay=40,jitter=15 \
    --host 198.18.0.4,delay=4,jitter=1,loss=0.15 >"$sim_out" 2>&1 &
  sim_pid=$!
  for ((i = 0; i < 300; i++)); do
    grep -q '^holding for' "$sim_out" && break
    alive "$sim_pid" || break
    sleep 0.1
  done
  namespaces=$(sed -n 's/^\(prober\|host\) namespace: *//p' "$sim_out" | tr '\n' ' ')
  prober=$(sed -n 's/^prober namespace: *//p' "$sim_out")
  if ! grep -q '^holding for' "$sim_out" || [ -z "$prober" ]; then
    without="the network simulator did not start: $(tr '\n' ' ' <"$sim_out")"
    stop "$sim_pid" TERM 20
    sim_pid=""
  fi
fi

if [ -z "$without" ]; then
  cp -r tests/fixtures/orders/demo-netns/. "$base/orders/"
  (cd tests/fixtures/orders/demo-netns && find . -type f) | while read -r f; do touch "$base/orders/$f"; done
fi
if [ "$(id -u)" != 0 ]; then
  range=$(cat /proc/sys/net/ipv4/ping_group_range 2>/dev/null || echo "1 0")
  echo "note: not root; ICMP needs root or: sudo sysctl -w net.ipv4.ping_group_range='0 2147483647' (now: $range)" >&2
fi
echo "pingmachine: base directory $base; results in $base/output/ (Ctrl-C to stop)" >&2
echo "  web page: http://127.0.0.1:$port/" >&2
echo "  metrics:  curl -s http://127.0.0.1:$port/metrics" >&2
echo "  a result: cat $base/output/demo/loopback-v4/last_result (after its first round)" >&2
if [ -z "$without" ]; then
  echo "  simulated hosts: demo/slow (198.18.0.3) and demo/lossy (198.18.0.4), for at most $((hold / 3600)) hours" >&2
  echo "  network namespaces (removed on exit): $namespaces" >&2
  # Bind the port in this machine's network, then exec the daemon in the
  # prober namespace with the socket as fd 3 (systemd's socket activation
  # protocol: LISTEN_FDS, LISTEN_PID; `ip netns exec` execs in place, so
  # the daemon keeps this process's id).
  activate='
import os, socket, sys
try:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", int(sys.argv[1])))
    s.listen(128)
except OSError as e:
    sys.exit(f"demo: cannot listen on 127.0.0.1:{sys.argv[1]}: {e} (set PINGMACHINE_DEMO_PORT)")
if s.fileno() != 3:
    os.dup2(s.fileno(), 3)
os.set_inheritable(3, True)
os.environ.update(LISTEN_FDS="1", LISTEN_PID=str(os.getpid()))
os.execvp(sys.argv[2], sys.argv[2:])
'
  python3 -c "$activate" "$port" ip netns exec "$prober" \
    "$bin/pingmachine" --basedir "$base" run --debug --listen systemd &
else
  echo "  (no simulated slow and lossy hosts: $without)" >&2
  "$bin/pingmachine" --basedir "$base" run --debug --listen "$port" "$@" &
fi
daemon_pid=$!
set +e
wait "$daemon_pid"
status=$?
set -e
daemon_pid=""
exit "$status"
