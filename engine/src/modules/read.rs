//! Reading modules: one version, a project's children, search, history, comparing versions.

use model::{Module, ModuleKind, ModuleSummary, VersionInfo};
use sqlx::Row;

use super::{meta_from_row, parse_path};
use crate::access::{self, Op};
use crate::{Engine, Result, User};

impl Engine {
    /// What the actor may do with a module: (write, deploy, share). For showing only the
    /// buttons that work; every operation still checks for itself.
    pub async fn rights(&self, actor: Option<&User>, path: &str) -> Result<(bool, bool, bool)> {
        let p = parse_path(path)?;
        let meta = self.meta_for(actor, &p, Op::Read).await?;
        let can = |op| access::allowed(actor, &meta.access(), op);
        Ok((can(Op::Write), can(Op::Deploy), can(Op::Share)))
    }

    /// A module at its latest version, or at `version`.
    pub async fn get_module(&self, actor: Option<&User>, path: &str, version: Option<u32>) -> Result<Module> {
        let path = parse_path(path)?;
        let meta = self.meta_for(actor, &path, Op::Read).await?;
        self.read_version(&meta, version).await
    }

    /// The modules directly inside `parent` (`None`: the root projects) that the actor may read.
    pub async fn list_children(&self, actor: Option<&User>, parent: Option<&str>) -> Result<Vec<ModuleSummary>> {
        let parent = match parent.filter(|p| !p.is_empty()) {
            Some(p) => {
                let path = parse_path(p)?;
                self.meta_for(actor, &path, Op::Read).await?;
                path.to_string()
            }
            None => String::new(),
        };
        let rows = sqlx::query(concat!("SELECT ", meta_columns!(), " FROM modules WHERE parent = $1 ORDER BY path"))
            .bind(&parent)
            .fetch_all(&self.db.pool)
            .await?;
        let mut out = Vec::new();
        for r in &rows {
            let meta = meta_from_row(r)?;
            if access::allowed(actor, &meta.access(), Op::Read) {
                out.push(meta.summary());
            }
        }
        Ok(out)
    }

    /// Every module the actor may read whose path or description contains `query`
    /// (case-insensitive), for search boxes and the chooser.
    pub async fn search_modules(&self, actor: Option<&User>, query: &str, kind: Option<ModuleKind>) -> Result<Vec<ModuleSummary>> {
        let rows = sqlx::query(concat!("SELECT ", meta_columns!(), " FROM modules ORDER BY path")).fetch_all(&self.db.pool).await?;
        let q = query.to_lowercase();
        let mut out = Vec::new();
        for r in &rows {
            let meta = meta_from_row(r)?;
            let matches = q.is_empty() || meta.path.to_lowercase().contains(&q) || meta.description.to_lowercase().contains(&q);
            if matches && kind.is_none_or(|k| k == meta.kind) && access::allowed(actor, &meta.access(), Op::Read) {
                out.push(meta.summary());
            }
        }
        Ok(out)
    }

    /// History, newest first.
    pub async fn history(&self, actor: Option<&User>, path: &str) -> Result<Vec<VersionInfo>> {
        let path = parse_path(path)?;
        self.meta_for(actor, &path, Op::Read).await?;
        let rows = sqlx::query("SELECT version, author, created_at, comment FROM module_versions WHERE path = $1 ORDER BY version DESC")
            .bind(path.as_str())
            .fetch_all(&self.db.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(VersionInfo {
                    version: r.try_get::<i64, _>("version")? as u32,
                    author: r.try_get("author")?,
                    created_at: r.try_get("created_at")?,
                    comment: r.try_get("comment")?,
                })
            })
            .collect()
    }

    /// The fields that differ between two versions of a module, scripts as line diffs.
    pub async fn compare_versions(&self, actor: Option<&User>, path: &str, from: u32, to: u32) -> Result<Vec<model::diff::FieldChange>> {
        let p = parse_path(path)?;
        let meta = self.meta_for(actor, &p, Op::Read).await?;
        let a = flatten(&serde_json::to_value(self.read_version(&meta, Some(from)).await?.content())?);
        let b = flatten(&serde_json::to_value(self.read_version(&meta, Some(to)).await?.content())?);
        Ok(model::diff::compare_fields(&a, &b))
    }
}

/// A JSON document as dotted field → text (`nodes.web.multiplicity` → `1`).
fn flatten(v: &serde_json::Value) -> Vec<(String, String)> {
    fn walk(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, String)>) {
        let key = |k: &str| if prefix.is_empty() { k.to_string() } else { format!("{prefix}.{k}") };
        match v {
            serde_json::Value::Object(map) => map.iter().for_each(|(k, v)| walk(&key(k), v, out)),
            // Parameters are named: key them by name, not by position.
            serde_json::Value::Array(items) if items.iter().all(|i| i.get("name").is_some_and(|n| n.is_string())) && !items.is_empty() => {
                for i in items {
                    let name = i["name"].as_str().unwrap_or_default();
                    walk(&key(name), i, out);
                }
            }
            serde_json::Value::Array(items) => out.push((
                prefix.to_string(),
                items.iter().map(|i| i.as_str().map(String::from).unwrap_or_else(|| i.to_string())).collect::<Vec<_>>().join(" "),
            )),
            serde_json::Value::String(s) => out.push((prefix.to_string(), s.clone())),
            serde_json::Value::Null => {}
            other => out.push((prefix.to_string(), other.to_string())),
        }
    }
    let mut out = Vec::new();
    walk("", v, &mut out);
    out
}
