//! Events: list, watch and get. They are written by the simulated scheduler and kubelet, never
//! by clients, and are selectable by `involvedObject.name` and the other event fields.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{Value, json};

use super::{Params, list_or_watch};
use crate::status::{ApiError, ApiResult};
use crate::store::Resource;
use crate::{Shared, time};

pub(crate) async fn list(
    State(shared): State<Arc<Shared>>,
    Path(ns): Path<String>,
    Query(params): Query<Params>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    list_or_watch(&shared, Resource::Events, Some(ns), &params, &headers)
}

pub(crate) async fn list_all(
    State(shared): State<Arc<Shared>>,
    Query(params): Query<Params>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    list_or_watch(&shared, Resource::Events, None, &params, &headers)
}

pub(crate) async fn get_one(
    State(shared): State<Arc<Shared>>,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let store = shared.store();
    store.get(Resource::Events, &ns, &name).cloned().map(Json).ok_or_else(|| ApiError::not_found("events", &name))
}

/// Who reports an event.
#[derive(Clone, Copy)]
pub(crate) enum Source {
    Scheduler,
    Kubelet,
}

/// Records an event about a pod (core/v1 Event, as `kubectl events` and clients read it). A
/// repeat of the same reason and message on the same object bumps `count` and `lastTimestamp`.
pub(crate) fn record(
    shared: &Shared,
    pod: &Value,
    source: Source,
    warning: bool,
    reason: &str,
    message: &str,
    field_path: Option<&str>,
) {
    let namespace = super::meta_str(pod, "namespace").to_owned();
    let pod_name = super::meta_str(pod, "name").to_owned();
    let uid = super::meta_str(pod, "uid").to_owned();
    let now = time::now();
    let mut store = shared.store();
    let key = (uid.clone(), reason.to_owned(), message.to_owned());
    let existing = crate::lock(&shared.event_names)
        .get(&key)
        .and_then(|name| store.get(Resource::Events, &namespace, name))
        .cloned();
    if let Some(mut event) = existing {
        let count = event.get("count").and_then(Value::as_u64).unwrap_or(1) + 1;
        event["count"] = json!(count);
        event["lastTimestamp"] = json!(time::rfc3339(now));
        let name = super::meta_str(&event, "name").to_owned();
        store.replace(Resource::Events, &namespace, &name, event);
        return;
    }
    let (component, host) = match source {
        Source::Scheduler => ("default-scheduler", None),
        Source::Kubelet => ("kubelet", Some(crate::kubelet::NODE_NAME)),
    };
    let event_uid = store.new_uid();
    // The next resourceVersion is unique, so the name is too.
    let name = format!("{pod_name}.{:016x}", store.current_rv() + 1);
    let mut involved = json!({
        "kind": "Pod",
        "namespace": namespace,
        "name": pod_name,
        "uid": uid,
        "apiVersion": "v1",
        "resourceVersion": super::meta_str(pod, "resourceVersion"),
    });
    if let Some(field_path) = field_path {
        involved["fieldPath"] = json!(field_path);
    }
    let mut source_json = json!({"component": component});
    if let Some(host) = host {
        source_json["host"] = json!(host);
    }
    let event = json!({
        "kind": "Event",
        "apiVersion": "v1",
        "metadata": {"name": name, "namespace": namespace, "uid": event_uid, "creationTimestamp": time::rfc3339(now)},
        "involvedObject": involved,
        "reason": reason,
        "message": message,
        "source": source_json,
        "firstTimestamp": time::rfc3339(now),
        "lastTimestamp": time::rfc3339(now),
        "count": 1,
        "type": if warning { "Warning" } else { "Normal" },
        "eventTime": null,
        "reportingComponent": component,
        "reportingInstance": host.unwrap_or(""),
    });
    store.insert(Resource::Events, &namespace, &name, event);
    crate::lock(&shared.event_names).insert(key, name);
}
