//! End to end: switching a fleet whose state is in S3 between the per-node and the stacks
//! layout, with real terraform against the emulator's S3 and KMS. A key and its multi-region
//! replica are applied per node; orch.yaml then says `layout: stacks`, and a plan is refused by
//! the guard (which lists the bucket's states) until `orch layout migrate` has moved the state
//! with `terraform state pull` / `state push`, after which a plan shows no changes and the
//! emulator holds exactly the keys it held before. Then back to per-node, the same way.
//!
//! Two nodes keep it affordable: each plan of a node or a stack costs about 6.5 CPU-s. Needs
//! terraform, TF_CLI_CONFIG_FILE and the project venv (`scripts/just test` sets them up); a
//! missing piece fails the test with what to run.

mod common;
#[path = "e2e/emulator.rs"]
mod emulator;
#[path = "e2e/s3.rs"]
mod s3;

use std::path::Path;

use emulator::{kms_keys, layout_migrate, orch, write, Sandbox};
use serde_json::Value;

const DEV: &str = "222222222222";

fn orch_yaml(root: &Path, layout: &str) {
    write(
        root,
        "live/orch.yaml",
        &format!(
            "layout: {layout}\n{}",
            s3::orch_yaml("tfstate-{account_id}", "")
        ),
    );
}

fn fleet(root: &Path) {
    orch_yaml(root, "per-node");
    write(
        root,
        "live/dev/account.yaml",
        &s3::account_yaml(DEV).replace("[us-east-1]", "[us-east-1, eu-west-1]"),
    );
    write(
        root,
        "live/dev/us-east-1/data/node.yaml",
        "description: moves between layouts in S3\naliases: [dev/data]\nmulti_region: true\nreplicas: [eu-west-1]\n",
    );
}

/// The account's keys and aliases in both regions.
fn keys(venv: &Path, endpoint: &str) -> Value {
    kms_keys(venv, endpoint, DEV, &["us-east-1", "eu-west-1"])
}

#[test]
fn a_fleet_in_s3_moves_to_stacks_and_back_without_a_change() {
    let sandbox = Sandbox::start();
    let (venv, endpoint, root) = sandbox.parts();
    fleet(root);
    s3::s3py(venv, &["create", endpoint, DEV, &format!("tfstate-{DEV}")]);

    let apply = orch(root, endpoint, &["apply", "--all", "--auto-approve"]);
    assert_eq!(apply.code, 0, "{}", apply.stderr);
    let applied = keys(venv, endpoint);
    for region in ["us-east-1", "eu-west-1"] {
        assert_eq!(
            applied[region]["keys"].as_object().unwrap().len(),
            1,
            "{region}: {applied}"
        );
    }

    for (layout, was, states) in [
        (
            "stacks",
            "per-node",
            [
                "_stacks/dev/us-east-1/keys",
                "_stacks/dev/eu-west-1/replicas",
            ],
        ),
        (
            "per-node",
            "stacks",
            ["dev/us-east-1/data", "dev/eu-west-1/data"],
        ),
    ] {
        orch_yaml(root, layout);
        // Planning before the move would propose to create every key again: refused.
        let refused = orch(root, endpoint, &["plan", "--all"]);
        assert_eq!(refused.code, 1, "{}", refused.stderr);
        assert!(
            refused.stderr.contains(&format!(
                "the state of 2 selected node(s) is still in the {was} layout"
            )) && refused
                .stderr
                .contains("s3://tfstate-222222222222/orch/e2e/")
                && refused.stderr.contains("orch layout migrate"),
            "{}",
            refused.stderr
        );
        let moved = layout_migrate(root, endpoint);
        assert_eq!(moved.code, 0, "{}", moved.stderr);
        assert!(
            moved.stderr.contains(&format!(
                "moved the state of 2 node(s), 4 resource(s), into the {layout} layout"
            )),
            "{}",
            moved.stderr
        );
        let bucket = s3::bucket(venv, endpoint, DEV, &format!("tfstate-{DEV}"));
        for state in states {
            let key = format!("orch/e2e/{state}/terraform.tfstate");
            assert!(
                bucket["objects"].get(&key).is_some(),
                "{layout}: no {key} in {bucket}"
            );
        }
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
    assert!(
        s3::files_under(&root.join(".orch/state")).is_empty(),
        "no state is kept locally"
    );
}
