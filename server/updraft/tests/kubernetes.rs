//! The kubernetes executor end to end: `updraft scheduler --executor kubernetes` against the
//! faithful Kubernetes API test server (`tests/kube-test-server`), whose simulated kubelet runs
//! each task pod as a real `updraft tasks run` process, on the PostgreSQL at 127.0.0.1:5432.
//! The scheduler's ServiceAccount is authorised by the Role in `k8s/base/rbac.yaml`. A plugin
//! uploaded through `updraft api-server` reaches those task pods through the plugin store.

mod common;

use common::{free_port, http_get, prometheus_samples, psql, text, wait_for, workspace};

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use updraft_fake_kube::{FakeKube, FakeKubeConfig};

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// A PostgreSQL database, a data folder, a fake cluster and the files a scheduler needs.
struct Cluster {
    dir: tempfile::TempDir,
    db: String,
    url: String,
    fake: FakeKube,
    /// The DAG file, relative to the workspace.
    dags: String,
    /// Where the scheduler serves /health and /metrics.
    metrics_port: u16,
}

impl Cluster {
    fn new(name: &str) -> Cluster {
        Cluster::with_dags(name, "pods.yaml")
    }

    /// A cluster whose scheduler reads `tests/fixtures/scheduler/FILE`.
    fn with_dags(name: &str, file: &str) -> Cluster {
        Cluster::with_dags_and_env(name, file, &[])
    }

    /// [`Cluster::with_dags`], with more environment variables in the task pods' template.
    fn with_dags_and_env(name: &str, file: &str, pod_env: &[(&str, &str)]) -> Cluster {
        Cluster::build(name, file, pod_env, None)
    }

    /// [`Cluster::with_dags_and_env`], with task pods using the data folder `pod_data` (under
    /// the cluster's folder) instead of the scheduler's.
    fn build(name: &str, file: &str, pod_env: &[(&str, &str)], pod_data: Option<&str>) -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let pod_data = pod_data.map_or_else(|| dir.path().to_owned(), |d| dir.path().join(d));
        let db = format!("updraft_k8s_{name}_{}", std::process::id());
        let out = psql(&format!("CREATE DATABASE {db}"), "postgres");
        assert!(out.status.success(), "PostgreSQL must run at 127.0.0.1:5432: {}", text(&out.stderr));
        let url = format!("postgres://postgres@127.0.0.1:5432/{db}");
        let fake = FakeKube::start(FakeKubeConfig {
            rbac_dir: Some(workspace().join("k8s/base")),
            worker_binary: Some(PathBuf::from(env!("CARGO_BIN_EXE_updraft"))),
            ..FakeKubeConfig::default()
        })
        .expect("the test API server starts");
        fake.write_kubeconfig(&dir.path().join("kubeconfig"), "updraft", "updraft-scheduler").expect("kubeconfig");
        // Task pods reach the API as the worker's ServiceAccount (what its in-cluster token
        // would give them), for the kubernetes_pod operator.
        let worker_kubeconfig = dir.path().join("worker-kubeconfig");
        fake.write_kubeconfig(&worker_kubeconfig, "updraft", "updraft-worker").expect("kubeconfig");
        let dags_file = format!("tests/fixtures/scheduler/{file}");
        let dags = workspace().join(&dags_file);
        // What a cluster's pod template gives every task pod: the database, the shared data
        // folder (logs) and the DAGs, as env from Secrets and volumes would.
        let template = format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: placeholder}}\nspec:\n  containers:\n    - name: base\n      image: updraft/worker:dev\n      env:\n        - {{name: UPDRAFT__DATABASE__URL, value: \"{url}\"}}\n        - {{name: UPDRAFT__CORE__DATA_DIR, value: \"{}\"}}\n        - {{name: UPDRAFT__CORE__DAGS_FOLDER, value: \"{}\"}}\n        - {{name: UPDRAFT__CORE__ENCRYPTION_KEY, value: \"{KEY}\"}}\n        - {{name: UPDRAFT__KUBERNETES__KUBECONFIG, value: \"{}\"}}\n",
            pod_data.display(),
            dags.display(),
            worker_kubeconfig.display()
        );
        let extra: String = pod_env.iter().map(|(k, v)| format!("        - {{name: {k}, value: \"{v}\"}}\n")).collect();
        std::fs::write(dir.path().join("pod-template.yaml"), template + &extra).expect("template");
        let cluster = Cluster { dir, db, url, fake, dags: dags_file, metrics_port: free_port() };
        let out = cluster.command(&["db", "migrate"]).output().expect("migrate");
        assert!(out.status.success(), "{}", text(&out.stderr));
        cluster
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_updraft"));
        command
            .args(args)
            .current_dir(workspace())
            .env("UPDRAFT__DATABASE__URL", &self.url)
            .env("UPDRAFT__CORE__DATA_DIR", self.dir.path())
            .env("UPDRAFT__CORE__ENCRYPTION_KEY", KEY)
            .env_remove("UPDRAFT_CONFIG");
        command
    }

    fn scheduler(&self) -> Child {
        let kubeconfig = self.dir.path().join("kubeconfig");
        let template = self.dir.path().join("pod-template.yaml");
        let port = self.metrics_port.to_string();
        self.command(&[
            "scheduler",
            "--dags",
            &self.dags,
            "--executor",
            "kubernetes",
            "--kubeconfig",
            kubeconfig.to_str().expect("utf-8"),
            "--kubernetes-pod-template",
            template.to_str().expect("utf-8"),
            "--kubernetes-image",
            "updraft/worker:dev",
            "--zombie-threshold",
            "2",
            "--metrics-port",
            &port,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts the scheduler")
    }

    fn sql(&self, query: &str) -> String {
        text(&psql(query, &self.db).stdout).trim().to_owned()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = psql(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.db), "postgres");
    }
}

fn stop(mut child: Child) {
    child.kill().expect("SIGKILL");
    let _ = child.wait();
}

#[test]
fn every_task_runs_in_its_own_pod_and_the_run_succeeds() {
    let cluster = Cluster::new("run");
    let scheduler = cluster.scheduler();
    wait_for("the scheduler to register the DAG", Duration::from_secs(60), || {
        cluster.command(&["dags", "trigger", "pods", "--run-id", "r1"]).output().is_ok_and(|o| o.status.success())
    });
    wait_for("the run to succeed", Duration::from_secs(120), || {
        cluster.sql("SELECT state FROM dag_run WHERE run_id = 'r1'") == "success"
    });
    let rows = cluster.sql(
        "SELECT task_id, state, try_number, executor, hostname FROM task_instance WHERE run_id = 'r1' ORDER BY task_id",
    );
    let created = cluster.fake.created_pods();
    assert_eq!(created.len(), 4, "one pod per task: {created:?}");
    for line in rows.lines() {
        let fields: Vec<&str> = line.split('|').collect();
        assert_eq!(&fields[1..4], ["success", "1", "kubernetes"], "{line}");
        assert!(created.iter().any(|(_, pod)| pod == fields[4]), "{} ran in a pod of its own: {line}", fields[0]);
    }
    assert_eq!(
        cluster.sql("SELECT count(*) FROM try_result WHERE outcome = 'success'"),
        "4",
        "the workers recorded their tries"
    );
    let log = cluster.dir.path().join("logs/dag_id=pods/run_id=r1/task_id=load/attempt=1.log");
    assert!(std::fs::read_to_string(&log).is_ok_and(|l| !l.is_empty()), "the worker wrote the try's log");
    assert!(cluster.fake.pods("updraft").is_empty(), "finished pods are deleted");

    // The scheduler's /health and /metrics, the latter read by the Prometheus client library's
    // own parser.
    let (status, body) = http_get(cluster.metrics_port, "/health").expect("GET /health");
    assert_eq!(status, 200, "{body}");
    let (status, body) = http_get(cluster.metrics_port, "/metrics").expect("GET /metrics");
    assert_eq!(status, 200);
    let samples = prometheus_samples(&body);
    let value = |key: &str| samples[key].as_f64().unwrap_or_else(|| panic!("no {key} in:\n{body}"));
    for (family, kind) in [
        ("updraft_scheduler_loop_duration_seconds", "histogram"),
        ("updraft_dag_parse_duration_seconds", "histogram"),
        ("updraft_task_instances", "gauge"),
        ("updraft_scheduler_queue_depth", "gauge"),
        ("updraft_executor_open_slots", "gauge"),
        ("updraft_kubernetes_pods_created", "counter"),
    ] {
        assert_eq!(samples[format!("type:{family}")], kind, "{family} in:\n{body}");
    }
    assert!(value("updraft_scheduler_loop_duration_seconds_count{}") > 10.0);
    assert!(value("updraft_dag_parse_duration_seconds_count{}") >= 1.0);
    assert_eq!(value("updraft_dags{}"), 1.0);
    assert_eq!(value("updraft_dag_import_errors{}"), 0.0);
    assert_eq!(value("updraft_kubernetes_pods_created_total{}"), 4.0);
    assert_eq!(value("updraft_kubernetes_pods_succeeded_total{}"), 4.0);
    assert_eq!(value("updraft_kubernetes_pods_failed_total{}"), 0.0);
    assert_eq!(value("updraft_task_tries_finished_total{}"), 4.0);
    assert!(samples.get("updraft_task_instances{\"state\": \"running\"}").is_some(), "{body}");
    stop(scheduler);
}

#[test]
fn a_restarted_scheduler_adopts_running_pods_without_duplicating_them() {
    let cluster = Cluster::new("adopt");
    let first = cluster.scheduler();
    wait_for("the scheduler to register the DAG", Duration::from_secs(60), || {
        cluster.command(&["dags", "trigger", "pods", "--run-id", "r2"]).output().is_ok_and(|o| o.status.success())
    });
    wait_for("the slow task's pod to run", Duration::from_secs(90), || {
        cluster.sql("SELECT state FROM task_instance WHERE run_id = 'r2' AND task_id = 'load'") == "running"
    });
    stop(first);
    let second = cluster.scheduler();
    wait_for("the adopting scheduler to finish the run", Duration::from_secs(120), || {
        cluster.sql("SELECT state FROM dag_run WHERE run_id = 'r2'") == "success"
    });
    stop(second);
    let created = cluster.fake.created_pods();
    assert_eq!(created.len(), 4, "no task got a second pod: {created:?}");
    for (namespace, pod) in &created {
        assert_eq!(cluster.fake.create_count(namespace, pod), 1, "{pod} was created once");
    }
    assert_eq!(cluster.sql("SELECT try_number FROM task_instance WHERE run_id = 'r2' AND task_id = 'load'"), "1");
}

#[test]
fn the_kubernetes_pod_operator_runs_images_streams_their_logs_and_cleans_up() {
    let cluster = Cluster::with_dags("podop", "pod_operator.yaml");
    let scheduler = cluster.scheduler();
    wait_for("the scheduler to register the DAG", Duration::from_secs(60), || {
        cluster
            .command(&["dags", "trigger", "pod_operator", "--run-id", "r3"])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    wait_for("the run to end", Duration::from_secs(150), || {
        cluster.sql("SELECT state FROM dag_run WHERE run_id = 'r3'") == "failed"
    });
    stop(scheduler);
    let states = cluster.sql("SELECT task_id, state FROM task_instance WHERE run_id = 'r3' ORDER BY task_id");
    assert_eq!(states, "exits_3|failed\nhello|success\nno_image|failed\ntoo_slow|failed", "{states}");
    let log = |task: &str| {
        let path = cluster.dir.path().join(format!("logs/dag_id=pod_operator/run_id=r3/task_id={task}/attempt=1.log"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };

    // The pod ran the image's command with its env; its output streamed into the task log.
    let hello = log("hello");
    for line in ["hello from the pod", "second line", "created pod updraft/pod-operator-hello-", "deleted"] {
        assert!(hello.contains(line), "{line:?} in:\n{hello}");
    }
    // A failing exit code fails the try with the code; delete_succeeded_pod keeps the pod.
    let exits = log("exits_3");
    assert!(exits.contains("about to fail") && exits.contains("exit code 3"), "{exits}");
    // An image that does not pull fails with the reason, not after the startup timeout.
    let no_image = log("no_image");
    assert!(no_image.contains("cannot start") && no_image.contains("ErrImagePull"), "{no_image}");
    // A try that runs past its execution_timeout stops and its pod is deleted.
    let slow = log("too_slow");
    assert!(slow.contains("started") && slow.contains("timed out"), "{slow}");

    // Operator pods are apart from the executor's (their own managed-by label, which the
    // executor's watcher does not select), one per task; of them only exits_3's is kept.
    let created = cluster.fake.created_pods();
    assert_eq!(created.len(), 8, "a worker pod and an operator pod per task: {created:?}");
    for (namespace, pod) in &created {
        assert_eq!(cluster.fake.create_count(namespace, pod), 1, "{pod} was created once");
    }
    let kept: Vec<_> = cluster
        .fake
        .pods("updraft")
        .into_iter()
        .filter(|p| p["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "updraft-operator")
        .collect();
    assert_eq!(kept.len(), 1, "only the failed pod of exits_3 is kept: {kept:?}");
    assert_eq!(kept[0]["metadata"]["annotations"]["updraft.dev/task-id"], "exits_3");
    let name = kept[0]["metadata"]["name"].as_str().unwrap_or_default();
    assert!(exits.contains(name), "the log names the kept pod {name}:\n{exits}");
}

/// `METHOD path` on 127.0.0.1:`port` over plain HTTP/1.1 with a body: the status and the body.
fn http_send(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    stream.write_all(request.as_bytes())?;
    stream.write_all(body)?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Ok((status, body))
}

#[test]
fn a_plugin_uploaded_through_one_api_server_runs_in_task_pods_of_a_scheduler_elsewhere() {
    // Three processes, three data folders, one database: the API server (api/), the scheduler
    // (the cluster's folder) and the task pods (pods/).
    let cluster = Cluster::build("store", "plugin_store.yaml", &[], Some("pods"));
    let api_data = cluster.dir.path().join("api");
    let out = cluster
        .command(&["users", "create", "--username", "ops", "--role", "admin", "--password", "store-test-pw"])
        .output()
        .expect("users create");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let port = free_port();
    let mut api = cluster
        .command(&["api-server", "--port", &port.to_string()])
        .env("UPDRAFT__CORE__DATA_DIR", &api_data)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts the API server");
    let scheduler = cluster.scheduler();
    let mut token = String::new();
    wait_for("the API server to issue a token", Duration::from_secs(60), || {
        let credentials = br#"{"username": "ops", "password": "store-test-pw"}"#;
        let Ok((201, body)) =
            http_send(port, "POST", "/auth/token", &[("Content-Type", "application/json")], credentials)
        else {
            return false;
        };
        token = serde_json::from_str::<serde_json::Value>(&body).expect("JSON")["access_token"]
            .as_str()
            .expect("a token")
            .to_owned();
        true
    });
    // The upload as the guides show it: curl with the component as the body.
    let upload = |stem: &str| {
        let file = std::path::Path::new(updraft_plugin_host::GUEST_DIR).join(format!("{stem}.wasm"));
        let out = Command::new("curl")
            .args(["-s", "-X", "POST", &format!("localhost:{port}/api/updraft/plugins")])
            .args(["-H", &format!("Authorization: Bearer {token}")])
            .args(["-H", "Content-Type: application/wasm", "--data-binary"])
            .arg(format!("@{}", file.display()))
            .output()
            .expect("curl runs");
        assert!(out.status.success(), "{}", text(&out.stderr));
        let entry: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        assert!(entry["name"] == "versioned", "{entry}");
        entry
    };

    // Version 1 is uploaded while the scheduler runs; the DAG that uses it, an import error
    // until then, becomes valid without touching its file.
    wait_for("the DAG to be an import error while its operator is missing", Duration::from_secs(60), || {
        cluster.sql("SELECT count(*) FROM import_error WHERE message LIKE '%operator `versioned`%'") == "1"
    });
    let v1 = upload("fixture_versioned_v1");
    assert_eq!((&v1["version"], &v1["installed_by"]), (&serde_json::json!("1.0.0"), &serde_json::json!("ops")));
    let v1_sha = v1["sha256"].as_str().expect("sha256").to_owned();
    wait_for("the scheduler to register the DAG", Duration::from_secs(60), || {
        cluster
            .command(&["dags", "trigger", "plugin_store", "--run-id", "r1"])
            .output()
            .is_ok_and(|o| o.status.success())
    });

    // The try is dispatched with version 1; its pod waits in ContainerCreating while version 2
    // replaces the operator.
    let mut pod = serde_json::Value::Null;
    wait_for("the try's pod to be created", Duration::from_secs(60), || {
        pod = cluster.fake.pods("updraft").into_iter().next().unwrap_or_default();
        pod["status"]["containerStatuses"][0]["state"]["waiting"].is_object()
    });
    let args = pod["spec"]["containers"][0]["args"].as_array().cloned().unwrap_or_default();
    assert_eq!(args[args.len() - 2..], [serde_json::json!("--plugin-sha256"), serde_json::json!(v1_sha)], "{pod}");
    let v2 = upload("fixture_versioned_v2");
    assert_eq!(v2["version"], "2.0.0");
    let pod = cluster.fake.pods("updraft").into_iter().next().expect("the pod is still there");
    assert!(
        pod["status"]["containerStatuses"][0]["state"]["waiting"].is_object(),
        "the worker has not started yet: {}",
        pod["status"]
    );
    wait_for("r1 to succeed", Duration::from_secs(120), || {
        cluster.sql("SELECT state FROM dag_run WHERE run_id = 'r1'") == "success"
    });
    let output = |run: &str| {
        cluster.sql(&format!(
            "SELECT x.value FROM xcom x JOIN dag_run r ON r.id = x.run_pk \
             WHERE r.run_id = '{run}' AND x.task_id = 'pinned' AND x.key = 'return_value'"
        ))
    };
    assert_eq!(output("r1"), "\"1.0.0\"", "the try ran the version it was dispatched with");
    let log_path = cluster.dir.path().join("pods/logs/dag_id=plugin_store/run_id=r1/task_id=pinned/attempt=1.log");
    let log = std::fs::read_to_string(&log_path).unwrap_or_else(|e| panic!("{}: {e}", log_path.display()));
    assert!(log.contains("versioned 1.0.0: success"), "{log}");

    // The next run runs version 2. The task pods compiled the components into their own cache.
    let out = cluster.command(&["dags", "trigger", "plugin_store", "--run-id", "r2"]).output().expect("trigger");
    assert!(out.status.success(), "{}", text(&out.stderr));
    wait_for("r2 to succeed", Duration::from_secs(120), || {
        cluster.sql("SELECT state FROM dag_run WHERE run_id = 'r2'") == "success"
    });
    assert_eq!(output("r2"), "\"2.0.0\"");
    let cached: Vec<String> = std::fs::read_dir(cluster.dir.path().join("pods/cache"))
        .expect("the task pods' cache")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(cached.iter().any(|c| c.starts_with(&v1_sha)), "{cached:?}");
    assert!(!api_data.join("plugins/versioned.wasm").exists(), "uploads go to the store, not a folder");

    // `updraft plugins list` from any machine with the database shows where it comes from.
    let out = cluster
        .command(&["plugins", "list", "--output", "json"])
        .env("UPDRAFT__CORE__DATA_DIR", cluster.dir.path().join("cli"))
        .output()
        .expect("plugins list");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let versioned = listed["operators"].as_array().and_then(|o| o.iter().find(|o| o["name"] == "versioned"));
    let versioned = versioned.expect("listed");
    assert_eq!(
        (&versioned["origin"], &versioned["installed_by"]),
        (&serde_json::json!("store"), &serde_json::json!("ops"))
    );
    assert_eq!(versioned["sha256"], v2["sha256"]);
    stop(scheduler);
    let _ = api.kill();
    let _ = api.wait();
}

#[test]
fn grants_from_the_pods_configuration_file_and_environment_reach_the_task_pod() {
    let server = common::HttpsServer::start();
    // What a platform team ships to task pods: the grant in the mounted updraft.toml, the CA
    // bundle's path in the environment.
    let config_dir = tempfile::tempdir().expect("tempdir");
    let config = config_dir.path().join("updraft.toml");
    std::fs::write(&config, format!("[plugins.http]\nallow_http_hosts = [\"127.0.0.1:{}\"]\n", server.port))
        .expect("config");
    let (config, ca) = (config.display().to_string(), server.ca.display().to_string());
    let cluster = Cluster::with_dags_and_env(
        "grants",
        "https_pod.yaml",
        &[("UPDRAFT_CONFIG", &config), ("UPDRAFT__HTTP__EXTRA_CA_FILE", &ca)],
    );
    let scheduler = cluster.scheduler();
    let conf = format!("{{\"base\": \"https://127.0.0.1:{}\"}}", server.port);
    wait_for("the scheduler to register the DAG", Duration::from_secs(60), || {
        cluster
            .command(&["dags", "trigger", "https_pod", "--run-id", "r4", "--conf", &conf])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    wait_for("the run to end", Duration::from_secs(120), || {
        matches!(cluster.sql("SELECT state FROM dag_run WHERE run_id = 'r4'").as_str(), "success" | "failed")
    });
    stop(scheduler);
    let log =
        std::fs::read_to_string(cluster.dir.path().join("logs/dag_id=https_pod/run_id=r4/task_id=call/attempt=1.log"))
            .unwrap_or_default();
    assert_eq!(cluster.sql("SELECT state FROM dag_run WHERE run_id = 'r4'"), "success", "{log}");
    assert!(log.contains("-> 200"), "{log}");
    assert_eq!(cluster.fake.created_pods().len(), 1, "the try ran in a pod");
}
