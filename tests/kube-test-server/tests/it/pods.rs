//! Pods through kube-rs: a real process runs to completion under `kube::runtime::watcher`,
//! its log is read back; graceful deletion; Updraft's worker image with env from Secrets,
//! ConfigMaps and the downward API.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::TryStreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, LogParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use updraft_fake_kube::{FakeKube, FakeKubeConfig};

use crate::{NS, base_state, event_reasons, phase, pod, scheduler_pods, wait_for};

#[tokio::test]
async fn a_busybox_pod_runs_its_command_and_its_log_reads_back() {
    let fake = crate::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let pods = scheduler_pods(&fake, dir.path()).await;
    let created = pods
        .create(&PostParams::default(), &pod("hello", "busybox:1.36", &["sh", "-c", "echo hello; exit 0"], json!({})))
        .await
        .expect("create");
    assert_eq!(phase(&created), "Pending");
    assert!(created.metadata.uid.is_some() && created.metadata.creation_timestamp.is_some());

    let config = watcher::Config::default().fields("metadata.name=hello");
    let mut phases = Vec::new();
    let stream = watcher(pods.clone(), config).default_backoff().applied_objects();
    let mut stream = std::pin::pin!(stream);
    let finished = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(pod) = stream.try_next().await.expect("watch works") {
            if phases.last().map(String::as_str) != Some(phase(&pod)) {
                phases.push(phase(&pod).to_owned());
            }
            if phase(&pod) == "Succeeded" {
                return pod;
            }
        }
        panic!("the watch ended");
    })
    .await
    .expect("the pod succeeds in time");
    assert_eq!(phases.first().map(String::as_str), Some("Pending"));
    let terminated = base_state(&finished).terminated.expect("base terminated");
    assert_eq!((terminated.exit_code, terminated.reason.as_deref()), (0, Some("Completed")));

    let log =
        pods.logs("hello", &LogParams { container: Some("base".into()), ..LogParams::default() }).await.expect("log");
    assert_eq!(log, "hello\n");
    let reasons = event_reasons(&fake, "hello");
    for reason in ["Scheduled", "Pulled", "Created", "Started"] {
        assert!(reasons.iter().any(|r| r == reason), "no {reason} event in {reasons:?}");
    }
    assert_eq!(fake.create_count(NS, "hello"), 1);
}

#[tokio::test]
async fn graceful_delete_sends_sigterm_and_then_removes_the_pod() {
    let fake = crate::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let pods = scheduler_pods(&fake, dir.path()).await;
    let script = "trap 'echo got TERM; exit 0' TERM; echo up; while true; do sleep 0.05; done";
    pods.create(&PostParams::default(), &pod("sleepy", "alpine", &["sh", "-c", script], json!({})))
        .await
        .expect("create");
    let running = wait_for(&pods, "sleepy", "Running", |p| phase(p) == "Running").await;
    let rv = running.metadata.resource_version.clone().expect("rv");
    // The log follows the live process.
    let mut follow =
        pods.log_stream("sleepy", &LogParams { follow: true, ..LogParams::default() }).await.expect("log stream");
    let mut first = String::new();
    futures::AsyncBufReadExt::read_line(&mut follow, &mut first).await.expect("a line");
    assert_eq!(first, "up\n");

    let events = pods.watch(&WatchParams::default(), &rv).await.expect("watch");
    let params = DeleteParams { grace_period_seconds: Some(5), ..DeleteParams::default() };
    let answer = pods.delete("sleepy", &params).await.expect("delete").left().expect("the terminating pod comes back");
    assert!(answer.metadata.deletion_timestamp.is_some());
    let mut events = std::pin::pin!(events);
    let mut seen = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(event) = events.try_next().await.expect("watch event") {
            match event {
                WatchEvent::Modified(p) => seen.push(("MODIFIED", p.metadata.deletion_timestamp.is_some())),
                WatchEvent::Deleted(p) => {
                    seen.push(("DELETED", p.metadata.deletion_timestamp.is_some()));
                    return;
                }
                _ => {}
            }
        }
    })
    .await
    .expect("the pod is deleted");
    assert_eq!(seen.first(), Some(&("MODIFIED", true)), "deletionTimestamp arrives first: {seen:?}");
    assert_eq!(seen.last(), Some(&("DELETED", true)));
    let mut rest = String::new();
    futures::AsyncReadExt::read_to_string(&mut follow, &mut rest).await.expect("the follow ends");
    assert!(rest.contains("got TERM"), "SIGTERM reached the process: {rest:?}");
    assert!(event_reasons(&fake, "sleepy").iter().any(|r| r == "Killing"));
    assert!(pods.get_opt("sleepy").await.expect("get").is_none());
}

#[tokio::test]
async fn updrafts_image_runs_the_worker_binary_with_the_pods_environment() {
    let fake = FakeKube::start(FakeKubeConfig { worker_binary: Some("/bin/sh".into()), ..FakeKubeConfig::default() })
        .expect("starts");
    fake.add_secret(NS, "api-token", BTreeMap::from([("token".to_owned(), "s3cret".to_owned())])).expect("stored");
    let dir = tempfile::tempdir().expect("tempdir");
    let pods = scheduler_pods(&fake, dir.path()).await;
    let worker: Pod = serde_json::from_value(json!({
        "metadata": {"name": "worker", "labels": {"managed-by": "updraft"}},
        "spec": {"restartPolicy": "Never", "containers": [{
            "name": "base",
            "image": "updraft/worker:dev",
            // No command: the image's entrypoint (the worker binary) gets the args.
            "args": ["-c", "echo \"$POD/$NAMESPACE token=$TOKEN try=$TRY in $(pwd)\"", "$(TRY)"],
            "workingDir": dir.path(),
            "env": [
                {"name": "TRY", "value": "3"},
                {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "api-token", "key": "token"}}},
                {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            ],
        }]},
    }))
    .expect("pod");
    pods.create(&PostParams::default(), &worker).await.expect("create");
    wait_for(&pods, "worker", "Succeeded", |p| phase(p) == "Succeeded").await;
    let log = pods.logs("worker", &LogParams::default()).await.expect("log");
    assert_eq!(log, format!("worker/updraft token=s3cret try=3 in {}\n", dir.path().display()));

    // A missing Secret keeps the container in CreateContainerConfigError until it appears.
    let mut waiting = worker.clone();
    waiting.metadata.name = Some("worker-2".into());
    if let Some(env) = waiting.spec.as_mut().and_then(|s| s.containers[0].env.as_mut()) {
        env[1] = serde_json::from_value(
            json!({"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "later", "key": "token"}}}),
        )
        .expect("env var");
    }
    pods.create(&PostParams::default(), &waiting).await.expect("create");
    let stuck = wait_for(&pods, "worker-2", "CreateContainerConfigError", |p| {
        p.status.as_ref().and_then(|s| s.container_statuses.as_ref()).is_some_and(|c| {
            c[0].state.as_ref().and_then(|s| s.waiting.as_ref()).and_then(|w| w.reason.as_deref())
                == Some("CreateContainerConfigError")
        })
    })
    .await;
    let message = base_state(&stuck).waiting.and_then(|w| w.message).expect("message");
    assert_eq!(message, "secret \"later\" not found");
    fake.add_secret(NS, "later", BTreeMap::from([("token".to_owned(), "t".to_owned())])).expect("stored");
    wait_for(&pods, "worker-2", "Succeeded", |p| phase(p) == "Succeeded").await;
}

#[tokio::test]
async fn an_unknown_command_is_a_start_error_and_the_pod_fails() {
    let fake = crate::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let pods = scheduler_pods(&fake, dir.path()).await;
    pods.create(&PostParams::default(), &pod("nocmd", "debian:12", &["no-such-program-xyz"], json!({})))
        .await
        .expect("create");
    let failed = wait_for(&pods, "nocmd", "Failed", |p| phase(p) == "Failed").await;
    let terminated = base_state(&failed).terminated.expect("terminated");
    assert_eq!((terminated.exit_code, terminated.reason.as_deref()), (128, Some("StartError")));
    assert!(terminated.message.unwrap_or_default().contains("executable file not found in $PATH"));
}

#[tokio::test]
async fn logs_of_a_waiting_container_are_a_bad_request() {
    let fake = crate::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let pods = scheduler_pods(&fake, dir.path()).await;
    let slow = json!({"fake.updraft.dev/start-delay-ms": "3000"});
    pods.create(&PostParams::default(), &pod("slow", "fake/scripted", &[], slow)).await.expect("create");
    let error = pods.logs("slow", &LogParams::default()).await.expect_err("still waiting");
    let kube::Error::Api(status) = error else { panic!("not an API error: {error}") };
    assert_eq!(status.code, 400);
    assert_eq!(status.reason, "BadRequest");
    assert_eq!(status.message, "container \"base\" in pod \"slow\" is waiting to start: ContainerCreating");
}

#[tokio::test]
async fn kube_rs_also_authenticates_over_plain_http() {
    let fake = crate::start();
    let dir = tempfile::tempdir().expect("tempdir");
    // Unlike client-go, which drops credentials for http:// servers, kube-rs sends the token.
    let path = dir.path().join("http.kubeconfig");
    fake.write_kubeconfig(&path, NS, crate::SCHEDULER).expect("kubeconfig");
    let text = std::fs::read_to_string(&path).expect("read").replace(&fake.url(), &fake.http_url());
    let kubeconfig: kube::config::Kubeconfig = kube::config::Kubeconfig::from_yaml(&text).expect("parses");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.expect("config");
    let pods: kube::Api<Pod> = kube::Api::namespaced(kube::Client::try_from(config).expect("client"), NS);
    pods.list(&Default::default()).await.expect("authenticated over http");
    let last = fake.requests().pop().expect("a request");
    assert_eq!(last.user.as_deref(), Some("system:serviceaccount:updraft:updraft-scheduler"));
}
