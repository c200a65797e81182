//! What the apiserver's ServiceAccount admission plugin adds to a pod on create, when the test
//! server gives containers real volumes (`FakeKubeConfig::mount_volumes`): the projected volume
//! `kube-api-access-XXXXX` (the account's token, the cluster CA from the `kube-root-ca.crt`
//! ConfigMap, the namespace) and a read-only mount of it at
//! `/var/run/secrets/kubernetes.io/serviceaccount` in every container, unless the pod or its
//! ServiceAccount sets `automountServiceAccountToken: false`.

use serde_json::{Value, json};

use crate::Shared;

/// Where every container finds its ServiceAccount's credentials (kube-rs, client-go and the
/// other clients read them from here for their in-cluster configuration).
pub(crate) const TOKEN_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The ConfigMap the cluster publishes in every namespace with the CA of the API server.
pub(crate) const ROOT_CA_CONFIG_MAP: &str = "kube-root-ca.crt";

/// Adds the token volume and its mounts to a pod being created (`serviceAccountName` already
/// defaulted), as the admission plugin does.
pub(crate) fn mount_service_account_token(shared: &Shared, pod: &mut Value, suffix: &str) {
    let namespace = pod.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("").to_owned();
    let account = pod.pointer("/spec/serviceAccountName").and_then(Value::as_str).unwrap_or("default").to_owned();
    let automount = match pod.pointer("/spec/automountServiceAccountToken").and_then(Value::as_bool) {
        Some(pod_says) => pod_says,
        None => {
            shared.rbac.read().unwrap_or_else(std::sync::PoisonError::into_inner).automounts_token(&namespace, &account)
        }
    };
    if !automount {
        return;
    }
    let name = format!("kube-api-access-{suffix}");
    let volume = json!({
        "name": name,
        "projected": {
            "defaultMode": 420,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": ROOT_CA_CONFIG_MAP, "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [
                    {"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}
                ]}},
            ],
        },
    });
    let spec = &mut pod["spec"];
    if !spec["volumes"].is_array() {
        spec["volumes"] = json!([]);
    }
    if let Some(volumes) = spec["volumes"].as_array_mut() {
        volumes.push(volume);
    }
    for list in ["initContainers", "containers"] {
        for container in spec.get_mut(list).and_then(Value::as_array_mut).into_iter().flatten() {
            let mounted = container.get("volumeMounts").and_then(Value::as_array).is_some_and(|m| {
                m.iter().any(|m| m.get("mountPath").and_then(Value::as_str) == Some(TOKEN_MOUNT_PATH))
            });
            if mounted {
                continue;
            }
            if !container["volumeMounts"].is_array() {
                container["volumeMounts"] = json!([]);
            }
            if let Some(mounts) = container["volumeMounts"].as_array_mut() {
                mounts.push(json!({"name": name, "readOnly": true, "mountPath": TOKEN_MOUNT_PATH}));
            }
        }
    }
}
