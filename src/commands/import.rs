//! `orch import discover | apply`: adopting the keys a team already has. `discover` reads the
//! accounts of the tree through the AWS read path, drafts a node per key (checked against the
//! tree it makes, twice if the tree's defaults call for choices), and writes it into `live/`
//! (or prints it with `--dry-run`). `apply` runs the adopted nodes through the engine with
//! import blocks, refusing any plan that would create or destroy something.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::json;

use super::context::{exit, AppError, Loaded};
use super::select::select;
use crate::aws::{Reader, Target};
use crate::cli::{DiscoverArgs, Global, RunOptions};
use crate::config::NodeKind;
use crate::import::classify::{classify, Estate, Options};
use crate::import::draft::{draft, Draft, Overrides, PolicyChoice};
use crate::import::verify::{self, Findings};
use crate::import::write::write_all;
use crate::policy::{self, describe, KeyFacts, Permissions};
use crate::terraform::workflow::Action;

/// Exit code of a discovery that could not read everything it was asked to (a region unknown,
/// a key left out because its tree would differ from AWS).
const PARTIAL: u8 = 2;

/// Keys not adopted, each with why: the tree would differ from AWS.
type Dropped = Vec<(String, Vec<String>)>;

pub fn discover(loaded: &Loaded, global: &Global, args: &DiscoverArgs) -> Result<(), AppError> {
    let fleet = &loaded.fleet;
    let targets = super::reading::targets(
        loaded,
        &args.account,
        &args.region,
        "import adopts keys into accounts the tree has",
    )?;
    let (read, seconds) = super::reading::read(loaded, global, targets, args.concurrency)?;
    let mut estate = classify(
        read,
        Options {
            include_disabled: args.include_disabled,
        },
    );
    let id = crate::engine::run_id();
    let today = format!("{}-{}-{}", &id[..4], &id[4..6], &id[6..8]);
    let scratch = fleet
        .state_dir()
        .join("import")
        .join(std::process::id().to_string());
    let result = settle(loaded, &mut estate, &today, &scratch);
    let _ = std::fs::remove_dir_all(&scratch);
    let (draft, findings, dropped) = result?;
    print_report(&estate, &draft, &findings, &dropped, seconds);
    if let Some(path) = &args.report {
        let report = json!({
            "adopted": draft.adopted,
            "matched": draft.matched,
            "skipped": estate.skipped,
            "grants_skipped": draft.grants_skipped,
            "not_adopted": dropped,
            "aws_managed": estate.aws_managed,
            "service_grants": estate.service_grants,
            "unknown": estate.unknown,
            "calls": estate.calls,
            "keys_read": estate.keys_read,
            "defaults_taken": {"deletion_window_days": "AWS does not return a key's deletion window; every adopted key takes the tree's default"},
            "seconds": seconds,
        });
        crate::render::write_atomic(
            path,
            (serde_json::to_string_pretty(&report).expect("JSON") + "\n").as_bytes(),
        )
        .map_err(|e| AppError::Usage(format!("cannot write the report {}: {e}", path.display())))?;
    }
    if args.dry_run {
        for (path, text) in &draft.files {
            println!("--- {}", fleet.live.join(path).display());
            print!("{text}");
        }
        say!(
            "--dry-run: {} file(s) would be written; nothing was written",
            draft.files.len()
        );
    } else if draft.files.is_empty() {
        say!("nothing new to write: every key found is in the tree or left alone");
    } else {
        let written =
            write_all(&fleet.live, &draft.files).map_err(|e| AppError::Usage(e.to_string()))?;
        say!(
            "wrote {} file(s) under {}; next: `orch import apply` adopts them (it creates and destroys nothing)",
            written.len(),
            fleet.live.display()
        );
    }
    let partial = !estate.unknown.is_empty() || !dropped.is_empty();
    exit(if partial { PARTIAL } else { 0 })
}

/// A settled draft, what its check found, and the keys dropped from it with why.
type Settled = (Draft, Findings, Dropped);

/// The draft to write: made, checked against the tree it makes, made again with the choices
/// the check calls for, checked again. Keys still different from AWS after that are dropped
/// (with why), so what is written never changes who can do what.
fn settle(
    loaded: &Loaded,
    estate: &mut Estate,
    today: &str,
    scratch: &Path,
) -> Result<Settled, AppError> {
    let mut overrides = Overrides::default();
    let mut dropped = Vec::new();
    for _round in 0..4 {
        let d = draft(&loaded.fleet, estate, &overrides, today);
        let findings = check_in_copy(loaded, &d, estate, &overrides, scratch)?;
        if !findings.problems.is_empty() {
            estate
                .families
                .retain(|f| !findings.problems.contains_key(&f.primary.key_id));
            dropped.extend(findings.problems);
            continue;
        }
        let settled = findings.overrides.keep_policy == overrides.keep_policy
            && findings.overrides.explicit == overrides.explicit;
        if settled {
            return Ok((d, findings, dropped));
        }
        overrides = findings.overrides;
    }
    Err(AppError::Usage(
        "orch could not make a tree whose keys match AWS's; nothing was written (this is a bug: please report it with --dry-run's output)".into(),
    ))
}

/// Writes the draft into a copy of the tree under `.orch/import/`, loads it like any tree, and
/// checks each adopted key against AWS.
fn check_in_copy(
    loaded: &Loaded,
    d: &Draft,
    estate: &Estate,
    overrides: &Overrides,
    scratch: &Path,
) -> Result<Findings, AppError> {
    let fleet = &loaded.fleet;
    let _ = std::fs::remove_dir_all(scratch);
    let live = scratch.join("live");
    copy_tree(&fleet.live, &live)
        .map_err(|e| AppError::Usage(format!("copying the tree to {}: {e}", live.display())))?;
    if let Some(dir) = &loaded.templates.dir {
        std::os::unix::fs::symlink(dir, scratch.join("templates"))?;
    }
    write_all(&live, &d.files).map_err(|e| AppError::Usage(e.to_string()))?;
    let made = super::load(&live, false).map_err(|e| match e {
        AppError::Invalid { count, .. } => AppError::Usage(format!(
            "the tree import would write does not validate ({count} error(s), above, in a copy at {}); nothing was written",
            live.display()
        )),
        other => other,
    })?;
    Ok(verify::check(&made.fleet, d, estate, overrides))
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let dest = to.join(entry.file_name());
        if kind.is_dir() {
            copy_tree(&entry.path(), &dest)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), dest)?;
        }
    }
    Ok(())
}

fn print_report(
    estate: &Estate,
    draft: &Draft,
    findings: &Findings,
    dropped: &[(String, Vec<String>)],
    seconds: f64,
) {
    let calls: u64 = estate.calls.values().sum();
    say!(
        "read {} customer-managed key(s) in {seconds:.1}s with {calls} API call(s); skipped {} AWS-managed key(s) and {} grant(s) AWS services made",
        estate.keys_read, estate.aws_managed, estate.service_grants
    );
    for u in &estate.unknown {
        say!(
            "UNKNOWN {}/{} ({}): {} (its keys are not known, not absent)",
            u.target.account,
            u.target.region,
            u.target.account_id,
            u.reason
        );
    }
    for a in &draft.adopted {
        let how = match &a.policy {
            PolicyChoice::Capabilities => "policy as capabilities (same effect)".to_string(),
            PolicyChoice::Kept { .. } => "policy kept as written (`policy:`)".to_string(),
        };
        say!("adopt {} <- {}: {how}", a.address, a.key_id);
        if let PolicyChoice::Kept { why } = &a.policy {
            for w in why {
                say!("    {w}");
            }
        }
        for r in &a.replicas {
            say!("    replica {r}");
        }
        for g in &a.grants {
            say!("    grant {g}");
        }
        for n in &a.notes {
            say!("    note: {n}");
        }
        if let Some(tags) = findings.added_tags.get(&a.key_id) {
            say!(
                "    adoption drift: the tree adds tag(s) {}",
                tags.join(", ")
            );
        }
    }
    if !draft.adopted.is_empty() {
        say!("every adopted key takes the tree's deletion_window_days: AWS does not return a key's deletion window");
    }
    for m in &draft.matched {
        say!(
            "in the tree already: {} is {} (by {})",
            m.id,
            m.address,
            m.by
        );
    }
    for s in &estate.skipped {
        say!(
            "left alone {}/{} {}: {}",
            s.account,
            s.region,
            s.key_id,
            s.why
        );
    }
    for g in &draft.grants_skipped {
        say!("grant {} on {} left alone: {}", g.grant_id, g.key_id, g.why);
    }
    for (id, why) in dropped {
        say!(
            "NOT ADOPTED {id}: the tree would differ from AWS: {}",
            why.join("; ")
        );
    }
}

/// Refuses the adoption when a key it adopts is not in AWS any more, or when the policy orch
/// would write differs in effect from the key's live one: adopting never changes who can do
/// what (a change of access is an `orch apply` after the adoption, reviewed as one).
fn same_access(
    loaded: &Loaded,
    endpoint: Option<String>,
    adopting: &BTreeSet<usize>,
) -> Result<(), AppError> {
    let fleet = &loaded.fleet;
    let keys: Vec<(usize, &str)> = adopting
        .iter()
        .filter_map(|&i| match &fleet.nodes[i].kind {
            NodeKind::Key(k) => k.import.as_ref().map(|im| (i, im.id.as_str())),
            NodeKind::Replica(r) => r.import.as_ref().map(|im| (i, im.id.as_str())),
            _ => None,
        })
        .collect();
    let mut targets: Vec<Target> = Vec::new();
    for (i, _) in &keys {
        let address = &fleet.nodes[*i].address;
        let account = &fleet.accounts[&address.account];
        let target = Target {
            account: address.account.clone(),
            account_id: account.account_id.clone(),
            role_arn: account.role_arn.clone(),
            region: address.region.clone(),
        };
        if !targets.contains(&target) {
            targets.push(target);
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let read = runtime.block_on(Reader::new(endpoint, 8).read_all(targets));
    let mut problems = Vec::new();
    for (i, id) in keys {
        let node = &fleet.nodes[i];
        let region = read.iter().find(|r| {
            let t = match r {
                Ok(region) => &region.target,
                Err(unknown) => &unknown.target,
            };
            t.account == node.address.account && t.region == node.address.region
        });
        let live = match region {
            Some(Ok(region)) => region.keys.iter().find(|k| k.key_id == id),
            Some(Err(unknown)) => {
                problems.push(format!(
                    "{}: cannot read {}/{} to check that adopting changes no access: {}",
                    node.address, node.address.account, node.address.region, unknown.reason
                ));
                continue;
            }
            None => None,
        };
        let Some(live) = live.filter(|k| k.state != "PendingDeletion") else {
            problems.push(format!(
                "{}: key {id} is not in AWS any more (deleted, or pending deletion): remove the node, or its `import:` to have orch create a new key",
                node.address
            ));
            continue;
        };
        let facts = KeyFacts::of(fleet, node).expect("keys and replicas have key facts");
        let partition = crate::config::partition_of(&node.address.region);
        let ours = serde_json::from_str(&policy::build(&facts).to_json())
            .map_err(|e| e.to_string())
            .and_then(|v| Permissions::of(&v, partition));
        let theirs = live
            .policy
            .as_deref()
            .ok_or_else(|| "its policy could not be read".to_string())
            .and_then(|t| serde_json::from_str(t).map_err(|e| e.to_string()))
            .and_then(|v| Permissions::of(&v, partition));
        match (theirs, ours) {
            (Ok(theirs), Ok(ours)) if theirs != ours => {
                let diff = theirs.diff(&ours);
                let mut lines: Vec<String> = describe(&diff.gained)
                    .into_iter()
                    .map(|l| format!("    would add: {l}"))
                    .collect();
                lines.extend(
                    describe(&diff.lost)
                        .into_iter()
                        .map(|l| format!("    would remove: {l}")),
                );
                problems.push(format!(
                    "{}: adopting would change who can use key {id}:\n{}\n  adopt it with its policy as it is (`orch import discover` writes it so), then change it with `orch apply`",
                    node.address,
                    lines.join("\n")
                ));
            }
            (Err(why), _) | (_, Err(why)) => problems.push(format!(
                "{}: cannot compare the policy of key {id} with orch's: {why}",
                node.address
            )),
            _ => {}
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(AppError::Usage(format!(
        "{}\nnothing was imported",
        problems.join("\n")
    )))
}

/// `orch import apply` (and `orch apply --import`): the selected nodes that adopt something,
/// applied with their import blocks; any plan that creates or destroys refuses the whole run.
pub fn apply(
    loaded: Loaded,
    global: &Global,
    options: &RunOptions,
    auto_approve: bool,
) -> Result<(), AppError> {
    let selected = select(&loaded, &options.filters)?;
    let adopting: BTreeSet<usize> = selected
        .iter()
        .copied()
        .filter(|&i| loaded.fleet.nodes[i].import().is_some())
        .collect();
    if adopting.is_empty() {
        say!("no selected node adopts anything (`import:`); nothing to do");
        return Ok(());
    }
    say!(
        "adopting through {} node(s); a plan that creates or destroys anything stops the run before anything is imported",
        adopting.len()
    );
    let profile = loaded.run_profile(global)?;
    same_access(&loaded, profile.and_then(|p| p.endpoint), &adopting)?;
    super::run::exec_with(
        loaded,
        global,
        options,
        (Action::Apply, false, auto_approve),
        super::run::Kind::Adopt,
        Some(adopting),
    )
}
