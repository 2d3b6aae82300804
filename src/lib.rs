//! pingmachine: a SmokePing-like latency and loss measurement daemon, a
//! drop-in successor of the Perl pingmachine.
//!
//! Data flows one way:
//!
//! ```text
//! orders/ ──watch──▶ registry ──▶ jobs ──▶ probes (ICMP engine) ──▶ results ──▶ store
//!  (files)           (one owner)  (step,    (probes crate)          (per order)  (main.rrd,
//!                                  pings)                                        last_result)
//! ```
//!
//! Exported (what the binary, the benchmarks and the integration tests
//! use; everything else is internal):
//! * [`cli`] — the command line (clap), parsed by the binary.
//! * [`cmd`] — one module per subcommand, called by the binary.
//! * [`basedir`] — the base directory layout and its `.lock`.
//! * [`clock`] — Unix time and the `Instant` at a Unix time.
//! * [`order`] — order files: YAML → validated [`order::Order`], and their ids.
//! * [`inspect`] — a read-only view of a base directory (`last_result` read back).
//! * [`result`] — a round's outcome and its statistics.
//! * [`store`] — `main.rrd`, `last_result` and rrdcached, written by
//!   dedicated threads (the benchmarks drive the writers directly).
//! * [`sink`] — where finished rounds go besides the store: line protocol,
//!   Prometheus (the [`sink::Sink`] trait).
//!
//! Internal, by layer (a module uses only modules of its own or a lower
//! layer; ARCHITECTURE.md draws them):
//! * leaves: `spec` (the values an order holds), `telemetry` (one sheet of
//!   figures rendered as `.stats.json` and `/metrics`), `counters` (the
//!   daemon's counters of rounds, orders and jobs), `logging` (never blocks
//!   the daemon), `priority`, `privilege`, `proctitle`, `supervise`,
//!   `schedule` (every timing rule), `tree` (walks of the base directory).
//! * parts: `probe` (one module per probe type), `watch` (inotify hints),
//!   `rejected` (invalid orders set aside), `report` (every order's state,
//!   for `status` and the page), `graph` (SmokePing-style graphs).
//! * the daemon: `job` (one task per probing job), `registry` (owns the
//!   active orders), `health` and `stats` (the daemon's telemetry), `web`
//!   (the HTTP side: `/metrics`, health, the web page).

pub mod basedir;
pub mod cli;
pub mod clock;
pub mod cmd;
mod counters;
mod graph;
mod health;
pub mod inspect;
mod job;
mod logging;
mod names;
pub mod order;
mod priority;
mod privilege;
mod probe;
mod proctitle;
mod registry;
mod rejected;
mod report;
pub mod result;
mod schedule;
mod shard;
pub mod sink;
mod spec;
mod stats;
pub mod store;
mod supervise;
mod telemetry;
mod tree;
mod watch;
mod web;
