//! What admission adds to a pod on create:
//!
//! * the apiserver's ServiceAccount plugin, when the test server gives containers real volumes
//!   (`FakeKubeConfig::mount_volumes`): the projected volume `kube-api-access-XXXXX` (the
//!   account's token, the cluster CA from the `kube-root-ca.crt` ConfigMap, the namespace) and a
//!   read-only mount of it at `/var/run/secrets/kubernetes.io/serviceaccount` in every container,
//!   unless the pod or its ServiceAccount sets `automountServiceAccountToken: false`;
//! * EKS's pod identity webhook, when configured (`FakeKubeConfig::irsa`): for a ServiceAccount
//!   annotated `eks.amazonaws.com/role-arn`, the role's environment and a web-identity token for
//!   STS ([`inject_iam_role`]).

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

/// The annotation that gives a ServiceAccount's pods an IAM role (EKS).
pub(crate) const ROLE_ARN_ANNOTATION: &str = "eks.amazonaws.com/role-arn";

/// Where the EKS pod identity webhook mounts the web-identity token.
pub(crate) const IRSA_TOKEN_DIR: &str = "/var/run/secrets/eks.amazonaws.com/serviceaccount";

/// What the EKS pod identity webhook adds to a pod whose ServiceAccount is annotated with an IAM
/// role: the projected volume `aws-iam-token` (a token of the account for the audience
/// `sts.amazonaws.com`, or the account's `eks.amazonaws.com/audience`), mounted read-only at
/// [`IRSA_TOKEN_DIR`] in every container (but those named in the pod's
/// `eks.amazonaws.com/skip-containers`), and the environment the AWS SDKs read:
/// `AWS_STS_REGIONAL_ENDPOINTS`, the region, `AWS_ROLE_ARN`, `AWS_WEB_IDENTITY_TOKEN_FILE`.
/// A variable the container sets itself is left alone, as the webhook does.
pub(crate) fn inject_iam_role(shared: &Shared, irsa: &crate::Irsa, pod: &mut Value) {
    let namespace = pod.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("").to_owned();
    let account = pod.pointer("/spec/serviceAccountName").and_then(Value::as_str).unwrap_or("default").to_owned();
    let annotations = shared
        .rbac
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .service_account_annotations(&namespace, &account);
    let Some(role) = annotations.get(ROLE_ARN_ANNOTATION).filter(|r| !r.is_empty()) else { return };
    let audience = annotations.get("eks.amazonaws.com/audience").map_or("sts.amazonaws.com", String::as_str);
    let expiration =
        annotations.get("eks.amazonaws.com/token-expiration").and_then(|e| e.parse::<u64>().ok()).unwrap_or(86400);
    let regional = annotations.get("eks.amazonaws.com/sts-regional-endpoints").is_none_or(|v| v == "true");
    let skip: Vec<String> = pod
        .pointer("/metadata/annotations/eks.amazonaws.com~1skip-containers")
        .and_then(Value::as_str)
        .map(|s| s.split(',').map(|c| c.trim().to_owned()).collect())
        .unwrap_or_default();
    let mut env = Vec::new();
    if regional {
        env.push(("AWS_STS_REGIONAL_ENDPOINTS", "regional".to_owned()));
    }
    if let Some(region) = &irsa.region {
        env.push(("AWS_DEFAULT_REGION", region.clone()));
        env.push(("AWS_REGION", region.clone()));
    }
    env.push(("AWS_ROLE_ARN", role.clone()));
    env.push(("AWS_WEB_IDENTITY_TOKEN_FILE", format!("{IRSA_TOKEN_DIR}/token")));
    if let Some(endpoint) = &irsa.sts_endpoint {
        env.push(("AWS_ENDPOINT_URL_STS", endpoint.clone()));
    }
    let spec = &mut pod["spec"];
    for list in ["initContainers", "containers"] {
        for container in spec.get_mut(list).and_then(Value::as_array_mut).into_iter().flatten() {
            let name = container.get("name").and_then(Value::as_str).unwrap_or("");
            if skip.iter().any(|s| s == name) {
                continue;
            }
            if !container["env"].is_array() {
                container["env"] = json!([]);
            }
            if let Some(vars) = container["env"].as_array_mut() {
                for (key, value) in &env {
                    if !vars.iter().any(|v| v.get("name").and_then(Value::as_str) == Some(key)) {
                        vars.push(json!({"name": key, "value": value}));
                    }
                }
            }
            if !container["volumeMounts"].is_array() {
                container["volumeMounts"] = json!([]);
            }
            if let Some(mounts) = container["volumeMounts"].as_array_mut()
                && !mounts.iter().any(|m| m.get("mountPath").and_then(Value::as_str) == Some(IRSA_TOKEN_DIR))
            {
                mounts.push(json!({"name": "aws-iam-token", "readOnly": true, "mountPath": IRSA_TOKEN_DIR}));
            }
        }
    }
    if !spec["volumes"].is_array() {
        spec["volumes"] = json!([]);
    }
    if let Some(volumes) = spec["volumes"].as_array_mut()
        && !volumes.iter().any(|v| v.get("name").and_then(Value::as_str) == Some("aws-iam-token"))
    {
        volumes.push(json!({
            "name": "aws-iam-token",
            "projected": {
                "defaultMode": 420,
                "sources": [{"serviceAccountToken": {"audience": audience, "expirationSeconds": expiration, "path": "token"}}],
            },
        }));
    }
}
