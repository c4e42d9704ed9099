//! Planning a run, purely: the module being deployed (its nodes and their resolved images) and
//! the launch request's overrides become the run's plan — nodes with exact image versions and
//! scripts, instances, every runtime parameter with its initial value, and the links between
//! them. No I/O: [`super::create`] loads the modules, calls [`plan_run`] and writes the result.
//! Every problem names the field of the request or module it is about; sizes are checked
//! before anything proportional to them is built.

use std::collections::{BTreeMap, HashMap};

use model::run::{PlannedScript, RunRequest};
use model::validate::MAX_MULTIPLICITY;
use model::{ModuleKind, Node, RunState};
use serde::{Deserialize, Serialize};

use super::RESERVED_INSTANCE_PARAMS;
use crate::inherit::{Level, ResolvedImage};
use crate::{Error, Result};

/// Most instances one run may have.
pub const MAX_INSTANCES: i64 = 1000;
/// Parameter values in one run (every instance's parameters together).
pub const MAX_RUN_PARAMETERS: usize = 100_000;
/// The connector of a node that names none.
pub const DEFAULT_CONNECTOR: &str = "local";
/// The one node of a run of a single image.
pub const IMAGE_NODE: &str = "machine";

/// A node of the module being deployed, as declared.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeSpec {
    pub name: String,
    pub node: Node,
}

impl NodeSpec {
    /// The nodes a module deploys: a deployment's nodes, or one `machine` node for an image
    /// (at `version`).
    pub fn of_module(module: &model::Module, version: u32) -> Result<Vec<NodeSpec>> {
        match module.kind {
            ModuleKind::Deployment => {
                Ok(module.nodes.iter().map(|(name, node)| NodeSpec { name: name.clone(), node: node.clone() }).collect())
            }
            ModuleKind::Image => Ok(vec![NodeSpec {
                name: IMAGE_NODE.into(),
                node: Node { image: format!("{}@{version}", module.path), ..Default::default() },
            }]),
            ModuleKind::Project => {
                Err(Error::invalid(&module.path, "module", "a project cannot be deployed; choose a deployment or an image"))
            }
        }
    }
}

/// The parameters of a scalable run that say what a scaling does: `vm_create` or `vm_remove`,
/// the node, and its instances being added or removed (space-separated).
pub const SCALING_PARAMS: [&str; 3] = ["ss:scaling.action", "ss:scaling.node", "ss:scaling.vms"];

/// What [`plan_run`] works from.
pub struct PlanInput<'a> {
    /// Path of the module being deployed (errors name it).
    pub module: &'a str,
    pub kind: ModuleKind,
    pub nodes: &'a [NodeSpec],
    /// Node name → its image with inheritance applied.
    pub images: &'a BTreeMap<String, ResolvedImage>,
    pub request: &'a RunRequest,
    /// The connectors this server has.
    pub connectors: &'a [String],
    /// A build run: only the image-creation scripts run, and the result is kept.
    pub build: bool,
    /// Node name → the image built from its image's recipes on its connector, if any: the
    /// instances start from it and skip those recipes.
    pub built: &'a BTreeMap<String, String>,
}

/// The resolved node of a run, stored in the run's plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlannedNode {
    pub image: String,
    pub image_version: u32,
    pub connector: String,
    pub image_id: String,
    pub multiplicity: u32,
    pub targets: BTreeMap<String, Vec<PlannedScript>>,
    /// What a build of this node's image on its connector is keyed by ([`build_key`]).
    #[serde(default)]
    pub build_key: String,
    /// The image's `secret` parameters: masked in pages, answers and events, redacted from
    /// the run's output.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
}

impl PlannedNode {
    /// The run keys of this node's secret parameters for `instances` (its instance names).
    pub fn secret_keys<'a>(&'a self, instances: impl Iterator<Item = &'a str> + 'a) -> impl Iterator<Item = String> + 'a {
        instances.flat_map(move |i| self.secrets.iter().map(move |p| format!("{i}:{p}")))
    }
}

/// One instance of a node (`worker.3`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedInstance {
    pub name: String,
    pub node: String,
    pub index: u32,
    pub connector: String,
}

/// A runtime parameter and its value at creation (`None`: unset, readers block).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitialParam {
    pub key: String,
    pub value: Option<String>,
}

/// Writing `source` copies the value into `target`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub source: String,
    pub target: String,
}

/// Everything a run is created with.
#[derive(Clone, Debug, PartialEq)]
pub struct RunPlan {
    pub nodes: BTreeMap<String, PlannedNode>,
    pub instances: Vec<PlannedInstance>,
    pub params: Vec<InitialParam>,
    pub links: Vec<Link>,
}

impl RunPlan {
    /// How many instances the run starts on each connector (what quotas count).
    pub fn instances_per_connector(&self) -> BTreeMap<String, i64> {
        let mut out = BTreeMap::new();
        for i in &self.instances {
            *out.entry(i.connector.clone()).or_default() += 1;
        }
        out
    }
}

/// Plans a run; see the module documentation.
pub fn plan_run(input: &PlanInput<'_>) -> Result<RunPlan> {
    let (module, req) = (input.module, input.request);
    let names: Vec<&str> = input.nodes.iter().map(|n| n.name.as_str()).collect();
    let requested: [(&str, Vec<&String>); 2] =
        [("multiplicity", req.multiplicity.keys().collect()), ("connectors", req.connectors.keys().collect())];
    for (field, keys) in requested {
        if let Some(bad) = keys.into_iter().find(|k| !names.contains(&k.as_str())) {
            return Err(Error::invalid(module, format!("{field}.{bad}"), format!("the module has no node `{bad}`")));
        }
    }
    // Sizes first: nothing is built for a request that asks for too much.
    let mut multiplicities = Vec::with_capacity(input.nodes.len());
    for spec in input.nodes {
        let m = req.multiplicity.get(&spec.name).copied().unwrap_or(spec.node.multiplicity);
        if !(0..=MAX_MULTIPLICITY).contains(&m) {
            return Err(Error::invalid(module, format!("multiplicity.{}", spec.name), format!("{m} is out of range 0..1000")));
        }
        multiplicities.push(m as u32);
    }
    let total: i64 = multiplicities.iter().map(|m| i64::from(*m)).sum();
    if total > MAX_INSTANCES {
        return Err(Error::invalid(module, "multiplicity", format!("{total} instances; a run has at most {MAX_INSTANCES}")));
    }
    // Each instance holds every parameter of its image: bounded per run, whatever the shape.
    let values: usize = input
        .nodes
        .iter()
        .zip(&multiplicities)
        .map(|(spec, m)| {
            let declared = input.images.get(&spec.name).map_or(0, |i| i.parameters.len());
            *m as usize * (declared + RESERVED_INSTANCE_PARAMS.len())
        })
        .sum();
    if values > MAX_RUN_PARAMETERS {
        return Err(Error::invalid(
            module,
            "multiplicity",
            format!("{values} parameter values (instances × their images' parameters); a run holds at most {MAX_RUN_PARAMETERS}"),
        ));
    }
    check_overrides(input)?;

    let mut plan = RunPlan {
        nodes: BTreeMap::new(),
        instances: Vec::with_capacity(total as usize),
        params: vec![
            initial("ss:state", Some(RunState::Initializing.as_str().into())),
            initial("ss:abort", None),
            initial("ss:tags", Some(req.tags.join(","))),
            initial("ss:url.service", None),
        ],
        links: Vec::new(),
    };
    if req.scalable {
        // What the instances read to know what a scaling is doing (empty between scalings).
        for k in SCALING_PARAMS {
            plan.params.push(initial(k, Some(String::new())));
        }
    }
    for (spec, multiplicity) in input.nodes.iter().zip(multiplicities) {
        let name = &spec.name;
        let connector =
            req.connectors.get(name).cloned().or_else(|| spec.node.connector.clone()).unwrap_or_else(|| DEFAULT_CONNECTOR.into());
        if !input.connectors.contains(&connector) {
            return Err(Error::invalid(
                module,
                format!("connectors.{name}"),
                format!("unknown connector `{connector}`; this server has {:?}", input.connectors),
            ));
        }
        let image = input
            .images
            .get(name)
            .ok_or_else(|| Error::Internal(format!("the image of node `{name}` was not resolved before planning")))?;
        let image_path = image.chain.last().map(|l| l.path.clone()).unwrap_or_default();
        let image_version = image.chain.last().map(|l| l.version).unwrap_or(0);
        let base_id = image.images.get(&connector).cloned().ok_or_else(|| {
            Error::invalid(
                module,
                format!("connectors.{name}"),
                format!("image `{image_path}` has no image id for connector `{connector}`"),
            )
        })?;
        let key = build_key(&image.chain, &base_id);
        let mut targets: BTreeMap<String, Vec<PlannedScript>> = BTreeMap::new();
        if !input.build {
            for (t, scripts) in &image.targets {
                let scripts =
                    scripts.iter().map(|s| PlannedScript { module: s.module.clone(), version: s.version, script: s.script.clone() });
                targets.insert(t.clone(), scripts.collect());
            }
        }
        // Image creation, root first: at build time, or at deploy time unless built already.
        let built = if input.build { None } else { input.built.get(name).cloned() };
        if built.is_none() {
            add_build_recipes(&mut targets, &image.chain, &image_path, image_version);
        }
        let image_id = built.unwrap_or(base_id);
        let node = PlannedNode {
            image: image_path.clone(),
            image_version,
            connector: connector.clone(),
            image_id,
            multiplicity,
            targets,
            build_key: key,
            secrets: image.parameters.iter().filter(|p| p.kind == model::ParamType::Secret).map(|p| p.name.clone()).collect(),
        };
        plan.nodes.insert(name.clone(), node);
        plan.params.push(initial(&format!("{name}:multiplicity"), Some(multiplicity.to_string())));
        plan.params.push(initial(&format!("{name}:ids"), Some((1..=multiplicity).map(|i| i.to_string()).collect::<Vec<_>>().join(","))));
        for index in 1..=multiplicity {
            let inst = format!("{name}.{index}");
            plan.instances.push(PlannedInstance { name: inst.clone(), node: name.clone(), index, connector: connector.clone() });
            for r in RESERVED_INSTANCE_PARAMS {
                plan.params.push(initial(&format!("{inst}:{r}"), None));
            }
            for p in image.parameters.iter().filter(|p| !RESERVED_INSTANCE_PARAMS.contains(&p.name.as_str())) {
                let overridden = override_of(input, name, &p.name);
                let linked = spec.node.links.get(&p.name);
                let value = overridden.cloned().or_else(|| spec.node.values.get(&p.name).cloned()).or_else(|| {
                    if linked.is_some() {
                        None
                    } else {
                        p.default.clone()
                    }
                });
                if let Some(v) = &value {
                    if v.len() > model::MAX_VALUE_LEN {
                        return Err(Error::TooLarge(format!(
                            "the value of `{inst}:{}` is {} characters; the limit is {}",
                            p.name,
                            v.len(),
                            model::MAX_VALUE_LEN
                        )));
                    }
                }
                if let (None, Some(source)) = (overridden, linked) {
                    let (src_node, output) = source.split_once(':').unwrap_or((source, ""));
                    plan.links.push(Link { source: format!("{src_node}.1:{output}"), target: format!("{inst}:{}", p.name) });
                }
                plan.params.push(initial(&format!("{inst}:{}", p.name), value));
            }
        }
    }
    deliver_known_outputs(&mut plan);
    Ok(plan)
}

/// What a build of an image on a connector is keyed by: a digest of every level's path,
/// packages, prerecipe and recipe, and the base image id. Versions that change none of these
/// (a new `execute`) share it.
pub fn build_key(chain: &[Level], base_image: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(base_image.as_bytes());
    for l in chain {
        for part in [l.path.as_str(), &l.module.packages.join(" "), &l.module.prerecipe, &l.module.recipe] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
    }
    h.finalize().iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// Whether an image's chain has anything to build (packages or recipes at some level).
pub fn has_recipes(chain: &[Level]) -> bool {
    chain.iter().any(|l| !l.module.packages.is_empty() || !l.module.prerecipe.trim().is_empty() || !l.module.recipe.trim().is_empty())
}

fn initial(key: &str, value: Option<String>) -> InitialParam {
    InitialParam { key: key.into(), value }
}

/// The request's value for input `param` of node `node`: `node:param`, or for a run of one
/// image also the bare `param`.
fn override_of<'a>(input: &'a PlanInput<'_>, node: &str, param: &str) -> Option<&'a String> {
    let params = &input.request.params;
    let bare = if input.kind == ModuleKind::Image { params.get(param) } else { None };
    bare.or_else(|| params.get(&format!("{node}:{param}")))
}

/// Every override must name a parameter of a node (`node:input`; for an image run the bare
/// `input` too).
fn check_overrides(input: &PlanInput<'_>) -> Result<()> {
    for key in input.request.params.keys() {
        let (node, param) = match key.split_once(':') {
            Some(split) => split,
            None if input.kind == ModuleKind::Image => (IMAGE_NODE, key.as_str()),
            None => ("", key.as_str()),
        };
        let known = input.nodes.iter().any(|n| n.name == node)
            && (RESERVED_INSTANCE_PARAMS.contains(&param) || input.images.get(node).is_some_and(|i| i.parameter(param).is_some()));
        if !known {
            return Err(Error::invalid(input.module, format!("params.{key}"), format!("`{key}` names no node input of this module")));
        }
    }
    Ok(())
}

/// A link whose output already has a value (a default) delivers it at creation: links fire on
/// writes, and that value was never written.
fn deliver_known_outputs(plan: &mut RunPlan) {
    let values: HashMap<String, Option<String>> = plan.params.iter().map(|p| (p.key.clone(), p.value.clone())).collect();
    let index: HashMap<String, usize> = plan.params.iter().enumerate().map(|(i, p)| (p.key.clone(), i)).collect();
    for link in &plan.links {
        if let (Some(Some(v)), Some(&slot)) = (values.get(&link.source), index.get(&link.target)) {
            if plan.params[slot].value.is_none() {
                plan.params[slot].value = Some(v.clone());
            }
        }
    }
}

/// Adds the `prerecipe`, `packages` and `recipe` scripts of an image's chain (root first).
fn add_build_recipes(targets: &mut BTreeMap<String, Vec<PlannedScript>>, chain: &[Level], image: &str, version: u32) {
    for (name, pick) in [("prerecipe", 0), ("recipe", 1)] {
        let scripts: Vec<PlannedScript> = chain
            .iter()
            .filter_map(|l| {
                let text = if pick == 0 { &l.module.prerecipe } else { &l.module.recipe };
                (!text.trim().is_empty()).then(|| PlannedScript { module: l.path.clone(), version: l.version, script: text.clone() })
            })
            .collect();
        if !scripts.is_empty() {
            targets.insert(name.into(), scripts);
        }
    }
    let mut packages: Vec<&str> = Vec::new();
    for p in chain.iter().flat_map(|l| l.module.packages.iter()) {
        if !packages.contains(&p.as_str()) {
            packages.push(p);
        }
    }
    if !packages.is_empty() {
        targets.insert("packages".into(), vec![PlannedScript { module: image.into(), version, script: packages_script(&packages) }]);
    }
}

/// One install command for the union of the chain's packages, with the node's package manager.
fn packages_script(packages: &[&str]) -> String {
    let list = packages.join(" ");
    format!(
        "#!/bin/sh -e\n# Packages of the image and its parents\n\
         if command -v apt-get >/dev/null 2>&1; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q {list}\n\
         elif command -v dnf >/dev/null 2>&1; then dnf install -y {list}\n\
         elif command -v yum >/dev/null 2>&1; then yum install -y {list}\n\
         elif command -v zypper >/dev/null 2>&1; then zypper install -yn {list}\n\
         elif command -v apk >/dev/null 2>&1; then apk add --no-cache {list}\n\
         else echo \"no package manager to install: {list}\" >&2; exit 1\n\
         fi\n"
    )
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
