//! The runtime-parameter store of a run: per-run keys (see [`model::ParamKey`]), unset until
//! first written; a read of an unset key blocks until it is written, the run aborts, or the
//! deadline passes. A write commits before it answers (a 200 survives a crash), then copies the
//! value along the run's links and wakes the readers. Abort is a sticky, first-writer-wins
//! flag: once raised, every parameter call of the run fails fast with 409 (the agent's own
//! bookkeeping calls pass `ignore_abort`).

use std::time::Duration;

use model::{KeyOwner, ParamKey, MAX_VALUE_LEN};
use sqlx::Row;

use crate::orchestrator::Event;
use crate::runs::LiveEvent;
use crate::{Engine, Error, Result};

/// Abort messages are cut in the middle to fit a parameter, as the original did.
fn truncate_middle(msg: &str) -> String {
    if msg.len() <= MAX_VALUE_LEN {
        return msg.to_string();
    }
    let marker = "\n(truncated)\n";
    let keep = (MAX_VALUE_LEN - marker.len()) / 2;
    let head: String = msg.chars().take(keep).collect();
    let tail: String = msg.chars().rev().take(keep).collect::<Vec<_>>().into_iter().rev().collect();
    let mut out = format!("{head}{marker}{tail}");
    while out.len() > MAX_VALUE_LEN {
        out.remove(0);
    }
    out
}

impl Engine {
    pub async fn abort_message(&self, run: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT value FROM run_params WHERE run_id = $1 AND key = 'ss:abort'")
            .bind(run)
            .fetch_optional(&self.db.pool)
            .await?;
        Ok(row.map(|r| r.try_get::<Option<String>, _>("value")).transpose()?.flatten())
    }

    fn aborted_error(run: &str, msg: &str) -> Error {
        Error::Conflict(format!("run `{run}` is aborted: {msg}"))
    }

    /// Reads a parameter; with `wait`, blocks until it is set, the run aborts, or the deadline.
    pub async fn get_param(&self, run: &str, key: &ParamKey, wait: Option<Duration>, ignore_abort: bool) -> Result<String> {
        let k = key.to_string();
        let key_notify = self.rt.waits.key(run, &k);
        let run_notify = self.rt.waits.run(run);
        let deadline = tokio::time::Instant::now() + wait.unwrap_or_default();
        loop {
            // Register interest first, then read: a write between the two still wakes us.
            let on_key = key_notify.notified();
            let on_run = run_notify.notified();
            tokio::pin!(on_key, on_run);
            on_key.as_mut().enable();
            on_run.as_mut().enable();
            let rows = sqlx::query("SELECT key, value FROM run_params WHERE run_id = $1 AND (key = $2 OR key = 'ss:abort')")
                .bind(run)
                .bind(&k)
                .fetch_all(&self.db.pool)
                .await?;
            let mut found = None;
            let mut abort = None;
            for r in &rows {
                let rk: String = r.try_get("key")?;
                let v: Option<String> = r.try_get("value")?;
                if rk == "ss:abort" {
                    abort = v.clone();
                }
                if rk == k {
                    found = Some(v);
                }
            }
            let Some(value) = found else {
                return Err(Error::NotFound(format!("run `{run}` has no parameter `{k}`")));
            };
            if let (false, Some(msg)) = (ignore_abort, &abort) {
                return Err(Self::aborted_error(run, msg));
            }
            if let Some(v) = value {
                return Ok(v);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Timeout(format!("`{k}` is not set yet")));
            }
            tokio::select! {
                _ = &mut on_key => {}
                _ = &mut on_run => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
        }
    }

    /// Writes a parameter (`source`: who writes, for abort messages) and follows its links.
    pub async fn set_param(&self, run: &str, key: &ParamKey, value: &str, ignore_abort: bool, source: &str) -> Result<()> {
        let k = key.to_string();
        if k == "ss:state" {
            return Err(Error::Forbidden("`ss:state` is set by the orchestrator only".into()));
        }
        if key.name == "abort" {
            let origin = match &key.owner {
                KeyOwner::Instance(n, i) => format!("{n}.{i}"),
                _ => source.to_string(),
            };
            self.raise_abort(run, &origin, value).await?;
            return Ok(());
        }
        if value.len() > MAX_VALUE_LEN {
            return Err(Error::TooLarge(format!("the value of `{k}` is {} characters; the limit is {MAX_VALUE_LEN}", value.len())));
        }
        if !ignore_abort {
            if let Some(msg) = self.abort_message(run).await? {
                return Err(Self::aborted_error(run, &msg));
            }
        }
        let mut tx = self.db.begin_write().await?;
        let done = sqlx::query("UPDATE run_params SET value = $1 WHERE run_id = $2 AND key = $3")
            .bind(value)
            .bind(run)
            .bind(&k)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound(format!("run `{run}` has no parameter `{k}`")));
        }
        let targets: Vec<String> = sqlx::query("SELECT target FROM run_links WHERE run_id = $1 AND source = $2")
            .bind(run)
            .bind(&k)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| r.try_get("target"))
            .collect::<std::result::Result<_, _>>()?;
        for t in &targets {
            sqlx::query("UPDATE run_params SET value = $1 WHERE run_id = $2 AND key = $3")
                .bind(value)
                .bind(run)
                .bind(t)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        let owner = self.run_owner(run).await?;
        for key in std::iter::once(&k).chain(targets.iter()) {
            self.rt.waits.wake_key(run, key);
            self.publish(LiveEvent::Param { run: run.into(), owner: owner.clone(), key: key.clone(), value: Some(value.to_string()) });
        }
        Ok(())
    }

    /// Raises the run's abort flag (first message wins) and tells the orchestrator.
    /// Returns whether this call raised it.
    pub async fn raise_abort(&self, run: &str, source: &str, message: &str) -> Result<bool> {
        let raised = {
            let lock = self.rt.runs.lock(run);
            let _held = lock.lock().await;
            self.raise_abort_locked(run, source, message).await?
        };
        if raised {
            self.drive(run, Event::Aborted).await?;
        }
        Ok(raised)
    }

    /// [`Engine::raise_abort`] for callers that already hold the run's lock.
    pub(crate) async fn raise_abort_locked(&self, run: &str, source: &str, message: &str) -> Result<bool> {
        let message = if message.trim().is_empty() { "(unspecified)".to_string() } else { truncate_middle(message) };
        let state = self.run_state(run).await?;
        if state.is_terminal() {
            return Ok(false);
        }
        let done = sqlx::query("UPDATE run_params SET value = $1 WHERE run_id = $2 AND key = 'ss:abort' AND value IS NULL")
            .bind(&message)
            .bind(run)
            .execute(&self.db.pool)
            .await?;
        if source != "ss" {
            sqlx::query("UPDATE run_params SET value = $1 WHERE run_id = $2 AND key = $3 AND value IS NULL")
                .bind(&message)
                .bind(run)
                .bind(format!("{source}:abort"))
                .execute(&self.db.pool)
                .await?;
        }
        let raised = done.rows_affected() > 0;
        if raised {
            let owner = self.run_owner(run).await?;
            self.event(run, &owner, "abort", &format!("Abort from '{source}': {message}")).await?;
            self.publish(LiveEvent::Param { run: run.into(), owner, key: "ss:abort".into(), value: Some(message.clone()) });
            tracing::info!(run, source, message, "run aborted");
            // Every blocked reader of the run returns at once with 409.
            self.rt.waits.wake_run(run);
            self.rt.waits.wake_key(run, "ss:abort");
        }
        Ok(raised)
    }

    /// `ss-abort --cancel`: clears the run's and the instance's abort flags (for debugging).
    pub async fn cancel_abort(&self, run: &str, source: &str) -> Result<()> {
        sqlx::query("UPDATE run_params SET value = NULL WHERE run_id = $1 AND (key = 'ss:abort' OR key = $2)")
            .bind(run)
            .bind(format!("{source}:abort"))
            .execute(&self.db.pool)
            .await?;
        let owner = self.run_owner(run).await?;
        self.event(run, &owner, "abort-cancelled", &format!("Reset abort from '{source}'")).await?;
        self.publish(LiveEvent::Param { run: run.into(), owner, key: "ss:abort".into(), value: None });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn long_abort_messages_are_cut_in_the_middle() {
        let msg = format!("{}{}", "a".repeat(5000), "z".repeat(5000));
        let cut = super::truncate_middle(&msg);
        assert!(cut.len() <= 4096);
        assert!(cut.starts_with('a') && cut.ends_with('z') && cut.contains("(truncated)"));
        assert_eq!(super::truncate_middle("short"), "short");
    }
}
