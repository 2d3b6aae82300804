# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_pingmachine_global_optspecs
    string join \n b/basedir= d/debug u/user= icmp-socket= max-age= http-ca-file= sping-command= pping-command= exec-probe= max-parallel-probes= dns-server= dns-min-ttl= dns-max-ttl= shard= t/telegraf= influx-url= tag= influx-buffer= influx-ip-tag metrics-buckets= remote-write= remote-write-buffer= remote-write-user= remote-write-password-file= remote-write-bearer-token-file= remote-write-series= remote-write-interval= rrdcached= rrdcached-queue= stats-interval= rescan-interval= listen= prometheus-url= fleet-site-label= fleet-stale-after= web-route-prefix= web-config-file= writers= rrd-backlog= h/help V/version
end

function __fish_pingmachine_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_pingmachine_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_pingmachine_using_subcommand
    set -l cmd (__fish_pingmachine_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c pingmachine -n "__fish_pingmachine_needs_command" -s b -l basedir -d 'Base directory holding orders/, output/, archive/ and telegraf/' -r -F
complete -c pingmachine -n "__fish_pingmachine_needs_command" -s u -l user -d 'Run as this user: after taking the lock and opening the ICMP sockets, switch to its uid, primary gid and groups, keeping only CAP_NET_RAW. The base directory must be writable by it' -r
complete -c pingmachine -n "__fish_pingmachine_needs_command" -l icmp-socket -d 'Kind of ICMP socket: an unprivileged datagram socket where net.ipv4.ping_group_range allows it, else a raw socket (needs CAP_NET_RAW)' -r -f -a "auto\t'Datagram if permitted, else raw'
datagram\t'Unprivileged ICMP datagram socket only'
raw\t'Raw socket only (CAP_NET_RAW)'"
complete -c pingmachine -n "__fish_pingmachine_needs_command" -l max-age -d 'Seconds after which an order file that was not refreshed (mtime) expires: it is removed and its output archived (the original\'s rule). 0: orders never expire (for order files written once, e.g. by configuration management)' -r
complete -c pingmachine -n "__fish_pingmachine_needs_command" -l http-ca-file -d 'Extra trusted CA certificate (PEM file) for https targets of httping orders, e.g. an internal CA. Repeatable' -r -F
complete -c pingmachine -n "__fish_pingmachine_needs_command" -l sping-command -d 'Command run for sping orders: program and arguments, split on white space (no shell); `{pings}`, `{interval_ms}`, `{interval_s}`, `{timeout_ms}` and `{step}` are replaced. The order\'s interface (`-I IF`), source address (`-S IP`), flags and host are appended. It must print fping -C output (`host : 1.23 - 4.56`)' -r
complete -c pingmachine -n "__fish_pingmachine_needs_command" -l pping-command -d 'Command run for pping orders (as --sping-command)' -r
complete -c pingmachine -n "__fish_pingmachine_needs_command" -l exec-probe -d 'An exec probe usable by orders (`probe: exec`, `exec: {probe: NAME, host: ...}`): NAME=COMMAND, with COMMAND as for --sping-command; the order\'s args and host are appended. Repeatable' -r
complete -c pingmachine -n "__fish_pingmachine_needs_command" -l max-parallel-probes -d 'Most probes of one type (httping, tcp, ssh, dns, sping, pping, exec) running at once' -r
complete -c pingmachine -n "__fish_pingmachine_needs_command" -l dns-server -d 'Name server for the orders\' host names, instead of those of /etc/resolv.conf: IP, IP:PORT or [IPv6]:PORT. Repeatable' -r
complete -c pingmachine -n "__fish_pingmachine_needs_command" -l dns-min-ttl -d 'Shortest time, in seconds, a host name\'s address is kept before it is looked up again, whatever the DNS TTL of its answer (also the retry time after a failed lookup)' -r
complete -c pingmachine -n "__fish_pingmachine_needs_command" -l dns-max-ttl -d 'Longest time, in seconds, a host name\'s address is kept before it is looked up again, whatever the DNS TTL of its answer' -r
complete -c pingmachine -n "__fish_pingmachine_needs_command" -l shard -d 'This node\'s share of the orders when N nodes share one set of order files: node K of N (e.g. 2/3). Each order id belongs to exactly one node (rendezvous hashing); the others\' orders are left alone' -r
complete -c pingmachine -n "__fish_pingmachine_needs_command" -s t -l telegraf -d 'Send results as InfluxDB line protocol over UDP to Telegraf or InfluxDB (as the original\'s --telegraf); [IPv6]:PORT for IPv6' -r
complete -c pingmachine -n "__fish_pingmachine_needs_command" -l influx-url -d 'Send results as line protocol to InfluxDB\'s HTTP write API (http(s)://HOST:PORT/write?db=DB, or /api/v2/write?org=ORG&bucket=B with the token in PINGMACHINE_INFLUX_TOKEN), to Telegraf\'s socket listener (tcp://HOST:PORT) or over UDP (udp://HOST:PORT). Repeatable' -r
complete -c pingmachine -n "__fish_pingmachine_needs_command" -l tag -d 'A tag added to every line-protocol line, e.g. --tag site=zrh (an order\'s own tag of the same name wins). Repeatable' -r
complete -c pingmachine -n "__fish_pingmachine_needs_command" -l influx-buffer -d 'Most line-protocol lines queued per destination while it is slow or down; beyond that the oldest are dropped (and counted)' -r
complete -c pingmachine -n "__fish_pingmachine_needs_command" -l metrics-buckets -d 'Upper bounds (seconds, comma-separated, increasing) of the smokeping_response_duration_seconds histogram; smokeping_prober\'s by default' -r
complete -c pingmachine -n "__fish_pingmachine_needs_command" -l remote-write -d 'Push every round as samples to this Prometheus remote-write endpoint (http(s)://HOST:PORT/api/v1/write for Prometheus with --web.enable-remote-write-receiver and VictoriaMetrics). The --tag labels are added to every series. Repeatable' -r
complete -c pingmachine -n "__fish_pingmachine_needs_command" -l remote-write-buffer -d 'Most series queued per remote-write destination while it is slow or down; beyond that the oldest are dropped (and counted)' -r
complete -c pingmachine -n "__fish_pingmachine_needs_command" -l remote-write-user -d 'Basic-auth user for the remote-write endpoints (the password from --remote-write-password-file)' -r
complete -c pingmachine -n "__fish_pingmachine_needs_command" -l remote-write-password-file -d 'File holding the basic-auth password (one line)' -r -F
complete -c pingmachine -n "__fish_pingmachine_needs_command" -l remote-write-bearer-token-file -d 'File holding a bearer token sent to the remote-write endpoints' -r -F
complete -c pingmachine -n "__fish_pingmachine_needs_command" -l remote-write-series -d 'What is pushed: summary (per order and round, at most eight series) or full (the summary, and the whole of /metrics every --remote-write-interval)' -r -f -a "summary\t'Per order and round: loss, median, min, max, jitter, stddev, two quantiles'
full\t'The summary, and the whole of /metrics every interval'"
complete -c pingmachine -n "__fish_pingmachine_needs_command" -l remote-write-interval -d 'With --remote-write-series full: seconds between two pushes of /metrics' -r
complete -c pingmachine -n "__fish_pingmachine_needs_command" -l rrdcached -d 'Create and update main.rrd through rrdcached at ADDR: unix:/path, /path, host, host:port or [v6]:port (also RRDCACHED_ADDRESS, as for rrdtool). rrdcached batches each file\'s writes; the daemon queues updates while it is slow or down' -r
complete -c pingmachine -n "__fish_pingmachine_needs_command" -l rrdcached-queue -d 'Most RRD updates queued for rrdcached while it is slow or down; beyond that they are dropped (and counted)' -r
complete -c pingmachine -n "__fish_pingmachine_needs_command" -l stats-interval -d 'Seconds between rewrites of BASEDIR/.stats.json (the benchmark uses 1)' -r
complete -c pingmachine -n "__fish_pingmachine_needs_command" -l rescan-interval -d 'Seconds between safety-net rescans of orders/ (tests raise it to show that a pickup came from the file watcher, not a rescan)' -r
complete -c pingmachine -n "__fish_pingmachine_needs_command" -l listen -d 'Serve the web page and Prometheus metrics (/metrics, /-/healthy, /-/ready) over HTTP on PORT (loopback only), :PORT (every interface), HOST:PORT or ADDR:PORT ([ADDR]:PORT for IPv6), or on the sockets of systemd socket activation (systemd). Repeatable. Off by default' -r
complete -c pingmachine -n "__fish_pingmachine_needs_command" -l prometheus-url -d 'Show the fleet view under /fleet, read from this Prometheus HTTP API (Prometheus, VictoriaMetrics, Thanos Query, Mimir; the base that /api/v1/query follows, user:password@ for basic auth) holding what the fleet\'s nodes sent with --remote-write' -r
complete -c pingmachine -n "__fish_pingmachine_needs_command" -l fleet-site-label -d 'The label that names a node\'s site (its --tag NAME=VALUE)' -r
complete -c pingmachine -n "__fish_pingmachine_needs_command" -l fleet-stale-after -d 'A site whose newest round is older than this many seconds is shown as stale. A round is stamped with the start of its step and sent when it ends, so the newest is up to two steps old: allow three' -r
complete -c pingmachine -n "__fish_pingmachine_needs_command" -l web-route-prefix -d 'Serve every path under this prefix (/smokeping: the page at /smokeping/, /metrics at /smokeping/metrics), for a reverse proxy that passes the path on unchanged' -r
complete -c pingmachine -n "__fish_pingmachine_needs_command" -l web-config-file -d 'Web configuration file (the Prometheus exporters\' format): basic_auth_users with bcrypt hashes (every request then needs one of them) and tls_server_config (HTTPS)' -r -F
complete -c pingmachine -n "__fish_pingmachine_needs_command" -l writers -d 'Number of threads writing main.rrd and last_result files' -r
complete -c pingmachine -n "__fish_pingmachine_needs_command" -l rrd-backlog -d 'Most unwritten RRD updates kept per order while storage is slower than the rounds: they are written late, in time order; beyond this the oldest are dropped (counted, a gap in that order\'s main.rrd). Probing never waits for storage' -r
complete -c pingmachine -n "__fish_pingmachine_needs_command" -s d -l debug -d 'Log at debug level: one line per order per round with its results. Without a subcommand, also stay in the foreground and log to the terminal instead of detaching and logging to syslog'
complete -c pingmachine -n "__fish_pingmachine_needs_command" -l influx-ip-tag -d 'Add the tag `ip` to every line: the address probed in the round, so a host name\'s new address is a series of its own (an order\'s own `ip` tag wins; a round with no address has none)'
complete -c pingmachine -n "__fish_pingmachine_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c pingmachine -n "__fish_pingmachine_needs_command" -s V -l version -d 'Print version'
complete -c pingmachine -n "__fish_pingmachine_needs_command" -f -a "run" -d 'Run the daemon in the foreground (stop with SIGTERM or SIGINT, rescan with SIGHUP)'
complete -c pingmachine -n "__fish_pingmachine_needs_command" -f -a "check" -d 'Validate order files offline, with the daemon\'s rules and messages (exit status 1 when any is invalid)'
complete -c pingmachine -n "__fish_pingmachine_needs_command" -f -a "status" -d 'Show every order grouped by user: step, pings, probe, target, age of the last result, median RTT and loss; rejected orders; archive count'
complete -c pingmachine -n "__fish_pingmachine_needs_command" -f -a "graph" -d 'Draw a SmokePing-style graph (PNG) of an order\'s main.rrd'
complete -c pingmachine -n "__fish_pingmachine_needs_command" -f -a "serve" -d 'Serve the read-only web page (status, graphs, JSON) without probing, e.g. as another user or beside a daemon that runs without --listen'
complete -c pingmachine -n "__fish_pingmachine_needs_command" -f -a "healthcheck" -d 'Is a daemon running on the base directory, and alive? One line; exit status 0 when healthy, 1 otherwise (for a container\'s HEALTHCHECK): .stats.json fresh, the lock held, and /-/healthy answering when the daemon has --listen'
complete -c pingmachine -n "__fish_pingmachine_needs_command" -f -a "order" -d 'Write, refresh, remove or list order files (validated, atomic)'
complete -c pingmachine -n "__fish_pingmachine_needs_command" -f -a "import" -d 'Convert another prober\'s configuration into orders below orders/'
complete -c pingmachine -n "__fish_pingmachine_needs_command" -f -a "completions" -d 'Print a shell completion script (bash, zsh, fish, elvish, powershell)'
complete -c pingmachine -n "__fish_pingmachine_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c pingmachine -n "__fish_pingmachine_using_subcommand run" -s u -l user -d 'Run as this user: after taking the lock and opening the ICMP sockets, switch to its uid, primary gid and groups, keeping only CAP_NET_RAW. The base directory must be writable by it' -r
complete -c pingmachine -n "__fish_pingmachine_using_subcommand run" -l icmp-socket -d 'Kind of ICMP socket: an unprivileged datagram socket where net.ipv4.ping_group_range allows it, else a raw socket (needs CAP_NET_RAW)' -r -f -a "auto\t'Datagram if permitted, else raw'
datagram\t'Unprivileged ICMP datagram socket only'
raw\t'Raw socket only (CAP_NET_RAW)'"
complete -c pingmachine -n "__fish_pingmachine_using_subcommand run" -l max-age -d 'Seconds after which an order file that was not refreshed (mtime) expires: it is removed and its output archived (the original\'s rule). 0: orders never expire (for order files written once, e.g. by configuration management)' -r
complete -c pingmachine -n "__fish_pingmachine_using_subcommand run" -l http-ca-file -d 'Extra trusted CA certificate (PEM file) for https targets of httping orders, e.g. an internal CA. Repeatable' -r -F
complete -c pingmachine -n "__fish_pingmachine_using_subcommand run" -l sping-command -d 'Command run for sping orders: program and arguments, split on white space (no shell); `{pings}`, `{interval_ms}`, `{interval_s}`, `{timeout_ms}` and `{step}` are replaced. The order\'s interface (`-I IF`), source address (`-S IP`), flags and host are appended. It must print fping -C output (`host : 1.23 - 4.56`)' -r
complete -c pingmachine -n "__fish_pingmachine_using_subcommand run" -l pping-command -d 'Command run for pping orders (as --sping-command)' -r
complete -c pingmachine -n "__fish_pingmachine_using_subcommand run" -l exec-probe -d 'An exec probe usable by orders (`probe: exec`, `exec: {probe: NAME, host: ...}`): NAME=COMMAND, with COMMAND as for --sping-command; the order\'s args and host are appended. Repeatable' -r
complete -c pingmachine -n "__fish_pingmachine_using_subcommand run" -l max-parallel-probes -d 'Most probes of one type (httping, tcp, ssh, dns, sping, pping, exec) running at once' -r
complete -c pingmachine -n "__fish_pingmachine_using_subcommand run" -l dns-server -d 'Name server for the orders\' host names, instead of those of /etc/resolv.conf: IP, IP:PORT or [IPv6]:PORT. Repeatable' -r
complete -c pingmachine -n "__fish_pingmachine_using_subcommand run" -l dns-min-ttl -d 'Shortest time, in seconds, a host name\'s address is kept before it is looked up again, whatever the DNS TTL of its answer (also the retry time after a failed lookup)' -r
complete -c pingmachine -n "__fish_pingmachine_using_subcommand run" -l dns-max-ttl -d 'Longest time, in seconds, a host name\'s address is kept before it is looked up again, whatever the DNS TTL of its answer' -r
complete -c pingmachine -n "__fish_pingmachine_using_subcommand run" -l shard -d 'This node\'s share of the orders when N nodes share one set of order files: node K of N (e.g. 2/3). Each order id belongs to exactly one node (rendezvous hashing); the others\' orders are left alone' -r
complete -c pingmachine -n "__fish_pingmachine_using_subcommand run" -s t -l telegraf -d 'Send results as InfluxDB line protocol over UDP to Telegraf or InfluxDB (as the original\'s --telegraf); [IPv6]:PORT for IPv6' -r
complete -c pingmachine -n "__fish_pingmachine_using_subcommand run" -l influx-url -d 'Send results as line protocol to InfluxDB\'s HTTP write API (http(s)://HOST:PORT/write?db=DB, or /api/v2/write?org=ORG&bucket=B with the token in PINGMACHINE_INFLUX_TOKEN), to Telegraf\'s socket listener (tcp://HOST:PORT) or over UDP (udp://HOST:PORT). Repeatable' -r
complete -c pingmachine -n "__fish_pingmachine_using_subcommand run" -l tag -d 'A tag added to every line-protocol line, e.g. --tag site=zrh (an order\'s own tag of the same name wins). Repeatable' -r
complete -c pingmachine -n "__fish_pingmachine_using_subcommand run" -l influx-buffer -d 'Most line-protocol lines queued per destination while it is slow or down; beyond that the oldest are dropped (and counted)' -r
complete -c pingmachine -n "__fish_pingmachine_using_subcommand run" -l metrics-buckets -d 'Upper bounds (seconds, comma-separated, increasing) of the smokeping_response_duration_seconds histogram; smokeping_prober\'s by default' -r
complete -c pingmachine -n "__fish_pingmachine_using_subcommand run" -l remote-write -d 'Push every round as samples to this Prometheus remote-write endpoint (http(s)://HOST:PORT/api/v1/write for Prometheus with --web.enable-remote-write-receiver and VictoriaMetrics). The --tag labels are added to every series. Repeatable' -r
complete -c pingmachine -n "__fish_pingmachine_using_subcommand run" -l remote-write-buffer -d 'Most series queued per remote-write destination while it is slow or down; beyond that the oldest are dropped (and counted)' -r
complete -c pingmachine -n "__fish_pingmachine_using_subcommand run" -l remote-write-user -d 'Basic-auth user for the remote-write endpoints (the password from --remote-write-password-file)' -r
complete -c pingmachine -n "__fish_pingmachine_using_subcommand run" -l remote-write-password-file -d 'File holding the basic-auth password (one line)' -r -F
complete -c pingmachine -n "__fish_pingmachine_using_subcommand run" -l remote-write-bearer-token-file -d 'File holding a bearer token sent to the remote-write endpoints' -r -F
complete -c pingmachine -n "__fish_pingmachine_using_subcommand run" -l remote-write-series -d 'What is pushed: summary (per order and round, at most eight series) or full (the summary, and the whole of /metrics every --remote-write-interval)' -r -f -a "summary\t'Per order and round: loss, median, min, max, jitter, stddev, two quantiles'
full\t'The summary, and the whole of /metrics every interval'"
complete -c pingmachine -n "__fish_pingmachine_using_subcommand run" -l remote-write-interval -d 'With --remote-write-series full: seconds between two pushes of /metrics' -r
complete -c pingmachine -n "__fish_pingmachine_using_subcommand run" -l rrdcached -d 'Create and update main.rrd through rrdcached at ADDR: unix:/path, /path, host, host:port or [v6]:port (also RRDCACHED_ADDRESS, as for rrdtool). rrdcached batches each file\'s writes; the daemon queues updates while it is slow or down' -r
complete -c pingmachine -n "__fish_pingmachine_using_subcommand run" -l rrdcached-queue -d 'Most RRD updates queued for rrdcached while it is slow or down; beyond that they are dropped (and counted)' -r
complete -c pingmachine -n "__fish_pingmachine_using_subcommand run" -l stats-interval -d 'Seconds between rewrites of BASEDIR/.stats.json (the benchmark uses 1)' -r
complete -c pingmachine -n "__fish_pingmachine_using_subcommand run" -l rescan-interval -d 'Seconds between safety-net rescans of orders/ (tests raise it to show that a pickup came from the file watcher, not a rescan)' -r
complete -c pingmachine -n "__fish_pingmachine_using_subcommand run" -l listen -d 'Serve the web page and Prometheus metrics (/metrics, /-/healthy, /-/ready) over HTTP on PORT (loopback only), :PORT (every interface), HOST:PORT or ADDR:PORT ([ADDR]:PORT for IPv6), or on the sockets of systemd socket activation (systemd). Repeatable. Off by default' -r
complete -c pingmachine -n "__fish_pingmachine_using_subcommand run" -l prometheus-url -d 'Show the fleet view under /fleet, read from this Prometheus HTTP API (Prometheus, VictoriaMetrics, Thanos Query, Mimir; the base that /api/v1/query follows, user:password@ for basic auth) holding what the fleet\'s nodes sent with --remote-write' -r
complete -c pingmachine -n "__fish_pingmachine_using_subcommand run" -l fleet-site-label -d 'The label that names a node\'s site (its --tag NAME=VALUE)' -r
complete -c pingmachine -n "__fish_pingmachine_using_subcommand run" -l fleet-stale-after -d 'A site whose newest round is older than this many seconds is shown as stale. A round is stamped with the start of its step and sent when it ends, so the newest is up to two steps old: allow three' -r
complete -c pingmachine -n "__fish_pingmachine_using_subcommand run" -l web-route-prefix -d 'Serve every path under this prefix (/smokeping: the page at /smokeping/, /metrics at /smokeping/metrics), for a reverse proxy that passes the path on unchanged' -r
complete -c pingmachine -n "__fish_pingmachine_using_subcommand run" -l web-config-file -d 'Web configuration file (the Prometheus exporters\' format): basic_auth_users with bcrypt hashes (every request then needs one of them) and tls_server_config (HTTPS)' -r -F
complete -c pingmachine -n "__fish_pingmachine_using_subcommand run" -l writers -d 'Number of threads writing main.rrd and last_result files' -r
complete -c pingmachine -n "__fish_pingmachine_using_subcommand run" -l rrd-backlog -d 'Most unwritten RRD updates kept per order while storage is slower than the rounds: they are written late, in time order; beyond this the oldest are dropped (counted, a gap in that order\'s main.rrd). Probing never waits for storage' -r
complete -c pingmachine -n "__fish_pingmachine_using_subcommand run" -s b -l basedir -d 'Base directory holding orders/, output/, archive/ and telegraf/' -r -F
complete -c pingmachine -n "__fish_pingmachine_using_subcommand run" -s d -l debug -d 'Log at debug level: one line per order per round with its results. Without a subcommand, also stay in the foreground and log to the terminal instead of detaching and logging to syslog'
complete -c pingmachine -n "__fish_pingmachine_using_subcommand run" -l influx-ip-tag -d 'Add the tag `ip` to every line: the address probed in the round, so a host name\'s new address is a series of its own (an order\'s own `ip` tag wins; a round with no address has none)'
complete -c pingmachine -n "__fish_pingmachine_using_subcommand run" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c pingmachine -n "__fish_pingmachine_using_subcommand run" -s V -l version -d 'Print version'
complete -c pingmachine -n "__fish_pingmachine_using_subcommand check" -s b -l basedir -d 'Base directory holding orders/, output/, archive/ and telegraf/' -r -F
complete -c pingmachine -n "__fish_pingmachine_using_subcommand check" -s h -l help -d 'Print help'
complete -c pingmachine -n "__fish_pingmachine_using_subcommand check" -s V -l version -d 'Print version'
complete -c pingmachine -n "__fish_pingmachine_using_subcommand status" -l user -d 'Only orders of this user' -r
complete -c pingmachine -n "__fish_pingmachine_using_subcommand status" -l now -d 'Pretend the time is this (unix seconds); for tests' -r
complete -c pingmachine -n "__fish_pingmachine_using_subcommand status" -l shard -d 'Only this node\'s share of the orders (as the daemon\'s --shard K/N)' -r
complete -c pingmachine -n "__fish_pingmachine_using_subcommand status" -s b -l basedir -d 'Base directory holding orders/, output/, archive/ and telegraf/' -r -F
complete -c pingmachine -n "__fish_pingmachine_using_subcommand status" -l json -d 'Print JSON (schema in pingmachine(8)) instead of the table'
complete -c pingmachine -n "__fish_pingmachine_using_subcommand status" -s h -l help -d 'Print help'
complete -c pingmachine -n "__fish_pingmachine_using_subcommand status" -s V -l version -d 'Print version'
complete -c pingmachine -n "__fish_pingmachine_using_subcommand graph" -s i -l id -d 'The order, as pingmachine-graph\'s -i: its id or an unambiguous prefix' -r
complete -c pingmachine -n "__fish_pingmachine_using_subcommand graph" -s p -l period -d 'Time span: day, week, month, year or a number of seconds' -r
complete -c pingmachine -n "__fish_pingmachine_using_subcommand graph" -s o -l out -d 'The PNG file to write' -r -F
complete -c pingmachine -n "__fish_pingmachine_using_subcommand graph" -l width -d 'Image width in pixels' -r
complete -c pingmachine -n "__fish_pingmachine_using_subcommand graph" -l height -d 'Image height in pixels' -r
complete -c pingmachine -n "__fish_pingmachine_using_subcommand graph" -l title -d 'Graph title (default: the id and period)' -r
complete -c pingmachine -n "__fish_pingmachine_using_subcommand graph" -l rrdcached -d 'rrdcached holding updates of main.rrd (unix:/path, /path, host[:port]; also RRDCACHED_ADDRESS): the file is flushed first' -r
complete -c pingmachine -n "__fish_pingmachine_using_subcommand graph" -s b -l basedir -d 'Base directory holding orders/, output/, archive/ and telegraf/' -r -F
complete -c pingmachine -n "__fish_pingmachine_using_subcommand graph" -s h -l help -d 'Print help'
complete -c pingmachine -n "__fish_pingmachine_using_subcommand graph" -s V -l version -d 'Print version'
complete -c pingmachine -n "__fish_pingmachine_using_subcommand serve" -l listen -d 'Listen on PORT (loopback only), :PORT (every interface), HOST:PORT or ADDR:PORT ([ADDR]:PORT for IPv6), or on the sockets of systemd socket activation (systemd). Repeatable' -r
complete -c pingmachine -n "__fish_pingmachine_using_subcommand serve" -l rrdcached -d 'rrdcached holding updates (also RRDCACHED_ADDRESS): each graph\'s main.rrd is flushed before it is drawn' -r
complete -c pingmachine -n "__fish_pingmachine_using_subcommand serve" -l shard -d 'List only this node\'s share of the orders (as the daemon\'s --shard K/N)' -r
complete -c pingmachine -n "__fish_pingmachine_using_subcommand serve" -l http-ca-file -d 'Extra trusted CA certificate (PEM file) for an https --prometheus-url. Repeatable' -r -F
complete -c pingmachine -n "__fish_pingmachine_using_subcommand serve" -l prometheus-url -d 'Show the fleet view under /fleet, read from this Prometheus HTTP API (Prometheus, VictoriaMetrics, Thanos Query, Mimir; the base that /api/v1/query follows, user:password@ for basic auth) holding what the fleet\'s nodes sent with --remote-write' -r
complete -c pingmachine -n "__fish_pingmachine_using_subcommand serve" -l fleet-site-label -d 'The label that names a node\'s site (its --tag NAME=VALUE)' -r
complete -c pingmachine -n "__fish_pingmachine_using_subcommand serve" -l fleet-stale-after -d 'A site whose newest round is older than this many seconds is shown as stale. A round is stamped with the start of its step and sent when it ends, so the newest is up to two steps old: allow three' -r
complete -c pingmachine -n "__fish_pingmachine_using_subcommand serve" -l web-route-prefix -d 'Serve every path under this prefix (/smokeping: the page at /smokeping/, /metrics at /smokeping/metrics), for a reverse proxy that passes the path on unchanged' -r
complete -c pingmachine -n "__fish_pingmachine_using_subcommand serve" -l web-config-file -d 'Web configuration file (the Prometheus exporters\' format): basic_auth_users with bcrypt hashes (every request then needs one of them) and tls_server_config (HTTPS)' -r -F
complete -c pingmachine -n "__fish_pingmachine_using_subcommand serve" -s b -l basedir -d 'Base directory holding orders/, output/, archive/ and telegraf/' -r -F
complete -c pingmachine -n "__fish_pingmachine_using_subcommand serve" -s h -l help -d 'Print help'
complete -c pingmachine -n "__fish_pingmachine_using_subcommand serve" -s V -l version -d 'Print version'
complete -c pingmachine -n "__fish_pingmachine_using_subcommand healthcheck" -s b -l basedir -d 'Base directory holding orders/, output/, archive/ and telegraf/' -r -F
complete -c pingmachine -n "__fish_pingmachine_using_subcommand healthcheck" -s h -l help -d 'Print help'
complete -c pingmachine -n "__fish_pingmachine_using_subcommand healthcheck" -s V -l version -d 'Print version'
complete -c pingmachine -n "__fish_pingmachine_using_subcommand order; and not __fish_seen_subcommand_from put touch rm ls help" -s b -l basedir -d 'Base directory holding orders/, output/, archive/ and telegraf/' -r -F
complete -c pingmachine -n "__fish_pingmachine_using_subcommand order; and not __fish_seen_subcommand_from put touch rm ls help" -s h -l help -d 'Print help'
complete -c pingmachine -n "__fish_pingmachine_using_subcommand order; and not __fish_seen_subcommand_from put touch rm ls help" -s V -l version -d 'Print version'
complete -c pingmachine -n "__fish_pingmachine_using_subcommand order; and not __fish_seen_subcommand_from put touch rm ls help" -f -a "put" -d 'Validate an order (file or - for standard input) and write it atomically into orders/; prints its id'
complete -c pingmachine -n "__fish_pingmachine_using_subcommand order; and not __fish_seen_subcommand_from put touch rm ls help" -f -a "touch" -d 'Refresh an order (set its mtime to now) so it does not expire'
complete -c pingmachine -n "__fish_pingmachine_using_subcommand order; and not __fish_seen_subcommand_from put touch rm ls help" -f -a "rm" -d 'Remove an order; the daemon archives its output'
complete -c pingmachine -n "__fish_pingmachine_using_subcommand order; and not __fish_seen_subcommand_from put touch rm ls help" -f -a "ls" -d 'List the order files'
complete -c pingmachine -n "__fish_pingmachine_using_subcommand order; and not __fish_seen_subcommand_from put touch rm ls help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c pingmachine -n "__fish_pingmachine_using_subcommand order; and __fish_seen_subcommand_from put" -l id -d 'The id (path below orders/); default: the md5 of the content (old interface)' -r
complete -c pingmachine -n "__fish_pingmachine_using_subcommand order; and __fish_seen_subcommand_from put" -s b -l basedir -d 'Base directory holding orders/, output/, archive/ and telegraf/' -r -F
complete -c pingmachine -n "__fish_pingmachine_using_subcommand order; and __fish_seen_subcommand_from put" -s h -l help -d 'Print help'
complete -c pingmachine -n "__fish_pingmachine_using_subcommand order; and __fish_seen_subcommand_from put" -s V -l version -d 'Print version'
complete -c pingmachine -n "__fish_pingmachine_using_subcommand order; and __fish_seen_subcommand_from touch" -s b -l basedir -d 'Base directory holding orders/, output/, archive/ and telegraf/' -r -F
complete -c pingmachine -n "__fish_pingmachine_using_subcommand order; and __fish_seen_subcommand_from touch" -s h -l help -d 'Print help'
complete -c pingmachine -n "__fish_pingmachine_using_subcommand order; and __fish_seen_subcommand_from touch" -s V -l version -d 'Print version'
complete -c pingmachine -n "__fish_pingmachine_using_subcommand order; and __fish_seen_subcommand_from rm" -s b -l basedir -d 'Base directory holding orders/, output/, archive/ and telegraf/' -r -F
complete -c pingmachine -n "__fish_pingmachine_using_subcommand order; and __fish_seen_subcommand_from rm" -s h -l help -d 'Print help'
complete -c pingmachine -n "__fish_pingmachine_using_subcommand order; and __fish_seen_subcommand_from rm" -s V -l version -d 'Print version'
complete -c pingmachine -n "__fish_pingmachine_using_subcommand order; and __fish_seen_subcommand_from ls" -l user -d 'Only orders of this user' -r
complete -c pingmachine -n "__fish_pingmachine_using_subcommand order; and __fish_seen_subcommand_from ls" -s b -l basedir -d 'Base directory holding orders/, output/, archive/ and telegraf/' -r -F
complete -c pingmachine -n "__fish_pingmachine_using_subcommand order; and __fish_seen_subcommand_from ls" -s h -l help -d 'Print help'
complete -c pingmachine -n "__fish_pingmachine_using_subcommand order; and __fish_seen_subcommand_from ls" -s V -l version -d 'Print version'
complete -c pingmachine -n "__fish_pingmachine_using_subcommand order; and __fish_seen_subcommand_from help" -f -a "put" -d 'Validate an order (file or - for standard input) and write it atomically into orders/; prints its id'
complete -c pingmachine -n "__fish_pingmachine_using_subcommand order; and __fish_seen_subcommand_from help" -f -a "touch" -d 'Refresh an order (set its mtime to now) so it does not expire'
complete -c pingmachine -n "__fish_pingmachine_using_subcommand order; and __fish_seen_subcommand_from help" -f -a "rm" -d 'Remove an order; the daemon archives its output'
complete -c pingmachine -n "__fish_pingmachine_using_subcommand order; and __fish_seen_subcommand_from help" -f -a "ls" -d 'List the order files'
complete -c pingmachine -n "__fish_pingmachine_using_subcommand order; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c pingmachine -n "__fish_pingmachine_using_subcommand import; and not __fish_seen_subcommand_from smokeping smokeping_prober help" -s b -l basedir -d 'Base directory holding orders/, output/, archive/ and telegraf/' -r -F
complete -c pingmachine -n "__fish_pingmachine_using_subcommand import; and not __fish_seen_subcommand_from smokeping smokeping_prober help" -s h -l help -d 'Print help'
complete -c pingmachine -n "__fish_pingmachine_using_subcommand import; and not __fish_seen_subcommand_from smokeping smokeping_prober help" -s V -l version -d 'Print version'
complete -c pingmachine -n "__fish_pingmachine_using_subcommand import; and not __fish_seen_subcommand_from smokeping smokeping_prober help" -f -a "smokeping" -d 'A SmokePing configuration (Database, Probes and Targets sections, @include, continuation lines) or a Targets file alone: one order per target, its id the target\'s place in the hierarchy; what cannot be converted is listed with file and line (exit status 1)'
complete -c pingmachine -n "__fish_pingmachine_using_subcommand import; and not __fish_seen_subcommand_from smokeping smokeping_prober help" -f -a "smokeping_prober" -d 'A smokeping_prober configuration (YAML with `targets:`): one order per host, written atomically; what cannot be converted is listed with file and line (exit status 1)'
complete -c pingmachine -n "__fish_pingmachine_using_subcommand import; and not __fish_seen_subcommand_from smokeping smokeping_prober help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c pingmachine -n "__fish_pingmachine_using_subcommand import; and __fish_seen_subcommand_from smokeping" -s b -l basedir -d 'Base directory holding orders/, output/, archive/ and telegraf/' -r -F
complete -c pingmachine -n "__fish_pingmachine_using_subcommand import; and __fish_seen_subcommand_from smokeping" -l dry-run -d 'Print the orders instead of writing them'
complete -c pingmachine -n "__fish_pingmachine_using_subcommand import; and __fish_seen_subcommand_from smokeping" -s h -l help -d 'Print help'
complete -c pingmachine -n "__fish_pingmachine_using_subcommand import; and __fish_seen_subcommand_from smokeping" -s V -l version -d 'Print version'
complete -c pingmachine -n "__fish_pingmachine_using_subcommand import; and __fish_seen_subcommand_from smokeping_prober" -s b -l basedir -d 'Base directory holding orders/, output/, archive/ and telegraf/' -r -F
complete -c pingmachine -n "__fish_pingmachine_using_subcommand import; and __fish_seen_subcommand_from smokeping_prober" -l dry-run -d 'Print the orders instead of writing them'
complete -c pingmachine -n "__fish_pingmachine_using_subcommand import; and __fish_seen_subcommand_from smokeping_prober" -s h -l help -d 'Print help'
complete -c pingmachine -n "__fish_pingmachine_using_subcommand import; and __fish_seen_subcommand_from smokeping_prober" -s V -l version -d 'Print version'
complete -c pingmachine -n "__fish_pingmachine_using_subcommand import; and __fish_seen_subcommand_from help" -f -a "smokeping" -d 'A SmokePing configuration (Database, Probes and Targets sections, @include, continuation lines) or a Targets file alone: one order per target, its id the target\'s place in the hierarchy; what cannot be converted is listed with file and line (exit status 1)'
complete -c pingmachine -n "__fish_pingmachine_using_subcommand import; and __fish_seen_subcommand_from help" -f -a "smokeping_prober" -d 'A smokeping_prober configuration (YAML with `targets:`): one order per host, written atomically; what cannot be converted is listed with file and line (exit status 1)'
complete -c pingmachine -n "__fish_pingmachine_using_subcommand import; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c pingmachine -n "__fish_pingmachine_using_subcommand completions" -s b -l basedir -d 'Base directory holding orders/, output/, archive/ and telegraf/' -r -F
complete -c pingmachine -n "__fish_pingmachine_using_subcommand completions" -s h -l help -d 'Print help'
complete -c pingmachine -n "__fish_pingmachine_using_subcommand completions" -s V -l version -d 'Print version'
complete -c pingmachine -n "__fish_pingmachine_using_subcommand help; and not __fish_seen_subcommand_from run check status graph serve healthcheck order import completions help" -f -a "run" -d 'Run the daemon in the foreground (stop with SIGTERM or SIGINT, rescan with SIGHUP)'
complete -c pingmachine -n "__fish_pingmachine_using_subcommand help; and not __fish_seen_subcommand_from run check status graph serve healthcheck order import completions help" -f -a "check" -d 'Validate order files offline, with the daemon\'s rules and messages (exit status 1 when any is invalid)'
complete -c pingmachine -n "__fish_pingmachine_using_subcommand help; and not __fish_seen_subcommand_from run check status graph serve healthcheck order import completions help" -f -a "status" -d 'Show every order grouped by user: step, pings, probe, target, age of the last result, median RTT and loss; rejected orders; archive count'
complete -c pingmachine -n "__fish_pingmachine_using_subcommand help; and not __fish_seen_subcommand_from run check status graph serve healthcheck order import completions help" -f -a "graph" -d 'Draw a SmokePing-style graph (PNG) of an order\'s main.rrd'
complete -c pingmachine -n "__fish_pingmachine_using_subcommand help; and not __fish_seen_subcommand_from run check status graph serve healthcheck order import completions help" -f -a "serve" -d 'Serve the read-only web page (status, graphs, JSON) without probing, e.g. as another user or beside a daemon that runs without --listen'
complete -c pingmachine -n "__fish_pingmachine_using_subcommand help; and not __fish_seen_subcommand_from run check status graph serve healthcheck order import completions help" -f -a "healthcheck" -d 'Is a daemon running on the base directory, and alive? One line; exit status 0 when healthy, 1 otherwise (for a container\'s HEALTHCHECK): .stats.json fresh, the lock held, and /-/healthy answering when the daemon has --listen'
complete -c pingmachine -n "__fish_pingmachine_using_subcommand help; and not __fish_seen_subcommand_from run check status graph serve healthcheck order import completions help" -f -a "order" -d 'Write, refresh, remove or list order files (validated, atomic)'
complete -c pingmachine -n "__fish_pingmachine_using_subcommand help; and not __fish_seen_subcommand_from run check status graph serve healthcheck order import completions help" -f -a "import" -d 'Convert another prober\'s configuration into orders below orders/'
complete -c pingmachine -n "__fish_pingmachine_using_subcommand help; and not __fish_seen_subcommand_from run check status graph serve healthcheck order import completions help" -f -a "completions" -d 'Print a shell completion script (bash, zsh, fish, elvish, powershell)'
complete -c pingmachine -n "__fish_pingmachine_using_subcommand help; and not __fish_seen_subcommand_from run check status graph serve healthcheck order import completions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c pingmachine -n "__fish_pingmachine_using_subcommand help; and __fish_seen_subcommand_from order" -f -a "put" -d 'Validate an order (file or - for standard input) and write it atomically into orders/; prints its id'
complete -c pingmachine -n "__fish_pingmachine_using_subcommand help; and __fish_seen_subcommand_from order" -f -a "touch" -d 'Refresh an order (set its mtime to now) so it does not expire'
complete -c pingmachine -n "__fish_pingmachine_using_subcommand help; and __fish_seen_subcommand_from order" -f -a "rm" -d 'Remove an order; the daemon archives its output'
complete -c pingmachine -n "__fish_pingmachine_using_subcommand help; and __fish_seen_subcommand_from order" -f -a "ls" -d 'List the order files'
complete -c pingmachine -n "__fish_pingmachine_using_subcommand help; and __fish_seen_subcommand_from import" -f -a "smokeping" -d 'A SmokePing configuration (Database, Probes and Targets sections, @include, continuation lines) or a Targets file alone: one order per target, its id the target\'s place in the hierarchy; what cannot be converted is listed with file and line (exit status 1)'
complete -c pingmachine -n "__fish_pingmachine_using_subcommand help; and __fish_seen_subcommand_from import" -f -a "smokeping_prober" -d 'A smokeping_prober configuration (YAML with `targets:`): one order per host, written atomically; what cannot be converted is listed with file and line (exit status 1)'
