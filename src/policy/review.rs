//! Access review: who gains and who loses what when a key's policy changes, from one policy
//! document to another (the one in state to the one orch will write, or the one in state to the
//! one AWS holds now). Compared in normal form ([`super::semantic`]), so a reordered or
//! reformatted policy changes nothing; told by principal, with the capabilities a principal
//! gains or loses whole named as such and the other actions listed.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use super::actions::actions;
use super::semantic::{
    describe_condition, Effect, Name, Permissions, Target, Tuple, What, Who, KMS_ACTIONS,
};
use crate::config::{Capability, KeySpec, KeyUsage};

/// What the capabilities of a key mean: its spec, usage and whether it is multi-Region.
#[derive(Clone, Copy, Debug)]
pub struct KeyShape {
    pub spec: KeySpec,
    pub usage: KeyUsage,
    pub multi_region: bool,
    /// `aws`, `aws-us-gov`, `aws-cn`: the root ARN a bare account id stands for.
    pub partition: &'static str,
}

/// One principal's change: what it gains (or loses) under one effect, resource and condition.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Access {
    /// `Allow` or `Deny`: losing a Deny is gaining, in effect.
    pub effect: &'static str,
    pub principal: String,
    /// Capabilities whose every action on this key changes.
    pub capabilities: Vec<String>,
    /// The actions no capability above covers.
    pub actions: Vec<String>,
    /// The resource, when it is not the key itself (`*`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on: Option<String>,
    /// The condition, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// The principal is an IAM unique id (`AROA...`, `AIDA...`): AWS writes that in place of a
    /// role or user deleted since the policy named it, and no one can be that principal again.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub unresolved: bool,
}

impl Access {
    /// `arn:...:role/app: read-data, kms:Decrypt (when ...)`.
    pub fn words(&self) -> String {
        let mut what: Vec<&str> = self.capabilities.iter().map(String::as_str).collect();
        what.extend(self.actions.iter().map(String::as_str));
        let mut line = format!("{}: {}", self.principal, what.join(", "));
        if self.effect == "Deny" {
            line = format!("denied to {line}");
        }
        if let Some(on) = &self.on {
            line.push_str(&format!(" on {on}"));
        }
        if let Some(when) = &self.when {
            line.push_str(&format!(" when {when}"));
        }
        if self.unresolved {
            line.push_str(
                " (an unresolvable IAM unique id: the role or user it named was deleted)",
            );
        }
        line
    }
}

/// What changes between two policies of one key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Review {
    pub gained: Vec<Access>,
    pub lost: Vec<Access>,
}

impl Review {
    pub fn is_empty(&self) -> bool {
        self.gained.is_empty() && self.lost.is_empty()
    }
}

/// The review of a key's policy going from `before` to `after` (JSON text; `None`: no policy,
/// the key not there yet or gone). An Err says which document is not a policy.
pub fn review(
    before: Option<&str>,
    after: Option<&str>,
    shape: KeyShape,
) -> Result<Review, String> {
    let read = |text: Option<&str>, which: &str| -> Result<Option<Permissions>, String> {
        let Some(text) = text else { return Ok(None) };
        let value: Value = serde_json::from_str(text)
            .map_err(|e| format!("the {which} policy is not JSON: {e}"))?;
        Permissions::of(&value, shape.partition)
            .map(Some)
            .map_err(|e| format!("the {which} policy is not a policy document: {e}"))
    };
    let before = read(before, "old")?;
    let after = read(after, "new")?;
    let empty = Permissions::of(&serde_json::json!({"Statement": []}), shape.partition)
        .expect("an empty document is a policy");
    let diff = before
        .as_ref()
        .unwrap_or(&empty)
        .diff(after.as_ref().unwrap_or(&empty));
    Ok(Review {
        gained: grouped(&diff.gained, shape),
        lost: grouped(&diff.lost, shape),
    })
}

/// Tuples by effect, principal, resource and condition, their actions named by capability.
fn grouped(tuples: &BTreeSet<Tuple>, shape: KeyShape) -> Vec<Access> {
    type Head<'t> = (
        &'t Effect,
        &'t Who,
        &'t Target,
        &'t BTreeMap<String, BTreeMap<Name, BTreeSet<String>>>,
    );
    let mut groups: BTreeMap<Head, BTreeSet<String>> = BTreeMap::new();
    for t in tuples {
        let action = match &t.what {
            What::Action(a) => a.as_str().to_string(),
            What::NotAction(set) => {
                let names: Vec<&str> = set.iter().map(Name::as_str).collect();
                format!("every action but {}", names.join(", "))
            }
        };
        groups
            .entry((&t.effect, &t.who, &t.target, &t.condition))
            .or_default()
            .insert(action);
    }
    groups
        .into_iter()
        .map(|((effect, who, target, condition), actions)| {
            let (capabilities, rest) = named(&actions, shape);
            let principal = who.to_string();
            Access {
                effect: match effect {
                    Effect::Allow => "Allow",
                    Effect::Deny => "Deny",
                },
                unresolved: is_unique_id(&principal),
                principal,
                capabilities,
                actions: rest,
                on: match target {
                    Target::Resource(r) if r == "*" => None,
                    Target::Resource(r) => Some(r.clone()),
                    Target::NotResource(set) => Some(format!(
                        "everything but {}",
                        set.iter().cloned().collect::<Vec<_>>().join(", ")
                    )),
                },
                when: (!condition.is_empty()).then(|| describe_condition(condition)),
            }
        })
        .collect()
}

/// The capabilities `actions` holds whole (largest first, one already covered by those named
/// not named again), and the actions left over.
fn named(actions: &BTreeSet<String>, shape: KeyShape) -> (Vec<String>, Vec<String>) {
    let folded: BTreeSet<String> = actions.iter().map(|a| a.to_ascii_lowercase()).collect();
    if KMS_ACTIONS
        .iter()
        .all(|a| folded.contains(&a.to_ascii_lowercase()))
    {
        return (vec!["every KMS action (kms:*)".to_string()], Vec::new());
    }
    let mut caps: Vec<(Capability, Vec<&str>)> = Capability::ALL
        .into_iter()
        .map(|c| {
            (
                c,
                self::actions(c, shape.spec, shape.usage, shape.multi_region),
            )
        })
        .filter(|(_, a)| !a.is_empty())
        .collect();
    caps.sort_by_key(|(_, a)| std::cmp::Reverse(a.len()));
    let mut covered: BTreeSet<String> = BTreeSet::new();
    let mut names = Vec::new();
    for (cap, acts) in caps {
        let acts: BTreeSet<String> = acts.iter().map(|a| a.to_ascii_lowercase()).collect();
        if acts.is_subset(&folded) && !acts.is_subset(&covered) {
            names.push(cap.name().to_string());
            covered.extend(acts);
        }
    }
    let rest = actions
        .iter()
        .filter(|a| !covered.contains(&a.to_ascii_lowercase()))
        .cloned()
        .collect();
    (names, rest)
}

/// `AROA...` (role), `AIDA...` (user) and the other IAM unique-id prefixes.
fn is_unique_id(principal: &str) -> bool {
    const PREFIXES: [&str; 6] = ["AROA", "AIDA", "AGPA", "AIPA", "ANPA", "ANVA"];
    PREFIXES.iter().any(|p| principal.starts_with(p))
        && principal.len() >= 16
        && principal
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const APP: &str = "arn:aws:iam::111111111111:role/app";
    const ADMIN: &str = "arn:aws:iam::111111111111:role/admin";

    fn shape() -> KeyShape {
        KeyShape {
            spec: KeySpec::SymmetricDefault,
            usage: KeyUsage::EncryptDecrypt,
            multi_region: false,
            partition: "aws",
        }
    }

    fn policy(statements: Value) -> String {
        json!({"Version": "2012-10-17", "Statement": statements}).to_string()
    }

    fn allow(principal: &str, actions: Value) -> Value {
        json!({"Effect": "Allow", "Principal": {"AWS": principal}, "Action": actions, "Resource": "*"})
    }

    #[test]
    fn a_reader_added_is_named_by_capability() {
        let before = policy(json!([allow(ADMIN, json!("kms:*"))]));
        let after = policy(json!([
            allow(ADMIN, json!("kms:*")),
            allow(
                APP,
                json!(["kms:Decrypt", "kms:ReEncryptFrom", "kms:DescribeKey"])
            )
        ]));
        let r = review(Some(&before), Some(&after), shape()).unwrap();
        assert!(r.lost.is_empty());
        assert_eq!(r.gained.len(), 1);
        assert_eq!(r.gained[0].capabilities, vec!["read-data"]);
        assert_eq!(r.gained[0].actions, vec!["kms:DescribeKey"]);
        assert_eq!(
            r.gained[0].words(),
            format!("{APP}: read-data, kms:DescribeKey")
        );
    }

    #[test]
    fn reordering_and_reformatting_change_nothing() {
        let a = policy(json!([
            allow(APP, json!(["kms:Decrypt", "kms:Encrypt"])),
            allow(ADMIN, json!("kms:*"))
        ]));
        let b = policy(json!([
            allow(ADMIN, json!(["kms:*"])),
            allow(APP, json!(["kms:Encrypt", "kms:Decrypt"]))
        ]));
        assert!(review(Some(&a), Some(&b), shape()).unwrap().is_empty());
    }

    #[test]
    fn a_removed_principal_and_a_deleted_role_are_losses_and_gains() {
        let before = policy(json!([allow(APP, json!(["kms:Decrypt"]))]));
        let after = policy(json!([allow(
            "AROAEXAMPLEEXAMPLE12",
            json!(["kms:Decrypt"])
        )]));
        let r = review(Some(&before), Some(&after), shape()).unwrap();
        assert_eq!(r.lost[0].principal, APP);
        assert!(r.gained[0].unresolved, "{:?}", r.gained);
        assert!(r.gained[0].words().contains("unresolvable"));
    }

    #[test]
    fn a_new_key_gains_everything_and_conditions_are_told() {
        let mut s = allow(APP, json!("kms:Decrypt"));
        s["Condition"] = json!({"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}});
        let r = review(None, Some(&policy(json!([s]))), shape()).unwrap();
        assert_eq!(
            r.gained[0].when.as_deref(),
            Some("StringEquals kms:ViaService = s3.us-east-1.amazonaws.com")
        );
        assert!(r.lost.is_empty());
    }

    #[test]
    fn a_policy_that_is_not_json_is_an_error_naming_which() {
        let e = review(Some("{not json"), Some(&policy(json!([]))), shape()).unwrap_err();
        assert!(e.starts_with("the old policy is not JSON"), "{e}");
    }
}
