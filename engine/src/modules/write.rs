//! Writing modules: save (a new version), restore, delete, share, and the one transaction
//! that writes a validated plan.

use model::{Module, ModulePath, ModuleSummary, PublicRights};
use sqlx::Row;

use super::{parse_path, signed_in, Planned};
use crate::access::Op;
use crate::{now_ms, Engine, Error, Result, User};

impl Engine {
    /// Saves a module: creates it (version 1) or adds a new version. `doc.comment` is the
    /// commit message; `doc.public` / `doc.published`, when given, change the module's settings
    /// (owner or administrator only). A new module inherits its project's public rights.
    pub async fn save_module(&self, actor: Option<&User>, doc: Module) -> Result<Module> {
        let user = signed_in(actor, "save modules")?;
        let plan = self.plan(user, vec![doc], false).await?;
        let written = self.write_plan(user, &plan).await?;
        let (path, version) = written.last().cloned().expect("one module planned");
        self.get_module(actor, &path, Some(version)).await
    }

    /// Restores an old version: a new version with its content (validated again, since the
    /// modules it refers to may have changed since).
    pub async fn restore(&self, actor: Option<&User>, path: &str, version: u32) -> Result<Module> {
        let user = signed_in(actor, "restore versions")?;
        let p = parse_path(path)?;
        let meta = self.meta_for(actor, &p, Op::Write).await?;
        let mut doc = self.read_version(&meta, Some(version)).await?.content();
        doc.comment = Some(format!("Restored version {version}"));
        let plan = self.plan(user, vec![doc], false).await?;
        let written = self.write_plan(user, &plan).await?;
        self.get_module(actor, path, Some(written[0].1)).await
    }

    /// Deletes a module and all its versions. A project must be empty first.
    pub async fn delete_module(&self, actor: Option<&User>, path: &str) -> Result<()> {
        let p = parse_path(path)?;
        self.meta_for(actor, &p, Op::Delete).await?;
        let children: i64 = sqlx::query("SELECT COUNT(*) AS n FROM modules WHERE parent = $1")
            .bind(p.as_str())
            .fetch_one(&self.db.pool)
            .await?
            .try_get("n")?;
        if children > 0 {
            return Err(Error::Conflict(format!("project `{p}` still holds {children} module(s); delete them first")));
        }
        let mut tx = self.db.begin_write().await?;
        sqlx::query("DELETE FROM module_versions WHERE path = $1").bind(p.as_str()).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM modules WHERE path = $1").bind(p.as_str()).execute(&mut *tx).await?;
        tx.commit().await?;
        tracing::info!(path = %p, user = actor.map(|u| u.name.as_str()), "module deleted");
        Ok(())
    }

    /// Changes who may read, write and deploy a module, and whether it is in the catalog,
    /// without creating a version (owner or administrator only).
    pub async fn share(
        &self,
        actor: Option<&User>,
        path: &str,
        public: Option<PublicRights>,
        published: Option<bool>,
    ) -> Result<ModuleSummary> {
        let p = parse_path(path)?;
        let meta = self.meta_for(actor, &p, Op::Share).await?;
        let public = public.map(PublicRights::normalized).unwrap_or(meta.public);
        let published = published.unwrap_or(meta.published);
        sqlx::query("UPDATE modules SET public_read = $1, public_write = $2, public_deploy = $3, published = $4 WHERE path = $5")
            .bind(public.read as i64)
            .bind(public.write as i64)
            .bind(public.deploy as i64)
            .bind(published as i64)
            .bind(p.as_str())
            .execute(&self.db.pool)
            .await?;
        Ok(ModuleSummary { public, published, ..meta.summary() })
    }

    /// Writes a plan in one transaction; returns each module's path and new version.
    pub(crate) async fn write_plan(&self, user: &User, plan: &[Planned]) -> Result<Vec<(String, u32)>> {
        let mut tx = self.db.begin_write().await?;
        let written = write_planned(&mut tx, user, plan).await?;
        tx.commit().await?;
        for (path, version) in &written {
            tracing::info!(path, version, user = user.name, "module saved");
        }
        Ok(written)
    }
}

pub(crate) async fn write_planned(tx: &mut sqlx::Transaction<'_, sqlx::Any>, user: &User, plan: &[Planned]) -> Result<Vec<(String, u32)>> {
    let now = now_ms();
    let mut written = Vec::new();
    for p in plan {
        let path = p.doc.path.clone();
        let parent = ModulePath::parse(&path).expect("validated").parent().map(|p| p.to_string()).unwrap_or_default();
        // Read the version inside the transaction: two saves racing for the same number
        // collide on the primary key and the second gets a conflict, not a lost update.
        let current: Option<i64> = sqlx::query("SELECT latest_version FROM modules WHERE path = $1")
            .bind(&path)
            .fetch_optional(&mut **tx)
            .await?
            .map(|r| r.try_get("latest_version"))
            .transpose()?;
        let version = current.unwrap_or(0) + 1;
        let flags = [p.public.read, p.public.write, p.public.deploy, p.published].map(|b| b as i64);
        if current.is_some() {
            sqlx::query(
                "UPDATE modules SET latest_version = $1, description = $2, updated_at = $3, public_read = $4, \
                 public_write = $5, public_deploy = $6, published = $7 WHERE path = $8",
            )
            .bind(version)
            .bind(&p.doc.description)
            .bind(now)
            .bind(flags[0])
            .bind(flags[1])
            .bind(flags[2])
            .bind(flags[3])
            .bind(&path)
            .execute(&mut **tx)
            .await?;
        } else {
            sqlx::query(
                "INSERT INTO modules (path, parent, kind, owner, public_read, public_write, public_deploy, published, \
                 latest_version, description, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .bind(&path)
            .bind(&parent)
            .bind(p.doc.kind.as_str())
            .bind(&user.name)
            .bind(flags[0])
            .bind(flags[1])
            .bind(flags[2])
            .bind(flags[3])
            .bind(version)
            .bind(&p.doc.description)
            .bind(now)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        }
        sqlx::query("INSERT INTO module_versions (path, version, author, created_at, comment, content) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(&path)
            .bind(version)
            .bind(&user.name)
            .bind(now)
            .bind(&p.comment)
            .bind(serde_json::to_string(&p.doc)?)
            .execute(&mut **tx)
            .await?;
        written.push((path, version as u32));
    }
    Ok(written)
}
