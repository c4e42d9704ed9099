//! The project browser: root projects, a project's children, and any module shown read-only
//! with all its fields and its version list (`?version=N` opens an older version).

use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::{use_params_map, use_query_map};
use model::{Module, ModuleKind, ModuleSummary, VersionInfo};

use crate::api::{build_image, compare_versions, image_builds, module_page, search_modules, ModulePageData, NewProject, RestoreVersion};
use crate::{error_text, format_time};
use model::diff::LineChange;

#[component]
pub fn ModulePage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let path = move || params.read().get("path").unwrap_or_default();
    let version = move || query.read().get("version").and_then(|v| v.parse::<u32>().ok());
    let page = Resource::new(move || (path(), version()), |(p, v)| module_page(p, v));
    let compare = move || query.read().get("compare").and_then(|v| v.parse::<u32>().ok());
    view! {
        {move || compare().map(|from| view! { <Compare path=path() from to=version() /> })}
        <Suspense fallback=|| {
            view! { <p>"Loading…"</p> }
        }>
            {move || Suspend::new(async move {
                match page.await {
                    Ok(data) => view! { <ModuleView data /> }.into_any(),
                    Err(e) => {
                        view! {
                            <Breadcrumbs path=path() />
                            <p class="error" id="page-error">
                                {error_text(&e)}
                            </p>
                        }
                            .into_any()
                    }
                }
            })}
        </Suspense>
    }
}

#[component]
fn Breadcrumbs(path: String) -> impl IntoView {
    let mut acc = String::new();
    let crumbs: Vec<(String, String)> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|seg| {
            if !acc.is_empty() {
                acc.push('/');
            }
            acc.push_str(seg);
            (seg.to_string(), format!("/modules/{acc}"))
        })
        .collect();
    view! {
        <nav class="breadcrumbs" aria-label="breadcrumbs">
            <A href="/modules">"Projects"</A>
            {crumbs
                .into_iter()
                .map(|(name, href)| {
                    view! {
                        " / "
                        <A href=href>{name}</A>
                    }
                })
                .collect_view()}
        </nav>
    }
}

#[component]
fn ModuleView(data: ModulePageData) -> impl IntoView {
    let ModulePageData { path, module, children, history, can_write, can_deploy } = data;
    let Some(m) = module else {
        return view! {
            <Breadcrumbs path=String::new() />
            <h1>"Projects"</h1>
            <Search />
            {can_write.then(|| view! { <NewProjectForm parent=String::new() /> })}
            <Children children=children.clone() />
            <section class="panel">
                <h2>"Tree"</h2>
                <ul class="tree" id="project-tree">
                    {children.into_iter().map(|c| view! { <TreeNode summary=c /> }).collect_view()}
                </ul>
            </section>
        }
        .into_any();
    };
    let kind = m.kind;
    let latest = history.first().map(|h| h.version).unwrap_or(0);
    let shown = m.version.unwrap_or(latest);
    view! {
        <Breadcrumbs path=path.clone() />
        <header class="module-head">
            <span class=format!("kind kind-{}", kind.as_str())>{kind.as_str()}</span>
            <h1 id="module-path">{path.clone()}</h1>
            {(!m.description.is_empty()).then(|| view! { <p class="description">{m.description.clone()}</p> })}
            {(shown != latest)
                .then(|| {
                    view! {
                        <p class="notice" id="old-version">
                            "You are looking at version "
                            {shown}
                            " of "
                            {latest}
                            ". "
                            <A href=format!("/modules/{path}")>"Open the latest"</A>
                        </p>
                    }
                })}
        </header>
        <p class="actions-bar">
            {(kind != ModuleKind::Project && can_deploy)
                .then(|| {
                    view! {
                        <A href=launch_href(&path, shown, latest) attr:class="button" attr:id="run-button">
                            "Run"
                        </A>
                    }
                })}
            {(kind == ModuleKind::Deployment && can_deploy)
                .then(|| {
                    view! {
                        <A href=format!("/sweep?module={path}") attr:class="button secondary" attr:id="sweep-button">
                            "Sweep…"
                        </A>
                    }
                })}
            {can_write
                .then(|| {
                    view! {
                        <A href=format!("/edit/{path}") attr:class="button secondary" attr:id="edit-button">
                            "Edit"
                        </A>
                    }
                })}
            {(kind != ModuleKind::Project)
                .then(|| {
                    view! {
                        <A href=format!("/dashboard?module={path}") attr:class="button secondary" attr:id="runs-of-module">
                            "Runs"
                        </A>
                    }
                })}
        </p>
        <Summary m=m.clone() latest />
        {match kind {
            ModuleKind::Project => {
                view! {
                    <h2>"Modules"</h2>
                    {can_write
                        .then(|| {
                            view! {
                                <p class="actions-bar">
                                    <A href=format!("/new?kind=image&parent={path}") attr:class="button secondary" attr:id="new-image">
                                        "New Image"
                                    </A>
                                    <A
                                        href=format!("/new?kind=deployment&parent={path}")
                                        attr:class="button secondary"
                                        attr:id="new-deployment"
                                    >
                                        "New Deployment"
                                    </A>
                                </p>
                                <NewProjectForm parent=path.clone() />
                            }
                        })}
                    <Children children />
                }
                    .into_any()
            }
            ModuleKind::Image => {
                let builds = (!m.native && can_deploy).then(|| view! { <Builds path=path.clone() /> });
                view! {
                    <ImageView m=m.clone() />
                    {builds}
                }
                    .into_any()
            }
            ModuleKind::Deployment => view! { <NodesView m=m.clone() /> }.into_any(),
        }}
        <Versions path history shown can_write />
    }
    .into_any()
}

#[component]
fn Summary(m: Module, latest: u32) -> impl IntoView {
    let public = m.public.unwrap_or_default();
    let rights = [("read", public.read), ("write", public.write), ("deploy", public.deploy)]
        .iter()
        .filter(|(_, on)| *on)
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(", ");
    view! {
        <section class="panel">
            <h2>"Summary"</h2>
            <dl class="fields" id="summary">
                <dt>"Version"</dt>
                <dd id="module-version">{m.version.unwrap_or(0)} " (latest " {latest} ")"</dd>
                <dt>"Owner"</dt>
                <dd>{m.owner.clone().unwrap_or_default()}</dd>
                <dt>"Saved by"</dt>
                <dd>{m.author.clone().unwrap_or_default()} " · " {m.created_at.map(format_time).unwrap_or_default()}</dd>
                <dt>"Comment"</dt>
                <dd>{m.comment.clone().unwrap_or_default()}</dd>
                <dt>"Public rights"</dt>
                <dd>{if rights.is_empty() { "private".to_string() } else { rights }}</dd>
                <dt>"Published"</dt>
                <dd>{if m.published.unwrap_or(false) { "yes, in the catalog" } else { "no" }}</dd>
            </dl>
        </section>
    }
}

/// Search by name or description over every module the user may read (`?q=`).
#[component]
fn Search() -> impl IntoView {
    let query = use_query_map();
    let q = move || query.read().get("q").unwrap_or_default();
    let found = Resource::new(q, |q| async move {
        if q.trim().is_empty() {
            Ok(vec![])
        } else {
            search_modules(q).await
        }
    });
    view! {
        <form method="get" action="/modules" class="search">
            <input type="search" name="q" id="module-search" placeholder="Search modules by name" value=q />
            <button type="submit">"Search"</button>
        </form>
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                match found.await {
                    Ok(list) if list.is_empty() => ().into_any(),
                    Ok(list) => {
                        view! {
                            <h2>"Found"</h2>
                            <div id="search-results">
                                <Children children=list />
                            </div>
                        }
                            .into_any()
                    }
                    Err(e) => view! { <p class="error">{error_text(&e)}</p> }.into_any(),
                }
            })}
        </Suspense>
    }
}

/// "New Project": a name and a description; the server checks the right to create here.
#[component]
fn NewProjectForm(parent: String) -> impl IntoView {
    let create = ServerAction::<NewProject>::new();
    view! {
        <details class="new-module">
            <summary id="new-project">"New Project"</summary>
            <ActionForm action=create attr:class="search" attr:id="new-project-form">
                <input type="hidden" name="parent" value=parent />
                <input type="text" name="name" id="new-project-name" placeholder="name" required />
                <input type="text" name="description" id="new-project-description" placeholder="description" />
                <button type="submit" id="new-project-create">
                    "Create"
                </button>
            </ActionForm>
            {move || {
                create
                    .value()
                    .get()
                    .and_then(|r| r.err())
                    .map(|e| {
                        view! {
                            <p class="error" id="form-error">
                                {error_text(&e)}
                            </p>
                        }
                    })
            }}
        </details>
    }
}

/// One entry of the project tree; a project opens in place, its children read when first
/// opened (only what the user may read is listed).
#[component]
fn TreeNode(summary: ModuleSummary) -> AnyView {
    let open = RwSignal::new(false);
    let path = summary.path.clone();
    let children = Resource::new(
        move || open.get(),
        move |o| {
            let path = path.clone();
            async move {
                if o {
                    module_page(path, None).await.map(|d| d.children)
                } else {
                    Ok(vec![])
                }
            }
        },
    );
    let name = summary.path.rsplit('/').next().unwrap_or(&summary.path).to_string();
    let project = summary.kind == ModuleKind::Project;
    let kind = summary.kind.as_str();
    let (row_path, href) = (summary.path.clone(), format!("/modules/{}", summary.path));
    let label = name.clone();
    view! {
        <li data-path=row_path>
            {if project {
                view! {
                    <button
                        type="button"
                        class="toggle"
                        aria-expanded=move || open.get().to_string()
                        aria-label=move || format!("{} {name}", if open.get() { "Close" } else { "Open" })
                        on:click=move |_| open.update(|o| *o = !*o)
                    >
                        {move || if open.get() { "▾" } else { "▸" }}
                    </button>
                }
                    .into_any()
            } else {
                view! { <span class="toggle-space"></span> }.into_any()
            }} <span class=format!("kind kind-{kind}")>{kind}</span> " " <A href=href>{label}</A> <Show when=move || open.get()>
                <Transition fallback=|| {
                    view! {
                        <ul>
                            <li class="meta">"Loading…"</li>
                        </ul>
                    }
                }>
                    {move || Suspend::new(async move {
                        match children.await {
                            Ok(list) if list.is_empty() => {
                                view! {
                                    <ul>
                                        <li class="empty">"empty"</li>
                                    </ul>
                                }
                                    .into_any()
                            }
                            Ok(list) => {
                                view! { <ul>{list.into_iter().map(|c| view! { <TreeNode summary=c /> }).collect_view()}</ul> }.into_any()
                            }
                            Err(e) => {
                                view! {
                                    <ul>
                                        <li class="error">{error_text(&e)}</li>
                                    </ul>
                                }
                                    .into_any()
                            }
                        }
                    })}
                </Transition>
            </Show>
        </li>
    }
    .into_any()
}

#[component]
fn Children(children: Vec<ModuleSummary>) -> impl IntoView {
    if children.is_empty() {
        return view! {
            <p class="empty" id="children-empty">
                "Nothing here yet, or nothing you may read."
            </p>
        }
        .into_any();
    }
    view! {
        <table class="list" id="children">
            <thead>
                <tr>
                    <th>"Name"</th>
                    <th>"Kind"</th>
                    <th>"Description"</th>
                    <th>"Version"</th>
                    <th>"Owner"</th>
                </tr>
            </thead>
            <tbody>
                {children
                    .into_iter()
                    .map(|c| {
                        let name = c.path.rsplit('/').next().unwrap_or(&c.path).to_string();
                        view! {
                            <tr data-path=c.path.clone()>
                                <td>
                                    <A href=format!("/modules/{}", c.path)>{name}</A>
                                </td>
                                <td>
                                    <span class=format!("kind kind-{}", c.kind.as_str())>{c.kind.as_str()}</span>
                                </td>
                                <td>{c.description.clone()}</td>
                                <td>{c.version}</td>
                                <td>{c.owner.clone()}</td>
                            </tr>
                        }
                    })
                    .collect_view()}
            </tbody>
        </table>
    }
    .into_any()
}

fn reference_link(r: String) -> impl IntoView {
    let href = match r.split_once('@') {
        Some((p, v)) => format!("/modules/{p}?version={v}"),
        None => format!("/modules/{r}"),
    };
    view! { <A href=href>{r}</A> }
}

#[component]
fn ImageView(m: Module) -> impl IntoView {
    let params = m.parameters.clone();
    view! {
        <section class="panel">
            <h2>"Reference"</h2>
            {if m.native {
                view! {
                    <p>"Native image: an existing image on each connector."</p>
                    <table class="list" id="native-images">
                        <thead>
                            <tr>
                                <th>"Connector"</th>
                                <th>"Image id"</th>
                            </tr>
                        </thead>
                        <tbody>
                            {m
                                .images
                                .iter()
                                .map(|(c, id)| {
                                    view! {
                                        <tr>
                                            <td>{c.clone()}</td>
                                            <td>
                                                <code>{id.clone()}</code>
                                            </td>
                                        </tr>
                                    }
                                })
                                .collect_view()}
                        </tbody>
                    </table>
                }
                    .into_any()
            } else {
                view! { <p id="reference">"Derived from " {m.reference.clone().map(reference_link)}</p> }.into_any()
            }}
        </section>
        <section class="panel">
            <h2>"Parameters"</h2>
            <p class="hint">
                "Every image also has the outputs " <code>"hostname"</code> " and " <code>"instanceid"</code> ", set by the platform."
            </p>
            {if params.is_empty() {
                view! { <p class="empty">"No parameters of its own."</p> }.into_any()
            } else {
                view! {
                    <table class="list" id="parameters">
                        <thead>
                            <tr>
                                <th>"Name"</th>
                                <th>"Category"</th>
                                <th>"Type"</th>
                                <th>"Default"</th>
                                <th>"Description"</th>
                            </tr>
                        </thead>
                        <tbody>
                            {params
                                .into_iter()
                                .map(|p| {
                                    view! {
                                        <tr>
                                            <td>
                                                <code>{p.name.clone()}</code>
                                            </td>
                                            <td>{format!("{:?}", p.category).to_lowercase()}</td>
                                            <td>
                                                {format!("{:?}", p.kind).to_lowercase()}
                                                {(!p.values.is_empty()).then(|| format!(" ({})", p.values.join(", ")))}
                                            </td>
                                            <td>{p.default.clone().unwrap_or_default()}</td>
                                            <td>{p.description.clone()}</td>
                                        </tr>
                                    }
                                })
                                .collect_view()}
                        </tbody>
                    </table>
                }
                    .into_any()
            }}
        </section>
        {(!m.packages.is_empty() || !m.prerecipe.is_empty() || !m.recipe.is_empty())
            .then(|| {
                view! {
                    <section class="panel">
                        <h2>"Image creation"</h2>
                        {(!m.packages.is_empty()).then(|| view! { <p>"Packages: " <code>{m.packages.join(" ")}</code></p> })}
                        <Script name="prerecipe" script=m.prerecipe.clone() />
                        <Script name="recipe" script=m.recipe.clone() />
                    </section>
                }
            })}
        <section class="panel">
            <h2>"Deployment targets"</h2>
            {if m.targets.is_empty() {
                view! { <p class="empty">"No targets of its own; the parent's run."</p> }.into_any()
            } else {
                m.targets.iter().map(|(n, s)| view! { <Script name=n script=s.to_string() /> }).collect_view().into_any()
            }}
        </section>
    }
}

#[component]
fn Script(name: &'static str, script: String) -> impl IntoView {
    (!script.is_empty()).then(|| {
        view! {
            <h3>{name}</h3>
            <pre class="script" id=format!("target-{name}")>
                <code>{script}</code>
            </pre>
        }
    })
}

#[component]
fn NodesView(m: Module) -> impl IntoView {
    view! {
        <section class="panel">
            <h2>"Nodes"</h2>
            <table class="list" id="nodes">
                <thead>
                    <tr>
                        <th>"Node"</th>
                        <th>"Image"</th>
                        <th>"Multiplicity"</th>
                        <th>"Connector"</th>
                        <th>"Inputs"</th>
                    </tr>
                </thead>
                <tbody>
                    {m
                        .nodes
                        .into_iter()
                        .map(|(name, node)| {
                            view! {
                                <tr data-node=name.clone()>
                                    <td>
                                        <strong>{name.clone()}</strong>
                                    </td>
                                    <td>{reference_link(node.image.clone())}</td>
                                    <td>{node.multiplicity}</td>
                                    <td>{node.connector.clone().unwrap_or_else(|| "default".into())}</td>
                                    <td>
                                        <ul class="bindings">
                                            {node
                                                .values
                                                .iter()
                                                .map(|(k, v)| {
                                                    view! {
                                                        <li>
                                                            <code>{k.clone()}</code>
                                                            " = "
                                                            <code>{v.clone()}</code>
                                                        </li>
                                                    }
                                                })
                                                .collect_view()}
                                            {node
                                                .links
                                                .iter()
                                                .map(|(k, v)| {
                                                    view! {
                                                        <li>
                                                            <code>{k.clone()}</code>
                                                            " linked to "
                                                            <code>{v.clone()}</code>
                                                        </li>
                                                    }
                                                })
                                                .collect_view()}
                                        </ul>
                                    </td>
                                </tr>
                            }
                        })
                        .collect_view()}
                </tbody>
            </table>
        </section>
    }
}

#[component]
fn Versions(path: String, history: Vec<VersionInfo>, shown: u32, can_write: bool) -> impl IntoView {
    let restore = ServerAction::<RestoreVersion>::new();
    let latest = history.first().map(|h| h.version).unwrap_or(0);
    view! {
        <section class="panel" id="versions-panel">
            <h2 id="versions-title">"Versions"</h2>
            {move || {
                restore
                    .value()
                    .get()
                    .and_then(|r| r.err())
                    .map(|e| {
                        view! {
                            <p class="error" id="restore-error">
                                {error_text(&e)}
                            </p>
                        }
                    })
            }}
            <table class="list" id="versions">
                <thead>
                    <tr>
                        <th>"Version"</th>
                        <th>"Author"</th>
                        <th>"Saved"</th>
                        <th>"Comment"</th>
                        <th></th>
                    </tr>
                </thead>
                <tbody>
                    {history
                        .into_iter()
                        .map(|h| {
                            let compare = (h.version != shown).then(|| format!("/modules/{path}?version={shown}&compare={}", h.version));
                            let restorable = can_write && h.version != latest;
                            let path = path.clone();
                            view! {
                                <tr class:current=h.version == shown data-version=h.version>
                                    <td>
                                        <A href=format!("/modules/{path}?version={}", h.version)>{h.version}</A>
                                    </td>
                                    <td>{h.author.clone()}</td>
                                    <td>{format_time(h.created_at)}</td>
                                    <td>{h.comment.clone()}</td>
                                    <td class="actions">
                                        {compare
                                            .map(|href| {
                                                view! {
                                                    <A href=href attr:class="compare">
                                                        "Compare with "
                                                        {shown}
                                                    </A>
                                                }
                                            })}
                                        {restorable
                                            .then(|| {
                                                view! {
                                                    <ActionForm action=restore attr:class="inline">
                                                        <input type="hidden" name="path" value=path.clone() />
                                                        <input type="hidden" name="version" value=h.version />
                                                        <button type="submit" class="restore">
                                                            "Restore"
                                                        </button>
                                                    </ActionForm>
                                                }
                                            })}
                                    </td>
                                </tr>
                            }
                        })
                        .collect_view()}
                </tbody>
            </table>
        </section>
    }
}

/// Side by side: what changed from version `from` to the shown version.
#[component]
fn Compare(path: String, from: u32, to: Option<u32>) -> impl IntoView {
    let changes = Resource::new(
        move || (path.clone(), from, to),
        |(path, from, to)| async move {
            let to = match to {
                Some(v) => v,
                None => match module_page(path.clone(), None).await {
                    Ok(p) => p.module.and_then(|m| m.version).unwrap_or(1),
                    Err(e) => return Err(e),
                },
            };
            compare_versions(path, from, to).await.map(|c| (to, c))
        },
    );
    view! {
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                match changes.await {
                    Err(e) => view! { <p class="error">{error_text(&e)}</p> }.into_any(),
                    Ok((to, list)) => {
                        view! {
                            <section class="panel" id="compare">
                                <h2>"Changes from version " {from} " to " {to}</h2>
                                {if list.is_empty() { Some(view! { <p class="empty">"No field differs."</p> }) } else { None }}
                                <table class="list compare">
                                    <thead>
                                        <tr>
                                            <th>"Field"</th>
                                            <th>"Version " {from}</th>
                                            <th>"Version " {to}</th>
                                        </tr>
                                    </thead>
                                    <tbody>
                                        {list
                                            .into_iter()
                                            .map(|c| {
                                                if c.lines.is_empty() {
                                                    view! {
                                                        <tr data-field=c.field.clone()>
                                                            <td>
                                                                <code>{c.field.clone()}</code>
                                                            </td>
                                                            <td class="before">{c.before.clone().unwrap_or_else(|| "(none)".into())}</td>
                                                            <td class="after">{c.after.clone().unwrap_or_else(|| "(none)".into())}</td>
                                                        </tr>
                                                    }
                                                        .into_any()
                                                } else {
                                                    view! {
                                                        <tr data-field=c.field.clone()>
                                                            <td>
                                                                <code>{c.field.clone()}</code>
                                                            </td>
                                                            <td colspan="2">
                                                                <pre class="script diff">
                                                                    {c
                                                                        .lines
                                                                        .iter()
                                                                        .map(|l| {
                                                                            let (class, mark) = match l.change {
                                                                                LineChange::Same => ("same", "  "),
                                                                                LineChange::Removed => ("removed", "- "),
                                                                                LineChange::Added => ("added", "+ "),
                                                                            };
                                                                            view! { <span class=class>{mark}{l.text.clone()}"\n"</span> }
                                                                        })
                                                                        .collect_view()}
                                                                </pre>
                                                            </td>
                                                        </tr>
                                                    }
                                                        .into_any()
                                                }
                                            })
                                            .collect_view()}
                                    </tbody>
                                </table>
                            </section>
                        }
                            .into_any()
                    }
                }
            })}
        </Suspense>
    }
}

/// The images built from an image, and a Build button: a build run on a connector that can
/// build, followed on its run page. Where none can, the page says why.
#[component]
fn Builds(path: String) -> impl IntoView {
    let p = path.clone();
    let data = Resource::new(move || p.clone(), image_builds);
    let chosen = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let navigate = leptos_router::hooks::use_navigate();
    let start = move |_| {
        let (path, connector, navigate) = (path.clone(), chosen.get_untracked(), navigate.clone());
        leptos::task::spawn_local(async move {
            match build_image(path, connector).await {
                Ok(run) => navigate(&format!("/runs/{run}"), Default::default()),
                Err(e) => error.set(Some(error_text(&e))),
            }
        });
    };
    view! {
        <section class="panel" id="builds">
            <h2>"Built images"</h2>
            <Suspense fallback=|| {
                view! { <p>"Loading…"</p> }
            }>
                {move || {
                    let start = start.clone();
                    Suspend::new(async move {
                        match data.await {
                            Err(e) => view! { <p class="error">{error_text(&e)}</p> }.into_any(),
                            Ok(b) => {
                                if chosen.get_untracked().is_empty() {
                                    chosen.set(b.connectors.first().cloned().unwrap_or_default());
                                }
                                let list = if b.builds.is_empty() {
                                    view! {
                                        <p class="meta" id="no-builds">
                                            "Not built yet: its recipes run on every instance at deploy time."
                                        </p>
                                    }
                                        .into_any()
                                } else {
                                    view! {
                                        <table class="list" id="build-list">
                                            <thead>
                                                <tr>
                                                    <th>"Connector"</th>
                                                    <th>"Image"</th>
                                                    <th>"Version"</th>
                                                    <th>"Built"</th>
                                                    <th>"Used by the latest version"</th>
                                                </tr>
                                            </thead>
                                            <tbody>
                                                {b
                                                    .builds
                                                    .iter()
                                                    .map(|i| {
                                                        view! {
                                                            <tr data-connector=i.connector.clone()>
                                                                <td>{i.connector.clone()}</td>
                                                                <td>
                                                                    <code>{i.image.clone()}</code>
                                                                </td>
                                                                <td>{i.version}</td>
                                                                <td>{format_time(i.built_at)}</td>
                                                                <td>
                                                                    {if i.current { "✓ yes" } else { "✗ no: built from older recipes" }}
                                                                </td>
                                                            </tr>
                                                        }
                                                    })
                                                    .collect_view()}
                                            </tbody>
                                        </table>
                                    }
                                        .into_any()
                                };
                                let form = match &b.unavailable {
                                    Some(why) => {
                                        view! {
                                            <p class="actions-bar">
                                                <button id="build-button" disabled=true>
                                                    "Build"
                                                </button>
                                                <span class="meta" id="build-unavailable">
                                                    {why.clone()}
                                                </span>
                                            </p>
                                        }
                                            .into_any()
                                    }
                                    None => {
                                        view! {
                                            <p class="actions-bar">
                                                <select id="build-connector" bind:value=chosen aria-label="Connector to build on">
                                                    {b
                                                        .connectors
                                                        .iter()
                                                        .map(|c| view! { <option value=c.clone()>{c.clone()}</option> })
                                                        .collect_view()}
                                                </select>
                                                <button id="build-button" on:click=start>
                                                    "Build"
                                                </button>
                                            </p>
                                        }
                                            .into_any()
                                    }
                                };
                                view! {
                                    {list}
                                    {form}
                                }
                                    .into_any()
                            }
                        }
                    })
                }}
            </Suspense>
            {move || {
                error
                    .get()
                    .map(|e| {
                        view! {
                            <p class="error" id="build-error">
                                {e}
                            </p>
                        }
                    })
            }}
        </section>
    }
}

/// The Run button's target: the version shown, when it is not the latest.
fn launch_href(path: &str, shown: u32, latest: u32) -> String {
    if shown == latest {
        format!("/launch?module={path}")
    } else {
        format!("/launch?module={path}&version={shown}")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_run_button_launches_the_version_shown() {
        assert_eq!(super::launch_href("p/web", 3, 3), "/launch?module=p/web");
        assert_eq!(super::launch_href("p/web", 1, 3), "/launch?module=p/web&version=1");
    }
}
