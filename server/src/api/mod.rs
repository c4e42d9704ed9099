//! The JSON API under `/api/v1` (DESIGN.md section 4): one contract for the browser, the
//! agent, the CLI and CI. Handlers are thin: they parse, find the caller, call the engine.

mod auth;
mod error;
mod modules;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{any, delete, get, post};
use axum::{Json, Router};
use model::User;

pub use error::ApiError;

use crate::AppState;

/// Every route of the API, `(method, path)`, as the OpenAPI document must list them.
pub const ROUTES: &[(&str, &str)] = &[
    ("post", "/api/v1/auth/register"),
    ("post", "/api/v1/auth/login"),
    ("post", "/api/v1/auth/logout"),
    ("get", "/api/v1/auth/me"),
    ("post", "/api/v1/auth/tokens"),
    ("get", "/api/v1/auth/tokens"),
    ("delete", "/api/v1/auth/tokens/{id}"),
    ("get", "/api/v1/profile"),
    ("put", "/api/v1/profile"),
    ("get", "/api/v1/modules"),
    ("get", "/api/v1/modules/{path}"),
    ("put", "/api/v1/modules/{path}"),
    ("patch", "/api/v1/modules/{path}"),
    ("delete", "/api/v1/modules/{path}"),
    ("get", "/api/v1/modules/{path}/versions"),
    ("post", "/api/v1/modules/{path}/versions/{version}/restore"),
    ("post", "/api/v1/import"),
    ("get", "/api/v1/export/{path}"),
    ("get", "/api/v1/catalog"),
    ("get", "/api/v1/openapi.json"),
];

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/auth/register", post(auth::register))
        .route("/api/v1/auth/login", post(auth::login))
        .route("/api/v1/auth/logout", post(auth::logout))
        .route("/api/v1/auth/me", get(auth::me))
        .route("/api/v1/auth/tokens", post(auth::create_token).get(auth::list_tokens))
        .route("/api/v1/auth/tokens/{id}", delete(auth::revoke_token))
        .route("/api/v1/profile", get(auth::get_profile).put(auth::put_profile))
        .route("/api/v1/modules", get(modules::list))
        .route(
            "/api/v1/modules/{*path}",
            get(modules::get).put(modules::put).patch(modules::patch).delete(modules::delete).post(modules::post),
        )
        .route("/api/v1/import", post(modules::import))
        .route("/api/v1/export/{*path}", get(modules::export))
        .route("/api/v1/catalog", get(modules::catalog))
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/{*rest}", any(not_found))
}

/// The caller: from a bearer token or the session cookie; `None` when anonymous.
pub struct Caller(pub Option<User>);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let text = |h| parts.headers.get(h).and_then(|v: &header::HeaderValue| v.to_str().ok());
        let user = state.engine.authenticate(text(header::COOKIE), text(header::AUTHORIZATION)).await?;
        Ok(Caller(user))
    }
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], crate::openapi::DOCUMENT)
}

async fn not_found() -> impl IntoResponse {
    (StatusCode::NOT_FOUND, Json(serde_json::json!({"error": "no such API endpoint; see /api/v1/openapi.json"})))
}
