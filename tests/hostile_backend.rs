//! Bad input for the S3 backend (`backend: {type: s3, ...}` in orch.yaml): templates and names
//! that validate refuses with file:line, and buckets that are missing or belong to another
//! account, which a run finds before any node runs. The last ones need terraform and the
//! emulator (`scripts/just setup`); a backend-only `init` is all they cost, never a plan.

mod common;
#[path = "e2e/emulator.rs"]
mod emulator;
#[path = "e2e/s3.rs"]
mod s3;

use common::Tree;
use emulator::{orch, write, Sandbox};

const ORCH: &str = "live/orch.yaml";

fn backend(bucket_line: &str) -> String {
    format!("backend:\n  type: s3\n{bucket_line}  region: us-east-1\n")
}

#[test]
fn unknown_placeholder_in_the_bucket_template() {
    Tree::new()
        .file(ORCH, &backend("  bucket: \"tfstate-{region}\"\n"))
        .rejects(
            &["live/orch.yaml:3"],
            &[
                "`{region}` in `tfstate-{region}` is not a placeholder orch knows (known: {account_id}, {account}, {environment})",
            ],
        );
    Tree::new()
        .file(ORCH, &backend("  bucket: \"tfstate-{account_id\"\n"))
        .rejects(&["live/orch.yaml:3"], &["is not a placeholder orch knows"]);
}

#[test]
fn invalid_bucket_names() {
    let long = format!("tfstate-{{account_id}}-{}", "x".repeat(50));
    for (bucket, says) in [
        (long.as_str(), "characters long; S3 takes 3 to 63"),
        ("TFState-{account_id}", "`T` is upper case"),
        ("tfstate.{account_id}", "it has a dot"),
        ("192.168.1.1", "it has a dot"),
        ("tfstate_{account_id}", "`_` is not allowed"),
        (
            "-tfstate-{account_id}",
            "must start and end with a letter or digit",
        ),
        ("xn--{account_id}", "reserved by AWS"),
        ("{account_id}-s3alias", "reserved by AWS"),
        ("ab", "it is 2 characters long"),
    ] {
        Tree::new()
            .file(ORCH, &backend(&format!("  bucket: \"{bucket}\"\n")))
            .rejects(
                &["live/orch.yaml:3"],
                &["backend `bucket`", "is not a valid S3 bucket name", says],
            );
    }
}

#[test]
fn a_name_only_one_account_makes_invalid() {
    // `data_lake` is a valid account name and `_` is not valid in a bucket name.
    Tree::new()
        .rename("live/dev", "live/data_lake")
        .file(ORCH, &backend("  bucket: \"tfstate-{account}\"\n"))
        .rejects(
            &["live/orch.yaml:3", "live/data_lake/account.yaml:1"],
            &["gives account `data_lake` the bucket `tfstate-data_lake`, which is not a valid S3 bucket name: `_` is not allowed"],
        );
    let out = Tree::new()
        .file(
            ORCH,
            &backend(&format!(
                "  bucket: \"{}-{{environment}}\"\n",
                "t".repeat(59)
            )),
        )
        .rejects(&["live/orch.yaml:3"], &["gives account `prod` the bucket"]);
    assert!(
        !out.stderr.contains("account `dev`"),
        "`dev` gives a 63-character name, which is valid:\n{}",
        out.stderr
    );
}

#[test]
fn bad_region_prefix_lock_timeout_and_dynamodb_table() {
    Tree::new()
        .file(
            ORCH,
            "backend:\n  type: s3\n  bucket: \"tfstate-{account_id}\"\n  region: us-north-9\n",
        )
        .rejects(
            &["live/orch.yaml:4"],
            &["backend `region`: `us-north-9` is not an AWS region"],
        );
    Tree::new()
        .file(
            ORCH,
            "backend:\n  type: s3\n  bucket: \"tfstate-{account_id}\"\n",
        )
        .rejects(&["live/orch.yaml:2"], &["an s3 backend needs `region`"]);
    for (prefix, says) in [
        ("../up", "has an empty, `.` or `..` segment"),
        ("/abs", "has an empty, `.` or `..` segment"),
        ("a\"b", "is not allowed"),
        ("with space", "is not allowed"),
    ] {
        Tree::new()
            .file(
                ORCH,
                &format!(
                    "{}  key_prefix: '{prefix}'\n",
                    backend("  bucket: \"tfstate-{account_id}\"\n")
                ),
            )
            .rejects(&["live/orch.yaml:5"], &["backend `key_prefix`", says]);
    }
    Tree::new()
        .file(
            ORCH,
            &format!(
                "{}  lock_timeout: 2 days\n",
                backend("  bucket: \"tfstate-{account_id}\"\n")
            ),
        )
        .rejects(
            &["live/orch.yaml:5"],
            &["backend `lock_timeout`", "is not a duration"],
        );
    Tree::new()
        .file(
            ORCH,
            &format!(
                "{}  lock_timeout: 2h\n",
                backend("  bucket: \"tfstate-{account_id}\"\n")
            ),
        )
        .rejects(
            &["live/orch.yaml:5"],
            &["backend `lock_timeout` is over an hour"],
        );
    Tree::new()
        .file(
            ORCH,
            &format!(
                "{}  dynamodb_table: tf-locks\n",
                backend("  bucket: \"tfstate-{account_id}\"\n")
            ),
        )
        .rejects(
            &["live/orch.yaml:5"],
            &["`dynamodb_table` is not used: orch locks state with S3 native locking"],
        );
}

/// A fleet of one key in account 222222222222, state in `tfstate-222222222222`.
fn one_key(root: &std::path::Path) {
    write(
        root,
        "live/orch.yaml",
        &s3::orch_yaml("tfstate-{account_id}", ""),
    );
    write(
        root,
        "live/dev/account.yaml",
        &s3::account_yaml("222222222222"),
    );
    write(root, "live/dev/us-east-1/k/node.yaml", "description: k\n");
}

/// No node ran: no work dir rendered, no terraform log.
fn nothing_ran(root: &std::path::Path) {
    assert!(
        !root.join(".orch/work").exists(),
        "a node was rendered: {:?}",
        std::fs::read_dir(root.join(".orch/work")).map(|d| d.count())
    );
    let logs = s3::files_under(&root.join(".orch/logs"));
    assert!(logs.is_empty(), "node logs were written: {logs:?}");
}

#[test]
fn a_missing_bucket_stops_the_run_before_any_node() {
    let sandbox = Sandbox::start();
    let root = sandbox.tmp.path();
    let endpoint = &sandbox.emulator.endpoint;
    one_key(root);
    for args in [
        &["plan", "--all"][..],
        &["apply", "--all", "--auto-approve"][..],
    ] {
        let run = orch(root, endpoint, args);
        assert_eq!(run.code, 1, "{args:?}:\n{}", run.stderr);
        assert!(
            run.stderr.contains("the state bucket tfstate-222222222222 (account dev, through arn:aws:iam::222222222222:role/orch-deployer) does not exist in us-east-1: run `orch backend bootstrap` to create it"),
            "{}",
            run.stderr
        );
        assert!(run.stderr.contains("nothing was run"), "{}", run.stderr);
        nothing_ran(root);
    }
    let bucket = s3::bucket(
        &sandbox.venv,
        endpoint,
        "222222222222",
        "tfstate-222222222222",
    );
    assert_eq!(bucket["exists"], false, "{bucket}");
}

#[test]
fn a_bucket_of_another_account_is_refused_by_name() {
    let sandbox = Sandbox::start();
    let root = sandbox.tmp.path();
    let endpoint = &sandbox.emulator.endpoint;
    one_key(root);
    // Someone else, account 999999999999, owns the name first.
    s3::s3py(
        &sandbox.venv,
        &["create", endpoint, "999999999999", "tfstate-222222222222"],
    );
    let run = orch(root, endpoint, &["backend", "bootstrap", "--auto-approve"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    for says in [
        "tfstate-222222222222 (account dev, through arn:aws:iam::222222222222:role/orch-deployer): not usable",
        "the state bucket tfstate-222222222222 exists but account dev",
        "belongs to another account",
        "orch.yaml:4)",
        "nothing was created",
    ] {
        assert!(run.stderr.contains(says), "lacks {says:?}:\n{}", run.stderr);
    }
    let run = orch(root, endpoint, &["apply", "--all", "--auto-approve"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("exists but account dev") && run.stderr.contains("nothing was run"),
        "{}",
        run.stderr
    );
    nothing_ran(root);
    // The other account's bucket is as it was: empty, not versioned by orch.
    let bucket = s3::bucket(
        &sandbox.venv,
        endpoint,
        "999999999999",
        "tfstate-222222222222",
    );
    assert_eq!(bucket["objects"], serde_json::json!({}), "{bucket}");
    assert_eq!(bucket["versioning"], serde_json::Value::Null, "{bucket}");
}
