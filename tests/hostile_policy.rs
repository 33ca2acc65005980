//! Hostile trees against the key policy engine, run through the real binary: each checks exit
//! code 1 without a panic, the exact `file:line` and message of the error, and that nothing was
//! rendered (`Tree::rejects`). Grouped by class: what services may be given, service names and
//! Sids, lockout, partitions, principal ARNs, policy size and scale, and a few trees that must
//! pass (the key-access policy of a multi-region key, services that need grants).

mod common;

use std::time::{Duration, Instant};

use common::Tree;
use serde_json::Value;

const PROD: &str = "live/prod/account.yaml";
const KEY: &str = "live/prod/us-east-1/k/node.yaml";

/// The base tree with a prod key at `prod/us-east-1/k`: line 1 is its description, `body` starts
/// on line 2. prod's account.yaml gives it an administrator.
fn key(body: &str) -> Tree {
    Tree::new().file(KEY, &format!("description: a key under attack\n{body}"))
}

/// A tree whose `lab` account (333333333333, us-east-1) has no defaults at all, with one key
/// `lab/us-east-1/k`: line 1 is its description, `body` starts on line 2.
fn lab_key(body: &str) -> Tree {
    Tree::new()
        .file(
            "live/lab/account.yaml",
            "account_id: \"333333333333\"\nenvironment: lab\nrole_arn: arn:aws:iam::333333333333:role/orch-deployer\nregions: [us-east-1]\n",
        )
        .file(
            LAB_KEY,
            &format!("description: a key under attack\n{body}"),
        )
}

const LAB_KEY: &str = "live/lab/us-east-1/k/node.yaml";

fn at(file: &str, line: u32) -> String {
    format!("{file}:{line}")
}

/// `orch policy ADDRESS` of a valid tree, as JSON.
fn policy(tree: &Tree, address: &str) -> Value {
    let out = tree.run(&["policy", address]);
    serde_json::from_str(&out.assert_success().stdout).unwrap()
}

fn statement<'p>(policy: &'p Value, sid: &str) -> Option<&'p Value> {
    policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Sid"] == sid)
}

// ---- services get data capabilities only (issue 7, point 15) -----------------------------------

#[test]
fn a_service_cannot_administer_the_key() {
    key("services:\n  - service: s3\n    capabilities: [read-data, administer-resource]\n")
        .rejects(
            &[&at(KEY, 4)],
            &[
                "a service cannot be given `administer-resource`",
                "pinned only by kms:ViaService",
                "give `administer-resource` to a named role under `access:`",
            ],
        );
}

#[test]
fn a_service_cannot_delete_the_key() {
    key("services: [{service: s3, capabilities: [delete-data]}]\n")
        .rejects(&[&at(KEY, 2)], &["a service cannot be given `delete-data`"]);
}

#[test]
fn a_service_cannot_read_the_configuration() {
    // Principal "*" pinned only by ViaService must not list or revoke grants.
    key("services: [{service: rds, capabilities: [read-config, read-data]}]\n").rejects(
        &[&at(KEY, 2)],
        &[
            "a service cannot be given `read-config`",
            "services get read-data and write-data (and kms:DescribeKey with them)",
        ],
    );
}

#[test]
fn every_refused_capability_of_a_service_is_reported_on_its_own_line() {
    let out = key(
        "services:\n  - service: s3\n    capabilities:\n      - read-data\n      - administer-resource\n      - delete-data\n",
    )
    .rejects(&[&at(KEY, 6), &at(KEY, 7)], &["`delete-data`"]);
    assert_eq!(out.reported_count(), 2, "{}", out.stderr);
}

#[test]
fn a_service_from_the_account_defaults_is_checked_where_it_is_written() {
    Tree::new()
        .file(
            PROD,
            "account_id: \"111111111111\"\nenvironment: prod\nrole_arn: arn:aws:iam::111111111111:role/orch-deployer\nregions: [us-east-1, eu-west-1]\ndefaults:\n  access:\n    administer-resource: [arn:aws:iam::111111111111:role/admin]\n  services: [{service: ec2, capabilities: [administer-resource]}]\n",
        )
        .rejects(&[&at(PROD, 8)], &["a service cannot be given `administer-resource`"]);
}

#[test]
fn an_unknown_capability_of_a_service() {
    key("services: [{service: s3, capabilities: [write-dat]}]\n").rejects(
        &[&at(KEY, 2)],
        &[
            "unknown capability `write-dat`",
            "did you mean `write-data`?",
        ],
    );
}

#[test]
fn a_service_with_an_empty_capability_list() {
    key("services: [{service: s3, capabilities: []}]\n")
        .rejects(&[&at(KEY, 2)], &["`capabilities` is empty"]);
}

#[test]
fn services_that_are_not_a_list() {
    key("services: {service: s3}\n").rejects(
        &[&at(KEY, 2)],
        &["`services` must be a list of {service, capabilities}"],
    );
}

// ---- service names and duplicate Sids (point 17) ----------------------------------------------

#[test]
fn the_same_service_twice() {
    let out = key(
        "services:\n  - {service: s3, capabilities: [read-data]}\n  - {service: s3, capabilities: [write-data]}\n",
    )
    .rejects(
        &[&at(KEY, 4)],
        &[
            "the service `s3` is listed twice",
            "list each service once, with all its capabilities",
        ],
    );
    out.assert_points_at(&at(KEY, 3));
}

#[test]
fn two_services_whose_sids_would_clash() {
    key("services:\n  - {service: s3}\n  - {service: s-3}\n").rejects(
        &[&at(KEY, 4)],
        &["the services `s3` and `s-3` would share the statement id ViaServiceS3"],
    );
}

#[test]
fn malformed_service_names_among_good_ones() {
    key("services:\n  - {service: secrets-manager}\n  - {service: rds}\n  - {service: secrets--manager}\n")
        .rejects(&[&at(KEY, 5)], &["is not an AWS service name"]);
    key("services:\n  - {service: ssm-incidents}\n  - {service: ssm-Incidents}\n").rejects(
        &[&at(KEY, 4)],
        &["`ssm-Incidents` is not an AWS service name"],
    );
}

#[test]
fn a_service_named_by_its_endpoint() {
    key("services: [{service: s3.amazonaws.com}]\n").rejects(
        &[&at(KEY, 2)],
        &["`s3.amazonaws.com` is not an AWS service name (e.g. s3, rds, secretsmanager)"],
    );
}

#[test]
fn a_service_name_with_a_trailing_hyphen() {
    key("services: [{service: s3-}]\n")
        .rejects(&[&at(KEY, 2)], &["`s3-` is not an AWS service name"]);
}

#[test]
fn a_service_entry_without_a_service() {
    key("services: [{capabilities: [read-data]}]\n")
        .rejects(&[&at(KEY, 2)], &["missing the required field `service`"]);
}

// ---- lockout (point 16) -----------------------------------------------------------------------

#[test]
fn services_alone_keep_nobody_in_control() {
    // Without the root statement and an administrator, the only statements left are for `*`
    // under kms:ViaService: nobody named can change the policy.
    lab_key("root_access: false\nkey_users: [arn:aws:iam::333333333333:role/app]\nservices: [{service: ec2}]\n")
        .rejects(
            &[&at(LAB_KEY, 2)],
            &["lab/us-east-1/k: no principal can change this key's policy (kms:PutKeyPolicy)"],
        );
}

#[test]
fn an_administrator_other_than_the_deploying_role_is_not_enough_without_root() {
    lab_key("root_access: false\naccess:\n  administer-resource: [arn:aws:iam::333333333333:role/admin]\n")
        .rejects(
            &[&at(LAB_KEY, 2)],
            &["the role orch deploys with (arn:aws:iam::333333333333:role/orch-deployer) cannot change this key's policy"],
        );
}

#[test]
fn a_named_administrator_without_a_condition_keeps_control() {
    let tree = lab_key(
        "root_access: false\nencryption_context: {tenant: acme}\naccess:\n  administer-resource: [arn:aws:iam::333333333333:role/orch-deployer]\n  read-data: [arn:aws:iam::333333333333:role/app]\nservices: [{service: s3}]\n",
    );
    tree.run(&["validate"]).assert_success();
    let policy = policy(&tree, "lab/us-east-1/k");
    assert!(statement(&policy, "AccountRootFullAccess").is_none());
    let admin = statement(&policy, "AdministerResource").unwrap();
    assert!(admin["Condition"].is_null());
}

// ---- partitions (point 12) --------------------------------------------------------------------

#[test]
fn a_china_principal_in_a_commercial_key() {
    key("access:\n  read-data: [arn:aws-cn:iam::111111111111:role/app]\n").rejects(
        &[&at(KEY, 3)],
        &["`arn:aws-cn:iam::111111111111:role/app` is in the partition `aws-cn`, but us-east-1 is in the partition `aws`"],
    );
}

#[test]
fn a_govcloud_principal_among_key_users() {
    key("key_users:\n  - arn:aws:iam::111111111111:role/app\n  - arn:aws-us-gov:iam::111111111111:role/app\n")
        .rejects(&[&at(KEY, 4)], &["in the partition `aws-us-gov`"]);
}

#[test]
fn a_grantee_of_another_partition() {
    let grant = "live/prod/us-east-1/g/node.yaml";
    Tree::new()
        .file(
            grant,
            "kind: grant\nkey: prod/us-east-1/data\ngrantee: arn:aws-cn:iam::222222222222:role/reader\noperations: [Decrypt]\nretiring_principal: arn:aws-us-gov:iam::111111111111:role/admin\n",
        )
        .rejects(
            &[&at(grant, 3), &at(grant, 5)],
            &["in the partition `aws-cn`", "in the partition `aws-us-gov`"],
        );
}

#[test]
fn a_key_access_role_of_another_partition() {
    let access = "live/dev/us-east-1/reader/node.yaml";
    Tree::new()
        .file(
            access,
            "kind: key-access\nkey: prod/us-east-1/data\nroles: [arn:aws-cn:iam::222222222222:role/reporting]\ncapabilities: [read-data]\n",
        )
        .rejects(&[&at(access, 3)], &["in the partition `aws-cn`"]);
}

/// A GovCloud account with one key, `gov/us-gov-west-1/k`; `body` starts on line 2.
fn gov_key(body: &str) -> Tree {
    Tree::new()
        .file(
            "live/gov/account.yaml",
            "account_id: \"444444444444\"\nenvironment: gov\nregions: [us-gov-west-1]\n",
        )
        .file(GOV_KEY, &format!("description: a GovCloud key\n{body}"))
}

const GOV_KEY: &str = "live/gov/us-gov-west-1/k/node.yaml";

#[test]
fn a_commercial_principal_in_a_govcloud_key() {
    gov_key("key_administrators: [arn:aws:iam::444444444444:role/admin]\n").rejects(
        &[&at(GOV_KEY, 2)],
        &["but us-gov-west-1 is in the partition `aws-us-gov`"],
    );
}

#[test]
fn a_govcloud_key_writes_govcloud_arns() {
    let tree = gov_key("key_administrators: [arn:aws-us-gov:iam::444444444444:role/admin]\n");
    let policy = policy(&tree, "gov/us-gov-west-1/k");
    assert_eq!(
        statement(&policy, "AccountRootFullAccess").unwrap()["Principal"]["AWS"],
        "arn:aws-us-gov:iam::444444444444:root"
    );
}

#[test]
fn an_account_in_two_partitions() {
    let account = "live/gov/account.yaml";
    gov_key("")
        .file(
            account,
            "account_id: \"444444444444\"\nenvironment: gov\nregions: [us-gov-west-1, us-east-1, us-gov-east-1, eu-west-1]\n",
        )
        .rejects(
            &[&at(account, 3), &at(account, 3)],
            &[
                "us-east-1 is in the partition `aws`, but us-gov-west-1 is in `aws-us-gov`: an AWS account lives in one partition",
                "eu-west-1 is in the partition `aws`",
            ],
        );
}

#[test]
fn a_commercial_role_deploys_a_govcloud_account() {
    let account = "live/gov/account.yaml";
    gov_key("")
        .file(
            account,
            "account_id: \"444444444444\"\nenvironment: gov\nrole_arn: arn:aws:iam::444444444444:role/orch-deployer\nregions: [us-gov-west-1]\n",
        )
        .rejects(
            &[&at(account, 3)],
            &["`arn:aws:iam::444444444444:role/orch-deployer` is in the partition `aws`, but us-gov-west-1 is in the partition `aws-us-gov`"],
        );
}

#[test]
fn a_key_access_across_partitions() {
    let access = "live/gov/us-gov-west-1/reader/node.yaml";
    gov_key("")
        .file(
            access,
            "kind: key-access\nkey: prod/us-east-1/data\nroles: [arn:aws-us-gov:iam::444444444444:role/reporting]\ncapabilities: [read-data]\n",
        )
        .rejects(
            &[&at(access, 2)],
            &["gov/us-gov-west-1/reader is in the partition `aws-us-gov`, but its key prod/us-east-1/data is in `aws`"],
        );
}

#[test]
fn a_govcloud_grant_gets_a_govcloud_placeholder_arn() {
    let tree = gov_key("").file(
        "live/gov/us-gov-west-1/g/node.yaml",
        "kind: grant\nkey: gov/us-gov-west-1/k\ngrantee: arn:aws-us-gov:iam::444444444444:role/app\noperations: [Decrypt]\n",
    );
    tree.run(&["render", "gov/us-gov-west-1/g"])
        .assert_success();
    let vars = tree.read(".orch/work/gov/us-gov-west-1/g/terraform.tfvars.json");
    assert!(
        vars.contains("\"arn:aws-us-gov:kms:us-gov-west-1:444444444444:key/"),
        "{vars}"
    );
    assert!(!vars.contains("arn:aws:"), "{vars}");
}

// ---- principal ARNs ---------------------------------------------------------------------------

#[test]
fn an_account_id_of_eleven_digits() {
    key("decrypt_only: [arn:aws:iam::11111111111:role/app]\n").rejects(
        &[&at(KEY, 2)],
        &["`11111111111` is not an AWS account id (12 digits, quoted in YAML)"],
    );
}

#[test]
fn an_account_id_with_a_letter() {
    key("decrypt_only: [arn:aws:iam::11111111111O:role/app]\n")
        .rejects(&[&at(KEY, 2)], &["is not an AWS account id"]);
}

#[test]
fn a_role_name_over_sixty_four_characters() {
    let long = "r".repeat(65);
    key(&format!(
        "decrypt_only: [arn:aws:iam::111111111111:role/{long}]\n"
    ))
    .rejects(
        &[&at(KEY, 2)],
        &["the role or user name is 65 characters, over IAM's limit of 64"],
    );
}

#[test]
fn a_role_path_over_five_hundred_and_twelve_characters() {
    let path = "p".repeat(511);
    key(&format!(
        "decrypt_only: [arn:aws:iam::111111111111:role/{path}/app]\n"
    ))
    .rejects(
        &[&at(KEY, 2)],
        &["the path is 513 characters, over IAM's limit of 512"],
    );
}

#[test]
fn a_service_principal_in_a_principal_list() {
    key("access:\n  read-data: [ec2.amazonaws.com]\n")
        .rejects(&[&at(KEY, 3)], &["`ec2.amazonaws.com` is not an ARN"]);
}

#[test]
fn an_iam_arn_with_a_region() {
    key("access:\n  read-data: [arn:aws:iam:us-east-1:111111111111:role/app]\n")
        .rejects(&[&at(KEY, 3)], &["is not an IAM ARN"]);
}

#[test]
fn everyone_as_a_principal() {
    key("access:\n  write-data: ['*']\n").rejects(
        &[&at(KEY, 3)],
        &["`*` (everyone) is never a principal orch will write into a key policy"],
    );
}

// ---- policy size and scale (points 2 and 14) --------------------------------------------------

fn roles(count: usize, indent: &str) -> String {
    (0..count)
        .map(|i| format!("{indent}- arn:aws:iam::111111111111:role/application-role-{i:05}\n"))
        .collect()
}

#[test]
fn an_oversized_policy_points_at_the_list_that_makes_it_big() {
    // 560 principals are under the limit alone, over it once they are also in the grants
    // statement: the policy is built and measured.
    let out = key(&format!(
        "access:\n  read-config: [arn:aws:iam::111111111111:role/auditor]\n  read-data:\n{}",
        roles(560, "    ")
    ))
    .rejects(
        &[&at(KEY, 4)],
        &[
            "prod/us-east-1/k: the key policy is",
            "over AWS's limit of 32768",
            "merge principals into fewer roles",
        ],
    );
    assert!(!out.stderr.contains("would be at least"), "{}", out.stderr);
}

#[test]
fn a_list_alone_over_the_limit_is_refused_before_the_policy_is_built() {
    key(&format!("key_users:\n{}", roles(300, "  "))).rejects(
        &[&at(KEY, 2)],
        &[
            "prod/us-east-1/k: the key policy would be at least",
            "over AWS's limit of 32768",
        ],
    );
}

#[test]
fn an_oversized_list_in_the_account_defaults_is_reported_once() {
    let defaults = format!(
        "account_id: \"111111111111\"\nenvironment: prod\nrole_arn: arn:aws:iam::111111111111:role/orch-deployer\nregions: [us-east-1, eu-west-1]\ndefaults:\n  access:\n    administer-resource: [arn:aws:iam::111111111111:role/admin]\n    read-data:\n{}",
        roles(700, "      ")
    );
    let out = key("")
        .file(PROD, &defaults)
        .rejects(&[&at(PROD, 8)], &["the key policy would be at least"]);
    assert_eq!(
        out.reported_count(),
        1,
        "one mistake shared by two keys and a replica:\n{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("is one of the keys it affects"),
        "{}",
        out.stderr
    );
}

#[test]
fn an_oversized_policy_of_many_services_points_at_services() {
    let services: String = (0..60)
        .map(|i| format!("  - {{service: service{i}}}\n"))
        .collect();
    key(&format!("services:\n{services}")).rejects(
        &[&at(KEY, 2)],
        &[
            "prod/us-east-1/k: the key policy is",
            "over AWS's limit of 32768",
        ],
    );
}

#[test]
fn an_oversized_override_points_at_policy_not_description() {
    let padding = "x".repeat(33_000);
    key(&format!(
        "policy:\n  Version: \"2012-10-17\"\n  Id: {padding}\n  Statement:\n    - {{Sid: All, Effect: Allow, Principal: {{AWS: \"arn:aws:iam::111111111111:root\"}}, Action: \"kms:*\", Resource: \"*\"}}\n"
    ))
    .rejects(
        &[&at(KEY, 2)],
        &["the key policy is", "shorten the `policy:` document"],
    );
}

#[test]
fn a_hundred_thousand_principals_are_refused_quickly() {
    // Quadratic deduplication made this take about a minute; the policy AWS would refuse is
    // now refused before it is built.
    let tree = key(&format!(
        "access:\n  read-data:\n{}",
        (0..100_000)
            .map(|i| format!("    - arn:aws:iam::111111111111:role/r{i}\n"))
            .collect::<String>()
    ));
    let started = Instant::now();
    let out = tree.run(&["validate"]);
    let took = started.elapsed();
    out.assert_invalid().assert_points_at(&at(KEY, 3));
    assert!(
        out.stderr.contains("the key policy would be at least"),
        "{}",
        out.stderr
    );
    assert!(
        took < Duration::from_secs(15),
        "validating 100,000 principals took {took:?}"
    );
}

// ---- trees that must pass ---------------------------------------------------------------------

#[test]
fn services_that_attach_the_key_to_resources_get_grants_for_aws_resources_only() {
    let tree = key("services: [{service: ec2}, {service: rds, capabilities: [read-data]}]\n");
    let policy = policy(&tree, "prod/us-east-1/k");
    let ec2 = statement(&policy, "ViaServiceEc2").unwrap();
    let actions: Vec<&str> = ec2["Action"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    for needed in [
        "kms:DescribeKey",
        "kms:GenerateDataKeyWithoutPlaintext",
        "kms:Decrypt",
    ] {
        assert!(actions.contains(&needed), "EBS needs {needed}: {actions:?}");
    }
    let grants = statement(&policy, "GrantsViaServiceRds").unwrap();
    assert_eq!(
        grants["Action"],
        serde_json::json!(["kms:CreateGrant", "kms:ListGrants"])
    );
    assert_eq!(
        grants["Condition"]["Bool"]["kms:GrantIsForAWSResource"],
        "true"
    );
    assert_eq!(
        grants["Condition"]["StringEquals"]["kms:ViaService"],
        "rds.us-east-1.amazonaws.com"
    );
}

#[test]
fn key_access_to_a_multi_region_key_covers_every_region_of_the_family() {
    let access = "live/dev/us-east-1/reader/node.yaml";
    let tree = Tree::new().file(
        access,
        "kind: key-access\nkey: prod/eu-west-1/data\nroles: [arn:aws:iam::222222222222:role/reporting]\ncapabilities: [read-data]\n",
    );
    tree.run(&["render", "--all"]).assert_success();
    let vars: Value =
        serde_json::from_str(&tree.read(".orch/work/dev/us-east-1/reader/terraform.tfvars.json"))
            .unwrap();
    let document: Value = serde_json::from_str(vars["policy"].as_str().unwrap()).unwrap();
    assert_eq!(
        document["Statement"][0]["Resource"],
        serde_json::json!([
            "arn:aws:kms:eu-west-1:111111111111:key/mrk-00000000000000000000000000000000",
            "arn:aws:kms:us-east-1:111111111111:key/mrk-00000000000000000000000000000000",
        ])
    );
    // Every member's key policy admits the account, so the IAM policy may name them all.
    for member in ["prod/us-east-1/data", "prod/eu-west-1/data"] {
        let policy = policy(&tree, member);
        assert!(
            statement(&policy, "ExternalAccount222222222222").is_some(),
            "{member} does not admit the consumer"
        );
    }
}
