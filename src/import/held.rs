//! What the tree already holds of an account: its keys (by the key id of an `import:`, or the
//! one recorded in `.orch/outputs/<address>.json` at the node's last apply), their aliases, its
//! grants, and the node names taken. `import discover` matches what it read against it, so a
//! key is never drafted twice; `orch audit` asks it which keys orch manages.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::{Fleet, NodeKind};
use crate::render::RecordedOutputs;

/// Keys, aliases and grants of the tree, to match keys read from AWS against.
pub struct Held {
    /// (account, region, key id) -> address.
    keys: BTreeMap<(String, String, String), String>,
    /// (account, region, alias) -> address.
    aliases: BTreeMap<(String, String, String), String>,
    /// (account, region, grant id) -> address.
    pub grants: BTreeMap<(String, String, String), String>,
    /// (account, region) -> node names taken (nodes and directories).
    pub names: BTreeMap<(String, String), BTreeSet<String>>,
}

impl Held {
    pub fn of(fleet: &Fleet) -> Held {
        let outputs = RecordedOutputs::for_fleet(fleet);
        let mut held = Held {
            keys: BTreeMap::new(),
            aliases: BTreeMap::new(),
            grants: BTreeMap::new(),
            names: BTreeMap::new(),
        };
        for node in &fleet.nodes {
            let a = &node.address;
            let slot = |id: &str| (a.account.clone(), a.region.clone(), id.to_string());
            let (import, aliases) = match &node.kind {
                NodeKind::Key(k) => (k.import.as_ref(), k.aliases.as_slice()),
                NodeKind::Replica(r) => (r.import.as_ref(), r.aliases.as_slice()),
                NodeKind::Grant(g) => {
                    let ids = g
                        .import
                        .as_ref()
                        .map(|i| i.id.clone())
                        .into_iter()
                        .chain(outputs.get(a, "grant_id"));
                    for id in ids {
                        held.grants.insert(slot(&id), a.to_string());
                    }
                    (None, &[][..])
                }
                _ => (None, &[][..]),
            };
            let ids = import
                .map(|i| i.id.clone())
                .into_iter()
                .chain(outputs.get(a, "key_id"));
            for id in ids {
                held.keys.insert(slot(&id), a.to_string());
            }
            for alias in aliases {
                held.aliases.insert(slot(alias), a.to_string());
            }
            held.names
                .entry((a.account.clone(), a.region.clone()))
                .or_default()
                .insert(a.name.clone());
        }
        // A directory that is no node (yet) is taken too: orch never writes into it.
        for (account, regions) in fleet.accounts.iter().map(|(n, a)| (n, &a.regions)) {
            for region in regions {
                let dir = fleet.live.join(account).join(region);
                let Ok(entries) = std::fs::read_dir(&dir) else {
                    continue;
                };
                let names = held
                    .names
                    .entry((account.clone(), region.clone()))
                    .or_default();
                names.extend(
                    entries
                        .flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned()),
                );
            }
        }
        held
    }

    /// The node that holds the key `key_id` of `account` (its name in the tree) in `region`, and
    /// how it was matched: by the key id (`import:` or the last apply's outputs), else by one of
    /// `aliases` (without `alias/`), the key's aliases in that region.
    pub fn holder(
        &self,
        account: &str,
        region: &str,
        key_id: &str,
        aliases: &[String],
    ) -> Option<(&String, &'static str)> {
        let slot = |id: &str| (account.to_string(), region.to_string(), id.to_string());
        self.keys
            .get(&slot(key_id))
            .map(|a| (a, "key id"))
            .or_else(|| {
                aliases
                    .iter()
                    .find_map(|alias| self.aliases.get(&slot(alias)))
                    .map(|a| (a, "alias"))
            })
    }
}
