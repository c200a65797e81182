//! The DAG list: every DAG with its owner, schedule, next run and last run, searchable and
//! filterable by tag; pause toggles and trigger buttons for roles that may use them. It reads
//! `GET /api/updraft/dags` (one request for any number of DAGs), follows run states live and
//! re-reads the list every few seconds, so a new DAG file shows up on its own.

use std::time::Duration;

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::components::A;
use leptos_router::hooks::use_query_map;
use updraft_types::api::{DagOverview, DagOverviewCollection, DagResponse};

use crate::api;
use crate::components::live;
use crate::components::state::StateBadge;
use crate::components::toast::use_toasts;
use crate::components::trigger::TriggerButton;
use crate::pages::when;
use crate::session::{Role, use_session};

const REFRESH: Duration = Duration::from_secs(3);
/// Rows drawn at first, and added each time the list is scrolled to its end: the list is usable
/// at once with any number of DAGs (search narrows it).
const PAGE: usize = 100;

#[component]
pub fn DagList() -> impl IntoView {
    let dags = RwSignal::new(None::<Result<Vec<DagOverview>, String>>);
    let query = use_query_map();
    let search = RwSignal::new(query.with_untracked(|q| q.get("search").unwrap_or_default()));
    let tag = RwSignal::new(None::<String>);
    let limit = RwSignal::new(PAGE);
    let load = move || {
        spawn_local(async move {
            match api::get::<DagOverviewCollection>("/api/updraft/dags").await {
                Ok(list) => dags.set(Some(Ok(list.dags))),
                Err(e) => {
                    if dags.with_untracked(Option::is_none) {
                        dags.set(Some(Err(e.detail)));
                    }
                }
            }
        });
    };
    load();
    let timer = set_interval_with_handle(load, REFRESH).ok();
    on_cleanup(move || {
        if let Some(t) = timer {
            t.clear();
        }
    });
    live::state_changes(
        move |event| {
            if event.kind != "dag_run" {
                return;
            }
            dags.update(|list| {
                let Some(Ok(list)) = list else { return };
                if let Some(dag) = list.iter_mut().find(|d| d.dag_id == event.dag_id) {
                    match &mut dag.last_run {
                        Some(run) if run.dag_run_id == event.dag_run_id => run.state = event.state.clone(),
                        _ => load(),
                    }
                }
            });
        },
        load,
    );
    // Marks the moment the list is on screen and usable (read by the browser benchmark).
    Effect::new(move |_| {
        if dags.with(|d| matches!(d, Some(Ok(_))))
            && let Some(performance) = web_sys::window().and_then(|w| w.performance())
        {
            let _ = performance.mark("dags-interactive");
        }
    });
    let all_tags = Memo::new(move |_| {
        let mut tags: Vec<String> = dags.with(|d| match d {
            Some(Ok(list)) => list.iter().flat_map(|d| d.tags.iter().cloned()).collect(),
            _ => Vec::new(),
        });
        tags.sort();
        tags.dedup();
        tags
    });
    let shown = Memo::new(move |_| {
        let needle = search.get().to_lowercase();
        let tag = tag.get();
        dags.with(|d| match d {
            Some(Ok(list)) => list
                .iter()
                .filter(|d| {
                    (needle.is_empty()
                        || d.dag_id.to_lowercase().contains(&needle)
                        || d.description.as_deref().is_some_and(|s| s.to_lowercase().contains(&needle))
                        || d.owners.iter().any(|o| o.to_lowercase().contains(&needle)))
                        && tag.as_ref().is_none_or(|t| d.tags.contains(t))
                })
                .cloned()
                .collect::<Vec<_>>(),
            _ => Vec::new(),
        })
    });
    let count = move || {
        let total = dags.with(|d| d.as_ref().and_then(|r| r.as_ref().ok()).map_or(0, Vec::len));
        format!("{} of {} DAGs", shown.with(Vec::len), total)
    };
    let visible = Memo::new(move |_| shown.with(|all| all.iter().take(limit.get()).cloned().collect::<Vec<_>>()));
    let more = move || shown.with(Vec::len).saturating_sub(limit.get());
    // Scrolling near the end draws the next rows.
    let scroll = window_event_listener(leptos::ev::scroll, move |_| {
        let Some(window) = web_sys::window() else { return };
        let Some(body) = window.document().and_then(|d| d.body()) else { return };
        let bottom =
            window.scroll_y().unwrap_or(0.0) + window.inner_height().ok().and_then(|h| h.as_f64()).unwrap_or(0.0);
        if bottom + 600.0 >= f64::from(body.scroll_height()) && more() > 0 {
            limit.update(|l| *l += PAGE);
        }
    });
    on_cleanup(move || scroll.remove());
    view! {
        <div class="row">
            <h1>"DAGs"</h1>
            <span class="muted" data-testid="dag-count">{count}</span>
            <span class="spacer"></span>
            <input type="search" placeholder="Search DAGs, descriptions, owners" aria-label="Search DAGs" data-testid="dag-search"
                style="width: 320px" prop:value=move || search.get() on:input=move |ev| search.set(event_target_value(&ev))/>
        </div>
        <div class="row" style="margin: 8px 0 12px">
            <span class="muted">"Tags:"</span>
            <For each=move || all_tags.get() key=|t| t.clone() let:t>
                {
                    let name = t.clone();
                    let active = {
                        let name = name.clone();
                        move || tag.with(|c| c.as_deref() == Some(name.as_str()))
                    };
                    view! {
                        <button class="tag" class:active=active.clone()
                            on:click=move |_| tag.update(|c| *c = if c.as_deref() == Some(name.as_str()) { None } else { Some(name.clone()) })>
                            {t}
                        </button>
                    }
                }
            </For>
        </div>
        <div class="panel">
            {move || match dags.get() {
                None => view! { <div class="empty"><span class="spinner"></span>" Loading DAGs…"</div> }.into_any(),
                Some(Err(e)) => view! { <div class="empty error-text">{e}</div> }.into_any(),
                Some(Ok(_)) => view! {
                    <table class="list" data-testid="dag-table">
                        <thead><tr>
                            <th style="width: 50px">"On"</th><th>"DAG"</th><th>"Owner"</th><th>"Schedule"</th>
                            <th>"Next run"</th><th>"Last run"</th><th style="width: 110px"></th>
                        </tr></thead>
                        <tbody>
                            <For each=move || visible.get() key=|d| (d.dag_id.clone(), d.is_paused, d.last_run.as_ref().map(|r| (r.dag_run_id.clone(), r.state.clone())), d.next_run.clone(), d.has_import_errors) let:dag>
                                <DagRow dag=dag on_change=Callback::new(move |_| load())/>
                            </For>
                        </tbody>
                    </table>
                    <Show when=move || shown.with(Vec::is_empty)>
                        <div class="empty">"No DAG matches. Clear the search or the tag."</div>
                    </Show>
                    <Show when=move || { more() > 0 }>
                        <div class="empty">
                            <button on:click=move |_| limit.update(|l| *l += PAGE) data-testid="show-more">
                                {move || format!("Show {} more", more().min(PAGE))}
                            </button>
                        </div>
                    </Show>
                }.into_any(),
            }}
        </div>
    }
}

#[component]
fn DagRow(dag: DagOverview, on_change: Callback<()>) -> impl IntoView {
    let session = use_session();
    let toasts = use_toasts();
    let paused = RwSignal::new(dag.is_paused);
    let busy = RwSignal::new(false);
    let dag_id = dag.dag_id.clone();
    let toggle = {
        let dag_id = dag_id.clone();
        move |_| {
            let dag_id = dag_id.clone();
            let want = !paused.get_untracked();
            busy.set(true);
            spawn_local(async move {
                let path = format!("/api/v2/dags/{}", api::seg(&dag_id));
                match api::send::<DagResponse>("PATCH", &path, &serde_json::json!({ "is_paused": want })).await {
                    Ok(d) => {
                        paused.set(d.is_paused);
                        toasts.ok(format!("{dag_id} {}", if d.is_paused { "paused" } else { "unpaused" }));
                        on_change.run(());
                    }
                    Err(e) => toasts.error(e.detail),
                }
                busy.set(false);
            });
        }
    };
    let href = format!("/dags/{}", api::seg(&dag.dag_id));
    let last = dag.last_run.clone();
    let title = dag.dag_id.clone();
    let run_href = |run_id: &str| format!("/dags/{}/runs/{}", api::seg(&dag.dag_id), api::seg(run_id));
    view! {
        <tr data-dag=dag.dag_id.clone()>
            <td>
                <button class="switch" role="switch" aria-label="Run on schedule" aria-checked=move || (!paused.get()).to_string()
                    title=move || if paused.get() { "Paused: click to unpause" } else { "Active: click to pause" }
                    disabled=move || busy.get() || !session.can(Role::User) on:click=toggle></button>
            </td>
            <td>
                <A href=href><strong>{title}</strong></A>
                {dag.has_import_errors.then(|| view! { <span class="tag" style="background:#fee2e2" title="its file fails to load">"import error"</span> })}
                <div class="muted" style="font-size: 12px">
                    {dag.description.clone().unwrap_or_default()} " "
                    {dag.tags.iter().map(|t| view! { <span class="tag">{t.clone()}</span> }).collect_view()}
                </div>
            </td>
            <td>{dag.owners.join(", ")}</td>
            <td class="mono">{dag.schedule.clone().unwrap_or_else(|| "manual".into())}</td>
            <td>{when(dag.next_run.as_deref())}</td>
            <td>
                {match last {
                    Some(run) => view! {
                        <A href=run_href(&run.dag_run_id)>
                            <StateBadge state=run.state.clone()/>
                        </A>
                        <div class="muted" style="font-size: 12px">{when(run.start_date.as_deref().or(Some(run.run_after.as_str())))}</div>
                    }.into_any(),
                    None => view! { <span class="muted">"never run"</span> }.into_any(),
                }}
            </td>
            <td>
                <Show when=move || session.can(Role::User)>
                    <TriggerButton dag_id=dag_id.clone() on_done=Callback::new(move |_| on_change.run(()))/>
                </Show>
            </td>
        </tr>
    }
}
