//! Terraform (or OpenTofu) as processes: finding the binary, running it in its own process group
//! with its output captured and redacted, the per-node workflow init -> plan -> apply, and the
//! record of running processes that lets a run recover from a killed one. Knows no YAML.

pub mod access;
pub mod binary;
pub mod drift;
pub mod env;
pub mod lock_info;
pub mod planfile;
pub mod process;
pub mod redact;
pub mod remote;
pub mod runs;
pub mod text;
pub mod workflow;
pub mod written;
