//! The core of Slipstream, without HTTP: everything the server, the CLI and the UI's server
//! functions call. The database is the source of truth; what is held in memory (live runs'
//! parameters, barrier counts, who a token belongs to) is rebuilt from it on demand.
//!
//! # Layout
//! - [`db`]: the connection pool (SQLite by default, PostgreSQL for `postgres://` URLs) and migrations
//! - [`error`]: [`Error`], the one error type of the engine's boundary
//! - [`users`]: accounts, password hashing, sessions, API tokens, profiles (`auth_cache`: who a secret belongs to, for a few seconds)
//! - [`accounts`]: per-connector settings, write-only credentials and quotas
//! - [`access`]: who may do what to a module (pure rules, table-tested)
//! - [`modules`]: the versioned module store: save, read, history, restore, delete, catalog
//! - [`orchestrator`]: the run lifecycle as pure decisions (`next(run, event) -> actions`)
//! - [`inherit`]: inheritance resolution of images (effective parameters, target chains)
//! - [`check`]: validation across modules (references, cycles, links, unresolved inputs)
//! - [`bundle`]: multi-document YAML import and export of module trees
//! - [`examples`]: the example modules loaded on first start
//! - [`runs`]: runs: planning (pure), creation, the driver, barriers, timeouts, recovery, logs, reports, events
//! - [`params`]: the runtime-parameter store with blocking reads, links and abort
//! - [`waits`]: register-then-read-then-wait notifications (no lost wake-ups, no polling)
//! - [`connector`], [`connectors`]: where instances run (configured connectors: local, docker)
//! - [`testing`]: fresh SQLite and PostgreSQL databases for tests

pub mod access;
pub mod accounts;
mod auth_cache;
pub mod bundle;
pub mod check;
pub mod connector;
pub mod connectors;
pub mod db;
pub mod error;
pub mod examples;
pub mod inherit;
pub mod modules;
pub mod orchestrator;
pub mod params;
pub mod rate_limit;
pub mod runs;
pub mod secrets;
pub mod sweeps;
pub mod testing;
pub mod users;
pub mod waits;

pub use access::{Actor, Op};
pub use db::Db;
pub use error::{Error, Result};
pub use model::{ApiToken, ModuleSummary, Profile, User, VersionInfo};

/// Where runs keep their files, which agent the connectors install, and which connectors
/// this server has.
#[derive(Clone, Debug, Default)]
pub struct RunConfig {
    /// Instances' working directories and report bundles live under it.
    pub data_dir: std::path::PathBuf,
    /// The static `slipstream-agent` binary.
    pub agent_bin: Option<std::path::PathBuf>,
    /// The configured connectors; none: one `local` connector.
    pub connectors: Vec<connector::ConnectorConfig>,
    /// The largest report bundle accepted, in bytes (`None`: 256 MiB).
    pub report_limit: Option<u64>,
    /// Session cookies are `Secure` (sent over HTTPS only).
    pub secure_cookies: bool,
    /// Who may create an account.
    pub registration: users::Registration,
    /// Clients come through a proxy that appends their address to `X-Forwarded-For`: the
    /// sign-in limits count that address instead of the proxy's.
    pub behind_proxy: bool,
}

type ConnectorMap = std::collections::BTreeMap<String, std::sync::Arc<dyn connector::Connector>>;

/// The engine: cheap to clone, shared by every request.
#[derive(Clone)]
pub struct Engine {
    pub db: Db,
    pub(crate) rt: std::sync::Arc<Runtime>,
}

/// In-memory state of the engine: caches and notifiers that can be rebuilt from the database.
pub(crate) struct Runtime {
    pub waits: std::sync::Arc<waits::Waits>,
    /// Live runs' parameters in memory, and the task that commits writes in groups.
    pub params: std::sync::Arc<params::LiveParams>,
    pub committer: params::Committer,
    /// Who recent session cookies and API tokens belong to.
    pub auth: auth_cache::AuthCache,
    /// Sign-in and sign-up attempts per account and address.
    pub limits: rate_limit::AccountLimits,
    /// Seals connector credentials in the database.
    pub secrets: secrets::SecretBox,
    pub config: RunConfig,
    pub service_url: std::sync::OnceLock<String>,
    /// Per-run locks and agent tokens of live runs.
    pub runs: runs::registry::RunRegistry,
    pub connectors: ConnectorMap,
    pub live: tokio::sync::broadcast::Sender<runs::LiveEvent>,
    /// Held while a launch checks quotas and writes its run.
    pub launches: tokio::sync::Mutex<()>,
    /// Instances the reaper's last pass found that their live run did not know (connector,
    /// handle): stopped if the next pass finds them still unknown.
    pub unknown_instances: std::sync::Mutex<std::collections::HashSet<(String, String)>>,
}

impl Engine {
    /// Connects to the database named by `url`, applies the migrations of its backend and
    /// returns the engine. Fails (and the server refuses to start) if a migration fails.
    pub async fn open(url: &str) -> Result<Self> {
        Self::open_with(url, RunConfig { data_dir: std::env::temp_dir().join("slipstream-engine"), ..Default::default() }).await
    }

    /// [`Engine::open`] with the run settings; builds the configured connectors.
    pub async fn open_with(url: &str, config: RunConfig) -> Result<Self> {
        // Loopback addresses are handed out from a random point of a 4-million-address range:
        // several servers on one host (or one restarted next to live instances) do not meet.
        let mut seed = [0u8; 4];
        getrandom::fill(&mut seed).expect("the OS random source is available");
        let first_address = u64::from(u32::from_le_bytes(seed) % connectors::local::ADDRESS_SPACE);
        let cx = connectors::Context {
            data_dir: config.data_dir.clone(),
            agent_bin: config.agent_bin.clone(),
            first_address,
            server_id: server_id(&config.data_dir)?,
        };
        let built = connectors::build(&config.connectors, &cx).map_err(|e| Error::invalid("", "connectors", e))?;
        Self::open_with_connectors(url, config, built).await
    }

    /// [`Engine::open_with`] with connectors built by the caller (tests script their own).
    pub async fn open_with_connectors(url: &str, config: RunConfig, connectors: ConnectorMap) -> Result<Self> {
        let db = Db::connect(url).await?;
        let key_dir =
            if config.data_dir.as_os_str().is_empty() { std::env::temp_dir().join("slipstream-engine") } else { config.data_dir.clone() };
        let secrets = secrets::SecretBox::load(&key_dir)?;
        accounts::seal_stored_credentials(&db, &secrets).await?;
        let (live, _) = tokio::sync::broadcast::channel(4096);
        let params = std::sync::Arc::new(params::LiveParams::default());
        let waits = std::sync::Arc::new(waits::Waits::default());
        let rt = Runtime {
            committer: params::Committer::start(db.clone(), params.clone(), waits.clone()),
            params,
            auth: Default::default(),
            limits: Default::default(),
            secrets,
            waits,
            config,
            service_url: std::sync::OnceLock::new(),
            runs: Default::default(),
            connectors,
            live,
            launches: Default::default(),
            unknown_instances: Default::default(),
        };
        Ok(Self { db, rt: std::sync::Arc::new(rt) })
    }

    /// The URL agents use to reach this server; set once the server listens.
    pub fn set_service_url(&self, url: &str) {
        let _ = self.rt.service_url.set(url.trim_end_matches('/').to_string());
    }

    /// The connector named `name`, if this server has it.
    pub fn connector(&self, name: &str) -> Option<&dyn connector::Connector> {
        self.rt.connectors.get(name).map(|c| c.as_ref())
    }

    /// Every configured connector.
    pub fn connectors(&self) -> impl Iterator<Item = &dyn connector::Connector> {
        self.rt.connectors.values().map(|c| c.as_ref())
    }

    /// The parameter keys of a run that readers are blocked on right now, with reader counts.
    pub fn waiting_keys(&self, run: &str) -> Vec<(String, usize)> {
        self.rt.waits.waiting(run)
    }

    /// The names of the connectors this server has.
    pub fn connector_names(&self) -> Vec<String> {
        self.rt.connectors.keys().cloned().collect()
    }
}

/// This server's identity, kept in `<data-dir>/server-id`: connectors label what they make
/// with it, so a server finds its own containers again and never touches another's.
fn server_id(data_dir: &std::path::Path) -> Result<String> {
    let path = data_dir.join("server-id");
    if let Ok(id) = std::fs::read_to_string(&path) {
        let id = id.trim();
        if !id.is_empty() {
            return Ok(id.to_string());
        }
    }
    std::fs::create_dir_all(data_dir).map_err(|e| Error::Internal(format!("{}: {e}", data_dir.display())))?;
    let id = users::random_hex(8);
    std::fs::write(&path, &id).map_err(|e| Error::Internal(format!("{}: {e}", path.display())))?;
    Ok(id)
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
