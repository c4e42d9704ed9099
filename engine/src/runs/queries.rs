//! Reading runs: who may see one, its state (with a long poll), summaries and lists, the
//! detail with instances and parameters, and what one instance runs.

use std::collections::BTreeMap;
use std::time::Duration;

use model::run::{InstancePlan, InstanceView, KeepRunning, RunDetail, RunFilter, RunSummary, START_FAILED};
use model::{RunState, User};
use sqlx::Row;

use super::rows::parse_state;
use super::{sha256_hex, RunCaller};
use crate::{Engine, Error, Result};

/// Most runs a list returns.
const LIST_LIMIT: i64 = 500;

impl Engine {
    /// Checks that the caller may see and act on the run; returns its owner.
    pub async fn authorize_run(&self, caller: &RunCaller<'_>, run: &str) -> Result<String> {
        // From memory for live runs: agents and long polls call this on every request.
        let (owner, token_hash, ended) = self.run_identity(run).await?;
        match caller {
            RunCaller::Agent(token) => {
                if sha256_hex(token) != token_hash {
                    Err(Error::Forbidden(format!("this token is not valid for run `{run}`")))
                } else if ended {
                    // Revoked with the run: a copy left anywhere changes nothing any more.
                    Err(Error::Forbidden(format!("run `{run}` has ended: its agent token is no longer valid")))
                } else {
                    Ok(owner)
                }
            }
            RunCaller::User(None) => Err(Error::Unauthorized("sign in to see runs".into())),
            RunCaller::User(Some(u)) if u.is_admin || u.name == owner => Ok(owner),
            RunCaller::User(Some(u)) => Err(Error::Forbidden(format!("run `{run}` belongs to another user than `{}`", u.name))),
        }
    }

    /// `NotFound` naming the instance unless the run has it.
    pub(crate) async fn require_instance(&self, run: &str, instance: &str) -> Result<()> {
        let exists = sqlx::query("SELECT 1 AS one FROM run_instances WHERE run_id = $1 AND name = $2")
            .bind(run)
            .bind(instance)
            .fetch_optional(&self.db.pool)
            .await?;
        exists.map(|_| ()).ok_or_else(|| Error::NotFound(format!("run `{run}` has no instance `{instance}`")))
    }

    pub(crate) async fn run_owner(&self, run: &str) -> Result<String> {
        Ok(self.run_identity(run).await?.0)
    }

    /// The run's state; from memory for live runs (the `ss:state` parameter mirrors it,
    /// written in the same transaction).
    pub async fn run_state(&self, run: &str) -> Result<RunState> {
        if let Some(live) = self.rt.params.get(run) {
            if let crate::params::Slot::Set(s) = live.slot("ss:state") {
                return parse_state(&s);
            }
        }
        let row = sqlx::query("SELECT state FROM runs WHERE id = $1")
            .bind(run)
            .fetch_optional(&self.db.pool)
            .await?
            .ok_or_else(|| Error::NotFound(format!("run `{run}` does not exist")))?;
        parse_state(&row.try_get::<String, _>("state")?)
    }

    /// The run's state once it differs from `from`, or the current state after `wait`.
    pub async fn wait_state(&self, run: &str, from: Option<RunState>, wait: Duration) -> Result<RunState> {
        let notify = self.rt.waits.key(run, "ss:state");
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let state = self.run_state(run).await?;
            if Some(state) != from || tokio::time::Instant::now() >= deadline {
                return Ok(state);
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
        }
    }

    pub async fn run_summary(&self, run: &str) -> Result<RunSummary> {
        let r = sqlx::query(
            "SELECT id, owner, module, module_version, state, keep_running, tags, created_at, state_changed_at, ended_at, scalable FROM runs WHERE id = $1",
        )
        .bind(run)
        .fetch_optional(&self.db.pool)
        .await?
        .ok_or_else(|| Error::NotFound(format!("run `{run}` does not exist")))?;
        self.summary_from_row(&r).await
    }

    async fn summary_from_row(&self, r: &sqlx::any::AnyRow) -> Result<RunSummary> {
        let id: String = r.try_get("id")?;
        let tags: String = r.try_get("tags")?;
        let (mut connectors, mut instance_states) = (BTreeMap::new(), BTreeMap::new());
        let counts = sqlx::query(
            "SELECT connector, completed, start_failed, COUNT(*) AS n FROM run_instances WHERE run_id = $1 AND scale <> 'gone' \
             GROUP BY connector, completed, start_failed",
        )
        .bind(&id)
        .fetch_all(&self.db.pool)
        .await?;
        for c in &counts {
            let n = c.try_get::<i64, _>("n")? as u32;
            *connectors.entry(c.try_get::<String, _>("connector")?).or_insert(0) += n;
            let state = if c.try_get::<i64, _>("start_failed")? != 0 { START_FAILED.to_string() } else { c.try_get("completed")? };
            *instance_states.entry(state).or_insert(0) += n;
        }
        Ok(RunSummary {
            connectors,
            instance_states,
            abort: self.abort_message(&id).await?,
            id,
            owner: r.try_get("owner")?,
            module: r.try_get("module")?,
            module_version: r.try_get::<i64, _>("module_version")? as u32,
            state: parse_state(&r.try_get::<String, _>("state")?)?,
            keep_running: KeepRunning::parse(&r.try_get::<String, _>("keep_running")?).unwrap_or_default(),
            tags: tags.split(',').filter(|t| !t.is_empty()).map(String::from).collect(),
            created_at: r.try_get("created_at")?,
            state_changed_at: r.try_get("state_changed_at")?,
            ended_at: r.try_get("ended_at")?,
            scalable: r.try_get::<i64, _>("scalable")? != 0,
        })
    }

    /// The caller's runs (an administrator's: everyone's) that pass `filter`, newest first.
    pub async fn list_runs(&self, actor: Option<&User>, filter: &RunFilter) -> Result<Vec<RunSummary>> {
        let user = actor.ok_or_else(|| Error::Unauthorized("sign in to see runs".into()))?;
        let rows = sqlx::query(
            "SELECT id, owner, module, module_version, state, keep_running, tags, created_at, state_changed_at, ended_at, scalable FROM runs \
             WHERE ($1 = 1 OR owner = $2) AND ($3 = 0 OR ended_at IS NULL) AND ($4 = '' OR module LIKE $5) \
             ORDER BY created_at DESC, id LIMIT $6",
        )
        .bind(user.is_admin as i64)
        .bind(&user.name)
        .bind(filter.active as i64)
        .bind(&filter.module)
        .bind(format!("%{}%", filter.module))
        .bind(LIST_LIMIT)
        .fetch_all(&self.db.pool)
        .await?;
        let mut out = Vec::new();
        for r in &rows {
            let summary = self.summary_from_row(r).await?;
            // LIKE treats `_` and `%` in the text as wildcards: the filter decides exactly.
            if filter.admits(&summary) {
                out.push(summary);
            }
        }
        Ok(out)
    }

    pub async fn run_detail(&self, run: &str) -> Result<RunDetail> {
        let summary = self.run_summary(run).await?;
        let params = self.params(run).await?;
        let rows = sqlx::query(
            "SELECT name, node, idx, connector, address, handle, completed, scale FROM run_instances WHERE run_id = $1 AND scale <> 'gone' \
             ORDER BY node, idx",
        )
        .bind(run)
        .fetch_all(&self.db.pool)
        .await?;
        let mut instances = Vec::new();
        let mut accounts = self.owner_accounts(run).await?;
        for r in rows {
            let name: String = r.try_get("name")?;
            let completed: String = r.try_get("completed")?;
            let connector: String = r.try_get("connector")?;
            let handle: String = r.try_get("handle")?;
            let running = match self.connector(&connector) {
                Some(c) if !handle.is_empty() => {
                    let account = accounts.on(self, &connector).await?;
                    matches!(c.inspect(&handle, account).await, Ok(crate::connector::Health::Running))
                }
                _ => false,
            };
            instances.push(InstanceView {
                running,
                statecustom: params.get(&format!("{name}:statecustom")).cloned().flatten(),
                abort: params.get(&format!("{name}:abort")).cloned().flatten(),
                node: r.try_get("node")?,
                index: r.try_get::<i64, _>("idx")? as u32,
                connector,
                address: r.try_get("address")?,
                completed: RunState::parse(&completed),
                scale: r.try_get("scale")?,
                name,
            });
        }
        let mut params = params;
        super::masking::mask(&mut params, &*self.secret_keys(run).await?);
        Ok(RunDetail { summary, instances, params })
    }

    /// Every parameter of the run, unset ones as `None`.
    pub async fn params(&self, run: &str) -> Result<BTreeMap<String, Option<String>>> {
        let rows = sqlx::query("SELECT key, value FROM run_params WHERE run_id = $1").bind(run).fetch_all(&self.db.pool).await?;
        rows.iter().map(|r| Ok((r.try_get("key")?, r.try_get("value")?))).collect()
    }

    /// The run's nodes as planned at creation.
    /// The run's plan (fixed at launch): kept in memory while the run is live, so the plan
    /// of each of a run's instances is not read and parsed again.
    pub(crate) async fn plan_of(&self, run: &str) -> Result<std::sync::Arc<super::registry::Plan>> {
        if let Some(plan) = self.rt.runs.plan(run) {
            return Ok(plan);
        }
        let row = sqlx::query("SELECT plan, ended_at FROM runs WHERE id = $1").bind(run).fetch_one(&self.db.pool).await?;
        let plan = std::sync::Arc::new(serde_json::from_str(&row.try_get::<String, _>("plan")?)?);
        // An ended run's is not kept: nothing would forget it.
        if row.try_get::<Option<i64>, _>("ended_at")?.is_none() {
            self.rt.runs.keep_plan(run, &plan);
        }
        Ok(plan)
    }

    /// The scripts one instance runs.
    pub async fn instance_plan(&self, run: &str, instance: &str) -> Result<InstancePlan> {
        let row = sqlx::query("SELECT node, idx FROM run_instances WHERE run_id = $1 AND name = $2")
            .bind(run)
            .bind(instance)
            .fetch_optional(&self.db.pool)
            .await?
            .ok_or_else(|| Error::NotFound(format!("run `{run}` has no instance `{instance}`")))?;
        let node: String = row.try_get("node")?;
        let plan = self.plan_of(run).await?;
        let targets = plan.get(&node).map(|n| n.targets.clone()).unwrap_or_default();
        let aborted = self.abort_message(run).await?.is_some();
        Ok(InstancePlan { run: run.into(), instance: instance.into(), node, index: row.try_get::<i64, _>("idx")? as u32, targets, aborted })
    }
}
