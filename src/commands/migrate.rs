//! Switching layouts: `orch layout migrate` moves every node's terraform state to the layout
//! orch.yaml names (one state per node, or one per stack, DESIGN §9), and [`guard`] refuses a run
//! while a selected node's state is still in the other layout, where terraform would see no state
//! and plan to create every key again.
//!
//! A move is a rewrite of terraform's own state files (format 4), which for the local backend are
//! orch's files under `.orch/state/`: a node's managed resources gain or lose the `module.<name>`
//! of its module block in the stack, and so do the dependencies terraform recorded between them.
//! Data sources are dropped (the next plan reads them again). The order makes a crash harmless:
//! every state about to change is copied to `.orch/migrations/<run>/` first; destinations are
//! written (whole, through a rename) and read back before any source is emptied; a node found in
//! both states with the same resources counts as moved, so running the command again after a
//! `kill -9` finishes the job. No resource is ever in neither state.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::config::{Backend, Fleet, Layout, Node};
use crate::diag::Diagnostic;
use crate::stacks::{module_name, Tier, STACKS_DIR};
use crate::terraform::runs;

fn name(layout: Layout) -> &'static str {
    match layout {
        Layout::PerNode => "per-node",
        Layout::Stacks => "stacks",
    }
}

fn other(layout: Layout) -> Layout {
    match layout {
        Layout::PerNode => Layout::Stacks,
        Layout::Stacks => Layout::PerNode,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("{path}: {why}\n  = help: this is not a state orch wrote for the {layout} layout; nothing was moved. Move it away if it is not orch's, or restore it from .orch/migrations/")]
    Shape {
        path: PathBuf,
        layout: &'static str,
        why: String,
    },
    #[error("{address} has different resources in {from} and in {to}; nothing was moved\n  = help: a state changed after a move stopped half-way, and orch will not choose; compare the two, remove the node's resources from the wrong one (`terraform state rm`), and run `orch layout migrate` again")]
    Conflict {
        address: String,
        from: PathBuf,
        to: PathBuf,
    },
    #[error("{0}\n  = help: wait for it, or remove the lock file if no terraform runs; nothing was moved")]
    StateLocked(String),
    #[error("moving state between layouts is built for the local backend only; with `backend: {{type: s3}}` nothing was moved\n  = help: move each state with `terraform state pull` / `state push` by hand, or switch `layout:` back")]
    RemoteBackend,
    #[error("{0}")]
    NoTerminal(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("after writing {path}, reading it back did not find the resources of {address}; nothing was removed from the old state\n  = help: the backups are in {backups}")]
    Verify {
        path: PathBuf,
        address: String,
        backups: PathBuf,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> MigrateError + '_ {
    move |source| MigrateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Where one node's resources are kept in one layout.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Home {
    file: PathBuf,
    /// `module.<name>` in a stack's state; `None` in a node's own state (its root module).
    module: Option<String>,
}

fn home(fleet: &Fleet, node: &Node, layout: Layout) -> Home {
    let state = fleet.state_dir().join("state");
    let a = &node.address;
    match layout {
        Layout::PerNode => Home {
            file: state.join(a.to_string()).join("terraform.tfstate"),
            module: None,
        },
        Layout::Stacks => Home {
            file: state
                .join(STACKS_DIR)
                .join(&a.account)
                .join(&a.region)
                .join(Tier::of(node).name())
                .join("terraform.tfstate"),
            module: Some(format!("module.{}", module_name(node))),
        },
    }
}

/// A state file as terraform wrote it (format 4), checked to have the shape orch's states of
/// `layout` have.
struct State {
    json: Map<String, Value>,
}

impl State {
    /// `None` when there is no such file.
    fn read(path: &Path, layout: Layout) -> Result<Option<State>, MigrateError> {
        let text = match std::fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(path)(e)),
        };
        let shape = |why: String| MigrateError::Shape {
            path: path.to_path_buf(),
            layout: name(layout),
            why,
        };
        let json: Value = serde_json::from_slice(&text)
            .map_err(|e| shape(format!("not a terraform state: {e}")))?;
        let Value::Object(json) = json else {
            return Err(shape("not a terraform state: not a JSON object".into()));
        };
        match json.get("version").and_then(Value::as_u64) {
            Some(4) => {}
            other => {
                return Err(shape(format!(
                    "state format version {}, not 4 (terraform 0.12 and later)",
                    other.map_or("missing".to_string(), |v| v.to_string())
                )))
            }
        }
        if json.get("lineage").and_then(Value::as_str).is_none()
            || json.get("serial").and_then(Value::as_u64).is_none()
        {
            return Err(shape("no `lineage` or `serial`".into()));
        }
        let resources = match json.get("resources") {
            None => &Vec::new(),
            Some(Value::Array(r)) => r,
            Some(_) => return Err(shape("`resources` is not a list".into())),
        };
        for (i, r) in resources.iter().enumerate() {
            let field = |name: &str| r.get(name).and_then(Value::as_str);
            let (Some(mode), Some(_), Some(_)) = (field("mode"), field("type"), field("name"))
            else {
                return Err(shape(format!(
                    "resource {} has no `mode`, `type` or `name`",
                    i + 1
                )));
            };
            if !matches!(mode, "managed" | "data") || !r["instances"].is_array() {
                return Err(shape(format!(
                    "resource {} ({}) has mode `{mode}` or no `instances` list",
                    i + 1,
                    resource_address(r)
                )));
            }
            let module = r.get("module");
            let fits = match layout {
                // A node's own root module holds its resources directly.
                Layout::PerNode => module.is_none(),
                // A stack holds one module block per node, nothing nested, nothing at its root.
                Layout::Stacks => module
                    .and_then(Value::as_str)
                    .and_then(|m| m.strip_prefix("module."))
                    .is_some_and(|name| {
                        !name.is_empty()
                            && name
                                .chars()
                                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                    }),
            };
            if !fits {
                return Err(shape(format!(
                    "resource {} is at {}, where orch's {} layout puts none",
                    i + 1,
                    resource_address(r),
                    name(layout)
                )));
            }
        }
        Ok(Some(State { json }))
    }

    fn resources(&self) -> &[Value] {
        self.json
            .get("resources")
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice)
    }

    /// The managed resources of the node at `module` (all of them in a node's own state).
    fn managed_of(&self, module: Option<&str>) -> Vec<Value> {
        self.resources()
            .iter()
            .filter(|r| r["mode"] == "managed" && r.get("module").and_then(Value::as_str) == module)
            .cloned()
            .collect()
    }
}

/// `module.x.aws_kms_key.this`, for messages.
fn resource_address(r: &Value) -> String {
    let mut out = String::new();
    if let Some(m) = r.get("module").and_then(Value::as_str) {
        out.push_str(m);
        out.push('.');
    }
    if r["mode"] == "data" {
        out.push_str("data.");
    }
    out.push_str(r["type"].as_str().unwrap_or("?"));
    out.push('.');
    out.push_str(r["name"].as_str().unwrap_or("?"));
    out
}

/// A resource of a node's state, rewritten for the node's place in the other state: its module
/// set or removed, and the dependencies terraform recorded for each instance with it. A
/// dependency on another node's module (a stack passes a key's ARN from module to module) has no
/// counterpart in a node's own state, where the ARN arrives as a variable, and is dropped;
/// terraform records dependencies again at the next apply.
fn rewrite(resource: &Value, from: Option<&str>, to: Option<&str>) -> Value {
    // `module` comes first, as terraform writes it; the other fields keep their order.
    let mut obj = Map::new();
    if let Some(m) = to {
        obj.insert("module".into(), Value::String(m.to_string()));
    }
    for (k, v) in resource.as_object().expect("checked to be a resource") {
        match (k.as_str(), v.as_str()) {
            ("module", _) => {}
            // A node's own root has the default provider only; in a stack, nodes with default
            // tags of their own use an aliased one (`provider["…/aws"].tags_2`). Terraform plans
            // a resource with its configuration's provider and records it at the next apply.
            ("provider", Some(p)) if to.is_none() => {
                let default = p.find("\"].").map_or(p, |end| &p[..end + 2]);
                obj.insert(k.clone(), Value::String(default.to_string()));
            }
            _ => {
                obj.insert(k.clone(), v.clone());
            }
        }
    }
    for instance in obj
        .get_mut("instances")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        let Some(deps) = instance
            .get_mut("dependencies")
            .and_then(Value::as_array_mut)
        else {
            continue;
        };
        let moved: Vec<Value> = deps
            .iter()
            .filter_map(Value::as_str)
            .filter_map(|d| {
                let local = match from {
                    Some(m) => d.strip_prefix(m)?.strip_prefix('.')?,
                    None => d,
                };
                Some(Value::String(match to {
                    Some(m) => format!("{m}.{local}"),
                    None => local.to_string(),
                }))
            })
            .collect();
        *deps = moved;
    }
    Value::Object(obj)
}

/// Resources in a stable order, for comparing two states' view of one node.
fn sorted(mut resources: Vec<Value>) -> Vec<Value> {
    resources.sort_by_key(resource_address);
    resources
}

/// One node's state on its way from one layout to the other.
struct Move {
    address: String,
    from: Home,
    to: Home,
    /// Its managed resources, rewritten for `to`.
    resources: Vec<Value>,
    /// Its root outputs, as `to` holds them.
    outputs: Outputs,
    /// Found in `to` already (a move stopped half-way): only the source is left to clear.
    arrived: bool,
}

/// A node's outputs in the state it moves to. Terraform compares the outputs in state with the
/// configuration's, and a plan with an output to add has changes (exit 2), so they move too.
enum Outputs {
    /// A node's own state: each output of its root module.
    Own(Map<String, Value>),
    /// A stack's state: the root's output named after the module, `value = module.<name>`,
    /// sensitive (src/render/stack.rs).
    Module(String, Value),
}

impl Outputs {
    fn of(state: &State, from: &Home, to: &Home) -> Outputs {
        let all = state.json.get("outputs").and_then(Value::as_object);
        match (&from.module, &to.module) {
            (None, Some(m)) => {
                let mut value = Map::new();
                let mut types = Map::new();
                for (name, o) in all.into_iter().flatten() {
                    value.insert(name.clone(), o["value"].clone());
                    types.insert(name.clone(), o["type"].clone());
                }
                let output = serde_json::json!({
                    "value": value,
                    "type": ["object", types],
                    "sensitive": true,
                });
                Outputs::Module(output_name(m).to_string(), output)
            }
            (Some(m), _) => {
                let output = all.and_then(|o| o.get(output_name(m)));
                let types = output.and_then(|o| o["type"][1].as_object());
                let own = output
                    .and_then(|o| o["value"].as_object())
                    .into_iter()
                    .flatten()
                    // Terraform keeps no output whose value is null.
                    .filter(|(_, v)| !v.is_null())
                    .map(|(name, v)| {
                        let kind = types.and_then(|t| t.get(name)).cloned();
                        (
                            name.clone(),
                            serde_json::json!({"value": v, "type": kind.unwrap_or(Value::Null)}),
                        )
                    })
                    .collect();
                Outputs::Own(own)
            }
            (None, None) => Outputs::Own(all.cloned().unwrap_or_default()),
        }
    }

    fn write_into(&self, json: &mut Map<String, Value>) {
        let outputs = json
            .entry("outputs")
            .or_insert_with(|| Value::Object(Map::new()));
        match self {
            Outputs::Own(own) => *outputs = Value::Object(own.clone()),
            Outputs::Module(name, output) => {
                if let Some(map) = outputs.as_object_mut() {
                    map.insert(name.clone(), output.clone());
                }
            }
        }
    }
}

/// `data` for `module.data`: a stack's output of a node is named after its module block.
fn output_name(module: &str) -> &str {
    module.strip_prefix("module.").unwrap_or(module)
}

/// The states of one layout, each read once.
struct States {
    layout: Layout,
    files: BTreeMap<PathBuf, Option<State>>,
}

impl States {
    fn new(layout: Layout) -> Self {
        States {
            layout,
            files: BTreeMap::new(),
        }
    }

    fn get(&mut self, path: &Path) -> Result<Option<&State>, MigrateError> {
        if !self.files.contains_key(path) {
            let state = State::read(path, self.layout)?;
            self.files.insert(path.to_path_buf(), state);
        }
        Ok(self.files[path].as_ref())
    }
}

/// The nodes of `nodes` with managed resources in `layout`'s state, each with where they are.
/// A state orch cannot read counts as holding resources: it is not safe to run over it.
fn stranded(
    fleet: &Fleet,
    nodes: impl Iterator<Item = usize>,
    layout: Layout,
) -> Vec<(String, String)> {
    let mut states = States::new(layout);
    let mut found = Vec::new();
    for i in nodes {
        let node = &fleet.nodes[i];
        let place = home(fleet, node, layout);
        // The common case, every node in the layout orch.yaml names, costs one stat per node.
        if !place.file.exists() {
            continue;
        }
        match states.get(&place.file) {
            Ok(Some(state)) => {
                let n = state.managed_of(place.module.as_deref()).len();
                if n > 0 {
                    found.push((
                        node.address.to_string(),
                        format!("{n} resource(s) in {}", place.file.display()),
                    ));
                }
            }
            Ok(None) => {}
            Err(e) => found.push((node.address.to_string(), e.to_string())),
        }
    }
    found
}

/// Refuses a run of `nodes` while one of them still has its state in the layout orch.yaml does
/// not name. Only the local backend's states are looked at: an s3 backend's are remote, and
/// reading one costs a terraform init per state (see the README).
pub fn guard(fleet: &Fleet, nodes: &BTreeSet<usize>) -> Result<(), Diagnostic> {
    let layout = fleet.settings.layout;
    if fleet.settings.backend != Backend::Local {
        return Ok(());
    }
    let found = stranded(fleet, nodes.iter().copied(), other(layout));
    if found.is_empty() {
        return Ok(());
    }
    let shown: Vec<String> = found
        .iter()
        .take(5)
        .map(|(a, what)| format!("{a} ({what})"))
        .collect();
    let more = match found.len() {
        n if n > 5 => format!(" and {} more", n - 5),
        _ => String::new(),
    };
    let message = format!(
        "orch.yaml says `layout: {}`, but the state of {} selected node(s) is still in the {} layout: {}{more}",
        name(layout),
        found.len(),
        name(other(layout)),
        shown.join(", "),
    );
    Err(
        Diagnostic::at_path(fleet.live.join("orch.yaml"), message).with_help(format!(
            "run `orch layout migrate` to move it to the {} layout (a plan now would create those resources again), or set `layout: {}` back",
            name(layout),
            name(other(layout))
        )),
    )
}

/// What `orch layout migrate` did.
enum Outcome {
    Nothing,
    Declined,
    Interrupted,
    Moved { nodes: usize, resources: usize },
}

/// `orch layout migrate`: waits for the terraform a killed run left (it may still be writing a
/// state), then moves every node's state into the layout orch.yaml names, asking first unless
/// `auto_approve`. The caller holds the tree lock. Returns the exit code.
pub fn execute(fleet: &Fleet, auto_approve: bool) -> Result<u8, MigrateError> {
    let state_dir = fleet.state_dir();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(io(&state_dir))?;
    let run_id = crate::run::run_id();
    runtime.block_on(async {
        let interrupt = crate::signal::listen();
        let redactor = crate::terraform::redact::Redactor::from_env();
        if runs::recover(&state_dir, &run_id, &redactor, interrupt.clone()).await {
            say!("interrupted while waiting for the terraform of a killed run; nothing was moved");
            return Ok(130);
        }
        let terminal = std::io::stdin().is_terminal();
        let mut confirm = || {
            if auto_approve {
                Ok(true)
            } else if !terminal {
                Err(MigrateError::NoTerminal(
                    "orch layout migrate rewrites terraform state and there is no terminal to confirm on; nothing was moved\n  = help: check the moves listed above, then pass --auto-approve".into(),
                ))
            } else {
                crate::run::ask("Move this state? Only 'yes' is accepted: ")
                    .map_err(io(Path::new("stdin")))
            }
        };
        let interrupted = || *interrupt.borrow() > 0;
        Ok(
            match migrate(fleet, fleet.settings.layout, &run_id, &mut confirm, &interrupted)? {
                Outcome::Nothing => 0,
                Outcome::Declined => 1,
                Outcome::Interrupted => 130,
                Outcome::Moved { nodes, resources } => {
                    say!(
                        "moved the state of {nodes} node(s), {resources} resource(s), into the {} layout; `orch plan --all` should now show no changes",
                        name(fleet.settings.layout)
                    );
                    0
                }
            },
        )
    })
}

/// Moves the state of every node of the fleet that is in the other layout into `layout`.
/// `confirm` is asked once, after the moves are printed, whether to go on.
fn migrate(
    fleet: &Fleet,
    layout: Layout,
    run_id: &str,
    confirm: &mut dyn FnMut() -> Result<bool, MigrateError>,
    interrupted: &dyn Fn() -> bool,
) -> Result<Outcome, MigrateError> {
    if fleet.settings.backend != Backend::Local {
        return Err(MigrateError::RemoteBackend);
    }
    let mut sources = States::new(other(layout));
    let mut destinations = States::new(layout);
    let moves = plan(fleet, layout, &mut sources, &mut destinations)?;
    let resources: usize = moves.iter().map(|m| m.resources.len()).sum();
    if moves.is_empty() {
        say!(
            "nothing to move: no node of this tree has state in the {} layout",
            name(other(layout))
        );
        return Ok(Outcome::Nothing);
    }
    for file in moves
        .iter()
        .flat_map(|m| [&m.from.file, &m.to.file])
        .collect::<BTreeSet<_>>()
    {
        let dir = file.parent().expect("a state file is in a directory");
        if let Some(note) = runs::clear_stale_state_lock(dir) {
            if note.starts_with("the state is locked") {
                return Err(MigrateError::StateLocked(format!(
                    "{}: {note}",
                    dir.display()
                )));
            }
            say!("{note}");
        }
    }
    let state_dir = fleet.state_dir();
    let mut text = format!(
        "move the state of {} node(s), {resources} resource(s), from the {} layout to the {} layout:\n",
        moves.len(),
        name(other(layout)),
        name(layout)
    );
    for m in &moves {
        let at = |h: &Home| match &h.module {
            Some(module) => format!("{} ({module})", h.file.display()),
            None => h.file.display().to_string(),
        };
        text.push_str(&format!(
            "  {}: {} resource(s), {} -> {}{}\n",
            m.address,
            m.resources.len(),
            at(&m.from),
            at(&m.to),
            if m.arrived {
                " (already there: a move stopped half-way; only the old state is cleared)"
            } else {
                ""
            }
        ));
    }
    say_raw!("{text}");
    if !confirm()? {
        say!("nothing was moved");
        return Ok(Outcome::Declined);
    }
    let backups = state_dir.join("migrations").join(run_id);
    back_up(&moves, &state_dir.join("state"), &backups)?;
    say!("backed up every state it changes to {}", backups.display());
    let stop = || {
        let stop = interrupted();
        if stop {
            say!("interrupted: stopped between two files; run `orch layout migrate` again to finish the move");
        }
        stop
    };
    // Destinations first, each written whole and read back: until then every source is intact.
    let mut by_destination: BTreeMap<&Path, Vec<&Move>> = BTreeMap::new();
    for m in moves.iter().filter(|m| !m.arrived) {
        by_destination.entry(&m.to.file).or_default().push(m);
    }
    for (file, arriving) in &by_destination {
        if stop() {
            return Ok(Outcome::Interrupted);
        }
        let base = destinations.get(file)?;
        let mut json = base.map_or_else(|| fresh_state(&moves, &sources), |s| s.json.clone());
        let list = json
            .entry("resources")
            .or_insert_with(|| Value::Array(Vec::new()))
            .as_array_mut()
            .expect("checked to be a list");
        for m in arriving {
            list.extend(m.resources.iter().cloned());
        }
        for m in arriving {
            m.outputs.write_into(&mut json);
        }
        bump(&mut json, base.is_none());
        write_state(file, &json)?;
    }
    for m in &moves {
        let back = State::read(&m.to.file, layout)?;
        let found = back.map(|s| sorted(s.managed_of(m.to.module.as_deref())));
        if found != Some(sorted(m.resources.clone())) {
            return Err(MigrateError::Verify {
                path: m.to.file.clone(),
                address: m.address.clone(),
                backups,
            });
        }
    }
    // Only now the sources: each keeps what is not moved (a module of a node no longer in the
    // tree), or goes when nothing managed is left.
    let mut by_source: BTreeMap<&Path, Vec<&Move>> = BTreeMap::new();
    for m in &moves {
        by_source.entry(&m.from.file).or_default().push(m);
    }
    for (file, leaving) in &by_source {
        if stop() {
            return Ok(Outcome::Interrupted);
        }
        let state = sources
            .get(file)?
            .expect("a source holds the moved resources");
        let gone: BTreeSet<Option<&str>> =
            leaving.iter().map(|m| m.from.module.as_deref()).collect();
        let kept: Vec<Value> = state
            .resources()
            .iter()
            .filter(|r| !gone.contains(&r.get("module").and_then(Value::as_str)))
            .cloned()
            .collect();
        if kept.iter().any(|r| r["mode"] == "managed") {
            let mut json = state.json.clone();
            json.insert("resources".into(), Value::Array(kept));
            if let Some(outputs) = json.get_mut("outputs").and_then(Value::as_object_mut) {
                for module in gone.iter().flatten() {
                    outputs.shift_remove(output_name(module));
                }
            }
            bump(&mut json, false);
            write_state(file, &json)?;
            say!(
                "{} keeps resources of modules that are no node of this tree",
                file.display()
            );
        } else {
            std::fs::remove_file(file).map_err(io(file))?;
        }
    }
    Ok(Outcome::Moved {
        nodes: moves.len(),
        resources,
    })
}

/// Every node with managed resources in the other layout, read and checked; nothing is written.
fn plan(
    fleet: &Fleet,
    layout: Layout,
    sources: &mut States,
    destinations: &mut States,
) -> Result<Vec<Move>, MigrateError> {
    let mut moves = Vec::new();
    for node in &fleet.nodes {
        let from = home(fleet, node, other(layout));
        let Some(source) = sources.get(&from.file)? else {
            continue;
        };
        let managed = source.managed_of(from.module.as_deref());
        if managed.is_empty() {
            continue;
        }
        let to = home(fleet, node, layout);
        let resources: Vec<Value> = managed
            .iter()
            .map(|r| rewrite(r, from.module.as_deref(), to.module.as_deref()))
            .collect();
        let there = destinations
            .get(&to.file)?
            .map(|s| s.managed_of(to.module.as_deref()))
            .unwrap_or_default();
        let arrived = !there.is_empty();
        if arrived && sorted(there) != sorted(resources.clone()) {
            return Err(MigrateError::Conflict {
                address: node.address.to_string(),
                from: from.file,
                to: to.file,
            });
        }
        let outputs = Outputs::of(source, &from, &to);
        moves.push(Move {
            address: node.address.to_string(),
            from,
            to,
            resources,
            outputs,
            arrived,
        });
    }
    Ok(moves)
}

/// A new state for a destination that has none: terraform's fields, the newest terraform version
/// among the sources, and a new lineage.
fn fresh_state(moves: &[Move], sources: &States) -> Map<String, Value> {
    let version = moves
        .iter()
        .filter_map(|m| sources.files.get(&m.from.file)?.as_ref())
        .filter_map(|s| s.json.get("terraform_version")?.as_str())
        .max_by(|a, b| version_order(a).cmp(&version_order(b)))
        .unwrap_or("1.5.0");
    let mut json = Map::new();
    json.insert("version".into(), Value::from(4));
    json.insert("terraform_version".into(), Value::from(version));
    json.insert("serial".into(), Value::from(0));
    json.insert("lineage".into(), Value::from(lineage()));
    json.insert("outputs".into(), Value::Object(Map::new()));
    json.insert("resources".into(), Value::Array(Vec::new()));
    json.insert("check_results".into(), Value::Null);
    json
}

fn version_order(v: &str) -> Vec<u64> {
    v.split(['.', '-'])
        .map(|p| p.parse().unwrap_or(0))
        .collect()
}

/// A state written by someone else than terraform is still one more serial of the same lineage;
/// its check results are of the old configuration and are recomputed by the next plan.
fn bump(json: &mut Map<String, Value>, fresh: bool) {
    let serial = json.get("serial").and_then(Value::as_u64).unwrap_or(0);
    json.insert(
        "serial".into(),
        Value::from(if fresh { 1 } else { serial + 1 }),
    );
    json.insert("check_results".into(), Value::Null);
}

/// A random lineage in terraform's form (a UUID's layout).
fn lineage() -> String {
    let mut bytes = [0u8; 16];
    let got = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes));
    if got.is_err() {
        // Unique enough for a lineage, which only has to differ from other states' lineages.
        let seed = format!("{:?}{}", std::time::SystemTime::now(), std::process::id());
        for (i, b) in seed.bytes().enumerate() {
            bytes[i % 16] ^= b;
        }
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// Copies every state the move will write or remove into `backups`, at its path under
/// `.orch/state/`, and makes them durable before any state changes.
fn back_up(moves: &[Move], state: &Path, backups: &Path) -> Result<(), MigrateError> {
    let files: BTreeSet<&PathBuf> = moves
        .iter()
        .flat_map(|m| [&m.from.file, &m.to.file])
        .collect();
    for file in files {
        let text = match std::fs::read(file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(file)(e)),
        };
        let copy = backups.join(file.strip_prefix(state).unwrap_or(file));
        let dir = copy.parent().expect("a file is in a directory");
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&copy)
            .map_err(io(&copy))?;
        out.write_all(&text)
            .and_then(|()| out.sync_all())
            .map_err(io(&copy))?;
        sync_dir(dir)?;
    }
    Ok(())
}

/// Writes a state whole: a temporary file beside it, flushed to disk, renamed over the old one,
/// and the directory flushed, so a crash or a power cut leaves the old state or the new one.
fn write_state(path: &Path, json: &Map<String, Value>) -> Result<(), MigrateError> {
    let dir = path.parent().expect("a state file is in a directory");
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let text = serde_json::to_string_pretty(json).expect("JSON serializes") + "\n";
    let tmp = dir.join(format!(".orch-migrate-{}", std::process::id()));
    let written = std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(path)(e));
    }
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<(), MigrateError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_resource_moves_into_a_module_and_back_unchanged() {
        let alias = json!({
            "mode": "managed", "type": "aws_kms_alias", "name": "this",
            "provider": "provider[\"registry.terraform.io/hashicorp/aws\"]",
            "instances": [{"index_key": "prod/data", "attributes": {"name": "alias/prod/data"},
                           "dependencies": ["aws_kms_key.this"]}]
        });
        let moved = rewrite(&alias, None, Some("module.data"));
        assert_eq!(moved["module"], "module.data");
        assert_eq!(
            moved.as_object().unwrap().keys().next().unwrap(),
            "module",
            "terraform writes `module` first"
        );
        assert_eq!(
            moved["instances"][0]["dependencies"],
            json!(["module.data.aws_kms_key.this"])
        );
        let back = rewrite(&moved, Some("module.data"), None);
        assert_eq!(
            serde_json::to_string(&back).unwrap(),
            serde_json::to_string(&alias).unwrap(),
            "the same resource, field for field and in the same order"
        );
    }

    #[test]
    fn a_dependency_on_another_module_has_no_place_in_a_node_state() {
        let grant = json!({
            "module": "module.grant", "mode": "managed", "type": "aws_kms_grant", "name": "this",
            "instances": [{"dependencies": ["module.data.aws_kms_key.this", "module.grant.data.x.y"]}]
        });
        let own = rewrite(&grant, Some("module.grant"), None);
        assert_eq!(own["instances"][0]["dependencies"], json!(["data.x.y"]));
    }

    #[test]
    fn a_node_state_has_the_default_provider() {
        let aliased = json!({
            "module": "module.other", "mode": "managed", "type": "aws_kms_key", "name": "this",
            "provider": "provider[\"registry.terraform.io/hashicorp/aws\"].tags_2", "instances": []
        });
        let own = rewrite(&aliased, Some("module.other"), None);
        assert_eq!(
            own["provider"],
            "provider[\"registry.terraform.io/hashicorp/aws\"]"
        );
        assert_eq!(rewrite(&own, None, None)["provider"], own["provider"]);
    }

    #[test]
    fn lineages_look_like_terraform_s_and_differ() {
        let (a, b) = (lineage(), lineage());
        assert_ne!(a, b);
        let lengths: Vec<usize> = a.split('-').map(str::len).collect();
        assert_eq!(lengths, [8, 4, 4, 4, 12]);
    }

    #[test]
    fn versions_compare_by_number() {
        assert!(version_order("1.11.4") > version_order("1.9.8"));
    }
}
