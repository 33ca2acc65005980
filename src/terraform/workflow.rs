//! The work for one node, as the scheduler's [`Executor`]: render its module, `init` unless it is
//! already initialized for the same backend and providers, `plan -out`, and for apply the saved
//! plan; outputs recorded after apply for dependents. Transient failures (throttling, reset
//! connections) are retried with backoff a bounded number of times.
//!
//! Counts come from plan's own summary line and `-detailed-exitcode` rather than from
//! `terraform show -json`: `show` loads the provider schema once more, about a quarter of the CPU
//! of a whole plan with the AWS provider, for numbers plan already prints.

use std::collections::{BTreeSet, HashSet};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{watch, Mutex};

use super::binary::Binary;
use super::process;
use crate::config::{Fleet, Profile};
use crate::render::{Renderer, TemplateCache, Templates};
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
    pub attempts: u32,
    pub error: Option<String>,
    pub log: PathBuf,
    /// The whole captured output, printed by the reporter when it matters.
    #[serde(skip)]
    pub output: String,
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1000.0).round() / 1000.0)
}

/// Everything a node's run needs; shared by all of them.
pub struct Context {
    pub fleet: Arc<Fleet>,
    pub templates: Arc<Templates>,
    pub profile: Option<Profile>,
    pub binary: Binary,
    pub env: Vec<(String, String)>,
    pub action: Action,
    /// Only plan (for `destroy`, a destroy plan): the preview shown before asking to go on.
    pub preview: bool,
    pub log_dir: PathBuf,
    pub interrupt: watch::Receiver<Level>,
    pub retries: u32,
    pub backoff: Duration,
    /// Nodes that run no terraform at all when their fingerprint matches the recorded one.
    pub skip_unchanged: BTreeSet<usize>,
    /// Provider sets (by versions.tf) whose first `init` has filled the plugin cache.
    warmed: Mutex<HashSet<u64>>,
}

impl Context {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        fleet: Arc<Fleet>,
        templates: Arc<Templates>,
        profile: Option<Profile>,
        binary: Binary,
        env: Vec<(String, String)>,
        action: Action,
        preview: bool,
        log_dir: PathBuf,
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
            binary,
            env,
            action,
            preview,
            log_dir,
            interrupt,
            retries: 3,
            backoff: Duration::from_millis(backoff_ms),
            skip_unchanged: BTreeSet::new(),
            warmed: Mutex::new(HashSet::new()),
        }
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
        !matches!(output.status, Status::Failed | Status::Interrupted)
    }
}

/// Failure of one step, with what to tell the user.
struct StepError {
    message: String,
    interrupted: bool,
}

struct NodeJob {
    context: Arc<Context>,
    node: usize,
    dir: PathBuf,
    log: PathBuf,
    output: String,
    attempts: u32,
}

impl NodeJob {
    fn new(context: Arc<Context>, node: usize) -> Self {
        let address = context.fleet.nodes[node].address.to_string();
        let dir = context.fleet.state_dir().join("work").join(&address);
        let log = context.log_dir.join(format!("{address}.log"));
        NodeJob {
            context,
            node,
            dir,
            log,
            output: String::new(),
            attempts: 0,
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
        let _ = std::fs::create_dir_all(self.log.parent().unwrap_or(Path::new(".")));
        let _ = std::fs::write(&self.log, &self.output);
        let (status, counts, provisional, error) = match result {
            Ok(done) => (done.status, done.counts, done.provisional, None),
            Err(e) => (
                if e.interrupted {
                    Status::Interrupted
                } else {
                    Status::Failed
                },
                None,
                false,
                Some(e.message),
            ),
        };
        NodeRun {
            address: self.context.fleet.nodes[self.node].address.to_string(),
            action,
            status,
            counts,
            provisional,
            duration: started.elapsed(),
            attempts: self.attempts,
            error,
            log: self.log.clone(),
            output: self.output,
        }
    }

    async fn steps(&mut self) -> Result<StepDone, StepError> {
        let rendered = self.render()?;
        let provisional = rendered.provisional;
        let action = self.context.action;
        let destroy = action == Action::Destroy;
        if !destroy && self.unchanged(&rendered.files) {
            self.output.push_str(
                "# unchanged: the fingerprint matches the one recorded at the last apply\n",
            );
            return Ok(StepDone {
                status: Status::Unchanged,
                counts: None,
                provisional: false,
            });
        }
        self.init().await?;
        let plan = self.plan(destroy).await?;
        if action == Action::Plan || self.context.preview {
            return Ok(StepDone {
                status: if plan.changes {
                    Status::Changes
                } else {
                    Status::NoChanges
                },
                counts: Some(plan.counts),
                provisional,
            });
        }
        if provisional {
            return Err(StepError {
                message: "planned with placeholders for outputs of dependencies that are not applied; a provisional plan is never applied (apply its dependencies first, e.g. with --with-deps)".into(),
                interrupted: false,
            });
        }
        if plan.changes {
            self.forget_fingerprint()?;
            self.step(&[
                "apply",
                "-input=false",
                "-no-color",
                "-lock-timeout=60s",
                "tfplan",
            ])
            .await?;
        }
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
            status: Status::Done,
            counts: Some(plan.counts),
            provisional: false,
        })
    }

    /// Renders the node's module and writes it to the work dir.
    fn render(&mut self) -> Result<crate::render::Rendered, StepError> {
        let ctx = &self.context;
        let renderer = Renderer::new(&ctx.fleet, &ctx.templates, ctx.profile.as_ref());
        let node = &ctx.fleet.nodes[self.node];
        let rendered = renderer
            .render(node, &mut TemplateCache::default())
            .map_err(|e| StepError {
                message: e.to_string(),
                interrupted: false,
            })?;
        crate::render::write_files(&self.dir, &rendered.files).map_err(|e| StepError {
            message: e.to_string(),
            interrupted: false,
        })?;
        Ok(rendered)
    }

    fn fingerprint(&self, files: &[(&str, String)]) -> String {
        let ctx = &self.context;
        let node = &ctx.fleet.nodes[self.node];
        crate::fingerprint::compute(&ctx.fleet, node, files, &ctx.binary.version)
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
        .map_err(|e| StepError {
            message: format!("recording the fingerprint: {e}"),
            interrupted: false,
        })
    }

    fn forget_fingerprint(&self) -> Result<(), StepError> {
        let fleet = &self.context.fleet;
        crate::fingerprint::forget(fleet, &fleet.nodes[self.node].address).map_err(|e| StepError {
            message: format!("forgetting the recorded fingerprint: {e}"),
            interrupted: false,
        })
    }

    /// `init`, unless the work dir is initialized for the same providers and backend already.
    /// The first init of each provider set runs alone, to fill the shared plugin cache before
    /// the others link from it (Terraform's cache is not safe for concurrent first installs).
    /// A later node without a lock file of its own then links from the cache with
    /// `TF_PLUGIN_CACHE_MAY_BREAK_DEPENDENCY_LOCK_FILE`: without a lock file, concurrent inits
    /// race to create the same cache directory even when the cache is warm; with one copied in,
    /// each init re-hashes the 700 MB provider (1.25 CPU-s, against 0.45 s). The cache entry it
    /// trusts was installed and checked moments before by the first init.
    async fn init(&mut self) -> Result<(), StepError> {
        let fingerprint = self.init_fingerprint();
        let marker = self.dir.join(".orch-init");
        let current = std::fs::read_to_string(&marker).ok();
        if current.as_deref() == Some(fingerprint.1.as_str())
            && self.dir.join(".terraform").is_dir()
        {
            self.output
                .push_str("# init skipped: already initialized for these providers and backend\n");
            return Ok(());
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
                self.run_step(&args, &[0], true, trust_cache).await?;
            }
        }
        let _ = std::fs::write(&marker, &fingerprint.1);
        Ok(())
    }

    /// (hash of the provider requirements, text identifying providers + backend + binary).
    fn init_fingerprint(&self) -> (u64, String) {
        let read = |name: &str| std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
        let versions = read("versions.tf");
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        versions.hash(&mut hasher);
        let providers = hasher.finish();
        (read("backend.tf") + &versions).hash(&mut hasher);
        self.context.binary.version.hash(&mut hasher);
        (providers, format!("{:016x}\n", hasher.finish()))
    }

    async fn plan(&mut self, destroy: bool) -> Result<Planned, StepError> {
        let mut args = vec![
            "plan",
            "-input=false",
            "-no-color",
            "-lock-timeout=60s",
            "-out=tfplan",
            "-detailed-exitcode",
        ];
        if destroy {
            args.push("-destroy");
        }
        let (code, text) = self.step_with_codes(&args, &[0, 2]).await?;
        Ok(Planned {
            changes: code == 2,
            counts: parse_counts(&text),
        })
    }

    async fn record_outputs(&mut self) -> Result<(), StepError> {
        let (_, text) = self.step_quiet(&["output", "-json", "-no-color"]).await?;
        let path = self.outputs_path();
        let _ = std::fs::create_dir_all(path.parent().unwrap_or(Path::new(".")));
        std::fs::write(&path, text).map_err(|e| StepError {
            message: format!("recording outputs: {e}"),
            interrupted: false,
        })
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
        self.step_with_codes(args, &[0]).await.map(|(_, text)| text)
    }

    /// Runs one terraform command, logging it; retries transient failures with backoff.
    async fn step_with_codes(
        &mut self,
        args: &[&str],
        ok: &[i32],
    ) -> Result<(i32, String), StepError> {
        self.run_step(args, ok, true, &[]).await
    }

    /// Like `step`, but the command's output is not added to the node's log (`output -json`).
    async fn step_quiet(&mut self, args: &[&str]) -> Result<(i32, String), StepError> {
        self.run_step(args, &[0], false, &[]).await
    }

    async fn run_step(
        &mut self,
        args: &[&str],
        ok: &[i32],
        logged: bool,
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
                });
            }
            attempt += 1;
            self.attempts += 1;
            self.output.push_str(&format!(
                "$ {} {}\n",
                self.context.binary.path.display(),
                args.join(" ")
            ));
            let finished = process::run(
                &self.context.binary.path,
                args,
                &self.dir,
                &env,
                self.context.interrupt.clone(),
            )
            .await
            .map_err(|e| StepError {
                message: format!("cannot run terraform: {e}"),
                interrupted: false,
            })?;
            if logged {
                self.output.push_str(&finished.text);
                if !finished.text.ends_with('\n') {
                    self.output.push('\n');
                }
            }
            let interrupted = *self.context.interrupt.borrow() > 0;
            match finished.code {
                Some(code) if ok.contains(&code) => return Ok((code, finished.text)),
                _ if interrupted => {
                    return Err(StepError {
                        message: format!("`terraform {}` interrupted", args[0]),
                        interrupted: true,
                    })
                }
                _ if attempt <= self.context.retries && is_transient(&finished.text) => {
                    let wait = self.context.backoff * 2u32.pow(attempt - 1);
                    self.output.push_str(&format!(
                        "# transient error; retrying in {:.1}s (attempt {} of {})\n",
                        wait.as_secs_f64(),
                        attempt + 1,
                        self.context.retries + 1
                    ));
                    tokio::time::sleep(wait).await;
                }
                code => {
                    return Err(StepError {
                        message: format!(
                            "`terraform {}` failed (exit {}){}",
                            args[0],
                            code.map_or("by signal".to_string(), |c| c.to_string()),
                            first_error(&finished.text)
                                .map(|e| format!(": {e}"))
                                .unwrap_or_default()
                        ),
                        interrupted: false,
                    })
                }
            }
        }
    }
}

struct Planned {
    changes: bool,
    counts: Counts,
}

struct StepDone {
    status: Status,
    counts: Option<Counts>,
    provisional: bool,
}

/// Errors worth another try: the API said slow down, or the network dropped the connection.
fn is_transient(text: &str) -> bool {
    const MARKERS: [&str; 9] = [
        "ThrottlingException",
        "Throttling: Rate exceeded",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "connection reset by peer",
        "TLS handshake timeout",
        "i/o timeout",
        "ServiceUnavailable",
        "SlowDown",
    ];
    MARKERS.iter().any(|m| text.contains(m))
}

/// The first `Error: ...` line terraform printed, for the summary.
fn first_error(text: &str) -> Option<String> {
    text.lines()
        .map(|l| l.trim_start_matches(['│', ' ', '╷', '╵']))
        .find(|l| l.starts_with("Error: "))
        .map(|l| l.trim_start_matches("Error: ").to_string())
}

/// Counts from plan's summary line: `Plan: 1 to add, 0 to change, 0 to destroy.` (newer releases
/// may put `N to import, ` first). `No changes.` and no summary at all both read as zero.
pub fn parse_counts(text: &str) -> Counts {
    let mut counts = Counts::default();
    if let Some(line) = text
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with("Plan: "))
    {
        for part in line
            .trim_start()
            .trim_start_matches("Plan: ")
            .trim_end_matches('.')
            .split(", ")
        {
            let mut words = part.split(' ');
            let n = words
                .next()
                .and_then(|w| w.parse::<u32>().ok())
                .unwrap_or(0);
            match words.nth(1) {
                Some("add") => counts.add = n,
                Some("change") => counts.change = n,
                Some("destroy") => counts.destroy = n,
                _ => {}
            }
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_from_plan_summary() {
        let text = "...\nPlan: 2 to add, 1 to change, 0 to destroy.\n";
        assert_eq!(
            parse_counts(text),
            Counts {
                add: 2,
                change: 1,
                destroy: 0
            }
        );
        let text = "Plan: 1 to import, 3 to add, 0 to change, 4 to destroy.";
        assert_eq!(
            parse_counts(text),
            Counts {
                add: 3,
                change: 0,
                destroy: 4
            }
        );
        assert_eq!(
            parse_counts("No changes. Your infrastructure matches the configuration."),
            Counts::default()
        );
    }

    #[test]
    fn transient_errors() {
        assert!(is_transient("Error: ThrottlingException: Rate exceeded"));
        assert!(is_transient(
            "read tcp 127.0.0.1:5000: connection reset by peer"
        ));
        assert!(!is_transient("Error: AccessDeniedException"));
    }
}
