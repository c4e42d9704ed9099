//! Server functions: the UI's calls to the server. Each one authenticates the caller from the
//! session cookie and calls the engine, which checks rights; nothing here decides access.

use leptos::prelude::*;
use model::{Module, ModuleSummary, User, VersionInfo};
use serde::{Deserialize, Serialize};

/// What the module page shows: a project's children, or a module and its history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModulePageData {
    /// Empty for the list of root projects.
    pub path: String,
    pub module: Option<Module>,
    pub children: Vec<ModuleSummary>,
    pub history: Vec<VersionInfo>,
}

#[cfg(feature = "ssr")]
pub mod ssr {
    use leptos::prelude::*;
    use model::User;

    pub fn fail(e: engine::Error) -> ServerFnError {
        if let engine::Error::Internal(cause) = &e {
            tracing::error!(cause, "server function failed");
            return ServerFnError::new("internal error; the server log has the details");
        }
        ServerFnError::new(e.to_string())
    }

    pub fn engine() -> Result<engine::Engine, ServerFnError> {
        use_context::<engine::Engine>().ok_or_else(|| ServerFnError::new("the engine is not available"))
    }

    /// The engine and the signed-in user (from the session cookie), if any.
    pub async fn caller() -> Result<(engine::Engine, Option<User>), ServerFnError> {
        let engine = engine()?;
        let headers: axum::http::HeaderMap = leptos_axum::extract().await?;
        let cookie = headers.get(axum::http::header::COOKIE).and_then(|v| v.to_str().ok());
        let user = engine.authenticate(cookie, None).await.map_err(fail)?;
        Ok((engine, user))
    }

    pub fn set_cookie(value: &str) -> Result<(), ServerFnError> {
        let response = expect_context::<leptos_axum::ResponseOptions>();
        let value = axum::http::HeaderValue::from_str(value).map_err(|e| ServerFnError::new(e.to_string()))?;
        response.insert_header(axum::http::header::SET_COOKIE, value);
        Ok(())
    }
}

#[server]
pub async fn current_user() -> Result<Option<User>, ServerFnError> {
    Ok(ssr::caller().await?.1)
}

#[server]
pub async fn register(name: String, password: String) -> Result<(), ServerFnError> {
    let engine = ssr::engine()?;
    engine.register(name.trim(), &password).await.map_err(ssr::fail)?;
    let (_, token) = engine.login(name.trim(), &password).await.map_err(ssr::fail)?;
    ssr::set_cookie(&engine::users::session_cookie(&token))?;
    leptos_axum::redirect("/modules");
    Ok(())
}

#[server]
pub async fn login(name: String, password: String) -> Result<(), ServerFnError> {
    let engine = ssr::engine()?;
    let (_, token) = engine.login(name.trim(), &password).await.map_err(ssr::fail)?;
    ssr::set_cookie(&engine::users::session_cookie(&token))?;
    leptos_axum::redirect("/modules");
    Ok(())
}

#[server]
pub async fn logout() -> Result<(), ServerFnError> {
    let engine = ssr::engine()?;
    let headers: axum::http::HeaderMap = leptos_axum::extract().await?;
    if let Some(token) = headers
        .get(axum::http::header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(engine::users::session_from_cookie_header)
    {
        engine.logout(token).await.map_err(ssr::fail)?;
    }
    ssr::set_cookie(&engine::users::clear_session_cookie())?;
    leptos_axum::redirect("/");
    Ok(())
}

/// A module (at `version`, or its latest) with its history, or a project's children;
/// `path` empty lists the root projects.
#[server]
pub async fn module_page(path: String, version: Option<u32>) -> Result<ModulePageData, ServerFnError> {
    let (engine, user) = ssr::caller().await?;
    let path = path.trim_matches('/').to_string();
    if path.is_empty() {
        let children = engine.list_children(user.as_ref(), None).await.map_err(ssr::fail)?;
        return Ok(ModulePageData { path, module: None, children, history: vec![] });
    }
    let module = engine.get_module(user.as_ref(), &path, version).await.map_err(ssr::fail)?;
    let history = engine.history(user.as_ref(), &path).await.map_err(ssr::fail)?;
    let children = if module.kind == model::ModuleKind::Project {
        engine.list_children(user.as_ref(), Some(&path)).await.map_err(ssr::fail)?
    } else {
        vec![]
    };
    Ok(ModulePageData { path, module: Some(module), children, history })
}

/// Published modules matching `query`, for the public catalog.
#[server]
pub async fn catalog(query: String) -> Result<Vec<ModuleSummary>, ServerFnError> {
    let engine = ssr::engine()?;
    let mut all = engine.catalog(&query, None).await.map_err(ssr::fail)?;
    // Projects are folders, not things to deploy.
    all.retain(|m| m.kind != model::ModuleKind::Project);
    Ok(all)
}
