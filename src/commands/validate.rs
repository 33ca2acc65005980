//! `orch validate`: the tree loaded and checked (loading is the check); one summary line.

use std::path::Path;

use super::context::{AppError, Loaded};
use crate::config::NodeKind;

pub fn exec(loaded: &Loaded, live: &Path) -> Result<(), AppError> {
    let fleet = &loaded.fleet;
    let keys = fleet
        .nodes
        .iter()
        .filter(|n| n.key_ref().is_none() || matches!(n.kind, NodeKind::Replica(_)))
        .count();
    println!(
        "{}: {} nodes ({} keys and replicas, {} consumers) in {} accounts, {} dependencies; valid{}",
        live.display(),
        fleet.nodes.len(),
        keys,
        fleet.nodes.len() - keys,
        fleet.accounts.len(),
        loaded.dag.graph.edge_count(),
        loaded.layout.summary()
    );
    Ok(())
}
