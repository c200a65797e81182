//! Secrets, ConfigMaps (core/v1) and Deployments (apps/v1) over HTTP: create (with
//! `generateName`), get, list and watch, update (unconditional, or with a resourceVersion
//! precondition), patch (merge, JSON, strategic as merge) and delete, as the apiserver's generic
//! registry serves them. What differs per kind (defaults, validation, immutability) is in
//! [`crate::kinds`]. The same paths store what tests load with `add_secret`, `add_config_map` and
//! `load_manifests`, so the kubelet reads one store.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{MethodRouter, get};
use serde_json::{Value, json};

use super::{Params, json_body, list_or_watch, meta_str, request_body, wants_table};
use crate::patch::{self, PatchType};
use crate::status::{ApiError, ApiResult, Cause};
use crate::store::Resource;
use crate::{Shared, kinds, time, validate};

type Router = axum::Router<Arc<Shared>>;

/// The routes of `resource`: its collection in every namespace and in one, and its objects.
pub(crate) fn routes(router: Router, resource: Resource) -> Router {
    let prefix = match resource.group() {
        "" => "/api/v1".to_owned(),
        group => format!("/apis/{group}/v1"),
    };
    let plural = resource.plural();
    router
        .route(&format!("{prefix}/{plural}"), all_namespaces(resource))
        .route(&format!("{prefix}/namespaces/{{ns}}/{plural}"), collection(resource))
        .route(&format!("{prefix}/namespaces/{{ns}}/{plural}/{{name}}"), object(resource))
}

fn all_namespaces(resource: Resource) -> MethodRouter<Arc<Shared>> {
    get(move |State(shared): State<Arc<Shared>>, Query(params): Query<Params>, headers: HeaderMap| async move {
        list_or_watch(&shared, resource, None, &params, &headers)
    })
}

fn collection(resource: Resource) -> MethodRouter<Arc<Shared>> {
    get(
        move |State(shared): State<Arc<Shared>>,
              Path(ns): Path<String>,
              Query(params): Query<Params>,
              headers: HeaderMap| async move { list_or_watch(&shared, resource, Some(ns), &params, &headers) },
    )
    .post(
        move |State(shared): State<Arc<Shared>>, Path(ns): Path<String>, headers: HeaderMap, body: Bytes| async move {
            let object = request_body(resource, &headers, &body)?;
            create(&shared, resource, &ns, object).map(|created| (StatusCode::CREATED, Json(created)).into_response())
        },
    )
}

fn object(resource: Resource) -> MethodRouter<Arc<Shared>> {
    get(
        move |State(shared): State<Arc<Shared>>, Path((ns, name)): Path<(String, String)>, headers: HeaderMap| async move {
            let object = stored(&shared, resource, &ns, &name)?;
            if wants_table(&headers) {
                let rv = meta_str(&object, "resourceVersion").to_owned();
                return Ok::<_, ApiError>(Json(super::table(resource, &[object], json!({"resourceVersion": rv}))).into_response());
            }
            Ok(Json(object).into_response())
        },
    )
    .put(move |State(shared): State<Arc<Shared>>, Path((ns, name)): Path<(String, String)>, headers: HeaderMap, body: Bytes| async move {
        let new = request_body(resource, &headers, &body)?;
        // An update without a resourceVersion is unconditional, as these registries allow.
        let rv = Some(meta_str(&new, "resourceVersion").to_owned()).filter(|rv| !rv.is_empty());
        update(&shared, resource, &ns, &name, new, rv).map(Json)
    })
    .patch(
        move |State(shared): State<Arc<Shared>>,
              Path((ns, name)): Path<(String, String)>,
              headers: HeaderMap,
              body: Bytes| async move {
            let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
            let kind = PatchType::from_content_type(content_type)?;
            let patch_doc = json_body(&body)?;
            let old = stored(&shared, resource, &ns, &name)?;
            let mut new = old.clone();
            patch::apply(kind, &mut new, &patch_doc)?;
            let rv = meta_str(&new, "resourceVersion").to_owned();
            let expect = (rv != meta_str(&old, "resourceVersion")).then_some(rv);
            update(&shared, resource, &ns, &name, new, expect).map(Json)
        },
    )
    .delete(move |State(shared): State<Arc<Shared>>, Path((ns, name)): Path<(String, String)>| async move {
        delete(&shared, resource, &ns, &name).map(Json)
    })
}

fn stored(shared: &Shared, resource: Resource, ns: &str, name: &str) -> ApiResult<Value> {
    shared.store().get(resource, ns, name).cloned().ok_or_else(|| ApiError::not_found(&resource.qualified(), name))
}

fn invalid(resource: Resource, name: &str, causes: Vec<Cause>) -> ApiError {
    ApiError::invalid(resource.kind(), name, causes)
}

/// Checks `object`'s kind and namespace against the request, as the apiserver's decoder does.
fn check_envelope(resource: Resource, ns: &str, object: &mut Value) -> ApiResult<()> {
    if !object.is_object() {
        return Err(ApiError::bad_request(format!("the body of the request must be a {} object", resource.kind())));
    }
    if let Some(kind) = object.get("kind").and_then(Value::as_str)
        && kind != resource.kind()
    {
        return Err(ApiError::bad_request(format!(
            "the kind of the provided object ({kind}) is not {}",
            resource.kind()
        )));
    }
    if !object.get("metadata").is_some_and(Value::is_object) {
        object["metadata"] = json!({});
    }
    if let Some(object_ns) = object.pointer("/metadata/namespace").and_then(Value::as_str)
        && !object_ns.is_empty()
        && object_ns != ns
    {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    object["metadata"]["namespace"] = json!(ns);
    object["kind"] = json!(resource.kind());
    object["apiVersion"] = json!(resource.api_version());
    Ok(())
}

/// Creates an object (POST): the name (or one made from `generateName`), the kind's defaults and
/// validation (422), the namespace (404), then 409 if it exists.
pub(crate) fn create(shared: &Shared, resource: Resource, ns: &str, mut object: Value) -> ApiResult<Value> {
    check_envelope(resource, ns, &mut object)?;
    let mut name = meta_str(&object, "name").to_owned();
    if name.is_empty() {
        let generate = meta_str(&object, "generateName").to_owned();
        if generate.is_empty() {
            return Err(invalid(resource, "", vec![Cause::required("metadata.name")]));
        }
        name = format!("{}{}", &generate[..generate.len().min(253 - 5)], super::pods::random_suffix());
    }
    object["metadata"]["name"] = json!(name);
    if let Some(why) = validate::dns1123_subdomain_error(&name) {
        return Err(invalid(resource, &name, vec![Cause::invalid("metadata.name", &name, &why)]));
    }
    kinds::prepare(resource, &mut object, None).map_err(|causes| invalid(resource, &name, causes))?;
    let mut store = shared.store();
    if store.get(Resource::Namespaces, "", ns).is_none() {
        return Err(ApiError::not_found("namespaces", ns));
    }
    if store.get(resource, ns, &name).is_some() {
        return Err(ApiError::already_exists(&resource.qualified(), &name));
    }
    let uid = store.new_uid();
    let meta = &mut object["metadata"];
    meta["uid"] = json!(uid);
    meta["creationTimestamp"] = json!(time::now_rfc3339());
    if let Some(m) = meta.as_object_mut() {
        for server_owned in ["resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"] {
            m.remove(server_owned);
        }
    }
    if resource == Resource::Deployments {
        object["status"] = json!({});
    }
    Ok(store.insert(resource, ns, &name, object))
}

/// Replaces an object (PUT, or the result of a PATCH), keeping what the server owns (uid,
/// creation time, a Deployment's status). `expect_rv` is a resourceVersion precondition (409).
/// A write that changes nothing keeps the resourceVersion.
pub(crate) fn update(
    shared: &Shared,
    resource: Resource,
    ns: &str,
    name: &str,
    mut new: Value,
    expect_rv: Option<String>,
) -> ApiResult<Value> {
    check_envelope(resource, ns, &mut new)?;
    if meta_str(&new, "name") != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({}) does not match the name on the URL ({name})",
            meta_str(&new, "name")
        )));
    }
    let old = stored(shared, resource, ns, name)?;
    if let Some(rv) = expect_rv
        && rv != meta_str(&old, "resourceVersion")
    {
        return Err(ApiError::modified(&resource.qualified(), name));
    }
    for server_owned in ["uid", "creationTimestamp", "resourceVersion", "generation"] {
        match old.pointer(&format!("/metadata/{server_owned}")) {
            Some(value) => new["metadata"][server_owned] = value.clone(),
            None => {
                if let Some(m) = new["metadata"].as_object_mut() {
                    m.remove(server_owned);
                }
            }
        }
    }
    if resource == Resource::Deployments {
        new["status"] = old.get("status").cloned().unwrap_or_else(|| json!({}));
    }
    kinds::prepare(resource, &mut new, Some(&old)).map_err(|causes| invalid(resource, name, causes))?;
    if new == old {
        return Ok(old);
    }
    let mut store = shared.store();
    // Another writer may have got in between: the stored version must still be the one checked.
    match store.get(resource, ns, name) {
        Some(current) if meta_str(current, "resourceVersion") == meta_str(&old, "resourceVersion") => {}
        Some(_) => return Err(ApiError::modified(&resource.qualified(), name)),
        None => return Err(ApiError::not_found(&resource.qualified(), name)),
    }
    store.replace(resource, ns, name, new).ok_or_else(|| ApiError::not_found(&resource.qualified(), name))
}

/// Creates the object, or replaces the one of the same name (the test hooks' `add_*`).
pub(crate) fn upsert(shared: &Shared, resource: Resource, ns: &str, object: Value) -> ApiResult<Value> {
    let name = meta_str(&object, "name").to_owned();
    match create(shared, resource, ns, object.clone()) {
        Err(error) if error.code == 409 => update(shared, resource, ns, &name, object, None),
        other => other,
    }
}

/// Deletes an object at once (these kinds have no graceful deletion); the answer is a Success
/// `Status`, as the apiserver's registry returns for them.
pub(crate) fn delete(shared: &Shared, resource: Resource, ns: &str, name: &str) -> ApiResult<Value> {
    let removed =
        shared.store().remove(resource, ns, name).ok_or_else(|| ApiError::not_found(&resource.qualified(), name))?;
    Ok(json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {"name": name, "group": resource.group(), "kind": resource.plural(), "uid": meta_str(&removed, "uid")},
    }))
}
