//! End to end: real terraform and the real hashicorp/aws provider against a local AWS emulator
//! (moto's server, with the ReplicateKey fix of scripts/emulator.py), on a fleet of three
//! accounts reached through assume_role, two regions, a multi-region key with its replica, and
//! one consumer of each kind. plan -> apply -> read everything back through the emulator's API -> plan again
//! shows no changes -> destroy -> read back that it is gone.
//!
//! Needs terraform, TF_CLI_CONFIG_FILE naming the provider mirror, and the project venv with
//! moto (ORCH_TOOLS_VENV); `scripts/just test` sets all of them up. A missing piece fails the
//! test with what to run; it is never skipped.
//!
//! No key here sets a custom `rotation.period_days`: moto 5.2 does not keep a key's rotation
//! period, so such a key would show a change on every plan and the no-changes check would fail
//! for the emulator's sake, not orch's.

mod common;
#[path = "e2e/emulator.rs"]
mod emulator;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use emulator::{command, finish, orch, processes_in, readback, write, Sandbox};
use serde_json::Value;

/// A description with quotes, a newline and template markers: it must arrive verbatim.
const TRICKY: &str =
    "Encrypts \"prod\" data\nsecond line: ${var.injected} and %{ if true }x%{ endif }";

fn fleet(root: &Path) {
    write(root, "live/orch.yaml", "parallelism: 3\nprofiles:\n  sandbox: {endpoint: \"http://127.0.0.1:1\"}\ndefaults:\n  tags: {ManagedBy: orch}\n");
    write(
        root,
        "live/prod/account.yaml",
        "account_id: \"111111111111\"\nenvironment: prod\nrole_arn: arn:aws:iam::111111111111:role/orch-deployer\n\
         regions: [us-east-1, eu-west-1]\ndefaults:\n  tags: {Environment: prod}\n  access:\n    \
         administer-resource: [arn:aws:iam::111111111111:role/security-admin]\n",
    );
    let description = serde_json::to_string(TRICKY).unwrap();
    write(
        root,
        "live/prod/us-east-1/data/node.yaml",
        &format!(
            "description: {description}\naliases: [prod/data]\nmulti_region: true\nreplicas: \"*\"\n\
             access:\n  read-data: [arn:aws:iam::111111111111:role/app]\n  write-data: [arn:aws:iam::111111111111:role/app]\n\
             services: [{{service: s3, capabilities: [read-data, write-data]}}]\n"
        ),
    );
    write(
        root,
        "live/prod/us-east-1/grant/node.yaml",
        "kind: grant\nkey: prod/us-east-1/data\ngrantee: arn:aws:iam::222222222222:role/reader\n\
         operations: [Decrypt, DescribeKey]\nencryption_context_equals: {purpose: e2e}\n",
    );
    write(
        root,
        "live/prod/us-east-1/bucket/node.yaml",
        "kind: s3-bucket\nkey: prod/us-east-1/data\nbucket: orch-e2e-data\nforce_destroy: true\n",
    );
    write(
        root,
        "live/shared/account.yaml",
        "account_id: \"222222222222\"\nenvironment: shared\nrole_arn: arn:aws:iam::222222222222:role/orch-deployer\n\
         regions: [us-east-1]\ndefaults:\n  key_administrators: [arn:aws:iam::222222222222:role/admin]\n",
    );
    write(
        root,
        "live/shared/us-east-1/reader/node.yaml",
        "kind: key-access\nkey: prod/us-east-1/data\nroles: [arn:aws:iam::222222222222:role/reader]\ncapabilities: [read-data]\n",
    );
    write(
        root,
        "live/shared/us-east-1/own/node.yaml",
        "description: shared key\naliases: [shared/own]\ndeletion_window_days: 7\nkey_users: [arn:aws:iam::222222222222:role/app]\n",
    );
}

fn policy_of(root: &Path, address: &str) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_orch"))
        .arg("--live")
        .arg(root.join("live"))
        .args(["policy", address])
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The one key of a region (a fresh emulator per test, so there is exactly one live key).
fn only_key<'a>(kms: &'a Value, region: &str) -> (&'a String, &'a Value) {
    let keys = kms[region]["keys"].as_object().unwrap();
    assert_eq!(keys.len(), 1, "{region}: {keys:?}");
    keys.iter().next().unwrap()
}

#[test]
fn a_fleet_is_planned_applied_checked_replanned_and_destroyed() {
    let sandbox = Sandbox::start();
    let (venv, endpoint, root) = sandbox.parts();
    fleet(root);
    // A third account with one key, for the drift below (rotation turned off on two keys).
    write(
        root,
        "live/tools/account.yaml",
        "account_id: \"333333333333\"\nenvironment: tools\nrole_arn: arn:aws:iam::333333333333:role/orch-deployer\nregions: [us-east-1]\n",
    );
    write(
        root,
        "live/tools/us-east-1/scratch/node.yaml",
        "description: scratch key\nkey_administrators: [arn:aws:iam::333333333333:role/admin]\n",
    );
    sandbox.roles(&["arn:aws:iam::222222222222:role/reader"]);

    // 1. Plan: everything to create; dependents plan on placeholders (provisional).
    let plan = orch(root, endpoint, &["plan", "--all", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{}", plan.stderr);
    let rows = plan.statuses();
    assert_eq!(rows.len(), 7, "{rows:?}");
    for (address, status, provisional) in &rows {
        assert_eq!(status, "changes", "{address}");
        let dependent = !matches!(
            address.as_str(),
            "prod/us-east-1/data" | "shared/us-east-1/own" | "tools/us-east-1/scratch"
        );
        assert_eq!(*provisional, dependent, "{address} provisional");
    }

    // 2. Apply.
    let apply = orch(root, endpoint, &["apply", "--all", "--auto-approve"]);
    assert_eq!(apply.code, 0, "{}", apply.stderr);
    assert!(
        apply.statuses().iter().all(|(_, s, _)| s == "ok"),
        "{:?}",
        apply.statuses()
    );

    // 3. Read back what exists, as declared.
    let prod = readback(venv, endpoint, "111111111111", &["us-east-1", "eu-west-1"]);
    let (key_id, key) = only_key(&prod["kms"], "us-east-1");
    assert_eq!(
        key["description"], TRICKY,
        "the description arrives verbatim"
    );
    assert_eq!(key["multi_region_type"], "PRIMARY");
    assert_eq!(key["state"], "Enabled");
    assert_eq!(key["tags"]["ManagedBy"], "orch");
    assert_eq!(key["tags"]["Environment"], "prod");
    assert_eq!(key["policy"], policy_of(root, "prod/us-east-1/data"));
    assert_eq!(
        prod["kms"]["us-east-1"]["aliases"]["alias/prod/data"],
        key_id.as_str()
    );
    let grants = key["grants"].as_array().unwrap();
    assert_eq!(grants.len(), 1, "{grants:?}");
    assert_eq!(
        grants[0]["grantee"],
        "arn:aws:iam::222222222222:role/reader"
    );
    assert_eq!(
        grants[0]["operations"],
        serde_json::json!(["Decrypt", "DescribeKey"])
    );
    // `replicas: "*"`: every other region of the account, here one.
    let (replica_id, replica) = only_key(&prod["kms"], "eu-west-1");
    assert_eq!(replica_id, key_id, "a replica shares its primary's key id");
    assert_eq!(replica["multi_region_type"], "REPLICA");
    assert_eq!(replica["description"], TRICKY);
    assert_eq!(replica["policy"], policy_of(root, "prod/eu-west-1/data"));
    assert_eq!(
        prod["kms"]["eu-west-1"]["aliases"]["alias/prod/data"],
        key_id.as_str()
    );
    let bucket = &prod["s3"]["orch-e2e-data"];
    let rule = &bucket["encryption"][0];
    assert_eq!(
        rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"],
        "aws:kms"
    );
    assert_eq!(
        rule["ApplyServerSideEncryptionByDefault"]["KMSMasterKeyID"],
        key["arn"]
    );
    assert_eq!(rule["BucketKeyEnabled"], true);
    for setting in [
        "BlockPublicAcls",
        "BlockPublicPolicy",
        "IgnorePublicAcls",
        "RestrictPublicBuckets",
    ] {
        assert_eq!(bucket["public_access_block"][setting], true, "{setting}");
    }
    let shared = readback(venv, endpoint, "222222222222", &["us-east-1"]);
    let (_, own) = only_key(&shared["kms"], "us-east-1");
    assert_eq!(own["description"], "shared key");
    let access = &shared["iam"]["orch-key-access-reader"];
    assert_eq!(access["roles"], serde_json::json!(["reader"]));
    // Every member of the key family admits the consumer, so its IAM policy names them all.
    let family: Vec<String> = ["eu-west-1", "us-east-1"]
        .iter()
        .map(|region| {
            key["arn"]
                .as_str()
                .unwrap()
                .replace(":us-east-1:", &format!(":{region}:"))
        })
        .collect();
    assert_eq!(
        access["document"]["Statement"][0]["Resource"],
        serde_json::json!(family)
    );
    assert_eq!(
        access["document"]["Statement"][0]["Action"],
        serde_json::json!(["kms:Decrypt", "kms:ReEncryptFrom"])
    );
    let widened = key["policy"]["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["Principal"]["AWS"] == "arn:aws:iam::222222222222:root");
    assert!(widened, "the key's policy admits the consumer's account");

    // 4. Plan again: nothing to change.
    let again = orch(root, endpoint, &["plan", "--all", "--detailed-exitcode"]);
    assert_eq!(
        again.code, 0,
        "a second plan shows changes:\n{}",
        again.stderr
    );
    assert!(
        again
            .statuses()
            .iter()
            .all(|(_, s, p)| s == "no changes" && !p),
        "{:?}",
        again.statuses()
    );

    // 5. Changes behind orch's back, told by `orch drift`, restored by `orch apply`.
    drift_is_told_and_restored(&sandbox, key_id);

    // 6. Destroy, and read back that it is gone (keys wait out their deletion window).
    let destroy = orch(root, endpoint, &["destroy", "--all", "--auto-approve"]);
    assert_eq!(destroy.code, 0, "{}", destroy.stderr);
    let prod = readback(venv, endpoint, "111111111111", &["us-east-1", "eu-west-1"]);
    for region in ["us-east-1", "eu-west-1"] {
        let (_, key) = only_key(&prod["kms"], region);
        assert_eq!(key["state"], "PendingDeletion", "{region}");
        assert!(
            prod["kms"][region]["aliases"]
                .as_object()
                .unwrap()
                .is_empty(),
            "{region} aliases remain"
        );
    }
    assert!(
        prod["s3"].as_object().unwrap().is_empty(),
        "the bucket remains"
    );
    // The key scheduled for deletion in step 5 and the one apply made in its place.
    let shared = readback(venv, endpoint, "222222222222", &["us-east-1"]);
    let keys = shared["kms"]["us-east-1"]["keys"].as_object().unwrap();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(
        keys.values().all(|k| k["state"] == "PendingDeletion"),
        "{keys:?}"
    );
    assert!(
        shared["iam"].as_object().unwrap().is_empty(),
        "the IAM policy remains"
    );
}

/// Changes a colleague might make in the console: a principal added to a policy, rotation off on
/// two keys, a tag and a description edited, an alias deleted, a key scheduled for deletion, a
/// replica disabled. `orch drift` names each (the repeated one once), exits 2 and changes
/// nothing; `orch apply` of the changed nodes restores the tree's word, its access review naming
/// the principal that loses access (terminal and Markdown, also in GITHUB_STEP_SUMMARY); `orch
/// drift --all` then exits 0 on every node: no false drift on any kind of node, on resources just
/// applied. `orch audit` of the live accounts finds each planted problem and nothing else (keys
/// managed cleanly: tests/audit_e2e.rs). Each run reads only the nodes its assertions need: a
/// plan costs 8 CPU-s.
fn drift_is_told_and_restored(sandbox: &Sandbox, data_key: &str) {
    let (venv, endpoint, root) = sandbox.parts();
    // The changed nodes, and prod/us-east-1/bucket as an untouched witness.
    let told = [
        "prod/us-east-1/data",
        "prod/eu-west-1/data",
        "prod/us-east-1/bucket",
        "tools/us-east-1/scratch",
        "shared/us-east-1/own",
    ];
    let own = readback(venv, endpoint, "222222222222", &["us-east-1"]);
    let own_key = only_key(&own["kms"], "us-east-1").0.clone();
    let tools = readback(venv, endpoint, "333333333333", &["us-east-1"]);
    let scratch = only_key(&tools["kms"], "us-east-1").0.clone();
    let intruder = "arn:aws:iam::999999999999:role/intruder";
    let changes = serde_json::json!([
        {"account": "111111111111", "region": "us-east-1", "op": "add_principal", "key": data_key,
         "principal": intruder, "actions": ["kms:Decrypt", "kms:ReEncryptFrom"]},
        {"account": "111111111111", "region": "us-east-1", "op": "disable_rotation", "key": data_key},
        {"account": "111111111111", "region": "us-east-1", "op": "tag", "key": data_key, "tag": "Environment", "value": "edited"},
        {"account": "111111111111", "region": "us-east-1", "op": "delete_alias", "alias": "alias/prod/data"},
        {"account": "111111111111", "region": "eu-west-1", "op": "disable", "key": data_key},
        {"account": "333333333333", "region": "us-east-1", "op": "disable_rotation", "key": scratch},
        {"account": "333333333333", "region": "us-east-1", "op": "describe", "key": scratch,
         "description": "<script>alert(1)</script> | **bold**"},
        {"account": "222222222222", "region": "us-east-1", "op": "schedule_deletion", "key": own_key},
    ]);
    let status = Command::new(venv.join("bin/python"))
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/tamper.py"))
        .arg(endpoint)
        .arg(changes.to_string())
        .status()
        .unwrap();
    assert!(status.success(), "tests/e2e/tamper.py failed");

    let md = root.join("drift.md");
    let drift = finish(
        root,
        command(root, endpoint, &[&["drift"][..], &told].concat())
            .env("GITHUB_STEP_SUMMARY", &md)
            .output()
            .unwrap(),
    );
    assert_eq!(drift.code, 2, "{}", drift.stderr);
    let said = &drift.stderr;
    for line in [
        "~ rotation disabled on 2 nodes: prod/us-east-1/data, tools/us-east-1/scratch",
        &format!("~ policy: gained by {intruder}: read-data on prod/us-east-1/data"),
        "~ tag Environment: \"prod\" -> \"edited\" on prod/us-east-1/data",
        "~ alias alias/prod/data deleted on prod/us-east-1/data",
        "~ replica key disabled on prod/eu-west-1/data",
        "~ description: \"scratch key\" -> \"<script>alert(1)</script> | **bold**\" on tools/us-east-1/scratch",
        "~ deleted or pending deletion outside orch on shared/us-east-1/own",
    ] {
        assert!(said.contains(line), "drift does not say `{line}`:\n{said}");
    }
    let statuses: std::collections::BTreeMap<String, String> = drift
        .statuses()
        .into_iter()
        .map(|(a, s, _)| (a, s))
        .collect();
    assert_eq!(statuses["shared/us-east-1/own"], "deleted");
    assert_eq!(statuses["tools/us-east-1/scratch"], "drifted");
    assert_eq!(statuses["prod/us-east-1/bucket"], "in sync");
    let markdown = std::fs::read_to_string(&md).unwrap();
    assert!(
        markdown.contains("&lt;script&gt;alert\\(1\\)&lt;/script&gt; \\| \\*\\*bold\\*\\*"),
        "{markdown}"
    );
    assert!(!markdown.contains("<script>"), "{markdown}");
    // The audit of the live accounts finds each planted problem, and nothing else.
    let audit = orch(root, endpoint, &["audit"]);
    assert_eq!(audit.code, 2, "{}", audit.stderr);
    let found: std::collections::BTreeSet<(String, String, String)> = audit.report["findings"]
        .as_array()
        .unwrap_or_else(|| panic!("no audit report:\n{}", audit.stderr))
        .iter()
        .map(|f| {
            let s = |k: &str| f[k].as_str().unwrap().to_string();
            (s("check"), s("account"), s("region"))
        })
        .collect();
    let expected: std::collections::BTreeSet<(String, String, String)> = [
        ("rotation-off", "prod", "us-east-1"),
        ("rotation-off", "tools", "us-east-1"),
        ("unknown-account", "prod", "us-east-1"),
        ("disabled-key", "prod", "eu-west-1"),
        ("pending-deletion", "shared", "us-east-1"),
    ]
    .iter()
    .map(|(c, a, r)| (c.to_string(), a.to_string(), r.to_string()))
    .collect();
    assert_eq!(found, expected, "{}", audit.stderr);
    // Drift changed nothing: the alias is still gone, the intruder still in the policy.
    let prod = readback(venv, endpoint, "111111111111", &["us-east-1"]);
    assert!(prod["kms"]["us-east-1"]["aliases"]
        .get("alias/prod/data")
        .is_none());

    let summary = root.join("step-summary.md");
    let restore = finish(
        root,
        command(
            root,
            endpoint,
            &[&["apply", "--auto-approve"][..], &told[..2], &told[3..]].concat(),
        )
        .env("GITHUB_STEP_SUMMARY", &summary)
        .output()
        .unwrap(),
    );
    assert_eq!(restore.code, 0, "{}", restore.stderr);
    let loss = format!("- loses {intruder}: read-data on prod/us-east-1/data");
    assert!(restore.stderr.contains(&loss), "{}", restore.stderr);
    let summary = std::fs::read_to_string(&summary).unwrap();
    assert!(
        summary.contains(
            "| loses | arn\\:aws\\:iam\\:\\:999999999999\\:role/intruder\\: read\\-data |"
        ),
        "{summary}"
    );
    let after = orch(root, endpoint, &["drift", "--all"]);
    assert_eq!(after.code, 0, "apply did not restore:\n{}", after.stderr);
}

#[test]
fn ctrl_c_during_a_real_apply_leaves_no_process_and_no_state_lock_behind() {
    let sandbox = Sandbox::start();
    let (emulator, root) = (&sandbox.emulator, sandbox.tmp.path());
    write(
        root,
        "live/orch.yaml",
        "profiles:\n  sandbox: {endpoint: \"http://127.0.0.1:1\"}\n",
    );
    write(
        root,
        "live/prod/account.yaml",
        "account_id: \"111111111111\"\nenvironment: prod\nrole_arn: arn:aws:iam::111111111111:role/orch-deployer\nregions: [us-east-1]\n",
    );
    for name in ["one", "two"] {
        write(
            root,
            &format!("live/prod/us-east-1/{name}/node.yaml"),
            "key_users: [arn:aws:iam::111111111111:role/app]\n",
        );
    }
    let child = Command::new(env!("CARGO_BIN_EXE_orch"))
        .arg("--live")
        .arg(root.join("live"))
        .args([
            "--profile",
            "sandbox",
            "--endpoint",
            &emulator.endpoint,
            "--no-color",
        ])
        .args(["apply", "--all", "--auto-approve", "--parallelism", "2"])
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for both saved plans: the applies start right after them, and creating a key takes
    // the provider several seconds of waiting for it to settle.
    let plans = ["one", "two"].map(|n| root.join(format!(".orch/work/prod/us-east-1/{n}/tfplan")));
    let started = Instant::now();
    while !plans.iter().all(|p| p.exists()) {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no plan within 120 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: signals the child we spawned.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        processes_in(root).is_empty(),
        "left behind: {:?}",
        processes_in(root)
    );
    for name in ["one", "two"] {
        let state = root.join(format!(".orch/state/prod/us-east-1/{name}"));
        assert!(
            !state.join(".terraform.tfstate.lock.info").exists(),
            "{name}: the state lock remains"
        );
    }
    assert!(!root.join(".orch/lock").exists(), "orch's lock remains");
    // The tree is usable at once: a new run finishes the job.
    let again = orch(
        root,
        &emulator.endpoint,
        &["apply", "--all", "--auto-approve"],
    );
    assert_eq!(again.code, 0, "{}", again.stderr);
}
