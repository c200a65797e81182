//! `kubectl exec` against the test server: kubectl 1.32 speaks WebSocket (`v5.channel.k8s.io`)
//! to `pods/exec`; the command runs in the container's environment and its own view of the
//! filesystem (its volumes, not the host's), stdout, stderr, stdin and the exit code travel as in
//! a cluster, a missing program is the runtime's error, `deploy/NAME` finds a pod by the
//! Deployment's selector, and RBAC asks for `create` on `pods/exec` (also for the WebSocket GET).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use kube::api::PostParams;
use serde_json::json;
use updraft_fake_kube::{FakeKube, FakeKubeConfig};

use crate::{NS, SCHEDULER, failed, kubectl, ok, phase, scheduler_pods, wait_for};

fn start() -> FakeKube {
    FakeKube::start(FakeKubeConfig { mount_volumes: true, ..FakeKubeConfig::default() }).expect("the server starts")
}

/// `kubectl exec` with `input` on its stdin.
fn exec_with_input(kubeconfig: &Path, cache: &Path, args: &[&str], input: &str) -> Output {
    let mut child = Command::new("/usr/bin/kubectl")
        .arg("--cache-dir")
        .arg(cache)
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl runs");
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write");
    child.wait_with_output().expect("kubectl exec")
}

#[tokio::test]
async fn kubectl_exec_runs_in_the_containers_environment_and_mounts_with_its_streams_and_exit_code() {
    assert!(!Path::new("/etc/exec-test").exists(), "the host must not have /etc/exec-test");
    let fake = start();
    let dir = tempfile::tempdir().expect("tempdir");
    let pods = scheduler_pods(&fake, dir.path()).await;
    fake.add_config_map(NS, "exec-config", BTreeMap::from([("key".to_owned(), "from the volume".to_owned())]))
        .expect("stored");
    let spec = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "shell"},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{
                "name": "base", "image": "busybox", "command": ["sleep", "300"],
                "env": [{"name": "GREETING", "value": "hello"}],
                "volumeMounts": [{"name": "config", "mountPath": "/etc/exec-test"}],
            }],
            "volumes": [{"name": "config", "configMap": {"name": "exec-config"}}],
        },
    });
    pods.create(&PostParams::default(), &serde_json::from_value(spec).expect("a pod")).await.expect("create");
    wait_for(&pods, "shell", "Running", |p| phase(p) == "Running").await;
    let admin = dir.path().join("admin.kubeconfig");
    fake.write_admin_kubeconfig(&admin, NS).expect("kubeconfig");
    let cache = dir.path().join("cache");

    let out = kubectl(
        &admin,
        &cache,
        &["exec", "shell", "--", "sh", "-c", "echo $GREETING; cat /etc/exec-test/key; echo; echo oops >&2; exit 3"],
    );
    assert_eq!(out.status.code(), Some(3), "kubectl exits with the command's code");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\nfrom the volume\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("oops\n") && stderr.contains("command terminated with exit code 3"), "{stderr}");
    assert!(!Path::new("/etc/exec-test").exists(), "the mount stayed in the container");
    // It went over WebSocket (a 101 on GET), not SPDY.
    let upgrades: Vec<_> =
        fake.requests().into_iter().filter(|r| r.uri.contains("/pods/shell/exec") && r.status == 101).collect();
    assert!(upgrades.iter().all(|r| r.method == "GET") && !upgrades.is_empty(), "{upgrades:?}");

    let counted = exec_with_input(&admin, &cache, &["exec", "-i", "shell", "--", "wc", "-l"], "one\ntwo\nthree\n");
    assert_eq!(ok(&counted).trim(), "3", "stdin reaches the command and its end is signalled");

    let missing = failed(&kubectl(&admin, &cache, &["exec", "shell", "--", "no-such-program"]));
    assert!(missing.contains("exec: \"no-such-program\": executable file not found in $PATH"), "{missing}");
    let wrong = failed(&kubectl(&admin, &cache, &["exec", "shell", "-c", "nope", "--", "true"]));
    assert!(wrong.contains("container nope is not valid for pod shell"), "{wrong}");

    // Updraft's Roles have no pods/exec: the scheduler may not exec.
    let scheduler = dir.path().join("scheduler.kubeconfig");
    fake.write_kubeconfig(&scheduler, NS, SCHEDULER).expect("kubeconfig");
    let denied = failed(&kubectl(&scheduler, &cache, &["exec", "shell", "--", "true"]));
    assert!(denied.contains("cannot create resource \"pods/exec\" in API group \"\""), "{denied}");
    // `get` alone is not enough for the WebSocket GET: the apiserver checks `create` too.
    let exec_rule = |verbs: &str| {
        format!(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {{name: exec, namespace: updraft}}\nrules:\n- apiGroups: ['']\n  resources: [pods]\n  verbs: [get, list]\n- apiGroups: ['']\n  resources: [pods/exec]\n  verbs: [{verbs}]\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: exec, namespace: updraft}}\nroleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: exec}}\nsubjects:\n- {{kind: ServiceAccount, name: updraft-scheduler, namespace: updraft}}\n"
        )
    };
    fake.apply_rbac_yaml(&exec_rule("get")).expect("rbac");
    let get_only = failed(&kubectl(&scheduler, &cache, &["exec", "shell", "--", "true"]));
    assert!(get_only.contains("cannot create resource \"pods/exec\""), "{get_only}");
    fake.apply_rbac_yaml(&exec_rule("get, create")).expect("rbac");
    assert_eq!(ok(&kubectl(&scheduler, &cache, &["exec", "shell", "--", "echo", "allowed"])), "allowed\n");
}

#[tokio::test]
async fn kubectl_exec_finds_a_pod_of_a_deployment_by_its_selector() {
    let fake = start();
    let dir = tempfile::tempdir().expect("tempdir");
    let admin = dir.path().join("admin.kubeconfig");
    fake.write_admin_kubeconfig(&admin, NS).expect("kubeconfig");
    let cache = dir.path().join("cache");
    let manifest = crate::deployment_manifest(dir.path(), "web");
    ok(&kubectl(&admin, &cache, &["apply", "--validate=false", "-f", manifest.to_str().expect("utf-8")]));
    let deployment = fake.deployment(NS, "web").expect("stored");
    // No controller: the test makes the Deployment's pod from its template, as a ReplicaSet would.
    let mut pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-5d7f8c9b4-abcde", "labels": deployment["spec"]["template"]["metadata"]["labels"]},
        "spec": deployment["spec"]["template"]["spec"],
    });
    pod["metadata"]["labels"]["pod-template-hash"] = json!("5d7f8c9b4");
    let pods = scheduler_pods(&fake, dir.path()).await;
    pods.create(&PostParams::default(), &serde_json::from_value(pod).expect("a pod")).await.expect("create");
    wait_for(&pods, "web-5d7f8c9b4-abcde", "Running", |p| phase(p) == "Running").await;
    let out = ok(&kubectl(&admin, &cache, &["-n", NS, "exec", "deploy/web", "--", "sh", "-c", "echo $HOSTNAME"]));
    assert_eq!(out, "web-5d7f8c9b4-abcde\n");
}
