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
        "{}: {} ({}, {}) in {}, {}; valid{}",
        live.display(),
        crate::diag::count(fleet.nodes.len(), "node"),
        crate::diag::count_of(keys, "key or replica", "keys and replicas"),
        crate::diag::count(fleet.nodes.len() - keys, "consumer"),
        crate::diag::count(fleet.accounts.len(), "account"),
        crate::diag::count_of(loaded.dag.graph.edge_count(), "dependency", "dependencies"),
        loaded.layout.summary()
    );
    Ok(())
}
