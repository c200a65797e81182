//! Sign-in: `POST /auth/login` sets the HttpOnly session cookie and answers the CSRF token.

use leptos::prelude::*;
use leptos::task::spawn_local;
use updraft_types::api::SessionResponse;

use crate::api;
use crate::session::use_session;

#[component]
pub fn Login() -> impl IntoView {
    let session = use_session();
    let username = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        busy.set(true);
        error.set(None);
        let body = serde_json::json!({ "username": username.get_untracked(), "password": password.get_untracked() });
        spawn_local(async move {
            match api::send::<SessionResponse>("POST", "/auth/login", &body).await {
                Ok(answer) => session.sign_in(answer),
                Err(e) => error.set(Some(e.detail)),
            }
            busy.set(false);
        });
    };
    view! {
        <form class="login panel" on:submit=submit>
            <h1>"Sign in to Updraft"</h1>
            <label for="username">"Username"</label>
            <input id="username" name="username" type="text" autocomplete="username" required
                prop:value=move || username.get() on:input=move |ev| username.set(event_target_value(&ev))/>
            <label for="password">"Password"</label>
            <input id="password" name="password" type="password" autocomplete="current-password" required
                prop:value=move || password.get() on:input=move |ev| password.set(event_target_value(&ev))/>
            <button class="primary" type="submit" disabled=move || busy.get()>
                <Show when=move || busy.get()><span class="spinner"></span></Show>
                "Sign in"
            </button>
            <Show when=move || error.with(Option::is_some)>
                <div class="error-text" role="alert">{move || error.get().unwrap_or_default()}</div>
            </Show>
        </form>
    }
}
