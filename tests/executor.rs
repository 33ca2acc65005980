//! The executor against a fake terraform (tests/fake/terraform) that records every call with its
//! start and end time: DAG order, the parallelism cap, skipped dependents, fail-fast, retries of
//! transient errors, exit codes, provisional plans, init skipping, the lock and Ctrl-C.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::fake::{command, finish, orch, Run};
use common::Tree;

/// The base fleet plus consumers and a depends_on chain:
/// prod/us-east-1/data -> prod/eu-west-1/data (replica), prod/us-east-1/grant, prod/us-east-1/bucket;
/// dev/us-east-1/app -> dev/us-east-1/late (depends_on).
fn fleet() -> Tree {
    Tree::new().with_consumers()
}

/// Every dependency's plan ended before its dependent's plan started.
fn assert_after(run: &Run, first: &str, then: &str) {
    let a = run
        .plan_of(first)
        .unwrap_or_else(|| panic!("{first} was not planned"));
    let b = run
        .plan_of(then)
        .unwrap_or_else(|| panic!("{then} was not planned"));
    assert!(a.end <= b.start, "{then} started before {first} ended");
}

const EDGES: [(&str, &str); 4] = [
    ("prod/us-east-1/data", "prod/eu-west-1/data"),
    ("prod/us-east-1/data", "prod/us-east-1/grant"),
    ("prod/us-east-1/data", "prod/us-east-1/bucket"),
    ("dev/us-east-1/app", "dev/us-east-1/late"),
];

#[test]
fn plans_run_in_dag_order() {
    let tree = fleet();
    let run = orch(
        &tree,
        &["plan", "--all", "--parallelism", "4"],
        &[("FAKE_TF_SLEEP", "0.2")],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.plans().len(), 6);
    for (first, then) in EDGES {
        assert_after(&run, first, then);
    }
}

#[test]
fn a_node_starts_as_soon_as_its_own_dependencies_are_done() {
    // dev/us-east-1/late waits for dev/us-east-1/app only, not for the prod chain: with room for
    // every node at once, it starts before the prod consumers finish.
    let tree = fleet();
    let run = orch(
        &tree,
        &["plan", "--all", "--parallelism", "8"],
        &[("FAKE_TF_SLEEP", "0.3")],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let late = run.plan_of("dev/us-east-1/late").unwrap();
    let grant = run.plan_of("prod/us-east-1/grant").unwrap();
    assert!(late.start < grant.end, "late waited for an unrelated level");
}

#[test]
fn parallelism_caps_the_nodes_running_at_once() {
    let mut tree = Tree::new();
    for i in 0..8 {
        tree = tree.file(
            &format!("live/dev/us-east-1/k{i}/node.yaml"),
            "key_users: [arn:aws:iam::222222222222:role/app]\n",
        );
    }
    let run = orch(
        &tree,
        &["plan", "--all", "--parallelism", "3"],
        &[("FAKE_TF_SLEEP", "0.3")],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let plans = run.plans();
    let most = plans
        .iter()
        .map(|p| {
            plans
                .iter()
                .filter(|q| q.start <= p.start && p.start < q.end)
                .count()
        })
        .max()
        .unwrap();
    assert_eq!(most, 3, "at most 3 plans at once, and the cap is reached");
}

#[test]
fn a_failed_node_skips_its_dependents_and_independent_nodes_go_on() {
    let tree = fleet();
    let run = orch(
        &tree,
        &["plan", "--all"],
        &[("FAKE_TF_FAIL", "prod/us-east-1/data")],
    );
    assert_eq!(run.code, 1);
    for skipped in [
        "prod/eu-west-1/data",
        "prod/us-east-1/grant",
        "prod/us-east-1/bucket",
    ] {
        assert!(run.plan_of(skipped).is_none(), "{skipped} ran");
        assert!(
            run.status(skipped).starts_with("skipped"),
            "{skipped}: {}",
            run.status(skipped)
        );
        assert!(run.stderr.contains(&format!(
            "[{skipped}] skipped: depends on prod/us-east-1/data"
        )));
    }
    assert_eq!(run.status("prod/us-east-1/data"), "failed");
    assert!(run.plan_of("dev/us-east-1/late").is_some());
    assert!(
        run.stderr.contains("Error: boom in prod/us-east-1/data"),
        "the failed node's output is shown whole"
    );
}

#[test]
fn fail_fast_starts_nothing_after_a_failure() {
    let tree = fleet();
    let run = orch(
        &tree,
        &["plan", "--all", "--parallelism", "1", "--fail-fast"],
        &[("FAKE_TF_FAIL", "dev/us-east-1/app prod/us-east-1/data")],
    );
    assert_eq!(run.code, 1);
    assert_eq!(
        run.calls
            .iter()
            .filter(|c| c.command.starts_with("plan"))
            .count(),
        1,
        "{:?}",
        run.calls
    );
    let not_started = run.report["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["status"] == "not started")
        .count();
    assert!(not_started >= 1);
}

#[test]
fn transient_errors_are_retried_with_backoff_a_bounded_number_of_times() {
    let tree = Tree::new();
    let run = orch(
        &tree,
        &["plan", "--all"],
        &[("FAKE_TF_TRANSIENT", "dev/us-east-1/app:2")],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let throttled = run
        .calls
        .iter()
        .filter(|c| c.command == "plan-throttled")
        .count();
    assert_eq!(throttled, 2);
    assert_eq!(run.status("dev/us-east-1/app"), "changes");
    // The report counts tries of the node, not terraform calls (init, plan): 1 and 2 retries.
    let attempts = |address: &str| common::report_row(&run.report, address)["attempts"].clone();
    assert_eq!(attempts("dev/us-east-1/app"), 3);
    assert_eq!(attempts("prod/us-east-1/data"), 1);

    let tree = Tree::new();
    let run = orch(
        &tree,
        &["plan", "--all"],
        &[("FAKE_TF_TRANSIENT", "dev/us-east-1/app:9")],
    );
    assert_eq!(run.code, 1);
    let throttled = run
        .calls
        .iter()
        .filter(|c| c.command == "plan-throttled")
        .count();
    assert_eq!(throttled, 4, "one try and three retries");
}

#[test]
fn exit_codes_rank_error_over_changes_over_none() {
    let tree = Tree::new();
    assert_eq!(orch(&tree, &["plan", "--all"], &[]).code, 0);
    assert_eq!(
        orch(&tree, &["plan", "--all", "--detailed-exitcode"], &[]).code,
        2
    );
    assert_eq!(
        orch(
            &tree,
            &["plan", "--all", "--detailed-exitcode"],
            &[("FAKE_TF_NO_CHANGES", "1")]
        )
        .code,
        0
    );
    let failed = orch(
        &tree,
        &["plan", "--all", "--detailed-exitcode"],
        &[("FAKE_TF_FAIL", "dev/us-east-1/app")],
    );
    assert_eq!(failed.code, 1, "1 wins over 2");
}

#[test]
fn init_is_skipped_once_a_node_is_initialized() {
    let tree = Tree::new();
    let first = orch(&tree, &["plan", "--all"], &[]);
    assert_eq!(
        first.calls.iter().filter(|c| c.command == "init").count(),
        3
    );
    let second = orch(&tree, &["plan", "--all"], &[]);
    assert_eq!(
        second.calls.iter().filter(|c| c.command == "init").count(),
        0
    );
    assert_eq!(second.plans().len(), 3);
}

#[test]
fn dependents_plan_provisionally_and_apply_records_outputs_for_them() {
    let tree = fleet();
    let plan = orch(&tree, &["plan", "--all"], &[]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    let provisional: BTreeMap<String, bool> = plan.report["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["address"].as_str().unwrap().to_string(),
                n["provisional"].as_bool().unwrap(),
            )
        })
        .collect();
    assert!(provisional["prod/eu-west-1/data"] && provisional["prod/us-east-1/grant"]);
    assert!(!provisional["prod/us-east-1/data"]);

    // A provisional plan is never applied.
    let alone = orch(
        &tree,
        &["apply", "prod/eu-west-1/data", "--auto-approve"],
        &[],
    );
    assert_eq!(alone.code, 1);
    assert!(
        alone.stderr.contains("provisional plan is never applied"),
        "{}",
        alone.stderr
    );
    assert!(!alone.calls.iter().any(|c| c.command == "apply"));

    let apply = orch(&tree, &["apply", "--all", "--auto-approve"], &[]);
    assert_eq!(apply.code, 0, "{}", apply.stderr);
    assert_eq!(
        apply.calls.iter().filter(|c| c.command == "apply").count(),
        6
    );
    let tfvars = tree.read(".orch/work/prod/eu-west-1/data/terraform.tfvars.json");
    assert!(
        tfvars.contains("arn:aws:kms:us-east-1:111111111111:key/fake-data"),
        "{tfvars}"
    );
    let output = tree.run(&["output", "prod/us-east-1/data"]);
    assert!(
        output.stdout.contains("\"key_id\": \"fake-data\""),
        "{}",
        output.stdout
    );
}

#[test]
fn apply_without_a_terminal_needs_auto_approve() {
    let tree = Tree::new();
    let run = orch(&tree, &["apply", "--all"], &[]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("--auto-approve"), "{}", run.stderr);
    assert!(run.calls.is_empty());
}

#[test]
fn destroy_runs_dependents_first() {
    let tree = fleet();
    assert_eq!(
        orch(&tree, &["apply", "--all", "--auto-approve"], &[]).code,
        0
    );
    let run = orch(
        &tree,
        &["destroy", "--all", "--auto-approve"],
        &[("FAKE_TF_SLEEP", "0.1")],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    for (first, then) in EDGES {
        assert_after(&run, then, first);
    }
    assert!(!tree.path(".orch/outputs/prod/us-east-1/data.json").exists());
}

#[test]
fn a_second_orch_is_refused_while_one_runs() {
    let tree = Tree::new().file(".orch/lock", &format!("{}\n", std::process::id()));
    let run = orch(&tree, &["plan", "--all"], &[]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("another orch"), "{}", run.stderr);
    assert!(run.calls.is_empty());

    // A lock left by a process that is gone is taken over.
    let tree = Tree::new().file(".orch/lock", "999999999\n");
    assert_eq!(orch(&tree, &["plan", "--all"], &[]).code, 0);
    assert!(
        !tree.path(".orch/lock").exists(),
        "the lock is released at the end"
    );
}

#[test]
fn a_missing_terraform_is_one_clear_error() {
    let tree = Tree::new();
    let out = Command::new(env!("CARGO_BIN_EXE_orch"))
        .arg("--live")
        .arg(tree.path("live"))
        .args(["plan", "--all", "--terraform-bin", "/nonexistent/terraform"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("`/nonexistent/terraform`, which is not an executable"),
        "{stderr}"
    );
    assert!(!tree.path(".orch/lock").exists());
}

/// Processes whose working directory is inside `root`: what a run must not leave behind.
fn processes_in(root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cwd) = std::fs::read_link(entry.path().join("cwd")) {
            if cwd.starts_with(root) && cwd != root {
                found.push(format!(
                    "{} {}",
                    entry.file_name().to_string_lossy(),
                    cwd.display()
                ));
            }
        }
    }
    found
}

#[test]
fn ctrl_c_stops_new_work_interrupts_running_terraform_once_and_exits_130() {
    let mut tree = Tree::new();
    for i in 0..6 {
        tree = tree.file(
            &format!("live/dev/us-east-1/k{i}/node.yaml"),
            "key_users: [arn:aws:iam::222222222222:role/app]\n",
        );
    }
    let child = command(
        &tree,
        &["plan", "--all", "--parallelism", "2"],
        &[("FAKE_TF_SLEEP", "30")],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    // Wait until two plans are under way (both have done init).
    let log = tree.path("fake.log");
    for _ in 0..200 {
        let inits = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.ends_with(" init"))
            .count();
        if inits >= 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: signals the child we spawned.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let started = std::time::Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "orch waited for the 30 s plans"
    );
    let run = finish(&tree, out);
    assert_eq!(run.code, 130, "{}", run.stderr);
    let interrupted: Vec<_> = run
        .calls
        .iter()
        .filter(|c| c.command == "plan-interrupted")
        .collect();
    assert_eq!(
        interrupted.len(),
        2,
        "both running plans got the interrupt: {:?}",
        run.calls
    );
    assert_eq!(
        run.calls.iter().filter(|c| c.command == "init").count(),
        2,
        "nothing new started"
    );
    // The group's SIGKILL is sent before orch exits, but a loaded machine may not have run the
    // killed processes to their end yet: give them a few seconds, far less than the 30 s sleep
    // a process left running would still have ahead of it.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !processes_in(tree.root()).is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        processes_in(tree.root()).is_empty(),
        "left behind: {:?}",
        processes_in(tree.root())
    );
    assert!(!tree.path(".orch/lock").exists(), "the lock is released");
}
