#!/usr/bin/env bash
# Makes the two base images of the Dockerfile on this machine, for hosts
# that cannot pull from a registry (run as root; needs debootstrap, podman
# curl and a Debian mirror that apt can reach; exits with status 3 when
# no mirror answers):
#
#   localhost/debian:bookworm-slim  debootstrap --variant=minbase bookworm
#   localhost/rust:bookworm         the same, with gcc, libc6-dev and this
#                                   machine's Rust toolchain (rustc's
#                                   sysroot: bin/ and lib/) in /usr/local/rust,
#                                   and the CAs this machine added in
#                                   /usr/local/share/ca-certificates (cargo
#                                   behind a TLS-inspecting proxy needs them)
#
# Then: podman build --format docker \
#         --build-arg RUST_IMAGE=localhost/rust:bookworm \
#         --build-arg RUNTIME_IMAGE=localhost/debian:bookworm-slim -t pingmachine .
# Usage: packaging/container/base-images.sh [WORKDIR]   (default /var/tmp/pingmachine-base)
set -euo pipefail
work=${1:-/var/tmp/pingmachine-base}
mirror=$(cat /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list 2>/dev/null \
  | sed -n 's/^URIs: *//p; s/^deb \(http[^ ]*\) .*/\1/p' | head -n 1 || true)
mirror=${mirror:-http://deb.debian.org/debian}
mkdir -p "$work"

# Exit status 3: an image must be made and no Debian mirror answers, so it
# cannot be made on this machine (any other failure is a failure).
if ! podman image exists localhost/debian:bookworm-slim || ! podman image exists localhost/rust:bookworm; then
  if ! curl -sfI --max-time 30 "$mirror/dists/bookworm/Release" >/dev/null; then
    echo "base-images: no Debian mirror answers at $mirror (debootstrap and apt-get need one)" >&2
    exit 3
  fi
fi

if ! podman image exists localhost/debian:bookworm-slim; then
  rm -rf "$work/rootfs"
  echo "base-images: debootstrap bookworm from $mirror" >&2
  debootstrap --variant=minbase bookworm "$work/rootfs" "$mirror" >"$work/debootstrap.log"
  rm -rf "$work/rootfs/var/lib/apt/lists/"* "$work/rootfs/var/cache/apt/archives/"*.deb
  tar -C "$work/rootfs" -c . | podman import \
    --change 'CMD ["/bin/bash"]' --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    - localhost/debian:bookworm-slim >/dev/null
fi

if ! podman image exists localhost/rust:bookworm; then
  sysroot=$(rustc --print sysroot)
  echo "base-images: Rust from $sysroot" >&2
  ctr=$(buildah from localhost/debian:bookworm-slim)
  trap 'buildah rm "$ctr" >/dev/null 2>&1 || true' EXIT
  buildah run "$ctr" -- sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends gcc libc6-dev ca-certificates >/dev/null \
    && rm -rf /var/lib/apt/lists/*'
  mnt=$(buildah mount "$ctr")
  mkdir -p "$mnt/usr/local/rust"
  cp -a "$sysroot/bin" "$sysroot/lib" "$mnt/usr/local/rust/"
  cp /usr/local/share/ca-certificates/*.crt "$mnt/usr/local/share/ca-certificates/" 2>/dev/null || true
  buildah umount "$ctr" >/dev/null
  buildah run "$ctr" -- update-ca-certificates >/dev/null
  buildah config --env PATH=/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env CARGO_HOME=/usr/local/cargo "$ctr"
  buildah commit --quiet "$ctr" localhost/rust:bookworm >/dev/null
fi
podman image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E 'localhost/(debian|rust)'
