//! The driver: loads what the orchestrator needs to know of a run, asks it what follows an
//! event, and carries the actions out — state changes, starting and stopping instances,
//! raising the abort flag. Barriers are met on the completion that meets them.

use model::run::{KeepRunning, RunSummary};
use model::RunState;
use sqlx::Row;

use super::rows::parse_state;
use super::RunCaller;
use std::collections::BTreeMap;

use futures::StreamExt;

use crate::connector::{Account, AgentEnv, BoxFuture, StartSpec, Started};
use crate::orchestrator::{self, Action, Event, RunView};
use crate::runs::registry::Barrier;
use crate::runs::LiveEvent;
use crate::{now_ms, Engine, Error, Result};

/// What a user reads of an error: the message, without the "internal error" prefix.
fn reason(e: &Error) -> String {
    match e {
        Error::Internal(m) => m.clone(),
        other => other.to_string(),
    }
}

/// How many instances of a run start at once; how many stop at once.
const START_CONCURRENCY: usize = 8;
const STOP_CONCURRENCY: usize = 16;

impl Engine {
    /// Loads the run, asks the orchestrator, carries out its actions — in a task of its own,
    /// so the decision is carried out whole even if the caller goes away (the agent whose
    /// completion finishes a run is stopped, and its request dropped, by that very decision).
    pub async fn drive(&self, run: &str, event: Event) -> Result<()> {
        let engine = self.clone();
        let run = run.to_string();
        tokio::spawn(async move { engine.drive_now(&run, event).await })
            .await
            .map_err(|e| Error::Internal(format!("the run driver failed: {e}")))?
    }

    /// (Boxed: the timeout tasks it schedules call it again, and an explicit `Send` future
    /// type breaks that cycle for the compiler.)
    fn drive_now<'a>(&'a self, run: &'a str, event: Event) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let lock = self.rt.runs.lock(run);
            let _held = lock.lock().await;
            let view = self.run_view(run).await?;
            for action in orchestrator::next(&view, &event) {
                self.apply(run, action).await?;
            }
            Ok(())
        })
    }

    async fn run_view(&self, run: &str) -> Result<RunView> {
        let row = sqlx::query("SELECT state, keep_running, kind, scalable FROM runs WHERE id = $1")
            .bind(run)
            .fetch_optional(&self.db.pool)
            .await?
            .ok_or_else(|| Error::NotFound(format!("run `{run}` does not exist")))?;
        let state = parse_state(&row.try_get::<String, _>("state")?)?;
        let keep_running = KeepRunning::parse(&row.try_get::<String, _>("keep_running")?).unwrap_or_default();
        let aborted = self.abort_message(run).await?.is_some();
        let (instances, done) = self.barrier(run, state).await?;
        let build = row.try_get::<String, _>("kind")? == super::create::BUILD_KIND;
        let scalable = row.try_get::<i64, _>("scalable")? != 0;
        let scaling = scalable
            && sqlx::query("SELECT 1 AS one FROM run_instances WHERE run_id = $1 AND scale <> '' AND scale <> 'gone' LIMIT 1")
                .bind(run)
                .fetch_optional(&self.db.pool)
                .await?
                .is_some();
        Ok(RunView { state, aborted, keep_running, instances, done, build, scalable, scaling })
    }

    /// How many instances hold back `state`'s barrier, and how many completed it (under the
    /// run's lock): read from the database once per state, then kept in memory.
    async fn barrier(&self, run: &str, state: RunState) -> Result<(usize, usize)> {
        if let Some(counts) = self.rt.runs.barrier_counts(run, state) {
            return Ok(counts);
        }
        // Completions counted before and still being written are in the database after this.
        self.rt.committer.flush().await?;
        // An instance that could not be started, or was removed by a scaling, holds back no barrier.
        let rows = sqlx::query("SELECT name, completed FROM run_instances WHERE run_id = $1 AND start_failed = 0 AND scale <> 'gone'")
            .bind(run)
            .fetch_all(&self.db.pool)
            .await?;
        let mut b = Barrier { state, instances: Default::default(), done: Default::default() };
        for r in &rows {
            let name: String = r.try_get("name")?;
            if r.try_get::<String, _>("completed")? == state.as_str() {
                b.done.insert(name.clone());
            }
            b.instances.insert(name);
        }
        let counts = (b.instances.len(), b.done.len());
        self.rt.runs.keep_barrier(run, b);
        Ok(counts)
    }

    async fn apply(&self, run: &str, action: Action) -> Result<()> {
        match action {
            Action::SetState(state) => self.set_state(run, state).await,
            Action::RaiseAbort(message) => self.raise_abort_locked(run, "ss", &message).await.map(|_| ()),
            Action::StartInstances => self.start_instances(run).await,
            Action::StopInstances => self.stop_instances(run).await,
            Action::CommitImage => self.commit_build(run).await,
            Action::FinishScaling => self.finish_scaling(run).await,
        }
    }

    async fn set_state(&self, run: &str, state: RunState) -> Result<()> {
        let now = now_ms();
        let mut tx = self.db.begin_write().await?;
        sqlx::query("UPDATE runs SET state = $1, state_changed_at = $2, ended_at = $3 WHERE id = $4")
            .bind(state.as_str())
            .bind(now)
            .bind(state.is_terminal().then_some(now))
            .bind(run)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE run_params SET value = $1 WHERE run_id = $2 AND key = 'ss:state'")
            .bind(state.as_str())
            .bind(run)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.rt.runs.forget_barrier(run);
        let owner = self.run_owner(run).await?;
        let seq = self.rt.params.next_seq();
        self.rt.params.apply(run, "ss:state", Some(state.as_str()), seq);
        self.event(run, &owner, "state", state.as_str()).await?;
        self.rt.waits.wake_key(run, "ss:state");
        self.publish(LiveEvent::State { run: run.into(), owner, state });
        tracing::info!(run, state = state.as_str(), "run state");
        if state.is_terminal() {
            self.rt.waits.wake_run(run);
            self.rt.waits.forget_run(run);
            self.rt.runs.forget(run);
            // Reloaded on demand as an ended run (its agent token no longer valid).
            self.rt.params.forget(run);
        } else if state != RunState::Ready {
            self.schedule_timeout(run, state, now).await?;
        }
        Ok(())
    }

    /// Starts the run's instances that have not started, a few at a time, each on its node's
    /// connector: the connector prepares the run first (a network), and gets the owner's
    /// account there. Each handle is recorded as soon as its instance runs; an instance that
    /// cannot be started raises the abort naming it, its connector and why.
    async fn start_instances(&self, run: &str) -> Result<()> {
        let service_url = self.service_url()?;
        let Some(token) = self.rt.runs.token(run) else {
            return Err(Error::Internal(format!("run `{run}` lost its agent token before its instances started")));
        };
        let owner = self.run_owner(run).await?;
        let plan = self.plan_of(run).await?;
        let authorized_keys: String = sqlx::query("SELECT ssh_public_key FROM users WHERE name = $1")
            .bind(&owner)
            .fetch_optional(&self.db.pool)
            .await?
            .map(|r| r.try_get("ssh_public_key"))
            .transpose()?
            .unwrap_or_default();
        let authorized_keys = &authorized_keys;
        let rows = sqlx::query(
            "SELECT name, node, connector FROM run_instances WHERE run_id = $1 AND handle = '' AND start_failed = 0 ORDER BY node, idx",
        )
        .bind(run)
        .fetch_all(&self.db.pool)
        .await?;
        let mut pending = Vec::with_capacity(rows.len());
        for r in &rows {
            let (name, node, connector): (String, String, String) = (r.try_get("name")?, r.try_get("node")?, r.try_get("connector")?);
            pending.push((name, node, connector));
        }
        // Each connector the run uses: prepared once, with the owner's account there.
        let mut ready: BTreeMap<String, std::result::Result<Account, String>> = BTreeMap::new();
        for (_, _, name) in &pending {
            if ready.contains_key(name) {
                continue;
            }
            let outcome = match self.connector(name) {
                None => Err(format!("connector `{name}` is not configured on this server")),
                Some(c) => match self.account_for(&owner, name).await {
                    Ok(account) => c.prepare_run(run, &account).await.map(|()| account).map_err(|e| reason(&e)),
                    Err(e) => Err(reason(&e)),
                },
            };
            ready.insert(name.clone(), outcome);
        }
        let (ready, plan, token, service_url) = (&ready, &plan, &token, &service_url);
        let began = std::time::Instant::now();
        let outcomes: Vec<Result<bool>> = futures::stream::iter(pending)
            .map(|(name, node, connector)| async move {
                let started = match (self.connector(&connector), &ready[&connector]) {
                    (Some(c), Ok(account)) => {
                        let env =
                            AgentEnv { service_url: service_url.clone(), run: run.into(), instance: name.clone(), token: token.clone() };
                        let image = plan.get(&node).map(|n| n.image_id.clone()).unwrap_or_default();
                        let spec = StartSpec {
                            run: run.into(),
                            instance: name.clone(),
                            image,
                            env,
                            account: account.clone(),
                            authorized_keys: authorized_keys.clone(),
                        };
                        c.start(&spec).await.map_err(|e| reason(&e))
                    }
                    (_, Err(why)) => Err(why.clone()),
                    (None, Ok(_)) => Err(format!("connector `{connector}` is not configured on this server")),
                };
                self.record_start(run, &name, &connector, started).await
            })
            .buffer_unordered(START_CONCURRENCY)
            .collect()
            .await;
        let started = outcomes.into_iter().collect::<Result<Vec<bool>>>()?;
        tracing::info!(run, instances = started.len(), ms = began.elapsed().as_millis() as u64, "instances started");
        let failed = started.contains(&false);
        if failed {
            // Instances that failed to start hold back no barrier: once this decision is
            // done, look at the barrier again (it may be met with nobody left to complete it).
            let engine = self.clone();
            let run = run.to_string();
            tokio::spawn(async move {
                if let Err(e) = engine.drive(&run, Event::Completed).await {
                    tracing::error!(run, error = %e, "re-checking the barrier after failed starts failed");
                }
            });
        }
        Ok(())
    }

    /// Records how a start went; `true` if the instance runs.
    async fn record_start(&self, run: &str, name: &str, connector: &str, started: std::result::Result<Started, String>) -> Result<bool> {
        match started {
            Ok(s) => {
                // The handle and the identity are sent together: they usually share a commit.
                let op = crate::params::Op::Handle { instance: name.into(), handle: s.handle.clone(), address: s.address.clone() };
                let recorded = self.rt.committer.send(run, op)?;
                // Published under the run's lock, held by the start: no completion of
                // Provisioning is counted before every started instance has them.
                if s.identity_given {
                    let key = |param: &str| model::ParamKey::parse(&format!("{name}:{param}")).map_err(|e| Error::Internal(e.to_string()));
                    let (host, id) = (key("hostname")?, key("instanceid")?);
                    let (a, b) = futures::join!(
                        self.set_param(run, &host, &s.address, true, "slipstream"),
                        self.set_param(run, &id, &s.instance_id, true, "slipstream")
                    );
                    a?;
                    b?;
                }
                recorded.committed().await?;
                if let Some(ssh) = &s.ssh {
                    let key = model::ParamKey::parse(&format!("{name}:url.ssh")).map_err(|e| Error::Internal(e.to_string()))?;
                    if let Err(e) = self.set_param(run, &key, ssh, true, "slipstream").await {
                        tracing::warn!(run, instance = name, error = %e, "url.ssh could not be set");
                    }
                }
                Ok(true)
            }
            Err(why) => {
                sqlx::query("UPDATE run_instances SET start_failed = 1 WHERE run_id = $1 AND name = $2")
                    .bind(run)
                    .bind(name)
                    .execute(&self.db.pool)
                    .await?;
                self.rt.runs.forget_barrier(run);
                tracing::warn!(run, instance = name, connector, why, "an instance could not be started");
                self.raise_abort_locked(run, name, &format!("Provisioning failed for {name} on connector {connector}: {why}")).await?;
                Ok(false)
            }
        }
    }

    /// Stops and removes every started instance, a few at a time, then lets each connector
    /// remove what the run had there. A connector that fails is logged; the run still ends.
    async fn stop_instances(&self, run: &str) -> Result<()> {
        let rows = sqlx::query("SELECT connector, handle FROM run_instances WHERE run_id = $1 AND handle <> ''")
            .bind(run)
            .fetch_all(&self.db.pool)
            .await?;
        let used: Vec<String> = sqlx::query("SELECT DISTINCT connector FROM run_instances WHERE run_id = $1")
            .bind(run)
            .fetch_all(&self.db.pool)
            .await?
            .iter()
            .map(|r| r.try_get("connector"))
            .collect::<std::result::Result<_, _>>()?;
        let mut owner = self.owner_accounts(run).await?;
        let mut accounts = BTreeMap::new();
        for name in &used {
            accounts.insert(name.clone(), owner.on(self, name).await?.clone());
        }
        let mut started = Vec::with_capacity(rows.len());
        for r in &rows {
            started.push((r.try_get::<String, _>("connector")?, r.try_get::<String, _>("handle")?));
        }
        let accounts = &accounts;
        let (began, count) = (std::time::Instant::now(), started.len());
        let failed = std::sync::atomic::AtomicUsize::new(0);
        let failed_ref = &failed;
        futures::stream::iter(started)
            .for_each_concurrent(STOP_CONCURRENCY, |(connector, handle)| async move {
                let (Some(c), Some(account)) = (self.connector(&connector), accounts.get(&connector)) else {
                    failed_ref.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    return;
                };
                if let Err(e) = c.stop(&handle, account).await.and(c.destroy(&handle, account).await) {
                    failed_ref.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::error!(run, connector, handle, error = %e, "stopping an instance failed");
                }
            })
            .await;
        tracing::info!(run, instances = count, ms = began.elapsed().as_millis() as u64, "instances stopped");
        // One statement when every stop went through; otherwise the reaper retries them all
        // (a stop is idempotent) once the run has ended.
        if failed.into_inner() == 0 {
            self.mark_stopped(run, None).await?;
        }
        for name in used {
            if let (Some(c), Some(account)) = (self.connector(&name), accounts.get(&name)) {
                if let Err(e) = c.release_run(run, account).await {
                    tracing::error!(run, connector = name, error = %e, "removing the run's resources failed");
                }
            }
        }
        Ok(())
    }

    /// An instance completed `state` (idempotent; a completion for another state is ignored).
    /// Returns the run's state afterwards, once the completion is in the database.
    pub async fn complete_state(&self, run: &str, instance: &str, state: RunState) -> Result<RunState> {
        use crate::runs::registry::Counted;
        // Counted in memory under the run's lock, written after it by the group committer:
        // the completions of a state do not wait for each other's writes. Only the one that
        // meets the barrier asks the orchestrator.
        let (written, met) = {
            let lock = self.rt.runs.lock(run);
            let _held = lock.lock().await;
            let mut counted = Counted::NotHeld;
            if self.run_state(run).await? == state {
                counted = self.rt.runs.count_completion(run, state, instance);
                if counted == Counted::Unknown {
                    self.barrier(run, state).await?;
                    counted = self.rt.runs.count_completion(run, state, instance);
                }
            }
            match counted {
                Counted::New { met } => {
                    let op = crate::params::Op::Completion { instance: instance.to_string(), state: state.as_str() };
                    (Some(self.rt.committer.send(run, op)?), met)
                }
                Counted::NotHeld | Counted::Unknown => {
                    self.require_instance(run, instance).await?;
                    (None, false)
                }
                Counted::Again => (None, false),
            }
        };
        match written {
            Some(pending) => pending.committed().await?,
            // A repeated completion is answered once the first one's write is committed.
            None => self.rt.committer.flush().await?,
        }
        if met {
            self.drive(run, Event::Completed).await?;
        }
        self.run_state(run).await
    }

    /// Terminates a run: Cancelled before Ready, else Finalizing then Done or Aborted.
    pub async fn terminate_run(&self, caller: &RunCaller<'_>, run: &str) -> Result<RunSummary> {
        let owner = self.authorize_run(caller, run).await?;
        let who = match caller {
            RunCaller::User(Some(u)) => u.name.clone(),
            _ => owner.clone(),
        };
        self.event(run, &owner, "terminate", &format!("Terminated by {who}")).await?;
        self.drive(run, Event::Terminate).await?;
        self.run_summary(run).await
    }
}

#[cfg(test)]
#[path = "driver_tests.rs"]
mod tests;
