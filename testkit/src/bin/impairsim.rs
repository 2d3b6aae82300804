//! `impairsim`: runs the [`testkit::impair`] simulator by hand, for
//! reproducing an accuracy case outside the tests. Needs root.
//!
//! ```text
//! impairsim [--seed N] [--log FILE] [--hold SECONDS] [--timeout SECONDS] [--quiet]
//!           [--host ADDR[,delay=MS][,jitter=MS][,loss=P][,ttl=N][,mode=normal|late|dup|foreign|unreach]]...
//!           [--http ADDR:PORT,delay=MS]... [--tcp-accept ADDR:PORT]... [--tcp-delay ADDR:PORT,delay=MS]...
//!           [-- COMMAND ARGS...]
//! ```
//!
//! With a COMMAND it runs it inside the prober namespace (killed after
//! `--timeout`, default 120 s), prints its output and every request the
//! simulator saw, and exits. Without one it prints the namespace names and
//! holds the simulator for `--hold` seconds (default 60, at most a day) so
//! you can run `ip netns exec PROBER ...` from another shell (the demo
//! runs the daemon there); SIGINT or SIGTERM end it early. The namespaces
//! are removed on exit either way. `--quiet` leaves out the list of
//! requests at the end.

use std::net::{IpAddr, SocketAddr, SocketAddrV4};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{SigSet, Signal};
use testkit::impair::{HostCfg, HttpCfg, Mode, Sim, SimConfig, TcpDelayCfg};

fn usage() -> ExitCode {
    eprintln!("usage: impairsim [--seed N] [--log FILE] [--hold S] [--timeout S] [--quiet] [--host ADDR[,delay=MS][,jitter=MS][,loss=P][,ttl=N][,mode=M]]... [--http ADDR:PORT,delay=MS]... [--tcp-accept ADDR:PORT]... [--tcp-delay ADDR:PORT,delay=MS]... [-- COMMAND ARGS...]");
    ExitCode::from(2)
}

/// `ADDR,key=value,...` → (ADDR, [(key, value)]).
fn split_spec(spec: &str) -> (&str, Vec<(&str, &str)>) {
    let mut parts = spec.split(',');
    let head = parts.next().unwrap_or("");
    let kv = parts.filter_map(|p| p.split_once('=')).collect();
    (head, kv)
}

fn parse_host(spec: &str) -> Result<HostCfg, String> {
    let (addr, kv) = split_spec(spec);
    let addr: IpAddr = addr.parse().map_err(|_| format!("bad address {addr:?}"))?;
    let mut h = HostCfg::delay(addr, 0.0);
    for (k, v) in kv {
        let num = || {
            v.parse::<f64>()
                .map_err(|_| format!("bad number {v:?} for {k}"))
        };
        match k {
            "delay" => h.delay_ms = num()?,
            "jitter" => h.jitter_ms = num()?,
            "loss" => h.loss = num()?,
            "ttl" => {
                h.reply_ttl = Some(v.parse().map_err(|_| format!("bad TTL {v:?}"))?);
            }
            "mode" => {
                h.mode = match v {
                    "normal" => Mode::Normal,
                    "late" => Mode::Late,
                    "dup" => Mode::Duplicate,
                    "foreign" => Mode::ForeignId,
                    "unreach" => Mode::Unreachable,
                    _ => return Err(format!("bad mode {v:?}")),
                }
            }
            _ => return Err(format!("unknown host option {k:?}")),
        }
    }
    Ok(h)
}

fn delay_of(kv: &[(&str, &str)]) -> Result<f64, String> {
    match kv {
        [] => Ok(0.0),
        [("delay", v)] => v.parse().map_err(|_| format!("bad delay {v:?}")),
        _ => Err(format!("expected only delay=MS, got {kv:?}")),
    }
}

/// Longest `--hold` and `--timeout`: every run of the simulator ends.
const MAX_SECONDS: u64 = 86_400;

/// The options before `--`.
struct Options {
    cfg: SimConfig,
    /// How long to hold without a command.
    hold: Duration,
    /// A command's timeout.
    timeout: Duration,
    /// No list of requests at the end.
    quiet: bool,
}

/// Parses the options before `--`; `None` after saying what is wrong.
fn parse_options(opts: &[String]) -> Option<Options> {
    let mut cfg = SimConfig::default();
    let mut hold = Duration::from_secs(60);
    let mut timeout = Duration::from_secs(120);
    let mut quiet = false;
    let mut it = opts.iter();
    while let Some(flag) = it.next() {
        if flag == "--quiet" {
            quiet = true;
            continue;
        }
        let value = it.next()?;
        let r: Result<(), String> = (|| {
            match flag.as_str() {
                "--seed" => cfg.seed = value.parse().map_err(|_| "bad seed".to_owned())?,
                "--log" => cfg.log_file = Some(value.into()),
                "--hold" => {
                    let s: u64 = value.parse().map_err(|_| "bad --hold".to_owned())?;
                    hold = Duration::from_secs(s.min(MAX_SECONDS));
                }
                "--timeout" => {
                    let s: u64 = value.parse().map_err(|_| "bad --timeout".to_owned())?;
                    timeout = Duration::from_secs(s.min(MAX_SECONDS));
                }
                "--host" => cfg.hosts.push(parse_host(value)?),
                "--http" => {
                    let (a, kv) = split_spec(value);
                    let addr: SocketAddr = a.parse().map_err(|_| format!("bad {a:?}"))?;
                    cfg.http.push(HttpCfg {
                        addr,
                        delay_ms: delay_of(&kv)?,
                    });
                }
                "--tcp-accept" => cfg
                    .tcp_accept
                    .push(value.parse().map_err(|_| format!("bad {value:?}"))?),
                "--tcp-delay" => {
                    let (a, kv) = split_spec(value);
                    let addr: SocketAddrV4 = a.parse().map_err(|_| format!("bad {a:?}"))?;
                    cfg.tcp_delay.push(TcpDelayCfg {
                        addr,
                        delay_ms: delay_of(&kv)?,
                    });
                }
                _ => return Err(format!("unknown option {flag}")),
            }
            Ok(())
        })();
        if let Err(e) = r {
            eprintln!("impairsim: {e}");
            return None;
        }
    }
    Some(Options {
        cfg,
        hold,
        timeout,
        quiet,
    })
}

/// SIGINT/SIGTERM: blocked here (and so in every thread spawned later),
/// taken by a waiting thread that sets the flag returned, so the
/// simulator's Drop removes the namespaces.
fn catch_signals() -> Arc<AtomicBool> {
    let mut sigs = SigSet::empty();
    sigs.add(Signal::SIGINT);
    sigs.add(Signal::SIGTERM);
    let interrupted = Arc::new(AtomicBool::new(false));
    if sigs.thread_block().is_ok() {
        let flag = Arc::clone(&interrupted);
        let _ = std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                if sigs.wait().is_ok() {
                    flag.store(true, Ordering::Relaxed);
                }
            });
    }
    interrupted
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (opts, command) = match args.iter().position(|a| a == "--") {
        Some(i) => (&args[..i], args[i + 1..].to_vec()),
        None => (&args[..], Vec::new()),
    };
    let Some(Options {
        mut cfg,
        hold,
        timeout,
        quiet,
    }) = parse_options(opts)
    else {
        return usage();
    };
    cfg.max_lifetime = Some(hold.max(timeout) + Duration::from_secs(30));

    let interrupted = catch_signals();

    let sim = match Sim::start(cfg) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("impairsim: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("prober namespace: {}", sim.prober_ns());
    println!("host namespace:   {}", sim.host_ns());
    let mut code = ExitCode::SUCCESS;
    if command.is_empty() {
        println!("holding for {} s (Ctrl-C ends early)", hold.as_secs());
        let end = Instant::now() + hold;
        while Instant::now() < end && !interrupted.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
        }
    } else {
        let argv: Vec<&str> = command.iter().map(String::as_str).collect();
        match sim.prober_exec(&argv, timeout) {
            Ok(out) => {
                print!("{}", String::from_utf8_lossy(&out.stdout));
                eprint!("{}", String::from_utf8_lossy(&out.stderr));
                if !out.status.success() {
                    code =
                        ExitCode::from(u8::try_from(out.status.code().unwrap_or(1)).unwrap_or(1));
                }
            }
            Err(e) => {
                eprintln!("impairsim: {e}");
                code = ExitCode::FAILURE;
            }
        }
    }
    for r in sim.requests().iter().filter(|_| !quiet) {
        println!(
            "{:?} {} from {} ident {} seq {} {:?}",
            r.at, r.addr, r.from, r.ident, r.seq, r.fate
        );
    }
    let st = sim.stats();
    let (l, s) = (st.receive_lag_us, st.send_lateness_us);
    println!(
        "sent {} packets ({} send errors); receive lag mean {:.1} us, p99 {:.1} us, max {:.1} us; send lateness mean {:.1} us, p99 {:.1} us, max {:.1} us",
        st.packets_sent, st.send_errors, l.mean, l.p99, l.max, s.mean, s.p99, s.max
    );
    if !sim.config().http.is_empty() {
        let r = st.relay;
        println!(
            "relayed {} packets of the HTTP servers ({} errors, {} others dropped)",
            r.relayed, r.errors, r.foreign
        );
    }
    drop(sim);
    code
}
