//! The policy engine on a fixture fleet (tests/fixtures/policies/live/) with a key of every spec
//! and usage, each granting every capability to its own role: insta snapshots of `orch policy`
//! and `orch policy --explain` for every key and replica, and a check that no policy names a KMS
//! action AWS does not accept on a key of that spec and usage.

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

#[test]
fn generated_policies_name_only_actions_of_their_key_type() {
    let tree = fixture();
    for &(address, spec, usage, multi_region) in KEYS {
        if address.ends_with("/override") {
            continue;
        }
        let out = tree.run(&["policy", address]);
        let policy: Value = serde_json::from_str(&out.assert_success().stdout).unwrap();
        let mut allowed: BTreeSet<&str> = ANY_KEY.iter().copied().collect();
        allowed.extend(usage_actions(spec, usage));
        if multi_region {
            allowed.extend(MULTI_REGION);
        }
        for statement in policy["Statement"].as_array().unwrap() {
            let actions: Vec<&str> = match &statement["Action"] {
                Value::String(one) => vec![one.as_str()],
                many => many
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a.as_str().unwrap())
                    .collect(),
            };
            let foreign: Vec<&&str> = actions
                .iter()
                .filter(|a| **a != "kms:*" && !allowed.contains(**a))
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
