//! `orch plan | apply | destroy`: the selected nodes through terraform (`crate::engine`), after
//! the checks that keep a run from doing harm: a terminal to confirm on, the tree lock, and the
//! layout guard (no selected node's state left in the other layout).

use std::collections::BTreeSet;
use std::io::IsTerminal as _;

use super::context::{exit, one, AppError, Loaded};
use super::select::select;
use crate::cli::{Global, RunOptions};
use crate::engine::Request;
use crate::migrate::GuardError;
use crate::render::Renderer;
use crate::state::StateStore;
use crate::terraform::binary::Binary;
use crate::terraform::workflow::{Action, Imports};

pub fn exec(
    loaded: Loaded,
    global: &Global,
    options: &RunOptions,
    action: Action,
    detailed_exitcode: bool,
    auto_approve: bool,
) -> Result<(), AppError> {
    exec_with(
        loaded,
        global,
        options,
        (action, detailed_exitcode, auto_approve),
        Kind::Plain,
        None,
    )
}

/// What a run is besides its action.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `orch plan | apply | destroy`: a plan that imports is refused.
    Plain,
    /// `orch import apply`: plans import, and must create and destroy nothing.
    Adopt,
    /// `orch drift`: refresh-only plans, read for what changed outside orch.
    Drift,
}

/// A run: `(action, detailed_exitcode, auto_approve)`, its [`Kind`], and `only` the nodes chosen
/// by the caller (`orch import apply`) instead of the filters' selection.
pub fn exec_with(
    loaded: Loaded,
    global: &Global,
    options: &RunOptions,
    (action, detailed_exitcode, auto_approve): (Action, bool, bool),
    kind: Kind,
    only: Option<BTreeSet<usize>>,
) -> Result<(), AppError> {
    if kind == Kind::Drift && options.filters.changed {
        return Err(AppError::Usage(
            "--changed selects what changed in the tree since the last apply; drift is what changed in AWS, so `orch drift` reads every selected node: drop --changed".into(),
        ));
    }
    let selected = match only {
        Some(nodes) => nodes,
        None => select(&loaded, &options.filters)?,
    };
    if matches!(action, Action::Apply | Action::Destroy)
        && !auto_approve
        && !std::io::stdin().is_terminal()
    {
        return Err(AppError::Usage(format!(
            "orch {} changes real infrastructure and there is no terminal to confirm on; pass --auto-approve",
            action.name()
        )));
    }
    let profile = loaded.run_profile(global)?;
    let binary = loaded.binary(options.execution.terraform_bin.clone())?;
    let _lock = crate::lock::Lock::acquire(&loaded.fleet.state_dir())?;
    let parallelism = loaded.parallelism(options.execution.parallelism);
    let store = loaded.store(profile.clone(), Ok(&binary), parallelism);
    layout_guard(&loaded, &*store, &selected)?;
    let (selected, skip_unchanged) = if options.filters.changed {
        if action == Action::Destroy {
            return Err(AppError::Usage(
                "--changed selects what to apply; destroy takes addresses, --account, --region or --all".into(),
            ));
        }
        let renderer = loaded.renderer(profile.as_ref(), &*store);
        let changed = changed_only(&loaded, &renderer, &binary, &selected)?;
        (changed.clone(), changed)
    } else {
        (selected, BTreeSet::new())
    };
    let request = Request {
        action,
        selected,
        parallelism,
        fail_fast: options.fail_fast,
        detailed_exitcode,
        auto_approve,
        report: options.execution.report.clone(),
        fancy: crate::engine::fancy_output(global.no_color),
        skip_unchanged,
        imports: if kind == Kind::Adopt {
            Imports::Adopt
        } else {
            Imports::Refuse
        },
        drift: kind == Kind::Drift,
    };
    let setup = loaded.into_setup(profile, binary, store);
    exit(crate::engine::execute(&setup, request)?.code)
}

/// Refused while a node of `selected` has its state in the layout orch.yaml does not name (a
/// rollout checks every node of the tree). After the tree lock: with state in S3 it runs
/// terraform in `.orch/remote/`.
pub fn layout_guard(
    loaded: &Loaded,
    store: &dyn StateStore,
    selected: &BTreeSet<usize>,
) -> Result<(), AppError> {
    match crate::migrate::guard(&loaded.fleet, store, selected) {
        Ok(()) => Ok(()),
        Err(GuardError::Refused(d)) => Err(loaded.refuse(one(d))),
        Err(GuardError::Failed(e)) => Err(AppError::Usage(format!("{e}\nnothing was run"))),
    }
}

/// `--changed`: the selected nodes whose fingerprint differs from the one recorded at their last
/// apply, and their dependents; says how many that is.
pub fn changed_only(
    loaded: &Loaded,
    renderer: &Renderer,
    binary: &Binary,
    selected: &BTreeSet<usize>,
) -> Result<BTreeSet<usize>, AppError> {
    let changed = crate::fingerprint::changed(&loaded.fleet, &loaded.dag, selected, |nodes| {
        loaded.layout.fingerprints(renderer, &binary.version, nodes)
    })?;
    say!(
        "--changed: {} of {} selected nodes changed since their last apply, or depend on one that did",
        changed.len(),
        selected.len()
    );
    Ok(changed)
}
