//! `GET /api/v1/ws[?run=<id>][&since=<seq>]`: live state changes, parameter sets (including
//! `statecustom`), log lines and events of the caller's runs (an administrator's: all), as
//! JSON text messages tagged by `type`. A client that reconnects passes the `seq` of the last
//! event it saw as `since`: the events it missed (every state change among them) are replayed
//! from the database before the live ones, without duplicates.

use std::collections::HashMap;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use engine::runs::{LiveEvent, RunCaller};
use engine::Engine;
use model::User;
use tokio::sync::broadcast::error::RecvError;

use super::{ApiError, Caller};
use crate::AppState;

pub async fn ws(
    State(s): State<AppState>,
    caller: Caller,
    Query(q): Query<HashMap<String, String>>,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    // Who asks comes first: an anonymous request gets 401 whether or not it is a websocket.
    let user = caller.user.ok_or_else(|| ApiError(engine::Error::Unauthorized("sign in to follow runs".into())))?;
    let upgrade = match upgrade {
        Ok(u) => u,
        Err(rejection) => return Ok(axum::response::IntoResponse::into_response(rejection)),
    };
    let run = q.get("run").filter(|r| !r.is_empty()).cloned();
    if let Some(r) = &run {
        s.engine.authorize_run(&RunCaller::User(Some(&user)), r).await?;
    }
    let since = match q.get("since") {
        Some(v) => Some(v.parse::<i64>().map_err(|_| ApiError::invalid("", "since", format!("`{v}` is not an event sequence number")))?),
        None => None,
    };
    let engine = s.engine.clone();
    // Terminal keystrokes and follow requests are small: a client cannot make the server
    // buffer a huge frame.
    Ok(upgrade
        .max_message_size(WS_MAX_MESSAGE)
        .max_frame_size(WS_MAX_MESSAGE)
        .on_upgrade(move |socket| stream(engine, user, run, since, socket)))
}

async fn send(socket: &mut WebSocket, value: &impl serde::Serialize) -> bool {
    let text = serde_json::to_string(value).expect("events serialise");
    socket.send(Message::Text(text.into())).await.is_ok()
}

async fn stream(engine: Engine, user: User, run: Option<String>, since: Option<i64>, mut socket: WebSocket) {
    // Subscribe before reading the backlog: nothing falls between the two.
    let mut live = engine.subscribe();
    let mut last_seq = since.unwrap_or(0);
    if let Some(since) = since {
        match engine.events_since(&user, run.as_deref(), since).await {
            Ok(missed) => {
                for (run_id, event) in missed {
                    last_seq = last_seq.max(event.seq);
                    let e = LiveEvent::Event { run: run_id, owner: user.name.clone(), event };
                    if !send(&mut socket, &e).await {
                        return;
                    }
                }
            }
            Err(e) => {
                let _ = send(&mut socket, &serde_json::json!({"type": "error", "error": e.to_string()})).await;
                return;
            }
        }
    }
    loop {
        tokio::select! {
            next = live.recv() => match next {
                Ok(e) => {
                    if !(user.is_admin || e.owner() == user.name) || run.as_deref().is_some_and(|r| r != run_of(&e)) {
                        continue;
                    }
                    if let LiveEvent::Event { event, .. } = &e {
                        if event.seq <= last_seq {
                            continue; // already sent from the backlog
                        }
                        last_seq = event.seq;
                    }
                    let mut e = e;
                    if let LiveEvent::Param { run, key, value: value @ Some(_), .. } = &mut e {
                        if engine.secret_keys(run).await.is_ok_and(|k| k.contains(key.as_str())) {
                            *value = Some(engine::runs::MASK.to_string());
                        }
                    }
                    if !send(&mut socket, &e).await {
                        return;
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    // Too slow a reader: say so; reconnecting with `since` fills the gap.
                    if !send(&mut socket, &serde_json::json!({"type": "lagged", "missed": missed, "since": last_seq})).await {
                        return;
                    }
                }
                Err(RecvError::Closed) => return,
            },
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

fn run_of(e: &LiveEvent) -> &str {
    match e {
        LiveEvent::State { run, .. } | LiveEvent::Param { run, .. } | LiveEvent::Log { run, .. } | LiveEvent::Event { run, .. } => run,
    }
}

/// The largest websocket message a client may send.
const WS_MAX_MESSAGE: usize = 64 * 1024;
