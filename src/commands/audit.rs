//! `orch audit`: reads the accounts of the tree (or those named) through the AWS read path,
//! runs the checks of `crate::audit` on what it read, prints the findings and writes `--report`.
//! Exit 0 when everything was read and nothing found, 2 with findings, 1 when anything could
//! not be read (what was read is still printed and written).

use super::context::{exit, AppError, Loaded};
use crate::cli::{AuditArgs, Global};

pub fn exec(loaded: &Loaded, global: &Global, args: &AuditArgs) -> Result<(), AppError> {
    let targets = super::reading::targets(
        loaded,
        &args.account,
        &args.region,
        "audit reads the accounts the tree has",
    )?;
    let (read, seconds) = super::reading::read(loaded, global, targets, args.concurrency)?;
    let mut outcome = crate::audit::run(&loaded.fleet, read);
    outcome.seconds = seconds;
    say_raw!("{}", crate::audit::text(&outcome));
    if let Some(path) = &args.report {
        crate::audit::write(path, &outcome).map_err(|e| {
            AppError::Usage(format!("cannot write the report {}: {e}", path.display()))
        })?;
    }
    exit(outcome.exit_code())
}
