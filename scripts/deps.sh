#!/usr/bin/env bash
# Installs the system packages pingmachine needs to build, run and test,
# when they are missing (Debian/Ubuntu: apt-get). Safe to run repeatedly.
# With --test, also what the test suite needs (influxdb, prometheus,
# victoria-metrics, chromium, fping, curl; lintian and systemd-analyze for the package;
# podman, buildah, runc and debootstrap for the container image; rrdcached;
# ethtool for the benchmark's network namespaces; e2fsprogs, mount and
# util-linux for the slow-disk test).
set -euo pipefail

# The Rust toolchain: the crate needs the version in Cargo.toml
# (rust-version); Debian's own rustc is older.
want_rust=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' "$(dirname "$0")/../Cargo.toml" | head -n 1)
if ! command -v cargo >/dev/null; then
  echo "deps: no cargo; install Rust $want_rust or newer: curl --proto '=https' -sSf https://sh.rustup.rs | sh" >&2
  exit 1
fi
have_rust=$(rustc --version 2>/dev/null | awk '{print $2}')
if [ "$(printf '%s\n%s\n' "$want_rust" "${have_rust%%-*}" | sort -V | head -n 1)" != "$want_rust" ]; then
  echo "deps: rustc $have_rust is older than the $want_rust this needs; update it (rustup update stable), or install rustup: https://rustup.rs" >&2
  exit 1
fi

need=()
have_pkg() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = 'install ok installed' ]; }
# python3: the demo hands its listening socket to the daemon.
pkgs=(librrd-dev rrdtool libclang-dev pkg-config iproute2 python3)
# The test suite also needs a real InfluxDB (Debian's influxdb: influxd),
# a real Prometheus (and promtool), and a headless browser for the web page.
if [ "${1:-}" = "--test" ]; then
  pkgs+=(influxdb fping prometheus victoria-metrics chromium curl lintian systemd man-db podman buildah runc debootstrap rrdcached ethtool e2fsprogs mount util-linux)
fi
for pkg in "${pkgs[@]}"; do
  have_pkg "$pkg" || need+=("$pkg")
done
if ((${#need[@]} == 0)); then
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "deps: missing ${need[*]} and no apt-get here; install them with your package manager" >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "deps: need root (or sudo) to install ${need[*]}" >&2; exit 1; }
  sudo="sudo"
fi
echo "deps: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
