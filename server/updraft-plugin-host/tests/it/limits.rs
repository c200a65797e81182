//! Every limit ends a try with its own outcome and leaves the runtime serving other tasks.

use std::time::{Duration, Instant};

use serde_json::json;
use updraft_plugin_host::{Grants, TaskContext, TaskOutcome};

use crate::support::{http_server, load, runtime, small_config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infinite_loop_is_stopped_at_its_timeout() {
    let (rt, _) = runtime(small_config());
    let spin = load(&rt, "fixture_spin").await;
    let noop = load(&rt, "updraft_op_noop").await;
    let mut ctx = TaskContext::new("spin", json!({}));
    ctx.execution_timeout = Some(Duration::from_millis(300));
    let started = Instant::now();
    // A no-op task running beside the loop must not be held up by it.
    let spinning = rt.run(&spin, &ctx);
    let other = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        rt.run(&noop, &TaskContext::new("n", json!({}))).await
    };
    let (report, other) = tokio::join!(spinning, other);
    assert_eq!(report.outcome, TaskOutcome::TimedOut { after: Duration::from_millis(300) });
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    assert!(report.log_text().contains("timed out"), "{}", report.log_text());
    assert_eq!(other.outcome, TaskOutcome::Success { output: None });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allocation_beyond_the_limit_is_out_of_memory() {
    let mut config = small_config();
    config.limits.memory_bytes = 32 << 20;
    let (rt, _) = runtime(config);
    let hog = load(&rt, "fixture_hog").await;
    let report = rt.run(&hog, &TaskContext::new("hog", json!({"mib": 64}))).await;
    match &report.outcome {
        TaskOutcome::OutOfMemory { limit_bytes, requested_bytes } => {
            assert_eq!(*limit_bytes, 32 << 20);
            assert!(*requested_bytes > 32 << 20);
        }
        other => panic!("expected OutOfMemory, got {other:?}\n{}", report.log_text()),
    }
    assert!(report.log_text().contains("out of memory"), "{}", report.log_text());
    // Within the limit, the same plugin succeeds.
    let report = rt.run(&hog, &TaskContext::new("hog", json!({"mib": 8}))).await;
    assert_eq!(report.outcome, TaskOutcome::Success { output: Some(json!(8)) });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panic_is_a_trapped_try_with_the_panic_message() {
    let (rt, _) = runtime(small_config());
    let p = load(&rt, "fixture_panic").await;
    let report = rt.run(&p, &TaskContext::new("p", json!({}))).await;
    match &report.outcome {
        TaskOutcome::Trapped { message } => {
            assert!(message.contains("the operator panicked on purpose"), "{message}");
            assert!(message.contains("panicked at"), "{message}");
        }
        other => panic!("expected Trapped, got {other:?}"),
    }
    // The server keeps running the plugin's next tries.
    let again = rt.run(&p, &TaskContext::new("p", json!({}))).await;
    assert!(matches!(again.outcome, TaskOutcome::Trapped { .. }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_and_stderr_are_captured_and_capped() {
    let mut config = small_config();
    config.limits.max_log_bytes = 10_000;
    config.limits.max_stderr_bytes = 5_000;
    let (rt, _) = runtime(config);
    let caps = load(&rt, "fixture_caps").await;
    let report = rt.run(&caps, &TaskContext::new("c", json!({"call": "log_flood"}))).await;
    assert_eq!(report.outcome, TaskOutcome::Success { output: None });
    let text = report.log_text();
    assert!(text.contains("[stderr] stderr line from caps"), "{text}");
    assert!(text.contains("log lines dropped: the task log is limited to 10000 bytes"), "{text}");
    let report = rt.run(&caps, &TaskContext::new("c", json!({"call": "stderr_flood"}))).await;
    assert_eq!(report.outcome, TaskOutcome::Success { output: None });
    assert!(report.log_text().contains("bytes of stdout/stderr dropped"), "{}", report.log_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_to_a_host_not_on_the_allow_list_is_refused_with_the_grant_to_add() {
    let port = http_server(1);
    let mut config = small_config();
    config.plugins.insert("http".into(), Grants { allow_http_hosts: vec!["127.0.0.1".into()], ..Grants::default() });
    let (rt, memory) = runtime(config);
    let http = load(&rt, "updraft_op_http").await;

    let refused = rt.run(&http, &TaskContext::new("h", json!({"url": "http://example.org/"}))).await;
    let expected = "capability \"http\" host \"example.org\" is not granted to plugin \"http\": add it to [plugins.http] allow_http_hosts";
    assert_eq!(refused.outcome, TaskOutcome::Failed { message: expected.into(), retryable: false });

    let ctx = TaskContext::new("h", json!({"url": format!("http://127.0.0.1:{port}/ping")}));
    let ok = rt.run(&http, &ctx).await;
    let output = json!({"status": 200, "body": {"ok": true}});
    assert_eq!(ok.outcome, TaskOutcome::Success { output: Some(output.clone()) }, "{}", ok.log_text());
    assert_eq!(memory.xcom.get("adhoc", "manual__adhoc", "h", "return_value"), Some(output));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn variables_need_a_grant() {
    let mut config = small_config();
    config.plugins.insert("caps".into(), Grants { variables: vec!["region".into()], ..Grants::default() });
    let (rt, memory) = runtime(config);
    memory.variables.set("region", "eu");
    memory.variables.set("secret", "x");
    let caps = load(&rt, "fixture_caps").await;
    let ok = rt.run(&caps, &TaskContext::new("c", json!({"call": "variable", "key": "region"}))).await;
    assert_eq!(ok.outcome, TaskOutcome::Success { output: Some(json!("eu")) });
    let refused = rt.run(&caps, &TaskContext::new("c", json!({"call": "variable", "key": "secret"}))).await;
    let expected =
        "capability \"variables\" key \"secret\" is not granted to plugin \"caps\": add it to [plugins.caps] variables";
    assert_eq!(refused.outcome, TaskOutcome::Failed { message: expected.into(), retryable: false });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_try_gets_a_fresh_instance() {
    let (rt, _) = runtime(small_config());
    let caps = load(&rt, "fixture_caps").await;
    for _ in 0..3 {
        let report = rt.run(&caps, &TaskContext::new("c", json!({"call": "counter"}))).await;
        assert_eq!(report.outcome, TaskOutcome::Success { output: Some(json!(1)) });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_instance_pool_fails_the_try_as_retryable() {
    let mut config = small_config();
    config.limits.max_instances = 2;
    let (rt, _) = runtime(config);
    let sleep = load(&rt, "updraft_op_sleep").await;
    let ctx = TaskContext::new("s", json!({"seconds": 0.5}));
    let (a, b, c) = tokio::join!(rt.run(&sleep, &ctx), rt.run(&sleep, &ctx), rt.run(&sleep, &ctx));
    let outcomes = [a.outcome, b.outcome, c.outcome];
    assert_eq!(outcomes.iter().filter(|o| o.is_success()).count(), 2, "{outcomes:?}");
    let failed = outcomes.iter().find(|o| !o.is_success()).expect("one refused");
    match failed {
        TaskOutcome::Failed { message, retryable: true } => {
            assert!(message.contains("at most 2 plugin instances at once"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // Once the others are done, there is room again.
    assert!(rt.run(&sleep, &TaskContext::new("s", json!({"seconds": 0}))).await.outcome.is_success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn computing_past_the_cpu_budget_is_cpu_exhausted_not_a_timeout() {
    let mut config = small_config();
    config.limits.max_cpu_ms = 200;
    let (rt, _) = runtime(config);
    let spin = load(&rt, "fixture_spin").await;
    let mut ctx = TaskContext::new("spin", json!({}));
    ctx.execution_timeout = Some(Duration::from_secs(20));
    let started = Instant::now();
    let report = rt.run(&spin, &ctx).await;
    assert_eq!(report.outcome, TaskOutcome::CpuExhausted { budget: Duration::from_millis(200) });
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    assert!(report.log_text().contains("CPU budget exhausted"), "{}", report.log_text());
    // Waiting is not computing: a sleeping task is not charged for its sleep.
    let sleep = load(&rt, "updraft_op_sleep").await;
    let report = rt.run(&sleep, &TaskContext::new("s", json!({"seconds": 0.5}))).await;
    assert_eq!(report.outcome, TaskOutcome::Success { output: None });
}
