//! Building a key's policy document from its facts, statement by statement, and the `Resource`
//! of a key-access IAM policy.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use super::actions::{
    actions, cross_account_actions, GRANT_ACTIONS, SERVICE_DESCRIBE, SERVICE_GRANT_ACTIONS,
};
use super::facts::KeyFacts;
use super::json::{KeyPolicy, Statement};
use crate::config::{pascal, Capability};

/// The condition under which grant actions are allowed at all: only when an AWS service asks.
fn grant_is_for_aws_resource() -> Value {
    json!({"kms:GrantIsForAWSResource": "true"})
}

/// Builds the policy of a key from its facts.
pub fn build(facts: &KeyFacts) -> KeyPolicy {
    if let Some((text, _)) = facts.policy_override {
        return KeyPolicy::Override(text.to_string());
    }
    let partition = facts.partition;
    let account_root = format!("arn:{partition}:iam::{}:root", facts.account.account_id);
    let mut statements = Vec::new();
    if facts.access.root_access {
        statements.push(Statement {
            sid: "AccountRootFullAccess".into(),
            effect: "Allow",
            principal: json!({"AWS": account_root}),
            action: vec!["kms:*".into()],
            resource: "*",
            condition: None,
        });
    }
    let context = context_condition(facts);
    for cap in Capability::ALL {
        let Some(principals) = facts.access.grants.get(&cap) else {
            continue;
        };
        statements.push(Statement {
            sid: pascal(cap.name()),
            effect: "Allow",
            principal: principal_value(principals),
            action: owned(actions(cap, facts.spec, facts.usage, facts.multi_region)),
            resource: "*",
            condition: cap
                .is_data()
                .then(|| context.clone())
                .flatten()
                .map(|c| json!({"StringEquals": c})),
        });
    }
    let data_users: BTreeSet<&String> = [Capability::ReadData, Capability::WriteData]
        .iter()
        .filter_map(|c| facts.access.grants.get(c))
        .flatten()
        .collect();
    if !data_users.is_empty() && facts.symmetric_encryption() {
        let users: Vec<String> = data_users.into_iter().cloned().collect();
        statements.push(Statement {
            sid: "GrantsForAwsResources".into(),
            effect: "Allow",
            principal: principal_value(&users),
            action: owned(GRANT_ACTIONS.to_vec()),
            resource: "*",
            condition: Some(json!({"Bool": grant_is_for_aws_resource()})),
        });
    }
    for service in &facts.access.services {
        let mut acts: Vec<&str> = service
            .capabilities
            .iter()
            .flat_map(|c| actions(*c, facts.spec, facts.usage, facts.multi_region))
            .chain([SERVICE_DESCRIBE])
            .collect();
        acts.sort_unstable();
        acts.dedup();
        let mut pinned = serde_json::Map::new();
        pinned.insert("kms:CallerAccount".into(), json!(facts.account.account_id));
        pinned.insert(
            "kms:ViaService".into(),
            one_or_many(
                facts
                    .regions
                    .iter()
                    .map(|r| format!("{}.{r}.amazonaws.com", service.service))
                    .collect(),
            ),
        );
        let stem = service.sid_stem();
        statements.push(Statement {
            sid: format!("ViaService{stem}"),
            effect: "Allow",
            principal: json!({"AWS": "*"}),
            action: owned(acts),
            resource: "*",
            condition: Some(json!({"StringEquals": pinned.clone()})),
        });
        // AWS services that attach a key to a resource with a grant (EBS, RDS) encrypt with
        // symmetric keys only.
        if facts.symmetric_encryption() {
            statements.push(Statement {
                sid: format!("GrantsViaService{stem}"),
                effect: "Allow",
                principal: json!({"AWS": "*"}),
                action: owned(SERVICE_GRANT_ACTIONS.to_vec()),
                resource: "*",
                condition: Some(json!({
                    "StringEquals": pinned,
                    "Bool": grant_is_for_aws_resource(),
                })),
            });
        }
    }
    for (account, caps) in &facts.access.external_accounts {
        // With an encryption context, data actions carry the condition and the rest cannot
        // (DescribeKey has no context), so they split into two statements.
        let split = context.is_some();
        let groups: [(&str, Vec<Capability>); 2] = [
            (
                "",
                caps.iter()
                    .copied()
                    .filter(|c| !(split && c.is_data()))
                    .collect(),
            ),
            (
                "Data",
                caps.iter()
                    .copied()
                    .filter(|c| split && c.is_data())
                    .collect(),
            ),
        ];
        for (suffix, group) in groups {
            if group.is_empty() {
                continue;
            }
            let acts = cross_account_actions(&group, facts.spec, facts.usage);
            statements.push(Statement {
                sid: format!("ExternalAccount{account}{suffix}"),
                effect: "Allow",
                principal: json!({"AWS": format!("arn:{partition}:iam::{account}:root")}),
                action: owned(acts),
                resource: "*",
                condition: (!suffix.is_empty())
                    .then(|| context.clone())
                    .flatten()
                    .map(|c| json!({"StringEquals": c})),
            });
        }
    }
    KeyPolicy::Generated(statements)
}

/// The `Resource` of a key-access IAM policy: the key's ARN in every region of its family.
/// Every member's policy admits the consumer's account (they share one policy), so its roles
/// may use whichever is nearest; a multi-region key keeps one key id in every region.
pub fn key_access_resource(key_arn: &str, regions: &[String]) -> Value {
    let parts: Vec<&str> = key_arn.splitn(6, ':').collect();
    let [arn, partition, service, _, account, key] = parts.as_slice() else {
        return json!(key_arn);
    };
    one_or_many(
        regions
            .iter()
            .map(|region| format!("{arn}:{partition}:{service}:{region}:{account}:{key}"))
            .collect(),
    )
}

/// `{"kms:EncryptionContext:<key>": value}` for the key's required encryption context, if any.
fn context_condition(facts: &KeyFacts) -> Option<serde_json::Map<String, Value>> {
    let context = &facts.access.encryption_context;
    (!context.is_empty()).then(|| {
        context
            .iter()
            .map(|(k, v)| (format!("kms:EncryptionContext:{k}"), json!(v)))
            .collect()
    })
}

/// A condition value: one string alone, several as a list (any of them matches).
fn one_or_many(mut values: Vec<String>) -> Value {
    match values.len() {
        1 => Value::String(values.remove(0)),
        _ => json!(values),
    }
}

fn principal_value(principals: &[String]) -> Value {
    match principals {
        [one] => json!({"AWS": one}),
        many => json!({"AWS": many}),
    }
}

fn owned(actions: Vec<&str>) -> Vec<String> {
    actions.into_iter().map(String::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Access, KeySpec, KeyUsage, ServiceAccess};
    use crate::policy::fixtures::{account, facts, with_root, ADMIN, APP};

    fn statements(policy: &KeyPolicy) -> &[Statement] {
        match policy {
            KeyPolicy::Generated(s) => s,
            KeyPolicy::Override(_) => panic!("generated policy expected"),
        }
    }

    fn by_sid<'p>(policy: &'p KeyPolicy, sid: &str) -> &'p Statement {
        statements(policy)
            .iter()
            .find(|s| s.sid == sid)
            .unwrap_or_else(|| panic!("no statement {sid}"))
    }

    fn service(name: &str, caps: &[Capability]) -> ServiceAccess {
        ServiceAccess {
            service: name.into(),
            capabilities: caps.to_vec(),
        }
    }

    /// Another account reads the key's configuration and data, which must carry a context.
    fn widen_with_context(access: &mut Access) {
        access.external_accounts.insert(
            "222222222222".into(),
            vec![Capability::ReadConfig, Capability::ReadData],
        );
        access
            .encryption_context
            .insert("Department".into(), "finance".into());
    }

    #[test]
    fn services_are_pinned_to_the_account_and_every_region_of_the_key() {
        let account = account();
        let mut access = with_root();
        access.services.push(service("s3", &[Capability::ReadData]));
        access
            .encryption_context
            .insert("Department".into(), "finance".into());
        let f = facts(&account, &access);
        let policy = build(&f);
        let via = by_sid(&policy, "ViaServiceS3");
        assert_eq!(via.principal, json!({"AWS": "*"}));
        assert_eq!(
            via.condition,
            Some(json!({"StringEquals": {
                "kms:CallerAccount": "111111111111",
                "kms:ViaService": ["s3.eu-west-1.amazonaws.com", "s3.us-east-1.amazonaws.com"],
            }})),
            "no encryption-context condition: AWS services send their own context (S3: aws:s3:arn)"
        );
    }

    #[test]
    fn services_describe_the_key_and_create_grants_only_for_aws_resources() {
        let account = account();
        let mut access = with_root();
        access.services.push(service(
            "ec2",
            &[Capability::ReadData, Capability::WriteData],
        ));
        let f = facts(&account, &access);
        let policy = build(&f);
        let via = by_sid(&policy, "ViaServiceEc2");
        assert!(via.action.contains(&"kms:DescribeKey".to_string()));
        assert!(via
            .action
            .contains(&"kms:GenerateDataKeyWithoutPlaintext".to_string()));
        assert!(
            !via.action.iter().any(|a| a.contains("Grant")),
            "grant actions only under kms:GrantIsForAWSResource"
        );
        let grants = by_sid(&policy, "GrantsViaServiceEc2");
        assert_eq!(grants.principal, json!({"AWS": "*"}));
        assert_eq!(grants.action, vec!["kms:CreateGrant", "kms:ListGrants"]);
        assert_eq!(
            grants.condition,
            Some(json!({
                "StringEquals": {
                    "kms:CallerAccount": "111111111111",
                    "kms:ViaService": ["ec2.eu-west-1.amazonaws.com", "ec2.us-east-1.amazonaws.com"],
                },
                "Bool": {"kms:GrantIsForAWSResource": "true"},
            }))
        );
        let hmac = KeyFacts {
            spec: KeySpec::Hmac256,
            usage: KeyUsage::GenerateVerifyMac,
            ..facts(&account, &access)
        };
        let policy = build(&hmac);
        assert!(statements(&policy)
            .iter()
            .all(|s| s.sid != "GrantsViaServiceEc2"));
        assert_eq!(
            by_sid(&policy, "ViaServiceEc2").action,
            vec!["kms:DescribeKey", "kms:GenerateMac", "kms:VerifyMac"]
        );
    }

    #[test]
    fn sids_of_a_policy_are_unique() {
        let account = account();
        let mut access = with_root();
        for cap in Capability::ALL {
            access.grants.insert(cap, vec![APP.into()]);
        }
        access.services.push(service("s3", &[Capability::ReadData]));
        access
            .services
            .push(service("s3-grants", &[Capability::ReadData]));
        widen_with_context(&mut access);
        let policy = build(&facts(&account, &access));
        let sids: Vec<&str> = statements(&policy).iter().map(|s| s.sid.as_str()).collect();
        let unique: BTreeSet<&str> = sids.iter().copied().collect();
        assert_eq!(sids.len(), unique.len(), "{sids:?}");
    }

    #[test]
    fn data_statements_carry_the_encryption_context_and_config_statements_do_not() {
        let account = account();
        let mut access = with_root();
        access.grants.insert(Capability::ReadData, vec![APP.into()]);
        access
            .grants
            .insert(Capability::ReadConfig, vec![APP.into()]);
        widen_with_context(&mut access);
        let f = facts(&account, &access);
        let policy = build(&f);
        assert!(by_sid(&policy, "ReadData").condition.is_some());
        assert!(by_sid(&policy, "ReadConfig").condition.is_none());
        assert!(by_sid(&policy, "ExternalAccount222222222222")
            .condition
            .is_none());
        assert_eq!(
            by_sid(&policy, "ExternalAccount222222222222Data").action,
            vec!["kms:Decrypt", "kms:ReEncryptFrom"]
        );
        assert_eq!(
            by_sid(&policy, "ExternalAccount222222222222").action,
            vec![
                "kms:DescribeKey",
                "kms:GetKeyRotationStatus",
                "kms:ListGrants"
            ],
            "only what works across accounts"
        );
    }

    #[test]
    fn arns_are_written_in_the_partition_of_the_key() {
        let account = account();
        let mut access = with_root();
        access
            .external_accounts
            .insert("222222222222".into(), vec![Capability::ReadData]);
        let f = KeyFacts {
            partition: "aws-us-gov",
            ..facts(&account, &access)
        };
        let policy = build(&f);
        assert_eq!(
            by_sid(&policy, "AccountRootFullAccess").principal,
            json!({"AWS": "arn:aws-us-gov:iam::111111111111:root"})
        );
        assert_eq!(
            by_sid(&policy, "ExternalAccount222222222222").principal,
            json!({"AWS": "arn:aws-us-gov:iam::222222222222:root"})
        );
    }

    #[test]
    fn key_access_covers_every_region_of_the_key_family() {
        let arn = "arn:aws:kms:us-east-1:111111111111:key/mrk-1234";
        assert_eq!(
            key_access_resource(arn, &["eu-west-1".into(), "us-east-1".into()]),
            json!([
                "arn:aws:kms:eu-west-1:111111111111:key/mrk-1234",
                "arn:aws:kms:us-east-1:111111111111:key/mrk-1234",
            ])
        );
        assert_eq!(key_access_resource(arn, &["us-east-1".into()]), json!(arn));
    }

    #[test]
    fn output_is_deterministic() {
        let account = account();
        let mut access = with_root();
        access
            .grants
            .insert(Capability::ReadData, vec![APP.into(), ADMIN.into()]);
        let f = facts(&account, &access);
        assert_eq!(build(&f).to_json(), build(&f).to_json());
    }

    #[test]
    fn sids_are_alphanumeric() {
        assert_eq!(pascal("administer-resource"), "AdministerResource");
        assert_eq!(pascal("s3"), "S3");
    }
}
