//! The built-in operators noop, fail, sleep, and XCom/skip through the host interfaces.

use std::time::{Duration, Instant};

use serde_json::json;
use updraft_plugin_host::{Registry, TaskContext, TaskOutcome, builtin_names};

use crate::support::{load, runtime, small_config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builtins_are_embedded_and_describe_themselves() {
    let (rt, _) = runtime(small_config());
    let registry = Registry::new(rt).await.expect("registry");
    let names: Vec<String> = registry.plugins().iter().map(|p| p.descriptor.name.clone()).collect();
    assert_eq!(names, ["fail", "http", "noop", "sleep", "sql", "sql_sensor"]);
    assert_eq!(builtin_names().len(), 6);
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
