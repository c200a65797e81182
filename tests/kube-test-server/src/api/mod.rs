//! The HTTP surface: one router for the core/v1 paths this server serves, behind the gate
//! (faults, authentication, RBAC), plus the list machinery shared by every resource.

pub(crate) mod discovery;
pub(crate) mod events;
pub(crate) mod exec;
pub(crate) mod logs;
pub(crate) mod namespaces;
pub(crate) mod objects;
pub(crate) mod pods;
pub(crate) mod watch;
mod websocket;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::Shared;
use crate::selector::Selectors;
use crate::status::{ApiError, ApiResult};
use crate::store::Resource;

/// Query parameters, unparsed.
pub(crate) type Params = HashMap<String, String>;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let router = Router::new()
        .route("/version", get(discovery::version))
        .route("/healthz", get(discovery::ok))
        .route("/livez", get(discovery::ok))
        .route("/readyz", get(discovery::ok))
        .route("/api", get(discovery::api_versions))
        .route("/api/v1", get(discovery::api_resources))
        .route("/apis", get(discovery::api_groups))
        .route("/apis/apps", get(discovery::apps_group))
        .route("/apis/apps/v1", get(discovery::apps_resources))
        .route("/api/v1/namespaces", get(namespaces::list).post(namespaces::create))
        .route("/api/v1/namespaces/{ns}", get(namespaces::get_one))
        .route("/api/v1/pods", get(pods::list_all))
        .route("/api/v1/namespaces/{ns}/pods", get(pods::list).post(pods::create))
        .route(
            "/api/v1/namespaces/{ns}/pods/{name}",
            get(pods::get_one).put(pods::replace).patch(pods::patch).delete(pods::delete),
        )
        .route(
            "/api/v1/namespaces/{ns}/pods/{name}/status",
            get(pods::get_status).put(pods::replace_status).patch(pods::patch_status),
        )
        .route("/api/v1/namespaces/{ns}/pods/{name}/log", get(logs::log))
        .route("/api/v1/namespaces/{ns}/pods/{name}/exec", get(exec::exec).post(exec::exec))
        .route("/api/v1/events", get(events::list_all))
        .route("/api/v1/namespaces/{ns}/events", get(events::list))
        .route("/api/v1/namespaces/{ns}/events/{name}", get(events::get_one));
    [Resource::Secrets, Resource::ConfigMaps, Resource::Deployments]
        .into_iter()
        .fold(router, objects::routes)
        .fallback(|| async { ApiError::no_route() })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(axum::middleware::from_fn_with_state(shared.clone(), crate::gate::gate))
        .with_state(shared)
}

pub(crate) fn flag(params: &Params, name: &str) -> bool {
    params.get(name).is_some_and(|v| v == "true" || v == "1")
}

/// A request body as JSON, or the apiserver's 400 for undecodable bodies.
pub(crate) fn json_body(body: &Bytes) -> ApiResult<Value> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}")))
}

/// A request body of `resource`: JSON, or Kubernetes' protobuf (`kubectl create secret` sends
/// it) for the kinds whose messages this server decodes (else 415).
pub(crate) fn request_body(resource: Resource, headers: &HeaderMap, body: &Bytes) -> ApiResult<Value> {
    let content_type = headers.get(axum::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if content_type.starts_with(crate::protobuf::CONTENT_TYPE) {
        return crate::protobuf::decode(resource, body);
    }
    json_body(body)
}

/// The object as it appears inside a list: the apiserver omits each item's kind and apiVersion.
fn list_item(object: &Value) -> Value {
    let mut item = object.clone();
    if let Some(map) = item.as_object_mut() {
        map.remove("kind");
        map.remove("apiVersion");
    }
    item
}

/// A continue token: the list's resourceVersion and the last key returned.
fn encode_continue(rv: u64, namespace: &str, name: &str) -> String {
    let raw = format!("{rv}\u{0}{namespace}\u{0}{name}");
    raw.bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_continue(token: &str) -> Option<(u64, String, String)> {
    if !token.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> =
        (0..token.len()).step_by(2).map(|i| u8::from_str_radix(token.get(i..i + 2)?, 16).ok()).collect();
    let text = String::from_utf8(bytes?).ok()?;
    let mut parts = text.split('\u{0}');
    let rv = parts.next()?.parse().ok()?;
    Some((rv, parts.next()?.to_owned(), parts.next()?.to_owned()))
}

/// LIST or WATCH of a collection, as chosen by `watch=true`.
pub(crate) fn list_or_watch(
    shared: &Arc<Shared>,
    resource: Resource,
    namespace: Option<String>,
    params: &Params,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    let selectors = Selectors::parse(
        resource,
        params.get("labelSelector").map(String::as_str),
        params.get("fieldSelector").map(String::as_str),
    )?;
    if flag(params, "watch") {
        return watch::watch(shared.clone(), resource, namespace, selectors, params);
    }
    list(shared, resource, namespace.as_deref(), &selectors, params, headers)
}

fn list(
    shared: &Shared,
    resource: Resource,
    namespace: Option<&str>,
    selectors: &Selectors,
    params: &Params,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    let limit: usize = match params.get("limit").filter(|l| !l.is_empty()) {
        Some(l) => l.parse().map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?,
        None => 0,
    };
    let store = shared.store();
    let (list_rv, after) = match params.get("continue").filter(|c| !c.is_empty()) {
        Some(token) => {
            let (rv, ns, name) = decode_continue(token)
                .ok_or_else(|| ApiError::bad_request(format!("continue key is not valid: {token:?}")))?;
            if store.is_compacted(rv) {
                return Err(ApiError::expired_continue());
            }
            (rv, Some((ns, name)))
        }
        None => (store.current_rv(), None),
    };
    let matching: Vec<&Value> = store
        .list(resource, namespace)
        .into_iter()
        .filter(|o| selectors.matches(o))
        .filter(|o| {
            let Some((ns, name)) = &after else { return true };
            let key = (meta_str(o, "namespace"), meta_str(o, "name"));
            key > (ns.as_str(), name.as_str())
        })
        .collect();
    let take = if limit == 0 { matching.len() } else { limit.min(matching.len()) };
    let mut metadata = json!({"resourceVersion": list_rv.to_string()});
    if take < matching.len()
        && let Some(last) = matching.get(take.wrapping_sub(1))
    {
        metadata["continue"] = json!(encode_continue(list_rv, meta_str(last, "namespace"), meta_str(last, "name")));
        metadata["remainingItemCount"] = json!(matching.len() - take);
    }
    let items: Vec<Value> = matching[..take].iter().map(|o| list_item(o)).collect();
    if wants_table(headers) && !crate::kinds::columns(resource).is_empty() {
        return Ok(axum::Json(table(resource, &items, metadata)).into_response());
    }
    Ok(axum::Json(json!({
        "kind": resource.list_kind(),
        "apiVersion": resource.api_version(),
        "metadata": metadata,
        "items": items,
    }))
    .into_response())
}

/// Whether the client asked for server-side printing (`kubectl get` without `-o`).
pub(crate) fn wants_table(headers: &HeaderMap) -> bool {
    headers
        .get_all(axum::http::header::ACCEPT)
        .iter()
        .any(|v| v.to_str().ok().and_then(|s| s.split(',').next()).is_some_and(|first| first.contains("as=Table")))
}

/// How long ago an object was created, as `kubectl get` shows it (`42s`, `3m`, `2h`).
fn age(object: &Value) -> String {
    let created = object.pointer("/metadata/creationTimestamp").and_then(Value::as_str).unwrap_or("");
    let Ok(created) = chrono::DateTime::parse_from_rfc3339(created) else { return "<unknown>".to_owned() };
    let seconds = (crate::time::now() - created.with_timezone(&chrono::Utc)).num_seconds().max(0);
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s => format!("{}h", s / 3600),
    }
}

/// A `meta.k8s.io/v1` Table of `objects`, the server-side printing `kubectl get` asks for, with
/// the columns the apiserver prints for `resource`.
pub(crate) fn table(resource: Resource, objects: &[Value], metadata: Value) -> Value {
    let columns: Vec<Value> = crate::kinds::columns(resource)
        .iter()
        .map(|(name, priority)| {
            let format = if *name == "Name" { "name" } else { "" };
            json!({"name": name, "type": "string", "format": format, "description": "", "priority": priority})
        })
        .collect();
    let rows: Vec<Value> = objects
        .iter()
        .map(|object| {
            let cells = match resource {
                Resource::Pods => pods::cells(object, age(object)),
                _ => crate::kinds::cells(resource, object, age(object)),
            };
            json!({
                "cells": cells,
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": object.get("metadata").cloned().unwrap_or(Value::Null),
                },
            })
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": columns,
        "rows": rows,
    })
}

pub(crate) fn meta_str<'a>(object: &'a Value, field: &str) -> &'a str {
    object.get("metadata").and_then(|m| m.get(field)).and_then(Value::as_str).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip() {
        let token = encode_continue(42, "ns", "pod-1");
        assert_eq!(decode_continue(&token), Some((42, "ns".to_owned(), "pod-1".to_owned())));
        assert_eq!(decode_continue("zz"), None);
    }
}
