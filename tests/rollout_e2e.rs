//! The rollout scenario end to end: real terraform and the real hashicorp/aws provider against the
//! emulator. An applied fleet of three accounts gains a region (one line in each account.yaml),
//! so every key with `replicas: "*"` gets a new replica; `orch rollout` rolls it out wave by wave,
//! canary first; the gate of wave two fails once and stops it; `--resume` goes on, is stopped by
//! a Ctrl-C in the last wave, and a second `--resume` finishes. A final plan shows no changes,
//! and the new replicas exist in the emulator.
//!
//! One key per account keeps it affordable: each plan of a node costs about 6.5 CPU-seconds.
//! Needs terraform, TF_CLI_CONFIG_FILE and the project venv (`scripts/just test` sets them up); a
//! missing piece fails the test with what to run.

mod common;
#[path = "e2e/emulator.rs"]
mod emulator;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::only_journal;
use emulator::{command, finish, orch, processes_in, readback, write, Run, Sandbox};
use serde_json::Value;

/// (account, account id, wave).
const ACCOUNTS: [(&str, &str); 3] = [
    ("staging", "222222222222"),
    ("prod", "111111111111"),
    ("analytics", "333333333333"),
];

fn account_yaml(id: &str, regions: &str) -> String {
    format!(
        "account_id: \"{id}\"\nenvironment: e2e\nrole_arn: arn:aws:iam::{id}:role/orch-deployer\nregions: {regions}\n"
    )
}

/// The gate of wave `prod` fails the first time (an alarm, say) and passes after; it also checks
/// that the new replica is among the wave's outputs.
fn fleet(root: &Path) {
    write(
        root,
        "live/orch.yaml",
        "parallelism: 2\nprofiles:\n  sandbox: {endpoint: \"http://127.0.0.1:1\"}\ndefaults:\n  tags: {ManagedBy: orch}\n\
         waves:\n  - {name: canary, match: [\"staging/**\"]}\n  - name: prod\n    match: [\"prod/**\"]\n    \
         gate: {bake: 1s, command: 'grep -q prod/eu-west-1/data \"$ORCH_WAVE_OUTPUTS\" && \
         { test -f alarm-cleared || { touch alarm-cleared; echo alarm: error rate up; exit 1; }; }'}\n  \
         - {name: rest, match: [\"**\"]}\n",
    );
    for (account, id) in ACCOUNTS {
        write(
            root,
            &format!("live/{account}/account.yaml"),
            &account_yaml(id, "[us-east-1]"),
        );
        write(
            root,
            &format!("live/{account}/us-east-1/data/node.yaml"),
            &format!(
                "description: {account} data\naliases: [{account}/data]\nmulti_region: true\nreplicas: \"*\"\n\
                 deletion_window_days: 7\nkey_users: [arn:aws:iam::{id}:role/app]\n"
            ),
        );
    }
}

fn waves(run: &Run) -> Vec<String> {
    run.report["waves"]
        .as_array()
        .unwrap_or_else(|| panic!("no waves in the report:\n{}", run.stderr))
        .iter()
        .map(|w| w["status"].as_str().unwrap().to_string())
        .collect()
}

/// The keys of `account` in eu-west-1.
fn replicas(venv: &Path, endpoint: &str, id: &str) -> Vec<Value> {
    let found = readback(venv, endpoint, id, &["us-east-1", "eu-west-1"]);
    let primary = found["kms"]["us-east-1"]["keys"].as_object().unwrap();
    assert_eq!(primary.len(), 1, "{id}: {primary:?}");
    found["kms"]["eu-west-1"]["keys"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(key_id, key)| {
            assert!(
                primary.contains_key(key_id),
                "a replica shares its primary's key id"
            );
            key.clone()
        })
        .collect()
}

#[test]
fn a_new_region_is_rolled_out_wave_by_wave_through_a_failed_gate_and_a_ctrl_c() {
    let sandbox = Sandbox::start();
    let (venv, endpoint, root) = sandbox.parts();
    fleet(root);

    // The applied fleet: one multi-region key per account, no replica yet (one region each).
    let apply = orch(root, endpoint, &["apply", "--all", "--auto-approve"]);
    assert_eq!(apply.code, 0, "{}", apply.stderr);

    // The change: one line per account.yaml, a second region.
    for (account, id) in ACCOUNTS {
        write(
            root,
            &format!("live/{account}/account.yaml"),
            &account_yaml(id, "[us-east-1, eu-west-1]"),
        );
    }

    // 1. canary passes; prod is applied, but its gate fails: the rollout stops, rest untouched.
    let first = orch(root, endpoint, &["rollout"]);
    assert_eq!(first.code, 1, "{}", first.stderr);
    assert_eq!(waves(&first), ["passed", "failed", "not started"]);
    assert!(
        first.stderr.contains("alarm: error rate up"),
        "{}",
        first.stderr
    );
    assert_eq!(replicas(venv, endpoint, "222222222222").len(), 1);
    assert_eq!(replicas(venv, endpoint, "111111111111").len(), 1);
    assert!(replicas(venv, endpoint, "333333333333").is_empty());

    // 2. Resume: prod is not applied again, its gate passes; Ctrl-C while rest applies.
    let child = command(root, endpoint, &["rollout", "--resume"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while only_journal(root)["waves"][2]["status"] != "applying" {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "wave rest never started"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(4));
    // SAFETY: signals the child we spawned.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let second = finish(root, child.wait_with_output().unwrap());
    assert_eq!(second.code, 130, "{}", second.stderr);
    assert_eq!(waves(&second), ["passed", "passed", "interrupted"]);
    let prod = &second.report["waves"][1]["nodes"];
    assert!(
        prod.as_array()
            .unwrap()
            .iter()
            .all(|n| n["status"] == "applied earlier"),
        "prod was applied again: {prod}"
    );
    assert_eq!(only_journal(root)["status"], "interrupted");
    assert!(
        processes_in(root).is_empty(),
        "left behind: {:?}",
        processes_in(root)
    );

    // 3. Resume again: rest finishes.
    let third = orch(root, endpoint, &["rollout", "--resume"]);
    assert_eq!(third.code, 0, "{}", third.stderr);
    assert_eq!(waves(&third), ["passed", "passed", "passed"]);
    assert_eq!(only_journal(root)["status"], "finished");

    // The fleet is converged (each wave's gate planned its nodes afresh with no changes; nothing
    // changed since), and every account has its new replica.
    let changed = orch(root, endpoint, &["plan", "--all", "--changed"]);
    assert_eq!(changed.code, 0, "{}", changed.stderr);
    assert_eq!(
        changed.report["nodes"],
        serde_json::json!([]),
        "{}",
        changed.stderr
    );
    for (account, id) in ACCOUNTS {
        let found = replicas(venv, endpoint, id);
        assert_eq!(found.len(), 1, "{account}: {found:?}");
        assert_eq!(found[0]["multi_region_type"], "REPLICA", "{account}");
        assert_eq!(found[0]["state"], "Enabled", "{account}");
    }
}
