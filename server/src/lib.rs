//! The `slipstream` server as a library: `main` parses the command line and calls
//! [`Application::build`] then [`Application::run`]; tests call the same two.
//!
//! # Layout
//! - [`settings`]: where to listen, where the data and the site are, which database
//! - [`api`]: the JSON API under `/api/v1` (one error type, [`api::ApiError`])
//! - [`openapi`]: the OpenAPI document of that API
//! - [`Application`]: binds, loads examples, serves the API and the Leptos pages until stopped

pub mod api;
pub mod client;
mod connections;
mod cross_site;
mod listen;
pub mod openapi;
pub mod settings;
mod url_guard;

use std::net::SocketAddr;

use axum::extract::FromRef;
use axum::Router;
use engine::Engine;
use leptos::prelude::*;
use leptos_axum::{generate_route_list, LeptosRoutes};
use tower_http::services::ServeDir;

pub use settings::Settings;

/// What every request handler gets. Cloned for every request (axum's `State`), so each part
/// is a reference count: the page options behind an `Arc` (a by-value copy of them cost more
/// than a parameter read did).
#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    pub leptos: std::sync::Arc<LeptosOptions>,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(s: &AppState) -> Self {
        (*s.leptos).clone()
    }
}

pub struct Application {
    listener: tokio::net::TcpListener,
    router: Router,
    /// Listeners for agents that cannot reach `listener` (containers), serving `agent_router`.
    agent_listeners: Vec<tokio::net::TcpListener>,
    agent_router: Router,
    pub engine: Engine,
}

impl Application {
    /// Opens the database (applying migrations; failure stops start-up), loads the examples
    /// on first start and binds the listening socket.
    pub async fn build(settings: &Settings) -> Result<Self, String> {
        std::fs::create_dir_all(&settings.data_dir)
            .map_err(|e| format!("cannot create the data directory {}: {e}", settings.data_dir.display()))?;
        // The database, the server's id and its connectors' keys are for the server's user
        // alone (local instances of a root server run as another user).
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&settings.data_dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("cannot make the data directory {} private: {e}", settings.data_dir.display()))?;
        let url = settings.database_url();
        let config = engine::RunConfig {
            data_dir: settings.data_dir.clone(),
            agent_bin: settings.agent_bin.clone(),
            connectors: settings.connectors.clone(),
            report_limit: Some(settings.report_limit_mb.saturating_mul(1 << 20)),
            secure_cookies: settings.secure_cookies,
            registration: settings.registration,
            behind_proxy: settings.behind_proxy,
        };
        let engine = Engine::open_with(&url, config).await.map_err(|e| e.to_string())?;
        if settings.load_examples {
            engine.load_examples().await.map_err(|e| format!("loading the example modules failed: {e}"))?;
        }
        let listener = listen::bind(&settings.listen).await.map_err(|e| format!("cannot listen on {}: {e}", settings.listen))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        // Agents on this host reach the server on loopback even when it listens on all addresses.
        let reach = if addr.ip().is_unspecified() { SocketAddr::from(([127, 0, 0, 1], addr.port())) } else { addr };
        engine.set_service_url(&format!("http://{reach}"));
        let agent_listeners = agent_listeners(&engine, addr.port()).await?;
        let recovered = engine.recover_runs().await.map_err(|e| format!("recovering runs failed: {e}"))?;
        if recovered > 0 {
            tracing::info!(recovered, "runs re-attached after a restart");
        }
        // What no live run wants (a crash cut its run's end short, a stop failed) is stopped
        // now that recovery has ended the runs that cannot go on, and then periodically.
        let reaper = engine.clone();
        let every = std::time::Duration::from_secs(settings.reap_every_secs.max(1));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                if let Err(e) = reaper.reap().await {
                    tracing::warn!(error = %e, "the reaper's pass failed");
                }
            }
        });
        // Expired sessions, and finished runs past retention, go now and every hour.
        let cleaner = engine.clone();
        let keep_days = settings.keep_finished_runs_days;
        tokio::spawn(async move {
            let mut hourly = tokio::time::interval(std::time::Duration::from_secs(3600));
            loop {
                hourly.tick().await;
                match cleaner.delete_expired_sessions().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(n, "expired sessions deleted"),
                    Err(e) => tracing::warn!(error = %e, "deleting expired sessions failed"),
                }
                if keep_days > 0 {
                    match cleaner.delete_finished_runs_older_than(keep_days).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(n, keep_days, "finished runs past retention deleted"),
                        Err(e) => tracing::warn!(error = %e, "deleting finished runs past retention failed"),
                    }
                }
            }
        });
        let resumed = engine.resume_sweeps().await.map_err(|e| format!("resuming sweeps failed: {e}"))?;
        if resumed > 0 {
            tracing::info!(resumed, "sweeps resumed after a restart");
        }

        let conf = get_configuration(None).map_err(|e| e.to_string())?;
        let mut leptos = conf.leptos_options;
        leptos.site_root = settings.site_root.display().to_string().into();
        leptos.site_addr = addr;
        let state = AppState { engine: engine.clone(), leptos: std::sync::Arc::new(leptos.clone()) };
        let agent_router = api::agent_routes().with_state(state.clone()).layer(axum::middleware::from_fn(url_guard::refuse_nul));
        let router = router(state);
        Ok(Self { listener, router, agent_listeners, agent_router, engine })
    }

    pub fn addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound socket has an address")
    }

    /// Where the server listens for the agents of connectors that need it.
    pub fn agent_addrs(&self) -> Vec<SocketAddr> {
        self.agent_listeners.iter().filter_map(|l| l.local_addr().ok()).collect()
    }

    /// Serves until `shutdown` completes; in-flight requests finish first.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let mut agents = Vec::new();
        for l in self.agent_listeners {
            let router = self.agent_router.clone();
            agents.push(tokio::spawn(async move { axum::serve(connections::Listener::new(l), router.into_make_service()).await }));
        }
        // `into_make_service` (and `WithPeer`, which also gives the peer's address: sign-in
        // limits count per client address): each connection gets a reference-counted copy of
        // the router. Serving the `Router` itself re-applies its state to a deep copy of every
        // route for each connection (and drops it when the connection closes): with the page
        // routes that made each new connection cost more than a hundred parameter reads.
        // `connections::Listener`: connections their clients closed are closed after a burst.
        let served = axum::serve(connections::Listener::new(self.listener), connections::WithPeer(self.router))
            .with_graceful_shutdown(shutdown)
            .await;
        for a in agents {
            a.abort();
        }
        served
    }
}

/// One listener per address a connector asks for (its instances cannot reach the server's own
/// address): on that address, at the server's port when that is free there. A
/// connector that cannot be reached now is logged; its runs fail with that reason.
async fn agent_listeners(engine: &Engine, port: u16) -> Result<Vec<tokio::net::TcpListener>, String> {
    let mut out = Vec::new();
    for c in engine.connectors() {
        let addresses = match c.agent_addresses().await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(connector = c.name(), error = %e, "connector unavailable; its runs fail until the server restarts");
                continue;
            }
        };
        for ip in addresses {
            let listener = match listen::bind((ip, port)).await {
                Ok(l) => l,
                Err(_) => listen::bind((ip, 0))
                    .await
                    .map_err(|e| format!("cannot listen for the agents of connector `{}` on {ip}: {e}", c.name()))?,
            };
            let at = listener.local_addr().map_err(|e| e.to_string())?;
            c.set_agent_url(ip, &format!("http://{at}"));
            tracing::info!(connector = c.name(), %at, "listening for agents");
            out.push(listener);
        }
    }
    Ok(out)
}

/// The whole HTTP surface: API routes, then the pages and server functions, then static files.
pub fn router(state: AppState) -> Router {
    let routes = generate_route_list(app::App);
    let engine = state.engine.clone();
    let leptos = state.leptos.clone();
    let pkg = std::path::Path::new(state.leptos.site_root.as_ref()).join(state.leptos.site_pkg_dir.as_ref());
    api::routes()
        .leptos_routes_with_context(&state, routes, move || provide_context(engine.clone()), move || app::shell((*leptos).clone()))
        // The WASM, JS and CSS: a release build also writes `.gz` twins (3 MB of WASM → 0.9 MB),
        // sent to browsers that accept gzip without compressing anything per request.
        .nest_service("/pkg", ServeDir::new(pkg).precompressed_gzip())
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(app::shell))
        .with_state(state)
        .layer(axum::middleware::from_fn(cross_site::refuse_cross_site))
        .layer(axum::middleware::from_fn(url_guard::refuse_nul))
        .layer(axum::middleware::map_response(security_headers))
}

/// Headers every answer carries: no framing by other sites (clickjacking), no guessing of
/// content types, no full URLs in `Referer` to other sites. (A script policy needs nonces for
/// the hydration scripts first: not yet.)
async fn security_headers(mut r: axum::response::Response) -> axum::response::Response {
    use axum::http::{header, HeaderValue};
    let h = r.headers_mut();
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("frame-ancestors 'none'"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    r
}
