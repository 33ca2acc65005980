//! The work for one node, as the scheduler's [`Executor`]: render its module, `init` unless it is
//! already initialized for the same backend and providers, `plan -out`, and for apply the saved
//! plan; outputs recorded after apply for dependents. Transient failures (throttling, reset
//! connections) are retried with backoff a bounded number of times; an apply is retried from a
//! new plan, since its saved plan may be stale after a partial apply. Terraform's output is
//! believed only as far as it is consistent: a plan that says "changes" must have written its
//! plan file, and a crash (a Go panic exits 2, like "changes") is a failure whatever the code.
//!
//! Counts come from plan's own summary line and `-detailed-exitcode` rather than from
//! `terraform show -json`: `show` loads the provider schema once more, about a quarter of the CPU
//! of a whole plan with the AWS provider, for numbers plan already prints. For the same reason
//! drift and the access review read the saved plan file's two states ([`super::planfile`]), and
//! what orch manages from the node's own rendered files ([`super::written`]).

use std::collections::{BTreeSet, HashSet};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{watch, Mutex};

use super::access::{key_access, KeyAccess};
use super::binary::Binary;
use super::drift::{changes, node_drift, NodeDrift};
use super::planfile::{self, Planfile};
use super::process::{self, Log, Spawn};
use super::redact::Redactor;
use super::runs::RunDir;
use super::text::{crash, first_error, hint, is_transient, parse_counts, signal_name};
use super::written::Written;
use crate::config::{Fleet, Node, Profile};
use crate::render::{Backend, Renderer, TemplateCache, Templates};
use crate::scheduler::Executor;
use crate::signal::Level;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Plan,
    Apply,
    Destroy,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Plan => "plan",
            Action::Apply => "apply",
            Action::Destroy => "destroy",
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub add: u32,
    pub change: u32,
    pub destroy: u32,
    /// Existing resources the plan adopts (terraform `import` blocks).
    #[serde(skip_serializing_if = "is_zero")]
    pub import: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// What an apply does with a plan that imports existing resources (a node with `import:`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Imports {
    /// `orch apply`: a plan that imports is not applied; adopting is `orch import apply`'s.
    #[default]
    Refuse,
    /// `orch import apply`: every plan must add and destroy nothing; changes in place (the
    /// adoption drift) are shown and applied once confirmed.
    Adopt,
}

impl Imports {
    /// Whether a node's plan may be applied, given what it counts (`None`: counts unknown).
    pub fn check(self, counts: Option<Counts>) -> Result<(), String> {
        match (self, counts) {
            (Imports::Refuse, Some(c)) if c.import > 0 => Err(format!(
                "the plan adopts {} existing resource(s) (`import:`); adopting is `orch import apply`'s, which first checks that nothing is created or destroyed",
                c.import
            )),
            (Imports::Adopt, Some(c)) if c.add > 0 || c.destroy > 0 => Err(format!(
                "adopting must create and destroy nothing, and this plan adds {} and destroys {} (see the plan above or in the log): make the node match the key in AWS, or adopt it as it is and change it later with `orch apply`",
                c.add, c.destroy
            )),
            (Imports::Adopt, None) => Err(
                "orch could not read what this plan changes, so it cannot tell that adopting creates and destroys nothing; nothing was imported".into(),
            ),
            _ => Ok(()),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Planned: nothing to change.
    NoChanges,
    /// Planned: changes present.
    Changes,
    /// Applied or destroyed.
    Done,
    Failed,
    Interrupted,
    /// Not run: its fingerprint matches the one recorded at its last apply (`--changed`, resume).
    Unchanged,
    /// `layout: stacks`: not planned or applied because its stack's terraform run stopped on
    /// another node of the stack (or applied it only in part).
    NotApplied,
    /// `orch drift`: AWS holds what the state says.
    InSync,
    /// `orch drift`: something changed outside orch (see `NodeRun::drift`).
    Drifted,
}

/// The outcome of one node.
#[derive(Clone, Debug, Serialize)]
pub struct NodeRun {
    pub address: String,
    pub action: Action,
    pub status: Status,
    pub counts: Option<Counts>,
    /// Planned with placeholders for outputs of dependencies not applied yet.
    pub provisional: bool,
    #[serde(serialize_with = "seconds")]
    pub duration: Duration,
    /// 1, and 1 more for each retry of a transient error (0: no terraform ran).
    pub attempts: u32,
    pub error: Option<String>,
    pub log: PathBuf,
    /// The whole captured output, printed by the reporter when it matters.
    #[serde(skip)]
    pub output: String,
    /// Who gains and who loses what, per key whose policy the plan changes.
    pub access: Vec<KeyAccess>,
    /// `orch drift`: what changed outside orch.
    pub drift: Option<NodeDrift>,
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1000.0).round() / 1000.0)
}

/// Everything a node's run needs; shared by all of them.
pub struct Context {
    pub fleet: Arc<Fleet>,
    pub templates: Arc<Templates>,
    pub profile: Option<Profile>,
    /// Where the roots keep their state: their backend block and lock timeout.
    pub backend: Arc<dyn Backend>,
    pub binary: Binary,
    pub env: Vec<(String, String)>,
    pub action: Action,
    /// Only plan (for `destroy`, a destroy plan): the preview shown before asking to go on.
    pub preview: bool,
    pub log_dir: PathBuf,
    pub runs: Arc<RunDir>,
    pub redactor: Arc<Redactor>,
    pub interrupt: watch::Receiver<Level>,
    pub retries: u32,
    /// Nodes that run no terraform at all when their fingerprint matches the recorded one.
    pub skip_unchanged: BTreeSet<usize>,
    /// Whether an apply adopts existing resources (`orch import apply`) or refuses to.
    pub imports: Imports,
    /// `orch drift`: a refresh-only plan, read for what changed outside orch; nothing applied.
    pub drift: bool,
    pub backoff: Duration,
    /// Provider sets (by versions.tf) whose first `init` has filled the plugin cache.
    warmed: Mutex<HashSet<u64>>,
}

impl Context {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        fleet: Arc<Fleet>,
        templates: Arc<Templates>,
        profile: Option<Profile>,
        backend: Arc<dyn Backend>,
        binary: Binary,
        env: Vec<(String, String)>,
        action: Action,
        preview: bool,
        log_dir: PathBuf,
        runs: Arc<RunDir>,
        redactor: Arc<Redactor>,
        interrupt: watch::Receiver<Level>,
    ) -> Self {
        let backoff_ms = std::env::var("ORCH_RETRY_BACKOFF_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2000);
        Context {
            fleet,
            templates,
            profile,
            backend,
            binary,
            env,
            action,
            preview,
            log_dir,
            runs,
            redactor,
            interrupt,
            retries: 3,
            skip_unchanged: BTreeSet::new(),
            imports: Imports::default(),
            drift: false,
            backoff: Duration::from_millis(backoff_ms),
            warmed: Mutex::new(HashSet::new()),
        }
    }
}

impl Context {
    /// The renderer of this run's nodes.
    pub fn renderer(&self) -> Renderer<'_> {
        Renderer::new(
            &self.fleet,
            &self.templates,
            self.profile.as_ref(),
            &*self.backend,
        )
    }
}

pub struct TerraformExecutor {
    pub context: Arc<Context>,
}

impl Executor for TerraformExecutor {
    type Output = NodeRun;

    fn run(&self, node: usize) -> impl std::future::Future<Output = NodeRun> + Send {
        let context = self.context.clone();
        async move { NodeJob::new(context, node).run().await }
    }

    fn succeeded(output: &NodeRun) -> bool {
        !matches!(
            output.status,
            Status::Failed | Status::Interrupted | Status::NotApplied
        )
    }
}

/// Failure of one step, with what to tell the user.
pub(crate) struct StepError {
    pub message: String,
    pub interrupted: bool,
    /// Worth another try (throttling, a dropped connection).
    pub transient: bool,
    /// What terraform printed, when the step failed in terraform.
    pub text: String,
}

impl StepError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        StepError {
            message: message.into(),
            interrupted: false,
            transient: false,
            text: String::new(),
        }
    }
}

/// The terraform runs in one work directory: a node's, or (`layout: stacks`) a stack's, whose
/// steps `crate::layout::stacks` drives.
pub(crate) struct NodeJob {
    context: Arc<Context>,
    node: usize,
    /// What the process record names the runs by: the node's address, or the stack's.
    address: String,
    dir: PathBuf,
    log: PathBuf,
    pub output: String,
    pub attempts: u32,
    /// `-target` arguments of every plan (a stack's selected module blocks).
    pub targets: Vec<String>,
}

/// A node's own root module, in the per-node layout: `.orch/work/<address>/`.
pub fn work_dir(fleet: &Fleet, node: &Node) -> PathBuf {
    fleet
        .state_dir()
        .join("work")
        .join(node.address.to_string())
}

impl NodeJob {
    fn new(context: Arc<Context>, node: usize) -> Self {
        let address = context.fleet.nodes[node].address.to_string();
        let dir = work_dir(&context.fleet, &context.fleet.nodes[node]);
        let log = context.log_dir.join(format!("{address}.log"));
        NodeJob {
            node,
            ..NodeJob::for_dir(context, address, dir, log)
        }
    }

    /// The runs of a work directory that is not one node's (a stack's), named `address`.
    pub(crate) fn for_dir(
        context: Arc<Context>,
        address: String,
        dir: PathBuf,
        log: PathBuf,
    ) -> Self {
        NodeJob {
            context,
            node: usize::MAX,
            address,
            dir,
            log,
            output: String::new(),
            attempts: 0,
            targets: Vec::new(),
        }
    }

    async fn run(mut self) -> NodeRun {
        let started = Instant::now();
        let action = if self.context.preview {
            Action::Plan
        } else {
            self.context.action
        };
        let result = self.steps().await;
        if let Err(e) = &result {
            // The log says how the node ended, also when it ended before terraform ran. A log
            // that cannot be written is already the node's error.
            let _ = self.note(&format!("# orch: {}\n", e.message));
        }
        let (done, error) = match result {
            Ok(done) => (done, None),
            Err(e) => (
                StepDone::new(if e.interrupted {
                    Status::Interrupted
                } else {
                    Status::Failed
                }),
                Some(e.message),
            ),
        };
        NodeRun {
            address: self.context.fleet.nodes[self.node].address.to_string(),
            action,
            status: done.status,
            counts: done.counts,
            provisional: done.provisional,
            duration: started.elapsed(),
            attempts: self.attempts,
            error,
            log: self.log.clone(),
            output: self.output,
            access: done.access,
            drift: done.drift,
        }
    }

    async fn steps(&mut self) -> Result<StepDone, StepError> {
        let rendered = self.render()?;
        let provisional = rendered.provisional;
        let action = self.context.action;
        let destroy = action == Action::Destroy;
        if !destroy && self.unchanged(&rendered.files) {
            self.note("# unchanged: the fingerprint matches the one recorded at the last apply\n")?;
            return Ok(StepDone::new(Status::Unchanged));
        }
        self.init().await?;
        let written = Written::of(&rendered.files);
        if self.context.drift {
            let plan = self.plan(false).await?;
            let drift = if plan.changes {
                node_drift(&changes(&self.planfile()?, None, &written), self.shape())
            } else {
                NodeDrift::default()
            };
            return Ok(StepDone {
                status: if drift.in_sync() {
                    Status::InSync
                } else {
                    Status::Drifted
                },
                drift: Some(drift),
                ..StepDone::new(Status::InSync)
            });
        }
        let mut round = 0;
        let mut access = Vec::new();
        let plan = loop {
            let plan = self.plan(destroy).await?;
            if plan.may_change_policies(destroy) {
                access = key_access(&self.planfile()?.refreshed, None, &written, self.shape());
            }
            if action == Action::Apply {
                self.context
                    .imports
                    .check(plan.counts)
                    .map_err(StepError::new)?;
            }
            if action == Action::Plan || self.context.preview {
                return Ok(StepDone {
                    status: if plan.changes {
                        Status::Changes
                    } else {
                        Status::NoChanges
                    },
                    counts: plan.counts,
                    provisional,
                    access,
                    drift: None,
                });
            }
            if provisional {
                return Err(StepError::new("planned with placeholders for outputs of dependencies that are not applied; a provisional plan is never applied (apply its dependencies first, e.g. with --with-deps)"));
            }
            if !plan.changes {
                break plan;
            }
            self.forget_fingerprint()?;
            let lock_timeout = self.lock_timeout();
            match self
                .run_step(&apply_args(&lock_timeout), &[0], Retry::Never, &[])
                .await
            {
                Ok(_) => break plan,
                Err(e) if e.transient && round < self.context.retries => {
                    round += 1;
                    let wait = self.context.backoff * 2u32.pow(round - 1);
                    self.note(&format!(
                        "# transient error during apply; planning again in {:.1}s (round {} of {})\n",
                        wait.as_secs_f64(),
                        round + 1,
                        self.context.retries + 1
                    ))?;
                    tokio::time::sleep(wait).await;
                }
                Err(e) => return Err(e),
            }
        };
        match action {
            Action::Apply => {
                self.record_outputs().await?;
                self.record_fingerprint(&rendered.files)?;
            }
            _ => {
                let _ = std::fs::remove_file(self.outputs_path());
                self.forget_fingerprint()?;
            }
        }
        Ok(StepDone {
            counts: plan.counts,
            access,
            ..StepDone::new(Status::Done)
        })
    }

    /// The shape of this node's key, for naming capabilities; `None` for a node without one.
    fn shape(&self) -> Option<crate::policy::KeyShape> {
        let fleet = &self.context.fleet;
        crate::policy::KeyFacts::of(fleet, &fleet.nodes[self.node]).map(|f| f.shape())
    }

    /// The states of the saved plan, before and after its refresh.
    pub(crate) fn planfile(&self) -> Result<Planfile, StepError> {
        planfile::read(&self.dir.join("tfplan")).map_err(StepError::new)
    }

    /// Renders the node's module and writes it to the work dir.
    fn render(&mut self) -> Result<crate::render::Rendered, StepError> {
        let ctx = &self.context;
        let node = &ctx.fleet.nodes[self.node];
        let rendered = ctx
            .renderer()
            .render(node, &mut TemplateCache::default())
            .map_err(|e| StepError::new(e.to_string()))?;
        crate::render::write_files(&self.dir, &rendered.files)
            .map_err(|e| StepError::new(e.to_string()))?;
        Ok(rendered)
    }

    fn fingerprint(&self, files: &[(&str, String)]) -> String {
        let ctx = &self.context;
        let node = &ctx.fleet.nodes[self.node];
        crate::fingerprint::compute(&ctx.fleet, node, files, &self.dir, &ctx.binary.version)
    }

    fn unchanged(&self, files: &[(&str, String)]) -> bool {
        let ctx = &self.context;
        ctx.skip_unchanged.contains(&self.node)
            && crate::fingerprint::recorded(&ctx.fleet, &ctx.fleet.nodes[self.node].address)
                .is_some_and(|recorded| recorded == self.fingerprint(files))
    }

    fn record_fingerprint(&self, files: &[(&str, String)]) -> Result<(), StepError> {
        let fleet = &self.context.fleet;
        crate::fingerprint::record(
            fleet,
            &fleet.nodes[self.node].address,
            &self.fingerprint(files),
        )
        .map_err(|e| StepError::new(format!("recording the fingerprint: {e}")))
    }

    fn forget_fingerprint(&self) -> Result<(), StepError> {
        let fleet = &self.context.fleet;
        crate::fingerprint::forget(fleet, &fleet.nodes[self.node].address)
            .map_err(|e| StepError::new(format!("forgetting the recorded fingerprint: {e}")))
    }

    /// `init`, unless the work dir is initialized for the same providers and backend already.
    /// The first init of each provider set runs alone, to fill the shared plugin cache before
    /// the others link from it (Terraform's cache is not safe for concurrent first installs).
    /// A later node without a lock file of its own then links from the cache with
    /// `TF_PLUGIN_CACHE_MAY_BREAK_DEPENDENCY_LOCK_FILE`: without a lock file, concurrent inits
    /// race to create the same cache directory even when the cache is warm; with one copied in,
    /// each init re-hashes the 700 MB provider (1.25 CPU-s, against 0.45 s). The cache entry it
    /// trusts was installed and checked moments before by the first init.
    pub(crate) async fn init(&mut self) -> Result<(), StepError> {
        let fingerprint = self.init_fingerprint();
        let marker = self.dir.join(".orch-init");
        let current = crate::files::read_to_string(&marker).ok();
        if current.as_deref() == Some(fingerprint.1.as_str())
            && self.dir.join(".terraform").is_dir()
        {
            // Its providers are links into the shared cache, so the cache holds this provider
            // set already, and no other root's init may now rewrite it (a first init installs
            // into the cache anew, and a plan reading the link meanwhile fails with "Required
            // plugins are not installed"). Count the set as warmed, after waiting for a first
            // init that is running: later inits then link from the cache.
            self.context.warmed.lock().await.insert(fingerprint.0);
            return self
                .note("# init skipped: already initialized for these providers and backend\n");
        }
        let args = ["init", "-input=false", "-no-color", "-reconfigure"];
        let lock_file = self.dir.join(".terraform.lock.hcl");
        let ctx = self.context.clone();
        let mut warmed = ctx.warmed.lock().await;
        match warmed.get(&fingerprint.0) {
            None => {
                // Held across the init: every other node of this provider set waits for it.
                self.step(&args).await?;
                warmed.insert(fingerprint.0);
                drop(warmed);
            }
            Some(_) => {
                drop(warmed);
                let trust_cache: &[(&str, &str)] = if lock_file.exists() {
                    &[]
                } else {
                    &[("TF_PLUGIN_CACHE_MAY_BREAK_DEPENDENCY_LOCK_FILE", "1")]
                };
                self.run_step(&args, &[0], Retry::Transient, trust_cache)
                    .await?;
            }
        }
        let _ = std::fs::write(&marker, &fingerprint.1);
        Ok(())
    }

    /// (hash of the provider requirements, text identifying providers + backend + binary).
    fn init_fingerprint(&self) -> (u64, String) {
        let read =
            |name: &str| crate::files::read_to_string(self.dir.join(name)).unwrap_or_default();
        let versions = read("versions.tf");
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        versions.hash(&mut hasher);
        let providers = hasher.finish();
        (read("backend.tf") + &versions).hash(&mut hasher);
        self.context.binary.version.hash(&mut hasher);
        // A stack root installs its nodes' module blocks at init: one more node is one more
        // module to install, or the plan fails with "Module not installed".
        let main = read("main.tf");
        let sources: Vec<&str> = main
            .lines()
            .filter(|l| l.starts_with("module \"") || l.trim_start().starts_with("source "))
            .collect();
        if !sources.is_empty() {
            sources.hash(&mut hasher);
        }
        (providers, format!("{:016x}\n", hasher.finish()))
    }

    /// `-lock-timeout=`: how long to wait for a state lock another run holds.
    pub(crate) fn lock_timeout(&self) -> String {
        format!(
            "-lock-timeout={}s",
            self.context.backend.lock_timeout().as_secs()
        )
    }

    pub(crate) async fn plan(&mut self, destroy: bool) -> Result<Planned, StepError> {
        let lock_timeout = self.lock_timeout();
        let mut args = vec![
            "plan",
            "-input=false",
            "-no-color",
            &lock_timeout,
            "-out=tfplan",
            "-detailed-exitcode",
        ];
        if destroy {
            args.push("-destroy");
        }
        if self.context.drift {
            args.push("-refresh-only");
        }
        let targets = self.targets.clone();
        args.extend(targets.iter().map(String::as_str));
        // A plan file left from an earlier plan must not pass for this one's.
        let plan_file = self.dir.join("tfplan");
        match std::fs::remove_file(&plan_file) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(StepError::new(format!(
                    "cannot remove the old plan {}: {e}",
                    plan_file.display()
                )))
            }
            _ => {}
        }
        let (code, text) = self.run_step(&args, &[0, 2], Retry::Transient, &[]).await?;
        let changes = code == 2;
        if changes && !plan_file.is_file() {
            return Err(StepError::new(
                "`terraform plan` exited 2 (changes) but wrote no plan file; its output is in the log",
            ));
        }
        Ok(Planned {
            changes,
            counts: if changes {
                parse_counts(&text)
            } else {
                Some(Counts::default())
            },
            text,
        })
    }

    async fn record_outputs(&mut self) -> Result<(), StepError> {
        let (_, text) = self
            .run_step(&["output", "-json", "-no-color"], &[0], Retry::Quiet, &[])
            .await?;
        if serde_json::from_str::<serde_json::Value>(&text).is_err() {
            return Err(StepError::new(
                "`terraform output -json` printed something that is not JSON; outputs not recorded",
            ));
        }
        let path = self.outputs_path();
        write_atomically(&path, &text).map_err(|e| {
            StepError::new(format!(
                "cannot record the outputs in {}: {e}",
                path.display()
            ))
        })
    }

    /// A line of orch's own in the node's log and captured output.
    pub(crate) fn note(&mut self, text: &str) -> Result<(), StepError> {
        self.output.push_str(text);
        let io = |e: std::io::Error| {
            StepError::new(format!("cannot write the log {}: {e}", self.log.display()))
        };
        if let Some(parent) = self.log.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(io)?;
        std::io::Write::write_all(&mut log, text.as_bytes()).map_err(io)
    }

    fn outputs_path(&self) -> PathBuf {
        let address = &self.context.fleet.nodes[self.node].address;
        self.context
            .fleet
            .state_dir()
            .join("outputs")
            .join(format!("{address}.json"))
    }

    async fn step(&mut self, args: &[&str]) -> Result<String, StepError> {
        self.run_step(args, &[0], Retry::Transient, &[])
            .await
            .map(|(_, text)| text)
    }

    /// Runs one terraform command, logging it (unless quiet), retrying as `retry` says.
    pub(crate) async fn run_step(
        &mut self,
        args: &[&str],
        ok: &[i32],
        retry: Retry,
        extra_env: &[(&str, &str)],
    ) -> Result<(i32, String), StepError> {
        let env: Vec<(String, String)> = self
            .context
            .env
            .iter()
            .cloned()
            .chain(
                extra_env
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string())),
            )
            .collect();
        let mut attempt = 0;
        loop {
            if *self.context.interrupt.borrow() > 0 {
                return Err(StepError {
                    message: "interrupted before `terraform ".to_string() + args[0] + "`",
                    interrupted: true,
                    transient: false,
                    text: String::new(),
                });
            }
            attempt += 1;
            // Tries of the node, not terraform calls: 1, and 1 more for each retry.
            self.attempts = self.attempts.max(1) + u32::from(attempt > 1);
            self.note(&format!(
                "$ {} {}\n",
                self.context.binary.path.display(),
                args.join(" ")
            ))?;
            let ctx = self.context.clone();
            let address = self.address.clone();
            let spawn = Spawn {
                bin: &ctx.binary.path,
                args,
                dir: &self.dir,
                env: &env,
                address: &address,
                runs: &ctx.runs,
                redactor: &ctx.redactor,
                log: if retry == Retry::Quiet {
                    Log::Quiet
                } else {
                    Log::To(&self.log)
                },
            };
            let finished =
                process::run(spawn, ctx.interrupt.clone())
                    .await
                    .map_err(|e| match e {
                        process::Error::Spawn(e) => {
                            StepError::new(format!("cannot run {}: {e}", ctx.binary.path.display()))
                        }
                        process::Error::Files(e) => StepError::new(format!("cannot write {e}")),
                    })?;
            if retry != Retry::Quiet {
                self.output.push_str(&finished.text);
                if !finished.text.ends_with('\n') {
                    self.output.push('\n');
                }
            }
            let interrupted = *self.context.interrupt.borrow() > 0;
            let crash = crash(&finished.text);
            match finished.code {
                Some(code) if ok.contains(&code) && crash.is_none() => {
                    return Ok((code, finished.text))
                }
                _ if interrupted => {
                    return Err(StepError {
                        message: format!("`terraform {}` interrupted", args[0]),
                        interrupted: true,
                        transient: false,
                        text: finished.text,
                    })
                }
                _ if crash.is_some() => {
                    return Err(StepError::new(format!(
                        "`terraform {}` crashed: {}",
                        args[0],
                        crash.unwrap_or_default()
                    )))
                }
                _ if retry == Retry::Transient
                    && attempt <= self.context.retries
                    && is_transient(&finished.text) =>
                {
                    let wait = self.context.backoff * 2u32.pow(attempt - 1);
                    self.note(&format!(
                        "# transient error; retrying in {:.1}s (attempt {} of {})\n",
                        wait.as_secs_f64(),
                        attempt + 1,
                        self.context.retries + 1
                    ))?;
                    tokio::time::sleep(wait).await;
                }
                code => {
                    let how = match (code, finished.signal) {
                        (Some(c), _) => format!("exit {c}"),
                        (None, Some(s)) => format!("killed by signal {s}{}", signal_name(s)),
                        (None, None) => "no exit code".to_string(),
                    };
                    let tried = if attempt > 1 {
                        format!(" after {attempt} attempts")
                    } else {
                        String::new()
                    };
                    return Err(StepError {
                        message: format!(
                            "`terraform {}` failed ({how}){tried}{}{}",
                            args[0],
                            first_error(&finished.text)
                                .map(|e| format!(": {e}"))
                                .unwrap_or_default(),
                            hint(&finished.text, &self.dir)
                        ),
                        interrupted: false,
                        transient: is_transient(&finished.text),
                        text: finished.text,
                    });
                }
            }
        }
    }
}

/// The apply of a saved plan.
/// `apply` of the saved plan, waiting `lock_timeout` (`-lock-timeout=...`) for the state lock.
pub(crate) fn apply_args(lock_timeout: &str) -> [&str; 5] {
    ["apply", "-input=false", "-no-color", lock_timeout, "tfplan"]
}

/// How a step treats failures and output.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Retries transient failures.
    Transient,
    /// Never retried here (an apply: its caller plans again first).
    Never,
    /// Never retried, output not logged (`output -json`, which is data).
    Quiet,
}

/// Writes `path` through a temporary file and a rename: a full disk or a crash leaves the old
/// file whole, never half of a new one.
pub(crate) fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let parent = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)?;
    let tmp = parent.join(format!(
        ".{}.tmp",
        path.file_name().unwrap_or_default().to_string_lossy()
    ));
    let written = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

pub(crate) struct Planned {
    pub changes: bool,
    /// None when terraform said "changes" but printed no summary line to count them from.
    pub counts: Option<Counts>,
    /// What plan printed.
    pub text: String,
}

impl Planned {
    /// Whether the plan may change a key policy, so its access review reads the saved plan's
    /// refreshed state: a plan that changes nothing, or prints no `policy` attribute at all,
    /// changes no policy; a destroy has no review (its counts say the key goes).
    pub(crate) fn may_change_policies(&self, destroy: bool) -> bool {
        self.changes && !destroy && self.text.contains("policy")
    }
}

struct StepDone {
    status: Status,
    counts: Option<Counts>,
    provisional: bool,
    access: Vec<KeyAccess>,
    drift: Option<NodeDrift>,
}

impl StepDone {
    fn new(status: Status) -> Self {
        StepDone {
            status,
            counts: None,
            provisional: false,
            access: Vec::new(),
            drift: None,
        }
    }
}
