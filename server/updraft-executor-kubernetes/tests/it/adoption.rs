//! A restarted scheduler takes its pods over: adoption by relabelling, and resubmits that find
//! the pod already there (no duplicate pod).

use std::collections::HashMap;

use serde_json::json;
use updraft_executor::{Executor, WorkEvent, WorkOutcome};

use crate::{NS, config, eventually, executor, finished, item, label, pod_name_of, scripted};

#[tokio::test]
async fn another_scheduler_adopts_a_running_pod_and_reports_its_end() {
    let fake = crate::start_fake();
    let dir = tempfile::tempdir().expect("tempdir");
    let overrides = HashMap::from([("long".to_owned(), scripted(json!({"fake.updraft.dev/run-ms": "1500"})))]);
    let a = executor(&fake, dir.path(), config("sched-a"), overrides.clone()).await;
    let running = item(dir.path(), "long", 0);
    let name = pod_name_of(&running);
    a.executor.submit(running.clone());
    eventually("the pod is created", || fake.create_count(NS, &name) == 1).await;
    drop(a);

    let mut b = executor(&fake, dir.path(), config("sched-b"), overrides).await;
    let never_launched = item(dir.path(), "other", 1);
    let report = b.executor.adopt(vec![running.clone(), never_launched.clone()]).await.expect("adopt");
    assert_eq!(report.adopted, std::slice::from_ref(&running.key));
    assert_eq!(report.missing.iter().map(|i| i.key.clone()).collect::<Vec<_>>(), [never_launched.key]);
    assert_eq!(label(&fake, &name, "updraft.dev/scheduler-id").as_deref(), Some("sched-b"));
    let (started, outcome) = finished(&mut b.events, &running.key).await;
    assert!(started);
    assert_eq!(outcome, WorkOutcome::Success);
    assert_eq!(fake.create_count(NS, &name), 1);
    eventually("the adopted pod is deleted", || fake.pod(NS, &name).is_none()).await;
}

#[tokio::test]
async fn resubmitting_a_try_whose_pod_exists_creates_no_second_pod() {
    let fake = crate::start_fake();
    let dir = tempfile::tempdir().expect("tempdir");
    let overrides = HashMap::from([("long".to_owned(), scripted(json!({"fake.updraft.dev/run-ms": "1000"})))]);
    let a = executor(&fake, dir.path(), config("sched-a"), overrides.clone()).await;
    let try1 = item(dir.path(), "long", 0);
    let name = pod_name_of(&try1);
    // Twice on the same executor: the second submit is ignored while the try is in flight.
    a.executor.submit(try1.clone());
    a.executor.submit(try1.clone());
    eventually("the pod is created", || fake.create_count(NS, &name) == 1).await;
    drop(a);
    // A restarted scheduler (same id) that submits again: 409, the pod is adopted.
    let mut b = executor(&fake, dir.path(), config("sched-a"), overrides).await;
    b.executor.submit(try1.clone());
    assert_eq!(finished(&mut b.events, &try1.key).await.1, WorkOutcome::Success);
    assert_eq!(fake.create_count(NS, &name), 1);
    let posts: Vec<u16> = fake.requests().into_iter().filter(|r| r.method == "POST").map(|r| r.status).collect();
    assert_eq!(posts, [201, 409]);
    // Nothing else is reported for that try.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    while let Ok(event) = b.events.try_recv() {
        assert!(!matches!(event, WorkEvent::Finished { .. }), "a second end: {event:?}");
    }
}
