//! A DAG's page: its settings and actions, the grid view (latest runs × tasks, coloured by
//! state; a cell opens the task instance) and the graph view (the canvas). Both follow state
//! changes live over the event stream: a triggered run appears and turns green on screen.

use std::collections::HashMap;
use std::sync::Arc;

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::NavigateOptions;
use leptos_router::components::A;
use leptos_router::hooks::{use_navigate, use_params_map, use_query_map};
use updraft_types::RunState;
use updraft_types::api::{DagResponse, GridResponse};
use wasm_bindgen::JsCast;

use crate::api;
use crate::components::graph::{Graph, GraphJson, GraphView};
use crate::components::live;
use crate::components::state::{Legend, color};
use crate::components::toast::use_toasts;
use crate::components::trigger::TriggerButton;
use crate::session::{Role, use_session};

#[component]
pub fn DagPage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let dag_id = Memo::new(move |_| params.with(|p| p.get("dag_id").unwrap_or_default()));
    let tab = Memo::new(move |_| query.with(|q| q.get("tab").unwrap_or_else(|| "grid".into())));
    let session = use_session();
    let toasts = use_toasts();
    let dag = RwSignal::new(None::<Result<DagResponse, String>>);
    let refresh = RwSignal::new(0u32);
    Effect::new(move |_| {
        let id = dag_id.get();
        spawn_local(async move {
            let answer = api::get::<DagResponse>(&format!("/api/v2/dags/{}", api::seg(&id))).await;
            dag.set(Some(answer.map_err(|e| e.detail)));
        });
    });
    let toggle_pause = move |_| {
        let Some(Ok(d)) = dag.get_untracked() else { return };
        spawn_local(async move {
            let path = format!("/api/v2/dags/{}", api::seg(&d.dag_id));
            match api::send::<DagResponse>("PATCH", &path, &serde_json::json!({ "is_paused": !d.is_paused })).await {
                Ok(updated) => {
                    toasts.ok(format!("{} {}", updated.dag_id, if updated.is_paused { "paused" } else { "unpaused" }));
                    dag.set(Some(Ok(updated)));
                }
                Err(e) => toasts.error(e.detail),
            }
        });
    };
    let tab_link = move |name: &'static str, label: &'static str| {
        view! {
            <a href=move || format!("/dags/{}?tab={name}", api::seg(&dag_id.get())) class:active=move || tab.get() == name
                data-testid=format!("tab-{name}")>{label}</a>
        }
    };
    view! {
        {move || match dag.get() {
            None => view! { <div class="empty"><span class="spinner"></span>" Loading…"</div> }.into_any(),
            Some(Err(e)) => view! { <div class="empty error-text">{e}</div> }.into_any(),
            Some(Ok(d)) => {
                let id = d.dag_id.clone();
                view! {
                    <div class="row">
                        <h1 data-testid="dag-title">{d.dag_id.clone()}</h1>
                        <button class="switch" role="switch" aria-label="Run on schedule" aria-checked=(!d.is_paused).to_string()
                            disabled=!session.can(Role::User) on:click=toggle_pause></button>
                        <span class="muted">{if d.is_paused { "paused" } else { "active" }}</span>
                        <span class="muted mono">{d.timetable_summary.clone().unwrap_or_else(|| "manual".into())}</span>
                        <span class="spacer"></span>
                        <Show when=move || session.can(Role::Op)>
                            <A href=format!("/editor/{}", api::seg(&d.dag_id))><button class="small">"Edit DAG file"</button></A>
                        </Show>
                        <Show when=move || session.can(Role::User)>
                            <TriggerButton dag_id=id.clone() on_done=Callback::new(move |_| refresh.update(|n| *n += 1))/>
                        </Show>
                    </div>
                    <div class="muted">{d.description.clone().unwrap_or_default()}</div>
                }.into_any()
            }
        }}
        <div class="tabs">
            {tab_link("grid", "Grid")}
            {tab_link("graph", "Graph")}
        </div>
        {move || {
            let id = dag_id.get();
            if tab.get() == "graph" {
                view! { <DagGraph dag_id=id refresh=refresh/> }.into_any()
            } else {
                view! { <DagGrid dag_id=id refresh=refresh/> }.into_any()
            }
        }}
        <Legend/>
    }
}

fn grid_html(grid: &GridResponse) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(64 + grid.tasks.len() * (60 + grid.runs.len() * 60));
    out.push_str("<table class=\"grid\" data-testid=\"grid\"><thead><tr><th></th>");
    for (r, run) in grid.runs.iter().enumerate() {
        let _ = write!(
            out,
            "<th class=\"runhead\"><span class=\"runbar\" data-r=\"{r}\" data-run=\"{}\" data-state=\"{}\" style=\"--c:{}\" title=\"{} {}\"></span></th>",
            attr(&run.dag_run_id),
            attr(&run.state),
            color(&run.state),
            attr(&run.dag_run_id),
            attr(&run.state)
        );
    }
    out.push_str("</tr></thead><tbody>");
    for (t, task) in grid.tasks.iter().enumerate() {
        let _ = write!(out, "<tr><th class=\"task\" title=\"{0}\">{0}</th>", attr(task));
        for (r, column) in grid.states.iter().enumerate() {
            let state = column.get(t).map_or("", String::as_str);
            let _ = write!(
                out,
                "<td data-t=\"{t}\" data-r=\"{r}\" data-task=\"{}\" data-state=\"{state}\" style=\"background:{}\" title=\"{} · {}\"></td>",
                attr(task),
                color(state),
                attr(task),
                if state.is_empty() { "no state" } else { state }
            );
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    out
}

fn attr(text: &str) -> String {
    text.replace('&', "&amp;").replace('"', "&quot;").replace('<', "&lt;").replace('>', "&gt;")
}

#[component]
fn DagGrid(dag_id: String, refresh: RwSignal<u32>) -> impl IntoView {
    let grid = RwSignal::new(None::<Result<GridResponse, String>>);
    let id = StoredValue::new(dag_id);
    let load = move || {
        let dag_id = id.get_value();
        spawn_local(async move {
            let answer =
                api::get::<GridResponse>(&format!("/api/updraft/dags/{}/grid?limit=25", api::seg(&dag_id))).await;
            grid.set(Some(answer.map_err(|e| e.detail)));
        });
    };
    Effect::new(move |_| {
        refresh.track();
        load();
    });
    live::state_changes(
        move |event| {
            if event.dag_id != id.get_value() {
                return;
            }
            let mut reload = false;
            grid.update(|g| {
                let Some(Ok(g)) = g else { return };
                let Some(r) = g.runs.iter().position(|run| run.dag_run_id == event.dag_run_id) else {
                    reload = true;
                    return;
                };
                match event.task_id.as_deref() {
                    None => g.runs[r].state = event.state.clone(),
                    Some(task) => {
                        if let Some(t) = g.tasks.iter().position(|x| x == task) {
                            g.states[r][t] = event.state.clone();
                        }
                    }
                }
            });
            if reload {
                load();
            }
        },
        load,
    );
    let navigate = use_navigate();
    let on_click = move |ev: leptos::ev::MouseEvent| {
        let Some(target) = ev.target().and_then(|t| t.dyn_into::<web_sys::Element>().ok()) else { return };
        let Some(Ok(g)) = grid.get_untracked() else { return };
        let r = target.get_attribute("data-r").and_then(|r| r.parse::<usize>().ok());
        let t = target.get_attribute("data-t").and_then(|t| t.parse::<usize>().ok());
        let dag = api::seg(&id.get_value());
        match (r.and_then(|r| g.runs.get(r)), t.and_then(|t| g.tasks.get(t))) {
            (Some(run), Some(task)) => navigate(
                &format!("/dags/{dag}/runs/{}/tasks/{}", api::seg(&run.dag_run_id), api::seg(task)),
                NavigateOptions::default(),
            ),
            (Some(run), None) => {
                navigate(&format!("/dags/{dag}/runs/{}", api::seg(&run.dag_run_id)), NavigateOptions::default())
            }
            _ => {}
        }
    };
    view! {
        {move || match grid.get() {
            None => view! { <div class="empty"><span class="spinner"></span>" Loading the grid…"</div> }.into_any(),
            Some(Err(e)) => view! { <div class="empty error-text">{e}</div> }.into_any(),
            Some(Ok(g)) if g.runs.is_empty() => view! {
                <div class="panel empty" data-testid="grid-empty">"No runs yet: trigger one."</div>
                <div class="grid-wrap panel" style="margin-top: 8px" inner_html=grid_html(&g) on:click=on_click.clone()></div>
            }.into_any(),
            Some(Ok(g)) => view! {
                <div class="grid-wrap panel" inner_html=grid_html(&g) on:click=on_click.clone()></div>
            }.into_any(),
        }}
    }
}

#[component]
fn DagGraph(dag_id: String, refresh: RwSignal<u32>) -> impl IntoView {
    let graph = RwSignal::new(None::<Arc<Graph>>);
    let error = RwSignal::new(None::<String>);
    let states = RwSignal::new(HashMap::<String, String>::new());
    let shown_run = RwSignal::new(None::<String>);
    let id = StoredValue::new(dag_id);
    let load = move || {
        let dag_id = id.get_value();
        spawn_local(async move {
            match api::get::<GraphJson>(&format!("/api/updraft/dags/{}/graph", api::seg(&dag_id))).await {
                Ok(mut json) => {
                    let run = json.latest_run.take().map(|r| r.dag_run_id);
                    let s: HashMap<String, String> =
                        std::mem::take(&mut json.states).into_iter().map(|(k, v)| (k, v.unwrap_or_default())).collect();
                    let g = Graph::from_parsed(json);
                    shown_run.set(run);
                    states.set(s);
                    if graph.with_untracked(|old| old.as_deref() != Some(&g)) {
                        graph.set(Some(Arc::new(g)));
                    }
                    if let Some(perf) = web_sys::window().and_then(|w| w.performance()) {
                        let _ = perf.mark("graph-loaded");
                    }
                }
                Err(e) => error.set(Some(e.detail)),
            }
        });
    };
    Effect::new(move |_| {
        refresh.track();
        load();
    });
    live::state_changes(
        move |event| {
            if event.dag_id != id.get_value() {
                return;
            }
            let current = shown_run.get_untracked();
            if current.as_deref() != Some(event.dag_run_id.as_str()) {
                // A newer run started: show it from its first state.
                if event.kind == "dag_run" && event.state.parse::<RunState>().is_ok_and(|s| !s.is_finished()) {
                    shown_run.set(Some(event.dag_run_id.clone()));
                    states.set(HashMap::new());
                } else {
                    return;
                }
            }
            if let Some(task) = event.task_id {
                states.update(|s| {
                    s.insert(task, event.state);
                });
            }
        },
        load,
    );
    let navigate = use_navigate();
    let open = Callback::new(move |task: String| {
        if let Some(run) = shown_run.get_untracked() {
            navigate(
                &format!("/dags/{}/runs/{}/tasks/{}", api::seg(&id.get_value()), api::seg(&run), api::seg(&task)),
                NavigateOptions::default(),
            );
        }
    });
    view! {
        <div class="muted" style="margin-bottom: 6px" data-testid="graph-run">
            {move || match shown_run.get() { Some(r) => format!("States of run {r}"), None => "No runs yet".to_owned() }}
            " · drag to pan, wheel or +/− to zoom, 0 to fit, click a task for its lineage, double-click to open it"
        </div>
        {move || error.get().map(|e| view! { <div class="error-text">{e}</div> })}
        <GraphView graph=graph states=states on_open=open/>
    }
}
