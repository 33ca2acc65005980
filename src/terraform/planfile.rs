//! A saved plan file (`plan -out=tfplan`) read without terraform: the zip holds, beside the plan
//! itself, the state the plan started from (`tfstate-prev`, as the last apply wrote it, upgraded
//! to the provider's schema) and the state its refresh read from AWS (`tfstate`): terraform's
//! `internal/plans/planfile` writes them so. Reading them here spares `terraform show -json`,
//! which loads the AWS provider's schema once more for each root (2.3 CPU-s) to tell what the two
//! states already hold.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use serde_json::Value;

/// The state the plan started from, as the previous apply wrote it.
const PREVIOUS: &str = "tfstate-prev";
/// The state after the plan's refresh: what AWS holds now.
const REFRESHED: &str = "tfstate";

/// Where a resource instance is: (module name, resource type, resource name, index key).
/// The module name is that of `module.<name>` (`None` at the root); the index key is the
/// instance's `count` number or `for_each` key as JSON text (`0`, `"a"`; `None` for a single
/// instance).
pub type InstanceKey = (Option<String>, String, String, Option<String>);

/// One state's managed resource instances and their attributes. Data sources are left out: a
/// refresh reads them anew, and they are nothing orch manages.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct State {
    pub instances: BTreeMap<InstanceKey, Value>,
}

impl State {
    /// The attributes of the instance at `key`.
    pub fn get(&self, key: &InstanceKey) -> Option<&Value> {
        self.instances.get(key)
    }
}

/// The two states of a saved plan.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Planfile {
    /// Before the refresh (`tfstate-prev`).
    pub previous: State,
    /// After the refresh (`tfstate`).
    pub refreshed: State,
}

/// Reads both states of the plan file at `path`. An Err names the file, and the entry when one
/// is missing or not a state.
pub fn read(path: &Path) -> Result<Planfile, String> {
    let file = crate::files::open(path)
        .map_err(|e| format!("cannot open the plan file {}: {e}", path.display()))?;
    let mut zip = zip::ZipArchive::new(file)
        .map_err(|e| format!("the plan file {} is not a zip: {e}", path.display()))?;
    let mut state = |entry: &str| -> Result<State, String> {
        let mut text = String::new();
        zip.by_name(entry)
            .map_err(|e| e.to_string())
            .and_then(|mut f| f.read_to_string(&mut text).map_err(|e| e.to_string()))
            .and_then(|_| parse(&text))
            .map_err(|e| format!("the plan file {}: entry `{entry}`: {e}", path.display()))
    };
    Ok(Planfile {
        previous: state(PREVIOUS)?,
        refreshed: state(REFRESHED)?,
    })
}

/// A state file's text (format version 4): `resources[]`, each with its `module`, `mode`,
/// `type`, `name` and `instances[]` (`index_key`, `attributes`).
fn parse(text: &str) -> Result<State, String> {
    let document: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    match document.get("version").and_then(Value::as_u64) {
        Some(4) => {}
        Some(v) => return Err(format!("state format version {v}, orch reads version 4")),
        None => return Err("no state format version".into()),
    }
    let resources = match document.get("resources") {
        None | Some(Value::Null) => return Ok(State::default()),
        Some(Value::Array(r)) => r,
        Some(_) => return Err("`resources` is not a list".into()),
    };
    let mut out = State::default();
    for r in resources {
        if r.get("mode").and_then(Value::as_str) != Some("managed") {
            continue;
        }
        let text = |field: &str| {
            r.get(field)
                .and_then(Value::as_str)
                .ok_or_else(|| format!("a resource has no `{field}`"))
        };
        let (kind, name) = (text("type")?, text("name")?);
        let module = r.get("module").and_then(Value::as_str).map(module_name);
        for instance in r
            .get("instances")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let index = instance
                .get("index_key")
                .filter(|v| !v.is_null())
                .map(Value::to_string);
            let attributes = instance.get("attributes").cloned().unwrap_or(Value::Null);
            out.instances.insert(
                (module.clone(), kind.to_string(), name.to_string(), index),
                attributes,
            );
        }
    }
    Ok(out)
}

/// `app` of `module.app` (and of `module.app["x"].module.inner`): a stack member's module block.
fn module_name(address: &str) -> String {
    let first = address.split('.').nth(1).unwrap_or(address);
    first.split('[').next().unwrap_or(first).to_string()
}

/// An instance's address within its module, as terraform writes it: `aws_kms_key.this`,
/// `aws_kms_alias.this["a"]`, `aws_kms_grant.this[0]`.
pub fn address(key: &InstanceKey) -> String {
    let (_, kind, name, index) = key;
    match index {
        None => format!("{kind}.{name}"),
        Some(index) => format!("{kind}.{name}[{index}]"),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// A plan file with `entries` (name, text), as terraform writes it: deflated.
    fn plan_file(dir: &Path, entries: &[(&str, &str)]) -> std::path::PathBuf {
        let path = dir.join("tfplan");
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, text) in entries {
            zip.start_file(*name, options).unwrap();
            zip.write_all(text.as_bytes()).unwrap();
        }
        zip.finish().unwrap();
        path
    }

    const STATE: &str = r#"{"version":4,"terraform_version":"1.9.0","serial":4,"resources":[
        {"mode":"managed","type":"aws_kms_key","name":"this","provider":"provider[\"registry.terraform.io/hashicorp/aws\"]","instances":[{"schema_version":0,"attributes":{"key_id":"k","enable_key_rotation":true}}]},
        {"module":"module.app","mode":"managed","type":"aws_kms_alias","name":"this","instances":[{"index_key":"a","attributes":{"name":"alias/a"}},{"index_key":"b","attributes":{"name":"alias/b"}}]},
        {"mode":"data","type":"aws_caller_identity","name":"current","instances":[{"attributes":{"id":"1"}}]}
    ]}"#;

    #[test]
    fn both_states_by_instance() {
        let dir = tempfile::tempdir().unwrap();
        let prev = r#"{"version":4,"resources":[]}"#;
        let path = plan_file(
            dir.path(),
            &[
                ("tfplan", "binary"),
                ("tfstate", STATE),
                ("tfstate-prev", prev),
            ],
        );
        let plan = read(&path).unwrap();
        assert!(plan.previous.instances.is_empty());
        let keys: Vec<String> = plan.refreshed.instances.keys().map(address).collect();
        assert_eq!(
            keys,
            vec![
                "aws_kms_key.this",
                "aws_kms_alias.this[\"a\"]",
                "aws_kms_alias.this[\"b\"]"
            ]
        );
        let key = (None, "aws_kms_key".into(), "this".into(), None);
        assert_eq!(plan.refreshed.get(&key).unwrap()["key_id"], "k");
        let alias = (
            Some("app".into()),
            "aws_kms_alias".into(),
            "this".into(),
            Some("\"b\"".into()),
        );
        assert_eq!(plan.refreshed.get(&alias).unwrap()["name"], "alias/b");
    }

    #[test]
    fn a_missing_entry_or_bad_json_names_the_file_and_entry() {
        let dir = tempfile::tempdir().unwrap();
        let path = plan_file(dir.path(), &[("tfstate", STATE)]);
        let e = read(&path).unwrap_err();
        assert!(
            e.starts_with(&format!(
                "the plan file {}: entry `tfstate-prev`",
                path.display()
            )),
            "{e}"
        );
        let path = plan_file(
            dir.path(),
            &[("tfstate", "{not json"), ("tfstate-prev", STATE)],
        );
        let e = read(&path).unwrap_err();
        assert!(e.contains("entry `tfstate`: not JSON"), "{e}");
        std::fs::write(&path, "plain text").unwrap();
        let e = read(&path).unwrap_err();
        assert!(e.contains("is not a zip"), "{e}");
        let e = read(&dir.path().join("gone")).unwrap_err();
        assert!(e.starts_with("cannot open the plan file"), "{e}");
    }

    #[test]
    fn another_state_version_is_refused() {
        let e = parse(r#"{"version":3,"modules":[]}"#).unwrap_err();
        assert_eq!(e, "state format version 3, orch reads version 4");
    }
}
