//! `orch render`: writes the root modules of the selected nodes into `.orch/work/` without
//! running terraform, in the layout orch.yaml names.

use super::context::{AppError, Loaded};
use super::run::changed_only;
use super::select::select;
use crate::cli::{Filters, Global};

pub fn exec(loaded: &Loaded, global: &Global, filters: &Filters) -> Result<(), AppError> {
    let selected = select(loaded, filters)?;
    let profile = loaded.profile(global.profile.as_deref())?;
    let store = loaded.store(
        profile.cloned(),
        Err("orch render runs no terraform".into()),
        1,
    );
    let renderer = loaded.renderer(profile, &*store);
    let selected = if filters.changed {
        let binary = loaded.binary(None)?;
        changed_only(loaded, &renderer, &binary, &selected)?
    } else {
        selected
    };
    let lock = crate::lock::Lock::acquire_for_render(&loaded.fleet.state_dir())?;
    let stats = loaded.layout.render(&renderer, &selected)?;
    drop(lock);
    println!(
        "rendered {} nodes into {}: {} files written, {} unchanged, {} removed",
        selected.len(),
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
