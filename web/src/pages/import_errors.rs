//! Import errors: DAG files that failed to load at the last parse, with every located message.

use leptos::prelude::*;
use leptos::task::spawn_local;
use updraft_types::api::ImportErrorCollection;

use crate::api;
use crate::pages::when;

#[component]
pub fn ImportErrors() -> impl IntoView {
    let errors = RwSignal::new(None::<Result<ImportErrorCollection, String>>);
    spawn_local(async move {
        errors
            .set(Some(api::get::<ImportErrorCollection>("/api/v2/importErrors?limit=100").await.map_err(|e| e.detail)));
    });
    view! {
        <h1>"Import errors"</h1>
        {move || match errors.get() {
            None => view! { <div class="empty"><span class="spinner"></span></div> }.into_any(),
            Some(Err(e)) => view! { <div class="empty error-text">{e}</div> }.into_any(),
            Some(Ok(list)) if list.import_errors.is_empty() => view! {
                <div class="panel empty" data-testid="no-import-errors">"Every DAG file loads."</div>
            }.into_any(),
            Some(Ok(list)) => list.import_errors.into_iter().map(|e| view! {
                <div class="panel" style="padding: 12px; margin-bottom: 10px" data-testid="import-error">
                    <div class="row"><strong class="mono">{e.filename.clone()}</strong><span class="spacer"></span>
                        <span class="muted">{when(Some(e.timestamp.as_str()))}</span></div>
                    <pre class="log" style="min-height: 0; margin-top: 8px">{e.stack_trace.clone()}</pre>
                </div>
            }).collect_view().into_any(),
        }}
    }
}
