//! Sign up and sign in. Both forms work before the WASM loads (plain form posts to the server
//! function) and after (the same call made from the page).

use leptos::prelude::*;
use leptos_router::components::A;

use crate::api::{Login, Register};
use crate::error_text;

#[component]
pub fn SignIn() -> impl IntoView {
    let login = ServerAction::<Login>::new();
    let result = login.value();
    view! {
        <section class="narrow">
            <h1>"Sign in"</h1>
            <ActionForm action=login attr:id="signin-form">
                <label>"User name" <input type="text" name="name" id="name" autocomplete="username" required /></label>
                <label>"Password" <input type="password" name="password" id="password" autocomplete="current-password" required /></label>
                <button type="submit" id="submit">
                    "Sign in"
                </button>
            </ActionForm>
            {move || {
                result
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
            <p>"No account yet? " <A href="/signup">"Sign up"</A></p>
        </section>
    }
}

#[component]
pub fn SignUp() -> impl IntoView {
    let register = ServerAction::<Register>::new();
    let result = register.value();
    // An invitation link (`/signup?invitation=…`) carries its token into the form.
    let query = leptos_router::hooks::use_query_map();
    let invitation = move || query.read().get("invitation").unwrap_or_default();
    view! {
        <section class="narrow">
            <h1>"Sign up"</h1>
            <p class="hint">"The first account created on a server becomes its administrator."</p>
            <ActionForm action=register attr:id="signup-form">
                <label>"User name" <input type="text" name="name" id="name" autocomplete="username" required /></label>
                <label>
                    "Password (at least 8 characters)"
                    <input type="password" name="password" id="password" autocomplete="new-password" minlength="8" required />
                </label>
                <input type="hidden" name="invitation" id="invitation" prop:value=invitation />
                <button type="submit" id="submit">
                    "Create account"
                </button>
            </ActionForm>
            {move || {
                result
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
            <p>"Have an account? " <A href="/signin">"Sign in"</A></p>
        </section>
    }
}
