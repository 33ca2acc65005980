//! `orch graph`: the DAG as text, Graphviz dot, JSON, or the GitHub Actions matrix of shards.

use std::collections::BTreeSet;

use serde_json::json;

use super::context::{print, AppError, Loaded};
use crate::cli::GraphFormat;

/// `orch graph [--format F] [--shards N]`.
pub fn exec(loaded: &Loaded, format: GraphFormat, shards: Option<u32>) -> Result<(), AppError> {
    if shards.is_some() && !matches!(format, GraphFormat::GithubMatrix) {
        return Err(AppError::Usage(
            "--shards sets the shards of `--format github-matrix`; add that or drop --shards"
                .into(),
        ));
    }
    print(&graph_text(loaded, format, shards));
    Ok(())
}

fn graph_text(loaded: &Loaded, format: GraphFormat, shards: Option<u32>) -> String {
    let fleet = &loaded.fleet;
    let dag = &loaded.dag;
    match format {
        GraphFormat::Text => {
            let width = fleet
                .nodes
                .iter()
                .map(|n| n.address.to_string().len())
                .max()
                .unwrap_or(0);
            let mut out = String::new();
            for &i in &dag.order {
                let node = &fleet.nodes[i];
                let deps: Vec<String> = dag
                    .dependencies(i)
                    .map(|d| fleet.nodes[d].address.to_string())
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect();
                let after = if deps.is_empty() {
                    String::new()
                } else {
                    format!("  after {}", deps.join(", "))
                };
                let line = format!(
                    "{:<width$}  {:<10}{after}",
                    node.address.to_string(),
                    node.kind_name()
                );
                out.push_str(line.trim_end());
                out.push('\n');
            }
            out
        }
        GraphFormat::Dot => {
            let mut out = String::from("digraph orch {\n  rankdir=LR;\n");
            for node in &fleet.nodes {
                out.push_str(&format!(
                    "  \"{}\" [label=\"{}\\n{}\"];\n",
                    node.address,
                    node.address,
                    node.kind_name()
                ));
            }
            let mut edges: Vec<_> = dag.edges().collect();
            edges.sort_by_key(|(a, b, _)| (*a, *b));
            for (from, to, edge) in edges {
                out.push_str(&format!(
                    "  \"{}\" -> \"{}\" [label=\"{}\"];\n",
                    fleet.nodes[from].address,
                    fleet.nodes[to].address,
                    serde_json::to_value(edge.kind)
                        .ok()
                        .and_then(|v| v.as_str().map(String::from))
                        .unwrap_or_default()
                ));
            }
            out.push_str("}\n");
            out
        }
        GraphFormat::GithubMatrix => crate::shard::github_matrix(shards.unwrap_or_else(|| {
            crate::shard::default_count(fleet.nodes.len(), fleet.settings.parallelism)
        })),
        GraphFormat::Json => {
            let nodes: Vec<_> = dag
                .order
                .iter()
                .map(|&i| {
                    let node = &fleet.nodes[i];
                    let deps: BTreeSet<String> = dag
                        .dependencies(i)
                        .map(|d| fleet.nodes[d].address.to_string())
                        .collect();
                    json!({
                        "address": node.address.to_string(),
                        "kind": node.kind_name(),
                        "account_id": fleet.account_of(node).account_id,
                        "dependencies": deps,
                    })
                })
                .collect();
            let mut edges: Vec<_> = dag.edges().collect();
            edges.sort_by_key(|(a, b, _)| (*a, *b));
            let edges: Vec<_> = edges
                .into_iter()
                .map(|(from, to, edge)| {
                    json!({
                        "from": fleet.nodes[from].address.to_string(),
                        "to": fleet.nodes[to].address.to_string(),
                        "kind": edge.kind,
                        "declared_at": fleet.sources.locate(edge.span),
                    })
                })
                .collect();
            serde_json::to_string_pretty(&json!({"nodes": nodes, "edges": edges}))
                .expect("JSON serializes")
                + "\n"
        }
    }
}
