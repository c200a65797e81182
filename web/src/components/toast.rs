//! Toasts: short messages in the corner for the outcome of every action (an error keeps the
//! API's problem detail, which says what to do).

use leptos::prelude::*;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Ok,
    Error,
}

#[derive(Debug, Clone, PartialEq)]
struct Toast {
    id: u64,
    kind: Kind,
    text: String,
}

#[derive(Debug, Clone, Copy)]
pub struct Toasts {
    items: RwSignal<Vec<Toast>>,
    next: StoredValue<u64>,
}

impl Toasts {
    /// Sends `body` to the API with `method` while `busy` is set, toasts `done` or the problem
    /// detail, then calls `after` (the page reloads what it shows).
    pub fn act(
        self,
        busy: RwSignal<bool>,
        after: impl Fn() + 'static,
    ) -> impl Fn(&'static str, String, serde_json::Value, &'static str) + Copy + 'static {
        let after = StoredValue::new_local(after);
        move |method, path, body, done| {
            busy.set(true);
            leptos::task::spawn_local(async move {
                match crate::api::send::<serde_json::Value>(method, &path, &body).await {
                    Ok(_) => self.ok(done),
                    Err(e) => self.error(e.detail),
                }
                busy.set(false);
                after.with_value(|after| after());
            });
        }
    }

    pub fn new() -> Self {
        Toasts { items: RwSignal::new(Vec::new()), next: StoredValue::new(0) }
    }

    pub fn show(&self, kind: Kind, text: impl Into<String>) {
        let id = self.next.get_value();
        self.next.set_value(id + 1);
        self.items.update(|items| {
            items.push(Toast { id, kind, text: text.into() });
            if items.len() > 4 {
                items.remove(0);
            }
        });
        let items = self.items;
        let shown_for = if kind == Kind::Error { 8000 } else { 4000 };
        set_timeout(move || items.update(|items| items.retain(|t| t.id != id)), Duration::from_millis(shown_for));
    }

    pub fn ok(&self, text: impl Into<String>) {
        self.show(Kind::Ok, text);
    }

    pub fn error(&self, text: impl Into<String>) {
        self.show(Kind::Error, text);
    }
}

pub fn use_toasts() -> Toasts {
    use_context::<Toasts>().unwrap_or_else(Toasts::new)
}

#[component]
pub fn ToastArea() -> impl IntoView {
    let toasts = use_toasts();
    view! {
        <div class="toasts" role="status" aria-live="polite">
            <For each=move || toasts.items.get() key=|t| t.id let:t>
                <div class=match t.kind { Kind::Ok => "toast ok", Kind::Error => "toast error" } data-testid="toast">
                    {t.text}
                </div>
            </For>
        </div>
    }
}
