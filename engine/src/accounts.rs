//! Per-connector accounts: each user's settings and credential for a connector (the credential
//! is write-only: stored, used by connectors, never returned), and the quota an administrator
//! gives them there, checked when a run is created.

use std::collections::BTreeMap;

use model::{ConnectorAccount, ConnectorAccountUpdate, User};
use sqlx::Row;

use crate::{now_ms, Engine, Error, Result};

const MAX_SETTINGS: usize = 32;
const MAX_SETTING_LEN: usize = 4096;
const MAX_CREDENTIAL_LEN: usize = 64 * 1024;

impl Engine {
    fn known_connector(&self, connector: &str) -> Result<()> {
        if self.connector(connector).is_none() {
            return Err(Error::invalid(
                "",
                "connector",
                format!("unknown connector `{connector}`; this server has {:?}", self.connector_names()),
            ));
        }
        Ok(())
    }

    /// The user's account on every connector of this server, with the instances in use.
    pub async fn connector_accounts(&self, user: &User) -> Result<Vec<ConnectorAccount>> {
        let defaults = self.default_quotas().await?;
        let rows =
            sqlx::query("SELECT connector, settings, credential, quota, allowed, updated_at FROM connector_accounts WHERE user_name = $1")
                .bind(&user.name)
                .fetch_all(&self.db.pool)
                .await?;
        let mut stored = BTreeMap::new();
        for r in &rows {
            let settings: String = r.try_get("settings")?;
            let credential: String = r.try_get("credential")?;
            stored.insert(
                r.try_get::<String, _>("connector")?,
                (
                    serde_json::from_str::<BTreeMap<String, String>>(&settings)?,
                    !credential.is_empty(),
                    r.try_get::<Option<i64>, _>("quota")?,
                    r.try_get::<i64, _>("updated_at")?,
                    r.try_get::<i64, _>("allowed")? != 0,
                ),
            );
        }
        let in_use = self.instances_in_use(&user.name).await?;
        Ok(self
            .connector_names()
            .into_iter()
            .map(|c| {
                let (settings, credential_set, quota, updated_at, allowed) = match stored.remove(&c) {
                    Some((s, set, q, at, allowed)) => (s, set, q, Some(at), allowed),
                    None => (BTreeMap::new(), false, None, None, false),
                };
                let restricted = self.connector(&c).is_some_and(|c| c.restricted());
                ConnectorAccount {
                    in_use: in_use.get(&c).copied().unwrap_or(0),
                    quota: quota.or_else(|| defaults.get(&c).copied()),
                    may_use: !restricted || allowed || user.is_admin,
                    connector: c,
                    settings,
                    credential_set,
                    updated_at,
                }
            })
            .collect())
    }

    /// The administrators' default quotas, per connector.
    async fn default_quotas(&self) -> Result<BTreeMap<String, i64>> {
        let rows = sqlx::query("SELECT connector, quota FROM connector_defaults WHERE quota IS NOT NULL").fetch_all(&self.db.pool).await?;
        rows.iter().map(|r| Ok((r.try_get::<String, _>("connector")?, r.try_get::<i64, _>("quota")?))).collect()
    }

    /// Saves the user's settings (replacing them) and, when given, the credential.
    pub async fn save_connector_account(&self, user: &User, connector: &str, update: ConnectorAccountUpdate) -> Result<ConnectorAccount> {
        self.known_connector(connector)?;
        if update.settings.len() > MAX_SETTINGS {
            return Err(Error::invalid("", "settings", format!("at most {MAX_SETTINGS} settings")));
        }
        for (k, v) in &update.settings {
            if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.') {
                return Err(Error::invalid("", format!("settings.{k}"), "setting names use letters, digits, `_`, `-` and `.`"));
            }
            if v.len() > MAX_SETTING_LEN {
                return Err(Error::invalid("", format!("settings.{k}"), format!("is longer than {MAX_SETTING_LEN} characters")));
            }
        }
        if update.credential.as_ref().is_some_and(|c| c.len() > MAX_CREDENTIAL_LEN) {
            return Err(Error::invalid("", "credential", format!("is longer than {MAX_CREDENTIAL_LEN} characters")));
        }
        let settings = serde_json::to_string(&update.settings)?;
        let sealed = match update.credential.as_deref() {
            Some(c) => Some(self.rt.secrets.seal(&crate::secrets::credential_context(&user.name, connector), c)?),
            None => None,
        };
        // No credential given (NULL) keeps the stored one.
        sqlx::query(
            "INSERT INTO connector_accounts (user_name, connector, settings, credential, updated_at) VALUES ($1, $2, $3, COALESCE($4, ''), $5) \
             ON CONFLICT (user_name, connector) DO UPDATE SET settings = $3, credential = COALESCE($4, connector_accounts.credential), updated_at = $5",
        )
        .bind(&user.name)
        .bind(connector)
        .bind(&settings)
        .bind(sealed.as_deref())
        .bind(now_ms())
        .execute(&self.db.pool)
        .await?;
        // Names, never values: settings may hold host names, the credential is secret.
        tracing::info!(user = user.name, connector, credential_changed = update.credential.is_some(), "connector account saved");
        self.connector_account(user, connector).await
    }

    async fn connector_account(&self, user: &User, connector: &str) -> Result<ConnectorAccount> {
        self.connector_accounts(user)
            .await?
            .into_iter()
            .find(|a| a.connector == connector)
            .ok_or_else(|| Error::NotFound(format!("no connector `{connector}`")))
    }

    /// An administrator acting on an existing user's account on a known connector.
    async fn admin_on(&self, actor: &User, user_name: &str, connector: &str) -> Result<()> {
        if !actor.is_admin {
            return Err(Error::Forbidden("only an administrator sets quotas and connector access".into()));
        }
        self.known_connector(connector)?;
        let exists = sqlx::query("SELECT 1 AS one FROM users WHERE name = $1").bind(user_name).fetch_optional(&self.db.pool).await?;
        if exists.is_none() {
            return Err(Error::NotFound(format!("no user `{user_name}`")));
        }
        Ok(())
    }

    /// Sets (or, with `None`, lifts) a user's quota on a connector. Administrators only.
    pub async fn set_quota(&self, actor: &User, user_name: &str, connector: &str, quota: Option<i64>) -> Result<()> {
        self.admin_on(actor, user_name, connector).await?;
        if quota.is_some_and(|q| q < 0) {
            return Err(Error::invalid("", "quota", "must be 0 or more instances"));
        }
        sqlx::query(
            "INSERT INTO connector_accounts (user_name, connector, quota, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (user_name, connector) DO UPDATE SET quota = $3, updated_at = $4",
        )
        .bind(user_name)
        .bind(connector)
        .bind(quota)
        .bind(now_ms())
        .execute(&self.db.pool)
        .await?;
        tracing::info!(admin = actor.name, user = user_name, connector, quota, "quota set");
        Ok(())
    }

    /// Instances of the user's unfinished runs, per connector.
    pub(crate) async fn instances_in_use(&self, user_name: &str) -> Result<BTreeMap<String, i64>> {
        let mut conn = self.db.pool.acquire().await?;
        in_use(&mut conn, user_name).await
    }

    /// Refuses a run that would take the user over a quota (their own, else the connector's
    /// default): `wanted` instances per connector. Runs inside the transaction that inserts
    /// the run, under the launch lock, so two launches cannot both pass the same quota.
    pub(crate) async fn check_quota(&self, conn: &mut sqlx::AnyConnection, user_name: &str, wanted: &BTreeMap<String, i64>) -> Result<()> {
        let rows = sqlx::query(
            "SELECT d.connector AS connector, d.quota AS quota FROM connector_defaults d WHERE d.quota IS NOT NULL \
             AND NOT EXISTS (SELECT 1 FROM connector_accounts a WHERE a.user_name = $1 AND a.connector = d.connector AND a.quota IS NOT NULL) \
             UNION ALL SELECT connector, quota FROM connector_accounts WHERE user_name = $1 AND quota IS NOT NULL",
        )
        .bind(user_name)
        .fetch_all(&mut *conn)
        .await?;
        if rows.is_empty() {
            return Ok(());
        }
        let used_now = in_use(conn, user_name).await?;
        for r in &rows {
            let connector: String = r.try_get("connector")?;
            let quota: i64 = r.try_get("quota")?;
            let want = wanted.get(&connector).copied().unwrap_or(0);
            let used = used_now.get(&connector).copied().unwrap_or(0);
            if want > 0 && used + want > quota {
                return Err(Error::QuotaExceeded(format!(
                    "this run needs {want} instance(s) on `{connector}`, and {used} of your quota of {quota} are in use"
                )));
            }
        }
        Ok(())
    }

    /// Refuses a connector restricted to trusted users (the local one) to anyone but
    /// administrators and the users they allowed there.
    pub(crate) async fn check_allowed(&self, user: &User, connectors: impl Iterator<Item = &String>) -> Result<()> {
        if user.is_admin {
            return Ok(());
        }
        for name in connectors {
            if !self.connector(name).is_some_and(|c| c.restricted()) {
                continue;
            }
            let row = sqlx::query("SELECT allowed FROM connector_accounts WHERE user_name = $1 AND connector = $2")
                .bind(&user.name)
                .bind(name)
                .fetch_optional(&self.db.pool)
                .await?;
            if row.map(|r| r.try_get::<i64, _>("allowed")).transpose()?.unwrap_or(0) == 0 {
                return Err(Error::Forbidden(format!(
                    "connector `{name}` runs scripts on the server's own host; only administrators and the users they allow may use it"
                )));
            }
        }
        Ok(())
    }

    /// Lets a user use a restricted connector, or not. Administrators only.
    pub async fn set_allowed(&self, actor: &User, user_name: &str, connector: &str, allowed: bool) -> Result<()> {
        self.admin_on(actor, user_name, connector).await?;
        sqlx::query(
            "INSERT INTO connector_accounts (user_name, connector, allowed, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (user_name, connector) DO UPDATE SET allowed = $3, updated_at = $4",
        )
        .bind(user_name)
        .bind(connector)
        .bind(allowed as i64)
        .bind(now_ms())
        .execute(&self.db.pool)
        .await?;
        tracing::info!(admin = actor.name, user = user_name, connector, allowed, "connector access set");
        Ok(())
    }

    /// Sets (or lifts) the quota of every user without one of their own on a connector.
    pub async fn set_default_quota(&self, actor: &User, connector: &str, quota: Option<i64>) -> Result<()> {
        if !actor.is_admin {
            return Err(Error::Forbidden("only an administrator sets quotas".into()));
        }
        self.known_connector(connector)?;
        if quota.is_some_and(|q| q < 0) {
            return Err(Error::invalid("", "quota", "must be 0 or more instances"));
        }
        sqlx::query(
            "INSERT INTO connector_defaults (connector, quota, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (connector) DO UPDATE SET quota = $2, updated_at = $3",
        )
        .bind(connector)
        .bind(quota)
        .bind(now_ms())
        .execute(&self.db.pool)
        .await?;
        tracing::info!(admin = actor.name, connector, quota, "default quota set");
        Ok(())
    }

    /// The accounts of a run's owner, read once per connector (for calls on many instances).
    pub(crate) async fn owner_accounts(&self, run: &str) -> Result<OwnerAccounts> {
        Ok(OwnerAccounts { owner: self.run_owner(run).await?, read: BTreeMap::new() })
    }

    /// What a connector gets of the user's account when it starts their instances.
    pub(crate) async fn account_for(&self, user_name: &str, connector: &str) -> Result<crate::connector::Account> {
        let row = sqlx::query("SELECT settings, credential FROM connector_accounts WHERE user_name = $1 AND connector = $2")
            .bind(user_name)
            .bind(connector)
            .fetch_optional(&self.db.pool)
            .await?;
        let Some(row) = row else { return Ok(crate::connector::Account::default()) };
        let stored: String = row.try_get("credential")?;
        let credential = self.rt.secrets.open(&crate::secrets::credential_context(user_name, connector), &stored)?;
        Ok(crate::connector::Account {
            settings: serde_json::from_str(&row.try_get::<String, _>("settings")?)?,
            credential: (!credential.is_empty()).then_some(credential),
        })
    }
}

/// Seals credentials stored in clear by a server from before sealing (run at every start;
/// nothing to do once they are all sealed).
pub(crate) async fn seal_stored_credentials(db: &crate::db::Db, secrets: &crate::secrets::SecretBox) -> Result<()> {
    let rows =
        sqlx::query("SELECT user_name, connector, credential FROM connector_accounts WHERE credential <> ''").fetch_all(&db.pool).await?;
    for r in rows {
        let (user, connector, stored): (String, String, String) =
            (r.try_get("user_name")?, r.try_get("connector")?, r.try_get("credential")?);
        if crate::secrets::SecretBox::is_sealed(&stored) {
            continue;
        }
        let sealed = secrets.seal(&crate::secrets::credential_context(&user, &connector), &stored)?;
        sqlx::query("UPDATE connector_accounts SET credential = $1 WHERE user_name = $2 AND connector = $3 AND credential = $4")
            .bind(sealed)
            .bind(&user)
            .bind(&connector)
            .bind(&stored)
            .execute(&db.pool)
            .await?;
        tracing::info!(user, connector, "stored credential sealed");
    }
    Ok(())
}

/// A run owner's accounts, read from the database on first use per connector.
pub(crate) struct OwnerAccounts {
    owner: String,
    read: BTreeMap<String, crate::connector::Account>,
}

impl OwnerAccounts {
    pub async fn on(&mut self, engine: &Engine, connector: &str) -> Result<&crate::connector::Account> {
        if !self.read.contains_key(connector) {
            let account = engine.account_for(&self.owner, connector).await?;
            self.read.insert(connector.to_string(), account);
        }
        Ok(&self.read[connector])
    }
}

/// Instances of the user's unfinished runs, per connector, read on `conn` (inside a
/// transaction when checking a quota).
async fn in_use(conn: &mut sqlx::AnyConnection, user_name: &str) -> Result<BTreeMap<String, i64>> {
    let rows = sqlx::query(
        "SELECT i.connector AS connector, COUNT(*) AS n FROM run_instances i JOIN runs r ON r.id = i.run_id \
         WHERE r.owner = $1 AND r.ended_at IS NULL AND i.scale <> 'gone' GROUP BY i.connector",
    )
    .bind(user_name)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(|r| Ok((r.try_get::<String, _>("connector")?, r.try_get::<i64, _>("n")?))).collect()
}
