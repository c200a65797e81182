//! The DAG file editor: a new one-file DAG from a template, or an existing DAG's file. The text
//! is validated in the browser on every keystroke by the same DAG model as the server's
//! (`updraft-dag`, compiled to wasm: no round trip), errors shown at their line, the resulting
//! graph previewed as it is typed, and the chosen operator's parameters listed from its schema.
//! Saving goes through the API, which validates again and writes the file atomically.

use std::sync::Arc;

use leptos::html::{Div, Pre, Textarea};
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::NavigateOptions;
use leptos_router::hooks::{use_navigate, use_params_map};
use serde_json::Value;
use updraft_types::api::{DagFileWritten, DagSource};

use crate::api;
use crate::components::graph::{Graph, GraphView};
use crate::components::toast::use_toasts;
use crate::components::yaml;
use crate::session::{Role, use_session};

const TEMPLATE: &str = r#"# A one-file DAG: its settings, then its tasks. Tasks that are not SQL say what
# they wait for with `upstream:`; SQL tasks name the tables they read in `depends_on:`.
dag: my_new_dag
description: Describe what this DAG does.
schedule: null          # or "@daily", or a cron expression such as "0 3 * * *"
start: 2026-01-01
tags: [new]
owner: data-team
defaults:
  operator: noop
  retries: 1
tasks:
  - id: extract
  - id: transform
    upstream: [extract]
  - id: load
    upstream: [transform]
"#;

/// A problem at a line, from the browser's validation or the server's.
#[derive(Debug, Clone, PartialEq)]
struct Problem {
    error: bool,
    line: u32,
    column: u32,
    message: String,
    help: Option<String>,
}

/// What the DAG model makes of the text: problems, and the graph JSON when it is valid.
#[derive(Debug, Clone, PartialEq)]
struct Checked {
    problems: Vec<Problem>,
    graph: Option<Arc<Graph>>,
    dag_id: Option<String>,
}

fn check(file: &str, text: &str) -> Checked {
    let name: Arc<str> = Arc::from(file);
    let folder_dag = file.ends_with("/dag.yaml") || file.ends_with("/dag.yml") || file == "dag.yaml";
    let (dag, diagnostics, id) = if folder_dag {
        // A folder DAG's dag.yaml holds the settings; its tasks are files of their own.
        match updraft_dag::parse_dag_file(&name, text) {
            Ok(spec) => (None, Vec::new(), Some(spec.id.value.to_string())),
            Err(diagnostics) => (None, diagnostics, None),
        }
    } else {
        let (dag, diagnostics) = updraft_dag::validate_source_structure(&name, text, updraft_dag::Options::default());
        let id = dag.as_ref().map(|d| d.id.to_string());
        (dag, diagnostics, id)
    };
    let problems = diagnostics
        .iter()
        .map(|d| Problem {
            error: d.is_error(),
            line: d.location.pos.line,
            column: d.location.pos.col,
            message: d.message.clone(),
            help: d.help.clone(),
        })
        .collect();
    let graph = dag
        .as_ref()
        .and_then(|dag| serde_json::to_value(updraft_dag::export::graph_json(dag)).ok())
        .and_then(|json| Graph::from_json(&json).ok())
        .map(Arc::new);
    Checked { problems, graph, dag_id: id }
}

/// The highlighted text, one element per line, with each problem's message at its line.
fn highlighted(text: &str, problems: &[Problem]) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for (i, line) in text.split('\n').enumerate() {
        let n = i as u32 + 1;
        let here: Vec<&Problem> = problems.iter().filter(|p| p.line == n).collect();
        let class = if here.iter().any(|p| p.error) {
            "line err"
        } else if here.is_empty() {
            "line"
        } else {
            "line warn"
        };
        out.push_str("<div class=\"");
        out.push_str(class);
        out.push_str("\">");
        yaml::line(line, &mut out);
        if let Some(first) = here.first() {
            out.push_str("<span class=\"inline-msg\">    ← ");
            let message = first.message.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
            out.push_str(&message);
            out.push_str("</span>");
        }
        if line.is_empty() && here.is_empty() {
            out.push(' ');
        }
        out.push_str("</div>");
    }
    out
}

/// The operator of the task around `line` (its own `operator:`, else the defaults').
fn operator_at(text: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = text.split('\n').collect();
    let value = |l: &str| {
        l.trim_start()
            .trim_start_matches("- ")
            .trim_start()
            .strip_prefix("operator:")
            .map(|v| v.trim().trim_matches('"').to_owned())
    };
    // Walk up to the start of the list item holding the line, then down to its end.
    let mut start = line.min(lines.len().saturating_sub(1));
    while start > 0 && !lines[start].trim_start().starts_with("- ") {
        if !lines[start].starts_with(' ') && !lines[start].is_empty() {
            break;
        }
        start -= 1;
    }
    if lines.get(start).is_some_and(|l| l.trim_start().starts_with("- ")) {
        let indent = lines[start].len() - lines[start].trim_start().len();
        for (k, l) in lines.iter().enumerate().skip(start) {
            let this_indent = l.len() - l.trim_start().len();
            if k > start && !l.trim().is_empty() && (this_indent <= indent) {
                break;
            }
            if let Some(op) = value(l) {
                return Some(op);
            }
        }
    }
    let mut in_defaults = false;
    for l in &lines {
        if !l.starts_with(' ') {
            in_defaults = l.starts_with("defaults:");
        } else if in_defaults && let Some(op) = value(l) {
            return Some(op);
        }
    }
    None
}

#[component]
pub fn EditorPage() -> impl IntoView {
    let params = use_params_map();
    let editing = Memo::new(move |_| params.with(|p| p.get("dag_id")));
    let session = use_session();
    let toasts = use_toasts();
    let navigate = use_navigate();
    let text = RwSignal::new(String::new());
    let file = RwSignal::new("new DAG".to_owned());
    let loaded = RwSignal::new(false);
    let load_error = RwSignal::new(None::<String>);
    let server_problems = RwSignal::new(Vec::<Problem>::new());
    let saving = RwSignal::new(false);
    let caret_line = RwSignal::new(0usize);
    let operators = RwSignal::new(Vec::<Value>::new());
    spawn_local(async move {
        if let Ok(list) = api::load_operators().await {
            operators.set(list);
        }
    });
    Effect::new(move |_| {
        server_problems.set(Vec::new());
        match editing.get() {
            None => {
                text.set(TEMPLATE.to_owned());
                file.set("new DAG".to_owned());
                loaded.set(true);
            }
            Some(id) => {
                loaded.set(false);
                spawn_local(async move {
                    match api::get::<DagSource>(&format!("/api/updraft/dags/{}/source", api::seg(&id))).await {
                        Ok(source) => {
                            text.set(source.content);
                            file.set(source.file);
                            load_error.set(None);
                        }
                        Err(e) => load_error.set(Some(e.detail)),
                    }
                    loaded.set(true);
                });
            }
        }
    });
    let checked = Memo::new(move |_| {
        let started = web_sys::window().and_then(|w| w.performance()).map(|p| p.now());
        let result = text.with(|t| file.with(|f| check(f, t)));
        if let (Some(start), Some(perf)) = (started, web_sys::window().and_then(|w| w.performance())) {
            let _ = js_sys::Reflect::set(
                &perf,
                &wasm_bindgen::JsValue::from_str("__updraftLastCheckMs"),
                &wasm_bindgen::JsValue::from_f64(perf.now() - start),
            );
        }
        result
    });
    // The last graph that validated: the preview keeps it while the text is broken.
    let preview = RwSignal::new(None::<Arc<Graph>>);
    Effect::new(move |_| {
        if let Some(g) = checked.with(|c| c.graph.clone()) {
            preview.set(Some(g));
        }
    });
    let problems = Memo::new(move |_| {
        let mut all = checked.with(|c| c.problems.clone());
        all.extend(server_problems.get());
        all.sort_by_key(|p| (p.line, p.column));
        all
    });
    let html = Memo::new(move |_| text.with(|t| problems.with(|p| highlighted(t, p))));
    let line_count = Memo::new(move |_| text.with(|t| t.split('\n').count()));

    let textarea = NodeRef::<Textarea>::new();
    let pre = NodeRef::<Pre>::new();
    let gutter = NodeRef::<Div>::new();
    let sync_scroll = move || {
        if let (Some(area), Some(pre), Some(gutter)) =
            (textarea.get_untracked(), pre.get_untracked(), gutter.get_untracked())
        {
            pre.set_scroll_top(area.scroll_top());
            pre.set_scroll_left(area.scroll_left());
            gutter.set_scroll_top(area.scroll_top());
        }
    };
    let track_caret = move || {
        if let Some(area) = textarea.get_untracked() {
            let at = area.selection_start().ok().flatten().unwrap_or(0) as usize;
            let line = text.with_untracked(|t| t.chars().take(at).filter(|c| *c == '\n').count());
            caret_line.set(line);
        }
    };
    let jump_to = move |line: u32| {
        if let Some(area) = textarea.get_untracked() {
            let offset: usize = text.with_untracked(|t| {
                t.split('\n').take(line.saturating_sub(1) as usize).map(|l| l.chars().count() + 1).sum()
            });
            let _ = area.focus();
            let _ = area.set_selection_range(offset as u32, offset as u32);
            area.set_scroll_top(((line.saturating_sub(5)) * 20) as i32);
            sync_scroll();
            track_caret();
        }
    };
    let save = move || {
        let Some(dag_id) = checked.with_untracked(|c| c.dag_id.clone()) else {
            toasts.error("Fix the errors first: the DAG does not validate");
            return;
        };
        if checked.with_untracked(|c| c.problems.iter().any(|p| p.error)) {
            toasts.error("Fix the errors first: the DAG does not validate");
            return;
        }
        saving.set(true);
        server_problems.set(Vec::new());
        let content = text.get_untracked();
        let existing = editing.get_untracked();
        let navigate = navigate.clone();
        spawn_local(async move {
            let body = serde_json::json!({ "content": content });
            let answer = match &existing {
                Some(id) => {
                    api::send::<DagFileWritten>("PUT", &format!("/api/updraft/dags/{}/source", api::seg(id)), &body)
                        .await
                }
                None => api::send::<DagFileWritten>("POST", "/api/updraft/dags", &body).await,
            };
            match answer {
                Ok(written) => {
                    if existing.is_some() {
                        toasts.ok(format!("Saved {}: the scheduler picks it up within seconds", written.file));
                    } else {
                        toasts.ok(format!(
                            "Created {} in {}: it appears in the list within seconds",
                            written.dag_id, written.file
                        ));
                        navigate(&format!("/dags?search={}", api::seg(&dag_id)), NavigateOptions::default());
                    }
                }
                Err(e) => {
                    toasts.error(format!("Not saved: {}", e.detail));
                    server_problems.set(
                        e.errors
                            .into_iter()
                            .map(|l| Problem {
                                error: l.severity == "error",
                                line: l.line.max(1),
                                column: l.column,
                                message: format!("(server) {}", l.message),
                                help: l.help,
                            })
                            .collect(),
                    );
                }
            }
            saving.set(false);
        });
    };
    let save_click = {
        let save = save.clone();
        move |_| save()
    };
    let on_keydown = move |ev: leptos::ev::KeyboardEvent| {
        if (ev.ctrl_key() || ev.meta_key()) && ev.key() == "s" {
            ev.prevent_default();
            save();
        } else if ev.key() == "Tab" && !ev.shift_key() {
            ev.prevent_default();
            if let Some(area) = textarea.get_untracked() {
                let at = area.selection_start().ok().flatten().unwrap_or(0);
                let end = area.selection_end().ok().flatten().unwrap_or(at);
                let _ = area.set_range_text_with_start_and_end("  ", at, end);
                let _ = area.set_selection_range(at + 2, at + 2);
                text.set(area.value());
            }
        }
    };
    let hints = move || {
        let op = text.with(|t| operator_at(t, caret_line.get()))?;
        let plugin = operators
            .with(|list| list.iter().find(|p| p.get("name").and_then(Value::as_str) == Some(op.as_str())).cloned());
        Some(match plugin {
            None => view! { <div class="hints muted" data-testid="hints">{format!("operator `{op}`: not installed on this server")}</div> }.into_any(),
            Some(p) => {
                let schema = api::schema_of(&p);
                let required: Vec<String> = schema.get("required").and_then(Value::as_array).map(|r| r.iter().filter_map(Value::as_str).map(str::to_owned).collect()).unwrap_or_default();
                let rows: Vec<(String, String, String, bool)> = schema
                    .get("properties")
                    .and_then(Value::as_object)
                    .map(|props| props.iter().map(|(k, v)| {
                        let kind = v.get("type").map(|t| match t { Value::String(s) => s.clone(), other => other.to_string() }).unwrap_or_default();
                        let doc = v.get("description").and_then(Value::as_str).unwrap_or_default().to_owned();
                        (k.clone(), kind, doc, required.contains(k))
                    }).collect())
                    .unwrap_or_default();
                let summary = p.get("summary").and_then(Value::as_str).unwrap_or_default().to_owned();
                view! {
                    <div class="hints" data-testid="hints">
                        <div><strong class="mono">{op.clone()}</strong> " · " <span class="muted">{summary}</span></div>
                        {if rows.is_empty() {
                            view! { <div class="muted">"No parameters."</div> }.into_any()
                        } else {
                            view! {
                                <table class="list">
                                    <thead><tr><th>"params."</th><th>"type"</th><th>"about"</th></tr></thead>
                                    <tbody>{rows.into_iter().map(|(k, kind, doc, req)| view! {
                                        <tr><td class="mono">{k}{req.then_some(" *")}</td><td>{kind}</td><td>{doc}</td></tr>
                                    }).collect_view()}</tbody>
                                </table>
                            }.into_any()
                        }}
                    </div>
                }.into_any()
            }
        })
    };
    view! {
        <div class="row">
            <h1>{move || match editing.get() { Some(id) => format!("Edit {id}"), None => "New DAG".to_owned() }}</h1>
            <span class="muted mono">{move || file.get()}</span>
            <span class="spacer"></span>
            <span class="muted" data-testid="check-status">{move || {
                let (errors, warnings) = problems.with(|p| (p.iter().filter(|x| x.error).count(), p.iter().filter(|x| !x.error).count()));
                match (errors, warnings) {
                    (0, 0) => "✓ valid".to_owned(),
                    (0, w) => format!("✓ valid, {w} warning(s)"),
                    (e, _) => format!("✗ {e} error(s)"),
                }
            }}</span>
            <Show when=move || session.can(Role::Op)>
                <button class="primary" data-testid="save" on:click=save_click.clone()
                    disabled=move || saving.get() || !loaded.get() || problems.with(|p| p.iter().any(|x| x.error))>
                    <Show when=move || saving.get()><span class="spinner"></span></Show>
                    {move || if editing.with(Option::is_some) { "Save" } else { "Create DAG" }}
                </button>
            </Show>
        </div>
        {move || load_error.get().map(|e| view! { <div class="error-text">{e}</div> })}
        <div class="editor-layout">
            <div>
                <div class="editor">
                    <div class="gutter" node_ref=gutter>
                        {move || {
                            let marks = problems.get();
                            (1..=line_count.get()).map(|n| {
                                let here: Vec<&Problem> = marks.iter().filter(|p| p.line as usize == n).collect();
                                let class = if here.iter().any(|p| p.error) { "err" } else if here.is_empty() { "" } else { "warn" };
                                let title = here.iter().map(|p| p.message.clone()).collect::<Vec<_>>().join("\n");
                                view! { <div class=class title=title>{n}</div> }
                            }).collect_view()
                        }}
                    </div>
                    <div class="code">
                        <pre node_ref=pre aria-hidden="true" inner_html=move || html.get()></pre>
                        <textarea node_ref=textarea spellcheck="false" autocapitalize="off" autocomplete="off" data-testid="editor"
                            aria-label="DAG file" prop:value=move || text.get()
                            on:input=move |ev| { text.set(event_target_value(&ev)); track_caret(); }
                            on:scroll=move |_| sync_scroll() on:click=move |_| track_caret() on:keyup=move |_| track_caret()
                            on:keydown=on_keydown></textarea>
                    </div>
                </div>
                <div class="diagnostics panel" style="padding: 6px 10px" data-testid="problems">
                    {move || {
                        let list = problems.get();
                        if list.is_empty() {
                            view! { <div class="muted">"No problems: the DAG model accepts this file."</div> }.into_any()
                        } else {
                            list.into_iter().map(|p| {
                                let line = p.line;
                                view! {
                                    <div class=if p.error { "err" } else { "warn" } on:click=move |_| jump_to(line) data-line=line>
                                        {format!("line {}:{} {}: {}", p.line, p.column, if p.error { "error" } else { "warning" }, p.message)}
                                        {p.help.map(|h| view! { <span class="muted">{format!(" — {h}")}</span> })}
                                    </div>
                                }
                            }).collect_view().into_any()
                        }
                    }}
                </div>
            </div>
            <div>
                <h2 style="margin-top: 0">"Preview"</h2>
                <div data-testid="preview" data-tasks=move || preview.with(|g| g.as_ref().map_or(0, |g| g.ids.len()))
                    style=move || if checked.with(|c| c.graph.is_none()) { "opacity: .45" } else { "" }>
                    <GraphView graph=preview states=Signal::derive(std::collections::HashMap::new) compact=true/>
                </div>
                <h2>"Operator parameters"</h2>
                {hints}
            </div>
        </div>
    }
}
