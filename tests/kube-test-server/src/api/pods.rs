//! Pods: create (defaults, validation, quota admission, 409), get, list/watch, update with
//! optimistic concurrency, patch, graceful delete, and the status subresource.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{Params, json_body, list_or_watch, meta_str, wants_table};
use crate::patch::{self, PatchType};
use crate::status::{ApiError, ApiResult, Cause};
use crate::store::Resource;
use crate::{Shared, kubelet, lock, time, validate};

pub(crate) async fn list(
    State(shared): State<Arc<Shared>>,
    Path(ns): Path<String>,
    Query(params): Query<Params>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    list_or_watch(&shared, Resource::Pods, Some(ns), &params, &headers)
}

pub(crate) async fn list_all(
    State(shared): State<Arc<Shared>>,
    Query(params): Query<Params>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    list_or_watch(&shared, Resource::Pods, None, &params, &headers)
}

fn stored(shared: &Shared, ns: &str, name: &str) -> ApiResult<Value> {
    shared.store().get(Resource::Pods, ns, name).cloned().ok_or_else(|| ApiError::not_found("pods", name))
}

pub(crate) async fn get_one(
    State(shared): State<Arc<Shared>>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let pod = stored(&shared, &ns, &name)?;
    if wants_table(&headers) {
        let rv = meta_str(&pod, "resourceVersion").to_owned();
        return Ok(Json(super::table(Resource::Pods, &[pod], json!({"resourceVersion": rv}))).into_response());
    }
    Ok(Json(pod).into_response())
}

pub(crate) async fn get_status(
    State(shared): State<Arc<Shared>>,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    stored(&shared, &ns, &name).map(Json)
}

/// Five lowercase consonant-and-digit characters, as the apiserver appends to `generateName`.
pub(crate) fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut seed =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(7)
            ^ 0x2545_f491_4f6c_dd1d;
    (0..5)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            ALPHABET[(seed % ALPHABET.len() as u64) as usize] as char
        })
        .collect()
}

/// The spec defaults the apiserver fills in on create and update.
pub(crate) fn apply_defaults(pod: &mut Value) {
    let spec = &mut pod["spec"];
    for (field, value) in [
        ("restartPolicy", json!("Always")),
        ("terminationGracePeriodSeconds", json!(30)),
        ("dnsPolicy", json!("ClusterFirst")),
        ("schedulerName", json!("default-scheduler")),
        ("serviceAccountName", json!("default")),
        ("securityContext", json!({})),
        ("enableServiceLinks", json!(true)),
        ("preemptionPolicy", json!("PreemptLowerPriority")),
        ("priority", json!(0)),
    ] {
        if spec.get(field).is_none() {
            spec[field] = value;
        }
    }
    for list in ["initContainers", "containers"] {
        if let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) {
            for c in containers {
                let image = c.get("image").and_then(Value::as_str).unwrap_or("").to_owned();
                let tagged = image.rsplit('/').next().is_some_and(|last| last.contains(':')) || image.contains('@');
                let pull = if !tagged || image.ends_with(":latest") { "Always" } else { "IfNotPresent" };
                for (field, value) in [
                    ("imagePullPolicy", json!(pull)),
                    ("terminationMessagePath", json!("/dev/termination-log")),
                    ("terminationMessagePolicy", json!("File")),
                    ("resources", json!({})),
                ] {
                    if c.get(field).is_none() {
                        c[field] = value;
                    }
                }
            }
        }
    }
}

fn is_terminal(pod: &Value) -> bool {
    matches!(pod.pointer("/status/phase").and_then(Value::as_str), Some("Succeeded" | "Failed"))
}

pub(crate) async fn create(
    State(shared): State<Arc<Shared>>,
    Path(ns): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let mut pod = super::request_body(Resource::Pods, &headers, &body)?;
    if !pod.is_object() {
        return Err(ApiError::bad_request("the body of the request must be a Pod object"));
    }
    if let Some(kind) = pod.get("kind").and_then(Value::as_str)
        && kind != "Pod"
    {
        return Err(ApiError::bad_request(format!("the kind of the provided object ({kind}) is not Pod")));
    }
    if !pod.get("metadata").is_some_and(Value::is_object) {
        pod["metadata"] = json!({});
    }
    if let Some(object_ns) = pod.pointer("/metadata/namespace").and_then(Value::as_str)
        && !object_ns.is_empty()
        && object_ns != ns
    {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    let mut name = meta_str(&pod, "name").to_owned();
    if name.is_empty() {
        let generate = meta_str(&pod, "generateName").to_owned();
        if generate.is_empty() {
            return Err(ApiError::invalid(
                "Pod",
                "",
                vec![Cause {
                    reason: "FieldValueRequired",
                    field: "metadata.name".to_owned(),
                    message: "Required value: name or generateName is required".to_owned(),
                }],
            ));
        }
        let keep = generate.len().min(253 - 5);
        name = format!("{}{}", &generate[..keep], random_suffix());
    }
    pod["metadata"]["name"] = json!(name);
    pod["metadata"]["namespace"] = json!(ns);
    pod["apiVersion"] = json!("v1");
    pod["kind"] = json!("Pod");

    let mut store = shared.store();
    if store.get(Resource::Namespaces, "", &ns).is_none() {
        return Err(ApiError::not_found("namespaces", &ns));
    }
    let causes = validate::pod(&pod);
    if !causes.is_empty() {
        return Err(ApiError::invalid("Pod", &name, causes));
    }
    if let Some(limit) = *lock(&shared.pod_quota) {
        let used = store.list(Resource::Pods, Some(&ns)).into_iter().filter(|p| !is_terminal(p)).count();
        if used >= limit {
            return Err(ApiError::forbidden(
                "pods",
                Some(&name),
                &format!("exceeded quota: pod-quota, requested: pods=1, used: pods={used}, limited: pods={limit}"),
            ));
        }
    }
    if store.get(Resource::Pods, &ns, &name).is_some() {
        return Err(ApiError::already_exists("pods", &name));
    }
    let meta = &mut pod["metadata"];
    meta["uid"] = json!(store.new_uid());
    meta["creationTimestamp"] = json!(time::now_rfc3339());
    if let Some(m) = meta.as_object_mut() {
        for server_owned in ["resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"] {
            m.remove(server_owned);
        }
    }
    apply_defaults(&mut pod);
    if shared.config.mount_volumes {
        crate::admission::mount_service_account_token(&shared, &mut pod, &random_suffix());
    }
    // Mutating webhooks run after the built-in admission plugins.
    if let Some(irsa) = &shared.config.irsa {
        crate::admission::inject_iam_role(&shared, irsa, &mut pod);
    }
    pod["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"});
    let created = store.insert(Resource::Pods, &ns, &name, pod);
    drop(store);
    kubelet::start_pod(&shared, &created);
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// Which part of a pod a write may change.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    /// The main resource: metadata and the mutable spec fields; status is kept.
    Main,
    /// The status subresource: only status.
    Status,
}

/// Applies a client's new version of a pod, keeping server-owned fields, checking the
/// resourceVersion precondition (`expect_rv`) and immutability. A no-op write does not bump the
/// resourceVersion, as in the apiserver.
fn write(shared: &Shared, ns: &str, name: &str, part: Part, expect_rv: Option<String>, new: Value) -> ApiResult<Value> {
    let mut store = shared.store();
    let old = store.get(Resource::Pods, ns, name).cloned().ok_or_else(|| ApiError::not_found("pods", name))?;
    if let Some(rv) = expect_rv
        && rv != meta_str(&old, "resourceVersion")
    {
        return Err(ApiError::modified("pods", name));
    }
    if !new.is_object() || meta_str(&new, "name") != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({}) does not match the name on the URL ({name})",
            meta_str(&new, "name")
        )));
    }
    let mut merged = match part {
        Part::Main => {
            let mut merged = new.clone();
            merged["status"] = old.get("status").cloned().unwrap_or(Value::Null);
            merged
        }
        Part::Status => {
            let mut merged = old.clone();
            merged["status"] = new.get("status").cloned().unwrap_or(Value::Null);
            merged
        }
    };
    for server_owned in ["uid", "creationTimestamp", "namespace", "deletionTimestamp", "deletionGracePeriodSeconds"] {
        match old.pointer(&format!("/metadata/{server_owned}")) {
            Some(value) => merged["metadata"][server_owned] = value.clone(),
            None => {
                if let Some(m) = merged["metadata"].as_object_mut() {
                    m.remove(server_owned);
                }
            }
        }
    }
    merged["kind"] = json!("Pod");
    merged["apiVersion"] = json!("v1");
    merged["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
    apply_defaults(&mut merged);
    let causes = validate::pod_update(&old, &merged);
    if !causes.is_empty() {
        return Err(ApiError::invalid("Pod", name, causes));
    }
    if merged == old {
        return Ok(old);
    }
    store.replace(Resource::Pods, ns, name, merged).ok_or_else(|| ApiError::not_found("pods", name))
}

fn put(shared: &Shared, ns: &str, name: &str, part: Part, body: &Bytes) -> ApiResult<Json<Value>> {
    let new = json_body(body)?;
    let rv = meta_str(&new, "resourceVersion").to_owned();
    if rv.is_empty() {
        return Err(ApiError::invalid(
            "Pod",
            name,
            vec![Cause::invalid("metadata.resourceVersion", "", "must be specified for an update")],
        ));
    }
    write(shared, ns, name, part, Some(rv), new).map(Json)
}

fn patch_pod(
    shared: &Shared,
    ns: &str,
    name: &str,
    part: Part,
    headers: &HeaderMap,
    body: &Bytes,
) -> ApiResult<Json<Value>> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let kind = PatchType::from_content_type(content_type)?;
    let patch_doc = json_body(body)?;
    let old = stored(shared, ns, name)?;
    let mut new = old.clone();
    patch::apply(kind, &mut new, &patch_doc)?;
    // A patch that sets metadata.resourceVersion makes it a precondition.
    let rv = meta_str(&new, "resourceVersion").to_owned();
    let expect = (rv != meta_str(&old, "resourceVersion")).then_some(rv);
    write(shared, ns, name, part, expect, new).map(Json)
}

pub(crate) async fn replace(
    State(shared): State<Arc<Shared>>,
    Path((ns, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    put(&shared, &ns, &name, Part::Main, &body)
}

pub(crate) async fn replace_status(
    State(shared): State<Arc<Shared>>,
    Path((ns, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    put(&shared, &ns, &name, Part::Status, &body)
}

pub(crate) async fn patch(
    State(shared): State<Arc<Shared>>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    patch_pod(&shared, &ns, &name, Part::Main, &headers, &body)
}

pub(crate) async fn patch_status(
    State(shared): State<Arc<Shared>>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    patch_pod(&shared, &ns, &name, Part::Status, &headers, &body)
}

pub(crate) async fn delete(
    State(shared): State<Arc<Shared>>,
    Path((ns, name)): Path<(String, String)>,
    Query(params): Query<Params>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let options = if body.iter().all(u8::is_ascii_whitespace) { json!({}) } else { json_body(&body)? };
    let requested_grace = match params.get("gracePeriodSeconds").filter(|g| !g.is_empty()) {
        Some(g) => {
            Some(g.parse::<i64>().map_err(|_| ApiError::bad_request(format!("invalid gracePeriodSeconds {g:?}")))?)
        }
        None => options.get("gracePeriodSeconds").and_then(Value::as_i64),
    };
    let mut store = shared.store();
    let pod = store.get(Resource::Pods, &ns, &name).cloned().ok_or_else(|| ApiError::not_found("pods", &name))?;
    if let Some(uid) = options.pointer("/preconditions/uid").and_then(Value::as_str)
        && uid != meta_str(&pod, "uid")
    {
        return Err(ApiError::conflict(
            "pods",
            &name,
            &format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {}", meta_str(&pod, "uid")),
        ));
    }
    if let Some(rv) = options.pointer("/preconditions/resourceVersion").and_then(Value::as_str)
        && rv != meta_str(&pod, "resourceVersion")
    {
        return Err(ApiError::conflict(
            "pods",
            &name,
            &format!(
                "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                meta_str(&pod, "resourceVersion")
            ),
        ));
    }
    let grace = requested_grace
        .or_else(|| pod.pointer("/spec/terminationGracePeriodSeconds").and_then(Value::as_i64))
        .unwrap_or(30)
        .max(0);
    let uid = meta_str(&pod, "uid").to_owned();
    let unscheduled = pod.pointer("/spec/nodeName").and_then(Value::as_str).is_none_or(str::is_empty);
    // Pods that never reached a node, or whose containers all ended, go at once.
    if grace == 0 || unscheduled || is_terminal(&pod) {
        let removed = store.remove(Resource::Pods, &ns, &name).unwrap_or(pod);
        drop(store);
        kubelet::stop_now(&shared, &uid);
        return Ok(Json(removed));
    }
    if pod.pointer("/metadata/deletionTimestamp").is_some() {
        return Ok(Json(pod));
    }
    let mut terminating = pod;
    let at = time::now() + chrono::Duration::seconds(grace);
    terminating["metadata"]["deletionTimestamp"] = json!(time::rfc3339(at));
    terminating["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
    let updated =
        store.replace(Resource::Pods, &ns, &name, terminating).ok_or_else(|| ApiError::not_found("pods", &name))?;
    drop(store);
    kubelet::terminate(&shared, &updated, std::time::Duration::from_secs(grace as u64));
    Ok(Json(updated))
}

/// The STATUS column of `kubectl get pods`.
fn display_status(pod: &Value) -> String {
    if pod.pointer("/metadata/deletionTimestamp").is_some() {
        return "Terminating".to_owned();
    }
    if let Some(reason) = pod.pointer("/status/reason").and_then(Value::as_str) {
        return reason.to_owned();
    }
    let statuses = pod.pointer("/status/containerStatuses").and_then(Value::as_array);
    for status in statuses.into_iter().flatten() {
        if let Some(reason) = status.pointer("/state/waiting/reason").and_then(Value::as_str) {
            return reason.to_owned();
        }
        if let Some(reason) = status.pointer("/state/terminated/reason").and_then(Value::as_str) {
            return reason.to_owned();
        }
    }
    pod.pointer("/status/phase").and_then(Value::as_str).unwrap_or("Pending").to_owned()
}

/// A pod's row of `kubectl get pods`: name, ready containers, status, restarts, age.
pub(crate) fn cells(pod: &Value, age: String) -> Vec<Value> {
    let statuses = pod.pointer("/status/containerStatuses").and_then(Value::as_array);
    let total = pod.pointer("/spec/containers").and_then(Value::as_array).map_or(0, Vec::len);
    let ready = statuses.into_iter().flatten().filter(|s| s.get("ready") == Some(&json!(true))).count();
    vec![
        json!(meta_str(pod, "name")),
        json!(format!("{ready}/{total}")),
        json!(display_status(pod)),
        json!("0"),
        json!(age),
    ]
}
