//! The `stacks` layout: `layout:` in orch.yaml and its bad inputs, the stack graph's check, the
//! stack root modules orch renders, and runs against the fake terraform's stacks mode
//! (tests/fake/stacks.sh): per-node rows from per-stack runs, `-target` for selections, failures
//! on the node terraform names, the order of stacks, recorded outputs and `--changed`.

mod common;

use std::collections::BTreeSet;

use common::fake::{orch, Run};
use common::{report_row, report_statuses, Tree};
use serde_json::Value;

const ORCH: &str = "live/orch.yaml";
const DATA: &str = "live/prod/us-east-1/data/node.yaml";

fn layout(value: &str) -> String {
    format!("layout: {value}\ndefaults:\n  deletion_window_days: 30\n  tags: {{ManagedBy: orch}}\n")
}

/// The base fleet with its consumers in the stacks layout. Stacks: prod/us-east-1/keys {data},
/// prod/eu-west-1/replicas {data}, prod/us-east-1/consumers {bucket, grant},
/// dev/us-east-1/keys {app, late (depends_on app)}.
fn stacks() -> Tree {
    Tree::new().with_consumers().file(ORCH, &layout("stacks"))
}

const KEYS: &str = ".orch/work/_stacks/prod/us-east-1/keys";

// ---- layout: in orch.yaml ---------------------------------------------------------------------

#[test]
fn an_unknown_layout_is_an_error_with_the_nearest_name() {
    Tree::new().file(ORCH, &layout("stack")).rejects(
        &[&format!("{ORCH}:1")],
        &[
            "unknown layout `stack`",
            "did you mean `stacks`?",
            "`per-node`",
        ],
    );
}

#[test]
fn a_layout_that_is_a_list_or_a_mapping_is_an_error() {
    for value in ["[stacks]", "{type: stacks}"] {
        Tree::new().file(ORCH, &layout(value)).rejects(
            &[&format!("{ORCH}:1")],
            &["`layout` must be a single value, not a list or mapping"],
        );
    }
}

#[test]
fn a_layout_of_another_scalar_type_is_text_and_unknown() {
    for (value, shown) in [("true", "true"), ("1", "1"), ("\"null\"", "null")] {
        Tree::new().file(ORCH, &layout(value)).rejects(
            &[&format!("{ORCH}:1")],
            &[&format!("unknown layout `{shown}`")],
        );
    }
}

#[test]
fn a_null_layout_is_the_default_per_node() {
    for value in ["~", "null", ""] {
        let tree = Tree::new().file(ORCH, &layout(value));
        tree.run(&["render", "--all"]).assert_success();
        assert!(tree
            .path(".orch/work/prod/us-east-1/data/main.tf")
            .is_file());
        assert!(!tree.path(".orch/work/_stacks").exists());
    }
}

#[test]
fn a_quoted_layout_is_its_text() {
    let tree = Tree::new().file(ORCH, &layout("\"stacks\""));
    tree.run(&["render", "--all"]).assert_success();
    assert!(tree.path(KEYS).join("main.tf").is_file());
    assert!(!tree.path(".orch/work/prod").exists());
}

// ---- the stack graph --------------------------------------------------------------------------

#[test]
fn depends_on_both_ways_between_two_stacks_is_an_error_naming_the_edges() {
    let other = "live/prod/us-east-1/other/node.yaml";
    let late = "live/dev/us-east-1/late/node.yaml";
    let tree = Tree::new()
        .file(ORCH, &layout("stacks"))
        .file(
            DATA,
            "description: x\nmulti_region: true\nreplicas: [eu-west-1]\ndepends_on: [dev/us-east-1/app]\n",
        )
        .file(other, "description: other\n")
        .file(late, "description: late\ndepends_on: [prod/us-east-1/other]\n");
    let out = tree.rejects(
        &[&format!("{DATA}:4"), &format!("{late}:2")],
        &[
            "these depend on each other: dev/us-east-1/keys, prod/us-east-1/keys",
            "dev/us-east-1/app -> prod/us-east-1/data (stack dev/us-east-1/keys -> stack prod/us-east-1/keys)",
            "prod/us-east-1/other -> dev/us-east-1/late (stack prod/us-east-1/keys -> stack dev/us-east-1/keys)",
            "use `layout: per-node`",
        ],
    );
    assert_eq!(out.reported_count(), 1, "{}", out.stderr);
    // The same tree is fine per node: the nodes themselves have no cycle.
    tree.file(ORCH, &layout("per-node"))
        .run(&["validate"])
        .assert_success();
}

#[test]
fn access_across_accounts_both_ways_is_no_cycle_between_tiers() {
    let out = Tree::new()
        .file(ORCH, &layout("stacks"))
        .file(
            "live/prod/us-east-1/uses-dev/node.yaml",
            "kind: key-access\nkey: dev/us-east-1/app\nroles: [arn:aws:iam::111111111111:role/app]\ncapabilities: [read-data]\n",
        )
        .file(
            "live/dev/us-east-1/uses-prod/node.yaml",
            "kind: key-access\nkey: prod/us-east-1/data\nroles: [arn:aws:iam::222222222222:role/app]\ncapabilities: [read-data]\n",
        )
        .run(&["validate"]);
    out.assert_success();
    // Keys and consumers of each account in us-east-1, prod's replicas in eu-west-1.
    assert!(
        out.stdout.ends_with("; valid (5 stacks)\n"),
        "{}",
        out.stdout
    );
}

// ---- rendering --------------------------------------------------------------------------------

#[test]
fn each_node_is_a_module_block_over_its_per_node_files() {
    let tree = stacks().file(
        "live/prod/us-east-1/2fa/node.yaml",
        "description: second factor\ntags: {DataCategory: secret}\n",
    );
    tree.run(&["render", "--all"]).assert_success();
    let main = tree.read(&format!("{KEYS}/main.tf"));
    assert!(
        main.contains("module \"data\" {\n  source = \"./data\"\n"),
        "{main}"
    );
    assert!(
        main.contains("module \"_2fa\" {\n  source = \"./2fa\"\n"),
        "{main}"
    );
    // Its own tags: its own provider configuration, given to its module.
    assert!(
        main.contains("providers = {\n    aws = aws.tags_2\n  }"),
        "{main}"
    );
    let providers = tree.read(&format!("{KEYS}/providers.tf"));
    assert_eq!(
        providers.matches("provider \"aws\" {").count(),
        2,
        "{providers}"
    );
    assert!(providers.contains("alias  = \"tags_2\""), "{providers}");
    let outputs = tree.read(&format!("{KEYS}/outputs.tf"));
    assert!(outputs.contains("value       = module._2fa\n"), "{outputs}");
    assert!(tree
        .read(&format!("{KEYS}/backend.tf"))
        .contains("path = \"../../../../../state/_stacks/prod/us-east-1/keys/terraform.tfstate\""));
    let late = tree.read(".orch/work/_stacks/dev/us-east-1/keys/main.tf");
    assert!(late.contains("depends_on = [module.app]"), "{late}");

    // The module files are exactly the per-node layout's.
    let per_node = Tree::new()
        .with_consumers()
        .file(ORCH, &layout("per-node"))
        .file(
            "live/prod/us-east-1/2fa/node.yaml",
            "description: second factor\ntags: {DataCategory: secret}\n",
        );
    per_node.run(&["render", "--all"]).assert_success();
    for (address, stack) in [
        ("prod/us-east-1/data", "prod/us-east-1/keys/data"),
        ("prod/us-east-1/2fa", "prod/us-east-1/keys/2fa"),
        ("prod/eu-west-1/data", "prod/eu-west-1/replicas/data"),
        ("prod/us-east-1/grant", "prod/us-east-1/consumers/grant"),
    ] {
        for file in ["main.tf", "variables.tf", "outputs.tf"] {
            assert_eq!(
                tree.read(&format!(".orch/work/_stacks/{stack}/{file}")),
                per_node.read(&format!(".orch/work/{address}/{file}")),
                "{address} {file}"
            );
        }
        let files: BTreeSet<String> =
            std::fs::read_dir(tree.path(&format!(".orch/work/_stacks/{stack}")))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
        assert_eq!(
            files,
            BTreeSet::from(["main.tf", "outputs.tf", "variables.tf"].map(String::from))
        );
        // And the stack's tfvars carry the node's per-node tfvars whole.
        let per_node_vars: Value = serde_json::from_str(
            &per_node.read(&format!(".orch/work/{address}/terraform.tfvars.json")),
        )
        .unwrap();
        let (stack_dir, name) = stack.rsplit_once('/').unwrap();
        let vars: Value = serde_json::from_str(&tree.read(&format!(
            ".orch/work/_stacks/{stack_dir}/terraform.tfvars.json"
        )))
        .unwrap();
        let module = if name == "2fa" { "_2fa" } else { name };
        assert_eq!(vars["nodes"][module], per_node_vars, "{address}");
    }
}

#[test]
fn user_values_travel_in_the_stacks_tfvars_json_not_hcl() {
    let tricky = "x \"${evil}\" %{ if true }y%{ endif }\nz";
    let tree = stacks().file(
        DATA,
        &format!(
            "description: {}\nmulti_region: true\nreplicas: [eu-west-1]\n",
            serde_json::to_string(tricky).unwrap()
        ),
    );
    tree.run(&["render", "--all"]).assert_success();
    let vars: Value =
        serde_json::from_str(&tree.read(&format!("{KEYS}/terraform.tfvars.json"))).unwrap();
    assert_eq!(vars["nodes"]["data"]["description"], tricky);
    for file in [
        "main.tf",
        "variables.tf",
        "providers.tf",
        "outputs.tf",
        "backend.tf",
        "data/main.tf",
    ] {
        assert!(
            !tree.read(&format!("{KEYS}/{file}")).contains("evil"),
            "{file} holds a user value"
        );
    }
}

#[test]
fn an_s3_backend_keeps_one_state_object_per_stack() {
    let tree = stacks().file(
        ORCH,
        "layout: stacks\nbackend: {type: s3, bucket: \"tf-{account_id}\", region: us-east-1, key_prefix: fleet}\n",
    );
    tree.run(&["render", "--all"]).assert_success();
    let backend = tree.read(&format!("{KEYS}/backend.tf"));
    assert!(
        backend.contains("key          = \"fleet/_stacks/prod/us-east-1/keys/terraform.tfstate\""),
        "{backend}"
    );
    assert!(
        backend.contains("bucket       = \"tf-111111111111\""),
        "{backend}"
    );
}

// ---- runs against the fake terraform ------------------------------------------------------------

fn row<'a>(run: &'a Run, address: &str) -> &'a Value {
    assert!(!run.report.is_null(), "no report:\n{}", run.stderr);
    report_row(&run.report, address)
}

fn rows(run: &Run) -> Vec<(String, String)> {
    assert!(!run.report.is_null(), "no report:\n{}", run.stderr);
    report_statuses(&run.report)
}

/// The (stack, modules) of each call of `command`, in the order they started.
fn calls(run: &Run, command: &str) -> Vec<(String, Vec<String>)> {
    let mut calls: Vec<_> = run.calls.iter().filter(|c| c.command == command).collect();
    calls.sort_by_key(|c| c.start);
    calls
        .into_iter()
        .map(|c| {
            (
                c.address.trim_start_matches("_stacks/").to_string(),
                c.modules.clone(),
            )
        })
        .collect()
}

fn ended_before(run: &Run, first: &str, then: &str, command: &str) -> bool {
    let find = |stack: &str| {
        run.calls
            .iter()
            .find(|c| c.command == command && c.address == format!("_stacks/{stack}"))
            .unwrap_or_else(|| panic!("no {command} of {stack}: {:?}", run.calls))
    };
    find(first).end <= find(then).start
}

#[test]
fn a_plan_runs_once_per_stack_and_reports_every_node() {
    let tree = stacks();
    let run = orch(&tree, &["plan", "--all"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let plans = calls(&run, "plan");
    assert_eq!(plans.len(), 4, "{plans:?}");
    assert!(plans.contains(&(
        "dev/us-east-1/keys".into(),
        vec!["app".into(), "late".into()]
    )));
    assert_eq!(rows(&run).len(), 6, "{:?}", rows(&run));
    for (address, status) in rows(&run) {
        assert_eq!(status, "changes", "{address}");
        assert_eq!(row(&run, &address)["add"], 1, "{address}");
        let provisional = address == "prod/eu-west-1/data"
            || address.contains("/us-east-1/b")
            || address.ends_with("grant");
        assert_eq!(row(&run, &address)["provisional"], provisional, "{address}");
    }
    assert!(ended_before(
        &run,
        "prod/us-east-1/keys",
        "prod/eu-west-1/replicas",
        "plan"
    ));
    assert!(ended_before(
        &run,
        "prod/us-east-1/keys",
        "prod/us-east-1/consumers",
        "plan"
    ));
    // Each node's own part of the plan, not the stack's whole output.
    assert!(run
        .stderr
        .contains("# module.late.aws_kms_key.this will be created"));
    assert_eq!(
        run.stderr.matches("# module.late.").count(),
        1,
        "{}",
        run.stderr
    );
}

#[test]
fn a_stack_that_gains_a_node_is_initialized_again_and_no_other() {
    let tree = stacks();
    let first = orch(&tree, &["plan", "--all"], &[]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(
        calls(&first, "init").len(),
        4,
        "{:?}",
        calls(&first, "init")
    );
    // A new module block must be installed by init before terraform will plan it.
    let tree = tree.file("live/dev/us-east-1/new/node.yaml", "description: new\n");
    let second = orch(&tree, &["plan", "--all"], &[]);
    assert_eq!(second.code, 0, "{}", second.stderr);
    let inits: Vec<String> = calls(&second, "init").into_iter().map(|c| c.0).collect();
    assert_eq!(inits, ["dev/us-east-1/keys"]);
}

#[test]
fn a_selection_targets_its_module_blocks_and_a_whole_stack_is_not_targeted() {
    let tree = stacks();
    let run = orch(&tree, &["plan", "dev/us-east-1/late"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        rows(&run),
        [("dev/us-east-1/late".into(), "changes".into())]
    );
    assert_eq!(
        calls(&run, "plan"),
        [("dev/us-east-1/keys".into(), vec!["late".into()])]
    );
    let log =
        std::fs::read_to_string(row(&run, "dev/us-east-1/late")["log"].as_str().unwrap()).unwrap();
    assert!(log.contains("plan -input=false -no-color -lock-timeout=60s -out=tfplan -detailed-exitcode -target=module.late"), "{log}");

    let whole = orch(&tree, &["plan", "--account", "dev"], &[]);
    let log =
        std::fs::read_to_string(row(&whole, "dev/us-east-1/app")["log"].as_str().unwrap()).unwrap();
    assert!(!log.contains("-target"), "{log}");
    assert_eq!(rows(&whole).len(), 2);
}

#[test]
fn a_plan_failure_fails_the_node_terraform_names_and_other_stacks_go_on() {
    let tree = stacks().file(
        "live/prod/us-east-1/other/node.yaml",
        "description: another key of the stack\n",
    );
    let run = orch(
        &tree,
        &["plan", "--all"],
        &[("FAKE_TF_FAIL", "prod/us-east-1/data")],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    let data = row(&run, "prod/us-east-1/data");
    assert_eq!(data["status"], "failed");
    assert!(
        data["error"]
            .as_str()
            .unwrap()
            .contains("boom in prod/us-east-1/data"),
        "{data}"
    );
    let other = row(&run, "prod/us-east-1/other");
    assert_eq!(other["status"], "not planned");
    assert!(
        other["error"]
            .as_str()
            .unwrap()
            .contains("terraform stopped on prod/us-east-1/data"),
        "{other}"
    );
    assert_eq!(row(&run, "dev/us-east-1/app")["status"], "changes");
    assert_eq!(row(&run, "dev/us-east-1/late")["status"], "changes");
    for skipped in [
        "prod/eu-west-1/data",
        "prod/us-east-1/grant",
        "prod/us-east-1/bucket",
    ] {
        assert_eq!(
            row(&run, skipped)["status"],
            "skipped (prod/us-east-1/data did not succeed)",
            "{skipped}"
        );
    }
}

#[test]
fn an_apply_failure_keeps_what_terraform_applied_and_says_what_was_not() {
    let tree = Tree::new()
        .file(ORCH, &layout("stacks"))
        .file("live/dev/us-east-1/b/node.yaml", "description: b\n")
        .file("live/dev/us-east-1/c/node.yaml", "description: c\n");
    // The fake applies app, b, c in order and stops at b.
    let run = orch(
        &tree,
        &["apply", "--account", "dev", "--auto-approve"],
        &[("FAKE_TF_APPLY_FAIL", "dev/us-east-1/b")],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(row(&run, "dev/us-east-1/app")["status"], "ok");
    let b = row(&run, "dev/us-east-1/b");
    assert_eq!(b["status"], "failed");
    assert!(
        b["error"]
            .as_str()
            .unwrap()
            .contains("apply boom in dev/us-east-1/b"),
        "{b}"
    );
    let c = row(&run, "dev/us-east-1/c");
    assert_eq!(c["status"], "not applied");
    assert!(
        c["error"]
            .as_str()
            .unwrap()
            .contains("terraform stopped the apply of stack dev/us-east-1/keys on dev/us-east-1/b"),
        "{c}"
    );
    assert!(tree.path(".orch/outputs/dev/us-east-1/app.json").is_file());
    assert!(!tree.path(".orch/outputs/dev/us-east-1/b.json").exists());
    assert!(!tree.path(".orch/outputs/dev/us-east-1/c.json").exists());
    assert!(run.stderr.contains("1 not applied"), "{}", run.stderr);
    // The next apply plans again and applies what is left.
    let again = orch(&tree, &["apply", "--account", "dev", "--auto-approve"], &[]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(tree.path(".orch/outputs/dev/us-east-1/c.json").is_file());
}

#[test]
fn apply_records_outputs_per_node_and_changed_skips_applied_nodes() {
    let tree = stacks();
    let apply = orch(&tree, &["apply", "--all", "--auto-approve"], &[]);
    assert_eq!(apply.code, 0, "{}", apply.stderr);
    assert!(
        rows(&apply).iter().all(|(_, s)| s == "ok"),
        "{:?}",
        rows(&apply)
    );
    // Dependents planned with their dependencies' recorded outputs, never placeholders.
    assert!(rows(&apply)
        .iter()
        .all(|(a, _)| row(&apply, a)["provisional"] == false));
    let out = tree.run(&["output", "prod/us-east-1/data"]);
    out.assert_success();
    let values: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        values["key_arn"],
        "arn:aws:kms:us-east-1:111111111111:key/fake-data"
    );
    let tfvars: Value = serde_json::from_str(
        &tree.read(".orch/work/_stacks/prod/us-east-1/consumers/terraform.tfvars.json"),
    )
    .unwrap();
    assert_eq!(tfvars["nodes"]["grant"]["key_arn"], values["key_arn"]);

    let changed = orch(&tree, &["plan", "--all", "--changed"], &[]);
    assert_eq!(changed.code, 0, "{}", changed.stderr);
    assert!(changed.calls.is_empty(), "{:?}", changed.calls);

    // A change to one node: only its stack runs, targeted at it and its dependents.
    let tree = tree.file(
        "live/dev/us-east-1/late/node.yaml",
        "description: later\ndepends_on: [dev/us-east-1/app]\nkey_users: [arn:aws:iam::222222222222:role/app]\n",
    );
    let changed = orch(&tree, &["plan", "--all", "--changed"], &[]);
    assert_eq!(changed.code, 0, "{}", changed.stderr);
    assert_eq!(
        calls(&changed, "plan"),
        [("dev/us-east-1/keys".into(), vec!["late".into()])]
    );
}

#[test]
fn an_apply_never_destroys_the_module_of_a_removed_node_yaml() {
    let tree = stacks();
    let remember = [("FAKE_TF_REMEMBER", "1")];
    let apply = ["apply", "--account", "dev", "--auto-approve"];
    assert_eq!(orch(&tree, &apply, &remember).code, 0);
    let tree = tree.remove("live/dev/us-east-1/late");
    let plan = orch(&tree, &["plan", "--account", "dev"], &remember);
    assert_eq!(plan.code, 1, "{}", plan.stderr);
    assert!(
        plan.stderr.contains("the plan of stack dev/us-east-1/keys destroys module.late, which is no node of the tree any more"),
        "{}",
        plan.stderr
    );
    let run = orch(&tree, &apply, &remember);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let app = row(&run, "dev/us-east-1/app");
    assert_eq!(app["status"], "failed");
    assert!(
        app["error"]
            .as_str()
            .unwrap()
            .contains("put its node.yaml back and `orch destroy` it first"),
        "{app}"
    );
    assert!(calls(&run, "apply").is_empty(), "{:?}", run.calls);
}

#[test]
fn destroy_runs_dependent_stacks_first() {
    let tree = stacks();
    assert_eq!(
        orch(&tree, &["apply", "--all", "--auto-approve"], &[]).code,
        0
    );
    let run = orch(&tree, &["destroy", "--all", "--auto-approve"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        rows(&run).iter().all(|(_, s)| s == "ok"),
        "{:?}",
        rows(&run)
    );
    assert_eq!(row(&run, "prod/us-east-1/data")["destroy"], 1);
    assert!(ended_before(
        &run,
        "prod/us-east-1/consumers",
        "prod/us-east-1/keys",
        "apply"
    ));
    assert!(ended_before(
        &run,
        "prod/eu-west-1/replicas",
        "prod/us-east-1/keys",
        "apply"
    ));
    assert!(!tree.path(".orch/outputs/prod/us-east-1/data.json").exists());
}

#[test]
fn a_rollout_wave_runs_its_nodes_stacks_targeted() {
    let tree = stacks().file(
        ORCH,
        "layout: stacks\nwaves:\n  - {name: first, match: [\"dev/us-east-1/app\", \"prod/**\"]}\n  - {name: rest, match: [\"**\"]}\n",
    );
    let run = orch(
        &tree,
        &["rollout", "--auto-approve"],
        &[("FAKE_TF_REMEMBER", "1")],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let applies = calls(&run, "apply");
    assert_eq!(
        applies
            .iter()
            .filter(|(s, _)| s == "dev/us-east-1/keys")
            .cloned()
            .collect::<Vec<_>>(),
        [
            ("dev/us-east-1/keys".to_string(), vec!["app".to_string()]),
            ("dev/us-east-1/keys".to_string(), vec!["late".to_string()]),
        ]
    );
    assert!(tree.path(".orch/outputs/dev/us-east-1/late.json").is_file());
}

/// The nodes `plan --all --changed` plans (by the report: every other node is left out).
fn planned_when_changed(tree: &Tree, env: &[(&str, &str)]) -> BTreeSet<String> {
    let run = orch(tree, &["plan", "--all", "--changed"], env);
    assert_eq!(run.code, 0, "{}", run.stderr);
    if run.calls.is_empty() {
        return BTreeSet::new();
    }
    rows(&run).into_iter().map(|(a, _)| a).collect()
}

fn applied_stacks() -> Tree {
    let tree = stacks();
    let apply = orch(&tree, &["apply", "--all", "--auto-approve"], &[]);
    assert_eq!(apply.code, 0, "{}", apply.stderr);
    assert!(planned_when_changed(&tree, &[]).is_empty());
    tree
}

#[test]
fn every_input_of_a_fingerprint_marks_its_nodes_in_the_stacks_layout() {
    let set = |a: &[&str]| {
        a.iter()
            .map(|s| s.to_string())
            .collect::<BTreeSet<String>>()
    };
    let prod = [
        "prod/eu-west-1/data",
        "prod/us-east-1/bucket",
        "prod/us-east-1/data",
        "prod/us-east-1/grant",
    ];
    // A new provider version in one stack's lock file: every member of that stack.
    let tree = applied_stacks().file(
        ".orch/work/_stacks/dev/us-east-1/keys/.terraform.lock.hcl",
        "provider \"registry.terraform.io/hashicorp/aws\" {\n  version = \"5.100.1\"\n}\n",
    );
    assert_eq!(
        planned_when_changed(&tree, &[]),
        set(&["dev/us-east-1/app", "dev/us-east-1/late"])
    );
    // A node.yaml: that node and its dependents.
    let tree = applied_stacks().file(
        "live/dev/us-east-1/app/node.yaml",
        "description: Encrypts dev app data, v2\naliases: [dev/app]\nkey_users: [arn:aws:iam::222222222222:role/app]\n",
    );
    assert_eq!(
        planned_when_changed(&tree, &[]),
        set(&["dev/us-east-1/app", "dev/us-east-1/late"])
    );
    // A default in account.yaml: every node of the account.
    let tree = applied_stacks();
    let account = tree.read("live/prod/account.yaml");
    let tree = tree.file(
        "live/prod/account.yaml",
        &account.replace("defaults:\n", "defaults:\n  tags: {Team: data}\n"),
    );
    assert_eq!(planned_when_changed(&tree, &[]), set(&prod));
    // A template: the nodes of its kind (and their dependents: none here).
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let tree = stacks().copy(&repo.join("templates"), "templates");
    assert_eq!(
        orch(&tree, &["apply", "--all", "--auto-approve"], &[]).code,
        0
    );
    let main = tree.read("templates/s3-bucket/main.tf");
    let tree = tree.file(
        "templates/s3-bucket/main.tf",
        &format!("{main}\n# a reviewed change to every bucket\n"),
    );
    assert_eq!(
        planned_when_changed(&tree, &[]),
        set(&["prod/us-east-1/bucket"])
    );
    // A new terraform version: every node.
    let tree = applied_stacks();
    let newer = [(
        "FAKE_TF_VERSION",
        r#"{"terraform_version":"1.12.1","platform":"linux_amd64"}"#,
    )];
    let mut all = set(&prod);
    all.extend(set(&["dev/us-east-1/app", "dev/us-east-1/late"]));
    assert_eq!(planned_when_changed(&tree, &newer), all);
    // New outputs of a node: it (to record them anew) and its dependents.
    let tree = applied_stacks();
    let outputs = tree
        .read(".orch/outputs/dev/us-east-1/app.json")
        .replace("fake-app", "fake-app-2");
    assert!(outputs.contains("fake-app-2"), "{outputs}");
    let tree = tree.file(".orch/outputs/dev/us-east-1/app.json", &outputs);
    assert_eq!(
        planned_when_changed(&tree, &[]),
        set(&["dev/us-east-1/app", "dev/us-east-1/late"])
    );
    // Its outputs deleted: it runs again and records them, and its dependent does not fail.
    let tree = applied_stacks().remove(".orch/outputs/prod/us-east-1/data.json");
    let apply = orch(
        &tree,
        &["apply", "--all", "--changed", "--auto-approve"],
        &[],
    );
    assert_eq!(apply.code, 0, "{}", apply.stderr);
    assert!(tree
        .path(".orch/outputs/prod/us-east-1/data.json")
        .is_file());
    assert!(planned_when_changed(&tree, &[]).is_empty());
}
