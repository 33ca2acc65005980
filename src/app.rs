//! Runs one command: resolves the tree, loads it, and dispatches to the command's file under
//! `src/commands/`. The only place that knows every command; errors map to exit codes in
//! [`AppError::exit_code`].

use crate::cli::{BackendCommand, Cli, Command, Generate, ImportCommand, LayoutCommand};
use crate::commands::{self, load, resolve_live};
use crate::terraform::workflow::Action;

pub use crate::commands::AppError;

pub fn run(cli: Cli) -> Result<(), AppError> {
    quiet_on_closed_pipe(&cli.command);
    let global = &cli.global;
    let live = &resolve_live(&global.live)?;
    let loaded = load(live, global.strict)?;
    match &cli.command {
        Command::Validate => commands::validate::exec(&loaded, live),
        Command::Graph { format, shards } => commands::graph::exec(&loaded, *format, *shards),
        Command::Explain { address } => commands::explain::exec(&loaded, address),
        Command::Policy { address, explain } => commands::policy::exec(&loaded, address, *explain),
        Command::Render { filters } => commands::render::exec(&loaded, global, filters),
        Command::Plan {
            run,
            detailed_exitcode,
        } => commands::run::exec(loaded, global, run, Action::Plan, *detailed_exitcode, false),
        Command::Apply {
            run,
            auto_approve,
            import: true,
        } => commands::import::apply(loaded, global, run, *auto_approve),
        Command::Apply {
            run,
            auto_approve,
            import: false,
        } => commands::run::exec(loaded, global, run, Action::Apply, false, *auto_approve),
        Command::Destroy { run, auto_approve } => {
            commands::run::exec(loaded, global, run, Action::Destroy, false, *auto_approve)
        }
        Command::Drift { run } => commands::drift::exec(loaded, global, run),
        Command::Rollout(args) => commands::rollout::exec(loaded, global, args),
        Command::Layout {
            what: LayoutCommand::Migrate { auto_approve },
        } => commands::layout::migrate(&loaded, global, *auto_approve),
        Command::Backend {
            what:
                BackendCommand::Bootstrap {
                    auto_approve,
                    execution,
                },
        } => commands::backend::bootstrap(&loaded, global, *auto_approve, execution),
        Command::Output { address } => commands::output::exec(&loaded, address),
        Command::Import {
            what: ImportCommand::Discover(args),
        } => commands::import::discover(&loaded, global, args),
        Command::Import {
            what: ImportCommand::Apply { run, auto_approve },
        } => commands::import::apply(loaded, global, run, *auto_approve),
        Command::Audit(args) => commands::audit::exec(&loaded, global, args),
        Command::Generate {
            what: Generate::Tfvars { env, out, format },
        } => {
            let profile = loaded.profile(global.profile.as_deref())?;
            commands::generate::exec(&loaded, profile, env, out, *format)
        }
    }
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
            | Command::Audit(_)
            | Command::Generate { .. }
    );
    if prints {
        // SAFETY: restores a signal's default disposition at start-up, before any thread runs.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
}
