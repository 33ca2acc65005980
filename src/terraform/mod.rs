//! Terraform (or OpenTofu) as processes: finding the binary, running it in its own process group
//! with its output captured, and the per-node workflow init -> plan -> apply. Knows no YAML.

pub mod binary;
pub mod process;
pub mod workflow;
