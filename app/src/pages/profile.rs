//! The user's profile: defaults for new runs (keep-running, timeout), the SSH public key, and
//! API tokens for scripts and CI (a new token's secret is shown once, never again).

use leptos::prelude::*;

use crate::api::{my_profile, NewApiToken, RevokeApiToken, SaveProfile};
use crate::{error_text, format_time};

#[component]
pub fn Profile() -> impl IntoView {
    let save = ServerAction::<SaveProfile>::new();
    let create = ServerAction::<NewApiToken>::new();
    let revoke = ServerAction::<RevokeApiToken>::new();
    // Reloaded after every change.
    let data = Resource::new(move || (save.version().get(), create.version().get(), revoke.version().get()), |_| my_profile());
    view! {
        <h1>"Profile"</h1>
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match data.await {
                    Err(e) => view! { <p class="error" id="page-error">{error_text(&e)}</p> }.into_any(),
                    Ok((profile, tokens)) => view! {
                        <section class="panel">
                            <h2>"Defaults for new runs"</h2>
                            <ActionForm action=save attr:id="profile-form" attr:class="launch">
                                <label>"Keep instances running"
                                    <select name="keep_running" id="profile-keep-running">
                                        {["never", "on-success", "on-error", "always"].map(|k| view! {
                                            <option value=k selected=profile.keep_running == k>{k}</option>
                                        })}
                                    </select>
                                </label>
                                <label>"Run timeout per state (minutes)"
                                    <input type="number" min="1" name="run_timeout_minutes" id="profile-timeout" value=profile.run_timeout_minutes/>
                                </label>
                                <label>"SSH public key (one per line)"
                                    <textarea name="ssh_public_key" id="profile-ssh-key" rows="3">{profile.ssh_public_key.clone()}</textarea>
                                </label>
                                <button type="submit" id="profile-save">"Save"</button>
                            </ActionForm>
                            {move || save.value().get().map(|r| match r {
                                Ok(()) => view! { <p class="notice" id="profile-saved">"Saved."</p> }.into_any(),
                                Err(e) => view! { <p class="error" id="form-error">{error_text(&e)}</p> }.into_any(),
                            })}
                        </section>
                        <section class="panel">
                            <h2>"API tokens"</h2>
                            <p class="hint">"For scripts and CI: " <code>"Authorization: Bearer <token>"</code></p>
                            <table class="list" id="tokens">
                                <thead><tr><th>"Name"</th><th>"Created"</th><th>"Last used"</th><th></th></tr></thead>
                                <tbody>
                                    {tokens.into_iter().map(|t| view! {
                                        <tr data-token=t.name.clone()>
                                            <td>{t.name.clone()}</td>
                                            <td>{format_time(t.created_at)}</td>
                                            <td>{t.last_used_at.map(format_time).unwrap_or_else(|| "never".into())}</td>
                                            <td>
                                                <ActionForm action=revoke attr:class="inline">
                                                    <input type="hidden" name="id" value=t.id.clone()/>
                                                    <button type="submit" class="revoke">"Revoke"</button>
                                                </ActionForm>
                                            </td>
                                        </tr>
                                    }).collect_view()}
                                </tbody>
                            </table>
                            <ActionForm action=create attr:id="token-form" attr:class="search">
                                <input type="text" name="name" id="token-name" placeholder="Token name, e.g. ci" required/>
                                <button type="submit" id="token-create">"Create token"</button>
                            </ActionForm>
                            {move || create.value().get().map(|r| match r {
                                Ok(secret) => view! {
                                    <p class="notice" id="token-secret">"Copy it now, it will not be shown again: " <code>{secret}</code></p>
                                }.into_any(),
                                Err(e) => view! { <p class="error">{error_text(&e)}</p> }.into_any(),
                            })}
                        </section>
                    }.into_any(),
                }
            })}
        </Suspense>
    }
}
