//! The outputs of dependencies from remote state: before a run whose states are shared by every
//! checkout (S3), the store is checked for the selected nodes' accounts, and the outputs of their
//! dependencies are read from the states that hold them into `.orch/outputs/` (a cache of them),
//! so a fresh checkout plans with real values. A service the engine calls; it knows neither the
//! store nor the layout it is given.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Instant;

use super::Placement;
use crate::config::Fleet;
use crate::graph::Dag;
use crate::state::{Place, StateStore};

/// Checks the store and reads the outputs of the dependencies of `selected`; does nothing when
/// the store's states are this checkout's own files. An error here means nothing ran.
pub fn read_dependency_outputs(
    store: &dyn StateStore,
    placement: &dyn Placement,
    fleet: &Fleet,
    dag: &Dag,
    selected: &BTreeSet<usize>,
) -> Result<(), String> {
    if !store.is_remote() || selected.is_empty() {
        return Ok(());
    }
    let started = Instant::now();
    let accounts: BTreeSet<&String> = selected
        .iter()
        .map(|&i| &fleet.nodes[i].address.account)
        .collect();
    let checked = store.check(&accounts)?;
    let dependencies: BTreeSet<usize> =
        selected.iter().flat_map(|&i| dag.dependencies(i)).collect();
    // The states to read: one per state holding a dependency (a node's own, or its stack's).
    let mut states: BTreeMap<Place, Vec<usize>> = BTreeMap::new();
    for &i in &dependencies {
        let home = placement.home(&fleet.nodes[i]);
        states.entry(home.place).or_default().push(i);
    }
    let places: Vec<Place> = states.keys().cloned().collect();
    let outputs_dir = fleet.state_dir().join("outputs");
    let mut failed = Vec::new();
    for ((place, nodes), read) in states.iter().zip(store.outputs(&places)) {
        let recorded = read.and_then(|outputs| {
            nodes.iter().try_for_each(|&i| {
                let node = &fleet.nodes[i];
                let own = placement.node_outputs(node, outputs.as_deref());
                record(&outputs_dir, &node.address.to_string(), own.as_deref())
            })
        });
        if let Err(e) = recorded {
            failed.push(format!(
                "cannot read the outputs of {} from the remote state {}: {e}",
                nodes
                    .iter()
                    .map(|&i| fleet.nodes[i].address.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                place.name
            ));
        }
    }
    if !failed.is_empty() {
        return Err(failed.join("\n"));
    }
    say!(
        "{checked}, outputs of {} dependenc{} read from remote state in {:.1}s",
        dependencies.len(),
        if dependencies.len() == 1 { "y" } else { "ies" },
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `.orch/outputs/<address>.json` as the remote state says: written when it has outputs,
/// removed when it has none (the node is not applied, whatever this checkout recorded).
fn record(dir: &Path, address: &str, outputs: Option<&str>) -> Result<(), String> {
    let path = dir.join(format!("{address}.json"));
    match outputs {
        Some(text) => {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
            }
            crate::render::write_atomic(&path, text.as_bytes())
                .map_err(|e| format!("cannot write {}: {e}", path.display()))
        }
        None => match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(format!("cannot remove {}: {e}", path.display()))
            }
            _ => Ok(()),
        },
    }
}
