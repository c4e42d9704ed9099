//! Group commit of a run's small writes — parameter values, instances' completions and
//! handles, journal events, stored reports: one
//! task takes every write waiting at that moment, puts them in one transaction (one fsync for
//! all), and answers each writer only after that commit. Under load many writers share a
//! commit; alone, a writer commits at once. Parameter writes are applied to the in-memory
//! store in commit order, by this task, and their blocked readers woken right after the writers are
//! answered (one task switch fewer between a write and its readers). The task keeps
//! one connection of its own: no pool round trip per group. Writes commit in the order they
//! were sent, so waiting for a [`Committer::flush`] waits for every write sent before it.

use std::sync::Arc;

use sqlx::pool::PoolConnection;
use sqlx::Any;
use tokio::sync::{mpsc, oneshot};

use super::memory::LiveParams;
use crate::db::{placeholders, Backend};
use crate::waits::Waits;
use crate::{Db, Error, Result};

/// Most writes in one transaction (a bound on how long the first of them waits).
const MAX_GROUP: usize = 512;

pub(crate) enum Op {
    /// `value` to a key and the keys linked from it.
    Param { keys: Vec<String>, value: String },
    /// The instance completed `state` (`run_instances.completed`).
    Completion { instance: String, state: &'static str },
    /// A line of the run's journal.
    Event { seq: i64, at: i64, kind: String, message: String },
    /// A report bundle was stored.
    Report { instance: String, file: String, size: i64, at: i64 },
    /// The instance started, with this handle and address.
    Handle { instance: String, handle: String, address: String },
    /// Nothing: answered once every write sent before it is committed.
    Flush,
}

pub(crate) struct Write {
    pub run: String,
    pub op: Op,
    pub done: oneshot::Sender<Result<()>>,
}

#[derive(Clone)]
pub(crate) struct Committer {
    tx: mpsc::UnboundedSender<Write>,
}

/// A write sent to the committer; resolves once it is committed.
pub(crate) struct Pending(oneshot::Receiver<Result<()>>);

impl Pending {
    pub async fn committed(self) -> Result<()> {
        self.0.await.map_err(|_| Error::Internal("the database writer stopped before answering".into()))?
    }
}

impl Committer {
    /// Starts the writer task; it ends when the last `Committer` is dropped.
    pub fn start(db: Db, memory: Arc<LiveParams>, waits: Arc<Waits>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(db, memory, waits, rx));
        Self { tx }
    }

    /// Sends a write at once (its place in the commit order is taken now); await
    /// [`Pending::committed`] for the commit.
    pub fn send(&self, run: &str, op: Op) -> Result<Pending> {
        let (done, answer) = oneshot::channel();
        self.tx.send(Write { run: run.to_string(), op, done }).map_err(|_| Error::Internal("the database writer has stopped".into()))?;
        Ok(Pending(answer))
    }

    /// Commits `value` to `keys` of `run`; returns once it is durable and applied in memory.
    pub async fn write(&self, run: &str, keys: Vec<String>, value: String) -> Result<()> {
        self.send(run, Op::Param { keys, value })?.committed().await
    }

    /// Returns once every write sent before is committed.
    pub async fn flush(&self) -> Result<()> {
        self.send("", Op::Flush)?.committed().await
    }
}

async fn run(db: Db, memory: Arc<LiveParams>, waits: Arc<Waits>, mut rx: mpsc::UnboundedReceiver<Write>) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    let mut conn: Option<PoolConnection<Any>> = None;
    while rx.recv_many(&mut group, MAX_GROUP).await > 0 {
        let outcome = commit(&db, &mut conn, &group).await;
        if outcome.is_err() {
            conn = None; // a fresh connection for the next group
        }
        // One bad write (a row of a run deleted meanwhile) must not fail the others of its
        // group: after a failed group each is committed alone.
        let outcomes: Vec<Result<()>> = if outcome.is_err() && group.len() > 1 {
            let mut each = Vec::with_capacity(group.len());
            for w in &group {
                let one = commit(&db, &mut conn, std::slice::from_ref(w)).await;
                if one.is_err() {
                    conn = None;
                }
                each.push(one);
            }
            each
        } else {
            vec![outcome]
        };
        let mut woken = Vec::new();
        for (i, w) in group.drain(..).enumerate() {
            let outcome = &outcomes[i.min(outcomes.len() - 1)];
            let answer = match outcome {
                Ok(()) => {
                    if let Op::Param { keys, value } = w.op {
                        let seq = memory.next_seq();
                        for k in &keys {
                            memory.apply(&w.run, k, Some(&value), seq);
                        }
                        woken.push((w.run, keys));
                    }
                    Ok(())
                }
                Err(e) => Err(Error::Internal(format!("the write could not be saved: {e}"))),
            };
            let _ = w.done.send(answer);
        }
        // The readers are woken after the writers are answered (both see the new values): a
        // task woken from here runs next on this thread, and the last one woken goes first. A
        // reader that another node is waiting for is on the critical path of a chain of nodes;
        // the writer's answer is not.
        for (run, keys) in woken {
            for k in &keys {
                waits.wake_key(&run, k);
            }
        }
    }
}

async fn commit(db: &Db, conn: &mut Option<PoolConnection<Any>>, group: &[Write]) -> Result<()> {
    if group.iter().all(|w| matches!(w.op, Op::Flush)) {
        return Ok(());
    }
    let c = match conn {
        Some(c) => c,
        None => conn.insert(db.pool.acquire().await?),
    };
    let writes: Vec<&Write> = group.iter().filter(|w| !matches!(w.op, Op::Flush)).collect();
    if let [w] = writes.as_slice() {
        // One write of one row: a statement commits on its own (one round trip to the
        // database's thread instead of three).
        match &w.op {
            Op::Param { keys, value } if keys.len() == 1 => {
                sqlx::query("UPDATE run_params SET value = $1 WHERE run_id = $2 AND key = $3")
                    .bind(value)
                    .bind(&w.run)
                    .bind(&keys[0])
                    .execute(&mut **c)
                    .await?;
                return Ok(());
            }
            Op::Completion { instance, state } => {
                completions(c, &w.run, state, &[instance.as_str()]).await?;
                return Ok(());
            }
            _ => {}
        }
    }
    let begin = match db.backend {
        Backend::Sqlite => "BEGIN IMMEDIATE",
        Backend::Postgres => "BEGIN",
    };
    sqlx::query(begin).execute(&mut **c).await?;
    let written = write_group(c, &writes).await;
    let end = if written.is_ok() { "COMMIT" } else { "ROLLBACK" };
    let ended = sqlx::query(end).execute(&mut **c).await;
    written?;
    ended?;
    Ok(())
}

/// The statements of a group: one per run for its parameters (`SET value = CASE key WHEN …
/// END`), one per run and state for its completions — a round trip to the database's thread
/// per statement is what a group costs. Of two writes of one key in a group the later wins,
/// as it does in memory.
async fn write_group(c: &mut PoolConnection<Any>, writes: &[&Write]) -> std::result::Result<(), sqlx::Error> {
    let mut params: Vec<(&str, Vec<(&str, &str)>)> = Vec::new();
    let mut done: Vec<((&str, &str), Vec<&str>)> = Vec::new();
    for w in writes {
        match &w.op {
            Op::Param { keys, value } => {
                let pos = match params.iter().position(|(r, _)| *r == w.run) {
                    Some(p) => p,
                    None => {
                        params.push((&w.run, Vec::new()));
                        params.len() - 1
                    }
                };
                let run_keys = &mut params[pos].1;
                for k in keys {
                    run_keys.retain(|(old, _)| old != k);
                    run_keys.push((k, value));
                }
            }
            Op::Completion { instance, state } => match done.iter_mut().find(|(k, _)| *k == (w.run.as_str(), *state)) {
                Some((_, names)) => names.push(instance),
                None => done.push(((&w.run, state), vec![instance])),
            },
            Op::Event { seq, at, kind, message } => {
                sqlx::query("INSERT INTO run_events (run_id, seq, at, kind, message) VALUES ($1, $2, $3, $4, $5)")
                    .bind(&w.run)
                    .bind(seq)
                    .bind(at)
                    .bind(kind)
                    .bind(message)
                    .execute(&mut **c)
                    .await?;
            }
            Op::Report { instance, file, size, at } => {
                sqlx::query(
                    "INSERT INTO run_reports (run_id, instance, file, size, at) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (run_id, instance, file) DO UPDATE SET size = $4, at = $5",
                )
                .bind(&w.run)
                .bind(instance)
                .bind(file)
                .bind(size)
                .bind(at)
                .execute(&mut **c)
                .await?;
            }
            Op::Handle { instance, handle, address } => {
                sqlx::query("UPDATE run_instances SET handle = $1, address = $2 WHERE run_id = $3 AND name = $4")
                    .bind(handle)
                    .bind(address)
                    .bind(&w.run)
                    .bind(instance)
                    .execute(&mut **c)
                    .await?;
            }
            Op::Flush => {}
        }
    }
    for (run, keys) in &params {
        for chunk in keys.chunks(MAX_GROUP) {
            let mut sql = String::from("UPDATE run_params SET value = CASE key");
            for i in 0..chunk.len() {
                sql.push_str(&format!(" WHEN ${} THEN ${}", 2 * i + 2, 2 * i + 3));
            }
            sql.push_str(" END WHERE run_id = $1 AND key IN (");
            sql.push_str(&placeholders(2, chunk.len(), 2));
            sql.push(')');
            // Only placeholders are formatted into the text; every value is bound.
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(*run);
            for (k, v) in chunk {
                q = q.bind(*k).bind(*v);
            }
            q.execute(&mut **c).await?;
        }
    }
    for ((run, state), names) in &done {
        for chunk in names.chunks(MAX_GROUP) {
            completions(c, run, state, chunk).await?;
        }
    }
    Ok(())
}

/// `names` of `run` completed `state`. (An instance that could not be started completes nothing.)
async fn completions(c: &mut PoolConnection<Any>, run: &str, state: &str, names: &[&str]) -> std::result::Result<(), sqlx::Error> {
    let sql = format!(
        "UPDATE run_instances SET completed = $1 WHERE run_id = $2 AND start_failed = 0 AND name IN ({})",
        placeholders(3, names.len(), 1)
    );
    // Only placeholders are formatted into the text; every value is bound.
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(state).bind(run);
    for n in names {
        q = q.bind(*n);
    }
    q.execute(&mut **c).await?;
    Ok(())
}
