//! `orch generate tfvars`: the inputs of every node of one environment as tfvars files, for a
//! team's own pipelines, written as a set orch owns (`render::generated`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::context::{AppError, Loaded};
use crate::cli::TfvarsFormat;
use crate::config::Profile;
use crate::render::{self, hcl};

/// `orch generate tfvars --env ENV --out DIR`.
pub fn exec(
    loaded: &Loaded,
    profile: Option<&Profile>,
    env: &str,
    out: &Path,
    format: TfvarsFormat,
) -> Result<(), AppError> {
    let fleet = &loaded.fleet;
    let accounts: Vec<&str> = fleet
        .accounts
        .values()
        .filter(|a| a.environment == env)
        .map(|a| a.name.as_str())
        .collect();
    if accounts.is_empty() {
        let envs: BTreeSet<&str> = fleet
            .accounts
            .values()
            .map(|a| a.environment.as_str())
            .collect();
        return Err(AppError::Usage(format!(
            "no account has environment `{env}` (environments: {})",
            envs.into_iter().collect::<Vec<_>>().join(", ")
        )));
    }
    if let Some(inside) = inside_of(out, &fleet.live) {
        return Err(AppError::Usage(format!(
            "--out {} is inside the live/ tree ({}), which would then read the tfvars as part of the tree; choose a directory outside it",
            out.display(),
            inside.display()
        )));
    }
    let outputs = render::RecordedOutputs::for_fleet(fleet);
    let endpoint = profile.and_then(|p| p.endpoint.as_deref());
    let mut files = Vec::new();
    for node in fleet
        .nodes
        .iter()
        .filter(|n| accounts.contains(&n.address.account.as_str()))
    {
        let inputs = render::inputs::inputs(fleet, node, endpoint, &outputs);
        let (name, text) = match format {
            TfvarsFormat::Json => (
                format!("{}.tfvars.json", node.address.name),
                serde_json::to_string_pretty(&serde_json::Value::Object(inputs.vars))
                    .expect("JSON serializes")
                    + "\n",
            ),
            TfvarsFormat::Hcl => (
                format!("{}.tfvars", node.address.name),
                hcl::tfvars(&inputs.vars),
            ),
        };
        let path = Path::new(&node.address.account)
            .join(&node.address.region)
            .join(name);
        files.push((path, text));
    }
    let done = render::generated::write_set(out, env, &files)?;
    println!(
        "wrote tfvars of {} nodes of environment {env} ({}) into {}: {} files written, {} unchanged, {} removed",
        files.len(),
        accounts.join(", "),
        out.display(),
        done.written,
        done.unchanged,
        done.removed
    );
    Ok(())
}

/// The directory of `dir` that `path` lies in (after resolving links and `..`), if it does.
fn inside_of(path: &Path, dir: &Path) -> Option<PathBuf> {
    let dir = std::fs::canonicalize(dir).ok()?;
    let absolute = std::env::current_dir().ok()?.join(path);
    // The path may not exist yet: resolve its deepest existing ancestor.
    let resolved = absolute.ancestors().find_map(|a| {
        let rest = absolute.strip_prefix(a).ok()?;
        std::fs::canonicalize(a).ok().map(|c| c.join(rest))
    })?;
    resolved.starts_with(&dir).then_some(dir)
}
