//! Where terraform state lives (DESIGN §10, §11): one [`StateStore`] interface with two
//! implementations, files under `.orch/state/` ([`local`]) and objects in each account's bucket
//! ([`s3`]). The only module that knows which one orch.yaml chose: everything above it (layouts,
//! the engine, migrate, the commands) holds an `Arc<dyn StateStore>` and never asks.
//!
//! A state is named by a [`Place`]: its name (a node's address, or a stack's
//! `_stacks/<account>/<region>/<tier>`, as the layout decides) and the account that owns it.

mod bootstrap;
mod local;
#[cfg(test)]
pub mod memory;
mod s3;

pub use local::sync_dir;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::config::{Backend as Chosen, Fleet, Profile};
use crate::render::{Backend, Templates};
use crate::terraform::binary::Binary;

/// One state of the fleet: its name, a node's address or `_stacks/<account>/<region>/<tier>`
/// (its path under `.orch/state/`, or under the key prefix in S3), and the account whose bucket
/// holds it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Place {
    pub name: String,
    pub account: String,
}

/// Why a store could not read or look at states.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Terraform holds the state's lock.
    #[error("{0}")]
    Locked(String),
    #[error("{0}")]
    Unreadable(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Where the states of a fleet live, and what orch does with them: the backend block of every
/// root (through [`Backend`], which rendering and terraform see), the check before a run, the
/// outputs of a state, and reading and writing whole states (`orch layout migrate`, its guard).
pub trait StateStore: Backend {
    /// Whether the states are shared by every checkout and read through terraform (S3), rather
    /// than files of this checkout: the outputs of dependencies are then read from them before
    /// a run, and what the reads cost is worth saying.
    fn is_remote(&self) -> bool;
    /// How many states it reads or writes at once.
    fn parallelism(&self) -> usize;
    /// Before anything runs: the store can hold the states of `accounts` (S3: each bucket exists
    /// and is the account's, terraform is new enough). Ok with what was checked, for the summary
    /// line; Err with every problem found and what to do about each.
    fn check(&self, accounts: &BTreeSet<&String>) -> Result<String, String>;
    /// The outputs of each state, in the `terraform output -json` form, None for a state that
    /// does not exist or has none; in the order of `places`.
    fn outputs(&self, places: &[Place]) -> Vec<Result<Option<String>, String>>;
    /// A state as the user finds it: its file, or `s3://<bucket>/<key>`.
    fn show(&self, place: &Place) -> String;
    /// Of each place, whether its state exists.
    fn exists(&self, places: &[Place]) -> Result<Vec<bool>, StoreError>;
    /// Before terraform runs on these states: each is one terraform can open (a local state is
    /// a file or nothing: on a FIFO terraform would block for good).
    fn check_states(&self, places: &[Place]) -> Result<(), StoreError>;
    /// Each state's bytes, in the order of `places`; None where there is none. Only for states
    /// [`StateStore::exists`] found: the S3 backend creates a state it is asked to pull.
    fn pull(&self, places: &[Place]) -> Result<Vec<Option<Vec<u8>>>, StoreError>;
    /// How many states were pulled so far, for what a check says it cost.
    fn pulls(&self) -> usize;
    /// Refuses while terraform holds one of these states locked.
    fn check_locks(&self, places: &[&Place]) -> Result<(), StoreError>;
    /// Writes a whole state over the old one (Err: why not).
    fn write(&self, place: &Place, json: &Map<String, Value>) -> Result<(), String>;
    /// A state left with no resource: `json` is it emptied.
    fn clear(&self, place: &Place, json: &Map<String, Value>) -> Result<(), String>;
    /// `orch backend bootstrap`: creates what the store needs to hold state, asking first
    /// unless `auto_approve`.
    fn bootstrap(&self, auto_approve: bool) -> Result<(), String>;

    /// Each state's bytes, None where there is none: only the existing states are pulled.
    fn read(&self, places: &[Place]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let found = self.exists(places)?;
        let wanted: Vec<Place> = places
            .iter()
            .zip(&found)
            .filter(|(_, &f)| f)
            .map(|(p, _)| p.clone())
            .collect();
        let mut pulled = self.pull(&wanted)?.into_iter();
        Ok(found
            .iter()
            .map(|&f| if f { pulled.next().flatten() } else { None })
            .collect())
    }
}

/// How a store runs terraform on its own modules: the nodes' binary and environment.
pub struct Terraform {
    pub binary: Binary,
    pub env: Vec<(String, String)>,
}

/// What a store is opened with.
pub struct Open {
    pub fleet: Arc<Fleet>,
    pub templates: Arc<Templates>,
    pub profile: Option<Profile>,
    /// Err (why there is none) for commands that only render, or when terraform was not
    /// found: a store whose states are read through terraform then fails with it when used.
    pub terraform: Result<Terraform, String>,
    pub parallelism: usize,
}

/// Where the outputs of a node of another shard come from, for a shard's summary line.
pub fn outputs_source(fleet: &Fleet) -> &'static str {
    match &fleet.settings.backend {
        Chosen::Local => ".orch/outputs when recorded there",
        Chosen::S3(_) => "their remote state",
    }
}

/// The store orch.yaml's `backend` names.
pub fn open(open: Open) -> Arc<dyn StateStore> {
    match &open.fleet.settings.backend {
        Chosen::Local => Arc::new(local::Local::new(&open.fleet)),
        Chosen::S3(s3) => {
            let s3 = s3.clone();
            Arc::new(s3::S3::new(open, s3))
        }
    }
}
