//! End to end: adopting keys a team made outside orch. `scripts/brownfield.py` builds an estate
//! through the AWS API (2 accounts x 2 regions: symmetric, RSA, ECC and HMAC keys, a
//! multi-region key with its replica, aliases, tags, rotation on and off, a disabled key, a key
//! pending deletion, policies of the console's, CreateKey's and hand-written shapes, user and
//! service grants), plus one key whose policy is the one orch writes. `orch import discover`
//! writes the tree, a second discover writes nothing, `orch import apply` adopts it with no key
//! created or destroyed, the plan after it has no changes and every key keeps its id; then a new
//! principal on an adopted key is planned and applied as usual. Once in the stacks layout (the
//! whole estate), once per node (one key).
//!
//! Needs terraform, TF_CLI_CONFIG_FILE naming the provider mirror, and the project venv with
//! moto (ORCH_TOOLS_VENV); `scripts/just test` sets all of them up. A missing piece fails the
//! test with what to run; it is never skipped.

mod common;
#[path = "e2e/emulator.rs"]
mod emulator;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use emulator::{kms_keys, orch, write, Run, Sandbox};
use serde_json::Value;

const READER: &str = "arn:aws:iam::111111111111:role/app-reader";

/// The estate, through the AWS API; its manifest.
fn brownfield(sandbox: &Sandbox) -> Value {
    let (venv, endpoint, root) = sandbox.parts();
    let manifest = root.join("estate.json");
    let status = Command::new(venv.join("bin/python"))
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/brownfield.py"))
        .arg(endpoint)
        .arg("--out")
        .arg(&manifest)
        .status()
        .unwrap();
    assert!(status.success(), "scripts/brownfield.py failed");
    serde_json::from_str(&std::fs::read_to_string(manifest).unwrap()).unwrap()
}

/// A tree of the estate's accounts (`core` 111111111111, `data` 222222222222), reached through
/// the role brownfield.py made, in `layout`.
fn tree(root: &Path, layout: &str) {
    write(
        root,
        "live/orch.yaml",
        &format!(
            "layout: {layout}\nparallelism: 4\nprofiles:\n  sandbox: {{endpoint: \"http://127.0.0.1:1\"}}\n\
             defaults:\n  tags: {{ManagedBy: orch}}\n"
        ),
    );
    for (name, id) in [("core", "111111111111"), ("data", "222222222222")] {
        write(
            root,
            &format!("live/{name}/account.yaml"),
            &format!(
                "account_id: \"{id}\"\nenvironment: prod\nrole_arn: arn:aws:iam::{id}:role/orch-brownfield\n\
                 regions: [us-east-1, eu-west-1]\n"
            ),
        );
    }
}

/// A key in `core`/us-east-1 whose policy is the one orch writes for an administrator and a
/// reader (`orch policy` of such a key in a scratch tree); its key id.
fn key_as_orch_writes_it(sandbox: &Sandbox) -> String {
    let (venv, endpoint, root) = sandbox.parts();
    let scratch = root.join("scratch");
    write(&scratch, "live/orch.yaml", "{}\n");
    write(
        &scratch,
        "live/core/account.yaml",
        "account_id: \"111111111111\"\nenvironment: prod\nregions: [us-east-1]\n",
    );
    write(
        &scratch,
        "live/core/us-east-1/shaped/node.yaml",
        &format!(
            "access:\n  administer-resource: [arn:aws:iam::111111111111:role/KeyAdmin]\n  read-data: [{READER}]\n"
        ),
    );
    let out = Command::new(env!("CARGO_BIN_EXE_orch"))
        .arg("--live")
        .arg(scratch.join("live"))
        .args(["policy", "core/us-east-1/shaped"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(root.join("shaped.json"), &out.stdout).unwrap();
    let made = Command::new(venv.join("bin/python"))
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/make_key.py"))
        .args([endpoint, "111111111111", "us-east-1", "orch/shaped"])
        .arg(root.join("shaped.json"))
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    String::from_utf8(made.stdout).unwrap().trim().to_string()
}

/// Every key id of both accounts, by account and region.
fn key_ids(sandbox: &Sandbox) -> BTreeSet<String> {
    let (venv, endpoint, _) = sandbox.parts();
    let mut out = BTreeSet::new();
    for account in ["111111111111", "222222222222"] {
        let keys = kms_keys(venv, endpoint, account, &["us-east-1", "eu-west-1"]);
        for (region, kms) in keys.as_object().unwrap() {
            for id in kms["keys"].as_object().unwrap().keys() {
                out.insert(format!("{account}/{region}/{id}"));
            }
        }
    }
    out
}

/// Every file under `live/`.
fn files(root: &Path) -> BTreeSet<String> {
    fn walk(dir: &Path, base: &Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, base, out);
            } else {
                out.insert(path.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(&root.join("live"), root, &mut out);
    out
}

fn assert_ok(run: &Run, what: &str) {
    assert_eq!(run.code, 0, "{what} failed:\n{}", run.stderr);
}

#[test]
fn a_brownfield_estate_is_adopted_in_the_stacks_layout_and_then_changed_as_usual() {
    let sandbox = Sandbox::start();
    let (_, endpoint, root) = sandbox.parts();
    let manifest = brownfield(&sandbox);
    let shaped = key_as_orch_writes_it(&sandbox);
    tree(root, "stacks");
    let before = key_ids(&sandbox);

    let discover = orch(root, endpoint, &["import", "discover"]);
    assert_ok(&discover, "discover");
    let report = &discover.report;
    assert_eq!(report["aws_managed"], 2, "{report}");
    assert_eq!(report["service_grants"], 1, "{report}");
    assert!(report["unknown"].as_array().unwrap().is_empty(), "{report}");
    let adopted = report["adopted"].as_array().unwrap();
    let customer_primaries = manifest["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["manager"] == "CUSTOMER" && k["multi_region"] != "REPLICA")
        .filter(|k| k["state"] == "Enabled")
        .count();
    assert_eq!(adopted.len(), customer_primaries + 1, "{report}");
    let skipped: Vec<&str> = report["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["why"].as_str().unwrap())
        .collect();
    assert!(
        skipped.iter().any(|w| w.starts_with("pending deletion")),
        "{skipped:?}"
    );
    assert!(
        skipped.iter().any(|w| w.starts_with("disabled")),
        "{skipped:?}"
    );
    // The key orch would have written maps back onto its capabilities; the console's default
    // policy is kept as written, with the statements that did not map.
    let shaped_row = adopted
        .iter()
        .find(|a| a["key_id"] == shaped.as_str())
        .unwrap();
    assert_eq!(shaped_row["policy"]["as"], "capabilities", "{shaped_row}");
    let node =
        std::fs::read_to_string(root.join("live/core/us-east-1/orch-shaped/node.yaml")).unwrap();
    assert!(
        node.contains("administer-resource:") && node.contains(READER),
        "{node}"
    );
    assert!(!node.contains("policy:"), "{node}");
    let orders =
        std::fs::read_to_string(root.join("live/core/us-east-1/app-orders/node.yaml")).unwrap();
    assert!(orders.contains("policy: |"), "{orders}");
    assert!(
        discover
            .stderr
            .contains("Allow access for Key Administrators"),
        "{}",
        discover.stderr
    );
    // Aliases that would name one node get two; a multi-region key is one node with replicas.
    for dir in [
        "core/us-east-1/app_data",
        "core/us-east-1/app-data",
        "data/us-east-1/app-data",
    ] {
        assert!(
            root.join("live").join(dir).join("node.yaml").is_file(),
            "{dir}"
        );
    }
    let payments =
        std::fs::read_to_string(root.join("live/core/us-east-1/global-payments/node.yaml"))
            .unwrap();
    assert!(payments.contains("replicas:\n- eu-west-1"), "{payments}");
    assert!(!root.join("live/core/eu-west-1/global-payments").exists());

    let written = files(root);
    let again = orch(root, endpoint, &["import", "discover"]);
    assert_ok(&again, "the second discover");
    assert!(
        again.stderr.contains("nothing new to write"),
        "{}",
        again.stderr
    );
    assert_eq!(files(root), written, "a second discover writes nothing");

    let apply = orch(
        root,
        endpoint,
        &["import", "apply", "--all", "--auto-approve"],
    );
    assert_ok(&apply, "import apply");
    let plan = orch(root, endpoint, &["plan", "--all", "--detailed-exitcode"]);
    assert_eq!(
        plan.code, 0,
        "the plan after adopting has changes:\n{}",
        plan.stderr
    );
    assert_eq!(
        key_ids(&sandbox),
        before,
        "no key created or deleted; every id kept"
    );

    // A new principal on an adopted key, as any change.
    let path = root.join("live/core/us-east-1/app-billing/node.yaml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&format!("access:\n  read-data: [{READER}]\n"));
    std::fs::write(&path, text).unwrap();
    let plan = orch(
        root,
        endpoint,
        &["plan", "core/us-east-1/app-billing", "--detailed-exitcode"],
    );
    assert_eq!(plan.code, 2, "{}", plan.stderr);
    let apply = orch(
        root,
        endpoint,
        &["apply", "core/us-east-1/app-billing", "--auto-approve"],
    );
    assert_ok(&apply, "apply of the new principal");
    // Only this node changed since the whole fleet planned with no changes above.
    let plan = orch(
        root,
        endpoint,
        &["plan", "core/us-east-1/app-billing", "--detailed-exitcode"],
    );
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    assert_eq!(key_ids(&sandbox), before);
}

/// A key made through the AWS API in `account`/`region` with alias `alias`, whose policy lets
/// the account's root do everything (CreateKey's default); its key id.
fn plain_key(sandbox: &Sandbox, account: &str, region: &str, alias: &str) -> String {
    let (venv, endpoint, root) = sandbox.parts();
    let policy = root.join(format!("{alias}.json"));
    let document = serde_json::json!({"Version": "2012-10-17", "Statement": [{"Sid": "Enable IAM User Permissions", "Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{account}:root")}, "Action": "kms:*", "Resource": "*"}]});
    std::fs::write(&policy, document.to_string()).unwrap();
    let made = Command::new(venv.join("bin/python"))
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/make_key.py"))
        .args([endpoint, account, region, alias])
        .arg(&policy)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    String::from_utf8(made.stdout).unwrap().trim().to_string()
}

/// The per-node layout's import (an `imports.tf` per node), on one key of each account: only the
/// account named is read; a plain apply refuses the import; `apply --import` adopts the key with
/// its id, and the plan after it has no changes. (The whole estate is adopted above, in stacks.)
#[test]
fn a_key_is_adopted_node_by_node() {
    let sandbox = Sandbox::start();
    let (_, endpoint, root) = sandbox.parts();
    let core = plain_key(&sandbox, "111111111111", "us-east-1", "core-archive");
    let data = plain_key(&sandbox, "222222222222", "eu-west-1", "data-archive");
    tree(root, "per-node");
    let before = key_ids(&sandbox);
    let discover = orch(root, endpoint, &["import", "discover", "--account", "data"]);
    assert_ok(&discover, "discover");
    assert!(
        !root.join("live/core/us-east-1").exists(),
        "only the account named"
    );
    let node =
        std::fs::read_to_string(root.join("live/data/eu-west-1/data-archive/node.yaml")).unwrap();
    assert!(node.contains(&data), "{node}");
    // A plain apply never adopts: it refuses plans that import.
    let refused = orch(
        root,
        endpoint,
        &["apply", "data/eu-west-1/data-archive", "--auto-approve"],
    );
    assert_ne!(refused.code, 0);
    assert!(
        refused.stderr.contains("orch import apply"),
        "{}",
        refused.stderr
    );
    let apply = orch(
        root,
        endpoint,
        &["apply", "--import", "--all", "--auto-approve"],
    );
    assert_ok(&apply, "apply --import");
    let plan = orch(root, endpoint, &["plan", "--all", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    assert_eq!(key_ids(&sandbox), before);
    assert!(before.iter().any(|k| k.ends_with(&core)));
}
