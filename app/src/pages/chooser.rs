//! The chooser window: a modal that walks the project tree, filters by module kind, shows the
//! highlighted module's description and versions, and returns `path` (latest) or `path@N`.
//! Keyboard: ↑/↓ move, Enter opens a project or picks a module, Backspace goes up, Esc closes.

use leptos::prelude::*;
use model::{ModuleKind, ModuleSummary};

use crate::api::module_page;
use crate::error_text;

/// One row of the listing: the parent project (`..`) or a child.
#[derive(Clone, Debug, PartialEq)]
enum Row {
    Up(String),
    Module(ModuleSummary),
}

#[component]
pub fn Chooser(
    /// The only kind that may be picked (`None`: images and deployments).
    allowed: Option<ModuleKind>,
    /// The project to open first.
    start: String,
    on_select: Callback<String>,
    on_close: Callback<()>,
) -> impl IntoView {
    let cwd = RwSignal::new(start.trim_matches('/').to_string());
    let filter = RwSignal::new(allowed.map(|k| k.as_str().to_string()).unwrap_or_default());
    let active = RwSignal::new(0usize);
    let picked = RwSignal::new(None::<ModuleSummary>);
    let version = RwSignal::new(String::from("latest"));
    let listing = Resource::new(move || cwd.get(), |p| module_page(p, None));
    let details = Resource::new(
        move || picked.get().map(|m| m.path),
        |p| async move {
            match p {
                Some(p) => module_page(p, None).await.map(Some),
                None => Ok(None),
            }
        },
    );
    let rows = Memo::new(move |_| {
        let mut rows = Vec::new();
        let here = cwd.get();
        if !here.is_empty() {
            rows.push(Row::Up(here.rsplit_once('/').map(|(p, _)| p.to_string()).unwrap_or_default()));
        }
        if let Some(Ok(page)) = listing.get() {
            let f = filter.get();
            rows.extend(
                page.children
                    .into_iter()
                    .filter(|c| c.kind == ModuleKind::Project || f.is_empty() || c.kind.as_str() == f)
                    .map(Row::Module),
            );
        }
        rows
    });
    let pickable = move |m: &ModuleSummary| m.kind != ModuleKind::Project && allowed.is_none_or(|k| k == m.kind);
    let open = move |row: Row| match row {
        Row::Up(p) => {
            cwd.set(p);
            active.set(0);
            picked.set(None);
        }
        Row::Module(m) if m.kind == ModuleKind::Project => {
            cwd.set(m.path);
            active.set(0);
            picked.set(None);
        }
        Row::Module(m) => {
            version.set("latest".into());
            picked.set(Some(m));
        }
    };
    let choose = move || {
        if let Some(m) = picked.get_untracked().filter(|m| pickable(m)) {
            let v = version.get_untracked();
            on_select.run(if v == "latest" { m.path } else { format!("{}@{v}", m.path) });
        }
    };
    let keydown = move |ev: leptos::ev::KeyboardEvent| {
        let n = rows.with_untracked(Vec::len);
        match ev.key().as_str() {
            "ArrowDown" => {
                ev.prevent_default();
                active.update(|a| *a = (*a + 1).min(n.saturating_sub(1)));
            }
            "ArrowUp" => {
                ev.prevent_default();
                active.update(|a| *a = a.saturating_sub(1));
            }
            "Enter" => {
                ev.prevent_default();
                let row = rows.with_untracked(|r| r.get(active.get_untracked()).cloned());
                match row {
                    // Enter on the module already shown picks it.
                    Some(Row::Module(m)) if picked.get_untracked().is_some_and(|p| p.path == m.path) => choose(),
                    Some(row) => open(row),
                    None => {}
                }
            }
            "Backspace" => {
                let up = rows.with_untracked(|r| r.iter().find_map(|r| if let Row::Up(p) = r { Some(p.clone()) } else { None }));
                if let Some(p) = up {
                    ev.prevent_default();
                    open(Row::Up(p));
                }
            }
            "Escape" => on_close.run(()),
            _ => {}
        }
    };
    let list_ref = NodeRef::<leptos::html::Ul>::new();
    // Focus the list when the window opens, so the keyboard works at once.
    Effect::new(move |_| {
        if let Some(el) = list_ref.get() {
            let _ = el.focus();
        }
    });
    view! {
        <div class="modal-backdrop" on:click=move |_| on_close.run(())></div>
        <div class="modal chooser" id="chooser" role="dialog" aria-modal="true" aria-label="Chooser" on:keydown=keydown>
            <header>
                <h2>"Choose " {allowed.map(|k| format!("an {}", k.as_str())).unwrap_or_else(|| "a module".into())}</h2>
                <label class="inline-check">
                    "Kind "
                    <select
                        id="chooser-kind"
                        prop:value=move || filter.get()
                        on:change=move |ev| {
                            filter.set(event_target_value(&ev));
                            active.set(0);
                        }
                    >
                        <option value="">"All"</option>
                        <option value="image">"Images"</option>
                        <option value="deployment">"Deployments"</option>
                    </select>
                </label>
            </header>
            <p class="breadcrumbs" id="chooser-where">
                "Projects"
                {move || {
                    let c = cwd.get();
                    if c.is_empty() { String::new() } else { format!(" / {}", c.replace('/', " / ")) }
                }}
            </p>
            <div class="chooser-body">
                <ul class="chooser-list" id="chooser-list" tabindex="0" node_ref=list_ref role="listbox">
                    {move || {
                        rows.get()
                            .into_iter()
                            .enumerate()
                            .map(|(i, row)| {
                                let (label, kind, path, ok) = match &row {
                                    Row::Up(_) => ("..".to_string(), "project".to_string(), String::new(), true),
                                    Row::Module(m) => {
                                        (
                                            m.path.rsplit('/').next().unwrap_or(&m.path).to_string(),
                                            m.kind.as_str().to_string(),
                                            m.path.clone(),
                                            m.kind == ModuleKind::Project || pickable(m),
                                        )
                                    }
                                };
                                let shown = path.clone();
                                let up = path.is_empty();
                                view! {
                                    <li
                                        role="option"
                                        data-path=path
                                        class:up=up
                                        class:active=move || active.get() == i
                                        class:picked=move || {
                                            picked.with(|p| p.as_ref().is_some_and(|p| p.path == shown && !shown.is_empty()))
                                        }
                                        class:disabled=!ok
                                        on:click=move |_| {
                                            active.set(i);
                                            open(row.clone());
                                        }
                                    >
                                        <span class=format!("kind kind-{kind}")>{kind.clone()}</span>
                                        " "
                                        {label}
                                    </li>
                                }
                            })
                            .collect_view()
                    }}
                </ul>
                <div class="chooser-details" id="chooser-details">
                    <Transition fallback=|| ()>
                        {move || Suspend::new(async move {
                            match details.await {
                                Ok(Some(page)) => {
                                    let m = page.module.clone().unwrap_or_default();
                                    let ok = picked.get_untracked().is_some_and(|p| pickable(&p));
                                    view! {
                                        <h3>{page.path.clone()}</h3>
                                        <p class="description">{m.description.clone()}</p>
                                        {(!ok).then(|| view! { <p class="notice">"This kind cannot be chosen here."</p> })}
                                        <label>
                                            "Version "
                                            <select
                                                id="chooser-version"
                                                prop:value=move || version.get()
                                                on:change=move |ev| version.set(event_target_value(&ev))
                                            >
                                                <option value="latest">"latest (follows new versions)"</option>
                                                {page
                                                    .history
                                                    .iter()
                                                    .map(|h| {
                                                        view! {
                                                            <option value=h
                                                                .version
                                                                .to_string()>
                                                                {format!("{} — {} {}", h.version, h.author, h.comment)}
                                                            </option>
                                                        }
                                                    })
                                                    .collect_view()}
                                            </select>
                                        </label>
                                    }
                                        .into_any()
                                }
                                Ok(None) => view! { <p class="empty">"Pick a module to see its description and versions."</p> }.into_any(),
                                Err(e) => view! { <p class="error">{error_text(&e)}</p> }.into_any(),
                            }
                        })}
                    </Transition>
                </div>
            </div>
            {move || match listing.get() {
                Some(Err(e)) => Some(view! { <p class="error">{error_text(&e)}</p> }),
                _ => None,
            }}
            <footer>
                <button type="button" class="button secondary" id="chooser-cancel" on:click=move |_| on_close.run(())>
                    "Cancel"
                </button>
                <button
                    type="button"
                    id="chooser-select"
                    disabled=move || !picked.get().is_some_and(|m| pickable(&m))
                    on:click=move |_| choose()
                >
                    "Select"
                </button>
            </footer>
        </div>
    }
}
