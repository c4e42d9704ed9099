//! Module trees as multi-document YAML (`docs/modules.md`): one module per document, the
//! same schema as the JSON API. Export writes the latest version of a module and of everything
//! below it that the caller may read; import validates the whole bundle first and writes it in
//! one transaction, creating missing enclosing projects.

use model::{FieldError, Module, ModulePath};
use sqlx::Row;

use crate::access::{self, Op};
use crate::{Engine, Error, Result, User};

/// Parses a bundle. Errors name the document (by its `path` when it has one) and the field.
pub fn parse_bundle(text: &str) -> Result<Vec<Module>> {
    let mut out = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value = serde_yaml::Value::deserialize(doc)
            .map_err(|e| Error::invalid(format!("document {}", i + 1), "", format!("is not YAML: {e}")))?;
        if value.is_null() {
            continue; // an empty document, e.g. after a trailing `---`
        }
        let name = value.get("path").and_then(|p| p.as_str()).map(String::from).unwrap_or_else(|| format!("document {}", i + 1));
        let m: Module = serde_path_to_error::deserialize(value).map_err(|e| {
            let field = e.path().to_string();
            Error::Invalid(vec![FieldError::new(
                name.clone(),
                if field == "." { String::new() } else { field },
                e.into_inner().to_string(),
            )])
        })?;
        out.push(m);
    }
    if out.is_empty() {
        return Err(Error::invalid("", "", "the bundle holds no module"));
    }
    Ok(out)
}

/// Writes modules as one multi-document YAML text.
pub fn to_yaml(modules: &[Module]) -> String {
    modules.iter().map(|m| serde_yaml::to_string(m).expect("a module always serialises")).collect::<Vec<_>>().join("---\n")
}

use serde::Deserialize;

impl Engine {
    /// Imports a bundle as `actor`; returns each written module's path and new version.
    pub async fn import(&self, actor: Option<&User>, text: &str) -> Result<Vec<(String, u32)>> {
        let user = actor.ok_or_else(|| Error::Unauthorized("sign in to import modules".into()))?;
        let mut docs = parse_bundle(text)?;
        for d in &mut docs {
            if d.comment.is_none() {
                d.comment = Some("Imported".into());
            }
        }
        let plan = self.plan(user, docs, true).await?;
        self.write_plan(user, &plan).await
    }

    /// The latest versions of `path` and every module below it that `actor` may read, with
    /// their sharing settings, without metadata: what an import needs to reproduce them.
    pub async fn export_modules(&self, actor: Option<&User>, path: &str) -> Result<Vec<Module>> {
        let root = ModulePath::parse(path).map_err(|e| Error::invalid(path, "path", e))?;
        let top = self.meta(root.as_str()).await?.ok_or_else(|| Error::NotFound(format!("module `{root}` does not exist")))?;
        access::check(actor, root.as_str(), &top.access(), Op::Read)?;
        let rows = sqlx::query("SELECT path FROM modules WHERE path = $1 OR path LIKE $2 ORDER BY path")
            .bind(root.as_str())
            .bind(format!("{root}/%"))
            .fetch_all(&self.db.pool)
            .await?;
        let mut out = Vec::new();
        for r in rows {
            let p: String = r.try_get("path")?;
            let Ok(mp) = ModulePath::parse(&p) else { continue };
            if !mp.is_within(&root) {
                continue; // LIKE's `_` matches any character
            }
            let Some(meta) = self.meta(&p).await? else { continue };
            if !access::allowed(actor, &meta.access(), Op::Read) {
                continue;
            }
            let m = self.read_version(&meta, None).await?;
            out.push(Module { public: m.public, published: m.published, ..m.content() });
        }
        Ok(out)
    }

    pub async fn export(&self, actor: Option<&User>, path: &str) -> Result<String> {
        Ok(to_yaml(&self.export_modules(actor, path).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_document_and_field() {
        let text = "kind: project\npath: a\n---\nkind: image\npath: a/img\nnodes: 3\n";
        let Err(Error::Invalid(e)) = parse_bundle(text) else { panic!() };
        assert_eq!((e[0].module.as_str(), e[0].field.as_str()), ("a/img", "nodes"));
        let Err(Error::Invalid(e)) = parse_bundle("kind: image\npath: a\nrecipie: x\n") else { panic!() };
        assert!(e[0].reason.contains("recipie"), "{e:?}");
        assert!(matches!(parse_bundle("---\n"), Err(Error::Invalid(_))));
    }

    #[test]
    fn yaml_round_trip() {
        let text = include_str!("../../examples/examples.yaml");
        let modules = parse_bundle(text).unwrap();
        assert!(modules.len() >= 8);
        assert_eq!(parse_bundle(&to_yaml(&modules)).unwrap(), modules);
    }
}
