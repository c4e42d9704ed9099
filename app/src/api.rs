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
    /// What the caller may do here (for the root: create projects when signed in).
    pub can_write: bool,
    pub can_deploy: bool,
}

#[cfg(feature = "ssr")]
pub mod ssr {
    use leptos::prelude::*;
    use model::User;

    /// The engine's error as the server function's: its message, and the status it calls
    /// for (401 not signed in, 403 not allowed, …), as the API answers.
    pub fn fail(e: engine::Error) -> ServerFnError {
        // A plain form post (no script yet) is sent back to its page by a redirect, which a
        // status of ours would replace.
        let form_post = use_context::<axum::http::request::Parts>().is_some_and(|p| {
            p.headers.get(axum::http::header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("text/html"))
        });
        if let (Some(response), false) = (use_context::<leptos_axum::ResponseOptions>(), form_post) {
            if let Ok(status) = axum::http::StatusCode::from_u16(e.status()) {
                response.set_status(status);
            }
        }
        if let engine::Error::Internal(cause) = &e {
            tracing::error!(cause, "server function failed");
            return ServerFnError::new("internal error; the server log has the details");
        }
        ServerFnError::new(e.to_string())
    }

    /// Not signed in: 401, saying what signing in is for.
    pub fn unauthorized(message: &str) -> ServerFnError {
        fail(engine::Error::Unauthorized(message.into()))
    }

    /// Bad input in `field`: 400, naming it.
    pub fn invalid(field: &str, reason: impl Into<String>) -> ServerFnError {
        fail(engine::Error::invalid("", field, reason))
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

    /// The caller's address as the sign-in limits count it.
    pub async fn client_address(engine: &engine::Engine) -> String {
        use axum::extract::ConnectInfo;
        let peer = leptos_axum::extract::<ConnectInfo<std::net::SocketAddr>>().await.ok().map(|c| c.0.ip());
        let headers: Option<axum::http::HeaderMap> = leptos_axum::extract().await.ok();
        let forwarded = headers.as_ref().and_then(|h| h.get("x-forwarded-for")).and_then(|v| v.to_str().ok());
        engine.client_address(peer, forwarded)
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
pub async fn register(name: String, password: String, #[server(default)] invitation: String) -> Result<(), ServerFnError> {
    let engine = ssr::engine()?;
    let client = ssr::client_address(&engine).await;
    let user = engine.register(name.trim(), &password, Some(&invitation), &client).await.map_err(ssr::fail)?;
    let token = engine.open_session(&user.name).await.map_err(ssr::fail)?;
    ssr::set_cookie(&engine.session_cookie(&token))?;
    leptos_axum::redirect("/modules");
    Ok(())
}

#[server]
pub async fn login(name: String, password: String) -> Result<(), ServerFnError> {
    let engine = ssr::engine()?;
    let client = ssr::client_address(&engine).await;
    let (_, token) = engine.login(name.trim(), &password, &client).await.map_err(ssr::fail)?;
    ssr::set_cookie(&engine.session_cookie(&token))?;
    leptos_axum::redirect("/modules");
    Ok(())
}

#[server]
pub async fn logout() -> Result<(), ServerFnError> {
    let engine = ssr::engine()?;
    let headers: axum::http::HeaderMap = leptos_axum::extract().await?;
    if let Some(token) =
        headers.get(axum::http::header::COOKIE).and_then(|v| v.to_str().ok()).and_then(engine::users::session_from_cookie_header)
    {
        engine.logout(token).await.map_err(ssr::fail)?;
    }
    ssr::set_cookie(&engine.clear_session_cookie())?;
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
        return Ok(ModulePageData { path, module: None, children, history: vec![], can_write: user.is_some(), can_deploy: false });
    }
    let module = engine.get_module(user.as_ref(), &path, version).await.map_err(ssr::fail)?;
    let history = engine.history(user.as_ref(), &path).await.map_err(ssr::fail)?;
    let (can_write, can_deploy, _) = engine.rights(user.as_ref(), &path).await.map_err(ssr::fail)?;
    let children = if module.kind == model::ModuleKind::Project {
        engine.list_children(user.as_ref(), Some(&path)).await.map_err(ssr::fail)?
    } else {
        vec![]
    };
    Ok(ModulePageData { path, module: Some(module), children, history, can_write, can_deploy })
}

/// Published images and deployments matching `query` (and `kind`, when given), with their
/// logos, for the public catalog.
#[server]
pub async fn catalog(query: String, kind: String) -> Result<Vec<model::CatalogEntry>, ServerFnError> {
    let engine = ssr::engine()?;
    engine.catalog(&query, model::ModuleKind::parse(&kind)).await.map_err(ssr::fail)
}

use model::run::{LaunchSpec, LogLine, NodeLink, ReportFile, RunDetail, RunEvent, RunSummary};

/// What the run page shows first; live updates come over the websocket.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunPageData {
    pub detail: RunDetail,
    pub events: Vec<RunEvent>,
    pub reports: Vec<ReportFile>,
    /// The last lines of output.
    pub logs: Vec<LogLine>,
    /// Keys that instances are blocked on right now (`ss-get`), with how many readers.
    pub waiting: Vec<(String, usize)>,
    /// The deployment's links between nodes, for the graph. Empty for an image run, or when
    /// the caller may no longer read the module.
    pub links: Vec<NodeLink>,
}

/// How many log lines the run page keeps.
pub const LOG_TAIL: usize = 300;

#[server]
pub async fn run_page(id: String) -> Result<RunPageData, ServerFnError> {
    let (engine, user) = ssr::caller().await?;
    engine.authorize_run(&engine::runs::RunCaller::User(user.as_ref()), &id).await.map_err(ssr::fail)?;
    let detail = engine.run_detail(&id).await.map_err(ssr::fail)?;
    let events = engine.events(&id).await.map_err(ssr::fail)?;
    let reports = engine.reports(&id).await.map_err(ssr::fail)?;
    let mut logs = engine.logs(&id, None, 0, 100_000).await.map_err(ssr::fail)?;
    let skip = logs.len().saturating_sub(LOG_TAIL);
    logs.drain(..skip);
    let waiting = engine.waiting_keys(&id);
    let links = engine.node_links(user.as_ref(), &detail.summary.module, detail.summary.module_version).await;
    Ok(RunPageData { detail, events, reports, logs, waiting, links })
}

#[server]
pub async fn list_runs() -> Result<Vec<RunSummary>, ServerFnError> {
    let (engine, user) = ssr::caller().await?;
    engine.list_runs(user.as_ref(), &model::run::RunFilter::default()).await.map_err(ssr::fail)
}

#[server]
pub async fn terminate_run(id: String) -> Result<(), ServerFnError> {
    let (engine, user) = ssr::caller().await?;
    engine.terminate_run(&engine::runs::RunCaller::User(user.as_ref()), &id).await.map_err(ssr::fail)?;
    Ok(())
}

/// Runs `target` again on a running instance with the module's current scripts (the run
/// page's "Re-run"); says how it ended.
#[server]
pub async fn rerun_target(id: String, instance: String, target: String) -> Result<String, ServerFnError> {
    let (engine, user) = ssr::caller().await?;
    let user = user.ok_or_else(|| ssr::unauthorized("sign in to debug instances"))?;
    let r = engine.rerun_target(&user, &id, &instance, &target).await.map_err(ssr::fail)?;
    let how = match r.exit_code {
        Some(code) => format!("exited with {code}"),
        None => "ended without an exit code".into(),
    };
    Ok(format!("{} on {} ({}) {how}", r.target, r.instance, r.scripts.join(", ")))
}

/// Adds `count` instances to `node` of a scalable run (the run page's "Add").
#[server]
pub async fn scale_up(id: String, node: String, count: String) -> Result<(), ServerFnError> {
    let (engine, user) = ssr::caller().await?;
    let count: u32 = count.trim().parse().map_err(|_| ssr::invalid("count", format!("`{count}` is not a number of instances")))?;
    engine.scale_up(user.as_ref(), &id, &node, count).await.map_err(ssr::fail)?;
    Ok(())
}

/// Removes an instance of `node` from a scalable run (the run page's "Remove").
#[server]
pub async fn scale_down(id: String, node: String, instance: String) -> Result<(), ServerFnError> {
    let (engine, user) = ssr::caller().await?;
    engine.scale_down(user.as_ref(), &id, &node, &[instance]).await.map_err(ssr::fail)?;
    Ok(())
}

/// The launch form of a module at `version` (its latest when `None`).
#[server]
pub async fn launch_form(module: String, version: Option<u32>) -> Result<LaunchSpec, ServerFnError> {
    let (engine, user) = ssr::caller().await?;
    engine.launch_spec(user.as_ref(), &module, version).await.map_err(ssr::fail)
}

/// What the image page shows about builds: the images built from it, the connectors that can
/// build, and why building is not offered when it is not.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BuildsPage {
    pub builds: Vec<model::run::BuiltImage>,
    pub connectors: Vec<String>,
    pub unavailable: Option<String>,
}

#[server]
pub async fn image_builds(path: String) -> Result<BuildsPage, ServerFnError> {
    let (engine, user) = ssr::caller().await?;
    let builds = engine.builds(user.as_ref(), &path).await.map_err(ssr::fail)?;
    let connectors = engine.build_connectors();
    let unavailable = connectors.is_empty().then(|| {
        "No connector of this server can build images: the local connector keeps no image of its instances; a Docker connector does."
            .to_string()
    });
    Ok(BuildsPage { builds, connectors, unavailable })
}

/// Starts a build of the image on `connector`; returns the build run's id.
#[server]
pub async fn build_image(path: String, connector: String) -> Result<String, ServerFnError> {
    let (engine, user) = ssr::caller().await?;
    Ok(engine.create_build(user.as_ref(), &path, None, &connector).await.map_err(ssr::fail)?.id)
}

/// Launches a run from the launch form (`request`: a `RunRequest` as JSON); returns its id.
#[server]
pub async fn launch(request: String) -> Result<String, ServerFnError> {
    let (engine, user) = ssr::caller().await?;
    let req: model::run::RunRequest =
        serde_json::from_str(&request).map_err(|e| ssr::invalid("request", format!("bad launch request: {e}")))?;
    Ok(engine.create_run(user.as_ref(), req).await.map_err(ssr::fail)?.id)
}

/// Starts a sweep (the sweep form); returns its id.
#[server]
pub async fn start_sweep(request: String) -> Result<String, ServerFnError> {
    let (engine, user) = ssr::caller().await?;
    let req: model::sweep::SweepRequest =
        serde_json::from_str(&request).map_err(|e| ssr::invalid("request", format!("bad sweep request: {e}")))?;
    Ok(engine.create_sweep(user.as_ref(), req).await.map_err(ssr::fail)?.id)
}

/// A sweep with its points, samples and statistics (the sweep page).
#[server]
pub async fn sweep_page(id: String) -> Result<model::sweep::Sweep, ServerFnError> {
    let (engine, user) = ssr::caller().await?;
    engine.sweep(user.as_ref(), &id).await.map_err(ssr::fail)
}

#[server]
pub async fn my_profile() -> Result<(model::Profile, Vec<model::ApiToken>), ServerFnError> {
    let (engine, user) = ssr::caller().await?;
    let user = user.ok_or_else(|| ssr::unauthorized("sign in to see your profile"))?;
    let profile = engine.profile(&user).await.map_err(ssr::fail)?;
    let tokens = engine.list_api_tokens(&user).await.map_err(ssr::fail)?;
    Ok((profile, tokens))
}

#[server]
pub async fn save_profile(keep_running: String, run_timeout_minutes: String, ssh_public_key: String) -> Result<(), ServerFnError> {
    let (engine, user) = ssr::caller().await?;
    let user = user.ok_or_else(|| ssr::unauthorized("sign in first"))?;
    let minutes: i64 = run_timeout_minutes
        .trim()
        .parse()
        .map_err(|_| ssr::invalid("run_timeout_minutes", format!("`{run_timeout_minutes}` is not a number of minutes")))?;
    engine.update_profile(&user, &keep_running, minutes, &ssh_public_key).await.map_err(ssr::fail)?;
    Ok(())
}

/// Changes the caller's password: every other session of the account ends; this browser
/// gets a new session cookie.
#[server]
pub async fn change_password(current: String, new: String) -> Result<(), ServerFnError> {
    let (engine, user) = ssr::caller().await?;
    let user = user.ok_or_else(|| ssr::unauthorized("sign in first"))?;
    let client = ssr::client_address(&engine).await;
    let token = engine.change_password(&user, &current, &new, &client).await.map_err(ssr::fail)?;
    ssr::set_cookie(&engine.session_cookie(&token))
}

/// Creates an API token; the secret is returned this once.
#[server]
pub async fn new_api_token(name: String) -> Result<String, ServerFnError> {
    let (engine, user) = ssr::caller().await?;
    let user = user.ok_or_else(|| ssr::unauthorized("sign in first"))?;
    Ok(engine.create_api_token(&user, &name).await.map_err(ssr::fail)?.1)
}

#[server]
pub async fn revoke_api_token(id: String) -> Result<(), ServerFnError> {
    let (engine, user) = ssr::caller().await?;
    let user = user.ok_or_else(|| ssr::unauthorized("sign in first"))?;
    engine.revoke_api_token(&user, &id).await.map_err(ssr::fail)
}

/// The dashboard's runs: the caller's (an administrator's: all), filtered.
#[server]
pub async fn dashboard_runs(active: bool, module: String, tag: String) -> Result<Vec<RunSummary>, ServerFnError> {
    let (engine, user) = ssr::caller().await?;
    engine.list_runs(user.as_ref(), &model::run::RunFilter { active, module, tag }).await.map_err(ssr::fail)
}

/// The fields that changed from version `from` to version `to`.
#[server]
pub async fn compare_versions(path: String, from: u32, to: u32) -> Result<Vec<model::diff::FieldChange>, ServerFnError> {
    let (engine, user) = ssr::caller().await?;
    engine.compare_versions(user.as_ref(), &path, from, to).await.map_err(ssr::fail)
}

/// Restores `version` as a new version, then shows the module.
#[server]
pub async fn restore_version(path: String, version: u32) -> Result<(), ServerFnError> {
    let (engine, user) = ssr::caller().await?;
    engine.restore(user.as_ref(), &path, version).await.map_err(ssr::fail)?;
    leptos_axum::redirect(&format!("/modules/{path}"));
    Ok(())
}

/// Modules the caller may read whose path or description contains `query`.
#[server]
pub async fn search_modules(query: String) -> Result<Vec<ModuleSummary>, ServerFnError> {
    let (engine, user) = ssr::caller().await?;
    engine.search_modules(user.as_ref(), query.trim(), None).await.map_err(ssr::fail)
}

/// Creates a project (`parent` empty: a root project) and opens it.
#[server]
pub async fn new_project(parent: String, name: String, description: String) -> Result<(), ServerFnError> {
    let (engine, user) = ssr::caller().await?;
    let path =
        if parent.trim_matches('/').is_empty() { name.trim().to_string() } else { format!("{}/{}", parent.trim_matches('/'), name.trim()) };
    let doc =
        Module { kind: model::ModuleKind::Project, path: path.clone(), description, comment: Some("Created".into()), ..Default::default() };
    engine.save_module(user.as_ref(), doc).await.map_err(ssr::fail)?;
    leptos_axum::redirect(&format!("/modules/{path}"));
    Ok(())
}

/// What the module editor starts from: the module (or a blank one of `kind` inside `parent`),
/// the connectors it may name, and the resolved parameters of every image its nodes use.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EditorStart {
    pub module: Module,
    /// Whether the module exists yet (a new one is named in the editor).
    pub exists: bool,
    pub connectors: Vec<String>,
    /// Image reference → its parameters with inheritance applied (platform outputs included).
    pub images: std::collections::BTreeMap<String, Vec<model::Parameter>>,
    /// Whether the caller may change who may read, write and deploy it (owner or administrator).
    pub can_share: bool,
}

#[server]
pub async fn editor_data(path: String, kind: String, parent: String) -> Result<EditorStart, ServerFnError> {
    let (engine, user) = ssr::caller().await?;
    let user = user.ok_or_else(|| ssr::unauthorized("sign in to edit modules"))?;
    let connectors = engine.connector_names();
    if path.trim().is_empty() {
        let kind = model::ModuleKind::parse(&kind).ok_or_else(|| ssr::invalid("kind", format!("`{kind}` is not a module kind")))?;
        let parent = parent.trim_matches('/').to_string();
        if !parent.is_empty() {
            // Creating inside a project needs the right to write it; say so before any typing.
            engine.get_module(Some(&user), &parent, None).await.map_err(ssr::fail)?;
        }
        let path = if parent.is_empty() { String::new() } else { format!("{parent}/") };
        let module = Module { kind, path, ..Default::default() };
        return Ok(EditorStart { module, exists: false, connectors, images: Default::default(), can_share: true });
    }
    let module = engine.get_module(Some(&user), path.trim_matches('/'), None).await.map_err(ssr::fail)?;
    let mut images = std::collections::BTreeMap::new();
    for node in module.nodes.values() {
        if let Ok(resolved) = engine.resolve_image(Some(&user), &node.image).await {
            images.insert(node.image.clone(), resolved.parameters);
        }
    }
    let (_, _, can_share) = engine.rights(Some(&user), &module.path).await.map_err(ssr::fail)?;
    Ok(EditorStart { module, exists: true, connectors, images, can_share })
}

/// An image's parameters with inheritance applied: what a node of it must resolve (inputs)
/// and what it offers to links (outputs, `hostname` and `instanceid` included).
#[server]
pub async fn image_parameters(image: String) -> Result<Vec<model::Parameter>, ServerFnError> {
    let (engine, user) = ssr::caller().await?;
    Ok(engine.resolve_image(user.as_ref(), image.trim()).await.map_err(ssr::fail)?.parameters)
}

/// What saving from the editor answers: the new version, or every problem, each naming the
/// field it is about so the editor shows it there. Nothing is written when there are problems.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum SaveOutcome {
    Saved { path: String, version: u32 },
    Invalid(Vec<model::FieldError>),
}

/// Saves the editor's module (`doc`: a `Module` as JSON) as a new version.
#[server]
pub async fn save_module(doc: String) -> Result<SaveOutcome, ServerFnError> {
    let (engine, user) = ssr::caller().await?;
    let doc: Module = serde_json::from_str(&doc).map_err(|e| ssr::invalid("doc", format!("bad module document: {e}")))?;
    match engine.save_module(user.as_ref(), doc).await {
        Ok(m) => Ok(SaveOutcome::Saved { path: m.path, version: m.version.unwrap_or(1) }),
        Err(engine::Error::Invalid(errors)) => Ok(SaveOutcome::Invalid(errors)),
        Err(e) => Err(ssr::fail(e)),
    }
}

/// The caller's account on every connector (never the credential itself).
#[server]
pub async fn my_connectors() -> Result<Vec<model::ConnectorAccount>, ServerFnError> {
    let (engine, user) = ssr::caller().await?;
    let user = user.ok_or_else(|| ssr::unauthorized("sign in to see your connectors"))?;
    engine.connector_accounts(&user).await.map_err(ssr::fail)
}

/// Saves a connector's settings (`key = value` lines) and, when typed, its credential;
/// `remove_credential` set removes the stored one.
#[server]
pub async fn save_connector(
    connector: String,
    settings: String,
    credential: String,
    remove_credential: Option<String>,
) -> Result<(), ServerFnError> {
    let (engine, user) = ssr::caller().await?;
    let user = user.ok_or_else(|| ssr::unauthorized("sign in first"))?;
    let settings = parse_settings(&settings).map_err(|e| ssr::invalid("settings", e))?;
    let credential = if remove_credential.is_some() { Some(String::new()) } else { (!credential.is_empty()).then_some(credential) };
    engine.save_connector_account(&user, &connector, model::ConnectorAccountUpdate { settings, credential }).await.map_err(ssr::fail)?;
    Ok(())
}

/// `key = value` lines (blank lines and `#` comments skipped) → settings; the error names the line.
pub fn parse_settings(text: &str) -> Result<std::collections::BTreeMap<String, String>, String> {
    let mut out = std::collections::BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (k, v) = line.split_once('=').ok_or_else(|| format!("settings, line {}: `{line}` is not `name = value`", i + 1))?;
        out.insert(k.trim().to_string(), v.trim().to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn settings_are_name_value_lines() {
        let s = super::parse_settings("# docker\nhost = unix:///run/d.sock\n\nuser=olivia\n").unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s["host"], "unix:///run/d.sock");
        assert_eq!(s["user"], "olivia");
        let e = super::parse_settings("host = a\noops\n").unwrap_err();
        assert!(e.contains("line 2") && e.contains("oops"), "{e}");
    }
}
