//! Switching layouts without terraform: the guard that refuses a run while a selected node's state
//! is in the other layout (both directions, before any terraform call), and `orch layout migrate`
//! on hand-written local states: what it moves and how, nothing to move, no terminal, a source of
//! an unexpected shape, a conflict, a move stopped half-way, the tree lock. Then the same with
//! state in S3, through the fake terraform's buckets (tests/fake/s3.sh): the guard's listing and
//! pulls, a move there and back by `state pull` / `state push`, a missing or denied bucket, a held
//! lock, an object that is not a state, a move cut short between destinations and sources. The
//! real thing, terraform planning no changes after a move, is tests/migrate_e2e.rs and
//! tests/migrate_s3_e2e.rs.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{fake, Tree};
use serde_json::{json, Value};

const PROVIDER: &str = "provider[\"registry.terraform.io/hashicorp/aws\"]";

struct Run {
    code: i32,
    stderr: String,
    /// What the fake terraform ran (`<address> <command>`), version checks aside.
    calls: Vec<String>,
}

/// `orch ARGS` without a terminal: `layout migrate` as is (it runs no terraform), any other
/// command with the fake terraform, whose plans find no changes.
fn orch(tree: &Tree, args: &[&str]) -> Run {
    let run = if args.first() == Some(&"layout") {
        let out = common::orch(&tree.path("live"), tree.root(), args);
        Run {
            code: out.code,
            stderr: out.stderr,
            calls: Vec::new(),
        }
    } else {
        planned(tree, args, &[])
    };
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    run
}

/// `orch ARGS` with the fake terraform, whose plans find no changes, and `env`.
fn planned(tree: &Tree, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut env = env.to_vec();
    env.push(("FAKE_TF_NO_CHANGES", "1"));
    let run = fake::orch(tree, args, &env);
    Run {
        code: run.code,
        stderr: run.stderr,
        calls: run
            .calls
            .iter()
            .map(|c| format!("{} {}", c.address, c.command))
            .collect(),
    }
}

fn resource(module: Option<&str>, mode: &str, kind: &str, instances: Value) -> Value {
    let mut r = serde_json::Map::new();
    if let Some(m) = module {
        r.insert("module".into(), json!(m));
    }
    r.insert("mode".into(), json!(mode));
    r.insert("type".into(), json!(kind));
    r.insert("name".into(), json!("this"));
    r.insert("provider".into(), json!(PROVIDER));
    r.insert("instances".into(), instances);
    Value::Object(r)
}

/// The resources of a key node (key, alias, and a data source) in its own state, or in its module
/// `module` of a stack.
fn key_resources(module: Option<&str>, id: &str) -> Vec<Value> {
    let prefix = module.map_or(String::new(), |m| format!("{m}."));
    vec![
        resource(
            module,
            "data",
            "aws_caller_identity",
            json!([{"schema_version": 0, "attributes": {"id": "111111111111"}}]),
        ),
        resource(
            module,
            "managed",
            "aws_kms_alias",
            json!([{"index_key": "prod/data", "schema_version": 0,
                    "attributes": {"name": "alias/prod/data", "target_key_id": id},
                    "sensitive_attributes": [], "private": "bnVsbA==",
                    "dependencies": [format!("{prefix}aws_kms_key.this")]}]),
        ),
        resource(
            module,
            "managed",
            "aws_kms_key",
            json!([{"schema_version": 0, "attributes": {"id": id, "key_id": id},
                    "sensitive_attributes": [], "private": "bnVsbA=="}]),
        ),
    ]
}

fn state(serial: u64, resources: Vec<Value>) -> String {
    serde_json::to_string_pretty(&json!({
        "version": 4,
        "terraform_version": "1.11.4",
        "serial": serial,
        "lineage": "a2ac42f9-8ef6-b922-1cd9-896ab27908d3",
        "outputs": {},
        "resources": resources,
        "check_results": null
    }))
    .unwrap()
}

const NODE_STATE: &str = ".orch/state/prod/us-east-1/data/terraform.tfstate";
const REPLICA_STATE: &str = ".orch/state/prod/eu-west-1/data/terraform.tfstate";
const APP_STATE: &str = ".orch/state/dev/us-east-1/app/terraform.tfstate";
const KEYS_STACK: &str = ".orch/state/_stacks/prod/us-east-1/keys/terraform.tfstate";
const REPLICAS_STACK: &str = ".orch/state/_stacks/prod/eu-west-1/replicas/terraform.tfstate";
const DEV_STACK: &str = ".orch/state/_stacks/dev/us-east-1/keys/terraform.tfstate";

fn with_layout(tree: Tree, layout: &str) -> Tree {
    tree.file(
        "live/orch.yaml",
        &format!("layout: {layout}\ndefaults:\n  deletion_window_days: 30\n  tags: {{ManagedBy: orch}}\n"),
    )
}

/// The base fleet applied in the per-node layout: prod's key and its replica, dev's key.
fn applied_per_node(layout: &str) -> Tree {
    let replica = vec![resource(
        None,
        "managed",
        "aws_kms_replica_key",
        json!([{"schema_version": 0, "attributes": {"id": "mrk-1"}, "sensitive_attributes": []}]),
    )];
    with_layout(Tree::new(), layout)
        .file(
            NODE_STATE,
            &with_outputs(&state(3, key_resources(None, "mrk-1")), key_outputs()),
        )
        .file(REPLICA_STATE, &state(2, replica))
        .file(APP_STATE, &state(5, key_resources(None, "k-app")))
}

/// `text` (a state) with these root outputs.
fn with_outputs(text: &str, outputs: Value) -> String {
    let mut state: Value = serde_json::from_str(text).unwrap();
    state["outputs"] = outputs;
    serde_json::to_string_pretty(&state).unwrap()
}

fn key_outputs() -> Value {
    json!({
        "alias_arns": {"value": {"prod/data": "arn:aws:kms:us-east-1:111111111111:alias/prod/data"},
                       "type": ["object", {"prod/data": "string"}]},
        "key_arn": {"value": "arn:aws:kms:us-east-1:111111111111:key/mrk-1", "type": "string"}
    })
}

fn read_json(tree: &Tree, path: &str) -> Value {
    serde_json::from_str(&tree.read(path)).unwrap()
}

/// Every file under `.orch/state` with its bytes, to prove a refused run changed nothing.
fn snapshot(tree: &Tree) -> Vec<(PathBuf, Vec<u8>)> {
    fn walk(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push((path.clone(), std::fs::read(&path).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(&tree.path(".orch/state"), &mut out);
    out.sort();
    out
}

/// The state `text` and its managed resources.
fn managed_of(text: &str) -> (Value, Vec<Value>) {
    let state: Value = serde_json::from_str(text).unwrap();
    let managed = state["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["mode"] == "managed")
        .cloned()
        .collect();
    (state, managed)
}

/// The backups of the one move made in `tree`, `.orch/migrations/<run>/`.
fn backups(tree: &Tree) -> PathBuf {
    let runs: Vec<PathBuf> = std::fs::read_dir(tree.path(".orch/migrations"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    runs[0].clone()
}

fn assert_refused_unchanged(tree: &Tree, args: &[&str], says: &[&str]) -> Run {
    let before = snapshot(tree);
    let run = orch(tree, args);
    assert_eq!(run.code, 1, "{}", run.stderr);
    for s in says {
        assert!(run.stderr.contains(s), "no `{s}` in:\n{}", run.stderr);
    }
    assert_eq!(snapshot(tree), before, "a refused run changed a state");
    assert!(
        !tree.path(".orch/migrations").exists(),
        "a refused move wrote backups"
    );
    assert!(run.calls.is_empty(), "terraform ran: {:?}", run.calls);
    run
}

#[test]
fn a_stacks_run_is_refused_while_a_selected_node_has_its_own_state() {
    let tree = applied_per_node("stacks");
    for args in [
        &["plan", "--all"][..],
        &["plan", "prod/eu-west-1/data"],
        &["apply", "--all", "--auto-approve"],
        &["destroy", "--account", "dev", "--auto-approve"],
        &["rollout", "--auto-approve"],
    ] {
        assert_refused_unchanged(
            &tree,
            args,
            &[
                "live/orch.yaml:1:9",
                "orch.yaml says `layout: stacks`, but the state of",
                "still in the per-node layout",
                "run `orch layout migrate`",
                "nothing was run",
            ],
        );
    }
    let run = assert_refused_unchanged(&tree, &["plan", "--all"], &[]);
    for node in [
        "prod/us-east-1/data",
        "prod/eu-west-1/data",
        "dev/us-east-1/app",
    ] {
        assert!(
            run.stderr.contains(node),
            "{node} not named:\n{}",
            run.stderr
        );
    }
    assert!(
        run.stderr.contains(&format!(
            "prod/us-east-1/data (2 resource(s) in {})",
            tree.path(NODE_STATE).display()
        )),
        "the data source is not counted, the path is named:\n{}",
        run.stderr
    );
}

#[test]
fn a_per_node_run_is_refused_while_a_stack_holds_a_selected_node() {
    let tree = with_layout(Tree::new(), "per-node").file(
        KEYS_STACK,
        &state(7, key_resources(Some("module.data"), "mrk-1")),
    );
    let run = assert_refused_unchanged(
        &tree,
        &["plan", "--all"],
        &[
            "orch.yaml says `layout: per-node`, but the state of 1 selected node(s) is still in the stacks layout",
            "prod/us-east-1/data (2 resource(s) in ",
            "/.orch/state/_stacks/prod/us-east-1/keys/terraform.tfstate)",
            "orch layout migrate",
        ],
    );
    assert!(!run.stderr.contains("dev/us-east-1/app"), "{}", run.stderr);
    // A node the stack does not hold is not held back: dev plans.
    let dev = orch(&tree, &["plan", "--account", "dev"]);
    assert_eq!(dev.code, 0, "{}", dev.stderr);
    assert!(
        dev.calls.iter().any(|c| c == "dev/us-east-1/app plan"),
        "{:?}",
        dev.calls
    );
}

#[test]
fn a_state_without_managed_resources_holds_nothing_back() {
    // What a destroy leaves, and a state holding only what plan reads again.
    let data_only = key_resources(None, "k")[..1].to_vec();
    let tree = applied_per_node("stacks")
        .file(NODE_STATE, &state(9, data_only))
        .file(REPLICA_STATE, &state(4, Vec::new()))
        .remove(APP_STATE);
    let run = orch(&tree, &["plan", "--account", "prod"]);
    assert!(
        !run.stderr.contains("orch layout migrate"),
        "{}",
        run.stderr
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let moved = orch(&tree, &["layout", "migrate"]);
    assert_eq!(moved.code, 0, "{}", moved.stderr);
    assert!(moved
        .stderr
        .contains("nothing to move: no node of this tree has state in the per-node layout"));
}

#[test]
fn nothing_to_move_in_a_fresh_tree() {
    for layout in ["stacks", "per-node"] {
        let tree = with_layout(Tree::new(), layout);
        let run = orch(&tree, &["layout", "migrate"]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert!(run.stderr.contains("nothing to move"), "{}", run.stderr);
        assert!(!tree.path(".orch/migrations").exists());
    }
}

#[test]
fn without_a_terminal_a_move_needs_auto_approve() {
    let tree = applied_per_node("stacks");
    let run = assert_refused_unchanged(
        &tree,
        &["layout", "migrate"],
        &[
            "move the state of 3 node(s), 5 resource(s), from the per-node layout to the stacks layout",
            &format!(
                "prod/us-east-1/data: 2 resource(s), {} -> {} (module.data)",
                tree.path(NODE_STATE).display(),
                tree.path(KEYS_STACK).display()
            ),
            "there is no terminal to confirm on; nothing was moved",
            "--auto-approve",
        ],
    );
    assert!(!run.stderr.contains("backed up"), "{}", run.stderr);
}

#[test]
fn a_source_state_of_an_unexpected_shape_is_refused_before_anything_moves() {
    let nested = resource(
        Some("module.data.module.inner"),
        "managed",
        "aws_kms_key",
        json!([]),
    );
    let rooted = resource(None, "managed", "aws_kms_key", json!([]));
    let in_module = resource(Some("module.x"), "managed", "aws_kms_key", json!([]));
    let cases: Vec<(&str, &str, String, &str)> = vec![
        ("stacks", NODE_STATE, "{\"version\": 4,".into(), "not a terraform state"),
        ("stacks", NODE_STATE, "[]".into(), "not a JSON object"),
        (
            "stacks",
            NODE_STATE,
            state(1, Vec::new()).replace("\"version\": 4", "\"version\": 3"),
            "state format version 3, not 4",
        ),
        (
            "stacks",
            NODE_STATE,
            state(1, Vec::new()).replace("\"lineage\"", "\"lineage_\""),
            "no `lineage` or `serial`",
        ),
        (
            "stacks",
            NODE_STATE,
            state(1, Vec::new()).replace("\"resources\": []", "\"resources\": {}"),
            "`resources` is not a list",
        ),
        (
            "stacks",
            NODE_STATE,
            state(1, vec![json!({"mode": "managed", "name": "x", "instances": []})]),
            "resource 1 has no `mode`, `type` or `name`",
        ),
        (
            "stacks",
            NODE_STATE,
            state(1, vec![in_module]),
            "resource 1 is at module.x.aws_kms_key.this, where orch's per-node layout puts none",
        ),
        (
            "per-node",
            KEYS_STACK,
            state(1, vec![nested]),
            "resource 1 is at module.data.module.inner.aws_kms_key.this, where orch's stacks layout puts none",
        ),
        (
            "per-node",
            KEYS_STACK,
            state(1, vec![rooted]),
            "resource 1 is at aws_kms_key.this, where orch's stacks layout puts none",
        ),
    ];
    for (layout, path, text, says) in cases {
        let tree = applied_per_node(layout).file(path, &text);
        if layout == "per-node" {
            // The node's own state is where the move would go: make it empty so only the
            // stack's shape is in question.
            std::fs::remove_file(tree.path(NODE_STATE)).unwrap();
        }
        assert_refused_unchanged(
            &tree,
            &["layout", "migrate", "--auto-approve"],
            &[path, says, "nothing was moved"],
        );
    }
}

#[test]
fn a_node_with_other_resources_in_both_layouts_is_a_conflict() {
    let tree = applied_per_node("stacks").file(
        KEYS_STACK,
        &state(2, key_resources(Some("module.data"), "mrk-OTHER")),
    );
    assert_refused_unchanged(
        &tree,
        &["layout", "migrate", "--auto-approve"],
        &[&format!(
            "prod/us-east-1/data has different resources in {} and in {}",
            tree.path(NODE_STATE).display(),
            tree.path(KEYS_STACK).display()
        )],
    );
}

#[test]
fn a_move_goes_there_and_back_resource_for_resource() {
    let tree = applied_per_node("stacks");
    let originals: Vec<(&str, String)> = [NODE_STATE, REPLICA_STATE, APP_STATE]
        .into_iter()
        .map(|p| (p, tree.read(p)))
        .collect();
    let run = orch(&tree, &["layout", "migrate", "--auto-approve"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.calls.is_empty(), "{:?}", run.calls);
    assert!(
        run.stderr
            .contains("moved the state of 3 node(s), 5 resource(s), into the stacks layout"),
        "{}",
        run.stderr
    );
    for (path, _) in &originals {
        assert!(!tree.path(path).exists(), "{path} is still there");
    }
    let keys = read_json(&tree, KEYS_STACK);
    assert_eq!(keys["serial"], 1);
    assert_eq!(keys["version"], 4);
    assert_eq!(keys["terraform_version"], "1.11.4");
    assert_ne!(keys["lineage"], "a2ac42f9-8ef6-b922-1cd9-896ab27908d3");
    let managed: Vec<Value> = key_resources(Some("module.data"), "mrk-1")[1..].to_vec();
    assert_eq!(
        keys["resources"].as_array().unwrap(),
        &managed,
        "the module set, the dependency rewritten, the data source dropped"
    );
    assert_eq!(
        keys["outputs"],
        json!({"data": {
            "value": {"alias_arns": {"prod/data": "arn:aws:kms:us-east-1:111111111111:alias/prod/data"},
                      "key_arn": "arn:aws:kms:us-east-1:111111111111:key/mrk-1"},
            "type": ["object", {"alias_arns": ["object", {"prod/data": "string"}], "key_arn": "string"}],
            "sensitive": true
        }}),
        "the node's outputs, as the stack's output of its module"
    );
    assert_eq!(
        read_json(&tree, REPLICAS_STACK)["resources"][0]["module"],
        "module.data"
    );
    assert_eq!(
        read_json(&tree, DEV_STACK)["resources"][1]["module"],
        "module.app"
    );
    // Every state it changed was saved first, byte for byte.
    let backups = backups(&tree);
    for (path, text) in &originals {
        let saved = backups.join(path.strip_prefix(".orch/state/").unwrap());
        assert_eq!(&std::fs::read_to_string(saved).unwrap(), text);
    }
    // The guard lets the stacks layout run now.
    let plan = orch(&tree, &["plan", "--all"]);
    assert!(
        !plan.stderr.contains("orch layout migrate"),
        "{}",
        plan.stderr
    );

    let back = with_layout(tree, "per-node");
    let run = orch(&back, &["layout", "migrate", "--auto-approve"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    for stack in [KEYS_STACK, REPLICAS_STACK, DEV_STACK] {
        assert!(!back.path(stack).exists(), "{stack} is still there");
    }
    for (path, text) in &originals {
        let now = read_json(&back, path);
        let (then, managed) = managed_of(text);
        assert_eq!(
            serde_json::to_string(&now["resources"]).unwrap(),
            serde_json::to_string(&managed).unwrap(),
            "{path}: the same resources, field for field, in terraform's order"
        );
        assert_eq!(now["serial"], 1, "{path}");
        assert_eq!(now["outputs"], then["outputs"], "{path}");
    }
    let again = orch(&back, &["layout", "migrate", "--auto-approve"]);
    assert!(again.stderr.contains("nothing to move"), "{}", again.stderr);
}

#[test]
fn a_move_stopped_at_any_step_is_finished_by_running_again() {
    let moved = applied_per_node("stacks");
    let originals: Vec<(&str, String)> = [NODE_STATE, REPLICA_STATE, APP_STATE]
        .into_iter()
        .map(|p| (p, moved.read(p)))
        .collect();
    let run = orch(&moved, &["layout", "migrate", "--auto-approve"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let stacks: Vec<(&str, String)> = [KEYS_STACK, REPLICAS_STACK, DEV_STACK]
        .into_iter()
        .map(|p| (p, moved.read(p)))
        .collect();
    // What a kill -9 can leave: some stacks written (each whole, by a rename) with every node
    // state intact, or every stack written and some node states removed. The lists pair each
    // node's state with its stack, so the first `cleared` nodes are in written stacks.
    for (written, cleared) in [(1, 0), (2, 0), (3, 0), (3, 1), (3, 2)] {
        let tree = applied_per_node("stacks");
        let tree = stacks[..written]
            .iter()
            .fold(tree, |tree, (path, text)| tree.file(path, text));
        let tree = originals[..cleared]
            .iter()
            .fold(tree, |tree, (path, _)| tree.remove(path));
        let guarded = orch(&tree, &["plan", "--all"]);
        assert_eq!(guarded.code, 1, "a node still in both layouts: refused");
        let run = orch(&tree, &["layout", "migrate", "--auto-approve"]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert_eq!(
            run.stderr
                .matches("(already there: a move stopped half-way; only the old state is cleared)")
                .count(),
            // A node in a written stack whose own state is still there.
            written - cleared,
            "written {written}, cleared {cleared}:\n{}",
            run.stderr
        );
        for (path, text) in &stacks {
            let now = tree.read(path);
            let same = |key: &str| read_json(&tree, path)[key].clone();
            let then: Value = serde_json::from_str(text).unwrap();
            assert_eq!(same("resources"), then["resources"], "{path}");
            assert_eq!(same("outputs"), then["outputs"], "{path}");
            if stacks[..written].iter().any(|(p, _)| p == path) {
                assert_eq!(&now, text, "{path}: a stack already whole is not rewritten");
            }
        }
        for (path, _) in &originals {
            assert!(!tree.path(path).exists(), "{path} is still there");
        }
    }
}

#[test]
fn a_stack_keeps_the_modules_of_nodes_no_longer_in_the_tree() {
    let mut resources = key_resources(Some("module.data"), "mrk-1");
    resources.extend(key_resources(Some("module.gone"), "k-gone"));
    let outputs = json!({
        "data": {"value": {"key_id": "mrk-1"}, "type": ["object", {"key_id": "string"}], "sensitive": true},
        "gone": {"value": {"key_id": "k-gone"}, "type": ["object", {"key_id": "string"}], "sensitive": true}
    });
    let tree = with_layout(Tree::new(), "per-node")
        .file(KEYS_STACK, &with_outputs(&state(4, resources), outputs));
    let run = orch(&tree, &["layout", "migrate", "--auto-approve"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "{} keeps resources of modules that are no node of this tree",
            tree.path(KEYS_STACK).display()
        )),
        "{}",
        run.stderr
    );
    let kept = read_json(&tree, KEYS_STACK);
    assert_eq!(kept["serial"], 5);
    let modules: Vec<&Value> = kept["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["module"])
        .collect();
    assert_eq!(modules, ["module.gone"; 3]);
    assert_eq!(
        kept["outputs"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["gone"]
    );
    assert_eq!(
        read_json(&tree, NODE_STATE)["outputs"],
        json!({"key_id": {"value": "mrk-1", "type": "string"}})
    );
    assert_eq!(
        read_json(&tree, NODE_STATE)["resources"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn a_move_is_refused_while_another_orch_holds_the_tree() {
    let tree = applied_per_node("stacks");
    // A lock naming a live process (this test) is respected even without its flock.
    let tree = tree.file(".orch/lock", &format!("{}\nrun\n", std::process::id()));
    assert_refused_unchanged(
        &tree,
        &["layout", "migrate", "--auto-approve"],
        &["another orch", "is running on this tree"],
    );
}

#[test]
fn a_state_terraform_holds_locked_is_not_moved() {
    use std::io::BufRead as _;
    let tree = applied_per_node("stacks").file(
        ".orch/state/prod/us-east-1/data/.terraform.tfstate.lock.info",
        "{\"ID\": \"x\", \"Operation\": \"OperationTypeApply\"}",
    );
    // What terraform's local backend holds while it runs: an fcntl lock on the state file, here
    // by another process (a process's own fcntl locks go when it closes any copy of the file).
    let mut holder = Command::new(common::venv_program("python"))
        .args([
            "-c",
            "import fcntl, sys; f = open(sys.argv[1], 'r+'); fcntl.lockf(f, fcntl.LOCK_EX); \
             print('locked', flush=True); sys.stdin.read()",
        ])
        .arg(tree.path(NODE_STATE))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "locked");
    assert_refused_unchanged(
        &tree,
        &["layout", "migrate", "--auto-approve"],
        &[
            &format!("the state is locked by pid {}", holder.id()),
            "nothing was moved",
        ],
    );
    drop(holder.stdin.take());
    holder.wait().unwrap();
    // Once its holder is gone, the lock file is stale: removed, and the move goes on.
    let run = orch(&tree, &["layout", "migrate", "--auto-approve"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("removed the stale state lock"),
        "{}",
        run.stderr
    );
}

/// `orch layout migrate` on a terminal (a pty from util-linux's `script`), answering `answer`.
fn migrate_on_a_terminal(tree: &Tree, answer: &str) -> (i32, String) {
    let command = format!(
        "{} --live {} layout migrate",
        env!("CARGO_BIN_EXE_orch"),
        tree.path("live").display()
    );
    let mut child = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(tree.root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("`script` (util-linux) runs orch on a terminal: install util-linux");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), answer.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn on_a_terminal_a_move_asks_first_and_takes_only_yes() {
    let tree = applied_per_node("stacks");
    let before = snapshot(&tree);
    let (code, shown) = migrate_on_a_terminal(&tree, "y\n");
    assert_eq!(code, 1, "{shown}");
    assert!(
        shown.contains("from the per-node layout to the stacks layout")
            && shown.contains("Move this state? Only 'yes' is accepted: ")
            && shown.contains("nothing was moved"),
        "{shown}"
    );
    assert_eq!(snapshot(&tree), before);
    let (code, shown) = migrate_on_a_terminal(&tree, "yes\n");
    assert_eq!(code, 0, "{shown}");
    assert!(shown.contains("moved the state of 3 node(s)"), "{shown}");
    assert!(tree.path(KEYS_STACK).exists());
}

// ---- state in S3, through the fake terraform's buckets (tests/fake/s3.sh) -------------------------

const PROD_BUCKET: &str = "s3/tfstate-111111111111";
const DEV_BUCKET: &str = "s3/tfstate-222222222222";

/// The object of the state `name` in its account's fake bucket.
fn object(name: &str) -> String {
    let bucket = if name.contains("dev/") {
        DEV_BUCKET
    } else {
        PROD_BUCKET
    };
    format!("{bucket}/orch/{name}/terraform.tfstate")
}

fn with_s3_layout(tree: Tree, layout: &str) -> Tree {
    tree.file(
        "live/orch.yaml",
        &format!("layout: {layout}\nbackend: {{type: s3, bucket: \"tfstate-{{account_id}}\", region: us-east-1}}\ndefaults:\n  deletion_window_days: 30\n  tags: {{ManagedBy: orch}}\n"),
    )
}

/// [`applied_per_node`] with its states as objects in the fake buckets instead of files.
fn applied_per_node_s3(layout: &str) -> Tree {
    let local = applied_per_node(layout);
    let mut tree = with_s3_layout(local, layout);
    for (file, name) in [
        (NODE_STATE, "prod/us-east-1/data"),
        (REPLICA_STATE, "prod/eu-west-1/data"),
        (APP_STATE, "dev/us-east-1/app"),
    ] {
        let text = tree.read(file);
        tree = tree.remove(file).file(&object(name), &text);
    }
    assert!(snapshot(&tree).is_empty(), "no state is local");
    tree
}

/// `orch ARGS` with state in the fake buckets under the tree's `s3/`: `layout migrate` as is with
/// the fake terraform from ORCH_TERRAFORM, any other command as [`orch`] does.
fn orch_s3(tree: &Tree, args: &[&str], env: &[(&str, &str)]) -> Run {
    let s3 = tree.path("s3");
    let s3 = s3.to_str().unwrap();
    let run = if args.first() == Some(&"layout") {
        let log = tree.path("fake.log");
        let out = Command::new(env!("CARGO_BIN_EXE_orch"))
            .arg("--live")
            .arg(tree.path("live"))
            .args(args)
            .current_dir(tree.root())
            .env("ORCH_TERRAFORM", fake::fake_terraform())
            .env("FAKE_S3", s3)
            .env("FAKE_TF_LOG", &log)
            .envs(env.iter().copied())
            .env_remove("ORCH_PROFILE")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let calls = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .map(|l| l.split(' ').skip(2).collect::<Vec<_>>().join(" "))
            .collect();
        let _ = std::fs::remove_file(&log);
        Run {
            code: out.status.code().unwrap_or(-1),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            calls,
        }
    } else {
        let mut env = env.to_vec();
        env.push(("FAKE_S3", s3));
        planned(tree, args, &env)
    };
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    run
}

/// Every object of the fake buckets with its bytes, locks aside.
fn bucket_snapshot(tree: &Tree) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut dirs = vec![tree.path("s3")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_none_or(|e| e != "tflock") {
                out.push((path.clone(), std::fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// `args` fail with exit 1 saying `says`, and change no object; nothing is backed up.
fn assert_s3_refused_unchanged(tree: &Tree, args: &[&str], says: &[&str]) -> Run {
    let runs = || std::fs::read_dir(tree.path(".orch/migrations")).map_or(0, Iterator::count);
    let (before, moves) = (bucket_snapshot(tree), runs());
    let run = orch_s3(tree, args, &[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    for s in says {
        assert!(run.stderr.contains(s), "no `{s}` in:\n{}", run.stderr);
    }
    assert_eq!(
        bucket_snapshot(tree),
        before,
        "a refused run changed a state"
    );
    assert!(snapshot(tree).is_empty(), "a state was written locally");
    assert_eq!(runs(), moves, "a refused move wrote backups");
    assert!(
        !run.calls
            .iter()
            .any(|c| c.ends_with(" plan") || c.contains("push")),
        "{:?}",
        run.calls
    );
    run
}

fn count(run: &Run, command: &str) -> usize {
    run.calls
        .iter()
        .filter(|c| c.ends_with(&format!(" {command}")))
        .count()
}

#[test]
fn s3_a_fleet_moves_to_stacks_and_back_by_state_pull_and_push() {
    let tree = applied_per_node_s3("stacks");
    let originals: Vec<(&str, String)> = [
        "prod/us-east-1/data",
        "prod/eu-west-1/data",
        "dev/us-east-1/app",
    ]
    .into_iter()
    .map(|n| (n, tree.read(&object(n))))
    .collect();
    let guarded = assert_s3_refused_unchanged(
        &tree,
        &["plan", "--all"],
        &[
            "orch.yaml says `layout: stacks`, but the state of 3 selected node(s) is still in the per-node layout",
            "prod/us-east-1/data (2 resource(s) in s3://tfstate-111111111111/orch/prod/us-east-1/data/terraform.tfstate)",
            "run `orch layout migrate`",
        ],
    );
    // The nodes' own states listed for each account and region, then their stacks (none
    // there yet, so none pulled, since pulling creates), then the three own states pulled.
    assert_eq!(count(&guarded, "workspace-list"), 6, "{:?}", guarded.calls);
    assert_eq!(count(&guarded, "state-pull"), 3, "{:?}", guarded.calls);

    let run = orch_s3(&tree, &["layout", "migrate", "--auto-approve"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains(
            "prod/us-east-1/data: 2 resource(s), s3://tfstate-111111111111/orch/prod/us-east-1/data/terraform.tfstate -> s3://tfstate-111111111111/orch/_stacks/prod/us-east-1/keys/terraform.tfstate (module.data)"
        ) && run
            .stderr
            .contains("moved the state of 3 node(s), 5 resource(s), into the stacks layout"),
        "{}",
        run.stderr
    );
    // Three stacks pushed, then three emptied node states.
    assert_eq!(count(&run, "state-push"), 6, "{:?}", run.calls);
    let keys = read_json(&tree, &object("_stacks/prod/us-east-1/keys"));
    assert_eq!(
        keys["resources"].as_array().unwrap(),
        &key_resources(Some("module.data"), "mrk-1")[1..].to_vec()
    );
    assert_eq!(keys["outputs"]["data"]["sensitive"], true);
    for (name, text) in &originals {
        let then: Value = serde_json::from_str(text).unwrap();
        let now = read_json(&tree, &object(name));
        assert_eq!(now["resources"], json!([]), "{name}: emptied");
        assert_eq!(now["outputs"], json!({}), "{name}");
        assert_eq!(now["lineage"], then["lineage"], "{name}: the same lineage");
        assert_eq!(
            now["serial"].as_u64().unwrap(),
            then["serial"].as_u64().unwrap() + 1,
            "{name}"
        );
    }
    let backups = backups(&tree);
    for (name, text) in &originals {
        let saved = backups.join(name).join("terraform.tfstate");
        assert_eq!(&std::fs::read_to_string(saved).unwrap(), text, "{name}");
    }
    assert!(snapshot(&tree).is_empty(), "no state is local");

    // The emptied states are listed still: their stacks are pulled, and hold the nodes.
    let plan = orch_s3(&tree, &["plan", "--all"], &[]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    assert!(
        plan.stderr
            .contains("layout guard: states of the per-node layout listed, 3 state(s) pulled"),
        "{}",
        plan.stderr
    );

    let back = with_s3_layout(tree, "per-node");
    assert_s3_refused_unchanged(
        &back,
        &["plan", "--account", "prod"],
        &["orch.yaml says `layout: per-node`, but the state of 2 selected node(s) is still in the stacks layout"],
    );
    let run = orch_s3(&back, &["layout", "migrate", "--auto-approve"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    for (name, text) in &originals {
        let (then, managed) = managed_of(text);
        let now = read_json(&back, &object(name));
        assert_eq!(
            serde_json::to_string(&now["resources"]).unwrap(),
            serde_json::to_string(&managed).unwrap(),
            "{name}: the same resources, field for field"
        );
        assert_eq!(now["outputs"], then["outputs"], "{name}");
        assert_eq!(
            now["lineage"], then["lineage"],
            "{name}: pushed over its own lineage"
        );
    }
    for stack in [
        "_stacks/prod/us-east-1/keys",
        "_stacks/prod/eu-west-1/replicas",
        "_stacks/dev/us-east-1/keys",
    ] {
        assert_eq!(
            read_json(&back, &object(stack))["resources"],
            json!([]),
            "{stack}"
        );
    }
    let plan = orch_s3(&back, &["plan", "--all"], &[]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    let again = orch_s3(&back, &["layout", "migrate", "--auto-approve"], &[]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(again.stderr.contains("nothing to move"), "{}", again.stderr);
}

#[test]
fn s3_a_fresh_stacks_fleet_costs_the_guard_one_listing_per_account_and_region() {
    let tree = with_s3_layout(Tree::new(), "stacks")
        .file(&format!("{PROD_BUCKET}/.keep"), "")
        .file(&format!("{DEV_BUCKET}/.keep"), "");
    let run = orch_s3(&tree, &["plan", "--all"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(count(&run, "workspace-list"), 3, "{:?}", run.calls);
    assert_eq!(count(&run, "state-pull"), 0, "{:?}", run.calls);
}

#[test]
fn s3_a_missing_or_denied_bucket_moves_nothing() {
    let tree = applied_per_node_s3("stacks");
    std::fs::remove_dir_all(tree.path(DEV_BUCKET)).unwrap();
    for args in [
        &["layout", "migrate", "--auto-approve"][..],
        &["plan", "--all"],
    ] {
        assert_s3_refused_unchanged(
            &tree,
            args,
            &[
                "the state bucket tfstate-222222222222 (account dev, through arn:aws:iam::222222222222:role/orch-deployer) does not exist in us-east-1: run `orch backend bootstrap` to create it",
            ],
        );
    }
    let tree = tree.file(&format!("{DEV_BUCKET}/.denied"), "");
    let run = assert_s3_refused_unchanged(
        &tree,
        &["layout", "migrate", "--auto-approve"],
        &[
            "the state bucket tfstate-222222222222 exists but account dev",
            "S3 answered 403",
            "nothing was moved",
        ],
    );
    assert!(
        !run.stderr.contains("tfstate-111111111111"),
        "{}",
        run.stderr
    );
}

#[test]
fn s3_a_held_lock_stops_the_move_naming_its_holder_and_loses_nothing() {
    let tree = applied_per_node_s3("stacks").file(
        &format!("{}.tflock", object("_stacks/prod/us-east-1/keys")),
        "ID:        0d7e7e4c-1c2a-4f5e-9b1e-5d0f0e6a7b8c\nOperation: OperationTypeApply\nWho:       ci@runner-7\nCreated:   2026-11-30 06:15:02.1 +0000 UTC\n",
    );
    let sources: Vec<(String, String)> = [
        "prod/us-east-1/data",
        "prod/eu-west-1/data",
        "dev/us-east-1/app",
    ]
    .into_iter()
    .map(|n| (object(n), tree.read(&object(n))))
    .collect();
    let run = orch_s3(&tree, &["layout", "migrate", "--auto-approve"], &[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    for says in [
        "s3://tfstate-111111111111/orch/_stacks/prod/us-east-1/keys/terraform.tfstate: the state lock is held by ci@runner-7 since 2026-11-30 06:15:02.1 +0000 UTC",
        "orch never unlocks a state lock it did not take",
        "terraform force-unlock 0d7e7e4c-1c2a-4f5e-9b1e-5d0f0e6a7b8c",
        "Run `orch layout migrate` again once this is fixed and it finishes the move",
    ] {
        assert!(run.stderr.contains(says), "no `{says}` in:\n{}", run.stderr);
    }
    for (path, text) in &sources {
        assert_eq!(
            &tree.read(path),
            text,
            "{path}: a source changed before every stack was written"
        );
    }
    assert!(
        tree.path(&format!("{}.tflock", object("_stacks/prod/us-east-1/keys")))
            .exists(),
        "the lock is left alone"
    );
    let tree = tree.remove(&format!("{}.tflock", object("_stacks/prod/us-east-1/keys")));
    let run = orch_s3(&tree, &["layout", "migrate", "--auto-approve"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stderr
            .matches("(already there: a move stopped half-way")
            .count(),
        2,
        "the two stacks written before the lock:\n{}",
        run.stderr
    );
    for (path, _) in &sources {
        assert_eq!(read_json(&tree, path)["resources"], json!([]), "{path}");
    }
}

#[test]
fn s3_an_object_that_is_not_a_state_is_refused_by_the_move_and_the_guard() {
    let tree = applied_per_node_s3("stacks").file(
        &object("prod/eu-west-1/data"),
        "<html><body>Service Unavailable</body></html>\n",
    );
    let at = "s3://tfstate-111111111111/orch/prod/eu-west-1/data/terraform.tfstate: not a terraform state";
    assert_s3_refused_unchanged(
        &tree,
        &["layout", "migrate", "--auto-approve"],
        &[at, "nothing was moved"],
    );
    assert_s3_refused_unchanged(
        &tree,
        &["plan", "prod/eu-west-1/data"],
        &[at, "orch layout migrate"],
    );
}

#[test]
fn s3_a_move_cut_short_between_destinations_and_sources_is_finished_by_running_again() {
    let tree = applied_per_node_s3("stacks");
    let run = orch_s3(
        &tree,
        &["layout", "migrate", "--auto-approve"],
        &[("FAKE_S3_PUSH_FAIL", "orch/prod/us-east-1/data/")],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("connection reset by peer")
            && run.stderr.contains("the backups are in"),
        "{}",
        run.stderr
    );
    // Every stack written; the node states before the failing one emptied, that one intact.
    for stack in [
        "_stacks/prod/us-east-1/keys",
        "_stacks/prod/eu-west-1/replicas",
        "_stacks/dev/us-east-1/keys",
    ] {
        assert!(tree.path(&object(stack)).exists(), "{stack}");
    }
    assert_eq!(
        read_json(&tree, &object("dev/us-east-1/app"))["resources"],
        json!([])
    );
    assert_eq!(
        read_json(&tree, &object("prod/us-east-1/data"))["resources"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    // The stack holds the node: a plan would create nothing again, so it is let through.
    let plan = orch_s3(&tree, &["plan", "--all"], &[]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    let run = orch_s3(&tree, &["layout", "migrate", "--auto-approve"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("prod/us-east-1/data: 2 resource(s)")
            && run
                .stderr
                .matches("(already there: a move stopped half-way")
                .count()
                == 1,
        "{}",
        run.stderr
    );
    assert_eq!(
        count(&run, "state-push"),
        1,
        "only the old state cleared: {:?}",
        run.calls
    );
    assert_eq!(
        read_json(&tree, &object("prod/us-east-1/data"))["resources"],
        json!([])
    );
}

#[test]
fn s3_a_node_named_default_is_not_the_default_workspace() {
    // `default` is a valid node name, and the one workspace name terraform lists always: its
    // state is read and written through its own key, never the bucket's root object.
    let tree = applied_per_node_s3("stacks")
        .file(
            "live/dev/us-east-1/default/node.yaml",
            "description: named default\n",
        )
        .file(
            &object("dev/us-east-1/default"),
            &state(4, key_resources(None, "k-default")),
        );
    // A workspace of the user's (TF_WORKSPACE) is not where orch looks: it would read, and
    // create, the state of that workspace instead.
    let stray = [("TF_WORKSPACE", "stray")];
    let before = bucket_snapshot(&tree);
    let refused = orch_s3(&tree, &["plan", "dev/us-east-1/default"], &stray);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("dev/us-east-1/default (2 resource(s) in s3://tfstate-222222222222/orch/dev/us-east-1/default/terraform.tfstate)"),
        "{}",
        refused.stderr
    );
    assert_eq!(bucket_snapshot(&tree), before, "a state was created");
    let run = orch_s3(&tree, &["layout", "migrate", "--auto-approve"], &stray);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let stack = read_json(&tree, &object("_stacks/dev/us-east-1/keys"));
    let modules: BTreeSet<&str> = stack["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["module"].as_str().unwrap())
        .collect();
    assert_eq!(modules, BTreeSet::from(["module.app", "module.default"]));
    assert_eq!(
        read_json(&tree, &object("dev/us-east-1/default"))["resources"],
        json!([])
    );
    assert!(!tree
        .path(&format!("{DEV_BUCKET}/terraform.tfstate"))
        .exists());
    let plan = orch_s3(&tree, &["plan", "--all"], &[]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
}

/// Runs `orch ARGS` (the fake terraform, no terminal) and fails the test if it is still running
/// after 30 s, killing it.
fn within_30s(tree: &Tree, args: &[&str]) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_orch"))
        .arg("--live")
        .arg(tree.path("live"))
        .args(args)
        .current_dir(tree.root())
        .env("ORCH_TERRAFORM", fake::fake_terraform())
        .env("FAKE_TF_LOG", tree.path("fake.log"))
        .env_remove("ORCH_PROFILE")
        .env_remove("ORCH_LIVE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > std::time::Duration::from_secs(30) {
            child.kill().unwrap();
            panic!("orch {args:?} still running after 30 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let calls = std::fs::read_to_string(tree.path("fake.log")).unwrap_or_default();
    Run {
        code: out.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        calls: calls.lines().map(String::from).collect(),
    }
}

#[test]
fn a_fifo_where_a_state_should_be_is_refused_at_once() {
    for (layout, args) in [
        ("per-node", &["plan", "--all"][..]),
        (
            "per-node",
            &["apply", "prod/us-east-1/data", "--auto-approve"],
        ),
        ("stacks", &["plan", "--all"]),
        ("stacks", &["layout", "migrate", "--auto-approve"]),
    ] {
        let tree = applied_per_node(layout).remove(NODE_STATE);
        let fifo = std::ffi::CString::new(tree.path(NODE_STATE).to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        let run = within_30s(&tree, args);
        assert_eq!(run.code, 1, "{layout} {args:?}: {}", run.stderr);
        assert!(
            run.stderr.contains(&format!(
                "{}: it is a FIFO (named pipe), not a file orch wrote: remove it",
                tree.path(NODE_STATE).display()
            )),
            "{layout} {args:?}: {}",
            run.stderr
        );
        assert!(run.calls.is_empty(), "terraform ran: {:?}", run.calls);
    }
}
