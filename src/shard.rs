//! `--shard I/N`: a stable split of the selected nodes for N CI runners, and the GitHub Actions
//! matrix that lists the shards. A node's shard depends on its address and N only, so adding or
//! removing other nodes never moves it, and the shards of one N cover every node exactly once.
//! Knows addresses, nothing of Terraform.

use std::collections::BTreeSet;
use std::fmt;

use crate::config::Fleet;
use crate::graph::Dag;

/// The most shards orch splits into: a GitHub Actions matrix makes at most 256 jobs per run.
pub const MAX_SHARDS: u32 = 256;

/// Nodes one parallel slot of a runner is given by the default shard count: with real terraform
/// a plan takes about 6.5 CPU-seconds, so 50 nodes per slot is about five minutes per runner.
const NODES_PER_SLOT: usize = 50;

/// The parallelism the default shard count assumes when orch.yaml sets none: a GitHub-hosted
/// runner's two cores. Never the cores of the machine printing the matrix, which is not a runner.
const RUNNER_PARALLELISM: usize = 2;

/// Shard `index` (1-based) of `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Parses `I/N` for `--shard`, saying what is wrong when it is not one.
pub fn parse(text: &str) -> Result<Shard, String> {
    let usage = "write I/N with 1 <= I <= N, e.g. `--shard 2/4` for the second of four shards";
    let Some((index, count)) = text.split_once('/') else {
        return Err(format!("`{text}` is not a shard: {usage}"));
    };
    let count = parse_number(count).ok_or_else(|| format!("`{text}` is not a shard: {usage}"))?;
    let index = parse_number(index).ok_or_else(|| format!("`{text}` is not a shard: {usage}"))?;
    let count = check_count(count)?;
    if index == 0 || index > u64::from(count) {
        return Err(format!(
            "`{text}`: there is no shard {index} of {count}; shards are numbered 1 to {count}"
        ));
    }
    Ok(Shard {
        index: index as u32,
        count,
    })
}

/// Parses N for `orch graph --shards N`.
pub fn parse_count(text: &str) -> Result<u32, String> {
    parse_number(text)
        .ok_or_else(|| format!("`{text}` is not a number of shards: write a whole number, e.g. 4"))
        .and_then(check_count)
}

/// Digits only (no sign, no spaces); a number too large for u64 reads as u64::MAX, which the
/// range checks then refuse with the limit in the message.
fn parse_number(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.parse().unwrap_or(u64::MAX))
}

fn check_count(count: u64) -> Result<u32, String> {
    match count {
        0 => Err("the number of shards must be at least 1".to_string()),
        n if n > u64::from(MAX_SHARDS) => Err(format!(
            "{n} shards; the limit is {MAX_SHARDS} (a GitHub Actions matrix makes at most 256 jobs)"
        )),
        n => Ok(n as u32),
    }
}

impl Shard {
    /// Whether the node at `address` belongs to this shard.
    pub fn holds(&self, address: &str) -> bool {
        shard_of(address, self.count) == self.index
    }

    /// The selected nodes that belong to this shard.
    pub fn filter(&self, fleet: &Fleet, selected: &BTreeSet<usize>) -> BTreeSet<usize> {
        selected
            .iter()
            .copied()
            .filter(|&i| self.holds(&fleet.nodes[i].address.to_string()))
            .collect()
    }
}

/// The nodes of `shard` with a direct dependency among `selected` but outside the shard: they
/// plan with the outputs recorded in .orch/outputs, or placeholders (provisional) without.
pub fn leaning_on_others(dag: &Dag, selected: &BTreeSet<usize>, shard: &BTreeSet<usize>) -> usize {
    shard
        .iter()
        .filter(|&&i| {
            dag.dependencies(i)
                .any(|d| selected.contains(&d) && !shard.contains(&d))
        })
        .count()
}

/// The shard (1-based) of an address among `count`: jump consistent hashing (Lamping and Veach)
/// of a 64-bit hash of the address. Changing N moves only the nodes the new shard count must
/// move (about 1/N of them), so per-shard CI caches of `.orch/work` stay mostly warm.
pub fn shard_of(address: &str, count: u32) -> u32 {
    let mut key = mix(fnv1a(address.as_bytes()));
    let (mut bucket, mut next): (i64, i64) = (-1, 0);
    while next < i64::from(count) {
        bucket = next;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        next = ((bucket + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    bucket as u32 + 1
}

/// FNV-1a: fixed by its definition, unlike std's hasher, whose output may change between Rust
/// releases and would then reshuffle every fleet's shards.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// splitmix64's finalizer: addresses that differ in one character end up far apart.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The default number of shards for `orch graph --format github-matrix`: one parallel slot of a
/// runner per 50 nodes, with orch.yaml's `parallelism` (else 2) slots per runner.
pub fn default_count(nodes: usize, parallelism: Option<usize>) -> u32 {
    let per_runner = NODES_PER_SLOT * parallelism.unwrap_or(RUNNER_PARALLELISM).max(1);
    nodes.div_ceil(per_runner).clamp(1, MAX_SHARDS as usize) as u32
}

/// `{"include": [{"shard": "1/3"}, ...]}`, for a job's `strategy.matrix` through `fromJSON`.
pub fn github_matrix(count: u32) -> String {
    let include: Vec<serde_json::Value> = (1..=count)
        .map(|i| serde_json::json!({ "shard": format!("{i}/{count}") }))
        .collect();
    serde_json::json!({ "include": include }).to_string() + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        assert_eq!(parse("2/4"), Ok(Shard { index: 2, count: 4 }));
        assert_eq!(parse("1/1"), Ok(Shard { index: 1, count: 1 }));
        assert_eq!(
            parse("256/256"),
            Ok(Shard {
                index: 256,
                count: 256
            })
        );
        for (bad, says) in [
            ("0/3", "there is no shard 0 of 3"),
            ("4/3", "there is no shard 4 of 3"),
            ("1/0", "at least 1"),
            ("a/b", "not a shard"),
            ("1/3/2", "not a shard"),
            ("1/257", "the limit is 256"),
            ("1/99999999999999999999999", "the limit is 256"),
            ("3", "not a shard"),
            ("", "not a shard"),
            ("/3", "not a shard"),
            ("1/", "not a shard"),
            ("+1/3", "not a shard"),
            (" 1/3", "not a shard"),
            ("-1/3", "not a shard"),
        ] {
            let err = parse(bad).expect_err(bad);
            assert!(err.contains(says), "{bad}: {err}");
        }
        assert_eq!(parse_count("12"), Ok(12));
        assert!(parse_count("0").unwrap_err().contains("at least 1"));
        assert!(parse_count("x").unwrap_err().contains("whole number"));
        assert!(parse_count("1000").unwrap_err().contains("limit is 256"));
    }

    #[test]
    fn every_address_lands_in_one_shard_and_shards_are_balanced() {
        let addresses: Vec<String> = (0..4000)
            .map(|i| format!("acct-{}/us-east-{}/key-{i}", i % 17, i % 3))
            .collect();
        for count in [1, 2, 3, 4, 7, 256] {
            let mut sizes = vec![0usize; count as usize];
            for a in &addresses {
                let s = shard_of(a, count);
                assert!((1..=count).contains(&s));
                sizes[s as usize - 1] += 1;
            }
            let even = addresses.len() / count as usize;
            // Within 25% of an even split (binomial spread is well under that at these sizes).
            if count <= 7 {
                for size in &sizes {
                    assert!(size.abs_diff(even) * 4 < even, "{count}: {sizes:?}");
                }
            }
        }
    }

    #[test]
    fn a_new_shard_count_moves_few_nodes() {
        let addresses: Vec<String> = (0..4000).map(|i| format!("a/r/k{i}")).collect();
        let moved = addresses
            .iter()
            .filter(|a| shard_of(a, 4) != shard_of(a, 5))
            .count();
        // Jump hashing moves 1/5 of the nodes from 4 to 5 shards; a modulo split would move 4/5.
        assert!(moved < addresses.len() / 4, "{moved} moved");
    }

    #[test]
    fn the_split_is_fixed_by_the_address() {
        // Pinned: a change here reshuffles every user's CI shards.
        assert_eq!(shard_of("prod/us-east-1/data", 4), 4);
        assert_eq!(shard_of("dev/us-east-1/app", 4), 2);
    }

    #[test]
    fn default_counts_and_matrix() {
        assert_eq!(default_count(0, None), 1);
        assert_eq!(default_count(100, None), 1);
        assert_eq!(default_count(101, None), 2);
        assert_eq!(default_count(1000, None), 10);
        assert_eq!(default_count(1000, Some(4)), 5);
        assert_eq!(default_count(1_000_000, Some(1)), 256);
        assert_eq!(
            github_matrix(3),
            "{\"include\":[{\"shard\":\"1/3\"},{\"shard\":\"2/3\"},{\"shard\":\"3/3\"}]}\n"
        );
    }
}
