//! kubectl (client-go) as a second, independent client: discovery, `get -o json`, server-side
//! printing, `logs`, a watch, and `delete`, as the scheduler's ServiceAccount.

use kube::api::PostParams;
use serde_json::{Value, json};

use crate::{NS, SCHEDULER, kubectl, ok, phase, pod, scheduler_pods, wait_for};

#[tokio::test]
async fn kubectl_gets_pods_reads_logs_watches_and_deletes() {
    let fake = crate::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let pods = scheduler_pods(&fake, dir.path()).await;
    pods.create(
        &PostParams::default(),
        &pod("greeter", "busybox", &["sh", "-c", "echo hello from greeter"], json!({})),
    )
    .await
    .expect("create");
    wait_for(&pods, "greeter", "Succeeded", |p| phase(p) == "Succeeded").await;
    let config = dir.path().join("kubectl.kubeconfig");
    fake.write_kubeconfig(&config, NS, SCHEDULER).expect("kubeconfig");
    let cache = dir.path().join("cache");

    let listed: Value =
        serde_json::from_str(&ok(&kubectl(&config, &cache, &["get", "pods", "-o", "json"]))).expect("json");
    assert_eq!(listed["kind"], "List");
    assert_eq!(listed["items"][0]["metadata"]["name"], "greeter");
    assert_eq!(listed["items"][0]["status"]["phase"], "Succeeded");
    assert_eq!(listed["items"][0]["status"]["containerStatuses"][0]["state"]["terminated"]["reason"], "Completed");

    let table = ok(&kubectl(&config, &cache, &["get", "pods"]));
    let row = table.lines().find(|l| l.starts_with("greeter")).expect("a row for the pod");
    assert!(row.split_whitespace().collect::<Vec<_>>()[..3] == ["greeter", "0/1", "Completed"], "{table}");

    assert_eq!(ok(&kubectl(&config, &cache, &["logs", "greeter"])), "hello from greeter\n");
    let tail = ok(&kubectl(&config, &cache, &["logs", "greeter", "--timestamps", "--tail=1"]));
    assert!(tail.ends_with("Z hello from greeter\n"), "{tail:?}");

    // A watch until its server-side timeout: the initial ADDED, then nothing.
    let watched = ok(&kubectl(
        &config,
        &cache,
        &["get", "pods", "--watch", "--output-watch-events", "-o", "json", "--request-timeout=2s"],
    ));
    let first: Value =
        serde_json::Deserializer::from_str(&watched).into_iter().next().expect("one event").expect("json");
    assert_eq!(
        (first["type"].as_str(), first["object"]["metadata"]["name"].as_str()),
        (Some("ADDED"), Some("greeter"))
    );

    // RBAC applies to kubectl too: the scheduler may not list namespaces.
    let denied = kubectl(&config, &cache, &["get", "namespaces"]);
    assert!(!denied.status.success());
    let stderr = String::from_utf8_lossy(&denied.stderr);
    assert!(stderr.contains("cannot list resource \"namespaces\" in API group \"\" at the cluster scope"), "{stderr}");

    let deleted = ok(&kubectl(&config, &cache, &["delete", "pod", "greeter"]));
    assert_eq!(deleted, "pod \"greeter\" deleted\n");
    assert!(pods.get_opt("greeter").await.expect("get").is_none());
    let missing = kubectl(&config, &cache, &["get", "pod", "greeter"]);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("pods \"greeter\" not found"));
}
