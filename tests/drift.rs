//! `orch drift` given what it cannot read: an account whose role cannot be assumed, a state
//! written by a newer terraform, a report path that cannot be a file, `--changed`. A node orch
//! could not read is unknown (exit 1, with why), never in sync; the others are still read.
//!
//! Needs terraform, TF_CLI_CONFIG_FILE naming the provider mirror, and the project venv with
//! moto (ORCH_TOOLS_VENV); `scripts/just test` sets all of them up. A missing piece fails the
//! test with what to run; it is never skipped.

mod common;
#[path = "e2e/emulator.rs"]
mod emulator;

use std::path::Path;

use emulator::{orch, write, Sandbox};

/// Two accounts of one key each, reached through their roles.
fn tree(root: &Path) {
    write(
        root,
        "live/orch.yaml",
        "profiles:\n  sandbox: {endpoint: \"http://127.0.0.1:1\"}\n",
    );
    for (name, id) in [("core", "111111111111"), ("data", "222222222222")] {
        write(
            root,
            &format!("live/{name}/account.yaml"),
            &format!(
                "account_id: \"{id}\"\nenvironment: prod\nrole_arn: arn:aws:iam::{id}:role/orch-deployer\nregions: [us-east-1]\n"
            ),
        );
        write(
            root,
            &format!("live/{name}/us-east-1/key/node.yaml"),
            "description: a key\n",
        );
    }
}

fn status<'a>(run: &'a emulator::Run, address: &str) -> (&'a str, &'a str) {
    let row = common::report_row(&run.report, address);
    (
        row["status"].as_str().unwrap(),
        row["error"].as_str().unwrap_or(""),
    )
}

#[test]
fn an_account_whose_role_cannot_be_assumed_is_unknown_and_the_other_is_read() {
    let sandbox = Sandbox::start_with(&[("ORCH_EMULATOR_DENY_ASSUME_ROLE", "222222222222")]);
    let (_, endpoint, root) = sandbox.parts();
    tree(root);
    let drift = orch(root, endpoint, &["drift", "--all"]);
    assert_eq!(drift.code, 1, "{}", drift.stderr);
    assert_eq!(status(&drift, "core/us-east-1/key").0, "in sync");
    let (data, why) = status(&drift, "data/us-east-1/key");
    assert_eq!(data, "failed", "{}", drift.stderr);
    assert!(
        why.contains("AssumeRole") || why.contains("assume"),
        "{why}"
    );
    assert!(
        drift.stderr.contains("1 in sync, 0 drifted, 0 deleted or pending deletion outside orch, 1 unknown (not read)"),
        "{}",
        drift.stderr
    );
}

#[test]
fn a_state_in_a_format_of_a_newer_terraform_is_unknown_never_in_sync() {
    let sandbox = Sandbox::start();
    let (_, endpoint, root) = sandbox.parts();
    tree(root);
    write(
        root,
        ".orch/state/core/us-east-1/key/terraform.tfstate",
        r#"{"version": 5, "terraform_version": "99.0.0", "serial": 1, "lineage": "7d5c2f4e-0000-4000-8000-000000000000", "outputs": {}, "resources": []}"#,
    );
    let drift = orch(root, endpoint, &["drift", "core/us-east-1/key"]);
    assert_eq!(drift.code, 1, "{}", drift.stderr);
    let (status, why) = status(&drift, "core/us-east-1/key");
    assert_eq!(status, "failed", "{}", drift.stderr);
    assert!(why.contains("Unsupported state file format"), "{why}");
}

#[test]
fn a_report_that_cannot_be_written_and_changed_are_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    tree(root);
    std::fs::create_dir_all(root.join("out.md")).unwrap();
    for (report, says) in [
        ("out.md", "is a directory: name a file in it"),
        ("missing/drift.md", "the directory missing does not exist"),
        // A directory no one may write in, root included.
        (
            "/sys/drift.md",
            "orch cannot write in /sys (Permission denied",
        ),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_orch"))
            .arg("--live")
            .arg(root.join("live"))
            .args(["drift", "--all", "--report", report])
            .current_dir(root)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{report}: {stderr}");
        assert!(stderr.contains(says), "{report}: {stderr}");
        assert!(!root.join(".orch").exists(), "{report}: something ran");
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_orch"))
        .arg("--live")
        .arg(root.join("live"))
        .args(["drift", "--all", "--changed"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("drop --changed"), "{stderr}");
    assert!(!root.join(".orch/work").exists(), "something ran");
}
