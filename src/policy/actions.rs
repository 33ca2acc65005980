//! The action table: the KMS actions each capability stands for on a key of a given spec and
//! usage, those a service or a grant adds, and those another account can use.

use crate::config::{Capability, KeySpec, KeyUsage};

/// The KMS actions a capability stands for on a key of this spec and usage.
///
/// `administer-resource` holds what AWS's default key-administrator statement and k9's model
/// give an administrator, scheduling and cancelling deletion included. `delete-data` is what
/// destroys data on the keys orch manages: `kms:ScheduleKeyDeletion` (once the waiting period
/// ends, the key material and every ciphertext under it are gone), for whoever may delete
/// without administering. k9's delete-data actions (`DeleteImportedKeyMaterial`,
/// `DeleteCustomKeyStore`) apply only to imported key material and custom key stores, which
/// orch does not create.
pub fn actions(
    cap: Capability,
    spec: KeySpec,
    usage: KeyUsage,
    multi_region: bool,
) -> Vec<&'static str> {
    let symmetric = spec == KeySpec::SymmetricDefault;
    let asymmetric = spec.is_rsa() || spec.is_ecc();
    let mut out: Vec<&'static str> = match cap {
        Capability::AdministerResource => {
            let mut a = vec![
                "kms:CancelKeyDeletion",
                "kms:CreateAlias",
                "kms:DeleteAlias",
                "kms:DescribeKey",
                "kms:DisableKey",
                "kms:EnableKey",
                "kms:GetKeyPolicy",
                "kms:ListGrants",
                "kms:ListKeyPolicies",
                "kms:ListResourceTags",
                "kms:PutKeyPolicy",
                "kms:RevokeGrant",
                "kms:ScheduleKeyDeletion",
                "kms:TagResource",
                "kms:UntagResource",
                "kms:UpdateAlias",
                "kms:UpdateKeyDescription",
            ];
            if symmetric {
                a.extend([
                    "kms:DisableKeyRotation",
                    "kms:EnableKeyRotation",
                    "kms:GetKeyRotationStatus",
                    "kms:ListKeyRotations",
                    "kms:RotateKeyOnDemand",
                ]);
            }
            if multi_region {
                a.extend(["kms:ReplicateKey", "kms:UpdatePrimaryRegion"]);
            }
            a
        }
        Capability::ReadConfig => {
            let mut a = vec![
                "kms:DescribeKey",
                "kms:GetKeyPolicy",
                "kms:ListGrants",
                "kms:ListKeyPolicies",
                "kms:ListResourceTags",
            ];
            if symmetric {
                a.extend(["kms:GetKeyRotationStatus", "kms:ListKeyRotations"]);
            }
            if asymmetric {
                a.push("kms:GetPublicKey");
            }
            a
        }
        // ReEncryptFrom decrypts under this key (to encrypt under another), so it is reading.
        Capability::ReadData => match usage {
            KeyUsage::EncryptDecrypt if symmetric => vec!["kms:Decrypt", "kms:ReEncryptFrom"],
            KeyUsage::EncryptDecrypt => vec!["kms:Decrypt"],
            KeyUsage::SignVerify => vec!["kms:GetPublicKey", "kms:Verify"],
            KeyUsage::GenerateVerifyMac => vec!["kms:VerifyMac"],
            KeyUsage::KeyAgreement => vec!["kms:GetPublicKey"],
        },
        Capability::WriteData => match usage {
            KeyUsage::EncryptDecrypt if symmetric => vec![
                "kms:Encrypt",
                "kms:GenerateDataKey",
                "kms:GenerateDataKeyPair",
                "kms:GenerateDataKeyPairWithoutPlaintext",
                "kms:GenerateDataKeyWithoutPlaintext",
                "kms:ReEncryptTo",
            ],
            KeyUsage::EncryptDecrypt => vec!["kms:Encrypt", "kms:GetPublicKey"],
            KeyUsage::SignVerify => vec!["kms:Sign"],
            KeyUsage::GenerateVerifyMac => vec!["kms:GenerateMac"],
            KeyUsage::KeyAgreement => vec!["kms:DeriveSharedSecret"],
        },
        Capability::DeleteData => vec!["kms:ScheduleKeyDeletion"],
    };
    out.sort_unstable();
    out.dedup();
    out
}

/// Actions that let a principal create grants; AWS services (EBS, RDS, ...) need them, so data
/// users get them only for grants to AWS resources (AWS's default key policy, "Allow attachment
/// of persistent resources").
pub(super) const GRANT_ACTIONS: [&str; 3] =
    ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"];

/// What a service acting through `kms:ViaService` needs besides its data actions, as AWS's own
/// key policies for EBS (aws/ebs) and RDS (aws/rds) give it: to describe the key, and to create
/// and list the grants that attach the key to a volume or database. Revoking grants is not
/// among them.
pub(super) const SERVICE_DESCRIBE: &str = "kms:DescribeKey";
pub(super) const SERVICE_GRANT_ACTIONS: [&str; 2] = ["kms:CreateGrant", "kms:ListGrants"];

/// The actions of `caps` that another account can use on a key of this spec, sorted: what a
/// key's policy grants that account and what its own IAM policy (key-access) allows its roles.
pub fn cross_account_actions(
    caps: &[Capability],
    spec: KeySpec,
    usage: KeyUsage,
) -> Vec<&'static str> {
    let mut acts: Vec<&str> = caps
        .iter()
        .flat_map(|c| actions(*c, spec, usage, false))
        .filter(|a| CROSS_ACCOUNT.contains(a))
        .collect();
    acts.sort_unstable();
    acts.dedup();
    acts
}

/// KMS operations another account can call on a key (the rest only work in the key's own
/// account, so granting them across accounts would be noise).
const CROSS_ACCOUNT: [&str; 20] = [
    "kms:CreateGrant",
    "kms:Decrypt",
    "kms:DescribeKey",
    "kms:DeriveSharedSecret",
    "kms:Encrypt",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyPair",
    "kms:GenerateDataKeyPairWithoutPlaintext",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:GenerateMac",
    "kms:GetKeyRotationStatus",
    "kms:GetPublicKey",
    "kms:ListGrants",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
    "kms:RetireGrant",
    "kms:RevokeGrant",
    "kms:Sign",
    "kms:Verify",
    "kms:VerifyMac",
];

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn actions_follow_spec_and_usage() {
        let hmac = actions(
            Capability::WriteData,
            KeySpec::Hmac256,
            KeyUsage::GenerateVerifyMac,
            false,
        );
        assert_eq!(hmac, vec!["kms:GenerateMac"]);
        let sign = actions(
            Capability::WriteData,
            KeySpec::EccNistP256,
            KeyUsage::SignVerify,
            false,
        );
        assert_eq!(sign, vec!["kms:Sign"]);
        let admin = actions(
            Capability::AdministerResource,
            KeySpec::SymmetricDefault,
            KeyUsage::EncryptDecrypt,
            true,
        );
        assert!(admin.contains(&"kms:ReplicateKey") && admin.contains(&"kms:UpdatePrimaryRegion"));
        let admin = actions(
            Capability::AdministerResource,
            KeySpec::Hmac256,
            KeyUsage::GenerateVerifyMac,
            false,
        );
        assert!(!admin.contains(&"kms:EnableKeyRotation") && !admin.contains(&"kms:ReplicateKey"));
    }

    #[test]
    fn administrators_schedule_and_cancel_deletion_and_delete_data_only_schedules_it() {
        for spec in KeySpec::ALL {
            for usage in spec.usages() {
                let admin = actions(Capability::AdministerResource, spec, *usage, false);
                assert!(
                    admin.contains(&"kms:ScheduleKeyDeletion")
                        && admin.contains(&"kms:CancelKeyDeletion"),
                    "{spec:?}"
                );
                assert_eq!(
                    actions(Capability::DeleteData, spec, *usage, false),
                    vec!["kms:ScheduleKeyDeletion"]
                );
            }
        }
    }

    /// The table of capabilities in docs/capabilities.md, from [`actions`] itself: what is written is what
    /// orch does.
    fn capability_table() -> String {
        let columns: [(&str, KeySpec, KeyUsage); 5] = [
            (
                "symmetric",
                KeySpec::SymmetricDefault,
                KeyUsage::EncryptDecrypt,
            ),
            ("RSA encryption", KeySpec::Rsa2048, KeyUsage::EncryptDecrypt),
            (
                "signing (RSA, ECC)",
                KeySpec::EccNistP256,
                KeyUsage::SignVerify,
            ),
            (
                "key agreement (ECC)",
                KeySpec::EccNistP256,
                KeyUsage::KeyAgreement,
            ),
            ("HMAC", KeySpec::Hmac256, KeyUsage::GenerateVerifyMac),
        ];
        let names = |acts: &mut dyn Iterator<Item = &&str>| -> String {
            let list: Vec<&str> = acts.map(|a| a.trim_start_matches("kms:")).collect();
            if list.is_empty() {
                "—".into()
            } else {
                list.join(", ")
            }
        };
        let mut out = String::from("| capability | every key |");
        for (title, ..) in &columns {
            out.push_str(&format!(" {title} |"));
        }
        out.push_str("\n|---|---|---|---|---|---|---|\n");
        for cap in Capability::ALL {
            let per: Vec<BTreeSet<&str>> = columns
                .iter()
                .map(|(_, spec, usage)| actions(cap, *spec, *usage, false).into_iter().collect())
                .collect();
            let common: BTreeSet<&str> = per.iter().skip(1).fold(per[0].clone(), |acc, s| {
                acc.intersection(s).copied().collect()
            });
            out.push_str(&format!("| {cap} | {} |", names(&mut common.iter())));
            for set in &per {
                out.push_str(&format!(" {} |", names(&mut set.difference(&common))));
            }
            out.push('\n');
        }
        let all = |cap| {
            actions(
                cap,
                KeySpec::SymmetricDefault,
                KeyUsage::EncryptDecrypt,
                false,
            )
        };
        let multi: Vec<&str> = actions(
            Capability::AdministerResource,
            KeySpec::SymmetricDefault,
            KeyUsage::EncryptDecrypt,
            true,
        )
        .into_iter()
        .filter(|a| !all(Capability::AdministerResource).contains(a))
        .collect();
        out.push_str(&format!(
            "\nOn a multi-region key, administer-resource adds {}. On a symmetric key, principals \
             with read-data or write-data also get {} when `kms:GrantIsForAWSResource` is true. \
             A service gets the actions of its capabilities and {}, pinned by `kms:ViaService` \
             and `kms:CallerAccount`; on a symmetric key also {} when \
             `kms:GrantIsForAWSResource` is true.\n",
            names(&mut multi.iter()),
            names(&mut GRANT_ACTIONS.iter()),
            SERVICE_DESCRIBE.trim_start_matches("kms:"),
            names(&mut SERVICE_GRANT_ACTIONS.iter()),
        ));
        out
    }

    #[test]
    fn the_capability_table_in_the_docs_is_current() {
        for cap in Capability::ALL {
            assert_eq!(
                actions(cap, KeySpec::Rsa3072, KeyUsage::SignVerify, false),
                actions(cap, KeySpec::EccNistP256, KeyUsage::SignVerify, false),
                "the signing column of docs/capabilities.md stands for RSA and ECC alike"
            );
        }
        let page = include_str!("../../docs/capabilities.md");
        let table = capability_table();
        assert!(
            page.contains(&table),
            "docs/capabilities.md's capability table is out of date; replace it with:\n\n{table}"
        );
    }
}
