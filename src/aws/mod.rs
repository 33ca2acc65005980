//! orch's read path to AWS: what one account and region holds (keys, aliases, policies,
//! rotation, tags, grants), read through the AWS SDK with the credentials the terraform provider
//! would use. Read-only: nothing here creates, changes or deletes anything in AWS.
//!
//! Public (and `#[doc(hidden)]` in `lib.rs`) only so that `tests/aws_read.rs` can read an
//! emulator through it; it is not part of orch's interface.

mod calls;
mod failure;
mod inventory;
mod paging;
mod reader;
mod session;

pub use inventory::{
    LiveAlias, LiveGrant, LiveKey, LiveRotation, MultiRegion, Region, ReplicaRef, Target, Unknown,
};
pub use reader::Reader;
