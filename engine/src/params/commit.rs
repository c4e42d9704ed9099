//! Group commit of parameter writes: one task takes every write waiting at that moment, puts
//! them in one transaction (one fsync for all), and answers each writer only after that
//! commit. Under load many writers share a commit; alone, a writer commits at once. Writes are
//! applied to the in-memory store in commit order, by this task, and their blocked readers
//! woken at once (one task switch fewer between a write and its readers), before anyone is
//! answered. The task keeps one connection of its own: no pool round trip per group.

use std::sync::Arc;

use sqlx::pool::PoolConnection;
use sqlx::Any;
use tokio::sync::{mpsc, oneshot};

use super::memory::LiveParams;
use crate::db::Backend;
use crate::waits::Waits;
use crate::{Db, Error, Result};

/// Most writes in one transaction (a bound on how long the first of them waits).
const MAX_GROUP: usize = 512;

pub(crate) struct Write {
    pub run: String,
    /// The key and the keys linked from it: all get the value.
    pub keys: Vec<String>,
    pub value: String,
    pub done: oneshot::Sender<Result<()>>,
}

#[derive(Clone)]
pub(crate) struct Committer {
    tx: mpsc::UnboundedSender<Write>,
}

impl Committer {
    /// Starts the writer task; it ends when the last `Committer` is dropped.
    pub fn start(db: Db, memory: Arc<LiveParams>, waits: Arc<Waits>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(db, memory, waits, rx));
        Self { tx }
    }

    /// Commits `value` to `keys` of `run`; returns once it is durable and applied in memory.
    pub async fn write(&self, run: &str, keys: Vec<String>, value: String) -> Result<()> {
        let (done, answer) = oneshot::channel();
        self.tx
            .send(Write { run: run.to_string(), keys, value, done })
            .map_err(|_| Error::Internal("the parameter writer has stopped".into()))?;
        answer.await.map_err(|_| Error::Internal("the parameter writer stopped before answering".into()))?
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
        for w in group.drain(..) {
            let answer = match &outcome {
                Ok(()) => {
                    let seq = memory.next_seq();
                    for k in &w.keys {
                        memory.apply(&w.run, k, Some(&w.value), seq);
                    }
                    for k in &w.keys {
                        waits.wake_key(&w.run, k);
                    }
                    Ok(())
                }
                Err(e) => Err(Error::Internal(format!("the parameter could not be saved: {e}"))),
            };
            let _ = w.done.send(answer);
        }
    }
}

async fn commit(db: &Db, conn: &mut Option<PoolConnection<Any>>, group: &[Write]) -> Result<()> {
    let c = match conn {
        Some(c) => c,
        None => conn.insert(db.pool.acquire().await?),
    };
    if let [w] = group {
        if let [k] = w.keys.as_slice() {
            // One write of one key: a statement commits on its own (one round trip to the
            // database's thread instead of three).
            sqlx::query("UPDATE run_params SET value = $1 WHERE run_id = $2 AND key = $3")
                .bind(&w.value)
                .bind(&w.run)
                .bind(k)
                .execute(&mut **c)
                .await?;
            return Ok(());
        }
    }
    let begin = match db.backend {
        Backend::Sqlite => "BEGIN IMMEDIATE",
        Backend::Postgres => "BEGIN",
    };
    sqlx::query(begin).execute(&mut **c).await?;
    // One statement per run of the group (`SET value = CASE key WHEN … END`): a round trip to
    // the database's thread per statement is what a group costs. Of two writes of one key in
    // a group the later wins, as it does in memory.
    let mut by_run: Vec<(&str, Vec<(&str, &str)>)> = Vec::new();
    for w in group {
        let pos = match by_run.iter().position(|(r, _)| *r == w.run) {
            Some(p) => p,
            None => {
                by_run.push((&w.run, Vec::new()));
                by_run.len() - 1
            }
        };
        let keys = &mut by_run[pos].1;
        for k in &w.keys {
            keys.retain(|(old, _)| old != k);
            keys.push((k, &w.value));
        }
    }
    let mut written = Ok(());
    for (run, keys) in &by_run {
        for chunk in keys.chunks(MAX_GROUP) {
            let mut sql = String::from("UPDATE run_params SET value = CASE key");
            for i in 0..chunk.len() {
                sql.push_str(&format!(" WHEN ${} THEN ${}", 2 * i + 2, 2 * i + 3));
            }
            sql.push_str(" END WHERE run_id = $1 AND key IN (");
            for i in 0..chunk.len() {
                sql.push_str(&format!("{}${}", if i == 0 { "" } else { ", " }, 2 * i + 2));
            }
            sql.push(')');
            // Only placeholders are formatted into the text; every value is bound.
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(*run);
            for (k, v) in chunk {
                q = q.bind(*k).bind(*v);
            }
            if let Err(e) = q.execute(&mut **c).await {
                written = Err(e);
                break;
            }
        }
        if written.is_err() {
            break;
        }
    }
    let end = if written.is_ok() { "COMMIT" } else { "ROLLBACK" };
    let ended = sqlx::query(end).execute(&mut **c).await;
    written?;
    ended?;
    Ok(())
}
