//! Tries whose pod cannot run: an image that does not pull, an unschedulable node, a spec the
//! API server rejects (422), a Role without `create` on pods (403), a broken override.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::json;
use updraft_executor::Executor;
use updraft_executor_kubernetes::{KubernetesExecutor, PodTemplate};

use crate::{NS, config, eventually, executor, failure, finished, item, log_of, pod_name_of};

#[tokio::test]
async fn an_image_that_does_not_pull_fails_fast_with_the_reason() {
    let fake = crate::start_fake();
    let dir = tempfile::tempdir().expect("tempdir");
    let overrides = HashMap::from([("pull".to_owned(), json!({"image": "registry.example/nope:1"}))]);
    let mut h = executor(&fake, dir.path(), config("sched-a"), overrides).await;
    let item = item(dir.path(), "pull", 0);
    let start = Instant::now();
    h.executor.submit(item.clone());
    let (started, outcome) = finished(&mut h.events, &item.key).await;
    assert!(start.elapsed() < Duration::from_secs(10), "took {:?}", start.elapsed());
    assert!(!started, "the task never started");
    let (message, _) = failure(outcome);
    assert!(message.contains("ErrImagePull") || message.contains("ImagePullBackOff"), "{message}");
    // The task log says why, and has the pod's events, one a line.
    let log = log_of(&item);
    assert!(log.contains("could not run the task: container base cannot start: ErrImagePull"), "{log}");
    assert!(log.contains("[kubernetes executor] its events:\n"), "{log}");
    assert!(log.contains("[kubernetes executor]   Normal Scheduled: "), "{log}");
    assert!(log.contains("[kubernetes executor]   Warning Failed: "), "{log}");
    // A pod that never ran is deleted even though failed pods are kept.
    eventually("the pod is deleted", || fake.pod(NS, &pod_name_of(&item)).is_none()).await;
}

#[tokio::test]
async fn a_pod_pending_past_the_timeout_fails_with_its_events() {
    let fake = crate::start_fake();
    fake.set_unschedulable(true);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = config("sched-a");
    config.pending_timeout = Duration::from_secs(1);
    let mut h = executor(&fake, dir.path(), config, HashMap::new()).await;
    let item = item(dir.path(), "stuck", 0);
    let start = Instant::now();
    h.executor.submit(item.clone());
    let (message, retryable) = failure(finished(&mut h.events, &item.key).await.1);
    assert!(start.elapsed() >= Duration::from_secs(1));
    assert!(retryable);
    assert!(message.contains("still Pending after 1 s"), "{message}");
    assert!(message.contains("Warning FailedScheduling: 0/1 nodes are available"), "{message}");
    let log = log_of(&item);
    assert!(log.contains("could not run the task: still Pending after 1 s (pending_timeout)"), "{log}");
    assert!(log.contains("[kubernetes executor]   Warning FailedScheduling: 0/1 nodes are available"), "{log}");
    eventually("the pod is deleted", || fake.pod(NS, &pod_name_of(&item)).is_none()).await;
}

#[tokio::test]
async fn a_pod_quota_that_stays_full_fails_the_try_with_the_api_servers_refusal_in_its_log() {
    let fake = crate::start_fake();
    fake.set_pod_quota(Some(0));
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = config("sched-a");
    config.create_retries = 1;
    let mut h = executor(&fake, dir.path(), config, HashMap::new()).await;
    let item = item(dir.path(), "no_room", 0);
    h.executor.submit(item.clone());
    let (started, outcome) = finished(&mut h.events, &item.key).await;
    assert!(!started);
    let (message, retryable) = failure(outcome);
    assert!(retryable, "a full quota may have room at the next try");
    assert!(
        message.contains("after 2 attempts: pods \"etl-no-room-f33b5c678c\" is forbidden: exceeded quota"),
        "{message}"
    );
    let log = log_of(&item);
    assert!(log.contains("[kubernetes executor] could not create pod"), "{log}");
    assert!(log.contains("exceeded quota: pod-quota, requested: pods=1"), "{log}");
    assert_eq!(fake.created_pods(), []);
}

#[tokio::test]
async fn a_spec_the_api_server_rejects_fails_without_retries_and_says_why() {
    let fake = crate::start_fake();
    let dir = tempfile::tempdir().expect("tempdir");
    let overrides = HashMap::from([
        ("bad_label".to_owned(), json!({"labels": {"team": "data science!"}})),
        ("bad_block".to_owned(), json!({"imag": "x"})),
    ]);
    let mut h = executor(&fake, dir.path(), config("sched-a"), overrides).await;
    let bad_label = item(dir.path(), "bad_label", 0);
    h.executor.submit(bad_label.clone());
    let (message, retryable) = failure(finished(&mut h.events, &bad_label.key).await.1);
    assert!(!retryable);
    assert!(message.contains("the API server rejected pod"), "{message}");
    assert!(message.contains("is invalid: metadata.labels: Invalid value: \"data science!\""), "{message}");
    assert!(log_of(&bad_label).contains("is invalid"), "{}", log_of(&bad_label));

    // An override the executor cannot read never reaches the API server.
    let bad_block = item(dir.path(), "bad_block", 1);
    h.executor.submit(bad_block.clone());
    let (message, retryable) = failure(finished(&mut h.events, &bad_block.key).await.1);
    assert!(!retryable);
    assert!(message.starts_with("invalid `kubernetes` block: unknown field `imag`"), "{message}");
    assert_eq!(fake.created_pods(), []);
}

#[tokio::test]
async fn a_role_without_create_on_pods_fails_the_try_naming_the_missing_verb() {
    let fake = crate::start_fake();
    fake.apply_rbac_yaml(
        "apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: updraft-scheduler, namespace: updraft}
rules:
  - apiGroups: ['']
    resources: [pods]
    verbs: [get, list, watch, delete, patch]
  - apiGroups: ['']
    resources: [events]
    verbs: [list, watch]
",
    )
    .expect("role applied");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut h = executor(&fake, dir.path(), config("sched-a"), HashMap::new()).await;
    let item = item(dir.path(), "denied", 0);
    h.executor.submit(item.clone());
    let (message, _) = failure(finished(&mut h.events, &item.key).await.1);
    assert!(
        message.starts_with(
            "the scheduler's ServiceAccount may not create pods in namespace updraft: add verb `create` on `pods` to its Role (k8s/base/rbac.yaml)"
        ),
        "{message}"
    );
    assert!(message.contains("cannot create resource \"pods\""), "{message}");
    assert!(log_of(&item).contains("add verb `create` on `pods`"));
}

#[tokio::test]
async fn a_pod_that_fails_before_its_task_starts_is_replaced_once_without_spending_a_retry() {
    let fake = crate::start_fake();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = config("sched-a");
    // The template's init container fails, so `base` never runs: a launch failure.
    config.pod_template = PodTemplate::Value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"labels": {"team": "data"}},
        "spec": {"initContainers": [{"name": "setup", "image": "busybox", "command": ["sh", "-c", "exit 1"]}]},
    }));
    let mut h = executor(&fake, dir.path(), config, HashMap::new()).await;
    let item = item(dir.path(), "init_fails", 0);
    h.executor.submit(item.clone());
    let (message, retryable) = failure(finished(&mut h.events, &item.key).await.1);
    assert!(retryable);
    assert!(message.contains("init container setup terminated: reason Error, exit code 1"), "{message}");
    let created: Vec<String> = fake.created_pods().into_iter().map(|(_, name)| name).collect();
    assert_eq!(created.len(), 2, "one replacement pod: {created:?}");
    assert_eq!(created[0], pod_name_of(&item));
    assert_ne!(created[1], created[0]);
    assert!(log_of(&item).contains("failed before its task started"), "{}", log_of(&item));
    assert!(log_of(&item).contains("launching a new pod (replacement 1 of 1)"), "{}", log_of(&item));
    // The template's labels reached the pod.
    let pod = fake.pod(NS, &created[1]).expect("the failed replacement is kept");
    assert_eq!(pod.pointer("/metadata/labels/team").and_then(|v| v.as_str()), Some("data"));
}

#[tokio::test]
async fn a_template_that_is_not_a_pod_stops_the_executor_from_starting() {
    let fake = crate::start_fake();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("template.yaml");
    std::fs::write(&path, "apiVersion: v1\nkind: ConfigMap\n").expect("written");
    let mut config = config("sched-a");
    config.pod_template = PodTemplate::File(path);
    let (sender, _events) = tokio::sync::mpsc::unbounded_channel();
    let results = std::sync::Arc::new(updraft_executor_kubernetes::InMemoryResults::new());
    let error = KubernetesExecutor::new(
        crate::client(&fake, dir.path()).await,
        config,
        sender,
        std::sync::Arc::new(|_: &_| None),
        results,
    )
    .err()
    .expect("a template error");
    assert!(
        error.to_string().ends_with("template.yaml: the pod template is not a Pod: its kind is \"ConfigMap\""),
        "{error}"
    );
}
