//! A saved plan as `terraform show -json` prints it: the resource changes it would make and the
//! drift its refresh found, each with the values before and after, by module. Only what orch
//! reads: terraform's machine format, so no user text (a description, a tag) can pass for a line
//! of it.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// One resource's change (or drift) in a plan.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    /// The stack member's module name (`module.<name>` in a stack root); `None` at the root.
    pub module: Option<String>,
    /// The resource's address within its module (`aws_kms_key.this`, `aws_kms_alias.this["a"]`).
    pub address: String,
    /// The resource type (`aws_kms_key`).
    pub kind: String,
    /// `["update"]`, `["create"]`, `["delete"]`, `["delete", "create"]`, `["no-op"]`, ...
    pub actions: Vec<String>,
    /// The object before (null when created).
    pub before: Value,
    /// The object after (null when deleted); unknown values are null here and true in
    /// `after_unknown`.
    pub after: Value,
    pub after_unknown: Value,
    /// The attributes the configuration sets on this resource (its `expressions`): what orch
    /// manages of it, as opposed to what the provider computes. `None` when the plan does not say.
    pub configured: Option<BTreeSet<String>>,
}

impl Change {
    /// Changes anything (not a no-op or a read).
    pub fn acts(&self) -> bool {
        self.actions.iter().any(|a| a != "no-op" && a != "read")
    }

    /// Whether `attribute` of the new object is known only after apply.
    pub fn unknown_after(&self, attribute: &str) -> bool {
        self.after_unknown.get(attribute) == Some(&Value::Bool(true))
    }
}

/// What `terraform show -json` of a saved plan says.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Shown {
    /// `resource_changes`: what an apply of the plan would do.
    pub changes: Vec<Change>,
    /// `resource_drift`: what changed outside terraform since the state was written.
    pub drift: Vec<Change>,
}

/// Reads the output of `terraform show -json PLAN`. Terraform prints the document on one line;
/// anything else it printed (a warning about the CLI configuration) is passed over. An Err
/// quotes the first lines of what it printed when no document is in it.
pub fn parse(text: &str) -> Result<Shown, String> {
    let document = text.lines().filter(|l| l.starts_with('{')).find_map(|l| {
        serde_json::from_str::<Value>(l)
            .ok()
            .filter(|v| v.get("format_version").is_some())
    });
    let Some(document) = document else {
        let first: Vec<&str> = text.lines().take(5).collect();
        return Err(format!(
            "`terraform show -json` printed no plan document; it printed:\n{}",
            first.join("\n")
        ));
    };
    let configured = configured(&document);
    let read = |field: &str| -> Result<Vec<Change>, String> {
        match document.get(field) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| {
                    change(item).map(|mut c| {
                        let bare = c.address.split('[').next().unwrap_or_default().to_string();
                        c.configured = configured.get(&(c.module.clone(), bare)).cloned();
                        c
                    })
                })
                .collect(),
            Some(_) => Err(format!("`terraform show -json`: `{field}` is not a list")),
        }
    };
    Ok(Shown {
        changes: read("resource_changes")?,
        drift: read("resource_drift")?,
    })
}

/// (module name, resource address without index) -> the attributes its configuration sets, from
/// the plan's `configuration`: the root module's resources and those of each module call.
fn configured(document: &Value) -> BTreeMap<(Option<String>, String), BTreeSet<String>> {
    let mut out = BTreeMap::new();
    let mut take = |module: Option<String>, resources: Option<&Value>| {
        for r in resources.and_then(Value::as_array).into_iter().flatten() {
            let (Some(address), Some(expressions)) = (
                r.get("address").and_then(Value::as_str),
                r.get("expressions").and_then(Value::as_object),
            ) else {
                continue;
            };
            out.insert(
                (module.clone(), address.to_string()),
                expressions.keys().cloned().collect(),
            );
        }
    };
    let root = &document["configuration"]["root_module"];
    take(None, root.get("resources"));
    if let Some(calls) = root.get("module_calls").and_then(Value::as_object) {
        for (name, call) in calls {
            take(Some(name.clone()), call["module"].get("resources"));
        }
    }
    out
}

fn change(item: &Value) -> Result<Change, String> {
    let text = |field: &str| item.get(field).and_then(Value::as_str);
    let address =
        text("address").ok_or("`terraform show -json`: a resource change has no address")?;
    let module_address = text("module_address");
    let within = match module_address {
        Some(m) => address
            .strip_prefix(m)
            .and_then(|rest| rest.strip_prefix('.'))
            .unwrap_or(address),
        None => address,
    };
    let module = module_address.map(|m| {
        let first = m.split('.').nth(1).unwrap_or(m);
        first.split('[').next().unwrap_or(first).to_string()
    });
    let change = item.get("change").unwrap_or(&Value::Null);
    Ok(Change {
        module,
        address: within.to_string(),
        kind: text("type").unwrap_or_default().to_string(),
        actions: change
            .get("actions")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default(),
        before: change.get("before").cloned().unwrap_or(Value::Null),
        after: change.get("after").cloned().unwrap_or(Value::Null),
        after_unknown: change.get("after_unknown").cloned().unwrap_or(Value::Null),
        configured: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"{"format_version":"1.2","configuration":{"root_module":{"resources":[{"address":"aws_kms_alias.this","expressions":{"name":{}}}],"module_calls":{"core_app":{"module":{"resources":[{"address":"aws_kms_key.this","expressions":{"enable_key_rotation":{},"policy":{}}}]}}}}},"resource_drift":[{"address":"module.core_app.aws_kms_key.this","module_address":"module.core_app","type":"aws_kms_key","change":{"actions":["update"],"before":{"enable_key_rotation":true},"after":{"enable_key_rotation":false},"after_unknown":{}}}],"resource_changes":[{"address":"aws_kms_alias.this[\"a\"]","type":"aws_kms_alias","change":{"actions":["create"],"before":null,"after":{"name":"alias/a"},"after_unknown":{"arn":true}}}]}"#;

    #[test]
    fn changes_and_drift_by_module() {
        let text = format!("Warning: the CLI configuration ...\n{DOC}\n");
        let shown = parse(&text).unwrap();
        assert_eq!(shown.drift[0].module.as_deref(), Some("core_app"));
        assert_eq!(shown.drift[0].address, "aws_kms_key.this");
        assert_eq!(shown.drift[0].after["enable_key_rotation"], false);
        assert_eq!(shown.changes[0].module, None);
        assert_eq!(shown.changes[0].address, "aws_kms_alias.this[\"a\"]");
        assert!(shown.changes[0].acts());
        assert!(shown.changes[0].unknown_after("arn"));
        let names = |c: &Change| {
            c.configured
                .clone()
                .unwrap()
                .into_iter()
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(&shown.drift[0]),
            vec!["enable_key_rotation", "policy"]
        );
        assert_eq!(names(&shown.changes[0]), vec!["name"]);
    }

    #[test]
    fn no_document_quotes_what_was_printed() {
        let e = parse("Error: Failed to read plan\n\nthe plan file is damaged\n").unwrap_err();
        assert!(
            e.contains("printed no plan document") && e.contains("Error: Failed to read plan"),
            "{e}"
        );
    }
}
