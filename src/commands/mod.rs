//! One file per command (DESIGN §11): each takes the loaded tree ([`Loaded`]) and the command's
//! arguments, and calls into the library. `crate::app` resolves the tree and dispatches here.

pub mod audit;
pub mod backend;
mod context;
pub mod drift;
pub mod explain;
pub mod generate;
pub mod graph;
pub mod import;
pub mod layout;
mod load;
pub mod output;
pub mod policy;
mod reading;
pub mod render;
pub mod rollout;
pub mod run;
mod select;
pub mod validate;

pub use context::AppError;
pub use load::{load, resolve_live};
