//! Layouts (DESIGN §9, §11): how the nodes of a fleet map onto terraform root modules and
//! states. Two implementations of one interface: [`per_node`] (a root and a state per node) and
//! [`stacks`] (a root and a state per account, region and tier, each node a module block in it).
//! The only module that knows which one orch.yaml chose: the engine, rollout, migrate and the
//! commands hold a [`Layout`] or a [`Placement`] and never ask which it is.

mod outputs;
mod per_node;
pub mod stacks;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use crate::config::{Fleet, Layout as Chosen, Node};
use crate::diag::Diagnostic;
use crate::graph::Dag;
use crate::render::{RenderError, Renderer, WriteStats};
use crate::scheduler::{Event, Options};
use crate::state::Place;
use crate::terraform::workflow::{Context, NodeRun};

pub use outputs::read_dependency_outputs;

/// Where one node's resources are kept in one layout.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Home {
    pub place: Place,
    /// `module.<name>` in a stack's state; `None` in a node's own state (its root module).
    pub module: Option<String>,
}

impl Home {
    /// `node`'s resources in the state `name` of its account, at `module` (None: the root).
    pub fn of(node: &Node, name: String, module: Option<String>) -> Home {
        Home {
            place: Place {
                name,
                account: node.address.account.clone(),
            },
            module,
        }
    }
}

/// Where a layout keeps each node's resources: all it takes to find, read and move a node's
/// state, without the graph (`orch layout migrate` looks at both layouts).
pub trait Placement: Sync {
    /// The layout's name in orch.yaml: `per-node` or `stacks`.
    fn name(&self) -> &'static str;
    /// The state that holds `node`'s resources, and the module within it.
    fn home(&self, node: &Node) -> Home;
    /// Whether a resource at `module` (None: the root module) is where this layout puts
    /// resources: a state that has one elsewhere is not one orch wrote for this layout.
    fn fits(&self, module: Option<&str>) -> bool;
    /// A node's outputs (`terraform output -json` form) from the outputs of its home state;
    /// None when the state lacks them: the node is not applied.
    fn node_outputs(&self, node: &Node, state: Option<&str>) -> Option<String>;
    /// What `orch explain` says of where the node runs, if anything.
    fn explain(&self, node: &Node) -> Option<String>;
}

/// Node events out of a layout's run: what the reporter and a rollout's journal see.
pub type Events = mpsc::UnboundedSender<Event<NodeRun>>;

/// A layout built for one tree: the units a selection runs in, rendering them, running them.
pub trait Layout: Send + Sync {
    fn placement(&self) -> &'static dyn Placement;
    /// What `orch validate` adds to its summary line (` (12 stacks)`).
    fn summary(&self) -> String;
    /// Renders and writes the units holding `nodes` into `.orch/work/`.
    fn render(
        &self,
        renderer: &Renderer,
        nodes: &BTreeSet<usize>,
    ) -> Result<WriteStats, RenderError>;
    /// The fingerprint (`crate::fingerprint`) of each of `nodes` as it would run now in this
    /// layout, for `--changed`.
    fn fingerprints(
        &self,
        renderer: &Renderer,
        version: &str,
        nodes: &BTreeSet<usize>,
    ) -> Result<BTreeMap<usize, String>, RenderError>;
    /// Runs the units holding `selected` through the scheduler, in DAG order (reversed for
    /// destroy), and tells `events` about nodes only: each selected node gets its own start,
    /// end, skip or stop, whatever unit it ran in.
    fn schedule<'a>(
        &'a self,
        dag: &'a Dag,
        selected: &'a BTreeSet<usize>,
        options: &'a Options,
        context: Arc<Context>,
        events: Events,
        stop: watch::Receiver<bool>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>>;
}

/// The layout orch.yaml names, built for `fleet`; Err with the diagnostics of a tree the layout
/// cannot hold (stacks that depend on each other).
pub fn build(fleet: &Fleet, dag: &Dag) -> Result<Box<dyn Layout>, Vec<Diagnostic>> {
    Ok(match fleet.settings.layout {
        Chosen::PerNode => Box::new(per_node::PerNode),
        Chosen::Stacks => Box::new(stacks::StacksLayout::build(fleet, dag)?),
    })
}

/// The placement of the layout orch.yaml names.
pub fn current(fleet: &Fleet) -> &'static dyn Placement {
    placement(fleet.settings.layout)
}

/// The placement of the layout orch.yaml does not name: where a node's state is before
/// `orch layout migrate` moves it.
pub fn other(fleet: &Fleet) -> &'static dyn Placement {
    placement(match fleet.settings.layout {
        Chosen::PerNode => Chosen::Stacks,
        Chosen::Stacks => Chosen::PerNode,
    })
}

fn placement(chosen: Chosen) -> &'static dyn Placement {
    match chosen {
        Chosen::PerNode => &per_node::PerNode,
        Chosen::Stacks => &stacks::Stacked,
    }
}
