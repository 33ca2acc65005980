//! The access review of a plan: for each key or replica whose policy the plan changes, who gains
//! and who loses what, from the policy in state to the policy orch will write.

use serde::Serialize;

use super::shown::Change;
use crate::policy::{review, KeyShape, Review};

/// The access change of one key (or replica) resource.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeyAccess {
    /// The resource within its node's module (`aws_kms_key.this`).
    pub resource: String,
    #[serde(flatten)]
    pub review: Review,
    /// What the review could not tell (a policy known only after apply, one orch cannot read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The resources with a key policy.
const KEYS: [&str; 2] = ["aws_kms_key", "aws_kms_replica_key"];

/// The access changes of one node's resource changes; `shape` is its key's (`None`: no key).
pub fn key_access(changes: &[&Change], shape: Option<KeyShape>) -> Vec<KeyAccess> {
    let Some(shape) = shape else {
        return Vec::new();
    };
    let policy = |v: &serde_json::Value| {
        v.get("policy")
            .and_then(serde_json::Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    changes
        .iter()
        .filter(|c| KEYS.contains(&c.kind.as_str()) && c.acts())
        .filter_map(|c| {
            let before = policy(&c.before);
            if c.unknown_after("policy") {
                return Some(KeyAccess {
                    resource: c.address.clone(),
                    review: Review::default(),
                    note: Some("the new policy is known only after apply".into()),
                });
            }
            let after = policy(&c.after);
            match review(before.as_deref(), after.as_deref(), shape) {
                Ok(r) if r.is_empty() => None,
                Ok(r) => Some(KeyAccess {
                    resource: c.address.clone(),
                    review: r,
                    note: None,
                }),
                Err(e) => Some(KeyAccess {
                    resource: c.address.clone(),
                    review: Review::default(),
                    note: Some(e),
                }),
            }
        })
        .collect()
}
