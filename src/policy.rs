//! The key policy engine: from a key's access model (capabilities, services, external accounts)
//! to a least-privilege key policy, checked before any terraform call. The action set of each
//! capability depends on the key's spec and usage. Output is deterministic: statements in a fixed
//! order, principals and actions sorted, stable Sids, so plans never show a spurious policy diff.

use std::collections::{BTreeSet, HashMap};

use serde::Serialize;
use serde_json::{json, Value};

use crate::config::{
    partition_of, pascal, Access, Account, Capability, Fleet, KeySpec, KeyUsage, Node, NodeKind,
};
use crate::diag::Span;

/// AWS's limit on a key policy document.
pub const MAX_POLICY_BYTES: usize = 32 * 1024;

/// What the policy of one key (or replica) is computed from.
pub struct KeyFacts<'a> {
    pub account: &'a Account,
    /// The partition of the key's region (`aws`, `aws-us-gov`, `aws-cn`), for the ARNs it writes.
    pub partition: &'static str,
    /// Every region the key is in: its own, and for a multi-region key those of the primary and
    /// all replicas. A key family shares one policy, so `kms:ViaService` names them all.
    pub regions: Vec<String>,
    pub spec: KeySpec,
    pub usage: KeyUsage,
    pub multi_region: bool,
    pub access: &'a Access,
    pub bypass_lockout_check: bool,
    /// A `policy:` override and where `policy:` is written.
    pub policy_override: Option<(&'a str, Span)>,
    /// A replica: it shares its primary's policy, so the primary's checks cover it.
    pub replica: bool,
}

impl<'a> KeyFacts<'a> {
    /// The facts of a key or replica node; `None` for consumers.
    pub fn of(fleet: &'a Fleet, node: &'a Node) -> Option<KeyFacts<'a>> {
        let account = fleet.account_of(node);
        let partition = partition_of(&node.address.region);
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
                partition,
                regions: family(node),
                spec: k.spec,
                usage: k.usage,
                multi_region: k.multi_region,
                access: &k.access,
                bypass_lockout_check: k.bypass_policy_lockout_safety_check,
                policy_override: k
                    .policy_override
                    .as_ref()
                    .map(|p| (p.value.as_str(), p.span)),
                replica: false,
            }),
            NodeKind::Replica(r) => Some(KeyFacts {
                account,
                partition,
                regions: fleet
                    .node(&r.primary.value)
                    .map_or_else(|| vec![node.address.region.clone()], family),
                spec: r.spec,
                usage: r.usage,
                multi_region: true,
                access: &r.access,
                bypass_lockout_check: r.bypass_policy_lockout_safety_check,
                policy_override: r
                    .policy_override
                    .as_ref()
                    .map(|p| (p.value.as_str(), p.span)),
                replica: true,
            }),
            _ => None,
        }
    }

    fn symmetric_encryption(&self) -> bool {
        self.spec == KeySpec::SymmetricDefault && self.usage == KeyUsage::EncryptDecrypt
    }
}

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
const GRANT_ACTIONS: [&str; 3] = ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"];

/// What a service acting through `kms:ViaService` needs besides its data actions, as AWS's own
/// key policies for EBS (aws/ebs) and RDS (aws/rds) give it: to describe the key, and to create
/// and list the grants that attach the key to a volume or database. Revoking grants is not
/// among them.
const SERVICE_DESCRIBE: &str = "kms:DescribeKey";
const SERVICE_GRANT_ACTIONS: [&str; 2] = ["kms:CreateGrant", "kms:ListGrants"];

/// The condition under which grant actions are allowed at all: only when an AWS service asks.
fn grant_is_for_aws_resource() -> Value {
    json!({"kms:GrantIsForAWSResource": "true"})
}

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

/// What is wrong with a key policy, found before terraform sees it.
#[derive(Debug)]
pub enum Problem {
    /// Over AWS's size limit. `size` is exact, or when `estimated` a lower bound found before
    /// the policy was built; `at` is the `policy:` override or the list that adds the most.
    TooLarge {
        size: usize,
        estimated: bool,
        at: Option<Span>,
        overridden: bool,
    },
    /// No principal can call `kms:PutKeyPolicy`.
    Lockout,
    /// The role orch deploys with (the account's `role_arn`) cannot call `kms:PutKeyPolicy`:
    /// AWS refuses to create such a key unless the lockout check is bypassed.
    DeployerLockout(String),
}

impl Problem {
    pub fn message(&self) -> String {
        match self {
            Problem::TooLarge { size, estimated: false, .. } => format!(
                "the key policy is {size} bytes, over AWS's limit of {MAX_POLICY_BYTES}"
            ),
            Problem::TooLarge { size, estimated: true, .. } => format!(
                "the key policy would be at least {size} bytes, over AWS's limit of {MAX_POLICY_BYTES}"
            ),
            Problem::Lockout => "no principal can change this key's policy (kms:PutKeyPolicy): the key would be unmanageable".into(),
            Problem::DeployerLockout(role) => format!(
                "the role orch deploys with ({role}) cannot change this key's policy (kms:PutKeyPolicy): AWS refuses such a policy, and the key would be unmanageable"
            ),
        }
    }

    pub fn help(&self) -> &'static str {
        match self {
            Problem::TooLarge { overridden: true, .. } => "shorten the `policy:` document, or drop it to let orch compute the policy",
            Problem::TooLarge { overridden: false, .. } => "merge principals into fewer roles, or move access to grants",
            Problem::Lockout => "keep `root_access: true`, name an administer-resource principal, or set `bypass_policy_lockout_safety_check: true` if this is really meant",
            Problem::DeployerLockout(_) => "keep `root_access: true`, add the account's role_arn to administer-resource, or set `bypass_policy_lockout_safety_check: true` if this is really meant",
        }
    }
}

/// Checks the policy of a key before terraform sees it. A replica's policy is its primary's
/// (one access model, one set of regions), so only primaries are checked: one mistake, one
/// error.
pub fn check(facts: &KeyFacts) -> Vec<Problem> {
    if facts.replica {
        return Vec::new();
    }
    // A list AWS would refuse anyway is refused before the policy is built from it.
    let least = minimum_size(facts);
    if least > MAX_POLICY_BYTES && facts.policy_override.is_none() {
        return vec![Problem::TooLarge {
            size: least,
            estimated: true,
            at: facts.access.largest_list.map(|(span, _)| span),
            overridden: false,
        }];
    }
    let policy = build(facts);
    let mut problems = Vec::new();
    let size = policy.to_json().len();
    if size > MAX_POLICY_BYTES {
        problems.push(Problem::TooLarge {
            size,
            estimated: false,
            at: match facts.policy_override {
                Some((_, span)) => Some(span),
                None => facts.access.largest_list.map(|(span, _)| span),
            },
            overridden: facts.policy_override.is_some(),
        });
    }
    if let KeyPolicy::Generated(statements) = &policy {
        let putters: Vec<&Statement> = statements.iter().filter(|s| keeps_control(s)).collect();
        if !facts.bypass_lockout_check {
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

/// Whether a statement surely lets someone change the key's policy: only a named principal
/// without a condition does. A statement for `*` (a service pinned by kms:ViaService) or one
/// under a condition may never apply, so it keeps nobody in control.
fn keeps_control(s: &Statement) -> bool {
    s.condition.is_none()
        && names_someone(&s.principal)
        && s.action
            .iter()
            .any(|a| a == "kms:*" || a == "kms:PutKeyPolicy")
}

/// A lower bound of the generated policy's size, in linear time: every principal is at least
/// a quoted string and a comma in the statement of each of its capabilities.
fn minimum_size(facts: &KeyFacts) -> usize {
    facts
        .access
        .grants
        .values()
        .flatten()
        .map(|p| p.len() + 3)
        .sum()
}

/// Findings that do not stop a run unless `--strict`: (what, how to fix).
pub fn warnings(facts: &KeyFacts) -> Vec<(String, String)> {
    let admins = facts.access.grants.get(&Capability::AdministerResource);
    let readers = facts.access.grants.get(&Capability::ReadData);
    let (Some(admins), Some(readers)) = (admins, readers) else {
        return Vec::new();
    };
    let readers: BTreeSet<&String> = readers.iter().collect();
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
    if let KeyPolicy::Override(_) = policy {
        return "this key's policy is a `policy:` override written by hand; orch does not interpret it\n".into();
    }
    let mut lines: Vec<(String, Vec<String>)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut add = |who: String, what: Vec<String>| match index.get(&who) {
        Some(&i) => lines[i].1.extend(what),
        None => {
            index.insert(who.clone(), lines.len());
            lines.push((who, what));
        }
    };
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
    let symmetric = facts.symmetric_encryption();
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
        let mut what: Vec<String> = service
            .capabilities
            .iter()
            .flat_map(|c| words(*c, facts))
            .collect();
        what.push("describe the key".into());
        if symmetric {
            what.push("create and list grants for the resources it encrypts".into());
        }
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
    let symmetric = facts.spec == KeySpec::SymmetricDefault;
    let w: Vec<&str> = match (cap, facts.usage) {
        (Capability::AdministerResource, _) => {
            let mut what = vec!["policy", "aliases", "tags", "enable and disable"];
            if symmetric {
                what.push("rotation");
            }
            if facts.multi_region {
                what.push("replicas and the primary region");
            }
            what.push("schedule and cancel deletion");
            return vec![format!("administer the key ({})", what.join(", "))];
        }
        (Capability::ReadConfig, _) => vec!["read its configuration"],
        (Capability::ReadData, KeyUsage::EncryptDecrypt) if symmetric => {
            vec!["decrypt", "re-encrypt from this key"]
        }
        (Capability::ReadData, KeyUsage::EncryptDecrypt) => vec!["decrypt"],
        (Capability::ReadData, KeyUsage::SignVerify) => {
            vec!["verify signatures", "get the public key"]
        }
        (Capability::ReadData, KeyUsage::GenerateVerifyMac) => vec!["verify MACs"],
        (Capability::ReadData, KeyUsage::KeyAgreement) => vec!["get the public key"],
        (Capability::WriteData, KeyUsage::EncryptDecrypt) if symmetric => {
            vec!["encrypt", "generate data keys", "re-encrypt to this key"]
        }
        (Capability::WriteData, KeyUsage::EncryptDecrypt) => vec!["encrypt"],
        (Capability::WriteData, KeyUsage::SignVerify) => vec!["sign"],
        (Capability::WriteData, KeyUsage::GenerateVerifyMac) => vec!["generate MACs"],
        (Capability::WriteData, KeyUsage::KeyAgreement) => vec!["derive shared secrets"],
        (Capability::DeleteData, _) => {
            vec!["schedule the key's deletion, which destroys all data encrypted under it"]
        }
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

/// Whether a statement's principal is, or lists, `arn`.
fn names(principal: &Value, arn: &str) -> bool {
    match &principal["AWS"] {
        Value::String(one) => one == arn,
        Value::Array(many) => many.iter().any(|p| p == arn),
        _ => false,
    }
}

/// Whether a statement's principal is named: not `*`, which stands for anyone the conditions
/// let through.
fn names_someone(principal: &Value) -> bool {
    match &principal["AWS"] {
        Value::String(one) => one != "*",
        Value::Array(many) => !many.is_empty() && many.iter().all(|p| p != "*"),
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
    use crate::config::ServiceAccess;

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

    fn account() -> Account {
        Account {
            name: "prod".into(),
            account_id: "111111111111".into(),
            environment: "prod".into(),
            role_arn: None,
            regions: vec!["us-east-1".into()],
            id_span: Span::new(0, 1, 1),
            regions_span: Span::new(0, 1, 1),
        }
    }

    fn facts<'a>(account: &'a Account, access: &'a Access) -> KeyFacts<'a> {
        KeyFacts {
            account,
            partition: "aws",
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

    fn by_sid<'p>(policy: &'p KeyPolicy, sid: &str) -> &'p Statement {
        statements(policy)
            .iter()
            .find(|s| s.sid == sid)
            .unwrap_or_else(|| panic!("no statement {sid}"))
    }

    fn with_root() -> Access {
        Access {
            root_access: true,
            ..Access::default()
        }
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

    const APP: &str = "arn:aws:iam::111111111111:role/app";
    const ADMIN: &str = "arn:aws:iam::111111111111:role/admin";

    #[test]
    fn lockout_is_caught_unless_bypassed_or_an_admin_remains() {
        let account = account();
        let mut access = Access::default();
        access.grants.insert(Capability::ReadData, vec![APP.into()]);
        let f = facts(&account, &access);
        assert!(matches!(check(&f)[..], [Problem::Lockout]));
        let f = KeyFacts {
            bypass_lockout_check: true,
            ..facts(&account, &access)
        };
        assert!(check(&f).is_empty());
        access
            .grants
            .insert(Capability::AdministerResource, vec![ADMIN.into()]);
        let f = facts(&account, &access);
        assert!(check(&f).is_empty());
    }

    #[test]
    fn only_a_named_principal_without_a_condition_keeps_control() {
        let statement = |principal: Value, condition: Option<Value>| Statement {
            sid: "S".into(),
            effect: "Allow",
            principal,
            action: vec!["kms:PutKeyPolicy".into()],
            resource: "*",
            condition,
        };
        let pinned =
            || Some(json!({"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}}));
        assert!(keeps_control(&statement(json!({"AWS": ADMIN}), None)));
        assert!(keeps_control(&statement(
            json!({"AWS": [ADMIN, APP]}),
            None
        )));
        assert!(!keeps_control(&statement(json!({"AWS": "*"}), None)));
        assert!(!keeps_control(&statement(
            json!({"AWS": [ADMIN, "*"]}),
            None
        )));
        assert!(!keeps_control(&statement(json!({"AWS": "*"}), pinned())));
        assert!(!keeps_control(&statement(json!({"AWS": ADMIN}), pinned())));
        let mut reader = statement(json!({"AWS": ADMIN}), None);
        reader.action = vec!["kms:Decrypt".into()];
        assert!(!keeps_control(&reader));
    }

    #[test]
    fn a_replica_is_covered_by_its_primary() {
        let account = account();
        let access = Access::default();
        let f = KeyFacts {
            replica: true,
            ..facts(&account, &access)
        };
        assert!(check(&f).is_empty(), "the primary reports the lockout once");
    }

    #[test]
    fn oversized_policies_are_caught_and_point_at_their_largest_list() {
        let account = account();
        let mut access = with_root();
        let list = Span::new(3, 7, 3);
        access.largest_list = Some((list, 1));
        let many: Vec<String> = (0..550)
            .map(|i| format!("arn:aws:iam::111111111111:role/application-role-{i:04}"))
            .collect();
        access.grants.insert(Capability::ReadData, many);
        let f = facts(&account, &access);
        assert!(minimum_size(&f) < MAX_POLICY_BYTES, "built, then measured");
        assert!(matches!(
            check(&f)[..],
            [Problem::TooLarge { size, estimated: false, at: Some(at), overridden: false }]
                if size > MAX_POLICY_BYTES && at == list
        ));
    }

    #[test]
    fn a_list_surely_too_large_is_refused_before_the_policy_is_built() {
        let account = account();
        let mut access = Access::default();
        let many: Vec<String> = (0..100_000)
            .map(|i| format!("arn:aws:iam::111111111111:role/r{i}"))
            .collect();
        access.grants.insert(Capability::ReadData, many);
        let f = facts(&account, &access);
        assert!(minimum_size(&f) > MAX_POLICY_BYTES);
        assert!(
            matches!(
                check(&f)[..],
                [Problem::TooLarge {
                    estimated: true,
                    ..
                }]
            ),
            "the estimate alone decides, lockout is not looked at"
        );
    }

    #[test]
    fn an_oversized_override_points_at_policy() {
        let account = account();
        let access = with_root();
        let text = format!(
            r#"{{"Version": "2012-10-17", "Id": "{}"}}"#,
            "x".repeat(40_000)
        );
        let at = Span::new(2, 9, 1);
        let f = KeyFacts {
            policy_override: Some((&text, at)),
            ..facts(&account, &access)
        };
        let problems = check(&f);
        assert!(matches!(
            problems[..],
            [Problem::TooLarge { at: Some(span), overridden: true, .. }] if span == at
        ));
        assert!(problems[0].help().contains("`policy:`"));
    }

    #[test]
    fn admins_who_decrypt_are_warned_about() {
        let account = account();
        let mut access = with_root();
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
    fn without_the_root_statement_the_deploying_role_must_keep_put_key_policy() {
        let mut account = account();
        account.role_arn = Some("arn:aws:iam::111111111111:role/orch-deployer".into());
        let mut access = Access::default();
        access
            .grants
            .insert(Capability::AdministerResource, vec![ADMIN.into()]);
        let f = facts(&account, &access);
        assert!(
            matches!(&check(&f)[..], [Problem::DeployerLockout(role)] if role.ends_with("orch-deployer"))
        );
        access.grants.insert(
            Capability::AdministerResource,
            vec![
                ADMIN.into(),
                "arn:aws:iam::111111111111:role/orch-deployer".into(),
            ],
        );
        let f = facts(&account, &access);
        assert!(check(&f).is_empty());
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

    /// The README's table of capabilities, from [`actions`] itself: what is written is what
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
    fn the_readme_table_of_capabilities_is_current() {
        for cap in Capability::ALL {
            assert_eq!(
                actions(cap, KeySpec::Rsa3072, KeyUsage::SignVerify, false),
                actions(cap, KeySpec::EccNistP256, KeyUsage::SignVerify, false),
                "the README's signing column stands for RSA and ECC alike"
            );
        }
        let readme = include_str!("../docs/capabilities.md");
        let table = capability_table();
        assert!(
            readme.contains(&table),
            "docs/capabilities.md's capability table is out of date; replace it with:\n\n{table}"
        );
    }
}
