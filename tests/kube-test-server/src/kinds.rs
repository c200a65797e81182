//! What the apiserver's registries do for Secrets, ConfigMaps and Deployments on create and
//! update, as pure functions over JSON: defaults (a Secret's `type`, a Deployment's replicas,
//! strategy and pod template), `stringData` folded into base64 `data`, validation with the
//! apiserver's field paths and messages (config keys, size, `immutable`, a Deployment's
//! selector against its template), `metadata.generation`, and reading the decoded data the
//! kubelet projects into environment variables and volumes.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{Value, json};

use crate::status::Cause;
use crate::store::Resource;

const CONFIG_KEY_MSG: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";

/// The most a Secret's or ConfigMap's data may hold, as etcd's object limit allows.
const MAX_DATA_BYTES: usize = 1024 * 1024;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Why `key` cannot name a Secret's or ConfigMap's entry (it becomes a file name), if it cannot.
fn config_key_error(key: &str) -> Option<String> {
    if key.len() > 253 {
        return Some("must be no more than 253 characters".to_owned());
    }
    if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) {
        return Some(CONFIG_KEY_MSG.to_owned());
    }
    match key {
        "." => Some("must not be '.'".to_owned()),
        ".." => Some("must not be '..'".to_owned()),
        _ if key.starts_with("..") => Some("must not start with '..'".to_owned()),
        _ => None,
    }
}

/// Decoded data of a Secret (`data`, base64) or ConfigMap (`data` as text, `binaryData` as
/// base64): what the kubelet writes into files and environment variables. Entries that do not
/// decode are left out (the apiserver never stores them).
pub(crate) fn data(resource: Resource, object: &Value) -> BTreeMap<String, Vec<u8>> {
    let entries = |field: &str| object.get(field).and_then(Value::as_object).into_iter().flatten();
    let mut out = BTreeMap::new();
    match resource {
        Resource::Secrets => {
            for (key, value) in entries("data") {
                if let Some(bytes) = value.as_str().and_then(|v| B64.decode(v).ok()) {
                    out.insert(key.clone(), bytes);
                }
            }
        }
        _ => {
            for (key, value) in entries("data") {
                if let Some(text) = value.as_str() {
                    out.insert(key.clone(), text.as_bytes().to_vec());
                }
            }
            for (key, value) in entries("binaryData") {
                if let Some(bytes) = value.as_str().and_then(|v| B64.decode(v).ok()) {
                    out.insert(key.clone(), bytes);
                }
            }
        }
    }
    out
}

/// A Secret object as `kubectl create secret generic` sends it: text values, base64 in `data`.
pub(crate) fn secret_object(namespace: &str, name: &str, values: &BTreeMap<String, String>) -> Value {
    let data: serde_json::Map<String, Value> = values.iter().map(|(k, v)| (k.clone(), json!(B64.encode(v)))).collect();
    json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "type": "Opaque",
        "data": data,
    })
}

pub(crate) fn config_map_object(namespace: &str, name: &str, values: &BTreeMap<String, String>) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": values,
    })
}

/// Fills in defaults and checks `object` as the registry of `resource` does before a write.
/// `old` is the stored object on update. On success the object is what gets stored (apart from
/// the metadata the store stamps); otherwise the causes of the 422.
pub(crate) fn prepare(resource: Resource, object: &mut Value, old: Option<&Value>) -> Result<(), Vec<Cause>> {
    let mut causes = Vec::new();
    crate::validate::metadata(object, &mut causes);
    match resource {
        Resource::Secrets => secret(object, old, &mut causes),
        Resource::ConfigMaps => config_map(object, old, &mut causes),
        Resource::Deployments => deployment(object, old, &mut causes),
        Resource::Pods | Resource::Events | Resource::Namespaces => {}
    }
    if causes.is_empty() { Ok(()) } else { Err(causes) }
}

/// Keys, size and `immutable` of a Secret's or ConfigMap's `fields`.
fn check_data(object: &Value, old: Option<&Value>, fields: &[&str], causes: &mut Vec<Cause>) {
    let mut total = 0;
    let mut seen = std::collections::BTreeSet::new();
    for field in fields {
        for (key, value) in object.get(*field).and_then(Value::as_object).into_iter().flatten() {
            if let Some(why) = config_key_error(key) {
                causes.push(Cause::invalid(format!("{field}[{key}]"), key, &why));
            }
            if !seen.insert(key.clone()) {
                causes.push(Cause::invalid(format!("{field}[{key}]"), key, "duplicate of key present in data"));
            }
            total += value.as_str().map_or(0, str::len);
        }
    }
    if total > MAX_DATA_BYTES {
        causes.push(Cause::too_long(fields[0], MAX_DATA_BYTES));
    }
    if let Some(old) = old
        && old.get("immutable").and_then(Value::as_bool) == Some(true)
    {
        const WHY: &str = "field is immutable when `immutable` is set";
        if fields.iter().any(|f| object.get(*f) != old.get(*f)) {
            causes.push(Cause::forbidden(fields[0], WHY));
        }
        if object.get("immutable").and_then(Value::as_bool) != Some(true) {
            causes.push(Cause::forbidden("immutable", WHY));
        }
    }
}

fn secret(object: &mut Value, old: Option<&Value>, causes: &mut Vec<Cause>) {
    if object.get("type").and_then(Value::as_str).is_none_or(str::is_empty) {
        object["type"] = json!("Opaque");
    }
    // The apiserver folds stringData into data on every write and never stores it.
    if let Some(Value::Object(plain)) = object.as_object_mut().and_then(|o| o.remove("stringData")) {
        if !object["data"].is_object() {
            object["data"] = json!({});
        }
        for (key, value) in plain {
            object["data"][&key] = json!(B64.encode(value.as_str().unwrap_or_default()));
        }
    }
    for (key, value) in object.get("data").and_then(Value::as_object).into_iter().flatten() {
        if value.as_str().is_none_or(|v| B64.decode(v).is_err()) {
            causes.push(Cause::invalid(format!("data[{key}]"), key, "must be base64-encoded bytes"));
        }
    }
    check_data(object, old, &["data"], causes);
    if let Some(old) = old
        && old.get("type") != object.get("type")
    {
        let value = object.get("type").and_then(Value::as_str).unwrap_or("");
        causes.push(Cause::invalid("type", value, "field is immutable"));
    }
}

fn config_map(object: &mut Value, old: Option<&Value>, causes: &mut Vec<Cause>) {
    for (key, value) in object.get("binaryData").and_then(Value::as_object).into_iter().flatten() {
        if value.as_str().is_none_or(|v| B64.decode(v).is_err()) {
            causes.push(Cause::invalid(format!("binaryData[{key}]"), key, "must be base64-encoded bytes"));
        }
    }
    check_data(object, old, &["data", "binaryData"], causes);
}

fn deployment(object: &mut Value, old: Option<&Value>, causes: &mut Vec<Cause>) {
    if !object["spec"].is_object() {
        object["spec"] = json!({});
    }
    let spec = &mut object["spec"];
    for (field, value) in [
        ("replicas", json!(1)),
        ("strategy", json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})),
        ("revisionHistoryLimit", json!(10)),
        ("progressDeadlineSeconds", json!(600)),
    ] {
        if spec.get(field).is_none() {
            spec[field] = value;
        }
    }
    if spec.pointer("/replicas").and_then(Value::as_i64).is_none_or(|r| r < 0) {
        causes.push(Cause::invalid(
            "spec.replicas",
            &spec["replicas"].to_string(),
            "must be greater than or equal to 0",
        ));
    }
    let selector = spec.pointer("/selector/matchLabels").and_then(Value::as_object).cloned();
    match &selector {
        None if spec.pointer("/selector/matchExpressions").is_none() => causes.push(Cause::required("spec.selector")),
        _ => {}
    }
    let labels = spec.pointer("/template/metadata/labels").and_then(Value::as_object).cloned().unwrap_or_default();
    if let Some(selector) = &selector
        && selector.iter().any(|(k, v)| labels.get(k) != Some(v))
    {
        causes.push(Cause::invalid(
            "spec.template.metadata.labels",
            &Value::Object(labels.clone()).to_string(),
            "`selector` does not match template `labels`",
        ));
    }
    // The pod template is defaulted and validated as a pod would be.
    let mut pod = json!({
        "metadata": {"name": "template", "labels": labels},
        "spec": spec.pointer("/template/spec").cloned().unwrap_or_else(|| json!({})),
    });
    crate::api::pods::apply_defaults(&mut pod);
    for cause in crate::validate::pod(&pod) {
        let field = match cause.field.split_once('.') {
            Some(("spec" | "metadata", _)) => format!("spec.template.{}", cause.field),
            _ => cause.field.clone(),
        };
        causes.push(Cause { field, ..cause });
    }
    let restart = pod.pointer("/spec/restartPolicy").and_then(Value::as_str).unwrap_or("");
    if restart != "Always" {
        causes.push(Cause::not_supported("spec.template.spec.restartPolicy", restart, &["Always"]));
    }
    spec["template"]["spec"] = pod["spec"].take();
    match old {
        None => object["metadata"]["generation"] = json!(1),
        Some(old) => {
            if old.pointer("/spec/selector") != object.pointer("/spec/selector") {
                let value = object.pointer("/spec/selector").map(Value::to_string).unwrap_or_default();
                causes.push(Cause::invalid("spec.selector", &value, "field is immutable"));
            }
            let generation = old.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(1);
            let changed = old.get("spec") != object.get("spec");
            object["metadata"]["generation"] = json!(generation + i64::from(changed));
        }
    }
}

/// The columns of `kubectl get` for `resource` (after the name), with each object's cells:
/// `(columns, cells)` where columns are `(name, priority)`.
pub(crate) fn columns(resource: Resource) -> &'static [(&'static str, u8)] {
    match resource {
        Resource::Pods => &[("Name", 0), ("Ready", 0), ("Status", 0), ("Restarts", 0), ("Age", 0)],
        Resource::Secrets => &[("Name", 0), ("Type", 0), ("Data", 0), ("Age", 0)],
        Resource::ConfigMaps => &[("Name", 0), ("Data", 0), ("Age", 0)],
        Resource::Deployments => &[
            ("Name", 0),
            ("Ready", 0),
            ("Up-to-date", 0),
            ("Available", 0),
            ("Age", 0),
            ("Containers", 1),
            ("Images", 1),
            ("Selector", 1),
        ],
        Resource::Events | Resource::Namespaces => &[],
    }
}

/// One row of `kubectl get` for a Secret, ConfigMap or Deployment, in [`columns`] order.
pub(crate) fn cells(resource: Resource, object: &Value, age: String) -> Vec<Value> {
    let name = object.pointer("/metadata/name").cloned().unwrap_or(Value::Null);
    let count = |field: &str| object.get(field).and_then(Value::as_object).map_or(0, |m| m.len());
    match resource {
        Resource::Secrets => vec![name, object["type"].clone(), json!(count("data")), json!(age)],
        Resource::ConfigMaps => vec![name, json!(count("data") + count("binaryData")), json!(age)],
        Resource::Deployments => {
            let status = |field: &str| object.pointer(&format!("/status/{field}")).and_then(Value::as_i64).unwrap_or(0);
            let wanted = object.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(0);
            let containers = object.pointer("/spec/template/spec/containers").and_then(Value::as_array);
            let field = |f: &str| {
                containers
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c.get(f).and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join(",")
            };
            let selector = object
                .pointer("/spec/selector/matchLabels")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",");
            vec![
                name,
                json!(format!("{}/{wanted}", status("readyReplicas"))),
                json!(status("updatedReplicas")),
                json!(status("availableReplicas")),
                json!(age),
                json!(field("name")),
                json!(field("image")),
                json!(selector),
            ]
        }
        Resource::Pods | Resource::Events | Resource::Namespaces => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_fold_string_data_and_check_keys_and_immutability() {
        let mut secret = json!({"metadata": {"name": "s"}, "data": {"a": B64.encode("1")}, "stringData": {"b": "2"}});
        prepare(Resource::Secrets, &mut secret, None).expect("valid");
        assert_eq!(secret["type"], "Opaque");
        assert!(secret.get("stringData").is_none());
        let decoded = data(Resource::Secrets, &secret);
        assert_eq!(decoded.get("b").map(Vec::as_slice), Some(b"2".as_slice()));

        let mut bad = json!({"metadata": {"name": "s"}, "data": {"no/slash": B64.encode("x"), "ok": "%%%"}});
        let causes = prepare(Resource::Secrets, &mut bad, None).expect_err("invalid");
        let fields: Vec<_> = causes.iter().map(|c| c.field.as_str()).collect();
        assert!(fields.contains(&"data[no/slash]") && fields.contains(&"data[ok]"), "{fields:?}");

        let mut old = json!({"metadata": {"name": "s"}, "immutable": true, "data": {"a": B64.encode("1")}});
        prepare(Resource::Secrets, &mut old, None).expect("valid");
        let mut changed = old.clone();
        changed["data"]["a"] = json!(B64.encode("2"));
        let causes = prepare(Resource::Secrets, &mut changed, Some(&old)).expect_err("immutable");
        assert_eq!(causes[0].field, "data");
    }

    #[test]
    fn deployments_default_and_check_their_selector_and_template() {
        let mut deployment = json!({
            "metadata": {"name": "d"},
            "spec": {
                "selector": {"matchLabels": {"app": "x"}},
                "template": {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}},
            },
        });
        prepare(Resource::Deployments, &mut deployment, None).expect("valid");
        assert_eq!(deployment["spec"]["replicas"], 1);
        assert_eq!(deployment["spec"]["template"]["spec"]["restartPolicy"], "Always");
        assert_eq!(deployment["metadata"]["generation"], 1);
        let mut scaled = deployment.clone();
        scaled["spec"]["replicas"] = json!(3);
        prepare(Resource::Deployments, &mut scaled, Some(&deployment)).expect("valid");
        assert_eq!(scaled["metadata"]["generation"], 2);

        let mut mismatched = deployment.clone();
        mismatched["spec"]["template"]["metadata"]["labels"] = json!({"app": "y"});
        let causes = prepare(Resource::Deployments, &mut mismatched, None).expect_err("selector");
        assert_eq!(causes[0].field, "spec.template.metadata.labels");
        let mut no_image = deployment.clone();
        no_image["spec"]["template"]["spec"]["containers"][0]["image"] = json!("");
        let causes = prepare(Resource::Deployments, &mut no_image, None).expect_err("image");
        assert_eq!(causes[0].field, "spec.template.spec.containers[0].image");
    }
}
