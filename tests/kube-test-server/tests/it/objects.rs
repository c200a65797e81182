//! Secrets, ConfigMaps and Deployments over HTTP: kubectl creates, lists (server-side
//! printing), reads, applies and deletes them as an administrator; the apiserver's 422 for a key
//! that cannot be a file name; kube-rs watches a ConfigMap change; Updraft's own Roles may not
//! read Secrets; the kube-root-ca.crt ConfigMap every namespace has.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Api;
use kube::api::{PostParams, WatchEvent, WatchParams};
use serde_json::{Value, json};

use crate::{NS, SCHEDULER, failed, kubectl, ok};

#[tokio::test]
async fn kubectl_creates_lists_applies_and_deletes_secrets_and_config_maps() {
    let fake = crate::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let admin = dir.path().join("admin.kubeconfig");
    fake.write_admin_kubeconfig(&admin, NS).expect("kubeconfig");
    let cache = dir.path().join("cache");
    let run = |args: &[&str]| kubectl(&admin, &cache, args);

    let created = ok(&run(&[
        "-n",
        NS,
        "create",
        "secret",
        "generic",
        "db",
        "--from-literal=password=p@ss word",
        "--from-literal=user=etl",
    ]));
    assert_eq!(created, "secret/db created\n");
    let table = ok(&run(&["-n", NS, "get", "secrets"]));
    let row: Vec<&str> = table.lines().find(|l| l.starts_with("db ")).expect("a row").split_whitespace().collect();
    assert_eq!(row[..3], ["db", "Opaque", "2"], "{table}");
    assert!(table.starts_with("NAME"), "{table}");
    let password = ok(&run(&["-n", NS, "get", "secret", "db", "-o", "jsonpath={.data.password}"]));
    assert_eq!(password, "cEBzcyB3b3Jk", "base64 of `p@ss word`");
    let again = failed(&run(&["-n", NS, "create", "secret", "generic", "db", "--from-literal=a=b"]));
    assert!(again.contains("secrets \"db\" already exists"), "{again}");

    // `kubectl apply` of a changed Secret: a GET, then a (strategic merge) PATCH.
    let manifest = ok(&run(&[
        "-n",
        NS,
        "create",
        "secret",
        "generic",
        "db",
        "--from-literal=password=new",
        "--dry-run=client",
        "-o",
        "yaml",
    ]));
    let mut apply = Command::new("/usr/bin/kubectl")
        // The server publishes no OpenAPI documents, which kubectl's validation downloads.
        .args(["apply", "--validate=false", "-f", "-", "--cache-dir"])
        .arg(&cache)
        .env("KUBECONFIG", &admin)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl runs");
    apply.stdin.take().expect("stdin").write_all(manifest.as_bytes()).expect("write");
    let applied = apply.wait_with_output().expect("kubectl apply");
    assert_eq!(ok(&applied), "secret/db configured\n");
    let stored = fake.secret(NS, "db").expect("stored");
    assert_eq!(stored["data"]["password"], "bmV3", "{stored}");

    ok(&run(&["-n", NS, "create", "configmap", "app", "--from-literal=answer=42"]));
    let maps = ok(&run(&["-n", NS, "get", "configmaps"]));
    assert!(maps.lines().any(|l| l.split_whitespace().take(2).eq(["app", "1"])), "{maps}");
    // Published in every namespace, as the cluster's root CA publisher does.
    assert!(maps.lines().any(|l| l.starts_with("kube-root-ca.crt ")), "{maps}");
    let ca = ok(&run(&["-n", "default", "get", "cm", "kube-root-ca.crt", "-o", "jsonpath={.data.ca\\.crt}"]));
    assert_eq!(ca, fake.ca_pem());

    assert_eq!(ok(&run(&["-n", NS, "delete", "secret", "db"])), "secret \"db\" deleted\n");
    assert!(fake.secret(NS, "db").is_none());
    let missing = failed(&run(&["-n", NS, "get", "secret", "db"]));
    assert!(missing.contains("secrets \"db\" not found"), "{missing}");

    // Updraft's Roles grant no verb on Secrets: the scheduler cannot read them.
    let scheduler = dir.path().join("scheduler.kubeconfig");
    fake.write_kubeconfig(&scheduler, NS, SCHEDULER).expect("kubeconfig");
    let denied = failed(&kubectl(&scheduler, &cache, &["-n", NS, "get", "secrets"]));
    assert!(
        denied.contains("secrets is forbidden: User \"system:serviceaccount:updraft:updraft-scheduler\" cannot list resource \"secrets\" in API group \"\" in the namespace \"updraft\""),
        "{denied}"
    );
}

#[tokio::test]
async fn invalid_objects_get_the_apiservers_422_and_changes_reach_watchers() {
    let fake = crate::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let admin = dir.path().join("admin.kubeconfig");
    fake.write_admin_kubeconfig(&admin, NS).expect("kubeconfig");
    let kubeconfig = kube::config::Kubeconfig::read_from(&admin).expect("kubeconfig parses");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
        .await
        .expect("config");
    let client = kube::Client::try_from(config).expect("client");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    let bad: Secret = serde_json::from_value(json!({"metadata": {"name": "bad"}, "stringData": {"no/slash": "x"}}))
        .expect("a Secret");
    let error = secrets.create(&PostParams::default(), &bad).await.expect_err("a key with a slash");
    let kube::Error::Api(status) = error else { panic!("an API error: {error:?}") };
    assert_eq!(status.code, 422);
    assert!(
        status.message.starts_with("Secret \"bad\" is invalid: data[no/slash]: Invalid value"),
        "{}",
        status.message
    );
    // stringData is folded into data, never stored.
    let good: Secret = serde_json::from_value(json!({"metadata": {"name": "good"}, "stringData": {"token": "t0k"}}))
        .expect("a Secret");
    let created = secrets.create(&PostParams::default(), &good).await.expect("created");
    assert!(created.string_data.is_none());
    assert_eq!(created.data.expect("data")["token"].0, b"t0k");

    let maps: Api<ConfigMap> = Api::namespaced(client, NS);
    let mut events = maps.watch(&WatchParams::default().labels("app=watched"), "0").await.expect("watch").boxed();
    fake.add_config_map(NS, "w", BTreeMap::from([("k".to_owned(), "1".to_owned())])).expect("stored");
    let labelled: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "watched", "labels": {"app": "watched"}}, "data": {"k": "v"}}),
    )
    .expect("a ConfigMap");
    maps.create(&PostParams::default(), &labelled).await.expect("created");
    let event = tokio::time::timeout(std::time::Duration::from_secs(5), events.next()).await.expect("an event");
    match event {
        Some(Ok(WatchEvent::Added(map))) => assert_eq!(map.metadata.name.as_deref(), Some("watched")),
        other => panic!("expected ADDED watched: {other:?}"),
    }
}

#[tokio::test]
async fn deployments_are_served_under_apps_v1() {
    let fake = crate::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let admin = dir.path().join("admin.kubeconfig");
    fake.write_admin_kubeconfig(&admin, NS).expect("kubeconfig");
    let cache = dir.path().join("cache");
    let run = |args: &[&str]| kubectl(&admin, &cache, args);
    let manifest = crate::deployment_manifest(dir.path(), "web");
    let created = ok(&run(&["apply", "--validate=false", "-f", manifest.to_str().expect("utf-8")]));
    assert_eq!(created, "deployment.apps/web created\n");
    // `kubectl create deployment` sends protobuf, which this server decodes for Secrets and
    // ConfigMaps only: it says so instead of storing something half-read.
    let protobuf = failed(&run(&["-n", NS, "create", "deployment", "other", "--image=busybox"]));
    assert!(protobuf.contains("decodes protobuf only for Secrets and ConfigMaps"), "{protobuf}");
    let stored = fake.deployment(NS, "web").expect("stored");
    assert_eq!(stored["spec"]["selector"]["matchLabels"], json!({"app": "web"}));
    assert_eq!(stored["spec"]["template"]["spec"]["restartPolicy"], "Always", "defaulted");
    assert_eq!(stored["spec"]["replicas"], 1, "defaulted");
    assert_eq!(stored["metadata"]["generation"], 1);
    let table = ok(&run(&["-n", NS, "get", "deploy"]));
    let row: Vec<&str> = table.lines().find(|l| l.starts_with("web ")).expect("a row").split_whitespace().collect();
    assert_eq!(row[..4], ["web", "0/1", "0", "0"], "{table}");
    let listed: Value = serde_json::from_str(&ok(&run(&["get", "deployments", "-A", "-o", "json"]))).expect("json");
    assert_eq!(listed["items"][0]["metadata"]["name"], "web");
    assert_eq!(ok(&run(&["-n", NS, "delete", "deployment", "web"])), "deployment.apps \"web\" deleted\n");

    // RBAC knows API groups: Updraft's Roles (core group only) give nothing on apps.
    let scheduler = dir.path().join("scheduler.kubeconfig");
    fake.write_kubeconfig(&scheduler, NS, SCHEDULER).expect("kubeconfig");
    let denied = failed(&kubectl(&scheduler, &cache, &["-n", NS, "get", "deployments"]));
    assert!(
        denied.contains("deployments.apps is forbidden: User \"system:serviceaccount:updraft:updraft-scheduler\" cannot list resource \"deployments\" in API group \"apps\""),
        "{denied}"
    );
}
