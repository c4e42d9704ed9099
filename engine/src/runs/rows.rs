//! Decoding the rows of the run tables into the model's types.

use model::run::{LogLine, RunEvent};
use model::RunState;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{Error, Result};

pub(super) fn parse_state(s: &str) -> Result<RunState> {
    RunState::parse(s).ok_or_else(|| Error::Internal(format!("unknown run state `{s}` in the database")))
}

pub(super) fn event_from_row(r: &AnyRow) -> Result<RunEvent> {
    Ok(RunEvent { seq: r.try_get("seq")?, at: r.try_get("at")?, kind: r.try_get("kind")?, message: r.try_get("message")? })
}

pub(super) fn log_from_row(r: &AnyRow) -> Result<LogLine> {
    Ok(LogLine {
        seq: r.try_get("seq")?,
        at: r.try_get("at")?,
        instance: r.try_get("instance")?,
        stream: r.try_get("stream")?,
        line: r.try_get("line")?,
    })
}
