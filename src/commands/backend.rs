//! `orch backend bootstrap`: the tree loaded and the lock held, then the state store creates
//! what it needs to hold state (S3: the buckets).

use super::context::{AppError, Loaded};
use crate::cli::{Execution, Global};

pub fn bootstrap(
    loaded: &Loaded,
    global: &Global,
    auto_approve: bool,
    execution: &Execution,
) -> Result<(), AppError> {
    let profile = loaded.run_profile(global)?;
    let binary = loaded.binary(execution.terraform_bin.clone())?;
    let _lock = crate::lock::Lock::acquire(&loaded.fleet.state_dir())?;
    let parallelism = loaded.parallelism(execution.parallelism);
    loaded
        .store(profile, Ok(&binary), parallelism)
        .bootstrap(auto_approve)
        .map_err(AppError::Usage)
}
