//! The `live/` tree, from YAML files to a validated [`Fleet`]. Knows no processes and no templates.
//! Stages, in order: `tree` (discover and parse files), `settings` (orch.yaml, account.yaml),
//! `layer` (defaults), `node` (one node's kind), `link` (rules across nodes).

pub mod address;
mod decode;
mod layer;
mod link;
pub mod model;
mod node;
mod principal;
pub mod regions;
mod settings;
mod tree;
mod wave;
mod yaml;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

pub use address::Address;
pub use model::*;
pub use node::{BUILTIN_KINDS, GRANT_OPERATIONS};
pub use principal::{check_principal_in, check_service, partition_of};
pub use settings::DEFAULT_LOCK_TIMEOUT;

use crate::diag::{Diagnostic, Diagnostics, Sources, Span};

/// A loaded tree: the fleet, partial when the tree has errors (only the nodes that decoded), and
/// every finding so far. Later stages (policy checks, the DAG) run on a partial fleet too, so one
/// run reports every error; a fleet with errors is never rendered or run.
pub struct Checked {
    pub fleet: Fleet,
    pub diagnostics: Diagnostics,
}

/// Loads and checks the tree under `live`. `custom_kinds` are the user's template folders.
pub fn load(live: &Path, custom_kinds: &BTreeSet<String>) -> Checked {
    let mut sources = Sources::default();
    let mut diags = Diagnostics::default();
    if !live.is_dir() {
        diags.push(
            Diagnostic::at_path(live, format!("{} is not a directory", live.display()))
                .with_help("run orch where live/ is, or pass --live DIR"),
        );
        return Checked {
            fleet: Fleet {
                live: live.to_path_buf(),
                settings: settings::default_settings(),
                accounts: BTreeMap::new(),
                nodes: Vec::new(),
                sources,
            },
            diagnostics: diags,
        };
    }
    let mut raw = tree::discover(live, &mut sources, &mut diags);
    let (settings, fleet_defaults) = match &raw.fleet {
        Some(file) => settings::read_orch_yaml(file, &mut diags),
        None => (settings::default_settings(), settings::empty_mapping()),
    };

    let mut accounts = BTreeMap::new();
    let mut layers = BTreeMap::new();
    let mut declared = Vec::new();
    let mut ids: BTreeMap<String, (String, Span)> = BTreeMap::new();
    // Nodes that exist but could not be read: their own errors are reported, and a reference to
    // one of them is not also "not a node of this tree".
    let mut broken = std::mem::take(&mut raw.unloaded);
    for raw_account in &raw.accounts {
        let account_read = raw_account
            .file
            .as_ref()
            .and_then(|file| settings::read_account(&raw_account.name, file, &mut diags));
        let Some((account, defaults)) = account_read else {
            for raw_region in &raw_account.regions {
                for raw_node in &raw_region.nodes {
                    broken.nodes.insert(Address::new(
                        &raw_account.name,
                        &raw_region.name,
                        &raw_node.name,
                    ));
                }
            }
            continue;
        };
        // An account without a valid id has had its error; comparing it would only add noise.
        if !account.account_id.is_empty() {
            if let Some((other, span)) = ids.get(&account.account_id) {
                diags.push(
                    Diagnostic::error(
                        account.id_span,
                        format!(
                            "accounts `{other}` and `{}` have the same account_id",
                            account.name
                        ),
                    )
                    .with_note(*span, format!("`{other}` is declared here")),
                );
            }
            ids.insert(
                account.account_id.clone(),
                (account.name.clone(), account.id_span),
            );
        }
        let account_layer = layer::merge(&fleet_defaults, &defaults);
        for region in &account.regions {
            layers.insert(
                (account.name.clone(), region.clone()),
                account_layer.clone(),
            );
        }
        for raw_region in &raw_account.regions {
            let region_defaults = match &raw_region.file {
                Some(file) => settings::read_region(file, &mut diags),
                None => settings::empty_mapping(),
            };
            // Nodes of a region that is not enabled are still decoded below, so their own
            // errors come out in the same run.
            if !account.regions.contains(&raw_region.name) {
                let anchor = raw_region
                    .file
                    .as_ref()
                    .or(raw_region.nodes.first().map(|n| &n.file))
                    .map(|f| Span::file(f.source));
                if let Some(span) = anchor {
                    diags.push(
                        Diagnostic::error(
                            span,
                            format!(
                                "region {} is not enabled for account {}",
                                raw_region.name, account.name
                            ),
                        )
                        .with_note(
                            account.regions_span,
                            "the account's regions are listed here",
                        )
                        .with_help(format!(
                            "add {} to `regions` in account.yaml",
                            raw_region.name
                        )),
                    );
                }
            }
            let region_layer = layer::merge(&account_layer, &region_defaults);
            for raw_node in &raw_region.nodes {
                let address = Address::new(&account.name, &raw_region.name, &raw_node.name);
                let Some(own) = raw_node.file.root.as_mapping() else {
                    diags.push(Diagnostic::error(
                        Span::file(raw_node.file.source),
                        "node.yaml must be a mapping of `field: value` pairs",
                    ));
                    broken.nodes.insert(address);
                    continue;
                };
                let effective = layer::merge(&region_layer, own);
                match node::decode(
                    address.clone(),
                    &account,
                    raw_node.file.source as u32,
                    effective,
                    custom_kinds,
                    &mut diags,
                ) {
                    Some(d) => declared.push(d),
                    None => {
                        broken.nodes.insert(address);
                    }
                }
            }
            layers.insert(
                (account.name.clone(), raw_region.name.clone()),
                region_layer,
            );
        }
        accounts.insert(account.name.clone(), account);
    }

    settings::check_buckets(&settings, &accounts, &mut diags);
    let linker = link::Linker {
        accounts: &accounts,
        layers: &layers,
        broken: &broken,
    };
    let nodes = linker.link(declared, &mut diags);
    diags.dedup();
    Checked {
        fleet: Fleet {
            live: live.to_path_buf(),
            settings,
            accounts,
            nodes,
            sources,
        },
        diagnostics: diags,
    }
}
