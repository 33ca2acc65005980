//! orch: a Terragrunt-style orchestrator for fleets of AWS KMS keys. The binary only parses the
//! command line and maps the outcome to an exit code; everything else is in the library.

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser;
use orch::{app, cli};

fn main() -> ExitCode {
    // Everything orch and its terraform create (rendered files, state, outputs, logs, reports)
    // is its user's alone: state and logs can hold what must not leak to other local users.
    // SAFETY: umask(2) only sets this process's file creation mask.
    unsafe { libc::umask(0o077) };
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            // Usage errors exit 1 like every other error: exit code 2 means "changes present".
            return if err.use_stderr() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match app::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(app::AppError::Exit(code)) => ExitCode::from(code),
        Err(err) => {
            // A closed stderr must not turn an error into a panic.
            let _ = writeln!(std::io::stderr(), "error: {err}");
            err.exit_code()
        }
    }
}
