//! Parameter sweeps: the form (a deployment's "Sweep…" button) and the sweep page — its runs
//! with their states and statistics, the chart of the collected values against the varied
//! value, and the CSV download. The page refreshes itself while the sweep runs.

use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::{use_navigate, use_params_map, use_query_map};
use model::sweep::{Sweep, SweepRequest};

use crate::api::{start_sweep, sweep_page};
use crate::{error_text, format_time};

#[component]
pub fn NewSweep() -> impl IntoView {
    let query = use_query_map();
    let module = query.read_untracked().get("module").unwrap_or_default();
    let vary = RwSignal::new(String::new());
    let collect = RwSignal::new(String::new());
    let parallel = RwSignal::new("1".to_string());
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let navigate = use_navigate();
    let target = module.clone();
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let parallel = match parallel.get_untracked().trim().parse::<u32>() {
            Ok(p) => p,
            Err(_) => {
                error.set(Some(format!("parallel: `{}` is not a number of runs", parallel.get_untracked())));
                return;
            }
        };
        let req = SweepRequest {
            module: target.clone(),
            vary: vary.get_untracked().lines().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect(),
            collect: collect.get_untracked().trim().to_string(),
            parallel: Some(parallel),
            ..Default::default()
        };
        let body = serde_json::to_string(&req).expect("a request serialises");
        let navigate = navigate.clone();
        busy.set(true);
        leptos::task::spawn_local(async move {
            match start_sweep(body).await {
                Ok(id) => navigate(&format!("/sweeps/{id}"), Default::default()),
                Err(e) => {
                    error.set(Some(error_text(&e)));
                    busy.set(false);
                }
            }
        });
    };
    view! {
        <h1>"Sweep " {module.clone()}</h1>
        <p class="meta">
            "Runs the deployment once per value (every combination, with several lines), collects an output parameter from its instances, and charts it."
        </p>
        <form on:submit=submit id="sweep-form" class="launch">
            <section class="panel">
                <label>
                    "Vary (one per line: " <code>"node:multiplicity=1,2,4,8"</code> " or " <code>"node:input=a,b"</code> ")"
                    <textarea id="sweep-vary" rows="3" bind:value=vary></textarea>
                </label>
                <label>
                    "Collect (" <code>"node.*:output"</code> ", e.g. " <code>"testsuite.*:response_ms"</code> ")"
                    <input type="text" id="sweep-collect" bind:value=collect />
                </label>
                <label>"Runs at once" <input type="number" id="sweep-parallel" min="1" max="8" bind:value=parallel /></label>
            </section>
            {move || {
                error
                    .get()
                    .map(|e| {
                        view! {
                            <p class="error" id="sweep-error">
                                {e}
                            </p>
                        }
                    })
            }}
            <button type="submit" id="sweep-start" disabled=move || busy.get()>
                "Start the sweep"
            </button>
        </form>
    }
}

#[component]
pub fn SweepPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("id").unwrap_or_default();
    let data = Resource::new(id, sweep_page);
    view! {
        <Suspense fallback=|| {
            view! { <p>"Loading…"</p> }
        }>
            {move || Suspend::new(async move {
                match data.await {
                    Ok(s) => view! { <SweepView sweep=s /> }.into_any(),
                    Err(e) => crate::page_error(&e),
                }
            })}
        </Suspense>
    }
}

fn number(v: f64) -> String {
    format!("{v:.2}")
}

#[component]
fn SweepView(sweep: Sweep) -> impl IntoView {
    let page = RwSignal::new(sweep);
    #[cfg(feature = "hydrate")]
    follow(page);
    let s = move || page.get();
    view! {
        <nav class="breadcrumbs">
            <A href="/runs">"Runs"</A>
            " / sweep "
            {move || s().id[..8].to_string()}
        </nav>
        <h1>"Sweep of " <A href=move || format!("/modules/{}", s().module)>{move || s().module}</A></h1>
        <p>
            <span id="sweep-state" data-state=move || s().state>
                {move || s().state}
            </span>
            " · varying "
            {move || s().vary.join("; ")}
            " · collecting "
            <code>{move || s().collect}</code>
            " · "
            {move || s().parallel}
            " at a time · started "
            {move || format_time(s().created_at)}
            " · "
            <a href=move || format!("/api/v1/sweeps/{}/csv", s().id) id="sweep-csv" download="">
                "CSV"
            </a>
        </p>
        <section class="panel">
            <h2>"Chart"</h2>
            <div id="sweep-chart" inner_html=move || crate::chart::svg(&s().points, s().collect.rsplit(':').next().unwrap_or(""))></div>
        </section>
        <section class="panel">
            <h2>"Runs"</h2>
            <table class="list" id="sweep-points">
                <thead>
                    <tr>
                        <th>"Point"</th>
                        <th>"Run"</th>
                        <th>"State"</th>
                        <th>"Values"</th>
                        <th>"Mean"</th>
                        <th>"Median"</th>
                        <th>"p95"</th>
                    </tr>
                </thead>
                <tbody>
                    {move || {
                        s()
                            .points
                            .into_iter()
                            .map(|p| {
                                let stats = p.stats;
                                view! {
                                    <tr data-point=p.index>
                                        <td>{p.label.clone()}</td>
                                        <td>
                                            {p
                                                .run
                                                .clone()
                                                .map(|r| {
                                                    view! { <A href=format!("/runs/{r}")>{r[..8].to_string()}</A> }
                                                })}
                                        </td>
                                        <td class="point-state">{p.state.map(|s| s.as_str()).unwrap_or("waiting")}</td>
                                        <td>{p.samples.len()}{(p.unreadable > 0).then(|| format!(" ({} not numbers)", p.unreadable))}</td>
                                        <td>{stats.map(|s| number(s.mean))}</td>
                                        <td>{stats.map(|s| number(s.median))}</td>
                                        <td>{stats.map(|s| number(s.p95))}</td>
                                    </tr>
                                }
                            })
                            .collect_view()
                    }}
                </tbody>
            </table>
        </section>
    }
}

/// Reloads the sweep every second until it is no longer running (or the page is gone).
#[cfg(feature = "hydrate")]
fn follow(page: RwSignal<Sweep>) {
    leptos::task::spawn_local(async move {
        loop {
            if page.try_with_untracked(|s| s.state == "running") != Some(true) {
                return;
            }
            let (tx, rx) = futures::channel::oneshot::channel::<()>();
            set_timeout(
                move || {
                    let _ = tx.send(());
                },
                std::time::Duration::from_millis(1000),
            );
            let _ = rx.await;
            let Some(id) = page.try_with_untracked(|s| s.id.clone()) else { return };
            if let Ok(fresh) = sweep_page(id).await {
                if page.try_set(fresh).is_some() {
                    return;
                }
            }
        }
    });
}
