//! Inheritance of images. A derived image inherits its parent's parameters (the child wins)
//! and runs its ancestors' targets before its own, root first. [`load_chain`] walks the
//! references through a [`Loader`] (the store, or the store plus a bundle being imported);
//! [`resolve`] is pure.

use std::collections::BTreeMap;

use model::module::Category;
use model::validate::PLATFORM_OUTPUTS;
use model::{Module, ModuleKind, ModuleRef, Parameter};

/// One level of an inheritance chain: an image at an exact version.
#[derive(Clone, Debug, PartialEq)]
pub struct Level {
    pub path: String,
    pub version: u32,
    pub module: Module,
}

/// One script of a target at one level of the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Script {
    pub module: String,
    pub version: u32,
    pub script: String,
}

/// What running an image means once inheritance is applied.
#[derive(Clone, Debug, PartialEq)]
pub struct ResolvedImage {
    /// Root (native) image first, the image itself last.
    pub chain: Vec<Level>,
    /// Effective parameters: the platform outputs, then each level's, a child's declaration
    /// replacing its parent's in place.
    pub parameters: Vec<Parameter>,
    /// Target name → scripts to run, root first; levels without that target are left out.
    pub targets: BTreeMap<String, Vec<Script>>,
    /// Connector → image id, taken from the nearest level that names the connector.
    pub images: BTreeMap<String, String>,
}

impl ResolvedImage {
    pub fn parameter(&self, name: &str) -> Option<&Parameter> {
        self.parameters.iter().find(|p| p.name == name)
    }
    pub fn has_output(&self, name: &str) -> bool {
        self.parameter(name).is_some_and(|p| p.category == Category::Output)
    }
    pub fn inputs(&self) -> impl Iterator<Item = &Parameter> {
        self.parameters.iter().filter(|p| p.category == Category::Input)
    }
    pub fn outputs(&self) -> impl Iterator<Item = &Parameter> {
        self.parameters.iter().filter(|p| p.category == Category::Output)
    }
}

/// Applies inheritance to a loaded chain (root first).
pub fn resolve(chain: Vec<Level>) -> ResolvedImage {
    let mut parameters: Vec<Parameter> = PLATFORM_OUTPUTS
        .iter()
        .map(|n| Parameter {
            name: n.to_string(),
            category: Category::Output,
            description: match *n {
                "hostname" => "Address of the instance, set by the platform".into(),
                _ => "Identifier of the instance on its connector, set by the platform".into(),
            },
            ..Default::default()
        })
        .collect();
    let mut targets: BTreeMap<String, Vec<Script>> = BTreeMap::new();
    let mut images = BTreeMap::new();
    for level in &chain {
        for p in &level.module.parameters {
            match parameters.iter_mut().find(|q| q.name == p.name) {
                Some(q) => *q = p.clone(),
                None => parameters.push(p.clone()),
            }
        }
        for (name, script) in level.module.targets.iter() {
            if !script.trim().is_empty() {
                targets.entry(name.to_string()).or_default().push(Script {
                    module: level.path.clone(),
                    version: level.version,
                    script: script.to_string(),
                });
            }
        }
    }
    // Nearest level wins: walk from the image itself up to the root.
    for level in chain.iter().rev() {
        for (connector, id) in &level.module.images {
            images.entry(connector.clone()).or_insert_with(|| id.clone());
        }
    }
    ResolvedImage { chain, parameters, targets, images }
}

/// Why a chain could not be loaded; `field`-less, the caller knows which field referenced it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChainError {
    Missing(String),
    NotAnImage(String),
    Cycle(Vec<String>),
    Other(String),
}

impl std::fmt::Display for ChainError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChainError::Missing(r) => write!(f, "image `{r}` does not exist, or you may not read it"),
            ChainError::NotAnImage(r) => write!(f, "`{r}` is not an image"),
            ChainError::Cycle(paths) => write!(f, "reference cycle: {}", paths.join(" → ")),
            ChainError::Other(e) => f.write_str(e),
        }
    }
}

/// Reads a module at a reference (latest or pinned), as the caller is allowed to see it.
pub trait Loader {
    /// `Ok(None)` when the module or version does not exist or may not be read.
    fn load(&self, r: &ModuleRef) -> impl std::future::Future<Output = Result<Option<(u32, Module)>, String>> + Send;
}

/// Loads `start` and its ancestors; returns the chain root first.
pub async fn load_chain<L: Loader + Sync>(loader: &L, start: &ModuleRef) -> Result<Vec<Level>, ChainError> {
    let mut chain: Vec<Level> = Vec::new();
    let mut next = Some(start.clone());
    while let Some(r) = next.take() {
        if let Some(pos) = chain.iter().position(|l| l.path == r.path.as_str()) {
            let mut cycle: Vec<String> = chain[pos..].iter().map(|l| l.path.clone()).collect();
            cycle.push(r.path.to_string());
            return Err(ChainError::Cycle(cycle));
        }
        let (version, module) = loader.load(&r).await.map_err(ChainError::Other)?.ok_or_else(|| ChainError::Missing(r.to_string()))?;
        if module.kind != ModuleKind::Image {
            return Err(ChainError::NotAnImage(r.to_string()));
        }
        if !module.native {
            if let Some(parent) = &module.reference {
                next = Some(ModuleRef::parse(parent).map_err(|e| ChainError::Other(format!("`{}`: {e}", r.path)))?);
            }
        }
        chain.push(Level { path: r.path.to_string(), version, module });
    }
    chain.reverse();
    Ok(chain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::{ParamType, Targets};
    use std::collections::HashMap;

    struct Map(HashMap<String, Module>);
    impl Loader for Map {
        async fn load(&self, r: &ModuleRef) -> Result<Option<(u32, Module)>, String> {
            Ok(self.0.get(r.path.as_str()).map(|m| (r.version.unwrap_or(1), m.clone())))
        }
    }

    fn image(path: &str, parent: Option<&str>, params: &[(&str, Category, Option<&str>)], execute: &str) -> Module {
        Module {
            kind: ModuleKind::Image,
            path: path.into(),
            native: parent.is_none(),
            images: if parent.is_none() { [("local".to_string(), "host".to_string())].into() } else { Default::default() },
            reference: parent.map(String::from),
            parameters: params
                .iter()
                .map(|(n, c, d)| Parameter {
                    name: n.to_string(),
                    category: *c,
                    default: d.map(String::from),
                    kind: ParamType::String,
                    ..Default::default()
                })
                .collect(),
            targets: Targets { execute: execute.into(), ..Default::default() },
            ..Default::default()
        }
    }

    fn store() -> Map {
        use Category::*;
        Map(HashMap::from([
            ("base".to_string(), image("base", None, &[("port", Output, Some("80"))], "echo base")),
            ("mid".to_string(), image("mid", Some("base"), &[("port", Output, Some("8080")), ("mode", Input, Some("fast"))], "")),
            ("leaf".to_string(), image("leaf", Some("mid@1"), &[("extra", Input, None)], "echo leaf")),
            ("loop_a".to_string(), image("loop_a", Some("loop_b"), &[], "")),
            ("loop_b".to_string(), image("loop_b", Some("loop_a"), &[], "")),
            ("proj".to_string(), Module { kind: ModuleKind::Project, path: "proj".into(), ..Default::default() }),
            ("bad_parent".to_string(), image("bad_parent", Some("proj"), &[], "")),
        ]))
    }

    #[tokio::test]
    async fn children_win_parameters_and_targets_run_root_first() {
        let chain = load_chain(&store(), &ModuleRef::parse("leaf").unwrap()).await.unwrap();
        let paths: Vec<_> = chain.iter().map(|l| l.path.as_str()).collect();
        assert_eq!(paths, ["base", "mid", "leaf"]);
        let r = resolve(chain);
        let names: Vec<_> = r.parameters.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["hostname", "instanceid", "port", "mode", "extra"]);
        assert_eq!(r.parameter("port").unwrap().default.as_deref(), Some("8080"), "child's default wins");
        assert!(r.has_output("hostname") && r.has_output("port") && !r.has_output("mode"));
        let execute: Vec<_> = r.targets["execute"].iter().map(|s| (s.module.as_str(), s.script.as_str())).collect();
        assert_eq!(execute, [("base", "echo base"), ("leaf", "echo leaf")], "levels without the target are skipped");
        assert_eq!(r.images["local"], "host");
        assert_eq!(r.chain[1].version, 1, "pinned reference keeps its version");
    }

    #[tokio::test]
    async fn broken_chains_say_why() {
        let s = store();
        let err = |p: &str| {
            let s = &s;
            let p = p.to_string();
            async move { load_chain(s, &ModuleRef::parse(&p).unwrap()).await.unwrap_err() }
        };
        assert_eq!(err("loop_a").await, ChainError::Cycle(vec!["loop_a".into(), "loop_b".into(), "loop_a".into()]));
        assert_eq!(err("nothing").await, ChainError::Missing("nothing".into()));
        assert_eq!(err("bad_parent").await, ChainError::NotAnImage("proj".into()));
        assert_eq!(err("loop_a").await.to_string(), "reference cycle: loop_a → loop_b → loop_a");
    }
}
