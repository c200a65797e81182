//! The trigger dialog: a run's `conf` as JSON, checked as it is typed, then
//! `POST /api/v2/dags/{dag_id}/dagRuns`.

use leptos::prelude::*;
use leptos::task::spawn_local;
use serde_json::Value;
use updraft_types::api::DagRunResponse;

use crate::api;
use crate::components::toast::use_toasts;

/// A "Trigger" button that opens the dialog; `on_done` gets the new run's id.
#[component]
pub fn TriggerButton(
    #[prop(into)] dag_id: String,
    #[prop(optional)] on_done: Option<Callback<String>>,
) -> impl IntoView {
    let open = RwSignal::new(false);
    let conf = RwSignal::new("{}".to_owned());
    let busy = RwSignal::new(false);
    let toasts = use_toasts();
    let parsed = Memo::new(move |_| {
        conf.with(|text| match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => Ok(Value::Object(map)),
            Ok(_) => Err("conf must be a JSON object, e.g. {\"key\": \"value\"}".to_owned()),
            Err(e) => Err(format!("not valid JSON: {e}")),
        })
    });
    let dag = StoredValue::new(dag_id.clone());
    let submit = move |_| {
        let Ok(conf) = parsed.get_untracked() else { return };
        busy.set(true);
        let dag_id = dag.get_value();
        spawn_local(async move {
            let body = serde_json::json!({ "logical_date": null, "conf": conf });
            let path = format!("/api/v2/dags/{}/dagRuns", api::seg(&dag_id));
            match api::send::<DagRunResponse>("POST", &path, &body).await {
                Ok(run) => {
                    toasts.ok(format!("Triggered {} ({})", dag_id, run.dag_run_id));
                    open.set(false);
                    if let Some(done) = on_done {
                        done.run(run.dag_run_id);
                    }
                }
                Err(e) => toasts.error(format!("Trigger failed: {}", e.detail)),
            }
            busy.set(false);
        });
    };
    view! {
        <button class="primary small" data-testid="trigger" title=format!("Trigger {dag_id}") on:click=move |_| open.set(true)>
            "▶ Trigger"
        </button>
        <Show when=move || open.get()>
            <div class="dialog-backdrop" on:click=move |_| open.set(false)>
                <div class="dialog panel" role="dialog" aria-label="Trigger a run" on:click=|ev| ev.stop_propagation()>
                    <h2>"Trigger " {dag.get_value()}</h2>
                    <label class="muted" for="conf">"Run configuration (conf), JSON"</label>
                    <textarea id="conf" class="mono" data-testid="conf" spellcheck="false"
                        prop:value=move || conf.get() on:input=move |ev| conf.set(event_target_value(&ev))></textarea>
                    <div class="error-text">{move || parsed.get().err()}</div>
                    <div class="actions">
                        <button on:click=move |_| open.set(false)>"Cancel"</button>
                        <button class="primary" data-testid="trigger-confirm" on:click=submit
                            disabled=move || busy.get() || parsed.with(Result::is_err)>
                            <Show when=move || busy.get()><span class="spinner"></span></Show>
                            "Trigger"
                        </button>
                    </div>
                </div>
            </div>
        </Show>
    }
}
