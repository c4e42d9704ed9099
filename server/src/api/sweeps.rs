//! Parameter sweeps: `POST /sweeps`, `GET /sweeps`, `GET /sweeps/{id}`, `GET /sweeps/{id}/csv`.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use model::sweep::SweepRequest;

use super::error::{parse_json, ApiError};
use super::{AppState, Caller};

pub async fn create(State(s): State<AppState>, caller: Caller, body: axum::body::Bytes) -> Result<impl IntoResponse, ApiError> {
    let req: SweepRequest = parse_json("", &body)?;
    let sweep = s.engine.create_sweep(caller.user(), req).await?;
    Ok((StatusCode::CREATED, Json(sweep)))
}

pub async fn list(State(s): State<AppState>, caller: Caller) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(s.engine.sweeps(caller.user()).await?))
}

pub async fn detail(State(s): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(s.engine.sweep(caller.user(), &id).await?))
}

pub async fn csv(State(s): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<impl IntoResponse, ApiError> {
    let text = s.engine.sweep_csv(caller.user(), &id).await?;
    let disposition = format!("attachment; filename=\"sweep-{}.csv\"", &id[..8.min(id.len())]);
    Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()), (header::CONTENT_DISPOSITION, disposition)], text))
}
