//! Wires the stages together for each command: load and validate the tree, build the DAG, render,
//! print. The only module that knows them all; the only one that maps errors to exit codes.

use std::collections::BTreeSet;
use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use serde_json::json;

use crate::cli::{
    BackendCommand, Cli, Command, Filters, Generate, GraphFormat, LayoutCommand, RunOptions,
    TfvarsFormat,
};
use crate::config::{self, Address, Fleet, Profile, BUILTIN_KINDS};
use crate::diag::{Diagnostic, Diagnostics, Sources};
use crate::graph::{glob_match, glob_problem, Dag};
use crate::policy::{self, KeyFacts};
use crate::render::{self, hcl, Renderer, Templates};
use crate::terraform::workflow::Action;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The tree did not validate; the diagnostics are rendered on stderr.
    #[error("{count} error(s) in {live}; nothing was run")]
    Invalid { count: usize, live: PathBuf },
    #[error(transparent)]
    Templates(#[from] render::templates::TemplateError),
    #[error(transparent)]
    Render(#[from] render::RenderError),
    #[error(transparent)]
    Generate(#[from] render::generated::GenerateError),
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Terraform(#[from] crate::terraform::binary::BinaryError),
    #[error(transparent)]
    Lock(#[from] crate::lock::LockError),
    #[error(transparent)]
    Rollout(#[from] crate::commands::rollout::RolloutError),
    #[error(transparent)]
    Migrate(#[from] crate::commands::migrate::MigrateError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The run happened; its nodes decided the exit code (2 changes present, 130 interrupted).
    #[error("")]
    Exit(u8),
}

impl AppError {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            AppError::Exit(code) => ExitCode::from(*code),
            _ => ExitCode::from(1),
        }
    }
}

/// A validated tree, ready for any command.
struct Loaded {
    fleet: Fleet,
    dag: Dag,
    templates: Templates,
}

pub fn run(cli: Cli) -> Result<(), AppError> {
    quiet_on_closed_pipe(&cli.command);
    let global = &cli.global;
    let live = &resolve_live(&global.live)?;
    match &cli.command {
        Command::Validate => {
            let loaded = load(live, global.strict)?;
            let keys = loaded
                .fleet
                .nodes
                .iter()
                .filter(|n| n.key_ref().is_none() || matches!(n.kind, config::NodeKind::Replica(_)))
                .count();
            let stacks = match loaded.fleet.settings.layout {
                config::Layout::PerNode => String::new(),
                config::Layout::Stacks => format!(
                    " ({} stacks)",
                    crate::stacks::Stacks::build(&loaded.fleet, &loaded.dag)
                        .map_or(0, |s| s.stacks.len())
                ),
            };
            println!(
                "{}: {} nodes ({} keys and replicas, {} consumers) in {} accounts, {} dependencies; valid{stacks}",
                live.display(),
                loaded.fleet.nodes.len(),
                keys,
                loaded.fleet.nodes.len() - keys,
                loaded.fleet.accounts.len(),
                loaded.dag.graph.edge_count()
            );
            Ok(())
        }
        Command::Graph { format, shards } => {
            let loaded = load(live, global.strict)?;
            if shards.is_some() && !matches!(format, GraphFormat::GithubMatrix) {
                return Err(AppError::Usage(
                    "--shards sets the shards of `--format github-matrix`; add that or drop --shards".into(),
                ));
            }
            print(&graph_text(&loaded, *format, *shards));
            Ok(())
        }
        Command::Explain { address } => {
            let loaded = load(live, global.strict)?;
            let i = find(&loaded.fleet, address)?;
            let deps: Vec<String> = loaded
                .dag
                .dependencies(i)
                .map(|d| loaded.fleet.nodes[d].address.to_string())
                .collect();
            print(&crate::explain::explain(
                &loaded.fleet,
                &loaded.fleet.nodes[i],
                &deps,
            ));
            Ok(())
        }
        Command::Policy { address, explain } => {
            let loaded = load(live, global.strict)?;
            let node = &loaded.fleet.nodes[find(&loaded.fleet, address)?];
            let facts = KeyFacts::of(&loaded.fleet, node).ok_or_else(|| {
                AppError::Usage(format!(
                    "{address} is a {}, not a key: it has no key policy",
                    node.kind_name()
                ))
            })?;
            let built = policy::build(&facts);
            if *explain {
                print(&policy::explain(&facts, &built));
            } else {
                print(&(built.to_pretty_json() + "\n"));
            }
            Ok(())
        }
        Command::Render { filters } => {
            let loaded = load(live, global.strict)?;
            let selected = select(&loaded, filters)?;
            let profile = profile(&loaded.fleet, global.profile.as_deref())?;
            let selected = if filters.changed {
                let binary = discover_binary(&loaded, None)?;
                changed_only(&loaded, profile, &binary, &selected)?
            } else {
                selected
            };
            let renderer = Renderer::new(&loaded.fleet, &loaded.templates, profile);
            let nodes: Vec<usize> = selected.iter().copied().collect();
            let lock = crate::lock::Lock::acquire_for_render(&loaded.fleet.state_dir())?;
            let stats = match loaded.fleet.settings.layout {
                config::Layout::PerNode => renderer.render_all(&nodes)?,
                config::Layout::Stacks => {
                    let stacks = crate::stacks::Stacks::build(&loaded.fleet, &loaded.dag)
                        .expect("validate checks the stack graph");
                    renderer.render_stacks(&stacks, &stacks.holding(&selected))?
                }
            };
            drop(lock);
            println!(
                "rendered {} nodes into {}: {} files written, {} unchanged, {} removed",
                nodes.len(),
                loaded.fleet.state_dir().join("work").display(),
                stats.written,
                stats.unchanged,
                stats.removed
            );
            if stats.provisional > 0 {
                println!(
                    "{} nodes use placeholders for outputs of dependencies that are not applied yet",
                    stats.provisional
                );
            }
            Ok(())
        }
        Command::Plan {
            run,
            detailed_exitcode,
        } => terraform_run(global, live, run, Action::Plan, *detailed_exitcode, false),
        Command::Apply { run, auto_approve } => {
            terraform_run(global, live, run, Action::Apply, false, *auto_approve)
        }
        Command::Destroy { run, auto_approve } => {
            terraform_run(global, live, run, Action::Destroy, false, *auto_approve)
        }
        Command::Rollout(args) => rollout(global, args),
        Command::Layout {
            what: LayoutCommand::Migrate { auto_approve },
        } => {
            let loaded = load(live, global.strict)?;
            let _lock = crate::lock::Lock::acquire(&loaded.fleet.state_dir())?;
            // State in S3 is moved with terraform's own `state pull` / `state push`.
            let s3 = match loaded.fleet.settings.backend {
                config::Backend::S3(_) => Some((
                    run_profile(global, &loaded.fleet)?,
                    discover_binary(&loaded, None)?,
                    crate::run::terraform_env(&loaded.fleet),
                )),
                config::Backend::Local => None,
            };
            let remote =
                s3.as_ref()
                    .map(|(profile, binary, env)| crate::commands::backend::Remote {
                        fleet: &loaded.fleet,
                        templates: &loaded.templates,
                        profile: profile.as_ref(),
                        binary,
                        env,
                        parallelism: parallelism(None, &loaded.fleet),
                    });
            match crate::commands::migrate::execute(&loaded.fleet, remote.as_ref(), *auto_approve)?
            {
                0 => Ok(()),
                code => Err(AppError::Exit(code)),
            }
        }
        Command::Backend {
            what:
                BackendCommand::Bootstrap {
                    auto_approve,
                    execution,
                },
        } => backend_bootstrap(global, live, *auto_approve, execution),
        Command::Output { address } => {
            let loaded = load(live, global.strict)?;
            let node = &loaded.fleet.nodes[find(&loaded.fleet, address)?];
            let path = loaded
                .fleet
                .state_dir()
                .join("outputs")
                .join(format!("{}.json", node.address));
            let text = std::fs::read_to_string(&path).map_err(|e| {
                AppError::Usage(if e.kind() == std::io::ErrorKind::NotFound {
                    format!("{address} has no recorded outputs: it is not applied yet (orch apply {address})")
                } else {
                    format!("cannot read the recorded outputs {}: {e}", path.display())
                })
            })?;
            let outputs: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
                AppError::Usage(format!(
                    "{} is not valid JSON ({e}); apply {address} again",
                    path.display()
                ))
            })?;
            let values: serde_json::Map<String, serde_json::Value> = outputs
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.get("value").cloned().unwrap_or_default()))
                .collect();
            print(&(serde_json::to_string_pretty(&values).expect("JSON serializes") + "\n"));
            Ok(())
        }
        Command::Generate {
            what: Generate::Tfvars { env, out, format },
        } => {
            let loaded = load(live, global.strict)?;
            let profile = profile(&loaded.fleet, global.profile.as_deref())?;
            generate_tfvars(&loaded, profile, env, out, *format)
        }
    }
}

fn terraform_run(
    global: &crate::cli::Global,
    live: &Path,
    options: &RunOptions,
    action: Action,
    detailed_exitcode: bool,
    auto_approve: bool,
) -> Result<(), AppError> {
    let loaded = load(live, global.strict)?;
    let selected = select(&loaded, &options.filters)?;
    layout_guard(&loaded, &selected, live)?;
    if matches!(action, Action::Apply | Action::Destroy)
        && !auto_approve
        && !std::io::stdin().is_terminal()
    {
        return Err(AppError::Usage(format!(
            "orch {} changes real infrastructure and there is no terminal to confirm on; pass --auto-approve",
            action.name()
        )));
    }
    let profile = run_profile(global, &loaded.fleet)?;
    let binary = discover_binary(&loaded, options.execution.terraform_bin.clone())?;
    let _lock = crate::lock::Lock::acquire(&loaded.fleet.state_dir())?;
    let parallelism = parallelism(options.execution.parallelism, &loaded.fleet);
    remote_layout_guard(
        &loaded,
        profile.as_ref(),
        &binary,
        parallelism,
        &selected,
        live,
    )?;
    let (selected, skip_unchanged) = if options.filters.changed {
        if action == Action::Destroy {
            return Err(AppError::Usage(
                "--changed selects what to apply; destroy takes addresses, --account, --region or --all".into(),
            ));
        }
        let changed = changed_only(&loaded, profile.as_ref(), &binary, &selected)?;
        (changed.clone(), changed)
    } else {
        (selected, BTreeSet::new())
    };
    let request = crate::run::Request {
        action,
        selected,
        parallelism,
        fail_fast: options.fail_fast,
        detailed_exitcode,
        auto_approve,
        report: options.execution.report.clone(),
        fancy: crate::run::fancy_output(global.no_color),
        skip_unchanged,
    };
    let Loaded {
        fleet,
        dag,
        templates,
    } = loaded;
    let outcome = crate::run::execute(
        Arc::new(fleet),
        &dag,
        Arc::new(templates),
        profile,
        binary,
        request,
    )?;
    match outcome.code {
        0 => Ok(()),
        code => Err(AppError::Exit(code)),
    }
}

/// `orch rollout`: the tree loaded, the lock held, then the waves (`commands/rollout.rs`).
fn rollout(global: &crate::cli::Global, args: &crate::cli::RolloutArgs) -> Result<(), AppError> {
    let loaded = load(&global.live, global.strict)?;
    layout_guard(
        &loaded,
        &(0..loaded.fleet.nodes.len()).collect(),
        &global.live,
    )?;
    let profile = run_profile(global, &loaded.fleet)?;
    let binary = discover_binary(&loaded, args.execution.terraform_bin.clone())?;
    let _lock = crate::lock::Lock::acquire(&loaded.fleet.state_dir())?;
    let parallelism = parallelism(args.execution.parallelism, &loaded.fleet);
    remote_layout_guard(
        &loaded,
        profile.as_ref(),
        &binary,
        parallelism,
        &(0..loaded.fleet.nodes.len()).collect(),
        &global.live,
    )?;
    let Loaded {
        fleet,
        dag,
        templates,
    } = loaded;
    let code = crate::commands::rollout::execute(
        Arc::new(fleet),
        &dag,
        Arc::new(templates),
        profile,
        binary,
        crate::commands::rollout::Options {
            args: args.clone(),
            parallelism,
            fancy: crate::run::fancy_output(global.no_color),
        },
    )?;
    match code {
        0 => Ok(()),
        code => Err(AppError::Exit(code)),
    }
}

/// Refused while a node of `selected` has its state in the layout orch.yaml does not name (a rollout
/// checks every node of the tree).
fn layout_guard(loaded: &Loaded, selected: &BTreeSet<usize>, live: &Path) -> Result<(), AppError> {
    crate::commands::migrate::guard(&loaded.fleet, selected).map_err(|d| {
        let mut diags = Diagnostics::default();
        diags.push(d);
        report(&loaded.fleet.sources, &diags, live)
    })
}

/// [`layout_guard`] for state in S3, which takes terraform to look at: after the tree lock, since
/// it runs in `.orch/remote/`.
fn remote_layout_guard(
    loaded: &Loaded,
    profile: Option<&Profile>,
    binary: &crate::terraform::binary::Binary,
    parallelism: usize,
    selected: &BTreeSet<usize>,
    live: &Path,
) -> Result<(), AppError> {
    let env = crate::run::terraform_env(&loaded.fleet);
    let remote = crate::commands::backend::Remote {
        fleet: &loaded.fleet,
        templates: &loaded.templates,
        profile,
        binary,
        env: &env,
        parallelism,
    };
    match crate::commands::migrate::guard_remote(&remote, selected) {
        Ok(()) => Ok(()),
        Err(crate::commands::migrate::GuardError::Refused(d)) => {
            let mut diags = Diagnostics::default();
            diags.push(d);
            Err(report(&loaded.fleet.sources, &diags, live))
        }
        Err(crate::commands::migrate::GuardError::Failed(e)) => {
            Err(AppError::Usage(format!("{e}\nnothing was run")))
        }
    }
}

/// `orch backend bootstrap`: the tree loaded and the lock held, then `commands/backend.rs`.
fn backend_bootstrap(
    global: &crate::cli::Global,
    live: &Path,
    auto_approve: bool,
    execution: &crate::cli::Execution,
) -> Result<(), AppError> {
    let loaded = load(live, global.strict)?;
    let profile = run_profile(global, &loaded.fleet)?;
    let binary = discover_binary(&loaded, execution.terraform_bin.clone())?;
    let _lock = crate::lock::Lock::acquire(&loaded.fleet.state_dir())?;
    let env = crate::run::terraform_env(&loaded.fleet);
    crate::commands::backend::Remote {
        fleet: &loaded.fleet,
        templates: &loaded.templates,
        profile: profile.as_ref(),
        binary: &binary,
        env: &env,
        parallelism: parallelism(execution.parallelism, &loaded.fleet),
    }
    .bootstrap(auto_approve)
    .map_err(AppError::Usage)
}

/// The profile terraform runs with: `--profile`, with `--endpoint` over its endpoint.
fn run_profile(global: &crate::cli::Global, fleet: &Fleet) -> Result<Option<Profile>, AppError> {
    let mut profile = profile(fleet, global.profile.as_deref())?.cloned();
    if let Some(endpoint) = &global.endpoint {
        profile.get_or_insert(Profile { endpoint: None }).endpoint = Some(endpoint.clone());
    }
    Ok(profile)
}

/// `--parallelism`, else orch.yaml's, else the number of cores.
fn parallelism(flag: Option<usize>, fleet: &Fleet) -> usize {
    flag.or(fleet.settings.parallelism)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
}

/// The terraform binary: `flag` (`--terraform-bin` or `ORCH_TERRAFORM`), orch.yaml, then PATH.
fn discover_binary(
    loaded: &Loaded,
    flag: Option<String>,
) -> Result<crate::terraform::binary::Binary, AppError> {
    Ok(crate::terraform::binary::discover(
        &crate::terraform::binary::Choice {
            flag,
            env: std::env::var("ORCH_TERRAFORM").ok(),
            config: loaded.fleet.settings.terraform_binary.clone(),
        },
    )?)
}

/// `--changed`: the selected nodes whose fingerprint differs from the one recorded at their last
/// apply, and their dependents; says how many that is.
fn changed_only(
    loaded: &Loaded,
    profile: Option<&Profile>,
    binary: &crate::terraform::binary::Binary,
    selected: &BTreeSet<usize>,
) -> Result<BTreeSet<usize>, AppError> {
    let changed = crate::fingerprint::changed(
        &loaded.fleet,
        &loaded.dag,
        &loaded.templates,
        profile,
        &binary.version,
        selected,
    )?;
    say!(
        "--changed: {} of {} selected nodes changed since their last apply, or depend on one that did",
        changed.len(),
        selected.len()
    );
    Ok(changed)
}

fn print(text: &str) {
    // A closed pipe (`orch graph | head`) is not an error worth a message.
    let _ = std::io::stdout().write_all(text.as_bytes());
}

/// Commands that only print and write files end quietly on a closed stdout or stderr
/// (`orch graph | head -1`), as any Unix filter does, instead of panicking on the failed print.
/// Rust ignores SIGPIPE, and a child inherits that; these commands restore the default. Runs
/// keep ignoring it: a closed pipe must never kill orch half-way through an apply, with
/// terraform still running under it.
fn quiet_on_closed_pipe(command: &Command) {
    let prints = matches!(
        command,
        Command::Validate
            | Command::Graph { .. }
            | Command::Explain { .. }
            | Command::Policy { .. }
            | Command::Render { .. }
            | Command::Output { .. }
            | Command::Generate { .. }
    );
    if prints {
        // SAFETY: restores a signal's default disposition at start-up, before any thread runs.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
}

/// The live/ tree orch works on, checked and resolved, so that `.orch/` and `templates/` are
/// always the ones beside the real directory, whatever path led to it (`live/prod/..`, `.` from
/// inside the tree, a link). A path that already names that directory plainly is kept as given,
/// since every message shows it.
fn resolve_live(given: &Path) -> Result<PathBuf, AppError> {
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
fn load(live: &Path, strict: bool) -> Result<Loaded, AppError> {
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
        for problem in wave.patterns.iter().filter_map(|p| glob_problem(p)) {
            diags.push(
                Diagnostic::error(wave.span, format!("wave `{}`: {problem}", wave.name))
                    .with_help("shorten the pattern; `**` matches any number of segments"),
            );
        }
    }
    // In a partial fleet a pattern may match nothing only because its nodes did not load.
    if complete {
        let addresses: Vec<String> = fleet.nodes.iter().map(|n| n.address.to_string()).collect();
        for wave in &fleet.settings.waves {
            for pattern in wave.patterns.iter().filter(|p| glob_problem(p).is_none()) {
                if !addresses.iter().any(|a| glob_match(pattern, a)) {
                    diags.push(
                        Diagnostic::warning(
                            wave.span,
                            format!("wave `{}`: `{pattern}` matches no node", wave.name),
                        )
                        .with_help("check the pattern against `orch graph`"),
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
    if let (Some(dag), config::Layout::Stacks) = (&dag, fleet.settings.layout) {
        if let Err(cycles) = crate::stacks::Stacks::build(&fleet, dag) {
            cycles.into_iter().for_each(|d| diags.push(d));
        }
    }
    // As above: in a partial fleet a wave may get no node only because its nodes did not load.
    if let (Some(dag), true) = (&dag, complete) {
        crate::waves::check(&fleet, dag)
            .into_iter()
            .for_each(|d| diags.push(d));
    }
    diags.dedup();
    let dag = match dag {
        Some(dag) if !diags.has_errors() => dag,
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
        fleet,
        dag,
        templates,
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

fn report(sources: &Sources, diags: &Diagnostics, live: &Path) -> AppError {
    say_raw!("{}", diags.render(sources));
    AppError::Invalid {
        count: diags.error_count(),
        live: live.to_path_buf(),
    }
}

fn find(fleet: &Fleet, text: &str) -> Result<usize, AppError> {
    let address = Address::parse(text).map_err(AppError::Usage)?;
    fleet
        .nodes
        .binary_search_by(|n| n.address.cmp(&address))
        .map_err(|_| {
            let all: Vec<String> = fleet.nodes.iter().map(|n| n.address.to_string()).collect();
            let hint = crate::diag::did_you_mean(text, all.iter().map(String::as_str))
                .map(|near| format!("; did you mean {near}?"))
                .unwrap_or_default();
            AppError::Usage(format!("no node {text} in this tree{hint}"))
        })
}

fn profile<'a>(fleet: &'a Fleet, name: Option<&str>) -> Result<Option<&'a Profile>, AppError> {
    let Some(name) = name else { return Ok(None) };
    fleet.settings.profiles.get(name).map(Some).ok_or_else(|| {
        let known: Vec<&str> = fleet.settings.profiles.keys().map(String::as_str).collect();
        AppError::Usage(format!(
            "no profile `{name}` in orch.yaml (profiles: {})",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        ))
    })
}

/// The most address globs one command takes; more is a script gone wrong, and every glob is
/// matched against every node.
const MAX_GLOBS: usize = 1000;

/// The nodes a command's filters select, as indexes into `fleet.nodes`.
fn select(loaded: &Loaded, filters: &Filters) -> Result<BTreeSet<usize>, AppError> {
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
        match fleet.settings.backend {
            config::Backend::S3(_) => "their remote state",
            config::Backend::Local => ".orch/outputs when recorded there",
        }
    );
    Ok(mine)
}

fn graph_text(loaded: &Loaded, format: GraphFormat, shards: Option<u32>) -> String {
    let fleet = &loaded.fleet;
    let dag = &loaded.dag;
    match format {
        GraphFormat::Text => {
            let width = fleet
                .nodes
                .iter()
                .map(|n| n.address.to_string().len())
                .max()
                .unwrap_or(0);
            let mut out = String::new();
            for &i in &dag.order {
                let node = &fleet.nodes[i];
                let deps: Vec<String> = dag
                    .dependencies(i)
                    .map(|d| fleet.nodes[d].address.to_string())
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect();
                let after = if deps.is_empty() {
                    String::new()
                } else {
                    format!("  after {}", deps.join(", "))
                };
                let line = format!(
                    "{:<width$}  {:<10}{after}",
                    node.address.to_string(),
                    node.kind_name()
                );
                out.push_str(line.trim_end());
                out.push('\n');
            }
            out
        }
        GraphFormat::Dot => {
            let mut out = String::from("digraph orch {\n  rankdir=LR;\n");
            for node in &fleet.nodes {
                out.push_str(&format!(
                    "  \"{}\" [label=\"{}\\n{}\"];\n",
                    node.address,
                    node.address,
                    node.kind_name()
                ));
            }
            let mut edges: Vec<_> = dag.edges().collect();
            edges.sort_by_key(|(a, b, _)| (*a, *b));
            for (from, to, edge) in edges {
                out.push_str(&format!(
                    "  \"{}\" -> \"{}\" [label=\"{}\"];\n",
                    fleet.nodes[from].address,
                    fleet.nodes[to].address,
                    serde_json::to_value(edge.kind)
                        .ok()
                        .and_then(|v| v.as_str().map(String::from))
                        .unwrap_or_default()
                ));
            }
            out.push_str("}\n");
            out
        }
        GraphFormat::GithubMatrix => crate::shard::github_matrix(shards.unwrap_or_else(|| {
            crate::shard::default_count(fleet.nodes.len(), fleet.settings.parallelism)
        })),
        GraphFormat::Json => {
            let nodes: Vec<_> = dag
                .order
                .iter()
                .map(|&i| {
                    let node = &fleet.nodes[i];
                    let deps: BTreeSet<String> = dag
                        .dependencies(i)
                        .map(|d| fleet.nodes[d].address.to_string())
                        .collect();
                    json!({
                        "address": node.address.to_string(),
                        "kind": node.kind_name(),
                        "account_id": fleet.account_of(node).account_id,
                        "dependencies": deps,
                    })
                })
                .collect();
            let mut edges: Vec<_> = dag.edges().collect();
            edges.sort_by_key(|(a, b, _)| (*a, *b));
            let edges: Vec<_> = edges
                .into_iter()
                .map(|(from, to, edge)| {
                    json!({
                        "from": fleet.nodes[from].address.to_string(),
                        "to": fleet.nodes[to].address.to_string(),
                        "kind": edge.kind,
                        "declared_at": fleet.sources.locate(edge.span),
                    })
                })
                .collect();
            serde_json::to_string_pretty(&json!({"nodes": nodes, "edges": edges}))
                .expect("JSON serializes")
                + "\n"
        }
    }
}

fn generate_tfvars(
    loaded: &Loaded,
    profile: Option<&Profile>,
    env: &str,
    out: &Path,
    format: TfvarsFormat,
) -> Result<(), AppError> {
    let fleet = &loaded.fleet;
    let accounts: Vec<&str> = fleet
        .accounts
        .values()
        .filter(|a| a.environment == env)
        .map(|a| a.name.as_str())
        .collect();
    if accounts.is_empty() {
        let envs: BTreeSet<&str> = fleet
            .accounts
            .values()
            .map(|a| a.environment.as_str())
            .collect();
        return Err(AppError::Usage(format!(
            "no account has environment `{env}` (environments: {})",
            envs.into_iter().collect::<Vec<_>>().join(", ")
        )));
    }
    if let Some(inside) = inside_of(out, &fleet.live) {
        return Err(AppError::Usage(format!(
            "--out {} is inside the live/ tree ({}), which would then read the tfvars as part of the tree; choose a directory outside it",
            out.display(),
            inside.display()
        )));
    }
    let outputs = render::RecordedOutputs::for_fleet(fleet);
    let endpoint = profile.and_then(|p| p.endpoint.as_deref());
    let mut files = Vec::new();
    for node in fleet
        .nodes
        .iter()
        .filter(|n| accounts.contains(&n.address.account.as_str()))
    {
        let inputs = render::inputs::inputs(fleet, node, endpoint, &outputs);
        let (name, text) = match format {
            TfvarsFormat::Json => (
                format!("{}.tfvars.json", node.address.name),
                serde_json::to_string_pretty(&serde_json::Value::Object(inputs.vars))
                    .expect("JSON serializes")
                    + "\n",
            ),
            TfvarsFormat::Hcl => (
                format!("{}.tfvars", node.address.name),
                hcl::tfvars(&inputs.vars),
            ),
        };
        let path = Path::new(&node.address.account)
            .join(&node.address.region)
            .join(name);
        files.push((path, text));
    }
    let done = render::generated::write_set(out, env, &files)?;
    println!(
        "wrote tfvars of {} nodes of environment {env} ({}) into {}: {} files written, {} unchanged, {} removed",
        files.len(),
        accounts.join(", "),
        out.display(),
        done.written,
        done.unchanged,
        done.removed
    );
    Ok(())
}

/// The directory of `dir` that `path` lies in (after resolving links and `..`), if it does.
fn inside_of(path: &Path, dir: &Path) -> Option<PathBuf> {
    let dir = std::fs::canonicalize(dir).ok()?;
    let absolute = std::env::current_dir().ok()?.join(path);
    // The path may not exist yet: resolve its deepest existing ancestor.
    let resolved = absolute.ancestors().find_map(|a| {
        let rest = absolute.strip_prefix(a).ok()?;
        std::fs::canonicalize(a).ok().map(|c| c.join(rest))
    })?;
    resolved.starts_with(&dir).then_some(dir)
}
