//! Back-pressure and watch disruption: 429 with Retry-After on create, the creation rate limit,
//! a watch that expires (410) mid-run, 5xx and dropped connections on create, and a full pod
//! quota.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::json;
use updraft_executor::{Executor, WorkEvent, WorkOutcome};
use updraft_fake_kube::{Fault, FaultKind};

use crate::{NS, config, executor, finished, item, next_event, pod_name_of, scripted};

#[tokio::test]
async fn a_429_with_retry_after_pauses_creation_and_the_pod_is_created_once() {
    let fake = crate::start_fake();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut h = executor(&fake, dir.path(), config("sched-a"), HashMap::new()).await;
    fake.inject_fault(Fault::new(
        Some("POST"),
        &format!("/api/v1/namespaces/{NS}/pods"),
        FaultKind::TooManyRequests { retry_after_seconds: 1 },
    ));
    let item = item(dir.path(), "throttled", 0);
    let name = pod_name_of(&item);
    let start = Instant::now();
    h.executor.submit(item.clone());
    let mut created_after = None;
    while created_after.is_none() {
        if fake.create_count(NS, &name) == 1 {
            created_after = Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(start.elapsed() < Duration::from_secs(20), "never created");
    }
    let created_after = created_after.unwrap_or_default();
    assert!(created_after >= Duration::from_secs(1), "created after {created_after:?}, before Retry-After");
    assert_eq!(finished(&mut h.events, &item.key).await.1, WorkOutcome::Success);
    assert_eq!(fake.create_count(NS, &name), 1);
    let posts: Vec<u16> = fake.requests().into_iter().filter(|r| r.method == "POST").map(|r| r.status).collect();
    assert_eq!(posts, [429, 201], "kube's own retry is off; the executor retried once");
}

#[tokio::test]
async fn creates_keep_to_the_configured_rate() {
    let fake = crate::start_fake();
    let dir = tempfile::tempdir().expect("tempdir");
    let overrides = HashMap::from([("quick".to_owned(), scripted(json!({"fake.updraft.dev/run-ms": "50"})))]);
    let mut config = config("sched-a");
    config.creates_per_second = 10.0;
    let mut h = executor(&fake, dir.path(), config, overrides).await;
    let items: Vec<_> = (0..20)
        .map(|i| {
            let mut item = item(dir.path(), "quick", 0);
            item.key.run_pk = i + 1;
            item.run_id = format!("manual__{i}");
            item
        })
        .collect();
    for item in &items {
        h.executor.submit(item.clone());
    }
    // When each create is first seen, from the fake's record of creates.
    let start = Instant::now();
    let mut seen = Vec::new();
    while seen.len() < 20 {
        let count = fake.created_pods().len();
        while seen.len() < count {
            seen.push(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(start.elapsed() < Duration::from_secs(30), "only {} pods created", seen.len());
    }
    let spread = seen[19] - seen[0];
    assert!(spread >= Duration::from_millis(1800), "20 creates at 10/s took only {spread:?}");
    let mut ended = 0;
    while ended < 20 {
        if let WorkEvent::Finished { outcome, .. } = next_event(&mut h.events).await {
            assert_eq!(outcome, WorkOutcome::Success);
            ended += 1;
        }
    }
}

#[tokio::test]
async fn a_watch_that_expires_mid_run_relists_and_the_try_still_ends_once() {
    let fake = crate::start_fake();
    let dir = tempfile::tempdir().expect("tempdir");
    let overrides = HashMap::from([("long".to_owned(), scripted(json!({"fake.updraft.dev/run-ms": "1500"})))]);
    let mut h = executor(&fake, dir.path(), config("sched-a"), overrides).await;
    let item = item(dir.path(), "long", 0);
    h.executor.submit(item.clone());
    match next_event(&mut h.events).await {
        WorkEvent::Started { key, .. } => assert_eq!(key, item.key),
        other => panic!("expected Started, got {other:?}"),
    }
    // Everything the watcher saw is compacted away, and its stream is cut: it must re-watch
    // from a resourceVersion that is gone (410 Expired) and re-list.
    fake.compact_history();
    fake.close_watches();
    assert_eq!(finished(&mut h.events, &item.key).await.1, WorkOutcome::Success);
    let relists = fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.uri.contains("/pods?") && !r.uri.contains("watch=true"))
        .count();
    assert!(relists >= 2, "the watcher listed only {relists} time(s)");
    tokio::time::sleep(Duration::from_millis(300)).await;
    while let Ok(event) = h.events.try_recv() {
        assert!(!matches!(event, WorkEvent::Finished { .. }), "a second end: {event:?}");
    }
}

#[tokio::test]
async fn server_errors_dropped_connections_and_a_lost_response_end_in_one_pod() {
    let fake = crate::start_fake();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut h = executor(&fake, dir.path(), config("sched-a"), HashMap::new()).await;
    let path = format!("/api/v1/namespaces/{NS}/pods");
    for kind in [
        FaultKind::InternalError,
        FaultKind::ServiceUnavailable { retry_after_seconds: None },
        FaultKind::DropConnection,
        // The create happens but its response is lost: the retry's 409 takes the pod over.
        FaultKind::DropConnectionAfterProcessing,
    ] {
        fake.inject_fault(Fault::new(Some("POST"), &path, kind));
    }
    let item = item(dir.path(), "unlucky", 0);
    h.executor.submit(item.clone());
    assert_eq!(finished(&mut h.events, &item.key).await.1, WorkOutcome::Success);
    assert_eq!(fake.create_count(NS, &pod_name_of(&item)), 1, "one pod, whatever the retries");
    // Whether the pod was seen by the watcher first or the retry's 409 found it, it is never
    // created again, not even after the try ended and its pod was deleted.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(fake.create_count(NS, &pod_name_of(&item)), 1, "one pod, whatever the retries");
    let posts: Vec<u16> = fake.requests().into_iter().filter(|r| r.method == "POST").map(|r| r.status).collect();
    assert!(posts.starts_with(&[500, 503, 0, 201]) && posts[4..].iter().all(|&s| s == 409), "{posts:?}");
    assert!(fake.pods(NS).is_empty(), "the finished pod was deleted and not created again");
}

#[tokio::test]
async fn a_pod_quota_that_is_full_holds_the_create_until_there_is_room() {
    let fake = crate::start_fake();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut h = executor(&fake, dir.path(), config("sched-a"), HashMap::new()).await;
    fake.set_pod_quota(Some(0));
    let item = item(dir.path(), "waits", 0);
    h.executor.submit(item.clone());
    crate::eventually("a create refused by the quota", || {
        fake.requests().iter().any(|r| r.method == "POST" && r.status == 403)
    })
    .await;
    fake.set_pod_quota(None);
    assert_eq!(finished(&mut h.events, &item.key).await.1, WorkOutcome::Success, "{}", crate::log_of(&item));
    assert_eq!(fake.create_count(NS, &pod_name_of(&item)), 1);
}
