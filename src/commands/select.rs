//! The nodes a command's filters select: address globs, `--account`, `--region`, `--all`, then
//! `--with-deps`, then the part of one shard.

use std::collections::BTreeSet;

use super::context::{AppError, Loaded};
use crate::cli::Filters;
use crate::graph::{glob_match, glob_problem};

/// The most address globs one command takes; more is a script gone wrong, and every glob is
/// matched against every node.
const MAX_GLOBS: usize = 1000;

/// The nodes a command's filters select, as indexes into `fleet.nodes`.
pub fn select(loaded: &Loaded, filters: &Filters) -> Result<BTreeSet<usize>, AppError> {
    let fleet = &loaded.fleet;
    if !filters.all
        && filters.patterns.is_empty()
        && filters.account.is_empty()
        && filters.region.is_empty()
        && !filters.changed
    {
        return Err(AppError::Usage(
            "name the nodes to work on (address globs, --account, --region) or pass --all".into(),
        ));
    }
    if filters.patterns.len() > MAX_GLOBS {
        return Err(AppError::Usage(format!(
            "{} address globs; the limit is {MAX_GLOBS}: select with fewer, broader globs, --account or --region",
            filters.patterns.len()
        )));
    }
    for pattern in &filters.patterns {
        if let Some(problem) = glob_problem(pattern) {
            let start: String = pattern.chars().take(40).collect();
            return Err(AppError::Usage(format!(
                "`{start}...`: {problem}; `**` matches any number of segments"
            )));
        }
    }
    for account in &filters.account {
        if !fleet.accounts.contains_key(account) {
            return Err(AppError::Usage(format!(
                "no account `{account}` in this tree"
            )));
        }
    }
    for pattern in &filters.patterns {
        if !fleet
            .nodes
            .iter()
            .any(|n| glob_match(pattern, &n.address.to_string()))
        {
            return Err(AppError::Usage(format!(
                "`{pattern}` matches no node of this tree (see `orch graph`)"
            )));
        }
    }
    let selected: BTreeSet<usize> = fleet
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| {
            let address = n.address.to_string();
            (filters.patterns.is_empty()
                || filters.patterns.iter().any(|p| glob_match(p, &address)))
                && (filters.account.is_empty() || filters.account.contains(&n.address.account))
                && (filters.region.is_empty() || filters.region.contains(&n.address.region))
        })
        .map(|(i, _)| i)
        .collect();
    if selected.is_empty() {
        return Err(AppError::Usage("the filters select no node".into()));
    }
    let selected = if filters.with_deps {
        loaded.dag.with_dependencies(&selected)
    } else {
        selected
    };
    // Last, after --with-deps: every selected node in exactly one shard.
    let Some(shard) = filters.shard else {
        return Ok(selected);
    };
    let mine = shard.filter(fleet, &selected);
    say!(
        "shard {shard}: {} of {} selected nodes; {} depend on nodes of other shards (their outputs come from {}, else placeholders: provisional)",
        mine.len(),
        selected.len(),
        crate::shard::leaning_on_others(&loaded.dag, &selected, &mine),
        crate::state::outputs_source(fleet)
    );
    Ok(mine)
}
