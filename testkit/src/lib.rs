//! Test servers and fixtures for pingmachine's tests.
//!
//! Every server listens on loopback (`127.0.0.1`) on a port chosen by the
//! kernel, runs on a background thread with its own single-threaded tokio
//! runtime (so blocking test code can use it as well as async code), and
//! stops when dropped: a shutdown signal, then a join bounded in time.
//! Every connection handler is bounded in time too.
//!
//! * [`HttpServer`]: HTTP/1.1 or HTTPS (a fresh test CA per server) with
//!   behaviour chosen by path (`/status/NNN`, `/delay/MS`, `/close-early`).
//! * [`TcpListenerServer`]: accepts and closes.
//! * [`SshBannerServer`]: sends a banner line after a delay.
//! * [`DnsServer`]: UDP DNS server answering every query.
//! * [`HttpProxy`]: an HTTP proxy (`CONNECT` tunnels, absolute-form
//!   requests), optionally insisting on credentials.
//! * [`fping_c_script`], [`write_script`]: executable `/bin/sh` fixtures.
//! * [`free_tcp_port`], [`refused_addr`]: ports nothing listens on.
//! * [`impair`]: a user-space network impairment simulator in two network
//!   namespaces (delay, jitter, loss, late, duplicate, foreign-identifier
//!   and unreachable ICMP answers; delayed HTTP responses and TCP connects)
//!   for the measurement-accuracy tests. Needs root.
//! * [`slowdisk`]: a file system on a loop device that a test makes slow
//!   (synchronous writes, a cgroup I/O limit) and fast again. Needs root.
//! * [`require`]: what a test needs (root, ICMP, namespaces, tools); a
//!   test that lacks it skips outside CI and fails under CI.
//!
//! This crate is for tests: it panics when a server cannot be started.

mod background;
mod dns;
mod http;
pub mod impair;
mod proxy;
pub mod require;
mod script;
pub mod slowdisk;
mod tcp;

pub use dns::DnsServer;
pub use http::{write_pem_files, HttpServer, PemFiles};
pub use proxy::HttpProxy;
pub use script::{fping_c_script, write_script};
pub use tcp::{free_tcp_port, refused_addr, SshBannerServer, TcpListenerServer};
