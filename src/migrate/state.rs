//! Terraform's own states (format 4) as `orch layout migrate` reads and rewrites them: a state
//! checked to have the shape orch's states of a layout have, a node's managed resources moved
//! into or out of its module block (with the dependencies terraform recorded between them), its
//! outputs carried along, and a new state's fields.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::MigrateError;
use crate::layout::{Home, Placement};
use crate::state::{Place, StateStore};

/// A state as terraform wrote it (format 4), checked to have the shape orch's states of
/// `layout` have, with the bytes it was read from (the backup).
pub struct State {
    pub json: Map<String, Value>,
    pub text: Vec<u8>,
}

impl State {
    /// `text` read from the state shown as `shown`.
    pub fn parse(
        text: Vec<u8>,
        shown: &str,
        layout: &dyn Placement,
    ) -> Result<State, MigrateError> {
        let shape = |why: String| MigrateError::Shape {
            state: shown.to_string(),
            layout: layout.name(),
            why,
        };
        let json: Value = serde_json::from_slice(&text)
            .map_err(|e| shape(format!("not a terraform state: {e}")))?;
        let Value::Object(json) = json else {
            return Err(shape("not a terraform state: not a JSON object".into()));
        };
        match json.get("version").and_then(Value::as_u64) {
            Some(4) => {}
            other => {
                return Err(shape(format!(
                    "state format version {}, not 4 (terraform 0.12 and later)",
                    other.map_or("missing".to_string(), |v| v.to_string())
                )))
            }
        }
        if json.get("lineage").and_then(Value::as_str).is_none()
            || json.get("serial").and_then(Value::as_u64).is_none()
        {
            return Err(shape("no `lineage` or `serial`".into()));
        }
        let resources = match json.get("resources") {
            None => &Vec::new(),
            Some(Value::Array(r)) => r,
            Some(_) => return Err(shape("`resources` is not a list".into())),
        };
        for (i, r) in resources.iter().enumerate() {
            let field = |name: &str| r.get(name).and_then(Value::as_str);
            let (Some(mode), Some(_), Some(_)) = (field("mode"), field("type"), field("name"))
            else {
                return Err(shape(format!(
                    "resource {} has no `mode`, `type` or `name`",
                    i + 1
                )));
            };
            if !matches!(mode, "managed" | "data") || !r["instances"].is_array() {
                return Err(shape(format!(
                    "resource {} ({}) has mode `{mode}` or no `instances` list",
                    i + 1,
                    resource_address(r)
                )));
            }
            let fits = layout.fits(r.get("module").and_then(Value::as_str));
            if !fits {
                return Err(shape(format!(
                    "resource {} is at {}, where orch's {} layout puts none",
                    i + 1,
                    resource_address(r),
                    layout.name()
                )));
            }
        }
        Ok(State { json, text })
    }

    pub fn resources(&self) -> &[Value] {
        self.json
            .get("resources")
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice)
    }

    /// The managed resources of the node at `module` (all of them in a node's own state).
    pub fn managed_of(&self, module: Option<&str>) -> Vec<Value> {
        self.resources()
            .iter()
            .filter(|r| r["mode"] == "managed" && r.get("module").and_then(Value::as_str) == module)
            .cloned()
            .collect()
    }
}

/// `module.x.aws_kms_key.this`, for messages.
fn resource_address(r: &Value) -> String {
    let mut out = String::new();
    if let Some(m) = r.get("module").and_then(Value::as_str) {
        out.push_str(m);
        out.push('.');
    }
    if r["mode"] == "data" {
        out.push_str("data.");
    }
    out.push_str(r["type"].as_str().unwrap_or("?"));
    out.push('.');
    out.push_str(r["name"].as_str().unwrap_or("?"));
    out
}

/// A resource of a node's state, rewritten for the node's place in the other state: its module
/// set or removed, and the dependencies terraform recorded for each instance with it. A
/// dependency on another node's module (a stack passes a key's ARN from module to module) has no
/// counterpart in a node's own state, where the ARN arrives as a variable, and is dropped;
/// terraform records dependencies again at the next apply.
pub fn rewrite(resource: &Value, from: Option<&str>, to: Option<&str>) -> Value {
    // `module` comes first, as terraform writes it; the other fields keep their order.
    let mut obj = Map::new();
    if let Some(m) = to {
        obj.insert("module".into(), Value::String(m.to_string()));
    }
    for (k, v) in resource.as_object().expect("checked to be a resource") {
        match (k.as_str(), v.as_str()) {
            ("module", _) => {}
            // A node's own root has the default provider only; in a stack, nodes with default
            // tags of their own use an aliased one (`provider["…/aws"].tags_2`). Terraform plans
            // a resource with its configuration's provider and records it at the next apply.
            ("provider", Some(p)) if to.is_none() => {
                let default = p.find("\"].").map_or(p, |end| &p[..end + 2]);
                obj.insert(k.clone(), Value::String(default.to_string()));
            }
            _ => {
                obj.insert(k.clone(), v.clone());
            }
        }
    }
    for instance in obj
        .get_mut("instances")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        let Some(deps) = instance
            .get_mut("dependencies")
            .and_then(Value::as_array_mut)
        else {
            continue;
        };
        let moved: Vec<Value> = deps
            .iter()
            .filter_map(Value::as_str)
            .filter_map(|d| {
                let local = match from {
                    Some(m) => d.strip_prefix(m)?.strip_prefix('.')?,
                    None => d,
                };
                Some(Value::String(match to {
                    Some(m) => format!("{m}.{local}"),
                    None => local.to_string(),
                }))
            })
            .collect();
        *deps = moved;
    }
    Value::Object(obj)
}

/// Resources in a stable order, for comparing two states' view of one node.
pub fn sorted(mut resources: Vec<Value>) -> Vec<Value> {
    resources.sort_by_key(resource_address);
    resources
}

/// One node's state on its way from one layout to the other.
pub struct Move {
    pub address: String,
    pub from: Home,
    pub to: Home,
    /// Its managed resources, rewritten for `to`.
    pub resources: Vec<Value>,
    /// Its root outputs, as `to` holds them.
    pub outputs: Outputs,
    /// Found in `to` already (a move stopped half-way): only the source is left to clear.
    pub arrived: bool,
}

/// A node's outputs in the state it moves to. Terraform compares the outputs in state with the
/// configuration's, and a plan with an output to add has changes (exit 2), so they move too.
pub enum Outputs {
    /// A node's own state: each output of its root module.
    Own(Map<String, Value>),
    /// A stack's state: the root's output named after the module, `value = module.<name>`,
    /// sensitive (src/layout/stacks/render.rs).
    Module(String, Value),
}

impl Outputs {
    pub fn of(state: &State, from: &Home, to: &Home) -> Outputs {
        let all = state.json.get("outputs").and_then(Value::as_object);
        match (&from.module, &to.module) {
            (None, Some(m)) => {
                let mut value = Map::new();
                let mut types = Map::new();
                for (name, o) in all.into_iter().flatten() {
                    value.insert(name.clone(), o["value"].clone());
                    types.insert(name.clone(), o["type"].clone());
                }
                let output = serde_json::json!({
                    "value": value,
                    "type": ["object", types],
                    "sensitive": true,
                });
                Outputs::Module(output_name(m).to_string(), output)
            }
            (Some(m), _) => {
                let output = all.and_then(|o| o.get(output_name(m)));
                let types = output.and_then(|o| o["type"][1].as_object());
                let own = output
                    .and_then(|o| o["value"].as_object())
                    .into_iter()
                    .flatten()
                    // Terraform keeps no output whose value is null.
                    .filter(|(_, v)| !v.is_null())
                    .map(|(name, v)| {
                        let kind = types.and_then(|t| t.get(name)).cloned();
                        (
                            name.clone(),
                            serde_json::json!({"value": v, "type": kind.unwrap_or(Value::Null)}),
                        )
                    })
                    .collect();
                Outputs::Own(own)
            }
            (None, None) => Outputs::Own(all.cloned().unwrap_or_default()),
        }
    }

    pub fn write_into(&self, json: &mut Map<String, Value>) {
        let outputs = json
            .entry("outputs")
            .or_insert_with(|| Value::Object(Map::new()));
        match self {
            Outputs::Own(own) => *outputs = Value::Object(own.clone()),
            Outputs::Module(name, output) => {
                if let Some(map) = outputs.as_object_mut() {
                    map.insert(name.clone(), output.clone());
                }
            }
        }
    }
}

/// `data` for `module.data`: a stack's output of a node is named after its module block.
pub fn output_name(module: &str) -> &str {
    module.strip_prefix("module.").unwrap_or(module)
}

/// The states of one layout, each read once.
pub struct States {
    pub layout: &'static dyn Placement,
    read: BTreeMap<Place, Option<State>>,
}

impl States {
    /// Every state of `places` read from `store` and checked.
    pub fn load(
        store: &dyn StateStore,
        layout: &'static dyn Placement,
        places: Vec<Place>,
    ) -> Result<Self, MigrateError> {
        let places: Vec<Place> = places
            .into_iter()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let texts = store.read(&places)?;
        let mut read = BTreeMap::new();
        for (place, text) in places.into_iter().zip(texts) {
            let state = text
                .map(|t| State::parse(t, &store.show(&place), layout))
                .transpose()?;
            read.insert(place, state);
        }
        Ok(States { layout, read })
    }

    pub fn get(&self, place: &Place) -> Option<&State> {
        self.read.get(place).and_then(Option::as_ref)
    }
}

/// A new state for a destination that has none: terraform's fields, the newest terraform version
/// among the sources, and a new lineage.
pub fn fresh_state(moves: &[Move], sources: &States) -> Map<String, Value> {
    let version = moves
        .iter()
        .filter_map(|m| sources.get(&m.from.place))
        .filter_map(|s| s.json.get("terraform_version")?.as_str())
        .max_by(|a, b| version_order(a).cmp(&version_order(b)))
        .unwrap_or("1.5.0");
    let mut json = Map::new();
    json.insert("version".into(), Value::from(4));
    json.insert("terraform_version".into(), Value::from(version));
    json.insert("serial".into(), Value::from(0));
    json.insert("lineage".into(), Value::from(lineage()));
    json.insert("outputs".into(), Value::Object(Map::new()));
    json.insert("resources".into(), Value::Array(Vec::new()));
    json.insert("check_results".into(), Value::Null);
    json
}

fn version_order(v: &str) -> Vec<u64> {
    v.split(['.', '-'])
        .map(|p| p.parse().unwrap_or(0))
        .collect()
}

/// A state written by someone else than terraform is still one more serial of the same lineage;
/// its check results are of the old configuration and are recomputed by the next plan.
pub fn bump(json: &mut Map<String, Value>, fresh: bool) {
    let serial = json.get("serial").and_then(Value::as_u64).unwrap_or(0);
    json.insert(
        "serial".into(),
        Value::from(if fresh { 1 } else { serial + 1 }),
    );
    json.insert("check_results".into(), Value::Null);
}

/// A random lineage in terraform's form (a UUID's layout).
fn lineage() -> String {
    let mut bytes = [0u8; 16];
    let got = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes));
    if got.is_err() {
        // Unique enough for a lineage, which only has to differ from other states' lineages.
        let seed = format!("{:?}{}", std::time::SystemTime::now(), std::process::id());
        for (i, b) in seed.bytes().enumerate() {
            bytes[i % 16] ^= b;
        }
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_resource_moves_into_a_module_and_back_unchanged() {
        let alias = json!({
            "mode": "managed", "type": "aws_kms_alias", "name": "this",
            "provider": "provider[\"registry.terraform.io/hashicorp/aws\"]",
            "instances": [{"index_key": "prod/data", "attributes": {"name": "alias/prod/data"},
                           "dependencies": ["aws_kms_key.this"]}]
        });
        let moved = rewrite(&alias, None, Some("module.data"));
        assert_eq!(moved["module"], "module.data");
        assert_eq!(
            moved.as_object().unwrap().keys().next().unwrap(),
            "module",
            "terraform writes `module` first"
        );
        assert_eq!(
            moved["instances"][0]["dependencies"],
            json!(["module.data.aws_kms_key.this"])
        );
        let back = rewrite(&moved, Some("module.data"), None);
        assert_eq!(
            serde_json::to_string(&back).unwrap(),
            serde_json::to_string(&alias).unwrap(),
            "the same resource, field for field and in the same order"
        );
    }

    #[test]
    fn a_dependency_on_another_module_has_no_place_in_a_node_state() {
        let grant = json!({
            "module": "module.grant", "mode": "managed", "type": "aws_kms_grant", "name": "this",
            "instances": [{"dependencies": ["module.data.aws_kms_key.this", "module.grant.data.x.y"]}]
        });
        let own = rewrite(&grant, Some("module.grant"), None);
        assert_eq!(own["instances"][0]["dependencies"], json!(["data.x.y"]));
    }

    #[test]
    fn a_node_state_has_the_default_provider() {
        let aliased = json!({
            "module": "module.other", "mode": "managed", "type": "aws_kms_key", "name": "this",
            "provider": "provider[\"registry.terraform.io/hashicorp/aws\"].tags_2", "instances": []
        });
        let own = rewrite(&aliased, Some("module.other"), None);
        assert_eq!(
            own["provider"],
            "provider[\"registry.terraform.io/hashicorp/aws\"]"
        );
        assert_eq!(rewrite(&own, None, None)["provider"], own["provider"]);
    }

    #[test]
    fn lineages_look_like_terraform_s_and_differ() {
        let (a, b) = (lineage(), lineage());
        assert_ne!(a, b);
        let lengths: Vec<usize> = a.split('-').map(str::len).collect();
        assert_eq!(lengths, [8, 4, 4, 4, 12]);
    }

    #[test]
    fn versions_compare_by_number() {
        assert!(version_order("1.11.4") > version_order("1.9.8"));
    }
}
