//! Switching layouts: `orch layout migrate` moves every node's terraform state to the layout
//! orch.yaml names (one state per node, or one per stack, DESIGN §9), and [`guard`] and
//! [`guard_remote`] refuse a run while a selected node's state is still in the other layout,
//! where terraform would see no state and plan to create every key again.
//!
//! A move rewrites terraform's own states (format 4): a node's managed resources gain or lose
//! the `module.<name>` of its module block in the stack, and so do the dependencies terraform
//! recorded between them. Data sources are dropped (the next plan reads them again). The states
//! are read and written through a [`Store`]: files under `.orch/state/` (local backend), or
//! objects in the account's bucket through terraform's `state pull` and `state push` (s3), which
//! take the state lock and check lineage and serial. The move is written once for both, in an
//! order that makes a crash harmless: every state about to change is copied to
//! `.orch/migrations/<run>/` first; destinations are written whole and read back before any
//! source is emptied; a node found in both states with the same resources counts as moved, so
//! running the command again after a `kill -9` finishes the job. No resource is ever in neither
//! state.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::{Map, Value};

use crate::commands::backend::Remote;
use crate::config::{Fleet, Layout, Node, S3Backend};
use crate::diag::Diagnostic;
use crate::stacks::module_name;
use crate::terraform::redact::Redactor;
use crate::terraform::remote::{self, Runner};
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
    #[error("{state}: {why}\n  = help: this is not a state orch wrote for the {layout} layout; nothing was moved. Move it away if it is not orch's, or restore it from .orch/migrations/")]
    Shape {
        state: String,
        layout: &'static str,
        why: String,
    },
    #[error("{address} has different resources in {from} and in {to}; nothing was moved\n  = help: a state changed after a move stopped half-way, and orch will not choose; compare the two, remove the node's resources from the wrong one (`terraform state rm`), and run `orch layout migrate` again")]
    Conflict {
        address: String,
        from: String,
        to: String,
    },
    #[error("{0}\n  = help: wait for it, or remove the lock file if no terraform runs; nothing was moved")]
    StateLocked(String),
    #[error(
        "{0}\n  = help: nothing was moved; run `orch layout migrate` again once this is fixed"
    )]
    Unreadable(String),
    #[error("{state}: {why}\n  = help: the move stopped here, with every resource still in a state: no old state is emptied before every new one is read back. Run `orch layout migrate` again once this is fixed and it finishes the move; the backups are in {backups}")]
    Write {
        state: String,
        why: String,
        backups: PathBuf,
    },
    #[error("{0}")]
    NoTerminal(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("after writing {state}, reading it back did not find the resources of {address}; nothing was removed from the old state\n  = help: the backups are in {backups}")]
    Verify {
        state: String,
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

/// One state of the fleet: its name, a node's address or `_stacks/<account>/<region>/<tier>`
/// (its path under `.orch/state/`, or under the key prefix in S3), and the account whose bucket
/// holds it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Place {
    name: String,
    account: String,
}

/// Where one node's resources are kept in one layout.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Home {
    place: Place,
    /// `module.<name>` in a stack's state; `None` in a node's own state (its root module).
    module: Option<String>,
}

fn home(node: &Node, layout: Layout) -> Home {
    let a = &node.address;
    let (name, module) = match layout {
        Layout::PerNode => (a.to_string(), None),
        Layout::Stacks => (
            crate::stacks::state_name(node),
            Some(format!("module.{}", module_name(node))),
        ),
    };
    Home {
        place: Place {
            name,
            account: a.account.clone(),
        },
        module,
    }
}

/// Where the states are: read whole, written whole.
trait Store: Sync {
    /// How many states it writes at once.
    fn parallelism(&self) -> usize;
    /// A state as the user finds it: its file, or `s3://<bucket>/<key>`.
    fn show(&self, place: &Place) -> String;
    /// Each state's bytes, in the order of `places`; None where there is none.
    fn read(&self, places: &[Place]) -> Result<Vec<Option<Vec<u8>>>, MigrateError>;
    /// Refuses while terraform holds one of these states locked.
    fn check_locks(&self, places: &[&Place]) -> Result<(), MigrateError>;
    /// Writes a whole state over the old one (Err: why not).
    fn write(&self, place: &Place, json: &Map<String, Value>) -> Result<(), String>;
    /// A source state left with no resource: `json` is it emptied.
    fn clear(&self, place: &Place, json: &Map<String, Value>) -> Result<(), String>;
}

/// The local backend's states: `.orch/state/<name>/terraform.tfstate`, orch's own files.
struct Local {
    dir: PathBuf,
}

impl Local {
    fn file(&self, place: &Place) -> PathBuf {
        self.dir.join(&place.name).join("terraform.tfstate")
    }
}

impl Store for Local {
    /// One: a file is written in a few milliseconds.
    fn parallelism(&self) -> usize {
        1
    }

    fn show(&self, place: &Place) -> String {
        self.file(place).display().to_string()
    }

    fn read(&self, places: &[Place]) -> Result<Vec<Option<Vec<u8>>>, MigrateError> {
        places
            .iter()
            .map(|p| {
                let file = self.file(p);
                match std::fs::read(&file) {
                    Ok(t) => Ok(Some(t)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(io(&file)(e)),
                }
            })
            .collect()
    }

    fn check_locks(&self, places: &[&Place]) -> Result<(), MigrateError> {
        for place in places {
            let file = self.file(place);
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
        Ok(())
    }

    fn write(&self, place: &Place, json: &Map<String, Value>) -> Result<(), String> {
        write_state(&self.file(place), json).map_err(|e| e.to_string())
    }

    /// Removed: the directory keeps nothing of terraform's.
    fn clear(&self, place: &Place, _: &Map<String, Value>) -> Result<(), String> {
        let file = self.file(place);
        std::fs::remove_file(&file).map_err(|e| format!("cannot remove {}: {e}", file.display()))
    }
}

/// A state's prefix and its last name: `dev/us-east-1` and `k1` of `dev/us-east-1/k1`.
fn split(place: &Place) -> (&str, &str) {
    place
        .name
        .rsplit_once('/')
        .expect("a state's name has a prefix")
}

/// The s3 backend's states, through terraform in backend-only modules under `.orch/remote/`:
/// `list/<prefix>/` lists the states under a prefix (`<account>/<region>` or
/// `_stacks/<account>/<region>`) as workspaces, and pulls and pushes each of them as its
/// workspace (see [`Runner::pull`] for why not one module per state).
struct S3<'a> {
    remote: &'a Remote<'a>,
    s3: &'a S3Backend,
    runner: Runner<'a>,
    dir: PathBuf,
    /// States pulled so far, for what the guard says it cost.
    pulls: std::sync::atomic::AtomicUsize,
}

impl<'a> S3<'a> {
    fn new(remote: &'a Remote<'a>, redactor: &'a Redactor) -> Option<S3<'a>> {
        Some(S3 {
            remote,
            s3: remote.s3()?,
            runner: remote.runner(redactor),
            dir: remote.fleet.state_dir(),
            pulls: Default::default(),
        })
    }

    /// The listing module of `prefix` in `account`'s bucket: its directory and backend.tf.
    fn listing(&self, prefix: &str, account: &str) -> Result<(PathBuf, String), String> {
        let text = crate::backend::listing_tf(
            self.remote.templates,
            &self.remote.fleet.settings,
            self.s3,
            &self.remote.fleet.accounts[account],
            self.remote.endpoint(),
            prefix,
        )?;
        Ok((remote::dir(&self.dir, "list", prefix), text))
    }

    /// Where a state is pulled and pushed: its prefix's listing module, in the workspace of its
    /// last name; a state named `default` (the default workspace's, at the bucket's root there)
    /// from a module of its own key.
    fn module<'p>(&self, place: &'p Place) -> Result<(PathBuf, String, Option<&'p str>), String> {
        let (prefix, last) = split(place);
        if last == "default" {
            let text = self.remote.backend_tf(&place.account, &place.name)?;
            return Ok((remote::dir(&self.dir, "state", &place.name), text, None));
        }
        let (dir, text) = self.listing(prefix, &place.account)?;
        Ok((dir, text, Some(last)))
    }

    /// Of each place, whether its state exists: listed under its prefix, one `workspace list`
    /// per prefix. A state named `default` cannot be told from the default workspace terraform
    /// always lists: it may exist (pulling it creates nothing).
    fn listed(&self, places: &[Place]) -> Result<Vec<bool>, String> {
        let prefixes: Vec<(&str, &str)> = places
            .iter()
            .map(|p| (split(p).0, p.account.as_str()))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let lists = remote::parallel(&prefixes, self.remote.parallelism, |(prefix, account)| {
            let (dir, text) = self.listing(prefix, account)?;
            self.runner.workspaces(&dir, &text).map_err(|e| {
                format!(
                    "listing the states under {}/{prefix}/: {e}",
                    self.s3.key_prefix
                )
            })
        });
        let mut found: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        for ((prefix, _), list) in prefixes.iter().zip(lists) {
            found.insert(prefix, list?.into_iter().collect());
        }
        Ok(places
            .iter()
            .map(|p| {
                let (prefix, last) = split(p);
                last == "default" || found[prefix].contains(last)
            })
            .collect())
    }

    /// Every state of `places` pulled, at once. Only states known to exist: the S3 backend
    /// creates the state of a workspace it is asked for.
    fn pull(&self, places: &[Place]) -> Result<Vec<Option<Vec<u8>>>, MigrateError> {
        self.pulls
            .fetch_add(places.len(), std::sync::atomic::Ordering::Relaxed);
        let pulled = remote::parallel(places, self.remote.parallelism, |place| {
            let (dir, text, workspace) = self.module(place)?;
            self.runner
                .pull(&dir, &text, workspace)
                .map(|t| t.map(String::into_bytes))
        });
        places
            .iter()
            .zip(pulled)
            .map(|(place, r)| {
                r.map_err(|e| {
                    MigrateError::Unreadable(format!("reading {}: {e}", self.show(place)))
                })
            })
            .collect()
    }
}

impl Store for S3<'_> {
    /// A push is a terraform run that waits on S3 most of its time.
    fn parallelism(&self) -> usize {
        self.remote.parallelism
    }

    fn show(&self, place: &Place) -> String {
        format!(
            "s3://{}/{}",
            self.s3
                .bucket_for(&self.remote.fleet.accounts[&place.account]),
            crate::backend::state_key(self.s3, &place.name)
        )
    }

    /// Only the listed states are pulled: a move to stacks looks at every node's own state.
    fn read(&self, places: &[Place]) -> Result<Vec<Option<Vec<u8>>>, MigrateError> {
        let listed = self.listed(places).map_err(MigrateError::Unreadable)?;
        let wanted: Vec<Place> = places
            .iter()
            .zip(&listed)
            .filter(|(_, &l)| l)
            .map(|(p, _)| p.clone())
            .collect();
        let mut pulled = self.pull(&wanted)?.into_iter();
        Ok(listed
            .iter()
            .map(|&l| if l { pulled.next().flatten() } else { None })
            .collect())
    }

    /// Terraform takes each state's lock as it pushes, and a lock another run holds fails that
    /// push with the holder named: there is nothing to look at first.
    fn check_locks(&self, _: &[&Place]) -> Result<(), MigrateError> {
        Ok(())
    }

    fn write(&self, place: &Place, json: &Map<String, Value>) -> Result<(), String> {
        let text = serde_json::to_string_pretty(json).expect("JSON serializes") + "\n";
        let (dir, backend, workspace) = self.module(place)?;
        self.runner
            .push(&dir, &backend, workspace, &text, self.s3.lock_timeout)
    }

    /// Written emptied, as terraform leaves a state after a destroy: terraform has no command
    /// that deletes the object of a state it does not list as a workspace, and the bucket keeps
    /// its versions anyway.
    fn clear(&self, place: &Place, json: &Map<String, Value>) -> Result<(), String> {
        self.write(place, json)
    }
}

/// A state as terraform wrote it (format 4), checked to have the shape orch's states of
/// `layout` have, with the bytes it was read from (the backup).
struct State {
    json: Map<String, Value>,
    text: Vec<u8>,
}

impl State {
    /// `text` read from the state shown as `shown`.
    fn parse(text: Vec<u8>, shown: &str, layout: Layout) -> Result<State, MigrateError> {
        let shape = |why: String| MigrateError::Shape {
            state: shown.to_string(),
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
        Ok(State { json, text })
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
    read: BTreeMap<Place, Option<State>>,
}

impl States {
    /// Every state of `places` read from `store` and checked.
    fn load(store: &dyn Store, layout: Layout, places: Vec<Place>) -> Result<Self, MigrateError> {
        let places: Vec<Place> = places
            .into_iter()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let texts = store.read(&places)?;
        let mut read = BTreeMap::new();
        for (place, text) in places.into_iter().zip(texts) {
            let state = text
                .map(|t| State::parse(t, &store.show(&place), layout))
                .transpose()?;
            read.insert(place, state);
        }
        Ok(States { layout, read })
    }

    fn get(&self, place: &Place) -> Option<&State> {
        self.read.get(place).and_then(Option::as_ref)
    }
}

/// The nodes of `nodes` with managed resources at their homes in `layout`, each with where
/// they are, from `texts`, the states of `layout` that exist. A state orch cannot read counts as
/// holding resources: it is not safe to run over it.
fn stranded(
    fleet: &Fleet,
    store: &dyn Store,
    nodes: &[usize],
    layout: Layout,
    texts: BTreeMap<Place, Vec<u8>>,
) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let states: BTreeMap<Place, Result<State, MigrateError>> = texts
        .into_iter()
        .map(|(place, text)| {
            let state = State::parse(text, &store.show(&place), layout);
            (place, state)
        })
        .collect();
    for &i in nodes {
        let node = &fleet.nodes[i];
        let at = home(node, layout);
        match states.get(&at.place) {
            None => {}
            Some(Ok(state)) => {
                let n = state.managed_of(at.module.as_deref()).len();
                if n > 0 {
                    found.push((
                        node.address.to_string(),
                        format!("{n} resource(s) in {}", store.show(&at.place)),
                    ));
                }
            }
            Some(Err(e)) => found.push((node.address.to_string(), e.to_string())),
        }
    }
    found
}

/// Refuses a run of `nodes` while one of them still has its state in the layout orch.yaml does
/// not name. The local backend's states only: an s3 backend's are [`guard_remote`]'s.
pub fn guard(fleet: &Fleet, nodes: &BTreeSet<usize>) -> Result<(), Diagnostic> {
    if fleet.settings.backend != crate::config::Backend::Local {
        return Ok(());
    }
    let layout = other(fleet.settings.layout);
    let store = Local {
        dir: fleet.state_dir().join("state"),
    };
    let mut texts = BTreeMap::new();
    for &i in nodes {
        let place = home(&fleet.nodes[i], layout).place;
        // The common case, every node in the layout orch.yaml names, costs one stat per node.
        if texts.contains_key(&place) || !store.file(&place).exists() {
            continue;
        }
        match store.read(std::slice::from_ref(&place)) {
            Ok(mut t) => {
                if let Some(text) = t.pop().flatten() {
                    texts.insert(place, text);
                }
            }
            Err(e) => return Err(refusal(fleet, vec![(place.name, e.to_string())])),
        }
    }
    let nodes: Vec<usize> = nodes.iter().copied().collect();
    let found = stranded(fleet, &store, &nodes, layout, texts);
    if found.is_empty() {
        Ok(())
    } else {
        Err(refusal(fleet, found))
    }
}

/// Why [`guard_remote`] stopped a run.
pub enum GuardError {
    /// A selected node's state is in the other layout.
    Refused(Diagnostic),
    /// The states could not be looked at.
    Failed(String),
}

/// [`guard`] for state in S3, without a terraform run per node: one `workspace list` per
/// account and region tells which states of the other layout exist, and only those that can
/// hold a selected node's resources are pulled. In a stacks run, a node listed with a state of
/// its own is looked for in its stack first (one pull per stack); its own state is pulled only
/// when the stack lacks it. In a per-node run, the stack of a node is pulled (once) when it is
/// listed. A state emptied by a move or a destroy holds nothing back.
pub fn guard_remote(remote: &Remote, nodes: &BTreeSet<usize>) -> Result<(), GuardError> {
    let fleet = remote.fleet;
    let redactor = Redactor::from_env();
    let Some(store) = S3::new(remote, &redactor) else {
        return Ok(());
    };
    if nodes.is_empty() {
        return Ok(());
    }
    let started = Instant::now();
    let layout = fleet.settings.layout;
    let accounts: BTreeSet<&String> = nodes
        .iter()
        .map(|&i| &fleet.nodes[i].address.account)
        .collect();
    remote
        .check_buckets(&store.runner, accounts)
        .map_err(GuardError::Failed)?;
    let failed = |e: MigrateError| GuardError::Failed(e.to_string());
    let others: Vec<usize> = nodes.iter().copied().collect();
    let places: Vec<Place> = others
        .iter()
        .map(|&i| home(&fleet.nodes[i], other(layout)).place)
        .collect();
    let listed = store.listed(&places).map_err(GuardError::Failed)?;
    let mut candidates: Vec<usize> = others
        .iter()
        .zip(&listed)
        .filter(|(_, &l)| l)
        .map(|(&i, _)| i)
        .collect();
    // The states of `layout` of `nodes`, each read once: those not known to exist listed
    // first (`listed` false), since pulling a state that does not exist creates it.
    let read = |nodes: &[usize], layout: Layout, listed: bool| {
        let places: Vec<Place> = nodes
            .iter()
            .map(|&i| home(&fleet.nodes[i], layout).place)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let texts = match listed {
            true => store.pull(&places)?,
            false => store.read(&places)?,
        };
        Ok::<_, MigrateError>(
            places
                .into_iter()
                .zip(texts)
                .filter_map(|(p, t)| Some((p, t?)))
                .collect::<BTreeMap<Place, Vec<u8>>>(),
        )
    };
    if layout == Layout::Stacks && !candidates.is_empty() {
        let stacks: BTreeMap<Place, State> = read(&candidates, Layout::Stacks, false)
            .map_err(failed)?
            .into_iter()
            .filter_map(|(p, t)| Some((p.clone(), State::parse(t, "", Layout::Stacks).ok()?)))
            .collect();
        // A node its stack holds is where orch.yaml says; an unreadable stack proves nothing.
        let held: BTreeSet<usize> = candidates
            .iter()
            .copied()
            .filter(|&i| {
                let at = home(&fleet.nodes[i], Layout::Stacks);
                stacks
                    .get(&at.place)
                    .is_some_and(|s| !s.managed_of(at.module.as_deref()).is_empty())
            })
            .collect();
        candidates.retain(|i| !held.contains(i));
    }
    let found = if candidates.is_empty() {
        Vec::new()
    } else {
        let texts = read(&candidates, other(layout), true).map_err(failed)?;
        stranded(fleet, &store, &candidates, other(layout), texts)
    };
    let pulled = store.pulls.load(std::sync::atomic::Ordering::Relaxed);
    say!(
        "layout guard: states of the {} layout listed, {pulled} state(s) pulled in {:.1}s",
        name(other(layout)),
        started.elapsed().as_secs_f64()
    );
    if found.is_empty() {
        Ok(())
    } else {
        Err(GuardError::Refused(refusal(fleet, found)))
    }
}

/// The error of a guard that found `found` (node, where) in the other layout.
fn refusal(fleet: &Fleet, found: Vec<(String, String)>) -> Diagnostic {
    let layout = fleet.settings.layout;
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
    Diagnostic::at_path(fleet.live.join("orch.yaml"), message).with_help(format!(
        "run `orch layout migrate` to move it to the {} layout (a plan now would create those resources again), or set `layout: {}` back",
        name(layout),
        name(other(layout))
    ))
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
/// `auto_approve`. `remote` reaches the buckets when state is in S3. The caller holds the tree
/// lock. Returns the exit code.
pub fn execute(
    fleet: &Fleet,
    remote: Option<&Remote>,
    auto_approve: bool,
) -> Result<u8, MigrateError> {
    let state_dir = fleet.state_dir();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(io(&state_dir))?;
    let run_id = crate::run::run_id();
    runtime.block_on(async {
        let interrupt = crate::signal::listen();
        let redactor = Redactor::from_env();
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
        let local = Local {
            dir: state_dir.join("state"),
        };
        let s3 = remote.and_then(|r| S3::new(r, &redactor));
        let store: &dyn Store = match &s3 {
            Some(s3) => {
                let accounts: BTreeSet<&String> =
                    fleet.nodes.iter().map(|n| &n.address.account).collect();
                tokio::task::block_in_place(|| s3.remote.check_buckets(&s3.runner, accounts))
                .map_err(MigrateError::Unreadable)?;
                s3
            }
            None => &local,
        };
        let moved = tokio::task::block_in_place(|| {
            migrate(fleet, store, &run_id, &mut confirm, &interrupted)
        })?;
        Ok(match moved {
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
        })
    })
}

/// Moves the state of every node of the fleet that is in the other layout into the layout
/// orch.yaml names. `confirm` is asked once, after the moves are printed, whether to go on.
fn migrate(
    fleet: &Fleet,
    store: &dyn Store,
    run_id: &str,
    confirm: &mut dyn FnMut() -> Result<bool, MigrateError>,
    interrupted: &(dyn Fn() -> bool + Sync),
) -> Result<Outcome, MigrateError> {
    let layout = fleet.settings.layout;
    let homes = |layout| fleet.nodes.iter().map(|n| home(n, layout).place).collect();
    let sources = States::load(store, other(layout), homes(other(layout)))?;
    let destinations = States::load(store, layout, homes(layout))?;
    let moves = plan(fleet, store, &sources, &destinations)?;
    let resources: usize = moves.iter().map(|m| m.resources.len()).sum();
    if moves.is_empty() {
        say!(
            "nothing to move: no node of this tree has state in the {} layout",
            name(other(layout))
        );
        return Ok(Outcome::Nothing);
    }
    let touched: Vec<&Place> = moves
        .iter()
        .flat_map(|m| [&m.from.place, &m.to.place])
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    store.check_locks(&touched)?;
    let mut text = format!(
        "move the state of {} node(s), {resources} resource(s), from the {} layout to the {} layout:\n",
        moves.len(),
        name(other(layout)),
        name(layout)
    );
    for m in &moves {
        let at = |h: &Home| match &h.module {
            Some(module) => format!("{} ({module})", store.show(&h.place)),
            None => store.show(&h.place),
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
    let backups = fleet.state_dir().join("migrations").join(run_id);
    for place in &touched {
        let state = sources.get(place).or_else(|| destinations.get(place));
        if let Some(state) = state {
            back_up(&backups, place, &state.text)?;
        }
    }
    say!("backed up every state it changes to {}", backups.display());
    let written = |place: &Place, r: Result<(), String>| {
        r.map_err(|why| MigrateError::Write {
            state: store.show(place),
            why,
            backups: backups.clone(),
        })
    };
    // Destinations first, each written whole and read back: until then every source is intact.
    let mut by_destination: BTreeMap<&Place, Vec<&Move>> = BTreeMap::new();
    for m in moves.iter().filter(|m| !m.arrived) {
        by_destination.entry(&m.to.place).or_default().push(m);
    }
    let arriving: Vec<(&Place, Vec<&Move>)> = by_destination.into_iter().collect();
    let whole = write_all(store, &arriving, interrupted, |(place, arriving)| {
        let base = destinations.get(place);
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
        written(place, store.write(place, &json))
    })?;
    if !whole {
        return Ok(Outcome::Interrupted);
    }
    let arrived: Vec<Place> = arriving.iter().map(|(p, _)| (*p).clone()).collect();
    let back = States::load(store, layout, arrived)?;
    for m in moves.iter().filter(|m| !m.arrived) {
        let found = back
            .get(&m.to.place)
            .map(|s| sorted(s.managed_of(m.to.module.as_deref())));
        if found != Some(sorted(m.resources.clone())) {
            return Err(MigrateError::Verify {
                state: store.show(&m.to.place),
                address: m.address.clone(),
                backups,
            });
        }
    }
    // Only now the sources: each keeps what is not moved (a module of a node no longer in the
    // tree), or is cleared when nothing managed is left.
    let mut by_source: BTreeMap<&Place, Vec<&Move>> = BTreeMap::new();
    for m in &moves {
        by_source.entry(&m.from.place).or_default().push(m);
    }
    let leaving: Vec<(&Place, Vec<&Move>)> = by_source.into_iter().collect();
    let whole = write_all(store, &leaving, interrupted, |(place, leaving)| {
        let state = sources
            .get(place)
            .expect("a source holds the moved resources");
        let gone: BTreeSet<Option<&str>> =
            leaving.iter().map(|m| m.from.module.as_deref()).collect();
        let kept: Vec<Value> = state
            .resources()
            .iter()
            .filter(|r| !gone.contains(&r.get("module").and_then(Value::as_str)))
            .cloned()
            .collect();
        let mut json = state.json.clone();
        bump(&mut json, false);
        if kept.iter().any(|r| r["mode"] == "managed") {
            json.insert("resources".into(), Value::Array(kept));
            if let Some(outputs) = json.get_mut("outputs").and_then(Value::as_object_mut) {
                for module in gone.iter().flatten() {
                    outputs.shift_remove(output_name(module));
                }
            }
            written(place, store.write(place, &json))?;
            say!(
                "{} keeps resources of modules that are no node of this tree",
                store.show(place)
            );
            Ok(())
        } else {
            json.insert("resources".into(), Value::Array(Vec::new()));
            json.insert("outputs".into(), Value::Object(Map::new()));
            written(place, store.clear(place, &json))
        }
    })?;
    if !whole {
        return Ok(Outcome::Interrupted);
    }
    Ok(Outcome::Moved {
        nodes: moves.len(),
        resources,
    })
}

/// Runs `write` on each of `items`, as many at once as the store takes; once `interrupted`, no
/// more start. Ok(false) when it stopped there; the first error of an item otherwise, after the
/// others have ended (each state is written whole or not at all).
fn write_all<T: Sync>(
    store: &dyn Store,
    items: &[T],
    interrupted: &(dyn Fn() -> bool + Sync),
    write: impl Fn(&T) -> Result<(), MigrateError> + Sync,
) -> Result<bool, MigrateError> {
    let done = remote::parallel(items, store.parallelism(), |item| {
        if interrupted() {
            return Ok(false);
        }
        write(item).map(|()| true)
    });
    let mut whole = true;
    for result in done {
        whole &= result?;
    }
    if !whole {
        say!("interrupted: stopped between two states; run `orch layout migrate` again to finish the move");
    }
    Ok(whole)
}

/// Every node with managed resources in the other layout, checked; nothing is written.
fn plan(
    fleet: &Fleet,
    store: &dyn Store,
    sources: &States,
    destinations: &States,
) -> Result<Vec<Move>, MigrateError> {
    let mut moves = Vec::new();
    for node in &fleet.nodes {
        let from = home(node, sources.layout);
        let Some(source) = sources.get(&from.place) else {
            continue;
        };
        let managed = source.managed_of(from.module.as_deref());
        if managed.is_empty() {
            continue;
        }
        let to = home(node, destinations.layout);
        let resources: Vec<Value> = managed
            .iter()
            .map(|r| rewrite(r, from.module.as_deref(), to.module.as_deref()))
            .collect();
        let there = destinations
            .get(&to.place)
            .map(|s| s.managed_of(to.module.as_deref()))
            .unwrap_or_default();
        let arrived = !there.is_empty();
        if arrived && sorted(there) != sorted(resources.clone()) {
            return Err(MigrateError::Conflict {
                address: node.address.to_string(),
                from: store.show(&from.place),
                to: store.show(&to.place),
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
        .filter_map(|m| sources.get(&m.from.place))
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

/// Saves `text`, the state at `place` before the move, as `backups/<name>/terraform.tfstate`,
/// durable before any state changes.
fn back_up(backups: &Path, place: &Place, text: &[u8]) -> Result<(), MigrateError> {
    let copy = backups.join(&place.name).join("terraform.tfstate");
    let dir = copy.parent().expect("a file is in a directory");
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&copy)
        .map_err(io(&copy))?;
    out.write_all(text)
        .and_then(|()| out.sync_all())
        .map_err(io(&copy))?;
    sync_dir(dir)
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
