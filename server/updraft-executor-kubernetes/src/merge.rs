//! Laying pods over each other, as Airflow's `reconcile_pods` does: the pod template, then the
//! pod the executor generates, then the task's override. Pure: JSON in, JSON out.
//!
//! Rules: a later scalar (or a later list not named below) replaces an earlier one; objects
//! merge key by key (so labels and annotations are a map merge); the lists `env`, `envFrom`,
//! `volumes`, `volumeMounts`, `volumeDevices`, `initContainers` and `ports` are concatenated;
//! `containers` are matched by position (the first is `base`) and merged by the same rules.
//! A `null` in a later layer means "not given", never "remove".

use serde_json::{Map, Value};

/// A pod that cannot be assembled; the try fails with this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MergeError(pub String);

/// Lists that are concatenated rather than replaced.
const CONCATENATED: &[&str] =
    &["env", "envFrom", "volumes", "volumeMounts", "volumeDevices", "initContainers", "ports"];

/// Merges `layers` in order (template, generated, override) into one pod. Each layer must be a
/// JSON object shaped like a Pod (`kind: Pod` if it names a kind, `spec.containers` a list).
pub fn reconcile(layers: &[(&str, &Value)]) -> Result<Value, MergeError> {
    let mut pod = Value::Object(Map::new());
    for (what, layer) in layers {
        check_shape(what, layer)?;
        merge_into(&mut pod, layer, "")?;
    }
    Ok(pod)
}

fn check_shape(what: &str, layer: &Value) -> Result<(), MergeError> {
    let Some(object) = layer.as_object() else {
        return Err(MergeError(format!("the {what} is not a Pod: expected a mapping, found {}", type_name(layer))));
    };
    if let Some(kind) = object.get("kind")
        && kind.as_str() != Some("Pod")
    {
        return Err(MergeError(format!("the {what} is not a Pod: its kind is {kind}")));
    }
    if let Some(spec) = object.get("spec").filter(|s| !s.is_null()) {
        let Some(spec) = spec.as_object() else {
            return Err(MergeError(format!("the {what}'s spec is a {}, not a mapping", type_name(spec))));
        };
        for list in ["containers", "initContainers"] {
            if let Some(value) = spec.get(list).filter(|v| !v.is_null())
                && !value.as_array().is_some_and(|items| items.iter().all(Value::is_object))
            {
                return Err(MergeError(format!("the {what}'s spec.{list} must be a list of mappings")));
            }
        }
    }
    Ok(())
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "mapping",
    }
}

/// Merges `later` into `base` at `path` (for messages). It recurses over `later`'s nesting,
/// which the readers of its sources bound: updraft-dag's YAML tree and serde-saphyr have depth
/// limits, serde_json stops at 128 levels.
fn merge_into(base: &mut Value, later: &Value, path: &str) -> Result<(), MergeError> {
    match later {
        Value::Null => Ok(()),
        Value::Object(later) => {
            if !base.is_object() {
                *base = Value::Object(Map::new());
            }
            let Value::Object(base) = base else { return Ok(()) };
            for (key, value) in later {
                let path = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                let slot = base.entry(key.clone()).or_insert(Value::Null);
                if key == "containers" {
                    merge_containers(slot, value, &path)?;
                } else if CONCATENATED.contains(&key.as_str()) {
                    concatenate(slot, value, &path)?;
                } else {
                    merge_into(slot, value, &path)?;
                }
            }
            Ok(())
        }
        scalar_or_list => {
            *base = scalar_or_list.clone();
            Ok(())
        }
    }
}

fn concatenate(base: &mut Value, later: &Value, path: &str) -> Result<(), MergeError> {
    let items = match later {
        Value::Null => return Ok(()),
        Value::Array(items) => items,
        other => return Err(MergeError(format!("{path} must be a list, found a {}", type_name(other)))),
    };
    match base {
        Value::Array(existing) => existing.extend(items.iter().cloned()),
        _ => *base = Value::Array(items.clone()),
    }
    Ok(())
}

fn merge_containers(base: &mut Value, later: &Value, path: &str) -> Result<(), MergeError> {
    let items = match later {
        Value::Null => return Ok(()),
        Value::Array(items) => items,
        other => return Err(MergeError(format!("{path} must be a list, found a {}", type_name(other)))),
    };
    if !base.is_array() {
        *base = Value::Array(Vec::new());
    }
    let Value::Array(existing) = base else { return Ok(()) };
    for (index, container) in items.iter().enumerate() {
        let path = format!("{path}[{index}]");
        match existing.get_mut(index) {
            Some(slot) => merge_into(slot, container, &path)?,
            None => existing.push(container.clone()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn template_generated_and_override_merge_in_order() {
        let template = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "placeholder", "labels": {"team": "data", "tier": "t"}, "annotations": {"a": "1"}},
            "spec": {
                "serviceAccountName": "updraft-worker",
                "volumes": [{"name": "cfg", "configMap": {"name": "cfg"}}],
                "initContainers": [{"name": "init", "image": "busybox"}],
                "containers": [
                    {"name": "base", "image": "placeholder", "env": [{"name": "FROM_TEMPLATE", "value": "1"}],
                     "volumeMounts": [{"name": "cfg", "mountPath": "/cfg"}],
                     "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}},
                    {"name": "sidecar", "image": "proxy:1"},
                ],
                "tolerations": [{"key": "a", "operator": "Exists"}],
            },
        });
        let generated = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "orders-load-0123456789", "labels": {"app.kubernetes.io/managed-by": "updraft"}},
            "spec": {"restartPolicy": "Never", "containers": [
                {"name": "base", "image": "updraft/worker:1", "args": ["tasks", "run"],
                 "env": [{"name": "UPDRAFT__EXECUTOR_POD", "value": "true"}]},
            ]},
        });
        let task = json!({
            "metadata": {"labels": {"tier": "gold"}, "annotations": {"b": "2"}},
            "spec": {
                "tolerations": [{"key": "gpu", "operator": "Exists"}],
                "containers": [{"image": "updraft/worker:gpu", "env": [{"name": "X", "value": "y"}],
                                "envFrom": [{"secretRef": {"name": "s"}}],
                                "resources": {"requests": {"cpu": "2"}, "limits": {"nvidia.com/gpu": "1"}}}],
            },
        });
        let pod = reconcile(&[("pod template", &template), ("generated pod", &generated), ("task override", &task)])
            .expect("merges");
        assert_eq!(pod["metadata"]["name"], "orders-load-0123456789");
        assert_eq!(
            pod["metadata"]["labels"],
            json!({"team": "data", "tier": "gold", "app.kubernetes.io/managed-by": "updraft"})
        );
        assert_eq!(pod["metadata"]["annotations"], json!({"a": "1", "b": "2"}));
        assert_eq!(pod["spec"]["serviceAccountName"], "updraft-worker");
        assert_eq!(pod["spec"]["restartPolicy"], "Never");
        assert_eq!(pod["spec"]["initContainers"], json!([{"name": "init", "image": "busybox"}]));
        // Lists other than the concatenated ones are replaced.
        assert_eq!(pod["spec"]["tolerations"], json!([{"key": "gpu", "operator": "Exists"}]));
        let base = &pod["spec"]["containers"][0];
        assert_eq!(base["name"], "base");
        assert_eq!(base["image"], "updraft/worker:gpu");
        assert_eq!(base["args"], json!(["tasks", "run"]));
        assert_eq!(
            base["env"],
            json!([{"name": "FROM_TEMPLATE", "value": "1"}, {"name": "UPDRAFT__EXECUTOR_POD", "value": "true"},
                   {"name": "X", "value": "y"}])
        );
        assert_eq!(base["envFrom"], json!([{"secretRef": {"name": "s"}}]));
        assert_eq!(base["volumeMounts"], json!([{"name": "cfg", "mountPath": "/cfg"}]));
        assert_eq!(
            base["resources"],
            json!({"requests": {"cpu": "2", "memory": "128Mi"}, "limits": {"nvidia.com/gpu": "1"}})
        );
        assert_eq!(pod["spec"]["containers"][1], json!({"name": "sidecar", "image": "proxy:1"}));
    }

    #[test]
    fn a_layer_that_is_not_a_pod_is_a_clear_error() {
        let generated = json!({"kind": "Pod", "spec": {"containers": [{"name": "base"}]}});
        let service = json!({"apiVersion": "v1", "kind": "Service"});
        assert_eq!(
            reconcile(&[("pod template", &service), ("generated pod", &generated)]),
            Err(MergeError("the pod template is not a Pod: its kind is \"Service\"".into()))
        );
        assert_eq!(
            reconcile(&[("pod template", &json!(["a"]))]),
            Err(MergeError("the pod template is not a Pod: expected a mapping, found list".into()))
        );
        let bad_containers = json!({"spec": {"containers": {"name": "base"}}});
        assert_eq!(
            reconcile(&[("pod template", &bad_containers)]),
            Err(MergeError("the pod template's spec.containers must be a list of mappings".into()))
        );
        let bad_env = json!({"spec": {"containers": [{"env": {"A": "b"}}]}});
        assert_eq!(
            reconcile(&[("generated pod", &generated), ("task override", &bad_env)]),
            Err(MergeError("spec.containers[0].env must be a list, found a mapping".into()))
        );
    }
}
