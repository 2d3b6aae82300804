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
//! Modules:
//! * [`cli`] — command-line definition (clap).
//! * [`cmd`] — one module per subcommand.
//! * [`basedir`] — the base directory layout and its `.lock`.
//! * [`spec`] — the values an order holds (ids, hosts, URLs) and the reader of one field.
//! * [`order`] — order files: YAML → validated [`order::Order`].
//! * [`inspect`] — a read-only view of a base directory for the tools.
//! * [`report`] — the state of every order (`status` and the web page).
//! * [`graph`] — SmokePing-style graphs of an order's `main.rrd`.
//! * [`watch`] — inotify hints about changed order files.
//! * [`tree`] — walks of the base directory's trees (orders, output, archive, sidecars), file stamps.
//! * [`registry`] — owns the active orders; reconciles files with jobs; lifecycle.
//! * [`rejected`] — invalid order files moved to `rejected/` with the reason.
//! * [`job`] — one task per probing job: rounds, fan-out of results.
//! * [`probe`] — one module per probe type: its order section and its round.
//! * [`schedule`] — every timing rule: timeouts, intervals, job capacity,
//!   step boundaries, offsets, RRD timestamps.
//! * [`clock`] — Unix time and the `Instant` at a Unix time.
//! * [`result`] — a round's outcome and its statistics.
//! * [`store`] — `main.rrd` and `last_result`, written by dedicated threads.
//! * [`sink`] — where finished rounds go besides the store: line protocol
//!   to Telegraf and InfluxDB, Prometheus series.
//! * [`health`] — the daemon's own health as Prometheus metrics.
//! * [`web`] — the HTTP side: `/metrics`, `/-/healthy`, `/-/ready`, and the web page (status, one order with SmokePing's graphs, JSON).
//! * [`counters`] — the daemon's counters of rounds, orders, jobs and the safety net.
//! * [`stats`] — daemon counters in `BASEDIR/.stats.json`.
//! * [`logging`] — log lines through a bounded queue: never blocks or stops the daemon.
//! * [`priority`] — background threads (storage, scans) yield the CPU to probing.
//! * [`privilege`] — `--user`: switch to an unprivileged user, keeping `CAP_NET_RAW`.
//! * [`proctitle`] — the process title `pingmachine [orders: N]`.
//! * [`supervise`] — a dead thread or task stops the daemon with an error.

pub mod basedir;
pub mod cli;
pub mod clock;
pub mod cmd;
pub mod counters;
pub mod graph;
pub mod health;
pub mod inspect;
pub mod job;
pub mod logging;
pub mod order;
pub mod priority;
pub mod privilege;
pub mod probe;
pub mod proctitle;
pub mod registry;
pub mod rejected;
pub mod report;
pub mod result;
pub mod schedule;
pub mod sink;
pub mod spec;
pub mod stats;
pub mod store;
pub mod supervise;
pub mod telemetry;
pub mod tree;
pub mod watch;
pub mod web;
