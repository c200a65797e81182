//! Tries that run: success in a busybox-like pod, exit codes, OOM kill, eviction, and a
//! recorded outcome winning over the exit code, a pod deleted while its task runs, and a
//! cancelled try; the execution_timeout backstop.

use std::collections::HashMap;

use serde_json::json;
use updraft_executor::{Executor, WorkEvent, WorkOutcome};

use crate::{
    NS, config, eventually, executor, failure, finished, item, label, log_of, next_event, pod_name_of, scripted,
    started,
};

#[tokio::test]
async fn a_try_succeeds_in_its_pod_and_the_pod_is_deleted() {
    let fake = crate::start_fake();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut h = executor(&fake, dir.path(), config("sched-a"), HashMap::new()).await;
    let item = item(dir.path(), "say_hi", 0);
    h.executor.submit(item.clone());
    let name = pod_name_of(&item);
    match next_event(&mut h.events).await {
        WorkEvent::Started { key, hostname } => assert_eq!((key, hostname), (item.key.clone(), name.clone())),
        other => panic!("expected Started first, got {other:?}"),
    }
    assert_eq!(finished(&mut h.events, &item.key).await.1, WorkOutcome::Success);
    eventually("the pod is deleted", || fake.pod(NS, &name).is_none()).await;
    assert_eq!(fake.create_count(NS, &name), 1);
}

#[tokio::test]
async fn a_failing_exit_code_fails_the_try_and_the_failed_pod_is_kept_marked_done() {
    let fake = crate::start_fake();
    let dir = tempfile::tempdir().expect("tempdir");
    let overrides = HashMap::from([("fails".to_owned(), scripted(json!({"fake.updraft.dev/exit-code": "3"})))]);
    let mut h = executor(&fake, dir.path(), config("sched-a"), overrides).await;
    let item = item(dir.path(), "fails", 0);
    h.executor.submit(item.clone());
    let (started, outcome) = finished(&mut h.events, &item.key).await;
    assert!(started);
    let (message, retryable) = failure(outcome);
    assert!(retryable);
    assert!(message.contains("exit code 3"), "{message}");
    assert!(log_of(&item).contains("container base terminated: reason Error, exit code 3"), "{}", log_of(&item));
    let name = pod_name_of(&item);
    eventually("the kept pod is marked done", || label(&fake, &name, "updraft.dev/done").as_deref() == Some("true"))
        .await;
}

#[tokio::test]
async fn an_oom_kill_and_an_eviction_are_named_in_the_log() {
    let fake = crate::start_fake();
    let dir = tempfile::tempdir().expect("tempdir");
    let overrides = HashMap::from([
        ("oom".to_owned(), scripted(json!({"fake.updraft.dev/oom-kill": "true"}))),
        (
            "evicted".to_owned(),
            scripted(json!({"fake.updraft.dev/run-ms": "20000", "fake.updraft.dev/evict-after-ms": "300"})),
        ),
    ]);
    let mut config = config("sched-a");
    config.delete_worker_pods_on_failure = true;
    let mut h = executor(&fake, dir.path(), config, overrides).await;
    let oom = item(dir.path(), "oom", 0);
    let evicted = item(dir.path(), "evicted", 1);
    h.executor.submit(oom.clone());
    h.executor.submit(evicted.clone());
    let mut ends = HashMap::new();
    while ends.len() < 2 {
        if let WorkEvent::Finished { key, outcome } = next_event(&mut h.events).await {
            ends.insert(key.task_index, failure(outcome).0);
        }
    }
    assert!(ends[&0].contains("reason OOMKilled, exit code 137"), "{}", ends[&0]);
    assert!(log_of(&oom).contains("OOMKilled"), "{}", log_of(&oom));
    assert!(ends[&1].contains("reason Evicted"), "{}", ends[&1]);
    assert!(log_of(&evicted).contains("Evicted"), "{}", log_of(&evicted));
    // delete_worker_pods_on_failure: failed pods go too.
    eventually("failed pods are deleted", || fake.pods(NS).is_empty()).await;
}

#[tokio::test]
async fn the_outcome_the_worker_recorded_wins_over_the_exit_code() {
    let fake = crate::start_fake();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut h = executor(&fake, dir.path(), config("sched-a"), HashMap::new()).await;
    let item = item(dir.path(), "skips", 0);
    h.results.record(item.key.clone(), WorkOutcome::Skipped);
    h.executor.submit(item.clone());
    assert_eq!(finished(&mut h.events, &item.key).await.1, WorkOutcome::Skipped);
}

#[tokio::test]
async fn a_pod_deleted_while_its_task_runs_fails_the_try_saying_so() {
    let fake = crate::start_fake();
    let dir = tempfile::tempdir().expect("tempdir");
    let overrides = HashMap::from([("doomed".to_owned(), scripted(json!({"fake.updraft.dev/run-ms": "30000"})))]);
    let mut h = executor(&fake, dir.path(), config("sched-a"), overrides).await;
    let item = item(dir.path(), "doomed", 0);
    h.executor.submit(item.clone());
    started(&mut h.events, &item.key).await;
    // Someone deletes the pod (kubectl delete, a node drain), as a cluster admin would.
    let admin = dir.path().join("admin.kubeconfig");
    fake.write_admin_kubeconfig(&admin, NS).expect("kubeconfig");
    let client = updraft_executor_kubernetes::client_from_kubeconfig(&admin, None).await.expect("client");
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> = kube::Api::namespaced(client, NS);
    pods.delete(&pod_name_of(&item), &kube::api::DeleteParams::default()).await.expect("deleted");
    let (message, retryable) = failure(finished(&mut h.events, &item.key).await.1);
    assert!(message.contains("deleted while its task was running"), "{message}");
    assert!(retryable, "a retry may run it");
    assert!(log_of(&item).contains("deleted while its task was running"), "{}", log_of(&item));
}

#[tokio::test]
async fn a_cancelled_try_has_its_pod_deleted_and_reports_nothing_more() {
    let fake = crate::start_fake();
    let dir = tempfile::tempdir().expect("tempdir");
    let overrides = HashMap::from([("cleared".to_owned(), scripted(json!({"fake.updraft.dev/run-ms": "30000"})))]);
    let mut h = executor(&fake, dir.path(), config("sched-a"), overrides).await;
    let item = item(dir.path(), "cleared", 0);
    let name = pod_name_of(&item);
    h.executor.submit(item.clone());
    started(&mut h.events, &item.key).await;
    h.executor.cancel(&item.key);
    eventually("the cancelled try's pod to be deleted", || fake.pod(NS, &name).is_none()).await;
    let more = tokio::time::timeout(std::time::Duration::from_secs(2), h.events.recv()).await;
    assert!(more.is_err(), "nothing is reported for a cancelled try: {more:?}");
}

#[tokio::test]
async fn a_pod_running_well_past_its_execution_timeout_is_deleted_and_its_try_fails() {
    let fake = crate::start_fake();
    let dir = tempfile::tempdir().expect("tempdir");
    let overrides = HashMap::from([("hung".to_owned(), scripted(json!({"fake.updraft.dev/run-ms": "60000"})))]);
    let mut config = config("sched-a");
    config.execution_timeout_grace = std::time::Duration::from_secs(1);
    let mut h = executor(&fake, dir.path(), config, overrides).await;
    let mut item = item(dir.path(), "hung", 0);
    item.execution_timeout = Some(std::time::Duration::from_secs(1));
    h.executor.submit(item.clone());
    let (message, retryable) = failure(finished(&mut h.events, &item.key).await.1);
    assert!(message.contains("after its task's execution_timeout of 1s"), "{message}");
    assert!(retryable);
    eventually("the hung pod to be deleted", || fake.pod(NS, &pod_name_of(&item)).is_none()).await;
    assert!(log_of(&item).contains("execution_timeout"), "{}", log_of(&item));
}
