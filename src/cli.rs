//! The command line (clap). Parsing only: `app.rs` turns these into work.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "orch",
    version,
    about = "Orchestrates a fleet of AWS KMS keys across accounts and regions with Terraform"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// The live/ tree to read.
    #[arg(long, global = true, default_value = "live", env = "ORCH_LIVE")]
    pub live: PathBuf,
    /// Provider profile from orch.yaml (e.g. sandbox).
    #[arg(long, global = true, env = "ORCH_PROFILE")]
    pub profile: Option<String>,
    /// Disable colors and progress bars.
    #[arg(long, global = true)]
    pub no_color: bool,
    /// Treat warnings (e.g. administrators who can also decrypt) as errors.
    #[arg(long, global = true)]
    pub strict: bool,
    /// Send every AWS API call to this URL, overriding the profile's endpoint.
    #[arg(long, global = true, env = "ORCH_ENDPOINT")]
    pub endpoint: Option<String>,
}

/// How terraform runs, shared by plan/apply/destroy and rollout.
#[derive(Debug, Args, Clone)]
pub struct Execution {
    /// Nodes run at once (default: orch.yaml `parallelism`, else the number of cores).
    #[arg(long)]
    pub parallelism: Option<usize>,
    /// The terraform (or tofu) binary.
    #[arg(long, env = "ORCH_TERRAFORM")]
    pub terraform_bin: Option<String>,
    /// Write the summary (a rollout's by wave) to FILE: JSON (run.json), a self-contained page
    /// (run.html) or Markdown for a pull request (run.md).
    #[arg(long, value_name = "FILE", value_parser = crate::report::parse_path)]
    pub report: Option<PathBuf>,
}

/// Options of the commands that run terraform.
#[derive(Debug, Args, Clone)]
pub struct RunOptions {
    #[command(flatten)]
    pub filters: Filters,
    #[command(flatten)]
    pub execution: Execution,
    /// Start no new node after the first failure.
    #[arg(long)]
    pub fail_fast: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the whole tree; report every error with its file and line.
    Validate,
    /// Print the dependency graph.
    Graph {
        #[arg(long, value_enum, default_value_t = GraphFormat::Text)]
        format: GraphFormat,
        /// Shards in the github-matrix (default: one per 50 nodes per orch.yaml `parallelism`,
        /// else 2, slots of a runner; at most 256).
        #[arg(long, value_name = "N", value_parser = crate::shard::parse_count)]
        shards: Option<u32>,
    },
    /// Print a node's effective configuration, each value with the file:line it came from.
    Explain {
        /// Node address, account/region/node.
        address: String,
    },
    /// Print the key policy orch computes for a key or replica.
    Policy {
        address: String,
        /// Say who can do what, in plain words.
        #[arg(long)]
        explain: bool,
    },
    /// Render Terraform root modules into .orch/work/<address>/.
    Render {
        #[command(flatten)]
        filters: Filters,
    },
    /// Plan every selected node: init, plan -out, counts of changes.
    Plan {
        #[command(flatten)]
        run: RunOptions,
        /// Exit 2 when any node has changes (0 none, 1 error).
        #[arg(long)]
        detailed_exitcode: bool,
    },
    /// Apply every selected node in DAG order, recording outputs for dependents.
    Apply {
        #[command(flatten)]
        run: RunOptions,
        /// Apply without asking (required when there is no terminal).
        #[arg(long)]
        auto_approve: bool,
        /// Adopt the existing resources of nodes with `import:` (as `orch import apply`).
        #[arg(long)]
        import: bool,
    },
    /// Destroy every selected node, dependents first.
    Destroy {
        #[command(flatten)]
        run: RunOptions,
        /// Destroy without asking (required when there is no terminal).
        #[arg(long)]
        auto_approve: bool,
    },
    /// What changed in AWS outside orch: a refresh-only plan of every selected node, changing
    /// nothing. Exit 0 in sync, 2 drifted (or deleted outside orch), 1 error.
    Drift {
        #[command(flatten)]
        run: RunOptions,
    },
    /// Print the recorded outputs of an applied node.
    Output { address: String },
    /// Roll out wave by wave (orch.yaml `waves:`): plan, apply, gate; journaled and resumable.
    Rollout(RolloutArgs),
    /// Move terraform state between layouts (orch.yaml `layout: per-node | stacks`).
    Layout {
        #[command(subcommand)]
        what: LayoutCommand,
    },
    /// The S3 backend's state buckets (orch.yaml `backend: {type: s3, ...}`).
    Backend {
        #[command(subcommand)]
        what: BackendCommand,
    },
    /// Adopt keys that exist in AWS: discover them into live/, then import them.
    Import {
        #[command(subcommand)]
        what: ImportCommand,
    },
    /// Check the live accounts of the tree: keys orch does not manage, rotation off, keys pending
    /// deletion or disabled, public policies, unknown accounts, grants (read-only).
    Audit(AuditArgs),
    /// Write per-node tfvars for pipelines of one's own.
    Generate {
        #[command(subcommand)]
        what: Generate,
    },
}

/// Options of `orch rollout`.
#[derive(Debug, Args, Clone)]
pub struct RolloutArgs {
    /// Only this wave.
    #[arg(long, value_name = "NAME", conflicts_with = "resume")]
    pub wave: Option<String>,
    /// Continue a stopped rollout: RUN, or the newest one that has not finished.
    #[arg(long, value_name = "RUN", num_args = 0..=1, default_missing_value = "")]
    pub resume: Option<String>,
    /// Print the waves, their nodes and the plan of each; apply nothing.
    #[arg(long, conflicts_with = "resume")]
    pub plan_only: bool,
    /// Start waves marked `approve: true` without asking (required when there is no terminal).
    #[arg(long)]
    pub auto_approve: bool,
    /// Only nodes whose inputs changed since their last apply, and their dependents.
    #[arg(long, conflicts_with = "resume")]
    pub changed: bool,
    /// Only shard I of N of each wave's nodes (split by address hash), for N CI runners.
    #[arg(long, value_name = "I/N", value_parser = crate::shard::parse, conflicts_with = "resume")]
    pub shard: Option<crate::shard::Shard>,
    #[command(flatten)]
    pub execution: Execution,
}

#[derive(Debug, Subcommand)]
pub enum LayoutCommand {
    /// Move every node's state to the layout orch.yaml names; never re-creates a resource.
    Migrate {
        /// Move without asking (required when there is no terminal).
        #[arg(long)]
        auto_approve: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Read the accounts of the tree and write a node.yaml for every customer-managed key not
    /// in the tree yet (never over a file).
    Discover(DiscoverArgs),
    /// Import the adopted nodes' keys, aliases and grants into state; refused if the plan would
    /// create or destroy anything.
    Apply {
        #[command(flatten)]
        run: RunOptions,
        /// Apply without asking (required when there is no terminal).
        #[arg(long)]
        auto_approve: bool,
    },
}

/// Options of `orch import discover`.
#[derive(Debug, Args, Clone)]
pub struct DiscoverArgs {
    /// Only this account of the tree (repeatable; default: every account).
    #[arg(long)]
    pub account: Vec<String>,
    /// Only this region (repeatable; default: each account's `regions`).
    #[arg(long)]
    pub region: Vec<String>,
    /// Print the files it would write; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Adopt disabled keys too (as `is_enabled: false`).
    #[arg(long)]
    pub include_disabled: bool,
    /// AWS API calls in flight at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,
    /// Write what was found, adopted and left alone as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
}

/// Options of `orch audit`.
#[derive(Debug, Args, Clone)]
pub struct AuditArgs {
    /// Only this account of the tree (repeatable; default: every account).
    #[arg(long)]
    pub account: Vec<String>,
    /// Only this region (repeatable; default: each account's `regions`).
    #[arg(long)]
    pub region: Vec<String>,
    /// AWS API calls in flight at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,
    /// Write the findings to FILE: JSON (audit.json), a self-contained page (audit.html) or
    /// Markdown for a pull request (audit.md).
    #[arg(long, value_name = "FILE", value_parser = crate::audit::parse_report_path)]
    pub report: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum BackendCommand {
    /// List the state buckets the fleet needs, say which exist, and create the missing ones
    /// (versioned, encrypted, public access blocked, TLS only) after asking.
    Bootstrap {
        /// Create without asking (required when there is no terminal).
        #[arg(long)]
        auto_approve: bool,
        #[command(flatten)]
        execution: Execution,
    },
}

#[derive(Debug, Subcommand)]
pub enum Generate {
    /// tfvars of every node of every account of one environment.
    Tfvars {
        /// Environment, as in account.yaml's `environment`.
        #[arg(long)]
        env: String,
        /// Directory to write into.
        #[arg(long, default_value = "tfvars")]
        out: PathBuf,
        #[arg(long, value_enum, default_value_t = TfvarsFormat::Json)]
        format: TfvarsFormat,
    },
}

/// Which nodes a command works on.
#[derive(Debug, Args, Clone, Default)]
pub struct Filters {
    /// Every node of the tree.
    #[arg(long, conflicts_with_all = ["patterns", "account", "region"])]
    pub all: bool,
    /// Address globs: prod/*/s3-*, dev/**
    #[arg(value_name = "ADDRESS")]
    pub patterns: Vec<String>,
    /// Only nodes of this account (repeatable).
    #[arg(long)]
    pub account: Vec<String>,
    /// Only nodes in this region (repeatable).
    #[arg(long)]
    pub region: Vec<String>,
    /// Add every dependency of the selected nodes.
    #[arg(long)]
    pub with_deps: bool,
    /// Only shard I of N of the selected nodes (split by address hash), for N CI runners.
    #[arg(long, value_name = "I/N", value_parser = crate::shard::parse)]
    pub shard: Option<crate::shard::Shard>,
    /// Only nodes whose inputs changed since their last successful apply, and their dependents.
    #[arg(long)]
    pub changed: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum GraphFormat {
    Text,
    Dot,
    Json,
    /// `{"include": [{"shard": "1/N"}, ...]}` for a GitHub Actions matrix.
    GithubMatrix,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum TfvarsFormat {
    Json,
    Hcl,
}
