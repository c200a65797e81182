//! Plugins: the operators this server knows (built-in and uploaded), each with its version,
//! summary, capabilities and parameter schema; an admin uploads a `.wasm` component (the server
//! validates it exactly as the scheduler loads it) or removes an uploaded one.

use leptos::prelude::*;
use leptos::task::spawn_local;
use serde_json::Value;
use wasm_bindgen::JsCast;

use crate::api;
use crate::components::toast::use_toasts;
use crate::session::{Role, use_session};

#[component]
pub fn Plugins() -> impl IntoView {
    let session = use_session();
    let toasts = use_toasts();
    let listing = RwSignal::new(None::<Result<Value, String>>);
    let busy = RwSignal::new(false);
    let load = move || {
        spawn_local(async move {
            listing.set(Some(api::plugins().await.map_err(|e| e.detail)));
        });
    };
    load();
    let upload = move |ev: leptos::ev::Event| {
        let Some(input) = ev.target().and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok()) else { return };
        let Some(file) = input.files().and_then(|f| f.get(0)) else { return };
        input.set_value("");
        busy.set(true);
        spawn_local(async move {
            match api::call("POST", "/api/updraft/plugins", Some(api::Body::File(file))).await {
                Ok((_, text)) => {
                    let name = serde_json::from_str::<Value>(&text)
                        .ok()
                        .and_then(|v| v.get("name").and_then(Value::as_str).map(str::to_owned))
                        .unwrap_or_default();
                    toasts.ok(format!("Installed operator {name}"));
                    load();
                }
                Err(e) => toasts.error(format!("Upload refused: {}", e.detail)),
            }
            busy.set(false);
        });
    };
    let remove = move |name: String| {
        spawn_local(async move {
            match api::call("DELETE", &format!("/api/updraft/plugins/{}", api::seg(&name)), None).await {
                Ok(_) => {
                    toasts.ok(format!("Removed {name}"));
                    load();
                }
                Err(e) => toasts.error(e.detail),
            }
        });
    };
    view! {
        <div class="row">
            <h1>"Plugins"</h1>
            <span class="spacer"></span>
            <Show when=move || session.can(Role::Admin)>
                <label class="button" class:disabled=move || busy.get()>
                    <Show when=move || busy.get()><span class="spinner"></span></Show>
                    "Upload .wasm"
                    <input type="file" accept=".wasm,application/wasm" style="display: none" data-testid="plugin-upload" on:change=upload/>
                </label>
            </Show>
        </div>
        {move || match listing.get() {
            None => view! { <div class="empty"><span class="spinner"></span></div> }.into_any(),
            Some(Err(e)) => view! { <div class="empty error-text">{e}</div> }.into_any(),
            Some(Ok(v)) => {
                let operators = v.get("operators").and_then(Value::as_array).cloned().unwrap_or_default();
                let invalid = v.get("invalid").and_then(Value::as_array).cloned().unwrap_or_default();
                view! {
                    <div class="panel">
                        <table class="list" data-testid="plugins">
                            <thead><tr><th>"Operator"</th><th>"Version"</th><th>"Summary"</th><th>"Capabilities"</th><th>"Parameters"</th><th>"Source"</th><th></th></tr></thead>
                            <tbody>
                                {operators.into_iter().map(|p| {
                                    let text = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
                                    let name = text("name");
                                    let source = text("source");
                                    let builtin = source == "built-in";
                                    let caps = p.get("capabilities").map(|c| match c {
                                        Value::Array(a) => a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "),
                                        other => other.to_string(),
                                    }).unwrap_or_default();
                                    let schema = api::schema_of(&p);
                                    let pretty = serde_json::to_string_pretty(&schema).unwrap_or_default();
                                    let removed = name.clone();
                                    view! {
                                        <tr data-operator=name.clone()>
                                            <td class="mono"><strong>{name.clone()}</strong></td>
                                            <td>{text("version")}</td>
                                            <td>{text("summary")}</td>
                                            <td>{caps}</td>
                                            <td><details><summary>{param_names(&schema)}</summary><pre class="schema">{pretty}</pre></details></td>
                                            <td class="muted" style="font-size: 12px">{source}</td>
                                            <td>
                                                <Show when=move || !builtin && session.can(Role::Admin)>
                                                    <button class="small danger" on:click={ let n = removed.clone(); move |_| remove(n.clone()) }>"Remove"</button>
                                                </Show>
                                            </td>
                                        </tr>
                                    }
                                }).collect_view()}
                            </tbody>
                        </table>
                    </div>
                    {(!invalid.is_empty()).then(|| view! {
                        <h2>"Files that are not valid operators"</h2>
                        <div class="panel" style="padding: 10px">
                            {invalid.into_iter().map(|f| view! {
                                <div><span class="mono">{f.get("path").and_then(Value::as_str).unwrap_or_default().to_owned()}</span>": "
                                    <span class="error-text">{f.get("reason").and_then(Value::as_str).unwrap_or_default().to_owned()}</span></div>
                            }).collect_view()}
                        </div>
                    })}
                }.into_any()
            }
        }}
    }
}

/// `a, b, c` from a JSON schema's `properties`.
fn param_names(schema: &Value) -> String {
    match schema.get("properties").and_then(Value::as_object) {
        Some(props) if !props.is_empty() => props.keys().cloned().collect::<Vec<_>>().join(", "),
        _ => "none".to_owned(),
    }
}
