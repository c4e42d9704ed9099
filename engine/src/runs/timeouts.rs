//! Per-state timeouts: one sleeping task per transitional state. If the run is still in that
//! state when the task wakes, the orchestrator gets a timeout naming the instances not done;
//! if it is still stuck a period later (at least [`REPEAT_MIN_MS`], so stopping scripts and
//! sending reports always fit), the run is stopped.

use std::time::Duration;

use model::RunState;
use sqlx::Row;

use crate::orchestrator::Event;
use crate::{now_ms, Engine, Result};

/// The least time an aborted run that is stuck gets before it is stopped.
const REPEAT_MIN_MS: i64 = 30_000;

impl Engine {
    /// Arms the timeout of `state`, entered at `since` (also after a restart).
    pub(crate) async fn schedule_timeout(&self, run: &str, state: RunState, since: i64) -> Result<()> {
        let seconds: i64 = sqlx::query("SELECT timeout_seconds FROM runs WHERE id = $1")
            .bind(run)
            .fetch_one(&self.db.pool)
            .await?
            .try_get("timeout_seconds")?;
        let engine = self.clone();
        let run = run.to_string();
        tokio::spawn(async move {
            let mut wake_at = since + seconds * 1000;
            let mut repeated = false;
            loop {
                tokio::time::sleep(Duration::from_millis((wake_at - now_ms()).max(0) as u64)).await;
                let row =
                    sqlx::query("SELECT state, state_changed_at FROM runs WHERE id = $1").bind(&run).fetch_optional(&engine.db.pool).await;
                let Ok(Some(row)) = row else { return };
                let now_state: String = row.try_get("state").unwrap_or_default();
                let changed: i64 = row.try_get("state_changed_at").unwrap_or(0);
                if now_state != state.as_str() || changed != since {
                    return; // the run moved on
                }
                let pending = engine.pending_instances(&run, state).await.unwrap_or_default();
                if let Err(e) = engine.drive(&run, Event::Timeout { pending, minutes: (seconds + 59) / 60, repeated }).await {
                    tracing::error!(run, error = %e, "timeout handling failed");
                }
                repeated = true;
                wake_at = now_ms() + (seconds * 1000).max(REPEAT_MIN_MS);
            }
        });
        Ok(())
    }

    /// The instances that have not completed `state` (those that failed to start excepted).
    async fn pending_instances(&self, run: &str, state: RunState) -> Result<Vec<String>> {
        let rows =
            sqlx::query("SELECT name FROM run_instances WHERE run_id = $1 AND start_failed = 0 AND completed <> $2 ORDER BY node, idx")
                .bind(run)
                .bind(state.as_str())
                .fetch_all(&self.db.pool)
                .await?;
        rows.iter().map(|r| Ok(r.try_get("name")?)).collect()
    }
}
