//! The key policy engine: from a key's access model (capabilities, services, external accounts)
//! to a least-privilege key policy, checked before any terraform call. The action set of each
//! capability depends on the key's spec and usage. Output is deterministic: statements in a fixed
//! order, principals and actions sorted, stable Sids, so plans never show a spurious policy diff.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::{json, Value};

use crate::config::{Access, Account, Capability, Fleet, KeySpec, KeyUsage, Node, NodeKind};

/// AWS's limit on a key policy document.
pub const MAX_POLICY_BYTES: usize = 32 * 1024;

/// What the policy of one key (or replica) is computed from.
pub struct KeyFacts<'a> {
    pub account: &'a Account,
    /// Every region the key is in: its own, and for a multi-region key those of the primary and
    /// all replicas. A key family shares one policy, so `kms:ViaService` names them all.
    pub regions: Vec<String>,
    pub spec: KeySpec,
    pub usage: KeyUsage,
    pub multi_region: bool,
    pub access: &'a Access,
    pub bypass_lockout_check: bool,
    pub policy_override: Option<&'a str>,
    /// A replica: it shares its primary's access model, so the primary's lockout verdict
    /// covers it.
    pub replica: bool,
}

impl<'a> KeyFacts<'a> {
    /// The facts of a key or replica node; `None` for consumers.
    pub fn of(fleet: &'a Fleet, node: &'a Node) -> Option<KeyFacts<'a>> {
        let account = fleet.account_of(node);
        let family = |primary: &Node| -> Vec<String> {
            let mut regions = vec![primary.address.region.clone()];
            if let NodeKind::Key(k) = &primary.kind {
                regions.extend(k.replica_regions.iter().cloned());
            }
            regions.sort();
            regions
        };
        match &node.kind {
            NodeKind::Key(k) => Some(KeyFacts {
                account,
                regions: family(node),
                spec: k.spec,
                usage: k.usage,
                multi_region: k.multi_region,
                access: &k.access,
                bypass_lockout_check: k.bypass_policy_lockout_safety_check,
                policy_override: k.policy_override.as_deref(),
                replica: false,
            }),
            NodeKind::Replica(r) => Some(KeyFacts {
                account,
                regions: fleet
                    .node(&r.primary.value)
                    .map_or_else(|| vec![node.address.region.clone()], family),
                spec: r.spec,
                usage: r.usage,
                multi_region: true,
                access: &r.access,
                bypass_lockout_check: r.bypass_policy_lockout_safety_check,
                policy_override: r.policy_override.as_deref(),
                replica: true,
            }),
            _ => None,
        }
    }
}

/// The KMS actions a capability stands for on a key of this spec and usage.
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
/// users get them only for grants to AWS resources.
const GRANT_ACTIONS: [&str; 3] = ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"];

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Statement {
    pub sid: String,
    pub effect: &'static str,
    pub principal: Value,
    pub action: Vec<String>,
    pub resource: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition: Option<Value>,
}

/// A generated policy, or the user's override.
pub enum KeyPolicy {
    Generated(Vec<Statement>),
    Override(String),
}

impl KeyPolicy {
    pub fn to_json(&self) -> String {
        match self {
            KeyPolicy::Generated(statements) => json!({
                "Version": "2012-10-17",
                "Statement": statements,
            })
            .to_string(),
            KeyPolicy::Override(text) => text.clone(),
        }
    }

    pub fn to_pretty_json(&self) -> String {
        let value: Value = serde_json::from_str(&self.to_json()).expect("policy JSON is valid");
        serde_json::to_string_pretty(&value).expect("a JSON value serializes")
    }
}

/// Builds the policy of a key from its facts.
pub fn build(facts: &KeyFacts) -> KeyPolicy {
    if let Some(text) = facts.policy_override {
        return KeyPolicy::Override(text.to_string());
    }
    let account_root = format!("arn:aws:iam::{}:root", facts.account.account_id);
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
            condition: is_data(cap)
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
    if !data_users.is_empty()
        && facts.usage == KeyUsage::EncryptDecrypt
        && facts.spec == KeySpec::SymmetricDefault
    {
        let users: Vec<String> = data_users.into_iter().cloned().collect();
        statements.push(Statement {
            sid: "GrantsForAwsResources".into(),
            effect: "Allow",
            principal: principal_value(&users),
            action: owned(GRANT_ACTIONS.to_vec()),
            resource: "*",
            condition: Some(json!({"Bool": {"kms:GrantIsForAWSResource": "true"}})),
        });
    }
    for service in &facts.access.services {
        let mut acts: Vec<&str> = service
            .capabilities
            .iter()
            .flat_map(|c| actions(*c, facts.spec, facts.usage, facts.multi_region))
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
        statements.push(Statement {
            sid: format!("ViaService{}", pascal(&service.service)),
            effect: "Allow",
            principal: json!({"AWS": "*"}),
            action: owned(acts),
            resource: "*",
            condition: Some(json!({"StringEquals": pinned})),
        });
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
                    .filter(|c| !(split && is_data(*c)))
                    .collect(),
            ),
            (
                "Data",
                caps.iter()
                    .copied()
                    .filter(|c| split && is_data(*c))
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
                principal: json!({"AWS": format!("arn:aws:iam::{account}:root")}),
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

/// What is wrong with a key policy, found before terraform sees it.
#[derive(Debug)]
pub enum Problem {
    /// Over AWS's size limit; the size in bytes.
    TooLarge(usize),
    /// No principal can call `kms:PutKeyPolicy`.
    Lockout,
    /// The role orch deploys with (the account's `role_arn`) cannot call `kms:PutKeyPolicy`:
    /// AWS refuses to create such a key unless the lockout check is bypassed.
    DeployerLockout(String),
}

impl Problem {
    pub fn message(&self) -> String {
        match self {
            Problem::TooLarge(size) => format!(
                "the key policy is {size} bytes, over AWS's limit of {MAX_POLICY_BYTES}"
            ),
            Problem::Lockout => "no principal can change this key's policy (kms:PutKeyPolicy): the key would be unmanageable".into(),
            Problem::DeployerLockout(role) => format!(
                "the role orch deploys with ({role}) cannot change this key's policy (kms:PutKeyPolicy): AWS refuses such a policy, and the key would be unmanageable"
            ),
        }
    }

    pub fn help(&self) -> &'static str {
        match self {
            Problem::TooLarge(_) => "merge principals into fewer roles, or move access to grants",
            Problem::Lockout => "keep `root_access: true`, name an administer-resource principal, or set `bypass_policy_lockout_safety_check: true` if this is really meant",
            Problem::DeployerLockout(_) => "keep `root_access: true`, add the account's role_arn to administer-resource, or set `bypass_policy_lockout_safety_check: true` if this is really meant",
        }
    }
}

/// Checks a policy before terraform sees it. The size of every policy is checked; lockout only
/// on primaries (see [`KeyFacts::replica`]).
pub fn check(facts: &KeyFacts, policy: &KeyPolicy) -> Vec<Problem> {
    let mut problems = Vec::new();
    let size = policy.to_json().len();
    if size > MAX_POLICY_BYTES {
        problems.push(Problem::TooLarge(size));
    }
    if let KeyPolicy::Generated(statements) = policy {
        let putters: Vec<&Statement> = statements
            .iter()
            .filter(|s| {
                s.action
                    .iter()
                    .any(|a| a == "kms:*" || a == "kms:PutKeyPolicy")
            })
            .collect();
        if !facts.bypass_lockout_check && !facts.replica {
            // AWS checks the caller itself keeps PutKeyPolicy; with the root statement, IAM can
            // grant it, so only without it must the deploying role be named.
            let deployer = facts
                .account
                .role_arn
                .as_deref()
                .filter(|_| !facts.access.root_access);
            match deployer {
                _ if putters.is_empty() => problems.push(Problem::Lockout),
                Some(role) if !putters.iter().any(|s| names(&s.principal, role)) => {
                    problems.push(Problem::DeployerLockout(role.to_string()))
                }
                _ => {}
            }
        }
    }
    problems
}

/// Findings that do not stop a run unless `--strict`: (what, how to fix).
pub fn warnings(facts: &KeyFacts) -> Vec<(String, String)> {
    let admins = facts.access.grants.get(&Capability::AdministerResource);
    let readers = facts.access.grants.get(&Capability::ReadData);
    let (Some(admins), Some(readers)) = (admins, readers) else {
        return Vec::new();
    };
    admins
        .iter()
        .filter(|a| readers.contains(a))
        .map(|a| {
            (
                format!("{a} can both administer the key and read data with it (separation of duties)"),
                "give administration and data access to different principals; --strict makes this an error".into(),
            )
        })
        .collect()
}

/// Who can do what, in plain words, one line per principal.
pub fn explain(facts: &KeyFacts, policy: &KeyPolicy) -> String {
    let mut lines: Vec<(String, Vec<String>)> = Vec::new();
    let mut add = |who: String, what: Vec<String>| match lines.iter_mut().find(|(w, _)| *w == who) {
        Some((_, existing)) => existing.extend(what),
        None => lines.push((who, what)),
    };
    if let KeyPolicy::Override(_) = policy {
        return "this key's policy is a `policy:` override written by hand; orch does not interpret it\n".into();
    }
    if facts.access.root_access {
        add(
            format!("account root of {}", facts.account.account_id),
            vec!["everything, through IAM policies of that account (lockout safety)".into()],
        );
    }
    for cap in Capability::ALL {
        for principal in facts.access.grants.get(&cap).into_iter().flatten() {
            add(short_principal(principal), words(cap, facts));
        }
    }
    let symmetric =
        facts.spec == KeySpec::SymmetricDefault && facts.usage == KeyUsage::EncryptDecrypt;
    for principal in [Capability::ReadData, Capability::WriteData]
        .iter()
        .filter_map(|c| facts.access.grants.get(c))
        .flatten()
        .filter(|_| symmetric)
    {
        add(
            short_principal(principal),
            vec!["create grants for AWS services that work on its behalf".into()],
        );
    }
    for service in &facts.access.services {
        let what = service
            .capabilities
            .iter()
            .flat_map(|c| words(*c, facts))
            .collect();
        add(
            format!(
                "AWS {} in {} on behalf of {}",
                service.service,
                facts.regions.join(", "),
                facts.account.account_id
            ),
            what,
        );
    }
    for (account, caps) in &facts.access.external_accounts {
        let what = caps.iter().flat_map(|c| words(*c, facts)).collect();
        add(
            format!("account {account} (roles its key-access policy names)"),
            what,
        );
    }
    let mut out = String::new();
    if !facts.access.encryption_context.is_empty() {
        let context: Vec<String> = facts
            .access
            .encryption_context
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        lines.push((
            "every data operation by a principal or another account".into(),
            vec![format!(
                "must carry the encryption context {}",
                context.join(", ")
            )],
        ));
    }
    for (who, mut what) in lines {
        what.dedup();
        out.push_str(&format!("{who}: {}\n", what.join(", ")));
    }
    out
}

/// `arn:aws:iam::111111111111:role/app` -> `role/app in 111111111111`.
fn short_principal(arn: &str) -> String {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    match parts.as_slice() {
        [_, _, _, _, account, "root"] => format!("account root of {account}"),
        [_, _, _, _, account, resource] => format!("{resource} in {account}"),
        _ => arn.to_string(),
    }
}

fn words(cap: Capability, facts: &KeyFacts) -> Vec<String> {
    let w: &[&str] = match (cap, facts.usage) {
        (Capability::AdministerResource, _) if facts.spec == KeySpec::SymmetricDefault => {
            &["administer the key (policy, aliases, tags, enable and disable, rotation)"]
        }
        (Capability::AdministerResource, _) => {
            &["administer the key (policy, aliases, tags, enable and disable)"]
        }
        (Capability::ReadConfig, _) => &["read its configuration"],
        (Capability::ReadData, KeyUsage::EncryptDecrypt)
            if facts.spec == KeySpec::SymmetricDefault =>
        {
            &["decrypt", "re-encrypt from this key"]
        }
        (Capability::ReadData, KeyUsage::EncryptDecrypt) => &["decrypt"],
        (Capability::ReadData, KeyUsage::SignVerify) => {
            &["verify signatures", "get the public key"]
        }
        (Capability::ReadData, KeyUsage::GenerateVerifyMac) => &["verify MACs"],
        (Capability::ReadData, KeyUsage::KeyAgreement) => &["get the public key"],
        (Capability::WriteData, KeyUsage::EncryptDecrypt)
            if facts.spec == KeySpec::SymmetricDefault =>
        {
            &["encrypt", "generate data keys", "re-encrypt to this key"]
        }
        (Capability::WriteData, KeyUsage::EncryptDecrypt) => &["encrypt"],
        (Capability::WriteData, KeyUsage::SignVerify) => &["sign"],
        (Capability::WriteData, KeyUsage::GenerateVerifyMac) => &["generate MACs"],
        (Capability::WriteData, KeyUsage::KeyAgreement) => &["derive shared secrets"],
        (Capability::DeleteData, _) => &["schedule the key's deletion"],
    };
    w.iter().map(|s| s.to_string()).collect()
}

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

/// Whether a statement's principal is, or lists, `arn`.
fn names(principal: &Value, arn: &str) -> bool {
    match &principal["AWS"] {
        Value::String(one) => one == arn,
        Value::Array(many) => many.iter().any(|p| p == arn),
        _ => false,
    }
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

/// Capabilities that touch data, which an encryption-context condition applies to.
fn is_data(cap: Capability) -> bool {
    matches!(cap, Capability::ReadData | Capability::WriteData)
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

/// `administer-resource` -> `AdministerResource`, for Sids (letters and digits only).
fn pascal(name: &str) -> String {
    name.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut chars = w.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
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

    fn account() -> Account {
        Account {
            name: "prod".into(),
            account_id: "111111111111".into(),
            environment: "prod".into(),
            role_arn: None,
            regions: vec!["us-east-1".into()],
            id_span: crate::diag::Span::new(0, 1, 1),
            regions_span: crate::diag::Span::new(0, 1, 1),
        }
    }

    fn facts<'a>(account: &'a Account, access: &'a Access) -> KeyFacts<'a> {
        KeyFacts {
            account,
            regions: vec!["eu-west-1".into(), "us-east-1".into()],
            spec: KeySpec::SymmetricDefault,
            usage: KeyUsage::EncryptDecrypt,
            multi_region: true,
            access,
            bypass_lockout_check: false,
            policy_override: None,
            replica: false,
        }
    }

    fn statements(policy: &KeyPolicy) -> &[Statement] {
        match policy {
            KeyPolicy::Generated(s) => s,
            KeyPolicy::Override(_) => panic!("generated policy expected"),
        }
    }

    const APP: &str = "arn:aws:iam::111111111111:role/app";
    const ADMIN: &str = "arn:aws:iam::111111111111:role/admin";

    #[test]
    fn lockout_is_caught_unless_bypassed_or_an_admin_remains() {
        let account = account();
        let mut access = Access::default();
        access.grants.insert(Capability::ReadData, vec![APP.into()]);
        let f = facts(&account, &access);
        assert!(matches!(check(&f, &build(&f))[..], [Problem::Lockout]));
        let f = KeyFacts {
            bypass_lockout_check: true,
            ..facts(&account, &access)
        };
        assert!(check(&f, &build(&f)).is_empty());
        access
            .grants
            .insert(Capability::AdministerResource, vec![ADMIN.into()]);
        let f = facts(&account, &access);
        assert!(check(&f, &build(&f)).is_empty());
    }

    #[test]
    fn oversized_policies_are_caught() {
        let account = account();
        let mut access = Access {
            root_access: true,
            ..Access::default()
        };
        let many: Vec<String> = (0..600)
            .map(|i| format!("arn:aws:iam::111111111111:role/application-role-{i:04}"))
            .collect();
        access.grants.insert(Capability::ReadData, many);
        let f = facts(&account, &access);
        assert!(
            matches!(check(&f, &build(&f))[..], [Problem::TooLarge(n)] if n > MAX_POLICY_BYTES)
        );
    }

    #[test]
    fn admins_who_decrypt_are_warned_about() {
        let account = account();
        let mut access = Access {
            root_access: true,
            ..Access::default()
        };
        access
            .grants
            .insert(Capability::AdministerResource, vec![ADMIN.into()]);
        access
            .grants
            .insert(Capability::ReadData, vec![ADMIN.into(), APP.into()]);
        let warnings = warnings(&facts(&account, &access));
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].0.contains("role/admin"));
    }

    #[test]
    fn services_are_pinned_to_the_account_and_every_region_of_the_key() {
        let account = account();
        let mut access = Access {
            root_access: true,
            ..Access::default()
        };
        access.services.push(crate::config::ServiceAccess {
            service: "s3".into(),
            capabilities: vec![Capability::ReadData],
        });
        access
            .encryption_context
            .insert("Department".into(), "finance".into());
        let f = facts(&account, &access);
        let policy = build(&f);
        let via = statements(&policy)
            .iter()
            .find(|s| s.sid == "ViaServiceS3")
            .unwrap();
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
    fn data_statements_carry_the_encryption_context_and_config_statements_do_not() {
        let account = account();
        let mut access = Access {
            root_access: true,
            ..Access::default()
        };
        access.grants.insert(Capability::ReadData, vec![APP.into()]);
        access
            .grants
            .insert(Capability::ReadConfig, vec![APP.into()]);
        access.external_accounts.insert(
            "222222222222".into(),
            vec![Capability::ReadConfig, Capability::ReadData],
        );
        access
            .encryption_context
            .insert("Department".into(), "finance".into());
        let f = facts(&account, &access);
        let policy = build(&f);
        let by_sid = |sid: &str| {
            statements(&policy)
                .iter()
                .find(|s| s.sid == sid)
                .unwrap_or_else(|| panic!("{sid}"))
        };
        assert!(by_sid("ReadData").condition.is_some());
        assert!(by_sid("ReadConfig").condition.is_none());
        assert!(by_sid("ExternalAccount222222222222").condition.is_none());
        assert_eq!(
            by_sid("ExternalAccount222222222222Data").action,
            vec!["kms:Decrypt", "kms:ReEncryptFrom"]
        );
        assert_eq!(
            by_sid("ExternalAccount222222222222").action,
            vec![
                "kms:DescribeKey",
                "kms:GetKeyRotationStatus",
                "kms:ListGrants"
            ],
            "only what works across accounts"
        );
    }

    #[test]
    fn without_the_root_statement_the_deploying_role_must_keep_put_key_policy() {
        let mut account = account();
        account.role_arn = Some("arn:aws:iam::111111111111:role/orch-deployer".into());
        let mut access = Access::default();
        access
            .grants
            .insert(Capability::AdministerResource, vec![ADMIN.into()]);
        let f = facts(&account, &access);
        assert!(
            matches!(&check(&f, &build(&f))[..], [Problem::DeployerLockout(role)] if role.ends_with("orch-deployer"))
        );
        access.grants.insert(
            Capability::AdministerResource,
            vec![
                ADMIN.into(),
                "arn:aws:iam::111111111111:role/orch-deployer".into(),
            ],
        );
        let f = facts(&account, &access);
        assert!(check(&f, &build(&f)).is_empty());
    }

    #[test]
    fn output_is_deterministic() {
        let account = account();
        let mut access = Access {
            root_access: true,
            ..Access::default()
        };
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
