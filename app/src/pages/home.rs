use leptos::prelude::*;
use leptos_router::components::A;

#[component]
pub fn Home() -> impl IntoView {
    view! {
        <section class="hero">
            <h1>"Slipstream"</h1>
            <p>
                "Describe machine images and deployments of several nodes, press Run, and watch the "
                "whole system come up, coordinate and report."
            </p>
            <p>
                <A href="/catalog" attr:class="button">
                    "Browse the catalog"
                </A>
                " "
                <A href="/modules" attr:class="button secondary">
                    "Browse projects"
                </A>
            </p>
        </section>
    }
}
