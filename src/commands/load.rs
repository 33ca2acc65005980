//! Loading a tree for a command: `--live` resolved to the real directory, then every file
//! loaded and validated, policies checked, the DAG and the layout built. On any error every
//! diagnostic is printed and nothing runs.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::context::{report, AppError, Loaded};
use crate::config::{self, BUILTIN_KINDS};
use crate::diag::{Diagnostic, Diagnostics, Sources};
use crate::graph::{glob_match, glob_problem, Dag};
use crate::policy::{self, KeyFacts};
use crate::render::Templates;

/// The live/ tree orch works on, checked and resolved, so that `.orch/` and `templates/` are
/// always the ones beside the real directory, whatever path led to it (`live/prod/..`, `.` from
/// inside the tree, a link). A path that already names that directory plainly is kept as given,
/// since every message shows it.
pub fn resolve_live(given: &Path) -> Result<PathBuf, AppError> {
    let refuse = |message: String, help: String| {
        let mut diags = Diagnostics::default();
        diags.push(Diagnostic::at_path(given, message).with_help(help));
        report(&Sources::default(), &diags, given)
    };
    let shown = given.display();
    let where_help = || "run orch where live/ is, or pass --live DIR".to_string();
    let canonical = match std::fs::canonicalize(given) {
        Ok(canonical) => canonical,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(refuse(format!("{shown} does not exist"), where_help()))
        }
        Err(e) => return Err(refuse(format!("cannot open {shown}: {e}"), where_help())),
    };
    if !canonical.is_dir() {
        let help = match (given.file_name(), given.parent()) {
            (Some(name), Some(parent)) if name == "orch.yaml" => format!(
                "--live names the directory that holds orch.yaml: pass --live {}",
                dot_if_empty(parent).display()
            ),
            _ => where_help(),
        };
        return Err(refuse(format!("{shown} is a file, not a directory"), help));
    }
    // Listing the directory and looking up a name in it need its read and search permissions;
    // without them every file would look missing.
    let readable = std::fs::read_dir(&canonical).and_then(|_| {
        match std::fs::symlink_metadata(canonical.join("orch.yaml")) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    });
    if let Err(e) = readable {
        return Err(refuse(
            format!("cannot read {shown}: {e}"),
            "orch needs permission to list and enter every directory of the tree".into(),
        ));
    }
    let plain = given.file_name().is_some()
        && !given
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir));
    let same_parent = given
        .parent()
        .and_then(|p| std::fs::canonicalize(dot_if_empty(p)).ok())
        .as_deref()
        == canonical.parent();
    Ok(if plain && same_parent {
        given.to_path_buf()
    } else {
        canonical
    })
}

/// The parent of a bare relative name is the empty path, which means the current directory.
fn dot_if_empty(path: &Path) -> &Path {
    if path.as_os_str().is_empty() {
        Path::new(".")
    } else {
        path
    }
}

/// Loads, validates and builds the DAG; on any error prints every diagnostic and runs nothing.
/// Policy checks and the DAG run even when the tree has errors, on the nodes that did load, so
/// one run reports every error: a typo in one file does not hide a cycle in another.
pub fn load(live: &Path, strict: bool) -> Result<Loaded, AppError> {
    let templates = Templates::for_live(live)?;
    let custom: BTreeSet<String> = templates
        .kinds
        .iter()
        .filter(|k| !BUILTIN_KINDS.contains(&k.as_str()))
        .cloned()
        .collect();
    let config::Checked {
        fleet,
        diagnostics: mut diags,
    } = config::load(live, &custom);
    let complete = !diags.has_errors();
    for node in &fleet.nodes {
        if let Some(facts) = KeyFacts::of(&fleet, node) {
            for problem in policy::check(&facts) {
                diags.push(policy_error(node, &facts, &problem));
            }
            for warning in policy::warnings(&facts) {
                let d = Diagnostic::warning(node.span, format!("{}: {}", node.address, warning.0))
                    .with_help(warning.1);
                diags.push(if strict {
                    Diagnostic {
                        severity: crate::diag::Severity::Error,
                        ..d
                    }
                } else {
                    d
                });
            }
        }
    }
    for wave in &fleet.settings.waves {
        for (pattern, problem) in wave
            .patterns
            .iter()
            .filter_map(|p| Some((p, glob_problem(&p.value)?)))
        {
            diags.push(
                Diagnostic::error(pattern.span, format!("wave `{}`: {problem}", wave.name))
                    .with_help("shorten the pattern; `**` matches any number of segments"),
            );
        }
    }
    // In a partial fleet a pattern may match nothing only because its nodes did not load.
    if complete {
        let addresses: Vec<String> = fleet.nodes.iter().map(|n| n.address.to_string()).collect();
        for wave in &fleet.settings.waves {
            for pattern in wave
                .patterns
                .iter()
                .filter(|p| glob_problem(&p.value).is_none())
            {
                if !addresses.iter().any(|a| glob_match(&pattern.value, a)) {
                    diags.push(
                        Diagnostic::error(
                            pattern.span,
                            format!(
                                "wave `{}`: `{}` matches no node",
                                wave.name, pattern.value
                            ),
                        )
                        .with_help("the nodes it was meant for would fall to a later wave: fix the pattern (see `orch graph`) or remove it"),
                    );
                }
            }
        }
    }
    let dag = match Dag::build(&fleet) {
        Ok(dag) => Some(dag),
        Err(cycles) => {
            cycles.into_iter().for_each(|d| diags.push(d));
            None
        }
    };
    let layout = match &dag {
        Some(dag) => crate::layout::build(&fleet, dag)
            .map_err(|cycles| cycles.into_iter().for_each(|d| diags.push(d)))
            .ok(),
        None => None,
    };
    // As above: in a partial fleet a wave may get no node only because its nodes did not load.
    if let (Some(dag), true) = (&dag, complete) {
        crate::waves::check(&fleet, dag)
            .into_iter()
            .for_each(|d| diags.push(d));
    }
    diags.dedup();
    let (dag, layout) = match (dag, layout) {
        (Some(dag), Some(layout)) if !diags.has_errors() => (dag, layout),
        _ => return Err(report(&fleet.sources, &diags, live)),
    };
    if let Some(kind) = fleet
        .nodes
        .iter()
        .map(|n| n.kind_name())
        .find(|kind| !templates.kinds.contains(*kind))
    {
        return Err(AppError::Usage(format!(
            "the templates in {}/ have no `{kind}/` folder, which nodes of this tree use",
            templates
                .dir
                .as_deref()
                .unwrap_or(Path::new("(built in)"))
                .display()
        )));
    }
    if !diags.is_empty() {
        say_raw!("{}", diags.render(&fleet.sources));
    }
    Ok(Loaded {
        fleet: Arc::new(fleet),
        dag,
        templates: Arc::new(templates),
        layout,
    })
}

/// A policy problem of a key or replica as a diagnostic. A lockout points at the `root_access:
/// false` that causes it; when that value comes from a defaults file it is one mistake shared by
/// many keys, so the message leaves the address out (naming one key in a note) and
/// `Diagnostics::dedup` reports it once.
fn policy_error(node: &config::Node, facts: &KeyFacts, problem: &policy::Problem) -> Diagnostic {
    let span = match problem {
        policy::Problem::Lockout | policy::Problem::DeployerLockout(_) => {
            facts.access.root_access_span.unwrap_or(node.span)
        }
        policy::Problem::TooLarge { at, .. } => at.unwrap_or(node.span),
    };
    if span.source == node.span.source {
        Diagnostic::error(span, format!("{}: {}", node.address, problem.message()))
            .with_help(problem.help())
    } else {
        // The note survives only on the copy dedup keeps: one key to start looking from.
        Diagnostic::error(span, problem.message())
            .with_note(
                node.span,
                format!("{} is one of the keys it affects", node.address),
            )
            .with_help(problem.help())
    }
}
