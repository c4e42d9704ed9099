//! Carrying a sweep out: launch the next points while fewer than `parallel` of its runs are
//! going, until every point's run has ended. A point whose launch is refused (over a quota, a
//! bad value) stops the sweep with that reason as its state; runs already launched go on.

use std::time::Duration;

use model::sweep::SweepRequest;
use model::RunState;
use sqlx::Row;

use super::grid;
use crate::{now_ms, Engine, Result};

/// How often a sweep looks at its runs.
const TICK: Duration = Duration::from_millis(300);

/// Starts carrying out sweep `id` in a task of its own.
pub fn start(engine: Engine, id: String) {
    tokio::spawn(async move {
        if let Err(e) = carry_out(&engine, &id).await {
            tracing::error!(sweep = id, error = %e, "the sweep failed");
            let _ = set_state(&engine, &id, &format!("stopped: {e}")).await;
        }
    });
}

async fn carry_out(engine: &Engine, id: &str) -> Result<()> {
    let row = sqlx::query("SELECT owner, spec FROM sweeps WHERE id = $1").bind(id).fetch_one(&engine.db.pool).await?;
    let owner = engine.user_named(&row.try_get::<String, _>("owner")?).await?;
    let spec: SweepRequest = serde_json::from_str(&row.try_get::<String, _>("spec")?)?;
    let parallel = spec.parallel.unwrap_or(1) as usize;
    loop {
        let points = sqlx::query("SELECT idx, point, run_id FROM sweep_points WHERE sweep_id = $1 ORDER BY idx")
            .bind(id)
            .fetch_all(&engine.db.pool)
            .await?;
        let mut going = 0;
        let mut waiting = Vec::new();
        for p in &points {
            let run: String = p.try_get("run_id")?;
            if run.is_empty() {
                waiting.push((p.try_get::<i64, _>("idx")?, p.try_get::<String, _>("point")?));
            } else if !engine.run_state(&run).await.map(RunState::is_terminal).unwrap_or(true) {
                going += 1;
            }
        }
        if waiting.is_empty() && going == 0 {
            set_state(engine, id, "done").await?;
            tracing::info!(sweep = id, "sweep done");
            return Ok(());
        }
        for (idx, point) in waiting.into_iter().take(parallel.saturating_sub(going)) {
            let point = serde_json::from_str(&point)?;
            let request = grid::request_for(&spec, id, &point);
            match engine.create_run(Some(&owner), request).await {
                Ok(run) => {
                    sqlx::query("UPDATE sweep_points SET run_id = $1 WHERE sweep_id = $2 AND idx = $3")
                        .bind(&run.id)
                        .bind(id)
                        .bind(idx)
                        .execute(&engine.db.pool)
                        .await?;
                }
                Err(e) => {
                    set_state(engine, id, &format!("stopped: point {idx}: {e}")).await?;
                    return Ok(());
                }
            }
        }
        tokio::time::sleep(TICK).await;
    }
}

async fn set_state(engine: &Engine, id: &str, state: &str) -> Result<()> {
    sqlx::query("UPDATE sweeps SET state = $1, ended_at = $2 WHERE id = $3")
        .bind(state)
        .bind(now_ms())
        .bind(id)
        .execute(&engine.db.pool)
        .await?;
    Ok(())
}
