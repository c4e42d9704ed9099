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
        let mut synchronous = Synchronous::Normal;
        let (backend, url) = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_string())
        } else if url.starts_with("sqlite:") {
            let (url, sync) = synchronous_of(url)?;
            synchronous = sync;
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
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // Per connection: how a commit reaches the disk (see `Synchronous`).
                        sqlx::query(synchronous.pragma()).execute(&mut *conn).await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .map_err(|e| crate::Error::Internal(format!("cannot open the database {}: {e}", redact(&url))))?;
        if backend == Backend::Sqlite {
            // WAL lets readers proceed while a save commits; a busy writer waits instead of failing.
            sqlx::query("PRAGMA journal_mode = WAL").execute(&pool).await?;
            private_files(&url);
        }
        match backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&pool).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&pool).await?,
        }
        Ok(Self { pool, backend })
    }
}

/// How a SQLite commit reaches the disk. The database runs in WAL mode, where `NORMAL`
/// writes every commit to the WAL file before the commit returns — so an answered write
/// survives the server being killed (SIGKILL, OOM, a crash) — and fsyncs at checkpoints:
/// a power loss or kernel crash may take the last commits. `FULL` fsyncs every commit
/// (survives power loss too; each commit then costs the disk's fsync time, ~0.2 ms here).
/// Chosen with `?synchronous=normal|full` in the `sqlite:` URL; `normal` by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Synchronous {
    Normal,
    Full,
}

impl Synchronous {
    fn pragma(self) -> &'static str {
        match self {
            Synchronous::Normal => "PRAGMA synchronous = NORMAL",
            Synchronous::Full => "PRAGMA synchronous = FULL",
        }
    }
}

/// Takes our `synchronous=` parameter out of a `sqlite:` URL (sqlx does not know it).
fn synchronous_of(url: &str) -> Result<(String, Synchronous)> {
    let Some((base, query)) = url.split_once('?') else { return Ok((url.to_string(), Synchronous::Normal)) };
    let mut sync = Synchronous::Normal;
    let mut rest = Vec::new();
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("synchronous", v)) => {
                sync = match v.to_ascii_lowercase().as_str() {
                    "normal" => Synchronous::Normal,
                    "full" => Synchronous::Full,
                    _ => return Err(crate::Error::invalid("", "database-url", format!("synchronous=`{v}`: use normal or full"))),
                }
            }
            _ => rest.push(pair),
        }
    }
    let url = if rest.is_empty() { base.to_string() } else { format!("{base}?{}", rest.join("&")) };
    Ok((url, sync))
}

/// The SQLite file of `url` and its WAL and shared-memory files are the server user's alone
/// (`0600`): they hold sessions, hashes and sealed credentials. Best effort: a file the
/// server does not own keeps its mode.
fn private_files(url: &str) {
    use std::os::unix::fs::PermissionsExt;
    let path = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let path = path.split('?').next().unwrap_or_default();
    if path.is_empty() || path.contains(":memory:") {
        return;
    }
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::set_permissions(format!("{path}{suffix}"), std::fs::Permissions::from_mode(0o600));
    }
}

/// A database URL without its password, for messages and logs.
/// `$first, $(first+step), …`, `count` of them: the placeholders of a statement whose number
/// of values is known only when it runs (every value is then bound, never formatted in).
pub(crate) fn placeholders(first: usize, count: usize, step: usize) -> String {
    (0..count).map(|i| format!("${}", first + i * step)).collect::<Vec<_>>().join(", ")
}

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
    use super::*;

    #[test]
    fn synchronous_is_ours_and_the_rest_goes_to_sqlx() {
        let cases = [
            ("sqlite:a.db", "sqlite:a.db", Synchronous::Normal),
            ("sqlite:a.db?synchronous=full", "sqlite:a.db", Synchronous::Full),
            ("sqlite:a.db?mode=rwc&synchronous=NORMAL", "sqlite:a.db?mode=rwc", Synchronous::Normal),
            ("sqlite:a.db?synchronous=full&mode=ro", "sqlite:a.db?mode=ro", Synchronous::Full),
        ];
        for (url, rest, sync) in cases {
            assert_eq!(synchronous_of(url).unwrap(), (rest.to_string(), sync), "{url}");
        }
        assert!(synchronous_of("sqlite:a.db?synchronous=off").unwrap_err().to_string().contains("normal or full"));
    }

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(super::redact("postgres://ci:secret@127.0.0.1:5432/ci"), "postgres://ci:***@127.0.0.1:5432/ci");
        assert_eq!(super::redact("sqlite:data/x.db"), "sqlite:data/x.db");
    }
}
