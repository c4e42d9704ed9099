//! One pool for both backends through sqlx's Any driver: the backend comes from the URL scheme,
//! each backend has its own migrations folder, and every query is written once with `$1`
//! placeholders, which SQLite and PostgreSQL both accept.

use sqlx::pool::PoolOptions;
use sqlx::{Any, AnyPool};

use crate::Result;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone, Debug)]
pub struct Db {
    pub pool: AnyPool,
    pub backend: Backend,
}

impl Db {
    /// A transaction that will write: on SQLite it takes the write lock at once (`BEGIN
    /// IMMEDIATE`, waiting its turn behind other writers), so a read inside it can never be
    /// overtaken by another writer and fail with "database is locked" when it writes.
    pub async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Any>> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    pub async fn connect(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let (backend, url) = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_string())
        } else if url.starts_with("sqlite:") {
            // Create the file on first start unless the URL says otherwise.
            let url = if url.contains("mode=") || url.contains(":memory:") {
                url.to_string()
            } else if url.contains('?') {
                format!("{url}&mode=rwc")
            } else {
                format!("{url}?mode=rwc")
            };
            (Backend::Sqlite, url)
        } else {
            return Err(crate::Error::invalid("", "database-url", format!("`{url}` is neither a sqlite: nor a postgres:// URL")));
        };
        let max = if backend == Backend::Sqlite { 8 } else { 16 };
        let pool = PoolOptions::<Any>::new()
            .max_connections(max)
            .connect(&url)
            .await
            .map_err(|e| crate::Error::Internal(format!("cannot open the database {}: {e}", redact(&url))))?;
        if backend == Backend::Sqlite {
            // WAL lets readers proceed while a save commits; a busy writer waits instead of failing.
            sqlx::query("PRAGMA journal_mode = WAL").execute(&pool).await?;
        }
        match backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&pool).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&pool).await?,
        }
        Ok(Self { pool, backend })
    }
}

/// A database URL without its password, for messages and logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..s + 3], user, &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(super::redact("postgres://ci:secret@127.0.0.1:5432/ci"), "postgres://ci:***@127.0.0.1:5432/ci");
        assert_eq!(super::redact("sqlite:data/x.db"), "sqlite:data/x.db");
    }
}
