//! The S3 backend end to end: real terraform and the hashicorp/aws provider against the
//! emulator's S3. `orch backend bootstrap` creates one bucket per account (only when asked),
//! `apply` keeps every node's state in its account's bucket and none under `.orch/state`, a
//! fresh copy of live/ with no `.orch/` re-plans with no changes and no provisional node (the
//! dependent reads its key's ARN from remote state), split over two shards that cover every
//! node once. A state lock held by another run fails the node with the holder named and is left
//! alone; two applies of one node at once end with one applied, the other waiting or failing
//! cleanly, and nothing lost.
//!
//! `orch rollout --shard` is checked with the fake terraform (tests/fake/terraform): the shards
//! cover every node once, each going through the waves in order.
//!
//! Three nodes in two accounts keep it affordable: each plan of a node costs about 6.5 CPU-s.
//! Needs terraform, TF_CLI_CONFIG_FILE and the project venv (`scripts/just test` sets them up).

mod common;
#[path = "e2e/emulator.rs"]
mod emulator;
#[path = "e2e/s3.rs"]
mod s3;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;

use emulator::{command, finish, orch, readback, write, Sandbox};
use serde_json::Value;

const DEV: &str = "222222222222";
const OPS: &str = "333333333333";

fn fleet(root: &Path) {
    write(
        root,
        "live/orch.yaml",
        &s3::orch_yaml("tfstate-{account_id}", "  lock_timeout: 3s\n"),
    );
    dev(root);
    write(root, "live/ops/account.yaml", &s3::account_yaml(OPS));
    write(
        root,
        "live/ops/us-east-1/k2/node.yaml",
        "description: ops key\n",
    );
}

/// Account dev: the key k1 and its grant g1.
fn dev(root: &Path) {
    write(root, "live/dev/account.yaml", &s3::account_yaml(DEV));
    write(
        root,
        "live/dev/us-east-1/k1/node.yaml",
        "description: dev key\n",
    );
    write(
        root,
        "live/dev/us-east-1/g1/node.yaml",
        &format!("kind: grant\nkey: dev/us-east-1/k1\ngrantee: arn:aws:iam::{DEV}:role/app\noperations: [Decrypt]\n"),
    );
}

fn state_key(address: &str) -> String {
    format!("orch/e2e/{address}/terraform.tfstate")
}

#[test]
fn state_in_s3_from_bootstrap_to_a_fresh_checkout_shards_and_locks() {
    let sandbox = Sandbox::start();
    let endpoint = &sandbox.emulator.endpoint;
    let venv = &sandbox.venv;
    let root = &sandbox.tmp.path().join("a");
    fleet(root);
    let bucket = |account: &str| s3::bucket(venv, endpoint, account, &format!("tfstate-{account}"));

    // Without a terminal, bootstrap lists what it would create and creates nothing.
    let run = orch(root, endpoint, &["backend", "bootstrap"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    for says in [
        "tfstate-222222222222 (account dev, through arn:aws:iam::222222222222:role/orch-deployer): missing, to create",
        "tfstate-333333333333 (account ops, through arn:aws:iam::333333333333:role/orch-deployer): missing, to create",
        "versioning on, default encryption SSE-S3 (AES256), all public access blocked",
        "pass --auto-approve",
    ] {
        assert!(run.stderr.contains(says), "lacks {says:?}:\n{}", run.stderr);
    }
    assert_eq!(bucket(DEV)["exists"], false);

    let run = orch(root, endpoint, &["backend", "bootstrap", "--auto-approve"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("2 bucket(s) created"), "{}", run.stderr);
    for account in [DEV, OPS] {
        let b = bucket(account);
        assert_eq!(b["versioning"], "Enabled", "{b}");
        assert_eq!(b["encryption"], serde_json::json!(["AES256"]), "{b}");
        let block = &b["public_access_block"];
        for field in [
            "BlockPublicAcls",
            "BlockPublicPolicy",
            "IgnorePublicAcls",
            "RestrictPublicBuckets",
        ] {
            assert_eq!(block[field], true, "{field}: {b}");
        }
        // The endpoint is plain http: a TLS-only policy would lock orch out of its own bucket.
        assert_eq!(b["policy"], Value::Null, "{b}");
    }
    let again = orch(root, endpoint, &["backend", "bootstrap"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(
        again
            .stderr
            .contains("every state bucket exists; nothing to create"),
        "{}",
        again.stderr
    );

    let run = orch(root, endpoint, &["apply", "--all", "--auto-approve"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("state in S3: 2 bucket(s) checked"),
        "{}",
        run.stderr
    );
    let dev = bucket(DEV);
    let objects = dev["objects"].as_object().unwrap();
    let mut keys: Vec<&String> = objects.keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            &state_key("dev/us-east-1/g1"),
            &state_key("dev/us-east-1/k1")
        ],
        "no lock left behind: {dev}"
    );
    let key_arn = objects[&state_key("dev/us-east-1/k1")]["outputs"]["key_arn"]
        .as_str()
        .unwrap_or_else(|| panic!("{dev}"))
        .to_string();
    assert!(
        key_arn.starts_with(&format!("arn:aws:kms:us-east-1:{DEV}:key/")),
        "{key_arn}"
    );
    assert_eq!(
        objects[&state_key("dev/us-east-1/g1")]["resources"],
        serde_json::json!(["aws_kms_grant"])
    );
    assert!(
        bucket(OPS)["objects"][&state_key("ops/us-east-1/k2")]["outputs"]["key_arn"].is_string()
    );
    // Local state would be under .orch/state (terraform's own .terraform/terraform.tfstate is
    // the backend's configuration, and the bootstrap module keeps its own local state).
    assert_eq!(
        s3::files_under(&root.join(".orch/state"))
            .into_iter()
            .filter(|p| p.ends_with("terraform.tfstate"))
            .collect::<Vec<_>>(),
        Vec::<std::path::PathBuf>::new()
    );

    // A fresh checkout: live/ alone, no .orch/. Two shards cover the fleet once, with real values.
    let fresh = &sandbox.tmp.path().join("b");
    copy_dir(&root.join("live"), &fresh.join("live"));
    let mut seen = BTreeMap::new();
    for shard in ["1/2", "2/2"] {
        let run = orch(
            fresh,
            endpoint,
            &["plan", "--all", "--shard", shard, "--detailed-exitcode"],
        );
        assert_eq!(
            run.code, 0,
            "shard {shard} has changes or failed:\n{}",
            run.stderr
        );
        for (address, status, provisional) in run.statuses() {
            assert_eq!(
                (status.as_str(), provisional),
                ("no changes", false),
                "{address} in shard {shard}"
            );
            assert!(
                seen.insert(address.clone(), shard).is_none(),
                "{address} is in two shards"
            );
        }
    }
    assert_eq!(
        seen.keys().collect::<Vec<_>>(),
        ["dev/us-east-1/g1", "dev/us-east-1/k1", "ops/us-east-1/k2"],
    );
    // Drift reads the stacks' states in S3 from the fresh checkout too: nothing changed.
    let drift = orch(fresh, endpoint, &["drift", "--all"]);
    assert_eq!(drift.code, 0, "{}", drift.stderr);
    assert!(
        drift.statuses().iter().all(|(_, s, _)| s == "in sync"),
        "{:?}",
        drift.statuses()
    );
    let recorded =
        std::fs::read_to_string(fresh.join(".orch/outputs/dev/us-east-1/k1.json")).unwrap();
    assert!(
        recorded.contains(&key_arn),
        "the grant's key ARN came from remote state: {recorded}"
    );

    // Another run holds k2's state lock: the node fails naming it, and the lock stays.
    let holder: Value = serde_json::from_str(&s3::s3py(
        venv,
        &[
            "lock",
            endpoint,
            OPS,
            &format!("tfstate-{OPS}"),
            &state_key("ops/us-east-1/k2"),
            "ci@runner-7",
        ],
    ))
    .unwrap();
    let id = holder["ID"].as_str().unwrap();
    let run = orch(
        root,
        endpoint,
        &["apply", "ops/us-east-1/k2", "--auto-approve"],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    for says in [
        "the state lock is held by ci@runner-7 since ",
        " ago), for Apply, lock ID ",
        &format!("`terraform force-unlock {id}`"),
        "orch never unlocks a state lock it did not take",
    ] {
        assert!(run.stderr.contains(says), "lacks {says:?}:\n{}", run.stderr);
    }
    let lock = format!("{}.tflock", state_key("ops/us-east-1/k2"));
    assert!(
        bucket(OPS)["objects"].get(&lock).is_some(),
        "orch removed another run's lock"
    );
    s3::s3py(
        venv,
        &[
            "unlock",
            endpoint,
            OPS,
            &format!("tfstate-{OPS}"),
            &state_key("ops/us-east-1/k2"),
        ],
    );

    // Two checkouts apply the same change to k2 at once.
    for tree in [root, fresh] {
        write(
            tree,
            "live/ops/us-east-1/k2/node.yaml",
            "description: ops key, second edition\n",
        );
    }
    let args = ["apply", "ops/us-east-1/k2", "--auto-approve"];
    let spawn = |tree: &Path| {
        command(tree, endpoint, &args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (first, second) = (spawn(root), spawn(fresh));
    let runs = [
        finish(root, first.wait_with_output().unwrap()),
        finish(fresh, second.wait_with_output().unwrap()),
    ];
    let applied = runs.iter().filter(|r| r.code == 0).count();
    assert!(
        applied >= 1,
        "neither applied:\n{}\n{}",
        runs[0].stderr,
        runs[1].stderr
    );
    for run in runs.iter().filter(|r| r.code != 0) {
        assert!(
            run.stderr.contains("the state lock is held by")
                || run.stderr.contains("Saved plan is stale"),
            "failed, but not on the lock:\n{}",
            run.stderr
        );
    }
    let found = readback(venv, endpoint, OPS, &["us-east-1"]);
    let keys = found["kms"]["us-east-1"]["keys"].as_object().unwrap();
    assert_eq!(keys.len(), 1, "k2 exists once: {keys:?}");
    assert_eq!(
        keys.values().next().unwrap()["description"],
        "ops key, second edition"
    );
    let ops = bucket(OPS);
    assert!(
        ops["objects"].get(&lock).is_none(),
        "a lock was left: {ops}"
    );
    // k2 is the only node either checkout changed.
    let run = orch(
        fresh,
        endpoint,
        &["plan", "ops/us-east-1/k2", "--detailed-exitcode"],
    );
    assert_eq!(
        run.code, 0,
        "a plan after both applies shows changes:\n{}",
        run.stderr
    );
}

/// The stacks layout keeps one state object per stack, and a fresh checkout reads a dependency's
/// outputs from its stack's state (the output of its module block).
#[test]
fn stacks_keep_one_state_per_stack_in_s3_and_a_fresh_checkout_reads_it() {
    let sandbox = Sandbox::start();
    let endpoint = &sandbox.emulator.endpoint;
    let root = &sandbox.tmp.path().join("a");
    write(
        root,
        "live/orch.yaml",
        &format!(
            "layout: stacks\n{}",
            s3::orch_yaml("tfstate-{account_id}", "")
        ),
    );
    dev(root);
    for args in [
        &["backend", "bootstrap", "--auto-approve"][..],
        &["apply", "--all", "--auto-approve"],
    ] {
        let run = orch(root, endpoint, args);
        assert_eq!(run.code, 0, "{args:?}: {}", run.stderr);
    }
    let dev = s3::bucket(&sandbox.venv, endpoint, DEV, &format!("tfstate-{DEV}"));
    let objects = dev["objects"].as_object().unwrap();
    let mut keys: Vec<&String> = objects.keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            &state_key("_stacks/dev/us-east-1/consumers"),
            &state_key("_stacks/dev/us-east-1/keys")
        ],
        "{dev}"
    );

    let fresh = &sandbox.tmp.path().join("b");
    copy_dir(&root.join("live"), &fresh.join("live"));
    let run = orch(fresh, endpoint, &["plan", "--all", "--detailed-exitcode"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    for (address, status, provisional) in run.statuses() {
        assert_eq!(
            (status.as_str(), provisional),
            ("no changes", false),
            "{address}"
        );
    }
    // Drift reads the stacks' states in S3 from the fresh checkout too: nothing changed.
    let drift = orch(fresh, endpoint, &["drift", "--all"]);
    assert_eq!(drift.code, 0, "{}", drift.stderr);
    assert!(
        drift.statuses().iter().all(|(_, s, _)| s == "in sync"),
        "{:?}",
        drift.statuses()
    );
    let recorded =
        std::fs::read_to_string(fresh.join(".orch/outputs/dev/us-east-1/k1.json")).unwrap();
    assert!(
        recorded.contains(&format!("\"arn:aws:kms:us-east-1:{DEV}:key/")),
        "the grant's key ARN came from the keys stack's remote state: {recorded}"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// `rollout --shard I/N` over N = 1..3: each shard rolls out its own part of every wave, in the
/// waves' order, and the shards together cover every node exactly once.
#[test]
fn rollout_shards_cover_every_node_once_wave_by_wave() {
    let tree = common::Tree::new()
        .file(
            "live/orch.yaml",
            "defaults:\n  deletion_window_days: 30\n  tags: {ManagedBy: orch}\n\
             waves:\n  - {name: canary, match: [\"dev/**\"]}\n  - {name: rest, match: [\"**\"]}\n",
        )
        .file(
            "live/dev/us-east-1/b/node.yaml",
            "description: b\nkey_users: [arn:aws:iam::222222222222:role/app]\n",
        )
        .file(
            "live/dev/us-east-1/c/node.yaml",
            "description: c\nkey_users: [arn:aws:iam::222222222222:role/app]\n",
        )
        .file("live/prod/us-east-1/d/node.yaml", "description: d\n");
    let fake = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fake/terraform");
    let all = [
        ("dev/us-east-1/app", "canary"),
        ("dev/us-east-1/b", "canary"),
        ("dev/us-east-1/c", "canary"),
        ("prod/eu-west-1/data", "rest"),
        ("prod/us-east-1/d", "rest"),
        ("prod/us-east-1/data", "rest"),
    ];
    for count in 1..=3 {
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        for index in 1..=count {
            let shard = format!("{index}/{count}");
            let report = tree.path(format!("r-{index}-{count}.json").as_str());
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_orch"))
                .arg("--live")
                .arg(tree.path("live"))
                .args([
                    "--no-color",
                    "rollout",
                    "--auto-approve",
                    "--shard",
                    &shard,
                    "--report",
                ])
                .arg(&report)
                .current_dir(tree.root())
                .env("ORCH_TERRAFORM", &fake)
                .env("FAKE_TF_STATE", tree.path("fake-state"))
                .env("FAKE_TF_REMEMBER", "1")
                .env_remove("ORCH_PROFILE")
                .env_remove("ORCH_LIVE")
                .stdin(Stdio::null())
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(0), "shard {shard}:\n{stderr}");
            assert!(stderr.contains(&format!("shard {shard}: ")), "{stderr}");
            let report: Value =
                serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
            let waves = report["waves"].as_array().unwrap();
            let names: Vec<&str> = waves.iter().map(|w| w["name"].as_str().unwrap()).collect();
            assert_eq!(names, ["canary", "rest"], "shard {shard}: waves in order");
            for wave in waves {
                for node in wave["nodes"].as_array().unwrap() {
                    let address = node["address"].as_str().unwrap().to_string();
                    let previous =
                        seen.insert(address.clone(), wave["name"].as_str().unwrap().into());
                    assert!(previous.is_none(), "{address} is in two shards of {count}");
                }
            }
        }
        let expected: BTreeMap<String, String> = all
            .iter()
            .map(|(a, w)| (a.to_string(), w.to_string()))
            .collect();
        assert_eq!(seen, expected, "{count} shards");
    }
}
