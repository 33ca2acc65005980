//! Switching layouts: `orch layout migrate` moves every node's terraform state to the layout
//! orch.yaml names (one state per node, or one per stack, DESIGN §9), and [`guard`] refuses a
//! run while a selected node's state is still in the other layout, where terraform would see no
//! state and plan to create every key again.
//!
//! A move rewrites terraform's own states (format 4): a node's managed resources gain or lose
//! the `module.<name>` of its module block in the stack, and so do the dependencies terraform
//! recorded between them. Data sources are dropped (the next plan reads them again). The states
//! are read and written through the fleet's [`StateStore`]: files under `.orch/state/`, or
//! objects in the account's bucket through terraform's `state pull` and `state push`, which
//! take the state lock and check lineage and serial. The move is written once for all, in an
//! order that makes a crash harmless: every state about to change is copied to
//! `.orch/migrations/<run>/` first; destinations are written whole and read back before any
//! source is emptied; a node found in both states with the same resources counts as moved, so
//! running the command again after a `kill -9` finishes the job. No resource is ever in neither
//! state.

mod guard;
mod state;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::config::Fleet;
use crate::layout::{Home, Placement};
use crate::state::{Place, StateStore, StoreError};
use crate::terraform::redact::Redactor;
use crate::terraform::{remote, runs};
use state::{bump, fresh_state, output_name, rewrite, sorted, Move, Outputs, States};

pub use guard::{guard, GuardError};

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("{state}: {why}\n  = help: this is not a state orch wrote for the {layout} layout; nothing was moved. Move it away if it is not orch's, or restore it from .orch/migrations/")]
    Shape {
        state: String,
        layout: &'static str,
        why: String,
    },
    #[error("{address} has different resources in {from} and in {to}; nothing was moved\n  = help: a state changed after a move stopped half-way, and orch will not choose; compare the two, remove the node's resources from the wrong one (`terraform state rm`), and run `orch layout migrate` again")]
    Conflict {
        address: String,
        from: String,
        to: String,
    },
    #[error("{0}\n  = help: wait for it, or remove the lock file if no terraform runs; nothing was moved")]
    StateLocked(String),
    #[error(
        "{0}\n  = help: nothing was moved; run `orch layout migrate` again once this is fixed"
    )]
    Unreadable(String),
    #[error("{state}: {why}\n  = help: the move stopped here, with every resource still in a state: no old state is emptied before every new one is read back. Run `orch layout migrate` again once this is fixed and it finishes the move; the backups are in {backups}")]
    Write {
        state: String,
        why: String,
        backups: PathBuf,
    },
    #[error("{0}")]
    NoTerminal(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("after writing {state}, reading it back did not find the resources of {address}; nothing was removed from the old state\n  = help: the backups are in {backups}")]
    Verify {
        state: String,
        address: String,
        backups: PathBuf,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> MigrateError + '_ {
    move |source| MigrateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl From<StoreError> for MigrateError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Locked(text) => MigrateError::StateLocked(text),
            StoreError::Unreadable(text) => MigrateError::Unreadable(text),
            StoreError::Io { path, source } => MigrateError::Io { path, source },
        }
    }
}

/// What `orch layout migrate` did.
enum Outcome {
    Nothing,
    Declined,
    Interrupted,
    Moved { nodes: usize, resources: usize },
}

/// `orch layout migrate`: waits for the terraform a killed run left (it may still be writing a
/// state), then moves every node's state into the layout orch.yaml names, asking first unless
/// `auto_approve`. `remote` reaches the buckets when state is in S3. The caller holds the tree
/// lock. Returns the exit code.
pub fn execute(
    fleet: &Fleet,
    store: &dyn StateStore,
    auto_approve: bool,
) -> Result<u8, MigrateError> {
    let state_dir = fleet.state_dir();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(io(&state_dir))?;
    let run_id = crate::engine::run_id();
    runtime.block_on(async {
        let interrupt = crate::signal::listen();
        let redactor = Redactor::from_env();
        if runs::recover(&state_dir, &run_id, &redactor, interrupt.clone()).await {
            say!("interrupted while waiting for the terraform of a killed run; nothing was moved");
            return Ok(130);
        }
        let terminal = std::io::stdin().is_terminal();
        let mut confirm = || {
            if auto_approve {
                Ok(true)
            } else if !terminal {
                Err(MigrateError::NoTerminal(
                    "orch layout migrate rewrites terraform state and there is no terminal to confirm on; nothing was moved\n  = help: check the moves listed above, then pass --auto-approve".into(),
                ))
            } else {
                crate::prompt::ask("Move this state? Only 'yes' is accepted: ")
                    .map_err(io(Path::new("stdin")))
            }
        };
        let interrupted = || *interrupt.borrow() > 0;
        let accounts: BTreeSet<&String> =
            fleet.nodes.iter().map(|n| &n.address.account).collect();
        tokio::task::block_in_place(|| store.check(&accounts))
            .map_err(MigrateError::Unreadable)?;
        let moved = tokio::task::block_in_place(|| {
            migrate(fleet, store, &run_id, &mut confirm, &interrupted)
        })?;
        Ok(match moved {
            Outcome::Nothing => 0,
            Outcome::Declined => 1,
            Outcome::Interrupted => 130,
            Outcome::Moved { nodes, resources } => {
                say!(
                    "moved the state of {nodes} node(s), {resources} resource(s), into the {} layout; `orch plan --all` should now show no changes",
                    crate::layout::current(fleet).name()
                );
                0
            }
        })
    })
}

/// Moves the state of every node of the fleet that is in the other layout into the layout
/// orch.yaml names. `confirm` is asked once, after the moves are printed, whether to go on.
fn migrate(
    fleet: &Fleet,
    store: &dyn StateStore,
    run_id: &str,
    confirm: &mut dyn FnMut() -> Result<bool, MigrateError>,
    interrupted: &(dyn Fn() -> bool + Sync),
) -> Result<Outcome, MigrateError> {
    let (layout, other) = (crate::layout::current(fleet), crate::layout::other(fleet));
    let homes = |layout: &dyn Placement| fleet.nodes.iter().map(|n| layout.home(n).place).collect();
    let sources = States::load(store, other, homes(other))?;
    let destinations = States::load(store, layout, homes(layout))?;
    let moves = plan(fleet, store, &sources, &destinations)?;
    let resources: usize = moves.iter().map(|m| m.resources.len()).sum();
    if moves.is_empty() {
        say!(
            "nothing to move: no node of this tree has state in the {} layout",
            other.name()
        );
        return Ok(Outcome::Nothing);
    }
    let touched: Vec<&Place> = moves
        .iter()
        .flat_map(|m| [&m.from.place, &m.to.place])
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    store.check_locks(&touched)?;
    let mut text = format!(
        "move the state of {} node(s), {resources} resource(s), from the {} layout to the {} layout:\n",
        moves.len(),
        other.name(),
        layout.name()
    );
    for m in &moves {
        let at = |h: &Home| match &h.module {
            Some(module) => format!("{} ({module})", store.show(&h.place)),
            None => store.show(&h.place),
        };
        text.push_str(&format!(
            "  {}: {} resource(s), {} -> {}{}\n",
            m.address,
            m.resources.len(),
            at(&m.from),
            at(&m.to),
            if m.arrived {
                " (already there: a move stopped half-way; only the old state is cleared)"
            } else {
                ""
            }
        ));
    }
    say_raw!("{text}");
    if !confirm()? {
        say!("nothing was moved");
        return Ok(Outcome::Declined);
    }
    let backups = fleet.state_dir().join("migrations").join(run_id);
    for place in &touched {
        let state = sources.get(place).or_else(|| destinations.get(place));
        if let Some(state) = state {
            back_up(&backups, place, &state.text)?;
        }
    }
    say!("backed up every state it changes to {}", backups.display());
    let written = |place: &Place, r: Result<(), String>| {
        r.map_err(|why| MigrateError::Write {
            state: store.show(place),
            why,
            backups: backups.clone(),
        })
    };
    // Destinations first, each written whole and read back: until then every source is intact.
    let mut by_destination: BTreeMap<&Place, Vec<&Move>> = BTreeMap::new();
    for m in moves.iter().filter(|m| !m.arrived) {
        by_destination.entry(&m.to.place).or_default().push(m);
    }
    let arriving: Vec<(&Place, Vec<&Move>)> = by_destination.into_iter().collect();
    let whole = write_all(store, &arriving, interrupted, |(place, arriving)| {
        let base = destinations.get(place);
        let mut json = base.map_or_else(|| fresh_state(&moves, &sources), |s| s.json.clone());
        let list = json
            .entry("resources")
            .or_insert_with(|| Value::Array(Vec::new()))
            .as_array_mut()
            .expect("checked to be a list");
        for m in arriving {
            list.extend(m.resources.iter().cloned());
        }
        for m in arriving {
            m.outputs.write_into(&mut json);
        }
        bump(&mut json, base.is_none());
        written(place, store.write(place, &json))
    })?;
    if !whole {
        return Ok(Outcome::Interrupted);
    }
    let arrived: Vec<Place> = arriving.iter().map(|(p, _)| (*p).clone()).collect();
    let back = States::load(store, layout, arrived)?;
    for m in moves.iter().filter(|m| !m.arrived) {
        let found = back
            .get(&m.to.place)
            .map(|s| sorted(s.managed_of(m.to.module.as_deref())));
        if found != Some(sorted(m.resources.clone())) {
            return Err(MigrateError::Verify {
                state: store.show(&m.to.place),
                address: m.address.clone(),
                backups,
            });
        }
    }
    // Only now the sources: each keeps what is not moved (a module of a node no longer in the
    // tree), or is cleared when nothing managed is left.
    let mut by_source: BTreeMap<&Place, Vec<&Move>> = BTreeMap::new();
    for m in &moves {
        by_source.entry(&m.from.place).or_default().push(m);
    }
    let leaving: Vec<(&Place, Vec<&Move>)> = by_source.into_iter().collect();
    let whole = write_all(store, &leaving, interrupted, |(place, leaving)| {
        let state = sources
            .get(place)
            .expect("a source holds the moved resources");
        let gone: BTreeSet<Option<&str>> =
            leaving.iter().map(|m| m.from.module.as_deref()).collect();
        let kept: Vec<Value> = state
            .resources()
            .iter()
            .filter(|r| !gone.contains(&r.get("module").and_then(Value::as_str)))
            .cloned()
            .collect();
        let mut json = state.json.clone();
        bump(&mut json, false);
        if kept.iter().any(|r| r["mode"] == "managed") {
            json.insert("resources".into(), Value::Array(kept));
            if let Some(outputs) = json.get_mut("outputs").and_then(Value::as_object_mut) {
                for module in gone.iter().flatten() {
                    outputs.shift_remove(output_name(module));
                }
            }
            written(place, store.write(place, &json))?;
            say!(
                "{} keeps resources of modules that are no node of this tree",
                store.show(place)
            );
            Ok(())
        } else {
            json.insert("resources".into(), Value::Array(Vec::new()));
            json.insert("outputs".into(), Value::Object(Map::new()));
            written(place, store.clear(place, &json))
        }
    })?;
    if !whole {
        return Ok(Outcome::Interrupted);
    }
    Ok(Outcome::Moved {
        nodes: moves.len(),
        resources,
    })
}

/// Runs `write` on each of `items`, as many at once as the store takes; once `interrupted`, no
/// more start. Ok(false) when it stopped there; the first error of an item otherwise, after the
/// others have ended (each state is written whole or not at all).
fn write_all<T: Sync>(
    store: &dyn StateStore,
    items: &[T],
    interrupted: &(dyn Fn() -> bool + Sync),
    write: impl Fn(&T) -> Result<(), MigrateError> + Sync,
) -> Result<bool, MigrateError> {
    let done = remote::parallel(items, store.parallelism(), |item| {
        if interrupted() {
            return Ok(false);
        }
        write(item).map(|()| true)
    });
    let mut whole = true;
    for result in done {
        whole &= result?;
    }
    if !whole {
        say!("interrupted: stopped between two states; run `orch layout migrate` again to finish the move");
    }
    Ok(whole)
}

/// Every node with managed resources in the other layout, checked; nothing is written.
fn plan(
    fleet: &Fleet,
    store: &dyn StateStore,
    sources: &States,
    destinations: &States,
) -> Result<Vec<Move>, MigrateError> {
    let mut moves = Vec::new();
    for node in &fleet.nodes {
        let from = sources.layout.home(node);
        let Some(source) = sources.get(&from.place) else {
            continue;
        };
        let managed = source.managed_of(from.module.as_deref());
        if managed.is_empty() {
            continue;
        }
        let to = destinations.layout.home(node);
        let resources: Vec<Value> = managed
            .iter()
            .map(|r| rewrite(r, from.module.as_deref(), to.module.as_deref()))
            .collect();
        let there = destinations
            .get(&to.place)
            .map(|s| s.managed_of(to.module.as_deref()))
            .unwrap_or_default();
        let arrived = !there.is_empty();
        if arrived && sorted(there) != sorted(resources.clone()) {
            return Err(MigrateError::Conflict {
                address: node.address.to_string(),
                from: store.show(&from.place),
                to: store.show(&to.place),
            });
        }
        let outputs = Outputs::of(source, &from, &to);
        moves.push(Move {
            address: node.address.to_string(),
            from,
            to,
            resources,
            outputs,
            arrived,
        });
    }
    Ok(moves)
}

/// Saves `text`, the state at `place` before the move, as `backups/<name>/terraform.tfstate`,
/// durable before any state changes.
fn back_up(backups: &Path, place: &Place, text: &[u8]) -> Result<(), MigrateError> {
    let copy = backups.join(&place.name).join("terraform.tfstate");
    let dir = copy.parent().expect("a file is in a directory");
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&copy)
        .map_err(io(&copy))?;
    out.write_all(text)
        .and_then(|()| out.sync_all())
        .map_err(io(&copy))?;
    crate::state::sync_dir(dir).map_err(io(dir))
}

#[cfg(test)]
mod tests;
