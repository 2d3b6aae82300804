//! The integration tests: one test crate, so the shared support code is
//! compiled once. Each module runs the real `pingmachine` binary (or the
//! library) against real parts at its boundary: ICMP sockets, rrdtool,
//! HTTP, DNS and SSH servers, InfluxDB, network namespaces.
//!
//! Tests named `timing_*` depend on timeliness; `scripts/test.sh` runs them
//! after the rest, one at a time (docs/ACCURACY.md).
//!
//! * [`accuracy`] — what the daemon records against the wire (root).
//! * [`daemon`] — rounds, pickup, `.stats.json`, signals.
//! * [`dropin`] — the Perl original's command line, tools and sidecars.
//! * [`fleet`] — several daemons as one fleet: `--shard K/N`.
//! * [`layers`] — the crate's layers against its `use` lines (no cycle, nothing upwards).
//! * [`lifecycle`] — orders that change, expire, break and come back.
//! * [`lineproto`] — line protocol into a real InfluxDB, UDP, HTTP, TCP.
//! * [`metrics`] — `/metrics` through promtool and a real Prometheus.
//! * [`names`] — host names looked up again as their DNS TTL says, against a real DNS server.
//! * [`probes`] — httping, tcp, ssh, dns and exec against loopback servers.
//! * [`remote_write`] — `--remote-write` into a real Prometheus and VictoriaMetrics, through an outage.
//! * [`rrdcached`] — `--rrdcached` against a real rrdcached.
//! * [`slowdisk`] — probing on time while the base directory's disk is slow (root).
//! * [`telemetry`] — `.stats.json` keys and `/metrics` series against the lists kept in the repository.
//! * [`tools`] — `status`, `graph`, `order put`, `check`, completions.
//! * [`web`] — the web page over HTTP and in a headless Chromium.

#![allow(clippy::unwrap_used)]

mod support;

mod accuracy;
mod daemon;
mod dropin;
mod fleet;
mod layers;
mod lifecycle;
mod lineproto;
mod metrics;
mod names;
mod probes;
mod remote_write;
mod rrdcached;
mod slowdisk;
mod telemetry;
mod tools;
mod web;
