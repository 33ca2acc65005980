//! `--shard I/N` and `orch graph --format github-matrix` against the fake terraform
//! (tests/fake/terraform): the shards of one N cover every selected node exactly once, a node's
//! shard does not move when unrelated nodes are added, a sharded plan runs terraform on its own
//! nodes only, a dependency in another shard gives recorded outputs or a provisional plan, and
//! bad shards are refused before anything runs.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};

use common::Tree;

/// The base fleet with its consumers (tests/common) plus `extra` single-region keys in `dev`.
fn fleet(extra: usize) -> Tree {
    (0..extra).fold(Tree::new().with_consumers(), |tree, i| {
        tree.file(
            &format!("live/dev/us-east-1/k{i}/node.yaml"),
            "key_users: [arn:aws:iam::222222222222:role/app]\n",
        )
    })
}

/// An account of unrelated nodes, added to a tree that already has its own.
fn with_unrelated(tree: Tree, count: usize) -> Tree {
    (0..count).fold(
        tree.file(
            "live/ops/account.yaml",
            "account_id: \"333333333333\"\nenvironment: ops\nrole_arn: arn:aws:iam::333333333333:role/orch-deployer\nregions: [eu-west-1]\ndefaults:\n  key_administrators: [arn:aws:iam::333333333333:role/admin]\n",
        ),
        |tree, i| {
            tree.file(
                &format!("live/ops/eu-west-1/n{i}/node.yaml"),
                "key_users: [arn:aws:iam::333333333333:role/app]\n",
            )
        },
    )
}

struct Run {
    code: i32,
    stderr: String,
    stdout: String,
    /// (address, command) of every terraform call the fake recorded.
    calls: Vec<(String, String)>,
    report: serde_json::Value,
}

impl Run {
    fn planned(&self) -> BTreeSet<String> {
        self.calls
            .iter()
            .filter(|(_, c)| c == "plan")
            .map(|(a, _)| a.clone())
            .collect()
    }

    fn touched(&self) -> BTreeSet<String> {
        self.calls.iter().map(|(a, _)| a.clone()).collect()
    }

    fn row(&self, address: &str) -> &serde_json::Value {
        self.report["nodes"]
            .as_array()
            .expect("the report has nodes")
            .iter()
            .find(|n| n["address"] == address)
            .unwrap_or_else(|| panic!("{address} is not in the report: {}", self.report))
    }
}

fn orch(tree: &Tree, args: &[&str]) -> Run {
    let log = tree.path("fake.log");
    let _ = std::fs::remove_file(&log);
    let report = tree.path("report.json");
    let _ = std::fs::remove_file(&report);
    let out = Command::new(env!("CARGO_BIN_EXE_orch"))
        .arg("--live")
        .arg(tree.path("live"))
        .args(args)
        .current_dir(tree.root())
        .env(
            "ORCH_TERRAFORM",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fake/terraform"),
        )
        .env("FAKE_TF_LOG", &log)
        .env_remove("ORCH_PROFILE")
        .env_remove("ORCH_LIVE")
        .stdin(Stdio::null())
        .output()
        .expect("run orch");
    let calls = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let parts: Vec<&str> = l.split(' ').collect();
            (parts[2].to_string(), parts[3].to_string())
        })
        .collect();
    let run = Run {
        code: out.status.code().expect("orch exited"),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        calls,
        report: std::fs::read_to_string(&report)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(serde_json::Value::Null),
    };
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    run
}

/// `orch plan --all --shard SHARD --report report.json`.
fn plan_shard(tree: &Tree, shard: &str) -> Run {
    orch(
        tree,
        &["plan", "--all", "--shard", shard, "--report", "report.json"],
    )
}

/// Plans shard I of N for every I; the planned addresses of each shard.
fn plan_shards(tree: &Tree, count: u32) -> Vec<BTreeSet<String>> {
    (1..=count)
        .map(|i| {
            let shard = format!("{i}/{count}");
            let run = plan_shard(tree, &shard);
            assert_eq!(run.code, 0, "shard {shard}:\n{}", run.stderr);
            let reported: BTreeSet<String> = run.report["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n["address"].as_str().unwrap().to_string())
                .collect();
            assert_eq!(reported, run.planned(), "shard {shard}: report vs plans");
            assert_eq!(
                run.touched(),
                run.planned(),
                "shard {shard}: terraform ran on a node it does not plan"
            );
            run.planned()
        })
        .collect()
}

fn all_addresses(tree: &Tree) -> BTreeSet<String> {
    let out = tree.run(&["graph", "--format", "json"]);
    out.assert_success();
    let graph: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    graph["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["address"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_shards_cover_every_node_exactly_once() {
    let tree = fleet(20);
    let all = all_addresses(&tree);
    assert_eq!(all.len(), 26);
    for count in [1, 3] {
        let shards = plan_shards(&tree, count);
        let mut seen = BTreeMap::new();
        for (i, shard) in shards.iter().enumerate() {
            assert!(!shard.is_empty(), "shard {}/{count} is empty", i + 1);
            for address in shard {
                if let Some(other) = seen.insert(address.clone(), i + 1) {
                    panic!("{address} is in shards {other} and {} of {count}", i + 1);
                }
            }
        }
        let covered: BTreeSet<String> = seen.into_keys().collect();
        assert_eq!(covered, all, "the {count} shards do not cover the fleet");
    }
}

#[test]
fn a_node_stays_in_its_shard_when_unrelated_nodes_are_added() {
    let tree = fleet(12);
    let before = plan_shards(&tree, 3);
    let tree = with_unrelated(tree, 12);
    let after = plan_shards(&tree, 3);
    for (i, (was, is)) in before.iter().zip(&after).enumerate() {
        let kept: BTreeSet<String> = is
            .iter()
            .filter(|a| !a.starts_with("ops/"))
            .cloned()
            .collect();
        assert_eq!(&kept, was, "shard {} of 3 changed", i + 1);
    }
    let added: usize = after
        .iter()
        .map(|s| s.iter().filter(|a| a.starts_with("ops/")).count())
        .sum();
    assert_eq!(added, 12);
}

#[test]
fn a_shard_narrows_the_other_filters_and_comes_after_with_deps() {
    let tree = fleet(10);
    // --with-deps adds prod/us-east-1/data to the grant before the split, so the split sees both
    // and each lands in exactly one shard.
    let mut union = BTreeSet::new();
    for i in 1..=2 {
        let shard = format!("{i}/2");
        let run = orch(
            &tree,
            &[
                "plan",
                "prod/us-east-1/grant",
                "--with-deps",
                "--shard",
                &shard,
            ],
        );
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert!(
            run.stderr.contains(&format!("shard {shard}: ")),
            "{}",
            run.stderr
        );
        assert!(run.stderr.contains("of 2 selected nodes"), "{}", run.stderr);
        let planned = run.planned();
        assert!(union.is_disjoint(&planned));
        union.extend(planned);
    }
    let expected: BTreeSet<String> = ["prod/us-east-1/data", "prod/us-east-1/grant"]
        .map(String::from)
        .into();
    assert_eq!(union, expected);
}

#[test]
fn a_dependency_in_another_shard_gives_recorded_outputs_or_a_provisional_plan() {
    let tree = fleet(0);
    let key = "prod/us-east-1/data";
    let grant = "prod/us-east-1/grant";
    // The first shard count that puts the key and its grant in different shards.
    let (count, grant_shard) = (2..=16)
        .find_map(|n| {
            let shards = plan_shards(&tree, n);
            let of = |a: &str| shards.iter().position(|s| s.contains(a)).unwrap() + 1;
            (of(key) != of(grant)).then(|| (n, of(grant)))
        })
        .expect("some shard count splits the key from its grant");
    let shard = format!("{grant_shard}/{count}");
    let run = plan_shard(&tree, &shard);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.planned().contains(key));
    assert_eq!(
        run.row(grant)["provisional"],
        true,
        "no outputs recorded for its key"
    );
    assert!(
        run.stderr.contains(" depend on nodes of other shards")
            && !run.stderr.contains("; 0 depend"),
        "{}",
        run.stderr
    );
    // Once the key is applied (here by an unsharded apply on this machine), its outputs are in
    // .orch/outputs and the grant's shard plans with them.
    let apply = orch(&tree, &["apply", key, "--auto-approve"]);
    assert_eq!(apply.code, 0, "{}", apply.stderr);
    let run = plan_shard(&tree, &shard);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.row(grant)["provisional"], false);
    // A provisional node is never applied: the sharded apply of a fresh tree refuses the grant.
    let fresh = fleet(0);
    let run = orch(
        &fresh,
        &[
            "apply",
            "--all",
            "--shard",
            &shard,
            "--auto-approve",
            "--report",
            "report.json",
        ],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.row(grant)["status"], "failed");
    assert!(run.stderr.contains("provisional plan is never applied"));
}

#[test]
fn an_empty_shard_runs_nothing_and_succeeds() {
    // Three nodes in 256 shards: most shards are empty, which a CI matrix may well make.
    let tree = Tree::new();
    let (shard, run) = (1..=256)
        .map(|i| format!("{i}/256"))
        .map(|shard| {
            let run = plan_shard(&tree, &shard);
            (shard, run)
        })
        .find(|(_, run)| run.calls.is_empty())
        .expect("some shard of 256 is empty");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr
            .contains(&format!("shard {shard}: 0 of 3 selected nodes")),
        "{}",
        run.stderr
    );
    assert_eq!(run.report["nodes"], serde_json::json!([]));
}

#[test]
fn bad_shards_are_refused_before_anything_runs() {
    let tree = Tree::new();
    for (shard, says) in [
        (
            "0/3",
            "there is no shard 0 of 3; shards are numbered 1 to 3",
        ),
        ("4/3", "there is no shard 4 of 3"),
        ("1/0", "the number of shards must be at least 1"),
        ("a/b", "`a/b` is not a shard: write I/N"),
        ("1/3/2", "`1/3/2` is not a shard"),
        ("1/1000000", "1000000 shards; the limit is 256"),
        ("1/18446744073709551616000", "the limit is 256"),
        ("", "is not a shard"),
    ] {
        for command in ["plan", "apply", "render"] {
            let run = orch(&tree, &[command, "--all", "--shard", shard]);
            assert_eq!(run.code, 1, "{command} --shard {shard}:\n{}", run.stderr);
            assert!(
                run.stderr.contains(says) && run.stderr.contains("--shard <I/N>"),
                "{command} --shard {shard}: {}",
                run.stderr
            );
            assert!(run.calls.is_empty());
            assert!(!tree.path(".orch").exists());
        }
    }
    for (shards, says) in [
        ("0", "at least 1"),
        ("257", "the limit is 256"),
        ("x", "whole number"),
    ] {
        let run = orch(
            &tree,
            &["graph", "--format", "github-matrix", "--shards", shards],
        );
        assert_eq!(run.code, 1, "{}", run.stderr);
        assert!(run.stderr.contains(says), "{}", run.stderr);
    }
    let run = orch(&tree, &["graph", "--shards", "3"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains("--shards sets the shards of `--format github-matrix`"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty());
}

#[test]
fn the_github_matrix_lists_every_shard() {
    let tree = fleet(0);
    let run = orch(
        &tree,
        &["graph", "--format", "github-matrix", "--shards", "3"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout,
        "{\"include\":[{\"shard\":\"1/3\"},{\"shard\":\"2/3\"},{\"shard\":\"3/3\"}]}\n"
    );
    // Default: one shard per 50 nodes per parallel slot of a runner (orch.yaml `parallelism`,
    // else 2): 4 nodes need one, 120 nodes at parallelism 1 need three.
    let run = orch(&tree, &["graph", "--format", "github-matrix"]);
    assert_eq!(run.stdout, "{\"include\":[{\"shard\":\"1/1\"}]}\n");
    let big = fleet(116).file(
        "live/orch.yaml",
        "parallelism: 1\ndefaults:\n  deletion_window_days: 30\n  tags: {ManagedBy: orch}\n",
    );
    let run = orch(&big, &["graph", "--format", "github-matrix"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let matrix: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let shards: Vec<&str> = matrix["include"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["shard"].as_str().unwrap())
        .collect();
    assert_eq!(shards, ["1/3", "2/3", "3/3"]);
}
