//! Scalable runs: adding instances to a node, or removing some, while the run is in Ready.
//!
//! A scaling takes the run round its lifecycle again (see [`crate::orchestrator`]): new
//! instances get new indexes (never reused) and their parameters as the node's first
//! instances did (planned from the run's launch request), then deploy as usual; the others run
//! `onvmadd` — or, on a removal, the leaving instances send their reports and the remaining
//! ones run `onvmremove` — with `SLIPSTREAM_SCALING_NODE` and `SLIPSTREAM_SCALING_VMS`. Back in
//! Ready the leaving instances are stopped. One scaling at a time per run.

use std::collections::BTreeMap;

use model::run::RunRequest;
use model::{RunState, User};
use sqlx::Row;

use super::plan::{plan_run, NodeSpec, PlanInput, SCALING_PARAMS};
use super::rows::parse_state;
use crate::orchestrator::Event;
use crate::{Engine, Error, Result};

/// Instances one scaling may add.
const MAX_ADD: u32 = 100;

/// What a scaling is doing, as the instances read it.
struct Scaling<'a> {
    action: &'a str,
    node: &'a str,
    vms: &'a [String],
}

impl Engine {
    /// Adds `count` instances to `node` of a scalable run in Ready; returns their names.
    pub async fn scale_up(&self, actor: Option<&User>, run: &str, node: &str, count: u32) -> Result<Vec<String>> {
        if !(1..=MAX_ADD).contains(&count) {
            return Err(Error::invalid("", "count", format!("{count} instances: add 1 to {MAX_ADD} at a time")));
        }
        let added = {
            let lock = self.rt.runs.lock(run);
            let _held = lock.lock().await;
            let owner = self.may_scale(actor, run).await?;
            let plan = self.plan_of(run).await?;
            let planned = plan.get(node).ok_or_else(|| Error::NotFound(format!("run `{run}` has no node `{node}`")))?;
            let highest: i64 = sqlx::query("SELECT COALESCE(MAX(idx), 0) AS n FROM run_instances WHERE run_id = $1 AND node = $2")
                .bind(run)
                .bind(node)
                .fetch_one(&self.db.pool)
                .await?
                .try_get("n")?;
            let first = highest as u32 + 1;
            let names: Vec<String> = (first..first + count).map(|i| format!("{node}.{i}")).collect();
            let fresh = self.plan_new_instances(actor, run, node, first + count - 1).await?;
            let mut tx = self.db.begin_write().await?;
            let wanted = BTreeMap::from([(planned.connector.clone(), i64::from(count))]);
            self.check_quota(&mut tx, &owner, &wanted).await?;
            for (i, name) in names.iter().enumerate() {
                sqlx::query("INSERT INTO run_instances (run_id, name, node, idx, connector, scale) VALUES ($1, $2, $3, $4, $5, 'new')")
                    .bind(run)
                    .bind(name)
                    .bind(node)
                    .bind(i64::from(first) + i as i64)
                    .bind(&planned.connector)
                    .execute(&mut *tx)
                    .await?;
            }
            let is_new = |key: &str| names.iter().any(|n| key.strip_prefix(n.as_str()).is_some_and(|rest| rest.starts_with(':')));
            for (key, value) in fresh.params.iter().filter(|(k, _)| is_new(k)) {
                sqlx::query("INSERT INTO run_params (run_id, key, value) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                    .bind(run)
                    .bind(key)
                    .bind(value)
                    .execute(&mut *tx)
                    .await?;
            }
            for (source, target) in fresh.links.iter().filter(|(_, t)| is_new(t)) {
                sqlx::query("INSERT INTO run_links (run_id, source, target) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                    .bind(run)
                    .bind(source)
                    .bind(target)
                    .execute(&mut *tx)
                    .await?;
                // What the source already published reaches the new input now.
                sqlx::query(
                    "UPDATE run_params SET value = (SELECT s.value FROM run_params s WHERE s.run_id = $1 AND s.key = $2) \
                     WHERE run_id = $1 AND key = $3 AND EXISTS (SELECT 1 FROM run_params s WHERE s.run_id = $1 AND s.key = $2 AND s.value IS NOT NULL)",
                )
                .bind(run)
                .bind(source)
                .bind(target)
                .execute(&mut *tx)
                .await?;
            }
            self.set_scaling(&mut tx, run, node, Some(Scaling { action: "vm_create", node, vms: &names })).await?;
            tx.commit().await?;
            // New keys, links and counts: the in-memory copy is reloaded.
            self.rt.params.forget(run);
            self.rt.runs.forget_barrier(run);
            let message = format!("Scaling up '{node}' with {count} new instance(s): {}", names.join(", "));
            self.event(run, &owner, "scale", &message).await?;
            tracing::info!(run, node, count, "scaling up");
            names
        };
        self.drive(run, Event::Scale).await?;
        Ok(added)
    }

    /// Removes the given instances of `node` from a scalable run in Ready: they send their
    /// reports, the others run `onvmremove`, then they are stopped.
    pub async fn scale_down(&self, actor: Option<&User>, run: &str, node: &str, instances: &[String]) -> Result<()> {
        if instances.is_empty() {
            return Err(Error::invalid("", "instances", "name the instances to remove"));
        }
        {
            let lock = self.rt.runs.lock(run);
            let _held = lock.lock().await;
            let owner = self.may_scale(actor, run).await?;
            let rows = sqlx::query("SELECT name FROM run_instances WHERE run_id = $1 AND node = $2 AND scale = '' AND start_failed = 0")
                .bind(run)
                .bind(node)
                .fetch_all(&self.db.pool)
                .await?;
            let present: Vec<String> = rows.iter().map(|r| r.try_get("name")).collect::<std::result::Result<_, _>>()?;
            if present.is_empty() && !self.plan_of(run).await?.contains_key(node) {
                return Err(Error::NotFound(format!("run `{run}` has no node `{node}`")));
            }
            let mut leaving: Vec<String> = Vec::new();
            for i in instances {
                if !present.contains(i) {
                    return Err(Error::invalid("", "instances", format!("`{i}` is not a running instance of node `{node}`")));
                }
                if !leaving.contains(i) {
                    leaving.push(i.clone());
                }
            }
            let mut tx = self.db.begin_write().await?;
            for i in &leaving {
                sqlx::query("UPDATE run_instances SET scale = 'leaving' WHERE run_id = $1 AND name = $2")
                    .bind(run)
                    .bind(i)
                    .execute(&mut *tx)
                    .await?;
            }
            self.set_scaling(&mut tx, run, node, Some(Scaling { action: "vm_remove", node, vms: &leaving })).await?;
            tx.commit().await?;
            // New keys, links and counts: the in-memory copy is reloaded.
            self.rt.params.forget(run);
            self.rt.runs.forget_barrier(run);
            self.event(run, &owner, "scale", &format!("Scaling down '{node}', removing {}", leaving.join(", "))).await?;
            tracing::info!(run, node, count = leaving.len(), "scaling down");
        }
        self.drive(run, Event::Scale).await
    }

    /// Back in Ready after a scaling (under the run's lock): the leaving instances are stopped
    /// and gone, the new ones are members like the others, and the run may be scaled again.
    pub(crate) async fn finish_scaling(&self, run: &str) -> Result<()> {
        let rows = sqlx::query(
            "SELECT name, node, connector, handle, scale FROM run_instances WHERE run_id = $1 AND scale <> '' AND scale <> 'gone'",
        )
        .bind(run)
        .fetch_all(&self.db.pool)
        .await?;
        let mut accounts = self.owner_accounts(run).await?;
        let mut node = String::new();
        for r in &rows {
            let (name, connector, handle, scale): (String, String, String, String) =
                (r.try_get("name")?, r.try_get("connector")?, r.try_get("handle")?, r.try_get("scale")?);
            node = r.try_get("node")?;
            if scale == "leaving" && !handle.is_empty() {
                if let Some(c) = self.connector(&connector) {
                    let account = accounts.on(self, &connector).await?;
                    match c.stop(&handle, account).await.and(c.destroy(&handle, account).await) {
                        Ok(()) => self.mark_stopped(run, Some(&name)).await?,
                        Err(e) => tracing::error!(run, instance = name, error = %e, "stopping a removed instance failed"),
                    }
                }
            }
        }
        let mut tx = self.db.begin_write().await?;
        sqlx::query("UPDATE run_instances SET scale = 'gone' WHERE run_id = $1 AND scale = 'leaving'").bind(run).execute(&mut *tx).await?;
        sqlx::query("UPDATE run_instances SET scale = '' WHERE run_id = $1 AND scale = 'new'").bind(run).execute(&mut *tx).await?;
        self.set_scaling(&mut tx, run, &node, None).await?;
        tx.commit().await?;
        // New keys, links and counts: the in-memory copy is reloaded.
        self.rt.params.forget(run);
        self.rt.runs.forget_barrier(run);
        let owner = self.run_owner(run).await?;
        self.event(run, &owner, "scale", &format!("Scaling of '{node}' done")).await?;
        Ok(())
    }

    /// The owner (or an administrator) of a scalable run in Ready, with its agent token still
    /// known; returns the owner.
    async fn may_scale(&self, actor: Option<&User>, run: &str) -> Result<String> {
        let owner = self.authorize_run(&super::RunCaller::User(actor), run).await?;
        let row = sqlx::query("SELECT state, scalable FROM runs WHERE id = $1").bind(run).fetch_one(&self.db.pool).await?;
        if row.try_get::<i64, _>("scalable")? == 0 {
            return Err(Error::Conflict(format!("run `{run}` is not scalable (launch it with `scalable: true`)")));
        }
        let state = parse_state(&row.try_get::<String, _>("state")?)?;
        if state != RunState::Ready {
            let params = self.params(run).await?;
            let said = |k: &str| params.get(k).cloned().flatten().unwrap_or_default();
            if !said("ss:scaling.action").is_empty() {
                return Err(Error::Conflict(format!(
                    "a scaling is running on run `{run}`: {} of '{}' ({}); one at a time",
                    said("ss:scaling.action"),
                    said("ss:scaling.node"),
                    said("ss:scaling.vms")
                )));
            }
            return Err(Error::Conflict(format!("run `{run}` is {}: a run is scaled in Ready", state.as_str())));
        }
        if self.rt.runs.token(run).is_none() {
            return Err(Error::Conflict(format!(
                "run `{run}` cannot start new instances any more: its agent token was kept in memory only, and the server restarted"
            )));
        }
        Ok(owner)
    }

    /// Parameters and links of `node`'s instances up to index `upto`, planned as at launch.
    async fn plan_new_instances(&self, actor: Option<&User>, run: &str, node: &str, upto: u32) -> Result<Planned> {
        let row = sqlx::query("SELECT module, module_version, request FROM runs WHERE id = $1").bind(run).fetch_one(&self.db.pool).await?;
        let (module, version): (String, i64) = (row.try_get("module")?, row.try_get("module_version")?);
        let mut request: RunRequest = serde_json::from_str(&row.try_get::<String, _>("request")?)
            .map_err(|e| Error::Internal(format!("run `{run}` kept no readable launch request: {e}")))?;
        request.multiplicity.insert(node.to_string(), i64::from(upto));
        let meta = self.meta(&module).await?.ok_or_else(|| Error::NotFound(format!("module `{module}` does not exist any more")))?;
        let m = self.read_version(&meta, Some(version as u32)).await?;
        let nodes = NodeSpec::of_module(&m, version as u32)?;
        let mut images = BTreeMap::new();
        for spec in &nodes {
            images.insert(spec.name.clone(), self.resolve_image(actor, &spec.node.image).await?);
        }
        let connectors = self.connector_names();
        let plan = plan_run(&PlanInput {
            module: &module,
            kind: m.kind,
            nodes: &nodes,
            images: &images,
            request: &request,
            connectors: &connectors,
            build: false,
            built: &BTreeMap::new(),
        })?;
        Ok(Planned {
            params: plan.params.into_iter().map(|p| (p.key, p.value)).collect(),
            links: plan.links.into_iter().map(|l| (l.source, l.target)).collect(),
        })
    }

    /// Writes `<node>:multiplicity`, `<node>:ids` (the instances that stay) and the scaling
    /// parameters (`None`: cleared).
    async fn set_scaling(&self, tx: &mut sqlx::AnyConnection, run: &str, node: &str, scaling: Option<Scaling<'_>>) -> Result<()> {
        if !node.is_empty() {
            let rows = sqlx::query(
                "SELECT idx FROM run_instances WHERE run_id = $1 AND node = $2 AND scale IN ('', 'new') AND start_failed = 0 ORDER BY idx",
            )
            .bind(run)
            .bind(node)
            .fetch_all(&mut *tx)
            .await?;
            let ids: Vec<String> =
                rows.iter().map(|r| r.try_get::<i64, _>("idx").map(|i| i.to_string())).collect::<std::result::Result<_, _>>()?;
            for (key, value) in [(format!("{node}:multiplicity"), ids.len().to_string()), (format!("{node}:ids"), ids.join(","))] {
                sqlx::query("UPDATE run_params SET value = $1 WHERE run_id = $2 AND key = $3")
                    .bind(value)
                    .bind(run)
                    .bind(key)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        let values = match &scaling {
            Some(s) => [s.action.to_string(), s.node.to_string(), s.vms.join(" ")],
            None => [String::new(), String::new(), String::new()],
        };
        for (key, value) in SCALING_PARAMS.iter().zip(values) {
            sqlx::query("UPDATE run_params SET value = $1 WHERE run_id = $2 AND key = $3")
                .bind(value)
                .bind(run)
                .bind(*key)
                .execute(&mut *tx)
                .await?;
        }
        Ok(())
    }
}

/// New instances' parameters (key, initial value) and links (source, target).
struct Planned {
    params: Vec<(String, Option<String>)>,
    links: Vec<(String, String)>,
}
