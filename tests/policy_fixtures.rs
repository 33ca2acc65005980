//! The policy engine on a fixture fleet (tests/fixtures/policies/live/) with a key of every spec
//! and usage, each granting every capability to its own role: insta snapshots of `orch policy`
//! and `orch policy --explain` for every key and replica, and checks written independently of
//! the engine (the action lists are repeated here on purpose): no policy names a KMS action AWS
//! does not accept on a key of that spec and usage, a statement for anyone (`*`) holds only what
//! a service may do, grants are created only for AWS resources, Sids are unique, and a named
//! principal keeps control of every key.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::Tree;
use serde_json::Value;

/// The keys and replicas of the fixture: address, spec, usage, multi-region.
#[rustfmt::skip]
const KEYS: &[(&str, &str, &str, bool)] = &[
    ("keys/ap-southeast-2/multi-region",  "SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT",     true),
    ("keys/eu-west-1/multi-region",       "SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT",     true),
    ("keys/us-east-1/ecc-p256-sign",      "ECC_NIST_P256",     "SIGN_VERIFY",         false),
    ("keys/us-east-1/ecc-p384-agreement", "ECC_NIST_P384",     "KEY_AGREEMENT",       false),
    ("keys/us-east-1/ecc-secp256k1-sign", "ECC_SECG_P256K1",   "SIGN_VERIFY",         false),
    ("keys/us-east-1/encryption-context", "SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT",     false),
    ("keys/us-east-1/hmac-224",           "HMAC_224",          "GENERATE_VERIFY_MAC", false),
    ("keys/us-east-1/hmac-256",           "HMAC_256",          "GENERATE_VERIFY_MAC", false),
    ("keys/us-east-1/hmac-384",           "HMAC_384",          "GENERATE_VERIFY_MAC", false),
    ("keys/us-east-1/hmac-512",           "HMAC_512",          "GENERATE_VERIFY_MAC", false),
    ("keys/us-east-1/multi-region",       "SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT",     true),
    ("keys/us-east-1/no-root",            "SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT",     false),
    ("keys/us-east-1/override",           "SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT",     false),
    ("keys/us-east-1/rsa-2048-encrypt",   "RSA_2048",          "ENCRYPT_DECRYPT",     false),
    ("keys/us-east-1/rsa-3072-sign",      "RSA_3072",          "SIGN_VERIFY",         false),
    ("keys/us-east-1/symmetric",          "SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT",     false),
];

/// Actions that apply to every KMS key, whatever its spec (AWS KMS permissions reference).
const ANY_KEY: &[&str] = &[
    "kms:CancelKeyDeletion",
    "kms:CreateAlias",
    "kms:CreateGrant",
    "kms:DeleteAlias",
    "kms:DescribeKey",
    "kms:DisableKey",
    "kms:EnableKey",
    "kms:GetKeyPolicy",
    "kms:ListGrants",
    "kms:ListKeyPolicies",
    "kms:ListResourceTags",
    "kms:PutKeyPolicy",
    "kms:RetireGrant",
    "kms:RevokeGrant",
    "kms:ScheduleKeyDeletion",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:UpdateAlias",
    "kms:UpdateKeyDescription",
];

const MULTI_REGION: &[&str] = &["kms:ReplicateKey", "kms:UpdatePrimaryRegion"];

/// Actions that exist only for one spec and usage.
fn usage_actions(spec: &str, usage: &str) -> &'static [&'static str] {
    match (spec, usage) {
        ("SYMMETRIC_DEFAULT", _) => &[
            "kms:Decrypt",
            "kms:DisableKeyRotation",
            "kms:EnableKeyRotation",
            "kms:Encrypt",
            "kms:GenerateDataKey",
            "kms:GenerateDataKeyPair",
            "kms:GenerateDataKeyPairWithoutPlaintext",
            "kms:GenerateDataKeyWithoutPlaintext",
            "kms:GetKeyRotationStatus",
            "kms:ListKeyRotations",
            "kms:ReEncryptFrom",
            "kms:ReEncryptTo",
            "kms:RotateKeyOnDemand",
        ],
        (_, "ENCRYPT_DECRYPT") => &[
            "kms:Decrypt",
            "kms:Encrypt",
            "kms:GetPublicKey",
            "kms:ReEncryptFrom",
            "kms:ReEncryptTo",
        ],
        (_, "SIGN_VERIFY") => &["kms:GetPublicKey", "kms:Sign", "kms:Verify"],
        (_, "KEY_AGREEMENT") => &["kms:DeriveSharedSecret", "kms:GetPublicKey"],
        (_, "GENERATE_VERIFY_MAC") => &["kms:GenerateMac", "kms:VerifyMac"],
        other => panic!("no such key type: {other:?}"),
    }
}

/// What a service, admitted as `*` and pinned by kms:ViaService, may be given: the data actions
/// of the key's usage and DescribeKey, as AWS's own key policies for EBS and RDS do.
fn service_actions(spec: &str, usage: &str) -> &'static [&'static str] {
    match (spec, usage) {
        ("SYMMETRIC_DEFAULT", _) => &[
            "kms:Decrypt",
            "kms:DescribeKey",
            "kms:Encrypt",
            "kms:GenerateDataKey",
            "kms:GenerateDataKeyPair",
            "kms:GenerateDataKeyPairWithoutPlaintext",
            "kms:GenerateDataKeyWithoutPlaintext",
            "kms:ReEncryptFrom",
            "kms:ReEncryptTo",
        ],
        (_, "ENCRYPT_DECRYPT") => &[
            "kms:Decrypt",
            "kms:DescribeKey",
            "kms:Encrypt",
            "kms:GetPublicKey",
        ],
        (_, "SIGN_VERIFY") => &[
            "kms:DescribeKey",
            "kms:GetPublicKey",
            "kms:Sign",
            "kms:Verify",
        ],
        (_, "KEY_AGREEMENT") => &[
            "kms:DescribeKey",
            "kms:DeriveSharedSecret",
            "kms:GetPublicKey",
        ],
        (_, "GENERATE_VERIFY_MAC") => &["kms:DescribeKey", "kms:GenerateMac", "kms:VerifyMac"],
        other => panic!("no such key type: {other:?}"),
    }
}

/// Grant actions that only administrators (and the account root) hold without
/// kms:GrantIsForAWSResource; read-config's ListGrants only reads.
const GRANT_MAKING: &[&str] = &["kms:CreateGrant", "kms:RevokeGrant"];

fn fixture() -> Tree {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/policies/live");
    Tree::empty().copy(&fixture, "live")
}

fn snapshot_name(what: &str, address: &str) -> String {
    format!("{what}__{}", address.replace('/', "__"))
}

#[test]
fn the_fixture_lists_every_key_and_replica() {
    let tree = fixture();
    let graph: Value = serde_json::from_str(
        &tree
            .run(&["graph", "--format", "json"])
            .assert_success()
            .stdout,
    )
    .unwrap();
    let in_tree: BTreeSet<&str> = graph["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| matches!(n["kind"].as_str(), Some("key" | "replica")))
        .filter_map(|n| n["address"].as_str())
        .collect();
    let listed: BTreeSet<&str> = KEYS.iter().map(|k| k.0).collect();
    assert_eq!(in_tree, listed, "KEYS is out of step with the fixture tree");
}

#[test]
fn policies() {
    let tree = fixture();
    for (address, ..) in KEYS {
        let out = tree.run(&["policy", address]);
        insta::assert_snapshot!(
            snapshot_name("policy", address),
            out.assert_success().stdout
        );
    }
}

#[test]
fn policies_explained() {
    let tree = fixture();
    for (address, ..) in KEYS {
        let out = tree.run(&["policy", address, "--explain"]);
        insta::assert_snapshot!(
            snapshot_name("explain", address),
            out.assert_success().stdout
        );
    }
}

/// The generated policy of every key and replica, with its spec and usage.
fn generated_policies(tree: &Tree) -> Vec<(&'static str, &'static str, &'static str, bool, Value)> {
    KEYS.iter()
        .filter(|k| !k.0.ends_with("/override"))
        .map(|&(address, spec, usage, multi_region)| {
            let out = tree.run(&["policy", address]);
            let policy = serde_json::from_str(&out.assert_success().stdout).unwrap();
            (address, spec, usage, multi_region, policy)
        })
        .collect()
}

fn statement_actions(statement: &Value) -> Vec<&str> {
    match &statement["Action"] {
        Value::String(one) => vec![one.as_str()],
        many => many
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect(),
    }
}

fn for_aws_resources_only(statement: &Value) -> bool {
    statement["Condition"]["Bool"]["kms:GrantIsForAWSResource"] == "true"
}

#[test]
fn statements_for_anyone_hold_only_what_a_service_may_do() {
    let tree = fixture();
    let mut seen = 0;
    for (address, spec, usage, _, policy) in generated_policies(&tree) {
        for statement in policy["Statement"].as_array().unwrap() {
            if statement["Principal"]["AWS"] != "*" {
                continue;
            }
            seen += 1;
            let sid = &statement["Sid"];
            let pinned = &statement["Condition"]["StringEquals"];
            assert_eq!(
                pinned["kms:CallerAccount"], "111111111111",
                "{address} {sid}"
            );
            assert!(
                !pinned["kms:ViaService"].is_null(),
                "{address} {sid}: not pinned to a service"
            );
            let actions = statement_actions(statement);
            if for_aws_resources_only(statement) {
                assert_eq!(
                    actions,
                    ["kms:CreateGrant", "kms:ListGrants"],
                    "{address} {sid}"
                );
                assert_eq!(
                    spec, "SYMMETRIC_DEFAULT",
                    "{address} {sid}: grants of a service"
                );
            } else {
                let allowed = service_actions(spec, usage);
                let foreign: Vec<&&str> = actions.iter().filter(|a| !allowed.contains(a)).collect();
                assert!(
                    foreign.is_empty(),
                    "{address} {sid}: a service gets {foreign:?}"
                );
                assert!(
                    actions.contains(&"kms:DescribeKey"),
                    "{address} {sid}: services describe the key"
                );
            }
        }
    }
    assert!(
        seen >= 8,
        "the fixture has services on several keys ({seen} statements)"
    );
}

#[test]
fn grants_are_made_only_by_administrators_or_for_aws_resources() {
    let tree = fixture();
    for (address, .., policy) in generated_policies(&tree) {
        for statement in policy["Statement"].as_array().unwrap() {
            let sid = statement["Sid"].as_str().unwrap();
            if matches!(sid, "AccountRootFullAccess" | "AdministerResource") {
                continue;
            }
            let actions = statement_actions(statement);
            if actions.iter().any(|a| GRANT_MAKING.contains(a)) {
                assert!(
                    for_aws_resources_only(statement),
                    "{address} {sid}: grants without kms:GrantIsForAWSResource"
                );
            }
        }
    }
}

#[test]
fn administrators_may_delete_and_delete_data_only_deletes() {
    let tree = fixture();
    for (address, .., policy) in generated_policies(&tree) {
        let by_sid = |sid: &str| {
            policy["Statement"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["Sid"] == sid)
                .unwrap_or_else(|| panic!("{address}: no statement {sid}"))
                .clone()
        };
        let admin = by_sid("AdministerResource");
        for action in [
            "kms:PutKeyPolicy",
            "kms:ScheduleKeyDeletion",
            "kms:CancelKeyDeletion",
        ] {
            assert!(
                statement_actions(&admin).contains(&action),
                "{address}: {action}"
            );
        }
        assert_eq!(
            statement_actions(&by_sid("DeleteData")),
            ["kms:ScheduleKeyDeletion"]
        );
    }
}

#[test]
fn sids_are_unique_and_a_named_principal_keeps_control() {
    let tree = fixture();
    for (address, .., policy) in generated_policies(&tree) {
        let statements = policy["Statement"].as_array().unwrap();
        let sids: BTreeSet<&str> = statements
            .iter()
            .map(|s| s["Sid"].as_str().unwrap())
            .collect();
        assert_eq!(sids.len(), statements.len(), "{address}: a Sid is repeated");
        let in_control = statements.iter().any(|s| {
            s["Condition"].is_null()
                && s["Principal"]["AWS"] != "*"
                && statement_actions(s)
                    .iter()
                    .any(|a| *a == "kms:*" || *a == "kms:PutKeyPolicy")
        });
        assert!(in_control, "{address}: nobody named can change the policy");
    }
}

#[test]
fn generated_policies_name_only_actions_of_their_key_type() {
    let tree = fixture();
    for (address, spec, usage, multi_region, policy) in generated_policies(&tree) {
        let mut allowed: BTreeSet<&str> = ANY_KEY.iter().copied().collect();
        allowed.extend(usage_actions(spec, usage));
        if multi_region {
            allowed.extend(MULTI_REGION);
        }
        for statement in policy["Statement"].as_array().unwrap() {
            let foreign: Vec<&str> = statement_actions(statement)
                .into_iter()
                .filter(|a| *a != "kms:*" && !allowed.contains(a))
                .collect();
            assert!(
                foreign.is_empty(),
                "{address} ({spec}, {usage}): statement {} names {foreign:?}, which AWS does not \
                 apply to such a key",
                statement["Sid"]
            );
        }
    }
}
