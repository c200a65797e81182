//! Validation of names, labels and pod specs, with the apiserver's field paths and messages,
//! so that a client's 422 handling sees what a cluster would send.

use serde_json::Value;

use crate::status::Cause;

const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_NAME_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

fn is_dns1123_label(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

/// Why `name` is not a DNS-1123 label (container names, namespaces), if it is not one.
pub(crate) fn dns1123_label_error(name: &str) -> Option<String> {
    if name.len() > 63 {
        return Some("must be no more than 63 characters".to_owned());
    }
    (!is_dns1123_label(name)).then(|| DNS1123_LABEL_MSG.to_owned())
}

/// Why `name` is not a DNS-1123 subdomain (pod names), if it is not one.
pub(crate) fn dns1123_subdomain_error(name: &str) -> Option<String> {
    if name.len() > 253 {
        return Some("must be no more than 253 characters".to_owned());
    }
    (!name.split('.').all(is_dns1123_label)).then(|| DNS1123_SUBDOMAIN_MSG.to_owned())
}

fn is_label_part(s: &str) -> bool {
    let bytes = s.as_bytes();
    bytes.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

/// Why `key` is not a qualified label or annotation key (`[prefix/]name`), if it is not one.
pub(crate) fn label_key_error(key: &str) -> Option<String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix
        && let Some(error) = dns1123_subdomain_error(prefix)
    {
        return Some(format!("prefix part {error}"));
    }
    if name.is_empty() {
        return Some("name part must be non-empty".to_owned());
    }
    if name.len() > 63 {
        return Some("name part must be no more than 63 characters".to_owned());
    }
    (!is_label_part(name)).then(|| LABEL_NAME_MSG.to_owned())
}

/// Why `value` is not a valid label value, if it is not one.
pub(crate) fn label_value_error(value: &str) -> Option<String> {
    if value.len() > 63 {
        return Some("must be no more than 63 characters".to_owned());
    }
    (!value.is_empty() && !is_label_part(value)).then(|| LABEL_VALUE_MSG.to_owned())
}

/// Validates labels and annotations of any object's metadata.
pub(crate) fn metadata(object: &Value, causes: &mut Vec<Cause>) {
    if let Some(labels) = object.pointer("/metadata/labels") {
        let Some(labels) = labels.as_object() else {
            causes.push(Cause::invalid("metadata.labels", &labels.to_string(), "must be a map of strings"));
            return;
        };
        for (key, value) in labels {
            if let Some(why) = label_key_error(key) {
                causes.push(Cause::invalid("metadata.labels", key, &why));
            }
            match value.as_str() {
                Some(v) => {
                    if let Some(why) = label_value_error(v) {
                        causes.push(Cause::invalid("metadata.labels", v, &why));
                    }
                }
                None => causes.push(Cause::invalid("metadata.labels", &value.to_string(), "must be a string")),
            }
        }
    }
    if let Some(annotations) = object.pointer("/metadata/annotations").and_then(Value::as_object) {
        for (key, value) in annotations {
            if let Some(why) = label_key_error(&key.to_ascii_lowercase()) {
                causes.push(Cause::invalid("metadata.annotations", key, &why));
            }
            if !value.is_string() {
                causes.push(Cause::invalid("metadata.annotations", &value.to_string(), "must be a string"));
            }
        }
    }
}

/// The pod's volumes: names present, DNS-1123 labels and unique, one source each.
fn volumes(spec: &Value, causes: &mut Vec<Cause>) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for (i, volume) in spec.get("volumes").and_then(Value::as_array).into_iter().flatten().enumerate() {
        let path = format!("spec.volumes[{i}]");
        match volume.get("name").and_then(Value::as_str).filter(|n| !n.is_empty()) {
            None => causes.push(Cause::required(format!("{path}.name"))),
            Some(name) => {
                if let Some(why) = dns1123_label_error(name) {
                    causes.push(Cause::invalid(format!("{path}.name"), name, &why));
                } else if names.iter().any(|n| n == name) {
                    causes.push(Cause::duplicate(format!("{path}.name"), name));
                }
                names.push(name.to_owned());
            }
        }
        let sources = volume.as_object().map_or(0, |v| v.keys().filter(|k| *k != "name").count());
        if sources == 0 {
            causes.push(Cause {
                reason: "FieldValueRequired",
                field: path,
                message: "Required value: must specify a volume type".to_owned(),
            });
        } else if sources > 1 {
            causes.push(Cause::forbidden(path, "may not specify more than 1 volume type"));
        }
    }
    names
}

/// A container's volume mounts: a declared volume, a mount path unique in the container, a
/// relative `subPath` without `..`.
fn volume_mounts(container: &Value, path: &str, volumes: &[String], causes: &mut Vec<Cause>) {
    let mut paths: Vec<&str> = Vec::new();
    for (j, mount) in container.get("volumeMounts").and_then(Value::as_array).into_iter().flatten().enumerate() {
        let at = format!("{path}.volumeMounts[{j}]");
        match mount.get("name").and_then(Value::as_str).filter(|n| !n.is_empty()) {
            None => causes.push(Cause::required(format!("{at}.name"))),
            Some(name) if !volumes.iter().any(|v| v == name) => {
                causes.push(Cause::not_found(format!("{at}.name"), name))
            }
            Some(_) => {}
        }
        match mount.get("mountPath").and_then(Value::as_str).filter(|p| !p.is_empty()) {
            None => causes.push(Cause::required(format!("{at}.mountPath"))),
            Some(mount_path) => {
                if paths.contains(&mount_path) {
                    causes.push(Cause::invalid(format!("{at}.mountPath"), mount_path, "must be unique"));
                }
                paths.push(mount_path);
            }
        }
        if let Some(sub_path) = mount.get("subPath").and_then(Value::as_str) {
            if sub_path.starts_with('/') {
                causes.push(Cause::invalid(format!("{at}.subPath"), sub_path, "must be a relative path"));
            } else if sub_path.split('/').any(|part| part == "..") {
                causes.push(Cause::invalid(format!("{at}.subPath"), sub_path, "must not contain '..'"));
            }
        }
    }
}

fn containers(
    spec: &Value,
    field: &str,
    required: bool,
    seen: &mut Vec<String>,
    volume_names: &[String],
    causes: &mut Vec<Cause>,
) {
    let list = spec.get(field).and_then(Value::as_array);
    let Some(list) = list.filter(|l| !l.is_empty()) else {
        if required {
            causes.push(Cause::required(format!("spec.{field}")));
        }
        return;
    };
    for (i, container) in list.iter().enumerate() {
        let path = format!("spec.{field}[{i}]");
        match container.get("name").and_then(Value::as_str).filter(|n| !n.is_empty()) {
            None => causes.push(Cause::required(format!("{path}.name"))),
            Some(name) => {
                if let Some(why) = dns1123_label_error(name) {
                    causes.push(Cause::invalid(format!("{path}.name"), name, &why));
                } else if seen.iter().any(|s| s == name) {
                    causes.push(Cause::duplicate(format!("{path}.name"), name));
                } else {
                    seen.push(name.to_owned());
                }
            }
        }
        let image = container.get("image").and_then(Value::as_str).map(str::trim).filter(|i| !i.is_empty());
        if image.is_none() {
            causes.push(Cause::required(format!("{path}.image")));
        }
        volume_mounts(container, &path, volume_names, causes);
        for (j, env) in container.get("env").and_then(Value::as_array).into_iter().flatten().enumerate() {
            if env.get("name").and_then(Value::as_str).is_none_or(str::is_empty) {
                causes.push(Cause::required(format!("{path}.env[{j}].name")));
            }
        }
    }
}

/// Validates a pod about to be created; an empty result means it is valid.
pub(crate) fn pod(pod: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    if let Some(name) = pod.pointer("/metadata/name").and_then(Value::as_str)
        && let Some(why) = dns1123_subdomain_error(name)
    {
        causes.push(Cause::invalid("metadata.name", name, &why));
    }
    metadata(pod, &mut causes);
    let spec = pod.get("spec").cloned().unwrap_or(Value::Null);
    let mut seen = Vec::new();
    let volume_names = volumes(&spec, &mut causes);
    containers(&spec, "initContainers", false, &mut seen, &volume_names, &mut causes);
    containers(&spec, "containers", true, &mut seen, &volume_names, &mut causes);
    if let Some(policy) = spec.get("restartPolicy").and_then(Value::as_str)
        && !matches!(policy, "Always" | "OnFailure" | "Never")
    {
        causes.push(Cause {
            reason: "FieldValueNotSupported",
            field: "spec.restartPolicy".to_owned(),
            message: format!("Unsupported value: {policy:?}: supported values: \"Always\", \"OnFailure\", \"Never\""),
        });
    }
    if let Some(grace) = spec.get("terminationGracePeriodSeconds")
        && grace.as_i64().is_none_or(|g| g < 0)
    {
        causes.push(Cause::invalid(
            "spec.terminationGracePeriodSeconds",
            &grace.to_string(),
            "must be greater than or equal to 0",
        ));
    }
    causes
}

/// The spec fields an update may change (the rest of a pod's spec is immutable).
pub(crate) fn pod_update(old: &Value, new: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    metadata(new, &mut causes);
    let mutable_view = |pod: &Value| {
        let mut spec = pod.get("spec").cloned().unwrap_or(Value::Null);
        for list in ["containers", "initContainers"] {
            if let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) {
                for c in containers {
                    if let Some(c) = c.as_object_mut() {
                        c.remove("image");
                    }
                }
            }
        }
        if let Some(spec) = spec.as_object_mut() {
            spec.remove("activeDeadlineSeconds");
            spec.remove("tolerations");
            spec.remove("terminationGracePeriodSeconds");
        }
        spec
    };
    if mutable_view(old) != mutable_view(new) {
        causes.push(Cause::forbidden(
            "spec",
            "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
        ));
    }
    causes
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_and_labels() {
        assert!(dns1123_subdomain_error("my-pod.v1").is_none());
        assert!(dns1123_subdomain_error("My_Pod").is_some());
        assert!(dns1123_subdomain_error("-a").is_some());
        assert!(dns1123_subdomain_error(&"a".repeat(254)).is_some());
        assert!(dns1123_label_error(&"a".repeat(64)).is_some());
        assert!(label_key_error("app.kubernetes.io/name").is_none());
        assert!(label_key_error("bad key").is_some());
        assert!(label_value_error("").is_none());
        assert!(label_value_error("True").is_none());
        assert!(label_value_error("a b").is_some());
        assert!(label_value_error(&"v".repeat(64)).is_some());
    }

    #[test]
    fn pod_specs() {
        let ok = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "base", "image": "busybox"}]}});
        assert!(pod(&ok).is_empty());
        let none = json!({"metadata": {"name": "p"}, "spec": {}});
        assert_eq!(pod(&none)[0].field, "spec.containers");
        let dup = json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "base", "image": "a"}, {"name": "base"}]}});
        let fields: Vec<_> = pod(&dup).into_iter().map(|c| c.field).collect();
        assert_eq!(fields, ["spec.containers[1].name", "spec.containers[1].image"]);
    }

    #[test]
    fn volumes_and_their_mounts() {
        let ok = json!({"metadata": {"name": "p"}, "spec": {
            "volumes": [{"name": "config", "configMap": {"name": "c"}}, {"name": "data", "emptyDir": {}}],
            "containers": [{"name": "base", "image": "busybox", "volumeMounts": [
                {"name": "config", "mountPath": "/etc/x/x.toml", "subPath": "x.toml"},
                {"name": "data", "mountPath": "/data"}]}]}});
        assert!(pod(&ok).is_empty(), "{:?}", pod(&ok));
        let bad = json!({"metadata": {"name": "p"}, "spec": {
            "volumes": [{"name": "data", "emptyDir": {}}, {"name": "data", "emptyDir": {}}, {"name": "none"}],
            "containers": [{"name": "base", "image": "busybox", "volumeMounts": [
                {"name": "logs", "mountPath": "/logs"},
                {"name": "data", "mountPath": "/data", "subPath": "../up"},
                {"name": "data", "mountPath": "/data"}]}]}});
        let messages: Vec<String> = pod(&bad).into_iter().map(|c| format!("{}: {}", c.field, c.message)).collect();
        assert_eq!(
            messages,
            [
                "spec.volumes[1].name: Duplicate value: \"data\"",
                "spec.volumes[2]: Required value: must specify a volume type",
                "spec.containers[0].volumeMounts[0].name: Not found: \"logs\"",
                "spec.containers[0].volumeMounts[1].subPath: Invalid value: \"../up\": must not contain '..'",
                "spec.containers[0].volumeMounts[2].mountPath: Invalid value: \"/data\": must be unique",
            ]
        );
    }
}
