//! A task's `kubernetes:` block: what a task may change about its pod (image, resources,
//! scheduling, labels and annotations, service account, env), read from JSON with messages that
//! name the field, and turned into the pod layer that goes last in [`crate::merge::reconcile`].

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::pod::is_reserved_key;

/// A task's pod override, with Airflow's and Kubernetes' field names in snake case.
///
/// ```yaml
/// kubernetes:
///   image: registry/etl:2
///   resources: {requests: {cpu: 500m, memory: 1Gi}, limits: {memory: 2Gi}}
///   node_selector: {pool: batch}
///   tolerations: [{key: batch, operator: Exists, effect: NoSchedule}]
///   labels: {team: data}
///   env: {LOG_LEVEL: debug}          # or a list of Kubernetes EnvVar objects
///   env_from_secrets: [etl-credentials]
/// ```
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesOverride {
    pub image: Option<String>,
    pub resources: Option<Resources>,
    pub node_selector: Option<BTreeMap<String, String>>,
    /// A Kubernetes `Affinity` object, passed through.
    pub affinity: Option<Value>,
    /// Kubernetes `Toleration` objects, passed through; they replace the template's.
    pub tolerations: Option<Vec<Value>>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    pub service_account_name: Option<String>,
    pub env: Option<EnvSpec>,
    /// Names of Secrets whose keys all become env vars (`envFrom: [{secretRef: {name}}]`).
    #[serde(default)]
    pub env_from_secrets: Vec<String>,
}

/// Container resources; quantities as Kubernetes writes them (`500m`, `1Gi`, `2`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    #[serde(default)]
    pub requests: BTreeMap<String, Quantity>,
    #[serde(default)]
    pub limits: BTreeMap<String, Quantity>,
}

/// A resource quantity: a string (`"500m"`) or a plain number (`2`, `0.5`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Quantity {
    Text(String),
    Number(serde_json::Number),
}

impl Quantity {
    fn as_text(&self) -> String {
        match self {
            Quantity::Text(text) => text.clone(),
            Quantity::Number(number) => number.to_string(),
        }
    }
}

/// Env vars: a map of literal values, or a list of Kubernetes `EnvVar` objects (for
/// `valueFrom`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum EnvSpec {
    Map(BTreeMap<String, String>),
    List(Vec<Value>),
}

/// A `kubernetes:` block that cannot be used; the try fails with this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid `kubernetes` block: {0}")]
pub struct OverrideError(pub String);

impl KubernetesOverride {
    /// Reads and checks a task's `kubernetes:` block.
    pub fn parse(value: &Value) -> Result<KubernetesOverride, OverrideError> {
        let parsed: KubernetesOverride =
            serde_json::from_value(value.clone()).map_err(|error| OverrideError(error.to_string()))?;
        parsed.validate()?;
        Ok(parsed)
    }

    fn validate(&self) -> Result<(), OverrideError> {
        if self.image.as_deref().is_some_and(|image| image.trim().is_empty()) {
            return Err(OverrideError("`image` is empty".into()));
        }
        for (what, keys) in [("labels", &self.labels), ("annotations", &self.annotations)] {
            if let Some(key) = keys.keys().find(|key| is_reserved_key(key)) {
                return Err(OverrideError(format!(
                    "`{what}` may not set `{key}`: keys `app.kubernetes.io/managed-by` and `updraft.dev/…` belong to the executor"
                )));
            }
        }
        if let Some(EnvSpec::List(items)) = &self.env {
            for (index, item) in items.iter().enumerate() {
                if !item.get("name").is_some_and(Value::is_string) {
                    return Err(OverrideError(format!(
                        "`env[{index}]` needs a `name` (a list of env vars is Kubernetes' EnvVar objects; use a map for plain values)"
                    )));
                }
            }
        }
        if let Some(index) = self.env_from_secrets.iter().position(|name| name.trim().is_empty()) {
            return Err(OverrideError(format!("`env_from_secrets[{index}]` is empty")));
        }
        Ok(())
    }

    /// The override as a pod layer: metadata and spec fields, and a first container (`base`)
    /// holding image, resources, env and envFrom.
    pub fn to_pod_layer(&self) -> Value {
        let mut container = serde_json::Map::new();
        if let Some(image) = &self.image {
            container.insert("image".into(), json!(image));
        }
        if let Some(resources) = &self.resources {
            let quantities = |map: &BTreeMap<String, Quantity>| -> BTreeMap<String, String> {
                map.iter().map(|(name, quantity)| (name.clone(), quantity.as_text())).collect()
            };
            let mut value = serde_json::Map::new();
            if !resources.requests.is_empty() {
                value.insert("requests".into(), json!(quantities(&resources.requests)));
            }
            if !resources.limits.is_empty() {
                value.insert("limits".into(), json!(quantities(&resources.limits)));
            }
            container.insert("resources".into(), Value::Object(value));
        }
        match &self.env {
            Some(EnvSpec::Map(map)) => {
                let env: Vec<Value> = map.iter().map(|(name, value)| json!({"name": name, "value": value})).collect();
                container.insert("env".into(), json!(env));
            }
            Some(EnvSpec::List(items)) => {
                container.insert("env".into(), json!(items));
            }
            None => {}
        }
        if !self.env_from_secrets.is_empty() {
            let env_from: Vec<Value> =
                self.env_from_secrets.iter().map(|name| json!({"secretRef": {"name": name}})).collect();
            container.insert("envFrom".into(), json!(env_from));
        }
        let mut spec = serde_json::Map::new();
        if !container.is_empty() {
            spec.insert("containers".into(), json!([container]));
        }
        if let Some(node_selector) = &self.node_selector {
            spec.insert("nodeSelector".into(), json!(node_selector));
        }
        if let Some(affinity) = &self.affinity {
            spec.insert("affinity".into(), affinity.clone());
        }
        if let Some(tolerations) = &self.tolerations {
            spec.insert("tolerations".into(), json!(tolerations));
        }
        if let Some(account) = &self.service_account_name {
            spec.insert("serviceAccountName".into(), json!(account));
        }
        json!({
            "metadata": {"labels": self.labels, "annotations": self.annotations},
            "spec": spec,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_block_becomes_a_pod_layer() {
        let block = json!({
            "image": "registry/etl:2",
            "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": 2, "memory": "2Gi"}},
            "node_selector": {"pool": "batch"},
            "affinity": {"nodeAffinity": {}},
            "tolerations": [{"key": "batch", "operator": "Exists"}],
            "labels": {"team": "data"},
            "annotations": {"note": "x"},
            "service_account_name": "etl",
            "env": {"B": "2", "A": "1"},
            "env_from_secrets": ["etl-credentials"],
        });
        let layer = KubernetesOverride::parse(&block).expect("valid").to_pod_layer();
        assert_eq!(
            layer,
            json!({
                "metadata": {"labels": {"team": "data"}, "annotations": {"note": "x"}},
                "spec": {
                    "containers": [{
                        "image": "registry/etl:2",
                        "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "2Gi"}},
                        "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                        "envFrom": [{"secretRef": {"name": "etl-credentials"}}],
                    }],
                    "nodeSelector": {"pool": "batch"},
                    "affinity": {"nodeAffinity": {}},
                    "tolerations": [{"key": "batch", "operator": "Exists"}],
                    "serviceAccountName": "etl",
                },
            })
        );
        let list = json!({"env": [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]});
        let layer = KubernetesOverride::parse(&list).expect("valid").to_pod_layer();
        assert_eq!(layer["spec"]["containers"][0]["env"], list["env"]);
        assert_eq!(KubernetesOverride::parse(&json!({})).expect("valid").to_pod_layer()["spec"], json!({}));
    }

    #[test]
    fn mistakes_get_messages_that_name_the_field() {
        let message = |block: Value| KubernetesOverride::parse(&block).expect_err("invalid").to_string();
        assert!(
            message(json!({"imagee": "x"}))
                .starts_with("invalid `kubernetes` block: unknown field `imagee`, expected one of `image`")
        );
        assert_eq!(message(json!({"image": " "})), "invalid `kubernetes` block: `image` is empty");
        assert!(message(json!({"labels": {"updraft.dev/dag-id": "x"}})).contains("may not set `updraft.dev/dag-id`"));
        assert!(message(json!({"env": [{"value": "x"}]})).contains("`env[0]` needs a `name`"));
        assert!(message(json!({"resources": {"request": {}}})).contains("unknown field `request`"));
        assert!(message(json!({"node_selector": ["a"]})).contains("invalid type: sequence, expected a map"));
    }
}
