//! The catalog: published images and deployments (projects are folders, not things to deploy),
//! with their logos, searched by path and description. The UI and the JSON API both answer from here.

use std::collections::HashMap;

use model::{CatalogEntry, Module, ModuleKind};
use sqlx::Row;

use super::meta_from_row;
use crate::{Engine, Result};

impl Engine {
    /// Published modules matching `query` (case-insensitive, path or description) and `kind`.
    pub async fn catalog(&self, query: &str, kind: Option<ModuleKind>) -> Result<Vec<CatalogEntry>> {
        let rows = sqlx::query(concat!("SELECT ", meta_columns!(), " FROM modules WHERE published = 1 ORDER BY path"))
            .fetch_all(&self.db.pool)
            .await?;
        let q = query.to_lowercase();
        let mut logos = self.catalog_logos().await?;
        let mut out = Vec::new();
        for r in &rows {
            let meta = meta_from_row(r)?;
            let matches = q.is_empty() || meta.path.to_lowercase().contains(&q) || meta.description.to_lowercase().contains(&q);
            if matches && meta.kind != ModuleKind::Project && kind.is_none_or(|k| k == meta.kind) {
                out.push(CatalogEntry { logo: logos.remove(&meta.path), summary: meta.summary() });
            }
        }
        Ok(out)
    }

    /// The logos of published modules (path → logo), read from their latest versions in one query.
    async fn catalog_logos(&self) -> Result<HashMap<String, String>> {
        let rows = sqlx::query(
            "SELECT m.path AS path, v.content AS content FROM modules m \
             JOIN module_versions v ON v.path = m.path AND v.version = m.latest_version WHERE m.published = 1",
        )
        .fetch_all(&self.db.pool)
        .await?;
        let mut logos = HashMap::new();
        for r in &rows {
            let m: Module = serde_json::from_str(&r.try_get::<String, _>("content")?)?;
            if let Some(logo) = m.logo {
                logos.insert(r.try_get("path")?, logo);
            }
        }
        Ok(logos)
    }
}
