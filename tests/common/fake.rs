//! Runs of orch against the fake terraform (tests/fake/terraform), which records every call with
//! its start and end time: the harness of tests/executor.rs and tests/stacks.rs.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::Tree;

pub fn fake_terraform() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fake/terraform")
}

/// One recorded call of the fake: which node, which command, when.
#[derive(Debug, Clone)]
pub struct Call {
    pub start: u128,
    pub end: u128,
    pub address: String,
    pub command: String,
    /// In a stack's root module, the module blocks the call covered (tests/fake/stacks.sh).
    pub modules: Vec<String>,
}

pub struct Run {
    pub code: i32,
    pub stderr: String,
    pub calls: Vec<Call>,
    pub report: serde_json::Value,
}

impl Run {
    pub fn plans(&self) -> Vec<&Call> {
        self.calls.iter().filter(|c| c.command == "plan").collect()
    }

    pub fn plan_of(&self, address: &str) -> Option<&Call> {
        self.plans().into_iter().find(|c| c.address == address)
    }

    pub fn status(&self, address: &str) -> String {
        self.report["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["address"] == address)
            .unwrap_or_else(|| panic!("{address} not in the report: {}", self.report))["status"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

pub fn command(tree: &Tree, args: &[&str], env: &[(&str, &str)]) -> Command {
    let log = tree.path("fake.log");
    let state = tree.path("fake-state");
    std::fs::create_dir_all(&state).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_orch"));
    cmd.arg("--live")
        .arg(tree.path("live"))
        .args(args)
        .arg("--terraform-bin")
        .arg(fake_terraform())
        .arg("--report")
        .arg(tree.path("report.json"))
        .current_dir(tree.root())
        .env("FAKE_TF_LOG", &log)
        .env("FAKE_TF_STATE", &state)
        .env("ORCH_RETRY_BACKOFF_MS", "10")
        .env_remove("ORCH_TERRAFORM")
        .env_remove("ORCH_PROFILE")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

pub fn finish(tree: &Tree, out: std::process::Output) -> Run {
    let log = std::fs::read_to_string(tree.path("fake.log")).unwrap_or_default();
    let calls = log
        .lines()
        .map(|l| {
            let parts: Vec<&str> = l.split(' ').collect();
            Call {
                start: parts[0].parse().unwrap(),
                end: parts[1].parse().unwrap(),
                address: parts[2].to_string(),
                command: parts[3].to_string(),
                modules: parts
                    .get(4)
                    .map(|m| m.split(',').map(String::from).collect())
                    .unwrap_or_default(),
            }
        })
        .collect();
    let report = std::fs::read_to_string(tree.path("report.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(serde_json::Value::Null);
    let _ = std::fs::remove_file(tree.path("fake.log"));
    let _ = std::fs::remove_file(tree.path("report.json"));
    Run {
        code: out.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        calls,
        report,
    }
}

pub fn orch(tree: &Tree, args: &[&str], env: &[(&str, &str)]) -> Run {
    let out = command(tree, args, env).output().unwrap();
    let run = finish(tree, out);
    assert!(
        !run.stderr.contains("panicked"),
        "orch panicked:\n{}",
        run.stderr
    );
    run
}
