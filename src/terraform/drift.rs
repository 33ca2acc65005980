//! Drift: what a refresh found changed outside orch in the resources of orch's own modules,
//! told one finding at a time ("rotation disabled", "tag Team \"a\" -> \"b\"", a principal that
//! gained a capability), so the same change on many keys can be told once. Only what orch
//! manages counts: the attributes its configuration sets (and the tags), not what the provider
//! computes (an IAM policy's `attachment_count`, a bucket's inline `versioning` that a separate
//! resource sets). Empty and absent values are equal, also nested (a refresh of a key applied a
//! moment ago reads `tags = {}` where the state has none), and a key policy is compared by
//! effect, never as text. The drift is that of the saved plan's two states (before and after its
//! refresh, [`super::planfile`]), and what orch manages is what the node's `main.tf` sets
//! ([`super::written`]).

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::Value;

use super::planfile::{self, Planfile};
use super::written::Written;
use crate::policy::{review, KeyShape};

/// One resource instance that a refresh found changed.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    /// The resource's address within its module (`aws_kms_key.this`, `aws_kms_alias.this["a"]`).
    pub address: String,
    /// The resource type (`aws_kms_key`).
    pub kind: String,
    /// Its attributes before the refresh.
    pub before: Value,
    /// Its attributes after the refresh; null when the refresh found it gone.
    pub after: Value,
    /// The attributes and blocks orch's `main.tf` sets on this resource: what orch manages of
    /// it, as opposed to what the provider computes. `None` when main.tf has no block for it.
    pub configured: Option<BTreeSet<String>>,
}

/// The resource instances of module `module` (`None`: the root) that the refresh of `plan`
/// changed or found gone, paired by type, name and index key.
pub fn changes(plan: &Planfile, module: Option<&str>, written: &Written) -> Vec<Change> {
    plan.previous
        .instances
        .iter()
        .filter(|(key, _)| key.0.as_deref() == module)
        .filter_map(|(key, before)| {
            let after = plan.refreshed.get(key).cloned().unwrap_or(Value::Null);
            (before != &after).then(|| Change {
                address: planfile::address(key),
                kind: key.1.clone(),
                before: before.clone(),
                after,
                configured: written.configured(&key.1, &key.2).cloned(),
            })
        })
        .collect()
}

/// One thing that changed outside orch.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Finding {
    /// The resource within its node's module (`aws_kms_key.this`).
    pub resource: String,
    /// The attribute, or `deleted` for a resource gone.
    pub attribute: String,
    /// In words, the same for the same change on any key: what groups findings.
    pub words: String,
}

/// How a node compares with what AWS holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NodeDrift {
    /// The node's key (or grant, or bucket) is gone: deleted, or pending deletion, outside orch
    /// (the provider reads both as gone and drops the resource from the refreshed state).
    pub deleted: bool,
    pub findings: Vec<Finding>,
}

impl NodeDrift {
    pub fn in_sync(&self) -> bool {
        !self.deleted && self.findings.is_empty()
    }
}

/// The resources whose deletion is the node's own (its key, replica, grant or bucket): an alias
/// or a policy attachment gone is a finding of its node, not the node gone.
const MAIN: [&str; 5] = [
    "aws_kms_key",
    "aws_kms_replica_key",
    "aws_kms_grant",
    "aws_s3_bucket",
    "aws_iam_policy",
];

/// The drift of one node from its resources' drift entries. `shape`: its key's, for naming
/// capabilities in a policy change (`None` for nodes without a key policy).
pub fn node_drift(drift: &[Change], shape: Option<KeyShape>) -> NodeDrift {
    let mut out = NodeDrift::default();
    let mut findings = BTreeSet::new();
    for change in drift {
        if change.after.is_null() && !change.before.is_null() {
            if MAIN.contains(&change.kind.as_str()) {
                out.deleted = true;
            }
            findings.insert(Finding {
                resource: change.address.clone(),
                attribute: "deleted".into(),
                words: format!("{} deleted", noun(change)),
            });
            continue;
        }
        for finding in attribute_findings(change, shape) {
            findings.insert(finding);
        }
    }
    out.findings = findings.into_iter().collect();
    out
}

/// `key`, `replica`, `alias alias/x`, `grant`, or the resource type.
fn noun(change: &Change) -> String {
    match change.kind.as_str() {
        "aws_kms_key" => "key".into(),
        "aws_kms_replica_key" => "replica key".into(),
        "aws_kms_alias" => match change.before.get("name").and_then(Value::as_str) {
            Some(name) => format!("alias {name}"),
            None => "alias".into(),
        },
        "aws_kms_grant" => "grant".into(),
        other => other.to_string(),
    }
}

/// Attributes never told: `tags` is told through `tags_all`, which also holds the provider's
/// default tags.
const QUIET: [&str; 1] = ["tags"];

/// Told though not set in the configuration: the tags the provider's `default_tags` set.
const ALWAYS: [&str; 1] = ["tags_all"];

fn attribute_findings(change: &Change, shape: Option<KeyShape>) -> Vec<Finding> {
    let (Some(before), Some(after)) = (change.before.as_object(), change.after.as_object()) else {
        return Vec::new();
    };
    let names: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    let mut out = Vec::new();
    let finding = |attribute: &str, words: String| Finding {
        resource: change.address.clone(),
        attribute: attribute.to_string(),
        words,
    };
    for name in names {
        let (old, new) = (
            before.get(name).unwrap_or(&Value::Null),
            after.get(name).unwrap_or(&Value::Null),
        );
        let managed = change
            .configured
            .as_ref()
            .is_none_or(|set| set.contains(name.as_str()) || ALWAYS.contains(&name.as_str()));
        if !managed || same(old, new) || QUIET.contains(&name.as_str()) {
            continue;
        }
        // With rotation off AWS returns no period, and the provider reads 0: the rotation
        // finding says it all.
        let rotation_off = after.get("enable_key_rotation") == Some(&Value::Bool(false));
        if name == "rotation_period_in_days" && rotation_off && new.as_u64().is_none_or(|d| d == 0)
        {
            continue;
        }
        match name.as_str() {
            "policy" => out.extend(
                policy_findings(old, new, shape)
                    .into_iter()
                    .map(|w| finding(name, w)),
            ),
            "enable_key_rotation" => out.push(finding(
                name,
                switched(new, "rotation enabled", "rotation disabled"),
            )),
            "is_enabled" | "enabled" => out.push(finding(
                name,
                switched(
                    new,
                    &format!("{} enabled", noun(change)),
                    &format!("{} disabled", noun(change)),
                ),
            )),
            "tags_all" => out.extend(
                tag_findings(old, new)
                    .into_iter()
                    .map(|w| finding("tags", w)),
            ),
            _ => out.push(finding(
                name,
                format!("{name}: {} -> {}", shown(old), shown(new)),
            )),
        }
    }
    out
}

fn switched(new: &Value, on: &str, off: &str) -> String {
    if new == &Value::Bool(true) { on } else { off }.to_string()
}

/// One finding per tag added, removed or changed.
fn tag_findings(old: &Value, new: &Value) -> Vec<String> {
    let empty = serde_json::Map::new();
    let old = old.as_object().unwrap_or(&empty);
    let new = new.as_object().unwrap_or(&empty);
    let keys: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    keys.into_iter()
        .filter_map(|k| match (old.get(k), new.get(k)) {
            (Some(a), Some(b)) if a != b => Some(format!("tag {k}: {} -> {}", shown(a), shown(b))),
            (None, Some(b)) => Some(format!("tag {k} = {} added", shown(b))),
            (Some(_), None) => Some(format!("tag {k} removed")),
            _ => None,
        })
        .collect()
}

/// A policy change by principal; a policy orch cannot read is told as text changed.
fn policy_findings(old: &Value, new: &Value, shape: Option<KeyShape>) -> Vec<String> {
    let text = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_string);
    let Some(shape) = shape else {
        return vec!["policy changed".into()];
    };
    match review(text(old).as_deref(), text(new).as_deref(), shape) {
        Ok(r) => {
            let mut out: Vec<String> = r
                .gained
                .iter()
                .map(|a| format!("policy: gained by {}", a.words()))
                .collect();
            out.extend(
                r.lost
                    .iter()
                    .map(|a| format!("policy: lost by {}", a.words())),
            );
            out
        }
        Err(e) => vec![format!("policy changed ({e})")],
    }
}

/// Equal, counting null, "", {} and [] as the same absence at any depth, and two JSON texts of
/// equal value (a policy reformatted by AWS) as equal.
fn same(a: &Value, b: &Value) -> bool {
    if pruned(a) == pruned(b) {
        return true;
    }
    match (a, b) {
        (Value::String(x), Value::String(y)) => {
            matches!((serde_json::from_str::<Value>(x), serde_json::from_str::<Value>(y)), (Ok(p), Ok(q)) if p.is_object() && p == q)
        }
        _ => false,
    }
}

/// `v` with every absent value (null, "", {}, []) left out of its objects, lists of them
/// pruned, and an absent whole as null.
fn pruned(v: &Value) -> Value {
    let absent = |v: &Value| match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    };
    let out = match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), pruned(v)))
                .filter(|(_, v)| !absent(v))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(pruned).collect()),
        other => other.clone(),
    };
    if absent(&out) {
        Value::Null
    } else {
        out
    }
}

/// A value as the user would write it: strings quoted, absence as `(none)`.
fn shown(v: &Value) -> String {
    match v {
        Value::Null => "(none)".into(),
        Value::String(s) if s.is_empty() => "(none)".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::config::{KeySpec, KeyUsage};

    fn drift(kind: &str, before: Value, after: Value) -> Change {
        Change {
            address: format!("{kind}.this"),
            kind: kind.into(),
            before,
            after,
            configured: None,
        }
    }

    fn shape() -> Option<KeyShape> {
        Some(KeyShape {
            spec: KeySpec::SymmetricDefault,
            usage: KeyUsage::EncryptDecrypt,
            multi_region: false,
            partition: "aws",
        })
    }

    fn words(d: &NodeDrift) -> Vec<&str> {
        d.findings.iter().map(|f| f.words.as_str()).collect()
    }

    #[test]
    fn empty_and_absent_are_in_sync() {
        let c = drift(
            "aws_kms_key",
            json!({"tags": null, "tags_all": {"ManagedBy": "orch"}, "description": "d", "policy": "{\"Statement\":[]}"}),
            json!({"tags": {}, "tags_all": {"ManagedBy": "orch"}, "description": "d", "policy": "{\n  \"Statement\": []\n}"}),
        );
        let g = drift(
            "aws_kms_grant",
            json!({"encryption_context_equals": null}),
            json!({"encryption_context_equals": {}}),
        );
        assert!(node_drift(&[c, g], shape()).in_sync());
    }

    #[test]
    fn each_change_is_one_finding_in_words() {
        let c = drift(
            "aws_kms_key",
            json!({"enable_key_rotation": true, "rotation_period_in_days": 365, "description": "a", "is_enabled": true, "tags_all": {"Team": "a", "Old": "x"}}),
            json!({"enable_key_rotation": false, "rotation_period_in_days": 0, "description": "b<script>", "is_enabled": false, "tags_all": {"Team": "b", "New": "y"}}),
        );
        let d = node_drift(&[c], shape());
        assert!(!d.deleted);
        assert_eq!(
            words(&d),
            vec![
                "description: \"a\" -> \"b<script>\"",
                "rotation disabled",
                "key disabled",
                "tag New = \"y\" added",
                "tag Old removed",
                "tag Team: \"a\" -> \"b\"",
            ]
        );
    }

    #[test]
    fn a_principal_added_to_the_policy_is_named() {
        let before = json!({"Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::1:root"}, "Action": "kms:*", "Resource": "*"}]});
        let mut after = before.clone();
        after["Statement"].as_array_mut().unwrap().push(json!({"Sid": "hand", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::999999999999:role/x"}, "Action": ["kms:Decrypt", "kms:ReEncryptFrom"], "Resource": "*"}));
        let c = drift(
            "aws_kms_key",
            json!({"policy": before.to_string()}),
            json!({"policy": after.to_string()}),
        );
        let d = node_drift(&[c], shape());
        assert_eq!(
            words(&d),
            vec!["policy: gained by arn:aws:iam::999999999999:role/x: read-data"]
        );
    }

    #[test]
    fn a_policy_in_state_that_is_not_json_is_told_not_hidden() {
        let c = drift(
            "aws_kms_key",
            json!({"policy": "{not json"}),
            json!({"policy": "{\"Statement\": []}"}),
        );
        let d = node_drift(&[c], shape());
        assert_eq!(d.findings.len(), 1);
        assert!(
            d.findings[0]
                .words
                .starts_with("policy changed (the old policy is not JSON"),
            "{:?}",
            d.findings
        );
    }

    #[test]
    fn a_key_gone_is_the_node_deleted_and_an_alias_gone_is_not() {
        let key = drift("aws_kms_key", json!({"key_id": "k"}), Value::Null);
        assert!(node_drift(&[key], shape()).deleted);
        let alias = drift("aws_kms_alias", json!({"name": "alias/app"}), Value::Null);
        let d = node_drift(&[alias], shape());
        assert!(!d.deleted);
        assert_eq!(words(&d), vec!["alias alias/app deleted"]);
    }

    /// One instance in a plan's two states: (module, type, index key, attributes before,
    /// after); `None` for an instance absent from that state.
    type Instance<'a> = (
        Option<&'a str>,
        &'a str,
        Option<Value>,
        Option<Value>,
        Option<Value>,
    );

    fn plan(instances: &[Instance]) -> Planfile {
        let mut plan = Planfile::default();
        for (module, kind, index, before, after) in instances {
            let key = (
                module.map(str::to_string),
                kind.to_string(),
                "this".to_string(),
                index.as_ref().map(Value::to_string),
            );
            if let Some(v) = before {
                plan.previous.instances.insert(key.clone(), v.clone());
            }
            if let Some(v) = after {
                plan.refreshed.instances.insert(key, v.clone());
            }
        }
        plan
    }

    fn written() -> Written {
        Written::of(&[(
            "main.tf",
            "resource \"aws_kms_key\" \"this\" {\n  enable_key_rotation = true\n}\n\nresource \"aws_kms_alias\" \"this\" {\n  for_each = toset([\"a\", \"b\"])\n  name = \"alias/${each.value}\"\n}\n".to_string(),
        )])
    }

    #[test]
    fn instances_paired_by_module_type_name_and_index() {
        let key = json!({"enable_key_rotation": true, "arn": "arn:1"});
        let plan = plan(&[
            (
                Some("app"),
                "aws_kms_key",
                None,
                Some(key.clone()),
                Some(json!({"enable_key_rotation": false, "arn": "arn:2"})),
            ),
            (
                Some("app"),
                "aws_kms_alias",
                Some(json!("a")),
                Some(json!({"name": "alias/a"})),
                Some(json!({"name": "alias/a"})),
            ),
            (
                Some("app"),
                "aws_kms_alias",
                Some(json!("b")),
                Some(json!({"name": "alias/b"})),
                None,
            ),
            (Some("other"), "aws_kms_key", None, Some(key.clone()), None),
        ]);
        let changes = changes(&plan, Some("app"), &written());
        let addresses: Vec<&str> = changes.iter().map(|c| c.address.as_str()).collect();
        assert_eq!(
            addresses,
            vec!["aws_kms_alias.this[\"b\"]", "aws_kms_key.this"]
        );
        assert!(changes[0].after.is_null());
        assert_eq!(
            changes[1].configured,
            Some(BTreeSet::from(["enable_key_rotation".to_string()]))
        );
        // `arn` changed too, but main.tf does not set it.
        let d = node_drift(&changes, shape());
        assert!(!d.deleted);
        assert_eq!(
            words(&d),
            vec!["alias alias/b deleted", "rotation disabled"]
        );
    }

    #[test]
    fn a_key_gone_from_the_refreshed_state_is_the_node_deleted() {
        let plan = plan(&[(
            None,
            "aws_kms_key",
            None,
            Some(json!({"key_id": "k"})),
            None,
        )]);
        let gone = changes(&plan, None, &written());
        assert_eq!(gone.len(), 1);
        assert!(node_drift(&gone, shape()).deleted);
        assert!(changes(&plan, Some("app"), &written()).is_empty());
    }
}
