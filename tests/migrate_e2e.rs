//! End to end: switching an applied fleet between the per-node and the stacks layout with real
//! terraform against the emulator. A key with a multi-region replica in a second region and a
//! grant on it are applied per node; orch.yaml then says `layout: stacks`, a plan is refused
//! until `orch layout migrate` has moved the state, after which a plan shows no changes and the
//! emulator holds exactly the keys it held before. Then back to per-node, the same way.
//!
//! Needs terraform, TF_CLI_CONFIG_FILE naming the provider mirror, and the project venv with
//! moto (ORCH_TOOLS_VENV); `scripts/just test` sets all of them up. A missing piece fails the
//! test with what to run; it is never skipped.

mod common;
#[path = "e2e/emulator.rs"]
mod emulator;

use std::path::Path;

use emulator::{kms_keys, layout_migrate, orch, write, Sandbox};
use serde_json::Value;

const GRANTEE: &str = "arn:aws:iam::111111111111:role/reader";

fn orch_yaml(root: &Path, layout: &str) {
    write(
        root,
        "live/orch.yaml",
        &format!(
            "layout: {layout}\nparallelism: 3\nprofiles:\n  sandbox: {{endpoint: \"http://127.0.0.1:1\"}}\n"
        ),
    );
}

fn fleet(root: &Path) {
    orch_yaml(root, "per-node");
    write(
        root,
        "live/prod/account.yaml",
        "account_id: \"111111111111\"\nenvironment: prod\nrole_arn: arn:aws:iam::111111111111:role/orch-deployer\n\
         regions: [us-east-1, eu-west-1]\ndefaults:\n  deletion_window_days: 7\n  access:\n    \
         administer-resource: [arn:aws:iam::111111111111:role/security-admin]\n",
    );
    write(
        root,
        "live/prod/us-east-1/data/node.yaml",
        "description: moves between layouts\naliases: [prod/data]\nmulti_region: true\nreplicas: [eu-west-1]\n",
    );
    write(
        root,
        "live/prod/us-east-1/grant/node.yaml",
        &format!(
            "kind: grant\nkey: prod/us-east-1/data\ngrantee: {GRANTEE}\noperations: [Decrypt]\n"
        ),
    );
}

/// The account's keys and aliases in both regions.
fn keys(venv: &Path, endpoint: &str) -> Value {
    kms_keys(venv, endpoint, "111111111111", &["us-east-1", "eu-west-1"])
}

#[test]
fn an_applied_fleet_moves_to_stacks_and_back_without_a_change() {
    let sandbox = Sandbox::start();
    let (venv, endpoint, root) = sandbox.parts();
    fleet(root);
    sandbox.roles(&[GRANTEE]);

    let apply = orch(root, endpoint, &["apply", "--all", "--auto-approve"]);
    assert_eq!(apply.code, 0, "{}", apply.stderr);
    let applied = keys(venv, endpoint);
    for region in ["us-east-1", "eu-west-1"] {
        let keys = applied[region]["keys"].as_object().unwrap();
        assert_eq!(keys.len(), 1, "{region}: {applied}");
        let key = keys.values().next().unwrap();
        assert_eq!(key["state"], "Enabled", "{region}");
        assert_eq!(
            key["grants"].as_array().unwrap().len(),
            usize::from(region == "us-east-1"),
            "{region}: {key}"
        );
    }

    for (layout, was) in [("stacks", "per-node"), ("per-node", "stacks")] {
        orch_yaml(root, layout);
        // Planning before the move would propose to create every key again: refused.
        let refused = orch(root, endpoint, &["plan", "--all"]);
        assert_eq!(refused.code, 1, "{}", refused.stderr);
        assert!(
            refused
                .stderr
                .contains(&format!("still in the {was} layout"))
                && refused.stderr.contains("orch layout migrate"),
            "{}",
            refused.stderr
        );
        let moved = layout_migrate(root, endpoint);
        assert_eq!(moved.code, 0, "{}", moved.stderr);
        assert!(
            moved.stderr.contains(&format!(
                "moved the state of 3 node(s), 5 resource(s), into the {layout} layout"
            )),
            "{}",
            moved.stderr
        );
        let plan = orch(root, endpoint, &["plan", "--all", "--detailed-exitcode"]);
        assert_eq!(
            plan.code, 0,
            "{layout}: changes after the move:\n{}",
            plan.stderr
        );
        assert_eq!(
            keys(venv, endpoint),
            applied,
            "{layout}: the emulator's keys changed"
        );
    }
}
