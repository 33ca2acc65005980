//! The layout guard: a run of selected nodes is refused while one of them still has its state in
//! the layout orch.yaml does not name, where terraform would see no state and plan to create
//! every key again.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use super::state::State;
use super::MigrateError;
use crate::config::Fleet;
use crate::diag::Diagnostic;
use crate::layout::Placement;
use crate::state::{Place, StateStore};

/// Why [`guard`] stopped a run.
pub enum GuardError {
    /// A selected node's state is in the other layout.
    Refused(Diagnostic),
    /// The states could not be looked at.
    Failed(String),
}

/// Refuses a run of `nodes` while one of them has managed resources in the other layout. The
/// common case, every node in the layout orch.yaml names, costs one look per state prefix: the
/// store tells which states of the other layout exist (a stat per file, or one `workspace list`
/// per account and region in S3), and only those that can hold a selected node's resources are
/// read. Where reading a state costs a terraform run and the layout orch.yaml names keeps nodes
/// as module blocks of a shared state (stacks), that state is read first (one pull for many
/// nodes): a node it holds is where orch.yaml says, and its old state is not read at all. A state emptied by a move or a
/// destroy holds nothing back.
pub fn guard(
    fleet: &Fleet,
    store: &dyn StateStore,
    nodes: &BTreeSet<usize>,
) -> Result<(), GuardError> {
    if nodes.is_empty() {
        return Ok(());
    }
    let started = Instant::now();
    let (layout, other) = (crate::layout::current(fleet), crate::layout::other(fleet));
    let accounts: BTreeSet<&String> = nodes
        .iter()
        .map(|&i| &fleet.nodes[i].address.account)
        .collect();
    store.check(&accounts).map_err(GuardError::Failed)?;
    let failed = |e: MigrateError| GuardError::Failed(e.to_string());
    let nodes: Vec<usize> = nodes.iter().copied().collect();
    let homes: BTreeSet<Place> = nodes
        .iter()
        .map(|&i| layout.home(&fleet.nodes[i]).place)
        .collect();
    store
        .check_states(&homes.into_iter().collect::<Vec<_>>())
        .map_err(|e| failed(e.into()))?;
    let places: Vec<Place> = nodes
        .iter()
        .map(|&i| other.home(&fleet.nodes[i]).place)
        .collect();
    let found = store.exists(&places).map_err(|e| failed(e.into()))?;
    let mut candidates: Vec<usize> = nodes
        .iter()
        .zip(&found)
        .filter(|(_, &f)| f)
        .map(|(&i, _)| i)
        .collect();
    // The states of `layout` of `nodes`, each read once: those not known to exist looked for
    // first (`known` false), since pulling a state that does not exist creates it.
    let read = |nodes: &[usize], layout: &dyn Placement, known: bool| {
        let places: Vec<Place> = nodes
            .iter()
            .map(|&i| layout.home(&fleet.nodes[i]).place)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let texts = match known {
            true => store.pull(&places)?,
            false => store.read(&places)?,
        };
        Ok::<_, MigrateError>(
            places
                .into_iter()
                .zip(texts)
                .filter_map(|(p, t)| Some((p, t?)))
                .collect::<BTreeMap<Place, Vec<u8>>>(),
        )
    };
    // A node in a module block of a state it shares with others: that state is read first.
    let shared = candidates
        .iter()
        .any(|&i| layout.home(&fleet.nodes[i]).module.is_some());
    if store.is_remote() && shared {
        let held_in: BTreeMap<Place, State> = read(&candidates, layout, false)
            .map_err(failed)?
            .into_iter()
            .filter_map(|(p, t)| Some((p.clone(), State::parse(t, "", layout).ok()?)))
            .collect();
        // A node its state holds is where orch.yaml says; an unreadable state proves nothing.
        let held: BTreeSet<usize> = candidates
            .iter()
            .copied()
            .filter(|&i| {
                let at = layout.home(&fleet.nodes[i]);
                held_in
                    .get(&at.place)
                    .is_some_and(|s| !s.managed_of(at.module.as_deref()).is_empty())
            })
            .collect();
        candidates.retain(|i| !held.contains(i));
    }
    let found = if candidates.is_empty() {
        Vec::new()
    } else {
        let texts = read(&candidates, other, true).map_err(failed)?;
        stranded(fleet, store, &candidates, other, texts)
    };
    if store.is_remote() {
        say!(
            "layout guard: states of the {} layout listed, {} state(s) pulled in {:.1}s",
            other.name(),
            store.pulls(),
            started.elapsed().as_secs_f64()
        );
    }
    if found.is_empty() {
        Ok(())
    } else {
        Err(GuardError::Refused(refusal(fleet, found)))
    }
}

/// The nodes of `nodes` with managed resources at their homes in `layout`, each with where
/// they are, from `texts`, the states of `layout` that exist. A state orch cannot read counts as
/// holding resources: it is not safe to run over it.
fn stranded(
    fleet: &Fleet,
    store: &dyn StateStore,
    nodes: &[usize],
    layout: &dyn Placement,
    texts: BTreeMap<Place, Vec<u8>>,
) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let states: BTreeMap<Place, Result<State, MigrateError>> = texts
        .into_iter()
        .map(|(place, text)| {
            let state = State::parse(text, &store.show(&place), layout);
            (place, state)
        })
        .collect();
    for &i in nodes {
        let node = &fleet.nodes[i];
        let at = layout.home(node);
        match states.get(&at.place) {
            None => {}
            Some(Ok(state)) => {
                let n = state.managed_of(at.module.as_deref()).len();
                if n > 0 {
                    found.push((
                        node.address.to_string(),
                        format!("{n} resource(s) in {}", store.show(&at.place)),
                    ));
                }
            }
            Some(Err(e)) => found.push((node.address.to_string(), e.to_string())),
        }
    }
    found
}

/// The error of a guard that found `found` (node, where) in the other layout.
fn refusal(fleet: &Fleet, found: Vec<(String, String)>) -> Diagnostic {
    let (layout, other) = (crate::layout::current(fleet), crate::layout::other(fleet));
    let shown: Vec<String> = found
        .iter()
        .take(5)
        .map(|(a, what)| format!("{a} ({what})"))
        .collect();
    let more = match found.len() {
        n if n > 5 => format!(" and {} more", n - 5),
        _ => String::new(),
    };
    let message = format!(
        "orch.yaml says `layout: {}`, but the state of {} selected node(s) is still in the {} layout: {}{more}",
        layout.name(),
        found.len(),
        other.name(),
        shown.join(", "),
    );
    let at = match fleet.settings.layout_span {
        Some(span) => Diagnostic::error(span, message),
        None => Diagnostic::at_path(fleet.live.join("orch.yaml"), message),
    };
    at.with_help(format!(
        "run `orch layout migrate` to move it to the {} layout (a plan now would create those resources again), or set `layout: {}` back",
        layout.name(),
        other.name()
    ))
}
