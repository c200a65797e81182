//! The app's frame: the session (who is signed in, with which role), the router with one route
//! per page, the top bar, and the toasts. Every URL works on a reload: the server answers
//! `index.html` for any path outside the API and the router draws the page; a visitor who is
//! not signed in sees the sign-in form in place and, once signed in, the page they asked for.

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::components::{A, Redirect, Route, Router, Routes};
use leptos_router::path;
use updraft_types::api::SessionResponse;

use crate::api;
use crate::components::toast::{ToastArea, Toasts};
use crate::pages;

/// The roles of the API, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Viewer,
    User,
    Op,
    Admin,
}

impl Role {
    pub fn parse(text: &str) -> Role {
        match text {
            "admin" => Role::Admin,
            "op" => Role::Op,
            "user" => Role::User,
            _ => Role::Viewer,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub username: String,
    pub role: Role,
}

/// Who is signed in; `checked` once the app has asked the server.
#[derive(Debug, Clone, Copy)]
pub struct Session {
    pub user: RwSignal<Option<User>>,
    pub checked: RwSignal<bool>,
}

impl Session {
    /// Whether the signed-in user has at least `role` (what the API checks again).
    pub fn can(&self, role: Role) -> bool {
        self.user.with(|u| u.as_ref().is_some_and(|u| u.role >= role))
    }

    pub fn sign_in(&self, answer: SessionResponse) {
        api::set_csrf(Some(answer.csrf_token));
        self.user.set(Some(User { username: answer.username, role: Role::parse(&answer.role) }));
    }
}

pub fn use_session() -> Session {
    use_context::<Session>().unwrap_or_else(|| Session { user: RwSignal::new(None), checked: RwSignal::new(true) })
}

#[component]
pub fn App() -> impl IntoView {
    let session = Session { user: RwSignal::new(None), checked: RwSignal::new(false) };
    provide_context(session);
    provide_context(Toasts::new());
    api::on_signed_out(move || {
        api::set_csrf(None);
        session.user.set(None);
    });
    spawn_local(async move {
        if let Ok(answer) = api::get::<SessionResponse>("/auth/session").await {
            session.sign_in(answer);
        }
        session.checked.set(true);
    });
    view! {
        <Router>
            <Show when=move || session.checked.get() fallback=|| view! { <div class="boot">"Loading Updraft…"</div> }>
                <Show when=move || session.user.with(Option::is_some) fallback=|| view! { <pages::login::Login/> }>
                    <TopBar/>
                    <main>
                        <Routes fallback=|| view! { <div class="empty">"No such page. " <A href="/dags">"Back to the DAGs"</A></div> }>
                            <Route path=path!("/") view=|| view! { <Redirect path="/dags"/> }/>
                            <Route path=path!("/dags") view=pages::dags::DagList/>
                            <Route path=path!("/dags/:dag_id") view=pages::dag::DagPage/>
                            <Route path=path!("/dags/:dag_id/runs/:run_id") view=pages::run::RunPage/>
                            <Route path=path!("/dags/:dag_id/runs/:run_id/tasks/:task_id") view=pages::task::TaskPage/>
                            <Route path=path!("/editor") view=pages::editor::EditorPage/>
                            <Route path=path!("/editor/:dag_id") view=pages::editor::EditorPage/>
                            <Route path=path!("/import-errors") view=pages::import_errors::ImportErrors/>
                            <Route path=path!("/plugins") view=pages::plugins::Plugins/>
                        </Routes>
                    </main>
                </Show>
            </Show>
            <ToastArea/>
        </Router>
    }
}

#[component]
fn TopBar() -> impl IntoView {
    let session = use_session();
    let sign_out = move |_| {
        spawn_local(async move {
            let _ = api::call("POST", "/auth/logout", None).await;
            api::set_csrf(None);
            session.user.set(None);
        });
    };
    let who =
        move || session.user.with(|u| u.as_ref().map(|u| format!("{} ({:?})", u.username, u.role).to_lowercase()));
    view! {
        <header class="top">
            <span class="brand">"Updraft"</span>
            <nav>
                <A href="/dags">"DAGs"</A>
                <Show when=move || session.can(Role::Op)>
                    <A href="/editor">"New DAG"</A>
                </Show>
                <A href="/import-errors">"Import errors"</A>
                <A href="/plugins">"Plugins"</A>
            </nav>
            <div class="who">
                <span data-testid="who">{who}</span>
                <button class="small" on:click=sign_out>"Sign out"</button>
            </div>
        </header>
    }
}
