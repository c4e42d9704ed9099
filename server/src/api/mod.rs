//! The JSON API under `/api/v1` (`docs/api.md`): one contract for the browser, the
//! agent, the CLI and CI. Handlers are thin: they parse, find the caller, call the engine.

mod auth;
mod debug;
mod error;
mod modules;
mod runs;
mod sweeps;
mod ws;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{any, delete, get, post, put};
use axum::{Json, Router};
use model::User;

pub use error::ApiError;

use crate::AppState;

/// Every route of the API, `(method, path)`, as the OpenAPI document must list them.
pub const ROUTES: &[(&str, &str)] = &[
    ("post", "/api/v1/auth/register"),
    ("post", "/api/v1/auth/login"),
    ("put", "/api/v1/auth/password"),
    ("post", "/api/v1/invitations"),
    ("post", "/api/v1/auth/logout"),
    ("get", "/api/v1/auth/me"),
    ("post", "/api/v1/auth/tokens"),
    ("get", "/api/v1/auth/tokens"),
    ("delete", "/api/v1/auth/tokens/{id}"),
    ("get", "/api/v1/profile"),
    ("put", "/api/v1/profile"),
    ("get", "/api/v1/profile/connectors"),
    ("put", "/api/v1/profile/connectors/{connector}"),
    ("put", "/api/v1/users/{name}/quotas/{connector}"),
    ("put", "/api/v1/users/{name}/connectors/{connector}"),
    ("put", "/api/v1/connectors/{connector}/quota"),
    ("get", "/api/v1/modules"),
    ("get", "/api/v1/modules/{path}"),
    ("put", "/api/v1/modules/{path}"),
    ("patch", "/api/v1/modules/{path}"),
    ("delete", "/api/v1/modules/{path}"),
    ("get", "/api/v1/modules/{path}/versions"),
    ("post", "/api/v1/modules/{path}/versions/{version}/restore"),
    ("post", "/api/v1/modules/{path}/build"),
    ("get", "/api/v1/modules/{path}/builds"),
    ("post", "/api/v1/import"),
    ("get", "/api/v1/export/{path}"),
    ("get", "/api/v1/catalog"),
    ("get", "/api/v1/openapi.json"),
    ("post", "/api/v1/runs"),
    ("get", "/api/v1/runs"),
    ("get", "/api/v1/runs/{id}"),
    ("delete", "/api/v1/runs/{id}"),
    ("get", "/api/v1/runs/{id}/state"),
    ("get", "/api/v1/runs/{id}/params"),
    ("get", "/api/v1/runs/{id}/params/{key}"),
    ("put", "/api/v1/runs/{id}/params/{key}"),
    ("post", "/api/v1/runs/{id}/abort"),
    ("delete", "/api/v1/runs/{id}/abort"),
    ("get", "/api/v1/runs/{id}/events"),
    ("get", "/api/v1/runs/{id}/logs"),
    ("post", "/api/v1/runs/{id}/logs"),
    ("get", "/api/v1/runs/{id}/reports"),
    ("get", "/api/v1/runs/{id}/reports/{instance}/{file}"),
    ("put", "/api/v1/runs/{id}/reports/{instance}/{file}"),
    ("post", "/api/v1/runs/{id}/instances/{instance}/complete"),
    ("get", "/api/v1/runs/{id}/instances/{instance}/plan"),
    ("post", "/api/v1/runs/{id}/nodes/{node}/instances"),
    ("delete", "/api/v1/runs/{id}/nodes/{node}/instances"),
    ("post", "/api/v1/runs/{id}/instances/{instance}/rerun"),
    ("get", "/api/v1/runs/{id}/instances/{instance}/terminal"),
    ("post", "/api/v1/sweeps"),
    ("get", "/api/v1/sweeps"),
    ("get", "/api/v1/sweeps/{id}"),
    ("get", "/api/v1/sweeps/{id}/csv"),
    ("get", "/api/v1/ws"),
];

/// What the node agents call, and nothing else: served on the extra listeners the server opens
/// for connectors whose instances cannot reach its own address (containers on a bridge).
pub fn agent_routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/runs/{id}/state", get(runs::state))
        .route("/api/v1/runs/{id}/params/{key}", get(runs::get_param).put(runs::put_param))
        .route("/api/v1/runs/{id}/abort", post(runs::abort).delete(runs::cancel_abort))
        .route("/api/v1/runs/{id}/logs", post(runs::post_logs))
        .route("/api/v1/runs/{id}/reports/{instance}/{file}", put(runs::put_report).layer(axum::extract::DefaultBodyLimit::disable()))
        .route("/api/v1/runs/{id}/instances/{instance}/complete", post(runs::complete))
        .route("/api/v1/runs/{id}/instances/{instance}/plan", get(runs::plan))
        .fallback(not_found)
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/auth/register", post(auth::register))
        .route("/api/v1/auth/login", post(auth::login))
        .route("/api/v1/auth/password", put(auth::change_password))
        .route("/api/v1/invitations", post(auth::create_invitation))
        .route("/api/v1/auth/logout", post(auth::logout))
        .route("/api/v1/auth/me", get(auth::me))
        .route("/api/v1/auth/tokens", post(auth::create_token).get(auth::list_tokens))
        .route("/api/v1/auth/tokens/{id}", delete(auth::revoke_token))
        .route("/api/v1/profile", get(auth::get_profile).put(auth::put_profile))
        .route("/api/v1/profile/connectors", get(auth::list_connector_accounts))
        .route("/api/v1/profile/connectors/{connector}", put(auth::put_connector_account))
        .route("/api/v1/users/{name}/quotas/{connector}", put(auth::put_quota))
        .route("/api/v1/users/{name}/connectors/{connector}", put(auth::put_connector_access))
        .route("/api/v1/connectors/{connector}/quota", put(auth::put_default_quota))
        .route("/api/v1/modules", get(modules::list))
        .route(
            "/api/v1/modules/{*path}",
            get(modules::get).put(modules::put).patch(modules::patch).delete(modules::delete).post(modules::post),
        )
        .route("/api/v1/import", post(modules::import))
        .route("/api/v1/export/{*path}", get(modules::export))
        .route("/api/v1/catalog", get(modules::catalog))
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/runs", post(runs::create).get(runs::list))
        .route("/api/v1/runs/{id}", get(runs::detail).delete(runs::terminate))
        .route("/api/v1/runs/{id}/nodes/{node}/instances", post(runs::scale_up).delete(runs::scale_down))
        .route("/api/v1/runs/{id}/instances/{instance}/rerun", post(debug::rerun))
        .route("/api/v1/runs/{id}/instances/{instance}/terminal", get(debug::terminal))
        .route("/api/v1/sweeps", post(sweeps::create).get(sweeps::list))
        .route("/api/v1/sweeps/{id}", get(sweeps::detail))
        .route("/api/v1/sweeps/{id}/csv", get(sweeps::csv))
        .route("/api/v1/runs/{id}/state", get(runs::state))
        .route("/api/v1/runs/{id}/params", get(runs::params))
        .route("/api/v1/runs/{id}/params/{key}", get(runs::get_param).put(runs::put_param))
        .route("/api/v1/runs/{id}/abort", post(runs::abort).delete(runs::cancel_abort))
        .route("/api/v1/runs/{id}/events", get(runs::events))
        .route("/api/v1/runs/{id}/logs", get(runs::logs).post(runs::post_logs))
        .route("/api/v1/runs/{id}/reports", get(runs::reports))
        .route(
            "/api/v1/runs/{id}/reports/{instance}/{file}",
            get(runs::get_report).put(runs::put_report).layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route("/api/v1/runs/{id}/instances/{instance}/complete", post(runs::complete))
        .route("/api/v1/runs/{id}/instances/{instance}/plan", get(runs::plan))
        .route("/api/v1/ws", get(ws::ws))
        .route("/api/{*rest}", any(not_found))
}

/// The caller: a user (bearer API token or session cookie; `None` when anonymous), or an agent
/// holding a run token (`Bearer ssr_…`), which only run endpoints accept.
pub struct Caller {
    pub user: Option<User>,
    pub run_token: Option<String>,
}

impl Caller {
    /// The user, for endpoints that agents may not call.
    pub fn user(&self) -> Option<&User> {
        self.user.as_ref()
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let text = |h| parts.headers.get(h).and_then(|v: &header::HeaderValue| v.to_str().ok());
        let auth = text(header::AUTHORIZATION);
        if let Some(token) = auth.and_then(|a| a.strip_prefix("Bearer ")).map(str::trim).filter(|t| t.starts_with("ssr_")) {
            return Ok(Caller { user: None, run_token: Some(token.to_string()) });
        }
        let user = state.engine.authenticate(text(header::COOKIE), auth).await?;
        Ok(Caller { user, run_token: None })
    }
}

/// The caller's address as the sign-in limits count it (see [`engine::users::client_address`]).
pub struct ClientAddress(pub String);

impl FromRequestParts<AppState> for ClientAddress {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let peer = parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip());
        let forwarded = parts.headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
        Ok(Self(state.engine.client_address(peer, forwarded)))
    }
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], crate::openapi::DOCUMENT)
}

async fn not_found() -> impl IntoResponse {
    (StatusCode::NOT_FOUND, Json(serde_json::json!({"error": "no such API endpoint; see /api/v1/openapi.json"})))
}
