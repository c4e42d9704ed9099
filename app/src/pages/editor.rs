//! The module editor (`/edit/<path>`, and `/new?kind=image&parent=<project>` for a new one):
//! the tabs of the original system's tutorial — Summary, Reference, Parameters, Image creation,
//! Deployment targets, Nodes, Authorization. Saving sends the whole document; the server
//! validates it and either answers the new version or every problem with the field it names,
//! which the editor shows next to that field (nothing is written then). Leaving with unsaved
//! changes asks first.

use std::collections::BTreeMap;

use leptos::prelude::*;
use leptos_router::hooks::{use_navigate, use_params_map, use_query_map};
use model::{Category, FieldError, Module, ModuleKind, Node, ParamType, Parameter, PublicRights, Targets};

use crate::api::{editor_data, image_parameters, save_module, EditorStart, SaveOutcome};
use crate::error_text;
use crate::pages::chooser::Chooser;

#[component]
pub fn EditPage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let key = move || {
        let q = query.read();
        (params.read().get("path").unwrap_or_default(), q.get("kind").unwrap_or_default(), q.get("parent").unwrap_or_default())
    };
    let data = Resource::new(key, |(p, k, parent)| editor_data(p, k, parent));
    view! {
        <Suspense fallback=|| {
            view! { <p>"Loading…"</p> }
        }>
            {move || Suspend::new(async move {
                match data.await {
                    Ok(d) => view! { <Editor data=d /> }.into_any(),
                    Err(e) => crate::page_error(&e),
                }
            })}
        </Suspense>
    }
}

/// A row's identity, so keyed lists keep each row's DOM (and focus) while others move.
fn next_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

#[derive(Clone, Copy)]
struct ParamRow {
    id: u64,
    name: RwSignal<String>,
    category: RwSignal<Category>,
    kind: RwSignal<String>,
    default: RwSignal<String>,
    values: RwSignal<String>,
    description: RwSignal<String>,
}

impl ParamRow {
    fn new(p: &Parameter) -> Self {
        Self {
            id: next_id(),
            name: RwSignal::new(p.name.clone()),
            category: RwSignal::new(p.category),
            kind: RwSignal::new(type_name(p.kind).to_string()),
            default: RwSignal::new(p.default.clone().unwrap_or_default()),
            values: RwSignal::new(p.values.join(", ")),
            description: RwSignal::new(p.description.clone()),
        }
    }
    fn get(&self) -> Parameter {
        let default = self.default.get();
        Parameter {
            name: self.name.get().trim().to_string(),
            category: self.category.get(),
            default: (!default.is_empty()).then_some(default),
            description: self.description.get(),
            kind: parse_type(&self.kind.get()),
            values: split_list(&self.values.get(), ','),
        }
    }
}

const TYPES: [(&str, ParamType); 5] = [
    ("string", ParamType::String),
    ("text", ParamType::Text),
    ("secret", ParamType::Secret),
    ("boolean", ParamType::Boolean),
    ("enum", ParamType::Enum),
];

fn type_name(t: ParamType) -> &'static str {
    TYPES.iter().find(|(_, k)| *k == t).map(|(n, _)| *n).unwrap_or("string")
}
fn parse_type(s: &str) -> ParamType {
    TYPES.iter().find(|(n, _)| *n == s).map(|(_, k)| *k).unwrap_or_default()
}
fn split_list(s: &str, sep: char) -> Vec<String> {
    s.split(sep).map(str::trim).filter(|v| !v.is_empty()).map(String::from).collect()
}

/// One input of a node: a literal value, or linked to another node's output.
#[derive(Clone, Copy)]
struct InputRow {
    name: StoredValue<String>,
    description: StoredValue<String>,
    linked: RwSignal<bool>,
    value: RwSignal<String>,
    link: RwSignal<String>,
}

#[derive(Clone, Copy)]
struct NodeRow {
    id: u64,
    name: RwSignal<String>,
    image: RwSignal<String>,
    multiplicity: RwSignal<String>,
    connector: RwSignal<String>,
    inputs: RwSignal<Vec<InputRow>>,
    /// The image's outputs: what other nodes may link to.
    outputs: RwSignal<Vec<String>>,
}

impl NodeRow {
    fn new(name: &str, node: &Node, params: Option<&Vec<Parameter>>) -> Self {
        let row = Self {
            id: next_id(),
            name: RwSignal::new(name.to_string()),
            image: RwSignal::new(node.image.clone()),
            multiplicity: RwSignal::new(node.multiplicity.to_string()),
            connector: RwSignal::new(node.connector.clone().unwrap_or_default()),
            inputs: RwSignal::new(vec![]),
            outputs: RwSignal::new(vec![]),
        };
        row.set_parameters(params.map(Vec::as_slice).unwrap_or_default(), &node.values, &node.links);
        row
    }
    /// Lists the image's inputs for resolving, keeping what the node already says about them
    /// (and any binding for an input the image no longer declares, so the server can name it).
    fn set_parameters(&self, params: &[Parameter], values: &BTreeMap<String, String>, links: &BTreeMap<String, String>) {
        let mut inputs: Vec<InputRow> = params
            .iter()
            .filter(|p| p.category == Category::Input)
            .map(|p| input_row(&p.name, &p.description, values.get(&p.name), links.get(&p.name)))
            .collect();
        for name in values.keys().chain(links.keys()) {
            if !params.iter().any(|p| &p.name == name && p.category == Category::Input)
                && !inputs.iter().any(|i| i.name.get_value() == *name)
            {
                inputs.push(input_row(name, "not an input of this image", values.get(name), links.get(name)));
            }
        }
        self.inputs.set(inputs);
        self.outputs.set(params.iter().filter(|p| p.category == Category::Output).map(|p| p.name.clone()).collect());
    }
    fn get(&self) -> Result<(String, Node), FieldError> {
        let name = self.name.get().trim().to_string();
        let m = self.multiplicity.get();
        let multiplicity =
            m.trim().parse().map_err(|_| FieldError::new("", format!("nodes.{name}.multiplicity"), format!("`{m}` is not a number")))?;
        let connector = self.connector.get();
        let mut node =
            Node { image: self.image.get(), multiplicity, connector: (!connector.is_empty()).then_some(connector), ..Default::default() };
        for i in self.inputs.get() {
            if i.linked.get() {
                node.links.insert(i.name.get_value(), i.link.get().trim().to_string());
            } else if !i.value.get().is_empty() {
                node.values.insert(i.name.get_value(), i.value.get());
            }
        }
        Ok((name, node))
    }
}

fn input_row(name: &str, description: &str, value: Option<&String>, link: Option<&String>) -> InputRow {
    InputRow {
        name: StoredValue::new(name.to_string()),
        description: StoredValue::new(description.to_string()),
        linked: RwSignal::new(link.is_some()),
        value: RwSignal::new(value.cloned().unwrap_or_default()),
        link: RwSignal::new(link.cloned().unwrap_or_default()),
    }
}

#[derive(Clone, Copy)]
struct NativeRow {
    id: u64,
    connector: RwSignal<String>,
    image: RwSignal<String>,
}

/// The document being edited, one signal per field.
#[derive(Clone, Copy)]
struct Draft {
    kind: ModuleKind,
    /// The enclosing project (`a/b/`) and the name, for a module not saved yet.
    prefix: StoredValue<String>,
    name: RwSignal<String>,
    description: RwSignal<String>,
    logo: RwSignal<String>,
    native: RwSignal<bool>,
    images: RwSignal<Vec<NativeRow>>,
    reference: RwSignal<String>,
    packages: RwSignal<String>,
    prerecipe: RwSignal<String>,
    recipe: RwSignal<String>,
    targets: [RwSignal<String>; 4],
    params: RwSignal<Vec<ParamRow>>,
    nodes: RwSignal<Vec<NodeRow>>,
    public: [RwSignal<bool>; 3],
    published: RwSignal<bool>,
}

impl Draft {
    fn new(m: &Module, images: &BTreeMap<String, Vec<Parameter>>) -> Self {
        let (prefix, name) = match m.path.rsplit_once('/') {
            Some((p, n)) => (format!("{p}/"), n.to_string()),
            None => (String::new(), m.path.clone()),
        };
        let public = m.public.unwrap_or_default();
        Self {
            kind: m.kind,
            prefix: StoredValue::new(prefix),
            name: RwSignal::new(name),
            description: RwSignal::new(m.description.clone()),
            logo: RwSignal::new(m.logo.clone().unwrap_or_default()),
            native: RwSignal::new(m.native),
            images: RwSignal::new(
                m.images
                    .iter()
                    .map(|(c, i)| NativeRow { id: next_id(), connector: RwSignal::new(c.clone()), image: RwSignal::new(i.clone()) })
                    .collect(),
            ),
            reference: RwSignal::new(m.reference.clone().unwrap_or_default()),
            packages: RwSignal::new(m.packages.join(" ")),
            prerecipe: RwSignal::new(m.prerecipe.clone()),
            recipe: RwSignal::new(m.recipe.clone()),
            targets: Targets::NAMES.map(|t| RwSignal::new(m.targets.get(t).unwrap_or_default().to_string())),
            params: RwSignal::new(m.parameters.iter().map(ParamRow::new).collect()),
            nodes: RwSignal::new(m.nodes.iter().map(|(n, node)| NodeRow::new(n, node, images.get(&node.image))).collect()),
            public: [RwSignal::new(public.read), RwSignal::new(public.write), RwSignal::new(public.deploy)],
            published: RwSignal::new(m.published.unwrap_or(false)),
        }
    }

    fn path(&self) -> String {
        format!("{}{}", self.prefix.get_value(), self.name.get().trim())
    }

    /// The document to save (tracked: the unsaved-changes check re-runs when a field changes).
    fn get(&self) -> Result<Module, FieldError> {
        let image = self.kind == ModuleKind::Image;
        let deployment = self.kind == ModuleKind::Deployment;
        let logo = self.logo.get();
        let native = image && self.native.get();
        let reference = self.reference.get();
        let mut targets = Targets::default();
        if image {
            let [execute, report, onvmadd, onvmremove] = self.targets.map(|t| t.get());
            targets = Targets { execute, report, onvmadd, onvmremove };
        }
        let mut nodes = BTreeMap::new();
        if deployment {
            for n in self.nodes.get() {
                let (name, node) = n.get()?;
                if nodes.insert(name.clone(), node).is_some() {
                    return Err(FieldError::new(
                        "",
                        format!("nodes.{name}"),
                        format!("two nodes are called `{name}`; node names must differ"),
                    ));
                }
            }
        }
        let [read, write, deploy] = self.public.map(|s| s.get());
        Ok(Module {
            kind: self.kind,
            path: self.path(),
            description: self.description.get(),
            logo: (!logo.trim().is_empty()).then(|| logo.trim().to_string()),
            native,
            images: if native {
                self.images.get().iter().map(|r| (r.connector.get().trim().to_string(), r.image.get().trim().to_string())).collect()
            } else {
                BTreeMap::new()
            },
            reference: (image && !native && !reference.trim().is_empty()).then(|| reference.trim().to_string()),
            packages: if image { split_list(&self.packages.get(), ' ') } else { vec![] },
            prerecipe: if image { self.prerecipe.get() } else { String::new() },
            recipe: if image { self.recipe.get() } else { String::new() },
            targets,
            parameters: if image { self.params.get().iter().map(ParamRow::get).collect() } else { vec![] },
            nodes,
            public: Some(PublicRights { read, write, deploy }),
            published: Some(self.published.get()),
            ..Default::default()
        })
    }
}

const TABS: [(&str, &str); 7] = [
    ("summary", "Summary"),
    ("reference", "Reference"),
    ("parameters", "Parameters"),
    ("creation", "Image creation"),
    ("targets", "Deployment targets"),
    ("nodes", "Nodes"),
    ("authorization", "Authorization"),
];

/// The tab a server error's field belongs to.
fn tab_of(field: &str) -> &'static str {
    let head = field.split('.').next().unwrap_or_default();
    match head {
        "reference" | "native" | "images" => "reference",
        "parameters" => "parameters",
        "packages" | "prerecipe" | "recipe" => "creation",
        "targets" => "targets",
        "nodes" => "nodes",
        "public" | "published" => "authorization",
        _ => "summary",
    }
}

/// What the chooser is open for.
#[derive(Clone, Copy, PartialEq)]
enum Choosing {
    Reference,
    Node,
}

#[component]
fn Editor(data: EditorStart) -> impl IntoView {
    let EditorStart { module, exists, connectors, images, can_share } = data;
    let draft = Draft::new(&module, &images);
    let kind = module.kind;
    let loaded_public = module.public.unwrap_or_default();
    let loaded_published = module.published.unwrap_or(false);
    let tabs: Vec<(&'static str, &'static str)> = TABS
        .iter()
        .copied()
        .filter(|(t, _)| match *t {
            "reference" | "parameters" | "creation" | "targets" => kind == ModuleKind::Image,
            "nodes" => kind == ModuleKind::Deployment,
            _ => true,
        })
        .collect();
    let tab = RwSignal::new("summary");
    let comment = RwSignal::new(String::new());
    let errors = RwSignal::new(Vec::<FieldError>::new());
    let general = RwSignal::new(None::<String>);
    let saving = RwSignal::new(false);
    let choosing = RwSignal::new(None::<Choosing>);
    // Unsaved changes: the document differs from the one loaded (or last saved).
    let baseline = RwSignal::new(draft.get_untracked_result().ok());
    let dirty = Memo::new(move |_| draft.get().ok() != baseline.get());
    guard_unsaved(dirty);
    let navigate = use_navigate();
    let save = move |_| {
        let doc = match draft.get_untracked_result() {
            Ok(d) => d,
            Err(e) => {
                tab.set(tab_of(&e.field));
                errors.set(vec![e]);
                return;
            }
        };
        let mut doc = doc;
        doc.comment = Some(comment.get_untracked()).filter(|c| !c.trim().is_empty());
        // Only an owner may change the settings: send them only when they changed.
        if doc.public == Some(loaded_public) {
            doc.public = None;
        }
        if doc.published == Some(loaded_published) {
            doc.published = None;
        }
        let json = serde_json::to_string(&doc).unwrap_or_default();
        saving.set(true);
        general.set(None);
        let navigate = navigate.clone();
        leptos::task::spawn_local(async move {
            let outcome = save_module(json).await;
            let _ = saving.try_set(false);
            match outcome {
                Ok(SaveOutcome::Saved { path, .. }) => {
                    let _ = errors.try_set(vec![]);
                    let _ = baseline.try_set(draft.get_untracked_result().ok());
                    navigate(&format!("/modules/{path}"), Default::default());
                }
                Ok(SaveOutcome::Invalid(list)) => {
                    if let Some(first) = list.first() {
                        let _ = tab.try_set(tab_of(&first.field));
                    }
                    let _ = errors.try_set(list);
                }
                Err(e) => {
                    let _ = general.try_set(Some(error_text(&e)));
                }
            }
        });
    };
    // Each tab's body type-erased: one deep view type would overflow the compiler's limits.
    let tab_body = move |id: &'static str, body: AnyView| {
        view! {
            <div class="tab-body" hidden=move || tab.get() != id>
                {body}
            </div>
        }
        .into_any()
    };
    let mut bodies: Vec<AnyView> = vec![tab_body("summary", view! { <SummaryTab draft exists errors meta=exists.then(|| (module.version.unwrap_or(0), module.owner.clone().unwrap_or_default()))/> }.into_any())];
    if kind == ModuleKind::Image {
        bodies.push(tab_body("reference", view! { <ReferenceTab draft errors choosing connectors=connectors.clone() /> }.into_any()));
        bodies.push(tab_body("parameters", view! { <ParametersTab draft errors /> }.into_any()));
        bodies.push(tab_body("creation", view! { <CreationTab draft errors /> }.into_any()));
        bodies.push(tab_body("targets", view! { <TargetsTab draft errors /> }.into_any()));
    }
    if kind == ModuleKind::Deployment {
        bodies.push(tab_body("nodes", view! { <NodesTab draft errors choosing connectors=connectors.clone() /> }.into_any()));
    }
    bodies.push(tab_body("authorization", view! { <AuthorizationTab draft can_share /> }.into_any()));
    // New rows belong to the editor, not to the chooser that picked their image (which is
    // disposed as soon as it closes, and its signals with it).
    let owner = Owner::current().expect("the editor renders inside an owner");
    let project = draft.prefix.get_value().trim_end_matches('/').to_string();
    let start = project.clone();
    let title = if exists { module.path.clone() } else { format!("New {}", kind.as_str()) };
    view! {
        <header class="module-head">
            <span class=format!("kind kind-{}", kind.as_str())>{kind.as_str()}</span>
            <h1 id="editor-title">{title}</h1>
            {exists.then(|| view! { <p class="meta">"Editing; saving creates version " {module.version.unwrap_or(0) + 1} "."</p> })}
        </header>
        <div class="tabs" role="tablist" id="editor-tabs">
            {tabs
                .iter()
                .map(|(id, label)| {
                    let id = *id;
                    view! {
                        <button
                            type="button"
                            role="tab"
                            class="tab"
                            id=format!("tab-{id}")
                            class:selected=move || tab.get() == id
                            class:has-error=move || errors.with(|es| es.iter().any(|e| tab_of(&e.field) == id))
                            aria-selected=move || (tab.get() == id).to_string()
                            on:click=move |_| tab.set(id)
                        >
                            {*label}
                        </button>
                    }
                })
                .collect_view()}
        </div>
        <ErrorList errors />
        <section class="panel editor" id="editor">
            {bodies}
        </section>
        <div class="save-bar">
            <input
                type="text"
                id="save-comment"
                placeholder="Comment for this version (optional)"
                prop:value=move || comment.get()
                on:input=move |ev| comment.set(event_target_value(&ev))
            />
            <button type="button" id="save" disabled=move || saving.get() on:click=save>
                {move || if saving.get() { "Saving…" } else { "Save" }}
            </button>
            {exists
                .then(|| {
                    view! {
                        <a href=format!("/modules/{}", module.path) class="button secondary" id="cancel-edit">
                            "Cancel"
                        </a>
                    }
                })}
            <span class="meta" id="dirty">
                {move || if dirty.get() { "Unsaved changes" } else { "" }}
            </span>
            {move || {
                general
                    .get()
                    .map(|e| {
                        view! {
                            <p class="error" id="save-error">
                                {e}
                            </p>
                        }
                    })
            }}
        </div>
        {move || {
            choosing
                .get()
                .map(|what| {
                    let start = start.clone();
                    let owner = owner.clone();
                    let on_select = Callback::new(move |chosen: String| {
                        choosing.set(None);
                        match what {
                            Choosing::Reference => draft.reference.set(chosen),
                            Choosing::Node => add_node(draft, chosen, owner.clone()),
                        }
                    });
                    view! {
                        <Chooser allowed=Some(ModuleKind::Image) start on_select on_close=Callback::new(move |_| choosing.set(None)) />
                    }
                })
        }}
    }
}

impl Draft {
    fn get_untracked_result(&self) -> Result<Module, FieldError> {
        untrack(|| self.get())
    }
}

/// Adds a node of the chosen image, named after it (`apache`, then `apache2`…), and lists the
/// image's inputs once the server has resolved them.
fn add_node(draft: Draft, image: String, owner: Owner) {
    let base: String = image
        .split('@')
        .next()
        .unwrap_or_default()
        .rsplit('/')
        .next()
        .unwrap_or("node")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' })
        .collect();
    let taken: Vec<String> = draft.nodes.with_untracked(|ns| ns.iter().map(|n| n.name.get_untracked()).collect());
    let name = std::iter::once(base.clone()).chain((2..).map(|i| format!("{base}{i}"))).find(|n| !taken.contains(n)).unwrap_or(base);
    let row = owner.with(|| NodeRow::new(&name, &Node { image: image.clone(), ..Default::default() }, None));
    draft.nodes.update(|ns| ns.push(row));
    leptos::task::spawn_local(async move {
        if let Ok(params) = image_parameters(image).await {
            owner.with(|| row.set_parameters(&params, &BTreeMap::new(), &BTreeMap::new()));
        }
    });
}

/// Every problem the server named, at the top, each saying its field.
#[component]
fn ErrorList(errors: RwSignal<Vec<FieldError>>) -> impl IntoView {
    move || {
        let list = errors.get();
        (!list.is_empty()).then(|| {
            view! {
                <div class="error-list" id="save-errors" role="alert">
                    <p>"Not saved: " {list.len()} {if list.len() == 1 { " problem" } else { " problems" }}</p>
                    <ul>
                        {list
                            .into_iter()
                            .map(|e| {
                                view! {
                                    <li>
                                        <code>{e.field.clone()}</code>
                                        ": "
                                        {e.reason.clone()}
                                    </li>
                                }
                            })
                            .collect_view()}
                    </ul>
                </div>
            }
        })
    }
}

/// The server's messages about `field` (or anything under it), shown next to it.
fn field_errors(errors: RwSignal<Vec<FieldError>>, field: impl Fn() -> String + Send + Sync + 'static) -> impl IntoView {
    errors_where(errors, move |e| {
        let f = field();
        e == f || e.starts_with(&format!("{f}."))
    })
}

/// The server's messages about exactly `field` (a list whose items show their own).
fn list_errors(errors: RwSignal<Vec<FieldError>>, field: &'static str) -> impl IntoView {
    errors_where(errors, move |e| e == field)
}

fn errors_where(errors: RwSignal<Vec<FieldError>>, matches: impl Fn(&str) -> bool + Send + Sync + 'static) -> impl IntoView {
    move || {
        errors
            .get()
            .into_iter()
            .filter(|e| matches(&e.field))
            .map(|e| {
                view! {
                    <p class="field-error" data-field=e.field.clone()>
                        {e.reason.clone()}
                    </p>
                }
            })
            .collect_view()
    }
}

#[component]
fn SummaryTab(draft: Draft, exists: bool, errors: RwSignal<Vec<FieldError>>, meta: Option<(u32, String)>) -> impl IntoView {
    let path = draft.path();
    view! {
        {meta
            .map(|(version, owner)| {
                view! {
                    <dl class="fields" id="edit-summary">
                        <dt>"Version"</dt>
                        <dd>{version} " · " <a href=format!("/modules/{path}#versions")>"other versions"</a></dd>
                        <dt>"Owner"</dt>
                        <dd>{owner}</dd>
                    </dl>
                }
            })}
        <label>
            "Name"
            {if exists {
                view! { <input type="text" id="edit-name" prop:value=move || draft.name.get() disabled /> }.into_any()
            } else {
                view! {
                    <span class="prefix">{draft.prefix.get_value()}</span>
                    <input
                        type="text"
                        id="edit-name"
                        placeholder="name"
                        prop:value=move || draft.name.get()
                        on:input=move |ev| draft.name.set(event_target_value(&ev))
                    />
                }
                    .into_any()
            }}
        </label>
        {field_errors(errors, || "path".into())}
        <label>
            "Description"
            <input
                type="text"
                id="edit-description"
                prop:value=move || draft.description.get()
                on:input=move |ev| draft.description.set(event_target_value(&ev))
            />
        </label>
        {field_errors(errors, || "description".into())}
        <label>
            "Logo (image URL shown in the catalog)"
            <input
                type="url"
                id="edit-logo"
                prop:value=move || draft.logo.get()
                on:input=move |ev| draft.logo.set(event_target_value(&ev))
            />
        </label>
        {field_errors(errors, || "logo".into())}
    }
}

#[component]
fn ReferenceTab(
    draft: Draft,
    errors: RwSignal<Vec<FieldError>>,
    choosing: RwSignal<Option<Choosing>>,
    connectors: Vec<String>,
) -> impl IntoView {
    view! {
        <label class="inline-check">
            <input
                type="checkbox"
                id="edit-native"
                prop:checked=move || draft.native.get()
                on:change=move |ev| draft.native.set(event_target_checked(&ev))
            />
            "Native image: an existing image on each connector, not derived from another module"
        </label>
        <div hidden=move || draft.native.get()>
            <p>
                "Parent image: "
                <code id="edit-reference">
                    {move || {
                        let r = draft.reference.get();
                        if r.is_empty() { "(none chosen)".to_string() } else { r }
                    }}
                </code>
            </p>
            <button type="button" id="choose-reference" on:click=move |_| choosing.set(Some(Choosing::Reference))>
                "Choose Reference"
            </button>
            {field_errors(errors, || "reference".into())}
        </div>
        <div hidden=move || !draft.native.get()>
            <table class="list" id="edit-images">
                <thead>
                    <tr>
                        <th>"Connector"</th>
                        <th>"Image id on that connector"</th>
                        <th></th>
                    </tr>
                </thead>
                <tbody>
                    <For each=move || draft.images.get() key=|r| r.id let:row>
                        <tr>
                            <td>
                                <input
                                    type="text"
                                    list="connector-names"
                                    prop:value=move || row.connector.get()
                                    on:input=move |ev| row.connector.set(event_target_value(&ev))
                                />
                            </td>
                            <td>
                                <input
                                    type="text"
                                    prop:value=move || row.image.get()
                                    on:input=move |ev| row.image.set(event_target_value(&ev))
                                />
                            </td>
                            <td>
                                <button
                                    type="button"
                                    class="secondary small"
                                    on:click=move |_| draft.images.update(|v| v.retain(|r| r.id != row.id))
                                >
                                    "Remove"
                                </button>
                            </td>
                        </tr>
                    </For>
                </tbody>
            </table>
            <datalist id="connector-names">{connectors.into_iter().map(|c| view! { <option value=c /> }).collect_view()}</datalist>
            <button
                type="button"
                id="add-image-id"
                on:click=move |_| {
                    draft
                        .images
                        .update(|v| {
                            v.push(NativeRow {
                                id: next_id(),
                                connector: RwSignal::new(String::new()),
                                image: RwSignal::new(String::new()),
                            })
                        })
                }
            >
                "Add image id"
            </button>
            {field_errors(errors, || "images".into())}
        </div>
    }
}

#[component]
fn ParametersTab(draft: Draft, errors: RwSignal<Vec<FieldError>>) -> impl IntoView {
    let section = move |category: Category, title: &'static str, id: &'static str| {
        let rows = move || draft.params.get().into_iter().filter(|p| p.category.get() == category).collect::<Vec<_>>();
        view! {
            <h3>{title}</h3>
            {(category == Category::Output)
                .then(|| {
                    view! {
                        <p class="hint">
                            "Every image also has the outputs " <code>"hostname"</code> " and " <code>"instanceid"</code>
                            ", set by the platform."
                        </p>
                    }
                })}
            <table class="list params" id=format!("edit-{id}")>
                <thead>
                    <tr>
                        <th>"Name"</th>
                        <th>"Type"</th>
                        <th>"Default"</th>
                        <th>"Choices (enum)"</th>
                        <th>"Description"</th>
                        <th></th>
                    </tr>
                </thead>
                <tbody>
                    <For each=rows key=|r| r.id let:row>
                        <tr data-param=move || row.name.get()>
                            <td>
                                <input
                                    type="text"
                                    class="param-name"
                                    prop:value=move || row.name.get()
                                    on:input=move |ev| row.name.set(event_target_value(&ev))
                                />
                                {field_errors(errors, move || format!("parameters.{}", row.name.get().trim()))}
                            </td>
                            <td>
                                <select
                                    class="param-type"
                                    prop:value=move || row.kind.get()
                                    on:change=move |ev| row.kind.set(event_target_value(&ev))
                                >
                                    {TYPES.iter().map(|(n, _)| view! { <option value=*n>{*n}</option> }).collect_view()}
                                </select>
                            </td>
                            <td>
                                <input
                                    type="text"
                                    class="param-default"
                                    prop:value=move || row.default.get()
                                    on:input=move |ev| row.default.set(event_target_value(&ev))
                                />
                            </td>
                            <td>
                                <input
                                    type="text"
                                    class="param-values"
                                    placeholder="a, b, c"
                                    disabled=move || row.kind.get() != "enum"
                                    prop:value=move || row.values.get()
                                    on:input=move |ev| row.values.set(event_target_value(&ev))
                                />
                            </td>
                            <td>
                                <input
                                    type="text"
                                    class="param-description"
                                    prop:value=move || row.description.get()
                                    on:input=move |ev| row.description.set(event_target_value(&ev))
                                />
                            </td>
                            <td class="actions">
                                <button
                                    type="button"
                                    class="secondary small"
                                    title="Move up"
                                    aria-label="Move up"
                                    on:click=move |_| move_param(draft, row.id, -1)
                                >
                                    "↑"
                                </button>
                                <button
                                    type="button"
                                    class="secondary small"
                                    title="Move down"
                                    aria-label="Move down"
                                    on:click=move |_| move_param(draft, row.id, 1)
                                >
                                    "↓"
                                </button>
                                <button
                                    type="button"
                                    class="secondary small remove-param"
                                    on:click=move |_| draft.params.update(|v| v.retain(|r| r.id != row.id))
                                >
                                    "Remove"
                                </button>
                            </td>
                        </tr>
                    </For>
                </tbody>
            </table>
            <button
                type="button"
                id=format!("add-{id}")
                on:click=move |_| {
                    draft
                        .params
                        .update(|v| {
                            v.push(
                                ParamRow::new(
                                    &Parameter {
                                        category,
                                        ..Default::default()
                                    },
                                ),
                            )
                        })
                }
            >
                "Add Parameter"
            </button>
        }
    };
    view! {
        {list_errors(errors, "parameters")}
        {section(Category::Input, "Input parameters", "input")}
        {section(Category::Output, "Output parameters", "output")}
    }
}

/// Moves a parameter up or down among those of its category.
fn move_param(draft: Draft, id: u64, by: i32) {
    draft.params.update(|v| {
        let Some(at) = v.iter().position(|r| r.id == id) else { return };
        let category = v[at].category.get_untracked();
        let same: Vec<usize> = (0..v.len()).filter(|i| v[*i].category.get_untracked() == category).collect();
        let k = same.iter().position(|i| *i == at).unwrap_or(0) as i32 + by;
        if k >= 0 && (k as usize) < same.len() {
            v.swap(at, same[k as usize]);
        }
    });
}

#[component]
fn CreationTab(draft: Draft, errors: RwSignal<Vec<FieldError>>) -> impl IntoView {
    view! {
        <p class="hint">
            "Run once per image build: packages are installed with the node's package manager, then the pre-recipe and the recipe run (the parent image's first)."
        </p>
        <label>
            "Packages (separated by spaces)"
            <input
                type="text"
                id="edit-packages"
                prop:value=move || draft.packages.get()
                on:input=move |ev| draft.packages.set(event_target_value(&ev))
            />
        </label>
        {field_errors(errors, || "packages".into())}
        <CodeEditor name="prerecipe" text=draft.prerecipe />
        {field_errors(errors, || "prerecipe".into())}
        <CodeEditor name="recipe" text=draft.recipe />
        {field_errors(errors, || "recipe".into())}
    }
}

#[component]
fn TargetsTab(draft: Draft, errors: RwSignal<Vec<FieldError>>) -> impl IntoView {
    view! {
        <p class="hint">
            "execute runs while the run is Executing; report while it is SendingReports (copy files to "
            <code>"$SLIPSTREAM_REPORT_DIR"</code> "); onvmadd / onvmremove when a scalable run gains or loses instances."
        </p>
        {Targets::NAMES
            .iter()
            .zip(draft.targets)
            .map(|(name, text)| {
                view! {
                    <CodeEditor name=name text />
                    {field_errors(errors, move || format!("targets.{name}"))}
                }
            })
            .collect_view()}
    }
}

/// A script editor: monospace, line numbers, Tab indents (instead of leaving the field).
#[component]
fn CodeEditor(name: &'static str, text: RwSignal<String>) -> impl IntoView {
    let lines = move || text.with(|t| t.split('\n').count()).max(1);
    let keydown = move |ev: leptos::ev::KeyboardEvent| {
        if ev.key() != "Tab" || ev.shift_key() || ev.ctrl_key() || ev.alt_key() || ev.meta_key() {
            return;
        }
        ev.prevent_default();
        #[cfg(feature = "hydrate")]
        {
            use leptos::wasm_bindgen::JsCast;
            if let Some(area) = ev.target().and_then(|t| t.dyn_into::<leptos::web_sys::HtmlTextAreaElement>().ok()) {
                let start = area.selection_start().ok().flatten().unwrap_or(0);
                let end = area.selection_end().ok().flatten().unwrap_or(start);
                let _ = area.set_range_text_with_start_and_end("    ", start, end);
                let _ = area.set_selection_range(start + 4, start + 4);
                text.set(area.value());
            }
        }
    };
    view! {
        <div class="code-editor" data-target=name>
            <h3>{name}</h3>
            <div class="code">
                <pre class="gutter" aria-hidden="true">
                    {move || (1..=lines()).map(|i| format!("{i}\n")).collect::<String>()}
                </pre>
                <textarea
                    id=format!("edit-{name}")
                    spellcheck="false"
                    wrap="off"
                    rows=move || lines() + 1
                    prop:value=move || text.get()
                    on:input=move |ev| text.set(event_target_value(&ev))
                    on:keydown=keydown
                ></textarea>
            </div>
        </div>
    }
}

#[component]
fn NodesTab(
    draft: Draft,
    errors: RwSignal<Vec<FieldError>>,
    choosing: RwSignal<Option<Choosing>>,
    connectors: Vec<String>,
) -> impl IntoView {
    // Every `node:output` that exists right now: what links may name.
    let outputs = Memo::new(move |_| {
        draft
            .nodes
            .get()
            .iter()
            .flat_map(|n| {
                let name = n.name.get();
                n.outputs.get().into_iter().map(move |o| format!("{name}:{o}"))
            })
            .collect::<Vec<_>>()
    });
    let connectors = StoredValue::new(connectors);
    view! {
        {list_errors(errors, "nodes")}
        {move || draft.nodes.with(Vec::is_empty).then(|| view! { <p class="empty">"No nodes yet: add one of an image."</p> })}
        <For each=move || draft.nodes.get() key=|n| n.id let:node>
            <fieldset class="node" data-node=move || node.name.get()>
                <legend>{move || node.name.get()}</legend>
                <div class="node-fields">
                    <label>
                        "Name"
                        <input
                            type="text"
                            class="node-name"
                            prop:value=move || node.name.get()
                            on:input=move |ev| node.name.set(event_target_value(&ev))
                        />
                    </label>
                    <label>"Image" <code class="node-image">{move || node.image.get()}</code></label>
                    <label>
                        "Multiplicity"
                        <input
                            type="number"
                            min="1"
                            class="node-multiplicity"
                            prop:value=move || node.multiplicity.get()
                            on:input=move |ev| node.multiplicity.set(event_target_value(&ev))
                        />
                    </label>
                    <label>
                        "Connector"
                        <select
                            class="node-connector"
                            prop:value=move || node.connector.get()
                            on:change=move |ev| node.connector.set(event_target_value(&ev))
                        >
                            <option value="">"default"</option>
                            {connectors
                                .get_value()
                                .into_iter()
                                .map(|c| view! { <option value=c.clone()>{c.clone()}</option> })
                                .collect_view()}
                        </select>
                    </label>
                    <button
                        type="button"
                        class="secondary small remove-node"
                        on:click=move |_| draft.nodes.update(|v| v.retain(|n| n.id != node.id))
                    >
                        "Remove node"
                    </button>
                </div>
                {field_errors(errors, move || format!("nodes.{}.image", node.name.get().trim()))}
                {field_errors(errors, move || format!("nodes.{}.multiplicity", node.name.get().trim()))}
                {move || {
                    let inputs = node.inputs.get();
                    if inputs.is_empty() {
                        return view! { <p class="empty">"This image has no inputs to resolve."</p> }.into_any();
                    }
                    view! {
                        <table class="list inputs">
                            <thead>
                                <tr>
                                    <th>"Input"</th>
                                    <th>"Value or link"</th>
                                </tr>
                            </thead>
                            <tbody>
                                {inputs
                                    .into_iter()
                                    .map(|input| {
                                        let name = input.name.get_value();
                                        view! {
                                            <tr data-input=name.clone()>
                                                <td>
                                                    <code>{name.clone()}</code>
                                                    <div class="meta">{input.description.get_value()}</div>
                                                </td>
                                                <td>
                                                    <select
                                                        class="input-mode"
                                                        prop:value=move || if input.linked.get() { "link" } else { "value" }
                                                        on:change=move |ev| input.linked.set(event_target_value(&ev) == "link")
                                                    >
                                                        <option value="value">"Value"</option>
                                                        <option value="link">"Linked to"</option>
                                                    </select>
                                                    <input
                                                        type="text"
                                                        class="input-value"
                                                        hidden=move || input.linked.get()
                                                        prop:value=move || input.value.get()
                                                        on:input=move |ev| input.value.set(event_target_value(&ev))
                                                    />
                                                    <div hidden=move || !input.linked.get()>
                                                        <LinkField value=input.link own=node.name outputs />
                                                    </div>
                                                    {field_errors(
                                                        errors,
                                                        {
                                                            let name = name.clone();
                                                            move || format!("nodes.{}.links.{name}", node.name.get().trim())
                                                        },
                                                    )}
                                                    {field_errors(
                                                        errors,
                                                        {
                                                            let name = name.clone();
                                                            move || format!("nodes.{}.values.{name}", node.name.get().trim())
                                                        },
                                                    )}
                                                </td>
                                            </tr>
                                        }
                                    })
                                    .collect_view()}
                            </tbody>
                        </table>
                    }
                        .into_any()
                }}
            </fieldset>
        </For>
        <button type="button" id="add-node" on:click=move |_| choosing.set(Some(Choosing::Node))>
            "Add Node"
        </button>
    }
}

/// A "Linked to" field whose suggestions are the outputs other nodes really have.
#[component]
fn LinkField(value: RwSignal<String>, own: RwSignal<String>, outputs: Memo<Vec<String>>) -> impl IntoView {
    let open = RwSignal::new(false);
    let active = RwSignal::new(0usize);
    let suggestions = Memo::new(move |_| {
        let typed = value.get().to_lowercase();
        let own = format!("{}:", own.get());
        outputs.get().into_iter().filter(|o| !o.starts_with(&own) && o.to_lowercase().contains(&typed)).collect::<Vec<_>>()
    });
    let pick = move |s: String| {
        value.set(s);
        open.set(false);
    };
    let keydown = move |ev: leptos::ev::KeyboardEvent| {
        let n = suggestions.with(Vec::len);
        match ev.key().as_str() {
            "ArrowDown" => {
                ev.prevent_default();
                open.set(true);
                active.update(|a| *a = (*a + 1).min(n.saturating_sub(1)));
            }
            "ArrowUp" => {
                ev.prevent_default();
                active.update(|a| *a = a.saturating_sub(1));
            }
            "Enter" if open.get() && n > 0 => {
                ev.prevent_default();
                if let Some(s) = suggestions.with(|s| s.get(active.get()).cloned()) {
                    pick(s);
                }
            }
            "Escape" => open.set(false),
            _ => {}
        }
    };
    view! {
        <div class="autocomplete">
            <input
                type="text"
                class="input-link"
                placeholder="node:output"
                autocomplete="off"
                prop:value=move || value.get()
                on:input=move |ev| {
                    value.set(event_target_value(&ev));
                    open.set(true);
                    active.set(0);
                }
                on:focus=move |_| open.set(true)
                on:blur=move |_| open.set(false)
                on:keydown=keydown
            />
            {move || {
                (open.get() && !suggestions.with(Vec::is_empty))
                    .then(|| {
                        view! {
                            <ul class="suggestions" role="listbox">
                                {suggestions
                                    .get()
                                    .into_iter()
                                    .enumerate()
                                    .map(|(i, s)| {
                                        let chosen = s.clone();
                                        // mousedown, not click: it comes before the field's blur closes the list.
                                        view! {
                                            <li
                                                role="option"
                                                class:active=move || active.get() == i
                                                on:mousedown=move |ev| {
                                                    ev.prevent_default();
                                                    pick(chosen.clone());
                                                }
                                            >
                                                {s}
                                            </li>
                                        }
                                    })
                                    .collect_view()}
                            </ul>
                        }
                    })
            }}
        </div>
    }
}

#[component]
fn AuthorizationTab(draft: Draft, can_share: bool) -> impl IntoView {
    let [read, write, deploy] = draft.public;
    let check = move |id: &'static str, label: &'static str, sig: RwSignal<bool>| {
        view! {
            <label class="inline-check">
                <input
                    type="checkbox"
                    id=id
                    disabled=!can_share
                    prop:checked=move || sig.get()
                    on:change=move |ev| sig.set(event_target_checked(&ev))
                />
                {label}
            </label>
        }
    };
    view! {
        <p class="hint">
            "Modules are private to their owner unless shared. Writing or deploying implies reading. Only the owner (or an administrator) may change these."
        </p>
        {(!can_share)
            .then(|| {
                view! {
                    <p class="notice" id="cannot-share">
                        "You may save new versions of this module, but not change who may use it."
                    </p>
                }
            })}
        {check("public-read", "Public read: every signed-in user may see it", read)}
        {check("public-write", "Public write: every signed-in user may save new versions", write)}
        {check("public-deploy", "Public deploy: every signed-in user may run it", deploy)}
        {check("published", "Published in the catalog (anyone may see it; deploying needs deploy rights)", draft.published)}
    }
}

/// Asks before leaving with unsaved changes: a reload or closing the tab (the browser's own
/// prompt) and a click on any link inside the app (a confirm; cancelling stays here).
fn guard_unsaved(dirty: Memo<bool>) {
    #[cfg(feature = "hydrate")]
    {
        use leptos::wasm_bindgen::{closure::Closure, JsCast};
        let unload = window_event_listener(leptos::ev::beforeunload, move |ev| {
            if dirty.get_untracked() {
                ev.prevent_default();
                ev.set_return_value("You have unsaved changes.");
            }
        });
        // Capture phase, so it runs before the router's own click handler, which leaves a
        // click alone once its default is prevented.
        let click = Closure::<dyn Fn(leptos::web_sys::MouseEvent)>::new(move |ev: leptos::web_sys::MouseEvent| {
            if !dirty.get_untracked() {
                return;
            }
            let anchor =
                ev.target().and_then(|t| t.dyn_into::<leptos::web_sys::Element>().ok()).and_then(|e| e.closest("a[href]").ok().flatten());
            if anchor.is_some() && !window().confirm_with_message("You have unsaved changes. Leave without saving?").unwrap_or(true) {
                ev.prevent_default();
            }
        });
        let _ = window().add_event_listener_with_callback_and_bool("click", click.as_ref().unchecked_ref(), true);
        let click = leptos::__reexports::send_wrapper::SendWrapper::new(click);
        on_cleanup(move || {
            unload.remove();
            let _ = window().remove_event_listener_with_callback_and_bool("click", click.as_ref().unchecked_ref(), true);
        });
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = dirty;
}
