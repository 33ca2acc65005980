//! The access review of a plan: for each key or replica of a node, who gains and who loses what,
//! from the policy in the refreshed state (the saved plan's `tfstate`) to the policy orch writes
//! for the node (`var.policy`). A destroy plan has no review: its counts say the key goes.

use serde::Serialize;
use serde_json::Value;

use super::planfile::State;
use super::written::Written;
use crate::policy::{review, KeyShape, Review};

/// The access change of one key (or replica) resource.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeyAccess {
    /// The resource within its node's module (`aws_kms_key.this`).
    pub resource: String,
    #[serde(flatten)]
    pub review: Review,
    /// What the review could not tell (a policy orch cannot read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The resources with a key policy.
const KEYS: [&str; 2] = ["aws_kms_key", "aws_kms_replica_key"];

/// The access changes of one node: each key resource its `main.tf` gives a policy, from that
/// resource's policy in `refreshed` (in module `module`; `None`: the root; absent for a key not
/// created yet) to the policy orch writes. `shape` is its key's (`None`: no key, no review).
pub fn key_access(
    refreshed: &State,
    module: Option<&str>,
    written: &Written,
    shape: Option<KeyShape>,
) -> Vec<KeyAccess> {
    let Some(shape) = shape else {
        return Vec::new();
    };
    written
        .resources
        .iter()
        .filter(|((kind, _), set)| KEYS.contains(&kind.as_str()) && set.contains("policy"))
        .filter_map(|((kind, name), _)| {
            let key = (module.map(str::to_string), kind.clone(), name.clone(), None);
            let before = refreshed
                .get(&key)
                .and_then(|a| a.get("policy"))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty());
            let resource = format!("{kind}.{name}");
            match review(before, written.policy.as_deref(), shape) {
                Ok(r) if r.is_empty() => None,
                Ok(r) => Some(KeyAccess {
                    resource,
                    review: r,
                    note: None,
                }),
                Err(e) => Some(KeyAccess {
                    resource,
                    review: Review::default(),
                    note: Some(e),
                }),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::config::{KeySpec, KeyUsage};

    fn shape() -> Option<KeyShape> {
        Some(KeyShape {
            spec: KeySpec::SymmetricDefault,
            usage: KeyUsage::EncryptDecrypt,
            multi_region: false,
            partition: "aws",
        })
    }

    const ROOT: &str = r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::1:root"},"Action":"kms:*","Resource":"*"}]}"#;
    const APP: &str = r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::1:root"},"Action":"kms:*","Resource":"*"},{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::1:role/app"},"Action":["kms:Decrypt","kms:ReEncryptFrom"],"Resource":"*"}]}"#;

    /// A key node's module in `module`, writing `policy`.
    fn written(policy: &str) -> Written {
        Written::of(&[
            (
                "main.tf",
                "resource \"aws_kms_key\" \"this\" {\n  policy = var.policy\n}\n".to_string(),
            ),
            (
                "terraform.tfvars.json",
                json!({ "policy": policy }).to_string(),
            ),
        ])
    }

    fn state(module: Option<&str>, policy: &str) -> State {
        let mut s = State::default();
        s.instances.insert(
            (
                module.map(str::to_string),
                "aws_kms_key".into(),
                "this".into(),
                None,
            ),
            json!({ "policy": policy }),
        );
        s
    }

    fn words(access: &[KeyAccess]) -> Vec<String> {
        access
            .iter()
            .flat_map(|a| {
                let gained = a.review.gained.iter().map(|g| format!("+ {}", g.words()));
                let lost = a.review.lost.iter().map(|l| format!("- {}", l.words()));
                gained.chain(lost).collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn from_the_refreshed_state_to_the_policy_orch_writes() {
        let access = key_access(
            &state(Some("app"), ROOT),
            Some("app"),
            &written(APP),
            shape(),
        );
        assert_eq!(access[0].resource, "aws_kms_key.this");
        assert_eq!(words(&access), vec!["+ arn:aws:iam::1:role/app: read-data"]);
        let back = key_access(&state(None, APP), None, &written(ROOT), shape());
        assert_eq!(words(&back), vec!["- arn:aws:iam::1:role/app: read-data"]);
    }

    #[test]
    fn the_same_policy_reformatted_is_no_review() {
        let reformatted =
            serde_json::to_string_pretty(&serde_json::from_str::<Value>(APP).unwrap()).unwrap();
        let access = key_access(&state(None, &reformatted), None, &written(APP), shape());
        assert!(access.is_empty(), "{access:?}");
    }

    #[test]
    fn a_key_not_created_yet_gains_everything_and_no_key_has_no_review() {
        let access = key_access(&State::default(), None, &written(APP), shape());
        assert_eq!(words(&access).len(), 2, "{access:?}");
        assert!(key_access(&State::default(), None, &written(APP), None).is_empty());
    }

    #[test]
    fn a_policy_in_state_that_is_not_json_is_a_note() {
        let access = key_access(&state(None, "{not json"), None, &written(APP), shape());
        assert!(
            access[0]
                .note
                .as_deref()
                .is_some_and(|n| n.starts_with("the old policy is not JSON")),
            "{access:?}"
        );
    }
}
