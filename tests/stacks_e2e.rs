//! End to end in the `stacks` layout: real terraform and the hashicorp/aws provider against the
//! local AWS emulator. Two accounts, each with a key the other reaches through a `key-access`
//! (the cycle that one stack per account would have, and that tiers break), a multi-region key
//! with a replica, a grant, a bucket, and a key whose name starts with a digit (module `_2fa`).
//! Five stacks: prod/us-east-1/{keys,consumers}, prod/eu-west-1/replicas,
//! shared/us-east-1/{keys,consumers}. A targeted apply of one node of a stack, then plan ->
//! apply -> read back through the emulator's API -> plan again shows no changes -> destroy ->
//! read back that it is gone. Every row of the report stays a node.
//!
//! Needs terraform, TF_CLI_CONFIG_FILE naming the provider mirror, and the project venv with
//! moto (ORCH_TOOLS_VENV); `scripts/just test` sets all of them up. A missing piece fails the
//! test with what to run; it is never skipped.

mod common;
#[path = "e2e/emulator.rs"]
mod emulator;

use std::path::Path;
use std::process::Command;

use emulator::{orch, readback, write, Run, Sandbox};
use serde_json::{json, Value};

/// A description with quotes, a newline and template markers: it must arrive verbatim through
/// the stack's tfvars.
const TRICKY: &str = "Encrypts \"prod\" data\nsecond: ${var.nodes} and %{ if true }x%{ endif }";

fn fleet(root: &Path) {
    write(
        root,
        "live/orch.yaml",
        "layout: stacks\nparallelism: 2\nprofiles:\n  sandbox: {endpoint: \"http://127.0.0.1:1\"}\ndefaults:\n  tags: {ManagedBy: orch}\n",
    );
    write(
        root,
        "live/prod/account.yaml",
        "account_id: \"111111111111\"\nenvironment: prod\nrole_arn: arn:aws:iam::111111111111:role/orch-deployer\n\
         regions: [us-east-1, eu-west-1]\ndefaults:\n  access:\n    \
         administer-resource: [arn:aws:iam::111111111111:role/security-admin]\n",
    );
    let description = serde_json::to_string(TRICKY).unwrap();
    write(
        root,
        "live/prod/us-east-1/data/node.yaml",
        &format!(
            "description: {description}\naliases: [prod/data]\nmulti_region: true\nreplicas: [eu-west-1]\n\
             access:\n  read-data: [arn:aws:iam::111111111111:role/app]\n"
        ),
    );
    // Its own tags: a second provider configuration in the stack.
    write(
        root,
        "live/prod/us-east-1/2fa/node.yaml",
        "description: second factor\naliases: [prod/2fa]\ndeletion_window_days: 7\ntags: {DataCategory: secret}\n",
    );
    write(
        root,
        "live/prod/us-east-1/grant/node.yaml",
        "kind: grant\nkey: prod/us-east-1/data\ngrantee: arn:aws:iam::222222222222:role/reader\n\
         operations: [Decrypt, DescribeKey]\n",
    );
    write(
        root,
        "live/prod/us-east-1/bucket/node.yaml",
        "kind: s3-bucket\nkey: prod/us-east-1/data\nbucket: orch-stacks-data\nforce_destroy: true\n",
    );
    write(
        root,
        "live/prod/us-east-1/uses-shared/node.yaml",
        "kind: key-access\nkey: shared/us-east-1/own\nroles: [arn:aws:iam::111111111111:role/app]\ncapabilities: [read-data]\n",
    );
    write(
        root,
        "live/shared/account.yaml",
        "account_id: \"222222222222\"\nenvironment: shared\nrole_arn: arn:aws:iam::222222222222:role/orch-deployer\n\
         regions: [us-east-1]\ndefaults:\n  key_administrators: [arn:aws:iam::222222222222:role/admin]\n",
    );
    write(
        root,
        "live/shared/us-east-1/own/node.yaml",
        "description: shared key\naliases: [shared/own]\ndeletion_window_days: 7\n",
    );
    write(
        root,
        "live/shared/us-east-1/reader/node.yaml",
        "kind: key-access\nkey: prod/us-east-1/data\nroles: [arn:aws:iam::222222222222:role/reader]\ncapabilities: [read-data]\n",
    );
}

const NODES: usize = 8;

fn statuses(run: &Run) -> Vec<(String, String)> {
    assert!(!run.report.is_null(), "no report:\n{}", run.stderr);
    common::report_statuses(&run.report)
}

fn node<'a>(run: &'a Run, address: &str) -> &'a Value {
    assert!(!run.report.is_null(), "no report:\n{}", run.stderr);
    common::report_row(&run.report, address)
}

fn orch_json(root: &Path, args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_orch"))
        .arg("--live")
        .arg(root.join("live"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The key with alias `alias` in a region's readback.
fn key_by_alias<'a>(kms: &'a Value, region: &str, alias: &str) -> &'a Value {
    let id = kms[region]["aliases"][alias]
        .as_str()
        .unwrap_or_else(|| panic!("no {alias} in {region}: {}", kms[region]));
    &kms[region]["keys"][id]
}

#[test]
fn a_stacks_fleet_is_planned_applied_checked_replanned_and_destroyed() {
    let sandbox = Sandbox::start();
    let (venv, endpoint, root) = sandbox.parts();
    fleet(root);
    sandbox.roles(&[
        "arn:aws:iam::222222222222:role/reader",
        "arn:aws:iam::111111111111:role/app",
    ]);

    // 1. One node of a stack: -target on its module block, the stack's other key untouched.
    let one = orch(
        root,
        endpoint,
        &["apply", "prod/us-east-1/2fa", "--auto-approve"],
    );
    assert_eq!(one.code, 0, "{}", one.stderr);
    assert_eq!(
        statuses(&one),
        [("prod/us-east-1/2fa".to_string(), "ok".to_string())]
    );
    assert_eq!(node(&one, "prod/us-east-1/2fa")["add"], 2, "key and alias");
    let log =
        std::fs::read_to_string(node(&one, "prod/us-east-1/2fa")["log"].as_str().unwrap()).unwrap();
    assert!(log.contains("-target=module._2fa"), "{log}");
    let prod = readback(venv, endpoint, "111111111111", &["us-east-1"]);
    assert_eq!(
        prod["kms"]["us-east-1"]["keys"].as_object().unwrap().len(),
        1,
        "only the targeted key exists: {}",
        prod["kms"]
    );
    assert_eq!(
        orch_json(root, &["output", "prod/us-east-1/2fa"])["key_arn"],
        key_by_alias(&prod["kms"], "us-east-1", "alias/prod/2fa")["arn"],
        "the outputs of a targeted module are recorded"
    );

    // 2. Plan everything: per-node rows and counts; dependents of unapplied keys provisional.
    let plan = orch(root, endpoint, &["plan", "--all", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{}", plan.stderr);
    assert_eq!(statuses(&plan).len(), NODES, "{:?}", statuses(&plan));
    assert_eq!(node(&plan, "prod/us-east-1/2fa")["status"], "no changes");
    assert_eq!(node(&plan, "prod/us-east-1/data")["status"], "changes");
    assert_eq!(node(&plan, "prod/us-east-1/data")["add"], 2);
    assert_eq!(node(&plan, "prod/us-east-1/bucket")["add"], 7);
    for dependent in [
        "prod/eu-west-1/data",
        "prod/us-east-1/grant",
        "prod/us-east-1/bucket",
        "shared/us-east-1/reader",
        "prod/us-east-1/uses-shared",
    ] {
        assert_eq!(node(&plan, dependent)["provisional"], true, "{dependent}");
    }

    // Every stack is rendered now, in terraform's own format.
    let fmt = Command::new("terraform")
        .args(["fmt", "-check", "-recursive", "-diff"])
        .current_dir(root.join(".orch/work/_stacks"))
        .output()
        .unwrap();
    assert!(
        fmt.status.success(),
        "the stack root modules are not in terraform's format:\n{}",
        String::from_utf8_lossy(&fmt.stdout)
    );

    // 3. Apply everything.
    let apply = orch(root, endpoint, &["apply", "--all", "--auto-approve"]);
    assert_eq!(apply.code, 0, "{}", apply.stderr);
    assert!(
        statuses(&apply).iter().all(|(_, s)| s == "ok"),
        "{:?}",
        statuses(&apply)
    );
    assert_eq!(statuses(&apply).len(), NODES);

    // 4. Read back, as declared.
    let prod = readback(venv, endpoint, "111111111111", &["us-east-1", "eu-west-1"]);
    let data = key_by_alias(&prod["kms"], "us-east-1", "alias/prod/data");
    assert_eq!(
        data["description"], TRICKY,
        "the description arrives verbatim"
    );
    assert_eq!(data["multi_region_type"], "PRIMARY");
    assert_eq!(data["tags"]["ManagedBy"], "orch");
    assert_eq!(data["tags"]["Environment"], "prod");
    assert_eq!(data["tags"].get("DataCategory"), None);
    assert_eq!(
        data["policy"],
        orch_json(root, &["policy", "prod/us-east-1/data"])
    );
    let outputs = orch_json(root, &["output", "prod/us-east-1/data"]);
    assert_eq!(outputs["key_arn"], data["arn"], "outputs recorded per node");
    let two_fa = key_by_alias(&prod["kms"], "us-east-1", "alias/prod/2fa");
    assert_eq!(
        two_fa["tags"]["DataCategory"], "secret",
        "its own provider's tags"
    );
    let replica = key_by_alias(&prod["kms"], "eu-west-1", "alias/prod/data");
    assert_eq!(replica["multi_region_type"], "REPLICA");
    assert_eq!(
        replica["policy"],
        orch_json(root, &["policy", "prod/eu-west-1/data"])
    );
    let grants = data["grants"].as_array().unwrap();
    assert_eq!(grants.len(), 1, "{grants:?}");
    assert_eq!(
        grants[0]["grantee"],
        "arn:aws:iam::222222222222:role/reader"
    );
    let rule = &prod["s3"]["orch-stacks-data"]["encryption"][0];
    assert_eq!(
        rule["ApplyServerSideEncryptionByDefault"]["KMSMasterKeyID"],
        data["arn"]
    );
    let shared = readback(venv, endpoint, "222222222222", &["us-east-1"]);
    let own = key_by_alias(&shared["kms"], "us-east-1", "alias/shared/own");
    // Both ways across the accounts: each key admits the other account, each access names the
    // other account's key.
    let admits = |key: &Value, account: &str| {
        key["policy"]["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["Principal"]["AWS"] == format!("arn:aws:iam::{account}:root"))
    };
    assert!(admits(data, "222222222222"), "{}", data["policy"]);
    assert!(admits(own, "111111111111"), "{}", own["policy"]);
    let reader = &shared["iam"]["orch-key-access-reader"];
    assert_eq!(reader["roles"], json!(["reader"]));
    let resources = reader["document"]["Statement"][0]["Resource"].to_string();
    assert!(
        resources.contains(data["arn"].as_str().unwrap()),
        "{resources}"
    );
    let uses = &prod["iam"]["orch-key-access-uses-shared"];
    assert_eq!(uses["roles"], json!(["app"]));
    let resources = uses["document"]["Statement"][0]["Resource"].to_string();
    assert!(
        resources.contains(own["arn"].as_str().unwrap()),
        "{resources}"
    );

    // 5. Plan again: nothing to change anywhere.
    let again = orch(root, endpoint, &["plan", "--all", "--detailed-exitcode"]);
    assert_eq!(
        again.code, 0,
        "a second plan shows changes:\n{}",
        again.stderr
    );
    assert!(
        statuses(&again).iter().all(|(_, s)| s == "no changes"),
        "{:?}",
        statuses(&again)
    );

    // 5b. Drift, read per module block of each stack: two keys of one stack with rotation off
    // (one row) and a principal added by hand, every other node in sync (no false drift on a
    // fleet just applied); the plan's access review names the principal that loses access.
    let data_id = prod["kms"]["us-east-1"]["aliases"]["alias/prod/data"]
        .as_str()
        .unwrap();
    let two_fa_id = prod["kms"]["us-east-1"]["aliases"]["alias/prod/2fa"]
        .as_str()
        .unwrap();
    let intruder = "arn:aws:iam::999999999999:role/intruder";
    let changes = json!([
        {"account": "111111111111", "region": "us-east-1", "op": "disable_rotation", "key": data_id},
        {"account": "111111111111", "region": "us-east-1", "op": "disable_rotation", "key": two_fa_id},
        {"account": "111111111111", "region": "us-east-1", "op": "add_principal", "key": data_id,
         "principal": intruder, "actions": ["kms:Decrypt"]},
    ]);
    let tampered = Command::new(venv.join("bin/python"))
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/tamper.py"))
        .arg(endpoint)
        .arg(changes.to_string())
        .status()
        .unwrap();
    assert!(tampered.success(), "tests/e2e/tamper.py failed");
    let drift = orch(root, endpoint, &["drift", "--all"]);
    assert_eq!(drift.code, 2, "{}", drift.stderr);
    for line in [
        "~ rotation disabled on 2 nodes in prod/us-east-1/*",
        &format!("~ policy: gained by {intruder}: kms:Decrypt on prod/us-east-1/data"),
    ] {
        assert!(
            drift.stderr.contains(line),
            "drift does not say `{line}`:\n{}",
            drift.stderr
        );
    }
    let tampered = ["prod/us-east-1/data", "prod/us-east-1/2fa"];
    for (address, status) in statuses(&drift) {
        let expected = if tampered.contains(&address.as_str()) {
            "drifted"
        } else {
            "in sync"
        };
        assert_eq!(status, expected, "{address}: {}", drift.stderr);
    }
    // Only the tampered key's plan: the others were planned with no changes above.
    let plan = orch(
        root,
        endpoint,
        &["plan", "prod/us-east-1/data", "--detailed-exitcode"],
    );
    assert_eq!(plan.code, 2, "{}", plan.stderr);
    let loss = format!("- loses {intruder}: kms:Decrypt on prod/us-east-1/data");
    assert!(plan.stderr.contains(&loss), "{}", plan.stderr);
    assert_eq!(
        node(&plan, "prod/us-east-1/data")["access"][0]["lost"][0]["principal"],
        intruder
    );

    // 6. Destroy, dependents' stacks first; read back that it is gone.
    let destroy = orch(root, endpoint, &["destroy", "--all", "--auto-approve"]);
    assert_eq!(destroy.code, 0, "{}", destroy.stderr);
    assert!(
        statuses(&destroy).iter().all(|(_, s)| s == "ok"),
        "{:?}",
        statuses(&destroy)
    );
    let prod = readback(venv, endpoint, "111111111111", &["us-east-1", "eu-west-1"]);
    for region in ["us-east-1", "eu-west-1"] {
        let keys = prod["kms"][region]["keys"].as_object().unwrap();
        assert!(
            keys.values().all(|k| k["state"] == "PendingDeletion"),
            "{region}: {keys:?}"
        );
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
    assert!(
        prod["iam"].as_object().unwrap().is_empty(),
        "an IAM policy remains"
    );
    let shared = readback(venv, endpoint, "222222222222", &["us-east-1"]);
    assert!(shared["iam"].as_object().unwrap().is_empty());
    assert!(!root.join(".orch/outputs/prod/us-east-1/data.json").exists());
}
