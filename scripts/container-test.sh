#!/usr/bin/env bash
# The container image, built and run with podman (run by scripts/test.sh,
# as root). Base images are made on this machine
# (packaging/container/base-images.sh: debootstrap, then podman import), so
# no registry is needed. It builds the Dockerfile, checks the image's
# configuration (non-root user, volume, healthcheck, default command), then
# runs it with CAP_NET_RAW on a loopback order in a directory mounted as the
# volume:
#   * the default command: last_result appears, written by the image's
#     user; the daemon runs as that user with CAP_NET_RAW alone effective,
#     with the ICMP socket the container's ping_group_range calls for; the
#     HEALTHCHECK passes (lock and .stats.json); it stops on SIGTERM with
#     status 0;
#   * `run --icmp-socket raw --listen 0.0.0.0:9374`: a raw socket through
#     the file capability; the HEALTHCHECK asks /-/healthy;
#     pingmachine-status works inside.
# Then the systemd unit under a real systemd: the Debian package
# (scripts/package.sh) installed with apt in a container whose init is
# systemd. The service is enabled and running after boot; with
# PINGMACHINE_OPTS from /etc/default/pingmachine it writes last_result as
# the user pingmachine with CAP_NET_RAW alone (effective, bounding,
# ambient), no new privileges and a seccomp filter; it draws a graph over
# HTTP (librrd under MemoryDenyWriteExecute and the system call filter);
# `systemctl reload` is a rescan; `systemctl stop` a clean stop.
#
# Podman runs with a configuration of the test's own (CONTAINERS_CONF): the
# runc runtime (crun refuses hybrid cgroup hierarchies) and explicit
# ulimits (a sandbox without CAP_SYS_RESOURCE cannot raise them to
# podman's defaults). Outside CI it skips, saying why, on three causes only:
# not root, no Debian mirror to make the base images from, or podman unable
# to start any container here; under CI (scripts/require.sh) these fail
# too. Any other failure, of the base-image script included, fails.
# Removes its containers, image and files on every exit path (and dangling
# images: the build stage); the base images stay as a cache.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/require.sh
. scripts/require.sh

say() { echo "container-test: $*" >&2; }
fail() { say "FAILED: $*"; exit 1; }

if [ "$(id -u)" != 0 ]; then skip container-test "needs root (rootful podman, debootstrap)"; exit 0; fi
need=()
for cmd in podman:podman buildah:buildah debootstrap:debootstrap runc:runc curl:curl; do
  command -v "${cmd%%:*}" >/dev/null || need+=("${cmd#*:}")
done
if ((${#need[@]})); then
  say "installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

work=$(mktemp -d)
image=localhost/pingmachine:test-$$
cleanup() {
  set +e
  for c in pm-test-$$ pm-test-listen-$$ pm-test-systemd-$$; do
    podman rm -f --ignore -t 2 "$c" >/dev/null 2>&1
  done
  podman rmi -f "$image" "$image-systemd" >/dev/null 2>&1
  [ -n "${ctr:-}" ] && buildah rm "$ctr" >/dev/null 2>&1
  podman image prune -f >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

hard_nofile=$(ulimit -Hn)
[ "$hard_nofile" = unlimited ] && hard_nofile=65536
nofile=$((hard_nofile < 65536 ? hard_nofile : 65536))
cat >"$work/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=4096:4096"]
log_driver = "k8s-file"
[engine]
runtime = "runc"
EOF
export CONTAINERS_CONF="$work/containers.conf"
# Healthcheck timers need systemd; without it podman logs errors about
# them on every run. The checks are run by hand here, and those lines are
# left out of what a failing podman command printed.
quiet() {
  local rc=0
  "$@" 2>"$work/podman.err" || rc=$?
  grep -v 'systemd connection' "$work/podman.err" >&2 || true
  return "$rc"
}

say "base images (debootstrap bookworm, this machine's Rust toolchain)"
rc=0
bash packaging/container/base-images.sh >"$work/base.log" 2>&1 || rc=$?
if [ "$rc" = 3 ]; then
  cat "$work/base.log" >&2
  skip container-test "the base images cannot be made here: no Debian mirror answers (see above)"
  exit 0
elif [ "$rc" != 0 ]; then
  cat "$work/base.log" >&2
  fail "packaging/container/base-images.sh exited with $rc"
fi
if ! podman run --rm localhost/debian:bookworm-slim true >"$work/probe.log" 2>&1; then
  cat "$work/probe.log" >&2
  skip container-test "podman cannot start any container on this machine (see above)"
  exit 0
fi

say "podman build (the Rust build stage compiles the release binary)"
start=$(date +%s)
podman build --format docker \
  --build-arg RUST_IMAGE=localhost/rust:bookworm \
  --build-arg RUNTIME_IMAGE=localhost/debian:bookworm-slim \
  -t "$image" . >"$work/build.log" 2>&1 || { tail -n 40 "$work/build.log" >&2; fail "podman build"; }
size=$(podman image inspect "$image" --format '{{.Size}}')
say "built in $(($(date +%s) - start)) s, image size $((size / 1000000)) MB"

cfg() { podman image inspect "$image" --format "$1"; }
[ "$(cfg '{{.Config.User}}')" = pingmachine ] || fail "the image's user is '$(cfg '{{.Config.User}}')'"
[ "$(cfg '{{json .Config.Volumes}}')" = '{"/var/lib/pingmachine":{}}' ] || fail "volumes: $(cfg '{{json .Config.Volumes}}')"
[ "$(cfg '{{json .Config.Entrypoint}}')" = '["pingmachine"]' ] || fail "entrypoint: $(cfg '{{json .Config.Entrypoint}}')"
[ "$(cfg '{{json .Config.Cmd}}')" = '["run"]' ] || fail "cmd: $(cfg '{{json .Config.Cmd}}')"
[ "$(cfg '{{json .Config.Healthcheck.Test}}')" = '["CMD","pingmachine","healthcheck"]' ] \
  || fail "healthcheck: $(cfg '{{json .Config.Healthcheck}}')"
uid=$(podman run --rm --entrypoint id "$image" -u 2>/dev/null)
[ "$uid" != 0 ] || fail "the image runs as root"

# The volume: a directory with one loopback order, owned by the image's user.
base="$work/base"
mkdir -p "$base/orders/demo"
cp tests/fixtures/orders/demo/demo/loopback-v4 "$base/orders/demo/"
chown -R "$uid:$uid" "$base"

say "podman run (default command) with CAP_NET_RAW"
quiet podman run -d --name pm-test-$$ --health-interval disable --cap-add NET_RAW \
  -v "$base:/var/lib/pingmachine" "$image" >/dev/null
result="$base/output/demo/loopback-v4/last_result"
for _ in $(seq 1 60); do
  [ -s "$result" ] && break
  [ "$(podman inspect pm-test-$$ --format '{{.State.Running}}')" = true ] \
    || { podman logs pm-test-$$ >&2; fail "the container stopped"; }
  sleep 1
done
[ -s "$result" ] || { podman logs pm-test-$$ >&2; fail "no last_result within 60 s"; }
grep -qx 'pings: 3' "$result" && grep -qx 'loss: 0' "$result" \
  || fail "expected 3 pings and no loss to 127.0.0.1: $(cat "$result")"
[ "$(stat -c %u "$result")" = "$uid" ] || fail "last_result belongs to uid $(stat -c %u "$result")"
status=$(podman exec pm-test-$$ cat /proc/1/status)
[ "$(awk '/^Uid:/ {print $2}' <<<"$status")" = "$uid" ] || fail "the daemon runs as uid $(awk '/^Uid:/ {print $2}' <<<"$status")"
[ "$(awk '/^CapEff:/ {print $2}' <<<"$status")" = 0000000000002000 ] \
  || fail "CapEff $(awk '/^CapEff:/ {print $2}' <<<"$status"), not CAP_NET_RAW alone"
# The default (auto) takes a datagram socket where the container's
# net.ipv4.ping_group_range covers the image's group, else a raw one. Which
# it is depends on the host's podman (its default sysctls, its network), so
# the expectation is read from the container; the raw path is forced below.
range=$(podman exec pm-test-$$ cat /proc/sys/net/ipv4/ping_group_range)
gid=$(podman exec pm-test-$$ id -g)
read -r lo hi <<<"$range"
kind=raw
((lo <= gid && gid <= hi)) && kind=datagram
podman logs pm-test-$$ >"$work/default.log" 2>&1
grep -q "opened ICMP $kind socket" "$work/default.log" \
  || { cat "$work/default.log" >&2; fail "no $kind ICMP socket in the log (ping_group_range '$range', gid $gid)"; }
say "ICMP socket: $kind (ping_group_range '$range', gid $gid)"
quiet podman healthcheck run pm-test-$$ >/dev/null || fail "the HEALTHCHECK fails: $(podman exec pm-test-$$ pingmachine healthcheck)"
say "$(podman exec pm-test-$$ pingmachine healthcheck)"
quiet podman stop -t 10 pm-test-$$ >/dev/null
[ "$(podman inspect pm-test-$$ --format '{{.State.ExitCode}}')" = 0 ] \
  || fail "exit status $(podman inspect pm-test-$$ --format '{{.State.ExitCode}}') after SIGTERM"
quiet podman rm pm-test-$$ >/dev/null

say "podman run ... run --icmp-socket raw --listen 0.0.0.0:9374"
quiet podman run -d --name pm-test-listen-$$ --health-interval disable --cap-add NET_RAW \
  -v "$base:/var/lib/pingmachine" "$image" run --icmp-socket raw --listen 0.0.0.0:9374 >/dev/null
health=""
for _ in $(seq 1 50); do
  health=$(podman exec pm-test-listen-$$ pingmachine healthcheck 2>&1) && break
  sleep 0.2
done
grep -q '/-/healthy answered 200' <<<"$health" || fail "healthcheck with --listen: $health"
quiet podman healthcheck run pm-test-listen-$$ >/dev/null || fail "the HEALTHCHECK fails with --listen"
say "$health"
# (Read from a file, not piped into grep -q: under pipefail, the writer can
# die of SIGPIPE when grep leaves at its first match.)
podman exec pm-test-listen-$$ pingmachine-status >"$work/status" || fail "pingmachine-status inside the container"
grep -q 'demo/loopback-v4' "$work/status" || fail "pingmachine-status inside the container: $(cat "$work/status")"
# The raw socket, through the file capability made effective by the daemon.
podman logs pm-test-listen-$$ >"$work/listen.log" 2>&1
grep -q 'opened ICMP raw socket' "$work/listen.log" \
  || { cat "$work/listen.log" >&2; fail "--icmp-socket raw: no raw ICMP socket in the log"; }
quiet podman rm -f pm-test-listen-$$ >/dev/null

say "the systemd unit under systemd: the package in a container booting systemd"
deb=$(bash scripts/package.sh | tail -n 1)
[ -f "$deb" ] || fail "scripts/package.sh printed no package path ($deb)"
ctr=$(buildah from localhost/debian:bookworm-slim)
buildah copy "$ctr" "$deb" /tmp/pingmachine.deb >/dev/null
# (/tmp is a fresh tmpfs once systemd boots.)
buildah copy "$ctr" tests/fixtures/orders/demo/demo/loopback-v4 /opt/loopback-v4 >/dev/null
buildah run "$ctr" -- sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -qq --no-install-recommends systemd systemd-sysv /tmp/pingmachine.deb \
  && rm -rf /var/lib/apt/lists/*' >"$work/systemd-image.log" 2>&1 \
  || { tail -n 20 "$work/systemd-image.log" >&2; fail "installing the package with apt"; }
buildah config --cmd /sbin/init "$ctr"
buildah commit --quiet "$ctr" "$image-systemd" >/dev/null
buildah rm "$ctr" >/dev/null
ctr=""
quiet podman run -d --name pm-test-systemd-$$ --systemd=always "$image-systemd" >/dev/null
sd() { podman exec pm-test-systemd-$$ "$@"; }
state=""
for _ in $(seq 1 100); do
  state=$(sd systemctl is-active pingmachine 2>/dev/null) && break
  sleep 0.2
done
[ "$state" = active ] || { sd journalctl -u pingmachine --no-pager >&2; fail "pingmachine.service is '$state' after boot"; }
sd sh -c 'echo PINGMACHINE_OPTS=\"--listen 127.0.0.1:9374\" >> /etc/default/pingmachine
  systemctl restart pingmachine
  install -d -o pingmachine -g pingmachine /var/lib/pingmachine/orders/demo
  install -o pingmachine -g pingmachine -m 644 /opt/loopback-v4 /var/lib/pingmachine/orders/demo/'
result=/var/lib/pingmachine/output/demo/loopback-v4/last_result
for _ in $(seq 1 60); do
  sd test -s "$result" && break
  sleep 1
done
sd test -s "$result" || { sd journalctl -u pingmachine --no-pager >&2; fail "no last_result under systemd within 60 s"; }
sd grep -qx 'loss: 0' "$result" || fail "under systemd: $(sd cat "$result")"
[ "$(sd stat -c %U "$result")" = pingmachine ] || fail "last_result belongs to $(sd stat -c %U "$result")"
pid=$(sd systemctl show -p MainPID --value pingmachine)
status=$(sd cat "/proc/$pid/status")
uid=$(sd id -u pingmachine)
[ "$(awk '/^Uid:/ {print $2}' <<<"$status")" = "$uid" ] || fail "the service runs as uid $(awk '/^Uid:/ {print $2}' <<<"$status")"
for set in CapEff CapPrm CapBnd CapAmb; do
  [ "$(awk -v s="$set:" '$1 == s {print $2}' <<<"$status")" = 0000000000002000 ] \
    || fail "$set is $(awk -v s="$set:" '$1 == s {print $2}' <<<"$status") under the unit"
done
[ "$(awk '/^NoNewPrivs:/ {print $2}' <<<"$status")" = 1 ] || fail "NoNewPrivs is not set under the unit"
[ "$(awk '/^Seccomp:/ {print $2}' <<<"$status")" = 2 ] || fail "no seccomp filter under the unit"
# A graph: librrd, cairo and pango in the service's process.
head=$(sd bash -c 'exec 3<>/dev/tcp/127.0.0.1/9374
  printf "GET /graph/demo/loopback-v4?range=10800 HTTP/1.0\r\n\r\n" >&3
  cat <&3 >/tmp/graph; head -n 3 /tmp/graph | tr -d "\r"; wc -c </tmp/graph')
grep -q '^HTTP/1.0 200' <<<"$head" && grep -q 'image/png' <<<"$head" || fail "graph under the unit: $head"
sd setpriv --reuid=pingmachine --regid=pingmachine --init-groups pingmachine healthcheck >/dev/null \
  || fail "healthcheck under the unit: $(sd pingmachine healthcheck)"
sd systemctl reload pingmachine || { sd journalctl -u pingmachine --no-pager | tail -n 5 >&2; fail "systemctl reload"; }
# The journal is captured, then searched: piped into grep -q under pipefail,
# journalctl would die of SIGPIPE when grep leaves at its first match.
journal_has() { sd journalctl -u pingmachine --no-pager >"$work/journal" 2>&1; grep -q "$1" "$work/journal"; }
for _ in $(seq 1 50); do
  journal_has 'SIGHUP: rescanning' && break
  sleep 0.2
done
journal_has 'SIGHUP: rescanning' || fail "systemctl reload did not rescan"
[ "$(sd systemctl show -p MainPID --value pingmachine)" = "$pid" ] || fail "reload restarted the daemon"
sd systemctl stop pingmachine
[ "$(sd systemctl show -p Result --value pingmachine)" = success ] \
  || fail "systemctl stop: $(sd systemctl show -p Result --value pingmachine)"
say "under systemd: active after boot, uid $uid, CapEff/CapBnd/CapAmb CAP_NET_RAW, NoNewPrivs, seccomp; graph, reload, stop"
say "passed"
