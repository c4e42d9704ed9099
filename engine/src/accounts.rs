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
        let rows = sqlx::query("SELECT connector, settings, credential, quota, updated_at FROM connector_accounts WHERE user_name = $1")
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
                ),
            );
        }
        let in_use = self.instances_in_use(&user.name).await?;
        Ok(self
            .connector_names()
            .into_iter()
            .map(|c| {
                let (settings, credential_set, quota, updated_at) = match stored.remove(&c) {
                    Some((s, set, q, at)) => (s, set, q, Some(at)),
                    None => (BTreeMap::new(), false, None, None),
                };
                ConnectorAccount { in_use: in_use.get(&c).copied().unwrap_or(0), connector: c, settings, credential_set, quota, updated_at }
            })
            .collect())
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
        // No credential given (NULL) keeps the stored one.
        sqlx::query(
            "INSERT INTO connector_accounts (user_name, connector, settings, credential, updated_at) VALUES ($1, $2, $3, COALESCE($4, ''), $5) \
             ON CONFLICT (user_name, connector) DO UPDATE SET settings = $3, credential = COALESCE($4, connector_accounts.credential), updated_at = $5",
        )
        .bind(&user.name)
        .bind(connector)
        .bind(&settings)
        .bind(update.credential.as_deref())
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

    /// Sets (or, with `None`, lifts) a user's quota on a connector. Administrators only.
    pub async fn set_quota(&self, actor: &User, user_name: &str, connector: &str, quota: Option<i64>) -> Result<()> {
        if !actor.is_admin {
            return Err(Error::Forbidden("only an administrator sets quotas".into()));
        }
        self.known_connector(connector)?;
        if quota.is_some_and(|q| q < 0) {
            return Err(Error::invalid("", "quota", "must be 0 or more instances"));
        }
        let exists = sqlx::query("SELECT 1 AS one FROM users WHERE name = $1").bind(user_name).fetch_optional(&self.db.pool).await?;
        if exists.is_none() {
            return Err(Error::NotFound(format!("no user `{user_name}`")));
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
        let rows = sqlx::query(
            "SELECT i.connector AS connector, COUNT(*) AS n FROM run_instances i JOIN runs r ON r.id = i.run_id \
             WHERE r.owner = $1 AND r.ended_at IS NULL GROUP BY i.connector",
        )
        .bind(user_name)
        .fetch_all(&self.db.pool)
        .await?;
        rows.iter().map(|r| Ok((r.try_get::<String, _>("connector")?, r.try_get::<i64, _>("n")?))).collect()
    }

    /// Refuses a run that would take the user over a quota: `wanted` instances per connector.
    pub(crate) async fn check_quota(&self, user_name: &str, wanted: &BTreeMap<String, i64>) -> Result<()> {
        let rows = sqlx::query("SELECT connector, quota FROM connector_accounts WHERE user_name = $1 AND quota IS NOT NULL")
            .bind(user_name)
            .fetch_all(&self.db.pool)
            .await?;
        if rows.is_empty() {
            return Ok(());
        }
        let in_use = self.instances_in_use(user_name).await?;
        for r in &rows {
            let connector: String = r.try_get("connector")?;
            let quota: i64 = r.try_get("quota")?;
            let want = wanted.get(&connector).copied().unwrap_or(0);
            let used = in_use.get(&connector).copied().unwrap_or(0);
            if want > 0 && used + want > quota {
                return Err(Error::QuotaExceeded(format!(
                    "this run needs {want} instance(s) on `{connector}`, and {used} of your quota of {quota} are in use"
                )));
            }
        }
        Ok(())
    }

    /// What a connector gets of the user's account when it starts their instances.
    pub(crate) async fn account_for(&self, user_name: &str, connector: &str) -> Result<crate::connector::Account> {
        let row = sqlx::query("SELECT settings, credential FROM connector_accounts WHERE user_name = $1 AND connector = $2")
            .bind(user_name)
            .bind(connector)
            .fetch_optional(&self.db.pool)
            .await?;
        let Some(row) = row else { return Ok(crate::connector::Account::default()) };
        let credential: String = row.try_get("credential")?;
        Ok(crate::connector::Account {
            settings: serde_json::from_str(&row.try_get::<String, _>("settings")?)?,
            credential: (!credential.is_empty()).then_some(credential),
        })
    }
}
