//! The public catalog: published images and deployments, rendered on the server so visitors
//! and search engines see it without running any script.

use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::use_query_map;

use crate::api::catalog;
use crate::error_text;

#[component]
pub fn Catalog() -> impl IntoView {
    let query = use_query_map();
    let q = move || query.read().get("q").unwrap_or_default();
    let kind = move || query.read().get("kind").unwrap_or_default();
    let items = Resource::new(move || (q(), kind()), |(q, k)| catalog(q, k));
    view! {
        <h1>"Catalog"</h1>
        <p class="hint">"Published systems, ready to deploy with one click."</p>
        // A plain GET form: search and filter work before (and without) the WASM.
        <form method="get" action="/catalog" class="search">
            <input type="search" name="q" id="catalog-search" placeholder="Search the catalog" value=q />
            <select name="kind" id="catalog-kind" aria-label="Kind">
                <option value="" selected=move || kind().is_empty()>
                    "All kinds"
                </option>
                <option value="deployment" selected=move || kind() == "deployment">
                    "Deployments"
                </option>
                <option value="image" selected=move || kind() == "image">
                    "Images"
                </option>
            </select>
            <button type="submit" id="catalog-filter">
                "Search"
            </button>
        </form>
        <Suspense fallback=|| {
            view! { <p>"Loading…"</p> }
        }>
            {move || Suspend::new(async move {
                match items.await {
                    Ok(list) if list.is_empty() => view! { <p id="catalog-empty">"Nothing published matches."</p> }.into_any(),
                    Ok(list) => {
                        view! {
                            <ul class="cards" id="catalog">
                                {list
                                    .into_iter()
                                    .map(|entry| {
                                        let m = entry.summary;
                                        let initial = m
                                            .path
                                            .rsplit('/')
                                            .next()
                                            .unwrap_or_default()
                                            .chars()
                                            .next()
                                            .unwrap_or('?')
                                            .to_ascii_uppercase()
                                            .to_string();
                                        let logo = match entry.logo {
                                            Some(src) => view! { <img class="logo" src=src alt="" width="48" height="48" /> }.into_any(),
                                            None => {
                                                view! {
                                                    <span class=format!("logo placeholder kind-{}", m.kind.as_str()) aria-hidden="true">
                                                        {initial}
                                                    </span>
                                                }
                                                    .into_any()
                                            }
                                        };
                                        let href = format!("/modules/{}", m.path);
                                        let path = m.path.clone();
                                        let (deploy_href, deploy_path) = (format!("/launch?module={}", m.path), m.path.clone());
                                        view! {
                                            <li class="card" data-path=path>
                                                <div class="card-head">
                                                    {logo}<span class=format!("kind kind-{}", m.kind.as_str())>{m.kind.as_str()}</span>
                                                </div>
                                                <h2>
                                                    <A href=href>{m.path.clone()}</A>
                                                </h2>
                                                <p>{m.description.clone()}</p>
                                                <p class="meta">"by " {m.owner.clone()} " · version " {m.version}</p>
                                                <p>
                                                    <A href=deploy_href attr:class="button" attr:data-deploy=deploy_path>
                                                        "Deploy"
                                                    </A>
                                                </p>
                                            </li>
                                        }
                                    })
                                    .collect_view()}
                            </ul>
                        }
                            .into_any()
                    }
                    Err(e) => view! { <p class="error">{error_text(&e)}</p> }.into_any(),
                }
            })}
        </Suspense>
    }
}
