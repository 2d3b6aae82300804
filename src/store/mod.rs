//! Where results go on disk: `output/<id>/main.rrd` and `last_result`.
//!
//! * [`rrd`] — the layout of `main.rrd` and the update values (SPEC A6).
//! * [`last_result`] — the `last_result` text and its atomic replacement (SPEC A7).
//! * [`writer`] — the writer threads that own every librrd call.

pub mod last_result;
pub mod rrd;
pub mod writer;

pub use writer::{StoreCmd, StoreHandle, StoreStats};
