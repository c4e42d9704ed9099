//! Planning a save or an import: every document validated on its own, missing enclosing
//! projects found (and, for imports, planned), rights and settings decided parents first, then
//! the checks across modules with the planned documents seen as the newest versions. Nothing
//! is written here.

use std::collections::{BTreeMap, HashMap};

use model::validate::validate_module;
use model::{FieldError, Module, ModuleKind, ModulePath, PublicRights};

use super::Planned;
use crate::access::{self, Op};
use crate::{Engine, Error, Result, User};

impl Engine {
    /// Validates documents and checks rights without writing. With `create_parents`, missing
    /// enclosing projects are planned too (imports); otherwise they are an error.
    pub(crate) async fn plan(&self, user: &User, docs: Vec<Module>, create_parents: bool) -> Result<Vec<Planned>> {
        // 1. Each module on its own.
        let mut errors: Vec<FieldError> = Vec::new();
        for d in &docs {
            if let Err(mut e) = validate_module(d) {
                errors.append(&mut e);
            }
        }
        if !errors.is_empty() {
            return Err(Error::Invalid(errors));
        }
        let mut docs: BTreeMap<String, Module> = {
            let mut map = BTreeMap::new();
            for mut d in docs {
                let path = ModulePath::parse(&d.path).expect("validated").to_string();
                d.path = path.clone();
                if map.insert(path.clone(), d).is_some() {
                    return Err(Error::invalid(path, "path", "appears twice in the bundle"));
                }
            }
            map
        };

        // 2. Missing enclosing projects.
        let mut implied = Vec::new();
        for path in docs.keys() {
            for anc in ModulePath::parse(path).expect("validated").ancestors() {
                let a = anc.to_string();
                if docs.contains_key(&a) || implied.contains(&a) {
                    continue;
                }
                if self.meta(&a).await?.is_none() {
                    if !create_parents {
                        return Err(Error::invalid(path.clone(), "path", format!("the project `{a}` does not exist; create it first")));
                    }
                    implied.push(a);
                }
            }
        }
        for a in implied {
            docs.insert(
                a.clone(),
                Module { kind: ModuleKind::Project, path: a, comment: Some("Created by an import".into()), ..Default::default() },
            );
        }

        // 3. Rights and settings, parents first (BTreeMap order puts `a` before `a/b`).
        let mut planned: BTreeMap<String, Planned> = BTreeMap::new();
        for (path, doc) in &docs {
            let p = ModulePath::parse(path).expect("validated");
            let existing = self.meta(path).await?;
            let (public, published) = match &existing {
                Some(meta) => {
                    access::check(Some(user), path, &meta.access(), Op::Write)?;
                    if meta.kind != doc.kind {
                        return Err(Error::invalid(
                            path.clone(),
                            "kind",
                            format!("`{path}` is a {}; a module's kind cannot change", meta.kind.as_str()),
                        ));
                    }
                    let public = doc.public.map(PublicRights::normalized).unwrap_or(meta.public);
                    let published = doc.published.unwrap_or(meta.published);
                    if public != meta.public || published != meta.published {
                        access::check(Some(user), path, &meta.access(), Op::Share)?;
                    }
                    (public, published)
                }
                None => {
                    let inherited = match p.parent() {
                        None => PublicRights::default(),
                        Some(parent) => match planned.get(parent.as_str()) {
                            Some(pp) => {
                                if pp.doc.kind != ModuleKind::Project {
                                    return Err(Error::invalid(path.clone(), "path", format!("`{parent}` is not a project")));
                                }
                                pp.public
                            }
                            None => {
                                let pm = self.meta(parent.as_str()).await?.ok_or_else(|| {
                                    Error::invalid(path.clone(), "path", format!("the project `{parent}` does not exist; create it first"))
                                })?;
                                if pm.kind != ModuleKind::Project {
                                    return Err(Error::invalid(
                                        path.clone(),
                                        "path",
                                        format!("`{parent}` is a {}, not a project", pm.kind.as_str()),
                                    ));
                                }
                                if !access::allowed(Some(user), &pm.access(), Op::Write) {
                                    return Err(Error::Forbidden(format!(
                                        "user `{}` may not create modules in project `{parent}`",
                                        user.name
                                    )));
                                }
                                pm.public
                            }
                        },
                    };
                    (doc.public.map(PublicRights::normalized).unwrap_or(inherited), doc.published.unwrap_or(false))
                }
            };
            planned.insert(
                path.clone(),
                Planned { comment: doc.comment.clone().unwrap_or_default(), doc: doc.content(), existing, public, published },
            );
        }

        // 4. Checks across modules, seeing the planned documents as the newest versions.
        let overlay: HashMap<String, (u32, Module)> = planned
            .iter()
            .map(|(path, p)| (path.clone(), (p.existing.as_ref().map_or(1, |m| m.latest_version + 1), p.doc.clone())))
            .collect();
        let errors = self.check_across(user, &overlay).await?;
        if !errors.is_empty() {
            return Err(Error::Invalid(errors));
        }
        Ok(planned.into_values().collect())
    }
}
