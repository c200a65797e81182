//! The built-in operators noop, fail, sleep, and XCom/skip through the host interfaces; the
//! kubernetes_pod operator's checks before it reaches a cluster; the live log file.

use std::time::{Duration, Instant};

use serde_json::json;
use updraft_logs::{TryLog, TryLogFile};
use updraft_plugin_host::{Registry, TaskContext, TaskOutcome, builtin_names};

use crate::support::{load, runtime, small_config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builtins_are_embedded_and_describe_themselves() {
    let (rt, _) = runtime(small_config());
    let registry = Registry::new(rt).await.expect("registry");
    let names: Vec<String> = registry.plugins().iter().map(|p| p.descriptor.name.clone()).collect();
    assert_eq!(names, ["fail", "http", "kubernetes_pod", "noop", "sleep", "sql", "sql_sensor"]);
    assert_eq!(builtin_names().len(), 7);
    let sql = registry.get("sql").expect("sql");
    assert_eq!(sql.descriptor.capabilities, ["sql"]);
    assert_eq!(sql.descriptor.params_schema["required"], json!(["connection", "sql"]));
    let err = registry.get("nope").expect_err("unknown");
    assert!(err.to_string().contains("no operator named \"nope\""), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn noop_fail_and_sleep() {
    let (rt, _) = runtime(small_config());
    let noop = load(&rt, "updraft_op_noop").await;
    let report = rt.run(&noop, &TaskContext::new("n", json!({}))).await;
    assert_eq!(report.outcome, TaskOutcome::Success { output: None });

    let fail = load(&rt, "updraft_op_fail").await;
    let report = rt.run(&fail, &TaskContext::new("f", json!({"message": "boom", "retryable": true}))).await;
    assert_eq!(report.outcome, TaskOutcome::Failed { message: "boom".into(), retryable: true });
    assert!(report.log_text().contains("failed: boom"));
    let report = rt.run(&fail, &TaskContext::new("f", json!({"oops": 1}))).await;
    match report.outcome {
        TaskOutcome::Failed { message, retryable: false } => {
            assert!(message.contains("unknown field `oops`"), "{message}")
        }
        other => panic!("{other:?}"),
    }

    let sleep = load(&rt, "updraft_op_sleep").await;
    let started = Instant::now();
    let report = rt.run(&sleep, &TaskContext::new("s", json!({"seconds": 0.2}))).await;
    assert_eq!(report.outcome, TaskOutcome::Success { output: None });
    assert!(started.elapsed() >= Duration::from_millis(200));
    // A sleeping plugin is stopped at its timeout too (it waits in the host, not in wasm).
    let mut ctx = TaskContext::new("s", json!({"seconds": 30}));
    ctx.execution_timeout = Some(Duration::from_millis(200));
    let report = rt.run(&sleep, &ctx).await;
    assert_eq!(report.outcome, TaskOutcome::TimedOut { after: Duration::from_millis(200) });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xcom_round_trip_and_skip() {
    let (rt, memory) = runtime(small_config());
    let caps = load(&rt, "fixture_caps").await;
    let report = rt.run(&caps, &TaskContext::new("c", json!({"call": "xcom"}))).await;
    assert_eq!(report.outcome, TaskOutcome::Success { output: Some(json!({"n": 1})) });
    assert_eq!(memory.xcom.get("adhoc", "manual__adhoc", "c", "k"), Some(json!({"n": 1})));
    let report = rt.run(&caps, &TaskContext::new("c", json!({"call": "skip"}))).await;
    assert_eq!(report.outcome, TaskOutcome::Skipped { reason: Some("nothing to do".into()) });
}

/// A cluster that must not be reached: the host refuses before it calls.
struct Unreachable;

impl updraft_plugin_host::PodLauncher for Unreachable {
    fn default_namespace(&self) -> String {
        "updraft".into()
    }

    fn run<'a>(
        &'a self,
        _: &'a updraft_plugin_host::TaskKey,
        _: updraft_plugin_host::PodLaunch,
        _: updraft_plugin_host::PodLogSink,
    ) -> updraft_plugin_host::backends::BoxFuture<'a, Result<updraft_plugin_host::PodEnd, updraft_plugin_host::PodError>>
    {
        Box::pin(async { Err(updraft_plugin_host::PodError::Failed("the launcher was called".into())) })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_pod_needs_a_cluster_and_a_granted_namespace() {
    let (rt, _) = runtime(small_config());
    let op = load(&rt, "updraft_op_kubernetes_pod").await;
    assert_eq!(op.descriptor.capabilities, ["kubernetes"]);
    let report = rt.run(&op, &TaskContext::new("k", json!({"image": "busybox"}))).await;
    match report.outcome {
        TaskOutcome::Failed { message, retryable: true } => {
            assert!(message.contains("no Kubernetes cluster") && message.contains("kubeconfig"), "{message}")
        }
        other => panic!("{other:?}"),
    }

    let mut config = small_config();
    config.plugins.insert(
        "kubernetes_pod".into(),
        updraft_plugin_host::Grants { kubernetes_namespaces: vec!["jobs".into()], ..Default::default() },
    );
    let (mut backends, _) = updraft_plugin_host::Backends::in_memory();
    backends.pods = Some(std::sync::Arc::new(Unreachable));
    let rt = updraft_plugin_host::Runtime::new(config, backends).expect("runtime");
    let op = load(&rt, "updraft_op_kubernetes_pod").await;
    let report = rt.run(&op, &TaskContext::new("k", json!({"image": "busybox", "namespace": "prod"}))).await;
    match report.outcome {
        TaskOutcome::Failed { message, retryable: false } => {
            assert!(message.contains("namespace \"prod\"") && message.contains("kubernetes_namespaces"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    let report = rt.run(&op, &TaskContext::new("k", json!({"image": "busybox"}))).await;
    assert!(report.log_text().contains("namespace \"updraft\""), "the default namespace is checked too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_log_file_gets_every_line_once() {
    let (rt, _) = runtime(small_config());
    let fail = load(&rt, "updraft_op_fail").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("a/b/attempt=1.log");
    let mut ctx = TaskContext::new("f", json!({"message": "boom", "retryable": false}));
    ctx.log_file = Some(TryLogFile::new(TryLog::new(&ctx.dag_id, &ctx.run_id, &ctx.task_id, 1), path.clone()));
    let report = rt.run(&fail, &ctx).await;
    let written = std::fs::read_to_string(&path).expect("the log file");
    assert_eq!(written, report.log_text());
    assert_eq!(written.matches("failed: boom").count(), 1, "{written}");
}
