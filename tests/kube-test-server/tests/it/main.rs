//! Integration tests of the Kubernetes API test server, with kube-rs and kubectl as clients
//! (one test binary, as elsewhere in the workspace).

mod errors;
mod exec;
mod irsa;
mod kubectl;
mod objects;
mod pods;
mod scripted;
mod volumes;
mod watch;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use serde_json::{Value, json};
use updraft_fake_kube::{FakeKube, FakeKubeConfig};

pub(crate) const NS: &str = "updraft";
pub(crate) const SCHEDULER: &str = "updraft-scheduler";

pub(crate) fn start() -> FakeKube {
    FakeKube::start(FakeKubeConfig::default()).expect("the fake API server starts")
}

/// A kube-rs client that reads a kubeconfig written by the server, as a deployment would.
pub(crate) async fn client_as(fake: &FakeKube, dir: &Path, namespace: &str, service_account: &str) -> kube::Client {
    let path = dir.join(format!("{service_account}.kubeconfig"));
    fake.write_kubeconfig(&path, namespace, service_account).expect("kubeconfig written");
    let kubeconfig = kube::config::Kubeconfig::read_from(&path).expect("kubeconfig parses");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
        .await
        .expect("kube config");
    kube::Client::try_from(config).expect("kube client")
}

/// Runs kubectl with a kubeconfig and a discovery cache of the test's.
pub(crate) fn kubectl(kubeconfig: &Path, cache: &Path, args: &[&str]) -> Output {
    Command::new("/usr/bin/kubectl")
        .arg("--cache-dir")
        .arg(cache)
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .output()
        .expect("kubectl is installed at /usr/bin/kubectl")
}

/// kubectl's stdout, after asserting it succeeded.
pub(crate) fn ok(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "kubectl failed: {}\n{stdout}", String::from_utf8_lossy(&output.stderr));
    stdout
}

/// A Deployment `name` of busybox running `sleep 300`, as a manifest for `kubectl apply -f`.
pub(crate) fn deployment_manifest(dir: &Path, name: &str) -> std::path::PathBuf {
    let manifest = serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": "busybox", "command": ["sleep", "300"]}]},
            },
        },
    });
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, manifest.to_string()).expect("manifest");
    path
}

/// kubectl's stderr, after asserting it failed.
pub(crate) fn failed(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "kubectl should fail: {}", String::from_utf8_lossy(&output.stdout));
    stderr
}

/// The scheduler's pods API in namespace `updraft`.
pub(crate) async fn scheduler_pods(fake: &FakeKube, dir: &Path) -> Api<Pod> {
    Api::namespaced(client_as(fake, dir, NS, SCHEDULER).await, NS)
}

/// A pod with one container `base`, `restartPolicy: Never`.
pub(crate) fn pod(name: &str, image: &str, command: &[&str], annotations: Value) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "test"}, "annotations": annotations},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "base", "image": image, "command": command}],
        },
    }))
    .expect("a valid pod")
}

pub(crate) fn phase(pod: &Pod) -> &str {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("")
}

/// Polls a pod until `done` holds (the tests that are not about watching).
pub(crate) async fn wait_for(api: &Api<Pod>, name: &str, what: &str, done: impl Fn(&Pod) -> bool) -> Pod {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let pod = api.get(name).await.expect("the pod can be read");
        if done(&pod) {
            return pod;
        }
        assert!(tokio::time::Instant::now() < deadline, "pod {name} never became {what}: {:?}", pod.status);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The `(reason, type)` of a pod's events, oldest first.
pub(crate) fn event_reasons(fake: &FakeKube, pod: &str) -> Vec<String> {
    fake.pod_events(NS, pod).iter().map(|e| e.get("reason").and_then(Value::as_str).unwrap_or("").to_owned()).collect()
}

/// The state of container `base`.
pub(crate) fn base_state(pod: &Pod) -> k8s_openapi::api::core::v1::ContainerState {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.iter().find(|c| c.name == "base"))
        .and_then(|c| c.state.clone())
        .expect("container base has a state")
}
