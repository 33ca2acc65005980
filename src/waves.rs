//! Which rollout wave each node belongs to (the first wave whose globs match its address), and
//! the checks on a wave layout: a wave that gets no node, and a node that depends on a node of a
//! later wave (it could not be rolled out in order). A single glob that matches nothing is an
//! error of `commands::load`, with the glob's own line.

use crate::config::Fleet;
use crate::diag::Diagnostic;
use crate::graph::{glob_match, Dag};

/// For each node (index into `fleet.nodes`), the index of its wave, or `None`.
pub fn assign(fleet: &Fleet) -> Vec<Option<usize>> {
    fleet
        .nodes
        .iter()
        .map(|node| {
            let address = node.address.to_string();
            fleet
                .settings
                .waves
                .iter()
                .position(|w| w.patterns.iter().any(|p| glob_match(&p.value, &address)))
        })
        .collect()
}

/// The findings on the wave layout of a complete fleet.
pub fn check(fleet: &Fleet, dag: &Dag) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let waves = &fleet.settings.waves;
    let assigned = assign(fleet);
    let addresses: Vec<String> = fleet.nodes.iter().map(|n| n.address.to_string()).collect();
    for (w, wave) in waves.iter().enumerate() {
        if !assigned.contains(&Some(w)) {
            let taken = addresses
                .iter()
                .any(|a| wave.patterns.iter().any(|p| glob_match(&p.value, a)));
            let why = if taken {
                "every node it matches belongs to an earlier wave"
            } else {
                "its globs match no node"
            };
            out.push(
                Diagnostic::error(
                    wave.span,
                    format!("wave `{}` gets no node: {why}", wave.name),
                )
                .with_help("a node belongs to the first wave that matches it; fix the globs (see `orch graph`) or remove the wave"),
            );
        }
    }
    for (from, to, edge) in dag.edges() {
        let (Some(dep_wave), Some(node_wave)) = (assigned[from], assigned[to]) else {
            continue;
        };
        if dep_wave > node_wave {
            out.push(
                Diagnostic::error(
                    edge.span,
                    format!(
                        "{} (wave `{}`) depends on {}, which is in the later wave `{}`",
                        fleet.nodes[to].address,
                        waves[node_wave].name,
                        fleet.nodes[from].address,
                        waves[dep_wave].name
                    ),
                )
                .with_note(
                    waves[node_wave].span,
                    format!("{} belongs to this wave", fleet.nodes[to].address),
                )
                .with_help("a rollout applies waves in order: move the dependency to the same or an earlier wave"),
            );
        }
    }
    out
}
