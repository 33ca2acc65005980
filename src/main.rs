//! orch: a Terragrunt-style orchestrator for fleets of AWS KMS keys.

mod app;
mod cli;
mod commands;
mod config;
mod diag;
mod explain;
mod fingerprint;
mod graph;
mod journal;
mod lock;
mod policy;
mod render;
mod reporter;
mod run;
mod scheduler;
mod signal;
mod terraform;
mod waves;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
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
            eprintln!("error: {err}");
            err.exit_code()
        }
    }
}
