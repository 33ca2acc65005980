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
    let live = tree.path("live");
    let mut all = vec!["--live", live.to_str().unwrap()];
    all.extend(args);
    command_in(tree, tree.root(), &all, env)
}

/// orch run in `cwd` with exactly `args` (no `--live` added).
fn command_in(tree: &Tree, cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_orch"));
    cmd.args(args)
        .current_dir(cwd)
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
    let tree = applied(fleet());
    let account = tree
        .read("live/prod/account.yaml")
        .replace("defaults:\n", "defaults:\n  tags: {Team: storage}\n");
    let tree = tree.file("live/prod/account.yaml", &account);
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
fn a_new_provider_version_in_a_lock_file_marks_its_node() {
    let tree = applied(fleet()).file(
        ".orch/work/dev/us-east-1/app/.terraform.lock.hcl",
        "provider \"registry.terraform.io/hashicorp/aws\" {\n  version = \"5.100.1\"\n}\n",
    );
    // Its dependent is decided when its turn comes: app's outputs did not change.
    assert_eq!(
        planned_when_changed(&tree, &[]),
        set(&["dev/us-east-1/app"])
    );
}

#[test]
fn a_new_terraform_version_marks_every_node() {
    let tree = applied(fleet());
    assert_eq!(
        planned_when_changed(
            &tree,
            &[(
                "FAKE_TF_VERSION",
                r#"{"terraform_version":"1.12.1","platform":"linux_amd64"}"#
            )]
        ),
        set(&ALL)
    );
}

#[test]
fn new_outputs_of_a_dependency_mark_it_and_its_dependents() {
    let tree = applied(fleet());
    // As if prod/us-east-1/data had been replaced by an apply outside this fleet's view: it runs
    // again to record its outputs anew, and its dependents read them.
    let outputs = tree
        .read(".orch/outputs/prod/us-east-1/data.json")
        .replace("fake-data", "fake-data-2");
    let tree = tree.file(".orch/outputs/prod/us-east-1/data.json", &outputs);
    assert_eq!(
        planned_when_changed(&tree, &[]),
        set(&[
            "prod/us-east-1/data",
            "prod/eu-west-1/data",
            "prod/us-east-1/grant"
        ])
    );
    let render = command(&tree, &["render", "--changed"], &[])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&render.stdout);
    assert!(
        render.status.success() && stdout.starts_with("rendered 3 nodes"),
        "{stdout}"
    );
}

#[test]
fn deleted_outputs_mark_their_node_changed_and_its_dependents_do_not_fail() {
    let tree = applied(fleet()).remove(".orch/outputs/prod/us-east-1/data.json");
    let run = orch(
        &tree,
        &["apply", "--all", "--changed", "--auto-approve"],
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    // Planned again (no changes: nothing to apply), its outputs recorded anew.
    assert!(
        run.called("plan").contains("prod/us-east-1/data"),
        "{:?}",
        run.calls
    );
    assert!(
        run.called("output").contains("prod/us-east-1/data"),
        "{:?}",
        run.calls
    );
    assert!(tree
        .path(".orch/outputs/prod/us-east-1/data.json")
        .is_file());
    // The same outputs as before: its dependents had nothing new to read.
    let status = |address: &str| common::report_row(&run.report, address)["status"].clone();
    assert_eq!(status("prod/eu-west-1/data"), "unchanged");
    assert_eq!(status("prod/us-east-1/grant"), "unchanged");
    assert!(planned_when_changed(&tree, &[]).is_empty());
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
fn destroy_does_not_take_changed() {
    let tree = applied(fleet());
    let run = orch(
        &tree,
        &["destroy", "--all", "--changed", "--auto-approve"],
        &[],
    );
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("--changed selects what to apply"),
        "{}",
        run.stderr
    );
    assert!(run.calls.is_empty());
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

// ---------------------------------------------------------------------------------------------
// orch rollout

const ORCH_YAML: &str = "defaults:\n  deletion_window_days: 30\n  tags: {ManagedBy: orch}\n";

/// [`fleet`] with three waves: canary (dev), prod-primary (prod/us-east-1), rest (the replica in
/// eu-west-1), the last one gated by `gate` (YAML of the `gate:` value).
fn waved(gate: &str) -> Tree {
    fleet().file(
        "live/orch.yaml",
        &format!(
            "{ORCH_YAML}waves:\n  - {{name: canary, match: [\"dev/**\"]}}\n  - {{name: prod-primary, match: [\"prod/us-east-1/**\"]}}\n  - name: rest\n    match: [\"**\"]\n    gate: {gate}\n"
        ),
    )
}

const CANARY: [&str; 2] = ["dev/us-east-1/app", "dev/us-east-1/late"];
const PROD_PRIMARY: [&str; 2] = ["prod/us-east-1/data", "prod/us-east-1/grant"];
const REST: [&str; 1] = ["prod/eu-west-1/data"];

fn wave_of(address: &str) -> usize {
    [&CANARY[..], &PROD_PRIMARY[..], &REST[..]]
        .iter()
        .position(|w| w.contains(&address))
        .unwrap()
}

/// How many rollout journals the tree has.
fn journals(tree: &Tree) -> usize {
    std::fs::read_dir(tree.path(".orch/runs"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .count()
}

fn wave_statuses(report: &serde_json::Value) -> Vec<String> {
    report["waves"]
        .as_array()
        .unwrap_or_else(|| panic!("no waves in {report}"))
        .iter()
        .map(|w| w["status"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_rollout_applies_wave_after_wave_each_gated_before_the_next() {
    let tree = waved("{command: 'cp \"$ORCH_WAVE_OUTPUTS\" gate-saw.json && test \"$ORCH_WAVE\" = rest', bake: 1s}");
    let run = orch(&tree, &["rollout"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    // Calls are logged as they end: every call of a wave ends before the next wave's first.
    let waves: Vec<usize> = run.calls.iter().map(|(a, _)| wave_of(a)).collect();
    assert!(waves.windows(2).all(|w| w[0] <= w[1]), "{:?}", run.calls);
    assert_eq!(run.called("apply").len(), 5);
    // Each node: a plan before its apply, and the gate's fresh plan after the wave's applies.
    for address in ALL {
        let mine: Vec<&str> = run
            .calls
            .iter()
            .filter(|(a, c)| a == address && c != "init")
            .map(|(_, c)| c.as_str())
            .collect();
        assert_eq!(mine, ["plan", "apply", "output", "plan"], "{address}");
    }
    assert_eq!(wave_statuses(&run.report), ["passed", "passed", "passed"]);
    assert_eq!(run.report["waves"][1]["nodes"].as_array().unwrap().len(), 2);
    let saw: serde_json::Value = serde_json::from_str(&tree.read("gate-saw.json")).unwrap();
    assert_eq!(
        saw["prod/eu-west-1/data"]["key_arn"],
        "arn:aws:kms:eu-west-1:111111111111:key/fake-data"
    );
    assert!(run.stderr.contains("== wave rest: gate: baking 1s =="));
    assert!(run.stderr.contains("== wave canary: gate passed =="));
    assert!(
        run.stderr.contains("finished: 3 wave(s) passed"),
        "{}",
        run.stderr
    );
    assert_eq!(common::only_journal(tree.root())["status"], "finished");
}

#[test]
fn a_failed_node_stops_the_rollout_and_resume_applies_nothing_twice() {
    let tree = waved("{bake: 0s}");
    let run = orch(
        &tree,
        &["rollout"],
        &[("FAKE_TF_APPLY_FAIL", "prod/us-east-1/grant")],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(
        wave_statuses(&run.report),
        ["passed", "failed", "not started"]
    );
    assert!(
        !run.calls.iter().any(|(a, _)| wave_of(a) == 2),
        "a later wave ran: {:?}",
        run.calls
    );
    assert!(
        run.stderr.contains("orch rollout --resume"),
        "{}",
        run.stderr
    );
    let j = common::only_journal(tree.root());
    assert_eq!(j["status"], "failed");
    assert_eq!(j["waves"][1]["status"], "failed");

    let resumed = orch(&tree, &["rollout", "--resume"], &[]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    // canary passed and nothing of it changed: no terraform at all. Of prod-primary only the
    // node that failed is applied; the gates run for the waves that applied something.
    assert!(
        !resumed.calls.iter().any(|(a, _)| wave_of(a) == 0),
        "{:?}",
        resumed.calls
    );
    assert_eq!(
        resumed.called("apply"),
        ["prod/eu-west-1/data", "prod/us-east-1/grant"].into()
    );
    assert_eq!(
        wave_statuses(&resumed.report),
        ["passed", "passed", "passed"]
    );
    // The report says what the first run applied, from the journal.
    let status = |w: usize, address: &str| {
        common::report_row(&resumed.report["waves"][w], address)["status"].clone()
    };
    assert_eq!(status(0, "dev/us-east-1/app"), "applied earlier");
    assert_eq!(status(1, "prod/us-east-1/data"), "applied earlier");
    assert_eq!(status(1, "prod/us-east-1/grant"), "ok");
    assert_eq!(common::only_journal(tree.root())["status"], "finished");
    let again = orch(&tree, &["rollout", "--resume"], &[]);
    assert_eq!(again.code, 1);
    assert!(
        again.stderr.contains("no rollout to resume"),
        "{}",
        again.stderr
    );
    assert!(again.calls.is_empty());
}

#[test]
fn a_failed_gate_stops_the_rollout_and_resume_runs_only_the_gate_again() {
    let tree = waved("{command: 'test -f gate-ok || { touch gate-ok; echo not yet; exit 3; }'}");
    let run = orch(&tree, &["rollout"], &[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(wave_statuses(&run.report), ["passed", "passed", "failed"]);
    assert!(run.stderr.contains("not yet"), "the gate's output is shown");
    assert!(
        run.report["waves"][2]["gate"]
            .as_str()
            .unwrap()
            .contains("exited 3"),
        "{}",
        run.report
    );
    let resumed = orch(&tree, &["rollout", "--resume"], &[]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert!(resumed.called("apply").is_empty(), "{:?}", resumed.calls);
    assert_eq!(resumed.called("plan"), ["prod/eu-west-1/data"].into());
}

#[test]
fn the_gate_checks_that_keys_are_enabled() {
    let tree = waved("{bake: 0s}");
    let run = orch(
        &tree,
        &["rollout"],
        &[("FAKE_TF_DISABLED", "dev/us-east-1/late")],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(wave_statuses(&run.report)[0], "failed");
    assert!(
        run.report["waves"][0]["gate"]
            .as_str()
            .unwrap()
            .contains("dev/us-east-1/late is not enabled"),
        "{}",
        run.report
    );
    assert!(run.called("apply").iter().all(|a| wave_of(a) == 0));
}

#[test]
fn plan_only_shows_every_wave_and_applies_nothing() {
    let tree = waved("{command: 'false'}");
    let run = orch(&tree, &["rollout", "--plan-only"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.called("apply").is_empty());
    assert_eq!(run.called("plan").len(), 5);
    for wave in ["canary", "prod-primary", "rest"] {
        assert!(
            run.stderr.contains(&format!("== wave {wave} (")),
            "{}",
            run.stderr
        );
    }
    assert_eq!(journals(&tree), 0, "--plan-only wrote a journal");
}

#[test]
fn one_wave_with_wave_name() {
    let tree = waved("{bake: 0s}");
    let run = orch(&tree, &["rollout", "--wave", "canary"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.called("apply"), CANARY.into());
    let unknown = orch(&tree, &["rollout", "--wave", "canari"], &[]);
    assert_eq!(unknown.code, 1);
    assert!(
        unknown.stderr.contains("no wave `canari`")
            && unknown.stderr.contains("did you mean `canary`"),
        "{}",
        unknown.stderr
    );
    assert!(unknown.calls.is_empty());
}

#[test]
fn rollout_changed_applies_only_what_changed() {
    let tree = waved("{bake: 0s}");
    assert_eq!(orch(&tree, &["rollout"], &[]).code, 0);
    let tree = tree.file(
        "live/prod/us-east-1/grant/node.yaml",
        "kind: grant\nkey: prod/us-east-1/data\ngrantee: arn:aws:iam::222222222222:role/reader\noperations: [Decrypt, DescribeKey]\n",
    );
    let run = orch(&tree, &["rollout", "--changed"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.called("apply"), ["prod/us-east-1/grant"].into());
}

/// Starts a rollout whose plan of prod/us-east-1/data takes long, waits until it runs, and
/// signals orch with `signal`.
fn stop_during_wave_two(tree: &Tree, signal: libc::c_int) -> std::process::Output {
    std::fs::create_dir_all(tree.path("fake-state")).unwrap();
    let child = command(
        tree,
        &["rollout"],
        &[("FAKE_TF_SLOW", "prod/us-east-1/data:20")],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let marker = tree.path(".orch/work/prod/us-east-1/data/.terraform");
    for _ in 0..400 {
        if marker.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    // SAFETY: signals the child we spawned.
    unsafe { libc::kill(child.id() as i32, signal) };
    child.wait_with_output().unwrap()
}

#[test]
fn ctrl_c_during_a_wave_then_resume_finishes_it() {
    let tree = waved("{bake: 0s}");
    let out = stop_during_wave_two(&tree, libc::SIGINT);
    let run = finish(&tree, out);
    assert_eq!(run.code, 130, "{}", run.stderr);
    let j = common::only_journal(tree.root());
    assert_eq!(j["status"], "interrupted");
    assert_eq!(j["waves"][0]["status"], "passed");
    let resumed = orch(&tree, &["rollout", "--resume"], &[]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert!(!resumed.calls.iter().any(|(a, _)| wave_of(a) == 0));
    assert_eq!(common::only_journal(tree.root())["status"], "finished");
}

#[test]
fn kill_9_during_a_wave_then_resume_finishes_it() {
    let tree = waved("{bake: 0s}");
    let out = stop_during_wave_two(&tree, libc::SIGKILL);
    assert_eq!(out.status.code(), None, "killed");
    let _ = finish(&tree, out);
    assert_eq!(common::only_journal(tree.root())["status"], "running");
    // The fake of the killed orch may still be sleeping; the lock of a dead orch is taken over.
    let resumed = orch(&tree, &["rollout", "--resume"], &[]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert!(!resumed
        .calls
        .iter()
        .any(|(a, c)| wave_of(a) == 0 && c == "apply"));
    assert_eq!(common::only_journal(tree.root())["status"], "finished");
    // The fake the killed orch started sleeps on in its own process group, as terraform would.
    kill_processes_in(tree.root());
}

/// Kills what is left running in `root` (by working directory).
fn kill_processes_in(root: &Path) {
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let cwd = std::fs::read_link(entry.path().join("cwd"));
        let pid = entry.file_name().to_string_lossy().parse::<i32>();
        if let (Ok(cwd), Ok(pid)) = (cwd, pid) {
            if cwd.starts_with(root) {
                // SAFETY: kill(2) on a process this test left behind.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Bad input: each a clear error, nothing applied

fn with_waves(waves: &str) -> Tree {
    fleet().file("live/orch.yaml", &format!("{ORCH_YAML}waves:\n{waves}"))
}

#[test]
fn a_wave_that_gets_no_node_is_an_error() {
    with_waves("  - {name: canary, match: [\"nope/**\"]}\n  - {name: rest, match: [\"**\"]}\n")
        .rejects(
            &["live/orch.yaml:5"],
            &["wave `canary` gets no node: its globs match no node"],
        );
    with_waves("  - {name: all, match: [\"**\"]}\n  - {name: late, match: [\"dev/**\"]}\n")
        .rejects(
            &["live/orch.yaml:6"],
            &["wave `late` gets no node: every node it matches belongs to an earlier wave"],
        );
}

#[test]
fn a_glob_that_matches_nothing_is_an_error_at_its_own_line() {
    // `devv/**` is a typo: its nodes would fall to `rest` and skip the canary.
    with_waves("  - name: canary\n    match:\n      - \"dev/**\"\n      - \"devv/**\"\n  - {name: rest, match: [\"**\"]}\n")
        .rejects(
            &["live/orch.yaml:8"],
            &["wave `canary`: `devv/**` matches no node", "would fall to a later wave"],
        );
}

#[test]
fn a_wave_name_is_a_name_not_a_path() {
    for name in ["../../x", "staging/canary", "Canary", ".hidden", "a b"] {
        let tree = with_waves(&format!(
            "  - {{name: \"{name}\", match: [\"dev/**\"], gate: {{command: \"true\"}}}}\n  - {{name: rest, match: [\"**\"]}}\n"
        ));
        let out = tree.rejects(
            &["live/orch.yaml:5"],
            &["wave name: ", "becomes a file name under .orch/"],
        );
        assert!(out.stderr.contains(name), "{name}: {}", out.stderr);
        // A rollout runs nothing, and writes nothing outside the tree.
        let run = orch(&tree, &["rollout", "--auto-approve"], &[]);
        assert_eq!(run.code, 1, "{name}: {}", run.stderr);
        assert!(run.calls.is_empty(), "{name}: {:?}", run.calls);
        assert!(!tree.path(".orch/gates").exists(), "{name}");
        assert!(!tree
            .root()
            .parent()
            .unwrap()
            .join("x-outputs.json")
            .exists());
    }
}

#[test]
fn two_waves_with_one_name_are_an_error() {
    with_waves("  - {name: canary, match: [\"dev/**\"]}\n  - {name: canary, match: [\"**\"]}\n")
        .rejects(&["live/orch.yaml:6"], &["two waves are named `canary`"]);
}

#[test]
fn an_unknown_gate_field_is_an_error() {
    with_waves("  - name: all\n    match: [\"**\"]\n    gate: {comand: ./check, bake: 5m}\n")
        .rejects(
            &["live/orch.yaml:7"],
            &[
                "unknown field `comand` in a wave's `gate`",
                "did you mean `command`?",
            ],
        );
    with_waves("  - name: all\n    match: [\"**\"]\n    aprove: true\n").rejects(
        &["live/orch.yaml:7"],
        &[
            "unknown field `aprove` in a wave",
            "did you mean `approve`?",
        ],
    );
}

#[test]
fn a_gate_timeout_that_is_zero_or_not_a_duration_or_has_no_command_is_an_error() {
    for (gate, says) in [
        (
            "{command: ./check, timeout: 0s}",
            "would stop the command before it starts",
        ),
        (
            "{command: ./check, timeout: five}",
            "`five` is not a duration",
        ),
        ("{bake: 5m, timeout: 1m}", "this gate has none"),
    ] {
        with_waves(&format!(
            "  - name: all\n    match: [\"**\"]\n    gate: {gate}\n"
        ))
        .rejects(&["live/orch.yaml:7"], &[says]);
    }
}

/// The wave `rest` of [`waved`] fails or passes on `gate`; the rollout's run and report.
fn gated(gate: &str, env: &[(&str, &str)]) -> (Tree, Run) {
    let tree = waved(gate);
    let run = orch(&tree, &["rollout"], env);
    (tree, run)
}

#[test]
fn a_gate_that_leaves_a_child_in_the_background_does_not_hold_the_rollout() {
    let started = std::time::Instant::now();
    let (tree, run) = gated(
        "{command: 'sleep 300 & echo $! > bg.pid; echo checked'}",
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(120),
        "the rollout waited for the background child"
    );
    assert!(run.stderr.contains("checked"), "{}", run.stderr);
    // The child went with the gate's process group.
    let pid = tree.read("bg.pid").trim().to_string();
    let gone = (0..50).any(|_| {
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let gone = state.is_empty() || state.contains(") Z ");
        if !gone {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        gone
    });
    assert!(gone, "the gate's background child {pid} is still running");
}

#[test]
fn a_gate_past_its_timeout_is_stopped_and_fails_the_wave() {
    let (_, run) = gated("{command: 'echo started; sleep 60', timeout: 1s}", &[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains(
            "the gate command `echo started; sleep 60` did not finish within its timeout of 1s; it was stopped"
        ),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("started"), "{}", run.stderr);
    assert_eq!(wave_statuses(&run.report), ["passed", "passed", "failed"]);
}

#[test]
fn a_gate_output_is_shown_like_terraform_output_and_kept_in_the_report() {
    let secret = ("ORCH_TEST_API_TOKEN", "tok-5f2c9a7e-secret");
    let (tree, run) = gated(
        "{command: 'echo \"token $ORCH_TEST_API_TOKEN\"; printf \"\\033[31mred\\n\\377\\n\"; exit 3'}",
        &[secret],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(!run.stderr.contains(secret.1), "{}", run.stderr);
    assert!(
        run.stderr.contains("token [redacted ORCH_TEST_API_TOKEN]"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains('\u{1b}'),
        "a raw escape: {}",
        run.stderr
    );
    assert!(run.stderr.contains("\\x1b[31mred"), "{}", run.stderr);
    assert!(run.stderr.contains('\u{fffd}'), "{}", run.stderr);
    let rest = &run.report["waves"][2];
    assert_eq!(rest["gate"], "FAILED: the gate command `echo \"token $ORCH_TEST_API_TOKEN\"; printf \"\\033[31mred\\n\\377\\n\"; exit 3` exited 3");
    let run_id = common::only_journal(tree.root())["id"]
        .as_str()
        .unwrap()
        .to_string();
    let log = tree.read(&format!(".orch/gates/{run_id}/rest.log"));
    assert!(
        log.contains("token [redacted ORCH_TEST_API_TOKEN]"),
        "{log}"
    );
    let kept = rest["gate_output"].as_str().unwrap();
    assert!(
        kept.contains("token [redacted ORCH_TEST_API_TOKEN]") && !kept.contains(secret.1),
        "{kept}"
    );
}

#[test]
fn the_nodes_of_waves_that_never_started_are_in_the_report_as_not_started() {
    let tree = with_waves(
        "  - name: canary\n    match: [\"dev/**\"]\n    gate: {command: 'exit 1'}\n  - {name: rest, match: [\"**\"]}\n",
    );
    let run = orch(&tree, &["rollout"], &[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(wave_statuses(&run.report), ["failed", "not started"]);
    let rows: BTreeSet<(String, String)> = common::report_statuses(&run.report["waves"][1])
        .into_iter()
        .collect();
    let expected: BTreeSet<(String, String)> = PROD_PRIMARY
        .iter()
        .chain(&REST)
        .map(|a| (a.to_string(), "not started".to_string()))
        .collect();
    assert_eq!(rows, expected);
}

#[test]
fn a_bake_that_does_not_parse_is_an_error() {
    for bad in ["five", "5", "1m1h", "48h"] {
        with_waves(&format!(
            "  - name: all\n    match: [\"**\"]\n    gate: {{bake: {bad}}}\n"
        ))
        .rejects(&["live/orch.yaml:7"], &[&format!("`{bad}`")]);
    }
}

#[test]
fn a_node_that_depends_on_a_later_wave_is_an_error_at_the_dependency() {
    // The replica in eu-west-1 would roll out before its primary in us-east-1.
    with_waves("  - {name: europe, match: [\"prod/eu-west-1/**\"]}\n  - {name: rest, match: [\"**\"]}\n")
        .rejects(
            &["live/prod/us-east-1/data/node.yaml:4", "live/orch.yaml:5"],
            &["prod/eu-west-1/data (wave `europe`) depends on prod/us-east-1/data, which is in the later wave `rest`"],
        );
}

/// Runs a rollout that must be refused before anything runs.
fn refused(tree: &Tree, args: &[&str], says: &str) {
    let run = orch(tree, args, &[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains(says),
        "stderr lacks {says:?}:\n{}",
        run.stderr
    );
    assert!(run.calls.is_empty(), "terraform ran: {:?}", run.calls);
}

#[test]
fn resume_without_an_unfinished_run_or_with_an_unknown_id_is_an_error() {
    let tree = waved("{bake: 0s}");
    refused(&tree, &["rollout", "--resume"], "no rollout to resume");
    assert_eq!(orch(&tree, &["rollout", "--wave", "canary"], &[]).code, 0);
    refused(&tree, &["rollout", "--resume"], "no rollout to resume");
    refused(
        &tree,
        &["rollout", "--resume", "20990101T000000Z-1"],
        "no rollout run `20990101T000000Z-1`",
    );
    let id = common::only_journal(tree.root())["id"]
        .as_str()
        .unwrap()
        .to_string();
    refused(&tree, &["rollout", "--resume", &id], "has already finished");
}

#[test]
fn a_corrupt_journal_is_an_error() {
    let tree = waved("{bake: 0s}");
    let failed = orch(
        &tree,
        &["rollout"],
        &[("FAKE_TF_APPLY_FAIL", "dev/us-east-1/app")],
    );
    assert_eq!(failed.code, 1);
    let id = common::only_journal(tree.root())["id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!(".orch/runs/{id}.json");
    let text = tree.read(&path);
    let tree = tree.file(&path, &text[..text.len() / 2]);
    refused(&tree, &["rollout", "--resume"], "is corrupt");
    refused(&tree, &["rollout", "--resume", &id], "is corrupt");
    let tree = tree.file(&path, &text.replace("\"version\":1", "\"version\":7"));
    refused(
        &tree,
        &["rollout", "--resume"],
        "is version 7; this orch reads version 1",
    );
    let tree = tree.file(&path, &text.replace("\"changed\"", "\"chnaged\""));
    refused(&tree, &["rollout", "--resume"], "unknown field `chnaged`");
}

#[test]
fn a_journal_from_another_tree_is_an_error() {
    let first = waved("{bake: 0s}");
    assert_eq!(
        orch(
            &first,
            &["rollout"],
            &[("FAKE_TF_APPLY_FAIL", "dev/us-east-1/app")]
        )
        .code,
        1
    );
    let j = common::only_journal(first.root());
    let id = j["id"].as_str().unwrap();
    let other = waved("{bake: 0s}").file(
        &format!(".orch/runs/{id}.json"),
        &serde_json::to_string_pretty(&j).unwrap(),
    );
    refused(&other, &["rollout", "--resume"], "belongs to the tree");
}

#[test]
fn a_resume_after_the_waves_changed_is_an_error() {
    let tree = waved("{bake: 0s}");
    assert_eq!(
        orch(
            &tree,
            &["rollout"],
            &[("FAKE_TF_APPLY_FAIL", "dev/us-east-1/app")]
        )
        .code,
        1
    );
    let tree = tree.file(
        "live/orch.yaml",
        &format!("{ORCH_YAML}waves:\n  - {{name: everything, match: [\"**\"]}}\n"),
    );
    refused(&tree, &["rollout", "--resume"], "are not those of run");
}

#[test]
fn a_rollout_needs_waves_that_cover_every_node() {
    refused(&fleet(), &["rollout"], "orch.yaml has no `waves:`");
    let tree = with_waves("  - {name: canary, match: [\"dev/**\"]}\n");
    refused(&tree, &["rollout"], "3 node(s) belong to no wave (prod/eu-west-1/data, prod/us-east-1/data, prod/us-east-1/grant)");
    assert_eq!(journals(&tree), 0);
}

#[test]
fn a_wave_to_approve_without_a_terminal_needs_auto_approve() {
    let tree = with_waves("  - {name: canary, match: [\"dev/**\"]}\n  - {name: rest, match: [\"**\"], approve: true}\n");
    refused(&tree, &["rollout"], "wave `rest` asks for approval");
    assert_eq!(journals(&tree), 0);
    let run = orch(&tree, &["rollout", "--auto-approve"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.called("apply").len(), 5);
}

/// Runs `orch rollout` on a terminal (util-linux `script` gives it one) and answers `answer` to
/// its question.
fn rollout_on_a_terminal(tree: &Tree, answer: &str) -> Run {
    use std::io::Write as _;
    std::fs::create_dir_all(tree.path("fake-state")).unwrap();
    let orch = format!(
        "{} --no-color --live {} rollout --report {}",
        env!("CARGO_BIN_EXE_orch"),
        tree.path("live").display(),
        tree.path("report.json").display()
    );
    let mut cmd = Command::new("script");
    cmd.args(["-qec", &orch, "/dev/null"])
        .current_dir(tree.root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in command(tree, &[], &[]).get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let mut child = cmd
        .spawn()
        .expect("util-linux `script` runs orch on a terminal: install util-linux");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(format!("{answer}\n").as_bytes()).unwrap();
    // Kept open until orch is done: the end of input would reach it as a ^D.
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    finish(tree, out)
}

#[test]
fn a_wave_to_approve_asks_on_a_terminal() {
    let tree = with_waves(
        "  - {name: canary, match: [\"dev/**\"]}\n  - {name: rest, match: [\"**\"], approve: true}\n",
    );
    let refused = rollout_on_a_terminal(&tree, "no");
    assert_eq!(refused.code, 1);
    assert_eq!(wave_statuses(&refused.report), ["passed", "failed"]);
    assert!(refused
        .called("apply")
        .iter()
        .all(|a| a.starts_with("dev/")));
    let approved = rollout_on_a_terminal(&tree, "yes");
    assert_eq!(approved.code, 0);
    assert_eq!(wave_statuses(&approved.report), ["passed", "passed"]);
    assert_eq!(approved.called("apply").len(), 3);
}

#[test]
fn a_rollout_report_is_json_or_a_page_with_its_waves() {
    let tree = waved("{bake: 0s}");
    std::fs::create_dir_all(tree.path("fake-state")).unwrap();
    let run = |report: &str| {
        finish(
            &tree,
            command(&tree, &["rollout", "--report", report], &[])
                .output()
                .unwrap(),
        )
    };
    let bad = run("run.txt");
    assert_eq!(bad.code, 1, "{}", bad.stderr);
    assert!(bad.stderr.contains("is none of them"), "{}", bad.stderr);
    assert!(bad.calls.is_empty(), "terraform ran: {:?}", bad.calls);
    let page = tree.path("run.html");
    let good = run(page.to_str().unwrap());
    assert_eq!(good.code, 0, "{}", good.stderr);
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"), "not a page:\n{html}");
    for wave in ["canary", "prod-primary", "rest"] {
        assert!(html.contains(wave), "the page lacks wave {wave}");
    }
    for address in ALL {
        assert!(html.contains(address), "the page lacks {address}");
    }
}

/// Every `.orch` directory under `dir`, relative to it.
fn orch_dirs(dir: &Path, under: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if entry.file_type().unwrap().is_dir() {
            if entry.file_name() == ".orch" {
                found.push(path.strip_prefix(under).unwrap().to_path_buf());
            } else {
                orch_dirs(&path, under, found);
            }
        }
    }
}

/// A directory to run orch in, the `--live` arguments and the environment that name the tree.
type Way<'a> = (PathBuf, &'a [&'a str], &'a [(&'a str, &'a str)]);

#[test]
fn the_tree_has_one_orch_dir_whichever_path_or_directory_names_it() {
    let tree = waved("{command: 'true'}").dir("elsewhere");
    let live = tree.path("live");
    let run_in = |cwd: &Path, args: &[&str], env: &[(&str, &str)]| {
        std::fs::create_dir_all(tree.path("fake-state")).unwrap();
        let report = tree.path("report.json");
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--report", report.to_str().unwrap()]);
        let out = command_in(&tree, cwd, &all, env).output().unwrap();
        finish(&tree, out)
    };
    // A rollout from inside live/, naming it `.`.
    let rollout = run_in(&live, &["--live", ".", "rollout"], &[]);
    assert_eq!(rollout.code, 0, "{}", rollout.stderr);
    assert_eq!(rollout.called("apply").len(), 5);
    // Every other way of naming the tree finds what that rollout recorded: nothing changed.
    let ways: [Way; 5] = [
        (live.join("prod"), &["--live", ".."], &[]),
        (live.join("dev/us-east-1"), &[], &[("ORCH_LIVE", "../..")]),
        (live.clone(), &[], &[("ORCH_LIVE", ".")]),
        (tree.path("elsewhere"), &["--live", "../live"], &[]),
        (live.join("prod"), &["--live", "../../live/./prod/.."], &[]),
    ];
    for (cwd, live_args, env) in ways {
        let mut args = live_args.to_vec();
        args.extend(["plan", "--all", "--changed"]);
        let plan = run_in(&cwd, &args, env);
        assert_eq!(plan.code, 0, "{}: {}", cwd.display(), plan.stderr);
        assert!(
            plan.calls.is_empty() && plan.stderr.contains("0 of 5 selected nodes changed"),
            "{} {args:?} {env:?}: {:?}\n{}",
            cwd.display(),
            plan.calls,
            plan.stderr
        );
        let mut args = live_args.to_vec();
        args.extend(["output", "prod/us-east-1/data"]);
        let output = command_in(&tree, &cwd, &args, env).output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let mut args = live_args.to_vec();
        args.extend(["render", "dev/us-east-1/app"]);
        let render = command_in(&tree, &cwd, &args, env).output().unwrap();
        assert!(
            render.status.success(),
            "{}",
            String::from_utf8_lossy(&render.stderr)
        );
    }
    let resumed = run_in(
        &live.join("prod"),
        &["--live", "..", "rollout", "--resume"],
        &[],
    );
    let runs = std::fs::canonicalize(tree.path(".orch/runs")).unwrap();
    assert!(
        resumed.stderr.contains(&format!(
            "no rollout to resume: every run in {} has finished",
            runs.display()
        )),
        "{}",
        resumed.stderr
    );
    let mut found = Vec::new();
    orch_dirs(tree.root(), tree.root(), &mut found);
    assert_eq!(found, [PathBuf::from(".orch")]);
    assert_eq!(journals(&tree), 1);
}
