//! Watch semantics kube-rs relies on: resuming after the server closes every watch, 410 Expired
//! after compaction (kube-runtime's watcher re-lists), streaming lists, and selectors (an
//! object relabelled out of a watch's selector arrives as DELETED).

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use updraft_fake_kube::{FakeKube, FakeKubeConfig};

use crate::{phase, pod, scheduler_pods};

fn rv(pod: &Pod) -> String {
    pod.metadata.resource_version.clone().expect("resourceVersion")
}

/// `(type, resourceVersion, phase)` of a watch event.
fn describe(event: &WatchEvent<Pod>) -> Option<(String, String, String)> {
    match event {
        WatchEvent::Added(p) => Some(("ADDED".into(), rv(p), phase(p).into())),
        WatchEvent::Modified(p) => Some(("MODIFIED".into(), rv(p), phase(p).into())),
        WatchEvent::Deleted(p) => Some(("DELETED".into(), rv(p), phase(p).into())),
        WatchEvent::Bookmark(_) | WatchEvent::Error(_) => None,
    }
}

#[tokio::test]
async fn a_watch_resumed_after_the_server_closes_it_misses_and_repeats_nothing() {
    let fake = crate::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let pods = scheduler_pods(&fake, dir.path()).await;
    let start_rv = pods.list(&ListParams::default()).await.expect("list").metadata.resource_version.expect("rv");
    let script = json!({"fake.updraft.dev/run-ms": "600", "fake.updraft.dev/start-delay-ms": "200"});
    pods.create(&PostParams::default(), &pod("flappy", "fake/scripted", &[], script)).await.expect("create");

    // The client: watch from the last resourceVersion it saw, again whenever the stream ends.
    let mut seen = Vec::new();
    let mut last = start_rv.clone();
    let mut reconnects = 0;
    let closer = async {
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_millis(70)).await;
            fake.close_watches();
        }
    };
    let client = async {
        'outer: loop {
            let stream =
                pods.watch(&WatchParams::default().fields("metadata.name=flappy"), &last).await.expect("watch");
            let mut stream = std::pin::pin!(stream);
            while let Some(event) = stream.try_next().await.expect("event") {
                if let Some(described) = describe(&event) {
                    last = described.1.clone();
                    let done = described.2 == "Succeeded";
                    seen.push(described);
                    if done {
                        break 'outer;
                    }
                }
            }
            reconnects += 1;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), futures::future::join(closer, client)).await.expect("in time");
    assert!(reconnects >= 3, "the server closed the watch only {reconnects} times");

    // What an uninterrupted watch from the same version replays is the truth.
    let stream = pods.watch(&WatchParams::default().fields("metadata.name=flappy"), &start_rv).await.expect("watch");
    let truth: Vec<_> = stream
        .map(|e| e.expect("event"))
        .filter_map(|e| async move { describe(&e) })
        .take(seen.len() + 1)
        .take_until(tokio::time::sleep(Duration::from_millis(500)))
        .collect()
        .await;
    assert_eq!(seen, truth, "resumed watches saw exactly the uninterrupted sequence");
    let phases: Vec<&str> = seen.iter().map(|e| e.2.as_str()).collect();
    assert!(phases.contains(&"Running") && phases.last() == Some(&"Succeeded"), "{phases:?}");
}

#[tokio::test]
async fn a_compacted_resource_version_gives_410_and_the_runtime_watcher_relists() {
    // No bookmarks, so the watcher's resourceVersion only moves with its own pods.
    let config = FakeKubeConfig { bookmark_interval: Duration::from_secs(3600), ..FakeKubeConfig::default() };
    let fake = FakeKube::start(config).expect("starts");
    let dir = tempfile::tempdir().expect("tempdir");
    let pods = scheduler_pods(&fake, dir.path()).await;

    // Raw watch: the ERROR event arrives inside a 200 stream.
    let old = pods.list(&ListParams::default()).await.expect("list").metadata.resource_version.expect("rv");
    let mut other = pod("other", "fake/scripted", &[], json!({}));
    other.metadata.labels = Some([("app".to_owned(), "other".to_owned())].into());
    pods.create(&PostParams::default(), &other).await.expect("create");
    fake.compact_history();
    let mut raw = std::pin::pin!(pods.watch(&WatchParams::default(), &old).await.expect("a 200 stream"));
    match raw.try_next().await.expect("an event") {
        Some(WatchEvent::Error(status)) => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"));
            assert!(status.message.starts_with(&format!("too old resource version: {old} (")), "{}", status.message);
        }
        other => panic!("expected ERROR 410, got {other:?}"),
    }

    let stream = watcher(pods.clone(), watcher::Config::default().labels("app=test")).default_backoff();
    let mut stream = std::pin::pin!(stream);
    let mut saw_410 = false;
    let mut step = 0;
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match stream.next().await.expect("the watcher goes on") {
                Ok(watcher::Event::InitDone) if step == 0 => {
                    let long = json!({"fake.updraft.dev/run-ms": "60000"});
                    pods.create(&PostParams::default(), &pod("first", "fake/scripted", &[], long))
                        .await
                        .expect("create");
                    step = 1;
                }
                // Once it runs, "first" changes no more.
                Ok(watcher::Event::Apply(p))
                    if step == 1 && p.metadata.name.as_deref() == Some("first") && phase(&p) == "Running" =>
                {
                    // Changes the watcher does not see (other labels), then compaction and a
                    // dropped connection: its resumed watch is now too old.
                    let patch = Patch::Merge(json!({"metadata": {"annotations": {"touched": "yes"}}}));
                    pods.patch("other", &PatchParams::default(), &patch).await.expect("patch");
                    fake.compact_history();
                    fake.close_watches();
                    step = 2;
                }
                Err(watcher::Error::WatchError(status)) if status.code == 410 => {
                    saw_410 = true;
                    pods.create(&PostParams::default(), &pod("second", "fake/scripted", &[], json!({})))
                        .await
                        .expect("create");
                }
                Ok(watcher::Event::InitApply(p) | watcher::Event::Apply(p))
                    if saw_410 && p.metadata.name.as_deref() == Some("second") =>
                {
                    return;
                }
                _ => {}
            }
        }
    })
    .await
    .expect("the watcher recovers and sees the pod created after the 410");
    assert!(saw_410);
}

#[tokio::test]
async fn streaming_lists_end_their_initial_events_with_a_bookmark() {
    let fake = crate::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let pods = scheduler_pods(&fake, dir.path()).await;
    pods.create(&PostParams::default(), &pod("early", "fake/scripted", &[], json!({}))).await.expect("create");
    let config = watcher::Config::default().streaming_lists();
    let stream = watcher(pods.clone(), config).default_backoff();
    let mut stream = std::pin::pin!(stream);
    let mut events = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(event) = stream.try_next().await.expect("event") {
            match event {
                watcher::Event::Init => events.push("Init".to_owned()),
                watcher::Event::InitApply(p) => {
                    events.push(format!("InitApply {}", p.metadata.name.unwrap_or_default()))
                }
                watcher::Event::InitDone => {
                    events.push("InitDone".to_owned());
                    pods.create(&PostParams::default(), &pod("late", "fake/scripted", &[], json!({})))
                        .await
                        .expect("create");
                }
                watcher::Event::Apply(p) if p.metadata.name.as_deref() == Some("late") => return,
                _ => {}
            }
        }
    })
    .await
    .expect("in time");
    assert_eq!(events, ["Init", "InitApply early", "InitDone"]);
    let streaming = fake.requests().iter().any(|r| r.uri.contains("sendInitialEvents=true") && r.status == 200);
    assert!(streaming, "the watcher used a streaming list");
}

#[tokio::test]
async fn label_and_field_selectors_filter_lists_and_watches() {
    let fake = crate::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let pods = scheduler_pods(&fake, dir.path()).await;
    for (name, labels) in [
        ("a", json!({"tier": "web", "env": "prod"})),
        ("b", json!({"tier": "db", "env": "prod"})),
        ("c", json!({"tier": "web"})),
    ] {
        let mut p = pod(name, "fake/scripted", &[], json!({"fake.updraft.dev/run-ms": "60000"}));
        p.metadata.labels = Some(serde_json::from_value(labels).expect("labels"));
        pods.create(&PostParams::default(), &p).await.expect("create");
    }
    let names = |selector: &'static str| {
        let pods = pods.clone();
        async move {
            let list = pods.list(&ListParams::default().labels(selector)).await.expect("list");
            list.items.into_iter().filter_map(|p| p.metadata.name).collect::<Vec<_>>()
        }
    };
    assert_eq!(names("tier=web").await, ["a", "c"]);
    assert_eq!(names("tier==web,env=prod").await, ["a"]);
    assert_eq!(names("tier!=web").await, ["b"]);
    assert_eq!(names("env!=prod").await, ["c"]);
    assert_eq!(names("tier in (db, cache)").await, ["b"]);
    assert_eq!(names("tier notin (db)").await, ["a", "c"]);
    assert_eq!(names("env").await, ["a", "b"]);
    assert_eq!(names("!env").await, ["c"]);
    let by_field =
        pods.list(&ListParams::default().fields("metadata.name=b,status.phase!=Succeeded")).await.expect("list");
    assert_eq!(by_field.items.len(), 1);
    let bad = pods.list(&ListParams::default().fields("spec.image=x")).await.expect_err("unknown field");
    assert!(
        matches!(bad, kube::Error::Api(s) if s.code == 400 && s.message == "field label not supported: spec.image")
    );

    // Pagination: limit + continue.
    let page = pods.list(&ListParams::default().limit(2)).await.expect("page 1");
    assert_eq!(page.items.len(), 2);
    let token = page.metadata.continue_.clone().expect("a continue token");
    let rest = pods.list(&ListParams::default().limit(2).continue_token(&token)).await.expect("page 2");
    assert_eq!(rest.items.iter().filter_map(|p| p.metadata.name.as_deref()).collect::<Vec<_>>(), ["c"]);
    // Any change, then compaction: the token's version is now older than the window.
    pods.patch("c", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"annotations": {"x": "y"}}})))
        .await
        .expect("patch");
    fake.compact_history();
    let expired = pods.list(&ListParams::default().limit(2).continue_token(&token)).await.expect_err("expired");
    assert!(matches!(expired, kube::Error::Api(s) if s.code == 410 && s.reason == "Expired"));

    // A pod relabelled out of a watch's selector is DELETED for that watcher (without a
    // deletionTimestamp), and ADDED when it comes back.
    let now = pods.list(&ListParams::default()).await.expect("list").metadata.resource_version.expect("rv");
    let stream = pods.watch(&WatchParams::default().labels("tier=web"), &now).await.expect("watch");
    let mut stream = std::pin::pin!(stream);
    pods.patch("a", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"tier": "batch"}}})))
        .await
        .expect("relabel");
    pods.patch("b", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"tier": "web"}}})))
        .await
        .expect("relabel");
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), async {
        while got.len() < 2 {
            match stream.try_next().await.expect("event").expect("open") {
                WatchEvent::Deleted(p) => {
                    assert!(p.metadata.deletion_timestamp.is_none());
                    assert_eq!(p.metadata.labels.as_ref().and_then(|l| l.get("tier")).map(String::as_str), Some("web"));
                    got.push(format!("DELETED {}", p.metadata.name.unwrap_or_default()));
                }
                WatchEvent::Added(p) => got.push(format!("ADDED {}", p.metadata.name.unwrap_or_default())),
                WatchEvent::Modified(p) => got.push(format!("MODIFIED {}", p.metadata.name.unwrap_or_default())),
                _ => {}
            }
        }
    })
    .await
    .expect("in time");
    assert_eq!(got, ["DELETED a", "ADDED b"]);
    assert!(pods.get_opt("a").await.expect("get").is_some(), "relabelling deleted nothing");
}
