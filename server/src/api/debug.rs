//! Debugging a running (or kept) instance: `POST …/instances/{instance}/rerun` runs one target
//! again with the module's current scripts (output streams to the run's logs; answers once it
//! ended, with its exit code), and `GET …/instances/{instance}/terminal` is a websocket to a
//! shell on a terminal inside the instance.
//!
//! The terminal's protocol: the client sends text messages, `{"type":"input","data":"…"}` (what
//! was typed) or `{"type":"resize","columns":C,"rows":R}`; the server sends the terminal's
//! output as binary messages and, when the shell ends, `{"type":"exit","code":N}`, then closes.
//! A browser must open it from the server's own origin (`crate::cross_site` checks that for
//! every cookie-authenticated websocket: cookies go with cross-site websockets too).

use std::collections::HashMap;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use engine::connector::{Exec, ExecInput, ExecOutput};

use super::error::parse_json;
use super::{ApiError, Caller};
use crate::AppState;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RerunRequest {
    target: String,
}

fn signed_in(caller: &Caller) -> Result<&model::User, ApiError> {
    caller.user().ok_or_else(|| ApiError(engine::Error::Unauthorized("sign in to debug instances".into())))
}

pub async fn rerun(
    State(s): State<AppState>,
    caller: Caller,
    Path((id, instance)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let user = signed_in(&caller)?;
    let req: RerunRequest = parse_json("", &body)?;
    Ok(Json(s.engine.rerun_target(user, &id, &instance, &req.target).await?))
}

fn size(q: &HashMap<String, String>, key: &str, default: u16) -> Result<u16, ApiError> {
    match q.get(key) {
        None => Ok(default),
        Some(v) => v
            .parse::<u16>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| ApiError::invalid("", key, format!("`{v}` is not a terminal size between 1 and 1000"))),
    }
}

pub async fn terminal(
    State(s): State<AppState>,
    caller: Caller,
    Path((id, instance)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let user = signed_in(&caller)?.clone();
    let (columns, rows) = (size(&q, "columns", 80)?, size(&q, "rows", 24)?);
    // Who may comes before whether it is a websocket at all.
    s.engine.authorize_run(&engine::runs::RunCaller::User(Some(&user)), &id).await?;
    let upgrade = match upgrade {
        Ok(u) => u,
        Err(rejection) => return Ok(rejection.into_response()),
    };
    let exec = s.engine.open_terminal(&user, &id, &instance, columns, rows).await?;
    // Terminal keystrokes and follow requests are small: a client cannot make the server
    // buffer a huge frame.
    Ok(upgrade.max_message_size(WS_MAX_MESSAGE).max_frame_size(WS_MAX_MESSAGE).on_upgrade(move |socket| bridge(exec, socket)))
}

#[derive(serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientMessage {
    Input { data: String },
    Resize { columns: u16, rows: u16 },
}

async fn bridge(mut exec: Exec, mut socket: WebSocket) {
    loop {
        tokio::select! {
            m = socket.recv() => match m {
                Some(Ok(Message::Text(text))) => {
                    let input = match serde_json::from_str::<ClientMessage>(&text) {
                        Ok(ClientMessage::Input { data }) => ExecInput::Data(data.into_bytes().into()),
                        Ok(ClientMessage::Resize { columns, rows }) => ExecInput::Resize(columns.clamp(1, 1000), rows.clamp(1, 1000)),
                        Err(_) => continue,
                    };
                    if exec.input.send(input).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Binary(data))) => {
                    if exec.input.send(ExecInput::Data(data)).await.is_err() {
                        break;
                    }
                }
                Some(Ok(_)) => {}
                // The page went away: dropping the input hangs up the shell.
                Some(Err(_)) | None => return,
            },
            out = exec.output.recv() => match out {
                Some(ExecOutput::Data(d)) => {
                    if socket.send(Message::Binary(d)).await.is_err() {
                        return;
                    }
                }
                Some(ExecOutput::Exit(code)) => {
                    let _ = socket.send(Message::Text(serde_json::json!({"type": "exit", "code": code}).to_string().into())).await;
                    break;
                }
                None => break,
            },
        }
    }
    let _ = socket.send(Message::Close(None)).await;
}

/// The largest websocket message a client may send.
const WS_MAX_MESSAGE: usize = 64 * 1024;
