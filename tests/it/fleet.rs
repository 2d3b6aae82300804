//! Several daemons as one fleet: `--shard K/N` splits one set of order
//! files so that every order runs on exactly one node, and the others
//! leave it alone.

use std::time::Duration;

use crate::support::{bin, can_ping, wait_for, Base, Daemon};

#[test]
fn three_shards_split_one_set_of_orders_with_none_twice_and_none_left_out() {
    let test = "three_shards_split_one_set_of_orders_with_none_twice_and_none_left_out";
    if !can_ping(test) {
        return;
    }
    let ids: Vec<String> = (0..24).map(|i| format!("app/t{i}")).collect();
    let bases: Vec<Base> = (0..3).map(|_| Base::new()).collect();
    for b in &bases {
        for id in &ids {
            b.write_order(
                id,
                "user: u\nstep: 10\npings: 1\nprobe: fping\nfping: {host: 127.0.0.1}\nrrd_template: norrd\n",
            );
        }
        // An invalid order is the business of its node only, too.
        b.write_order("app/broken", "user: u\nstep: 10\n");
    }
    let daemons: Vec<Daemon> = bases
        .iter()
        .enumerate()
        .map(|(i, b)| Daemon::start(b, &["--shard", &format!("{}/3", i + 1), "--max-age", "0"]))
        .collect();
    let owner =
        |id: &str| -> Vec<usize> { (0..3).filter(|&i| bases[i].output(id).exists()).collect() };
    // Every order gets a result on exactly one node.
    wait_for(Duration::from_secs(60), || {
        ids.iter()
            .all(|id| (0..3).any(|i| bases[i].last_result(id).is_some()))
            .then_some(())
    })
    .unwrap_or_else(|| panic!("not every order ran; logs:\n{}", daemons[0].log_text()));
    // A round more, so that a node probing someone else's order would
    // have written it by now.
    std::thread::sleep(Duration::from_secs(12));
    let mut per_node = [0usize; 3];
    for id in &ids {
        let o = owner(id);
        assert_eq!(o.len(), 1, "{id} has output on nodes {o:?}");
        per_node[o[0]] += 1;
    }
    assert!(per_node.iter().all(|n| *n > 0), "{per_node:?}");
    // Nobody's order files were touched: every node still has all of them.
    for b in &bases {
        for id in &ids {
            assert!(b.orders().join(id).exists(), "{id} gone from a node");
        }
    }
    // The broken order was set aside by its node only.
    let rejected: Vec<usize> = (0..3)
        .filter(|&i| bases[i].path().join("rejected/app/broken").exists())
        .collect();
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    // `status --shard` lists the node's orders only.
    for (i, b) in bases.iter().enumerate() {
        let out = std::process::Command::new(bin())
            .arg("--basedir")
            .arg(b.path())
            .args(["status", "--json", "--shard", &format!("{}/3", i + 1)])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let listed = v["orders"].as_array().map_or(0, Vec::len);
        assert_eq!(listed, per_node[i], "node {}: {v}", i + 1);
    }
    drop(daemons);
}

#[test]
fn a_bad_shard_is_a_clear_error() {
    let base = Base::new();
    for (arg, why) in [
        ("4/3", "K must be 1 to N"),
        ("3", "expected K/N"),
        ("0/0", "N must be 1 to"),
    ] {
        let out = std::process::Command::new(bin())
            .arg("--basedir")
            .arg(base.path())
            .args(["run", "--shard", arg])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{arg}: {err}");
        assert!(err.contains("--shard") && err.contains(why), "{arg}: {err}");
    }
}
