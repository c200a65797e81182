//! The `kubernetes_pod` operator (Airflow's KubernetesPodOperator): runs any image in a pod of
//! its own on the server's cluster, with the command, environment, resources and placement
//! the task gives. The pod's log streams into the task log while it runs; exit code 0
//! succeeds, a code listed in `skip_on_exit_code` skips, anything else fails the try with the
//! pod's reason. The host deletes the pod afterwards (as `on_finish_action` says) and when the
//! try times out.
//!
//! The manifest is built here, from the params, by a pure function; the host only adds what
//! identifies the try (name, labels) and runs it.

use std::collections::BTreeMap;

use serde::Deserialize;
use updraft_plugin_sdk::pods::{self, DeletePolicy};
use updraft_plugin_sdk::{Capability, Context, Descriptor, Failure, Operator, Outcome, Value, json, log};

struct KubernetesPod;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Params {
    image: String,
    #[serde(default)]
    cmds: Vec<String>,
    #[serde(default)]
    arguments: Vec<String>,
    #[serde(default)]
    env_vars: BTreeMap<String, String>,
    #[serde(default)]
    env_from_secrets: Vec<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    resources: Option<Value>,
    #[serde(default)]
    node_selector: BTreeMap<String, String>,
    #[serde(default)]
    affinity: Option<Value>,
    #[serde(default)]
    tolerations: Vec<Value>,
    #[serde(default)]
    service_account_name: Option<String>,
    #[serde(default)]
    image_pull_policy: Option<String>,
    #[serde(default)]
    image_pull_secrets: Vec<String>,
    #[serde(default = "default_startup_timeout")]
    startup_timeout_seconds: u32,
    #[serde(default = "default_on_finish")]
    on_finish_action: String,
    #[serde(default = "default_true")]
    get_logs: bool,
    #[serde(default)]
    skip_on_exit_code: Vec<i32>,
}

fn default_startup_timeout() -> u32 {
    120
}

fn default_on_finish() -> String {
    "delete_pod".to_owned()
}

fn default_true() -> bool {
    true
}

/// The Pod manifest of `p`: one container `base` running the image.
fn manifest(p: &Params) -> Value {
    let mut container = json!({"name": "base", "image": p.image});
    if !p.cmds.is_empty() {
        container["command"] = json!(p.cmds);
    }
    if !p.arguments.is_empty() {
        container["args"] = json!(p.arguments);
    }
    if !p.env_vars.is_empty() {
        container["env"] = p.env_vars.iter().map(|(name, value)| json!({"name": name, "value": value})).collect();
    }
    if !p.env_from_secrets.is_empty() {
        container["envFrom"] = p.env_from_secrets.iter().map(|name| json!({"secretRef": {"name": name}})).collect();
    }
    if let Some(resources) = &p.resources {
        container["resources"] = resources.clone();
    }
    if let Some(policy) = &p.image_pull_policy {
        container["imagePullPolicy"] = json!(policy);
    }
    let mut spec = json!({"containers": [container], "restartPolicy": "Never"});
    if !p.node_selector.is_empty() {
        spec["nodeSelector"] = json!(p.node_selector);
    }
    if let Some(affinity) = &p.affinity {
        spec["affinity"] = affinity.clone();
    }
    if !p.tolerations.is_empty() {
        spec["tolerations"] = json!(p.tolerations);
    }
    if let Some(account) = &p.service_account_name {
        spec["serviceAccountName"] = json!(account);
    }
    if !p.image_pull_secrets.is_empty() {
        spec["imagePullSecrets"] = p.image_pull_secrets.iter().map(|name| json!({"name": name})).collect();
    }
    let mut metadata = json!({});
    if let Some(name) = &p.name {
        metadata["name"] = json!(name);
    }
    if !p.labels.is_empty() {
        metadata["labels"] = json!(p.labels);
    }
    if !p.annotations.is_empty() {
        metadata["annotations"] = json!(p.annotations);
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec})
}

fn delete_policy(action: &str) -> Result<DeletePolicy, Failure> {
    match action {
        "delete_pod" => Ok(DeletePolicy::Always),
        "delete_succeeded_pod" => Ok(DeletePolicy::OnSuccess),
        "keep_pod" => Ok(DeletePolicy::Never),
        other => Err(Failure::permanent(format!(
            "on_finish_action {other:?} is not one of delete_pod, delete_succeeded_pod, keep_pod"
        ))),
    }
}

impl Operator for KubernetesPod {
    fn describe() -> Descriptor {
        let strings = json!({"type": "array", "items": {"type": "string"}});
        let string_map = json!({"type": "object", "additionalProperties": {"type": "string"}});
        Descriptor::new(
            "kubernetes_pod",
            env!("CARGO_PKG_VERSION"),
            "Runs an image in a pod of its own; its log goes to the task log, its exit code decides the state",
        )
        .params_schema(json!({
            "type": "object",
            "properties": {
                "image": {"type": "string", "minLength": 1},
                "cmds": strings,
                "arguments": strings,
                "env_vars": string_map,
                "env_from_secrets": strings,
                "namespace": {"type": "string", "minLength": 1, "maxLength": 63},
                "name": {"type": "string", "minLength": 1, "maxLength": 253},
                "labels": string_map,
                "annotations": string_map,
                "resources": {"type": "object", "properties": {"requests": string_map, "limits": string_map}, "additionalProperties": false},
                "node_selector": string_map,
                "affinity": {"type": "object"},
                "tolerations": {"type": "array", "items": {"type": "object"}},
                "service_account_name": {"type": "string", "minLength": 1},
                "image_pull_policy": {"type": "string", "enum": ["Always", "IfNotPresent", "Never"]},
                "image_pull_secrets": strings,
                "startup_timeout_seconds": {"type": "integer", "minimum": 1, "maximum": 86400, "default": 120},
                "on_finish_action": {"type": "string", "enum": ["delete_pod", "delete_succeeded_pod", "keep_pod"], "default": "delete_pod"},
                "get_logs": {"type": "boolean", "default": true},
                "skip_on_exit_code": {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 255}}
            },
            "required": ["image"],
            "additionalProperties": false
        }))
        .capability(Capability::Kubernetes)
    }

    fn execute(ctx: Context) -> Result<Outcome, Failure> {
        let p: Params = ctx.params()?;
        let request = pods::PodRequest {
            manifest: manifest(&p).to_string(),
            namespace: p.namespace.clone(),
            startup_timeout_seconds: p.startup_timeout_seconds,
            delete: delete_policy(&p.on_finish_action)?,
            stream_logs: p.get_logs,
        };
        // A pod that could not run at all: retryable unless the request itself is wrong.
        let end = pods::run(&request)?;
        let output = json!({"pod_name": end.name, "namespace": end.namespace, "exit_code": end.exit_code});
        if end.phase == "Succeeded" {
            log::info(&format!("pod {}/{} succeeded", end.namespace, end.name));
            return Ok(Outcome::output(output));
        }
        if let Some(code) = end.exit_code
            && p.skip_on_exit_code.contains(&code)
        {
            let reason = format!("pod {} exited with code {code}, listed in skip_on_exit_code", end.name);
            return Ok(Outcome::Skip(Some(reason)));
        }
        let code = end.exit_code.map(|c| format!(" with exit code {c}")).unwrap_or_default();
        Err(Failure::new(format!("pod {}/{} failed{code}: {}", end.namespace, end.name, end.details)))
    }
}

updraft_plugin_sdk::export!(KubernetesPod);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_carries_every_param_where_kubernetes_expects_it() {
        let p = Params {
            image: "busybox:1.36".into(),
            cmds: vec!["sh".into(), "-c".into()],
            arguments: vec!["echo hi".into()],
            env_vars: BTreeMap::from([("A".into(), "1".into())]),
            env_from_secrets: vec!["creds".into()],
            resources: Some(json!({"limits": {"memory": "64Mi"}})),
            node_selector: BTreeMap::from([("pool".into(), "batch".into())]),
            tolerations: vec![json!({"key": "batch", "operator": "Exists"})],
            service_account_name: Some("etl".into()),
            image_pull_secrets: vec!["regcred".into()],
            labels: BTreeMap::from([("team".into(), "data".into())]),
            ..Params::default()
        };
        let m = manifest(&p);
        let c = &m["spec"]["containers"][0];
        assert_eq!(c["name"], "base");
        assert_eq!(c["command"], json!(["sh", "-c"]));
        assert_eq!(c["args"], json!(["echo hi"]));
        assert_eq!(c["env"], json!([{"name": "A", "value": "1"}]));
        assert_eq!(c["envFrom"], json!([{"secretRef": {"name": "creds"}}]));
        assert_eq!(c["resources"]["limits"]["memory"], "64Mi");
        assert_eq!(m["spec"]["nodeSelector"]["pool"], "batch");
        assert_eq!(m["spec"]["tolerations"][0]["key"], "batch");
        assert_eq!(m["spec"]["serviceAccountName"], "etl");
        assert_eq!(m["spec"]["imagePullSecrets"], json!([{"name": "regcred"}]));
        assert_eq!(m["spec"]["restartPolicy"], "Never");
        assert_eq!(m["metadata"]["labels"]["team"], "data");
        assert!(c.get("command").is_some() && m["spec"].get("affinity").is_none());
    }

    #[test]
    fn on_finish_actions_use_airflow_names() {
        assert_eq!(delete_policy("delete_pod").ok(), Some(DeletePolicy::Always));
        assert_eq!(delete_policy("delete_succeeded_pod").ok(), Some(DeletePolicy::OnSuccess));
        assert_eq!(delete_policy("keep_pod").ok(), Some(DeletePolicy::Never));
        assert!(delete_policy("delete").is_err());
    }
}
