//! `orch rollout`: the waves of `orch.yaml` in order. Each wave is applied in DAG order (each
//! node planned right before it is applied), then gated: a fresh plan of the wave shows no
//! changes, every key of the wave is enabled (and rotating where configured) as its recorded
//! outputs say, and the wave's own gate (a bake, then a command) passes. A failed node or gate
//! stops the rollout; later waves do not start. Every step goes to the journal
//! (`journal.rs`), so `--resume` continues where a failure, a Ctrl-C or a `kill -9` stopped it,
//! without applying again the nodes it applied whose inputs have not changed since.

use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;

use super::context::{exit, AppError, Loaded};
use crate::cli::{Global, RolloutArgs};
use crate::config::{Fleet, NodeKind, Wave};
use crate::engine::{self, Prepared, Request, Setup};
use crate::journal::{
    Journal, JournalError, NodeEntry, NodeStatus, RunStatus, WaveEntry, WaveStatus,
};
use crate::reporter::{table, Row};
use crate::scheduler::Event;
use crate::signal::{self, Level};
use crate::terraform::workflow::{Action, Context, NodeRun, Status};

#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    #[error("orch.yaml has no `waves:`, so there is nothing to roll out in order; add some, e.g. `waves: [{{name: canary, match: [\"staging/**\"]}}, {{name: rest, match: [\"**\"]}}]`")]
    NoWaves,
    #[error("{count} node(s) belong to no wave ({examples}); a rollout would leave them out: add a last wave that matches them, e.g. `{{name: rest, match: [\"**\"]}}`")]
    Unassigned { count: usize, examples: String },
    #[error("no wave `{name}` in orch.yaml (waves: {known})")]
    UnknownWave { name: String, known: String },
    #[error("wave `{0}` asks for approval (`approve: true`) and there is no terminal to ask on; pass --auto-approve")]
    NeedsApproval(String),
    #[error("the waves of orch.yaml ({now}) are not those of run {id} ({then}); a run resumes with the waves it started with: start a new rollout")]
    WavesChanged {
        id: String,
        now: String,
        then: String,
    },
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Render(#[from] crate::render::RenderError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// What the command line asked for, resolved.
pub struct Options {
    pub args: RolloutArgs,
    pub parallelism: usize,
    pub fancy: bool,
}

/// Everything one rollout works with.
struct Rollout<'a> {
    setup: &'a Setup,
    fleet: Arc<Fleet>,
    options: Options,
    prepared: Prepared,
    interrupt: watch::Receiver<Level>,
}

/// The outcome of one wave, for the summary and the report.
struct WaveResult {
    name: String,
    status: WaveStatus,
    rows: Vec<Row>,
    gate: Option<String>,
    /// What the gate's command printed, as shown.
    gate_output: Option<String>,
}

/// `orch rollout`: the tree loaded, the lock held and every node guarded, then the waves
/// (`rollout.rs`).
pub fn exec(loaded: Loaded, global: &Global, args: &RolloutArgs) -> Result<(), AppError> {
    let profile = loaded.run_profile(global)?;
    let binary = loaded.binary(args.execution.terraform_bin.clone())?;
    let _lock = crate::lock::Lock::acquire(&loaded.fleet.state_dir())?;
    let parallelism = loaded.parallelism(args.execution.parallelism);
    let store = loaded.store(profile.clone(), Ok(&binary), parallelism);
    super::run::layout_guard(&loaded, &*store, &(0..loaded.fleet.nodes.len()).collect())?;
    let setup = loaded.into_setup(profile, binary, store);
    let code = execute(
        &setup,
        Options {
            args: args.clone(),
            parallelism,
            fancy: crate::engine::fancy_output(global.no_color),
        },
    )?;
    exit(code)
}

/// Runs the rollout; returns the exit code (0, 1 failed, 130 interrupted).
pub fn execute(setup: &Setup, options: Options) -> Result<u8, RolloutError> {
    let fleet = setup.fleet.clone();
    let waves = &fleet.settings.waves;
    if waves.is_empty() {
        return Err(RolloutError::NoWaves);
    }
    let assigned = crate::waves::assign(&fleet);
    let unassigned: Vec<String> = assigned
        .iter()
        .enumerate()
        .filter(|(_, w)| w.is_none())
        .map(|(i, _)| fleet.nodes[i].address.to_string())
        .collect();
    if !unassigned.is_empty() {
        return Err(RolloutError::Unassigned {
            count: unassigned.len(),
            examples: unassigned
                .iter()
                .take(3)
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    let state_dir = fleet.state_dir();
    let tree = std::fs::canonicalize(&fleet.live)?;
    let names: Vec<&str> = waves.iter().map(|w| w.name.as_str()).collect();
    let args = &options.args;
    let mut journal = match &args.resume {
        Some(id) => {
            let id = (!id.is_empty()).then_some(id.as_str());
            let journal = Journal::to_resume(&state_dir, &tree, id)?;
            let then: Vec<&str> = journal.waves.iter().map(|w| w.name.as_str()).collect();
            if then != names {
                return Err(RolloutError::WavesChanged {
                    id: journal.id,
                    now: names.join(", "),
                    then: then.join(", "),
                });
            }
            say!("resuming rollout {}", journal.id);
            journal
        }
        None => new_journal(&fleet, &assigned, tree, args)?,
    };
    if let Some(only) = &journal.only_wave {
        if !names.contains(&only.as_str()) {
            return Err(RolloutError::UnknownWave {
                name: only.clone(),
                known: names.join(", "),
            });
        }
    }
    let runs = |w: &Wave| journal.only_wave.as_ref().is_none_or(|o| *o == w.name);
    if !args.plan_only && !args.auto_approve && !std::io::stdin().is_terminal() {
        if let Some(w) = waves.iter().find(|w| w.approve && runs(w)) {
            return Err(RolloutError::NeedsApproval(w.name.clone()));
        }
    }
    // The nodes of each wave in this session: those the run started with, and (on resume) any
    // node the tree has gained in the wave since. With --changed only changed ones are added.
    let changed = if journal.changed {
        Some(crate::fingerprint::changed(
            &setup.fleet,
            &setup.dag,
            &(0..fleet.nodes.len()).collect(),
            |nodes| {
                setup
                    .layout
                    .fingerprints(&setup.renderer(), &setup.binary.version, nodes)
            },
        )?)
    } else {
        None
    };
    let index: BTreeMap<String, usize> = fleet
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.address.to_string(), i))
        .collect();
    let mut plan: Vec<(usize, BTreeSet<usize>)> = Vec::new();
    for (w, wave) in waves.iter().enumerate() {
        if !runs(wave) {
            continue;
        }
        let mut nodes: BTreeSet<usize> = journal.waves[w]
            .nodes
            .iter()
            .filter_map(|n| index.get(&n.address).copied())
            .filter(|&i| assigned[i] == Some(w))
            .collect();
        nodes.extend(
            (0..fleet.nodes.len())
                .filter(|&i| assigned[i] == Some(w))
                .filter(|i| changed.as_ref().is_none_or(|c| c.contains(i))),
        );
        for &i in &nodes {
            let address = fleet.nodes[i].address.to_string();
            if !journal.waves[w].nodes.iter().any(|n| n.address == address) {
                journal.waves[w].nodes.push(NodeEntry {
                    address,
                    status: NodeStatus::Pending,
                    fingerprint: None,
                });
            }
        }
        if let Some(shard) = &args.shard {
            nodes.retain(|&i| shard.holds(&fleet.nodes[i].address.to_string()));
            journal.waves[w].nodes.retain(|n| shard.holds(&n.address));
        }
        plan.push((w, nodes));
    }
    if let Some(shard) = &args.shard {
        let mine: usize = plan.iter().map(|(_, n)| n.len()).sum();
        say!(
            "shard {shard}: {mine} of the rollout's nodes, in each wave the part of this shard; the gate of a wave covers this shard's part"
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let interrupt = signal::listen();
        // A session id of its own: a resumed run must not take over the process record of the
        // run it resumes, which the recovery of a killed run reads.
        let Some(prepared) = engine::prepare(&fleet, &engine::run_id(), &interrupt).await? else {
            return Ok(130);
        };
        let rollout = Rollout {
            setup,
            interrupt,
            fleet,
            options,
            prepared,
        };
        let code = if rollout.options.args.plan_only {
            rollout.plan_only(&plan).await
        } else {
            rollout.run(&mut journal, &plan).await?
        };
        rollout.prepared.runs.finish();
        Ok(code)
    })
}

fn new_journal(
    fleet: &Fleet,
    assigned: &[Option<usize>],
    tree: PathBuf,
    args: &RolloutArgs,
) -> Result<Journal, RolloutError> {
    let waves = &fleet.settings.waves;
    if let Some(only) = &args.wave {
        if !waves.iter().any(|w| w.name == *only) {
            let known: Vec<&str> = waves.iter().map(|w| w.name.as_str()).collect();
            let hint = crate::diag::did_you_mean(only, known.iter().copied())
                .map(|near| format!("; did you mean `{near}`?"))
                .unwrap_or_default();
            return Err(RolloutError::UnknownWave {
                name: only.clone(),
                known: known.join(", ") + &hint,
            });
        }
    }
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Ok(Journal {
        version: crate::journal::VERSION,
        id: engine::run_id(),
        tree,
        started,
        status: RunStatus::Running,
        only_wave: args.wave.clone(),
        changed: args.changed,
        waves: waves
            .iter()
            .enumerate()
            .map(|(w, wave)| WaveEntry {
                name: wave.name.clone(),
                status: WaveStatus::Pending,
                nodes: if args.changed {
                    Vec::new()
                } else {
                    (0..fleet.nodes.len())
                        .filter(|&i| assigned[i] == Some(w))
                        .map(|i| NodeEntry {
                            address: fleet.nodes[i].address.to_string(),
                            status: NodeStatus::Pending,
                            fingerprint: None,
                        })
                        .collect()
                },
                gate_error: None,
            })
            .collect(),
    })
}

impl Rollout<'_> {
    fn context(&self, action: Action, preview: bool, skip: BTreeSet<usize>) -> Arc<Context> {
        let mut context = self
            .setup
            .context(action, preview, &self.prepared, &self.interrupt);
        context.skip_unchanged = skip;
        Arc::new(context)
    }

    fn request(&self, action: Action, nodes: &BTreeSet<usize>) -> Request {
        Request {
            action,
            selected: nodes.clone(),
            parallelism: self.options.parallelism,
            fail_fast: true,
            detailed_exitcode: false,
            auto_approve: true,
            report: None,
            fancy: self.options.fancy,
            skip_unchanged: BTreeSet::new(),
            imports: crate::terraform::workflow::Imports::Refuse,
            drift: false,
        }
    }

    /// One scheduler pass over `nodes`; `observe` sees each event.
    async fn phase(
        &self,
        action: Action,
        nodes: &BTreeSet<usize>,
        skip: BTreeSet<usize>,
        observe: &mut dyn FnMut(&Event<NodeRun>),
    ) -> Vec<Row> {
        engine::phase(
            self.setup,
            &self.request(action, nodes),
            self.context(action, false, skip),
            self.interrupt.clone(),
            observe,
        )
        .await
    }

    fn interrupted(&self) -> bool {
        engine::interrupted(&self.interrupt)
    }

    /// With state in S3: the wave's buckets checked and its dependencies' outputs read again.
    fn remote_first(&self, nodes: &BTreeSet<usize>) -> Result<(), String> {
        self.setup.remote_first(nodes)
    }

    fn wave(&self, w: usize) -> &Wave {
        &self.fleet.settings.waves[w]
    }

    /// `--plan-only`: every wave's nodes and their plans; nothing applied, no journal.
    async fn plan_only(&self, plan: &[(usize, BTreeSet<usize>)]) -> u8 {
        let mut results = Vec::new();
        for (w, nodes) in plan {
            let wave = self.wave(*w);
            say!(
                "== wave {} ({}): plan ==",
                wave.name,
                crate::diag::count(nodes.len(), "node")
            );
            if let Err(e) = self.remote_first(nodes) {
                say!("error: {e}");
                results.push(WaveResult {
                    name: wave.name.clone(),
                    status: WaveStatus::Failed,
                    rows: Vec::new(),
                    gate: None,
                    gate_output: None,
                });
                break;
            }
            let rows = self
                .phase(Action::Plan, nodes, BTreeSet::new(), &mut |_| {})
                .await;
            let ok = rows
                .iter()
                .all(|r| matches!(r.status.as_str(), "changes" | "no changes"));
            results.push(WaveResult {
                name: wave.name.clone(),
                status: if ok {
                    WaveStatus::Pending
                } else {
                    WaveStatus::Failed
                },
                rows,
                gate: wave.gate.as_ref().map(describe_gate),
                gate_output: None,
            });
            if self.interrupted() {
                break;
            }
        }
        let code = if self.interrupted() {
            130
        } else if results.iter().any(|r| r.status == WaveStatus::Failed) {
            1
        } else {
            0
        };
        match self.summary(None, &results, code) {
            false if code == 0 => 1,
            _ => code,
        }
    }

    async fn run(
        &self,
        journal: &mut Journal,
        plan: &[(usize, BTreeSet<usize>)],
    ) -> Result<u8, RolloutError> {
        let state_dir = self.fleet.state_dir();
        journal.status = RunStatus::Running;
        journal.save(&state_dir)?;
        say!(
            "rollout {}: {} wave(s); journal {}",
            journal.id,
            plan.len(),
            journal.path(&state_dir).display()
        );
        let mut results: Vec<WaveResult> = Vec::new();
        let mut code = 0;
        for (w, nodes) in plan {
            let result = self.roll_wave(journal, *w, nodes).await?;
            let status = result.status;
            results.push(result);
            journal.waves[*w].status = status;
            match status {
                WaveStatus::Passed => {}
                WaveStatus::Interrupted => {
                    journal.status = RunStatus::Interrupted;
                    code = 130;
                }
                _ => {
                    journal.status = RunStatus::Failed;
                    code = 1;
                }
            }
            journal.save(&state_dir)?;
            if code != 0 {
                break;
            }
        }
        if code == 0 {
            journal.status = RunStatus::Finished;
            journal.save(&state_dir)?;
        }
        for (w, nodes) in plan.iter().skip(results.len()) {
            let not_started = |&i: &usize| {
                let address = self.fleet.nodes[i].address.to_string();
                Row::not_run(address, Action::Apply, "not started".into())
            };
            results.push(WaveResult {
                name: self.wave(*w).name.clone(),
                status: WaveStatus::Pending,
                rows: nodes.iter().map(not_started).collect(),
                gate: None,
                gate_output: None,
            });
        }
        let published = self.summary(Some(journal), &results, code);
        if code == 0 {
            say!(
                "rollout {} finished: {} wave(s) passed",
                journal.id,
                results.len()
            );
        } else {
            say!(
                "the rollout stopped; later waves were not started. Fix the cause, then `orch rollout --resume {}`",
                journal.id
            );
        }
        Ok(if published || code != 0 { code } else { 1 })
    }

    /// Approval, apply and gate of one wave.
    async fn roll_wave(
        &self,
        journal: &mut Journal,
        w: usize,
        nodes: &BTreeSet<usize>,
    ) -> Result<WaveResult, RolloutError> {
        let wave = self.wave(w);
        let state_dir = self.fleet.state_dir();
        let mut result = WaveResult {
            name: wave.name.clone(),
            status: WaveStatus::Failed,
            rows: Vec::new(),
            gate: None,
            gate_output: None,
        };
        // Other shards (other runners) apply their part of earlier waves at their own pace: the
        // outputs of this wave's dependencies are read again from remote state.
        if let Err(e) = self.remote_first(nodes) {
            say!("error: {e}\nwave {} was not started", wave.name);
            return Ok(result);
        }
        if wave.approve && !self.options.args.auto_approve {
            say!(
                "== wave {} ({}): plan for approval ==",
                wave.name,
                crate::diag::count(nodes.len(), "node")
            );
            let planned = self
                .phase(Action::Plan, nodes, BTreeSet::new(), &mut |_| {})
                .await;
            say_raw!("{}", table(&planned));
            if self.interrupted() {
                result.status = WaveStatus::Interrupted;
                return Ok(result);
            }
            let question = format!(
                "roll out wave {} ({}) as planned above? Only 'yes' is accepted: ",
                wave.name,
                crate::diag::count(nodes.len(), "node")
            );
            if !crate::prompt::ask(&question)? {
                result.gate = Some(
                    "not reached: the wave was not approved, and nothing of it was applied".into(),
                );
                return Ok(result);
            }
        }
        let previous = journal.waves[w].status;
        journal.waves[w].status = WaveStatus::Applying;
        journal.waves[w].gate_error = None;
        journal.save(&state_dir)?;
        say!(
            "== wave {} ({}): apply ==",
            wave.name,
            crate::diag::count(nodes.len(), "node")
        );
        // Nodes this run applied already: no terraform at all while their inputs are the same.
        let applied_before: BTreeSet<usize> = nodes
            .iter()
            .copied()
            .filter(|&i| {
                let address = self.fleet.nodes[i].address.to_string();
                journal.waves[w]
                    .nodes
                    .iter()
                    .any(|n| n.address == address && n.status == NodeStatus::Applied)
            })
            .collect();
        // Their addresses, for the rows the report gives them.
        let earlier: BTreeSet<String> = applied_before
            .iter()
            .map(|&i| self.fleet.nodes[i].address.to_string())
            .collect();
        let mut save_error = None;
        let fleet = self.fleet.clone();
        let rows = self
            .phase(Action::Apply, nodes, applied_before, &mut |event| {
                let (node, status) = match event {
                    Event::Finished { node, output } => (
                        *node,
                        match output.status {
                            Status::Failed => NodeStatus::Failed,
                            Status::Interrupted => NodeStatus::Interrupted,
                            _ => NodeStatus::Applied,
                        },
                    ),
                    Event::Skipped { node, .. } => (*node, NodeStatus::Skipped),
                    _ => return,
                };
                let address = &fleet.nodes[node].address;
                if let Some(entry) = journal.node_mut(&address.to_string()) {
                    entry.status = status;
                    entry.fingerprint = (status == NodeStatus::Applied)
                        .then(|| crate::fingerprint::recorded(&fleet, address))
                        .flatten();
                }
                if let Err(e) = journal.save(&state_dir) {
                    save_error.get_or_insert(e);
                }
            })
            .await;
        if let Some(e) = save_error {
            return Err(e.into());
        }
        // A node an earlier run of this rollout applied, and nothing changed since: the report
        // says so, from the journal, rather than "unchanged".
        let rows: Vec<Row> = rows
            .into_iter()
            .map(|mut r| {
                if earlier.contains(&r.address) && r.status == "unchanged" {
                    r.status = APPLIED_EARLIER.into();
                }
                r
            })
            .collect();
        let all_unchanged = rows
            .iter()
            .all(|r| r.status == "unchanged" || r.status == APPLIED_EARLIER);
        result.rows = rows;
        if self.interrupted() {
            result.status = WaveStatus::Interrupted;
            return Ok(result);
        }
        if result
            .rows
            .iter()
            .any(|r| !matches!(r.status.as_str(), "ok" | "unchanged" | APPLIED_EARLIER))
        {
            result.gate = Some("not reached: a node of the wave did not apply".into());
            return Ok(result);
        }
        if all_unchanged && previous == WaveStatus::Passed {
            say!(
                "== wave {}: nothing applied again; its gate passed earlier in this run ==",
                wave.name
            );
            result.status = WaveStatus::Passed;
            result.gate = Some("passed earlier in this run".into());
            return Ok(result);
        }
        journal.waves[w].status = WaveStatus::Gating;
        journal.save(&state_dir)?;
        let gate = self
            .gate(w, nodes, &journal.id, &mut result.gate_output)
            .await;
        result.status = match &gate {
            Ok(()) => WaveStatus::Passed,
            Err(_) if self.interrupted() => WaveStatus::Interrupted,
            Err(_) => WaveStatus::Failed,
        };
        journal.waves[w].gate_error = gate.as_ref().err().cloned();
        result.gate = Some(match gate {
            Ok(()) => "passed".to_string(),
            Err(why) => format!("FAILED: {why}"),
        });
        Ok(result)
    }

    /// The gate of wave `w`: a fresh plan without changes, enabled keys, then the wave's own
    /// bake and command. `Err` says why it failed.
    async fn gate(
        &self,
        w: usize,
        nodes: &BTreeSet<usize>,
        run_id: &str,
        shown: &mut Option<String>,
    ) -> Result<(), String> {
        let wave = self.wave(w);
        say!(
            "== wave {}: gate: a fresh plan shows no changes ==",
            wave.name
        );
        let rows = self
            .phase(Action::Plan, nodes, BTreeSet::new(), &mut |_| {})
            .await;
        if let Some(r) = rows.iter().find(|r| r.status != "no changes") {
            return Err(match r.status.as_str() {
                "changes" => format!(
                    "the fresh plan of {} still shows changes (+{} ~{} -{})",
                    r.address,
                    r.add.unwrap_or(0),
                    r.change.unwrap_or(0),
                    r.destroy.unwrap_or(0)
                ),
                other => format!("the fresh plan of {}: {other}", r.address),
            });
        }
        say!("== wave {}: gate: keys enabled and rotating ==", wave.name);
        let outputs = self.wave_outputs(nodes);
        for &i in nodes {
            self.key_is_live(i, &outputs)?;
        }
        let Some(gate) = &wave.gate else {
            say!("== wave {}: gate passed ==", wave.name);
            return Ok(());
        };
        if !gate.bake.is_zero() {
            say!(
                "== wave {}: gate: baking {} ==",
                wave.name,
                describe_duration(gate.bake)
            );
            let mut interrupt = self.interrupt.clone();
            tokio::select! {
                _ = tokio::time::sleep(gate.bake) => {}
                _ = interrupt.wait_for(|level| *level > 0) => {
                    return Err("interrupted while baking".into());
                }
            }
        }
        if let Some(command) = &gate.command {
            self.gate_command(wave, (command, gate.timeout), &outputs, run_id, shown)
                .await?;
        }
        say!("== wave {}: gate passed ==", wave.name);
        Ok(())
    }

    /// The recorded outputs of the wave's nodes: `{address: {name: value}}`.
    fn wave_outputs(&self, nodes: &BTreeSet<usize>) -> Value {
        let dir = self.fleet.state_dir().join("outputs");
        let mut all = serde_json::Map::new();
        for &i in nodes {
            let address = self.fleet.nodes[i].address.to_string();
            let recorded: Value = crate::files::read_to_string(dir.join(format!("{address}.json")))
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or(Value::Null);
            let values: serde_json::Map<String, Value> = recorded
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.get("value").cloned().unwrap_or_default()))
                .collect();
            all.insert(address, Value::Object(values));
        }
        Value::Object(all)
    }

    /// A key or replica is enabled (unless configured disabled) and a key with rotation
    /// configured rotates, as terraform's state recorded them at apply.
    fn key_is_live(&self, i: usize, outputs: &Value) -> Result<(), String> {
        let node = &self.fleet.nodes[i];
        let (enabled, rotation) = match &node.kind {
            NodeKind::Key(k) => (k.is_enabled, k.rotation.enabled),
            NodeKind::Replica(r) => (r.is_enabled, false),
            _ => return Ok(()),
        };
        let values = &outputs[node.address.to_string()];
        let flag = |name: &str| -> Result<bool, String> {
            values[name].as_bool().ok_or_else(|| {
                format!(
                    "{} has no recorded `{name}` output; apply it again with this orch",
                    node.address
                )
            })
        };
        if enabled && !flag("enabled")? {
            return Err(format!("{} is not enabled", node.address));
        }
        if rotation && !flag("rotation_enabled")? {
            return Err(format!(
                "{} does not rotate, though its configuration turns rotation on",
                node.address
            ));
        }
        Ok(())
    }

    /// Runs the wave's gate command with its outputs in `ORCH_WAVE_OUTPUTS`; exit 0 passes. The
    /// command runs in a process group of its own, its output (stdout and stderr together) in
    /// `.orch/gates/<run>/<wave>.log`, not a pipe: a child it leaves in the background cannot
    /// keep the rollout waiting for the end of its output. When the command ends, times out or
    /// the rollout is interrupted, the whole group is killed. Its output is shown like
    /// terraform's: secrets of the environment redacted, terminal escapes neutralized, bytes
    /// that are not UTF-8 shown as U+FFFD; and kept, so, for the report (the log redacted too).
    async fn gate_command(
        &self,
        wave: &Wave,
        gate: (&str, Duration),
        outputs: &Value,
        run_id: &str,
        shown: &mut Option<String>,
    ) -> Result<(), String> {
        let (command, timeout) = gate;
        say!("== wave {}: gate: running `{command}` ==", wave.name);
        let dir = self.fleet.state_dir().join("gates").join(run_id);
        let file = dir.join(format!("{}-outputs.json", wave.name));
        let log = dir.join(format!("{}.log", wave.name));
        let opened = std::fs::create_dir_all(&dir)
            .and_then(|()| {
                std::fs::write(
                    &file,
                    serde_json::to_string_pretty(outputs).expect("JSON serializes") + "\n",
                )
            })
            .and_then(|()| std::fs::File::create(&log))
            .and_then(|out| Ok((out.try_clone()?, out)))
            .map_err(|e| format!("writing {}: {e}", dir.display()))?;
        let cwd = self
            .fleet
            .live
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), PathBuf::from);
        let mut child = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(command)
            .current_dir(cwd)
            .env("ORCH_WAVE_OUTPUTS", &file)
            .env("ORCH_WAVE", &wave.name)
            .env("ORCH_RUN", run_id)
            .stdin(std::process::Stdio::null())
            .stdout(opened.0)
            .stderr(opened.1)
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start the gate command: {e}"))?;
        let group = child.id();
        let kill_group = || {
            if let Some(pgid) = group {
                crate::signal::signal_group(pgid, libc::SIGKILL);
            }
        };
        let mut interrupt = self.interrupt.clone();
        let ended = tokio::select! {
            status = child.wait() => Ok(status),
            _ = tokio::time::sleep(timeout) => Err(format!(
                "the gate command `{command}` did not finish within its timeout of {}; it was stopped",
                describe_duration(timeout)
            )),
            _ = interrupt.wait_for(|level| *level > 0) => {
                Err("interrupted during the gate command".to_string())
            }
        };
        // What the command left running in its group goes with it.
        kill_group();
        let _ = child.wait().await;
        let text = crate::files::read(&log)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default();
        // The log keeps no secret either, as terraform's logs keep none.
        let text = self.prepared.redactor.redact(&text);
        crate::render::write_atomic(&log, text.as_bytes())
            .map_err(|e| format!("writing {}: {e}", log.display()))?;
        let text = crate::diag::escape_lines(&text).into_owned();
        if !text.is_empty() {
            say_raw!("──── gate of wave {} ────\n{text}", wave.name);
            if !text.ends_with('\n') {
                say!();
            }
            *shown = Some(text);
        }
        let status = ended?.map_err(|e| format!("waiting for the gate command: {e}"))?;
        match status.code() {
            Some(0) => Ok(()),
            Some(code) => Err(format!("the gate command `{command}` exited {code}")),
            None => Err(format!(
                "the gate command `{command}` was killed by a signal"
            )),
        }
    }

    /// The summary, wave by wave, and the `--report` JSON with the same grouping.
    /// Returns false when the report could not be written.
    fn summary(&self, journal: Option<&Journal>, results: &[WaveResult], code: u8) -> bool {
        say!();
        for result in results {
            say!(
                "wave {}: {}{}",
                result.name,
                wave_status_name(result.status),
                result
                    .gate
                    .as_ref()
                    .map(|g| format!("; gate {g}"))
                    .unwrap_or_default()
            );
            if !result.rows.is_empty() {
                for line in table(&result.rows).lines() {
                    say!("  {line}");
                }
            }
        }
        let rows: Vec<_> = results
            .iter()
            .flat_map(|r| r.rows.iter().cloned())
            .collect();
        say_raw!("{}", crate::report::review::summary(&rows));
        let (own_cpu, children_cpu) = engine::cpu_seconds();
        let report = crate::report::Report {
            run: journal.map(|j| j.id.clone()).unwrap_or_default(),
            action: if self.options.args.plan_only {
                "rollout-plan"
            } else {
                "rollout"
            }
            .into(),
            exit_code: code,
            orch_cpu_seconds: own_cpu,
            terraform_cpu_seconds: children_cpu,
            nodes: Vec::new(),
            waves: results
                .iter()
                .map(|r| crate::report::Wave {
                    name: r.name.clone(),
                    status: wave_status_name(r.status).into(),
                    gate: r.gate.clone(),
                    gate_output: r.gate_output.clone(),
                    nodes: r.rows.clone(),
                })
                .collect(),
        };
        crate::report::publish(self.options.args.execution.report.as_deref(), &report)
    }
}

/// The status of a node an earlier run of a resumed rollout applied, unchanged since.
const APPLIED_EARLIER: &str = "applied earlier";

fn wave_status_name(status: WaveStatus) -> &'static str {
    match status {
        WaveStatus::Pending => "not started",
        WaveStatus::Applying => "applying",
        WaveStatus::Gating => "gating",
        WaveStatus::Passed => "passed",
        WaveStatus::Failed => "failed",
        WaveStatus::Interrupted => "interrupted",
    }
}

fn describe_gate(gate: &crate::config::Gate) -> String {
    let mut parts = Vec::new();
    if !gate.bake.is_zero() {
        parts.push(format!("bake {}", describe_duration(gate.bake)));
    }
    if let Some(c) = &gate.command {
        parts.push(format!("then `{c}`"));
    }
    format!("(not run) {}", parts.join(", "))
}

fn describe_duration(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, s % 3600 / 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, m, s) => format!("{h}h{m}m{s}s"),
    }
}
