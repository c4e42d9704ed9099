//! The versioned module store. Every save writes a new immutable version (numbered per module
//! from 1) with its author, time and comment; settings that decide access (owner, public
//! rights, publication) belong to the module, not to a version. Saves and imports go through
//! one path: [`Engine::plan`] validates everything and checks rights without writing, then
//! [`Engine::write_plan`] writes it all in one transaction, so a rejected save writes nothing.
//!
//! - [`read`]: reading modules, children, search, history, comparing versions
//! - [`catalog`]: published modules with their logos
//! - [`plan`]: validating documents and checking rights before anything is written
//! - [`write`]: saving, restoring, deleting, sharing, and writing a plan

use model::{Module, ModuleKind, ModulePath, ModuleSummary, PublicRights};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::access::{self, Access, Op};
use crate::{Engine, Error, Result, User};

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
    pub(crate) fn summary(&self) -> ModuleSummary {
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

// After the macro: the files below use it.
mod catalog;
mod plan;
mod read;
mod write;

pub(crate) use write::write_planned;

pub(crate) fn meta_from_row(r: &AnyRow) -> Result<Meta> {
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

pub(crate) fn parse_path(raw: &str) -> Result<ModulePath> {
    ModulePath::parse(raw).map_err(|e| Error::invalid(raw, "path", e))
}

pub(crate) fn signed_in<'a>(actor: Option<&'a User>, what: &str) -> Result<&'a User> {
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
    pub(crate) async fn meta_for(&self, actor: Option<&User>, path: &ModulePath, op: Op) -> Result<Meta> {
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
}
