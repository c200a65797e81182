//! The app's frame: the router with one route per page, the top bar and the toasts, around the
//! session (`session`: who is signed in, with which role). Every URL works on a reload: the
//! server answers `index.html` for any path outside the API and the router draws the page; a
//! visitor who is not signed in sees the sign-in form in place and, once signed in, the page
//! they asked for.

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::components::{A, Redirect, Route, Router, Routes};
use leptos_router::path;

use crate::components::toast::{ToastArea, Toasts};
use crate::pages;
use crate::session::{Role, Session, use_session};

#[component]
pub fn App() -> impl IntoView {
    let session = Session::start();
    provide_context(Toasts::new());
    view! {
        <Router>
            <Show when=move || session.checked.get() fallback=|| view! { <div class="boot">"Loading Updraft…"</div> }>
                <Show when=move || session.is_signed_in() fallback=|| view! { <pages::login::Login/> }>
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
    let sign_out = move |_| spawn_local(session.sign_out());
    let who = move || session.user.with(|u| u.as_ref().map(|u| format!("{} ({})", u.username, u.role).to_lowercase()));
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
