//! A run: its state and times, its task instances (live), and the actions on it for roles that
//! may use them: clear (re-run) and mark success or failed.

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::components::A;
use leptos_router::hooks::use_params_map;
use serde_json::json;
use updraft_types::api::{DagRunResponse, TaskInstanceCollection, TaskInstanceResponse};

use crate::api;
use crate::components::live;
use crate::components::state::StateBadge;
use crate::components::toast::use_toasts;
use crate::pages::when;
use crate::session::{Role, use_session};

#[component]
pub fn RunPage() -> impl IntoView {
    let params = use_params_map();
    let dag_id = Memo::new(move |_| params.with(|p| p.get("dag_id").unwrap_or_default()));
    let run_id = Memo::new(move |_| params.with(|p| p.get("run_id").unwrap_or_default()));
    let run = RwSignal::new(None::<Result<DagRunResponse, String>>);
    let tis = RwSignal::new(Vec::<TaskInstanceResponse>::new());
    let session = use_session();
    let toasts = use_toasts();
    let busy = RwSignal::new(false);
    let base = move || {
        format!("/api/v2/dags/{}/dagRuns/{}", api::seg(&dag_id.get_untracked()), api::seg(&run_id.get_untracked()))
    };
    let load = move || {
        let base = base();
        spawn_local(async move {
            run.set(Some(api::get::<DagRunResponse>(&base).await.map_err(|e| e.detail)));
            if let Ok(list) = api::get::<TaskInstanceCollection>(&format!("{base}/taskInstances?limit=10000")).await {
                tis.set(list.task_instances);
            }
        });
    };
    Effect::new(move |_| {
        dag_id.track();
        run_id.track();
        load();
    });
    live::state_changes(
        move |event| {
            if event.dag_id != dag_id.get_untracked() || event.dag_run_id != run_id.get_untracked() {
                return;
            }
            match event.task_id {
                None => run.update(|r| {
                    if let Some(Ok(r)) = r {
                        r.state = event.state.clone();
                    }
                }),
                Some(task) => tis.update(|list| {
                    if let Some(ti) = list.iter_mut().find(|t| t.task_id == task) {
                        ti.state = Some(event.state.clone());
                        if let Some(n) = event.try_number {
                            ti.try_number = n;
                        }
                    }
                }),
            }
        },
        load,
    );
    let act = toasts.act(busy, load);
    view! {
        <div class="row">
            <h1>
                <A href=move || format!("/dags/{}", api::seg(&dag_id.get()))>{move || dag_id.get()}</A>
                " / " {move || run_id.get()}
            </h1>
            <span class="spacer"></span>
            <Show when=move || session.can(Role::User)>
                <button disabled=move || busy.get() data-testid="run-clear"
                    on:click=move |_| act("POST", format!("{}/clear", base()), json!({ "dry_run": false }), "Run cleared: its tasks run again")>
                    "Clear run"
                </button>
                <button disabled=move || busy.get()
                    on:click=move |_| act("PATCH", base(), json!({ "state": "success" }), "Run marked success")>"Mark success"</button>
                <button class="danger" disabled=move || busy.get()
                    on:click=move |_| act("PATCH", base(), json!({ "state": "failed" }), "Run marked failed")>"Mark failed"</button>
            </Show>
        </div>
        {move || match run.get() {
            None => view! { <div class="empty"><span class="spinner"></span></div> }.into_any(),
            Some(Err(e)) => view! { <div class="empty error-text">{e}</div> }.into_any(),
            Some(Ok(r)) => view! {
                <dl class="kv panel">
                    <dt>"State"</dt><dd data-testid="run-state"><StateBadge state=r.state.clone()/></dd>
                    <dt>"Type"</dt><dd>{r.run_type.clone()}</dd>
                    <dt>"Logical date"</dt><dd>{when(r.logical_date.as_deref())}</dd>
                    <dt>"Started"</dt><dd>{when(r.start_date.as_deref())}</dd>
                    <dt>"Ended"</dt><dd>{when(r.end_date.as_deref())}</dd>
                    <dt>"Duration"</dt><dd>{r.duration.map(|d| format!("{d:.1} s")).unwrap_or_else(|| "—".into())}</dd>
                    <dt>"Triggered by"</dt><dd>{r.triggering_user_name.clone().unwrap_or_default()}</dd>
                    <dt>"Conf"</dt><dd class="mono">{r.conf.to_string()}</dd>
                </dl>
            }.into_any(),
        }}
        <h2>"Task instances"</h2>
        <div class="panel">
            <table class="list">
                <thead><tr><th>"Task"</th><th>"State"</th><th>"Try"</th><th>"Operator"</th><th>"Started"</th><th>"Duration"</th></tr></thead>
                <tbody>
                    <For each=move || tis.get() key=|t| (t.task_id.clone(), t.state.clone(), t.try_number, t.duration.map(|d| d.to_bits())) let:ti>
                        <tr>
                            <td><A href=format!("/dags/{}/runs/{}/tasks/{}", api::seg(&ti.dag_id), api::seg(&ti.dag_run_id), api::seg(&ti.task_id))>{ti.task_id.clone()}</A></td>
                            <td><StateBadge state=ti.state.clone().unwrap_or_default()/></td>
                            <td>{ti.try_number}</td>
                            <td>{ti.operator.clone().unwrap_or_default()}</td>
                            <td>{when(ti.start_date.as_deref())}</td>
                            <td>{ti.duration.map(|d| format!("{d:.2} s")).unwrap_or_else(|| "—".into())}</td>
                        </tr>
                    </For>
                </tbody>
            </table>
        </div>
    }
}
