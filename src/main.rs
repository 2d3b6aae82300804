//! The `pingmachine` binary: parse the command line, set up logging,
//! dispatch, and turn an error into an exit code: 0 success, 1 error (and
//! `check` with an invalid file), 2 usage error (clap).

use std::process::ExitCode;

use clap::Parser;
use pingmachine::basedir::BaseDir;
use pingmachine::cli::{Cli, Command};
use tracing_subscriber::EnvFilter;

fn init_logging(debug: bool) {
    let default = if debug { "debug" } else { "info" };
    let filter = EnvFilter::try_from_env("PINGMACHINE_LOG")
        .unwrap_or_else(|_| EnvFilter::new(format!("{default},notify=warn,rrd=warn,hyper_util=info,reqwest=info,rustls=info,hickory_proto=info")));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let base = BaseDir::new(&cli.basedir);
    let result = match &cli.command {
        Command::Run(opts) => {
            init_logging(opts.debug);
            pingmachine::cmd::run::run(&base, opts).map(|()| true)
        }
        Command::Check(opts) => pingmachine::cmd::check::run(&opts.files),
        Command::Status(opts) => pingmachine::cmd::status::run(&base, opts).map(|()| true),
        Command::Graph(opts) => pingmachine::cmd::graph::run(&base, opts).map(|()| true),
        Command::Order { action } => pingmachine::cmd::order::run(&base, action).map(|()| true),
        Command::Completions { shell } => {
            pingmachine::cmd::completions::run(*shell);
            Ok(true)
        }
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("pingmachine: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
