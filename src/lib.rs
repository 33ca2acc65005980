//! orch as a library: every stage of the tool, so the binary (`src/main.rs`) and the fuzz targets
//! under `fuzz/` run the same code in process. Only the entry points are public: `cli` (the
//! command line as data) and `app` (runs one command). `aws` is public, hidden, only for its
//! emulator-backed test (`tests/aws_read.rs`).

/// `eprintln!` that never panics. A closed stderr (`orch apply --all 2>&1 | head -1`) must not
/// end orch half-way through a run with terraform still running under it; what cannot be shown is
/// in the run's logs and report.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// [`say!`] without the line break.
macro_rules! say_raw {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stderr(), $($arg)*);
    }};
}

pub mod app;
mod audit;
#[doc(hidden)]
pub mod aws;
pub mod cli;
mod commands;
mod config;
mod diag;
mod engine;
mod files;
mod fingerprint;
mod graph;
mod import;
mod journal;
mod layout;
mod lock;
mod migrate;
mod policy;
mod prompt;
mod render;
mod report;
mod reporter;
mod scheduler;
mod shard;
mod signal;
mod state;
mod terraform;
mod waves;
