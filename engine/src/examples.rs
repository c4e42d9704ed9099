//! The example modules (`examples/…`), loaded once on first start, owned by the system user,
//! public and published. They are the scenarios the run engine must bring up end to end.

use crate::users::SYSTEM_USER;
use crate::{bundle, modules, Engine, Result, User};

pub const EXAMPLES_YAML: &str = include_str!("../../examples/examples.yaml");
const LOADED_KEY: &str = "examples_loaded";

impl Engine {
    /// Loads the examples unless they were loaded before (even if users deleted them since).
    /// Returns how many modules were written.
    pub async fn load_examples(&self) -> Result<usize> {
        self.ensure_system_user().await?;
        let loaded = sqlx::query("SELECT value FROM settings WHERE key = $1").bind(LOADED_KEY).fetch_optional(&self.db.pool).await?;
        if loaded.is_some() {
            return Ok(0);
        }
        let system = User { name: SYSTEM_USER.into(), is_admin: true };
        let mut docs = bundle::parse_bundle(EXAMPLES_YAML)?;
        for d in &mut docs {
            d.comment = Some("Example shipped with Slipstream".into());
        }
        let plan = self.plan(&system, docs, true).await?;
        let mut tx = self.db.begin_write().await?;
        // The marker is written with the modules: a crash leaves neither or both.
        let marker = sqlx::query("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
            .bind(LOADED_KEY)
            .bind(crate::now_ms().to_string())
            .execute(&mut *tx)
            .await?;
        if marker.rows_affected() == 0 {
            return Ok(0); // another process got there first
        }
        let written = modules::write_planned(&mut tx, &system, &plan).await?;
        tx.commit().await?;
        tracing::info!(modules = written.len(), "example modules loaded");
        Ok(written.len())
    }
}
