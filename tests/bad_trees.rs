//! Trees `orch` must reject: each test breaks the base fleet of `common::BASE` in one way and
//! checks the error names the right `file:line`, says what is wrong, does not panic, and that
//! `render --all` of the broken tree writes nothing.
//!
//! Tests marked `#[ignore = "orch bug: ..."]` assert the behaviour the design asks for and fail
//! today; they are the reproductions of the bugs they name.

mod common;

use common::Tree;

const ORCH: &str = "live/orch.yaml";
const PROD: &str = "live/prod/account.yaml";
const DEV: &str = "live/dev/account.yaml";
const DATA: &str = "live/prod/us-east-1/data/node.yaml";
const APP: &str = "live/dev/us-east-1/app/node.yaml";

/// A dev key at `dev/us-east-1/<name>` with the given extra lines after two fixed ones.
fn dev_key(tree: Tree, name: &str, extra: &str) -> Tree {
    tree.file(
        &format!("live/dev/us-east-1/{name}/node.yaml"),
        &format!("description: {name}\nkey_users: [arn:aws:iam::222222222222:role/app]\n{extra}"),
    )
}

/// A grant in prod/us-east-1 (lines: kind, key, grantee, operations).
fn grant(key: &str, operations: &str) -> String {
    format!(
        "kind: grant\nkey: {key}\ngrantee: arn:aws:iam::222222222222:role/reader\noperations: {operations}\n"
    )
}

#[test]
fn base_tree_is_valid() {
    let tree = Tree::new();
    let out = tree.run(&["validate"]);
    out.assert_success();
    assert!(out.stdout.contains("3 nodes"), "{}", out.stdout);
    assert_eq!(out.stderr, "");
}

// ---- YAML ------------------------------------------------------------------------------------

#[test]
fn malformed_yaml() {
    Tree::new()
        .file(
            DATA,
            "description: x\naliases: [prod/data\nmulti_region: true\n",
        )
        .rejects(&[&format!("{DATA}:3")], &["malformed YAML"]);
}

#[test]
fn duplicate_key_in_a_mapping() {
    Tree::new()
        .file(APP, "description: a\ntags:\n  Team: x\n  Team: y\n")
        .rejects(
            &[&format!("{APP}:4"), &format!("{APP}:3")],
            &[
                "field `Team` is set twice in this mapping",
                "first set here",
            ],
        );
}

#[test]
fn duplicate_top_level_field() {
    Tree::new()
        .file(APP, "description: a\naliases: [dev/app]\ndescription: b\n")
        .rejects(
            &[&format!("{APP}:3"), &format!("{APP}:1")],
            &["field `description` is set twice in this mapping"],
        );
}

#[test]
fn top_level_list() {
    Tree::new()
        .file(APP, "- description: x\n")
        .rejects(&[&format!("{APP}:1")], &["expected a mapping"]);
}

#[test]
fn yaml_anchor() {
    Tree::new()
        .file(
            APP,
            "description: &d x\naliases: [dev/app]\nkey_users: [arn:aws:iam::222222222222:role/app]\n",
        )
        .rejects(
            &[&format!("{APP}:1")],
            &["YAML anchors and aliases are not supported"],
        );
}

#[test]
fn unknown_field_suggests_the_right_one() {
    let out = Tree::new()
        .file(
            DATA,
            "description: x\nmulti_region: true\nreplicas: [eu-west-1]\nalaises: [prod/data]\n",
        )
        .rejects(
            &[&format!("{DATA}:4")],
            &[
                "unknown field `alaises` in node.yaml",
                "help: did you mean `aliases`?",
            ],
        );
    assert_eq!(out.errors().len(), 1, "{}", out.stderr);
}

#[test]
fn unknown_field_lists_the_fields_of_its_kind_once() {
    let out = Tree::new().file(APP, "description: x\nzzz: 1\n").rejects(
        &[&format!("{APP}:2")],
        &["unknown field `zzz` in node.yaml"],
    );
    let help = out
        .stderr
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("= help: the fields of node.yaml are: ")
        })
        .unwrap_or_else(|| panic!("no list of fields:\n{}", out.stderr));
    let fields: Vec<&str> = help.split(", ").collect();
    let mut unique = fields.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), fields.len(), "{help}");
    assert!(fields.contains(&"replicas"), "{help}");
    assert!(!fields.contains(&"replica_of"), "{help}");
}

#[test]
fn unknown_field_in_account_yaml() {
    Tree::new()
        .file(
            DEV,
            "account_id: \"222222222222\"\nenvironment: dev\nregion: [us-east-1]\nregions: [us-east-1]\n",
        )
        .rejects(
            &[&format!("{DEV}:3")],
            &["unknown field `region` in account.yaml", "did you mean `regions`?"],
        );
}

#[test]
fn stray_yaml_file() {
    Tree::new()
        .file("live/prod/us-east-1/data/node.yml", "description: x\n")
        .rejects(
            &["live/prod/us-east-1/data/node.yml"],
            &["unexpected file `node.yml`"],
        );
}

#[test]
fn node_directory_without_node_yaml() {
    Tree::new().dir("live/dev/us-east-1/empty").rejects(
        &["live/dev/us-east-1/empty"],
        &["node directory `empty` has no node.yaml"],
    );
}

#[test]
fn account_without_account_yaml() {
    Tree::new()
        .remove(DEV)
        .rejects(&[DEV], &["account `dev` has no account.yaml"]);
}

#[test]
fn missing_required_field() {
    Tree::new()
        .file(
            "live/prod/us-east-1/g/node.yaml",
            "kind: grant\nkey: prod/us-east-1/data\noperations: [Decrypt]\n",
        )
        .rejects(
            &["live/prod/us-east-1/g/node.yaml:1"],
            &["missing the required field `grantee`"],
        );
}

#[test]
fn missing_required_field_points_at_the_start_of_the_file() {
    let out = Tree::new()
        .file(
            "live/prod/us-east-1/g/node.yaml",
            "kind: grant\nkey: prod/us-east-1/data\noperations: [Decrypt]\n",
        )
        .rejects(&[], &["missing the required field `grantee`"]);
    assert!(
        out.stderr.contains("live/prod/us-east-1/g/node.yaml:1:1\n"),
        "{}",
        out.stderr
    );
}

// ---- accounts and regions --------------------------------------------------------------------

#[test]
fn bad_account_id() {
    Tree::new()
        .file(
            DEV,
            "environment: dev\naccount_id: \"22222222222\"\nregions: [us-east-1]\n",
        )
        .rejects(
            &[&format!("{DEV}:2")],
            &["`22222222222` is not an AWS account id (12 digits"],
        );
}

#[test]
fn role_arn_in_another_account() {
    Tree::new()
        .file(
            DEV,
            "account_id: \"222222222222\"\nenvironment: dev\nrole_arn: arn:aws:iam::999999999999:role/orch\nregions: [us-east-1]\n",
        )
        .rejects(
            &[&format!("{DEV}:3")],
            &["role_arn is in account 999999999999, but this account is 222222222222"],
        );
}

#[test]
fn role_arn_that_is_a_user() {
    Tree::new()
        .file(
            DEV,
            "account_id: \"222222222222\"\nenvironment: dev\nregions: [us-east-1]\nrole_arn: arn:aws:iam::222222222222:user/deployer\n",
        )
        .rejects(&[&format!("{DEV}:4")], &["is not a role ARN"]);
}

#[test]
fn two_accounts_with_the_same_account_id() {
    Tree::new()
        .file(
            DEV,
            "account_id: \"111111111111\"\nenvironment: dev\nregions: [us-east-1]\n",
        )
        .file(APP, "description: x\n")
        .rejects(
            &[&format!("{PROD}:1"), &format!("{DEV}:1")],
            &["accounts `dev` and `prod` have the same account_id"],
        );
}

#[test]
fn two_accounts_with_the_same_account_id_point_at_the_ids() {
    Tree::new()
        .file(
            DEV,
            "# the dev account\nenvironment: dev\naccount_id: \"111111111111\"\nregions: [us-east-1]\n",
        )
        .file(APP, "description: x\n")
        .rejects(
            &[&format!("{PROD}:1"), &format!("{DEV}:3")],
            &["have the same account_id"],
        );
}

#[test]
fn unknown_region_directory() {
    Tree::new()
        .file("live/prod/us-east-7/region.yaml", "defaults: {}\n")
        .file("live/prod/us-east-7/x/node.yaml", "description: x\n")
        .rejects(
            &["live/prod/us-east-7/region.yaml:1"],
            &[
                "`us-east-7` is not an AWS region",
                "did you mean `us-east-2`?",
            ],
        );
}

#[test]
fn unknown_region_directory_without_region_yaml() {
    // There is no file to quote, so the error names the directory.
    Tree::new()
        .file("live/prod/eu-wset-1/x/node.yaml", "description: x\n")
        .rejects(
            &["live/prod/eu-wset-1"],
            &[
                "`eu-wset-1` is not an AWS region",
                "did you mean `eu-west-1`?",
            ],
        );
}

#[test]
fn unknown_region_in_regions() {
    Tree::new()
        .file(
            DEV,
            "account_id: \"222222222222\"\nenvironment: dev\nregions:\n  - us-east-1\n  - eu-wset-1\n",
        )
        .rejects(
            &[&format!("{DEV}:5")],
            &["`eu-wset-1` is not an AWS region", "did you mean `eu-west-1`?"],
        );
}

#[test]
fn unknown_region_in_replicas() {
    Tree::new()
        .file(
            DATA,
            "description: x\nmulti_region: true\nreplicas:\n  - eu-west-1\n  - eu-wset-2\n",
        )
        .rejects(
            &[&format!("{DATA}:5")],
            &[
                "`eu-wset-2` is not an AWS region",
                "did you mean `eu-west-2`?",
            ],
        );
}

#[test]
fn region_directory_not_enabled_for_the_account() {
    Tree::new()
        .file("live/dev/eu-west-1/x/node.yaml", "description: x\n")
        .rejects(
            &["live/dev/eu-west-1/x/node.yaml:1"],
            &[
                "region eu-west-1 is not enabled for account dev",
                "add eu-west-1 to `regions` in account.yaml",
            ],
        );
}

#[test]
fn replica_region_not_enabled_for_the_account() {
    Tree::new()
        .file(
            DATA,
            "description: x\nmulti_region: true\nreplicas: [eu-west-1, ap-south-1]\n",
        )
        .rejects(
            &[&format!("{DATA}:3")],
            &["region ap-south-1 is not enabled for account prod"],
        );
}

#[test]
fn region_not_enabled_note_points_at_regions() {
    Tree::new()
        .file("live/dev/eu-west-1/x/node.yaml", "description: x\n")
        .rejects(
            &[&format!("{DEV}:4")],
            &["the account's regions are listed here"],
        );
}

// ---- names and addresses ---------------------------------------------------------------------

#[test]
fn dot_dot_in_depends_on() {
    dev_key(Tree::new(), "app", "depends_on: [prod/../x]\n").rejects(
        &[&format!("{APP}:3")],
        &["`prod/../x` is not an address", "`..` is not a valid name"],
    );
}

#[test]
fn key_reference_with_four_segments() {
    Tree::new()
        .file(
            "live/prod/us-east-1/g/node.yaml",
            &grant("a/b/c/d", "[Decrypt]"),
        )
        .rejects(
            &["live/prod/us-east-1/g/node.yaml:2"],
            &["`a/b/c/d` is not an address: write `account/region/node`"],
        );
}

#[test]
fn absolute_path_in_replica_of() {
    Tree::new()
        .file(
            "live/prod/eu-west-1/copy/node.yaml",
            "description: x\nreplica_of: /prod/us-east-1/data\n",
        )
        .rejects(
            &["live/prod/eu-west-1/copy/node.yaml:2"],
            &["`/prod/us-east-1/data` is not an address"],
        );
}

#[test]
fn upper_case_node_directory() {
    Tree::new()
        .file("live/dev/us-east-1/MyKey/node.yaml", "description: x\n")
        .rejects(
            &["live/dev/us-east-1/MyKey/node.yaml:1"],
            &[
                "bad node directory name: `MyKey` is not a valid name",
                "rename the directory to `mykey`",
            ],
        );
}

#[test]
fn upper_case_account_directory() {
    Tree::new().rename("live/dev", "live/Dev").rejects(
        &["live/Dev/account.yaml:1"],
        &[
            "bad account directory name: `Dev`",
            "rename the directory to `dev`",
        ],
    );
}

#[test]
fn node_directory_with_a_space() {
    Tree::new().dir("live/dev/us-east-1/my key").rejects(
        &["live/dev/us-east-1/my key"],
        &[
            "bad node directory name",
            "rename the directory to `my-key`",
        ],
    );
}

// ---- aliases ---------------------------------------------------------------------------------

#[test]
fn alias_with_alias_prefix() {
    dev_key(Tree::new(), "app", "aliases: [alias/dev/app]\n").rejects(
        &[&format!("{APP}:3")],
        &[
            "alias `alias/dev/app` starts with `alias/`",
            "write `dev/app`; orch adds the alias/ prefix",
        ],
    );
}

#[test]
fn alias_with_aws_prefix() {
    dev_key(Tree::new(), "app", "aliases:\n  - dev/app\n  - aws/app\n").rejects(
        &[&format!("{APP}:5")],
        &[
            "alias `aws/app` starts with `aws/`",
            "reserved for AWS managed keys",
        ],
    );
}

#[test]
fn alias_listed_twice_on_one_key() {
    dev_key(Tree::new(), "app", "aliases: [dev/app, dev/app]\n").rejects(
        &[&format!("{APP}:3")],
        &["alias `dev/app` is listed twice", "first listed here"],
    );
}

#[test]
fn duplicate_alias_in_one_account_and_region() {
    let other = "live/dev/us-east-1/other/node.yaml";
    dev_key(Tree::new(), "other", "aliases: [dev/app]\n").rejects(
        &[&format!("{other}:3"), &format!("{APP}:2")],
        &[
            "alias `dev/app` is used by both dev/us-east-1/app and dev/us-east-1/other in dev/us-east-1",
            "dev/us-east-1/app declares it here",
        ],
    );
}

#[test]
fn duplicate_alias_with_a_replica() {
    // prod/data's replica in eu-west-1 carries the alias prod/data.
    let other = "live/prod/eu-west-1/other/node.yaml";
    Tree::new()
        .file(other, "description: x\naliases: [prod/data]\n")
        .rejects(
            &[&format!("{other}:2"), &format!("{DATA}:2")],
            &["alias `prod/data` is used by both prod/eu-west-1/data and prod/eu-west-1/other"],
        );
}

// ---- key settings ----------------------------------------------------------------------------

#[test]
fn deletion_window_below_seven() {
    dev_key(Tree::new(), "app", "deletion_window_days: 6\n").rejects(
        &[&format!("{APP}:3")],
        &["deletion_window_days must be 7-30, not 6"],
    );
}

#[test]
fn deletion_window_above_thirty() {
    Tree::new()
        .file(
            ORCH,
            "defaults:\n  tags: {ManagedBy: orch}\n  deletion_window_days: 31\n",
        )
        .rejects(
            &[&format!("{ORCH}:3")],
            &["deletion_window_days must be 7-30, not 31"],
        );
}

#[test]
fn rotation_period_below_ninety() {
    dev_key(
        Tree::new(),
        "app",
        "rotation:\n  enabled: true\n  period_days: 89\n",
    )
    .rejects(
        &[&format!("{APP}:5")],
        &["rotation period_days must be 90-2560, not 89"],
    );
}

#[test]
fn rotation_period_above_2560() {
    dev_key(Tree::new(), "app", "rotation: {period_days: 2561}\n").rejects(
        &[&format!("{APP}:3")],
        &["rotation period_days must be 90-2560, not 2561"],
    );
}

#[test]
fn rotation_period_with_rotation_disabled() {
    dev_key(
        Tree::new(),
        "app",
        "rotation:\n  enabled: false\n  period_days: 365\n",
    )
    .rejects(
        &[&format!("{APP}:5")],
        &["period_days is set but rotation is disabled"],
    );
}

#[test]
fn rotation_on_an_hmac_key() {
    dev_key(
        Tree::new(),
        "tokens",
        "spec: HMAC_256\nusage: GENERATE_VERIFY_MAC\nrotation: {enabled: true}\n",
    )
    .rejects(
        &["live/dev/us-east-1/tokens/node.yaml:5"],
        &["AWS does not rotate HMAC_256 keys"],
    );
}

#[test]
fn rotation_on_an_asymmetric_key() {
    let out = dev_key(
        Tree::new(),
        "signing",
        "spec: RSA_2048\nusage: SIGN_VERIFY\nrotation:\n  enabled: true\n  period_days: 365\n",
    )
    .rejects(
        &[
            "live/dev/us-east-1/signing/node.yaml:6",
            "live/dev/us-east-1/signing/node.yaml:7",
        ],
        &[
            "AWS does not rotate RSA_2048 keys",
            "so `period_days` has no meaning",
        ],
    );
    assert_eq!(out.reported_count(), 2, "{}", out.stderr);
}

#[test]
fn spec_and_usage_do_not_match() {
    dev_key(
        Tree::new(),
        "signing",
        "spec: ECC_NIST_P256\nusage: ENCRYPT_DECRYPT\n",
    )
    .rejects(
        &["live/dev/us-east-1/signing/node.yaml:4"],
        &[
            "key cannot have usage ENCRYPT_DECRYPT",
            "ECC_NIST_P256 keys support: SIGN_VERIFY",
        ],
    );
}

#[test]
fn unknown_key_spec() {
    dev_key(Tree::new(), "signing", "spec: RSA_2049\n").rejects(
        &["live/dev/us-east-1/signing/node.yaml:3"],
        &["unknown key spec `RSA_2049`", "did you mean `RSA_2048`?"],
    );
}

#[test]
fn boolean_that_is_not_a_boolean() {
    dev_key(Tree::new(), "app", "is_enabled: maybe\n").rejects(
        &[&format!("{APP}:3")],
        &["`is_enabled` must be true or false, not `maybe`"],
    );
}

#[test]
fn tag_key_with_aws_prefix() {
    dev_key(Tree::new(), "app", "tags:\n  aws:owner: me\n").rejects(
        &[&format!("{APP}:4")],
        &["`aws:owner` is not a valid tag key"],
    );
}

// ---- replicas --------------------------------------------------------------------------------

#[test]
fn replica_in_the_primary_region() {
    Tree::new()
        .file(
            DATA,
            "description: x\nmulti_region: true\nreplicas: [eu-west-1, us-east-1]\n",
        )
        .rejects(
            &[&format!("{DATA}:3")],
            &["a replica of prod/us-east-1/data in its own region us-east-1"],
        );
}

#[test]
fn explicit_replica_in_the_primary_region() {
    let copy = "live/prod/us-east-1/data-copy/node.yaml";
    Tree::new()
        .file(copy, "description: x\nreplica_of: prod/us-east-1/data\n")
        .rejects(
            &[&format!("{copy}:2")],
            &["a replica of prod/us-east-1/data in its own region us-east-1"],
        );
}

#[test]
fn replicas_on_a_key_that_is_not_multi_region() {
    Tree::new()
        .file(
            DATA,
            "description: x\nmulti_region: false\nreplicas: [eu-west-1]\n",
        )
        .rejects(
            &[&format!("{DATA}:3"), &format!("{DATA}:2")],
            &[
                "prod/us-east-1/data has replicas but is not a multi-region key",
                "multi_region set here",
            ],
        );
}

#[test]
fn replica_of_a_key_that_is_not_multi_region() {
    let replica = "live/prod/eu-west-1/data/node.yaml";
    Tree::new()
        .file(DATA, "description: x\naliases: [prod/data]\n")
        .file(replica, "description: y\nreplica_of: prod/us-east-1/data\n")
        .rejects(
            &[&format!("{replica}:2")],
            &["prod/eu-west-1/data is a replica of prod/us-east-1/data, which is not a multi-region key"],
        );
}

#[test]
fn two_replicas_in_one_region_listed() {
    Tree::new()
        .file(
            DATA,
            "description: x\nmulti_region: true\nreplicas:\n  - eu-west-1\n  - eu-west-1\n",
        )
        .rejects(
            &[&format!("{DATA}:5"), &format!("{DATA}:4")],
            &[
                "two replicas of prod/us-east-1/data in eu-west-1",
                "first listed here",
            ],
        );
}

#[test]
fn two_replicas_in_one_region_declared() {
    let copy = "live/prod/eu-west-1/data-copy/node.yaml";
    Tree::new()
        .file(copy, "replica_of: prod/us-east-1/data\n")
        .rejects(
            &[&format!("{copy}:1"), &format!("{DATA}:4")],
            &["two replicas of prod/us-east-1/data in eu-west-1"],
        );
}

#[test]
fn replica_in_another_account() {
    let replica = "live/dev/us-east-1/data/node.yaml";
    Tree::new()
        .file(
            DATA,
            "description: x\nmulti_region: true\nreplicas: [eu-west-1]\n",
        )
        .file(replica, "replica_of: prod/us-east-1/data\n")
        .rejects(
            &[&format!("{replica}:1")],
            &["dev/us-east-1/data is in account dev, its primary in prod"],
        );
}

#[test]
fn replica_of_a_consumer() {
    Tree::new()
        .file(
            "live/prod/us-east-1/g/node.yaml",
            &grant("prod/us-east-1/data", "[Decrypt]"),
        )
        .file(
            "live/prod/eu-west-1/g/node.yaml",
            "replica_of: prod/us-east-1/g\n",
        )
        .rejects(
            &["live/prod/eu-west-1/g/node.yaml:1"],
            &["prod/us-east-1/g is not a primary key"],
        );
}

#[test]
fn replica_of_a_replica() {
    let out = Tree::new()
        .file(
            "live/prod/us-east-1/x/node.yaml",
            "replica_of: prod/eu-west-1/data\n",
        )
        .rejects(
            &["live/prod/us-east-1/x/node.yaml:1"],
            &["prod/eu-west-1/data is not a primary key"],
        );
    assert!(
        !out.stderr.contains("not a node of this tree"),
        "{}",
        out.stderr
    );
}

#[test]
fn synthesized_replica_takes_the_address_of_another_node() {
    Tree::new()
        .file("live/prod/eu-west-1/data/node.yaml", "description: unrelated\n")
        .rejects(
            &[&format!("{DATA}:4")],
            &["the replica of prod/us-east-1/data in eu-west-1 would be prod/eu-west-1/data, which is already a node"],
        );
}

#[test]
fn replica_of_on_a_key() {
    let node = "live/prod/eu-west-1/x/node.yaml";
    Tree::new()
        .file(
            node,
            "kind: key\ndescription: x\nreplica_of: prod/us-east-1/data\n",
        )
        .rejects(&[&format!("{node}:3")], &["replica_of"]);
}

// ---- the DAG ---------------------------------------------------------------------------------

#[test]
fn dependency_cycle_prints_every_edge() {
    let b = "live/dev/us-east-1/b/node.yaml";
    let c = "live/dev/us-east-1/c/node.yaml";
    let out = dev_key(Tree::new(), "app", "depends_on: [dev/us-east-1/b]\n");
    let out = dev_key(out, "b", "depends_on: [dev/us-east-1/c]\n");
    let out = dev_key(out, "c", "depends_on: [dev/us-east-1/app]\n").rejects(
        &[&format!("{APP}:3"), &format!("{b}:3"), &format!("{c}:3")],
        &["dependency cycle: dev/us-east-1/app -> dev/us-east-1/c -> dev/us-east-1/b -> dev/us-east-1/app"],
    );
    for (file, edge) in [
        (c, "(dev/us-east-1/app -> dev/us-east-1/c (depends_on))"),
        (b, "(dev/us-east-1/c -> dev/us-east-1/b (depends_on))"),
        (APP, "(dev/us-east-1/b -> dev/us-east-1/app (depends_on))"),
    ] {
        let line = format!("{file}:3:14 {edge}");
        assert!(
            out.stderr.lines().any(|l| l.ends_with(&line)),
            "no note {line:?}:\n{}",
            out.stderr
        );
    }
    assert_eq!(out.reported_count(), 1, "{}", out.stderr);
}

#[test]
fn cycle_through_a_consumer() {
    let g = "live/dev/us-east-1/g/node.yaml";
    dev_key(Tree::new(), "app", "depends_on: [dev/us-east-1/g]\n")
        .file(
            g,
            "kind: grant\nkey: dev/us-east-1/app\ngrantee: arn:aws:iam::111111111111:role/r\noperations: [Decrypt]\n",
        )
        .rejects(
            &[&format!("{g}:2"), &format!("{APP}:3")],
            &[
                "dependency cycle: dev/us-east-1/app -> dev/us-east-1/g -> dev/us-east-1/app",
                "(dev/us-east-1/app -> dev/us-east-1/g (consumer))",
                "(dev/us-east-1/g -> dev/us-east-1/app (depends_on))",
            ],
        );
}

#[test]
fn self_dependency() {
    dev_key(Tree::new(), "app", "depends_on: [dev/us-east-1/app]\n").rejects(
        &[&format!("{APP}:3")],
        &["dev/us-east-1/app depends on itself"],
    );
}

#[test]
fn dangling_depends_on_with_suggestion() {
    dev_key(Tree::new(), "app", "depends_on: [prod/us-east-1/dat]\n").rejects(
        &[&format!("{APP}:3")],
        &[
            "`depends_on` names prod/us-east-1/dat, which is not a node of this tree",
            "did you mean `prod/us-east-1/data`?",
        ],
    );
}

#[test]
fn consumer_of_a_missing_key() {
    let bucket = "live/prod/us-east-1/bucket/node.yaml";
    Tree::new()
        .file(
            bucket,
            "kind: s3-bucket\nbucket: acme-data\nkey: prod/us-east-1/dta\n",
        )
        .rejects(
            &[&format!("{bucket}:3")],
            &[
                "`key` names prod/us-east-1/dta, which is not a node of this tree",
                "did you mean `prod/us-east-1/data`?",
            ],
        );
}

#[test]
fn consumer_of_a_consumer() {
    Tree::new()
        .file(
            "live/prod/us-east-1/g/node.yaml",
            &grant("prod/us-east-1/data", "[Decrypt]"),
        )
        .file(
            "live/prod/us-east-1/g2/node.yaml",
            &grant("prod/us-east-1/g", "[Decrypt]"),
        )
        .rejects(
            &["live/prod/us-east-1/g2/node.yaml:2"],
            &["prod/us-east-1/g is not a key", "consumers cannot chain"],
        );
}

// ---- principals and policies -----------------------------------------------------------------

#[test]
fn empty_principal_list_in_access() {
    dev_key(Tree::new(), "app", "access:\n  read-data: []\n").rejects(
        &[&format!("{APP}:4")],
        &["`read-data` has an empty principal list"],
    );
}

#[test]
fn empty_principal_list_in_key_administrators() {
    Tree::new()
        .file(
            APP,
            "description: x\nkey_administrators: []\nkey_users: [arn:aws:iam::222222222222:role/app]\n",
        )
        .rejects(
            &[&format!("{APP}:2")],
            &["`key_administrators` has an empty principal list"],
        );
}

#[test]
fn empty_roles_in_key_access() {
    let node = "live/dev/us-east-1/reader/node.yaml";
    Tree::new()
        .file(
            node,
            "kind: key-access\nkey: prod/us-east-1/data\ncapabilities: [read-data]\nroles: []\n",
        )
        .rejects(
            &[&format!("{node}:4")],
            &["`roles` has an empty principal list"],
        );
}

#[test]
fn malformed_arn() {
    dev_key(
        Tree::new(),
        "app",
        "decrypt_only: [arn:aws:iam:222222222222:role/app]\n",
    )
    .rejects(
        &[&format!("{APP}:3")],
        &["`arn:aws:iam:222222222222:role/app` is not an ARN"],
    );
}

#[test]
fn group_principal() {
    dev_key(
        Tree::new(),
        "app",
        "access:\n  read-config:\n    - arn:aws:iam::222222222222:group/devs\n",
    )
    .rejects(
        &[&format!("{APP}:5")],
        &["is an IAM group; groups cannot be principals in a key policy"],
    );
}

#[test]
fn assumed_role_principal() {
    dev_key(
        Tree::new(),
        "app",
        "decrypt_only: [arn:aws:sts::222222222222:assumed-role/app/session]\n",
    )
    .rejects(
        &[&format!("{APP}:3")],
        &["is an assumed-role session, which expires; name the role instead"],
    );
}

#[test]
fn everyone_as_principal() {
    dev_key(Tree::new(), "app", "decrypt_only: [\"*\"]\n").rejects(
        &[&format!("{APP}:3")],
        &["`*` (everyone) is never a principal"],
    );
}

#[test]
fn grantee_that_is_not_an_arn() {
    Tree::new()
        .file(
            "live/prod/us-east-1/g/node.yaml",
            "kind: grant\nkey: prod/us-east-1/data\noperations: [Decrypt]\ngrantee: reader\n",
        )
        .rejects(
            &["live/prod/us-east-1/g/node.yaml:4"],
            &["`reader` is not an ARN"],
        );
}

#[test]
fn policy_override_that_is_not_json() {
    dev_key(Tree::new(), "app", "policy: '{\"Version\": }'\n")
        .rejects(&[&format!("{APP}:3")], &["`policy` is not valid JSON"]);
}

#[test]
fn policy_override_that_is_not_an_object() {
    dev_key(Tree::new(), "app", "policy: '[1, 2]'\n")
        .rejects(&[&format!("{APP}:3")], &["`policy` must be a JSON object"]);
}

#[test]
fn nobody_can_manage_the_key() {
    // Neither the account root nor an administrator can call PutKeyPolicy.
    let node = "live/dev/us-east-1/locked/node.yaml";
    Tree::new()
        .file(
            DEV,
            "account_id: \"222222222222\"\nenvironment: dev\nregions: [us-east-1]\n",
        )
        .file(node, "description: x\nroot_access: false\n")
        .rejects(
            &[],
            &["dev/us-east-1/locked: no principal can change this key's policy"],
        );
}

#[test]
fn nobody_can_manage_the_key_points_at_root_access() {
    let node = "live/dev/us-east-1/locked/node.yaml";
    Tree::new()
        .file(
            DEV,
            "account_id: \"222222222222\"\nenvironment: dev\nregions: [us-east-1]\n",
        )
        .file(node, "description: x\nroot_access: false\n")
        .rejects(&[&format!("{node}:2")], &["no principal can change"]);
}

#[test]
fn lockout_of_a_key_with_replicas_is_one_error() {
    // The replica shares the key's access model; the key's verdict covers it.
    let out = Tree::new()
        .file(
            PROD,
            "account_id: \"111111111111\"\nenvironment: prod\nregions: [us-east-1, eu-west-1]\n",
        )
        .file(
            DATA,
            "description: x\nmulti_region: true\nreplicas: [eu-west-1]\nroot_access: false\n",
        )
        .rejects(&[&format!("{DATA}:4")], &["no principal can change"]);
    assert_eq!(out.reported_count(), 1, "{}", out.stderr);
}

#[test]
fn lockout_from_a_default_is_reported_once() {
    let out = dev_key(Tree::new(), "other", "")
        .file(ORCH, "defaults:\n  root_access: false\n")
        .file(
            DEV,
            "account_id: \"222222222222\"\nenvironment: dev\nregions: [us-east-1]\n",
        )
        .file(APP, "description: x\n")
        .rejects(
            &[&format!("{ORCH}:2")],
            &["no principal can change", "the role orch deploys with (arn:aws:iam::111111111111:role/orch-deployer) cannot change"],
        );
    // Two problems (dev's keys have no administrator at all; prod's data key has one, but not
    // the role orch deploys with), each reported once however many keys inherit the default.
    assert_eq!(out.reported_count(), 2, "{}", out.stderr);
    assert_eq!(
        out.stderr.matches("no principal can change").count(),
        1,
        "{}",
        out.stderr
    );
}

// ---- capabilities and kinds ------------------------------------------------------------------

#[test]
fn unknown_capability_in_access() {
    dev_key(
        Tree::new(),
        "app",
        "access:\n  read-dta: [arn:aws:iam::222222222222:role/app]\n",
    )
    .rejects(
        &[&format!("{APP}:4")],
        &["unknown capability `read-dta`", "did you mean `read-data`?"],
    );
}

#[test]
fn unknown_capability_in_a_list() {
    let node = "live/dev/us-east-1/reader/node.yaml";
    Tree::new()
        .file(
            node,
            "kind: key-access\nkey: prod/us-east-1/data\nroles: [arn:aws:iam::222222222222:role/r]\ncapabilities: [raed-data]\n",
        )
        .rejects(
            &[&format!("{node}:4")],
            &["unknown capability `raed-data`", "did you mean `read-data`?"],
        );
}

#[test]
fn unknown_kind_suggests_the_right_one() {
    let node = "live/prod/us-east-1/g/node.yaml";
    Tree::new()
        .file(
            node,
            &grant("prod/us-east-1/data", "[Decrypt]").replace("grant\n", "grnat\n"),
        )
        .rejects(
            &[&format!("{node}:1")],
            &["unknown kind `grnat`", "did you mean `grant`?"],
        );
}

#[test]
fn unknown_kind_is_one_error() {
    let node = "live/prod/us-east-1/g/node.yaml";
    let out = Tree::new()
        .file(
            node,
            &grant("prod/us-east-1/data", "[Decrypt]").replace("grant\n", "grnat\n"),
        )
        .rejects(&[&format!("{node}:1")], &["unknown kind `grnat`"]);
    assert_eq!(out.errors(), ["unknown kind `grnat`"], "{}", out.stderr);
}

#[test]
fn key_access_within_the_same_account() {
    let node = "live/prod/us-east-1/reader/node.yaml";
    Tree::new()
        .file(
            node,
            "kind: key-access\nkey: prod/us-east-1/data\nroles: [arn:aws:iam::111111111111:role/r]\ncapabilities: [read-data]\n",
        )
        .rejects(
            &[&format!("{node}:2")],
            &["prod/us-east-1/reader gives access to prod/us-east-1/data within the same account"],
        );
}

#[test]
fn key_access_that_administers() {
    let node = "live/dev/us-east-1/reader/node.yaml";
    Tree::new()
        .file(
            node,
            "kind: key-access\nkey: prod/us-east-1/data\nroles: [arn:aws:iam::222222222222:role/r]\ncapabilities: [read-data, administer-resource]\n",
        )
        .rejects(
            &[&format!("{node}:4")],
            &["key-access cannot grant `administer-resource`"],
        );
}

#[test]
fn key_access_roles_of_another_account() {
    let node = "live/dev/us-east-1/reader/node.yaml";
    Tree::new()
        .file(
            node,
            "kind: key-access\nkey: prod/us-east-1/data\nroles: [arn:aws:iam::333333333333:role/r]\ncapabilities: [read-data]\n",
        )
        .rejects(&[&format!("{node}:3")], &["333333333333"]);
}

#[test]
fn grant_without_operations() {
    let node = "live/prod/us-east-1/g/node.yaml";
    Tree::new()
        .file(node, &grant("prod/us-east-1/data", "[]"))
        .rejects(
            &[&format!("{node}:4")],
            &["`operations` is empty: a grant must allow at least one operation"],
        );
}

#[test]
fn grant_with_an_unknown_operation() {
    let node = "live/prod/us-east-1/g/node.yaml";
    Tree::new()
        .file(node, &grant("prod/us-east-1/data", "[Decrypt, Decrpyt]"))
        .rejects(
            &[&format!("{node}:4")],
            &[
                "`Decrpyt` is not a grant operation",
                "did you mean `Decrypt`?",
            ],
        );
}

#[test]
fn grant_operations_the_key_cannot_do() {
    let node = "live/prod/us-east-1/g/node.yaml";
    // The base fleet's prod/us-east-1/data is a symmetric encryption key.
    Tree::new()
        .file(node, &grant("prod/us-east-1/data", "[Decrypt, Sign, GenerateMac]"))
        .rejects(
            &[&format!("{node}:4"), &format!("{node}:4")],
            &[
                "`Sign` is not an operation of prod/us-east-1/data, a SYMMETRIC_DEFAULT ENCRYPT_DECRYPT key",
                "`GenerateMac` is not an operation of prod/us-east-1/data",
                "AWS refuses the grant; a SYMMETRIC_DEFAULT ENCRYPT_DECRYPT key allows Decrypt, Encrypt,",
            ],
        );
    // The replica in eu-west-1 is its primary's kind of key: the grant on it is checked the same.
    Tree::new()
        .file(
            "live/prod/eu-west-1/g/node.yaml",
            &grant("prod/eu-west-1/data", "[Verify]"),
        )
        .rejects(
            &["live/prod/eu-west-1/g/node.yaml:4"],
            &["`Verify` is not an operation of prod/eu-west-1/data"],
        );
    // A signing key: Decrypt is refused, Sign and GetPublicKey are not; an HMAC key refuses an
    // encryption context constraint, which only symmetric encryption keys' operations take.
    Tree::new()
        .file(
            "live/prod/us-east-1/signer/node.yaml",
            "spec: RSA_2048\nusage: SIGN_VERIFY\nrotation: {enabled: false}\n",
        )
        .file(node, &grant("prod/us-east-1/signer", "[Sign, GetPublicKey, Decrypt]"))
        .rejects(
            &[&format!("{node}:4")],
            &["`Decrypt` is not an operation of prod/us-east-1/signer, a RSA_2048 SIGN_VERIFY key"],
        );
    Tree::new()
        .file(
            "live/prod/us-east-1/mac/node.yaml",
            "spec: HMAC_256\nusage: GENERATE_VERIFY_MAC\nrotation: {enabled: false}\n",
        )
        .file(
        node,
        &format!(
            "{}encryption_context_subset: {{team: data}}\n",
            grant("prod/us-east-1/mac", "[GenerateMac, VerifyMac]")
        ),
    )
    .rejects(
        &[&format!("{node}:5")],
        &["an encryption context constraint on a grant of prod/us-east-1/mac, a HMAC_256 GENERATE_VERIFY_MAC key"],
    );
}

#[test]
fn grant_in_another_region_than_its_key() {
    let node = "live/prod/eu-west-1/g/node.yaml";
    Tree::new()
        .file(node, &grant("prod/us-east-1/data", "[Decrypt]"))
        .rejects(
            &[&format!("{node}:2")],
            &["the grant prod/eu-west-1/g is not in the account and region of its key prod/us-east-1/data"],
        );
}

#[test]
fn s3_bucket_in_another_region_than_its_key() {
    let node = "live/prod/eu-west-1/bucket/node.yaml";
    Tree::new()
        .file(
            node,
            "kind: s3-bucket\nkey: prod/us-east-1/data\nbucket: acme-data-eu\n",
        )
        .rejects(
            &[&format!("{node}:2")],
            &[
                "the bucket prod/eu-west-1/bucket is not in the account and region of its key prod/us-east-1/data",
                "use the key's replica in that region",
            ],
        );
}

#[test]
fn bad_bucket_name() {
    let node = "live/prod/us-east-1/bucket/node.yaml";
    Tree::new()
        .file(
            node,
            "kind: s3-bucket\nkey: prod/us-east-1/data\nbucket: Acme_Data\n",
        )
        .rejects(
            &[&format!("{node}:3")],
            &["`Acme_Data` is not a valid S3 bucket name"],
        );
}

// ---- defaults --------------------------------------------------------------------------------

#[test]
fn default_that_cannot_be_a_default() {
    Tree::new()
        .file(
            DEV,
            "account_id: \"222222222222\"\nenvironment: dev\nregions: [us-east-1]\ndefaults:\n  aliases: [dev/shared]\n",
        )
        .rejects(
            &[&format!("{DEV}:5")],
            &["`aliases` cannot be set in `defaults`", "defaults may set:"],
        );
}

#[test]
fn misspelled_default() {
    Tree::new()
        .file(
            "live/prod/us-east-1/region.yaml",
            "defaults:\n  deletion_window: 7\n",
        )
        .rejects(
            &["live/prod/us-east-1/region.yaml:2"],
            &[
                "`deletion_window` cannot be set in `defaults`",
                "did you mean `deletion_window_days`?",
            ],
        );
}

#[test]
fn bad_default_in_orch_yaml_is_reported_once() {
    // Three keys and one synthesized replica inherit the bad values; each mistake is one error.
    let out = dev_key(Tree::new(), "other", "")
        .file(
            ORCH,
            "defaults:\n  deletion_window_days: 3\n  tags: {\"aws:team\": x}\n  key_users: [arn:aws:iam::12:role/x]\n",
        )
        .rejects(
            &[
                &format!("{ORCH}:2"),
                &format!("{ORCH}:3"),
                &format!("{ORCH}:4"),
            ],
            &[
                "deletion_window_days must be 7-30, not 3",
                "`aws:team` is not a valid tag key",
                "`12` is not an AWS account id",
            ],
        );
    assert_eq!(out.errors().len(), 3, "{}", out.stderr);
    assert_eq!(out.reported_count(), 3, "{}", out.stderr);
}

#[test]
fn bad_replicas_default_is_reported_once() {
    let out = dev_key(Tree::new(), "other", "")
        .file(
            ORCH,
            "defaults:\n  replicas: \"*\"\n  multi_region: false\n",
        )
        .file(
            DEV,
            "account_id: \"222222222222\"\nenvironment: dev\nregions: [us-east-1, eu-west-1]\n",
        )
        .file(
            DATA,
            "description: x\nmulti_region: true\nreplicas: [eu-west-1]\n",
        )
        .rejects(&[&format!("{ORCH}:2")], &["is not a multi-region key"]);
    assert_eq!(out.reported_count(), 1, "{}", out.stderr);
}

// ---- many errors at once ---------------------------------------------------------------------

#[test]
fn every_error_of_the_tree_is_reported_in_one_run() {
    let bucket = "live/prod/us-east-1/bucket/node.yaml";
    let out = Tree::new()
        .file(
            ORCH,
            "parallelism: 0\ndefaults:\n  tags: {ManagedBy: orch}\n",
        )
        .file(
            DEV,
            "account_id: \"222222222222\"\nenvironment: dev\nregions: [us-east-1, eu-wset-1]\n",
        )
        .file(
            DATA,
            "description: x\nmulti_region: true\nreplicas: [eu-west-1]\ndeletion_window_days: 45\n",
        )
        .file(
            APP,
            "description: x\nkey_users: [arn:aws:iam::222222222222:group/g]\nalaises: [dev/app]\n",
        )
        .file(
            bucket,
            "kind: s3-bucket\nkey: prod/us-east-1/dta\nbucket: acme-data\n",
        )
        .rejects(
            &[
                &format!("{ORCH}:1"),
                &format!("{DEV}:3"),
                &format!("{DATA}:4"),
                &format!("{APP}:2"),
                &format!("{APP}:3"),
                &format!("{bucket}:2"),
            ],
            &[
                "parallelism must be between 1 and 256, not 0",
                "`eu-wset-1` is not an AWS region",
                "deletion_window_days must be 7-30, not 45",
                "is an IAM group",
                "unknown field `alaises`",
                "`key` names prod/us-east-1/dta",
            ],
        );
    assert_eq!(out.errors().len(), 6, "{}", out.stderr);
    assert_eq!(out.reported_count(), 6, "{}", out.stderr);
}

#[test]
fn errors_in_nodes_of_a_bad_account_are_reported() {
    let out = Tree::new()
        .file(DEV, "account_id: \"222222222222\"\nregions: [us-east-1]\n")
        .file(APP, "description: x\ndeletion_window_days: 3\n")
        .rejects(
            &[&format!("{DEV}:1"), &format!("{APP}:2")],
            &[
                "missing the required field `environment`",
                "deletion_window_days must be 7-30",
            ],
        );
    assert_eq!(out.reported_count(), 2, "{}", out.stderr);
}

#[test]
fn errors_in_nodes_of_a_region_not_enabled_are_reported() {
    let node = "live/dev/eu-west-1/x/node.yaml";
    let out = Tree::new()
        .file(node, "description: x\nbogus: 1\n")
        .rejects(
            &[&format!("{node}:1"), &format!("{node}:2")],
            &["region eu-west-1 is not enabled", "unknown field `bogus`"],
        );
    assert_eq!(out.reported_count(), 2, "{}", out.stderr);
}

#[test]
fn cycle_is_reported_with_field_errors() {
    let b = "live/dev/us-east-1/b/node.yaml";
    let out = dev_key(Tree::new(), "app", "depends_on: [dev/us-east-1/b]\n");
    let out = dev_key(out, "b", "depends_on: [dev/us-east-1/app]\n")
        .file(DATA, "description: x\nbogus: 1\n")
        .rejects(
            &[&format!("{DATA}:2"), &format!("{b}:3")],
            &["unknown field `bogus`", "dependency cycle"],
        );
    assert_eq!(out.reported_count(), 2, "{}", out.stderr);
}

#[test]
fn a_node_that_does_not_load_is_one_error_not_also_a_dangling_reference() {
    // The grant names a key whose own file is broken: that file's error is the only one.
    let out = Tree::new()
        .file(DATA, "description: x\nspec: BOGUS\n")
        .file(
            "live/prod/us-east-1/grant/node.yaml",
            "kind: grant\nkey: prod/us-east-1/data\ngrantee: arn:aws:iam::222222222222:role/r\noperations: [Decrypt]\n",
        )
        .rejects(&[&format!("{DATA}:2")], &["unknown key spec `BOGUS`"]);
    assert_eq!(out.reported_count(), 1, "{}", out.stderr);
    let out = Tree::new()
        .file(DATA, "description: [unclosed\n")
        .file(
            "live/prod/us-east-1/grant/node.yaml",
            "kind: grant\nkey: prod/us-east-1/data\ngrantee: arn:aws:iam::222222222222:role/r\noperations: [Decrypt]\n",
        )
        .rejects(&[&format!("{DATA}:2")], &["malformed YAML"]);
    assert_eq!(out.reported_count(), 1, "{}", out.stderr);
}
