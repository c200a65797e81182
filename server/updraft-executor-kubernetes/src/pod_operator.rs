//! Pods for operators: the [`PodLauncher`] behind the `pods` host interface (the built-in
//! `kubernetes_pod` operator, and any plugin granted `kubernetes`). One call runs one pod to
//! its end: create it (retrying 429/5xx/network errors, reattaching to the try's pod when it
//! already exists), wait for it to start within the startup timeout (failing fast on an image
//! that cannot be pulled, with the pod's events), follow its log into the task log, wait for
//! its end, and delete it as asked. Dropping the future (the try timed out or was stopped)
//! deletes the pod.
//!
//! The client is made on first use: from the kubeconfig given, else the in-cluster
//! ServiceAccount, so a server that never runs such a task needs no cluster.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::{AsyncBufReadExt, StreamExt};
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{DeleteParams, ListParams, LogParams, PostParams};
use kube::runtime::wait::await_condition;
use kube::{Api, Client};
use serde_json::{Value, json};
use tokio::sync::{Notify, OnceCell};
use tracing::warn;
use updraft_plugin_host::backends::BoxFuture;
use updraft_plugin_host::{PodDeletePolicy, PodEnd, PodError, PodLaunch, PodLauncher, PodLogSink, TaskKey};

use crate::executor::{CreateError, backoff, classify_create_error, forbidden_message_for};
use crate::pod::{DAG_ID, MANAGED_BY_LABEL, RUN_ID, TASK_ID, TRY_NUMBER, dns_name, safe_label_value};
use crate::status::{PodState, classify};

/// `app.kubernetes.io/managed-by` of operator pods: not `updraft`, so the executor's watcher
/// and adoption never mistake them for task pods.
pub const OPERATOR_MANAGED_BY: &str = "updraft-operator";
/// Annotations with the exact identity of the try that launched the pod.
const IDENTITY_ANNOTATIONS: [&str; 4] =
    ["updraft.dev/dag-id", "updraft.dev/task-id", "updraft.dev/run-id", "updraft.dev/try-number"];
/// Who a 403 is about: the process running the operator.
const WHO: &str = "the ServiceAccount running this task (updraft-worker in k8s/)";
/// Create attempts before giving up on transient errors.
const CREATE_ATTEMPTS: u32 = 8;

/// Where the launcher's client comes from.
#[derive(Debug, Clone)]
pub enum ClientSource {
    /// A kubeconfig file (its current context).
    Kubeconfig(PathBuf),
    /// The pod's ServiceAccount.
    InCluster,
}

/// Runs operators' pods on a cluster.
pub struct OperatorPods {
    source: ClientSource,
    namespace: String,
    client: OnceCell<Result<Client, String>>,
    deletions: Arc<Deletions>,
}

/// Deletions started by dropped runs, so that a process can wait for them before it exits.
#[derive(Default)]
struct Deletions {
    running: AtomicUsize,
    done: Notify,
}

impl OperatorPods {
    /// Pods in `namespace` unless a task names another, with a client from `source` made on
    /// first use.
    pub fn new(source: ClientSource, namespace: impl Into<String>) -> Self {
        Self { source, namespace: namespace.into(), client: OnceCell::new(), deletions: Arc::default() }
    }

    /// Waits (at most `limit`) for the deletions of pods whose runs were dropped (timed-out or
    /// stopped tries): a worker calls it before it exits, so no pod outlives its try.
    pub async fn settle(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let done = self.deletions.done.notified();
            if self.deletions.running.load(Ordering::SeqCst) == 0 {
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || tokio::time::timeout(left, done).await.is_err() {
                warn!("operator pods are still being deleted; they may outlive this process");
                return;
            }
        }
    }

    async fn client(&self) -> Result<Client, PodError> {
        let made = self
            .client
            .get_or_init(|| async {
                match &self.source {
                    ClientSource::Kubeconfig(path) => {
                        crate::client_from_kubeconfig(path, None).await.map_err(|e| e.to_string())
                    }
                    ClientSource::InCluster => crate::client_in_cluster().map_err(|e| {
                        format!(
                            "no Kubernetes cluster to run the pod on: {e}; set [kubernetes] kubeconfig \
                             (UPDRAFT__KUBERNETES__KUBECONFIG) or run Updraft in a cluster"
                        )
                    }),
                }
            })
            .await;
        made.clone().map_err(PodError::Failed)
    }

    async fn run_pod(&self, task: &TaskKey, launch: PodLaunch, log: PodLogSink) -> Result<PodEnd, PodError> {
        let client = self.client().await?;
        let namespace = launch.namespace.clone();
        let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
        let manifest = operator_pod(task, &namespace, &launch.manifest).map_err(PodError::Invalid)?;
        let pod: Pod = serde_json::from_value(manifest)
            .map_err(|e| PodError::Invalid(format!("the manifest is not a valid Pod: {e}")))?;
        let name = pod.metadata.name.clone().unwrap_or_default();
        let say = |line: String| {
            let _ = log.send(format!("[kubernetes_pod] {line}"));
        };
        let reattached = create(&pods, &pod, &namespace).await?;
        say(if reattached {
            format!("reattached to pod {namespace}/{name}, which an earlier attempt of this try created")
        } else {
            format!("created pod {namespace}/{name}")
        });
        // From here on, leaving early (an error, or the try being stopped) deletes the pod.
        let mut guard =
            DeleteGuard { pods: pods.clone(), name: name.clone(), armed: true, deletions: self.deletions.clone() };

        let started = match tokio::time::timeout(launch.startup_timeout, await_condition(pods.clone(), &name, started))
            .await
        {
            Ok(Ok(Some(pod))) => pod,
            Ok(Ok(None)) => {
                return Err(PodError::Failed(format!("pod {namespace}/{name} was deleted before it started")));
            }
            Ok(Err(error)) => return Err(PodError::Failed(format!("watching pod {namespace}/{name} failed: {error}"))),
            Err(_) => {
                let events = events(client, &namespace, &name).await;
                return Err(PodError::Failed(format!(
                    "pod {namespace}/{name} did not start within {}s (startup_timeout_seconds). Its events: {events}",
                    launch.startup_timeout.as_secs()
                )));
            }
        };
        if let PodState::PendingFatal { details } = classify(&started) {
            let events = events(client, &namespace, &name).await;
            return Err(PodError::Failed(format!(
                "pod {namespace}/{name} cannot start: {details}. Its events: {events}"
            )));
        }
        say(format!("pod {name} started"));

        if launch.stream_logs {
            let container = first_container(&started);
            follow_log(&pods, &name, container.as_deref(), &log).await;
        }
        let finished = match await_condition(pods.clone(), &name, finished).await {
            Ok(Some(pod)) => pod,
            Ok(None) => return Err(PodError::Failed(format!("pod {namespace}/{name} was deleted while it ran"))),
            Err(error) => return Err(PodError::Failed(format!("watching pod {namespace}/{name} failed: {error}"))),
        };
        let end = match classify(&finished) {
            PodState::Succeeded => {
                PodEnd { name, namespace, phase: "Succeeded".into(), exit_code: Some(0), details: String::new() }
            }
            PodState::Failed { details, exit_code, .. } => {
                PodEnd { name, namespace, phase: "Failed".into(), exit_code, details }
            }
            // `finished` only lets terminal states through.
            other => PodEnd { name, namespace, phase: "Failed".into(), exit_code: None, details: format!("{other:?}") },
        };
        let keep = match launch.delete {
            PodDeletePolicy::Always => false,
            PodDeletePolicy::OnSuccess => end.phase != "Succeeded",
            PodDeletePolicy::Never => true,
        };
        guard.armed = false;
        if keep {
            say(format!("pod {} kept (on_finish_action)", end.name));
        } else {
            delete(&pods, &end.name).await;
            say(format!("pod {} deleted", end.name));
        }
        Ok(end)
    }
}

impl PodLauncher for OperatorPods {
    fn default_namespace(&self) -> String {
        self.namespace.clone()
    }

    fn run<'a>(
        &'a self,
        task: &'a TaskKey,
        launch: PodLaunch,
        log: PodLogSink,
    ) -> BoxFuture<'a, Result<PodEnd, PodError>> {
        Box::pin(self.run_pod(task, launch, log))
    }
}

/// The operator's manifest with what identifies the try laid over it: the name (the
/// manifest's `metadata.name` as a readable prefix, plus a hash of the try, so that a
/// restarted try finds its pod), the namespace, labels and annotations naming the try, and
/// `restartPolicy: Never`. Pure.
pub fn operator_pod(task: &TaskKey, namespace: &str, manifest: &Value) -> Result<Value, String> {
    let mut pod = manifest.clone();
    let Some(object) = pod.as_object_mut() else { return Err("the pod manifest must be a JSON object".into()) };
    let containers = object.get("spec").and_then(|s| s.get("containers")).and_then(Value::as_array);
    if containers.is_none_or(|c| c.is_empty()) {
        return Err("the pod manifest has no spec.containers: give at least one container with an image".into());
    }
    object.insert("apiVersion".into(), json!("v1"));
    object.insert("kind".into(), json!("Pod"));
    let metadata = object.entry("metadata").or_insert_with(|| json!({}));
    if !metadata.is_object() {
        return Err("metadata must be an object".into());
    }
    let readable = match metadata.get("name").and_then(Value::as_str) {
        Some(prefix) => prefix.to_owned(),
        None => format!("{}-{}", task.dag_id, task.task_id),
    };
    let identity = format!("{}\0{}\0{}\0{}\0operator", task.dag_id, task.task_id, task.run_id, task.try_number);
    metadata["name"] = json!(dns_name(&readable, &identity));
    metadata["namespace"] = json!(namespace);
    let labels = BTreeMap::from([
        (MANAGED_BY_LABEL, OPERATOR_MANAGED_BY.to_owned()),
        (DAG_ID, safe_label_value(&task.dag_id)),
        (TASK_ID, safe_label_value(&task.task_id)),
        (RUN_ID, safe_label_value(&task.run_id)),
        (TRY_NUMBER, task.try_number.to_string()),
    ]);
    let values = [task.dag_id.clone(), task.task_id.clone(), task.run_id.clone(), task.try_number.to_string()];
    for (field, entries) in [
        ("labels", labels.into_iter().map(|(k, v)| (k.to_owned(), v)).collect::<Vec<_>>()),
        ("annotations", IDENTITY_ANNOTATIONS.iter().map(|k| (*k).to_owned()).zip(values).collect()),
    ] {
        let map = metadata.as_object_mut().map(|m| m.entry(field).or_insert_with(|| json!({})));
        let Some(map) = map.and_then(Value::as_object_mut) else {
            return Err(format!("metadata.{field} must be an object of strings"));
        };
        for (key, value) in entries {
            map.insert(key, json!(value));
        }
    }
    object.entry("spec").or_insert_with(|| json!({}))["restartPolicy"] = json!("Never");
    Ok(pod)
}

/// Creates the pod, retrying what may pass; `true` when it already existed (reattached).
async fn create(pods: &Api<Pod>, pod: &Pod, namespace: &str) -> Result<bool, PodError> {
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let mut attempt = 0;
    loop {
        let error = match pods.create(&PostParams::default(), pod).await {
            Ok(_) => return Ok(false),
            Err(error) => error,
        };
        match classify_create_error(&error) {
            CreateError::AlreadyExists => return Ok(true),
            CreateError::Transient { message, retry_after } => {
                attempt += 1;
                if attempt >= CREATE_ATTEMPTS {
                    return Err(PodError::Failed(format!(
                        "could not create pod {namespace}/{name} after {attempt} attempts: {message}"
                    )));
                }
                let delay = retry_after.unwrap_or_else(|| backoff(attempt - 1));
                warn!(pod = %name, attempt, ?delay, %message, "operator pod create failed; retrying");
                tokio::time::sleep(delay).await;
            }
            CreateError::Forbidden(message) => {
                return Err(PodError::Failed(forbidden_message_for(WHO, "create", "pods", namespace, &message)));
            }
            CreateError::Invalid(message) => {
                return Err(PodError::Invalid(format!("the API server rejected pod {namespace}/{name}: {message}")));
            }
            CreateError::Other(message) => {
                return Err(PodError::Failed(format!("could not create pod {namespace}/{name}: {message}")));
            }
        }
    }
}

/// Started: running, ended, or stuck on something that will not resolve (or gone).
fn started(pod: Option<&Pod>) -> bool {
    pod.is_none_or(|p| !matches!(classify(p), PodState::Pending))
}

/// Ended (or gone).
fn finished(pod: Option<&Pod>) -> bool {
    pod.is_none_or(|p| matches!(classify(p), PodState::Succeeded | PodState::Failed { .. }))
}

fn first_container(pod: &Pod) -> Option<String> {
    pod.spec.as_ref()?.containers.first().map(|c| c.name.clone())
}

/// Copies the container's output into the log until it ends. A broken stream is noted, not
/// fatal: the pod's end is what counts.
async fn follow_log(pods: &Api<Pod>, name: &str, container: Option<&str>, log: &PodLogSink) {
    let params = LogParams { follow: true, container: container.map(str::to_owned), ..LogParams::default() };
    let reader = match pods.log_stream(name, &params).await {
        Ok(reader) => reader,
        Err(error) => {
            let _ = log.send(format!("[kubernetes_pod] cannot read the log of pod {name}: {error}"));
            return;
        }
    };
    let mut lines = reader.lines();
    while let Some(line) = lines.next().await {
        match line {
            Ok(line) => {
                let _ = log.send(line);
            }
            Err(error) => {
                let _ = log.send(format!("[kubernetes_pod] the log of pod {name} broke off: {error}"));
                return;
            }
        }
    }
}

/// A pod's events as `Type Reason: message` lines, for a failure message.
async fn events(client: Client, namespace: &str, name: &str) -> String {
    let api: Api<Event> = Api::namespaced(client, namespace);
    let params = ListParams::default().fields(&format!("involvedObject.name={name}"));
    match api.list(&params).await {
        Ok(list) if list.items.is_empty() => "(none)".to_owned(),
        Ok(list) => list
            .items
            .iter()
            .map(|e| {
                let field = |v: &Option<String>| v.clone().unwrap_or_default();
                format!("{} {}: {}", field(&e.type_), field(&e.reason), field(&e.message))
            })
            .collect::<Vec<_>>()
            .join(" | "),
        Err(kube::Error::Api(status)) if status.code == 403 => {
            format!("(cannot list them: {})", forbidden_message_for(WHO, "list", "events", namespace, &status.message))
        }
        Err(error) => format!("(cannot list them: {error})"),
    }
}

async fn delete(pods: &Api<Pod>, name: &str) {
    match pods.delete(name, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 404 => {}
        Err(error) => warn!(pod = %name, %error, "deleting an operator pod failed; delete it by hand"),
    }
}

/// Deletes the pod when the run ends early: an error, or its future dropped (timeout, stop).
struct DeleteGuard {
    pods: Api<Pod>,
    name: String,
    armed: bool,
    deletions: Arc<Deletions>,
}

impl Drop for DeleteGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (pods, name) = (self.pods.clone(), std::mem::take(&mut self.name));
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            warn!(pod = %name, "cannot delete an operator pod outside a runtime; delete it by hand");
            return;
        };
        let deletions = self.deletions.clone();
        deletions.running.fetch_add(1, Ordering::SeqCst);
        handle.spawn(async move {
            delete(&pods, &name).await;
            deletions.running.fetch_sub(1, Ordering::SeqCst);
            deletions.done.notify_waiters();
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task() -> TaskKey {
        TaskKey {
            dag_id: "Orders Daily".into(),
            run_id: "manual__2024-01-01T00:00:00+00:00".into(),
            task_id: "export".into(),
            try_number: 2,
        }
    }

    #[test]
    fn the_operator_pod_names_its_try_and_never_restarts() {
        let manifest = json!({"metadata": {"labels": {"team": "data", "updraft.dev/task-id": "forged"}},
            "spec": {"containers": [{"name": "base", "image": "busybox"}], "restartPolicy": "Always"}});
        let pod = operator_pod(&task(), "jobs", &manifest).expect("valid");
        let name = pod["metadata"]["name"].as_str().expect("a name");
        assert!(name.starts_with("orders-daily-export-") && name.len() <= 63, "{name}");
        assert_eq!(pod["metadata"]["namespace"], "jobs");
        assert_eq!(pod["metadata"]["labels"]["team"], "data");
        assert_eq!(pod["metadata"]["labels"]["updraft.dev/task-id"], "export");
        assert_eq!(pod["metadata"]["labels"][MANAGED_BY_LABEL], OPERATOR_MANAGED_BY);
        assert_eq!(pod["metadata"]["annotations"]["updraft.dev/run-id"], "manual__2024-01-01T00:00:00+00:00");
        assert_eq!(pod["spec"]["restartPolicy"], "Never");
        // Deterministic per try, distinct across tries and from the executor's pod name.
        assert_eq!(operator_pod(&task(), "jobs", &manifest).expect("valid")["metadata"]["name"], name);
        let next = TaskKey { try_number: 3, ..task() };
        assert_ne!(operator_pod(&next, "jobs", &manifest).expect("valid")["metadata"]["name"], name);
        let executor_name = crate::pod_name("Orders Daily", "export", "manual__2024-01-01T00:00:00+00:00", 2);
        assert_ne!(name, executor_name);
        let prefixed = json!({"metadata": {"name": "My_Job"}, "spec": {"containers": [{"name": "c", "image": "x"}]}});
        let named = operator_pod(&task(), "jobs", &prefixed).expect("valid");
        assert!(named["metadata"]["name"].as_str().is_some_and(|n| n.starts_with("my-job-")), "{named}");
    }

    #[test]
    fn a_manifest_without_containers_is_refused_with_the_fix() {
        let error = operator_pod(&task(), "jobs", &json!({"spec": {}})).expect_err("no containers");
        assert!(error.contains("spec.containers"), "{error}");
        assert!(operator_pod(&task(), "jobs", &json!([1])).is_err());
        let bad_labels = json!({"metadata": {"labels": []}, "spec": {"containers": [{"name": "c", "image": "x"}]}});
        assert!(operator_pod(&task(), "jobs", &bad_labels).is_err());
    }
}
