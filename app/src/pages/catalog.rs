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
    let items = Resource::new(q, catalog);
    view! {
        <h1>"Catalog"</h1>
        <form method="get" action="/catalog" class="search">
            <input type="search" name="q" id="catalog-search" placeholder="Search the catalog" value=q/>
            <button type="submit">"Search"</button>
        </form>
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match items.await {
                    Ok(list) if list.is_empty() => view! { <p id="catalog-empty">"Nothing published matches."</p> }.into_any(),
                    Ok(list) => view! {
                        <ul class="cards" id="catalog">
                            {list.into_iter().map(|m| {
                                let href = format!("/modules/{}", m.path);
                                let path = m.path.clone();
                                let (deploy_href, deploy_path) = (format!("/launch?module={}", m.path), m.path.clone());
                                view! {
                                    <li class="card" data-path=path>
                                        <span class=format!("kind kind-{}", m.kind.as_str())>{m.kind.as_str()}</span>
                                        <h2><A href=href>{m.path.clone()}</A></h2>
                                        <p>{m.description.clone()}</p>
                                        <p class="meta">"by " {m.owner.clone()} " · version " {m.version}</p>
                                        <p><A href=deploy_href attr:class="button" attr:data-deploy=deploy_path>"Deploy"</A></p>
                                    </li>
                                }
                            }).collect_view()}
                        </ul>
                    }.into_any(),
                    Err(e) => view! { <p class="error">{error_text(&e)}</p> }.into_any(),
                }
            })}
        </Suspense>
    }
}
