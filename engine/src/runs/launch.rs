//! What the front doors show around a run, decided once for the UI and the JSON API: the
//! launch form of a module version (its nodes, inputs and connectors) and the links between
//! a deployment's nodes for the run page's graph.

use model::run::{LaunchInput, LaunchNode, LaunchSpec, NodeLink};
use model::{ModulePath, User};

use super::plan::{has_recipes, NodeSpec, DEFAULT_CONNECTOR};
use crate::access::Op;
use crate::{Engine, Error, Result};

impl Engine {
    /// The launch form of `module` at `version` (latest when `None`).
    pub async fn launch_spec(&self, actor: Option<&User>, module: &str, version: Option<u32>) -> Result<LaunchSpec> {
        let user = actor.ok_or_else(|| Error::Unauthorized("sign in to deploy".into()))?;
        let path = ModulePath::parse(module).map_err(|e| Error::invalid(module, "module", e))?;
        let meta = self.meta_for(actor, &path, Op::Read).await?;
        let m = self.read_version(&meta, version).await?;
        let version = m.version.unwrap_or(meta.latest_version);
        let profile = self.profile(user).await?;
        let mut nodes = Vec::new();
        for spec in NodeSpec::of_module(&m, version)? {
            let resolved = self.resolve_image(actor, &spec.node.image).await?;
            let inputs = resolved
                .inputs()
                .map(|p| LaunchInput {
                    name: p.name.clone(),
                    value: spec.node.values.get(&p.name).cloned().or_else(|| p.default.clone()).unwrap_or_default(),
                    description: p.description.clone(),
                    kind: p.kind,
                    values: p.values.clone(),
                    linked: spec.node.links.get(&p.name).cloned(),
                })
                .collect();
            let connector = spec.node.connector.clone().unwrap_or_else(|| DEFAULT_CONNECTOR.into());
            let built_on = self.built_connectors(&resolved).await?;
            nodes.push(LaunchNode {
                name: spec.name,
                multiplicity: spec.node.multiplicity,
                connector,
                inputs,
                image: resolved.chain.last().map(|l| l.path.clone()).unwrap_or_default(),
                has_recipes: has_recipes(&resolved.chain),
                built_on,
            });
        }
        Ok(LaunchSpec {
            module: m.path.clone(),
            version,
            latest_version: meta.latest_version,
            keep_running: profile.keep_running,
            connectors: self.connector_names(),
            nodes,
        })
    }

    /// The links between the nodes of the deployment a run deployed (at the version it
    /// deployed). Empty for a run of an image, or when the caller may no longer read the module.
    pub async fn node_links(&self, actor: Option<&User>, module: &str, version: u32) -> Vec<NodeLink> {
        let Ok(m) = self.get_module(actor, module, Some(version)).await else { return vec![] };
        let mut links = Vec::new();
        for (to, node) in &m.nodes {
            for (input, source) in &node.links {
                if let Some((from, output)) = source.split_once(':') {
                    links.push(NodeLink { from: from.to_string(), to: to.clone(), label: format!("{output} → {input}") });
                }
            }
        }
        links
    }
}
