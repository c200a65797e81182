//! Namespaces: list, watch, get and create. `default`, `kube-system` and `updraft` exist at start.
//! Each new namespace gets the ConfigMap `kube-root-ca.crt` with the server's CA, as the
//! cluster's root CA publisher puts in every namespace.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{Params, json_body, list_or_watch};
use crate::admission::ROOT_CA_CONFIG_MAP;
use crate::status::{ApiError, ApiResult, Cause};
use crate::store::Resource;
use crate::{Shared, time, validate};

fn namespace_object(uid: String, name: &str, labels: Option<&Value>) -> Value {
    let mut labels = labels.cloned().unwrap_or_else(|| json!({}));
    labels["kubernetes.io/metadata.name"] = json!(name);
    json!({
        "kind": "Namespace",
        "apiVersion": "v1",
        "metadata": {"name": name, "uid": uid, "creationTimestamp": time::now_rfc3339(), "labels": labels},
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    })
}

/// The CA ConfigMap of a new namespace.
fn publish_root_ca(store: &mut crate::store::Store, namespace: &str) {
    let uid = store.new_uid();
    let config_map = json!({
        "kind": "ConfigMap",
        "apiVersion": "v1",
        "metadata": {
            "name": ROOT_CA_CONFIG_MAP,
            "namespace": namespace,
            "uid": uid,
            "creationTimestamp": time::now_rfc3339(),
            "annotations": {"kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."},
        },
        "data": {"ca.crt": crate::tls::CA_PEM},
    });
    store.insert(Resource::ConfigMaps, namespace, ROOT_CA_CONFIG_MAP, config_map);
}

/// Creates a namespace unless it exists.
pub(crate) fn insert_namespace(shared: &Shared, name: &str) {
    let mut store = shared.store();
    if store.get(Resource::Namespaces, "", name).is_none() {
        let uid = store.new_uid();
        store.insert(Resource::Namespaces, "", name, namespace_object(uid, name, None));
        publish_root_ca(&mut store, name);
    }
}

pub(crate) async fn list(
    State(shared): State<Arc<Shared>>,
    Query(params): Query<Params>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    list_or_watch(&shared, Resource::Namespaces, None, &params, &headers)
}

pub(crate) async fn get_one(State(shared): State<Arc<Shared>>, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    let store = shared.store();
    store
        .get(Resource::Namespaces, "", &name)
        .cloned()
        .map(Json)
        .ok_or_else(|| ApiError::not_found("namespaces", &name))
}

pub(crate) async fn create(State(shared): State<Arc<Shared>>, body: Bytes) -> ApiResult<Response> {
    let object = json_body(&body)?;
    let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_owned();
    if name.is_empty() {
        return Err(ApiError::invalid("Namespace", "", vec![Cause::required("metadata.name")]));
    }
    if let Some(why) = validate::dns1123_label_error(&name) {
        return Err(ApiError::invalid("Namespace", &name, vec![Cause::invalid("metadata.name", &name, &why)]));
    }
    let mut store = shared.store();
    if store.get(Resource::Namespaces, "", &name).is_some() {
        return Err(ApiError::already_exists("namespaces", &name));
    }
    let uid = store.new_uid();
    let stored =
        store.insert(Resource::Namespaces, "", &name, namespace_object(uid, &name, object.pointer("/metadata/labels")));
    publish_root_ca(&mut store, &name);
    Ok((StatusCode::CREATED, Json(stored)).into_response())
}
