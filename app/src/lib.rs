//! Slipstream's web UI, compiled twice: with `ssr` into the server (pages rendered there,
//! server functions calling the engine) and with `hydrate` into the browser's WASM.
//!
//! # Layout
//! - [`api`]: server functions (thin: they authenticate the caller and call the engine)
//! - [`pages`]: one module per page (home, sign in/up, project browser and module view, catalog,
//!   launch form, runs list, live run page, dashboard, profile)
//! - [`App`], [`shell`]: the router and the HTML document around it

#![recursion_limit = "256"]

pub mod api;
pub mod chart;
pub mod pages;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::components::{Route, Router, Routes, A};
use leptos_router::path;

/// The HTML document; the server renders it around every page.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <HydrationScripts options />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    // Effects run only in the browser: this marks the page as hydrated (tests wait for it).
    // The time (ms since the epoch) is kept for measuring time to interactive.
    let (hydrated, set_hydrated) = signal(None::<f64>);
    Effect::new(move |_| {
        #[cfg(feature = "hydrate")]
        set_hydrated.set(Some(leptos::web_sys::js_sys::Date::now()));
        #[cfg(not(feature = "hydrate"))]
        set_hydrated.set(Some(0.0));
    });
    view! {
        <Stylesheet id="leptos" href="/pkg/site.css" />
        <Title text="Slipstream" />
        <Router>
            <Nav />
            <main>
                <Routes fallback=|| view! { <p class="error">"Page not found."</p> }>
                    <Route path=path!("/") view=pages::home::Home />
                    <Route path=path!("/signin") view=pages::auth::SignIn />
                    <Route path=path!("/signup") view=pages::auth::SignUp />
                    <Route path=path!("/catalog") view=pages::catalog::Catalog />
                    <Route path=path!("/modules") view=pages::modules::ModulePage />
                    <Route path=path!("/modules/*path") view=pages::modules::ModulePage />
                    <Route path=path!("/edit/*path") view=pages::editor::EditPage />
                    <Route path=path!("/new") view=pages::editor::EditPage />
                    <Route path=path!("/launch") view=pages::launch::Launch />
                    <Route path=path!("/runs") view=pages::runs::RunsList />
                    <Route path=path!("/runs/:id") view=pages::runs::RunPage />
                    <Route path=path!("/sweep") view=pages::sweeps::NewSweep />
                    <Route path=path!("/sweeps/:id") view=pages::sweeps::SweepPage />
                    <Route path=path!("/profile") view=pages::profile::Profile />
                    <Route path=path!("/dashboard") view=pages::dashboard::Dashboard />
                </Routes>
            </main>
            <footer>
                <span
                    id="hydrated"
                    data-hydrated=move || if hydrated.get().is_some() { "yes" } else { "no" }
                    data-hydrated-at=move || hydrated.get().map(|t| t.to_string()).unwrap_or_default()
                ></span>
            </footer>
        </Router>
    }
}

#[component]
fn Nav() -> impl IntoView {
    let location = leptos_router::hooks::use_location();
    // Refetched on every navigation, so signing in or out shows at once.
    let me = Resource::new(move || location.pathname.get(), |_| api::current_user());
    let logout = ServerAction::<api::Logout>::new();
    view! {
        <nav class="top">
            <A href="/" attr:class="brand">
                "Slipstream"
            </A>
            <A href="/modules">"Projects"</A>
            <A href="/catalog">"Catalog"</A>
            <A href="/dashboard" attr:id="dashboard-link">
                "Dashboard"
            </A>
            <span class="spacer"></span>
            <Transition fallback=|| ()>
                {move || Suspend::new(async move {
                    match me.await {
                        Ok(Some(user)) => {
                            view! {
                                <A href="/profile" attr:class="user" attr:id="signed-in-as">
                                    {user.name.clone()}
                                </A>
                                <ActionForm action=logout attr:class="inline">
                                    <button type="submit" id="signout">
                                        "Sign out"
                                    </button>
                                </ActionForm>
                            }
                                .into_any()
                        }
                        _ => {
                            view! {
                                <A href="/signin">"Sign in"</A>
                                <A href="/signup">"Sign up"</A>
                            }
                                .into_any()
                        }
                    }
                })}
            </Transition>
        </nav>
    }
}

/// The message of a server-function error, without the framework's prefix.
pub fn error_text(e: &ServerFnError) -> String {
    match e {
        ServerFnError::ServerError(m) => m.clone(),
        other => other.to_string(),
    }
}

/// What a page shows when its data could not be loaded (one place, one element id).
pub fn page_error(e: &ServerFnError) -> AnyView {
    view! {
        <p class="error" id="page-error">
            {error_text(e)}
        </p>
    }
    .into_any()
}

/// Formats milliseconds since the epoch as `YYYY-MM-DD HH:MM UTC` (no clock or time zone
/// database needed, so it renders the same on the server and in the browser).
pub fn format_time(ms: i64) -> String {
    let (y, m, d, hh, mm, _) = model::time::utc_fields(ms);
    format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02} UTC")
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_are_formatted_in_utc() {
        assert_eq!(super::format_time(0), "1970-01-01 00:00 UTC");
        assert_eq!(super::format_time(1_795_000_000_000), "2026-11-18 11:06 UTC");
        assert_eq!(super::format_time(951_782_400_000), "2000-02-29 00:00 UTC", "leap day");
    }
}
