//! Good paths of the CLI on the shipped `live/` tree: validate, graph, explain, render, generate,
//! and the node filters. Commands that write run on a copy in a temporary directory.

mod common;

use common::{orch, shipped_live, Tree};
use serde_json::Value;

/// A temporary copy of the shipped tree at `<tmp>/live`.
fn shipped_copy() -> Tree {
    Tree::empty().copy(&shipped_live(), "live")
}

/// The line of `text` that starts with `prefix`, or a failure that shows the whole text.
fn line_starting<'t>(text: &'t str, prefix: &str) -> &'t str {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?}:\n{text}"))
}

#[test]
fn validate_accepts_the_shipped_tree() {
    let live = shipped_live();
    let out = orch(&live, live.parent().unwrap(), &["validate"]);
    out.assert_success();
    assert!(out.stdout.contains("; valid"), "{}", out.stdout);
    assert!(!out.stderr.contains("error"), "{}", out.stderr);
}

#[test]
fn graph_json_has_the_replica_edges() {
    let tree = shipped_copy();
    let out = tree.run(&["graph", "--format", "json"]);
    out.assert_success();
    let graph: Value = serde_json::from_str(&out.stdout).expect("graph --format json is JSON");
    let edges = graph["edges"].as_array().expect("edges is a list");
    let replica_edges: Vec<(&str, &str, &str)> = edges
        .iter()
        .filter(|e| e["kind"] == "replica")
        .map(|e| {
            (
                e["from"].as_str().unwrap(),
                e["to"].as_str().unwrap(),
                e["declared_at"].as_str().unwrap(),
            )
        })
        .collect();
    for (from, to) in [
        ("prod/us-east-1/s3-data", "prod/eu-west-1/s3-data"),
        ("prod/us-east-1/s3-data", "prod/ap-southeast-2/s3-data"),
        ("prod/eu-west-1/app-secrets", "prod/us-east-1/app-secrets"),
        ("staging/us-east-1/app", "staging/eu-west-1/app"),
    ] {
        assert!(
            replica_edges.iter().any(|(f, t, _)| (*f, *t) == (from, to)),
            "no replica edge {from} -> {to} in {replica_edges:?}"
        );
    }
    // Every edge names the file and line that declares it.
    for (from, to, at) in &replica_edges {
        let (path, line) = at.rsplit_once(':').unwrap();
        assert!(
            path.contains("/live/") && path.ends_with(".yaml") && line.parse::<u32>().is_ok(),
            "{from} -> {to} declared at {at}"
        );
    }
    let nodes = graph["nodes"].as_array().expect("nodes is a list");
    let position = |address: &str| {
        nodes
            .iter()
            .position(|n| n["address"] == address)
            .unwrap_or_else(|| panic!("no node {address}"))
    };
    assert!(position("prod/us-east-1/s3-data") < position("prod/eu-west-1/s3-data"));
    assert!(position("prod/us-east-1/s3-data") < position("prod/us-east-1/s3-data-bucket"));
}

#[test]
fn explain_prints_provenance() {
    // Run from beside live/ with a relative --live, so provenance reads `live/...:line`.
    let tree = shipped_copy();
    let out = orch(
        std::path::Path::new("live"),
        tree.root(),
        &["explain", "prod/us-east-1/s3-data"],
    );
    out.assert_success();
    let text = &out.stdout;
    assert!(
        text.starts_with("# prod/us-east-1/s3-data (key)\n"),
        "{text}"
    );
    // From orch.yaml's defaults, the account's defaults, the region's defaults, the node itself.
    for (prefix, origin) in [
        ("deletion_window_days: 30 ", "live/orch.yaml:11"),
        ("prevent_destroy: false ", "live/prod/account.yaml:6"),
        ("  DataResidency: us ", "live/prod/us-east-1/region.yaml:2"),
        (
            "aliases: [prod/s3-data] ",
            "live/prod/us-east-1/s3-data/node.yaml:2",
        ),
        (
            "  period_days: 180 ",
            "live/prod/us-east-1/s3-data/node.yaml:5",
        ),
    ] {
        let line = line_starting(text, prefix);
        assert!(line.ends_with(&format!("# {origin}")), "{line}");
    }
    assert!(
        text.contains("# replicas: eu-west-1, ap-southeast-2"),
        "{text}"
    );
    // `*` plain would be a YAML alias: the printed config must read back as the tree says.
    let line = line_starting(text, "replicas: ");
    assert!(line.starts_with("replicas: \"*\" "), "{line}");
}

/// `(written, unchanged, removed)` from render's "…: 3 files written, 4 unchanged, 0 removed".
fn render_counts(stdout: &str) -> (usize, usize, usize) {
    let summary = line_starting(stdout, "rendered ");
    let counts = summary.rsplit(": ").next().unwrap();
    let numbers: Vec<usize> = counts
        .split(", ")
        .map(|part| part.split(' ').next().unwrap().parse().unwrap())
        .collect();
    (numbers[0], numbers[1], numbers[2])
}

#[test]
fn render_twice_leaves_every_file_unchanged() {
    let tree = shipped_copy();
    let first = tree.run(&["render", "--all"]);
    first.assert_success();
    let (written, unchanged, removed) = render_counts(&first.stdout);
    assert_eq!((unchanged, removed), (0, 0), "{}", first.stdout);
    for file in [
        "main.tf",
        "variables.tf",
        "outputs.tf",
        "versions.tf",
        "providers.tf",
        "backend.tf",
        "terraform.tfvars.json",
    ] {
        let path = tree.path(".orch/work/prod/us-east-1/s3-data").join(file);
        assert!(path.is_file(), "{} was not rendered", path.display());
    }
    assert_eq!(written, 7 * tree.work_dirs().len(), "{}", first.stdout);
    let second = tree.run(&["render", "--all"]);
    second.assert_success();
    assert_eq!(
        render_counts(&second.stdout),
        (0, written, 0),
        "{}",
        second.stdout
    );
}

#[test]
fn generate_tfvars_hcl_escapes_strings() {
    let node = "live/prod/us-east-1/s3-data/node.yaml";
    let tree = shipped_copy();
    let original = tree.read(node);
    let (first, rest) = original.split_once('\n').unwrap();
    assert!(first.starts_with("description:"), "{first}");
    let tree = tree.file(
        node,
        &format!("description: \"Say \\\"hi\\\"\\nthen ${{x}} and %{{y}}\"\n{rest}"),
    );
    let out = tree.run(&[
        "generate", "tfvars", "--env", "prod", "--format", "hcl", "--out", "tv",
    ]);
    out.assert_success();
    assert!(out.stdout.contains("wrote tfvars of"), "{}", out.stdout);
    let text = tree.read("tv/prod/us-east-1/s3-data.tfvars");
    let line = line_starting(&text, "description ");
    assert!(
        line.ends_with(r#"= "Say \"hi\"\nthen $${x} and %%{y}""#),
        "{line}"
    );
    // The synthesized replica carries the primary's description, escaped the same way.
    let replica = tree.read("tv/prod/eu-west-1/s3-data.tfvars");
    assert!(
        replica.contains(r#""Say \"hi\"\nthen $${x} and %%{y}""#),
        "{replica}"
    );
    // Only accounts of environment prod.
    assert!(tree
        .path("tv/prod/us-east-1/s3-data-bucket.tfvars")
        .is_file());
    assert!(!tree.path("tv/analytics").exists());
    assert!(!tree.path("tv/staging").exists());
}

#[test]
fn user_values_travel_in_tfvars_json_not_hcl() {
    let node = "live/prod/us-east-1/s3-data/node.yaml";
    let tree = shipped_copy();
    let original = tree.read(node);
    let (_, rest) = original.split_once('\n').unwrap();
    let tree = tree.file(node, &format!("description: \"x ${{evil}}\"\n{rest}"));
    tree.run(&["render", "prod/us-east-1/s3-data"])
        .assert_success();
    let dir = ".orch/work/prod/us-east-1/s3-data";
    let vars: Value =
        serde_json::from_str(&tree.read(&format!("{dir}/terraform.tfvars.json"))).unwrap();
    assert_eq!(vars["description"], "x ${evil}");
    for file in ["main.tf", "variables.tf", "providers.tf"] {
        assert!(
            !tree.read(&format!("{dir}/{file}")).contains("evil"),
            "{file} holds a user value"
        );
    }
}

#[test]
fn glob_with_deps_renders_the_dependencies() {
    let tree = shipped_copy();
    tree.run(&["render", "prod/*/s3-data-bucket", "--with-deps"])
        .assert_success();
    assert_eq!(
        tree.work_dirs(),
        ["prod/us-east-1/s3-data", "prod/us-east-1/s3-data-bucket"]
    );
}

#[test]
fn glob_without_deps_renders_only_matches() {
    let tree = shipped_copy();
    tree.run(&["render", "prod/*/s3-data-bucket"])
        .assert_success();
    assert_eq!(tree.work_dirs(), ["prod/us-east-1/s3-data-bucket"]);
}

#[test]
fn glob_matches_one_segment() {
    let tree = shipped_copy();
    tree.run(&["render", "prod/*/s3-data"]).assert_success();
    assert_eq!(
        tree.work_dirs(),
        [
            "prod/ap-southeast-2/s3-data",
            "prod/eu-west-1/s3-data",
            "prod/us-east-1/s3-data",
        ]
    );
}

#[test]
fn with_deps_follows_consumers_across_accounts() {
    let tree = shipped_copy();
    tree.run(&["render", "--account", "analytics", "--with-deps"])
        .assert_success();
    assert_eq!(
        tree.work_dirs(),
        [
            "analytics/us-west-2/prod-data-reader",
            "analytics/us-west-2/warehouse",
            "prod/us-east-1/s3-data",
        ]
    );
}

#[test]
fn region_filter_and_double_star() {
    let tree = shipped_copy();
    tree.run(&["render", "staging/**", "--region", "eu-west-1"])
        .assert_success();
    assert_eq!(tree.work_dirs(), ["staging/eu-west-1/app"]);
}

#[test]
fn filter_that_matches_nothing_is_an_error() {
    let tree = shipped_copy();
    let out = tree.run(&["render", "prod/*/nothing"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("`prod/*/nothing` matches no node"),
        "{}",
        out.stderr
    );
    assert!(!tree.path(".orch").exists());
}

#[test]
fn render_without_filters_is_an_error() {
    let tree = shipped_copy();
    let out = tree.run(&["render"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("--all"), "{}", out.stderr);
    assert!(!tree.path(".orch").exists());
}

#[test]
fn an_administrator_who_can_decrypt_is_a_warning_and_with_strict_an_error() {
    let tree = Tree::new().file(
        "live/dev/us-east-1/app/node.yaml",
        "description: Encrypts dev app data\nkey_users: [arn:aws:iam::222222222222:role/admin]\n",
    );
    let relaxed = tree.run(&["validate"]);
    relaxed.assert_success();
    assert!(
        relaxed.stderr.contains("warning: dev/us-east-1/app: arn:aws:iam::222222222222:role/admin can both administer the key and read data with it"),
        "{}",
        relaxed.stderr
    );
    let strict = tree.run(&["--strict", "validate"]);
    strict.assert_invalid();
    assert!(strict.stderr.contains(
        "error: dev/us-east-1/app: arn:aws:iam::222222222222:role/admin can both administer"
    ));
}

#[test]
fn a_kind_the_templates_lack_is_one_clear_error() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let tree = shipped_copy()
        .copy(&repo.join("templates"), "templates")
        .remove("templates/grant");
    let out = tree.run(&["validate"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("have no `grant/` folder, which nodes of this tree use"),
        "{}",
        out.stderr
    );
}

#[test]
fn an_endpoint_that_does_not_answer_stops_the_run_at_once() {
    let tree = shipped_copy();
    // A port nothing listens on: bound, then let go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    for args in [
        vec![
            "--profile",
            "sandbox",
            "--endpoint",
            &endpoint,
            "plan",
            "--all",
        ],
        vec!["--endpoint", &endpoint, "apply", "--all", "--auto-approve"],
        vec![
            "--profile",
            "sandbox",
            "--endpoint",
            &endpoint,
            "rollout",
            "--auto-approve",
        ],
        vec![
            "--profile",
            "sandbox",
            "--endpoint",
            &endpoint,
            "drift",
            "--all",
        ],
    ] {
        let started = std::time::Instant::now();
        let out = tree.run(&args);
        assert_eq!(out.code, 1, "{args:?}: {}", out.stderr);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "{args:?} took {:?}",
            started.elapsed()
        );
        assert!(
            out.stderr.contains(&format!(
                "the endpoint {endpoint} does not answer (Connection refused"
            )) && out.stderr.contains("nothing was run"),
            "{args:?}: {}",
            out.stderr
        );
        assert!(!tree.path(".orch/work").exists(), "{args:?}: something ran");
    }
}
