//! The run driver. Creating a run resolves the module once (exact versions, scripts, initial
//! parameter values, links) and stores that plan; from then on every event — creation, an
//! instance completing a state, an abort, a terminate, a timeout — goes through
//! [`Engine::drive`]: load the run's view, ask [`orchestrator::next`], carry out the actions.
//! Decisions about one run are serialised by a per-run lock. Nothing polls: barriers advance on
//! the completion that meets them, timeouts are one sleeping task per state.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use model::run::{
    InstancePlan, InstanceView, KeepRunning, LogLine, PlannedScript, ReportFile, RunDetail, RunEvent, RunRequest, RunSummary,
};
use model::{ModuleKind, ModulePath, RunState, User};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::access::{self, Op};
use crate::connector::StartSpec;
use crate::orchestrator::{self, Action, Event, RunView};
use crate::users::random_hex;
use crate::{now_ms, Engine, Error, Result};

/// Parameters every instance has, written by the platform or the agent.
pub const RESERVED_INSTANCE_PARAMS: [&str; 7] = ["hostname", "instanceid", "statecustom", "abort", "complete", "url.service", "url.ssh"];
const MAX_INSTANCES: i64 = 1000;
/// The least time an aborted run that is stuck gets before it is stopped.
const REPEAT_MIN_MS: i64 = 30_000;
/// Marks an instance that could not be started: it no longer holds back any barrier.
const GONE: &str = "gone";

pub use model::run::LiveEvent;

/// The resolved node of a run, stored in the run's plan.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct PlannedNode {
    image: String,
    image_version: u32,
    connector: String,
    image_id: String,
    multiplicity: u32,
    targets: BTreeMap<String, Vec<PlannedScript>>,
}

fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Unique, increasing sequence numbers for events and log lines (seeded from the clock, so a
/// restarted server continues above what it wrote before).
fn next_seq() -> i64 {
    static SEQ: AtomicI64 = AtomicI64::new(0);
    let floor = now_ms() * 1000;
    let mut cur = SEQ.load(Ordering::SeqCst);
    loop {
        let next = (cur + 1).max(floor);
        match SEQ.compare_exchange(cur, next, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) => return next,
            Err(actual) => cur = actual,
        }
    }
}

/// Who calls a run endpoint: a user, or an agent with its run token.
#[derive(Clone, Debug)]
pub enum RunCaller<'a> {
    User(Option<&'a User>),
    Agent(&'a str),
}

impl Engine {
    fn service_url(&self) -> Result<String> {
        self.rt.service_url.get().cloned().ok_or_else(|| Error::Internal("the service URL is not known yet".into()))
    }

    fn run_lock(&self, run: &str) -> std::sync::Arc<tokio::sync::Mutex<()>> {
        self.rt.run_locks.lock().expect("not poisoned").entry(run.to_string()).or_default().clone()
    }

    pub(crate) fn publish(&self, e: LiveEvent) {
        let _ = self.rt.live.send(e);
    }

    /// Live events of every run (filter by owner before showing them to a user).
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<LiveEvent> {
        self.rt.live.subscribe()
    }

    /// Checks that the caller may see and act on the run; returns its owner.
    pub async fn authorize_run(&self, caller: &RunCaller<'_>, run: &str) -> Result<String> {
        let row = sqlx::query("SELECT owner, token_hash FROM runs WHERE id = $1")
            .bind(run)
            .fetch_optional(&self.db.pool)
            .await?
            .ok_or_else(|| Error::NotFound(format!("run `{run}` does not exist")))?;
        let owner: String = row.try_get("owner")?;
        match caller {
            RunCaller::Agent(token) => {
                let hash: String = row.try_get("token_hash")?;
                if sha256_hex(token) == hash {
                    Ok(owner)
                } else {
                    Err(Error::Forbidden(format!("this token is not valid for run `{run}`")))
                }
            }
            RunCaller::User(None) => Err(Error::Unauthorized("sign in to see runs".into())),
            RunCaller::User(Some(u)) if u.is_admin || u.name == owner => Ok(owner),
            RunCaller::User(Some(u)) => Err(Error::Forbidden(format!("run `{run}` belongs to another user than `{}`", u.name))),
        }
    }

    /// Deploys a module: resolves it at the requested version, creates the run, its instances
    /// and parameters, and starts it. Returns once the run is stored; provisioning goes on.
    pub async fn create_run(&self, actor: Option<&User>, req: RunRequest) -> Result<RunSummary> {
        let user = actor.ok_or_else(|| Error::Unauthorized("sign in to deploy".into()))?;
        let path = ModulePath::parse(&req.module).map_err(|e| Error::invalid("", "module", e))?;
        let meta = self.meta(path.as_str()).await?.ok_or_else(|| Error::NotFound(format!("module `{path}` does not exist")))?;
        access::check(actor, path.as_str(), &meta.access(), Op::Deploy)?;
        let module = self.read_version(&meta, req.version).await?;
        let version = module.version.unwrap_or(meta.latest_version);
        let profile = self.profile(user).await?;
        let keep_running = req.keep_running.or_else(|| KeepRunning::parse(&profile.keep_running)).unwrap_or_default();
        let timeout = req.timeout.unwrap_or(profile.run_timeout_minutes * 60);
        if !(1..=7 * 24 * 3600).contains(&timeout) {
            return Err(Error::invalid(path.as_str(), "timeout", "must be between 1 second and 7 days"));
        }
        for t in &req.tags {
            if t.is_empty() || t.len() > 64 || t.contains(',') {
                return Err(Error::invalid(path.as_str(), "tags", format!("`{t}` is not a tag (1 to 64 characters, no commas)")));
            }
        }

        // Nodes: (name, image reference, multiplicity, connector, literal values, links).
        type NodeSpec = (String, String, i64, Option<String>, BTreeMap<String, String>, BTreeMap<String, String>);
        let nodes: Vec<NodeSpec> = match module.kind {
            ModuleKind::Deployment => module
                .nodes
                .iter()
                .map(|(n, node)| {
                    (n.clone(), node.image.clone(), node.multiplicity, node.connector.clone(), node.values.clone(), node.links.clone())
                })
                .collect(),
            ModuleKind::Image => vec![("machine".into(), format!("{path}@{version}"), 1, None, BTreeMap::new(), BTreeMap::new())],
            ModuleKind::Project => {
                return Err(Error::invalid(path.as_str(), "module", "a project cannot be deployed; choose a deployment or an image"))
            }
        };
        let names: Vec<&str> = nodes.iter().map(|n| n.0.as_str()).collect();
        for (field, keys) in
            [("multiplicity", req.multiplicity.keys().collect::<Vec<_>>()), ("connectors", req.connectors.keys().collect())]
        {
            if let Some(bad) = keys.into_iter().find(|k| !names.contains(&k.as_str())) {
                return Err(Error::invalid(path.as_str(), format!("{field}.{bad}"), format!("the module has no node `{bad}`")));
            }
        }

        let mut planned: BTreeMap<String, PlannedNode> = BTreeMap::new();
        let mut params: Vec<(String, Option<String>)> = vec![
            ("ss:state".into(), Some(RunState::Initializing.as_str().into())),
            ("ss:abort".into(), None),
            ("ss:tags".into(), Some(req.tags.join(","))),
            ("ss:url.service".into(), None),
        ];
        let mut links: Vec<(String, String)> = Vec::new();
        let mut instances: Vec<(String, String, u32, String)> = Vec::new();
        let mut overrides_used = 0;
        for (name, image_ref, declared, node_connector, values, node_links) in &nodes {
            let multiplicity = req.multiplicity.get(name).copied().unwrap_or(*declared);
            if !(0..=model::validate::MAX_MULTIPLICITY).contains(&multiplicity) {
                return Err(Error::invalid(
                    path.as_str(),
                    format!("multiplicity.{name}"),
                    format!("{multiplicity} is out of range 0..1000"),
                ));
            }
            let connector = req.connectors.get(name).cloned().or_else(|| node_connector.clone()).unwrap_or_else(|| "local".into());
            if self.connector(&connector).is_none() {
                return Err(Error::invalid(
                    path.as_str(),
                    format!("connectors.{name}"),
                    format!("unknown connector `{connector}`; this server has {:?}", self.connector_names()),
                ));
            }
            let image = self.resolve_image(actor, image_ref).await?;
            let image_path = image.chain.last().map(|l| l.path.clone()).unwrap_or_default();
            let image_version = image.chain.last().map(|l| l.version).unwrap_or(0);
            let image_id = image.images.get(&connector).cloned().ok_or_else(|| {
                Error::invalid(
                    path.as_str(),
                    format!("connectors.{name}"),
                    format!("image `{image_path}` has no image id for connector `{connector}`"),
                )
            })?;
            let mut targets: BTreeMap<String, Vec<PlannedScript>> = image
                .targets
                .iter()
                .map(|(t, scripts)| {
                    (
                        t.clone(),
                        scripts
                            .iter()
                            .map(|s| PlannedScript { module: s.module.clone(), version: s.version, script: s.script.clone() })
                            .collect(),
                    )
                })
                .collect();
            // Image creation, root first. No connector here keeps built images yet, so the
            // recipes of every level run at deploy time.
            add_build_recipes(&mut targets, &image.chain, &image_path, image_version);
            planned.insert(
                name.clone(),
                PlannedNode {
                    image: image_path.clone(),
                    image_version,
                    connector: connector.clone(),
                    image_id,
                    multiplicity: multiplicity as u32,
                    targets,
                },
            );
            params.push((format!("{name}:multiplicity"), Some(multiplicity.to_string())));
            params.push((format!("{name}:ids"), Some((1..=multiplicity).map(|i| i.to_string()).collect::<Vec<_>>().join(","))));
            for i in 1..=multiplicity as u32 {
                let inst = format!("{name}.{i}");
                instances.push((inst.clone(), name.clone(), i, connector.clone()));
                for r in RESERVED_INSTANCE_PARAMS {
                    params.push((format!("{inst}:{r}"), None));
                }
                for p in &image.parameters {
                    if RESERVED_INSTANCE_PARAMS.contains(&p.name.as_str()) {
                        continue;
                    }
                    let override_key = if module.kind == ModuleKind::Image { p.name.clone() } else { format!("{name}:{}", p.name) };
                    let overridden = req.params.get(&override_key).or_else(|| req.params.get(&format!("{name}:{}", p.name)));
                    let value = overridden.cloned().or_else(|| values.get(&p.name).cloned()).or_else(|| {
                        if node_links.contains_key(&p.name) {
                            None
                        } else {
                            p.default.clone()
                        }
                    });
                    if let Some(v) = &value {
                        if v.len() > model::MAX_VALUE_LEN {
                            return Err(Error::TooLarge(format!(
                                "the value of `{inst}:{}` is {} characters; the limit is {}",
                                p.name,
                                v.len(),
                                model::MAX_VALUE_LEN
                            )));
                        }
                    }
                    if overridden.is_none() {
                        if let Some(source) = node_links.get(&p.name) {
                            let (src_node, output) = source.split_once(':').unwrap_or((source, ""));
                            links.push((format!("{src_node}.1:{output}"), format!("{inst}:{}", p.name)));
                        }
                    }
                    params.push((format!("{inst}:{}", p.name), value));
                }
            }
            overrides_used += req
                .params
                .keys()
                .filter(|k| k.starts_with(&format!("{name}:")) || (module.kind == ModuleKind::Image && !k.contains(':')))
                .count();
        }
        if overrides_used < req.params.len() {
            let known: Vec<&String> = params.iter().map(|(k, _)| k).collect();
            let bad = req.params.keys().find(|k| {
                let (n, p) = k.split_once(':').unwrap_or(("machine", k));
                !known.iter().any(|kk| kk.starts_with(&format!("{n}.")) && kk.ends_with(&format!(":{p}")))
            });
            if let Some(bad) = bad {
                return Err(Error::invalid(path.as_str(), format!("params.{bad}"), format!("`{bad}` names no node input of this module")));
            }
        }
        // A link whose output already has a value (a default) delivers it now: links fire on
        // writes, and that value was never written.
        let initial: HashMap<String, Option<String>> = params.iter().cloned().collect();
        for (source, target) in &links {
            if let Some(Some(v)) = initial.get(source) {
                if let Some(slot) = params.iter_mut().find(|(k, _)| k == target) {
                    if slot.1.is_none() {
                        slot.1 = Some(v.clone());
                    }
                }
            }
        }
        if instances.len() as i64 > MAX_INSTANCES {
            return Err(Error::invalid(
                path.as_str(),
                "multiplicity",
                format!("{} instances; a run has at most {MAX_INSTANCES}", instances.len()),
            ));
        }

        let mut wanted: BTreeMap<String, i64> = BTreeMap::new();
        for (_, _, _, connector) in &instances {
            *wanted.entry(connector.clone()).or_default() += 1;
        }
        self.check_quota(&user.name, &wanted).await?;

        let id = uuid::Uuid::new_v4().to_string();
        let token = format!("ssr_{}", random_hex(24));
        let now = now_ms();
        let mut tx = self.db.pool.begin().await?;
        sqlx::query(
            "INSERT INTO runs (id, owner, module, module_version, kind, state, keep_running, timeout_seconds, tags, token_hash, plan, \
             created_at, state_changed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(&id)
        .bind(&user.name)
        .bind(path.as_str())
        .bind(version as i64)
        .bind(module.kind.as_str())
        .bind(RunState::Initializing.as_str())
        .bind(keep_running.as_str())
        .bind(timeout)
        .bind(req.tags.join(","))
        .bind(sha256_hex(&token))
        .bind(serde_json::to_string(&planned)?)
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        for (name, node, idx, connector) in &instances {
            sqlx::query("INSERT INTO run_instances (run_id, name, node, idx, connector) VALUES ($1, $2, $3, $4, $5)")
                .bind(&id)
                .bind(name)
                .bind(node)
                .bind(*idx as i64)
                .bind(connector)
                .execute(&mut *tx)
                .await?;
        }
        for (key, value) in &params {
            sqlx::query("INSERT INTO run_params (run_id, key, value) VALUES ($1, $2, $3)")
                .bind(&id)
                .bind(key)
                .bind(value)
                .execute(&mut *tx)
                .await?;
        }
        for (source, target) in &links {
            sqlx::query("INSERT INTO run_links (run_id, source, target) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                .bind(&id)
                .bind(source)
                .bind(target)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        // The token only lives in memory until the instances start (it is not stored in clear).
        self.rt.tokens.lock().expect("not poisoned").insert(id.clone(), token);
        self.event(
            &id,
            &user.name,
            "created",
            &format!("Run of {path}@{version} created by {} ({} instances)", user.name, instances.len()),
        )
        .await?;
        tracing::info!(run = id, module = %path, version, instances = instances.len(), "run created");
        let engine = self.clone();
        let run = id.clone();
        tokio::spawn(async move {
            if let Err(e) = engine.drive(&run, Event::Created).await {
                tracing::error!(run, error = %e, "starting the run failed");
            }
        });
        self.run_summary(&id).await
    }

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
    fn drive_now<'a>(&'a self, run: &'a str, event: Event) -> crate::connector::BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let lock = self.run_lock(run);
            let _held = lock.lock().await;
            let view = self.run_view(run).await?;
            for action in orchestrator::next(&view, &event) {
                self.apply(run, action).await?;
            }
            Ok(())
        })
    }

    async fn run_view(&self, run: &str) -> Result<RunView> {
        let row = sqlx::query("SELECT state, keep_running FROM runs WHERE id = $1")
            .bind(run)
            .fetch_optional(&self.db.pool)
            .await?
            .ok_or_else(|| Error::NotFound(format!("run `{run}` does not exist")))?;
        let state = parse_state(&row.try_get::<String, _>("state")?)?;
        let keep_running = KeepRunning::parse(&row.try_get::<String, _>("keep_running")?).unwrap_or_default();
        let aborted = self.abort_message(run).await?.is_some();
        let rows = sqlx::query("SELECT completed FROM run_instances WHERE run_id = $1").bind(run).fetch_all(&self.db.pool).await?;
        let completed = rows
            .iter()
            .map(|r| {
                let c: String = r.try_get("completed")?;
                Ok(if c == GONE { Some(state) } else { RunState::parse(&c) })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(RunView { state, aborted, keep_running, completed })
    }

    async fn apply(&self, run: &str, action: Action) -> Result<()> {
        match action {
            Action::SetState(state) => self.set_state(run, state).await,
            Action::RaiseAbort(message) => self.raise_abort_locked(run, "ss", &message).await.map(|_| ()),
            Action::StartInstances => self.start_instances(run).await,
            Action::StopInstances => self.stop_instances(run).await,
        }
    }

    async fn set_state(&self, run: &str, state: RunState) -> Result<()> {
        let now = now_ms();
        let mut tx = self.db.pool.begin().await?;
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
        let owner = self.run_owner(run).await?;
        self.event(run, &owner, "state", state.as_str()).await?;
        self.rt.waits.wake_key(run, "ss:state");
        self.publish(LiveEvent::State { run: run.into(), owner, state });
        tracing::info!(run, state = state.as_str(), "run state");
        if state.is_terminal() {
            // What the engine kept in memory for a live run goes with it, so a long-lived
            // server does not grow with every run it ever had.
            self.rt.tokens.lock().expect("not poisoned").remove(run);
            self.rt.waits.wake_run(run);
            self.rt.waits.forget_run(run);
            self.rt.run_locks.lock().expect("not poisoned").remove(run);
        } else if state != RunState::Ready {
            self.schedule_timeout(run, state, now).await?;
        }
        Ok(())
    }

    /// One sleeping task per transitional state: if the run is still in that state (entered at
    /// `since`) when it wakes, the orchestrator gets a timeout.
    async fn schedule_timeout(&self, run: &str, state: RunState, since: i64) -> Result<()> {
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
                // Still stuck a period later, the run is stopped. The period is at least
                // REPEAT_MIN, so stopping scripts and sending reports fit even in short timeouts.
                repeated = true;
                wake_at = now_ms() + (seconds * 1000).max(REPEAT_MIN_MS);
            }
        });
        Ok(())
    }

    async fn pending_instances(&self, run: &str, state: RunState) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT name, completed FROM run_instances WHERE run_id = $1 ORDER BY node, idx")
            .bind(run)
            .fetch_all(&self.db.pool)
            .await?;
        let mut out = Vec::new();
        for r in rows {
            let c: String = r.try_get("completed")?;
            if c != state.as_str() && c != GONE {
                out.push(r.try_get("name")?);
            }
        }
        Ok(out)
    }

    async fn start_instances(&self, run: &str) -> Result<()> {
        let service_url = self.service_url()?;
        let token = self.rt.tokens.lock().expect("not poisoned").get(run).cloned();
        let Some(token) = token else {
            return Err(Error::Internal(format!("run `{run}` lost its agent token before its instances started")));
        };
        let plan = self.plan_of(run).await?;
        let rows = sqlx::query("SELECT name, node, connector FROM run_instances WHERE run_id = $1 ORDER BY node, idx")
            .bind(run)
            .fetch_all(&self.db.pool)
            .await?;
        for r in rows {
            let (name, node, connector): (String, String, String) = (r.try_get("name")?, r.try_get("node")?, r.try_get("connector")?);
            let image = plan.get(&node).map(|n| n.image_id.clone()).unwrap_or_default();
            let spec = StartSpec { run: run.into(), instance: name.clone(), image, service_url: service_url.clone(), token: token.clone() };
            let started = match self.connector(&connector) {
                Some(c) => c.start(&spec).await,
                None => Err(Error::Internal(format!("connector `{connector}` is not available"))),
            };
            match started {
                Ok(s) => {
                    sqlx::query("UPDATE run_instances SET handle = $1, address = $2 WHERE run_id = $3 AND name = $4")
                        .bind(&s.handle)
                        .bind(&s.address)
                        .bind(run)
                        .bind(&name)
                        .execute(&self.db.pool)
                        .await?;
                }
                Err(e) => {
                    sqlx::query("UPDATE run_instances SET completed = $1 WHERE run_id = $2 AND name = $3")
                        .bind(GONE)
                        .bind(run)
                        .bind(&name)
                        .execute(&self.db.pool)
                        .await?;
                    self.raise_abort_locked(run, &name, &format!("Provisioning failed for {name} on connector {connector}: {e}")).await?;
                }
            }
        }
        Ok(())
    }

    async fn stop_instances(&self, run: &str) -> Result<()> {
        let rows = sqlx::query("SELECT connector, handle FROM run_instances WHERE run_id = $1 AND handle <> ''")
            .bind(run)
            .fetch_all(&self.db.pool)
            .await?;
        for r in rows {
            let (connector, handle): (String, String) = (r.try_get("connector")?, r.try_get("handle")?);
            if let Some(c) = self.connector(&connector) {
                c.stop(&handle).await;
            }
        }
        Ok(())
    }

    /// An instance completed `state` (idempotent; a completion for another state is ignored).
    /// Returns the run's state afterwards.
    pub async fn complete_state(&self, run: &str, instance: &str, state: RunState) -> Result<RunState> {
        let done = sqlx::query(
            "UPDATE run_instances SET completed = $1 WHERE run_id = $2 AND name = $3 AND completed <> $4 \
             AND EXISTS (SELECT 1 FROM runs WHERE id = $2 AND state = $1)",
        )
        .bind(state.as_str())
        .bind(run)
        .bind(instance)
        .bind(GONE)
        .execute(&self.db.pool)
        .await?;
        if done.rows_affected() == 0 {
            let exists = sqlx::query("SELECT 1 AS one FROM run_instances WHERE run_id = $1 AND name = $2")
                .bind(run)
                .bind(instance)
                .fetch_optional(&self.db.pool)
                .await?;
            if exists.is_none() {
                return Err(Error::NotFound(format!("run `{run}` has no instance `{instance}`")));
            }
        } else {
            self.drive(run, Event::Completed).await?;
        }
        self.run_state(run).await
    }

    pub async fn run_state(&self, run: &str) -> Result<RunState> {
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

    /// Re-attaches to what was running before a restart: checks live instances, re-arms the
    /// timeouts, and re-evaluates barriers a crash may have left met but not passed.
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
            for i in &instances {
                let (connector, handle): (String, String) = (i.try_get("connector")?, i.try_get("handle")?);
                if let Some(c) = self.connector(&connector) {
                    if c.recover(&handle).await {
                        alive += 1;
                    }
                }
            }
            tracing::info!(run = id, state = state.as_str(), alive, of = instances.len(), "run recovered");
            if state == RunState::Initializing {
                // The crash came before the instances started; the token is gone with it.
                self.raise_abort(&id, "ss", "The server restarted before the run's instances were started").await?;
                self.drive(&id, Event::Terminate).await?;
            } else {
                if state != RunState::Ready {
                    self.schedule_timeout(&id, state, since).await?;
                }
                self.drive(&id, Event::Completed).await?;
            }
            count += 1;
        }
        Ok(count)
    }

    async fn plan_of(&self, run: &str) -> Result<BTreeMap<String, PlannedNode>> {
        let plan: String = sqlx::query("SELECT plan FROM runs WHERE id = $1").bind(run).fetch_one(&self.db.pool).await?.try_get("plan")?;
        Ok(serde_json::from_str(&plan)?)
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
        Ok(InstancePlan { run: run.into(), instance: instance.into(), node, index: row.try_get::<i64, _>("idx")? as u32, targets })
    }

    pub(crate) async fn run_owner(&self, run: &str) -> Result<String> {
        Ok(sqlx::query("SELECT owner FROM runs WHERE id = $1").bind(run).fetch_one(&self.db.pool).await?.try_get("owner")?)
    }

    pub(crate) async fn event(&self, run: &str, owner: &str, kind: &str, message: &str) -> Result<()> {
        let e = RunEvent { seq: next_seq(), at: now_ms(), kind: kind.into(), message: message.into() };
        sqlx::query("INSERT INTO run_events (run_id, seq, at, kind, message) VALUES ($1, $2, $3, $4, $5)")
            .bind(run)
            .bind(e.seq)
            .bind(e.at)
            .bind(&e.kind)
            .bind(&e.message)
            .execute(&self.db.pool)
            .await?;
        self.publish(LiveEvent::Event { run: run.into(), owner: owner.into(), event: e });
        Ok(())
    }

    pub async fn events(&self, run: &str) -> Result<Vec<RunEvent>> {
        let rows = sqlx::query("SELECT seq, at, kind, message FROM run_events WHERE run_id = $1 ORDER BY seq")
            .bind(run)
            .fetch_all(&self.db.pool)
            .await?;
        rows.iter().map(event_from_row).collect()
    }

    /// Events after `since` of the user's runs (an administrator's: all), optionally of one run,
    /// oldest first: what a reconnecting live view missed.
    pub async fn events_since(&self, user: &User, run: Option<&str>, since: i64) -> Result<Vec<(String, RunEvent)>> {
        let rows = sqlx::query(
            "SELECT e.run_id, e.seq, e.at, e.kind, e.message FROM run_events e JOIN runs r ON r.id = e.run_id \
             WHERE e.seq > $1 AND ($2 = 1 OR r.owner = $3) AND ($4 = '' OR r.id = $4) ORDER BY e.seq LIMIT 10000",
        )
        .bind(since)
        .bind(user.is_admin as i64)
        .bind(&user.name)
        .bind(run.unwrap_or(""))
        .fetch_all(&self.db.pool)
        .await?;
        rows.iter().map(|r| Ok((r.try_get("run_id")?, event_from_row(r)?))).collect()
    }

    /// Stores log lines an agent sent: `(instance, stream, line)`.
    pub async fn add_logs(&self, run: &str, lines: Vec<(String, String, String)>) -> Result<()> {
        let owner = self.run_owner(run).await?;
        let mut tx = self.db.pool.begin().await?;
        let mut out = Vec::new();
        for (instance, stream, line) in lines {
            let l = LogLine { seq: next_seq(), at: now_ms(), instance, stream, line: line.chars().take(16 * 1024).collect() };
            sqlx::query("INSERT INTO run_logs (run_id, seq, at, instance, stream, line) VALUES ($1, $2, $3, $4, $5, $6)")
                .bind(run)
                .bind(l.seq)
                .bind(l.at)
                .bind(&l.instance)
                .bind(&l.stream)
                .bind(&l.line)
                .execute(&mut *tx)
                .await?;
            out.push(l);
        }
        tx.commit().await?;
        for line in out {
            self.publish(LiveEvent::Log { run: run.into(), owner: owner.clone(), line });
        }
        Ok(())
    }

    /// Log lines after `after` (a sequence number), oldest first, at most `limit`.
    pub async fn logs(&self, run: &str, instance: Option<&str>, after: i64, limit: i64) -> Result<Vec<LogLine>> {
        let rows = sqlx::query(
            "SELECT seq, at, instance, stream, line FROM run_logs WHERE run_id = $1 AND seq > $2 AND ($3 = '' OR instance = $3) ORDER BY seq LIMIT $4",
        )
        .bind(run)
        .bind(after)
        .bind(instance.unwrap_or(""))
        .bind(limit)
        .fetch_all(&self.db.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(LogLine {
                    seq: r.try_get("seq")?,
                    at: r.try_get("at")?,
                    instance: r.try_get("instance")?,
                    stream: r.try_get("stream")?,
                    line: r.try_get("line")?,
                })
            })
            .collect()
    }

    fn report_path(&self, run: &str, instance: &str, file: &str) -> Result<std::path::PathBuf> {
        let ok = |s: &str| {
            !s.is_empty() && s.len() <= 200 && !s.starts_with('.') && s.chars().all(|c| c.is_ascii_alphanumeric() || "._-:".contains(c))
        };
        if !ok(instance) || !ok(file) {
            return Err(Error::invalid("", "file", format!("`{instance}/{file}` is not a report file name")));
        }
        Ok(self.rt.config.data_dir.join("reports").join(run).join(instance).join(file))
    }

    /// Stores a report bundle an agent uploaded.
    pub async fn store_report(&self, run: &str, instance: &str, file: &str, bytes: &[u8]) -> Result<()> {
        let path = self.report_path(run, instance, file)?;
        let exists = sqlx::query("SELECT 1 AS one FROM run_instances WHERE run_id = $1 AND name = $2")
            .bind(run)
            .bind(instance)
            .fetch_optional(&self.db.pool)
            .await?;
        if exists.is_none() {
            return Err(Error::NotFound(format!("run `{run}` has no instance `{instance}`")));
        }
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(|e| Error::Internal(e.to_string()))?;
        }
        // Write then rename: a crash never leaves half a report under the final name.
        let tmp = path.with_extension("part");
        tokio::fs::write(&tmp, bytes).await.map_err(|e| Error::Internal(e.to_string()))?;
        tokio::fs::rename(&tmp, &path).await.map_err(|e| Error::Internal(e.to_string()))?;
        sqlx::query(
            "INSERT INTO run_reports (run_id, instance, file, size, at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (run_id, instance, file) DO UPDATE SET size = $4, at = $5",
        )
        .bind(run)
        .bind(instance)
        .bind(file)
        .bind(bytes.len() as i64)
        .bind(now_ms())
        .execute(&self.db.pool)
        .await?;
        let owner = self.run_owner(run).await?;
        self.event(run, &owner, "report", &format!("Report {file} from {instance} ({} bytes)", bytes.len())).await
    }

    pub async fn reports(&self, run: &str) -> Result<Vec<ReportFile>> {
        let rows = sqlx::query("SELECT instance, file, size, at FROM run_reports WHERE run_id = $1 ORDER BY instance, file")
            .bind(run)
            .fetch_all(&self.db.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(ReportFile {
                    instance: r.try_get("instance")?,
                    file: r.try_get("file")?,
                    size: r.try_get("size")?,
                    at: r.try_get("at")?,
                })
            })
            .collect()
    }

    pub async fn read_report(&self, run: &str, instance: &str, file: &str) -> Result<Vec<u8>> {
        let path = self.report_path(run, instance, file)?;
        tokio::fs::read(&path).await.map_err(|_| Error::NotFound(format!("run `{run}` has no report `{instance}/{file}`")))
    }

    pub async fn run_summary(&self, run: &str) -> Result<RunSummary> {
        let r = sqlx::query(
            "SELECT id, owner, module, module_version, state, keep_running, tags, created_at, state_changed_at, ended_at FROM runs WHERE id = $1",
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
        let counts =
            sqlx::query("SELECT connector, completed, COUNT(*) AS n FROM run_instances WHERE run_id = $1 GROUP BY connector, completed")
                .bind(&id)
                .fetch_all(&self.db.pool)
                .await?;
        for c in &counts {
            let n = c.try_get::<i64, _>("n")? as u32;
            *connectors.entry(c.try_get::<String, _>("connector")?).or_insert(0) += n;
            *instance_states.entry(c.try_get::<String, _>("completed")?).or_insert(0) += n;
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
        })
    }

    /// The caller's runs (an administrator's: everyone's), newest first.
    pub async fn list_runs(&self, actor: Option<&User>, active_only: bool) -> Result<Vec<RunSummary>> {
        let user = actor.ok_or_else(|| Error::Unauthorized("sign in to see runs".into()))?;
        let rows = sqlx::query(
            "SELECT id, owner, module, module_version, state, keep_running, tags, created_at, state_changed_at, ended_at FROM runs \
             WHERE ($1 = 1 OR owner = $2) AND ($3 = 0 OR ended_at IS NULL) ORDER BY created_at DESC, id LIMIT 500",
        )
        .bind(user.is_admin as i64)
        .bind(&user.name)
        .bind(active_only as i64)
        .fetch_all(&self.db.pool)
        .await?;
        let mut out = Vec::new();
        for r in &rows {
            out.push(self.summary_from_row(r).await?);
        }
        Ok(out)
    }

    pub async fn run_detail(&self, run: &str) -> Result<RunDetail> {
        let summary = self.run_summary(run).await?;
        let params = self.params(run).await?;
        let rows = sqlx::query(
            "SELECT name, node, idx, connector, address, handle, completed FROM run_instances WHERE run_id = $1 ORDER BY node, idx",
        )
        .bind(run)
        .fetch_all(&self.db.pool)
        .await?;
        let mut instances = Vec::new();
        for r in rows {
            let name: String = r.try_get("name")?;
            let completed: String = r.try_get("completed")?;
            let connector: String = r.try_get("connector")?;
            let handle: String = r.try_get("handle")?;
            let running = match self.connector(&connector) {
                Some(c) if !handle.is_empty() => c.inspect(&handle).await == crate::connector::Health::Running,
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
                name,
            });
        }
        Ok(RunDetail { summary, instances, params })
    }

    /// Every parameter of the run, unset ones as `None`.
    pub async fn params(&self, run: &str) -> Result<BTreeMap<String, Option<String>>> {
        let rows = sqlx::query("SELECT key, value FROM run_params WHERE run_id = $1").bind(run).fetch_all(&self.db.pool).await?;
        rows.iter().map(|r| Ok((r.try_get("key")?, r.try_get("value")?))).collect()
    }
}

/// Adds the `prerecipe`, `packages` and `recipe` scripts of an image's chain (root first).
fn add_build_recipes(targets: &mut BTreeMap<String, Vec<PlannedScript>>, chain: &[crate::inherit::Level], image: &str, version: u32) {
    for (name, pick) in [("prerecipe", 0), ("recipe", 1)] {
        let scripts: Vec<PlannedScript> = chain
            .iter()
            .filter_map(|l| {
                let text = if pick == 0 { &l.module.prerecipe } else { &l.module.recipe };
                (!text.trim().is_empty()).then(|| PlannedScript { module: l.path.clone(), version: l.version, script: text.clone() })
            })
            .collect();
        if !scripts.is_empty() {
            targets.insert(name.into(), scripts);
        }
    }
    let mut packages: Vec<&str> = Vec::new();
    for p in chain.iter().flat_map(|l| l.module.packages.iter()) {
        if !packages.contains(&p.as_str()) {
            packages.push(p);
        }
    }
    if !packages.is_empty() {
        targets.insert("packages".into(), vec![PlannedScript { module: image.into(), version, script: packages_script(&packages) }]);
    }
}

/// One install command for the union of the chain's packages, with the node's package manager.
fn packages_script(packages: &[&str]) -> String {
    let list = packages.join(" ");
    format!(
        "#!/bin/sh -e\n# Packages of the image and its parents\n\
         if command -v apt-get >/dev/null 2>&1; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q {list}\n\
         elif command -v dnf >/dev/null 2>&1; then dnf install -y {list}\n\
         elif command -v yum >/dev/null 2>&1; then yum install -y {list}\n\
         elif command -v zypper >/dev/null 2>&1; then zypper install -yn {list}\n\
         elif command -v apk >/dev/null 2>&1; then apk add --no-cache {list}\n\
         else echo \"no package manager to install: {list}\" >&2; exit 1\n\
         fi\n"
    )
}

fn parse_state(s: &str) -> Result<RunState> {
    RunState::parse(s).ok_or_else(|| Error::Internal(format!("unknown run state `{s}` in the database")))
}

fn event_from_row(r: &sqlx::any::AnyRow) -> Result<RunEvent> {
    Ok(RunEvent { seq: r.try_get("seq")?, at: r.try_get("at")?, kind: r.try_get("kind")?, message: r.try_get("message")? })
}
