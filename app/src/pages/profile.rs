//! The user's profile: defaults for new runs (keep-running, timeout), the SSH public key, and
//! API tokens for scripts and CI (a new token's secret is shown once, never again), and the
//! per-connector settings and credentials (a saved credential is never shown back) with quotas.

use leptos::prelude::*;

use crate::api::{my_connectors, my_profile, ChangePassword, NewApiToken, RevokeApiToken, SaveConnector, SaveProfile};
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
        <Suspense fallback=|| {
            view! { <p>"Loading…"</p> }
        }>
            {move || Suspend::new(async move {
                match data.await {
                    Err(e) => crate::page_error(&e),
                    Ok((profile, tokens)) => {
                        view! {
                            <section class="panel">
                                <h2>"Defaults for new runs"</h2>
                                <ActionForm action=save attr:id="profile-form" attr:class="launch">
                                    <label>
                                        "Keep instances running" <select name="keep_running" id="profile-keep-running">
                                            {["never", "on-success", "on-error", "always"]
                                                .map(|k| {
                                                    view! {
                                                        <option value=k selected=profile.keep_running == k>
                                                            {k}
                                                        </option>
                                                    }
                                                })}
                                        </select>
                                    </label>
                                    <label>
                                        "Run timeout per state (minutes)"
                                        <input
                                            type="number"
                                            min="1"
                                            name="run_timeout_minutes"
                                            id="profile-timeout"
                                            value=profile.run_timeout_minutes
                                        />
                                    </label>
                                    <label>
                                        "SSH public key (one per line)" <textarea name="ssh_public_key" id="profile-ssh-key" rows="3">
                                            {profile.ssh_public_key.clone()}
                                        </textarea>
                                    </label>
                                    <button type="submit" id="profile-save">
                                        "Save"
                                    </button>
                                </ActionForm>
                                {move || {
                                    save.value()
                                        .get()
                                        .map(|r| match r {
                                            Ok(()) => {
                                                view! {
                                                    <p class="notice" id="profile-saved">
                                                        "Saved."
                                                    </p>
                                                }
                                                    .into_any()
                                            }
                                            Err(e) => {
                                                view! {
                                                    <p class="error" id="form-error">
                                                        {error_text(&e)}
                                                    </p>
                                                }
                                                    .into_any()
                                            }
                                        })
                                }}
                            </section>
                            <Connectors />
                            <PasswordChange />
                            <section class="panel">
                                <h2>"API tokens"</h2>
                                <p class="hint">"For scripts and CI: " <code>"Authorization: Bearer <token>"</code></p>
                                <table class="list" id="tokens">
                                    <thead>
                                        <tr>
                                            <th>"Name"</th>
                                            <th>"Created"</th>
                                            <th>"Last used"</th>
                                            <th></th>
                                        </tr>
                                    </thead>
                                    <tbody>
                                        {tokens
                                            .into_iter()
                                            .map(|t| {
                                                view! {
                                                    <tr data-token=t.name.clone()>
                                                        <td>{t.name.clone()}</td>
                                                        <td>{format_time(t.created_at)}</td>
                                                        <td>{t.last_used_at.map(format_time).unwrap_or_else(|| "never".into())}</td>
                                                        <td>
                                                            <ActionForm action=revoke attr:class="inline">
                                                                <input type="hidden" name="id" value=t.id.clone() />
                                                                <button type="submit" class="revoke">
                                                                    "Revoke"
                                                                </button>
                                                            </ActionForm>
                                                        </td>
                                                    </tr>
                                                }
                                            })
                                            .collect_view()}
                                    </tbody>
                                </table>
                                <ActionForm action=create attr:id="token-form" attr:class="search">
                                    <input type="text" name="name" id="token-name" placeholder="Token name, e.g. ci" required />
                                    <button type="submit" id="token-create">
                                        "Create token"
                                    </button>
                                </ActionForm>
                                {move || {
                                    create
                                        .value()
                                        .get()
                                        .map(|r| match r {
                                            Ok(secret) => {
                                                view! {
                                                    <p class="notice" id="token-secret">
                                                        "Copy it now, it will not be shown again: "
                                                        <code>{secret}</code>
                                                    </p>
                                                }
                                                    .into_any()
                                            }
                                            Err(e) => view! { <p class="error">{error_text(&e)}</p> }.into_any(),
                                        })
                                }}
                            </section>
                        }
                            .into_any()
                    }
                }
            })}
        </Suspense>
    }
}

/// One form per connector: settings as `name = value` lines, a write-only credential.
#[component]
fn Connectors() -> impl IntoView {
    let save = ServerAction::<SaveConnector>::new();
    let accounts = Resource::new(move || save.version().get(), |_| my_connectors());
    view! {
        <section class="panel" id="connectors">
            <h2>"Connectors"</h2>
            <p class="hint">
                "Your settings and credentials for each connector. A saved credential is kept secret: it is used to start your instances and never shown again."
            </p>
            {move || {
                save.value()
                    .get()
                    .map(|r| match r {
                        Ok(()) => {
                            view! {
                                <p class="notice" id="connector-saved">
                                    "Saved."
                                </p>
                            }
                                .into_any()
                        }
                        Err(e) => {
                            view! {
                                <p class="error" id="connector-error">
                                    {error_text(&e)}
                                </p>
                            }
                                .into_any()
                        }
                    })
            }}
            <Transition fallback=|| ()>
                {move || Suspend::new(async move {
                    match accounts.await {
                        Err(e) => view! { <p class="error">{error_text(&e)}</p> }.into_any(),
                        Ok(list) => {
                            list.into_iter()
                                .map(|a| {
                                    let settings = a.settings.iter().map(|(k, v)| format!("{k} = {v}\n")).collect::<String>();
                                    let quota = match a.quota {
                                        Some(q) => format!("Quota: {} of {q} instances in use", a.in_use),
                                        None => format!("No quota; {} instances in use", a.in_use),
                                    };
                                    let stored = match (a.credential_set, a.updated_at) {
                                        (true, Some(at)) => format!("A credential is stored (saved {}).", format_time(at)),
                                        _ => "No credential stored.".to_string(),
                                    };
                                    let (c1, c2, c3, c4) = (
                                        a.connector.clone(),
                                        a.connector.clone(),
                                        a.connector.clone(),
                                        a.connector.clone(),
                                    );
                                    let set = a.credential_set;
                                    let restricted = (!a.may_use)
                                        .then(|| {
                                            view! {
                                                <p class="notice connector-restricted">
                                                    "Only administrators and the users they allow may run instances here."
                                                </p>
                                            }
                                        });
                                    view! {
                                        <ActionForm action=save attr:class="launch connector-form" attr:data-connector=c1>
                                            <h3>{c2}</h3>
                                            <p class="meta quota">{quota}</p>
                                            {restricted}
                                            <input type="hidden" name="connector" value=c3 />
                                            <label>
                                                "Settings (one " <code>"name = value"</code> " per line)"
                                                <textarea name="settings" class="connector-settings" rows="3">
                                                    {settings}
                                                </textarea>
                                            </label>
                                            <label>
                                                "Credential (password, token or private key; for a Docker engine over TLS, your key and certificate in PEM)"
                                                <input
                                                    type="password"
                                                    name="credential"
                                                    class="connector-credential"
                                                    autocomplete="new-password"
                                                    placeholder=if set { "stored; type a new one to replace it" } else { "not set" }
                                                />
                                            </label>
                                            <p class="meta credential-state">{stored}</p>
                                            {set
                                                .then(|| {
                                                    view! {
                                                        <label class="inline-check">
                                                            <input type="checkbox" name="remove_credential" value="1" class="checkbox" />
                                                            " remove the stored credential"
                                                        </label>
                                                    }
                                                })}
                                            <button type="submit" class="connector-save">
                                                "Save "
                                                {c4}
                                            </button>
                                        </ActionForm>
                                    }
                                })
                                .collect_view()
                                .into_any()
                        }
                    }
                })}
            </Transition>
        </section>
    }
}

/// The password form: the current password, then the new one. Other sessions of the account
/// end when it is changed.
#[component]
fn PasswordChange() -> impl IntoView {
    let change = ServerAction::<ChangePassword>::new();
    view! {
        <section class="panel" id="password">
            <h2>"Password"</h2>
            <p class="hint">"Changing it signs you out everywhere else."</p>
            <ActionForm action=change attr:id="password-form" attr:class="launch">
                <label>
                    "Current password"
                    <input type="password" name="current" id="password-current" autocomplete="current-password" required />
                </label>
                <label>
                    "New password (at least 8 characters)"
                    <input type="password" name="new" id="password-new" autocomplete="new-password" minlength="8" required />
                </label>
                <button type="submit" id="password-submit">
                    "Change password"
                </button>
            </ActionForm>
            {move || {
                change
                    .value()
                    .get()
                    .map(|r| match r {
                        Ok(()) => {
                            view! {
                                <p class="notice" id="password-changed">
                                    "Changed. Other sessions have ended."
                                </p>
                            }
                                .into_any()
                        }
                        Err(e) => {
                            view! {
                                <p class="error" id="password-error">
                                    {error_text(&e)}
                                </p>
                            }
                                .into_any()
                        }
                    })
            }}
        </section>
    }
}
