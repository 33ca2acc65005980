//! The checks of `orch audit` on the keys the AWS read path returned. AWS-managed keys are not
//! read and so never found; a key whose DescribeKey failed is only listed as read in part (it
//! may be an AWS-managed key); every other check runs on what was read of a key, and a key read
//! only in part is listed with what is missing, so nothing unread passes as clean.

use std::collections::{BTreeMap, BTreeSet};

use super::finding::{rule, Finding, Outcome, PartlyRead, TurnedOff, MANY_GRANTS};
use crate::aws::{LiveGrant, LiveKey, Region, Target, Unknown};
use crate::config::{partition_of, AuditCheck, Fleet};
use crate::import::classify::is_service_grant;
use crate::import::held::Held;
use crate::policy::{describe, Effect, Permissions, Tuple, Who};

/// What the checks compare a key with: the tree's keys and its accounts' ids.
struct Tree {
    held: Held,
    account_ids: BTreeSet<String>,
}

/// Audits what was read against `fleet`; checks turned off in its orch.yaml are not run.
pub fn run(fleet: &Fleet, read: Vec<Result<Region, Unknown>>) -> Outcome {
    let tree = Tree {
        held: Held::of(fleet),
        account_ids: fleet
            .accounts
            .values()
            .map(|a| a.account_id.clone())
            .collect(),
    };
    let off = &fleet.settings.audit.disabled;
    let mut outcome = Outcome {
        turned_off: off
            .iter()
            .map(|(check, reason)| TurnedOff {
                check: *check,
                reason: reason.clone(),
            })
            .collect(),
        ..Outcome::default()
    };
    for region in read {
        let region = match region {
            Ok(region) => region,
            Err(unknown) => {
                outcome.not_read.push(unknown);
                continue;
            }
        };
        outcome.regions_read += 1;
        outcome.aws_managed += region.aws_managed;
        for (op, n) in &region.calls {
            *outcome.calls.entry(op.clone()).or_default() += n;
        }
        let mut aliases: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for alias in &region.aliases {
            if let Some(key) = &alias.target_key_id {
                aliases.entry(key).or_default().push(alias.name.clone());
            }
        }
        for key in &region.keys {
            outcome.keys_read += 1;
            let names = aliases.remove(key.key_id.as_str()).unwrap_or_default();
            let (found, mut why) = if key.state.is_empty() {
                // DescribeKey failed: not even known to be customer-managed.
                (Vec::new(), Vec::new())
            } else {
                findings_of(&tree, &region.target, key, &names)
            };
            why.splice(0..0, key.unreadable.iter().cloned());
            if !why.is_empty() {
                outcome.partly_read.push(PartlyRead {
                    account: region.target.account.clone(),
                    region: region.target.region.clone(),
                    key_id: key.key_id.clone(),
                    arn: key.arn.clone(),
                    why,
                });
            }
            for (check, text) in found {
                if off.contains_key(&check) {
                    continue;
                }
                let rule = rule(check);
                outcome.findings.push(Finding {
                    check,
                    severity: rule.severity,
                    account: region.target.account.clone(),
                    account_id: region.target.account_id.clone(),
                    region: region.target.region.clone(),
                    key_id: key.key_id.clone(),
                    arn: key.arn.clone(),
                    aliases: names.clone(),
                    description: key.description.clone(),
                    tags: key.tags.clone(),
                    found: text,
                    config_rule: rule.config_rule,
                    prowler: rule.prowler,
                });
            }
        }
    }
    outcome.findings.sort_by(|a, b| {
        (
            a.severity, a.check, &a.account, &a.region, &a.key_id, &a.found,
        )
            .cmp(&(
                b.severity, b.check, &b.account, &b.region, &b.key_id, &b.found,
            ))
    });
    outcome
}

/// What the checks find on one key (each check with what it found, in words), and what could
/// not be checked and why. `aliases` are the key's, with `alias/`.
fn findings_of(
    tree: &Tree,
    target: &Target,
    key: &LiveKey,
    aliases: &[String],
) -> (Vec<(AuditCheck, String)>, Vec<String>) {
    let mut found = Vec::new();
    let mut why = Vec::new();
    let bare: Vec<String> = aliases
        .iter()
        .map(|a| a.strip_prefix("alias/").unwrap_or(a).to_string())
        .collect();
    if tree
        .held
        .holder(&target.account, &target.region, &key.key_id, &bare)
        .is_none()
    {
        found.push((
            AuditCheck::UnmanagedKey,
            "no node of the tree holds it (by the key id of an `import:` or of its last apply, or by alias): `orch import discover` adopts it".to_string(),
        ));
    }
    let pending = matches!(
        key.state.as_str(),
        "PendingDeletion" | "PendingReplicaDeletion"
    );
    if pending {
        found.push((
            AuditCheck::PendingDeletion,
            match &key.deletion_date {
                Some(date) => format!(
                    "{} until {date}: `aws kms cancel-key-deletion` keeps it",
                    key.state
                ),
                None => format!("{}: `aws kms cancel-key-deletion` keeps it", key.state),
            },
        ));
    }
    if key.state == "Disabled" {
        found.push((
            AuditCheck::DisabledKey,
            "disabled: nothing can encrypt or decrypt with it, and AWS does not rotate it"
                .to_string(),
        ));
    }
    if !pending && rotation_off(key) {
        found.push((
            AuditCheck::RotationOff,
            "automatic rotation is off (a symmetric encryption key with key material from AWS KMS)"
                .to_string(),
        ));
    }
    if let Some(text) = &key.policy {
        let partition = partition_of(&target.region);
        let read = serde_json::from_str(text)
            .map_err(|e| e.to_string())
            .and_then(|v| Permissions::of(&v, partition));
        match read {
            Ok(permissions) => {
                found.extend(public(&permissions).map(|t| (AuditCheck::PublicPolicy, t)));
                found.extend(
                    foreign(&permissions, &tree.account_ids)
                        .into_iter()
                        .map(|t| (AuditCheck::UnknownAccount, t)),
                );
            }
            Err(e) => why.push(format!(
                "its policy is not one orch can read ({e}): public-policy and unknown-account were not checked"
            )),
        }
    }
    let people: Vec<&LiveGrant> = key.grants.iter().filter(|g| !is_service_grant(g)).collect();
    for grant in &people {
        if grant.encryption_context_equals.is_empty() && grant.encryption_context_subset.is_empty()
        {
            found.push((
                AuditCheck::UnconstrainedGrant,
                format!(
                    "{} with no encryption-context constraint",
                    grant_words(grant)
                ),
            ));
        }
        if let Some(account) = account_of(&grant.grantee).filter(|a| !tree.account_ids.contains(*a))
        {
            found.push((
                AuditCheck::UnknownAccount,
                format!("{} (account {account})", grant_words(grant)),
            ));
        }
    }
    if people.len() > MANY_GRANTS {
        found.push((
            AuditCheck::ManyGrants,
            format!(
                "{} grants made by people (more than {MANY_GRANTS}; grants of AWS services not counted)",
                people.len()
            ),
        ));
    }
    (found, why)
}

/// Whether the key is one AWS rotates (a symmetric encryption key with key material from AWS
/// KMS, not in a custom key store) and its rotation is off. A multi-region replica takes its
/// primary's rotation, so it is the primary that is reported.
fn rotation_off(key: &LiveKey) -> bool {
    let rotates = key.spec == "SYMMETRIC_DEFAULT"
        && key.usage == "ENCRYPT_DECRYPT"
        && key.origin == "AWS_KMS"
        && key.custom_key_store_id.is_none();
    let replica = key
        .multi_region
        .as_ref()
        .is_some_and(|m| m.kind == "REPLICA");
    rotates && !replica && key.rotation.is_some_and(|r| !r.enabled)
}

/// What the policy lets everyone do without a condition: Allow to `*`, or to everyone but some
/// principals (`NotPrincipal`). A Deny takes nothing away from this: it only narrows.
fn public(permissions: &Permissions) -> Option<String> {
    let open: BTreeSet<Tuple> = permissions
        .tuples()
        .iter()
        .filter(|t| t.effect == Effect::Allow && t.condition.is_empty())
        .filter(|t| match &t.who {
            Who::Principal((kind, value)) => kind == "AWS" && value == "*",
            Who::NotPrincipal(_) => true,
        })
        .cloned()
        .collect();
    (!open.is_empty()).then(|| describe(&open).join("; "))
}

/// The principals the policy allows anything whose account is not one of the tree's, each with
/// what it is allowed, one line per account.
fn foreign(permissions: &Permissions, known: &BTreeSet<String>) -> Vec<String> {
    let mut by_account: BTreeMap<&str, BTreeSet<Tuple>> = BTreeMap::new();
    for t in permissions.tuples() {
        let Who::Principal((kind, value)) = &t.who else {
            continue;
        };
        if t.effect != Effect::Allow || kind != "AWS" {
            continue;
        }
        if let Some(account) = account_of(value).filter(|a| !known.contains(*a)) {
            by_account.entry(account).or_default().insert(t.clone());
        }
    }
    by_account
        .into_iter()
        .map(|(account, tuples)| format!("account {account}: {}", describe(&tuples).join("; ")))
        .collect()
}

/// The account of a principal's ARN (`arn:aws:iam::111111111111:role/x`,
/// `arn:aws:sts::111111111111:assumed-role/...`): its fifth field, when that is an account id.
fn account_of(principal: &str) -> Option<&str> {
    let mut fields = principal.split(':');
    if fields.next() != Some("arn") {
        return None;
    }
    fields
        .nth(3)
        .filter(|a| a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()))
}

/// `grant app-reader (1a2b...) gives arn:...:role/x Decrypt, Encrypt`.
fn grant_words(grant: &LiveGrant) -> String {
    let name = if grant.name.is_empty() {
        grant.grant_id.clone()
    } else {
        format!("{} ({})", grant.name, grant.grant_id)
    };
    format!(
        "grant {name} gives {} {}",
        grant.grantee,
        grant.operations.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use super::*;
    use crate::aws::{LiveAlias, LiveRotation, MultiRegion};

    const K1: &str = "00000000-0000-0000-0000-000000000001";

    /// A tree of one account (prod, 111111111111, us-east-1): `app` adopts K1 by key id, `data`
    /// holds whatever key has the alias `data`; `orch` is orch.yaml.
    fn fleet(dir: &Path, orch: &str) -> Fleet {
        let write = |path: &str, text: &str| {
            let full = dir.join(path);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(full, text).unwrap();
        };
        write("live/orch.yaml", orch);
        write(
            "live/prod/account.yaml",
            "account_id: \"111111111111\"\nenvironment: prod\nregions: [us-east-1]\n",
        );
        write(
            "live/prod/us-east-1/app/node.yaml",
            &format!("description: app\nimport: {{key_id: {K1}}}\n"),
        );
        write(
            "live/prod/us-east-1/data/node.yaml",
            "description: data\naliases: [data]\n",
        );
        let checked = crate::config::load(&dir.join("live"), &BTreeSet::new());
        assert!(!checked.diagnostics.has_errors());
        checked.fleet
    }

    fn key(n: u32) -> LiveKey {
        let id = format!("00000000-0000-0000-0000-{n:012}");
        LiveKey {
            arn: format!("arn:aws:kms:us-east-1:111111111111:key/{id}"),
            key_id: id,
            description: format!("key {n}"),
            spec: "SYMMETRIC_DEFAULT".into(),
            usage: "ENCRYPT_DECRYPT".into(),
            state: "Enabled".into(),
            origin: "AWS_KMS".into(),
            custom_key_store_id: None,
            deletion_date: None,
            multi_region: None,
            rotation: Some(LiveRotation {
                enabled: true,
                period_days: Some(365),
            }),
            policy: Some(policy(&[root()])),
            tags: BTreeMap::new(),
            grants: Vec::new(),
            unreadable: Vec::new(),
        }
    }

    fn root() -> serde_json::Value {
        serde_json::json!({"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111111111111:root"}, "Action": "kms:*", "Resource": "*"})
    }

    fn policy(statements: &[serde_json::Value]) -> String {
        serde_json::json!({"Version": "2012-10-17", "Statement": statements}).to_string()
    }

    fn grant(id: &str, grantee: &str, constrained: bool) -> LiveGrant {
        let context = BTreeMap::from([("app".to_string(), "x".to_string())]);
        LiveGrant {
            grant_id: id.into(),
            name: String::new(),
            grantee: grantee.into(),
            retiring_principal: None,
            issuing_account: "arn:aws:iam::111111111111:root".into(),
            operations: vec!["Decrypt".into()],
            encryption_context_equals: if constrained {
                context
            } else {
                BTreeMap::new()
            },
            encryption_context_subset: BTreeMap::new(),
        }
    }

    fn region(keys: Vec<LiveKey>, aliases: &[(&str, &str)]) -> Region {
        Region {
            target: Target {
                account: "prod".into(),
                account_id: "111111111111".into(),
                role_arn: None,
                region: "us-east-1".into(),
            },
            keys,
            aws_managed: 2,
            aliases: aliases
                .iter()
                .map(|(name, key)| LiveAlias {
                    name: format!("alias/{name}"),
                    arn: String::new(),
                    target_key_id: Some(key.to_string()),
                })
                .collect(),
            calls: BTreeMap::from([("ListKeys".to_string(), 1)]),
        }
    }

    /// (check id, key number) of each finding.
    fn found(outcome: &Outcome) -> Vec<(&'static str, u32)> {
        outcome
            .findings
            .iter()
            .map(|f| (f.check.id(), f.key_id[24..].parse().unwrap()))
            .collect()
    }

    /// The estate of every check: keys 1 and 2 are the tree's (1 clean), the others each plant
    /// what their comment says, and are not the tree's.
    fn estate() -> Vec<LiveKey> {
        let mut keys = vec![key(1)];
        let mut data = key(2); // the tree's by alias; rotation off
        data.rotation = Some(LiveRotation {
            enabled: false,
            period_days: None,
        });
        keys.push(data);
        let mut pending = key(3); // rotation off too, but pending deletion says enough
        pending.state = "PendingDeletion".into();
        pending.deletion_date = Some("2030-01-01T00:00:00Z".into());
        pending.rotation = Some(LiveRotation {
            enabled: false,
            period_days: None,
        });
        keys.push(pending);
        let mut disabled = key(4);
        disabled.state = "Disabled".into();
        keys.push(disabled);
        let mut public = key(5);
        public.policy = Some(policy(&[
            root(),
            serde_json::json!({"Effect": "Allow", "Principal": "*", "Action": ["kms:Decrypt"], "Resource": "*"}),
            serde_json::json!({"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:Encrypt", "Resource": "*",
                               "Condition": {"StringEquals": {"kms:CallerAccount": "111111111111"}}}),
            serde_json::json!({"Effect": "Deny", "Principal": "*", "Action": "kms:ScheduleKeyDeletion", "Resource": "*"}),
            serde_json::json!({"Effect": "Allow", "Principal": {"AWS": ["999999999999", "arn:aws:iam::888888888888:role/x"]},
                               "Action": "kms:Decrypt", "Resource": "*"}),
        ]));
        keys.push(public);
        let mut not_principal = key(6);
        not_principal.policy = Some(policy(&[
            root(),
            serde_json::json!({"Effect": "Allow", "NotPrincipal": {"AWS": "arn:aws:iam::111111111111:role/x"}, "Action": "kms:Decrypt", "Resource": "*"}),
        ]));
        keys.push(not_principal);
        let mut granted = key(7); // 11 constrained grants, a service's, a foreign unconstrained one
        for i in 0..11 {
            granted.grants.push(grant(
                &format!("g{i}"),
                "arn:aws:iam::111111111111:role/app",
                true,
            ));
        }
        granted
            .grants
            .push(grant("svc", "ec2.us-east-1.amazonaws.com", false));
        keys.push(granted);
        let mut foreign_grant = key(8);
        foreign_grant
            .grants
            .push(grant("far", "arn:aws:iam::777777777777:role/y", false));
        keys.push(foreign_grant);
        let mut unread_policy = key(9); // its other checks still run
        unread_policy.policy = None;
        unread_policy
            .unreadable
            .push("GetKeyPolicy: AccessDeniedException".into());
        keys.push(unread_policy);
        let mut undescribed = key(10); // may be AWS-managed: no finding
        undescribed.state = String::new();
        undescribed.policy = None;
        undescribed.rotation = None;
        undescribed
            .unreadable
            .push("DescribeKey: AccessDeniedException".into());
        keys.push(undescribed);
        let mut replica = key(11); // rotation is its primary's
        replica.multi_region = Some(MultiRegion {
            kind: "REPLICA".into(),
            primary_arn: "arn:aws:kms:eu-west-1:111111111111:key/mrk-1".into(),
            primary_region: "eu-west-1".into(),
            replicas: Vec::new(),
        });
        replica.rotation = Some(LiveRotation {
            enabled: false,
            period_days: None,
        });
        keys.push(replica);
        let mut hmac = key(12); // AWS does not rotate it: no rotation read
        hmac.spec = "HMAC_256".into();
        hmac.usage = "GENERATE_VERIFY_MAC".into();
        hmac.rotation = None;
        keys.push(hmac);
        keys
    }

    #[test]
    fn each_check_finds_what_was_planted_and_nothing_on_the_trees_clean_key() {
        let dir = tempfile::tempdir().unwrap();
        let fleet = fleet(dir.path(), "backend: {type: local}\n");
        let data = "00000000-0000-0000-0000-000000000002";
        let outcome = run(&fleet, vec![Ok(region(estate(), &[("data", data)]))]);
        let mut unmanaged: Vec<(&str, u32)> = (3..=12)
            .filter(|n| *n != 10)
            .map(|n| ("unmanaged-key", n))
            .collect();
        let mut expected = vec![
            ("public-policy", 5),
            ("public-policy", 6),
            ("unknown-account", 5),
            ("unknown-account", 5),
            ("unknown-account", 8),
            ("pending-deletion", 3),
            ("unconstrained-grant", 8),
            ("rotation-off", 2),
        ];
        expected.append(&mut unmanaged);
        expected.extend([("disabled-key", 4), ("many-grants", 7)]);
        assert_eq!(found(&outcome), expected);
        let public = &outcome.findings[0];
        assert_eq!(public.found, "Allow *: kms:Decrypt");
        assert_eq!(public.config_rule, Some("kms-key-policy-no-public-access"));
        assert_eq!(public.prowler, Some("kms_key_not_publicly_accessible"));
        assert!(outcome.findings[1]
            .found
            .starts_with("Allow everyone but AWS arn:aws:iam::111111111111:role/x"));
        let foreign: Vec<&str> = outcome.findings[2..5]
            .iter()
            .map(|f| f.found.as_str())
            .collect();
        assert_eq!(
            foreign,
            [
                "account 888888888888: Allow arn:aws:iam::888888888888:role/x: kms:Decrypt",
                "account 999999999999: Allow arn:aws:iam::999999999999:root: kms:Decrypt",
                "grant far gives arn:aws:iam::777777777777:role/y Decrypt (account 777777777777)",
            ]
        );
        assert!(outcome.findings[5].found.contains("until 2030-01-01"));
        let many = outcome.findings.last().unwrap();
        assert!(
            many.found
                .starts_with("11 grants made by people (more than 10"),
            "{}",
            many.found
        );
        let partly: Vec<(&str, &Vec<String>)> = outcome
            .partly_read
            .iter()
            .map(|p| (&p.key_id[24..], &p.why))
            .collect();
        assert_eq!(
            partly,
            [
                (
                    "000000000009",
                    &vec!["GetKeyPolicy: AccessDeniedException".to_string()]
                ),
                (
                    "000000000010",
                    &vec!["DescribeKey: AccessDeniedException".to_string()]
                ),
            ]
        );
        assert_eq!(outcome.exit_code(), 1, "a key read in part is not clean");
        assert_eq!((outcome.keys_read, outcome.aws_managed), (12, 2));
    }

    #[test]
    fn a_check_turned_off_is_not_run_and_keeps_its_reason() {
        let dir = tempfile::tempdir().unwrap();
        let fleet = fleet(
            dir.path(),
            "audit:\n  disable:\n    rotation-off: \"HMAC keys are rotated by the app\"\n    unmanaged-key: adopted next quarter\n",
        );
        let outcome = run(&fleet, vec![Ok(region(estate(), &[]))]);
        assert!(outcome
            .findings
            .iter()
            .all(|f| f.check != AuditCheck::RotationOff && f.check != AuditCheck::UnmanagedKey));
        let off: Vec<(&str, &str)> = outcome
            .turned_off
            .iter()
            .map(|t| (t.check.id(), t.reason.as_str()))
            .collect();
        assert_eq!(
            off,
            [
                ("rotation-off", "HMAC keys are rotated by the app"),
                ("unmanaged-key", "adopted next quarter"),
            ]
        );
    }

    #[test]
    fn exit_codes_clean_found_and_incomplete() {
        let dir = tempfile::tempdir().unwrap();
        let fleet = fleet(dir.path(), "backend: {type: local}\n");
        let clean = run(&fleet, vec![Ok(region(vec![key(1)], &[]))]);
        assert!(clean.findings.is_empty(), "{:?}", clean.findings);
        assert_eq!(clean.exit_code(), 0);
        let found = run(&fleet, vec![Ok(region(vec![key(1), key(2)], &[]))]);
        assert_eq!(found.exit_code(), 2);
        let target = region(Vec::new(), &[]).target;
        let unknown = run(
            &fleet,
            vec![
                Ok(region(vec![key(1), key(2)], &[])),
                Err(Unknown {
                    target,
                    reason: "AssumeRole: AccessDenied".into(),
                }),
            ],
        );
        assert_eq!(unknown.exit_code(), 1);
        assert_eq!(unknown.findings.len(), 1, "what was read is still audited");
    }

    #[test]
    fn the_account_of_a_principal() {
        assert_eq!(
            account_of("arn:aws:iam::123456789012:role/x"),
            Some("123456789012")
        );
        assert_eq!(
            account_of("arn:aws:sts::123456789012:assumed-role/x/s"),
            Some("123456789012")
        );
        assert_eq!(account_of("*"), None);
        assert_eq!(account_of("ec2.amazonaws.com"), None);
        assert_eq!(account_of("arn:aws:iam::aws:policy/x"), None);
    }
}
