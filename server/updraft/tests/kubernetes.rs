//! The kubernetes executor end to end: `updraft scheduler --executor kubernetes` against the
//! faithful Kubernetes API test server (`tests/kube-test-server`), whose simulated kubelet runs
//! each task pod as a real `updraft tasks run` process, on the PostgreSQL at 127.0.0.1:5432.
//! The scheduler's ServiceAccount is authorised by the Role in `k8s/base/rbac.yaml`.

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
        let dir = tempfile::tempdir().expect("tempdir");
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
            dir.path().display(),
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
