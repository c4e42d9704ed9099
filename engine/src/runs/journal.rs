//! The run's journal: events (state changes, aborts, reports, terminations) and the output of
//! its scripts, each stored with a sequence number and published to live views.

use model::run::{LogLine, PostedLogLine, RunEvent};
use model::User;

use super::next_seq;
use super::rows::{event_from_row, log_from_row};
use crate::runs::LiveEvent;
use crate::{now_ms, Engine, Result};

/// Longest stored line of output, in characters; the rest is cut.
const MAX_LINE_CHARS: usize = 16 * 1024;
/// Lines in one batch an agent posts (it sends at most 200).
pub const MAX_LOG_BATCH: usize = 1000;

impl Engine {
    pub(crate) async fn event(&self, run: &str, owner: &str, kind: &str, message: &str) -> Result<()> {
        // An abort message a script wrote may quote a secret parameter.
        let secrets = if kind == "abort" { self.secret_values(run).await.unwrap_or_default() } else { Vec::new() };
        let message = super::masking::redact(message, &secrets);
        let e = RunEvent { seq: next_seq(), at: now_ms(), kind: kind.into(), message };
        let op = crate::params::Op::Event { seq: e.seq, at: e.at, kind: e.kind.clone(), message: e.message.clone() };
        self.rt.committer.send(run, op)?.committed().await?;
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
        rows.iter().map(|r| Ok((sqlx::Row::try_get(r, "run_id")?, event_from_row(r)?))).collect()
    }

    /// Stores the lines of output an agent sent, in one transaction, then publishes them.
    pub async fn add_logs(&self, run: &str, lines: Vec<PostedLogLine>) -> Result<()> {
        if lines.len() > MAX_LOG_BATCH {
            return Err(crate::Error::TooLarge(format!("{} log lines in one batch; the limit is {MAX_LOG_BATCH}", lines.len())));
        }
        let owner = self.run_owner(run).await?;
        let secrets = self.secret_values(run).await?;
        let mut tx = self.db.begin_write().await?;
        let mut out = Vec::with_capacity(lines.len());
        for posted in lines {
            let l = LogLine {
                seq: next_seq(),
                at: now_ms(),
                instance: posted.instance,
                stream: posted.stream,
                // PostgreSQL text cannot hold NUL: it becomes U+FFFD on both backends.
                line: posted.line.chars().take(MAX_LINE_CHARS).map(|c| if c == '\0' { '\u{FFFD}' } else { c }).collect(),
            };
            // A script that prints a secret parameter: the value is never stored.
            let l = if secrets.is_empty() { l } else { LogLine { line: super::masking::redact(&l.line, &secrets), ..l } };
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
            "SELECT seq, at, instance, stream, line FROM run_logs WHERE run_id = $1 AND seq > $2 AND ($3 = '' OR instance = $3) \
             ORDER BY seq LIMIT $4",
        )
        .bind(run)
        .bind(after)
        .bind(instance.unwrap_or(""))
        .bind(limit)
        .fetch_all(&self.db.pool)
        .await?;
        rows.iter().map(log_from_row).collect()
    }
}
