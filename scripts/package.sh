#!/usr/bin/env bash
# Builds the Debian package: target/debian/pingmachine_<version>-1_<arch>.deb
# (binary, pingmachine-status and pingmachine-graph links, man pages,
# completions, the systemd unit, README.Debian; layout in Cargo.toml's
# [package.metadata.deb], files in packaging/). Installs what it needs first:
# the build dependencies and cargo-deb.
# Usage: scripts/package.sh               build the .deb, print its path
#        scripts/package.sh --completions regenerate packaging/completions/
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO_DEB_VERSION=3.8.0

if [ "${1:-}" = "--completions" ]; then
  cargo build --locked --quiet
  ./target/debug/pingmachine completions bash > packaging/completions/pingmachine.bash
  ./target/debug/pingmachine completions zsh > packaging/completions/_pingmachine
  ./target/debug/pingmachine completions fish > packaging/completions/pingmachine.fish
  echo "packaging/completions/ regenerated" >&2
  exit 0
fi

bash scripts/deps.sh
if [[ "$(cargo deb --version 2>/dev/null || true)" != *"$CARGO_DEB_VERSION"* ]]; then
  echo "package: installing cargo-deb $CARGO_DEB_VERSION" >&2
  cargo install --locked --quiet cargo-deb --version "$CARGO_DEB_VERSION"
fi
cargo deb --locked --quiet
