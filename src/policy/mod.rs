//! The key policy engine: from a key's access model (capabilities, services, external accounts)
//! to a least-privilege key policy, checked before any terraform call. The action set of each
//! capability depends on the key's spec and usage. Output is deterministic: statements in a fixed
//! order, principals and actions sorted, stable Sids, so plans never show a spurious policy diff.
//!
//! `facts` is what a policy is computed from, `actions` the KMS actions of each capability,
//! `build` the policy document, `json` its JSON form, `check` the problems and warnings found
//! before terraform runs, `explain` the policy in plain words. `semantic` is a policy's normal
//! form, to compare policies by effect; `infer` maps a live policy back onto the access model;
//! `review` tells who gains and who loses what when a policy changes.

mod actions;
mod build;
mod check;
mod explain;
mod facts;
#[cfg(test)]
mod fixtures;
mod infer;
mod json;
mod review;
mod semantic;

pub use actions::cross_account_actions;
pub use build::{build, key_access_resource};
pub use check::{check, warnings, Problem};
pub use explain::{explain, reaching};
pub use facts::KeyFacts;
pub use infer::{infer, InferContext, Inference};
pub use review::{review, KeyShape, Review};
pub use semantic::{describe, Effect, Permissions, Tuple, Who};
