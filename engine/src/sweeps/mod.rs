//! Parameter sweeps: a deployment launched over a grid of values ([`grid`]), a few runs at a
//! time ([`driver`]), an output parameter collected from every instance of every run, with
//! its mean, median and 95th percentile per point, as a table, a chart and CSV.
//!
//! A sweep is stored with its points (each point's launch request and, once launched, its
//! run), so a server restart resumes it where it was.

pub mod driver;
pub mod grid;

use model::sweep::{Sample, Stats, Sweep, SweepPoint, SweepRequest, SweepSummary};
use model::{ModulePath, RunState, User};
use sqlx::Row;

use crate::access::{self, Op};
use crate::{now_ms, Engine, Error, Result};

/// Runs of one sweep at once, at most.
const MAX_PARALLEL: u32 = 8;

impl Engine {
    /// Checks a sweep request whole, stores the sweep and its points, and starts it.
    pub async fn create_sweep(&self, actor: Option<&User>, req: SweepRequest) -> Result<Sweep> {
        let user = actor.ok_or_else(|| Error::Unauthorized("sign in to run a sweep".into()))?;
        let path = ModulePath::parse(&req.module).map_err(|e| Error::invalid("", "module", e))?;
        let meta = self.meta(path.as_str()).await?.ok_or_else(|| Error::NotFound(format!("module `{path}` does not exist")))?;
        access::check(actor, path.as_str(), &meta.access(), Op::Deploy)?;
        let mut axes = Vec::with_capacity(req.vary.len());
        for v in &req.vary {
            axes.push(grid::parse_vary(v).map_err(|e| Error::invalid(path.as_str(), "vary", e))?);
        }
        let points = grid::grid(&axes).map_err(|e| Error::invalid(path.as_str(), "vary", e))?;
        grid::parse_collect(&req.collect).map_err(|e| Error::invalid(path.as_str(), "collect", e))?;
        let parallel = req.parallel.unwrap_or(1);
        if !(1..=MAX_PARALLEL).contains(&parallel) {
            return Err(Error::invalid(path.as_str(), "parallel", format!("{parallel}: 1 to {MAX_PARALLEL} runs at once")));
        }
        let id = uuid::Uuid::new_v4().to_string();
        let now = now_ms();
        let mut tx = self.db.begin_write().await?;
        let spec = serde_json::to_string(&SweepRequest { parallel: Some(parallel), module: path.to_string(), ..req.clone() })?;
        sqlx::query("INSERT INTO sweeps (id, owner, module, spec, state, created_at) VALUES ($1, $2, $3, $4, 'running', $5)")
            .bind(&id)
            .bind(&user.name)
            .bind(path.as_str())
            .bind(&spec)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        for (i, point) in points.iter().enumerate() {
            sqlx::query("INSERT INTO sweep_points (sweep_id, idx, label, point) VALUES ($1, $2, $3, $4)")
                .bind(&id)
                .bind(i as i64)
                .bind(grid::label(&axes, point))
                .bind(serde_json::to_string(point)?)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        tracing::info!(sweep = id, module = %path, points = points.len(), parallel, "sweep created");
        driver::start(self.clone(), id.clone());
        self.sweep(actor, &id).await
    }

    /// A sweep with every point's run, state, samples and statistics (its owner and
    /// administrators only).
    pub async fn sweep(&self, actor: Option<&User>, id: &str) -> Result<Sweep> {
        let user = actor.ok_or_else(|| Error::Unauthorized("sign in to see sweeps".into()))?;
        let row = sqlx::query("SELECT owner, module, spec, state, created_at, ended_at FROM sweeps WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.db.pool)
            .await?
            .ok_or_else(|| Error::NotFound(format!("sweep `{id}` does not exist")))?;
        let owner: String = row.try_get("owner")?;
        if !(user.is_admin || user.name == owner) {
            return Err(Error::Forbidden(format!("sweep `{id}` belongs to another user than `{}`", user.name)));
        }
        let spec: SweepRequest = serde_json::from_str(&row.try_get::<String, _>("spec")?)?;
        let collect = grid::parse_collect(&spec.collect).map_err(Error::Internal)?;
        let rows = sqlx::query("SELECT idx, label, point, run_id FROM sweep_points WHERE sweep_id = $1 ORDER BY idx")
            .bind(id)
            .fetch_all(&self.db.pool)
            .await?;
        let mut points = Vec::with_capacity(rows.len());
        for r in &rows {
            let run: String = r.try_get("run_id")?;
            let (state, samples, unreadable) = if run.is_empty() { (None, Vec::new(), 0) } else { self.samples(&run, &collect).await? };
            let values: Vec<f64> = samples.iter().map(|s| s.value).collect();
            points.push(SweepPoint {
                index: r.try_get::<i64, _>("idx")? as u32,
                values: serde_json::from_str(&r.try_get::<String, _>("point")?)?,
                label: r.try_get("label")?,
                run: (!run.is_empty()).then_some(run),
                state,
                stats: Stats::of(&values),
                samples,
                unreadable,
            });
        }
        Ok(Sweep {
            id: id.to_string(),
            owner,
            module: row.try_get("module")?,
            vary: spec.vary.clone(),
            collect: spec.collect.clone(),
            parallel: spec.parallel.unwrap_or(1),
            state: row.try_get("state")?,
            created_at: row.try_get("created_at")?,
            ended_at: row.try_get("ended_at")?,
            points,
        })
    }

    /// The caller's sweeps (an administrator's: all), newest first, without their samples.
    pub async fn sweeps(&self, actor: Option<&User>) -> Result<Vec<SweepSummary>> {
        let user = actor.ok_or_else(|| Error::Unauthorized("sign in to see sweeps".into()))?;
        let rows = sqlx::query("SELECT id, module, state, created_at FROM sweeps WHERE ($1 = 1 OR owner = $2) ORDER BY created_at DESC")
            .bind(i64::from(user.is_admin))
            .bind(&user.name)
            .fetch_all(&self.db.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(SweepSummary {
                    id: r.try_get("id")?,
                    module: r.try_get("module")?,
                    state: r.try_get("state")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// The sweep as CSV: one row per (run, collected instance), the varied values as columns.
    pub async fn sweep_csv(&self, actor: Option<&User>, id: &str) -> Result<String> {
        let s = self.sweep(actor, id).await?;
        let keys: Vec<String> = s.points.first().map(|p| p.values.keys().cloned().collect()).unwrap_or_default();
        let mut out = format!(
            "point,{},run,state,instance,{}\n",
            keys.iter().map(|k| csv_field(k)).collect::<Vec<_>>().join(","),
            csv_field(&s.collect)
        );
        for p in &s.points {
            let values: Vec<String> = keys.iter().map(|k| csv_field(p.values.get(k).map(String::as_str).unwrap_or(""))).collect();
            let run = p.run.clone().unwrap_or_default();
            let state = p.state.map(|s| s.as_str()).unwrap_or("");
            for sample in &p.samples {
                out.push_str(&format!("{},{},{run},{state},{},{}\n", p.index, values.join(","), csv_field(&sample.instance), sample.value));
            }
        }
        Ok(out)
    }

    /// The run's state and the collected values of its instances (numbers only).
    async fn samples(&self, run: &str, collect: &grid::Collect) -> Result<(Option<RunState>, Vec<Sample>, u32)> {
        let state = self.run_state(run).await.ok();
        let rows = sqlx::query(
            "SELECT i.name AS name, i.node AS node, i.idx AS idx, p.value AS value FROM run_instances i \
             LEFT JOIN run_params p ON p.run_id = i.run_id AND p.key = i.name || ':' || $2 WHERE i.run_id = $1 ORDER BY i.idx",
        )
        .bind(run)
        .bind(&collect.param)
        .fetch_all(&self.db.pool)
        .await?;
        let mut samples = Vec::new();
        let mut unreadable = 0;
        for r in &rows {
            let (node, index): (String, i64) = (r.try_get("node")?, r.try_get("idx")?);
            if !collect.takes(&node, index as u32) {
                continue;
            }
            match r.try_get::<Option<String>, _>("value")?.and_then(|v| v.trim().parse::<f64>().ok()).filter(|v| v.is_finite()) {
                Some(value) => samples.push(Sample { instance: r.try_get("name")?, value }),
                None => unreadable += 1,
            }
        }
        Ok((state, samples, unreadable))
    }

    /// Resumes the sweeps that were running when the server stopped.
    pub async fn resume_sweeps(&self) -> Result<usize> {
        let rows = sqlx::query("SELECT id FROM sweeps WHERE state = 'running'").fetch_all(&self.db.pool).await?;
        for r in &rows {
            driver::start(self.clone(), r.try_get("id")?);
        }
        Ok(rows.len())
    }

    pub(crate) async fn user_named(&self, name: &str) -> Result<User> {
        let row = sqlx::query("SELECT name, is_admin FROM users WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.db.pool)
            .await?
            .ok_or_else(|| Error::NotFound(format!("user `{name}` does not exist")))?;
        Ok(User { name: row.try_get("name")?, is_admin: row.try_get::<i64, _>("is_admin")? != 0 })
    }
}

/// A CSV field, quoted when it needs to be.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}
