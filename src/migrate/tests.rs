//! The move and the guard through the in-memory store: what sits above the state stores, tested
//! without files or terraform.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::{json, Value};

use super::{guard, migrate, GuardError, Outcome};
use crate::config::{Fleet, NodeKind};
use crate::state::memory::Memory;
use crate::state::Place;

fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

/// The shipped tree in `dir` (a move writes its backups beside it), with `layout: <layout>`
/// added to its orch.yaml.
fn shipped(dir: &Path, layout: &str) -> Fleet {
    let live = dir.join("live");
    if !live.exists() {
        copy(&Path::new(env!("CARGO_MANIFEST_DIR")).join("live"), &live);
    }
    let settings = live.join("orch.yaml");
    let text = std::fs::read_to_string(&settings).unwrap();
    let text: String = text
        .lines()
        .filter(|l| !l.starts_with("layout:"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&settings, format!("{text}layout: {layout}\n")).unwrap();
    let checked = crate::config::load(&live, &BTreeSet::new());
    assert!(!checked.diagnostics.has_errors());
    checked.fleet
}

fn keys(fleet: &Fleet) -> Vec<usize> {
    (0..fleet.nodes.len())
        .filter(|&i| matches!(fleet.nodes[i].kind, NodeKind::Key(_)))
        .collect()
}

fn own(fleet: &Fleet, i: usize) -> Place {
    let a = &fleet.nodes[i].address;
    Place {
        name: a.to_string(),
        account: a.account.clone(),
    }
}

/// A node's own state as terraform writes it: one key, its id as an output.
fn own_state(id: &str) -> Value {
    json!({
        "version": 4, "terraform_version": "1.11.4", "serial": 3, "lineage": format!("l-{id}"),
        "outputs": {"key_id": {"value": id, "type": "string"}},
        "resources": [{
            "mode": "managed", "type": "aws_kms_key", "name": "this",
            "provider": "provider[\"registry.terraform.io/hashicorp/aws\"]",
            "instances": [{"schema_version": 0, "attributes": {"id": id}}]
        }]
    })
}

fn all(fleet: &Fleet) -> BTreeSet<usize> {
    (0..fleet.nodes.len()).collect()
}

fn run(fleet: &Fleet, store: &Memory, id: &str) -> Outcome {
    migrate(fleet, store, id, &mut || Ok(true), &|| false).unwrap()
}

#[test]
fn a_fleet_moves_into_stacks_and_back_through_any_store() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = shipped(dir.path(), "stacks");
    let store = Memory::default();
    let keys = keys(&fleet);
    assert!(keys.len() > 2);
    for &i in &keys {
        store.put(own(&fleet, i), &own_state(&format!("k{i}")));
    }
    match guard(&fleet, &store, &all(&fleet)) {
        Err(GuardError::Refused(d)) => assert!(
            d.message.contains(&format!(
                "the state of {} selected node(s) is still in the per-node layout",
                keys.len()
            )),
            "{}",
            d.message
        ),
        _ => panic!("a fleet whose state is in the other layout must be refused"),
    }
    match run(&fleet, &store, "to-stacks") {
        Outcome::Moved { nodes, resources } => {
            assert_eq!((nodes, resources), (keys.len(), keys.len()))
        }
        _ => panic!("nothing moved"),
    }
    assert!(guard(&fleet, &store, &all(&fleet)).is_ok());
    let placement = crate::layout::current(&fleet);
    for &i in &keys {
        assert!(
            store.get(&own(&fleet, i)).is_none(),
            "an emptied own state is cleared"
        );
        let home = placement.home(&fleet.nodes[i]);
        let stack = store.get(&home.place).unwrap();
        let module = home.module.unwrap();
        let held: Vec<&Value> = stack["resources"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["module"] == module.as_str())
            .collect();
        assert_eq!(held.len(), 1, "{stack}");
        assert_eq!(held[0]["instances"][0]["attributes"]["id"], format!("k{i}"));
        let name = module.strip_prefix("module.").unwrap();
        assert_eq!(stack["outputs"][name]["value"]["key_id"], format!("k{i}"));
    }
    let fleet = shipped(dir.path(), "per-node");
    assert!(matches!(
        guard(&fleet, &store, &all(&fleet)),
        Err(GuardError::Refused(_))
    ));
    match run(&fleet, &store, "back") {
        Outcome::Moved { nodes, .. } => assert_eq!(nodes, keys.len()),
        _ => panic!("nothing moved back"),
    }
    for &i in &keys {
        let state = store.get(&own(&fleet, i)).unwrap();
        assert_eq!(state["resources"][0].get("module"), None);
        assert_eq!(
            state["resources"][0]["instances"][0]["attributes"]["id"],
            format!("k{i}")
        );
        assert_eq!(state["outputs"]["key_id"]["value"], format!("k{i}"));
    }
    assert!(matches!(run(&fleet, &store, "again"), Outcome::Nothing));
    assert!(guard(&fleet, &store, &all(&fleet)).is_ok());
}

#[test]
fn a_node_its_shared_state_holds_is_not_refused_and_its_own_state_is_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = shipped(dir.path(), "stacks");
    let store = Memory::default();
    let keys = keys(&fleet);
    for &i in &keys {
        store.put(own(&fleet, i), &own_state(&format!("k{i}")));
    }
    // Cut short after every stack was written: each node is in both layouts.
    let backups = fleet.state_dir().join("migrations");
    let snapshot: Vec<(Place, Value)> = store
        .places()
        .into_iter()
        .map(|p| {
            let s = store.get(&p).unwrap();
            (p, s)
        })
        .collect();
    run(&fleet, &store, "first");
    for (place, state) in snapshot {
        store.put(place, &state);
    }
    assert!(backups.join("first").is_dir());
    let stacks: BTreeSet<Place> = keys
        .iter()
        .map(|&i| crate::layout::current(&fleet).home(&fleet.nodes[i]).place)
        .collect();
    let before = crate::state::StateStore::pulls(&store);
    assert!(guard(&fleet, &store, &all(&fleet)).is_ok());
    assert_eq!(
        crate::state::StateStore::pulls(&store) - before,
        stacks.len(),
        "one pull per stack, none of the own states"
    );
    // Running the move again finishes it: only the old states are cleared.
    match run(&fleet, &store, "second") {
        Outcome::Moved { nodes, .. } => assert_eq!(nodes, keys.len()),
        _ => panic!("the half-done move was not finished"),
    }
    for &i in &keys {
        assert!(store.get(&own(&fleet, i)).is_none());
    }
}
