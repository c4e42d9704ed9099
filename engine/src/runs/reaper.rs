//! The reaper: stops instances that should not be running any more. A run's end stops its
//! instances, but a crash can cut that off (between the end's commit and the stops, or between
//! an instance's start and its record), and a connector can be unreachable at that moment. At
//! start and then periodically the reaper:
//!
//! 1. goes by the **records**: every started instance of a run that ended (a minute ago or
//!    more, so a run's own end is not raced) or that a scaling removed, and whose stop was
//!    never confirmed, is stopped and removed with the run owner's account, and the run's
//!    resources on that connector released;
//! 2. goes by what **each connector finds** of this server's (labels, environments,
//!    directories): an instance whose run ended or no longer exists is stopped at once; one
//!    that its live run does not know (no record, no handle, a failed start) is stopped when
//!    the next pass still finds it, so a start under way is never hit.

use std::collections::{BTreeMap, HashSet};

use sqlx::Row;

use crate::connector::{Account, Found};
use crate::{now_ms, Engine, Result};

/// How long after a run's end the records are trusted over the end's own stops.
const ENDED_GRACE_MS: i64 = 60_000;
/// Instances gone by the records per pass (the next pass takes the rest).
const PER_PASS: i64 = 500;

/// What the database says of an instance a connector found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Known {
    /// No such run (never, or deleted by retention).
    NoRun,
    /// Its run has ended.
    Ended,
    /// Its live run removed it (a scaling).
    Removed,
    /// Its live run has no started instance of that name (no record, no handle yet, or its
    /// start failed).
    Unknown,
    /// Its live run knows it.
    Live,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Keep,
    /// Looked at again next pass.
    Later,
    Stop,
}

/// Whether to stop a found instance; `seen_before`: the previous pass found it unknown too.
pub(crate) fn verdict(known: Known, seen_before: bool) -> Verdict {
    match known {
        Known::NoRun | Known::Ended | Known::Removed => Verdict::Stop,
        Known::Unknown if seen_before => Verdict::Stop,
        Known::Unknown => Verdict::Later,
        Known::Live => Verdict::Keep,
    }
}

/// What one pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reaped {
    /// Instances stopped because the records said their run had ended or dropped them.
    pub by_record: usize,
    /// Instances stopped because a connector found them and no live run wanted them.
    pub found: usize,
}

impl Engine {
    /// One pass of the reaper (see the module's text). Errors of one connector or instance are
    /// logged and retried next pass; only a database error fails the pass.
    pub async fn reap(&self) -> Result<Reaped> {
        let by_record = self.reap_by_record().await?;
        let found = self.reap_found().await?;
        if by_record + found > 0 {
            tracing::info!(by_record, found, "reaper stopped instances no run wanted");
        }
        Ok(Reaped { by_record, found })
    }

    async fn reap_by_record(&self) -> Result<usize> {
        let rows = sqlx::query(
            "SELECT i.run_id, i.name, i.connector, i.handle, r.ended_at FROM run_instances i JOIN runs r ON r.id = i.run_id \
             WHERE i.handle <> '' AND i.stopped = 0 AND ((r.ended_at IS NOT NULL AND r.ended_at < $1) OR i.scale = 'gone') \
             ORDER BY i.run_id LIMIT $2",
        )
        .bind(now_ms() - ENDED_GRACE_MS)
        .bind(PER_PASS)
        .fetch_all(&self.db.pool)
        .await?;
        let mut stopped = 0;
        let mut released: BTreeMap<String, HashSet<String>> = BTreeMap::new();
        let mut owners = BTreeMap::new();
        for r in &rows {
            let (run, name, connector, handle): (String, String, String, String) =
                (r.try_get("run_id")?, r.try_get("name")?, r.try_get("connector")?, r.try_get("handle")?);
            let ended = r.try_get::<Option<i64>, _>("ended_at")?.is_some();
            let Some(c) = self.connector(&connector) else { continue };
            if !owners.contains_key(&run) {
                owners.insert(run.clone(), self.owner_accounts(&run).await?);
            }
            let account = owners.get_mut(&run).expect("just inserted").on(self, &connector).await?.clone();
            match c.stop(&handle, &account).await.and(c.destroy(&handle, &account).await) {
                Ok(()) => {
                    self.mark_stopped(&run, Some(&name)).await?;
                    stopped += 1;
                    if ended {
                        released.entry(run).or_default().insert(connector);
                    }
                }
                Err(e) => tracing::warn!(run, instance = name, connector, error = %e, "reaper: stopping an instance failed"),
            }
        }
        for (run, connectors) in released {
            for connector in connectors {
                let Some(c) = self.connector(&connector) else { continue };
                let account = owners.get_mut(&run).expect("loaded above").on(self, &connector).await?.clone();
                if let Err(e) = c.release_run(&run, &account).await {
                    tracing::warn!(run, connector, error = %e, "reaper: removing an ended run's resources failed");
                }
            }
        }
        Ok(stopped)
    }

    async fn reap_found(&self) -> Result<usize> {
        let mut unknown_now = HashSet::new();
        let seen_before = std::mem::take(&mut *self.rt.unknown_instances.lock().expect("not poisoned"));
        let mut stopped = 0;
        for c in self.connectors() {
            let found = match c.instances().await {
                Ok(f) => f,
                Err(e) => {
                    tracing::warn!(connector = c.name(), error = %e, "reaper: listing the connector's instances failed");
                    continue;
                }
            };
            let mut runs: BTreeMap<String, Vec<Found>> = BTreeMap::new();
            for f in found {
                runs.entry(f.run.clone()).or_default().push(f);
            }
            for (run, found) in runs {
                let known = self.known_instances(&run).await?;
                let mut release = false;
                for f in found {
                    let k = known.as_ref().map_or(Known::NoRun, |k| k.of(&f.instance));
                    let key = (c.name().to_string(), f.handle.clone());
                    match verdict(k, seen_before.contains(&key)) {
                        Verdict::Keep => {}
                        Verdict::Later => {
                            unknown_now.insert(key);
                        }
                        Verdict::Stop => {
                            // Found without a user's key, so stopped without one.
                            let account = Account::default();
                            match c.stop(&f.handle, &account).await.and(c.destroy(&f.handle, &account).await) {
                                Ok(()) => stopped += 1,
                                Err(e) => tracing::warn!(run, instance = f.instance, connector = c.name(), error = %e,
                                    "reaper: stopping a found instance failed"),
                            }
                            release |= matches!(k, Known::NoRun | Known::Ended);
                        }
                    }
                }
                if release {
                    if let Err(e) = c.release_run(&run, &Account::default()).await {
                        tracing::warn!(run, connector = c.name(), error = %e, "reaper: removing an ended run's resources failed");
                    }
                }
            }
        }
        *self.rt.unknown_instances.lock().expect("not poisoned") = unknown_now;
        Ok(stopped)
    }

    /// The run's started instances as the database has them; `None`: no such run.
    async fn known_instances(&self, run: &str) -> Result<Option<KnownRun>> {
        let Some(row) = sqlx::query("SELECT ended_at FROM runs WHERE id = $1").bind(run).fetch_optional(&self.db.pool).await? else {
            return Ok(None);
        };
        let ended = row.try_get::<Option<i64>, _>("ended_at")?.is_some();
        let rows = sqlx::query("SELECT name, scale FROM run_instances WHERE run_id = $1 AND handle <> '' AND start_failed = 0")
            .bind(run)
            .fetch_all(&self.db.pool)
            .await?;
        let mut instances = BTreeMap::new();
        for r in rows {
            instances.insert(r.try_get::<String, _>("name")?, r.try_get::<String, _>("scale")? == "gone");
        }
        Ok(Some(KnownRun { ended, instances }))
    }

    /// Records that the connector stopped and removed an instance (`None`: every started
    /// instance of the run).
    pub(crate) async fn mark_stopped(&self, run: &str, instance: Option<&str>) -> Result<()> {
        sqlx::query("UPDATE run_instances SET stopped = 1 WHERE run_id = $1 AND handle <> '' AND ($2 = '' OR name = $2)")
            .bind(run)
            .bind(instance.unwrap_or(""))
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }
}

/// A run as the reaper sees it: ended or not, and its started instances (removed or not).
struct KnownRun {
    ended: bool,
    instances: BTreeMap<String, bool>,
}

impl KnownRun {
    fn of(&self, instance: &str) -> Known {
        match (self.ended, self.instances.get(instance)) {
            (true, _) => Known::Ended,
            (false, Some(true)) => Known::Removed,
            (false, Some(false)) => Known::Live,
            (false, None) => Known::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_no_live_run_wants_is_stopped_and_an_unknown_instance_only_when_found_twice() {
        use Known::*;
        let table = [
            (NoRun, false, Verdict::Stop),
            (NoRun, true, Verdict::Stop),
            (Ended, false, Verdict::Stop),
            (Removed, false, Verdict::Stop),
            (Unknown, false, Verdict::Later),
            (Unknown, true, Verdict::Stop),
            (Live, false, Verdict::Keep),
            (Live, true, Verdict::Keep),
        ];
        for (known, seen, want) in table {
            assert_eq!(verdict(known, seen), want, "{known:?} seen before: {seen}");
        }
    }

    #[test]
    fn a_found_instance_is_known_by_its_runs_records() {
        let live = KnownRun { ended: false, instances: BTreeMap::from([("a.1".into(), false), ("a.2".into(), true)]) };
        assert_eq!(live.of("a.1"), Known::Live);
        assert_eq!(live.of("a.2"), Known::Removed);
        assert_eq!(live.of("a.3"), Known::Unknown);
        let ended = KnownRun { ended: true, ..live };
        assert_eq!(ended.of("a.1"), Known::Ended);
    }
}
