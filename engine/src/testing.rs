//! Databases for tests: a fresh SQLite file, and a fresh PostgreSQL database on the server
//! named by `SLIPSTREAM_TEST_PG_URL` (`cargo xtask test` starts one and sets it). A test that
//! should cover both backends and finds no PostgreSQL fails instead of skipping it, unless
//! `SLIPSTREAM_TEST_SQLITE_ONLY=1` says so explicitly.

use crate::users::random_hex;

/// A fresh directory for one test, under `$TMPDIR/slipstream-tests` (which `cargo xtask test`
/// empties before each run).
pub fn temp_dir(prefix: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join("slipstream-tests").join(format!("{prefix}-{}", random_hex(6)));
    std::fs::create_dir_all(&dir).expect("temp dir is writable");
    dir
}

pub fn sqlite_url() -> String {
    format!("sqlite:{}", temp_dir("sqlite").join("slipstream.db").display())
}

/// Creates an empty database on the PostgreSQL server and returns its URL.
pub async fn postgres_url(admin_url: &str) -> String {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    // `cargo xtask test` drops every `slipstream_test_*` database when it is done.
    let name = format!("slipstream_test_{}", random_hex(6));
    let mut conn = sqlx::AnyConnection::connect(admin_url).await.expect("PostgreSQL for tests is reachable");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await.expect("create test database");
    conn.close().await.ok();
    match admin_url.rfind('/') {
        Some(i) if i > admin_url.find("://").map_or(0, |s| s + 2) => format!("{}/{name}", &admin_url[..i]),
        _ => format!("{admin_url}/{name}"),
    }
}

/// The database URLs every storage test runs against: `("sqlite", url)` and `("postgres", url)`.
pub async fn backend_urls() -> Vec<(&'static str, String)> {
    let mut out = vec![("sqlite", sqlite_url())];
    match std::env::var("SLIPSTREAM_TEST_PG_URL") {
        Ok(admin) if !admin.is_empty() => out.push(("postgres", postgres_url(&admin).await)),
        _ if std::env::var("SLIPSTREAM_TEST_SQLITE_ONLY").is_ok_and(|v| v == "1") => {}
        _ => panic!(
            "no PostgreSQL for the storage tests: run them with `cargo xtask test`, set \
             SLIPSTREAM_TEST_PG_URL=postgres://user:pw@127.0.0.1:5432/db, or set \
             SLIPSTREAM_TEST_SQLITE_ONLY=1 to run SQLite alone"
        ),
    }
    out
}

/// Another empty database on the same backend as `like` (a test needing several servers).
pub async fn fresh_url(like: &str) -> String {
    if like.starts_with("sqlite:") {
        return sqlite_url();
    }
    let admin = std::env::var("SLIPSTREAM_TEST_PG_URL").expect("a PostgreSQL URL came from SLIPSTREAM_TEST_PG_URL");
    postgres_url(&admin).await
}
