//! Command-line interface (clap derive). Every subcommand shares
//! `--basedir` (also `PINGMACHINE_BASEDIR`).

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Latency and loss measurement daemon (SmokePing-like): probes the targets
/// of the order files in BASEDIR/orders and writes BASEDIR/output/<id>/main.rrd
/// and last_result.
///
/// Without a subcommand it runs the daemon as the original pingmachine did:
/// `pingmachine [-d|--debug] [-u|--user USER] [-b|--basedir DIR]
/// [-t|--telegraf HOST:PORT]` detaches and logs to syslog, or with --debug
/// stays in the foreground and logs to the terminal. `pingmachine run` is
/// the foreground form for systemd and containers.
#[derive(Debug, Parser)]
#[command(name = "pingmachine", version, propagate_version = true)]
pub struct Cli {
    /// Base directory holding orders/, output/, archive/ and telegraf/.
    #[arg(short = 'b', long, global = true, env = "PINGMACHINE_BASEDIR", default_value = crate::basedir::DEFAULT, value_name = "DIR")]
    pub basedir: PathBuf,

    /// What to do (none: run the daemon as the original did).
    #[command(subcommand)]
    pub command: Option<Command>,

    /// The daemon's options when no subcommand is given.
    #[command(flatten, next_help_heading = "Daemon, without a subcommand")]
    pub daemon: RunOpts,
}

impl Cli {
    /// Parses `args` like `Cli::parse_from`, and refuses daemon options
    /// given together with a subcommand (`pingmachine --debug status`):
    /// they belong after `run`. Exits with clap's message and status 2.
    pub fn parse_args<I, T>(args: I) -> Cli
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        Cli::try_parse_args(args).unwrap_or_else(|e| e.exit())
    }

    /// [`Cli::parse_args`] returning the error.
    pub fn try_parse_args<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        use clap::{CommandFactory, FromArgMatches};
        let mut cmd = Cli::command();
        let m = cmd.try_get_matches_from_mut(args)?;
        if let Some((sub, _)) = m.subcommand() {
            let daemon_ids: Vec<String> =
                <RunOpts as clap::Args>::augment_args(clap::Command::new("run"))
                    .get_arguments()
                    .map(|a| a.get_id().to_string())
                    .collect();
            for id in m.ids() {
                let given =
                    m.value_source(id.as_str()) == Some(clap::parser::ValueSource::CommandLine);
                if given && daemon_ids.iter().any(|d| d == id.as_str()) {
                    return Err(cmd.error(
                        clap::error::ErrorKind::ArgumentConflict,
                        format!(
                            "the daemon option --{} goes after `run`, or without a subcommand; not with `{sub}`",
                            id.as_str().replace('_', "-")
                        ),
                    ));
                }
            }
        }
        Cli::from_arg_matches(&m).map_err(|e| e.format(&mut cmd))
    }
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon in the foreground (stop with SIGTERM or SIGINT, rescan with SIGHUP).
    Run(Box<RunOpts>),
    /// Validate order files offline, with the daemon's rules and messages
    /// (exit status 1 when any is invalid).
    Check(CheckOpts),
    /// Show every order grouped by user: step, pings, probe, target, age of
    /// the last result, median RTT and loss; rejected orders; archive count.
    Status(StatusOpts),
    /// Draw a SmokePing-style graph (PNG) of an order's main.rrd.
    Graph(GraphOpts),
    /// Serve the read-only web page (status, graphs, JSON) without probing,
    /// e.g. as another user or beside a daemon that runs without --listen.
    Serve(ServeOpts),
    /// Is a daemon running on the base directory, and alive? One line;
    /// exit status 0 when healthy, 1 otherwise (for a container's
    /// HEALTHCHECK): .stats.json fresh, the lock held, and /-/healthy
    /// answering when the daemon has --listen.
    Healthcheck,
    /// Write, refresh, remove or list order files (validated, atomic).
    Order {
        /// What to do.
        #[command(subcommand)]
        action: OrderAction,
    },
    /// Convert another prober's configuration into orders below orders/.
    Import {
        /// From what.
        #[command(subcommand)]
        from: ImportFrom,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// Options of `pingmachine serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeOpts {
    /// Listen on PORT (loopback only), :PORT (every interface), HOST:PORT
    /// or ADDR:PORT ([ADDR]:PORT for IPv6), or on the sockets of systemd
    /// socket activation (systemd). Repeatable.
    #[arg(long, required = true, value_name = "[HOST]:PORT", value_parser = crate::web::parse_listen)]
    pub listen: Vec<crate::web::Listen>,
    /// rrdcached holding updates (also RRDCACHED_ADDRESS): each graph's
    /// main.rrd is flushed before it is drawn.
    #[arg(long, env = "RRDCACHED_ADDRESS", value_name = "ADDR", value_parser = crate::store::rrdcached::parse_addr)]
    pub rrdcached: Option<crate::store::rrdcached::Addr>,
    /// List only this node's share of the orders (as the daemon's
    /// --shard K/N).
    #[arg(long, value_name = "K/N", value_parser = clap::value_parser!(crate::shard::Shard))]
    pub shard: Option<crate::shard::Shard>,
    /// Extra trusted CA certificate (PEM file) for an https
    /// --prometheus-url. Repeatable.
    #[arg(long = "http-ca-file", value_name = "PEM")]
    pub http_ca_files: Vec<PathBuf>,
    #[command(flatten)]
    pub fleet: crate::web::fleet::FleetOpts,
    #[command(flatten)]
    pub web: crate::web::access::WebOpts,
}

/// Options of `pingmachine status`.
#[derive(Debug, Clone, clap::Args)]
pub struct StatusOpts {
    /// Only orders whose id starts with this.
    #[arg(value_name = "ID_PREFIX")]
    pub prefix: Option<String>,
    /// Only orders of this user.
    #[arg(long)]
    pub user: Option<String>,
    /// Print JSON (schema in pingmachine(8)) instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Pretend the time is this (unix seconds); for tests.
    #[arg(long, hide = true)]
    pub now: Option<i64>,
    /// Only this node's share of the orders (as the daemon's --shard K/N).
    #[arg(long, value_name = "K/N", value_parser = clap::value_parser!(crate::shard::Shard))]
    pub shard: Option<crate::shard::Shard>,
}

/// Options of `pingmachine graph`.
#[derive(Debug, Clone, clap::Args)]
pub struct GraphOpts {
    /// The order: its id or an unambiguous prefix of it.
    #[arg(
        value_name = "ID_PREFIX",
        required_unless_present = "id",
        conflicts_with = "id"
    )]
    pub id_prefix: Option<String>,
    /// The order, as pingmachine-graph's -i: its id or an unambiguous prefix.
    #[arg(short = 'i', long = "id", value_name = "ID_PREFIX")]
    pub id: Option<String>,
    /// Time span: day, week, month, year or a number of seconds.
    #[arg(short, long, default_value = "day")]
    pub period: String,
    /// The PNG file to write.
    #[arg(short, long, value_name = "FILE.png")]
    pub out: PathBuf,
    /// Image width in pixels.
    #[arg(long, default_value_t = 800, value_parser = clap::value_parser!(u32).range(200..=8000))]
    pub width: u32,
    /// Image height in pixels.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u32).range(120..=8000))]
    pub height: u32,
    /// Graph title (default: the id and period).
    #[arg(long)]
    pub title: Option<String>,
    /// rrdcached holding updates of main.rrd (unix:/path, /path,
    /// host[:port]; also RRDCACHED_ADDRESS): the file is flushed first.
    #[arg(long, env = "RRDCACHED_ADDRESS", value_name = "ADDR", value_parser = crate::store::rrdcached::parse_addr)]
    pub rrdcached: Option<crate::store::rrdcached::Addr>,
}

impl GraphOpts {
    /// The order id or prefix, from the argument or `-i`.
    pub fn order(&self) -> &str {
        self.id_prefix
            .as_deref()
            .or(self.id.as_deref())
            .unwrap_or_default()
    }
}

/// `pingmachine order` actions.
#[derive(Debug, Clone, Subcommand)]
pub enum OrderAction {
    /// Validate an order (file or - for standard input) and write it
    /// atomically into orders/; prints its id.
    Put {
        /// The order file, or - for standard input.
        #[arg(value_name = "FILE|-")]
        file: String,
        /// The id (path below orders/); default: the md5 of the content
        /// (old interface).
        #[arg(long, value_name = "PATH")]
        id: Option<String>,
    },
    /// Refresh an order (set its mtime to now) so it does not expire.
    Touch {
        /// The order id.
        id: String,
    },
    /// Remove an order; the daemon archives its output.
    Rm {
        /// The order id.
        id: String,
    },
    /// List the order files.
    Ls {
        /// Only orders of this user.
        #[arg(long)]
        user: Option<String>,
        /// Only ids starting with this.
        #[arg(value_name = "ID_PREFIX")]
        prefix: Option<String>,
    },
}

/// What `pingmachine import` reads.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum ImportFrom {
    /// A SmokePing configuration (Database, Probes and Targets sections,
    /// @include, continuation lines) or a Targets file alone: one order per
    /// target, its id the target's place in the hierarchy; what cannot be
    /// converted is listed with file and line (exit status 1).
    Smokeping {
        /// The configuration file.
        file: PathBuf,
        /// Print the orders instead of writing them.
        #[arg(long)]
        dry_run: bool,
    },
    /// A smokeping_prober configuration (YAML with `targets:`): one order
    /// per host, written atomically; what cannot be converted is listed
    /// with file and line (exit status 1).
    #[command(name = "smokeping_prober")]
    SmokepingProber {
        /// The configuration file.
        file: PathBuf,
        /// Print the orders instead of writing them.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Options of `pingmachine check`.
#[derive(Debug, Clone, clap::Args)]
pub struct CheckOpts {
    /// Order files to check; a directory is checked recursively, `-` reads
    /// one order from standard input.
    #[arg(required = true, value_name = "FILE|DIR|-")]
    pub files: Vec<PathBuf>,
}

/// Options of `pingmachine run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunOpts {
    /// Log at debug level: one line per order per round with its results.
    /// Without a subcommand, also stay in the foreground and log to the
    /// terminal instead of detaching and logging to syslog.
    #[arg(short = 'd', long)]
    pub debug: bool,

    /// Run as this user: after taking the lock and opening the ICMP
    /// sockets, switch to its uid, primary gid and groups, keeping only
    /// CAP_NET_RAW. The base directory must be writable by it.
    #[arg(short = 'u', long, value_name = "USER")]
    pub user: Option<String>,

    /// Kind of ICMP socket: an unprivileged datagram socket where
    /// net.ipv4.ping_group_range allows it, else a raw socket (needs CAP_NET_RAW).
    #[arg(long, value_enum, default_value_t = IcmpSocket::Auto, value_name = "KIND")]
    pub icmp_socket: IcmpSocket,

    /// Seconds after which an order file that was not refreshed (mtime)
    /// expires: it is removed and its output archived (the original's
    /// rule). 0: orders never expire (for order files written once, e.g.
    /// by configuration management).
    #[arg(long, default_value_t = 3660, value_name = "SECONDS")]
    pub max_age: u64,

    /// Extra trusted CA certificate (PEM file) for https targets of httping
    /// orders, e.g. an internal CA. Repeatable.
    #[arg(long = "http-ca-file", value_name = "PEM")]
    pub http_ca_files: Vec<PathBuf>,

    /// Command run for sping orders: program and arguments, split on white
    /// space (no shell); `{pings}`, `{interval_ms}`, `{interval_s}`,
    /// `{timeout_ms}` and `{step}` are replaced. The order's interface
    /// (`-I IF`), source address (`-S IP`), flags and host are appended.
    /// It must print fping -C output (`host : 1.23 - 4.56`).
    #[arg(
        long,
        default_value = "sping -C {pings} -q -p {interval_ms}",
        value_name = "COMMAND"
    )]
    pub sping_command: String,

    /// Command run for pping orders (as --sping-command).
    #[arg(
        long,
        default_value = "pping -C {pings} -q -p {interval_ms}",
        value_name = "COMMAND"
    )]
    pub pping_command: String,

    /// An exec probe usable by orders (`probe: exec`, `exec: {probe: NAME,
    /// host: ...}`): NAME=COMMAND, with COMMAND as for --sping-command; the
    /// order's args and host are appended. Repeatable.
    #[arg(long = "exec-probe", value_name = "NAME=COMMAND")]
    pub exec_probes: Vec<String>,

    /// Most probes of one type (httping, tcp, ssh, dns, sping, pping, exec)
    /// running at once.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=100_000), value_name = "N")]
    pub max_parallel_probes: u32,

    /// Name server for the orders' host names, instead of those of
    /// /etc/resolv.conf: IP, IP:PORT or [IPv6]:PORT. Repeatable.
    #[arg(long = "dns-server", value_name = "ADDR", value_parser = crate::names::parse_server)]
    pub dns_servers: Vec<std::net::SocketAddr>,

    /// Shortest time, in seconds, a host name's address is kept before it
    /// is looked up again, whatever the DNS TTL of its answer (also the
    /// retry time after a failed lookup).
    #[arg(long, default_value_t = crate::names::DEFAULT_MIN_TTL_S, value_parser = clap::value_parser!(u32).range(1..=i64::from(crate::names::MAX_TTL_LIMIT_S)), value_name = "SECONDS")]
    pub dns_min_ttl: u32,

    /// Longest time, in seconds, a host name's address is kept before it
    /// is looked up again, whatever the DNS TTL of its answer.
    #[arg(long, default_value_t = crate::names::DEFAULT_MAX_TTL_S, value_parser = clap::value_parser!(u32).range(1..=i64::from(crate::names::MAX_TTL_LIMIT_S)), value_name = "SECONDS")]
    pub dns_max_ttl: u32,

    /// This node's share of the orders when N nodes share one set of order
    /// files: node K of N (e.g. 2/3). Each order id belongs to exactly one
    /// node (rendezvous hashing); the others' orders are left alone.
    #[arg(long, value_name = "K/N", value_parser = clap::value_parser!(crate::shard::Shard))]
    pub shard: Option<crate::shard::Shard>,

    /// The outputs besides the store: line protocol, Prometheus.
    #[command(flatten)]
    pub sinks: crate::sink::SinkArgs,

    /// Create and update main.rrd through rrdcached at ADDR: unix:/path,
    /// /path, host, host:port or [v6]:port (also RRDCACHED_ADDRESS, as for
    /// rrdtool). rrdcached batches each file's writes; the daemon queues
    /// updates while it is slow or down.
    #[arg(long, env = "RRDCACHED_ADDRESS", value_name = "ADDR", value_parser = crate::store::rrdcached::parse_addr)]
    pub rrdcached: Option<crate::store::rrdcached::Addr>,

    /// Most RRD updates queued for rrdcached while it is slow or down;
    /// beyond that they are dropped (and counted).
    #[arg(long, default_value_t = crate::store::rrdcached::DEFAULT_QUEUE, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=100_000_000), value_name = "UPDATES")]
    pub rrdcached_queue: usize,

    /// Seconds between rewrites of BASEDIR/.stats.json (the benchmark uses 1).
    #[arg(long, default_value_t = 10, hide = true, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub stats_interval: u64,

    /// Seconds between safety-net rescans of orders/ (tests raise it to
    /// show that a pickup came from the file watcher, not a rescan).
    #[arg(long, default_value_t = 30, hide = true, value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub rescan_interval: u64,

    /// Serve the web page and Prometheus metrics (/metrics, /-/healthy,
    /// /-/ready) over HTTP on PORT (loopback only), :PORT (every
    /// interface), HOST:PORT or ADDR:PORT ([ADDR]:PORT for IPv6), or on
    /// the sockets of systemd socket activation (systemd). Repeatable. Off
    /// by default.
    #[arg(long, value_name = "[HOST]:PORT", value_parser = crate::web::parse_listen)]
    pub listen: Vec<crate::web::Listen>,

    #[command(flatten)]
    pub fleet: crate::web::fleet::FleetOpts,
    #[command(flatten)]
    pub web: crate::web::access::WebOpts,

    /// Number of threads writing main.rrd and last_result files.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64), value_name = "N")]
    pub writers: u16,

    /// Most unwritten RRD updates kept per order while storage is slower
    /// than the rounds: they are written late, in time order; beyond this
    /// the oldest are dropped (counted, a gap in that order's main.rrd).
    /// Probing never waits for storage.
    #[arg(long, default_value_t = crate::store::DEFAULT_RRD_BACKLOG, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=10_000), value_name = "ROUNDS")]
    pub rrd_backlog: usize,
}

/// `pingmachine-status`: the original tool's table (no options but
/// `--basedir`).
#[derive(Debug, Parser)]
#[command(name = "pingmachine-status", version)]
pub struct ClassicStatusCli {
    /// Base directory holding orders/ and output/.
    #[arg(short = 'b', long, env = "PINGMACHINE_BASEDIR", default_value = crate::basedir::DEFAULT, value_name = "DIR")]
    pub basedir: PathBuf,
    /// Pretend the time is this (unix seconds); for tests.
    #[arg(long, hide = true)]
    pub now: Option<i64>,
}

/// `pingmachine-graph -i ID -p PERIOD -o FILE`: the original tool's options.
#[derive(Debug, Parser)]
#[command(name = "pingmachine-graph", version)]
pub struct ClassicGraphCli {
    /// Base directory holding orders/ and output/.
    #[arg(short = 'b', long, env = "PINGMACHINE_BASEDIR", default_value = crate::basedir::DEFAULT, value_name = "DIR")]
    pub basedir: PathBuf,
    /// The order: its id or an unambiguous prefix of it.
    #[arg(short = 'i', long, value_name = "ID")]
    pub id: String,
    /// Time span: day, week, month (30 days), year or a number of seconds.
    #[arg(short = 'p', long, value_name = "PERIOD")]
    pub period: String,
    /// The PNG file to write.
    #[arg(short = 'o', long, value_name = "FILE.png")]
    pub out: PathBuf,
    /// rrdcached holding updates (also RRDCACHED_ADDRESS): flushed first.
    #[arg(long, env = "RRDCACHED_ADDRESS", value_name = "ADDR", value_parser = crate::store::rrdcached::parse_addr)]
    pub rrdcached: Option<crate::store::rrdcached::Addr>,
}

/// `--icmp-socket`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IcmpSocket {
    /// Datagram if permitted, else raw.
    Auto,
    /// Unprivileged ICMP datagram socket only.
    Datagram,
    /// Raw socket only (CAP_NET_RAW).
    Raw,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    /// The man pages stay true: every subcommand and every flag is in
    /// pingmachine(8), every order field and probe in pingmachine-orders(5).
    #[test]
    fn man_pages_cover_the_cli_and_the_order_format() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
        let man8 = std::fs::read_to_string(root.join("pingmachine.8")).unwrap();
        let man5 = std::fs::read_to_string(root.join("pingmachine-orders.5")).unwrap();
        fn walk(cmd: &clap::Command, man: &str, path: &str) {
            for arg in cmd.get_arguments() {
                if arg.is_hide_set() {
                    continue;
                }
                if let Some(long) = arg.get_long() {
                    if long == "help" || long == "version" {
                        continue;
                    }
                    let escaped = format!("\\-\\-{}", long.replace('-', "\\-"));
                    assert!(
                        man.contains(&escaped),
                        "pingmachine.8 lacks {path} --{long}"
                    );
                }
            }
            for sub in cmd.get_subcommands() {
                let name = sub.get_name();
                if name == "help" {
                    continue;
                }
                assert!(
                    man.contains(&format!(".B {name}"))
                        || man.contains(&format!(".B pingmachine {name}"))
                        || man.contains(&format!("order {name}"))
                        || man.contains(&format!(".BR {name}")),
                    "pingmachine.8 lacks subcommand {path} {name}"
                );
                walk(sub, man, &format!("{path} {name}"));
            }
        }
        walk(&Cli::command(), &man8, "pingmachine");
        for key in crate::order::parse::TOP_LEVEL_KEYS {
            assert!(
                man5.contains(&format!(".B {key}")) || man5.contains(&format!(".BR {key}")),
                "pingmachine-orders.5 lacks {key}"
            );
        }
    }

    #[test]
    fn run_flags() {
        let cli =
            Cli::try_parse_args(["pingmachine", "--basedir", "/x", "run", "--debug"]).unwrap();
        assert_eq!(cli.basedir, PathBuf::from("/x"));
        let Some(Command::Run(o)) = cli.command else {
            panic!("not run")
        };
        assert!(o.debug);
        assert_eq!(o.icmp_socket, IcmpSocket::Auto);
        let cli = Cli::try_parse_args(["pingmachine", "run", "--basedir", "/y"]).unwrap();
        assert_eq!(cli.basedir, PathBuf::from("/y"));
    }

    /// The original's command line: no subcommand, its short and long
    /// options, `--opt=value` too.
    #[test]
    fn the_original_command_line() {
        let cli = Cli::try_parse_args([
            "pingmachine",
            "--debug",
            "--basedir",
            "/var/lib/pm",
            "--telegraf",
            "127.0.0.1:8094",
        ])
        .unwrap();
        assert!(cli.command.is_none());
        assert!(cli.daemon.debug);
        assert_eq!(cli.basedir, PathBuf::from("/var/lib/pm"));
        assert_eq!(
            cli.daemon.sinks.line_protocol.telegraf.as_deref(),
            Some("127.0.0.1:8094")
        );
        let cli = Cli::try_parse_args([
            "pingmachine",
            "-d",
            "-u",
            "pingmachine",
            "-b",
            "/x",
            "-t",
            "[::1]:8094",
        ])
        .unwrap();
        assert!(cli.command.is_none() && cli.daemon.debug);
        assert_eq!(cli.daemon.user.as_deref(), Some("pingmachine"));
        assert_eq!(cli.basedir, PathBuf::from("/x"));
        assert_eq!(
            cli.daemon.sinks.line_protocol.telegraf.as_deref(),
            Some("[::1]:8094")
        );
        let cli = Cli::try_parse_args(["pingmachine", "--user=pm", "--basedir=/y"]).unwrap();
        assert_eq!(cli.daemon.user.as_deref(), Some("pm"));
        assert_eq!(cli.basedir, PathBuf::from("/y"));
        // Nothing at all: the original's daemon, detached.
        let cli = Cli::try_parse_args(["pingmachine"]).unwrap();
        assert!(cli.command.is_none() && !cli.daemon.debug);
        // Daemon options and a subcommand do not mix.
        assert!(Cli::try_parse_args(["pingmachine", "--debug", "status"]).is_err());
        // `run` takes --user and -d too; the global -b works with subcommands.
        let cli =
            Cli::try_parse_args(["pingmachine", "-b", "/z", "run", "-d", "--user", "pm"]).unwrap();
        let Some(Command::Run(o)) = cli.command else {
            panic!("not run")
        };
        assert!(o.debug);
        assert_eq!(o.user.as_deref(), Some("pm"));
        assert_eq!(cli.basedir, PathBuf::from("/z"));
        // graph takes -i as well as the positional id.
        let cli =
            Cli::try_parse_args(["pingmachine", "graph", "-i", "abc", "-o", "g.png"]).unwrap();
        let Some(Command::Graph(g)) = cli.command else {
            panic!("not graph")
        };
        assert_eq!(g.order(), "abc");
        assert!(Cli::try_parse_args(["pingmachine", "graph", "-o", "g.png"]).is_err());
    }

    #[test]
    fn the_original_tools_command_lines() {
        let s = ClassicStatusCli::try_parse_from(["pingmachine-status"]).unwrap();
        assert_eq!(s.basedir, PathBuf::from(crate::basedir::DEFAULT));
        let g = ClassicGraphCli::try_parse_from([
            "pingmachine-graph",
            "-i",
            "39a2c4",
            "-p",
            "day",
            "-o",
            "graph.png",
        ])
        .unwrap();
        assert_eq!((g.id.as_str(), g.period.as_str()), ("39a2c4", "day"));
        assert_eq!(g.out, PathBuf::from("graph.png"));
        ClassicStatusCli::command().debug_assert();
        ClassicGraphCli::command().debug_assert();
    }
}
