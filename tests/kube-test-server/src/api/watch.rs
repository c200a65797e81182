//! WATCH: a chunked `application/json` stream of `{"type":…,"object":…}` lines. It replays
//! history after `resourceVersion` (or sends the current objects as ADDED), then live events;
//! a compacted version gets one ERROR 410 Expired event in a 200 stream, as from the apiserver.
//! Objects that leave the watcher's selector arrive as DELETED, objects that enter it as ADDED.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use super::{Params, flag, meta_str};
use crate::Shared;
use crate::selector::Selectors;
use crate::status::{ApiError, ApiResult, Cause};
use crate::store::{Change, Replay, Resource, WatchEvent};

/// What one watcher sees of a stored change, given its namespace and selectors.
fn translate(event: &WatchEvent, namespace: Option<&str>, selectors: &Selectors) -> Option<(&'static str, Value)> {
    if namespace.is_some_and(|ns| ns != meta_str(&event.object, "namespace")) {
        return None;
    }
    let now = selectors.matches(&event.object);
    match event.change {
        Change::Added | Change::Deleted => now.then(|| (event.change.as_str(), event.object.clone())),
        Change::Modified => {
            let before = event.previous.as_ref().is_some_and(|p| selectors.matches(p));
            match (before, now) {
                (true, true) => Some(("MODIFIED", event.object.clone())),
                (false, true) => Some(("ADDED", event.object.clone())),
                // As the apiserver's cacher does: the previous content with the event's version.
                (true, false) => {
                    let mut old = event.previous.clone().unwrap_or(Value::Null);
                    old["metadata"]["resourceVersion"] = json!(event.rv.to_string());
                    Some(("DELETED", old))
                }
                (false, false) => None,
            }
        }
    }
}

fn line(kind: &str, object: &Value) -> Bytes {
    let mut bytes = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
    bytes.push(b'\n');
    Bytes::from(bytes)
}

fn bookmark(resource: Resource, rv: u64, initial_events_end: bool) -> Bytes {
    let mut metadata = json!({"resourceVersion": rv.to_string(), "creationTimestamp": null});
    if initial_events_end {
        metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    line("BOOKMARK", &json!({"kind": resource.kind(), "apiVersion": resource.api_version(), "metadata": metadata}))
}

pub(crate) fn watch(
    shared: Arc<Shared>,
    resource: Resource,
    namespace: Option<String>,
    selectors: Selectors,
    params: &Params,
) -> ApiResult<Response> {
    let bookmarks = flag(params, "allowWatchBookmarks");
    let send_initial = flag(params, "sendInitialEvents");
    if send_initial {
        let mut causes = Vec::new();
        if params.get("resourceVersionMatch").map(String::as_str) != Some("NotOlderThan") {
            causes.push(Cause::forbidden(
                "resourceVersionMatch",
                "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
            ));
        }
        if !bookmarks {
            causes.push(Cause::forbidden(
                "allowWatchBookmarks",
                "allowWatchBookmarks must be set to true when sendInitialEvents is true",
            ));
        }
        if !causes.is_empty() {
            return Err(ApiError::invalid("ListOptions.meta.k8s.io", "", causes));
        }
    }
    let timeout = match params.get("timeoutSeconds").filter(|t| !t.is_empty()) {
        Some(t) => Some(Duration::from_secs(
            t.parse().map_err(|_| ApiError::bad_request(format!("invalid timeoutSeconds {t:?}")))?,
        )),
        None => None,
    };
    let since = match params.get("resourceVersion").map(String::as_str) {
        None | Some("") | Some("0") => None,
        Some(rv) => Some(rv.parse::<u64>().map_err(|_| {
            ApiError::invalid(
                "ListOptions.meta.k8s.io",
                "",
                vec![Cause::invalid("resourceVersion", rv, "must be a valid resource version")],
            )
        })?),
    };

    // Subscribe and take the snapshot or replay under one lock, so no event is lost between them.
    let mut initial: Vec<Bytes> = Vec::new();
    let (live, start_rv, expired) = {
        let store = shared.store();
        let live = store.subscribe();
        let start_rv = store.current_rv();
        let mut expired = None;
        match since {
            Some(rv) if !send_initial => match store.replay(resource, rv) {
                Replay::TooOld { oldest } => expired = Some((rv, oldest)),
                Replay::Events(events) => {
                    for event in events {
                        if let Some((kind, object)) = translate(&event, namespace.as_deref(), &selectors) {
                            initial.push(line(kind, &object));
                        }
                    }
                }
            },
            _ => {
                for object in store.list(resource, namespace.as_deref()) {
                    if selectors.matches(object) {
                        initial.push(line("ADDED", object));
                    }
                }
                if send_initial {
                    initial.push(bookmark(resource, start_rv, true));
                }
            }
        }
        (live, start_rv, expired)
    };

    let (tx, rx) = mpsc::channel::<Bytes>(64);
    if let Some((requested, oldest)) = expired {
        let status = ApiError {
            code: 410,
            reason: "Expired",
            message: format!("too old resource version: {requested} ({oldest})"),
            details: None,
            retry_after: None,
        };
        initial = vec![line("ERROR", &status.to_status())];
        tokio::spawn(async move {
            for chunk in initial {
                let _ = tx.send(chunk).await;
            }
        });
    } else {
        let stream = WatchStream { shared, resource, namespace, selectors, bookmarks, timeout, last_rv: start_rv };
        tokio::spawn(stream.run(initial, live, tx));
    }
    let body = Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (Ok::<Bytes, std::convert::Infallible>(chunk), rx))
    }));
    let mut response = body.into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, private"));
    Ok(response)
}

struct WatchStream {
    shared: Arc<Shared>,
    resource: Resource,
    namespace: Option<String>,
    selectors: Selectors,
    bookmarks: bool,
    timeout: Option<Duration>,
    /// The newest resourceVersion this watcher has seen (delivered or filtered out).
    last_rv: u64,
}

impl WatchStream {
    async fn run(
        mut self,
        initial: Vec<Bytes>,
        mut live: broadcast::Receiver<Arc<WatchEvent>>,
        tx: mpsc::Sender<Bytes>,
    ) {
        let mut reset = self.shared.watch_generation.subscribe();
        reset.mark_unchanged();
        for chunk in initial {
            if tx.send(chunk).await.is_err() {
                return;
            }
        }
        let deadline = self.timeout.map(|t| tokio::time::Instant::now() + t);
        let mut ticker = tokio::time::interval(self.shared.config.bookmark_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            let expiry = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let chunk = tokio::select! {
                _ = expiry => return,
                _ = reset.changed() => return,
                _ = tx.closed() => return,
                _ = ticker.tick(), if self.bookmarks => bookmark(self.resource, self.last_rv, false),
                received = live.recv() => match received {
                    Ok(event) => {
                        self.last_rv = self.last_rv.max(event.rv);
                        if event.resource != self.resource {
                            continue;
                        }
                        match translate(&event, self.namespace.as_deref(), &self.selectors) {
                            Some((kind, object)) => line(kind, &object),
                            None => continue,
                        }
                    }
                    // A watcher too slow to keep up is closed, as the apiserver does; the client
                    // re-watches from its last resourceVersion.
                    Err(broadcast::error::RecvError::Lagged(_)) | Err(broadcast::error::RecvError::Closed) => return,
                },
            };
            if tx.send(chunk).await.is_err() {
                return;
            }
        }
    }
}
