//! The runtime-parameter store of a run: per-run keys (see [`model::ParamKey`]), unset until
//! first written; a read of an unset key blocks until it is written, the run aborts, or the
//! deadline passes. A write commits before it answers (a 200 survives a crash), then copies the
//! value along the run's links and wakes the readers. Abort is a sticky, first-writer-wins
//! flag: once raised, every parameter call of the run fails fast with 409 (the agent's own
//! bookkeeping calls pass `ignore_abort`).

mod commit;
mod memory;

use std::sync::Arc;
use std::time::Duration;

use model::{KeyOwner, ParamKey, MAX_VALUE_LEN};
use sqlx::Row;

pub(crate) use commit::{Committer, Op};
pub(crate) use memory::{LiveParams, LiveRun, Slot};

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
    /// The run as the parameter store holds it in memory (loaded on first use).
    pub(crate) async fn live_run(&self, run: &str) -> Result<Arc<LiveRun>> {
        if let Some(r) = self.rt.params.get(run) {
            return Ok(r);
        }
        let epoch = self.rt.params.epoch();
        let (owner, token_hash, ended) = self.run_identity_row(run).await?;
        let values = sqlx::query("SELECT key, value FROM run_params WHERE run_id = $1")
            .bind(run)
            .fetch_all(&self.db.pool)
            .await?
            .iter()
            .map(|r| Ok((r.try_get("key")?, r.try_get("value")?)))
            .collect::<Result<Vec<_>>>()?;
        let links = sqlx::query("SELECT source, target FROM run_links WHERE run_id = $1")
            .bind(run)
            .fetch_all(&self.db.pool)
            .await?
            .iter()
            .map(|r| Ok((r.try_get("source")?, r.try_get("target")?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(self.rt.params.keep(run, LiveRun::new(owner, token_hash, ended, values, links), epoch))
    }

    /// Who owns the run, its agent token's hash, whether it ended: from memory when the run is
    /// loaded, else from its row alone (an ended run, or one whose parameters nobody asked for
    /// yet, is not loaded whole just to authorize a request).
    pub(crate) async fn run_identity(&self, run: &str) -> Result<(String, String, bool)> {
        match self.rt.params.get(run) {
            Some(r) => Ok((r.owner.clone(), r.token_hash.clone(), r.ended)),
            None => self.run_identity_row(run).await,
        }
    }

    async fn run_identity_row(&self, run: &str) -> Result<(String, String, bool)> {
        let row = sqlx::query("SELECT owner, token_hash, ended_at FROM runs WHERE id = $1")
            .bind(run)
            .fetch_optional(&self.db.pool)
            .await?
            .ok_or_else(|| Error::NotFound(format!("run `{run}` does not exist")))?;
        Ok((row.try_get("owner")?, row.try_get("token_hash")?, row.try_get::<Option<i64>, _>("ended_at")?.is_some()))
    }

    pub async fn abort_message(&self, run: &str) -> Result<Option<String>> {
        if let Some(live) = self.rt.params.get(run) {
            return Ok(live.abort());
        }
        // Not in memory (an ended run is never kept): its one row, not the whole run — the
        // driver asks this of every run it looks at, ended ones too.
        let row = sqlx::query("SELECT value FROM run_params WHERE run_id = $1 AND key = 'ss:abort'")
            .bind(run)
            .fetch_optional(&self.db.pool)
            .await?;
        Ok(row.map(|r| r.try_get::<Option<String>, _>("value")).transpose()?.flatten())
    }

    /// What `key` holds and the run's abort flag: from memory for a live run (loaded on first
    /// use); for an ended run, which is never kept, its two rows.
    async fn slot_and_abort(&self, run: &str, key: &str) -> Result<(Slot, Option<String>)> {
        if let Some(live) = self.rt.params.get(run) {
            return Ok(live.slot_and_abort(key));
        }
        if !self.run_identity_row(run).await?.2 {
            return Ok(self.live_run(run).await?.slot_and_abort(key));
        }
        let rows = sqlx::query("SELECT key, value FROM run_params WHERE run_id = $1 AND (key = $2 OR key = 'ss:abort')")
            .bind(run)
            .bind(key)
            .fetch_all(&self.db.pool)
            .await?;
        let (mut slot, mut abort) = (Slot::Missing, None);
        for r in rows {
            let (k, v): (String, Option<String>) = (r.try_get("key")?, r.try_get("value")?);
            if k == "ss:abort" {
                abort = v.clone();
            }
            if k == key {
                slot = v.map_or(Slot::Unset, Slot::Set);
            }
        }
        Ok((slot, abort))
    }

    fn aborted_error(run: &str, msg: &str) -> Error {
        Error::Conflict(format!("run `{run}` is aborted: {msg}"))
    }

    /// Reads a parameter; with `wait`, blocks until it is set, the run aborts, or the deadline.
    pub async fn get_param(&self, run: &str, key: &ParamKey, wait: Option<Duration>, ignore_abort: bool) -> Result<String> {
        let k = key.to_string();
        let deadline = tokio::time::Instant::now() + wait.unwrap_or_default();
        // What the key holds answers the read, unless it is unset and there is time to wait.
        let answer = |(slot, abort): (Slot, Option<String>)| match (slot, abort) {
            (Slot::Missing, _) => Some(Err(Error::NotFound(format!("run `{run}` has no parameter `{k}`")))),
            (_, Some(msg)) if !ignore_abort => Some(Err(Self::aborted_error(run, &msg))),
            (Slot::Set(v), _) => Some(Ok(v)),
            (Slot::Unset, _) if tokio::time::Instant::now() >= deadline => Some(Err(Error::Timeout(format!("`{k}` is not set yet")))),
            (Slot::Unset, _) => None,
        };
        // Most reads find the key set: no notifier for them.
        if let Some(done) = answer(self.slot_and_abort(run, &k).await?) {
            return done;
        }
        let key_notify = self.rt.waits.key(run, &k);
        let run_notify = self.rt.waits.run(run);
        loop {
            // Register interest first, then read: a write between the two still wakes us.
            let on_key = key_notify.notified();
            let on_run = run_notify.notified();
            tokio::pin!(on_key, on_run);
            on_key.as_mut().enable();
            on_run.as_mut().enable();
            if let Some(done) = answer(self.slot_and_abort(run, &k).await?) {
                return done;
            }
            tokio::select! {
                _ = &mut on_key => {}
                _ = &mut on_run => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
        }
    }

    /// Writes a parameter (`source`: who writes, for abort messages) and follows its links.
    /// The write is committed (with others waiting at the same moment) before it answers.
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
        let live = self.live_run(run).await?;
        let (slot, abort) = live.slot_and_abort(&k);
        if slot == Slot::Missing {
            return Err(Error::NotFound(format!("run `{run}` has no parameter `{k}`")));
        }
        if let (false, Some(msg)) = (ignore_abort, abort) {
            return Err(Self::aborted_error(run, &msg));
        }
        let links = live.links_of(&k).to_vec();
        let keys: Vec<String> = std::iter::once(k).chain(links).collect();
        self.rt.committer.write(run, keys.clone(), value.to_string()).await?;
        for key in keys {
            self.publish(LiveEvent::Param { run: run.into(), owner: live.owner.clone(), key, value: Some(value.to_string()) });
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
        let seq = self.rt.params.next_seq();
        if source != "ss" {
            let own = format!("{source}:abort");
            let set = sqlx::query("UPDATE run_params SET value = $1 WHERE run_id = $2 AND key = $3 AND value IS NULL")
                .bind(&message)
                .bind(run)
                .bind(&own)
                .execute(&self.db.pool)
                .await?;
            if set.rows_affected() > 0 {
                self.rt.params.apply(run, &own, Some(&message), seq);
            }
        }
        let raised = done.rows_affected() > 0;
        if raised {
            self.rt.params.apply(run, "ss:abort", Some(&message), seq);
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
        let own = format!("{source}:abort");
        sqlx::query("UPDATE run_params SET value = NULL WHERE run_id = $1 AND (key = 'ss:abort' OR key = $2)")
            .bind(run)
            .bind(&own)
            .execute(&self.db.pool)
            .await?;
        let seq = self.rt.params.next_seq();
        self.rt.params.apply(run, "ss:abort", None, seq);
        self.rt.params.apply(run, &own, None, seq);
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
