//! Modules: list, read (any version), save (a new version), share, delete, history, restore,
//! YAML import/export, and the public catalog.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use model::{Module, ModuleKind, PublicRights};
use serde::Deserialize;
use serde_json::json;

use super::error::parse_json;
use super::{ApiError, Caller};
use crate::AppState;

fn kind_filter(q: &HashMap<String, String>) -> Result<Option<ModuleKind>, ApiError> {
    match q.get("kind").filter(|k| !k.is_empty()) {
        None => Ok(None),
        Some(k) => ModuleKind::parse(k)
            .map(Some)
            .ok_or_else(|| ApiError::invalid("", "kind", format!("`{k}` is not project, image or deployment"))),
    }
}

/// `?version=N`, when given, as a version number.
fn version_of(q: &HashMap<String, String>, module: &str) -> Result<Option<u32>, ApiError> {
    match q.get("version") {
        None => Ok(None),
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|v| *v >= 1)
            .map(Some)
            .ok_or_else(|| ApiError::invalid(module, "version", format!("`{v}` is not a version number"))),
    }
}

/// `?parent=<path>` lists a project's children (`""` or absent: the root projects);
/// `?q=<text>` searches every readable module instead.
pub async fn list(
    State(s): State<AppState>,
    caller: Caller,
    Query(q): Query<HashMap<String, String>>,
) -> Result<impl IntoResponse, ApiError> {
    let actor = caller.user();
    if let Some(text) = q.get("q") {
        return Ok(Json(s.engine.search_modules(actor, text, kind_filter(&q)?).await?));
    }
    Ok(Json(s.engine.list_children(actor, q.get("parent").map(String::as_str)).await?))
}

/// `…/<path>` (one module, `?version=N`) or `…/<path>/versions` (its history).
pub async fn get(
    State(s): State<AppState>,
    caller: Caller,
    Path(path): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<axum::response::Response, ApiError> {
    let actor = caller.user();
    if let Some(module) = path.strip_suffix("/versions") {
        return Ok(Json(s.engine.history(actor, module).await?).into_response());
    }
    if let Some(module) = path.strip_suffix("/builds") {
        return Ok(Json(s.engine.builds(actor, module).await?).into_response());
    }
    let version = version_of(&q, &path)?;
    Ok(Json(s.engine.get_module(actor, &path, version).await?).into_response())
}

/// Saves a new version. The body is the module as JSON (or YAML with a YAML content type);
/// its `path` may be left out, and must match the URL if given. `comment` is the commit message.
pub async fn put(
    State(s): State<AppState>,
    caller: Caller,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let is_yaml = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|t| t.contains("yaml"));
    let mut doc: Module = if is_yaml {
        let text = std::str::from_utf8(&body).map_err(|_| ApiError::invalid(&path, "", "the body is not UTF-8"))?;
        let mut docs = engine::bundle::parse_bundle(text)?;
        if docs.len() != 1 {
            return Err(ApiError::invalid(&path, "", "send one module per PUT; use /api/v1/import for bundles"));
        }
        docs.remove(0)
    } else {
        parse_json(&path, &body)?
    };
    let url_path = path.trim_matches('/');
    if doc.path.is_empty() {
        doc.path = url_path.to_string();
    } else if doc.path.trim_matches('/') != url_path {
        return Err(ApiError::invalid(url_path, "path", format!("the body names `{}` but the URL names `{url_path}`", doc.path)));
    }
    let saved = s.engine.save_module(caller.user(), doc).await?;
    let status = if saved.version == Some(1) { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(saved)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sharing {
    public: Option<PublicRights>,
    published: Option<bool>,
}

/// Changes public rights or publication without a new version (owner or administrator).
pub async fn patch(
    State(s): State<AppState>,
    caller: Caller,
    Path(path): Path<String>,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let sharing: Sharing = parse_json(&path, &body)?;
    Ok(Json(s.engine.share(caller.user(), &path, sharing.public, sharing.published).await?))
}

pub async fn delete(State(s): State<AppState>, caller: Caller, Path(path): Path<String>) -> Result<impl IntoResponse, ApiError> {
    s.engine.delete_module(caller.user(), &path).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `…/<path>/versions/<N>/restore`: a new version with version N's content;
/// `…/<path>/build?connector=NAME[&version=N]`: a build run of the image on that connector.
pub async fn post(
    State(s): State<AppState>,
    caller: Caller,
    Path(path): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<axum::response::Response, ApiError> {
    if let Some(module) = path.strip_suffix("/build") {
        let connector = q.get("connector").ok_or_else(|| ApiError::invalid(module, "connector", "name the connector to build on"))?;
        let version = version_of(&q, module)?;
        let run = s.engine.create_build(caller.user(), module, version, connector).await?;
        return Ok((StatusCode::CREATED, [(header::LOCATION, format!("/api/v1/runs/{}", run.id))], Json(run)).into_response());
    }
    let not_found = || ApiError(engine::Error::NotFound("POST on a module path only supports …/versions/<N>/restore and …/build".into()));
    let rest = path.strip_suffix("/restore").ok_or_else(not_found)?;
    let (module, version) = rest.rsplit_once("/versions/").ok_or_else(not_found)?;
    let version: u32 = version
        .parse()
        .ok()
        .filter(|v| *v >= 1)
        .ok_or_else(|| ApiError::invalid(module, "version", format!("`{version}` is not a version number")))?;
    Ok(Json(s.engine.restore(caller.user(), module, version).await?).into_response())
}

/// Imports a multi-document YAML bundle; all or nothing.
pub async fn import(State(s): State<AppState>, caller: Caller, body: axum::body::Bytes) -> Result<impl IntoResponse, ApiError> {
    let text = std::str::from_utf8(&body).map_err(|_| ApiError::invalid("", "", "the bundle is not UTF-8"))?;
    let written = s.engine.import(caller.user(), text).await?;
    let modules: Vec<_> = written.into_iter().map(|(path, version)| json!({"path": path, "version": version})).collect();
    Ok(Json(json!({ "modules": modules })))
}

pub async fn export(State(s): State<AppState>, caller: Caller, Path(path): Path<String>) -> Result<impl IntoResponse, ApiError> {
    let yaml = s.engine.export(caller.user(), &path).await?;
    Ok(([(header::CONTENT_TYPE, "application/yaml; charset=utf-8")], yaml))
}

/// Published modules; `?q=` searches path and description, `?kind=` filters.
pub async fn catalog(State(s): State<AppState>, Query(q): Query<HashMap<String, String>>) -> Result<impl IntoResponse, ApiError> {
    let text = q.get("q").cloned().unwrap_or_default();
    Ok(Json(s.engine.catalog(&text, kind_filter(&q)?).await?))
}
