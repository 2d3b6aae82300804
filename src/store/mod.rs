//! Where results go on disk: `output/<id>/main.rrd` and `last_result`, and
//! `archive/<id>/` for ended orders.
//!
//! * [`rrd`] — the layout of `main.rrd` and the update values (the original's rule).
//! * [`last_result`] — the `last_result` text and its atomic replacement (the original's format).
//! * [`rrdcached`] — RRD updates through rrdcached (`--rrdcached`).
//! * [`archive`] — moving output to and from `archive/`, setting files aside.
//! * [`queue`] — a writer's pending work, bounded per order; handing work over never waits.
//! * [`stats`] — the writers' counters and their figures.
//! * [`writer`] — the writer threads that own every write below `output/` and `archive/`.

pub mod archive;
pub mod last_result;
pub mod queue;
pub mod rrd;
pub mod rrdcached;
pub mod stats;
pub mod writer;

pub use stats::StoreStats;
pub use writer::{Batches, Shape, StoreCmd, StoreHandle, DEFAULT_RRD_BACKLOG};
