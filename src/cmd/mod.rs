//! One module per subcommand, each with a `run()`.

pub mod check;
pub mod run;
