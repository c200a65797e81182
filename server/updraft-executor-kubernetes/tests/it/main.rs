//! The kubernetes executor against the Kubernetes API test server (`updraft-fake-kube`): real
//! HTTPS, the RBAC of `k8s/base`, a simulated kubelet. One test binary for the crate.

mod adoption;
mod failures;
mod throttling;
mod tries;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};
use updraft_executor::{TryKey, WorkEvent, WorkItem, WorkOutcome};
use updraft_executor_kubernetes::{InMemoryResults, KubernetesConfig, KubernetesExecutor, client_from_kubeconfig};
use updraft_fake_kube::{FakeKube, FakeKubeConfig};

pub(crate) const NS: &str = "updraft";

pub(crate) fn start_fake() -> FakeKube {
    FakeKube::start(FakeKubeConfig::default()).expect("the fake API server starts")
}

/// A config for busybox-like pods that print `hi` (the worker arguments follow `sh -c … sh`).
pub(crate) fn config(scheduler_id: &str) -> KubernetesConfig {
    let mut config = KubernetesConfig::new(NS, "busybox", scheduler_id);
    config.command = ["sh", "-c", "echo hi", "sh"].map(str::to_owned).to_vec();
    config
}

/// The scheduler's kube client, from a kubeconfig the fake wrote, as a deployment would.
pub(crate) async fn client(fake: &FakeKube, dir: &Path) -> kube::Client {
    let path = dir.join("scheduler.kubeconfig");
    fake.write_kubeconfig(&path, NS, "updraft-scheduler").expect("kubeconfig written");
    client_from_kubeconfig(&path, None).await.expect("a client")
}

/// One executor with its event channel and result source.
pub(crate) struct Harness {
    pub executor: KubernetesExecutor,
    pub events: UnboundedReceiver<WorkEvent>,
    pub results: Arc<InMemoryResults>,
}

/// An executor whose overrides come from `overrides` (by task id).
pub(crate) async fn executor(
    fake: &FakeKube,
    dir: &Path,
    config: KubernetesConfig,
    overrides: HashMap<String, Value>,
) -> Harness {
    let (sender, events) = unbounded_channel();
    let results = Arc::new(InMemoryResults::new());
    let lookup = Arc::new(move |item: &WorkItem| overrides.get(&item.task_id).cloned());
    let executor = KubernetesExecutor::new(client(fake, dir).await, config, sender, lookup, results.clone())
        .expect("the executor starts");
    Harness { executor, events, results }
}

/// A try of task `task_id` in run 1 of dag `etl`, logging under `dir`.
pub(crate) fn item(dir: &Path, task_id: &str, task_index: u32) -> WorkItem {
    WorkItem {
        key: TryKey { run_pk: 1, task_index, try_number: 1 },
        dag_id: "etl".into(),
        run_id: "manual__2024-01-01T00:00:00+00:00".into(),
        task_id: task_id.into(),
        operator: "bash".into(),
        params: json!({}),
        logical_date: "2024-01-01T00:00:00+00:00".into(),
        data_interval_start: "2024-01-01T00:00:00+00:00".into(),
        data_interval_end: "2024-01-01T00:00:00+00:00".into(),
        execution_timeout: None,
        log_path: dir.join(format!("logs/task_id={task_id}/attempt=1.log")),
        kubernetes: None,
        plugin_sha256: None,
    }
}

pub(crate) fn pod_name_of(item: &WorkItem) -> String {
    updraft_executor_kubernetes::pod_name(&item.dag_id, &item.task_id, &item.run_id, item.key.try_number)
}

/// A `kubernetes:` block running the scripted image with the fake's annotations.
pub(crate) fn scripted(annotations: Value) -> Value {
    json!({"image": "fake/scripted", "annotations": annotations})
}

/// The next event, within 30 s.
pub(crate) async fn next_event(events: &mut UnboundedReceiver<WorkEvent>) -> WorkEvent {
    tokio::time::timeout(Duration::from_secs(30), events.recv())
        .await
        .expect("an event within 30 s")
        .expect("the channel is open")
}

/// Waits until `key` is reported started.
pub(crate) async fn started(events: &mut UnboundedReceiver<WorkEvent>, key: &TryKey) {
    loop {
        if let WorkEvent::Started { key: k, .. } = next_event(events).await
            && k == *key
        {
            return;
        }
    }
}

/// Waits for the end of `key`, collecting whether it was started first.
pub(crate) async fn finished(events: &mut UnboundedReceiver<WorkEvent>, key: &TryKey) -> (bool, WorkOutcome) {
    let mut started = false;
    loop {
        match next_event(events).await {
            WorkEvent::Started { key: k, .. } if k == *key => started = true,
            WorkEvent::Finished { key: k, outcome } if k == *key => return (started, outcome),
            _ => {}
        }
    }
}

pub(crate) fn failure(outcome: WorkOutcome) -> (String, bool) {
    match outcome {
        WorkOutcome::Failed { message, retryable } => (message, retryable),
        other => panic!("expected a failure, got {other:?}"),
    }
}

pub(crate) fn log_of(item: &WorkItem) -> String {
    std::fs::read_to_string(&item.log_path).unwrap_or_default()
}

/// Polls until `done` holds, for at most 20 s.
pub(crate) async fn eventually(what: &str, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub(crate) fn label(fake: &FakeKube, pod: &str, key: &str) -> Option<String> {
    fake.pod(NS, pod)?.pointer("/metadata/labels")?.get(key)?.as_str().map(str::to_owned)
}
