//! A task instance: its state, tries and times, the log of each try (a running try's log
//! tails live from its event stream), and clear / mark success / mark failed for roles that
//! may use them.

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::components::A;
use leptos_router::hooks::use_params_map;
use serde_json::json;
use updraft_types::api::{LogResponse, TaskInstanceResponse};

use crate::api;
use crate::components::live;
use crate::components::state::{StateBadge, finished};
use crate::components::toast::use_toasts;
use crate::pages::when;
use crate::session::{Role, use_session};

#[component]
pub fn TaskPage() -> impl IntoView {
    let params = use_params_map();
    let get = move |key: &'static str| Memo::new(move |_| params.with(|p| p.get(key).unwrap_or_default()));
    let (dag_id, run_id, task_id) = (get("dag_id"), get("run_id"), get("task_id"));
    let ti = RwSignal::new(None::<Result<TaskInstanceResponse, String>>);
    let chosen_try = RwSignal::new(None::<i32>);
    let session = use_session();
    let toasts = use_toasts();
    let busy = RwSignal::new(false);
    let base = move || {
        format!(
            "/api/v2/dags/{}/dagRuns/{}/taskInstances/{}",
            api::seg(&dag_id.get_untracked()),
            api::seg(&run_id.get_untracked()),
            api::seg(&task_id.get_untracked())
        )
    };
    let load = move || {
        let path = base();
        spawn_local(async move {
            ti.set(Some(api::get::<TaskInstanceResponse>(&path).await.map_err(|e| e.detail)));
        });
    };
    Effect::new(move |_| {
        dag_id.track();
        run_id.track();
        task_id.track();
        chosen_try.set(None);
        load();
    });
    live::state_changes(
        move |event| {
            let ours = event.dag_id == dag_id.get_untracked()
                && event.dag_run_id == run_id.get_untracked()
                && event.task_id.as_deref() == Some(task_id.get_untracked().as_str());
            if ours {
                load();
            }
        },
        load,
    );
    let tries = Memo::new(move |_| ti.with(|t| t.as_ref().and_then(|t| t.as_ref().ok()).map_or(0, |t| t.try_number)));
    let shown_try = Memo::new(move |_| chosen_try.get().unwrap_or_else(|| tries.get()));
    let act = toasts.act(busy, load);
    let clear = move |_| {
        let path = format!("/api/v2/dags/{}/clearTaskInstances", api::seg(&dag_id.get_untracked()));
        let body = json!({
            "dag_run_id": run_id.get_untracked(), "task_ids": [task_id.get_untracked()],
            "dry_run": false, "only_failed": false,
        });
        act("POST", path, body, "Task cleared: it runs again");
    };
    view! {
        <div class="row">
            <h1>
                <A href=move || format!("/dags/{}", api::seg(&dag_id.get()))>{move || dag_id.get()}</A>
                " / " <A href=move || format!("/dags/{}/runs/{}", api::seg(&dag_id.get()), api::seg(&run_id.get()))>{move || run_id.get()}</A>
                " / " <span data-testid="task-title">{move || task_id.get()}</span>
            </h1>
            <span class="spacer"></span>
            <Show when=move || session.can(Role::User)>
                <button disabled=move || busy.get() data-testid="task-clear" on:click=clear>"Clear"</button>
                <button disabled=move || busy.get()
                    on:click=move |_| act("PATCH", base(), json!({ "new_state": "success" }), "Task marked success")>"Mark success"</button>
                <button class="danger" disabled=move || busy.get()
                    on:click=move |_| act("PATCH", base(), json!({ "new_state": "failed" }), "Task marked failed")>"Mark failed"</button>
            </Show>
        </div>
        {move || match ti.get() {
            None => view! { <div class="empty"><span class="spinner"></span></div> }.into_any(),
            Some(Err(e)) => view! { <div class="empty error-text">{e}</div> }.into_any(),
            Some(Ok(t)) => view! {
                <dl class="kv panel">
                    <dt>"State"</dt><dd data-testid="task-state"><StateBadge state=t.state.clone().unwrap_or_default()/></dd>
                    <dt>"Try"</dt><dd>{format!("{} of {}", t.try_number, t.max_tries)}</dd>
                    <dt>"Operator"</dt><dd>{t.operator.clone().unwrap_or_default()}</dd>
                    <dt>"Started"</dt><dd>{when(t.start_date.as_deref())}</dd>
                    <dt>"Ended"</dt><dd>{when(t.end_date.as_deref())}</dd>
                    <dt>"Duration"</dt><dd>{t.duration.map(|d| format!("{d:.2} s")).unwrap_or_else(|| "—".into())}</dd>
                    <dt>"Host"</dt><dd>{t.hostname.clone().unwrap_or_default()}</dd>
                    <dt>"Pool"</dt><dd>{t.pool.clone()}</dd>
                </dl>
            }.into_any(),
        }}
        <div class="row" style="margin-top: 14px">
            <h2 style="margin: 0">"Log"</h2>
            {move || (1..=tries.get()).map(|n| view! {
                <button class="small" class:primary=move || shown_try.get() == n on:click=move |_| chosen_try.set(Some(n))
                    data-testid=format!("try-{n}")>{format!("Try {n}")}</button>
            }).collect_view()}
        </div>
        {move || {
            let n = shown_try.get();
            if n == 0 {
                view! { <pre class="log" data-testid="log">"No try has started yet."</pre> }.into_any()
            } else {
                let running = ti.with_untracked(|t| {
                    t.as_ref().and_then(|t| t.as_ref().ok()).is_some_and(|t| t.try_number == n && !finished(t.state.as_deref().unwrap_or("")))
                });
                view! { <LogView path=format!("{}/logs/{n}", base()) stream=running/> }.into_any()
            }
        }}
    }
}

/// One try's log: read once, or, while the try runs, streamed line by line.
#[component]
fn LogView(path: String, stream: bool) -> impl IntoView {
    let text = RwSignal::new(String::new());
    let state = RwSignal::new(if stream { "live" } else { "loading" });
    if stream {
        let stream_path = path.replacen("/api/v2/", "/api/updraft/", 1) + "/stream";
        live::listen(
            &stream_path,
            vec![
                (
                    "lines",
                    Box::new(move |data: String| {
                        text.update(|t| {
                            t.push_str(&data);
                            t.push('\n');
                        })
                    }),
                ),
                ("end", Box::new(move |_| state.set("done"))),
                (
                    "error",
                    Box::new(move |data: String| {
                        text.update(|t| t.push_str(&format!("\n[{data}]\n")));
                        state.set("done");
                    }),
                ),
            ],
        );
    } else {
        spawn_local(async move {
            match api::get::<LogResponse>(&format!("{path}?full_content=true")).await {
                Ok(log) => text.set(log.content.into_iter().map(|m| m.event + "\n").collect()),
                Err(e) => text.set(format!("[{}]", e.detail)),
            }
            state.set("done");
        });
    }
    view! {
        <div class="muted" style="margin: 6px 0" data-testid="log-state">
            {move || match state.get() { "live" => "● live: following the log as the try writes it", "loading" => "loading…", _ => "" }}
        </div>
        <pre class="log" data-testid="log">{move || { let t = text.get(); if t.is_empty() && state.get() == "done" { "(empty log)".to_owned() } else { t } }}</pre>
    }
}
