//! `floor`: the kernel's floor under `run`'s ICMP threads.

use crate::*;

/// `floor`: on loopback in this process; with `--net netns` in the
/// prober's namespace (this program again, as `floor-child`), with the
/// veth pair's kernel threads measured around it.
pub(crate) fn floor(targets: usize, rate: u32, seconds: u64, net: Net) -> anyhow::Result<()> {
    println!(
        "--- kernel floor: {rate} pings/s round-robin over {targets} targets for {seconds} s ({}) ---",
        match net {
            Net::Loopback => "loopback",
            Net::Netns => "network namespaces",
        }
    );
    match net {
        Net::Loopback => floor_measure(targets, rate, seconds, net),
        Net::Netns => {
            let testnet = netns::TestNet::create()?;
            let me = std::env::current_exe().context("cannot find this program")?;
            let napi0 = netns::napi_cpu_s();
            let status = testnet
                .command(&me)
                .arg("floor-child")
                .args(["--targets", &targets.to_string()])
                .args(["--rate", &rate.to_string()])
                .args(["--seconds", &seconds.to_string()])
                .status()
                .context("cannot start the floor in the prober's namespace")?;
            let napi = netns::napi_cpu_s() - napi0;
            if !status.success() {
                bail!("the floor's measurement failed ({status})");
            }
            if let Some(x) = netns::targets_out_discards() {
                println!("  dropped by the targets' kernel {x:>10} (replies it could not send: Ip6OutDiscards in their namespace)");
            }
            println!(
                "network kernel threads  {napi:.2} s (not the prober's: the veth pair's NAPI, over the whole run)"
            );
            Ok(())
        }
    }
}

/// Runs the floor here and prints its figures.
pub(crate) fn floor_measure(
    targets: usize,
    rate: u32,
    seconds: u64,
    net: Net,
) -> anyhow::Result<()> {
    let addrs: Vec<std::net::IpAddr> = (0..targets.max(1)).map(|i| net.target(i)).collect();
    let config = probes::icmp::IcmpConfig {
        // As the daemon opens its sockets (cmd/run.rs).
        send_quantum: Duration::from_millis(1),
        ..probes::icmp::IcmpConfig::default()
    };
    let r = probes::icmp::floor::run(
        &addrs,
        rate,
        Duration::from_secs(seconds),
        Duration::from_millis(500),
        &config,
    )
    .context("the floor's socket")?;
    let pct = |cpu: f64| 100.0 * cpu / r.seconds.max(1e-9);
    let per_ping = |cpu: f64| 1e6 * cpu / (r.sent.max(1) as f64);
    let lost = r.sent.saturating_sub(r.replies);
    println!(
        "pings sent           {:>10} ({:.0}/s; {rate}/s asked), send errors {}",
        r.sent,
        r.sent as f64 / r.seconds.max(1e-9),
        r.send_errors
    );
    println!(
        "read                 {:>10} error-queue entries (transmit stamps), {} replies ({lost} unanswered, {:.3} %), {} other packets, {} read errors",
        r.tx_stamps,
        r.replies,
        100.0 * lost as f64 / r.sent.max(1) as f64,
        r.others,
        r.recv_errors
    );
    for (name, cpu) in [
        ("sender", r.sender_cpu_s),
        ("receiver", r.receiver_cpu_s),
        ("both", r.sender_cpu_s + r.receiver_cpu_s),
    ] {
        println!(
            "CPU {name:<9}        {cpu:>8.2} s = {:.1} % of one core, {:.2} µs per ping",
            pct(cpu),
            per_ping(cpu)
        );
    }
    Ok(())
}
