//! Runs a set of DAG nodes through an [`Executor`]: a node starts the moment its dependencies
//! have succeeded (no level-by-level waiting), at most `parallelism` at a time, critical path
//! first. A failed node's dependents are skipped; independent nodes go on, unless `fail_fast`.
//! Knows nothing of Terraform: it sees node indexes, and results that succeeded or did not.

use std::collections::{BTreeSet, BinaryHeap};
use std::future::Future;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::graph::Dag;

/// The work done for one node.
pub trait Executor: Send + Sync + 'static {
    type Output: Send + 'static;
    fn run(&self, node: usize) -> impl Future<Output = Self::Output> + Send;
    fn succeeded(output: &Self::Output) -> bool;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Dependencies first (plan, apply).
    Forward,
    /// Dependents first (destroy).
    Reverse,
}

#[derive(Clone, Debug)]
pub struct Options {
    pub parallelism: usize,
    pub fail_fast: bool,
    pub direction: Direction,
}

/// What the scheduler tells the reporter, as it happens.
#[derive(Debug)]
pub enum Event<O> {
    Started {
        node: usize,
    },
    Finished {
        node: usize,
        output: O,
    },
    /// Not run because `cause` (a node it depends on) failed or was skipped itself.
    Skipped {
        node: usize,
        cause: usize,
    },
    /// Not run because the run was interrupted or stopped by `--fail-fast`.
    NotStarted {
        node: usize,
    },
}

/// Runs `selected` (indexes into the fleet) and returns once every node has an outcome. Nodes
/// outside `selected` count as done: filters run a part of the graph against the rest as it is.
pub async fn run<E: Executor>(
    dag: &Dag,
    selected: &BTreeSet<usize>,
    options: &Options,
    executor: Arc<E>,
    events: mpsc::UnboundedSender<Event<E::Output>>,
    mut stop: watch::Receiver<bool>,
) {
    let n = dag.graph.node_count();
    let upstream = |i: usize| -> Vec<usize> {
        match options.direction {
            Direction::Forward => dag
                .dependencies(i)
                .filter(|d| selected.contains(d))
                .collect(),
            Direction::Reverse => dag.dependents(i).filter(|d| selected.contains(d)).collect(),
        }
    };
    let downstream = |i: usize| -> Vec<usize> {
        match options.direction {
            Direction::Forward => dag.dependents(i).filter(|d| selected.contains(d)).collect(),
            Direction::Reverse => dag
                .dependencies(i)
                .filter(|d| selected.contains(d))
                .collect(),
        }
    };
    let priority = critical_path_lengths(dag, selected, options.direction, &downstream);
    let mut waiting_on = vec![0usize; n];
    let mut ready = BinaryHeap::new();
    for &i in selected {
        waiting_on[i] = upstream(i).len();
        if waiting_on[i] == 0 {
            ready.push((priority[i], std::cmp::Reverse(i)));
        }
    }
    let mut done = vec![false; n];
    let mut running = JoinSet::new();
    let mut stopping = *stop.borrow();
    let parallelism = options.parallelism.max(1);
    loop {
        while !stopping && running.len() < parallelism {
            let Some((_, std::cmp::Reverse(i))) = ready.pop() else {
                break;
            };
            let _ = events.send(Event::Started { node: i });
            let executor = executor.clone();
            running.spawn(async move { (i, executor.run(i).await) });
        }
        if running.is_empty() {
            break;
        }
        tokio::select! {
            joined = running.join_next() => {
                let Some(joined) = joined else { continue };
                let (i, output) = joined.expect("a node task panicked");
                done[i] = true;
                let ok = E::succeeded(&output);
                let _ = events.send(Event::Finished { node: i, output });
                if ok {
                    for d in downstream(i) {
                        waiting_on[d] -= 1;
                        if waiting_on[d] == 0 {
                            ready.push((priority[d], std::cmp::Reverse(d)));
                        }
                    }
                } else {
                    skip_downstream(i, &downstream, &mut done, &events);
                    stopping |= options.fail_fast;
                }
            }
            changed = stop.changed(), if !stopping => {
                stopping = changed.is_err() || *stop.borrow();
            }
        }
    }
    for &i in selected {
        if !done[i] {
            let _ = events.send(Event::NotStarted { node: i });
        }
    }
}

/// Marks everything downstream of a failed node as skipped, each with the node that caused it.
fn skip_downstream<O>(
    failed: usize,
    downstream: &dyn Fn(usize) -> Vec<usize>,
    done: &mut [bool],
    events: &mpsc::UnboundedSender<Event<O>>,
) {
    let mut stack = vec![failed];
    while let Some(cause) = stack.pop() {
        for d in downstream(cause) {
            if !done[d] {
                done[d] = true;
                let _ = events.send(Event::Skipped { node: d, cause });
                stack.push(d);
            }
        }
    }
}

/// For each node, the number of nodes on the longest chain it starts: running long chains first
/// keeps the makespan close to the ideal when parallelism is the bottleneck.
fn critical_path_lengths(
    dag: &Dag,
    selected: &BTreeSet<usize>,
    direction: Direction,
    downstream: &dyn Fn(usize) -> Vec<usize>,
) -> Vec<usize> {
    let mut length = vec![0usize; dag.graph.node_count()];
    let order = dag.order.iter().copied().filter(|i| selected.contains(i));
    // Visit the far end of every chain first: dependents before dependencies when running
    // forward, the other way round for destroy.
    let sequence: Vec<usize> = match direction {
        Direction::Forward => order.rev().collect(),
        Direction::Reverse => order.collect(),
    };
    for i in sequence {
        length[i] = 1 + downstream(i).iter().map(|d| length[*d]).max().unwrap_or(0);
    }
    length
}
