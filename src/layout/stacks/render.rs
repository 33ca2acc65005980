//! The root module of a stack (`layout: stacks`), under `.orch/work/_stacks/<account>/<region>/<tier>/`.
//! Each node is a module block named after it, whose source is a child directory holding the
//! node's own `main.tf`, `variables.tf` and `outputs.tf` exactly as the per-node layout renders
//! them; so a resource `aws_kms_key.this` of node `data` is `module.data.aws_kms_key.this` in the
//! stack's state. The root has the provider (one process per stack), the backend, and one output
//! per node carrying the module's outputs. Every user value travels in the root's
//! `terraform.tfvars.json`, under `nodes.<module>`; the HCL names only orch's own identifiers
//! (validated node names and variable names).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use super::{module_name, Stack, Stacks, STACKS_DIR};
use crate::render::{
    write_files, RenderError, Rendered, Renderer, TemplateCache, WriteStats, IMPORTS_VARIABLE,
};

/// A stack's files: the root's, and each member node's (its per-node render, of which the child
/// directory takes the module files).
pub struct RenderedStack {
    pub root: Vec<(&'static str, String)>,
    /// (fleet index, the node as the per-node layout renders it), in the stack's member order.
    pub nodes: Vec<(usize, Rendered)>,
}

/// The files of a node's module that its child directory holds.
const MODULE_FILES: [&str; 3] = ["main.tf", "variables.tf", "outputs.tf"];

impl RenderedStack {
    /// Writes the root, then each node's child directory (named after the node).
    pub fn write(&self, dir: &Path, renderer: &Renderer) -> Result<WriteStats, RenderError> {
        let mut stats = write_files(dir, &self.root)?;
        for (i, rendered) in &self.nodes {
            let files: Vec<(&str, String)> = rendered
                .files
                .iter()
                .filter(|(name, _)| MODULE_FILES.contains(name))
                .cloned()
                .collect();
            let name = &renderer.fleet.nodes[*i].address.name;
            stats.add(write_files(&dir.join(name), &files)?);
        }
        Ok(stats)
    }
}

impl Renderer<'_> {
    /// Renders and writes the given stacks (`orch render`): each whole, whatever part of it is
    /// selected, since terraform plans a stack's root module as a whole.
    pub fn render_stacks(
        &self,
        stacks: &Stacks,
        chosen: &BTreeSet<usize>,
    ) -> Result<WriteStats, RenderError> {
        let mut cache = TemplateCache::default();
        let mut stats = WriteStats::default();
        for &s in chosen {
            let stack = &stacks.stacks[s];
            let rendered = self.render_stack(stack, &mut cache)?;
            stats.add(rendered.write(&self.stack_dir(stack), self)?);
            stats.provisional += rendered.nodes.iter().filter(|(_, r)| r.provisional).count();
        }
        Ok(stats)
    }

    /// `.orch/work/_stacks/<account>/<region>/<tier>/`.
    pub fn stack_dir(&self, stack: &Stack) -> PathBuf {
        self.fleet
            .state_dir()
            .join("work")
            .join(STACKS_DIR)
            .join(stack.to_string())
    }

    pub fn render_stack(
        &self,
        stack: &Stack,
        cache: &mut TemplateCache,
    ) -> Result<RenderedStack, RenderError> {
        let fleet = self.fleet;
        let first = &fleet.nodes[stack.members[0]];
        let mut nodes = Vec::with_capacity(stack.members.len());
        let mut vars: Vec<Map<String, Value>> = Vec::with_capacity(stack.members.len());
        for &i in &stack.members {
            let rendered = self.render(&fleet.nodes[i], cache)?;
            let tfvars = rendered
                .files
                .iter()
                .find(|(name, _)| *name == "terraform.tfvars.json")
                .map(|(_, text)| text.as_str())
                .unwrap_or("{}");
            match serde_json::from_str(tfvars) {
                Ok(Value::Object(mut map)) => {
                    // A stack's import blocks are in its root (terraform allows them nowhere
                    // else), reading `var.imports`, not the module's inputs.
                    if rendered.imports.is_some() {
                        map.remove("imports");
                    }
                    vars.push(map)
                }
                _ => unreachable!("the renderer writes the tfvars as a JSON object"),
            }
            nodes.push((i, rendered));
        }
        // One provider configuration per distinct set of default tags: the first set is the
        // default provider, the others aliases. Most stacks have one set, so one provider.
        let mut tag_sets: Vec<Value> = Vec::new();
        let provider_of: Vec<usize> = vars
            .iter()
            .map(|v| {
                let tags = v.get("default_tags").cloned().unwrap_or(json!({}));
                match tag_sets.iter().position(|t| *t == tags) {
                    Some(p) => p,
                    None => {
                        tag_sets.push(tags);
                        tag_sets.len() - 1
                    }
                }
            })
            .collect();
        let common = self.stack_common_context(stack, first);
        let mut providers = String::new();
        for p in 0..tag_sets.len() {
            let mut context = common.clone();
            if p > 0 {
                context["alias"] = json!(alias(p));
                context["tags"] = json!(format!("var.provider_tags[\"{}\"]", alias(p)));
            }
            if p > 0 {
                providers.push('\n');
            }
            providers.push_str(&cache.render(
                self.templates,
                first,
                "common/providers.tf",
                &context,
            )?);
        }
        let mut main = String::new();
        // Sensitive: a custom kind's module may have sensitive outputs, which terraform refuses
        // to pass on in a plain one; `output -json` still shows orch every value.
        let mut outputs = String::from(
            "# One output per node: its module's outputs, recorded by orch after each apply.\n\n",
        );
        let mut node_vars = Map::new();
        let mut imports = Map::new();
        let members: BTreeSet<usize> = stack.members.iter().copied().collect();
        for (k, (&i, node_vars_of)) in stack.members.iter().zip(vars).enumerate() {
            let node = &fleet.nodes[i];
            let m = module_name(node);
            let _ = writeln!(main, "module \"{m}\" {{");
            let _ = writeln!(main, "  source = \"./{}\"", node.address.name);
            if provider_of[k] > 0 {
                let _ = writeln!(
                    main,
                    "  providers = {{\n    aws = aws.{}\n  }}",
                    alias(provider_of[k])
                );
            }
            // An order between nodes of one stack (a `depends_on` inside an account, region
            // and tier) is terraform's to keep now.
            let after: BTreeSet<String> = node
                .depends_on
                .iter()
                .filter_map(|d| {
                    fleet
                        .nodes
                        .binary_search_by(|n| n.address.cmp(&d.value))
                        .ok()
                })
                .filter(|d| members.contains(d))
                .map(|d| format!("module.{}", module_name(&fleet.nodes[d])))
                .collect();
            if !after.is_empty() {
                let list: Vec<String> = after.into_iter().collect();
                let _ = writeln!(main, "  depends_on = [{}]", list.join(", "));
            }
            main.push('\n');
            let width = node_vars_of.keys().map(String::len).max().unwrap_or(0);
            for name in node_vars_of.keys() {
                let _ = writeln!(main, "  {name:<width$} = var.nodes[\"{m}\"][\"{name}\"]");
            }
            main.push_str("}\n\n");
            let _ = writeln!(
                outputs,
                "output \"{m}\" {{\n  description = \"Outputs of {}.\"\n  value       = module.{m}\n  sensitive   = true\n}}\n",
                node.address
            );
            if let Some(ids) = &nodes[k].1.imports {
                let context = json!({
                    "prefix": format!("module.{m}."),
                    "ids": format!("var.imports[\"{m}\"]"),
                });
                main.push_str(&self.imports_file(node, &context, cache)?);
                main.push('\n');
                imports.insert(m.clone(), ids.clone());
            }
            node_vars.insert(m, Value::Object(node_vars_of));
        }
        let mut root_vars = Map::new();
        root_vars.insert("region".into(), json!(stack.region));
        root_vars.insert(
            "account_id".into(),
            json!(fleet.account_of(first).account_id),
        );
        if let Some(role) = &fleet.account_of(first).role_arn {
            root_vars.insert("role_arn".into(), json!(role));
        }
        if let Some(endpoint) = self.profile.and_then(|p| p.endpoint.as_ref()) {
            root_vars.insert("endpoint".into(), json!(endpoint));
        }
        root_vars.insert("default_tags".into(), tag_sets[0].clone());
        let extra: Map<String, Value> = tag_sets
            .iter()
            .enumerate()
            .skip(1)
            .map(|(p, tags)| (alias(p), tags.clone()))
            .collect();
        root_vars.insert("provider_tags".into(), Value::Object(extra));
        root_vars.insert("nodes".into(), Value::Object(node_vars));
        let mut variables = format!(
            "{}\n{STACK_VARIABLES}",
            cache.render(self.templates, first, "common/variables.tf", &common)?
        );
        if !imports.is_empty() {
            root_vars.insert("imports".into(), Value::Object(imports));
            variables.push('\n');
            variables.push_str(IMPORTS_VARIABLE);
        }
        let root = vec![
            (
                "versions.tf",
                cache.render(self.templates, first, "common/versions.tf", &common)?,
            ),
            ("providers.tf", providers),
            (
                "backend.tf",
                cache.render(self.templates, first, "common/backend.tf", &common)?,
            ),
            ("variables.tf", variables),
            ("main.tf", main),
            ("outputs.tf", outputs),
            (
                "terraform.tfvars.json",
                serde_json::to_string_pretty(&Value::Object(root_vars)).expect("JSON serializes")
                    + "\n",
            ),
        ];
        Ok(RenderedStack { root, nodes })
    }

    fn stack_common_context(&self, stack: &Stack, first: &crate::config::Node) -> Value {
        let settings = &self.fleet.settings;
        let account = self.fleet.account_of(first);
        json!({
            "required_version": settings.required_version,
            "aws_provider": settings.aws_provider,
            "has_role": account.role_arn.is_some(),
            "endpoint": self.profile.and_then(|p| p.endpoint.as_ref()).is_some(),
            "backend": self.stack_backend(stack, account),
        })
    }

    /// The backend of a stack's state: `.orch/state/_stacks/<stack>/terraform.tfstate`, or the
    /// S3 key `<key_prefix>/_stacks/<stack>/terraform.tfstate` in the account's bucket.
    fn stack_backend(&self, stack: &Stack, account: &crate::config::Account) -> Value {
        self.backend
            .block(account, &format!("{STACKS_DIR}/{stack}"))
    }
}

/// The alias of the `p`th provider configuration of a stack (the first has none).
fn alias(p: usize) -> String {
    format!("tags_{}", p + 1)
}

/// The root's own variables, after the ones every module has.
const STACK_VARIABLES: &str = r#"variable "provider_tags" {
  description = "Default tags of each further provider configuration, by alias."
  type        = map(map(string))
  default     = {}
}

variable "nodes" {
  description = "Inputs of each node's module, by module name (terraform.tfvars.json)."
  type        = any
}
"#;
