# pingmachine container image: a Rust build stage, then a slim Debian
# runtime with librrd. Runs as the non-root user "pingmachine" and gets raw
# ICMP sockets from CAP_NET_RAW (the binary carries it as a permitted file
# capability and raises it itself), so run it with that capability:
#
#   podman build --format docker -t pingmachine .
#   podman run -d --cap-add NET_RAW -v pingmachine:/var/lib/pingmachine pingmachine
#   docker run -d -v pingmachine:/var/lib/pingmachine pingmachine   (NET_RAW is a Docker default)
#
# Arguments to the image are `pingmachine run` flags, e.g.
#   ... pingmachine run --listen :8374 --telegraf 192.0.2.10:8094
# The HEALTHCHECK asks /-/healthy when --listen is set, and otherwise checks
# that the daemon holds its lock and writes .stats.json (pingmachine
# healthcheck). Both base images can be replaced (--build-arg), e.g. with
# images made locally (packaging/container/base-images.sh).
ARG RUST_IMAGE=docker.io/library/rust:1-slim-bookworm
ARG RUNTIME_IMAGE=docker.io/library/debian:bookworm-slim

FROM ${RUST_IMAGE} AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      librrd-dev libclang-dev pkg-config libcap2-bin \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin pingmachine \
 && install -D -m 755 target/release/pingmachine /out/usr/bin/pingmachine \
 && strip /out/usr/bin/pingmachine \
 && setcap cap_net_raw=p /out/usr/bin/pingmachine \
 && ln -s pingmachine /out/usr/bin/pingmachine-status \
 && ln -s pingmachine /out/usr/bin/pingmachine-graph

FROM ${RUNTIME_IMAGE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      librrd8 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system pingmachine \
 && useradd --system --gid pingmachine --home-dir /var/lib/pingmachine \
      --no-create-home --shell /usr/sbin/nologin pingmachine \
 && install -d -o pingmachine -g pingmachine -m 755 /var/lib/pingmachine
# The file capability (an extended attribute) is kept by COPY.
COPY --from=build /out/ /
USER pingmachine
ENV PINGMACHINE_BASEDIR=/var/lib/pingmachine
VOLUME /var/lib/pingmachine
WORKDIR /var/lib/pingmachine
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
  CMD ["pingmachine", "healthcheck"]
ENTRYPOINT ["pingmachine"]
CMD ["run"]
