//! The dashboard: the user's runs with their live state, module, start, duration, tags,
//! connectors and instance counts; filters (active or all, module, tag) are query parameters
//! so a filtered dashboard is a link. In the browser, state changes arrive over the websocket
//! and a run that was not listed yet reloads the list.

use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::use_query_map;
use model::run::RunSummary;

use crate::api::{dashboard_runs, my_connectors};
use crate::pages::runs::state_badge;
use crate::{error_text, format_time};

fn duration(r: &RunSummary) -> String {
    match r.ended_at {
        Some(end) => {
            let s = (end - r.created_at).max(0) / 1000;
            if s >= 3600 {
                format!("{}h {:02}m", s / 3600, (s % 3600) / 60)
            } else if s >= 60 {
                format!("{}m {:02}s", s / 60, s % 60)
            } else {
                format!("{s}s")
            }
        }
        None => "running".into(),
    }
}

#[component]
pub fn Dashboard() -> impl IntoView {
    let query = use_query_map();
    let filters = move || {
        let q = query.read();
        (q.get("active").is_some_and(|v| v == "1"), q.get("module").unwrap_or_default(), q.get("tag").unwrap_or_default())
    };
    let reload = RwSignal::new(0u32);
    let runs = Resource::new(move || (filters(), reload.get()), |((active, module, tag), _)| dashboard_runs(active, module, tag));
    let (active, module, tag) = filters();
    // Usage is the server's count; it is fetched again whenever a run starts or ends.
    let usage_tick = RwSignal::new(0u32);
    let usage = Resource::new(move || (reload.get(), usage_tick.get()), |_| my_connectors());
    view! {
        <h1>"Dashboard"</h1>
        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                usage
                    .await
                    .ok()
                    .map(|list| {
                        view! {
                            <ul class="usage" id="usage">
                                {list
                                    .into_iter()
                                    .map(|a| {
                                        let text = match a.quota {
                                            Some(q) => format!("{}: {} of {q} instances", a.connector, a.in_use),
                                            None => format!("{}: {} instances (no quota)", a.connector, a.in_use),
                                        };
                                        let max = a.quota.unwrap_or(a.in_use.max(1)).max(1);
                                        view! {
                                            <li data-connector=a.connector.clone()>
                                                <meter min="0" max=max value=a.in_use high=max * 8 / 10 optimum="0"></meter>
                                                " "
                                                {text}
                                            </li>
                                        }
                                    })
                                    .collect_view()}
                            </ul>
                        }
                    })
            })}
        </Transition>
        <form method="get" action="/dashboard" class="search" id="dashboard-filters">
            <label class="inline-check">
                <input type="checkbox" name="active" value="1" checked=active />
                " active only"
            </label>
            <input type="search" name="module" placeholder="module" value=module />
            <input type="search" name="tag" placeholder="tag" value=tag />
            <button type="submit">"Filter"</button>
        </form>
        <Suspense fallback=|| {
            view! { <p>"Loading…"</p> }
        }>
            {move || Suspend::new(async move {
                match runs.await {
                    Ok(list) => view! { <DashboardTable runs=list reload usage_tick /> }.into_any(),
                    Err(e) => view! { <p class="error">{error_text(&e)}</p> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn DashboardTable(runs: Vec<RunSummary>, reload: RwSignal<u32>, usage_tick: RwSignal<u32>) -> impl IntoView {
    let rows = RwSignal::new(runs);
    #[cfg(feature = "hydrate")]
    live::follow(rows, reload, usage_tick);
    #[cfg(not(feature = "hydrate"))]
    let _ = (reload, usage_tick);
    let totals = move || {
        rows.with(|rs| {
            let active = rs.iter().filter(|r| !r.state.is_terminal()).count();
            let instances: u32 = rs.iter().filter(|r| !r.state.is_terminal()).flat_map(|r| r.connectors.values()).sum();
            (rs.len(), active, instances)
        })
    };
    view! {
        <p class="meta" id="dashboard-totals">
            {move || {
                let (n, a, i) = totals();
                format!("{n} runs · {a} active · {i} instances in active runs")
            }}
        </p>
        <table class="list" id="dashboard">
            <thead>
                <tr>
                    <th>"Run"</th>
                    <th>"Module"</th>
                    <th>"State"</th>
                    <th>"Started"</th>
                    <th>"Duration"</th>
                    <th>"Tags"</th>
                    <th>"Instances"</th>
                </tr>
            </thead>
            <tbody>
                {move || {
                    rows.with(|rs| {
                        rs.iter()
                            .map(|r| {
                                let aborted = r.abort.is_some();
                                let (row_id, href, short, dur) = (
                                    r.id.clone(),
                                    format!("/runs/{}", r.id),
                                    r.id[..8].to_string(),
                                    duration(r),
                                );
                                let connectors = r.connectors.iter().map(|(c, n)| format!("{n} on {c}")).collect::<Vec<_>>().join(", ");
                                let states = r
                                    .instance_states
                                    .iter()
                                    .map(|(s, n)| match s.as_str() {
                                        "" => format!("{n} starting"),
                                        model::run::START_FAILED => format!("{n} failed to start"),
                                        _ => format!("{n} completed {s}"),
                                    })
                                    .collect::<Vec<_>>()
                                    .join(", ");
                                view! {
                                    <tr data-run=row_id data-state=r.state.as_str()>
                                        <td>
                                            <A href=href>{short}</A>
                                        </td>
                                        <td>{r.module.clone()} "@" {r.module_version}</td>
                                        <td>{state_badge(r.state)}{aborted.then(|| view! { <span class="error">" (abort)"</span> })}</td>
                                        <td>{format_time(r.created_at)}</td>
                                        <td>{dur}</td>
                                        <td>{r.tags.join(", ")}</td>
                                        <td>{connectors}<div class="meta instance-states">{states}</div></td>
                                    </tr>
                                }
                            })
                            .collect_view()
                    })
                }}
            </tbody>
        </table>
    }
}

#[cfg(feature = "hydrate")]
mod live {
    use futures::StreamExt;
    use leptos::prelude::*;
    use model::run::{LiveEvent, RunSummary};
    use model::RunState;

    /// Applies state changes of listed runs; a run not listed yet reloads the list.
    pub fn follow(rows: RwSignal<Vec<RunSummary>>, reload: RwSignal<u32>, usage_tick: RwSignal<u32>) {
        leptos::task::spawn_local(async move {
            let location = window().location();
            let proto = if location.protocol().as_deref() == Ok("https:") { "wss" } else { "ws" };
            let url = format!("{proto}://{}/api/v1/ws", location.host().unwrap_or_default());
            let Ok(ws) = gloo_net::websocket::futures::WebSocket::open(&url) else { return };
            let (_keep_open, mut read) = ws.split();
            while let Some(Ok(gloo_net::websocket::Message::Text(text))) = read.next().await {
                let Ok(LiveEvent::State { run, state, .. }) = serde_json::from_str::<LiveEvent>(&text) else { continue };
                let known = rows.try_update(|rs| match rs.iter_mut().find(|r| r.id == run) {
                    Some(r) => {
                        // Leaving a barrier state means every instance completed it.
                        if matches!(r.state, RunState::Provisioning | RunState::Executing | RunState::SendingReports) {
                            let total = r.instance_states.values().sum();
                            r.instance_states = [(r.state.as_str().to_string(), total)].into();
                        }
                        r.state = state;
                        true
                    }
                    None => false,
                });
                match known {
                    None => return, // the page is gone
                    Some(false) => {
                        if reload.try_update(|n| *n += 1).is_none() {
                            return;
                        }
                    }
                    Some(true) => {
                        // Instances are counted until their run ends.
                        if state.is_terminal() && usage_tick.try_update(|n| *n += 1).is_none() {
                            return;
                        }
                    }
                }
            }
        });
    }
}
