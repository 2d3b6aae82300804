//! One module per subcommand, each with a `run()`.

pub mod check;
pub mod classic_status;
pub mod completions;
pub mod graph;
pub mod healthcheck;
pub mod import;
pub mod order;
pub mod run;
pub mod serve;
pub mod status;
