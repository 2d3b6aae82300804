#!/usr/bin/env bash
# The package, tested as an operator uses it (run by scripts/test.sh, as
# root). It builds the .deb (scripts/package.sh), checks it with lintian,
# installs it with dpkg -i and checks every file it installs, the system
# user and /var/lib/pingmachine, checks the unit with systemd-analyze (verify,
# and an exposure of 2.0 or lower), runs the installed daemon the way the
# unit does (as the unit's User=, with only CAP_NET_RAW as an ambient
# capability, no new privileges, the unit's ExecStart= and environment
# file) on a loopback order until last_result appears, runs
# pingmachine-status and pingmachine healthcheck from their installed
# paths, then removes (data kept) and purges (data deleted, saying so; only
# the system user is left, as Debian does) the package.
#
# Outside CI it skips, saying why, when not root, without dpkg, or when
# the machine has a pingmachine package, user or /var/lib/pingmachine that
# this test did not install (it never touches an operator's); under CI
# (scripts/require.sh) each of these fails instead. What an earlier run of
# this test left behind when it was killed (it leaves a marker before it
# installs anything) is removed first. Everything it creates is removed on
# every exit path.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/require.sh
. scripts/require.sh

say() { echo "install-test: $*" >&2; }
fail() { say "FAILED: $*"; exit 1; }

if [ "$(id -u)" != 0 ]; then skip install-test "needs root (dpkg -i, a system user)"; exit 0; fi
if ! command -v dpkg >/dev/null; then skip install-test "needs dpkg (a Debian system)"; exit 0; fi
pkg_status() { dpkg-query -W -f='${Status}' pingmachine 2>/dev/null || true; }
# Written before the package is installed, removed after the last cleanup:
# while it exists, the package, user and state directory are this test's.
marker=/var/tmp/pingmachine-install-test.marker
daemon_pid=""
work=""
remove_ours() {
  set +e
  if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
    kill -KILL "$daemon_pid"
  fi
  if [ -n "$(pkg_status)" ] && [[ "$(pkg_status)" != *not-installed* ]]; then
    dpkg --purge pingmachine >/dev/null 2>&1
  fi
  if getent passwd pingmachine >/dev/null; then
    userdel pingmachine 2>/dev/null
  fi
  getent group pingmachine >/dev/null && groupdel pingmachine 2>/dev/null
  rm -rf /var/lib/pingmachine
  [ -n "$work" ] && rm -rf "$work"
  rm -f "$marker"
  set -e
}
leftovers() {
  local st
  st=$(pkg_status)
  if [ -n "$st" ] && [[ "$st" != *not-installed* ]]; then return 0; fi
  getent passwd pingmachine >/dev/null || [ -e /var/lib/pingmachine ]
}
if leftovers; then
  if [ -e "$marker" ]; then
    say "removing what an earlier run of this test left ($(cat "$marker"))"
    remove_ours
    if leftovers; then
      fail "could not remove what an earlier run left (package: $(pkg_status); see getent passwd pingmachine and /var/lib/pingmachine)"
    fi
  else
    skip install-test "this machine has a pingmachine package, user or /var/lib/pingmachine that this test did not install (remove them, or run the test on another machine)"
    exit 0
  fi
fi

work=$(mktemp -d)
trap remove_ours EXIT
echo "pid $$, started $(date -u +%FT%TZ)" >"$marker"

say "building the package"
deb=$(bash scripts/package.sh | tail -n 1)
[ -f "$deb" ] || fail "scripts/package.sh printed no package path ($deb)"

if command -v lintian >/dev/null; then
  say "lintian"
  # Errors and warnings fail; informational tags are printed.
  lintian --allow-root -I "$deb" | tee "$work/lintian" >&2 || true
  if grep -E '^[EW]: ' "$work/lintian"; then fail "lintian reports errors or warnings"; fi
else
  skip "install-test (lintian)" "lintian is not installed (apt-get install lintian)"
fi

say "dpkg -i $deb"
dpkg -i "$deb" >"$work/dpkg-i.log" 2>&1 || { cat "$work/dpkg-i.log" >&2; fail "dpkg -i"; }

# Every path in the package is installed, and is what the package holds.
dpkg-deb --fsys-tarfile "$deb" | tar -t | sed 's,^\./,/,; s,/$,,' | grep -v '^$' | grep -v '^/$' \
  >"$work/files"
[ "$(wc -l <"$work/files")" -ge 20 ] || fail "the package holds too few paths"
while read -r f; do
  [ -e "$f" ] || [ -L "$f" ] || fail "$f is in the package but not installed"
done <"$work/files"
for f in /usr/bin/pingmachine /usr/lib/systemd/system/pingmachine.service /etc/default/pingmachine \
  /usr/share/man/man8/pingmachine.8.gz /usr/share/man/man5/pingmachine-orders.5.gz \
  /usr/share/man/man8/pingmachine-status.8.gz /usr/share/man/man8/pingmachine-graph.8.gz \
  /usr/share/bash-completion/completions/pingmachine /usr/share/zsh/vendor-completions/_pingmachine \
  /usr/share/fish/vendor_completions.d/pingmachine.fish /usr/share/doc/pingmachine/README.Debian \
  /usr/share/doc/pingmachine/copyright /usr/share/doc/pingmachine/changelog.Debian.gz \
  /usr/share/pingmachine/prometheus/pingmachine-rules.yml \
  /usr/share/pingmachine/prometheus/pingmachine-rules.test.yml \
  /usr/share/pingmachine/grafana/pingmachine-prometheus.json \
  /usr/share/pingmachine/grafana/pingmachine-influxdb.json; do
  grep -qx "$f" "$work/files" || fail "$f is not in the package"
done
cmp -s <(dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/bin/pingmachine) /usr/bin/pingmachine \
  || fail "/usr/bin/pingmachine differs from the package's"
for link in pingmachine-status pingmachine-graph; do
  [ "$(readlink /usr/bin/$link)" = pingmachine ] || fail "/usr/bin/$link is not a link to pingmachine"
done
grep -qx /etc/default/pingmachine /var/lib/dpkg/info/pingmachine.conffiles \
  || fail "/etc/default/pingmachine is not a conffile"
# (Output is read from files, not piped into grep -q: with pipefail, grep -q
# leaving at its first match kills a writer that is not done with SIGPIPE,
# and the check fails on a busy machine.)
/usr/bin/pingmachine --version >"$work/version" || fail "pingmachine --version"
grep -q "^pingmachine " "$work/version" || fail "pingmachine --version printed: $(cat "$work/version")"
ldd /usr/bin/pingmachine >"$work/ldd" || fail "ldd /usr/bin/pingmachine"
grep -q librrd "$work/ldd" || fail "the binary does not link librrd"
grep -q 'librrd8' <(dpkg-query -W -f='${Depends}' pingmachine) || fail "Depends lacks librrd8 (shlibs)"
if command -v man >/dev/null; then
  for page in pingmachine pingmachine-orders pingmachine-status pingmachine-graph; do
    for locale in C.UTF-8 C; do
      out=$(LC_ALL=$locale MANWIDTH=80 man --warnings "$page" 2>&1 >/dev/null) || fail "man $page"
      [ -z "$out" ] || fail "man $page (LC_ALL=$locale): $out"
    done
  done
else
  skip "install-test (man pages)" "man is not installed (apt-get install man-db)"
fi
bash -c '. /usr/share/bash-completion/completions/pingmachine && complete -p pingmachine' >/dev/null \
  || fail "the bash completion does not load"

# The system user and the state directory.
IFS=: read -r _ _ uid gid _ home shell < <(getent passwd pingmachine) || fail "no user pingmachine"
[ "$uid" -lt 1000 ] || fail "pingmachine is not a system user (uid $uid)"
[ "$home" = /var/lib/pingmachine ] || fail "pingmachine's home is $home"
case "$shell" in */nologin|*/false) ;; *) fail "pingmachine has a login shell ($shell)";; esac
[ "$(stat -c %U:%G /var/lib/pingmachine)" = pingmachine:pingmachine ] \
  || fail "/var/lib/pingmachine is $(stat -c %U:%G /var/lib/pingmachine)"

# The unit: valid, hardened, its exposure recorded.
unit=/usr/lib/systemd/system/pingmachine.service
if command -v systemd-analyze >/dev/null; then
  out=$(systemd-analyze verify "$unit" 2>&1) || fail "systemd-analyze verify: $out"
  [ -z "$out" ] || fail "systemd-analyze verify: $out"
  exposure=$(systemd-analyze security --offline=true "$unit" 2>&1 \
    | sed -n 's/.*Overall exposure level for pingmachine.service: \([0-9.]*\).*/\1/p')
  [ -n "$exposure" ] || fail "systemd-analyze security printed no exposure"
  say "systemd-analyze security --offline=true: exposure $exposure"
  awk -v e="$exposure" 'BEGIN { exit !(e <= 2.0) }' || fail "exposure $exposure is above 2.0"
else
  skip "install-test (systemd unit)" "systemd-analyze is not installed (apt-get install systemd)"
fi
for line in User=pingmachine AmbientCapabilities=CAP_NET_RAW CapabilityBoundingSet=CAP_NET_RAW \
  NoNewPrivileges=yes ProtectSystem=strict StateDirectory=pingmachine \
  EnvironmentFile=-/etc/default/pingmachine 'ExecReload=/bin/kill -HUP $MAINPID'; do
  grep -qxF "$line" "$unit" || fail "the unit lacks $line"
done

# Run it as the unit does. --icmp-socket raw: ICMP through CAP_NET_RAW,
# whatever net.ipv4.ping_group_range allows here.
echo 'PINGMACHINE_OPTS="--icmp-socket raw --stats-interval 2"' >>/etc/default/pingmachine
user=$(sed -n 's/^User=//p' "$unit")
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
PINGMACHINE_OPTS=""
# shellcheck disable=SC1091
. /etc/default/pingmachine
cmdline=${exec_start//\$PINGMACHINE_OPTS/$PINGMACHINE_OPTS}
say "running as $user with CAP_NET_RAW only: $cmdline"
# The order is the operator's file: written as the daemon's user would find
# it from an application in its group.
install -d -o "$user" -g "$user" /var/lib/pingmachine/orders/demo
install -o "$user" -g "$user" -m 644 tests/fixtures/orders/demo/demo/loopback-v4 \
  /var/lib/pingmachine/orders/demo/loopback-v4
# shellcheck disable=SC2086
setpriv --reuid="$user" --regid="$user" --init-groups --no-new-privs \
  --inh-caps=-all,+net_raw --ambient-caps=-all,+net_raw --bounding-set=-all,+net_raw \
  $cmdline >"$work/daemon.log" 2>&1 &
daemon_pid=$!
result=/var/lib/pingmachine/output/demo/loopback-v4/last_result
for _ in $(seq 1 60); do
  [ -s "$result" ] && break
  kill -0 "$daemon_pid" 2>/dev/null || { cat "$work/daemon.log" >&2; fail "the daemon exited"; }
  sleep 1
done
[ -s "$result" ] || { cat "$work/daemon.log" >&2; fail "no last_result within 60 s"; }
grep -qx 'pings: 3' "$result" && grep -qx 'loss: 0' "$result" \
  || fail "expected 3 pings and no loss to 127.0.0.1: $(cat "$result")"
status=/proc/$daemon_pid/status
[ "$(awk '/^Uid:/ {print $2}' "$status")" = "$uid" ] || fail "runs as uid $(awk '/^Uid:/ {print $2}' "$status")"
[ "$(awk '/^Gid:/ {print $2}' "$status")" = "$gid" ] || fail "runs as gid $(awk '/^Gid:/ {print $2}' "$status")"
for set in CapEff CapPrm CapBnd CapAmb; do
  [ "$(awk -v s="$set:" '$1 == s {print $2}' "$status")" = 0000000000002000 ] \
    || fail "$set is $(awk -v s="$set:" '$1 == s {print $2}' "$status"), not CAP_NET_RAW alone"
done
[ "$(awk '/^NoNewPrivs:/ {print $2}' "$status")" = 1 ] || fail "NoNewPrivs is not set"
[ "$(stat -c %U "$result")" = "$user" ] || fail "last_result belongs to $(stat -c %U "$result")"
say "last_result written as $user: $(tr '\n' ' ' <"$result")"

# The tools from their installed paths, as the daemon's user.
as_user() { setpriv --reuid="$user" --regid="$user" --init-groups "$@"; }
( cd / && as_user /usr/bin/pingmachine-status --basedir /var/lib/pingmachine ) >"$work/status" \
  || fail "pingmachine-status"
grep -q 'loopback-v4' "$work/status" || fail "pingmachine-status does not list the order: $(cat "$work/status")"
# (The default base directory is the package's.)
( cd / && as_user /usr/bin/pingmachine-status ) >"$work/status-default" \
  || fail "pingmachine-status without --basedir"
grep -q 'loopback-v4' "$work/status-default" \
  || fail "pingmachine-status without --basedir does not list the order: $(cat "$work/status-default")"
as_user /usr/bin/pingmachine healthcheck >"$work/health" \
  || { tail -n 20 "$work/daemon.log" >&2; fail "healthcheck: $(cat "$work/health")"; }
say "$(cat "$work/health")"
# systemctl reload sends SIGHUP: a rescan.
kill -HUP "$daemon_pid"
for _ in $(seq 1 50); do grep -q 'SIGHUP' "$work/daemon.log" && break; sleep 0.1; done
grep -q 'SIGHUP' "$work/daemon.log" || fail "no rescan logged after SIGHUP"
# systemctl stop sends SIGTERM.
kill -TERM "$daemon_pid"
for _ in $(seq 1 100); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$daemon_pid" 2>/dev/null; then fail "still running 10 s after SIGTERM"; fi
wait "$daemon_pid" || fail "exit status $? after SIGTERM"
daemon_pid=""
as_user /usr/bin/pingmachine healthcheck >"$work/health" && fail "healthcheck says healthy with the daemon stopped"

# remove keeps the data and the conffile; purge deletes both, saying so.
dpkg -r pingmachine >"$work/remove.log" 2>&1 || { cat "$work/remove.log" >&2; fail "dpkg -r"; }
[ -s "$result" ] || fail "dpkg -r deleted the results"
[ -f /var/lib/pingmachine/orders/demo/loopback-v4 ] || fail "dpkg -r deleted the order"
[ -f /etc/default/pingmachine ] || fail "dpkg -r deleted the conffile"
[ ! -e /usr/bin/pingmachine ] || fail "dpkg -r left /usr/bin/pingmachine"
dpkg --purge pingmachine >"$work/purge.log" 2>&1 || { cat "$work/purge.log" >&2; fail "dpkg --purge"; }
grep -q 'deleting /var/lib/pingmachine' "$work/purge.log" || fail "purge did not say what it deletes"
[ ! -e /var/lib/pingmachine ] || fail "purge left /var/lib/pingmachine"
[ ! -e /etc/default/pingmachine ] || fail "purge left /etc/default/pingmachine"
# Every file and link of the package is gone (directories shared with
# other packages stay, as dpkg does).
while read -r f; do
  if [ -L "$f" ] || { [ -e "$f" ] && [ ! -d "$f" ]; }; then fail "purge left $f"; fi
done <"$work/files"
getent passwd pingmachine >/dev/null || fail "purge removed the system user (Debian keeps it)"
say "passed (exposure $exposure)"
