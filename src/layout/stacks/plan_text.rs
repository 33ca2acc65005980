//! What terraform prints about a stack, read back per module block (one block per node): the
//! resource changes of a plan (`# module.data.aws_kms_key.this will be created`), the resources
//! an apply finished (`module.data.aws_kms_key.this: Creation complete after 1s`), and the
//! errors, each attributed to a module by its `with module.<name>.` or `on <dir>/<file> line`.
//! Terraform prints these for people, so nothing is believed without a check: the counts per
//! module must add up to plan's own summary line (see `exec.rs`).

use std::collections::BTreeMap;

use crate::terraform::workflow::Counts;

/// The module a resource address is in: `module.data.aws_kms_key.this` -> `data`.
fn module_of(address: &str) -> Option<&str> {
    let rest = address.strip_prefix("module.")?;
    let end = rest.find(['.', '[']).unwrap_or(rest.len());
    Some(&rest[..end]).filter(|m| !m.is_empty())
}

/// Terraform's diagnostics come framed (`╷`, `│`, `╵`) or plain; the text is the same.
fn unframed(line: &str) -> &str {
    line.trim_start_matches(['│', '╷', '╵']).trim_start()
}

/// The changes of a plan per module, and each module's part of the plan text.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PlanByModule {
    pub counts: BTreeMap<String, Counts>,
    pub text: BTreeMap<String, String>,
}

pub fn plan_by_module(text: &str) -> PlanByModule {
    let mut out = PlanByModule::default();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("# (imported from ") {
            // Under the header of a resource adopted with changes: `will be updated in-place`,
            // then `(imported from "<id>")`.
            if let Some(m) = &current {
                out.counts.entry(m.clone()).or_default().import += 1;
            }
        }
        if let Some(header) = trimmed.strip_prefix("# module.") {
            let address = format!("module.{header}");
            let module = module_of(&address).map(str::to_string);
            if let Some(m) = &module {
                let counts = out.counts.entry(m.clone()).or_default();
                if header.contains(" will be created") {
                    counts.add += 1;
                } else if header.contains(" will be updated in-place") {
                    counts.change += 1;
                } else if header.contains(" will be destroyed") {
                    counts.destroy += 1;
                } else if header.contains(" must be replaced")
                    || header.contains(" will be replaced")
                {
                    counts.add += 1;
                    counts.destroy += 1;
                } else if header.contains(" will be imported") {
                    counts.import += 1;
                }
            }
            current = module;
        } else if !line.is_empty() && !line.starts_with(' ') {
            // A line at the margin ends the resource blocks: `Plan: ...`, `Changes to Outputs:`.
            current = None;
        }
        if let Some(m) = &current {
            let part = out.text.entry(m.clone()).or_default();
            part.push_str(line);
            part.push('\n');
        }
    }
    out
}

/// How many resource changes of each module an apply reported complete.
pub fn completed_by_module(text: &str) -> BTreeMap<String, u32> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim_start();
        let Some((address, rest)) = line.split_once(": ") else {
            continue;
        };
        let done = [
            "Creation complete",
            "Modifications complete",
            "Destruction complete",
        ]
        .iter()
        .any(|w| rest.starts_with(w));
        if let (true, Some(m)) = (done, module_of(address)) {
            *out.entry(m.to_string()).or_insert(0) += 1;
        }
    }
    out
}

/// One error terraform printed: its headline, its whole text, and the module it names.
#[derive(Debug, PartialEq, Eq)]
pub struct Failure {
    pub headline: String,
    pub text: String,
    pub module: Option<String>,
}

/// The errors in `text`. `dir_module` maps a child directory (a node's name) to its module, for
/// errors that name a file (`on data/main.tf line 3`) rather than a resource.
pub fn errors(text: &str, dir_module: &BTreeMap<String, String>) -> Vec<Failure> {
    let mut out: Vec<Failure> = Vec::new();
    let mut open = false;
    for line in text.lines() {
        let body = unframed(line);
        if let Some(headline) = body.strip_prefix("Error: ") {
            out.push(Failure {
                headline: headline.to_string(),
                text: String::new(),
                module: None,
            });
            open = true;
        } else if body.starts_with("Warning: ") || line.starts_with('╵') {
            open = false;
        }
        let Some(failure) = out.last_mut().filter(|_| open) else {
            continue;
        };
        failure.text.push_str(line);
        failure.text.push('\n');
        if failure.module.is_some() {
            continue;
        }
        if let Some(address) = body.strip_prefix("with ") {
            failure.module = module_of(address.trim_end_matches(',')).map(str::to_string);
        } else if let Some(place) = body.strip_prefix("on ") {
            let dir = place.split('/').next().unwrap_or("");
            if place.contains('/') {
                failure.module = dir_module.get(dir).cloned();
            }
        } else if let Some(at) = body.find("\"module.") {
            // An import's error names its resource only in its text, quoted:
            // `While attempting to import an existing object to "module.x.aws_kms_key.this", ...`
            let quoted = body[at + 1..].split('"').next().unwrap_or("");
            failure.module = module_of(quoted).map(str::to_string);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAN: &str = r#"
Terraform will perform the following actions:

  # module.data.aws_kms_alias.this["prod/data"] will be created
  + resource "aws_kms_alias" "this" {
      + name = "alias/prod/data"
    }

  # module.data.aws_kms_key.this will be created
  + resource "aws_kms_key" "this" {
      + arn = (known after apply)
    }

  # module._0day.aws_kms_key.this must be replaced
-/+ resource "aws_kms_key" "this" {
    }

  # module.old.aws_kms_key.this will be destroyed
  # (because module.old is not in configuration)
  - resource "aws_kms_key" "this" {
    }

  # module.tags.aws_kms_key.this will be updated in-place
  ~ resource "aws_kms_key" "this" {
    }

  # module.tags.data.aws_iam_policy.x will be read during apply
 <= data "aws_iam_policy" "x" {
    }

Plan: 4 to add, 1 to change, 2 to destroy.

Changes to Outputs:
  + data = (sensitive value)
"#;

    #[test]
    fn adopted_resources_count_as_imports() {
        let plan = r#"
  # module.app.aws_kms_key.this will be imported
    resource "aws_kms_key" "this" {
    }

  # module.app.aws_kms_alias.this["app"] will be updated in-place
  # (imported from "alias/app")
  ~ resource "aws_kms_alias" "this" {
    }

Plan: 2 to import, 0 to add, 1 to change, 0 to destroy.
"#;
        let by = plan_by_module(plan);
        assert_eq!(
            by.counts["app"],
            Counts {
                add: 0,
                change: 1,
                destroy: 0,
                import: 2
            }
        );
    }

    #[test]
    fn plan_lines_count_per_module() {
        let by = plan_by_module(PLAN);
        let c = |add, change, destroy| Counts {
            add,
            change,
            destroy,
            import: 0,
        };
        assert_eq!(by.counts["data"], c(2, 0, 0));
        assert_eq!(by.counts["_0day"], c(1, 0, 1));
        assert_eq!(by.counts["old"], c(0, 0, 1));
        assert_eq!(by.counts["tags"], c(0, 1, 0));
        assert!(by.text["data"].contains("aws_kms_alias"));
        assert!(!by.text["tags"].contains("Plan:"), "{}", by.text["tags"]);
        assert!(!by.text["tags"].contains("Outputs"), "{}", by.text["tags"]);
        assert!(by.text["old"].contains("not in configuration"));
    }

    #[test]
    fn completions_and_errors_name_their_module() {
        let text = "module.a.aws_kms_key.this: Creating...\nmodule.a.aws_kms_key.this: Creation complete after 1s [id=k]\nmodule.b.aws_kms_alias.this[\"x\"]: Destruction complete after 0s\n\n╷\n│ Error: creating KMS Alias: AlreadyExists\n│ \n│   with module.c.aws_kms_alias.this[\"x\"],\n│   on c/main.tf line 20, in resource \"aws_kms_alias\" \"this\":\n╵\n\nError: Unsupported argument\n\n  on d/main.tf line 3, in resource \"aws_kms_key\" \"this\":\n\nError: provider refused\n";
        let done = completed_by_module(text);
        assert_eq!(done["a"], 1);
        assert_eq!(done["b"], 1);
        let dirs = BTreeMap::from([("d".to_string(), "_d".to_string())]);
        let errors = errors(text, &dirs);
        assert_eq!(errors.len(), 3);
        assert_eq!(errors[0].headline, "creating KMS Alias: AlreadyExists");
        assert_eq!(errors[0].module.as_deref(), Some("c"));
        assert_eq!(errors[1].module.as_deref(), Some("_d"));
        assert_eq!(errors[2].module, None);
    }

    #[test]
    fn an_import_of_nothing_names_its_module_in_its_text() {
        let text = "Error: Cannot import non-existent remote object

While attempting to import an existing object to
\"module.scratch.aws_kms_key.this\", the provider detected that no object
exists with the given id.
";
        let errors = errors(text, &BTreeMap::new());
        assert_eq!(errors[0].module.as_deref(), Some("scratch"));
    }
}
