//! The `per-node` layout: one root module and one state per node, under
//! `.orch/work/<address>/`, its state named after its address.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::watch;

use super::{Events, Home, Layout, Placement};
use crate::config::Node;
use crate::graph::Dag;
use crate::render::{RenderError, Renderer, TemplateCache, WriteStats};
use crate::scheduler::{self, Options};
use crate::terraform::workflow::{work_dir, Context, TerraformExecutor};

pub struct PerNode;

impl Placement for PerNode {
    fn name(&self) -> &'static str {
        "per-node"
    }

    fn home(&self, node: &Node) -> Home {
        Home::of(node, node.address.to_string(), None)
    }

    /// A node's own root module holds its resources directly.
    fn fits(&self, module: Option<&str>) -> bool {
        module.is_none()
    }

    fn node_outputs(&self, _: &Node, state: Option<&str>) -> Option<String> {
        state.map(String::from)
    }

    fn explain(&self, _: &Node) -> Option<String> {
        None
    }
}

impl Layout for PerNode {
    fn placement(&self) -> &'static dyn Placement {
        &PerNode
    }

    fn summary(&self) -> String {
        String::new()
    }

    fn render(
        &self,
        renderer: &Renderer,
        nodes: &BTreeSet<usize>,
    ) -> Result<WriteStats, RenderError> {
        renderer.render_all(&nodes.iter().copied().collect::<Vec<_>>())
    }

    fn fingerprints(
        &self,
        renderer: &Renderer,
        version: &str,
        nodes: &BTreeSet<usize>,
    ) -> Result<BTreeMap<usize, String>, RenderError> {
        let fleet = renderer.fleet;
        let mut cache = TemplateCache::default();
        nodes
            .iter()
            .map(|&i| {
                let node = &fleet.nodes[i];
                let rendered = renderer.render(node, &mut cache)?;
                let dir = work_dir(fleet, node);
                Ok((
                    i,
                    crate::fingerprint::compute(fleet, node, &rendered.files, &dir, version),
                ))
            })
            .collect()
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
        let executor = Arc::new(TerraformExecutor { context });
        Box::pin(scheduler::run(
            dag, selected, options, executor, events, stop,
        ))
    }
}
