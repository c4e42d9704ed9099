//! Validation across modules: image references exist, are images the author may read and
//! form no cycle; deployment nodes name images, literal values and links name inputs of those
//! images, links name outputs that exist, and every input gets a default, a value or a link.
//! Runs on the documents being saved as if they were already stored (the overlay), so a bundle
//! can refer to modules it brings along.

use std::collections::HashMap;

use model::validate::parse_link;
use model::{FieldError, Module, ModuleKind, ModuleRef};

use crate::access::{self, Op};
use crate::inherit::{load_chain, resolve, ChainError, Loader, ResolvedImage};
use crate::{Engine, Error, Result, User};

/// Reads modules as `actor` may see them, documents of the overlay first.
pub struct StoreLoader<'a> {
    pub engine: &'a Engine,
    pub actor: Option<&'a User>,
    pub overlay: &'a HashMap<String, (u32, Module)>,
}

impl Loader for StoreLoader<'_> {
    async fn load(&self, r: &ModuleRef) -> std::result::Result<Option<(u32, Module)>, String> {
        if let Some((v, m)) = self.overlay.get(r.path.as_str()) {
            if r.version.is_none() || r.version == Some(*v) {
                return Ok(Some((*v, m.clone())));
            }
        }
        let meta = match self.engine.meta(r.path.as_str()).await.map_err(|e| e.to_string())? {
            Some(m) if access::allowed(self.actor, &m.access(), Op::Read) => m,
            _ => return Ok(None),
        };
        match self.engine.read_version(&meta, r.version).await {
            Ok(m) => Ok(Some((m.version.unwrap_or(meta.latest_version), m.content()))),
            Err(Error::NotFound(_)) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }
}

impl Engine {
    /// The effective definition of an image as the actor may see it.
    pub async fn resolve_image(&self, actor: Option<&User>, reference: &str) -> Result<ResolvedImage> {
        let r = ModuleRef::parse(reference).map_err(|e| Error::invalid(reference, "image", e))?;
        let none = HashMap::new();
        let loader = StoreLoader { engine: self, actor, overlay: &none };
        let chain = load_chain(&loader, &r).await.map_err(|e| match e {
            ChainError::Missing(_) => Error::NotFound(e.to_string()),
            ChainError::Other(msg) => Error::Internal(msg),
            _ => Error::invalid(reference, "reference", e.to_string()),
        })?;
        Ok(resolve(chain))
    }

    pub(crate) async fn check_across(&self, user: &User, overlay: &HashMap<String, (u32, Module)>) -> Result<Vec<FieldError>> {
        let loader = StoreLoader { engine: self, actor: Some(user), overlay };
        let mut errors = Vec::new();
        let mut paths: Vec<&String> = overlay.keys().collect();
        paths.sort();
        for path in paths {
            let (version, doc) = &overlay[path];
            match doc.kind {
                ModuleKind::Image if !doc.native => {
                    let me = ModuleRef { path: model::ModulePath::parse(path).expect("validated"), version: Some(*version) };
                    if let Err(e) = load_chain(&loader, &me).await {
                        if let ChainError::Other(msg) = e {
                            return Err(Error::Internal(msg));
                        }
                        errors.push(FieldError::new(path.clone(), "reference", e.to_string()));
                    }
                }
                ModuleKind::Deployment => check_deployment(&loader, path, doc, &mut errors).await?,
                _ => {}
            }
        }
        Ok(errors)
    }
}

async fn check_deployment(loader: &StoreLoader<'_>, path: &str, doc: &Module, errors: &mut Vec<FieldError>) -> Result<()> {
    let mut err = |field: String, reason: String| errors.push(FieldError::new(path, field, reason));
    // Resolve every node's image first: links look at other nodes' outputs.
    let mut images: HashMap<&str, ResolvedImage> = HashMap::new();
    for (name, node) in &doc.nodes {
        let r = match ModuleRef::parse(&node.image) {
            Ok(r) => r,
            Err(e) => {
                err(format!("nodes.{name}.image"), e);
                continue;
            }
        };
        match load_chain(loader, &r).await {
            Ok(chain) => {
                images.insert(name, resolve(chain));
            }
            Err(ChainError::Other(msg)) => return Err(Error::Internal(msg)),
            Err(e) => err(format!("nodes.{name}.image"), e.to_string()),
        }
    }
    for (name, node) in &doc.nodes {
        let Some(image) = images.get(name.as_str()) else { continue };
        let image_path = image.chain.last().map(|l| l.path.as_str()).unwrap_or_default();
        for input in node.values.keys() {
            if image.inputs().all(|p| &p.name != input) {
                err(format!("nodes.{name}.values.{input}"), format!("image `{image_path}` declares no input `{input}`"));
            }
        }
        for (input, source) in &node.links {
            let field = format!("nodes.{name}.links.{input}");
            if image.inputs().all(|p| &p.name != input) {
                err(field.clone(), format!("image `{image_path}` declares no input `{input}`"));
                continue;
            }
            let Ok((other, output)) = parse_link(source) else { continue }; // reported by model validation
            match images.get(other) {
                Some(src) if !src.has_output(output) => {
                    let src_path = src.chain.last().map(|l| l.path.as_str()).unwrap_or_default();
                    err(field, format!("node `{name}` links `{source}`, but image `{src_path}` declares no output `{output}`"));
                }
                _ => {}
            }
        }
        for input in image.inputs() {
            if input.default.is_none() && !node.values.contains_key(&input.name) && !node.links.contains_key(&input.name) {
                err(
                    format!("nodes.{name}.links.{}", input.name),
                    format!("input `{}` of image `{image_path}` has no default, no value and no link", input.name),
                );
            }
        }
    }
    Ok(())
}
