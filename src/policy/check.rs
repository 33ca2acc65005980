//! The checks of a key's policy before terraform sees it: the [`Problem`]s that stop a run
//! (over AWS's size limit, nobody left to change the policy) and the warnings that do not.

use std::collections::BTreeSet;

use serde_json::Value;

use super::build::build;
use super::facts::KeyFacts;
use super::json::{KeyPolicy, Statement};
use crate::config::Capability;
use crate::diag::Span;

/// AWS's limit on a key policy document.
pub const MAX_POLICY_BYTES: usize = 32 * 1024;

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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::config::Access;
    use crate::policy::fixtures::{account, facts, with_root, ADMIN, APP};

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
}
