//! Scripted behaviour from pod annotations and images that cannot be pulled: the container
//! states, pod phases and events a client sees for exit codes, OOMKilled, ErrImagePull /
//! ImagePullBackOff, InvalidImageName and eviction.

use kube::api::PostParams;
use serde_json::json;

use crate::{NS, base_state, event_reasons, phase, pod, scheduler_pods, wait_for};

fn waiting_reason(p: &k8s_openapi::api::core::v1::Pod) -> Option<String> {
    p.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first())
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.waiting.as_ref())
        .and_then(|w| w.reason.clone())
}

#[tokio::test]
async fn exit_codes_and_oom_kills() {
    let fake = crate::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let pods = scheduler_pods(&fake, dir.path()).await;
    let exits = json!({"fake.updraft.dev/exit-code": "3", "fake.updraft.dev/log": "working\nfailed!"});
    pods.create(&PostParams::default(), &pod("exits", "fake/scripted", &[], exits)).await.expect("create");
    pods.create(
        &PostParams::default(),
        &pod("oom", "fake/scripted", &[], json!({"fake.updraft.dev/oom-kill": "true"})),
    )
    .await
    .expect("create");

    let failed = wait_for(&pods, "exits", "Failed", |p| phase(p) == "Failed").await;
    let terminated = base_state(&failed).terminated.expect("terminated");
    assert_eq!((terminated.exit_code, terminated.reason.as_deref()), (3, Some("Error")));
    assert!(terminated.started_at.is_some() && terminated.finished_at.is_some());
    assert_eq!(pods.logs("exits", &Default::default()).await.expect("log"), "working\nfailed!\n");

    let oom = wait_for(&pods, "oom", "Failed", |p| phase(p) == "Failed").await;
    let terminated = base_state(&oom).terminated.expect("terminated");
    assert_eq!((terminated.exit_code, terminated.reason.as_deref()), (137, Some("OOMKilled")));
    assert!(event_reasons(&fake, "oom").contains(&"OOMKilling".to_owned()));
    let ready = oom
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .expect("Ready");
    assert_eq!((ready.status.as_str(), ready.reason.as_deref()), ("False", Some("PodFailed")));
}

#[tokio::test]
async fn unpullable_images_wait_in_err_image_pull_then_back_off() {
    let fake = crate::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let pods = scheduler_pods(&fake, dir.path()).await;
    pods.create(&PostParams::default(), &pod("nopull", "does-not-exist/image:1.0", &["true"], json!({})))
        .await
        .expect("create");
    let pulling =
        wait_for(&pods, "nopull", "ErrImagePull", |p| waiting_reason(p).as_deref() == Some("ErrImagePull")).await;
    assert_eq!(phase(&pulling), "Pending");
    let message = base_state(&pulling).waiting.and_then(|w| w.message).unwrap_or_default();
    assert!(message.starts_with("Failed to pull image \"does-not-exist/image:1.0\""), "{message}");
    let backoff =
        wait_for(&pods, "nopull", "ImagePullBackOff", |p| waiting_reason(p).as_deref() == Some("ImagePullBackOff"))
            .await;
    assert_eq!(phase(&backoff), "Pending");
    let reasons = event_reasons(&fake, "nopull");
    for reason in ["Scheduled", "Pulling", "Failed", "BackOff"] {
        assert!(reasons.iter().any(|r| r == reason), "no {reason} in {reasons:?}");
    }
    let messages: Vec<String> = fake
        .pod_events(NS, "nopull")
        .iter()
        .filter_map(|e| e.get("message").and_then(|m| m.as_str()).map(str::to_owned))
        .collect();
    assert!(messages.iter().any(|m| m == "Error: ErrImagePull"), "{messages:?}");
    let error = pods.logs("nopull", &Default::default()).await.expect_err("no logs yet");
    assert!(
        matches!(error, kube::Error::Api(s) if s.code == 400 && s.message.ends_with("is waiting to start: trying and failing to pull image"))
    );

    pods.create(&PostParams::default(), &pod("badref", "invalid::name", &["true"], json!({}))).await.expect("create");
    wait_for(&pods, "badref", "InvalidImageName", |p| waiting_reason(p).as_deref() == Some("InvalidImageName")).await;
    // Deleting a pod stuck in Pending works (it is on the node, so it goes gracefully).
    pods.delete("nopull", &Default::default()).await.expect("delete");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while pods.get_opt("nopull").await.expect("get").is_some() {
        assert!(tokio::time::Instant::now() < deadline, "the pod was never removed");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn eviction_by_annotation_and_by_hook() {
    let fake = crate::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let pods = scheduler_pods(&fake, dir.path()).await;
    let evicted = json!({"fake.updraft.dev/run-ms": "60000", "fake.updraft.dev/evict-after-ms": "200"});
    pods.create(&PostParams::default(), &pod("evicted", "fake/scripted", &[], evicted)).await.expect("create");
    let gone = wait_for(&pods, "evicted", "Failed", |p| phase(p) == "Failed").await;
    let status = gone.status.clone().expect("status");
    assert_eq!(status.reason.as_deref(), Some("Evicted"));
    assert!(status.message.unwrap_or_default().starts_with("The node was low on resource: memory."));
    assert!(status.conditions.unwrap_or_default().iter().any(|c| c.type_ == "DisruptionTarget" && c.status == "True"));
    assert!(base_state(&gone).terminated.is_some());
    assert!(event_reasons(&fake, "evicted").contains(&"Evicted".to_owned()));

    // A real process, evicted through the test hook.
    pods.create(&PostParams::default(), &pod("busy", "busybox", &["sh", "-c", "sleep 60"], json!({})))
        .await
        .expect("create");
    wait_for(&pods, "busy", "Running", |p| phase(p) == "Running").await;
    assert!(fake.evict_pod(NS, "busy"));
    let gone = wait_for(&pods, "busy", "Failed", |p| phase(p) == "Failed").await;
    assert_eq!(gone.status.and_then(|s| s.reason).as_deref(), Some("Evicted"));
    assert!(!fake.evict_pod(NS, "no-such-pod"));
}
