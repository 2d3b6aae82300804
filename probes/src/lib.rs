//! Network probe engines for pingmachine.
//!
//! This crate measures; it knows nothing of orders, configuration files,
//! RRD files or any other part of the daemon. A caller hands an engine a
//! *round* (a list of targets and how to ping them) and gets back the
//! round-trip times, in the order of its targets.
//!
//! * [`icmp`]: native ICMP / ICMPv6 echo engine, `fping -C`-like: one
//!   socket per binding shared by all targets, one sender thread scheduling
//!   every send, one receive thread per socket with kernel timestamps. It
//!   scales to about 100,000 targets on a couple of cores.
//! * [`tcp`], [`ssh`], [`http`], [`dns`]: request/response probes, one ping
//!   at a time to one target; each ping gives a [`PingResult`] (RTT or why
//!   it was [`Lost`]) and [`series`] runs `pings` of them `interval` apart.
//! * [`exec`]: external commands printing `fping -C` output, run without a
//!   shell and with a timeout.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use probes::{Binding, EchoOptions, Family, IcmpConfig, IcmpEngine, RoundRequest};
//! use std::time::{Duration, Instant};
//!
//! let engine = IcmpEngine::new(IcmpConfig::default())?;
//! let result = engine
//!     .submit(RoundRequest {
//!         binding: Binding::any(Family::V4),
//!         targets: vec!["127.0.0.1".parse()?],
//!         pings: 3,
//!         interval: Duration::from_secs(1),
//!         spacing: Duration::from_millis(1),
//!         timeout: Duration::from_secs(3),
//!         start: Instant::now(),
//!         options: EchoOptions::default(),
//!     })
//!     .await?;
//! println!("{:?}", result.rtts.row(0).collect::<Vec<_>>());
//! # Ok(())
//! # }
//! ```

pub mod dns;
pub mod exec;
pub mod http;
pub mod icmp;
pub mod outcome;
pub mod ssh;
pub mod stamped;
pub mod syn_tap;
pub mod sync;
pub mod tcp;
mod tcp_info;

pub use icmp::{
    Binding, EchoOptions, EngineStats, Family, IcmpConfig, IcmpEngine, RoundError, RoundHandle,
    RoundRequest, RoundResult, Rtts, SocketCause, SocketError, SocketKind,
};
pub use outcome::{series, Lost, PingResult};
