//! Launching a run: reads the module at the requested version and the images of its nodes,
//! plans the run ([`super::plan::plan_run`]), checks the user's quotas, and writes the run, its
//! instances, parameters and links in one transaction before anything starts.

use std::collections::BTreeMap;

use model::run::{KeepRunning, RunRequest, RunSummary};
use model::{ModulePath, RunState, User};
use sqlx::Row;

use super::plan::{plan_run, NodeSpec, PlanInput, RunPlan};
use super::sha256_hex;
use crate::access::{self, Op};
use crate::orchestrator::Event;
use crate::users::random_hex;
use crate::{now_ms, Engine, Error, Result};

/// The `kind` of a build run in the runs table (others have their module's kind).
pub(crate) const BUILD_KIND: &str = "build";

/// Longest a run may stay in one transitional state.
const MAX_TIMEOUT_SECONDS: i64 = 7 * 24 * 3600;
/// Runs one user may have that have not ended.
pub const MAX_ACTIVE_RUNS: i64 = 100;

impl Engine {
    /// Deploys a module: resolves it at the requested version, creates the run, its instances
    /// and parameters, and starts it. Returns once the run is stored; provisioning goes on.
    pub async fn create_run(&self, actor: Option<&User>, req: RunRequest) -> Result<RunSummary> {
        self.launch_run(actor, req, false).await
    }

    /// [`Engine::create_run`], or with `build` a build run of an image (see `builds.rs`).
    pub(crate) async fn launch_run(&self, actor: Option<&User>, req: RunRequest, build: bool) -> Result<RunSummary> {
        let user = actor.ok_or_else(|| Error::Unauthorized("sign in to deploy".into()))?;
        let path = ModulePath::parse(&req.module).map_err(|e| Error::invalid("", "module", e))?;
        let meta = self.meta(path.as_str()).await?.ok_or_else(|| Error::NotFound(format!("module `{path}` does not exist")))?;
        access::check(actor, path.as_str(), &meta.access(), Op::Deploy)?;
        let module = self.read_version(&meta, req.version).await?;
        let version = module.version.unwrap_or(meta.latest_version);
        let profile = self.profile(user).await?;
        let keep_running = req.keep_running.or_else(|| KeepRunning::parse(&profile.keep_running)).unwrap_or_default();
        let timeout = req.timeout.unwrap_or(profile.run_timeout_minutes * 60);
        if !(1..=MAX_TIMEOUT_SECONDS).contains(&timeout) {
            return Err(Error::invalid(path.as_str(), "timeout", "must be between 1 second and 7 days"));
        }
        for t in &req.tags {
            if t.is_empty() || t.len() > 64 || t.contains(',') {
                return Err(Error::invalid(path.as_str(), "tags", format!("`{t}` is not a tag (1 to 64 characters, no commas)")));
            }
        }

        let active: i64 = sqlx::query("SELECT COUNT(*) AS n FROM runs WHERE owner = $1 AND ended_at IS NULL")
            .bind(&user.name)
            .fetch_one(&self.db.pool)
            .await?
            .try_get("n")?;
        if active >= MAX_ACTIVE_RUNS {
            return Err(Error::QuotaExceeded(format!(
                "you have {active} runs that have not ended (at most {MAX_ACTIVE_RUNS}); terminate some first"
            )));
        }

        let nodes = NodeSpec::of_module(&module, version)?;
        let mut images = BTreeMap::new();
        for spec in &nodes {
            images.insert(spec.name.clone(), self.resolve_image(actor, &spec.node.image).await?);
        }
        let built = if build { BTreeMap::new() } else { self.built_for(&nodes, &images, &req).await? };
        let connectors = self.connector_names();
        let plan = plan_run(&PlanInput {
            module: path.as_str(),
            kind: module.kind,
            nodes: &nodes,
            images: &images,
            request: &req,
            connectors: &connectors,
            build,
            built: &built,
        })?;
        self.check_allowed(user, plan.nodes.values().map(|n| &n.connector)).await?;

        let id = uuid::Uuid::new_v4().to_string();
        let token = format!("ssr_{}", random_hex(24));
        let kind = if build { BUILD_KIND } else { module.kind.as_str() };
        let stored = StoredRun { id: &id, owner: &user.name, module: path.as_str(), version, kind, request: &req };
        self.insert_run(&stored, keep_running, timeout, &req.tags, &sha256_hex(&token), &plan).await?;
        // The token only lives in memory until the instances start (it is not stored in clear).
        self.rt.runs.keep_token(&id, token);
        let count = plan.instances.len();
        self.event(&id, &user.name, "created", &format!("Run of {path}@{version} created by {} ({count} instances)", user.name)).await?;
        tracing::info!(run = id, module = %path, version, instances = count, "run created");
        let engine = self.clone();
        let run = id.clone();
        tokio::spawn(async move {
            if let Err(e) = engine.drive(&run, Event::Created).await {
                tracing::error!(run, error = %e, "starting the run failed");
            }
        });
        self.run_summary(&id).await
    }

    async fn insert_run(
        &self,
        run: &StoredRun<'_>,
        keep_running: KeepRunning,
        timeout: i64,
        tags: &[String],
        token_hash: &str,
        plan: &RunPlan,
    ) -> Result<()> {
        let now = now_ms();
        // The quota check and the insert are one step: launches of one server wait for each
        // other here, and on PostgreSQL the user's row is locked against other servers.
        let _one_at_a_time = self.rt.launches.lock().await;
        let mut tx = self.db.begin_write().await?;
        if self.db.backend == crate::db::Backend::Postgres {
            sqlx::query("SELECT name FROM users WHERE name = $1 FOR UPDATE").bind(run.owner).fetch_optional(&mut *tx).await?;
        }
        self.check_quota(&mut tx, run.owner, &plan.instances_per_connector()).await?;
        sqlx::query(
            "INSERT INTO runs (id, owner, module, module_version, kind, state, keep_running, timeout_seconds, tags, token_hash, plan, \
             created_at, state_changed_at, scalable, request) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        )
        .bind(run.id)
        .bind(run.owner)
        .bind(run.module)
        .bind(i64::from(run.version))
        .bind(run.kind)
        .bind(RunState::Initializing.as_str())
        .bind(keep_running.as_str())
        .bind(timeout)
        .bind(tags.join(","))
        .bind(token_hash)
        .bind(serde_json::to_string(&plan.nodes)?)
        .bind(now)
        .bind(now)
        .bind(i64::from(run.request.scalable))
        .bind(serde_json::to_string(run.request)?)
        .execute(&mut *tx)
        .await?;
        // Many rows per statement: a run of 1,000 instances has ~8,000 rows, and a statement
        // is a round trip to the database's thread.
        for chunk in plan.instances.chunks(ROWS_PER_INSERT) {
            let sql = insert_sql("run_instances (run_id, name, node, idx, connector)", chunk.len(), 5, "");
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for i in chunk {
                q = q.bind(run.id).bind(&i.name).bind(&i.node).bind(i64::from(i.index)).bind(&i.connector);
            }
            q.execute(&mut *tx).await?;
        }
        for chunk in plan.params.chunks(ROWS_PER_INSERT) {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(insert_sql("run_params (run_id, key, value)", chunk.len(), 3, "")));
            for p in chunk {
                q = q.bind(run.id).bind(&p.key).bind(&p.value);
            }
            q.execute(&mut *tx).await?;
        }
        for chunk in plan.links.chunks(ROWS_PER_INSERT) {
            let sql = insert_sql("run_links (run_id, source, target)", chunk.len(), 3, " ON CONFLICT DO NOTHING");
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for l in chunk {
                q = q.bind(run.id).bind(&l.source).bind(&l.target);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// Rows per INSERT statement (× 5 columns at most: well under SQLite's and PostgreSQL's
/// limits on bound values).
const ROWS_PER_INSERT: usize = 200;

/// `INSERT INTO <into> VALUES ($1, …, $cols), (…), …` for `rows` rows: placeholders only, every
/// value is bound.
fn insert_sql(into: &str, rows: usize, cols: usize, tail: &str) -> String {
    let row = |r: usize| format!("({})", crate::db::placeholders(r * cols + 1, cols, 1));
    format!("INSERT INTO {into} VALUES {}{tail}", (0..rows).map(row).collect::<Vec<_>>().join(", "))
}

/// The identity of a run being written.
struct StoredRun<'a> {
    id: &'a str,
    owner: &'a str,
    /// Kept: a scaling plans its new instances from it.
    request: &'a RunRequest,
    module: &'a str,
    version: u32,
    kind: &'a str,
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_insert_of_many_rows_numbers_every_value() {
        assert_eq!(super::insert_sql("t (a, b)", 1, 2, ""), "INSERT INTO t (a, b) VALUES ($1, $2)");
        assert_eq!(
            super::insert_sql("t (a, b, c)", 2, 3, " ON CONFLICT DO NOTHING"),
            "INSERT INTO t (a, b, c) VALUES ($1, $2, $3), ($4, $5, $6) ON CONFLICT DO NOTHING"
        );
    }
}
