//! The launch form: the Run button of an image or a deployment opens it. It offers the
//! per-run overrides — keep-running, tags, timeout, multiplicity and connector per node, and
//! the nodes' inputs (linked inputs are shown, not editable) — and launches the run of exactly
//! the version it shows (`?version=N` for an older one; the latest otherwise).

use leptos::prelude::*;
use leptos_router::hooks::{use_navigate, use_query_map};
use model::run::{KeepRunning, RunRequest};
use model::ParamType;

use model::run::LaunchSpec;

use crate::api::{launch, launch_form};
use crate::error_text;

#[component]
pub fn Launch() -> impl IntoView {
    let query = use_query_map();
    let module = move || query.read().get("module").unwrap_or_default();
    let version = move || query.read().get("version").and_then(|v| v.parse::<u32>().ok());
    let form = Resource::new(move || (module(), version()), |(m, v)| launch_form(m, v));
    view! {
        <Suspense fallback=|| {
            view! { <p>"Loading…"</p> }
        }>
            {move || Suspend::new(async move {
                match form.await {
                    Ok(f) => view! { <LaunchView form=f /> }.into_any(),
                    Err(e) => crate::page_error(&e),
                }
            })}
        </Suspense>
    }
}

/// One editable field: (node, input, initial value, signal).
type Field = (String, String, String, RwSignal<String>);

/// A node's multiplicity and connector as declared and as chosen in the form.
#[derive(Clone)]
struct NodeChoice {
    name: String,
    declared: i64,
    multiplicity: RwSignal<String>,
    connector: String,
    chosen: RwSignal<String>,
}

#[component]
fn LaunchView(form: LaunchSpec) -> impl IntoView {
    let keep = RwSignal::new(form.keep_running.clone());
    let tags = RwSignal::new(String::new());
    let timeout = RwSignal::new(String::new());
    let scalable = RwSignal::new(false);
    let nodes: Vec<NodeChoice> = form
        .nodes
        .iter()
        .map(|n| NodeChoice {
            name: n.name.clone(),
            declared: n.multiplicity,
            multiplicity: RwSignal::new(n.multiplicity.to_string()),
            connector: n.connector.clone(),
            chosen: RwSignal::new(n.connector.clone()),
        })
        .collect();
    let fields: Vec<Field> = form
        .nodes
        .iter()
        .flat_map(|n| {
            n.inputs
                .iter()
                .filter(|i| i.linked.is_none())
                .map(move |i| (n.name.clone(), i.name.clone(), i.value.clone(), RwSignal::new(i.value.clone())))
        })
        .collect();
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let navigate = use_navigate();
    let (module, version) = (form.module.clone(), form.version);
    let (nodes_for_submit, fields_for_submit) = (nodes.clone(), fields.clone());
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let mut req = RunRequest {
            module: module.clone(),
            version: Some(version),
            keep_running: KeepRunning::parse(&keep.get_untracked()),
            scalable: scalable.get_untracked(),
            ..Default::default()
        };
        req.tags = tags.get_untracked().split(',').map(|t| t.trim().to_string()).filter(|t| !t.is_empty()).collect();
        let t = timeout.get_untracked();
        if !t.trim().is_empty() {
            match t.trim().parse::<i64>() {
                Ok(minutes) => req.timeout = Some(minutes * 60),
                Err(_) => {
                    error.set(Some(format!("timeout: `{t}` is not a number of minutes")));
                    return;
                }
            }
        }
        for NodeChoice { name, declared, multiplicity, connector, chosen } in &nodes_for_submit {
            let m = multiplicity.get_untracked();
            match m.trim().parse::<i64>() {
                Ok(v) if v != *declared => {
                    req.multiplicity.insert(name.clone(), v);
                }
                Ok(_) => {}
                Err(_) => {
                    error.set(Some(format!("multiplicity of {name}: `{m}` is not a number")));
                    return;
                }
            }
            if chosen.get_untracked() != *connector {
                req.connectors.insert(name.clone(), chosen.get_untracked());
            }
        }
        for (node, input, initial, value) in &fields_for_submit {
            if value.get_untracked() != *initial {
                req.params.insert(format!("{node}:{input}"), value.get_untracked());
            }
        }
        let body = serde_json::to_string(&req).expect("a request serialises");
        let navigate = navigate.clone();
        busy.set(true);
        leptos::task::spawn_local(async move {
            match launch(body).await {
                Ok(id) => navigate(&format!("/runs/{id}"), Default::default()),
                Err(e) => {
                    error.set(Some(error_text(&e)));
                    busy.set(false);
                }
            }
        });
    };
    let connectors = form.connectors.clone();
    view! {
        <h1>
            "Run " {form.module.clone()} <span class="meta" id="launch-version">
                " (version "
                {form.version}
                ")"
            </span>
        </h1>
        {(form.version != form.latest_version)
            .then(|| {
                view! {
                    <p class="notice" id="launch-old-version">
                        "This runs version "
                        {form.version}
                        ", not the latest ("
                        {form.latest_version}
                        ")."
                    </p>
                }
            })}
        <form on:submit=submit id="launch-form" class="launch">
            <section class="panel">
                <h2>"Run settings"</h2>
                <label>
                    "Keep instances running" <select id="keep-running" bind:value=keep>
                        {["never", "on-success", "on-error", "always"].map(|k| view! { <option value=k>{k}</option> })}
                    </select>
                </label>
                <label>"Tags (comma-separated)" <input type="text" id="tags" bind:value=tags /></label>
                <label>"Timeout per state, minutes (empty: your profile's)" <input type="text" id="timeout" bind:value=timeout /></label>
                <label class="checkbox-label">
                    <input type="checkbox" id="scalable" bind:checked=scalable />
                    " Scalable: stays up in Ready; instances can be added or removed from the run page"
                </label>
            </section>
            {form
                .nodes
                .iter()
                .zip(nodes)
                .map(|(n, NodeChoice { multiplicity: mult, chosen, .. })| {
                    let node = n.name.clone();
                    let connectors = connectors.clone();
                    view! {
                        <section class="panel" data-node=node.clone()>
                            <h2>"Node " {node.clone()}</h2>
                            {n
                                .has_recipes
                                .then(|| {
                                    let (built_on, image) = (n.built_on.clone(), n.image.clone());
                                    move || {
                                        let on = chosen.get();
                                        if built_on.contains(&on) {
                                            view! {
                                                <p class="meta build-note" data-built="yes">
                                                    "Starts from the image built on "
                                                    {on}
                                                    ": its recipes are skipped."
                                                </p>
                                            }
                                                .into_any()
                                        } else {
                                            view! {
                                                <p class="meta build-note" data-built="no">
                                                    "Its recipes run on every instance at deploy time (not built on "
                                                    {on}
                                                    "). "
                                                    <a href=format!("/modules/{image}")>"Build it"</a>
                                                    " to skip them."
                                                </p>
                                            }
                                                .into_any()
                                        }
                                    }
                                })}
                            <label>
                                "Multiplicity" <input type="number" min="0" max="1000" id=format!("multiplicity-{node}") bind:value=mult />
                            </label>
                            <label>
                                "Connector" <select id=format!("connector-{node}") bind:value=chosen>
                                    {connectors.into_iter().map(|c| view! { <option value=c.clone()>{c.clone()}</option> }).collect_view()}
                                </select>
                            </label>
                            {n
                                .inputs
                                .iter()
                                .map(|i| {
                                    let field = fields
                                        .iter()
                                        .find(|(fnode, fname, _, _)| *fnode == n.name && *fname == i.name)
                                        .map(|f| f.3);
                                    let id = format!("input-{}-{}", n.name, i.name.replace('.', "-"));
                                    match (field, &i.linked) {
                                        (_, Some(link)) => {
                                            view! {
                                                <p class="linked">
                                                    <code>{i.name.clone()}</code>
                                                    " is linked to "
                                                    <code>{link.clone()}</code>
                                                </p>
                                            }
                                                .into_any()
                                        }
                                        (Some(value), None) => {
                                            let label = if i.description.is_empty() {
                                                i.name.clone()
                                            } else {
                                                format!("{} — {}", i.name, i.description)
                                            };
                                            let input = match i.kind {
                                                ParamType::Enum => {
                                                    view! {
                                                        <select id=id bind:value=value>
                                                            {i
                                                                .values
                                                                .iter()
                                                                .map(|v| view! { <option value=v.clone()>{v.clone()}</option> })
                                                                .collect_view()}
                                                        </select>
                                                    }
                                                        .into_any()
                                                }
                                                ParamType::Boolean => {
                                                    view! {
                                                        <input
                                                            type="checkbox"
                                                            id=id
                                                            class="checkbox"
                                                            prop:checked=move || value.get() == "true"
                                                            on:change=move |ev| value.set(event_target_checked(&ev).to_string())
                                                        />
                                                    }
                                                        .into_any()
                                                }
                                                ParamType::Secret => view! { <input type="password" id=id bind:value=value /> }.into_any(),
                                                _ => view! { <input type="text" id=id bind:value=value /> }.into_any(),
                                            };
                                            view! { <label>{label} {input}</label> }.into_any()
                                        }
                                        (None, None) => ().into_any(),
                                    }
                                })
                                .collect_view()}
                        </section>
                    }
                })
                .collect_view()}
            {move || {
                error
                    .get()
                    .map(|e| {
                        view! {
                            <p class="error" id="form-error">
                                {e}
                            </p>
                        }
                    })
            }}
            <button type="submit" id="launch" disabled=move || busy.get()>
                "Run"
            </button>
        </form>
    }
}
