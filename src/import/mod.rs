//! `orch import`: adopting the keys a team already has. `classify` sorts what the AWS read path
//! found into key families to adopt and keys left alone; `draft` makes the node.yaml files of
//! them (policies mapped back onto capabilities where that is exact); `held` is what the tree
//! already holds (also what `orch audit` counts as managed); `verify` checks a draft
//! against the tree it makes; `write` puts it into `live/`, all or nothing, never over a file.
//! The command (`commands/import.rs`) runs these and, for `import apply`, the engine.

pub mod classify;
pub mod draft;
pub mod held;
pub mod verify;
pub mod write;
