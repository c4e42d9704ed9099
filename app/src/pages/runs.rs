//! The runs list and the live run page. The page is rendered on the server with the run as
//! it is; in the browser it then follows the run over the websocket (`/api/v1/ws?run=…`):
//! parameter sets and log lines are applied as they come, and each state change or report
//! reloads the run's detail. A dropped socket reconnects with the last event seen, so no state
//! change is missed.

use leptos::prelude::*;
use leptos_meta::{Script, Stylesheet};
use leptos_router::components::A;
use leptos_router::hooks::use_params_map;
use model::run::{LiveEvent, NodeLink, RunSummary};
use model::RunState;

use crate::api::{list_runs, run_page, RerunTarget, RunPageData, ScaleDown, ScaleUp, TerminateRun, LOG_TAIL};
use crate::{error_text, format_time};

/// State shown with its name and a symbol, not by colour alone.
pub fn state_badge(state: RunState) -> impl IntoView {
    let symbol = match state {
        RunState::Done => "✓",
        RunState::Aborted => "✗",
        RunState::Cancelled => "⊘",
        RunState::Ready => "●",
        _ => "…",
    };
    view! { <span class=format!("state state-{}", state.as_str().to_lowercase())>{symbol} " " {state.as_str()}</span> }
}

#[component]
pub fn RunsList() -> impl IntoView {
    let runs = Resource::new(|| (), |_| list_runs());
    view! {
        <h1>"Runs"</h1>
        <Suspense fallback=|| {
            view! { <p>"Loading…"</p> }
        }>
            {move || Suspend::new(async move {
                match runs.await {
                    Ok(list) if list.is_empty() => view! { <p class="empty">"No runs yet. Open a deployment and press Run."</p> }.into_any(),
                    Ok(list) => view! { <RunsTable runs=list /> }.into_any(),
                    Err(e) => view! { <p class="error">{error_text(&e)}</p> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn RunsTable(runs: Vec<RunSummary>) -> impl IntoView {
    view! {
        <table class="list" id="runs">
            <thead>
                <tr>
                    <th>"Run"</th>
                    <th>"Module"</th>
                    <th>"State"</th>
                    <th>"Started"</th>
                    <th>"Tags"</th>
                </tr>
            </thead>
            <tbody>
                {runs
                    .into_iter()
                    .map(|r| {
                        let (row_id, href, short) = (r.id.clone(), format!("/runs/{}", r.id), r.id[..8].to_string());
                        view! {
                            <tr data-run=row_id>
                                <td>
                                    <A href=href>{short}</A>
                                </td>
                                <td>{r.module.clone()} "@" {r.module_version}</td>
                                <td>{state_badge(r.state)}</td>
                                <td>{format_time(r.created_at)}</td>
                                <td>{r.tags.join(", ")}</td>
                            </tr>
                        }
                    })
                    .collect_view()}
            </tbody>
        </table>
    }
}

#[component]
pub fn RunPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("id").unwrap_or_default();
    let data = Resource::new(id, run_page);
    view! {
        <Suspense fallback=|| {
            view! { <p>"Loading…"</p> }
        }>
            {move || Suspend::new(async move {
                match data.await {
                    Ok(d) => view! { <RunView data=d /> }.into_any(),
                    Err(e) => crate::page_error(&e),
                }
            })}
        </Suspense>
    }
}

/// A scalable run's controls: per node, add instances or remove one (in Ready; while a
/// scaling runs, what it does).
#[component]
fn Scaling(page: RwSignal<RunPageData>) -> impl IntoView {
    let up = ServerAction::<ScaleUp>::new();
    let down = ServerAction::<ScaleDown>::new();
    let failed = move || {
        [up.value().get().and_then(|r| r.err()), down.value().get().and_then(|r| r.err())].into_iter().flatten().next().map(|e| {
            view! {
                <p class="error" id="scale-error">
                    {error_text(&e)}
                </p>
            }
        })
    };
    let id = move || page.with(|d| d.detail.summary.id.clone());
    let ready = move || page.with(|d| d.detail.summary.state == RunState::Ready);
    let running = move || {
        page.with(|d| {
            let p = |k: &str| d.detail.params.get(k).cloned().flatten().unwrap_or_default();
            let action = p("ss:scaling.action");
            (!action.is_empty()).then(|| format!("{action} of {}: {}", p("ss:scaling.node"), p("ss:scaling.vms")))
        })
    };
    let nodes = move || {
        page.with(|d| {
            let mut nodes: Vec<(String, Vec<String>)> = Vec::new();
            for i in &d.detail.instances {
                match nodes.iter_mut().find(|(n, _)| *n == i.node) {
                    Some((_, names)) => names.push(i.name.clone()),
                    None => nodes.push((i.node.clone(), vec![i.name.clone()])),
                }
            }
            nodes
        })
    };
    view! {
        <section class="panel" id="scaling">
            <h2>"Scaling"</h2>
            {move || {
                running()
                    .map(|r| {
                        view! {
                            <p class="notice" id="scaling-now">
                                "Scaling: "
                                {r}
                            </p>
                        }
                    })
            }}
            {failed}
            <table class="list">
                <tbody>
                    {move || {
                        nodes()
                            .into_iter()
                            .map(|(node, names)| {
                                let (node_up, node_down) = (node.clone(), node.clone());
                                let (id_up, id_down) = (id(), id());
                                view! {
                                    <tr data-scale-node=node.clone()>
                                        <td>
                                            <strong>{node.clone()}</strong>
                                            " ("
                                            {names.len()}
                                            ")"
                                        </td>
                                        <td>
                                            <ActionForm action=up attr:class="inline">
                                                <input type="hidden" name="id" value=id_up />
                                                <input type="hidden" name="node" value=node_up />
                                                <input type="number" name="count" value="1" min="1" max="100" class="scale-count" />
                                                <button type="submit" class="scale-add" disabled=move || !ready()>
                                                    "+ Add"
                                                </button>
                                            </ActionForm>
                                        </td>
                                        <td>
                                            <ActionForm action=down attr:class="inline">
                                                <input type="hidden" name="id" value=id_down />
                                                <input type="hidden" name="node" value=node_down />
                                                <select name="instance" class="scale-instance">
                                                    {names
                                                        .iter()
                                                        .map(|n| view! { <option value=n.clone()>{n.clone()}</option> })
                                                        .collect_view()}
                                                </select>
                                                <button type="submit" class="scale-remove" disabled=move || !ready()>
                                                    "− Remove"
                                                </button>
                                            </ActionForm>
                                        </td>
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

#[component]
fn RunView(data: RunPageData) -> impl IntoView {
    let id = data.detail.summary.id.clone();
    let page = RwSignal::new(data);
    #[cfg(feature = "hydrate")]
    {
        let since = page.with_untracked(|d| d.events.iter().map(|e| e.seq).max().unwrap_or(0));
        live::follow(id.clone(), since, page);
    }
    let terminate = ServerAction::<TerminateRun>::new();
    let rerun = ServerAction::<RerunTarget>::new();
    let filter = RwSignal::new(String::new());
    let short = id[..8].to_string();
    let hidden_id = StoredValue::new(id.clone());
    // The graph is redrawn only when what it shows changes, not on every log line.
    let graph = Memo::new(move |_| page.with(GraphData::of));
    let summary = move || page.with(|d| d.detail.summary.clone());
    let state = move || summary().state;
    view! {
        <Stylesheet id="xterm" href="/pkg/xterm.css" />
        <Script src="/pkg/xterm.js" />
        <Script src="/pkg/xterm-addon-fit.js" />
        <Script src="/pkg/terminal.js" />
        <nav class="breadcrumbs">
            <A href="/runs">"Runs"</A>
            " / "
            {short}
        </nav>
        <header class="module-head">
            <h1>
                "Run of "
                <A href=move || {
                    format!("/modules/{}?version={}", summary().module, summary().module_version)
                }>{move || format!("{}@{}", summary().module, summary().module_version)}</A>
            </h1>
            <p>
                <span id="run-state" data-state=move || state().as_str()>
                    {move || state_badge(state())}
                </span>
                " · started "
                {move || format_time(summary().created_at)}
                " · keep running: "
                {move || summary().keep_running.as_str()}
                {move || (!summary().tags.is_empty()).then(|| format!(" · tags: {}", summary().tags.join(", ")))}
            </p>
            <Show when=move || !state().is_terminal()>
                <ActionForm action=terminate attr:class="inline">
                    <input type="hidden" name="id" value=hidden_id.get_value() />
                    <button type="submit" id="terminate">
                        "Terminate"
                    </button>
                </ActionForm>
            </Show>
        </header>
        {move || {
            summary()
                .abort
                .map(|msg| {
                    view! {
                        <div class="abort-banner" id="abort" role="alert">
                            <strong>"Aborted: "</strong>
                            {msg}
                        </div>
                    }
                })
        }}
        <Show when=move || summary().scalable && !state().is_terminal()>
            <Scaling page=page />
        </Show>
        <section class="panel">
            <h2>"Deployment"</h2>
            {move || view! { <RunGraph data=graph.get() /> }}
        </section>
        <section class="panel">
            <h2>"Instances"</h2>
            <table class="list" id="instances">
                <thead>
                    <tr>
                        <th>"Instance"</th>
                        <th>"Address"</th>
                        <th>"Completed"</th>
                        <th>"Running"</th>
                        <th>"Message"</th>
                        <th>"Debug"</th>
                    </tr>
                </thead>
                <tbody>
                    {move || {
                        page.with(|d| {
                            d.detail
                                .instances
                                .iter()
                                .map(|i| {
                                    let key = format!("{}:statecustom", i.name);
                                    let abort_key = format!("{}:abort", i.name);
                                    let message = d.detail.params.get(&key).cloned().flatten().unwrap_or_default();
                                    let failed = d.detail.params.get(&abort_key).cloned().flatten();
                                    let is_failed = failed.is_some();
                                    let live = i.running && !d.detail.summary.state.is_terminal();
                                    let (run_id, name) = (d.detail.summary.id.clone(), i.name.clone());
                                    view! {
                                        <tr data-instance=i.name.clone() class:failed=is_failed>
                                            <td>
                                                <strong>{i.name.clone()}</strong>
                                            </td>
                                            <td>
                                                <code>{i.address.clone()}</code>
                                            </td>
                                            <td>{i.completed.map(|c| c.as_str()).unwrap_or("—")}</td>
                                            <td>{if i.running { "yes" } else { "no" }}</td>
                                            <td class="statecustom">
                                                {message}{failed.map(|f| view! { <span class="error">" ✗ " {f}</span> })}
                                            </td>
                                            <td class="debug">
                                                {live
                                                    .then(|| {
                                                        view! {
                                                            <button
                                                                type="button"
                                                                class="open-terminal"
                                                                data-run=run_id.clone()
                                                                data-instance=name.clone()
                                                            >
                                                                "Open terminal"
                                                            </button>
                                                            <ActionForm action=rerun attr:class="inline rerun-form">
                                                                <input type="hidden" name="id" value=run_id.clone() />
                                                                <input type="hidden" name="instance" value=name.clone() />
                                                                <select name="target" aria-label="Target to re-run">
                                                                    <option value="execute">"execute"</option>
                                                                    <option value="report">"report"</option>
                                                                    <option value="onvmadd">"onvmadd"</option>
                                                                    <option value="onvmremove">"onvmremove"</option>
                                                                </select>
                                                                <button type="submit" class="rerun">
                                                                    "Re-run"
                                                                </button>
                                                            </ActionForm>
                                                        }
                                                    })}
                                            </td>
                                        </tr>
                                    }
                                })
                                .collect_view()
                        })
                    }}
                </tbody>
            </table>
            <p id="rerun-result" aria-live="polite">
                {move || {
                    rerun
                        .value()
                        .get()
                        .map(|r| match r {
                            Ok(msg) => view! { <span class="ok">"Re-ran " {msg}</span> }.into_any(),
                            Err(e) => view! { <span class="error">{error_text(&e)}</span> }.into_any(),
                        })
                }}
                {move || rerun.pending().get().then_some("Re-running…")}
            </p>
        </section>
        // Filled by /pkg/terminal.js (xterm.js on the terminal websocket) when "Open terminal"
        // is pressed; Leptos never re-renders it.
        <section class="panel" id="terminal-panel" hidden>
            <h2 id="terminal-title">"Terminal"</h2>
            <button type="button" id="terminal-close">
                "Close terminal"
            </button>
            <div id="terminal"></div>
        </section>
        <section class="panel">
            <h2>"Reports"</h2>
            <ul id="reports">
                {move || {
                    page.with(|d| {
                        d.reports
                            .iter()
                            .map(|r| {
                                let href = format!("/api/v1/runs/{}/reports/{}/{}", d.detail.summary.id, r.instance, r.file);
                                view! {
                                    <li>
                                        <a href=href download=r.file.clone()>
                                            {r.file.clone()}
                                        </a>
                                        " ("
                                        {r.size}
                                        " bytes)"
                                    </li>
                                }
                            })
                            .collect_view()
                    })
                }}
            </ul>
        </section>
        <section class="panel">
            <h2>"Output"</h2>
            <pre class="log" id="log">
                {move || page.with(|d| d.logs.iter().map(|l| format!("[{}] {}\n", l.instance, l.line)).collect::<String>())}
            </pre>
        </section>
        <section class="panel">
            <h2>"Waiting for"</h2>
            <ul id="waiting">
                {move || {
                    page.with(|d| {
                        if d.waiting.is_empty() {
                            view! { <li class="empty">"No instance is waiting for a parameter."</li> }.into_any()
                        } else {
                            d.waiting
                                .iter()
                                .map(|(k, n)| {
                                    view! {
                                        <li>
                                            <code>{k.clone()}</code>
                                            " — "
                                            {*n}
                                            " reader(s)"
                                        </li>
                                    }
                                })
                                .collect_view()
                                .into_any()
                        }
                    })
                }}
            </ul>
        </section>
        <section class="panel">
            <h2>"Time per state"</h2>
            <table class="list" id="state-times">
                <tbody>
                    {move || {
                        page.with(|d| {
                            let summary = &d.detail.summary;
                            let now = summary.ended_at.unwrap_or(summary.state_changed_at);
                            let mut rows = time_per_state(&d.events, summary.created_at, now);
                            let current = (!summary.state.is_terminal()).then(|| rows.pop()).flatten();
                            let since = format_time(summary.state_changed_at);
                            // The end of the run, or the last change the page knows of, stands for "now"
                            // (the same on the server and in the browser, so hydration matches).
                            view! {
                                {rows
                                    .into_iter()
                                    .map(|(s, ms)| {
                                        view! {
                                            <tr>
                                                <td>{s}</td>
                                                <td>{format_ms(ms)}</td>
                                            </tr>
                                        }
                                    })
                                    .collect_view()}
                                {current
                                    .map(|(s, _)| {
                                        view! {
                                            <tr class="current">
                                                <td>{s}</td>
                                                <td>"in progress since " {since}</td>
                                            </tr>
                                        }
                                    })}
                            }
                        })
                    }}
                </tbody>
            </table>
        </section>
        <section class="panel">
            <h2>"Parameters"</h2>
            <input type="search" id="param-filter" placeholder="Filter parameters (key or value)" bind:value=filter />
            <table class="list" id="params">
                <tbody>
                    {move || {
                        let f = filter.get().to_lowercase();
                        page.with(|d| {
                            d.detail
                                .params
                                .iter()
                                .filter(|(k, v)| {
                                    f.is_empty() || k.to_lowercase().contains(&f)
                                        || v.as_deref().is_some_and(|v| v.to_lowercase().contains(&f))
                                })
                                .map(|(k, v)| {
                                    view! {
                                        <tr>
                                            <td>
                                                <code>{k.clone()}</code>
                                            </td>
                                            <td>{v.clone().unwrap_or_else(|| "(unset)".into())}</td>
                                        </tr>
                                    }
                                })
                                .collect_view()
                        })
                    }}
                </tbody>
            </table>
        </section>
        <section class="panel">
            <h2>"Events"</h2>
            <table class="list" id="events">
                <tbody>
                    {move || {
                        page.with(|d| {
                            d.events
                                .iter()
                                .map(|e| {
                                    view! {
                                        <tr>
                                            <td>{format_time(e.at)}</td>
                                            <td>{e.kind.clone()}</td>
                                            <td>{e.message.clone()}</td>
                                        </tr>
                                    }
                                })
                                .collect_view()
                        })
                    }}
                </tbody>
            </table>
        </section>
    }
}

/// Columns of the deployment graph: a node sits one column right of every node it takes a
/// link from (longest path; a cycle, which validation forbids anyway, cannot loop forever).
pub fn graph_columns(nodes: &[String], links: &[NodeLink]) -> Vec<Vec<String>> {
    let mut depth: std::collections::BTreeMap<&str, usize> = nodes.iter().map(|n| (n.as_str(), 0)).collect();
    for _ in 0..nodes.len() {
        let mut changed = false;
        for link in links {
            let (Some(&f), Some(&t)) = (depth.get(link.from.as_str()), depth.get(link.to.as_str())) else { continue };
            if t < f + 1 && f + 1 < nodes.len() {
                depth.insert(link.to.as_str(), f + 1);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let mut columns: Vec<Vec<String>> = Vec::new();
    for n in nodes {
        let d = depth[n.as_str()];
        if columns.len() <= d {
            columns.resize(d + 1, Vec::new());
        }
        columns[d].push(n.clone());
    }
    columns
}

/// What the deployment graph shows of a run.
#[derive(Clone, Debug, PartialEq)]
struct GraphData {
    /// (node, instance, state it last completed, aborted).
    instances: Vec<(String, String, Option<RunState>, bool)>,
    links: Vec<NodeLink>,
    run_aborted: bool,
}

impl GraphData {
    fn of(d: &RunPageData) -> Self {
        let aborted = |name: &str| d.detail.params.get(&format!("{name}:abort")).is_some_and(|v| v.is_some());
        GraphData {
            instances: d.detail.instances.iter().map(|i| (i.node.clone(), i.name.clone(), i.completed, aborted(&i.name))).collect(),
            links: d.links.clone(),
            run_aborted: d.detail.summary.abort.is_some(),
        }
    }
}

/// The deployment as boxes (one per node, its instances as dots coloured by state, each
/// with its name and state as a tooltip) and links as arrows labelled `output → input`.
#[component]
fn RunGraph(data: GraphData) -> impl IntoView {
    const W: i64 = 210;
    const H: i64 = 92;
    const GAP_X: i64 = 190;
    const GAP_Y: i64 = 24;
    let mut nodes: Vec<String> = Vec::new();
    for (node, ..) in &data.instances {
        if !nodes.contains(node) {
            nodes.push(node.clone());
        }
    }
    for link in &data.links {
        for n in [&link.from, &link.to] {
            if !nodes.contains(n) {
                nodes.push(n.clone());
            }
        }
    }
    let columns = graph_columns(&nodes, &data.links);
    let mut at = std::collections::BTreeMap::new();
    for (c, col) in columns.iter().enumerate() {
        for (r, n) in col.iter().enumerate() {
            at.insert(n.clone(), (20 + c as i64 * (W + GAP_X), 20 + r as i64 * (H + GAP_Y)));
        }
    }
    let width = 40 + columns.len().max(1) as i64 * (W + GAP_X) - GAP_X;
    let height = 40 + columns.iter().map(Vec::len).max().unwrap_or(1) as i64 * (H + GAP_Y) - GAP_Y;
    // One arrow per pair of nodes, labelled with every link it carries.
    let mut arrows: std::collections::BTreeMap<(String, String), Vec<String>> = std::collections::BTreeMap::new();
    for link in &data.links {
        arrows.entry((link.from.clone(), link.to.clone())).or_default().push(link.label.clone());
    }
    let run_aborted = data.run_aborted;
    let boxes = nodes
        .iter()
        .map(|n| {
            let (x, y) = at[n];
            let instances: Vec<_> = data.instances.iter().filter(|(node, ..)| node == n).collect();
            let aborted = instances.iter().any(|(.., failed)| *failed);
            let least = instances.iter().map(|(_, _, completed, _)| *completed).min().flatten();
            let status = if aborted {
                "aborted ✗".to_string()
            } else {
                least.map(|s| format!("completed {}", s.as_str())).unwrap_or_else(|| "starting…".into())
            };
            let dots = instances
                .iter()
                .take(14)
                .enumerate()
                .map(|(k, (_, name, completed, failed))| {
                    let failed = *failed;
                    let class = if failed {
                        "dot dot-aborted".to_string()
                    } else {
                        format!("dot dot-{}", completed.map(|s| s.as_str().to_lowercase()).unwrap_or_else(|| "none".into()))
                    };
                    let tip = format!(
                        "{name}: {}",
                        if failed {
                            "aborted".into()
                        } else {
                            completed.map(|s| s.as_str().to_string()).unwrap_or_else(|| "starting".into())
                        }
                    );
                    view! {
                        <circle class=class cx=x + 14 + k as i64 * 13 cy=y + H - 14 r="5">
                            <title>{tip}</title>
                        </circle>
                    }
                })
                .collect_view();
            let more = (instances.len() > 14).then(|| {
                view! {
                    <text x=x + W - 30 y=y + H - 10 class="more">
                        {format!("+{}", instances.len() - 14)}
                    </text>
                }
            });
            view! {
                <g class="graph-node" class:aborted=aborted data-node=n.clone()>
                    <rect x=x y=y width=W height=H rx="8" />
                    <text x=x + 12 y=y + 22 class="name">
                        {n.clone()}
                    </text>
                    <text x=x + 12 y=y + 40 class="meta">
                        {format!("{} instance{}", instances.len(), if instances.len() == 1 { "" } else { "s" })}
                    </text>
                    <text x=x + 12 y=y + 56 class="meta status">
                        {status}
                    </text>
                    {dots}
                    {more}
                </g>
            }
        })
        .collect_view();
    let lines = arrows
        .into_iter()
        .filter_map(|((f, t), labels)| {
            let (&(x1, y1), &(x2, y2)) = (at.get(&f)?, at.get(&t)?);
            let (sx, sy, ex, ey) = (x1 + W, y1 + H / 2, x2 - 4, y2 + H / 2);
            let mid = (sx + ex) / 2;
            let label_y = (sy + ey) / 2 - 6 - 14 * (labels.len() as i64 - 1);
            let d = format!("M {sx} {sy} C {mid} {sy}, {mid} {ey}, {ex} {ey}");
            Some(view! {
                <g class="graph-link" data-link=format!("{f}->{t}")>
                    <path d=d marker-end="url(#arrow)" />
                    <text x=mid y=label_y text-anchor="middle">
                        {labels
                            .into_iter()
                            .enumerate()
                            .map(|(k, l)| {
                                view! {
                                    <tspan x=mid dy=if k == 0 { "0" } else { "14" }>
                                        {l}
                                    </tspan>
                                }
                            })
                            .collect_view()}
                    </text>
                </g>
            })
        })
        .collect_view();
    view! {
        <div class="graph-wrap">
            <svg
                id="run-graph"
                class:run-aborted=run_aborted
                width=width
                height=height
                viewBox=format!("0 0 {width} {height}")
                role="img"
                aria-label="Deployment graph"
            >
                <defs>
                    <marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
                        <path d="M 0 0 L 10 5 L 0 10 z" />
                    </marker>
                </defs>
                {lines}
                {boxes}
            </svg>
        </div>
        <p class="legend meta">
            "Dots are instances: " <span class="swatch dot-none"></span>" starting · " <span class="swatch dot-provisioning"></span>
            " provisioned · " <span class="swatch dot-executing"></span>" executed · " <span class="swatch dot-sendingreports"></span>
            " reported · " <span class="swatch dot-ready"></span>" ready · " <span class="swatch dot-aborted"></span>
            " aborted (✗). Hover a dot for its name."
        </p>
    }
}

/// Time spent in each state so far, from the state events (the current state up to `now`).
pub fn time_per_state(events: &[model::run::RunEvent], created: i64, now: i64) -> Vec<(String, i64)> {
    let mut out: Vec<(String, i64)> = Vec::new();
    let mut current = ("Initializing".to_string(), created);
    for e in events.iter().filter(|e| e.kind == "state") {
        out.push((current.0.clone(), (e.at - current.1).max(0)));
        current = (e.message.clone(), e.at);
    }
    if !RunState::parse(&current.0).is_some_and(|s| s.is_terminal()) {
        out.push((current.0.clone(), (now - current.1).max(0)));
    }
    out
}

fn format_ms(ms: i64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        format!("{} min {:02} s", ms / 60_000, (ms % 60_000) / 1000)
    }
}

/// Applies one live message to the page; returns whether the whole run should be reloaded.
pub fn apply(d: &mut RunPageData, e: LiveEvent) -> bool {
    match e {
        LiveEvent::Param { key, value, .. } => {
            if key == "ss:abort" {
                d.detail.summary.abort = value.clone();
            }
            // A key that was waited for is set now; the next reload shows who still waits.
            d.waiting.retain(|(k, _)| *k != key);
            d.detail.params.insert(key, value);
            false
        }
        LiveEvent::Log { line, .. } => {
            d.logs.push(line);
            let extra = d.logs.len().saturating_sub(LOG_TAIL);
            d.logs.drain(..extra);
            false
        }
        LiveEvent::State { state, .. } => {
            d.detail.summary.state = state;
            true
        }
        LiveEvent::Event { event, .. } => {
            let reload = event.kind == "report" || event.kind == "state" || event.kind == "scale";
            if !d.events.iter().any(|x| x.seq == event.seq) {
                d.events.push(event);
            }
            reload
        }
    }
}

#[cfg(test)]
mod tests {
    use model::run::{NodeLink, RunEvent};

    #[test]
    fn graph_puts_a_node_right_of_the_nodes_it_links_from() {
        let n = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let l = |f: &str, t: &str| NodeLink { from: f.to_string(), to: t.to_string(), label: String::new() };
        // (nodes, links, the columns they go in)
        type Case = (Vec<String>, Vec<NodeLink>, Vec<Vec<String>>);
        let table: [Case; 4] = [
            (n(&["a"]), vec![], vec![n(&["a"])]),
            (n(&["apache1", "testclient1"]), vec![l("apache1", "testclient1")], vec![n(&["apache1"]), n(&["testclient1"])]),
            // db → web → client, and db → client directly: client still goes last.
            (
                n(&["client", "db", "web"]),
                vec![l("db", "web"), l("web", "client"), l("db", "client")],
                vec![n(&["db"]), n(&["web"]), n(&["client"])],
            ),
            // A cycle (forbidden by validation) still ends.
            (n(&["x", "y"]), vec![l("x", "y"), l("y", "x")], vec![n(&["x"]), n(&["y"])]),
        ];
        for (nodes, links, want) in table {
            let got = super::graph_columns(&nodes, &links);
            assert_eq!(got, want, "{nodes:?} {links:?}");
        }
    }

    #[test]
    fn time_is_split_by_state_changes() {
        let e = |at, m: &str| RunEvent { seq: at, at, kind: "state".into(), message: m.into() };
        let events = vec![e(100, "Provisioning"), e(400, "Executing"), e(1400, "Done")];
        let t = super::time_per_state(&events, 0, 9999);
        assert_eq!(t, [("Initializing".to_string(), 100), ("Provisioning".into(), 300), ("Executing".into(), 1000)]);
        let running = super::time_per_state(&events[..2], 0, 1000);
        assert_eq!(running.last().unwrap(), &("Executing".to_string(), 600));
    }
}

#[cfg(feature = "hydrate")]
mod live {
    use futures::StreamExt;
    use leptos::prelude::*;
    use model::run::LiveEvent;

    use crate::api::{run_page, RunPageData};

    async fn sleep_ms(ms: u64) {
        let (tx, rx) = futures::channel::oneshot::channel::<()>();
        set_timeout(
            move || {
                let _ = tx.send(());
            },
            std::time::Duration::from_millis(ms),
        );
        let _ = rx.await;
    }

    /// Follows the run over the websocket, reconnecting (with the last event seen) until the
    /// run has ended or the page is gone.
    pub fn follow(id: String, mut since: i64, page: RwSignal<RunPageData>) {
        leptos::task::spawn_local(async move {
            loop {
                let location = window().location();
                let proto = if location.protocol().as_deref() == Ok("https:") { "wss" } else { "ws" };
                let url = format!("{proto}://{}/api/v1/ws?run={id}&since={since}", location.host().unwrap_or_default());
                if let Ok(ws) = gloo_net::websocket::futures::WebSocket::open(&url) {
                    let (_keep_open, mut read) = ws.split();
                    while let Some(Ok(gloo_net::websocket::Message::Text(text))) = read.next().await {
                        let Ok(e) = serde_json::from_str::<LiveEvent>(&text) else { continue };
                        if let LiveEvent::Event { event, .. } = &e {
                            since = since.max(event.seq);
                        }
                        let Some(reload) = page.try_update(|d| super::apply(d, e)) else { return };
                        if reload {
                            if let Ok(fresh) = run_page(id.clone()).await {
                                if page.try_set(fresh).is_some() {
                                    return;
                                }
                            }
                        }
                        if page.try_with_untracked(|d| d.detail.summary.state.is_terminal()) != Some(false) {
                            return;
                        }
                    }
                }
                if page.try_with_untracked(|d| d.detail.summary.state.is_terminal()) != Some(false) {
                    return;
                }
                sleep_ms(1000).await;
            }
        });
    }
}
