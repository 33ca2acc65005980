//! The `stacks` layout (DESIGN §9): which stack each node belongs to, the stack graph, and its
//! check. A stack is one account, one region and one tier (primary keys, replicas, consumers),
//! so a stack's identity depends only on the node itself, never on the rest of the graph: a new
//! cross-account access moves no state. Splitting by tier makes the graph of stacks acyclic by
//! construction (keys before replicas before consumers); only `depends_on` can still close a
//! cycle, which is a validate error naming the edges.

mod exec;
mod plan_text;
mod render;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use petgraph::algo::tarjan_scc;
use petgraph::graph::DiGraph;
use serde_json::json;
use tokio::sync::watch;

use super::{Events, Home, Layout, Placement};
use crate::config::{Fleet, Node, NodeKind};
use crate::diag::Diagnostic;
use crate::graph::{Dag, Edge};
use crate::render::{RenderError, Renderer, TemplateCache, WriteStats};
use crate::scheduler::Options;
use crate::terraform::workflow::Context;

/// The directory name under `.orch/work/` and `.orch/state/` that holds the stacks. Node names
/// cannot start with `_`, so it never clashes with an account's directory.
pub const STACKS_DIR: &str = "_stacks";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tier {
    Keys,
    Replicas,
    Consumers,
}

impl Tier {
    pub fn of(node: &Node) -> Tier {
        match node.kind {
            NodeKind::Key(_) => Tier::Keys,
            NodeKind::Replica(_) => Tier::Replicas,
            NodeKind::Grant(_)
            | NodeKind::KeyAccess(_)
            | NodeKind::S3Bucket(_)
            | NodeKind::Custom(_) => Tier::Consumers,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Tier::Keys => "keys",
            Tier::Replicas => "replicas",
            Tier::Consumers => "consumers",
        }
    }
}

/// The state of the stack that holds `node`, `_stacks/<account>/<region>/<tier>`: its path
/// under `.orch/state/`, or under the key prefix in S3.
pub fn state_name(node: &Node) -> String {
    let a = &node.address;
    format!(
        "{STACKS_DIR}/{}/{}/{}",
        a.account,
        a.region,
        Tier::of(node).name()
    )
}

/// One root module and state: the nodes of one account, region and tier.
#[derive(Clone, Debug)]
pub struct Stack {
    pub account: String,
    pub region: String,
    pub tier: Tier,
    /// Fleet indexes of its nodes, in address order.
    pub members: Vec<usize>,
}

impl fmt::Display for Stack {
    /// `<account>/<region>/<tier>`: the stack's address, and its path under `_stacks/`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.account, self.region, self.tier.name())
    }
}

/// The module block of a node: its name, with `_` first when the name starts with a digit
/// (an HCL identifier cannot). Node names are `[a-z0-9][a-z0-9_-]*`, so nothing else is needed.
pub fn module_name(node: &Node) -> String {
    let name = &node.address.name;
    if name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        name.clone()
    } else {
        format!("_{name}")
    }
}

/// Every stack of a fleet and the graph between them.
pub struct Stacks {
    pub stacks: Vec<Stack>,
    /// For each fleet index, the index of its stack.
    pub of_node: Vec<usize>,
    /// The quotient of the node DAG: an edge from a stack to a stack that depends on it.
    pub dag: Dag,
}

impl Stacks {
    /// Groups the nodes into stacks; a cycle between stacks is an error naming every node edge
    /// that closes it, with the file:line that declares it.
    pub fn build(fleet: &Fleet, nodes: &Dag) -> Result<Stacks, Vec<Diagnostic>> {
        let mut grouped: BTreeMap<(&str, &str, Tier), Vec<usize>> = BTreeMap::new();
        for (i, node) in fleet.nodes.iter().enumerate() {
            let a = &node.address;
            grouped
                .entry((a.account.as_str(), a.region.as_str(), Tier::of(node)))
                .or_default()
                .push(i);
        }
        let mut of_node = vec![0; fleet.nodes.len()];
        let stacks: Vec<Stack> = grouped
            .into_iter()
            .enumerate()
            .map(|(s, ((account, region, tier), members))| {
                members.iter().for_each(|&i| of_node[i] = s);
                Stack {
                    account: account.to_string(),
                    region: region.to_string(),
                    tier,
                    members,
                }
            })
            .collect();
        let mut graph = DiGraph::with_capacity(stacks.len(), stacks.len());
        for s in 0..stacks.len() {
            graph.add_node(s);
        }
        let crossing: Vec<(usize, usize, Edge)> = nodes
            .edges()
            .filter(|(from, to, _)| of_node[*from] != of_node[*to])
            .collect();
        let mut linked = BTreeSet::new();
        for (from, to, edge) in &crossing {
            if linked.insert((of_node[*from], of_node[*to])) {
                graph.add_edge(
                    petgraph::graph::NodeIndex::new(of_node[*from]),
                    petgraph::graph::NodeIndex::new(of_node[*to]),
                    *edge,
                );
            }
        }
        let cycles = cycles(fleet, &stacks, &of_node, &graph, &crossing);
        match Dag::from_graph(graph) {
            Some(dag) if cycles.is_empty() => Ok(Stacks {
                stacks,
                of_node,
                dag,
            }),
            _ => Err(cycles),
        }
    }

    /// The stacks holding any of `nodes`.
    pub fn holding(&self, nodes: &BTreeSet<usize>) -> BTreeSet<usize> {
        nodes.iter().map(|&i| self.of_node[i]).collect()
    }
}

/// Where the stacks layout keeps a node: module block `module.<name>` of its stack's state.
pub struct Stacked;

impl Placement for Stacked {
    fn name(&self) -> &'static str {
        "stacks"
    }

    fn home(&self, node: &Node) -> Home {
        Home::of(
            node,
            state_name(node),
            Some(format!("module.{}", module_name(node))),
        )
    }

    /// A stack holds one module block per node, nothing nested, nothing at its root.
    fn fits(&self, module: Option<&str>) -> bool {
        module
            .and_then(|m| m.strip_prefix("module."))
            .is_some_and(|name| {
                !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            })
    }

    /// The stack has one output per module block, whose value holds the node's outputs.
    fn node_outputs(&self, node: &Node, state: Option<&str>) -> Option<String> {
        module_outputs(state, &module_name(node))
    }

    fn explain(&self, node: &Node) -> Option<String> {
        Some(format!(
            "layout stacks: module.{} of stack {}/{}/{} (one root module and state)",
            module_name(node),
            node.address.account,
            node.address.region,
            Tier::of(node).name()
        ))
    }
}

/// A node's outputs in the `terraform output -json` form, from its stack's outputs. None when
/// the stack's state lacks the node (not applied yet).
fn module_outputs(stack: Option<&str>, module: &str) -> Option<String> {
    let all: serde_json::Value = serde_json::from_str(stack?).ok()?;
    let own: serde_json::Map<String, serde_json::Value> = all[module]["value"]
        .as_object()?
        .iter()
        .map(|(k, v)| (k.clone(), json!({ "value": v })))
        .collect();
    (!own.is_empty()).then(|| serde_json::Value::Object(own).to_string() + "\n")
}

/// The stacks layout built for one tree: its stacks and the graph between them.
pub struct StacksLayout {
    stacks: Arc<Stacks>,
}

impl StacksLayout {
    pub fn build(fleet: &Fleet, dag: &Dag) -> Result<StacksLayout, Vec<Diagnostic>> {
        Ok(StacksLayout {
            stacks: Arc::new(Stacks::build(fleet, dag)?),
        })
    }
}

impl Layout for StacksLayout {
    fn placement(&self) -> &'static dyn Placement {
        &Stacked
    }

    fn summary(&self) -> String {
        format!(" ({} stacks)", self.stacks.stacks.len())
    }

    /// Each stack holding one of `nodes` whole, whatever part of it is selected, since
    /// terraform plans a stack's root module as a whole.
    fn render(
        &self,
        renderer: &Renderer,
        nodes: &BTreeSet<usize>,
    ) -> Result<WriteStats, RenderError> {
        renderer.render_stacks(&self.stacks, &self.stacks.holding(nodes))
    }

    /// Each stack holding one of `nodes` rendered once, its members fingerprinted in it.
    fn fingerprints(
        &self,
        renderer: &Renderer,
        version: &str,
        nodes: &BTreeSet<usize>,
    ) -> Result<BTreeMap<usize, String>, RenderError> {
        let mut cache = TemplateCache::default();
        let mut out = BTreeMap::new();
        for s in self.stacks.holding(nodes) {
            let stack = &self.stacks.stacks[s];
            let rendered = renderer.render_stack(stack, &mut cache)?;
            let unit = exec::Unit::of(&rendered, renderer, stack);
            for &i in stack.members.iter().filter(|i| nodes.contains(i)) {
                out.insert(i, unit.fingerprint(renderer.fleet, i, version));
            }
        }
        Ok(out)
    }

    fn schedule<'a>(
        &'a self,
        dag: &'a Dag,
        selected: &'a BTreeSet<usize>,
        options: &'a Options,
        context: Arc<Context>,
        events: Events,
        stop: watch::Receiver<bool>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        let _ = dag;
        Box::pin(exec::schedule(
            self.stacks.clone(),
            selected,
            options,
            context,
            events,
            stop,
        ))
    }
}

/// One error per strongly connected set of stacks, naming every node edge between them.
fn cycles(
    fleet: &Fleet,
    stacks: &[Stack],
    of_node: &[usize],
    graph: &DiGraph<usize, Edge>,
    crossing: &[(usize, usize, Edge)],
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for scc in tarjan_scc(graph) {
        if scc.len() < 2 {
            continue;
        }
        let members: BTreeSet<usize> = scc.iter().map(|n| graph[*n]).collect();
        let edges: Vec<&(usize, usize, Edge)> = crossing
            .iter()
            .filter(|(from, to, _)| {
                members.contains(&of_node[*from]) && members.contains(&of_node[*to])
            })
            .collect();
        let names: Vec<String> = members.iter().map(|s| stacks[*s].to_string()).collect();
        let mut d = Diagnostic::error(
            edges[0].2.span,
            format!(
                "the stacks layout needs an order between stacks, and these depend on each other: {}",
                names.join(", ")
            ),
        )
        .with_help(
            "stacks are split by account, region and tier (keys, replicas, consumers); a `depends_on` between nodes of two stacks orders the whole stacks, so remove one of these dependencies or use `layout: per-node`",
        );
        for (from, to, edge) in edges {
            d = d.with_note(
                edge.span,
                format!(
                    "{} -> {} (stack {} -> stack {})",
                    fleet.nodes[*from].address,
                    fleet.nodes[*to].address,
                    stacks[of_node[*from]],
                    stacks[of_node[*to]]
                ),
            );
        }
        out.push(d);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::module_outputs;

    #[test]
    fn a_node_reads_its_own_module_block_of_its_stacks_outputs() {
        let stack = r#"{"data": {"sensitive": true, "type": ["object", {}], "value": {"key_arn": "arn:aws:kms:us-east-1:111111111111:key/k", "key_id": "k"}},
                        "_2fa": {"sensitive": true, "value": {"key_id": "j"}}}"#;
        let data: serde_json::Value =
            serde_json::from_str(&module_outputs(Some(stack), "data").unwrap()).unwrap();
        assert_eq!(
            data,
            serde_json::json!({"key_arn": {"value": "arn:aws:kms:us-east-1:111111111111:key/k"}, "key_id": {"value": "k"}})
        );
        assert!(module_outputs(Some(stack), "_2fa")
            .unwrap()
            .contains("\"j\""));
        // Not in the stack's state yet, or no state at all: not applied.
        assert_eq!(module_outputs(Some(stack), "other"), None);
        assert_eq!(module_outputs(None, "data"), None);
    }
}
