//! The `pingmachine` binary: parse the command line, dispatch, and turn an
//! error into an exit code: 0 success, 1 error (and `check` with an invalid
//! file), 2 usage error (clap).
//!
//! Called as `pingmachine-status` or `pingmachine-graph` (symbolic links to
//! this binary), it is the original's tool of that name.

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use pingmachine::basedir::BaseDir;
use pingmachine::cli::{ClassicGraphCli, ClassicStatusCli, Cli, Command, GraphOpts};
use pingmachine::cmd::run::Launch;

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    let name = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("pingmachine")
        .to_owned();
    match name.as_str() {
        "pingmachine-status" => classic_status(args),
        "pingmachine-graph" => classic_graph(args),
        _ => pingmachine(args),
    }
}

fn exit(result: anyhow::Result<bool>) -> ExitCode {
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("pingmachine: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn pingmachine(args: Vec<OsString>) -> ExitCode {
    let cli = Cli::parse_args(args);
    let base = BaseDir::new(&cli.basedir);
    let cmd = pingmachine::cmd::run::run;
    exit(match &cli.command {
        None => cmd(&base, &cli.daemon, Launch::Classic).map(|()| true),
        Some(Command::Run(opts)) => cmd(&base, opts, Launch::Foreground).map(|()| true),
        Some(Command::Check(opts)) => pingmachine::cmd::check::run(&opts.files),
        Some(Command::Status(opts)) => pingmachine::cmd::status::run(&base, opts).map(|()| true),
        Some(Command::Graph(opts)) => pingmachine::cmd::graph::run(&base, opts).map(|()| true),
        Some(Command::Serve(opts)) => pingmachine::cmd::serve::run(&base, opts).map(|()| true),
        Some(Command::Healthcheck) => pingmachine::cmd::healthcheck::run(&base),
        Some(Command::Order { action }) => {
            pingmachine::cmd::order::run(&base, action).map(|()| true)
        }
        Some(Command::Import { from }) => {
            use pingmachine::cli::ImportFrom;
            use pingmachine::cmd::import::{run, Source};
            match from {
                ImportFrom::Smokeping { file, dry_run } => {
                    run(&base, Source::Smokeping, file, *dry_run)
                }
                ImportFrom::SmokepingProber { file, dry_run } => {
                    run(&base, Source::SmokepingProber, file, *dry_run)
                }
            }
        }
        Some(Command::Completions { shell }) => {
            pingmachine::cmd::completions::run(*shell);
            Ok(true)
        }
    })
}

/// `pingmachine-status`: the original's table.
fn classic_status(args: Vec<OsString>) -> ExitCode {
    let cli = ClassicStatusCli::parse_from(args);
    match pingmachine::cmd::classic_status::run(&BaseDir::new(&cli.basedir), cli.now) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprint!("{msg}");
            ExitCode::FAILURE
        }
    }
}

/// `pingmachine-graph -i ID -p PERIOD -o FILE`: the original's graph
/// (510×300) and its messages on standard output.
fn classic_graph(args: Vec<OsString>) -> ExitCode {
    let cli = ClassicGraphCli::parse_from(args);
    let opts = GraphOpts {
        id_prefix: None,
        id: Some(cli.id.clone()),
        period: cli.period.clone(),
        out: cli.out.clone(),
        width: 510,
        height: 300,
        title: None,
        rrdcached: cli.rrdcached.clone(),
    };
    match pingmachine::cmd::graph::run(&BaseDir::new(&cli.basedir), &opts) {
        Ok(()) => {
            println!("image {} successfully created", cli.out.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("ERROR: {e:#}");
            ExitCode::FAILURE
        }
    }
}
