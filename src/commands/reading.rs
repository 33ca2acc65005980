//! What the commands that read AWS share (`import discover`, `audit`): the accounts and regions
//! of the tree to read, and reading them through the AWS read path with the profile's endpoint.

use std::collections::BTreeSet;

use super::context::{AppError, Loaded};
use crate::aws::{Reader, Region, Target, Unknown};
use crate::cli::Global;

/// The accounts and regions to read: the tree's, or those named with `--account` and
/// `--region`. `purpose` says, for an account the tree lacks, why only the tree's are read.
pub fn targets(
    loaded: &Loaded,
    accounts: &[String],
    regions: &[String],
    purpose: &str,
) -> Result<Vec<Target>, AppError> {
    let fleet = &loaded.fleet;
    for name in accounts {
        if !fleet.accounts.contains_key(name) {
            let known: Vec<&str> = fleet.accounts.keys().map(String::as_str).collect();
            return Err(AppError::Usage(format!(
                "--account {name}: no such account in the tree (accounts: {}); {purpose}: add live/{name}/account.yaml first",
                known.join(", ")
            )));
        }
    }
    for region in regions {
        if !crate::config::regions::is_known(region) {
            return Err(AppError::Usage(format!(
                "--region {region}: not an AWS region orch knows"
            )));
        }
    }
    let mut out = Vec::new();
    for (name, account) in &fleet.accounts {
        if !accounts.is_empty() && !accounts.contains(name) {
            continue;
        }
        let chosen = if regions.is_empty() {
            &account.regions
        } else {
            regions
        };
        for region in chosen {
            out.push(Target {
                account: name.clone(),
                account_id: account.account_id.clone(),
                role_arn: account.role_arn.clone(),
                region: region.clone(),
            });
        }
    }
    Ok(out)
}

/// Reads `targets` with at most `concurrency` calls in flight, through the endpoint of the
/// run's profile (`--profile`, `--endpoint`); returns what was read and the seconds it took.
pub fn read(
    loaded: &Loaded,
    global: &Global,
    targets: Vec<Target>,
    concurrency: u16,
) -> Result<(Vec<Result<Region, Unknown>>, f64), AppError> {
    let endpoint = loaded.run_profile(global)?.and_then(|p| p.endpoint);
    let reader = Reader::new(endpoint, usize::from(concurrency));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    say!(
        "reading {} account/region pair(s) of {} account(s)...",
        targets.len(),
        targets
            .iter()
            .map(|t| &t.account)
            .collect::<BTreeSet<_>>()
            .len()
    );
    let started = std::time::Instant::now();
    let read = runtime.block_on(reader.read_all(targets));
    Ok((read, started.elapsed().as_secs_f64()))
}
