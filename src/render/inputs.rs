//! The inputs of each node's root module: every user value, as the JSON of
//! `terraform.tfvars.json`. Nothing here is ever spliced into HCL text, so no string in the tree
//! can inject HCL or `${...}` interpolation.

use std::path::PathBuf;

use serde_json::{json, Map, Value};

use crate::config::{partition_of, Address, Fleet, Node, NodeKind};
use crate::policy::{self, KeyFacts};

/// Outputs of applied nodes, as recorded after apply in `.orch/outputs/<address>.json`.
pub struct RecordedOutputs {
    pub dir: PathBuf,
}

impl RecordedOutputs {
    pub fn for_fleet(fleet: &Fleet) -> Self {
        RecordedOutputs {
            dir: fleet.state_dir().join("outputs"),
        }
    }

    /// One output of a node (`terraform output -json` form: `{"name": {"value": ...}}`).
    pub fn get(&self, address: &Address, name: &str) -> Option<String> {
        let path = self.dir.join(format!("{address}.json"));
        let text = crate::files::read_to_string(path).ok()?;
        let value: Value = serde_json::from_str(&text).ok()?;
        value.get(name)?.get("value")?.as_str().map(String::from)
    }
}

/// A node's inputs and whether any of them is a placeholder for a value not known until a
/// dependency is applied (a *provisional* node: it can be planned, never applied).
pub struct Inputs {
    pub vars: Map<String, Value>,
    pub provisional: bool,
}

/// The import ids of a node that adopts existing resources (`import:`), as its `imports.tf`
/// reads them: `key` (a key id), `aliases` (name -> `alias/<name>`), `grant` (`<key ARN>:<grant
/// id>`, the form whose key id the provider keeps as written, so the next plan matches).
pub fn imports(fleet: &Fleet, node: &Node, outputs: &RecordedOutputs) -> Option<Value> {
    let aliases = |import: &crate::config::Import| -> Map<String, Value> {
        import
            .aliases
            .iter()
            .map(|a| (a.clone(), json!(format!("alias/{a}"))))
            .collect()
    };
    match &node.kind {
        NodeKind::Key(k) => k
            .import
            .as_ref()
            .map(|i| json!({"key": i.id, "aliases": aliases(i)})),
        NodeKind::Replica(r) => r.import.as_ref().map(|i| {
            let adopted: Map<String, Value> = aliases(i)
                .into_iter()
                .filter(|(name, _)| r.aliases.contains(name))
                .collect();
            json!({"key": i.id, "aliases": adopted})
        }),
        NodeKind::Grant(g) => g.import.as_ref().map(|i| {
            let (arn, _) = dependency_key_arn(fleet, &g.key.value, outputs);
            json!({"grant": format!("{arn}:{}", i.id)})
        }),
        _ => None,
    }
}

pub fn inputs(
    fleet: &Fleet,
    node: &Node,
    profile_endpoint: Option<&str>,
    outputs: &RecordedOutputs,
) -> Inputs {
    let account = fleet.account_of(node);
    let mut vars = Map::new();
    let mut provisional = false;
    vars.insert("region".into(), json!(node.address.region));
    vars.insert("account_id".into(), json!(account.account_id));
    if let Some(role) = &account.role_arn {
        vars.insert("role_arn".into(), json!(role));
    }
    if let Some(endpoint) = profile_endpoint {
        vars.insert("endpoint".into(), json!(endpoint));
    }
    vars.insert("default_tags".into(), json!(node.tags));
    let mut key_arn = |address: &Address| {
        let (arn, known) = dependency_key_arn(fleet, address, outputs);
        provisional |= !known;
        arn
    };
    match &node.kind {
        NodeKind::Key(k) => {
            let facts = KeyFacts::of(fleet, node).expect("a key has key facts");
            vars.extend(obj(json!({
                "description": k.description,
                "key_usage": k.usage.name(),
                "key_spec": k.spec.name(),
                "enable_key_rotation": k.rotation.enabled,
                "rotation_period_in_days": k.rotation.period_days,
                "deletion_window_in_days": k.deletion_window_days,
                "is_enabled": k.is_enabled,
                "multi_region": k.multi_region,
                "policy": policy::build(&facts).to_json(),
                "bypass_policy_lockout_safety_check": k.bypass_policy_lockout_safety_check,
                "aliases": k.aliases,
            })));
        }
        NodeKind::Replica(r) => {
            let facts = KeyFacts::of(fleet, node).expect("a replica has key facts");
            vars.extend(obj(json!({
                "primary_key_arn": key_arn(&r.primary.value),
                "description": r.description,
                "deletion_window_in_days": r.deletion_window_days,
                "is_enabled": r.is_enabled,
                "policy": policy::build(&facts).to_json(),
                "bypass_policy_lockout_safety_check": r.bypass_policy_lockout_safety_check,
                "aliases": r.aliases,
            })));
        }
        NodeKind::Grant(g) => {
            vars.extend(obj(json!({
                "key_arn": key_arn(&g.key.value),
                "grant_name": (!g.grant_name.is_empty()).then_some(&g.grant_name),
                "grantee": g.grantee,
                "operations": g.operations,
                "retiring_principal": g.retiring_principal,
                "encryption_context_equals": g.encryption_context_equals,
                "encryption_context_subset": g.encryption_context_subset,
            })));
        }
        NodeKind::KeyAccess(k) => {
            let arn = key_arn(&k.key.value);
            let key_node = fleet.node(&k.key.value).expect("links are checked");
            let key = KeyFacts::of(fleet, key_node).expect("key-access targets are keys");
            let actions = policy::cross_account_actions(&k.capabilities, key.spec, key.usage);
            let document = json!({
                "Version": "2012-10-17",
                "Statement": [{
                    "Sid": "UseKey",
                    "Effect": "Allow",
                    "Action": actions,
                    "Resource": policy::key_access_resource(&arn, &key.regions),
                }],
            });
            let role_names: Vec<&str> = k
                .roles
                .iter()
                .filter_map(|r| r.rsplit('/').next())
                .collect();
            vars.extend(obj(json!({
                "key_arn": arn,
                "policy_name": k.policy_name,
                "policy_description": format!("Use of KMS key {} (managed by orch)", k.key.value),
                "policy": document.to_string(),
                "role_names": role_names,
            })));
        }
        NodeKind::S3Bucket(b) => {
            vars.extend(obj(json!({
                "key_arn": key_arn(&b.key.value),
                "bucket": b.bucket,
                "force_destroy": b.force_destroy,
                "versioning": b.versioning,
            })));
        }
        NodeKind::Custom(c) => {
            if let Some(key) = &c.key {
                vars.insert("key_arn".into(), json!(key_arn(&key.value)));
            }
            vars.extend(c.inputs.clone());
        }
    }
    Inputs { vars, provisional }
}

fn obj(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// The ARN of a key or replica node, and whether it is known. A replica's ARN is known as soon as
/// its primary's key id is (a multi-region replica shares the key id); otherwise a placeholder
/// of the right shape stands in, so the dependent can still be planned.
pub fn dependency_key_arn(
    fleet: &Fleet,
    address: &Address,
    outputs: &RecordedOutputs,
) -> (String, bool) {
    if let Some(arn) = outputs.get(address, "key_arn") {
        return (arn, true);
    }
    let account = &fleet.accounts[&address.account].account_id;
    let node = fleet.node(address);
    let primary = match node.map(|n| &n.kind) {
        Some(NodeKind::Replica(r)) => Some(&r.primary.value),
        _ => None,
    };
    // A key being adopted has its id written in the tree (`import:`), so its ARN is known
    // before it is applied.
    let imported = node.and_then(|n| match &n.kind {
        NodeKind::Key(k) => k.import.as_ref().map(|i| i.id.clone()),
        NodeKind::Replica(r) => r.import.as_ref().map(|i| i.id.clone()),
        _ => None,
    });
    if let Some(key_id) = imported.or_else(|| primary.and_then(|p| outputs.get(p, "key_id"))) {
        return (
            format!(
                "arn:{}:kms:{}:{account}:key/{key_id}",
                partition_of(&address.region),
                address.region
            ),
            true,
        );
    }
    let multi_region = match node.map(|n| &n.kind) {
        Some(NodeKind::Key(k)) => k.multi_region,
        _ => primary.is_some(),
    };
    let placeholder = if multi_region {
        "mrk-00000000000000000000000000000000"
    } else {
        "00000000-0000-0000-0000-000000000000"
    };
    (
        format!(
            "arn:{}:kms:{}:{account}:key/{placeholder}",
            partition_of(&address.region),
            address.region
        ),
        false,
    )
}
