//! The HTTP side (`--listen`, and `pingmachine serve`): `/metrics` for
//! Prometheus, `/-/healthy`, `/-/ready`, and the read-only web page.
//!
//! * [`server`] — listening, the router, `/metrics` and the health
//!   endpoints; anything not routed is 404.
//! * `site` — the web page's handlers; `pages` — its HTML.
//! * `ctx` — what the handlers share ([`ServeCtx`]).
//! * [`access`] — `--web-config-file` (basic auth) and
//!   `--web-route-prefix`; `tls` — its HTTPS.
//! * `archive` — `/archive`, the orders that ended, with their graphs.
//! * `charts` — `/charts`, the orders ranked from their `main.rrd`.
//! * `spark` — the status list's sparklines of the last 3 hours.
//! * `compare` — `/compare`, several orders on one graph.
//! * [`fleet`] — the fleet view (`--prometheus-url`), read from the
//!   cluster the fleet's nodes write to.
//!
//! The web page: the status of every order (`/`), one order with SmokePing's graphs
//! (`/order/<id>`), the graphs themselves (`/graph/<id>`), and the status
//! as JSON (`/api/v1/orders`, `/api/v1/orders/<id>`).
//!
//! * Read-only: nothing here writes a file.
//! * Ids are checked as order ids (`OrderId::new`); an encoded slash, a
//!   `..`, an absolute path, or a symlink that leads out of the base
//!   directory gets 404 and nothing is read.
//! * Graphs are drawn on blocking threads, at most `GRAPH_WORKERS` at once
//!   (librrd's graph call itself is serialised), and kept for
//!   `GRAPH_TTL`; the status report is kept for `REPORT_TTL`, then served
//!   for up to `REPORT_STALE` while the next is built. Neither
//!   runs on the threads that start rounds.
//! * The assets are embedded; every response carries a
//!   Content-Security-Policy and the usual defensive headers.

pub mod access;
pub(crate) mod archive;
mod charts;
mod compare;
mod ctx;
pub mod fleet;
mod pages;
pub mod server;
mod site;
mod spark;
mod tls;

pub use ctx::ServeCtx;
pub use server::{bind_all, parse_listen, run, Listen};
