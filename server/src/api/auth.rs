//! Accounts: register, sign in and out (session cookie), bearer tokens, profile.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use engine::users::session_from_cookie_header;
use model::User;
use serde::Deserialize;
use serde_json::json;

use super::error::parse_json;
use super::{ApiError, Caller, ClientAddress};
use crate::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    name: String,
    password: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    name: String,
    password: String,
    /// The token of an invitation link (policy `invite`).
    #[serde(default)]
    invitation: Option<String>,
}

fn signed_in(caller: Caller) -> Result<User, ApiError> {
    caller.user.ok_or_else(|| ApiError(engine::Error::Unauthorized("sign in first (session cookie or bearer token)".into())))
}

/// Creates the account and signs it in.
pub async fn register(
    State(s): State<AppState>,
    ClientAddress(client): ClientAddress,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let c: Registration = parse_json("", &body)?;
    let user = s.engine.register(c.name.trim(), &c.password, c.invitation.as_deref(), &client).await?;
    let token = s.engine.open_session(&user.name).await?;
    Ok((StatusCode::CREATED, [(header::SET_COOKIE, s.engine.session_cookie(&token))], Json(user)))
}

pub async fn login(
    State(s): State<AppState>,
    ClientAddress(client): ClientAddress,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let c: Credentials = parse_json("", &body)?;
    let (user, token) = s.engine.login(c.name.trim(), &c.password, &client).await?;
    Ok(([(header::SET_COOKIE, s.engine.session_cookie(&token))], Json(user)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    current: String,
    new: String,
}

/// Changes the caller's password; every other session of the account ends, the caller gets
/// a new session cookie.
pub async fn change_password(
    State(s): State<AppState>,
    caller: Caller,
    ClientAddress(client): ClientAddress,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let user = signed_in(caller)?;
    let c: PasswordChange = parse_json("", &body)?;
    let token = s.engine.change_password(&user, &c.current, &c.new, &client).await?;
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, s.engine.session_cookie(&token))]))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewInvitation {
    /// Days the link stays valid (default 7, at most 90).
    #[serde(default)]
    days: Option<i64>,
}

/// An invitation link for registration policy `invite` (administrators only); the token is
/// in this answer only.
pub async fn create_invitation(State(s): State<AppState>, caller: Caller, body: axum::body::Bytes) -> Result<impl IntoResponse, ApiError> {
    let user = signed_in(caller)?;
    let req: NewInvitation = if body.is_empty() { NewInvitation { days: None } } else { parse_json("", &body)? };
    let (token, expires_at) = s.engine.create_invitation(&user, req.days).await?;
    let path = format!("/signup?invitation={token}");
    Ok((StatusCode::CREATED, Json(json!({"token": token, "path": path, "expires_at": expires_at}))))
}

pub async fn logout(State(s): State<AppState>, headers: HeaderMap) -> Result<impl IntoResponse, ApiError> {
    let cookie = headers.get(header::COOKIE).and_then(|v| v.to_str().ok());
    if let Some(token) = cookie.and_then(session_from_cookie_header) {
        s.engine.logout(token).await?;
    }
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, s.engine.clear_session_cookie())]))
}

pub async fn me(caller: Caller) -> Result<Json<User>, ApiError> {
    Ok(Json(signed_in(caller)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    name: String,
}

/// The secret is in this response only.
pub async fn create_token(State(s): State<AppState>, caller: Caller, body: axum::body::Bytes) -> Result<impl IntoResponse, ApiError> {
    let user = signed_in(caller)?;
    let req: NewToken = parse_json("", &body)?;
    let (token, secret) = s.engine.create_api_token(&user, &req.name).await?;
    Ok((StatusCode::CREATED, Json(json!({"id": token.id, "name": token.name, "created_at": token.created_at, "token": secret}))))
}

pub async fn list_tokens(State(s): State<AppState>, caller: Caller) -> Result<impl IntoResponse, ApiError> {
    let user = signed_in(caller)?;
    Ok(Json(s.engine.list_api_tokens(&user).await?))
}

pub async fn revoke_token(State(s): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<impl IntoResponse, ApiError> {
    let user = signed_in(caller)?;
    s.engine.revoke_api_token(&user, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn get_profile(State(s): State<AppState>, caller: Caller) -> Result<impl IntoResponse, ApiError> {
    let user = signed_in(caller)?;
    Ok(Json(s.engine.profile(&user).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileUpdate {
    keep_running: String,
    run_timeout_minutes: i64,
    #[serde(default)]
    ssh_public_key: String,
}

pub async fn put_profile(State(s): State<AppState>, caller: Caller, body: axum::body::Bytes) -> Result<impl IntoResponse, ApiError> {
    let user = signed_in(caller)?;
    let p: ProfileUpdate = parse_json("", &body)?;
    Ok(Json(s.engine.update_profile(&user, &p.keep_running, p.run_timeout_minutes, &p.ssh_public_key).await?))
}

/// The caller's account on every connector: settings, whether a credential is stored (never
/// the credential), quota and instances in use.
pub async fn list_connector_accounts(State(s): State<AppState>, caller: Caller) -> Result<impl IntoResponse, ApiError> {
    let user = signed_in(caller)?;
    Ok(Json(s.engine.connector_accounts(&user).await?))
}

pub async fn put_connector_account(
    State(s): State<AppState>,
    caller: Caller,
    Path(connector): Path<String>,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let user = signed_in(caller)?;
    let update: model::ConnectorAccountUpdate = parse_json("", &body)?;
    Ok(Json(s.engine.save_connector_account(&user, &connector, update).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaUpdate {
    /// Most instances at once; `null` lifts the cap.
    quota: Option<i64>,
}

/// Sets a user's quota on a connector (administrators only).
pub async fn put_quota(
    State(s): State<AppState>,
    caller: Caller,
    Path((name, connector)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let admin = signed_in(caller)?;
    let q: QuotaUpdate = parse_json("", &body)?;
    s.engine.set_quota(&admin, &name, &connector, q.quota).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessUpdate {
    /// Whether the user may use a connector restricted to trusted users (the local one).
    allowed: bool,
}

/// Lets a user use a restricted connector, or not (administrators only).
pub async fn put_connector_access(
    State(s): State<AppState>,
    caller: Caller,
    Path((name, connector)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let admin = signed_in(caller)?;
    let a: AccessUpdate = parse_json("", &body)?;
    s.engine.set_allowed(&admin, &name, &connector, a.allowed).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sets the default quota of a connector: every user without a quota of their own there
/// (administrators only).
pub async fn put_default_quota(
    State(s): State<AppState>,
    caller: Caller,
    Path(connector): Path<String>,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let admin = signed_in(caller)?;
    let q: QuotaUpdate = parse_json("", &body)?;
    s.engine.set_default_quota(&admin, &connector, q.quota).await?;
    Ok(StatusCode::NO_CONTENT)
}
