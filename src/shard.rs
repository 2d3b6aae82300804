//! `--shard K/N`: N nodes share one set of order files, and each probes
//! the orders whose id hashes to it. The node of an id is the one with the
//! highest score `mix(hash(id), node)` (rendezvous hashing): every node
//! computes the same answer without talking to the others, and when N
//! changes only the orders whose highest score changed move. Going from N
//! to N+1 nodes moves about 1/(N+1) of the orders, all to the new node;
//! taking the last node away moves only its orders. The hash is FNV-1a
//! (64 bits) of the id's UTF-8 bytes, mixed with splitmix64: the same on
//! every machine and in every version.

use std::fmt;
use std::str::FromStr;

/// This node's share: node `k` (1-based) of `n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    k: u32,
    n: u32,
}

/// The most nodes a shard may count.
pub const MAX_NODES: u32 = 10_000;

impl Shard {
    /// Node `k` of `n` (1 ≤ k ≤ n ≤ [`MAX_NODES`]).
    pub fn new(k: u32, n: u32) -> Result<Shard, String> {
        if n == 0 || n > MAX_NODES {
            return Err(format!("N must be 1 to {MAX_NODES}"));
        }
        if k == 0 || k > n {
            return Err(format!("K must be 1 to N ({n})"));
        }
        Ok(Shard { k, n })
    }

    /// The node (1-based) of order `id` among `n`.
    pub fn node_of(id: &str, n: u32) -> u32 {
        let h = fnv1a(id.as_bytes());
        (1..=n.max(1))
            .max_by_key(|node| (splitmix64(h ^ splitmix64(u64::from(*node))), *node))
            .unwrap_or(1)
    }

    /// Whether order `id` is this node's.
    pub fn owns(&self, id: &str) -> bool {
        Shard::node_of(id, self.n) == self.k
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.k, self.n)
    }
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Shard, String> {
        let (k, n) = s
            .split_once('/')
            .ok_or_else(|| "expected K/N, e.g. 2/3".to_owned())?;
        let num = |x: &str| {
            x.trim()
                .parse::<u32>()
                .map_err(|_| format!("{x:?} is not a whole number"))
        };
        Shard::new(num(k)?, num(n)?)
    }
}

/// `Some(true)` unless `shard` says the order is another node's.
pub fn owned(shard: Option<&Shard>, id: &str) -> bool {
    shard.is_none_or(|s| s.owns(id))
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("app/t{i}")).collect()
    }

    #[test]
    fn every_order_has_exactly_one_node_and_the_shares_are_even() {
        let ids = ids(30_000);
        let shards: Vec<Shard> = (1..=3).map(|k| Shard::new(k, 3).unwrap()).collect();
        let mut per_node = [0usize; 3];
        for id in &ids {
            let owners: Vec<usize> = (0..3).filter(|&i| shards[i].owns(id)).collect();
            assert_eq!(owners.len(), 1, "{id}: {owners:?}");
            per_node[owners[0]] += 1;
        }
        for n in per_node {
            assert!((9_400..=10_600).contains(&n), "{per_node:?}");
        }
    }

    #[test]
    fn a_new_node_takes_a_fair_share_and_nothing_else_moves() {
        let ids = ids(30_000);
        let mut moved = 0;
        for id in &ids {
            let (before, after) = (Shard::node_of(id, 3), Shard::node_of(id, 4));
            if before != after {
                assert_eq!(after, 4, "{id} moved from {before} to {after}");
                moved += 1;
            }
        }
        assert!((6_900..=8_100).contains(&moved), "{moved} of 30000 moved");
    }

    #[test]
    fn the_hash_is_fixed() {
        // The same on every machine and in every version: nodes of mixed
        // versions agree.
        let got: Vec<u32> = ["a", "app/t1", "zrh/router-1", "ü"]
            .iter()
            .map(|id| Shard::node_of(id, 5))
            .collect();
        assert_eq!(got, FIXED);
    }

    const FIXED: [u32; 4] = [5, 3, 1, 4];

    #[test]
    fn values() {
        assert_eq!("2/3".parse::<Shard>().unwrap().to_string(), "2/3");
        assert_eq!(
            " 1 / 1 ".parse::<Shard>().unwrap(),
            Shard::new(1, 1).unwrap()
        );
        for bad in ["3", "0/3", "4/3", "1/0", "a/3", "1/10001"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        assert!(owned(None, "x"));
    }
}
