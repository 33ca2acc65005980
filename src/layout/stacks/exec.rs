//! Runs the `stacks` layout. The scheduler runs stacks in the order of the stack graph (reversed
//! for destroy); each stack is one `init`, `plan` and `apply` in its root module, with
//! `-target=module.<name>` on the selected module blocks when not all of the stack is selected.
//! What terraform prints is read back per module block, so every node still gets its own status,
//! counts, error, output, recorded outputs and fingerprint, and the reporter (and a rollout's
//! journal) see node events only, as in the per-node layout.
//!
//! A failure in one node of a stack fails that node where terraform's error names its module;
//! terraform stops the stack's run there, so the stack's other nodes are "not applied" unless
//! the apply output shows each of their changes complete. Stacks that depend on a stack with a
//! failed node are skipped; other stacks go on.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Map, Value};
use tokio::sync::{mpsc, watch};

use super::plan_text::{self, Failure};
use super::render::RenderedStack;
use super::{module_name, Stack, Stacks, STACKS_DIR};
use crate::config::Fleet;
use crate::render::{Renderer, TemplateCache};
use crate::scheduler::{self, Event, Executor, Options};
use crate::terraform::access::{key_access, KeyAccess};
use crate::terraform::drift::{changes, node_drift, NodeDrift};
use crate::terraform::planfile::Planfile;
use crate::terraform::workflow::{
    apply_args, write_atomically, Action, Context, Counts, NodeJob, NodeRun, Retry, Status,
    StepError, TerraformExecutor,
};
use crate::terraform::written::Written;

/// The outcome of one stack: one run per selected node of it.
pub struct StackRun {
    pub nodes: Vec<NodeRun>,
}

pub struct StackExecutor {
    context: Arc<Context>,
    stacks: Arc<Stacks>,
    selected: Arc<BTreeSet<usize>>,
}

impl Executor for StackExecutor {
    type Output = StackRun;

    fn run(&self, stack: usize) -> impl std::future::Future<Output = StackRun> + Send {
        let job = StackJob {
            context: self.context.clone(),
            stacks: self.stacks.clone(),
            stack,
            targets: self.stacks.stacks[stack]
                .members
                .iter()
                .copied()
                .filter(|i| self.selected.contains(i))
                .collect(),
        };
        async move { job.run().await }
    }

    fn succeeded(output: &StackRun) -> bool {
        output
            .nodes
            .iter()
            .all(<TerraformExecutor as Executor>::succeeded)
    }
}

/// Runs the stacks holding `selected` through the scheduler and tells `events` about nodes: a
/// stack's start, end, skip or stop becomes that of each of its selected nodes.
pub async fn schedule(
    stacks: Arc<Stacks>,
    selected: &BTreeSet<usize>,
    options: &Options,
    context: Arc<Context>,
    events: mpsc::UnboundedSender<Event<NodeRun>>,
    stop: watch::Receiver<bool>,
) {
    let fleet = &context.fleet.clone();
    let chosen = stacks.holding(selected);
    let selected = Arc::new(selected.clone());
    let executor = Arc::new(StackExecutor {
        context,
        stacks: stacks.clone(),
        selected: selected.clone(),
    });
    let (tx, mut rx) = mpsc::unbounded_channel();
    let scheduling = scheduler::run(&stacks.dag, &chosen, options, executor, tx, stop);
    let members = |s: usize| -> Vec<usize> {
        stacks.stacks[s]
            .members
            .iter()
            .copied()
            .filter(|i| selected.contains(i))
            .collect()
    };
    let translating = async {
        // The node each unsuccessful stack is best explained by, for its dependents' skips.
        let mut culprit: BTreeMap<usize, usize> = BTreeMap::new();
        while let Some(event) = rx.recv().await {
            match event {
                Event::Started { node: s } => {
                    for i in members(s) {
                        let _ = events.send(Event::Started { node: i });
                    }
                }
                Event::Finished { node: s, output } => {
                    let index: BTreeMap<String, usize> = members(s)
                        .into_iter()
                        .map(|i| (fleet.nodes[i].address.to_string(), i))
                        .collect();
                    let failed = output
                        .nodes
                        .iter()
                        .find(|r| matches!(r.status, Status::Failed | Status::Interrupted))
                        .or(output.nodes.first())
                        .and_then(|r| index.get(&r.address));
                    if let Some(&i) = failed {
                        culprit.insert(s, i);
                    }
                    for run in output.nodes {
                        let i = index[&run.address];
                        let _ = events.send(Event::Finished {
                            node: i,
                            output: run,
                        });
                    }
                }
                Event::Skipped { node: s, cause } => {
                    let cause_node = culprit
                        .get(&cause)
                        .copied()
                        .or_else(|| members(cause).first().copied());
                    if let Some(c) = cause_node {
                        culprit.insert(s, c);
                    }
                    for i in members(s) {
                        let _ = events.send(match cause_node {
                            Some(c) => Event::Skipped { node: i, cause: c },
                            None => Event::NotStarted { node: i },
                        });
                    }
                }
                Event::NotStarted { node: s } => {
                    for i in members(s) {
                        let _ = events.send(Event::NotStarted { node: i });
                    }
                }
            }
        }
    };
    tokio::join!(scheduling, translating);
}

/// How one node of a stack ended.
struct Outcome {
    status: Status,
    counts: Option<Counts>,
    provisional: bool,
    error: Option<String>,
    output: String,
    access: Vec<KeyAccess>,
    drift: Option<NodeDrift>,
}

impl Outcome {
    fn new(status: Status) -> Self {
        Outcome {
            status,
            counts: None,
            provisional: false,
            error: None,
            output: String::new(),
            access: Vec::new(),
            drift: None,
        }
    }

    fn failed(message: impl Into<String>) -> Self {
        Outcome {
            error: Some(message.into()),
            ..Outcome::new(Status::Failed)
        }
    }
}

/// A stack as rendered for one run: each member's files, and the stack's directory.
pub(super) struct Unit<'a> {
    pub nodes: BTreeMap<usize, &'a crate::render::Rendered>,
    pub dir: PathBuf,
}

impl<'a> Unit<'a> {
    /// `stack` as `renderer` rendered it.
    pub fn of(rendered: &'a RenderedStack, renderer: &Renderer, stack: &Stack) -> Unit<'a> {
        Unit {
            nodes: rendered.nodes.iter().map(|(i, r)| (*i, r)).collect(),
            dir: renderer.stack_dir(stack),
        }
    }

    /// The fingerprint of member `i` as it runs in this stack now.
    pub fn fingerprint(&self, fleet: &Fleet, i: usize, version: &str) -> String {
        crate::fingerprint::compute(
            fleet,
            &fleet.nodes[i],
            &self.nodes[&i].files,
            &self.dir,
            version,
        )
    }
}

struct StackJob {
    context: Arc<Context>,
    stacks: Arc<Stacks>,
    stack: usize,
    /// The selected nodes of the stack (fleet indexes).
    targets: Vec<usize>,
}

impl StackJob {
    async fn run(self) -> StackRun {
        let started = Instant::now();
        let ctx = self.context.clone();
        let stack = &self.stacks.stacks[self.stack];
        let renderer = ctx.renderer();
        let log = log_path(&ctx.log_dir, stack);
        let mut job = NodeJob::for_dir(
            ctx.clone(),
            format!("{STACKS_DIR}/{stack}"),
            renderer.stack_dir(stack),
            log.clone(),
        );
        let mut outcomes = self.steps(&renderer, &mut job).await;
        let action = if ctx.preview {
            Action::Plan
        } else {
            ctx.action
        };
        let nodes = self
            .targets
            .iter()
            .map(|&i| {
                let o = outcomes
                    .remove(&i)
                    .unwrap_or_else(|| Outcome::failed("orch lost track of this node"));
                NodeRun {
                    address: ctx.fleet.nodes[i].address.to_string(),
                    action,
                    status: o.status,
                    counts: o.counts,
                    provisional: o.provisional,
                    duration: started.elapsed(),
                    attempts: job.attempts,
                    error: o.error,
                    log: log.clone(),
                    output: o.output,
                    access: o.access,
                    drift: o.drift,
                }
            })
            .collect();
        StackRun { nodes }
    }

    async fn steps(&self, renderer: &Renderer<'_>, job: &mut NodeJob) -> BTreeMap<usize, Outcome> {
        let ctx = &self.context;
        let fleet = &ctx.fleet;
        let stack = &self.stacks.stacks[self.stack];
        let mut out: BTreeMap<usize, Outcome> = BTreeMap::new();
        let rendered = match renderer
            .render_stack(stack, &mut TemplateCache::default())
            .and_then(|r| r.write(&renderer.stack_dir(stack), renderer).map(|_| r))
        {
            Ok(r) => r,
            Err(e) => return self.all_failed(&self.targets, &e.to_string(), job),
        };
        let unit = Unit::of(&rendered, renderer, stack);
        let written: BTreeMap<usize, Written> = unit
            .nodes
            .iter()
            .map(|(&i, r)| (i, Written::of(&r.files)))
            .collect();
        let action = ctx.action;
        let destroy = action == Action::Destroy;
        let applying = action != Action::Plan && !ctx.preview;
        let mut run: Vec<usize> = Vec::new();
        for &i in &self.targets {
            let node = &fleet.nodes[i];
            let fingerprint = || unit.fingerprint(fleet, i, &ctx.binary.version);
            if !destroy
                && ctx.skip_unchanged.contains(&i)
                && crate::fingerprint::recorded(fleet, &node.address)
                    .is_some_and(|r| r == fingerprint())
            {
                out.insert(i, Outcome::new(Status::Unchanged));
            } else if applying && !destroy && unit.nodes[&i].provisional {
                out.insert(i, Outcome::failed("planned with placeholders for outputs of dependencies that are not applied; a provisional plan is never applied (apply its dependencies first, e.g. with --with-deps)"));
            } else {
                run.push(i);
            }
        }
        if run.is_empty() {
            return out;
        }
        let modules: BTreeMap<String, usize> = stack
            .members
            .iter()
            .map(|&i| (module_name(&fleet.nodes[i]), i))
            .collect();
        job.targets = if run.len() == stack.members.len() {
            Vec::new()
        } else {
            run.iter()
                .map(|&i| format!("-target=module.{}", module_name(&fleet.nodes[i])))
                .collect()
        };
        if let Err(e) = job.init().await {
            out.extend(self.failure(&run, &e, job, &modules));
            return out;
        }
        let mut round = 0;
        let mut access: BTreeMap<usize, Vec<KeyAccess>> = BTreeMap::new();
        let planned = loop {
            let planned = match job.plan(destroy).await {
                Ok(p) => p,
                Err(e) => {
                    out.extend(self.failure(&run, &e, job, &modules));
                    return out;
                }
            };
            if ctx.drift || planned.may_change_policies(destroy) {
                let plan = if planned.changes {
                    match job.planfile() {
                        Ok(plan) => plan,
                        Err(e) => {
                            out.extend(self.all_failed(&run, &e.message, job));
                            return out;
                        }
                    }
                } else {
                    Planfile::default()
                };
                if ctx.drift {
                    out.extend(self.drifted(&run, &plan, &written));
                    return out;
                }
                access = self.access(&run, &plan, &written);
            }
            let by_module = plan_text::plan_by_module(&planned.text);
            let orphans: Vec<&str> = by_module
                .counts
                .keys()
                .filter(|m| !modules.contains_key(*m))
                .map(String::as_str)
                .collect();
            let counts =
                consistent_counts(&by_module.counts, planned.counts, &run, &orphans, fleet);
            // The module of a node whose node.yaml is gone: terraform would destroy its keys,
            // which the per-node layout never does for a removed file. Such a plan can never be
            // applied, so it fails, also as a plan.
            if !orphans.is_empty() && !destroy {
                let message = format!(
                    "the plan of stack {stack} destroys module.{}, which is no node of the tree any more; orch never applies that: put its node.yaml back and `orch destroy` it first",
                    orphans.join(", module.")
                );
                out.extend(self.all_failed(&run, &message, job));
                return out;
            }
            if action == Action::Apply {
                let refused: Vec<(usize, String)> = run
                    .iter()
                    .filter_map(|&i| {
                        let c = counts.as_ref().map(|c| c[&i]);
                        ctx.imports.check(c).err().map(|why| (i, why))
                    })
                    .collect();
                if !refused.is_empty() {
                    for &i in &run {
                        let m = module_name(&fleet.nodes[i]);
                        let why = match refused.iter().find(|(r, _)| *r == i) {
                            Some((_, why)) => why.clone(),
                            None => format!(
                                "not applied: stack {stack} applies as one, and the plan of {} was refused",
                                fleet.nodes[refused[0].0].address
                            ),
                        };
                        out.insert(
                            i,
                            Outcome {
                                counts: counts.as_ref().map(|c| c[&i]),
                                output: by_module.text.get(&m).cloned().unwrap_or_default(),
                                ..Outcome::failed(why)
                            },
                        );
                    }
                    return out;
                }
            }
            if !applying {
                for &i in &run {
                    let m = module_name(&fleet.nodes[i]);
                    let c = counts.as_ref().map(|c| c[&i]);
                    let changes = match c {
                        Some(c) => c != Counts::default(),
                        None => planned.changes,
                    };
                    out.insert(
                        i,
                        Outcome {
                            status: if changes {
                                Status::Changes
                            } else {
                                Status::NoChanges
                            },
                            counts: c,
                            provisional: unit.nodes[&i].provisional,
                            output: by_module.text.get(&m).cloned().unwrap_or_default(),
                            access: access.remove(&i).unwrap_or_default(),
                            ..Outcome::new(Status::NoChanges)
                        },
                    );
                }
                return out;
            }
            if !planned.changes {
                break (counts, by_module);
            }
            for &i in &run {
                if let Err(e) = crate::fingerprint::forget(fleet, &fleet.nodes[i].address) {
                    out.extend(self.all_failed(
                        &run,
                        &format!("forgetting the recorded fingerprint: {e}"),
                        job,
                    ));
                    return out;
                }
            }
            let lock_timeout = job.lock_timeout();
            match job
                .run_step(&apply_args(&lock_timeout), &[0], Retry::Never, &[])
                .await
            {
                Ok(_) => break (counts, by_module),
                Err(e) if e.transient && round < ctx.retries => {
                    round += 1;
                    let wait = ctx.backoff * 2u32.pow(round - 1);
                    let _ = job.note(&format!(
                        "# transient error during apply; planning again in {:.1}s (round {} of {})\n",
                        wait.as_secs_f64(),
                        round + 1,
                        ctx.retries + 1
                    ));
                    tokio::time::sleep(wait).await;
                }
                Err(e) if e.interrupted => {
                    out.extend(self.failure(&run, &e, job, &modules));
                    return out;
                }
                Err(e) => {
                    out.extend(
                        self.partly_applied(&run, &e, job, &unit, (&modules, counts, &by_module))
                            .await,
                    );
                    return out;
                }
            }
        };
        let (counts, by_module) = planned;
        if let Err(message) = self.after_apply(&run, &unit, job).await {
            out.extend(self.all_failed(&run, &message, job));
            return out;
        }
        for &i in &run {
            let m = module_name(&fleet.nodes[i]);
            out.insert(
                i,
                Outcome {
                    counts: counts.as_ref().map(|c| c[&i]),
                    output: by_module.text.get(&m).cloned().unwrap_or_default(),
                    access: access.remove(&i).unwrap_or_default(),
                    ..Outcome::new(Status::Done)
                },
            );
        }
        out
    }

    /// After an apply (whole or in part): the outputs and fingerprints of the nodes it applied,
    /// or, after a destroy, neither.
    async fn after_apply(
        &self,
        applied: &[usize],
        unit: &Unit<'_>,
        job: &mut NodeJob,
    ) -> Result<(), String> {
        let ctx = &self.context;
        let fleet = &ctx.fleet;
        let outputs_dir = fleet.state_dir().join("outputs");
        if ctx.action == Action::Destroy {
            for &i in applied {
                let address = &fleet.nodes[i].address;
                let _ = std::fs::remove_file(outputs_dir.join(format!("{address}.json")));
                crate::fingerprint::forget(fleet, address)
                    .map_err(|e| format!("forgetting the recorded fingerprint: {e}"))?;
            }
            return Ok(());
        }
        if applied.is_empty() {
            return Ok(());
        }
        let (_, text) = job
            .run_step(&["output", "-json", "-no-color"], &[0], Retry::Quiet, &[])
            .await
            .map_err(|e| e.message)?;
        let all: Value = serde_json::from_str(&text).map_err(|_| {
            "`terraform output -json` printed something that is not JSON; outputs not recorded"
                .to_string()
        })?;
        for &i in applied {
            let node = &fleet.nodes[i];
            let values = &all[module_name(node)]["value"];
            let recorded: Map<String, Value> = values
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), json!({ "value": v })))
                .collect();
            let path = outputs_dir.join(format!("{}.json", node.address));
            let text = serde_json::to_string(&Value::Object(recorded)).expect("JSON serializes");
            write_atomically(&path, &(text + "\n"))
                .map_err(|e| format!("cannot record the outputs in {}: {e}", path.display()))?;
            let fingerprint = unit.fingerprint(fleet, i, &ctx.binary.version);
            crate::fingerprint::record(fleet, &node.address, &fingerprint)
                .map_err(|e| format!("recording the fingerprint: {e}"))?;
        }
        Ok(())
    }

    /// An apply that stopped: terraform applied what it could. A node whose error terraform
    /// names failed; a node whose planned changes all completed is applied (its outputs are
    /// recorded); the others are not applied.
    async fn partly_applied(
        &self,
        run: &[usize],
        e: &StepError,
        job: &mut NodeJob,
        unit: &Unit<'_>,
        (modules, counts, by_module): (
            &BTreeMap<String, usize>,
            Option<BTreeMap<usize, Counts>>,
            &plan_text::PlanByModule,
        ),
    ) -> BTreeMap<usize, Outcome> {
        let fleet = &self.context.fleet;
        let failures = plan_text::errors(&e.text, &self.dir_modules());
        let completed = plan_text::completed_by_module(&e.text);
        let mut out = BTreeMap::new();
        let mut applied = Vec::new();
        let any_named = failures.iter().any(|f| f.module.is_some());
        for &i in run {
            let m = module_name(&fleet.nodes[i]);
            let mine: Vec<&Failure> = failures
                .iter()
                .filter(|f| f.module.as_deref() == Some(m.as_str()))
                .collect();
            let planned = counts.as_ref().map(|c| c[&i]);
            let wanted = planned.map(|c| c.add + c.change + c.destroy);
            let done = completed.get(&m).copied().unwrap_or(0);
            let plan_part = by_module.text.get(&m).cloned().unwrap_or_default();
            let outcome = if let Some(first) = mine.first() {
                Outcome {
                    counts: planned,
                    output: plan_part + &mine.iter().map(|f| f.text.as_str()).collect::<String>(),
                    ..Outcome::failed(format!(
                        "`terraform apply` of stack {} failed on this node: {}",
                        self.stacks.stacks[self.stack],
                        crate::terraform::text::printable(&first.headline)
                    ))
                }
            } else if wanted == Some(done) {
                applied.push(i);
                Outcome {
                    counts: planned,
                    output: plan_part,
                    ..Outcome::new(Status::Done)
                }
            } else if any_named {
                let culprits: Vec<String> = failures
                    .iter()
                    .filter_map(|f| f.module.as_ref())
                    .filter_map(|m| modules.get(m))
                    .map(|&c| fleet.nodes[c].address.to_string())
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect();
                Outcome {
                    counts: planned,
                    output: plan_part,
                    error: Some(format!(
                        "not applied ({} of its changes done): terraform stopped the apply of stack {} on {}",
                        done,
                        self.stacks.stacks[self.stack],
                        culprits.join(", ")
                    )),
                    ..Outcome::new(Status::NotApplied)
                }
            } else {
                Outcome {
                    counts: planned,
                    output: plan_part,
                    ..Outcome::failed(format!(
                        "{} (stack {}; {done} of this node's changes done)",
                        e.message, self.stacks.stacks[self.stack]
                    ))
                }
            };
            out.insert(i, outcome);
        }
        if let Some(first) = run.first() {
            if let Some(o) = out.get_mut(first) {
                o.output = format!("{}{}", job.output, o.output);
            }
        }
        if let Err(message) = self.after_apply(&applied, unit, job).await {
            for i in applied {
                out.insert(i, Outcome::failed(message.clone()));
            }
        }
        out
    }

    /// A step that failed before anything was applied: each node terraform's errors name fails
    /// with its error; the others were not planned or applied because of them. When no error
    /// names a node (the provider, the backend, the network), every node fails with it.
    fn failure(
        &self,
        run: &[usize],
        e: &StepError,
        job: &NodeJob,
        modules: &BTreeMap<String, usize>,
    ) -> BTreeMap<usize, Outcome> {
        let fleet = &self.context.fleet;
        if e.interrupted {
            return run
                .iter()
                .map(|&i| {
                    (
                        i,
                        Outcome {
                            error: Some(e.message.clone()),
                            ..Outcome::new(Status::Interrupted)
                        },
                    )
                })
                .collect();
        }
        let failures = plan_text::errors(&e.text, &self.dir_modules());
        let named: BTreeSet<usize> = failures
            .iter()
            .filter_map(|f| f.module.as_ref().and_then(|m| modules.get(m)))
            .copied()
            .collect();
        if named.is_empty() {
            return self.all_failed(run, &e.message, job);
        }
        let culprits: Vec<String> = named
            .iter()
            .map(|&c| fleet.nodes[c].address.to_string())
            .collect();
        run.iter()
            .map(|&i| {
                let m = module_name(&fleet.nodes[i]);
                let mine: Vec<&Failure> = failures
                    .iter()
                    .filter(|f| f.module.as_deref() == Some(m.as_str()))
                    .collect();
                let outcome = match mine.first() {
                    Some(first) => Outcome {
                        output: mine.iter().map(|f| f.text.as_str()).collect(),
                        ..Outcome::failed(format!(
                            "{} on this node: {}{}",
                            e.message.split(':').next().unwrap_or("terraform"),
                            crate::terraform::text::printable(&first.headline),
                            adopted_gone(&fleet.nodes[i], &first.headline)
                        ))
                    },
                    None => Outcome {
                        error: Some(format!(
                            "not run: terraform stopped on {} in stack {}",
                            culprits.join(", "),
                            self.stacks.stacks[self.stack]
                        )),
                        ..Outcome::new(Status::NotApplied)
                    },
                };
                (i, outcome)
            })
            .collect()
    }

    /// Every node failed with the same message; the stack's whole output goes with the first
    /// (the reporter prints a failed node's output, once is enough).
    fn all_failed(&self, run: &[usize], message: &str, job: &NodeJob) -> BTreeMap<usize, Outcome> {
        run.iter()
            .enumerate()
            .map(|(k, &i)| {
                let mut o = Outcome::failed(format!(
                    "{message} (stack {})",
                    self.stacks.stacks[self.stack]
                ));
                if k == 0 {
                    o.output = job.output.clone();
                }
                (i, o)
            })
            .collect()
    }

    /// `orch drift`: each node's drift, from the refresh-only plan's two states.
    fn drifted(
        &self,
        run: &[usize],
        plan: &Planfile,
        written: &BTreeMap<usize, Written>,
    ) -> BTreeMap<usize, Outcome> {
        run.iter()
            .map(|&i| {
                let module = self.module(i);
                let drift = node_drift(
                    &changes(plan, Some(module.as_str()), &written[&i]),
                    self.shape(i),
                );
                let status = if drift.in_sync() {
                    Status::InSync
                } else {
                    Status::Drifted
                };
                let outcome = Outcome {
                    drift: Some(drift),
                    ..Outcome::new(status)
                };
                (i, outcome)
            })
            .collect()
    }

    /// Each node's access review, from the plan's refreshed state to the policy orch writes.
    fn access(
        &self,
        run: &[usize],
        plan: &Planfile,
        written: &BTreeMap<usize, Written>,
    ) -> BTreeMap<usize, Vec<KeyAccess>> {
        run.iter()
            .map(|&i| {
                let module = self.module(i);
                let access = key_access(
                    &plan.refreshed,
                    Some(module.as_str()),
                    &written[&i],
                    self.shape(i),
                );
                (i, access)
            })
            .filter(|(_, a)| !a.is_empty())
            .collect()
    }

    /// The name of node `i`'s module block.
    fn module(&self, i: usize) -> String {
        module_name(&self.context.fleet.nodes[i])
    }

    fn shape(&self, i: usize) -> Option<crate::policy::KeyShape> {
        let fleet = &self.context.fleet;
        crate::policy::KeyFacts::of(fleet, &fleet.nodes[i]).map(|f| f.shape())
    }

    /// Child directory (node name) -> module name, for errors that name a file.
    fn dir_modules(&self) -> BTreeMap<String, String> {
        let fleet = &self.context.fleet;
        self.stacks.stacks[self.stack]
            .members
            .iter()
            .map(|&i| {
                (
                    fleet.nodes[i].address.name.clone(),
                    module_name(&fleet.nodes[i]),
                )
            })
            .collect()
    }
}

/// Per-node counts from the plan's per-module lines, when they and those of modules of no node
/// (`orphans`) add up to plan's own summary; `None` when they do not, so no count is shown that
/// terraform did not vouch for.
fn consistent_counts(
    by_module: &BTreeMap<String, Counts>,
    summary: Option<Counts>,
    run: &[usize],
    orphans: &[&str],
    fleet: &Fleet,
) -> Option<BTreeMap<usize, Counts>> {
    let summary = summary?;
    let mine: BTreeMap<usize, Counts> = run
        .iter()
        .map(|&i| {
            (
                i,
                by_module
                    .get(&module_name(&fleet.nodes[i]))
                    .copied()
                    .unwrap_or_default(),
            )
        })
        .collect();
    let orphaned = orphans.iter().filter_map(|m| by_module.get(*m));
    let total = mine
        .values()
        .chain(orphaned)
        .fold(Counts::default(), |t, c| Counts {
            add: t.add + c.add,
            change: t.change + c.change,
            destroy: t.destroy + c.destroy,
            import: t.import + c.import,
        });
    (total == summary).then_some(mine)
}

/// What to do when the AWS resource a node adopts is not there to import (deleted, or pending
/// deletion, since `orch import discover` found it): terraform says only that an id does not
/// exist, and the plan of the whole stack stops there, so nothing of it is imported.
fn adopted_gone(node: &crate::config::Node, headline: &str) -> String {
    let Some(import) = node.import() else {
        return String::new();
    };
    if headline != "Cannot import non-existent remote object" {
        return String::new();
    }
    let what = match node.kind {
        crate::config::NodeKind::Grant(_) => "grant",
        _ => "key",
    };
    format!(
        " ({what} {} of `import:` is not in AWS: deleted, or pending deletion, since discovery; nothing of this stack was imported: remove this node, or remove its `import:` to create a new {what})",
        import.id
    )
}

/// The log of a stack's terraform runs: `.orch/logs/<run>/_stacks/<stack>.log`.
fn log_path(log_dir: &std::path::Path, stack: &super::Stack) -> PathBuf {
    log_dir.join(STACKS_DIR).join(format!("{stack}.log"))
}
