//! `import:` in the tree, written by hand or edited after `orch import discover`: each bad input
//! is refused like a compiler (exit 1, the file and line, what is wrong and how to fix it,
//! nothing rendered), and the valid edge cases (`import: null`, a grant without a name) load.
//! Also the usage errors of `orch import discover` that need no AWS.

mod common;

use common::Tree;

const PROD: &str = "live/prod/account.yaml";
const DATA: &str = "live/prod/us-east-1/data/node.yaml";
const APP: &str = "live/dev/us-east-1/app/node.yaml";
const GRANT: &str = "live/prod/us-east-1/reader/node.yaml";
const KEY_ID: &str = "1234abcd-12ab-34cd-56ef-1234567890ab";

/// The base tree with the dev app key adopting `import` (YAML lines 4 and on of its node.yaml).
fn app_importing(import: &str) -> Tree {
    Tree::new().file(
        APP,
        &format!(
            "description: Encrypts dev app data\naliases: [dev/app]\nkey_users: [arn:aws:iam::222222222222:role/app]\n{import}"
        ),
    )
}

#[test]
fn import_in_account_defaults() {
    let out = Tree::new()
        .file(
            PROD,
            &format!(
                r#"account_id: "111111111111"
environment: prod
regions: [us-east-1, eu-west-1]
defaults:
  import: {{key_id: {KEY_ID}}}
"#
            ),
        )
        .rejects(
            &[&format!("{PROD}:5")],
            &[
                "`import` names one AWS resource, so it belongs in a node.yaml, not in defaults",
                "move `import` into the node.yaml of the node that adopts the key",
            ],
        );
    assert_eq!(out.errors().len(), 1, "{}", out.stderr);
}

#[test]
fn import_in_region_defaults() {
    let region = "live/dev/us-east-1/region.yaml";
    let out = Tree::new()
        .file(
            region,
            &format!("defaults:\n  import: {{key_id: {KEY_ID}}}\n"),
        )
        .rejects(
            &[&format!("{region}:2")],
            &[
                "`import` names one AWS resource, so it belongs in a node.yaml, not in defaults",
                "move `import` into the node.yaml",
            ],
        );
    assert_eq!(out.errors().len(), 1, "{}", out.stderr);
}

#[test]
fn key_ids_that_are_not_key_ids() {
    for id in [
        "../../x",
        "1234ABCD-12AB-34CD-56EF-1234567890AB",
        "mrk-123",
        "alias/dev/app",
    ] {
        let out = app_importing(&format!("import:\n  key_id: \"{id}\"\n")).rejects(
            &[&format!("{APP}:5")],
            &[
                &format!("`{id}` is not a KMS key id"),
                "a key id is a UUID (1234abcd-12ab-34cd-56ef-1234567890ab) or, for a multi-region key, mrk- and 32 hex digits",
            ],
        );
        assert_eq!(out.errors().len(), 1, "{id}: {}", out.stderr);
    }
}

#[test]
fn imported_alias_not_among_the_aliases() {
    app_importing(&format!(
        "import:\n  key_id: {KEY_ID}\n  aliases: [dev/app, dev/old]\n"
    ))
    .rejects(
        &[&format!("{APP}:6")],
        &[
            "`import.aliases` names `dev/old`, which is not in `aliases`",
            "an adopted alias must be one of the key's aliases",
        ],
    );
}

#[test]
fn one_key_imported_by_two_nodes() {
    let other = "live/dev/us-east-1/app2/node.yaml";
    let out = app_importing(&format!("import: {{key_id: {KEY_ID}}}\n"))
        .file(
            other,
            &format!("description: the same key\nimport: {{key_id: {KEY_ID}}}\n"),
        )
        .rejects(
            &[&format!("{other}:2"), &format!("{APP}:4")],
            &[
                &format!("dev/us-east-1/app2 and dev/us-east-1/app both import `{KEY_ID}`"),
                "one node adopts one AWS resource; remove one of the `import:` entries",
            ],
        );
    assert_eq!(out.errors().len(), 1, "{}", out.stderr);
}

#[test]
fn one_key_id_in_two_regions_is_two_keys() {
    // A key id names a key in one account and region; the same text elsewhere is another key.
    Tree::new()
        .file(
            DATA,
            &format!("description: Encrypts prod data\nimport: {{key_id: {KEY_ID}}}\n"),
        )
        .file(
            "live/prod/eu-west-1/data/node.yaml",
            &format!("description: Encrypts prod data\nimport: {{key_id: {KEY_ID}}}\n"),
        )
        .run(&["validate"])
        .assert_success();
}

#[test]
fn import_on_an_explicit_replica() {
    let replica = "live/prod/eu-west-1/data/node.yaml";
    let out = Tree::new()
        .file(
            DATA,
            "description: Encrypts prod data\naliases: [prod/data]\nmulti_region: true\n",
        )
        .file(
            replica,
            "replica_of: prod/us-east-1/data\nimport: {key_id: mrk-1234abcd12ab34cd56ef1234567890ab}\n",
        )
        .rejects(
            &[&format!("{replica}:2")],
            &[
                "a replica is adopted with its primary: a multi-region key has one key id in every region",
                "remove `import` here; it belongs in the primary's node.yaml (prod/us-east-1/data)",
            ],
        );
    assert_eq!(out.errors().len(), 1, "{}", out.stderr);
}

#[test]
fn grant_id_that_is_not_one() {
    Tree::new()
        .file(
            GRANT,
            "kind: grant\nkey: prod/us-east-1/data\ngrantee: arn:aws:iam::222222222222:role/r\noperations: [Decrypt]\nimport: {grant_id: \"../x\"}\n",
        )
        .rejects(
            &[&format!("{GRANT}:5")],
            &[
                "`../x` is not a KMS grant id",
                "a grant id is 1-128 letters and digits, as ListGrants shows it",
            ],
        );
}

#[test]
fn unknown_field_of_import() {
    app_importing(&format!(
        "import:\n  key_id: {KEY_ID}\n  alias: [dev/app]\n"
    ))
    .rejects(
        &[&format!("{APP}:6")],
        &["unknown field `alias`", "did you mean `aliases`?"],
    );
}

#[test]
fn import_null_adopts_nothing() {
    let tree = app_importing("import: null\n");
    tree.run(&["validate"]).assert_success();
    let out = tree.run(&["import", "apply", "--all", "--auto-approve"]);
    out.assert_success();
    assert!(
        out.stderr
            .contains("no selected node adopts anything (`import:`); nothing to do"),
        "{}",
        out.stderr
    );
}

#[test]
fn grant_with_an_empty_name_is_a_grant_without_a_name() {
    let tree = Tree::new().file(
        GRANT,
        "kind: grant\nkey: prod/us-east-1/data\nname: \"\"\ngrantee: arn:aws:iam::222222222222:role/r\noperations: [Decrypt]\nimport: {grant_id: 0123456789abcdef0123456789abcdef}\n",
    );
    tree.run(&["validate"]).assert_success();
    tree.run(&["render", "prod/us-east-1/reader"])
        .assert_success();
    let vars = tree.read(".orch/work/prod/us-east-1/reader/terraform.tfvars.json");
    let vars: serde_json::Value = serde_json::from_str(&vars).unwrap();
    assert_eq!(vars["grant_name"], serde_json::Value::Null, "{vars}");
}

#[test]
fn discover_of_an_account_the_tree_lacks() {
    let out = Tree::new().run(&["import", "discover", "--account", "nope", "--dry-run"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains(
            "--account nope: no such account in the tree (accounts: dev, prod); import adopts keys into accounts the tree has: add live/nope/account.yaml first"
        ),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
}

#[test]
fn discover_of_a_region_that_is_not_one() {
    let out = Tree::new().run(&["import", "discover", "--region", "mars-1", "--dry-run"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("--region mars-1: not an AWS region orch knows"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
}
