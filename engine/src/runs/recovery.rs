//! After a restart: re-attaches to what was running before. Live instances are checked with
//! their connector, timeouts re-armed, and barriers a crash may have left met but not passed
//! are evaluated again. A run caught before all its instances started cannot go on (its
//! agent token lived only in memory) and is aborted, saying so; one caught in Finalizing is
//! finished; one caught in Ready that keeps nothing goes on to its end.

use sqlx::Row;

use super::rows::parse_state;
use crate::orchestrator::Event;
use crate::{Engine, Result};
use model::RunState;

impl Engine {
    /// Recovers every run that has not ended; returns how many.
    pub async fn recover_runs(&self) -> Result<usize> {
        let rows = sqlx::query("SELECT id, state, state_changed_at FROM runs WHERE ended_at IS NULL").fetch_all(&self.db.pool).await?;
        let mut count = 0;
        for r in rows {
            let (id, state, since): (String, String, i64) = (r.try_get("id")?, r.try_get("state")?, r.try_get("state_changed_at")?);
            let state = parse_state(&state)?;
            let instances = sqlx::query("SELECT name, connector, handle FROM run_instances WHERE run_id = $1 AND handle <> ''")
                .bind(&id)
                .fetch_all(&self.db.pool)
                .await?;
            let mut alive = 0;
            let mut accounts = self.owner_accounts(&id).await?;
            for i in &instances {
                let (connector, handle): (String, String) = (i.try_get("connector")?, i.try_get("handle")?);
                let Some(c) = self.connector(&connector) else {
                    tracing::warn!(run = id, connector, "the run has instances on a connector this server no longer has");
                    continue;
                };
                match c.recover(&handle, accounts.on(self, &connector).await?).await {
                    Ok(true) => alive += 1,
                    Ok(false) => {}
                    // Not reachable now: its agent retries, and the state's timeout stays armed.
                    Err(e) => tracing::warn!(run = id, connector, error = %e, "cannot check an instance after the restart"),
                }
            }
            tracing::info!(run = id, state = state.as_str(), alive, of = instances.len(), "run recovered");
            // Instances without a handle were never started, and cannot be now: their agent
            // token lived only in memory.
            let unstarted: i64 = sqlx::query(
                "SELECT COUNT(*) AS n FROM run_instances WHERE run_id = $1 AND handle = '' AND start_failed = 0 AND scale <> 'gone'",
            )
            .bind(&id)
            .fetch_one(&self.db.pool)
            .await?
            .try_get("n")?;
            let unstarted = unstarted > 0 || state == RunState::Initializing;
            if !unstarted && !matches!(state, RunState::Ready | RunState::Finalizing) {
                self.schedule_timeout(&id, state, since).await?;
            }
            self.drive(&id, Event::Recovered { unstarted }).await?;
            count += 1;
        }
        Ok(count)
    }
}
