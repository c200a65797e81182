//! Failures a client must handle, with real status codes and `Status` bodies: 409, 422, 404,
//! 403 from RBAC (the manifests of `k8s/base`) and from quota, 401, 429 with Retry-After and
//! other injected faults, and an unschedulable node.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Namespace, Pod};
use kube::Api;
use kube::api::{ListParams, PostParams, WatchParams};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use updraft_fake_kube::{FakeKube, Fault, FaultKind};

use crate::{NS, SCHEDULER, client_as, phase, pod, scheduler_pods, wait_for};

fn api_error(error: kube::Error) -> Box<kube::core::Status> {
    match error {
        kube::Error::Api(status) => status,
        other => panic!("not an API error: {other}"),
    }
}

/// One raw HTTP/1.1 request to the plain-HTTP listener: (status, headers, body).
async fn raw(fake: &FakeKube, method: &str, path: &str, token: &str, body: &str) -> (u16, String, String) {
    let address = fake.http_url().trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(address).await.expect("connect");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("a response");
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status code");
    (status, head.to_owned(), body.to_owned())
}

#[tokio::test]
async fn conflicts_invalid_specs_and_missing_objects() {
    let fake = crate::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let pods = scheduler_pods(&fake, dir.path()).await;
    let p = pod("dup", "fake/scripted", &[], json!({"fake.updraft.dev/run-ms": "60000"}));
    pods.create(&PostParams::default(), &p).await.expect("create");
    let conflict = api_error(pods.create(&PostParams::default(), &p).await.expect_err("409"));
    assert_eq!((conflict.code, conflict.reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(conflict.message, "pods \"dup\" already exists");
    assert_eq!(fake.create_count(NS, "dup"), 1);

    let invalid = api_error(
        pods.create(&PostParams::default(), &pod("Bad_Name", "busybox", &[], json!({}))).await.expect_err("422"),
    );
    assert_eq!((invalid.code, invalid.reason.as_str()), (422, "Invalid"));
    assert!(
        invalid.message.starts_with(
            "Pod \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"
        ),
        "{}",
        invalid.message
    );
    let causes = invalid.details.map(|d| d.causes).unwrap_or_default();
    assert_eq!(causes.first().map(|c| c.field.as_str()), Some("metadata.name"));

    let no_containers: Pod =
        serde_json::from_value(json!({"metadata": {"name": "empty"}, "spec": {"containers": []}})).expect("pod");
    let invalid = api_error(pods.create(&PostParams::default(), &no_containers).await.expect_err("422"));
    assert_eq!(invalid.message, "Pod \"empty\" is invalid: spec.containers: Required value");
    let two: Pod = serde_json::from_value(
        json!({"metadata": {"name": "two", "labels": {"bad key": "x"}}, "spec": {"containers": [
        {"name": "base", "image": "busybox"}, {"name": "base", "image": ""}]}}),
    )
    .expect("pod");
    let invalid = api_error(pods.create(&PostParams::default(), &two).await.expect_err("422"));
    let fields: Vec<String> =
        invalid.details.map(|d| d.causes).unwrap_or_default().into_iter().map(|c| c.field).collect();
    assert_eq!(fields, ["metadata.labels", "spec.containers[1].name", "spec.containers[1].image"]);

    let missing = api_error(pods.get("nope").await.expect_err("404"));
    assert_eq!(
        (missing.code, missing.reason.as_str(), missing.message.as_str()),
        (404, "NotFound", "pods \"nope\" not found")
    );
    let details = missing.details.expect("details");
    assert_eq!((details.name.as_str(), details.kind.as_str()), ("nope", "pods"));

    // A namespace that does not exist; the admin creates it, then the create works.
    let admin = kube::Client::try_from(kube_config(&fake, dir.path()).await).expect("client");
    let elsewhere: Api<Pod> = Api::namespaced(admin.clone(), "elsewhere");
    let missing_ns = api_error(
        elsewhere.create(&PostParams::default(), &pod("x", "busybox", &[], json!({}))).await.expect_err("404"),
    );
    assert_eq!(missing_ns.message, "namespaces \"elsewhere\" not found");
    let admin_client = admin.clone();
    let namespaces: Api<Namespace> = Api::all(admin);
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "elsewhere"}})).expect("namespace");
    namespaces.create(&PostParams::default(), &ns).await.expect("create namespace");
    elsewhere.create(&PostParams::default(), &pod("x", "busybox", &["true"], json!({}))).await.expect("create");

    // Optimistic concurrency on update (PUT is verb `update`, which only the admin has).
    let mut current = pods.get("dup").await.expect("get");
    current.metadata.labels.get_or_insert_default().insert("v".into(), "1".into());
    let denied = api_error(pods.replace("dup", &PostParams::default(), &current).await.expect_err("403"));
    assert!(denied.message.contains("cannot update resource \"pods\""), "{}", denied.message);
    let admin_pods: Api<Pod> = Api::namespaced(admin_client, NS);
    admin_pods.replace("dup", &PostParams::default(), &current).await.expect("replace with the current version");
    current.metadata.labels.get_or_insert_default().insert("v".into(), "2".into());
    let stale = api_error(admin_pods.replace("dup", &PostParams::default(), &current).await.expect_err("409"));
    assert_eq!((stale.code, stale.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        stale.message,
        "Operation cannot be fulfilled on pods \"dup\": the object has been modified; please apply your changes to the latest version and try again"
    );

    // The wire format of a Status body.
    let (status, _, body) =
        raw(&fake, "GET", &format!("/api/v1/namespaces/{NS}/pods/nope"), &fake.admin_token(), "").await;
    assert_eq!(status, 404);
    let body: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        body,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": "pods \"nope\" not found", "reason": "NotFound",
               "details": {"name": "nope", "kind": "pods"}, "code": 404})
    );
}

/// An admin kubeconfig as a kube config.
async fn kube_config(fake: &FakeKube, dir: &std::path::Path) -> kube::Config {
    let path = dir.join("admin.kubeconfig");
    fake.write_admin_kubeconfig(&path, NS).expect("written");
    let kubeconfig = kube::config::Kubeconfig::read_from(&path).expect("parses");
    kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.expect("config")
}

#[tokio::test]
async fn rbac_from_the_manifests_decides_and_a_missing_verb_is_forbidden() {
    let fake = crate::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let api_server: Api<Pod> = Api::namespaced(client_as(&fake, dir.path(), NS, "updraft-api-server").await, NS);
    api_server.list(&ListParams::default()).await.expect("the API server may list pods");
    let forbidden = api_error(
        api_server.create(&PostParams::default(), &pod("x", "busybox", &[], json!({}))).await.expect_err("403"),
    );
    assert_eq!((forbidden.code, forbidden.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        forbidden.message,
        "pods is forbidden: User \"system:serviceaccount:updraft:updraft-api-server\" cannot create resource \"pods\" in API group \"\" in the namespace \"updraft\""
    );

    let worker = client_as(&fake, dir.path(), NS, "updraft-worker").await;
    let worker_events: Api<Event> = Api::namespaced(worker.clone(), NS);
    worker_events.list(&ListParams::default()).await.expect("the worker may list events");
    let no_watch = worker_events.watch(&WatchParams::default(), "0").await.err().map(api_error).expect("403 on watch");
    assert!(no_watch.message.contains("cannot watch resource \"events\""), "{}", no_watch.message);

    let scheduler = client_as(&fake, dir.path(), NS, SCHEDULER).await;
    let other_ns: Api<Pod> = Api::namespaced(scheduler.clone(), "default");
    let wrong_ns = api_error(other_ns.list(&ListParams::default()).await.expect_err("403 elsewhere"));
    assert!(wrong_ns.message.ends_with("in the namespace \"default\""), "{}", wrong_ns.message);
    let namespaces: Api<Namespace> = Api::all(scheduler.clone());
    let cluster = api_error(namespaces.list(&ListParams::default()).await.expect_err("403 cluster-wide"));
    assert!(cluster.message.ends_with("cannot list resource \"namespaces\" in API group \"\" at the cluster scope"));

    // A Role without `create` on pods: the scheduler's create fails as it would in a cluster.
    let pods: Api<Pod> = Api::namespaced(scheduler, NS);
    pods.create(&PostParams::default(), &pod("allowed", "fake/scripted", &[], json!({}))).await.expect("create");
    fake.apply_rbac_yaml(
        "apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: updraft-scheduler, namespace: updraft}
rules:
  - apiGroups: ['']
    resources: [pods]
    verbs: [get, list, watch, delete, patch]
",
    )
    .expect("role applied");
    let denied = api_error(
        pods.create(&PostParams::default(), &pod("denied", "fake/scripted", &[], json!({}))).await.expect_err("403"),
    );
    assert_eq!(denied.code, 403);
    let log = api_error(pods.logs("allowed", &Default::default()).await.expect_err("no pods/log any more"));
    assert_eq!(
        log.message,
        "pods \"allowed\" is forbidden: User \"system:serviceaccount:updraft:updraft-scheduler\" cannot get resource \"pods/log\" in API group \"\" in the namespace \"updraft\""
    );

    // An unknown token is not a user at all.
    let nobody: Api<Pod> = Api::namespaced(client_as(&fake, dir.path(), NS, "nobody").await, NS);
    let unauthorized = api_error(nobody.list(&ListParams::default()).await.expect_err("401"));
    assert_eq!((unauthorized.code, unauthorized.reason.as_str()), (401, "Unauthorized"));
}

#[tokio::test]
async fn quota_throttling_and_injected_faults() {
    let fake = crate::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let pods = scheduler_pods(&fake, dir.path()).await;
    let long = json!({"fake.updraft.dev/run-ms": "60000"});

    fake.set_pod_quota(Some(1));
    pods.create(&PostParams::default(), &pod("one", "fake/scripted", &[], long.clone())).await.expect("create");
    let quota = api_error(
        pods.create(&PostParams::default(), &pod("two", "fake/scripted", &[], long.clone())).await.expect_err("403"),
    );
    assert_eq!(quota.code, 403);
    assert_eq!(
        quota.message,
        "pods \"two\" is forbidden: exceeded quota: pod-quota, requested: pods=1, used: pods=1, limited: pods=1"
    );
    fake.set_pod_quota(None);

    let path = format!("/api/v1/namespaces/{NS}/pods");
    fake.inject_fault(Fault::new(Some("POST"), &path, FaultKind::TooManyRequests { retry_after_seconds: 7 }));
    let token = fake.token(NS, SCHEDULER);
    let body = serde_json::to_string(&pod("three", "fake/scripted", &[], json!({}))).expect("json");
    let (status, head, reply) = raw(&fake, "POST", &path, &token, &body).await;
    assert_eq!(status, 429);
    assert!(head.lines().any(|l| l.eq_ignore_ascii_case("retry-after: 7")), "{head}");
    let reply: Value = serde_json::from_str(&reply).expect("json");
    assert_eq!(reply["reason"], "TooManyRequests");
    assert_eq!(reply["details"]["retryAfterSeconds"], 7);
    // The fault was used up: the same request now works.
    let (status, _, _) = raw(&fake, "POST", &path, &token, &body).await;
    assert_eq!(status, 201);

    // kube-rs retries 429, 503 and 504 by itself (`Config::default_retry`): two 503s are
    // invisible to the caller, but the server saw them.
    fake.inject_fault(Fault::new(None, &path, FaultKind::ServiceUnavailable { retry_after_seconds: None }).times(2));
    pods.list(&ListParams::default()).await.expect("kube-rs retried through the 503s");
    let statuses: Vec<u16> =
        fake.requests().iter().filter(|r| r.method == "GET" && r.uri.starts_with(&path)).map(|r| r.status).collect();
    assert_eq!(statuses[statuses.len() - 3..], [503, 503, 200]);
    fake.inject_fault(Fault::new(Some("GET"), &path, FaultKind::InternalError));
    assert_eq!(api_error(pods.list(&ListParams::default()).await.expect_err("500")).code, 500);

    // A dropped connection: the create did not happen…
    fake.inject_fault(Fault::new(Some("POST"), &path, FaultKind::DropConnection));
    let dropped =
        pods.create(&PostParams::default(), &pod("four", "fake/scripted", &[], json!({}))).await.expect_err("dropped");
    assert!(!matches!(dropped, kube::Error::Api(_)), "{dropped}");
    assert_eq!(fake.create_count(NS, "four"), 0);
    // …or it did, and the client cannot tell: a retry gets 409.
    fake.inject_fault(Fault::new(Some("POST"), &path, FaultKind::DropConnectionAfterProcessing));
    pods.create(&PostParams::default(), &pod("five", "fake/scripted", &[], json!({}))).await.expect_err("dropped");
    assert_eq!(fake.create_count(NS, "five"), 1);
    let retry = api_error(
        pods.create(&PostParams::default(), &pod("five", "fake/scripted", &[], json!({}))).await.expect_err("409"),
    );
    assert_eq!(retry.reason, "AlreadyExists");
}

#[tokio::test]
async fn a_cordoned_node_leaves_pods_pending_until_it_is_uncordoned() {
    let fake = crate::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let pods = scheduler_pods(&fake, dir.path()).await;
    fake.set_unschedulable(true);
    pods.create(&PostParams::default(), &pod("waits", "fake/scripted", &[], json!({}))).await.expect("create");
    let pending = wait_for(&pods, "waits", "unschedulable", |p| {
        p.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|c| {
            c.iter().any(|c| {
                c.type_ == "PodScheduled" && c.status == "False" && c.reason.as_deref() == Some("Unschedulable")
            })
        })
    })
    .await;
    assert_eq!(phase(&pending), "Pending");
    assert!(pending.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_none());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(crate::event_reasons(&fake, "waits").contains(&"FailedScheduling".to_owned()));
    fake.set_unschedulable(false);
    let done = wait_for(&pods, "waits", "Succeeded", |p| phase(p) == "Succeeded").await;
    assert_eq!(done.spec.and_then(|s| s.node_name).as_deref(), Some("fake-node-1"));
}
