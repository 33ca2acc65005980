//! `orch drift`: what changed in AWS outside orch. A refresh-only plan of every selected node
//! (`crate::engine` with `Request::drift`), which changes nothing in AWS or in state; each node
//! in sync, drifted (each change in words), deleted or pending deletion outside orch, or unknown
//! (its refresh failed, with why). Exit 0 in sync, 2 drifted, 1 error.

use super::context::{AppError, Loaded};
use super::run::{exec_with, Kind};
use crate::cli::{Global, RunOptions};
use crate::terraform::workflow::Action;

pub fn exec(loaded: Loaded, global: &Global, options: &RunOptions) -> Result<(), AppError> {
    exec_with(
        loaded,
        global,
        options,
        (Action::Plan, true, false),
        Kind::Drift,
        None,
    )
}
