//! The dependency DAG of a fleet (petgraph): an edge runs from a dependency to its dependent.
//! Primary -> replicas, key -> consumers, and `depends_on`. Knows the model, nothing of Terraform.

use std::collections::{BTreeSet, HashMap, VecDeque};

use petgraph::algo::{tarjan_scc, toposort};
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;
use petgraph::Direction;
use serde::Serialize;

use crate::config::{Address, Fleet, NodeKind};
use crate::diag::{Diagnostic, Span};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EdgeKind {
    Replica,
    Consumer,
    DependsOn,
}

impl EdgeKind {
    fn label(self) -> &'static str {
        match self {
            EdgeKind::Replica => "replica",
            EdgeKind::Consumer => "consumer",
            EdgeKind::DependsOn => "depends_on",
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Edge {
    pub kind: EdgeKind,
    /// Where the dependency is declared (`replica_of`, `replicas:`, `key:` or `depends_on`).
    pub span: Span,
}

/// The DAG: node weights are indexes into `fleet.nodes`.
pub struct Dag {
    pub graph: DiGraph<usize, Edge>,
    /// Fleet node indexes in a topological order (dependencies first, then by address).
    pub order: Vec<usize>,
}

impl Dag {
    /// Builds the DAG; a cycle is an error that names every edge of it with its file:line. Edges
    /// to nodes missing from a partial fleet are left out.
    pub fn build(fleet: &Fleet) -> Result<Dag, Vec<Diagnostic>> {
        let mut graph = DiGraph::with_capacity(fleet.nodes.len(), fleet.nodes.len());
        let index: HashMap<Address, NodeIndex> = fleet
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.address.clone(), graph.add_node(i)))
            .collect();
        for node in &fleet.nodes {
            let to = index[&node.address];
            let key_edge = node.key_ref().map(|key| {
                let kind = if matches!(node.kind, NodeKind::Replica(_)) {
                    EdgeKind::Replica
                } else {
                    EdgeKind::Consumer
                };
                (key, kind)
            });
            let dep_edges = node.depends_on.iter().map(|dep| (dep, EdgeKind::DependsOn));
            for (from, kind) in key_edge.into_iter().chain(dep_edges) {
                // The partial fleet of a tree with errors may name a node that did not load; that
                // reference has its error already, and the rest of the graph is still checked.
                let Some(&from_index) = index.get(&from.value) else {
                    continue;
                };
                graph.add_edge(
                    from_index,
                    to,
                    Edge {
                        kind,
                        span: from.span,
                    },
                );
            }
        }
        let mut dag = Dag {
            graph,
            order: Vec::new(),
        };
        if toposort(&dag.graph, None).is_err() {
            return Err(dag.cycles(fleet));
        }
        dag.order = dag.stable_order();
        Ok(dag)
    }

    /// A DAG over any indexed things (node weights are their indexes, `0..n` in insertion order),
    /// e.g. the stacks of the `stacks` layout; `None` when the graph has a cycle.
    pub fn from_graph(graph: DiGraph<usize, Edge>) -> Option<Dag> {
        toposort(&graph, None).ok()?;
        let mut dag = Dag {
            graph,
            order: Vec::new(),
        };
        dag.order = dag.stable_order();
        Some(dag)
    }

    /// Kahn's algorithm taking ready nodes in address order, so output never depends on hashing.
    fn stable_order(&self) -> Vec<usize> {
        let mut pending: Vec<usize> = self
            .graph
            .node_indices()
            .map(|n| {
                self.graph
                    .neighbors_directed(n, Direction::Incoming)
                    .count()
            })
            .collect();
        let mut ready: BTreeSet<usize> = self
            .graph
            .node_indices()
            .filter(|n| pending[n.index()] == 0)
            .map(|n| self.graph[n])
            .collect();
        let mut order = Vec::with_capacity(pending.len());
        while let Some(i) = ready.pop_first() {
            order.push(i);
            let n = NodeIndex::new(i);
            for next in self.graph.neighbors_directed(n, Direction::Outgoing) {
                pending[next.index()] -= 1;
                if pending[next.index()] == 0 {
                    ready.insert(self.graph[next]);
                }
            }
        }
        order
    }

    /// One diagnostic per strongly connected component: the cycle through it, edge by edge.
    fn cycles(&self, fleet: &Fleet) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        for scc in tarjan_scc(&self.graph) {
            let self_loop = scc.len() == 1 && self.graph.find_edge(scc[0], scc[0]).is_some();
            if scc.len() < 2 && !self_loop {
                continue;
            }
            let members: BTreeSet<NodeIndex> = scc.iter().copied().collect();
            let start = *members
                .iter()
                .min_by_key(|n| &fleet.nodes[self.graph[**n]].address)
                .expect("scc is not empty");
            let path = self.path_back(start, &members);
            let names: Vec<String> = path
                .iter()
                .map(|e| {
                    fleet.nodes[self.graph[self.graph.edge_endpoints(*e).expect("edge exists").0]]
                        .address
                        .to_string()
                })
                .chain(std::iter::once(
                    fleet.nodes[self.graph[start]].address.to_string(),
                ))
                .collect();
            let mut d = Diagnostic::error(
                self.graph[path[0]].span,
                format!("dependency cycle: {}", names.join(" -> ")),
            )
            .with_help("break the cycle by removing one of these dependencies");
            for e in &path {
                let (from, to) = self.graph.edge_endpoints(*e).expect("edge exists");
                let edge = self.graph[*e];
                d = d.with_note(
                    edge.span,
                    format!(
                        "{} -> {} ({})",
                        fleet.nodes[self.graph[from]].address,
                        fleet.nodes[self.graph[to]].address,
                        edge.kind.label()
                    ),
                );
            }
            out.push(d);
        }
        out
    }

    /// The shortest path of edges from `start` back to itself inside one component (BFS).
    fn path_back(
        &self,
        start: NodeIndex,
        members: &BTreeSet<NodeIndex>,
    ) -> Vec<petgraph::graph::EdgeIndex> {
        let mut parent: HashMap<NodeIndex, petgraph::graph::EdgeIndex> = HashMap::new();
        let mut queue = VecDeque::from([start]);
        while let Some(n) = queue.pop_front() {
            for e in self.graph.edges_directed(n, Direction::Outgoing) {
                let next = e.target();
                if !members.contains(&next) {
                    continue;
                }
                if next == start {
                    let mut path = vec![e.id()];
                    let mut at = n;
                    while at != start {
                        let via = parent[&at];
                        path.push(via);
                        at = self.graph.edge_endpoints(via).expect("edge exists").0;
                    }
                    path.reverse();
                    return path;
                }
                if let std::collections::hash_map::Entry::Vacant(slot) = parent.entry(next) {
                    slot.insert(e.id());
                    queue.push_back(next);
                }
            }
        }
        Vec::new()
    }

    /// The fleet indexes of a node's direct dependencies.
    pub fn dependencies(&self, node: usize) -> impl Iterator<Item = usize> + '_ {
        self.graph
            .neighbors_directed(NodeIndex::new(node), Direction::Incoming)
            .map(|n| self.graph[n])
    }

    /// The fleet indexes of the nodes that depend directly on a node.
    pub fn dependents(&self, node: usize) -> impl Iterator<Item = usize> + '_ {
        self.graph
            .neighbors_directed(NodeIndex::new(node), Direction::Outgoing)
            .map(|n| self.graph[n])
    }

    /// Adds every transitive dependency of the selected nodes.
    pub fn with_dependencies(&self, selected: &BTreeSet<usize>) -> BTreeSet<usize> {
        let mut out = selected.clone();
        let mut stack: Vec<usize> = selected.iter().copied().collect();
        while let Some(n) = stack.pop() {
            for dep in self.dependencies(n) {
                if out.insert(dep) {
                    stack.push(dep);
                }
            }
        }
        out
    }

    pub fn edges(&self) -> impl Iterator<Item = (usize, usize, Edge)> + '_ {
        self.graph
            .edge_references()
            .map(|e| (self.graph[e.source()], self.graph[e.target()], *e.weight()))
    }
}

/// The longest address glob orch accepts, on the command line or in a wave's `match`. Matching
/// is linear in the pattern, so this bounds the work of a typo, not of an attack on exponential
/// backtracking; 1,024 characters hold any real address (three names of at most 255) with room.
pub const MAX_GLOB_LEN: usize = 1024;

/// Why a glob is refused before any matching, or `None` when it is fine.
pub fn glob_problem(pattern: &str) -> Option<String> {
    let len = pattern.chars().count();
    (len > MAX_GLOB_LEN)
        .then(|| format!("the address glob is {len} characters long; the limit is {MAX_GLOB_LEN}"))
}

/// `prod/*/s3-*` style patterns: `*` and `?` within one path segment, `**` for any number of
/// segments. Runs in O(pattern × address) time whatever the pattern: see [`star_match`].
pub fn glob_match(pattern: &str, address: &str) -> bool {
    let pat: Vec<&str> = pattern.split('/').collect();
    let addr: Vec<&str> = address.split('/').collect();
    star_match(
        &pat,
        &addr,
        |p| *p == "**",
        |p, a| {
            star_match(
                p.as_bytes(),
                a.as_bytes(),
                |c| *c == b'*',
                |c, b| *c == b'?' || c == b,
            )
        },
    )
}

/// Wildcard matching where a star matches any run of units and every other atom exactly one. It
/// never backtracks past the latest star: a later star can absorb whatever an earlier one would
/// have, so only the latest one's extent is ever worth growing. Each unit of `text` is then
/// revisited at most once per atom of `pat`, which bounds the work by their product; the
/// recursive matcher this replaces was exponential in the number of stars. Used twice: over
/// segments (`**` the star) and, inside a segment, over bytes (`*` the star, `?` any byte).
fn star_match<P, T>(
    pat: &[P],
    text: &[T],
    is_star: impl Fn(&P) -> bool,
    one: impl Fn(&P, &T) -> bool,
) -> bool {
    let (mut p, mut t) = (0, 0);
    // After the latest star: the pattern index past it and where its match ends in `text`.
    let mut resume: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pat.len() && is_star(&pat[p]) {
            p += 1;
            resume = Some((p, t));
        } else if p < pat.len() && one(&pat[p], &text[t]) {
            p += 1;
            t += 1;
        } else if let Some((after, end)) = resume {
            p = after;
            t = end + 1;
            resume = Some((after, end + 1));
        } else {
            return false;
        }
    }
    pat[p..].iter().all(is_star)
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn globs() {
        assert!(glob_match("prod/*/s3-*", "prod/us-east-1/s3-data"));
        assert!(!glob_match("prod/*/s3-*", "dev/us-east-1/s3-data"));
        assert!(glob_match("prod/**", "prod/us-east-1/s3-data"));
        assert!(glob_match("**", "prod/us-east-1/s3-data"));
        assert!(glob_match("**/s3-data", "prod/us-east-1/s3-data"));
        assert!(!glob_match("prod/*", "prod/us-east-1/s3-data"));
        assert!(glob_match(
            "prod/us-east-?/s3-data",
            "prod/us-east-1/s3-data"
        ));
        assert!(glob_match("**/**/**", "prod/us-east-1/s3-data"));
        assert!(glob_match("prod/**/s3-data", "prod/us-east-1/s3-data"));
        assert!(glob_match("prod/us-east-1/**", "prod/us-east-1/s3-data"));
        assert!(!glob_match(
            "prod/us-east-1/s3-data/**/x",
            "prod/us-east-1/s3-data"
        ));
        assert!(glob_match("*/*/*", "prod/us-east-1/s3-data"));
        assert!(!glob_match("*/*", "prod/us-east-1/s3-data"));
        assert!(!glob_match("", "prod/us-east-1/s3-data"));
    }

    /// The recursive definition the linear matcher must agree with (exponential, so only for
    /// short inputs).
    fn reference(pat: &[&str], addr: &[&str]) -> bool {
        fn segment(pat: &[u8], text: &[u8]) -> bool {
            match pat.split_first() {
                None => text.is_empty(),
                Some((b'*', rest)) => (0..=text.len()).any(|skip| segment(rest, &text[skip..])),
                Some((b'?', rest)) => !text.is_empty() && segment(rest, &text[1..]),
                Some((c, rest)) => text.first() == Some(c) && segment(rest, &text[1..]),
            }
        }
        match pat.split_first() {
            None => addr.is_empty(),
            Some((&"**", rest)) => (0..=addr.len()).any(|skip| reference(rest, &addr[skip..])),
            Some((first, rest)) => addr.split_first().is_some_and(|(a, arest)| {
                segment(first.as_bytes(), a.as_bytes()) && reference(rest, arest)
            }),
        }
    }

    #[test]
    fn agrees_with_the_recursive_definition() {
        // A fixed pseudo-random walk over short patterns and addresses from a small alphabet, so
        // stars, `?`, `**` and empty segments meet in every combination.
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        let atoms = ["a", "b", "*", "?", "/", "**", "**/", "ab"];
        let units = ["a", "b", "/", "ab", "ba"];
        for _ in 0..20_000 {
            let pattern: String = (0..next(7)).map(|_| atoms[next(atoms.len())]).collect();
            let address: String = (0..next(7)).map(|_| units[next(units.len())]).collect();
            let pat: Vec<&str> = pattern.split('/').collect();
            let addr: Vec<&str> = address.split('/').collect();
            assert_eq!(
                glob_match(&pattern, &address),
                reference(&pat, &addr),
                "{pattern:?} against {address:?}"
            );
        }
    }
}
