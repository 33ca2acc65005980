//! One file per command whose body is more than wiring (see STYLE.md).

pub mod backend;
pub mod migrate;
pub mod rollout;
