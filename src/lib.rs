//! orch as a library: every stage of the tool, so the binary (`src/main.rs`) and the fuzz targets
//! under `fuzz/` run the same code in process. Only the entry points are public: `cli` (the
//! command line as data) and `app` (runs one command).

pub mod app;
pub mod cli;
mod commands;
mod config;
mod diag;
mod explain;
mod fingerprint;
mod graph;
mod journal;
mod lock;
mod policy;
mod render;
mod report;
mod report_html;
mod reporter;
mod run;
mod scheduler;
mod shard;
mod signal;
mod terraform;
mod waves;
