//! Retention: finished runs older than the server's setting are deleted with everything they
//! hold (instances, parameters, events, logs, report files), hourly and at start. Runs a
//! sweep or a built image still points at are kept with them.

use crate::{now_ms, Engine, Result};

/// Finished runs deleted at most per pass (a long backlog goes over several passes, so one
/// pass never holds the database for long).
const PER_PASS: i64 = 500;

impl Engine {
    /// Deletes the runs that ended more than `days` days ago; returns how many.
    pub async fn delete_finished_runs_older_than(&self, days: u32) -> Result<u64> {
        let before = now_ms() - i64::from(days) * 24 * 3600 * 1000;
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM runs WHERE ended_at IS NOT NULL AND ended_at < $1 \
             AND id NOT IN (SELECT run_id FROM sweep_points) AND id NOT IN (SELECT run_id FROM built_images) \
             ORDER BY ended_at LIMIT $2",
        )
        .bind(before)
        .bind(PER_PASS)
        .fetch_all(&self.db.pool)
        .await?;
        let mut deleted = 0;
        for id in ids {
            let mut tx = self.db.begin_write().await?;
            // Children first: the same on both backends, whatever their foreign-key setting.
            for table in ["run_logs", "run_events", "run_reports", "run_links", "run_params", "run_instances"] {
                sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table} WHERE run_id = $1"))).bind(&id).execute(&mut *tx).await?;
            }
            deleted += sqlx::query("DELETE FROM runs WHERE id = $1").bind(&id).execute(&mut *tx).await?.rows_affected();
            tx.commit().await?;
            let reports = self.rt.config.data_dir.join("reports").join(&id);
            if let Err(e) = tokio::fs::remove_dir_all(&reports).await {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(run = id, error = %e, "cannot remove a deleted run's reports");
                }
            }
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use crate::Engine;

    #[tokio::test]
    async fn finished_runs_past_retention_go_with_their_rows_and_live_ones_stay() {
        let data_dir = crate::testing::temp_dir("retention");
        let config = crate::RunConfig { data_dir: data_dir.clone(), ..Default::default() };
        let engine = Engine::open_with_connectors(&crate::testing::sqlite_url(), config, Default::default()).await.unwrap();
        engine.register("olivia", "correct horse", None, "test").await.unwrap();
        let insert = |id: &'static str, ended: Option<i64>| {
            let engine = engine.clone();
            async move {
                sqlx::query(
                    "INSERT INTO runs (id, owner, module, module_version, kind, state, keep_running, timeout_seconds, token_hash, plan, \
                     created_at, state_changed_at, ended_at) VALUES ($1, 'olivia', 'm', 1, 'image', 'Done', 'never', 60, '', '{}', 0, 0, $2)",
                )
                .bind(id)
                .bind(ended)
                .execute(&engine.db.pool)
                .await
                .unwrap();
                sqlx::query("INSERT INTO run_logs (run_id, seq, at, instance, stream, line) VALUES ($1, 1, 0, 'i', 'stdout', 'l')")
                    .bind(id)
                    .execute(&engine.db.pool)
                    .await
                    .unwrap();
            }
        };
        let day = 24 * 3600 * 1000;
        insert("old", Some(crate::now_ms() - 40 * day)).await;
        insert("recent", Some(crate::now_ms() - day)).await;
        insert("live", None).await;
        std::fs::create_dir_all(data_dir.join("reports/old/i")).unwrap();
        assert_eq!(engine.delete_finished_runs_older_than(30).await.unwrap(), 1);
        let left: Vec<String> = sqlx::query_scalar("SELECT id FROM runs ORDER BY id").fetch_all(&engine.db.pool).await.unwrap();
        assert_eq!(left, ["live", "recent"]);
        let logs: Vec<String> = sqlx::query_scalar("SELECT run_id FROM run_logs ORDER BY run_id").fetch_all(&engine.db.pool).await.unwrap();
        assert_eq!(logs, ["live", "recent"]);
        assert!(!data_dir.join("reports/old").exists());
    }
}
