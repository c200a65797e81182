//! Live updates: Server-Sent Events from the API (`/api/updraft/events` for state changes, a
//! task try's `…/logs/{try}/stream` for its log lines). A subscription lasts as long as the
//! component that opened it; the browser's `EventSource` reconnects by itself.

use leptos::prelude::*;
use send_wrapper::SendWrapper;
use serde::Deserialize;
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use web_sys::{EventSource, MessageEvent};

/// A change of a run's state (`kind: dag_run`) or of a task instance's state or try.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct StateEvent {
    pub kind: String,
    pub dag_id: String,
    pub dag_run_id: String,
    #[serde(default)]
    pub task_id: Option<String>,
    pub state: String,
    #[serde(default)]
    pub try_number: Option<i32>,
}

/// An open `EventSource` and its listeners; closing it on drop.
struct Subscription {
    source: EventSource,
    _listeners: Vec<Closure<dyn FnMut(MessageEvent)>>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.source.close();
    }
}

/// A named event and what to do with its data.
pub type Handler = (&'static str, Box<dyn Fn(String)>);

/// Listens to `url` for the named events until the current component goes away.
pub fn listen(url: &str, handlers: Vec<Handler>) {
    let Ok(source) = EventSource::new(url) else { return };
    let mut listeners = Vec::new();
    for (name, handler) in handlers {
        let listener = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            handler(event.data().as_string().unwrap_or_default());
        });
        let _ = source.add_event_listener_with_callback(name, listener.as_ref().unchecked_ref());
        listeners.push(listener);
    }
    let subscription = SendWrapper::new(Subscription { source, _listeners: listeners });
    on_cleanup(move || drop(subscription));
}

/// Calls `on_change` with every state change, and `on_lagged` when events were missed (then
/// re-read the states over REST).
pub fn state_changes(on_change: impl Fn(StateEvent) + 'static, on_lagged: impl Fn() + 'static) {
    listen(
        "/api/updraft/events",
        vec![
            (
                "state",
                Box::new(move |data: String| {
                    if let Ok(event) = serde_json::from_str::<StateEvent>(&data) {
                        on_change(event);
                    }
                }),
            ),
            ("lagged", Box::new(move |_| on_lagged())),
        ],
    );
}
