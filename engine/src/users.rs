//! Accounts: registration (the first registered user becomes the administrator), argon2
//! password hashes, session cookies and bearer API tokens (stored only as SHA-256 hashes),
//! and the profile settings later issues use (keep-running default, run timeout, SSH key).

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use sha2::{Digest, Sha256};
use sqlx::Row;

pub use model::account::{ApiToken, Profile, User};

use crate::{now_ms, Engine, Error, Result};

/// The owner of the example modules; it cannot sign in.
pub const SYSTEM_USER: &str = "slipstream";
/// A session ends after this long unused (each use moves its end, at most hourly)...
pub const SESSION_IDLE_MS: i64 = 7 * 24 * 3600 * 1000;
/// ...and this long after sign-in whatever the use.
pub const SESSION_MAX_MS: i64 = 30 * 24 * 3600 * 1000;
const SESSION_REFRESH_MS: i64 = 3600 * 1000;
/// Sessions one account keeps; signing in once more ends the oldest.
pub const MAX_SESSIONS: i64 = 50;
/// How long an invitation link stays valid unless the administrator says otherwise.
pub const INVITATION_DAYS: i64 = 7;
const FIRST_ADMIN_KEY: &str = "first_admin";
const MIN_PASSWORD_LEN: usize = 8;
/// An argon2 hash of a random password, verified against when the user does not exist.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2xpcHN0cmVhbWR1bW15$0D3Q5Cg4m0dYDD7wNRQm0Vf0yq9rX0bqN2oVqD3Cw3E";
pub const KEEP_RUNNING: [&str; 4] = ["never", "on-success", "on-error", "always"];

/// User names: 2–32 characters, lower-case letters, digits, `-`, `_`, `.`, starting with a letter.
pub fn check_user_name(name: &str) -> Result<()> {
    let ok = (2..=32).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "",
            "name",
            format!("`{name}` is not a user name: 2 to 32 lower-case letters, digits, `-`, `_` or `.`, starting with a letter"),
        ))
    }
}

fn check_password(password: &str) -> Result<()> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(Error::invalid("", "password", format!("must have at least {MIN_PASSWORD_LEN} characters")));
    }
    if password.len() > 1024 {
        return Err(Error::invalid("", "password", "must have at most 1024 characters"));
    }
    Ok(())
}

/// Random bytes as lower-case hex.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the OS random source is available");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Password hashes computed at once, whatever the number of sign-ins: each argon2 hash takes
/// 19 MiB and tens of milliseconds of CPU, and 64 wrong-password logins at once once took the
/// server from 370 MB to 1.78 GB. More than this many wait their turn (a future each).
pub const HASHING_AT_ONCE: usize = 2;

static HASHING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(HASHING_AT_ONCE);

/// The most hashes that ran at the same moment (for tests).
pub static HASHING_HIGH_WATER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static HASHING_NOW: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Runs `f` (a hash) on a blocking thread once one of the [`HASHING_AT_ONCE`] places is free.
async fn bounded<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    use std::sync::atomic::Ordering;
    let _place = HASHING.acquire().await.map_err(|e| Error::Internal(e.to_string()))?;
    let now = HASHING_NOW.fetch_add(1, Ordering::SeqCst) + 1;
    HASHING_HIGH_WATER.fetch_max(now, Ordering::SeqCst);
    let out = tokio::task::spawn_blocking(f).await.map_err(|e| Error::Internal(e.to_string()));
    HASHING_NOW.fetch_sub(1, Ordering::SeqCst);
    out
}

/// Hashing is CPU-bound (tens of milliseconds): keep it off the async workers.
async fn hash_password(password: String) -> Result<String> {
    bounded(move || {
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt).expect("the OS random source is available");
        let salt = SaltString::encode_b64(&salt).map_err(|e| Error::Internal(e.to_string()))?;
        Argon2::default().hash_password(password.as_bytes(), &salt).map(|h| h.to_string()).map_err(|e| Error::Internal(e.to_string()))
    })
    .await?
}

async fn verify_password(password: String, hash: String) -> bool {
    bounded(move || PasswordHash::new(&hash).map(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok()).unwrap_or(false))
        .await
        .unwrap_or(false)
}

/// Who may create an account (`--registration`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Registration {
    /// Anyone who reaches the server (the default: a server on a trusted network).
    #[default]
    Open,
    /// Only with an invitation link an administrator made.
    Invite,
    /// Nobody: administrators create accounts with `slipstream admin create`.
    Closed,
}

impl std::str::FromStr for Registration {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "open" => Ok(Self::Open),
            "invite" => Ok(Self::Invite),
            "closed" => Ok(Self::Closed),
            _ => Err(format!("`{s}` is not a registration policy: open, invite or closed")),
        }
    }
}

/// The end of a session used at `now`: `None` while its end is less than an hour old news
/// (no write per request), else the idle period from now, never past the absolute limit.
pub fn slid_expiry(created_at: i64, expires_at: i64, now: i64) -> Option<i64> {
    let wanted = (now + SESSION_IDLE_MS).min(created_at + SESSION_MAX_MS);
    (wanted - expires_at >= SESSION_REFRESH_MS).then_some(wanted)
}

fn too_many(what: &str, wait_ms: i64) -> Error {
    let secs = (wait_ms as u64).div_ceil(1000).max(1);
    Error::RateLimited { message: format!("too many {what}; try again in {secs} s"), retry_after_secs: secs }
}

fn user_from_row(row: &sqlx::any::AnyRow) -> Result<User> {
    Ok(User { name: row.try_get("name")?, is_admin: row.try_get::<i64, _>("is_admin")? != 0 })
}

impl Engine {
    /// Creates an account as the registration policy allows (`invitation`: the token of an
    /// invitation link, used up by this). The first account (not counting the system user)
    /// is the administrator: exactly one, even for sign-ups at the same moment on PostgreSQL.
    /// `client` is the caller's address: sign-ups per address are limited.
    pub async fn register(&self, name: &str, password: &str, invitation: Option<&str>, client: &str) -> Result<User> {
        let now = now_ms();
        if let Some(wait) = self.rt.limits.register_per_address.check(client, now) {
            return Err(too_many("sign-ups from your address", wait));
        }
        check_user_name(name)?;
        check_password(password)?;
        let policy = self.rt.config.registration;
        let invitation = invitation.map(str::trim).filter(|t| !t.is_empty());
        match (policy, invitation) {
            (Registration::Closed, _) => {
                return Err(Error::Forbidden("sign-up is closed on this server: an administrator creates accounts".into()))
            }
            (Registration::Invite, None) => {
                return Err(Error::Forbidden("sign-up on this server needs an invitation link from an administrator".into()))
            }
            _ => {}
        }
        self.rt.limits.register_per_address.record(client, now);
        let hash = hash_password(password.to_string()).await?;
        let mut tx = self.db.begin_write().await?;
        if sqlx::query("SELECT name FROM users WHERE name = $1").bind(name).fetch_optional(&mut *tx).await?.is_some() {
            return Err(Error::Conflict(format!("the user name `{name}` is taken")));
        }
        if let (Registration::Invite, Some(token)) = (policy, invitation) {
            let used = sqlx::query(
                "UPDATE invitations SET used_by = $1, used_at = $2 WHERE token_hash = $3 AND used_by IS NULL AND expires_at > $2",
            )
            .bind(name)
            .bind(now)
            .bind(sha256_hex(token))
            .execute(&mut *tx)
            .await?;
            if used.rows_affected() != 1 {
                return Err(Error::Forbidden("this invitation link is not valid: used, expired or mistyped".into()));
            }
        }
        sqlx::query("INSERT INTO users (name, password_hash, is_admin, created_at) VALUES ($1, $2, 0, $3)")
            .bind(name)
            .bind(&hash)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let is_admin = claim_first_admin(&mut tx, name).await?;
        tx.commit().await?;
        tracing::info!(user = name, is_admin, "user registered");
        Ok(User { name: name.to_string(), is_admin })
    }

    /// An invitation link's token (shown once; only its hash is kept), valid for `days`.
    pub async fn create_invitation(&self, actor: &User, days: Option<i64>) -> Result<(String, i64)> {
        if !actor.is_admin {
            return Err(Error::Forbidden("only administrators invite".into()));
        }
        let days = days.unwrap_or(INVITATION_DAYS);
        if !(1..=90).contains(&days) {
            return Err(Error::invalid("", "days", "must be between 1 and 90"));
        }
        let token = format!("ssi_{}", random_hex(24));
        let now = now_ms();
        let expires_at = now + days * 24 * 3600 * 1000;
        sqlx::query("INSERT INTO invitations (token_hash, created_by, created_at, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(sha256_hex(&token))
            .bind(&actor.name)
            .bind(now)
            .bind(expires_at)
            .execute(&self.db.pool)
            .await?;
        Ok((token, expires_at))
    }

    /// Changes the caller's password after checking the current one; every session of the
    /// account is ended (a stolen cookie stops working) and a new one returned for the caller.
    pub async fn change_password(&self, user: &User, current: &str, new: &str, client: &str) -> Result<String> {
        check_password(new).map_err(|_| Error::invalid("", "new", format!("must have {MIN_PASSWORD_LEN} to 1024 characters")))?;
        // The same check and limits as a sign-in: a borrowed session cannot guess the password.
        self.check_credentials(&user.name, current, client).await.map_err(|e| match e {
            Error::Unauthorized(_) => Error::invalid("", "current", "is not your password"),
            e => e,
        })?;
        let hash = hash_password(new.to_string()).await?;
        sqlx::query("UPDATE users SET password_hash = $1 WHERE name = $2").bind(hash).bind(&user.name).execute(&self.db.pool).await?;
        self.end_sessions_of(&user.name).await?;
        self.open_session(&user.name).await
    }

    /// Ends every session of `name` (password changed or reset).
    async fn end_sessions_of(&self, name: &str) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE user_name = $1").bind(name).execute(&self.db.pool).await?;
        self.rt.auth.clear();
        Ok(())
    }

    /// Makes `name` an administrator, creating the account if it does not exist
    /// (`slipstream admin create`). An existing account keeps its password unless one is given.
    pub async fn create_admin(&self, name: &str, password: Option<&str>) -> Result<User> {
        check_user_name(name)?;
        if name == SYSTEM_USER {
            return Err(Error::invalid("", "name", format!("`{SYSTEM_USER}` is reserved")));
        }
        let exists = sqlx::query("SELECT name FROM users WHERE name = $1").bind(name).fetch_optional(&self.db.pool).await?;
        match (exists, password) {
            (Some(_), pw) => {
                if let Some(pw) = pw {
                    check_password(pw)?;
                    let hash = hash_password(pw.to_string()).await?;
                    sqlx::query("UPDATE users SET password_hash = $1 WHERE name = $2").bind(hash).bind(name).execute(&self.db.pool).await?;
                    self.end_sessions_of(name).await?;
                }
                sqlx::query("UPDATE users SET is_admin = 1 WHERE name = $1").bind(name).execute(&self.db.pool).await?;
            }
            (None, Some(pw)) => {
                check_password(pw)?;
                let hash = hash_password(pw.to_string()).await?;
                sqlx::query("INSERT INTO users (name, password_hash, is_admin, created_at) VALUES ($1, $2, 1, $3)")
                    .bind(name)
                    .bind(hash)
                    .bind(now_ms())
                    .execute(&self.db.pool)
                    .await?;
            }
            (None, None) => return Err(Error::invalid("", "password", "a new administrator needs a password")),
        }
        // An administrator exists now: a later sign-up must not become one too.
        let mut tx = self.db.begin_write().await?;
        claim_first_admin(&mut tx, name).await?;
        tx.commit().await?;
        self.rt.auth.clear();
        Ok(User { name: name.to_string(), is_admin: true })
    }

    /// Checks the password and opens a session; returns the user and the session token for
    /// the cookie. Wrong passwords are limited per account and per client address (`client`):
    /// past the limit the answer is 429 before any hash is computed.
    pub async fn login(&self, name: &str, password: &str, client: &str) -> Result<(User, String)> {
        let user = self.check_credentials(name, password, client).await?;
        let token = self.open_session(&user.name).await?;
        Ok((user, token))
    }

    /// The account if `password` is its password, within the sign-in limits.
    async fn check_credentials(&self, name: &str, password: &str, client: &str) -> Result<User> {
        let limits = &self.rt.limits;
        let now = now_ms();
        let account = name.to_ascii_lowercase();
        if let Some(wait) = limits.login_per_account.check(&account, now) {
            return Err(too_many("failed sign-ins for this account", wait));
        }
        if let Some(wait) = limits.login_per_address.check(client, now) {
            return Err(too_many("failed sign-ins from your address", wait));
        }
        let failed = || {
            limits.login_per_account.record(&account, now);
            limits.login_per_address.record(client, now);
            Error::Unauthorized("wrong user name or password".into())
        };
        let row = sqlx::query("SELECT name, is_admin, password_hash, is_system FROM users WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.db.pool)
            .await?;
        let Some(row) = row else {
            // Spend the same time as for a real account, so timing does not tell which names exist.
            verify_password(password.to_string(), DUMMY_HASH.to_string()).await;
            return Err(failed());
        };
        if row.try_get::<i64, _>("is_system")? != 0 {
            return Err(failed());
        }
        let hash: String = row.try_get("password_hash")?;
        if !verify_password(password.to_string(), hash).await {
            return Err(failed());
        }
        limits.login_per_account.clear(&account);
        user_from_row(&row)
    }

    /// Opens a session for `name` (just registered, or signed in); returns its token.
    pub async fn open_session(&self, name: &str) -> Result<String> {
        let token = random_hex(32);
        let now = now_ms();
        sqlx::query("INSERT INTO sessions (token_hash, user_name, created_at, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(sha256_hex(&token))
            .bind(name)
            .bind(now)
            .bind(now + SESSION_IDLE_MS)
            .execute(&self.db.pool)
            .await?;
        sqlx::query(
            "DELETE FROM sessions WHERE user_name = $1 AND token_hash NOT IN \
             (SELECT token_hash FROM sessions WHERE user_name = $1 ORDER BY created_at DESC, token_hash LIMIT $2)",
        )
        .bind(name)
        .bind(MAX_SESSIONS)
        .execute(&self.db.pool)
        .await?;
        Ok(token)
    }

    pub async fn logout(&self, session_token: &str) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1").bind(sha256_hex(session_token)).execute(&self.db.pool).await?;
        self.rt.auth.clear();
        Ok(())
    }

    /// Deletes the sessions that have expired; returns how many (run at start and hourly).
    pub async fn delete_expired_sessions(&self) -> Result<u64> {
        let done = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1").bind(now_ms()).execute(&self.db.pool).await?;
        Ok(done.rows_affected())
    }

    pub async fn user_for_session(&self, session_token: &str) -> Result<Option<User>> {
        let hash = sha256_hex(session_token);
        let now = now_ms();
        if let Some(u) = self.rt.auth.get(&hash, now) {
            return Ok(Some(u));
        }
        let row = sqlx::query(
            "SELECT u.name, u.is_admin, s.created_at, s.expires_at FROM sessions s JOIN users u ON u.name = s.user_name \
             WHERE s.token_hash = $1 AND s.expires_at > $2",
        )
        .bind(&hash)
        .bind(now)
        .fetch_optional(&self.db.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let user = user_from_row(&row)?;
        let mut expires_at: i64 = row.try_get("expires_at")?;
        // Sliding expiry: a session in use lives on (up to its absolute limit).
        if let Some(later) = slid_expiry(row.try_get("created_at")?, expires_at, now) {
            sqlx::query("UPDATE sessions SET expires_at = $1 WHERE token_hash = $2").bind(later).bind(&hash).execute(&self.db.pool).await?;
            expires_at = later;
        }
        self.rt.auth.keep(hash, user.clone(), Some(expires_at));
        Ok(Some(user))
    }

    /// The token's user; "last used" is written when the answer is not remembered, so at most
    /// once per [`crate::auth_cache::TTL`] for a busy token.
    pub async fn user_for_api_token(&self, token: &str) -> Result<Option<User>> {
        let hash = sha256_hex(token);
        if let Some(u) = self.rt.auth.get(&hash, now_ms()) {
            return Ok(Some(u));
        }
        let row = sqlx::query("SELECT u.name, u.is_admin FROM api_tokens t JOIN users u ON u.name = t.user_name WHERE t.token_hash = $1")
            .bind(&hash)
            .fetch_optional(&self.db.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE token_hash = $2")
            .bind(now_ms())
            .bind(&hash)
            .execute(&self.db.pool)
            .await?;
        let user = user_from_row(&row)?;
        self.rt.auth.keep(hash, user.clone(), None);
        Ok(Some(user))
    }

    /// Creates a bearer token for scripts and CI. The secret is returned once and only its
    /// hash is kept.
    pub async fn create_api_token(&self, user: &User, name: &str) -> Result<(ApiToken, String)> {
        let name = name.trim();
        if name.is_empty() || name.len() > 64 {
            return Err(Error::invalid("", "name", "a token needs a name of 1 to 64 characters"));
        }
        let secret = format!("sst_{}", random_hex(24));
        let token = ApiToken { id: uuid::Uuid::new_v4().to_string(), name: name.to_string(), created_at: now_ms(), last_used_at: None };
        sqlx::query("INSERT INTO api_tokens (id, user_name, name, token_hash, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&token.id)
            .bind(&user.name)
            .bind(&token.name)
            .bind(sha256_hex(&secret))
            .bind(token.created_at)
            .execute(&self.db.pool)
            .await?;
        Ok((token, secret))
    }

    pub async fn list_api_tokens(&self, user: &User) -> Result<Vec<ApiToken>> {
        let rows = sqlx::query("SELECT id, name, created_at, last_used_at FROM api_tokens WHERE user_name = $1 ORDER BY created_at, id")
            .bind(&user.name)
            .fetch_all(&self.db.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(ApiToken {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    created_at: r.try_get("created_at")?,
                    last_used_at: r.try_get("last_used_at")?,
                })
            })
            .collect()
    }

    pub async fn revoke_api_token(&self, user: &User, id: &str) -> Result<()> {
        let done =
            sqlx::query("DELETE FROM api_tokens WHERE id = $1 AND user_name = $2").bind(id).bind(&user.name).execute(&self.db.pool).await?;
        self.rt.auth.clear();
        if done.rows_affected() == 0 {
            return Err(Error::NotFound(format!("you have no API token `{id}`")));
        }
        Ok(())
    }

    pub async fn profile(&self, user: &User) -> Result<Profile> {
        let r = sqlx::query("SELECT name, is_admin, keep_running, run_timeout_minutes, ssh_public_key FROM users WHERE name = $1")
            .bind(&user.name)
            .fetch_one(&self.db.pool)
            .await?;
        Ok(Profile {
            name: r.try_get("name")?,
            is_admin: r.try_get::<i64, _>("is_admin")? != 0,
            keep_running: r.try_get("keep_running")?,
            run_timeout_minutes: r.try_get("run_timeout_minutes")?,
            ssh_public_key: r.try_get("ssh_public_key")?,
        })
    }

    pub async fn update_profile(&self, user: &User, keep_running: &str, run_timeout_minutes: i64, ssh_public_key: &str) -> Result<Profile> {
        if !KEEP_RUNNING.contains(&keep_running) {
            return Err(Error::invalid("", "keep_running", format!("`{keep_running}` is not one of {KEEP_RUNNING:?}")));
        }
        if !(1..=7 * 24 * 60).contains(&run_timeout_minutes) {
            return Err(Error::invalid("", "run_timeout_minutes", "must be between 1 minute and 7 days"));
        }
        if ssh_public_key.len() > 16 * 1024 {
            return Err(Error::invalid("", "ssh_public_key", "is longer than 16 KiB"));
        }
        sqlx::query("UPDATE users SET keep_running = $1, run_timeout_minutes = $2, ssh_public_key = $3 WHERE name = $4")
            .bind(keep_running)
            .bind(run_timeout_minutes)
            .bind(ssh_public_key)
            .bind(&user.name)
            .execute(&self.db.pool)
            .await?;
        self.profile(user).await
    }

    /// The system user that owns the examples; created once, cannot sign in.
    pub(crate) async fn ensure_system_user(&self) -> Result<()> {
        sqlx::query(
            "INSERT INTO users (name, password_hash, is_admin, is_system, created_at) VALUES ($1, '!', 0, 1, $2) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(SYSTEM_USER)
        .bind(now_ms())
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }
}

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "slipstream_session";

/// The session token in a `Cookie` header, if any.
pub fn session_from_cookie_header(cookie: &str) -> Option<&str> {
    cookie.split(';').filter_map(|c| c.trim().split_once('=')).find(|(k, _)| *k == SESSION_COOKIE).map(|(_, v)| v)
}

/// `Set-Cookie` value opening a session (HttpOnly: scripts never see it; `secure`: over
/// HTTPS only).
pub fn session_cookie_with(token: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}", SESSION_MAX_MS / 1000)
}

/// The address sign-in limits count for a request from `peer`: the peer itself, or behind a
/// proxy the last address of `X-Forwarded-For` (the one the proxy added; earlier ones are
/// whatever the client sent).
pub fn client_address(peer: Option<std::net::IpAddr>, forwarded_for: Option<&str>, behind_proxy: bool) -> String {
    let forwarded = forwarded_for
        .filter(|_| behind_proxy)
        .and_then(|f| f.rsplit(',').next())
        .map(str::trim)
        .and_then(|a| a.parse::<std::net::IpAddr>().ok());
    match forwarded.or(peer) {
        Some(ip) => ip.to_string(),
        None => "unknown".into(),
    }
}

impl Engine {
    /// [`client_address`] with this server's proxy setting.
    pub fn client_address(&self, peer: Option<std::net::IpAddr>, forwarded_for: Option<&str>) -> String {
        client_address(peer, forwarded_for, self.rt.config.behind_proxy)
    }
}

/// Claims the first administrator for `name` inside `tx`; true if it was still free (then
/// `name` is made administrator). A unique key decides: concurrent claims get one winner.
async fn claim_first_admin(tx: &mut sqlx::Transaction<'static, sqlx::Any>, name: &str) -> Result<bool> {
    let claimed = sqlx::query("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
        .bind(FIRST_ADMIN_KEY)
        .bind(name)
        .execute(&mut **tx)
        .await?
        .rows_affected()
        == 1;
    if claimed {
        sqlx::query("UPDATE users SET is_admin = 1 WHERE name = $1").bind(name).execute(&mut **tx).await?;
    }
    Ok(claimed)
}

impl Engine {
    /// `Set-Cookie` value opening a session, `Secure` when the server is set so.
    pub fn session_cookie(&self, token: &str) -> String {
        session_cookie_with(token, self.rt.config.secure_cookies)
    }

    /// `Set-Cookie` value ending the session.
    pub fn clear_session_cookie(&self) -> String {
        let secure = if self.rt.config.secure_cookies { "; Secure" } else { "" };
        format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}")
    }
}

impl Engine {
    /// The caller named by a request's `Authorization: Bearer …` header or session cookie.
    /// A bearer token that matches nobody is an error (scripts should fail loudly); a stale
    /// cookie just means "anonymous".
    pub async fn authenticate(&self, cookie: Option<&str>, authorization: Option<&str>) -> Result<Option<User>> {
        if let Some(auth) = authorization {
            let token = auth
                .strip_prefix("Bearer ")
                .map(str::trim)
                .ok_or_else(|| Error::Unauthorized("the Authorization header must be `Bearer <token>`".into()))?;
            return match self.user_for_api_token(token).await? {
                Some(u) => Ok(Some(u)),
                None => Err(Error::Unauthorized("the API token is not valid (revoked or mistyped)".into())),
            };
        }
        match cookie.and_then(session_from_cookie_header) {
            Some(token) => self.user_for_session(token).await,
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_flood_of_sign_ins_hashes_a_few_at_a_time() {
        let attempts: Vec<_> = (0..16).map(|i| tokio::spawn(verify_password(format!("wrong {i}"), DUMMY_HASH.to_string()))).collect();
        for a in attempts {
            assert!(!a.await.unwrap(), "a wrong password never verifies");
        }
        let most = HASHING_HIGH_WATER.load(std::sync::atomic::Ordering::SeqCst);
        assert!((1..=HASHING_AT_ONCE).contains(&most), "{most} hashes ran at once");
    }

    #[test]
    fn the_dummy_hash_is_a_real_argon2_hash() {
        // If it did not parse, logins for unknown names would return at once and tell them apart.
        let h = PasswordHash::new(DUMMY_HASH).expect("parses");
        assert_eq!(h.algorithm.as_str(), "argon2id");
        assert!(Argon2::default().verify_password(b"anything", &h).is_err());
    }

    #[tokio::test]
    async fn expired_sessions_are_deleted_and_live_ones_kept() {
        let engine = Engine::open(&crate::testing::sqlite_url()).await.unwrap();
        engine.register("olivia", "correct horse", None, "test").await.unwrap();
        let (_, old) = engine.login("olivia", "correct horse", "test").await.unwrap();
        let (_, live) = engine.login("olivia", "correct horse", "test").await.unwrap();
        sqlx::query("UPDATE sessions SET expires_at = 0 WHERE token_hash = $1")
            .bind(sha256_hex(&old))
            .execute(&engine.db.pool)
            .await
            .unwrap();
        assert_eq!(engine.delete_expired_sessions().await.unwrap(), 1);
        assert!(engine.user_for_session(&old).await.unwrap().is_none());
        assert!(engine.user_for_session(&live).await.unwrap().is_some());
    }

    #[test]
    fn sessions_slide_hourly_up_to_their_absolute_limit() {
        const H: i64 = 3600 * 1000;
        // (created, expires, now, new expiry)
        let table = [
            (0, SESSION_IDLE_MS, 0, None),
            (0, SESSION_IDLE_MS, H / 2, None),
            (0, SESSION_IDLE_MS, H, Some(SESSION_IDLE_MS + H)),
            (0, SESSION_IDLE_MS, 5 * 24 * H, Some(SESSION_IDLE_MS + 5 * 24 * H)),
            (0, SESSION_MAX_MS, SESSION_MAX_MS - H, None),
            (0, SESSION_MAX_MS - 2 * H, SESSION_MAX_MS - 3 * H, Some(SESSION_MAX_MS)),
        ];
        for (created, expires, now, want) in table {
            assert_eq!(slid_expiry(created, expires, now), want, "{created} {expires} {now}");
        }
    }

    #[test]
    fn the_client_address_is_the_peer_unless_behind_a_proxy() {
        let peer = Some("10.0.0.1".parse().unwrap());
        let table = [
            (peer, None, false, "10.0.0.1"),
            (peer, Some("1.2.3.4"), false, "10.0.0.1"),
            (peer, Some("6.6.6.6, 1.2.3.4"), true, "1.2.3.4"),
            (peer, Some("garbage"), true, "10.0.0.1"),
            (None, None, true, "unknown"),
        ];
        for (peer, fwd, proxy, want) in table {
            assert_eq!(client_address(peer, fwd, proxy), want, "{fwd:?} {proxy}");
        }
        assert_eq!("invite".parse::<Registration>().unwrap(), Registration::Invite);
        assert!("maybe".parse::<Registration>().unwrap_err().contains("open, invite or closed"));
    }

    #[tokio::test]
    async fn an_administrator_reset_ends_the_accounts_sessions_and_claims_the_first_admin() {
        let engine = Engine::open(&crate::testing::sqlite_url()).await.unwrap();
        let root = engine.create_admin("root", Some("root password")).await.unwrap();
        assert!(root.is_admin);
        let olivia = engine.register("olivia", "correct horse", None, "test").await.unwrap();
        assert!(!olivia.is_admin, "an administrator exists already: the first sign-up is not one");
        let (_, session) = engine.login("olivia", "correct horse", "test").await.unwrap();
        assert!(engine.user_for_session(&session).await.unwrap().is_some());
        engine.create_admin("olivia", Some("a new password")).await.unwrap();
        assert!(engine.user_for_session(&session).await.unwrap().is_none(), "the reset ended the session");
        assert!(engine.login("olivia", "a new password", "test").await.unwrap().0.is_admin);
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        assert_eq!(session_from_cookie_header("a=1; slipstream_session=abc; b=2"), Some("abc"));
        assert_eq!(session_from_cookie_header("a=1"), None);
        assert!(session_cookie_with("t", false).contains("HttpOnly") && !session_cookie_with("t", false).contains("Secure"));
        assert!(session_cookie_with("t", true).ends_with("; Secure"));
    }
}
