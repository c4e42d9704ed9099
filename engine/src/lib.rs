//! The core of Slipstream, without HTTP: everything the server, the CLI and the UI's server
//! functions call. The database is the source of truth; nothing here caches state that cannot
//! be rebuilt from it.
//!
//! # Layout
//! - [`db`]: the connection pool (SQLite by default, PostgreSQL for `postgres://` URLs) and migrations
//! - [`error`]: [`Error`], the one error type of the engine's boundary
//! - [`users`]: accounts, password hashing, sessions, API tokens, profiles
//! - [`access`]: who may do what to a module (pure rules, table-tested)
//! - [`modules`]: the versioned module store: save, read, history, restore, delete, catalog
//! - [`orchestrator`]: the run lifecycle as pure decisions (`next(run, event) -> actions`)
//! - [`inherit`]: inheritance resolution of images (effective parameters, target chains)
//! - [`check`]: validation across modules (references, cycles, links, unresolved inputs)
//! - [`bundle`]: multi-document YAML import and export of module trees
//! - [`examples`]: the example modules loaded on first start
//! - [`testing`]: fresh SQLite and PostgreSQL databases for tests

pub mod access;
pub mod bundle;
pub mod check;
pub mod db;
pub mod error;
pub mod examples;
pub mod inherit;
pub mod modules;
pub mod orchestrator;
pub mod testing;
pub mod users;

pub use access::{Actor, Op};
pub use db::Db;
pub use error::{Error, Result};
pub use model::{ApiToken, ModuleSummary, Profile, User, VersionInfo};

/// The engine: cheap to clone, shared by every request.
#[derive(Clone)]
pub struct Engine {
    pub db: Db,
}

impl Engine {
    /// Connects to the database named by `url`, applies the migrations of its backend and
    /// returns the engine. Fails (and the server refuses to start) if a migration fails.
    pub async fn open(url: &str) -> Result<Self> {
        let db = Db::connect(url).await?;
        Ok(Self { db })
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
