//! The versioned module store. Every save writes a new immutable version (numbered per module
//! from 1) with its author, time and comment; settings that decide access (owner, public
//! rights, publication) belong to the module, not to a version. Saves and imports go through
//! one path: [`Engine::plan`] validates everything and checks rights without writing, then
//! [`Engine::write_plan`] writes it all in one transaction, so a rejected save writes nothing.

use std::collections::{BTreeMap, HashMap};

use model::validate::validate_module;
use model::{FieldError, Module, ModuleKind, ModulePath, ModuleSummary, PublicRights, VersionInfo};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::access::{self, Access, Op};
use crate::{now_ms, Engine, Error, Result, User};

/// The stored settings of a module.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Meta {
    pub path: String,
    pub kind: ModuleKind,
    pub owner: String,
    pub public: PublicRights,
    pub published: bool,
    pub latest_version: u32,
    pub description: String,
    pub updated_at: i64,
}

impl Meta {
    pub fn access(&self) -> Access {
        Access { owner: self.owner.clone(), public: self.public, published: self.published }
    }
    fn summary(&self) -> ModuleSummary {
        ModuleSummary {
            path: self.path.clone(),
            kind: self.kind,
            description: self.description.clone(),
            owner: self.owner.clone(),
            version: self.latest_version,
            public: self.public,
            published: self.published,
            updated_at: self.updated_at,
        }
    }
}

/// The columns [`meta_from_row`] reads; a macro so queries stay `&'static str` (sqlx 0.9
/// refuses SQL built at run time unless audited).
macro_rules! meta_columns {
    () => {
        "path, kind, owner, public_read, public_write, public_deploy, published, latest_version, description, updated_at"
    };
}

fn meta_from_row(r: &AnyRow) -> Result<Meta> {
    let flag = |c: &str| -> Result<bool> { Ok(r.try_get::<i64, _>(c)? != 0) };
    let kind: String = r.try_get("kind")?;
    Ok(Meta {
        path: r.try_get("path")?,
        kind: ModuleKind::parse(&kind).ok_or_else(|| Error::Internal(format!("unknown module kind `{kind}` in the database")))?,
        owner: r.try_get("owner")?,
        public: PublicRights { read: flag("public_read")?, write: flag("public_write")?, deploy: flag("public_deploy")? },
        published: flag("published")?,
        latest_version: r.try_get::<i64, _>("latest_version")? as u32,
        description: r.try_get("description")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn parse_path(raw: &str) -> Result<ModulePath> {
    ModulePath::parse(raw).map_err(|e| Error::invalid(raw, "path", e))
}

fn signed_in<'a>(actor: Option<&'a User>, what: &str) -> Result<&'a User> {
    actor.ok_or_else(|| Error::Unauthorized(format!("sign in to {what}")))
}

/// A module about to be written.
#[derive(Clone, Debug)]
pub(crate) struct Planned {
    pub doc: Module,
    pub existing: Option<Meta>,
    pub public: PublicRights,
    pub published: bool,
    pub comment: String,
}

impl Engine {
    pub(crate) async fn meta(&self, path: &str) -> Result<Option<Meta>> {
        let row = sqlx::query(concat!("SELECT ", meta_columns!(), " FROM modules WHERE path = $1"))
            .bind(path)
            .fetch_optional(&self.db.pool)
            .await?;
        row.as_ref().map(meta_from_row).transpose()
    }

    /// The settings of a module the actor may act on, or the reason why not.
    async fn meta_for(&self, actor: Option<&User>, path: &ModulePath, op: Op) -> Result<Meta> {
        let meta = self.meta(path.as_str()).await?.ok_or_else(|| Error::NotFound(format!("module `{path}` does not exist")))?;
        access::check(actor, path.as_str(), &meta.access(), op)?;
        Ok(meta)
    }

    /// Reads a stored version without checking rights (callers check first).
    pub(crate) async fn read_version(&self, meta: &Meta, version: Option<u32>) -> Result<Module> {
        let version = version.unwrap_or(meta.latest_version);
        let row = sqlx::query("SELECT version, author, created_at, comment, content FROM module_versions WHERE path = $1 AND version = $2")
            .bind(&meta.path)
            .bind(version as i64)
            .fetch_optional(&self.db.pool)
            .await?
            .ok_or_else(|| Error::NotFound(format!("module `{}` has no version {version}", meta.path)))?;
        let content: String = row.try_get("content")?;
        let mut m: Module = serde_json::from_str(&content)?;
        m.version = Some(version);
        m.author = Some(row.try_get("author")?);
        m.created_at = Some(row.try_get("created_at")?);
        let comment: String = row.try_get("comment")?;
        m.comment = (!comment.is_empty()).then_some(comment);
        m.owner = Some(meta.owner.clone());
        m.public = Some(meta.public);
        m.published = Some(meta.published);
        Ok(m)
    }

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

    /// Published modules, for the public catalog.
    pub async fn catalog(&self, query: &str, kind: Option<ModuleKind>) -> Result<Vec<ModuleSummary>> {
        let rows = sqlx::query(concat!("SELECT ", meta_columns!(), " FROM modules WHERE published = 1 ORDER BY path"))
            .fetch_all(&self.db.pool)
            .await?;
        let q = query.to_lowercase();
        let mut out = Vec::new();
        for r in &rows {
            let meta = meta_from_row(r)?;
            let matches = q.is_empty() || meta.path.to_lowercase().contains(&q) || meta.description.to_lowercase().contains(&q);
            if matches && kind.is_none_or(|k| k == meta.kind) {
                out.push(meta.summary());
            }
        }
        Ok(out)
    }

    /// The logos of published modules (path → logo), read from their latest versions in one
    /// query, for the catalog page.
    pub async fn catalog_logos(&self) -> Result<HashMap<String, String>> {
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

    /// The fields that differ between two versions of a module, scripts as line diffs.
    pub async fn compare_versions(&self, actor: Option<&User>, path: &str, from: u32, to: u32) -> Result<Vec<model::diff::FieldChange>> {
        let p = parse_path(path)?;
        let meta = self.meta_for(actor, &p, Op::Read).await?;
        let a = flatten(&serde_json::to_value(self.read_version(&meta, Some(from)).await?.content())?);
        let b = flatten(&serde_json::to_value(self.read_version(&meta, Some(to)).await?.content())?);
        Ok(model::diff::compare_fields(&a, &b))
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
        let mut tx = self.db.pool.begin().await?;
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

    /// Writes a plan in one transaction; returns each module's path and new version.
    pub(crate) async fn write_plan(&self, user: &User, plan: &[Planned]) -> Result<Vec<(String, u32)>> {
        let mut tx = self.db.pool.begin().await?;
        let written = write_planned(&mut tx, user, plan).await?;
        tx.commit().await?;
        for (path, version) in &written {
            tracing::info!(path, version, user = user.name, "module saved");
        }
        Ok(written)
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
