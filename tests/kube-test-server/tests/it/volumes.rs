//! Volumes in the simulated kubelet (`FakeKubeConfig::mount_volumes`): ConfigMap, Secret,
//! claim and emptyDir volumes where the pod spec mounts them, read-only mounts and root, the
//! ServiceAccount token an in-cluster client (kubectl) uses, a missing ConfigMap holding the pod
//! in `FailedMount`, mounts the runtime cannot make, and a sandboxed process still stopped with
//! its pod.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DeleteParams, LogParams, PostParams};
use serde_json::{Value, json};
use updraft_fake_kube::{FakeKube, FakeKubeConfig};

use crate::{NS, base_state, phase, scheduler_pods, wait_for};

fn start() -> FakeKube {
    FakeKube::start(FakeKubeConfig { mount_volumes: true, ..FakeKubeConfig::default() }).expect("the server starts")
}

fn pod_from(value: Value) -> Pod {
    serde_json::from_value(value).expect("a valid pod")
}

async fn log(pods: &Api<Pod>, name: &str, container: &str) -> String {
    pods.logs(name, &LogParams { container: Some(container.into()), ..LogParams::default() }).await.expect("log")
}

/// Waits for the pod to end and returns its phase.
async fn ended(pods: &Api<Pod>, name: &str) -> String {
    let done = wait_for(pods, name, "Succeeded or Failed", |p| matches!(phase(p), "Succeeded" | "Failed")).await;
    phase(&done).to_owned()
}

#[tokio::test]
async fn containers_see_their_volumes_where_the_spec_mounts_them_and_nothing_else_is_writable() {
    let fake = start();
    let dir = tempfile::tempdir().expect("tempdir");
    let pods = scheduler_pods(&fake, dir.path()).await;
    fake.add_config_map(
        NS,
        "app-config",
        BTreeMap::from([
            ("app.toml".to_owned(), "answer = 42\n".to_owned()),
            ("extra".to_owned(), "more\n".to_owned()),
        ]),
    )
    .expect("stored");
    fake.add_secret(NS, "app-secret", BTreeMap::from([("password".to_owned(), "hunter2".to_owned())])).expect("stored");
    let claim = fake.claim_dir(NS, "app-data").expect("claim folder");
    std::fs::write(claim.join("hello.txt"), "from the claim\n").expect("write");

    let script = r#"
        cat /etc/app/app.toml
        cat /etc/app/items/sub/extra.txt; stat -c 'mode %a' /etc/app/items/sub/extra.txt
        cat /etc/app/secret/password; echo
        cat /opt/app/data/hello.txt
        echo written > /opt/app/data/out.txt && echo "claim writable"
        (echo x > /opt/app/data-ro/x) 2>/dev/null || echo "read-only claim refused"
        (echo x > /etc/app/secret/x) 2>/dev/null || echo "secret refused"
        touch /etc/new-file 2>/dev/null || echo "root refused"
        touch /tmp/new-file 2>/dev/null || echo "tmp refused"
        cat /opt/scratch/from-init
        cat /var/run/secrets/kubernetes.io/serviceaccount/namespace; echo
        test -s /var/run/secrets/kubernetes.io/serviceaccount/token && echo "token present"
        grep -q "BEGIN CERTIFICATE" /var/run/secrets/kubernetes.io/serviceaccount/ca.crt && echo "ca present"
    "#;
    let spec = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "volumes"},
        "spec": {
            "restartPolicy": "Never",
            "serviceAccountName": "updraft-worker",
            "initContainers": [{
                "name": "init", "image": "busybox",
                "command": ["sh", "-c", "echo 'left by init' > /opt/scratch/from-init"],
                "volumeMounts": [{"name": "scratch", "mountPath": "/opt/scratch"}],
            }],
            "containers": [{
                "name": "base", "image": "busybox", "command": ["sh", "-c", script],
                "securityContext": {"readOnlyRootFilesystem": true},
                "volumeMounts": [
                    {"name": "config", "mountPath": "/etc/app/app.toml", "subPath": "app.toml", "readOnly": true},
                    {"name": "items", "mountPath": "/etc/app/items"},
                    {"name": "secret", "mountPath": "/etc/app/secret"},
                    {"name": "data", "mountPath": "/opt/app/data"},
                    {"name": "data-ro", "mountPath": "/opt/app/data-ro"},
                    {"name": "scratch", "mountPath": "/opt/scratch"},
                ],
            }],
            "volumes": [
                {"name": "config", "configMap": {"name": "app-config"}},
                {"name": "items", "configMap": {"name": "app-config", "items": [{"key": "extra", "path": "sub/extra.txt", "mode": 256}]}},
                {"name": "secret", "secret": {"secretName": "app-secret"}},
                {"name": "data", "persistentVolumeClaim": {"claimName": "app-data"}},
                {"name": "data-ro", "persistentVolumeClaim": {"claimName": "app-data", "readOnly": true}},
                {"name": "scratch", "emptyDir": {}},
            ],
        },
    });
    let created = pods.create(&PostParams::default(), &pod_from(spec)).await.expect("create");
    // The admission plugin added the token volume and its mount to every container.
    let spec = created.spec.expect("spec");
    let token_volume =
        spec.volumes.iter().flatten().find(|v| v.name.starts_with("kube-api-access-")).expect("token volume");
    assert!(token_volume.projected.is_some(), "{token_volume:?}");
    for container in spec.init_containers.iter().flatten().chain(&spec.containers) {
        let mounts = container.volume_mounts.iter().flatten();
        assert!(
            mounts
                .clone()
                .any(|m| m.mount_path == "/var/run/secrets/kubernetes.io/serviceaccount" && m.read_only == Some(true)),
            "{}: {:?}",
            container.name,
            container.volume_mounts
        );
    }
    let status = ended(&pods, "volumes").await;
    let out = log(&pods, "volumes", "base").await;
    assert_eq!(status, "Succeeded", "{out}");
    let expected = "answer = 42\nmore\nmode 400\nhunter2\nfrom the claim\nclaim writable\nread-only claim refused\n\
                    secret refused\nroot refused\ntmp refused\nleft by init\nupdraft\ntoken present\nca present\n";
    assert_eq!(out, expected);
    assert_eq!(std::fs::read_to_string(claim.join("out.txt")).expect("the pod wrote to the claim"), "written\n");
    for host in ["/etc/app", "/opt/app", "/opt/scratch", "/opt/shared", "/etc/new-file", "/tmp/new-file"] {
        assert!(!Path::new(host).exists(), "{host} was made on the host");
    }

    // A second pod mounting the same claim sees what the first wrote.
    let reader = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "reader"},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": false,
            "containers": [{"name": "base", "image": "busybox",
                "command": ["sh", "-c", "cat /opt/shared/out.txt; ls /var/run/secrets/kubernetes.io 2>/dev/null || echo 'no token'"],
                "volumeMounts": [{"name": "data", "mountPath": "/opt/shared", "readOnly": true}]}],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "app-data"}}],
        },
    });
    let created = pods.create(&PostParams::default(), &pod_from(reader)).await.expect("create");
    let no_token =
        created.spec.expect("spec").volumes.into_iter().flatten().all(|v| !v.name.starts_with("kube-api-access-"));
    assert!(no_token, "automountServiceAccountToken: false mounts no token");
    assert_eq!(ended(&pods, "reader").await, "Succeeded");
    assert_eq!(log(&pods, "reader", "base").await, "written\nno token\n");
}

#[tokio::test]
async fn the_mounted_token_takes_an_in_cluster_client_to_the_server_as_its_service_account() {
    let fake = start();
    let dir = tempfile::tempdir().expect("tempdir");
    let pods = scheduler_pods(&fake, dir.path()).await;
    // kubectl with no kubeconfig uses the in-cluster configuration: KUBERNETES_SERVICE_HOST and
    // PORT, the token and the CA under /var/run/secrets/kubernetes.io/serviceaccount.
    let script = "kubectl get pods -o name; kubectl get namespaces 2>&1 | grep -o 'forbidden: User \"[^\"]*\"'";
    let spec = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "in-cluster"},
        "spec": {
            "restartPolicy": "Never",
            "serviceAccountName": "updraft-scheduler",
            "containers": [{"name": "base", "image": "debian", "command": ["sh", "-c", script]}],
        },
    });
    pods.create(&PostParams::default(), &pod_from(spec)).await.expect("create");
    let status = ended(&pods, "in-cluster").await;
    let out = log(&pods, "in-cluster", "base").await;
    assert_eq!(status, "Succeeded", "{out}");
    assert_eq!(out, "pod/in-cluster\nforbidden: User \"system:serviceaccount:updraft:updraft-scheduler\"\n");
    let user = fake
        .requests()
        .iter()
        .rev()
        .find(|r| r.uri.starts_with("/api/v1/namespaces/updraft/pods"))
        .map(|r| r.user.clone());
    assert_eq!(user.flatten().as_deref(), Some("system:serviceaccount:updraft:updraft-scheduler"));
}

#[tokio::test]
async fn a_missing_config_map_holds_the_pod_in_failed_mount_until_it_exists() {
    let fake = start();
    let dir = tempfile::tempdir().expect("tempdir");
    let pods = scheduler_pods(&fake, dir.path()).await;
    let spec = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "late"},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "base", "image": "busybox", "command": ["cat", "/etc/late/key"],
                "volumeMounts": [{"name": "config", "mountPath": "/etc/late"}]}],
            "volumes": [{"name": "config", "configMap": {"name": "late-config"}}],
        },
    });
    pods.create(&PostParams::default(), &pod_from(spec)).await.expect("create");
    let message = "MountVolume.SetUp failed for volume \"config\" : configmap \"late-config\" not found";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !fake.pod_events(NS, "late").iter().any(|e| e["reason"] == "FailedMount" && e["message"] == message) {
        assert!(tokio::time::Instant::now() < deadline, "no FailedMount event: {:?}", fake.pod_events(NS, "late"));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let waiting = pods.get("late").await.expect("get");
    assert_eq!(phase(&waiting), "Pending");
    assert_eq!(base_state(&waiting).waiting.and_then(|w| w.reason).as_deref(), Some("ContainerCreating"));
    fake.add_config_map(NS, "late-config", BTreeMap::from([("key".to_owned(), "at last".to_owned())])).expect("stored");
    assert_eq!(ended(&pods, "late").await, "Succeeded");
    assert_eq!(log(&pods, "late", "base").await, "at last");
}

#[tokio::test]
async fn mounts_the_runtime_cannot_make_and_unknown_programs_are_start_errors() {
    let fake = start();
    let dir = tempfile::tempdir().expect("tempdir");
    let pods = scheduler_pods(&fake, dir.path()).await;
    let spec = |name: &str, command: &str, mount_path: &str| {
        pod_from(json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "base", "image": "busybox", "command": [command],
                    "volumeMounts": [{"name": "scratch", "mountPath": mount_path}]}],
                "volumes": [{"name": "scratch", "emptyDir": {}}],
            },
        }))
    };
    pods.create(&PostParams::default(), &spec("onto-file", "true", "/etc/hostname")).await.expect("create");
    pods.create(&PostParams::default(), &spec("no-program", "no-such-program", "/opt/scratch")).await.expect("create");
    assert_eq!(ended(&pods, "onto-file").await, "Failed");
    assert_eq!(ended(&pods, "no-program").await, "Failed");
    let onto_file = base_state(&pods.get("onto-file").await.expect("get")).terminated.expect("terminated");
    assert_eq!((onto_file.exit_code, onto_file.reason.as_deref()), (128, Some("StartError")));
    assert!(
        onto_file.message.as_deref().unwrap_or("").contains("cannot mount a directory onto a file: \"/etc/hostname\""),
        "{onto_file:?}"
    );
    let no_program = base_state(&pods.get("no-program").await.expect("get")).terminated.expect("terminated");
    assert_eq!((no_program.exit_code, no_program.reason.as_deref()), (128, Some("StartError")));
    assert!(
        no_program
            .message
            .as_deref()
            .unwrap_or("")
            .contains("exec: \"no-such-program\": executable file not found in $PATH"),
        "{no_program:?}"
    );
}

#[tokio::test]
async fn a_sandboxed_process_gets_sigterm_when_its_pod_is_deleted() {
    let fake = start();
    let dir = tempfile::tempdir().expect("tempdir");
    let pods = scheduler_pods(&fake, dir.path()).await;
    let script = "trap 'echo got TERM; exit 0' TERM; echo up; while true; do sleep 0.05; done";
    let spec = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "sleepy"},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "base", "image": "alpine", "command": ["sh", "-c", script],
                "volumeMounts": [{"name": "scratch", "mountPath": "/opt/scratch"}]}],
            "volumes": [{"name": "scratch", "emptyDir": {}}],
        },
    });
    pods.create(&PostParams::default(), &pod_from(spec)).await.expect("create");
    wait_for(&pods, "sleepy", "Running", |p| phase(p) == "Running").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while log(&pods, "sleepy", "base").await != "up\n" {
        assert!(tokio::time::Instant::now() < deadline, "the process never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut follow =
        pods.log_stream("sleepy", &LogParams { follow: true, ..LogParams::default() }).await.expect("log stream");
    pods.delete("sleepy", &DeleteParams { grace_period_seconds: Some(5), ..DeleteParams::default() })
        .await
        .expect("delete");
    let mut text = String::new();
    tokio::time::timeout(Duration::from_secs(10), futures::AsyncReadExt::read_to_string(&mut follow, &mut text))
        .await
        .expect("the log ends when the process exits")
        .expect("log");
    // (The shell may also say `Terminated` for its `sleep`, killed with the group.)
    assert!(text.starts_with("up\n") && text.contains("got TERM\n"), "{text:?}");
}

/// The last line of a container's log so far (none while it waits to start).
async fn last_line(pods: &Api<Pod>, name: &str) -> String {
    let params = LogParams { container: Some("base".into()), ..LogParams::default() };
    let text = pods.logs(name, &params).await.unwrap_or_default();
    text.lines().last().unwrap_or("").to_owned()
}

/// Polls the log until its last line is `want`.
async fn wait_for_line(pods: &Api<Pod>, name: &str, want: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let line = last_line(pods, name).await;
        if line == want {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "the pod never printed {want:?}; last line {line:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_secret_created_or_changed_after_the_pod_started_reaches_its_files_atomically_but_not_a_sub_path() {
    let fake = FakeKube::start(FakeKubeConfig {
        mount_volumes: true,
        volume_sync_period: Duration::from_millis(200),
        ..FakeKubeConfig::default()
    })
    .expect("the server starts");
    let dir = tempfile::tempdir().expect("tempdir");
    let pods = scheduler_pods(&fake, dir.path()).await;
    fake.add_config_map(NS, "settings", BTreeMap::from([("mode".to_owned(), "v1".to_owned())])).expect("stored");
    // Each line: the optional Secret's key (or "none"), the ConfigMap key through the volume
    // and through a subPath, and whether `..data` is a link.
    let script = r#"
        while true; do
          echo "$(cat /etc/conn/warehouse 2>/dev/null || echo none) $(cat /etc/settings/mode) $(cat /etc/mode) $(test -L /etc/settings/..data && echo linked)"
          sleep 0.1
        done
    "#;
    let spec = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "reader"},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "base", "image": "busybox", "command": ["sh", "-c", script],
                "volumeMounts": [
                    {"name": "conn", "mountPath": "/etc/conn", "readOnly": true},
                    {"name": "settings", "mountPath": "/etc/settings"},
                    {"name": "settings", "mountPath": "/etc/mode", "subPath": "mode"},
                ]}],
            "volumes": [
                {"name": "conn", "secret": {"secretName": "conn", "optional": true}},
                {"name": "settings", "configMap": {"name": "settings"}},
            ],
        },
    });
    pods.create(&PostParams::default(), &pod_from(spec)).await.expect("create");
    wait_for_line(&pods, "reader", "none v1 v1 linked").await;
    fake.add_secret(NS, "conn", BTreeMap::from([("warehouse".to_owned(), "one".to_owned())])).expect("stored");
    wait_for_line(&pods, "reader", "one v1 v1 linked").await;
    fake.add_secret(NS, "conn", BTreeMap::from([("warehouse".to_owned(), "two".to_owned())])).expect("stored");
    fake.add_config_map(NS, "settings", BTreeMap::from([("mode".to_owned(), "v2".to_owned())])).expect("stored");
    // A subPath mount keeps the file it was made from, as in a cluster.
    wait_for_line(&pods, "reader", "two v2 v1 linked").await;
    // Each line saw one version of the files or the next, never a mix or a missing file.
    let text = log(&pods, "reader", "base").await;
    let allowed = ["none v1 v1 linked", "one v1 v1 linked", "two v1 v1 linked", "one v2 v1 linked", "two v2 v1 linked"];
    for line in text.lines() {
        assert!(allowed.contains(&line), "an inconsistent view: {line:?}");
    }
    // An optional Secret that goes away leaves an empty folder; a ConfigMap that goes away
    // (not optional) leaves the files as they were, with a FailedMount event.
    let admin = dir.path().join("admin.kubeconfig");
    fake.write_admin_kubeconfig(&admin, NS).expect("kubeconfig");
    let cache = dir.path().join("cache");
    crate::ok(&crate::kubectl(&admin, &cache, &["-n", NS, "delete", "secret", "conn"]));
    crate::ok(&crate::kubectl(&admin, &cache, &["-n", NS, "delete", "configmap", "settings"]));
    wait_for_line(&pods, "reader", "none v2 v1 linked").await;
    let message = "MountVolume.SetUp failed for volume \"settings\" : configmap \"settings\" not found";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !fake.pod_events(NS, "reader").iter().any(|e| e["reason"] == "FailedMount" && e["message"] == message) {
        assert!(tokio::time::Instant::now() < deadline, "no FailedMount event: {:?}", fake.pod_events(NS, "reader"));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    pods.delete("reader", &DeleteParams { grace_period_seconds: Some(0), ..DeleteParams::default() })
        .await
        .expect("delete");
}
