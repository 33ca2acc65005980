//! The built-in kinds that use a key: a grant, a key-access IAM policy in the consumer's own
//! account, and an S3 bucket.

use super::access::read_capabilities;
use super::read_address;
use crate::config::address::Address;
use crate::config::decode::Fields;
use crate::config::model::{Account, Capability, Grant, KeyAccess, KeySpec, KeyUsage, S3Bucket};
use crate::config::principal::{check_principal_in, check_role_in};
use crate::diag::did_you_mean;
use crate::diag::Span;

/// Operations an `aws_kms_grant` may allow.
pub const GRANT_OPERATIONS: &[&str] = &[
    "Decrypt",
    "Encrypt",
    "GenerateDataKey",
    "GenerateDataKeyWithoutPlaintext",
    "ReEncryptFrom",
    "ReEncryptTo",
    "Sign",
    "Verify",
    "GetPublicKey",
    "CreateGrant",
    "RetireGrant",
    "DescribeKey",
    "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
    "GenerateMac",
    "VerifyMac",
    "DeriveSharedSecret",
];

/// The operations a grant on a key of this spec and usage may allow: AWS's CreateGrant refuses
/// any other with a ValidationException (AWS KMS developer guide, "Grant operations" and the key
/// type reference). Every key allows CreateGrant, RetireGrant and DescribeKey.
pub fn grant_operations_of(spec: KeySpec, usage: KeyUsage) -> Vec<&'static str> {
    let mut ops = match usage {
        KeyUsage::EncryptDecrypt if spec == KeySpec::SymmetricDefault => vec![
            "Decrypt",
            "Encrypt",
            "GenerateDataKey",
            "GenerateDataKeyWithoutPlaintext",
            "GenerateDataKeyPair",
            "GenerateDataKeyPairWithoutPlaintext",
            "ReEncryptFrom",
            "ReEncryptTo",
        ],
        KeyUsage::EncryptDecrypt => {
            vec![
                "Decrypt",
                "Encrypt",
                "ReEncryptFrom",
                "ReEncryptTo",
                "GetPublicKey",
            ]
        }
        KeyUsage::SignVerify => vec!["Sign", "Verify", "GetPublicKey"],
        KeyUsage::GenerateVerifyMac => vec!["GenerateMac", "VerifyMac"],
        KeyUsage::KeyAgreement => vec!["DeriveSharedSecret", "GetPublicKey"],
    };
    ops.extend(["CreateGrant", "RetireGrant", "DescribeKey"]);
    ops
}

/// What AWS refuses in a grant on a key of this spec and usage: each operation the key cannot
/// do, and an encryption context constraint on any key but a symmetric encryption key (the only
/// kind whose operations take an encryption context). (span, message, help) each.
pub fn grant_mismatches(
    grant: &Grant,
    spec: KeySpec,
    usage: KeyUsage,
) -> Vec<(Span, String, String)> {
    let allowed = grant_operations_of(spec, usage);
    let kind = format!("a {} {} key", spec.name(), usage.name());
    let mut out: Vec<(Span, String, String)> = grant
        .operations
        .iter()
        .filter(|op| !allowed.contains(&op.as_str()))
        .map(|op| {
            (
                grant.operations_span,
                format!("`{op}` is not an operation of {}, {kind}", grant.key.value),
                format!(
                    "AWS refuses the grant; {kind} allows {}",
                    allowed.join(", ")
                ),
            )
        })
        .collect();
    let symmetric = spec == KeySpec::SymmetricDefault && usage == KeyUsage::EncryptDecrypt;
    if let (Some(span), false) = (grant.constraint_span, symmetric) {
        out.push((
            span,
            format!("an encryption context constraint on a grant of {}, {kind}", grant.key.value),
            "only a symmetric encryption key's operations take an encryption context; AWS refuses the constraint: remove it".into(),
        ));
    }
    out
}

pub(super) fn read_grant(f: &mut Fields, address: &Address, source: u32) -> Option<Grant> {
    let key = read_address(f, "key");
    let grantee = f.required_string("grantee");
    if let Some(g) = &grantee {
        if let Err(why) = check_principal_in(&g.value, &address.region) {
            f.error(g.span, why);
        }
    }
    let retiring = f.string("retiring_principal");
    if let Some(r) = &retiring {
        if let Err(why) = check_principal_in(&r.value, &address.region) {
            f.error(r.span, why);
        }
    }
    let mut operations = Vec::new();
    let listed = f.required_strings("operations");
    let operations_span = listed.as_ref().map_or_else(|| f.span(), |list| list.span);
    match listed {
        None => {}
        Some(list) if list.value.is_empty() => {
            f.error(
                list.span,
                "`operations` is empty: a grant must allow at least one operation",
            );
        }
        Some(list) => {
            for op in list.value {
                if !GRANT_OPERATIONS.contains(&op.value.as_str()) {
                    let d = f.error(op.span, format!("`{}` is not a grant operation", op.value));
                    d.help = did_you_mean(&op.value, GRANT_OPERATIONS.iter().copied())
                        .map(|near| format!("did you mean `{near}`?"));
                } else if !operations.contains(&op.value) {
                    operations.push(op.value);
                }
            }
        }
    }
    let equals = f.plain_map("encryption_context_equals");
    let subset = f.plain_map("encryption_context_subset");
    let constraint_span = ["encryption_context_equals", "encryption_context_subset"]
        .into_iter()
        .find_map(|name| f.key_span(name));
    if !equals.is_empty() && !subset.is_empty() {
        let span = f.key_span("encryption_context_subset").unwrap_or(f.span());
        f.error(
            span,
            "a grant takes either encryption_context_equals or encryption_context_subset, not both",
        );
    }
    // `name: ""` is a grant without a name, as grants made outside orch often are (adopted by
    // `orch import`); left out, the grant is named after its node.
    let unnamed = f
        .node("name")
        .is_some_and(|n| matches!(n, marked_yaml::Node::Scalar(s) if s.as_str().is_empty()));
    let grant_name = if unnamed {
        String::new()
    } else {
        aws_name(f, "name", 256, ":/_-", "grant name").unwrap_or_else(|| address.name.clone())
    };
    Some(Grant {
        key: key?,
        grantee: grantee?.value,
        operations,
        operations_span,
        constraint_span,
        retiring_principal: retiring.map(|r| r.value),
        encryption_context_equals: equals,
        encryption_context_subset: subset,
        grant_name,
        import: super::import::read_grant_import(f, source),
    })
}

pub(super) fn read_key_access(
    f: &mut Fields,
    address: &Address,
    account: &Account,
) -> Option<KeyAccess> {
    let key = read_address(f, "key");
    let mut roles = Vec::new();
    match f.required_strings("roles") {
        None => {}
        Some(list) if list.value.is_empty() => {
            f.error(list.span, "`roles` has an empty principal list")
                .help = Some("name the roles of this account that use the key".into());
        }
        Some(list) => {
            for r in list.value {
                match check_role_in(&r.value, &address.region) {
                    // An account without a valid id has had its error; there is nothing to
                    // compare against.
                    Ok(role_account)
                        if !account.account_id.is_empty() && role_account != account.account_id =>
                    {
                        f.error(
                            r.span,
                            format!(
                                "`{}` is a role of account {role_account}, but {address} is in account {} ({})",
                                r.value, account.name, account.account_id
                            ),
                        )
                        .help = Some(format!(
                            "key-access is an IAM policy in the consumer's own account, so it can only name that account's roles; declare it under the account of {role_account}"
                        ));
                    }
                    Ok(_) => roles.push(r.value),
                    Err(why) => {
                        f.error(r.span, why);
                    }
                }
            }
        }
    }
    let capabilities = read_capabilities(f, "capabilities", |_| Ok(()));
    for cap in &capabilities {
        if matches!(cap, Capability::AdministerResource | Capability::DeleteData) {
            let span = f.key_span("capabilities").unwrap_or(f.span());
            f.error(span, format!("key-access cannot grant `{cap}`"))
                .help = Some("another account may read config and use the key (read-config, read-data, write-data), not administer it".into());
        }
    }
    let policy_name = aws_name(f, "policy_name", 128, "_+=,.@-", "IAM policy name")
        .unwrap_or_else(|| format!("orch-key-access-{}", address.name));
    Some(KeyAccess {
        key: key?,
        roles,
        capabilities,
        policy_name,
    })
}

/// A name AWS checks against its own pattern: 1 to `max` ASCII letters, digits and `extra`.
fn aws_name(
    f: &mut Fields,
    field: &'static str,
    max: usize,
    extra: &str,
    what: &str,
) -> Option<String> {
    let n = f.string(field)?;
    let ok = (1..=max).contains(&n.value.len())
        && n.value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || extra.contains(c));
    if !ok {
        let allowed: Vec<String> = extra.chars().map(String::from).collect();
        f.error(n.span, format!("`{}` is not a valid {what}", n.value))
            .help = Some(format!(
            "AWS takes 1-{max} letters, digits, and {} in a {what}",
            allowed.join(" ")
        ));
    }
    Some(n.value)
}

pub(super) fn read_s3_bucket(f: &mut Fields) -> Option<S3Bucket> {
    let key = read_address(f, "key");
    let bucket = f.required_string("bucket");
    if let Some(b) = &bucket {
        if let Err(why) = check_bucket_name(&b.value) {
            f.error(b.span, why);
        }
    }
    let versioning = f.bool("versioning").map(|b| b.value).unwrap_or(true);
    let force_destroy = f.bool("force_destroy").map(|b| b.value).unwrap_or(false);
    Some(S3Bucket {
        key: key?,
        bucket: bucket?.value,
        versioning,
        force_destroy,
    })
}

fn check_bucket_name(name: &str) -> Result<(), String> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    let ends_ok = name
        .chars()
        .next()
        .zip(name.chars().last())
        .is_some_and(|(a, z)| a.is_ascii_alphanumeric() && z.is_ascii_alphanumeric());
    let looks_like_ip =
        name.split('.').count() == 4 && name.split('.').all(|p| p.parse::<u8>().is_ok());
    if (3..=63).contains(&name.len())
        && ok_chars
        && ends_ok
        && !name.contains("..")
        && !looks_like_ip
    {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a valid S3 bucket name (3-63 lower-case letters, digits, dots and hyphens)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names() {
        assert!(check_bucket_name("acme-prod-data").is_ok());
        for bad in [
            "ab",
            "Acme",
            "-acme",
            "acme-",
            "a..b",
            "192.168.1.1",
            "acme_data",
        ] {
            assert!(check_bucket_name(bad).is_err(), "{bad}");
        }
    }
}
