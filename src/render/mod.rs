//! Rendering: one Terraform root module per node, into `.orch/work/<address>/`. Knows Tera and
//! files; knows no processes. Templates only see orch's own facts (booleans, validated names,
//! paths); every user value travels in `terraform.tfvars.json`.

pub mod generated;
pub mod hcl;
pub mod inputs;
pub mod templates;
mod write;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};

use crate::config::{Account, Fleet, Node, NodeKind, Profile};
pub use inputs::RecordedOutputs;
pub use templates::Templates;
pub use write::{write_atomic, write_files};

/// The files of one node, in the order they are written.
pub struct Rendered {
    pub files: Vec<(&'static str, String)>,
    pub provisional: bool,
    /// The import ids of a node that adopts existing resources (see `inputs::imports`).
    pub imports: Option<Value>,
}

/// The variable a root with import blocks reads their ids from.
pub const IMPORTS_VARIABLE: &str = r#"variable "imports" {
  description = "Ids of the existing resources this root adopts (import blocks)."
  type        = any
  default     = {}
}
"#;

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("rendering {address} ({template}): {message}")]
    Template {
        address: String,
        template: String,
        message: String,
    },
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What a render changed on disk.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WriteStats {
    pub written: usize,
    pub unchanged: usize,
    pub removed: usize,
    /// Nodes rendered with placeholders for outputs of dependencies not applied yet.
    pub provisional: usize,
}

impl WriteStats {
    pub fn add(&mut self, other: WriteStats) {
        self.written += other.written;
        self.unchanged += other.unchanged;
        self.removed += other.removed;
        self.provisional += other.provisional;
    }
}

/// Where a root module keeps its state, as rendering and terraform need to know it. Each state
/// store (`crate::state`) implements it; rendering does not know which one it has.
pub trait Backend: Send + Sync {
    /// The `backend` context of `common/backend.tf` for the state named `state` of `account`:
    /// a node's address, or any other `/`-separated path of plain names
    /// (`_stacks/<account>/<region>/<tier>`). Every value in it is an escaped HCL string.
    fn block(&self, account: &Account, state: &str) -> Value;
    /// How long terraform waits for a state lock held by another run.
    fn lock_timeout(&self) -> Duration;
}

pub struct Renderer<'a> {
    pub fleet: &'a Fleet,
    pub templates: &'a Templates,
    pub profile: Option<&'a Profile>,
    pub backend: &'a dyn Backend,
    pub outputs: RecordedOutputs,
}

impl<'a> Renderer<'a> {
    pub fn new(
        fleet: &'a Fleet,
        templates: &'a Templates,
        profile: Option<&'a Profile>,
        backend: &'a dyn Backend,
    ) -> Self {
        Renderer {
            fleet,
            templates,
            profile,
            backend,
            outputs: RecordedOutputs::for_fleet(fleet),
        }
    }

    pub fn work_dir(&self, node: &Node) -> PathBuf {
        self.fleet
            .state_dir()
            .join("work")
            .join(node.address.to_string())
    }

    /// Renders one node. `cache` holds template outputs by context: most nodes of a kind share
    /// their template context, so a 10,000-node fleet renders each distinct file once.
    pub fn render(&self, node: &Node, cache: &mut TemplateCache) -> Result<Rendered, RenderError> {
        let endpoint = self.profile.and_then(|p| p.endpoint.as_deref());
        let inputs = inputs::inputs(self.fleet, node, endpoint, &self.outputs);
        let common = self.common_context(node);
        let kind = self.kind_context(node);
        let kind_name = node.kind_name();
        let mut render = |template: String, context: &Value| {
            cache.render(self.templates, node, &template, context)
        };
        let variables = format!(
            "{}\n{}",
            render("common/variables.tf".into(), &common)?,
            render(format!("{kind_name}/variables.tf"), &kind)?
        );
        let mut files = vec![
            ("versions.tf", render("common/versions.tf".into(), &common)?),
            (
                "providers.tf",
                render("common/providers.tf".into(), &common)?,
            ),
            ("backend.tf", render("common/backend.tf".into(), &common)?),
            ("variables.tf", variables),
            ("main.tf", render(format!("{kind_name}/main.tf"), &kind)?),
            (
                "outputs.tf",
                render(format!("{kind_name}/outputs.tf"), &kind)?,
            ),
            (
                "terraform.tfvars.json",
                serde_json::to_string_pretty(&Value::Object(inputs.vars)).expect("JSON serializes")
                    + "\n",
            ),
        ];
        let imports = inputs::imports(self.fleet, node, &self.outputs);
        if let Some(ids) = &imports {
            let context = json!({"prefix": "", "ids": "var.imports"});
            let blocks = self.imports_file(node, &context, cache)?;
            files.push(("imports.tf", format!("{blocks}\n{IMPORTS_VARIABLE}")));
            let tfvars = files
                .iter_mut()
                .find(|(name, _)| *name == "terraform.tfvars.json")
                .expect("rendered above");
            let mut vars: serde_json::Map<String, Value> =
                serde_json::from_str(&tfvars.1).expect("rendered above");
            vars.insert("imports".into(), ids.clone());
            tfvars.1 =
                serde_json::to_string_pretty(&Value::Object(vars)).expect("JSON serializes") + "\n";
        }
        Ok(Rendered {
            files,
            provisional: inputs.provisional,
            imports,
        })
    }

    /// A node's `imports.tf` (its kind's import blocks) with `context`'s `prefix` before each
    /// resource address and `ids` the expression holding the node's import ids. A template
    /// folder from before `orch import` has none: that is an error only for a node that imports.
    pub fn imports_file(
        &self,
        node: &Node,
        context: &Value,
        cache: &mut TemplateCache,
    ) -> Result<String, RenderError> {
        let name = format!("{}/imports.tf", node.kind_name());
        if !self.templates.tera.get_template_names().any(|t| t == name) {
            return Err(RenderError::Template {
                address: node.address.to_string(),
                template: name.clone(),
                message: format!(
                    "the node adopts existing resources (`import:`) but the templates have no {name}; copy it from orch's built-in templates (orch's repository, templates/{name})"
                ),
            });
        }
        cache.render(self.templates, node, &name, context)
    }

    fn common_context(&self, node: &Node) -> Value {
        let settings = &self.fleet.settings;
        let account = self.fleet.account_of(node);
        let backend = self.backend.block(account, &node.address.to_string());
        json!({
            "required_version": settings.required_version,
            "aws_provider": settings.aws_provider,
            "has_role": account.role_arn.is_some(),
            "endpoint": self.profile.and_then(|p| p.endpoint.as_ref()).is_some(),
            "backend": backend,
        })
    }

    fn kind_context(&self, node: &Node) -> Value {
        let prevent_destroy = match &node.kind {
            NodeKind::Key(k) => k.prevent_destroy,
            NodeKind::Replica(r) => r.prevent_destroy,
            _ => false,
        };
        json!({ "prevent_destroy": prevent_destroy })
    }

    /// Renders and writes the given nodes (indexes into `fleet.nodes`) on every core.
    pub fn render_all(&self, nodes: &[usize]) -> Result<WriteStats, RenderError> {
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(nodes.len().max(1));
        let chunk = nodes.len().div_ceil(threads).max(1);
        std::thread::scope(|scope| {
            let handles: Vec<_> = nodes
                .chunks(chunk)
                .map(|part| {
                    scope.spawn(move || {
                        let mut cache = TemplateCache::default();
                        let mut stats = WriteStats::default();
                        for &i in part {
                            let node = &self.fleet.nodes[i];
                            let rendered = self.render(node, &mut cache)?;
                            stats.add(write_files(&self.work_dir(node), &rendered.files)?);
                            stats.provisional += usize::from(rendered.provisional);
                        }
                        Ok::<_, RenderError>(stats)
                    })
                })
                .collect();
            let mut total = WriteStats::default();
            for handle in handles {
                total.add(handle.join().expect("a render thread panicked")?);
            }
            Ok(total)
        })
    }
}

#[derive(Default)]
pub struct TemplateCache {
    rendered: HashMap<(String, String), String>,
}

impl TemplateCache {
    pub fn render(
        &mut self,
        templates: &Templates,
        node: &Node,
        name: &str,
        context: &Value,
    ) -> Result<String, RenderError> {
        let key = (name.to_string(), context.to_string());
        if let Some(text) = self.rendered.get(&key) {
            return Ok(text.clone());
        }
        let ctx = tera::Context::from_value(context.clone()).expect("the context is an object");
        let text = templates
            .tera
            .render(name, &ctx)
            .map_err(|e| RenderError::Template {
                address: node.address.to_string(),
                template: name.to_string(),
                message: templates::error_chain(&e),
            })?;
        self.rendered.insert(key, text.clone());
        Ok(text)
    }
}
