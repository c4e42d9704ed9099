//! Accounts as the API and the UI see them.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    pub is_admin: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    pub name: String,
    pub is_admin: bool,
    /// `never | on-success | on-error | always`: default for new runs.
    pub keep_running: String,
    pub run_timeout_minutes: i64,
    pub ssh_public_key: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiToken {
    pub id: String,
    pub name: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// A user's account on one connector, as shown back: never the credential itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectorAccount {
    pub connector: String,
    /// Non-secret settings (`host`, `user`, …).
    pub settings: std::collections::BTreeMap<String, String>,
    /// Whether a credential is stored (it is never sent back).
    pub credential_set: bool,
    /// Most instances the user may have at once on this connector (their own quota, else the
    /// connector's default); `None`: no cap.
    pub quota: Option<i64>,
    /// Whether the user may start instances there (restricted connectors: administrators and
    /// the users they allow).
    #[serde(default = "yes")]
    pub may_use: bool,
    /// Instances of the user's unfinished runs on this connector right now.
    pub in_use: i64,
    pub updated_at: Option<i64>,
}

fn yes() -> bool {
    true
}

/// What a user saves for a connector. `credential`: `None` keeps the stored one, `Some("")`
/// removes it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorAccountUpdate {
    #[serde(default)]
    pub settings: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub credential: Option<String>,
}
