//! `orch layout migrate`: the tree loaded and the lock held, then every node's state moved into
//! the layout orch.yaml names (`crate::migrate`).

use super::context::{exit, AppError, Loaded};
use crate::cli::Global;

pub fn migrate(loaded: &Loaded, global: &Global, auto_approve: bool) -> Result<(), AppError> {
    let _lock = crate::lock::Lock::acquire(&loaded.fleet.state_dir())?;
    let profile = loaded.run_profile(global)?;
    // Only a store whose states are read through terraform needs it.
    let binary = loaded.binary(None).map_err(|e| e.to_string());
    let store = loaded.store(
        profile,
        binary.as_ref().map_err(Clone::clone),
        loaded.parallelism(None),
    );
    exit(crate::migrate::execute(
        &loaded.fleet,
        &*store,
        auto_approve,
    )?)
}
