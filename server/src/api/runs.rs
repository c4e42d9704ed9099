//! Runs: launch, list, detail, terminate; the runtime parameters (blocking reads), abort, and
//! what agents send (state completions, logs, reports). Agents authenticate with their run's
//! token (`Authorization: Bearer ssr_…`), users with their session or API token.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use engine::runs::RunCaller;
use model::run::{PostedLogLine, RunFilter, RunRequest};
use model::{ParamKey, RunState};
use serde::Deserialize;

use super::error::parse_json;
use super::{ApiError, Caller};
use crate::AppState;

/// Long-poll requests are capped so proxies and clients with 60 s timeouts keep working;
/// callers loop until their own deadline.
const MAX_WAIT: Duration = Duration::from_secs(50);

fn caller_of(c: &Caller) -> RunCaller<'_> {
    match &c.run_token {
        Some(t) => RunCaller::Agent(t),
        None => RunCaller::User(c.user.as_ref()),
    }
}

fn flag(q: &HashMap<String, String>, name: &str) -> bool {
    q.get(name).is_some_and(|v| v == "true" || v == "1")
}

fn wait_of(q: &HashMap<String, String>) -> Result<Option<Duration>, ApiError> {
    match q.get("wait") {
        None => Ok(None),
        Some(w) => {
            let secs: f64 = w
                .parse()
                .ok()
                .filter(|s: &f64| *s >= 0.0)
                .ok_or_else(|| ApiError::invalid("", "wait", format!("`{w}` is not a number of seconds")))?;
            // Capped before it becomes a Duration: `inf` and `1e30` would not fit one.
            Ok(Some(Duration::from_secs_f64(secs.min(MAX_WAIT.as_secs_f64()))))
        }
    }
}

fn key_of(raw: &str) -> Result<ParamKey, ApiError> {
    ParamKey::parse(raw).map_err(|e| ApiError::invalid("", "key", e))
}

pub async fn create(State(s): State<AppState>, caller: Caller, body: axum::body::Bytes) -> Result<impl IntoResponse, ApiError> {
    let req: RunRequest = parse_json("", &body)?;
    let run = s.engine.create_run(caller.user.as_ref(), req).await?;
    Ok((StatusCode::CREATED, [(header::LOCATION, format!("/api/v1/runs/{}", run.id))], Json(run)))
}

pub async fn list(
    State(s): State<AppState>,
    caller: Caller,
    Query(q): Query<HashMap<String, String>>,
) -> Result<impl IntoResponse, ApiError> {
    let filter = RunFilter {
        active: flag(&q, "active"),
        module: q.get("module").cloned().unwrap_or_default(),
        tag: q.get("tag").cloned().unwrap_or_default(),
    };
    Ok(Json(s.engine.list_runs(caller.user.as_ref(), &filter).await?))
}

/// Whether the caller sees secret parameter values: the run's agents always, the run's
/// owner with `?secrets=show`; nobody else (administrators neither).
fn sees_secrets(q: &HashMap<String, String>, caller: &Caller, owner: &str) -> bool {
    caller.run_token.is_some() || (q.get("secrets").is_some_and(|v| v == "show") && caller.user.as_ref().is_some_and(|u| u.name == owner))
}

pub async fn detail(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<impl IntoResponse, ApiError> {
    let owner = s.engine.authorize_run(&caller_of(&caller), &id).await?;
    let mut detail = s.engine.run_detail(&id).await?;
    if sees_secrets(&q, &caller, &owner) {
        detail.params = s.engine.params(&id).await?;
    }
    Ok(Json(detail))
}

pub async fn terminate(State(s): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(s.engine.terminate_run(&caller_of(&caller), &id).await?))
}

/// Adds instances to a node of a scalable run in Ready: 201 with their names.
pub async fn scale_up(
    State(s): State<AppState>,
    caller: Caller,
    Path((id, node)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let req: model::run::ScaleUp = if body.is_empty() { model::run::ScaleUp { count: 1 } } else { parse_json("", &body)? };
    let added = s.engine.scale_up(caller.user(), &id, &node, req.count).await?;
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "instances": added }))))
}

/// Removes instances of a node of a scalable run in Ready: they send their reports first.
pub async fn scale_down(
    State(s): State<AppState>,
    caller: Caller,
    Path((id, node)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let req: model::run::ScaleDown = parse_json("", &body)?;
    s.engine.scale_down(caller.user(), &id, &node, &req.instances).await?;
    Ok(StatusCode::ACCEPTED)
}

/// `?from=<State>&wait=S`: the state once it differs from `from` (long poll for agents).
pub async fn state(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<impl IntoResponse, ApiError> {
    s.engine.authorize_run(&caller_of(&caller), &id).await?;
    let from = match q.get("from") {
        Some(f) => Some(RunState::parse(f).ok_or_else(|| ApiError::invalid("", "from", format!("`{f}` is not a run state")))?),
        None => None,
    };
    let state = s.engine.wait_state(&id, from, wait_of(&q)?.unwrap_or_default()).await?;
    Ok(state.as_str().to_string())
}

/// Every parameter; secret values masked unless the caller [`sees_secrets`].
pub async fn params(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<impl IntoResponse, ApiError> {
    let owner = s.engine.authorize_run(&caller_of(&caller), &id).await?;
    let mut params = s.engine.params(&id).await?;
    if !sees_secrets(&q, &caller, &owner) {
        engine::runs::mask(&mut params, &*s.engine.secret_keys(&id).await?);
    }
    Ok(Json(params))
}

/// The value as text; 408 if still unset at the deadline, 409 once the run is aborted.
pub async fn get_param(
    State(s): State<AppState>,
    caller: Caller,
    Path((id, key)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<impl IntoResponse, ApiError> {
    let owner = s.engine.authorize_run(&caller_of(&caller), &id).await?;
    let key = key_of(&key)?;
    let mut value = s.engine.get_param(&id, &key, wait_of(&q)?, flag(&q, "ignoreabort")).await?;
    if !sees_secrets(&q, &caller, &owner) && s.engine.secret_keys(&id).await?.contains(&key.to_string()) {
        value = engine::runs::MASK.to_string();
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], value))
}

pub async fn put_param(
    State(s): State<AppState>,
    caller: Caller,
    Path((id, key)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let owner = s.engine.authorize_run(&caller_of(&caller), &id).await?;
    let key = key_of(&key)?;
    let value = String::from_utf8(body.to_vec()).map_err(|_| ApiError::invalid("", "value", "the value is not UTF-8 text"))?;
    let source = caller.user.as_ref().map(|u| u.name.clone()).unwrap_or(owner);
    s.engine.set_param(&id, &key, &value, flag(&q, "ignoreabort"), &source).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AbortRequest {
    #[serde(default)]
    message: String,
    /// The instance raising it (`web.1`); the caller's name when absent.
    #[serde(default)]
    source: Option<String>,
}

pub async fn abort(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let owner = s.engine.authorize_run(&caller_of(&caller), &id).await?;
    let req: AbortRequest = if body.is_empty() { AbortRequest::default() } else { parse_json("", &body)? };
    let source = req.source.or_else(|| caller.user.as_ref().map(|u| u.name.clone())).unwrap_or(owner);
    s.engine.raise_abort(&id, &source, &req.message).await?;
    Ok(Json(s.engine.run_summary(&id).await?))
}

pub async fn cancel_abort(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<impl IntoResponse, ApiError> {
    let owner = s.engine.authorize_run(&caller_of(&caller), &id).await?;
    let source = q.get("source").cloned().or_else(|| caller.user.as_ref().map(|u| u.name.clone())).unwrap_or(owner);
    s.engine.cancel_abort(&id, &source).await?;
    Ok(Json(s.engine.run_summary(&id).await?))
}

pub async fn events(State(s): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<impl IntoResponse, ApiError> {
    s.engine.authorize_run(&caller_of(&caller), &id).await?;
    Ok(Json(s.engine.events(&id).await?))
}

/// `?instance=&after=<seq>&limit=`: log lines, oldest first.
pub async fn logs(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<impl IntoResponse, ApiError> {
    s.engine.authorize_run(&caller_of(&caller), &id).await?;
    let after = q.get("after").and_then(|a| a.parse().ok()).unwrap_or(0);
    let limit = q.get("limit").and_then(|a| a.parse().ok()).unwrap_or(1000).clamp(1, 10_000);
    Ok(Json(s.engine.logs(&id, q.get("instance").map(String::as_str), after, limit).await?))
}

pub async fn post_logs(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    s.engine.authorize_run(&caller_of(&caller), &id).await?;
    let lines: Vec<PostedLogLine> = parse_json("", &body)?;
    s.engine.add_logs(&id, lines).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn reports(State(s): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<impl IntoResponse, ApiError> {
    s.engine.authorize_run(&caller_of(&caller), &id).await?;
    Ok(Json(s.engine.reports(&id).await?))
}

pub async fn get_report(
    State(s): State<AppState>,
    caller: Caller,
    Path((id, instance, file)): Path<(String, String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    s.engine.authorize_run(&caller_of(&caller), &id).await?;
    let bytes = s.engine.read_report(&id, &instance, &file).await?;
    Ok((
        [(header::CONTENT_TYPE, "application/gzip".to_string()), (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{file}\""))],
        bytes,
    ))
}

pub async fn put_report(
    State(s): State<AppState>,
    caller: Caller,
    Path((id, instance, file)): Path<(String, String, String)>,
    body: axum::body::Body,
) -> Result<impl IntoResponse, ApiError> {
    s.engine.authorize_run(&caller_of(&caller), &id).await?;
    // Streamed to disk: a bundle is limited by the server's report limit, not by memory.
    s.engine.store_report(&id, &instance, &file, body.into_data_stream()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The agent completes the run's current state for its instance; answers the state after.
/// `?wait=S`: once it differs from the completed one (as `/state?from=` would, without a
/// second call: the agent's next long poll rides on its completion).
pub async fn complete(
    State(s): State<AppState>,
    caller: Caller,
    Path((id, instance)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    body: String,
) -> Result<impl IntoResponse, ApiError> {
    s.engine.authorize_run(&caller_of(&caller), &id).await?;
    let state =
        RunState::parse(body.trim()).ok_or_else(|| ApiError::invalid("", "state", format!("`{}` is not a run state", body.trim())))?;
    let wait = wait_of(&q)?;
    let after = s.engine.complete_state(&id, &instance, state).await?;
    let after = match wait {
        Some(wait) if after == state => s.engine.wait_state(&id, Some(state), wait).await?,
        _ => after,
    };
    Ok(after.as_str().to_string())
}

pub async fn plan(
    State(s): State<AppState>,
    caller: Caller,
    Path((id, instance)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    s.engine.authorize_run(&caller_of(&caller), &id).await?;
    Ok(Json(s.engine.instance_plan(&id, &instance).await?))
}
