//! The API's one error type: `{"error": "...", "field": "...", "module": "...", "errors": [...]}`
//! with the status the engine's error calls for. Internal causes are logged here, once, and
//! never sent to the client.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

pub struct ApiError(pub engine::Error);

impl From<engine::Error> for ApiError {
    fn from(e: engine::Error) -> Self {
        Self(e)
    }
}

impl ApiError {
    pub fn invalid(module: impl Into<String>, field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self(engine::Error::invalid(module, field, reason))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        use engine::Error::*;
        let status = StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = match self.0 {
            Invalid(errors) => {
                let first = errors.first().cloned().unwrap_or_else(|| model::FieldError::new("", "", "invalid input"));
                let mut body = json!({"error": first.to_string(), "errors": errors});
                if !first.field.is_empty() {
                    body["field"] = json!(first.field);
                }
                if !first.module.is_empty() {
                    body["module"] = json!(first.module);
                }
                body
            }
            Unauthorized(m) | Forbidden(m) | NotFound(m) | Conflict(m) | TooLarge(m) | Timeout(m) | QuotaExceeded(m) | Unavailable(m) => {
                json!({"error": m})
            }
            RateLimited { message, retry_after_secs } => {
                let retry = [(axum::http::header::RETRY_AFTER, retry_after_secs.to_string())];
                return (status, retry, Json(json!({"error": message, "retry_after": retry_after_secs}))).into_response();
            }
            Internal(cause) => {
                tracing::error!(%cause, "request failed");
                json!({"error": "internal error; the server log has the details"})
            }
        };
        (status, Json(body)).into_response()
    }
}

/// Parses a JSON body into `T`, naming the field that failed.
pub fn parse_json<T: serde::de::DeserializeOwned>(module: &str, body: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let field = e.path().to_string();
        let field = if field == "." { String::new() } else { field };
        ApiError::invalid(module, field, e.into_inner().to_string())
    })
}
