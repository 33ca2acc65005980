//! Change detection (`--changed`) and `orch rollout` against the fake terraform
//! (tests/fake/terraform), which records every call: what each input of a fingerprint marks,
//! zero terraform calls on an unchanged fleet, waves in order with their gates, the journal and
//! `--resume`, and the bad input of each.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::Tree;

/// The base fleet plus consumers and a depends_on chain:
/// prod/us-east-1/data -> prod/eu-west-1/data (replica), prod/us-east-1/grant;
/// dev/us-east-1/app -> dev/us-east-1/late (depends_on).
fn fleet() -> Tree {
    Tree::new()
        .file(
            "live/prod/us-east-1/grant/node.yaml",
            "kind: grant\nkey: prod/us-east-1/data\ngrantee: arn:aws:iam::222222222222:role/reader\noperations: [Decrypt]\n",
        )
        .file(
            "live/dev/us-east-1/late/node.yaml",
            "description: after app\ndepends_on: [dev/us-east-1/app]\nkey_users: [arn:aws:iam::222222222222:role/app]\n",
        )
}

const ALL: [&str; 5] = [
    "dev/us-east-1/app",
    "dev/us-east-1/late",
    "prod/eu-west-1/data",
    "prod/us-east-1/data",
    "prod/us-east-1/grant",
];

fn fake_terraform() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fake/terraform")
}

/// One run of orch against the fake: exit code, stderr, the fake's calls as (address, command),
/// and the `--report` JSON.
struct Run {
    code: i32,
    stderr: String,
    calls: Vec<(String, String)>,
    report: serde_json::Value,
}

impl Run {
    /// The addresses that got a terraform call `command`, sorted.
    fn called(&self, command: &str) -> BTreeSet<&str> {
        self.calls
            .iter()
            .filter(|(_, c)| c == command)
            .map(|(a, _)| a.as_str())
            .collect()
    }
}

fn command(tree: &Tree, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_orch"));
    cmd.arg("--live")
        .arg(tree.path("live"))
        .args(args)
        .current_dir(tree.root())
        .env("ORCH_TERRAFORM", fake_terraform())
        .env("FAKE_TF_LOG", tree.path("fake.log"))
        .env("FAKE_TF_STATE", tree.path("fake-state"))
        .env("FAKE_TF_REMEMBER", "1")
        .env_remove("ORCH_PROFILE")
        .env_remove("ORCH_LIVE")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

fn finish(tree: &Tree, out: std::process::Output) -> Run {
    let log = std::fs::read_to_string(tree.path("fake.log")).unwrap_or_default();
    let calls = log
        .lines()
        .map(|l| {
            let parts: Vec<&str> = l.split(' ').collect();
            (parts[2].to_string(), parts[3].to_string())
        })
        .collect();
    let report = std::fs::read_to_string(tree.path("report.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(serde_json::Value::Null);
    let _ = std::fs::remove_file(tree.path("fake.log"));
    let _ = std::fs::remove_file(tree.path("report.json"));
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        calls,
        report,
    };
    assert!(
        !run.stderr.contains("panicked"),
        "orch panicked:\n{}",
        run.stderr
    );
    run
}

/// Runs orch with `--report report.json` appended.
fn orch(tree: &Tree, args: &[&str], env: &[(&str, &str)]) -> Run {
    std::fs::create_dir_all(tree.path("fake-state")).unwrap();
    let report = tree.path("report.json");
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--report", report.to_str().unwrap()]);
    let out = command(tree, &all, env).output().unwrap();
    finish(tree, out)
}

fn applied(tree: Tree) -> Tree {
    let run = orch(&tree, &["apply", "--all", "--auto-approve"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    tree
}

/// The addresses `plan --all --changed` runs terraform for (a plan each), and checks that every
/// other node is reported unchanged or not selected at all.
fn planned_when_changed(tree: &Tree, env: &[(&str, &str)]) -> BTreeSet<String> {
    let run = orch(tree, &["plan", "--all", "--changed"], env);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let planned: BTreeSet<String> = run.called("plan").into_iter().map(String::from).collect();
    for node in run.report["nodes"].as_array().unwrap() {
        let address = node["address"].as_str().unwrap();
        let status = node["status"].as_str().unwrap();
        assert_eq!(
            planned.contains(address),
            status != "unchanged",
            "{address}: {status}"
        );
    }
    planned
}

fn set(addresses: &[&str]) -> BTreeSet<String> {
    addresses.iter().map(|a| a.to_string()).collect()
}

#[test]
fn an_unchanged_applied_fleet_plans_with_zero_terraform_calls() {
    let tree = applied(fleet());
    for address in ALL {
        assert!(
            tree.path(&format!(".orch/outputs/{address}.fingerprint"))
                .is_file(),
            "no fingerprint recorded for {address}"
        );
    }
    let run = orch(&tree, &["plan", "--all", "--changed"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.calls.is_empty(), "terraform ran: {:?}", run.calls);
    assert!(
        run.stderr
            .contains("--changed: 0 of 5 selected nodes changed"),
        "{}",
        run.stderr
    );
    assert_eq!(run.report["nodes"], serde_json::json!([]));
    // Without --changed every node is planned, and the fake remembers what was applied.
    let full = orch(&tree, &["plan", "--all", "--detailed-exitcode"], &[]);
    assert_eq!(full.code, 0, "{}", full.stderr);
    assert_eq!(full.called("plan").len(), 5);
}

#[test]
fn a_change_to_a_node_yaml_marks_the_node_and_its_dependents_are_decided_when_they_run() {
    let tree = applied(fleet()).file(
        "live/dev/us-east-1/app/node.yaml",
        "description: Encrypts dev app data, now with a new description\naliases: [dev/app]\nkey_users: [arn:aws:iam::222222222222:role/app]\n",
    );
    // dev/us-east-1/late depends on app, but its own inputs are the same until app is applied.
    assert_eq!(
        planned_when_changed(&tree, &[]),
        set(&["dev/us-east-1/app"])
    );
    let run = orch(
        &tree,
        &["apply", "--all", "--changed", "--auto-approve"],
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.called("apply"), ["dev/us-east-1/app"].into());
    assert!(run
        .stderr
        .contains("[dev/us-east-1/late] unchanged since its last apply"));
    assert_eq!(planned_when_changed(&tree, &[]), set(&[]));
}

#[test]
fn a_default_in_account_yaml_marks_every_node_of_the_account() {
    let tree = applied(fleet()).file(
        "live/prod/account.yaml",
        r#"account_id: "111111111111"
environment: prod
role_arn: arn:aws:iam::111111111111:role/orch-deployer
regions: [us-east-1, eu-west-1]
defaults:
  tags: {Team: storage}
  access:
    administer-resource: [arn:aws:iam::111111111111:role/admin]
"#,
    );
    assert_eq!(
        planned_when_changed(&tree, &[]),
        set(&[
            "prod/eu-west-1/data",
            "prod/us-east-1/data",
            "prod/us-east-1/grant"
        ])
    );
}

#[test]
fn a_template_change_marks_the_nodes_of_its_kind() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tree = applied(fleet().copy(&repo.join("templates"), "templates"));
    let main = tree.read("templates/grant/main.tf");
    let tree = tree.file(
        "templates/grant/main.tf",
        &format!("{main}\n# a reviewed change to every grant\n"),
    );
    assert_eq!(
        planned_when_changed(&tree, &[]),
        set(&["prod/us-east-1/grant"])
    );
}

#[test]
fn a_new_terraform_version_marks_every_node() {
    let tree = applied(fleet());
    assert_eq!(
        planned_when_changed(&tree, &[("FAKE_TF_VERSION", "1.12.1")]),
        set(&ALL)
    );
}

#[test]
fn new_outputs_of_a_dependency_mark_its_dependents() {
    let tree = applied(fleet());
    // As if prod/us-east-1/data had been replaced by an apply outside this fleet's view.
    let outputs = tree
        .read(".orch/outputs/prod/us-east-1/data.json")
        .replace("fake-data", "fake-data-2");
    let tree = tree.file(".orch/outputs/prod/us-east-1/data.json", &outputs);
    assert_eq!(
        planned_when_changed(&tree, &[]),
        set(&["prod/eu-west-1/data", "prod/us-east-1/grant"])
    );
    let render = command(&tree, &["render", "--changed"], &[])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&render.stdout);
    assert!(
        render.status.success() && stdout.starts_with("rendered 2 nodes"),
        "{stdout}"
    );
}

#[test]
fn a_node_whose_apply_failed_stays_marked_even_when_the_change_is_undone() {
    let original = common::BASE
        .iter()
        .find(|(p, _)| *p == "live/dev/us-east-1/app/node.yaml")
        .unwrap()
        .1;
    let tree = applied(fleet()).file(
        "live/dev/us-east-1/app/node.yaml",
        &original.replace("dev app data", "dev app data (v2)"),
    );
    let failed = orch(
        &tree,
        &["apply", "--all", "--changed", "--auto-approve"],
        &[("FAKE_TF_APPLY_FAIL", "dev/us-east-1/app")],
    );
    assert_eq!(failed.code, 1, "{}", failed.stderr);
    assert_eq!(failed.called("apply-failed"), ["dev/us-east-1/app"].into());
    assert_eq!(
        planned_when_changed(&tree, &[]),
        set(&["dev/us-east-1/app"])
    );
    // The half-done apply may have changed the key: undoing the edit does not unmark it.
    let tree = tree.file("live/dev/us-east-1/app/node.yaml", original);
    assert_eq!(
        planned_when_changed(&tree, &[]),
        set(&["dev/us-east-1/app"])
    );
    let fixed = orch(
        &tree,
        &["apply", "--all", "--changed", "--auto-approve"],
        &[],
    );
    assert_eq!(fixed.code, 0, "{}", fixed.stderr);
    assert_eq!(planned_when_changed(&tree, &[]), set(&[]));
}

#[test]
fn destroy_forgets_the_fingerprint() {
    let tree = applied(fleet());
    let run = orch(
        &tree,
        &["destroy", "dev/us-east-1/late", "--auto-approve"],
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!tree
        .path(".orch/outputs/dev/us-east-1/late.fingerprint")
        .exists());
    assert_eq!(
        planned_when_changed(&tree, &[]),
        set(&["dev/us-east-1/late"])
    );
}
