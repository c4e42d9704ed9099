//! Image builds. A build is a run of one image on one connector that runs only the image
//! creation scripts (prerecipe, packages, recipe — of every level, root first); at Ready its
//! instance is kept as an image (`Connector::commit`), recorded for that image's build key and
//! connector, and later runs of the image there start from it and skip those scripts.

use std::collections::BTreeMap;

use model::run::{BuiltImage, KeepRunning, RunRequest, RunSummary};
use model::{ModuleKind, ModulePath, User};
use sqlx::Row;

use super::plan::{build_key, has_recipes, NodeSpec, DEFAULT_CONNECTOR, IMAGE_NODE};
use crate::access::{self, Op};
use crate::inherit::ResolvedImage;
use crate::{now_ms, Engine, Error, Result};

/// What a built image is called: repository names are lower case.
fn image_name(module: &str, version: u32, key: &str) -> String {
    let repo: String =
        module.to_ascii_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() || "._-/".contains(c) { c } else { '_' }).collect();
    format!("slipstream-build/{repo}:v{version}-{}", &key[..key.len().min(12)])
}

impl Engine {
    /// Starts a build of image `path` (at `version`, else its latest) on `connector`.
    pub async fn create_build(&self, actor: Option<&User>, path: &str, version: Option<u32>, connector: &str) -> Result<RunSummary> {
        let p = ModulePath::parse(path).map_err(|e| Error::invalid(path, "path", e))?;
        let meta = self.meta_for(actor, &p, Op::Read).await?;
        access::check(actor, p.as_str(), &meta.access(), Op::Deploy)?;
        if meta.kind != ModuleKind::Image {
            return Err(Error::invalid(path, "kind", format!("`{path}` is a {}; only images are built", meta.kind.as_str())));
        }
        let c = self.connector(connector).ok_or_else(|| {
            Error::invalid(path, "connector", format!("unknown connector `{connector}`; this server has {:?}", self.connector_names()))
        })?;
        if !c.capabilities().build_images {
            return Err(Error::invalid(
                path,
                "connector",
                format!("connector `{connector}` ({}) cannot build images: it keeps no image of its instances", c.kind()),
            ));
        }
        let module = self.read_version(&meta, version).await?;
        let image = self.resolve_image(actor, &format!("{p}@{}", module.version.unwrap_or(meta.latest_version))).await?;
        if !has_recipes(&image.chain) {
            return Err(Error::invalid(path, "recipe", "nothing to build: no level of this image has packages, a prerecipe or a recipe"));
        }
        let req = RunRequest {
            module: p.to_string(),
            version: module.version,
            connectors: [(IMAGE_NODE.to_string(), connector.to_string())].into(),
            keep_running: Some(KeepRunning::Never),
            tags: vec!["build".into()],
            ..Default::default()
        };
        self.launch_run(actor, req, true).await
    }

    /// The connectors that can build images.
    pub fn build_connectors(&self) -> Vec<String> {
        self.connectors().filter(|c| c.capabilities().build_images).map(|c| c.name().to_string()).collect()
    }

    /// Keeps a finished build's instance as the image's built image on its connector.
    pub(crate) async fn commit_build(&self, run: &str) -> Result<()> {
        let row = sqlx::query(
            "SELECT r.module AS module, r.module_version AS version, i.connector AS connector, i.handle AS handle \
             FROM runs r JOIN run_instances i ON i.run_id = r.id WHERE r.id = $1 AND i.handle <> ''",
        )
        .bind(run)
        .fetch_optional(&self.db.pool)
        .await?
        .ok_or_else(|| Error::Internal(format!("build run `{run}` has no started instance")))?;
        let (module, connector, handle): (String, String, String) =
            (row.try_get("module")?, row.try_get("connector")?, row.try_get("handle")?);
        let version = row.try_get::<i64, _>("version")? as u32;
        let plan = self.plan_of(run).await?;
        let key = plan.get(IMAGE_NODE).map(|n| n.build_key.clone()).unwrap_or_default();
        let image = image_name(&module, version, &key);
        let owner = self.run_owner(run).await?;
        let account = self.account_for(&owner, &connector).await?;
        let committed = match self.connector(&connector) {
            Some(c) => c.commit(&handle, &image, &account).await,
            None => Err(Error::Unavailable(format!("connector `{connector}` is not configured on this server"))),
        };
        let image_id = match committed {
            Ok(id) => id,
            Err(e) => {
                self.raise_abort_locked(run, "ss", &format!("Keeping the built image of {module}@{version} on {connector} failed: {e}"))
                    .await?;
                return Ok(());
            }
        };
        sqlx::query(
            "INSERT INTO built_images (module, build_key, connector, image_id, image, version, run_id, built_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (module, build_key, connector) \
             DO UPDATE SET image_id = $4, image = $5, version = $6, run_id = $7, built_at = $8",
        )
        .bind(&module)
        .bind(&key)
        .bind(&connector)
        .bind(&image_id)
        .bind(&image)
        .bind(i64::from(version))
        .bind(run)
        .bind(now_ms())
        .execute(&self.db.pool)
        .await?;
        tracing::info!(run, module, version, connector, image, "image built");
        self.event(run, &owner, "built", &format!("Built {module}@{version} on {connector} as {image}")).await
    }

    /// Node → built image id, for the nodes whose image has been built on their connector
    /// with exactly what the run would build.
    pub(crate) async fn built_for(
        &self,
        nodes: &[NodeSpec],
        images: &BTreeMap<String, ResolvedImage>,
        req: &RunRequest,
    ) -> Result<BTreeMap<String, String>> {
        let mut out = BTreeMap::new();
        for spec in nodes {
            let connector =
                req.connectors.get(&spec.name).cloned().or_else(|| spec.node.connector.clone()).unwrap_or_else(|| DEFAULT_CONNECTOR.into());
            let Some(image) = images.get(&spec.name) else { continue };
            let (Some(level), Some(base)) = (image.chain.last(), image.images.get(&connector)) else { continue };
            if !has_recipes(&image.chain) {
                continue;
            }
            let row = sqlx::query("SELECT image_id FROM built_images WHERE module = $1 AND build_key = $2 AND connector = $3")
                .bind(&level.path)
                .bind(build_key(&image.chain, base))
                .bind(&connector)
                .fetch_optional(&self.db.pool)
                .await?;
            if let Some(r) = row {
                out.insert(spec.name.clone(), r.try_get("image_id")?);
            }
        }
        Ok(out)
    }

    /// The connectors on which `image` is built with exactly its current recipes.
    pub(crate) async fn built_connectors(&self, image: &ResolvedImage) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let Some(level) = image.chain.last() else { return Ok(out) };
        if !has_recipes(&image.chain) {
            return Ok(out);
        }
        for (connector, base) in &image.images {
            let row = sqlx::query("SELECT 1 AS one FROM built_images WHERE module = $1 AND build_key = $2 AND connector = $3")
                .bind(&level.path)
                .bind(build_key(&image.chain, base))
                .bind(connector)
                .fetch_optional(&self.db.pool)
                .await?;
            if row.is_some() {
                out.push(connector.clone());
            }
        }
        Ok(out)
    }

    /// The images built from `path`, newest first, saying which its latest version uses.
    pub async fn builds(&self, actor: Option<&User>, path: &str) -> Result<Vec<BuiltImage>> {
        let latest = self.get_module(actor, path, None).await?;
        let rows = sqlx::query(
            "SELECT build_key, connector, image_id, image, version, run_id, built_at FROM built_images WHERE module = $1 ORDER BY built_at DESC",
        )
        .bind(path.trim_matches('/'))
        .fetch_all(&self.db.pool)
        .await?;
        let mut current_keys = BTreeMap::new();
        if latest.kind == ModuleKind::Image {
            let image = self.resolve_image(actor, path).await?;
            for (connector, base) in &image.images {
                current_keys.insert(connector.clone(), build_key(&image.chain, base));
            }
        }
        rows.iter()
            .map(|r| {
                let connector: String = r.try_get("connector")?;
                let key: String = r.try_get("build_key")?;
                Ok(BuiltImage {
                    current: current_keys.get(&connector) == Some(&key),
                    image: r.try_get("image")?,
                    image_id: r.try_get("image_id")?,
                    version: r.try_get::<i64, _>("version")? as u32,
                    run: r.try_get("run_id")?,
                    built_at: r.try_get("built_at")?,
                    connector,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn built_images_are_named_after_the_module() {
        assert_eq!(super::image_name("Perf/Web_Server", 3, "0123456789abcdef"), "slipstream-build/perf/web_server:v3-0123456789ab");
    }
}
