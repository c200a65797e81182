//! Benchmarks of the plugin host in its production configuration (async, pooling allocator,
//! epoch deadline, memory limit), run with
//! `cargo bench -p updraft-plugin-host --bench host`:
//!
//! 1. per-task overhead: fresh store + instantiate + `execute` of `noop` (the whole
//!    `Runtime::run`, report included), median and p99 over 10,000 sequential calls;
//! 2. loading a compiled component from the on-disk cache vs compiling it;
//! 3. 1,000 concurrent `sleep` tasks: resident memory per live instance.
//!
//! A plain binary rather than criterion: the figures wanted are percentiles and memory, and
//! the run must stay short on a shared 2-core machine.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use updraft_plugin_host::{Backends, GUEST_DIR, HostConfig, PluginSource, Runtime, TaskContext, TaskOutcome};

fn guest(stem: &str) -> Vec<u8> {
    let path = std::path::Path::new(GUEST_DIR).join(format!("{stem}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

async fn per_task_overhead(rt: &Arc<Runtime>) {
    let noop = rt.load(guest("updraft_op_noop"), PluginSource::Builtin).await.expect("load noop");
    let ctx = TaskContext::new("noop", json!({}));
    for _ in 0..500 {
        rt.run(&noop, &ctx).await;
    }
    let n = 10_000;
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let report = rt.run(&noop, &ctx).await;
        times.push(t.elapsed());
        assert_eq!(report.outcome, TaskOutcome::Success { output: None });
    }
    times.sort();
    let mean = times.iter().sum::<Duration>() / n as u32;
    println!(
        "noop instantiate+execute, fresh instance, {n} calls: median {:.1} µs, p99 {:.1} µs, mean {:.1} µs, min {:.1} µs",
        percentile(&times, 0.5).as_secs_f64() * 1e6,
        percentile(&times, 0.99).as_secs_f64() * 1e6,
        mean.as_secs_f64() * 1e6,
        times[0].as_secs_f64() * 1e6,
    );
}

async fn cache_vs_compile() {
    let bytes = guest("updraft_op_sql");
    let kib = bytes.len() / 1024;
    let (backends, _) = Backends::in_memory();
    let rt = Runtime::new(HostConfig::default(), backends).expect("runtime");
    let mut compile = Vec::new();
    for _ in 0..5 {
        let p = rt.load(bytes.clone(), PluginSource::Builtin).await.expect("compile");
        compile.push(p.load_time);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (backends, _) = Backends::in_memory();
    let cached = Runtime::new(HostConfig { cache_dir: Some(dir.path().to_owned()), ..HostConfig::default() }, backends)
        .expect("runtime");
    cached.load(bytes.clone(), PluginSource::Builtin).await.expect("fill cache");
    let mut hit = Vec::new();
    for _ in 0..20 {
        let p = cached.load(bytes.clone(), PluginSource::Builtin).await.expect("hit");
        assert_eq!(p.cache, updraft_plugin_host::CacheStatus::Hit);
        hit.push(p.load_time);
    }
    compile.sort();
    hit.sort();
    println!(
        "sql operator ({kib} KiB): compile median {:.1} ms; load from cache median {:.0} µs",
        percentile(&compile, 0.5).as_secs_f64() * 1e3,
        percentile(&hit, 0.5).as_secs_f64() * 1e6,
    );
}

async fn concurrent_sleeps(rt: &Arc<Runtime>) {
    let sleep = rt.load(guest("updraft_op_sleep"), PluginSource::Builtin).await.expect("load sleep");
    // Warm up allocator pools so that the baseline includes them.
    rt.run(&sleep, &TaskContext::new("s", json!({"seconds": 0}))).await;
    let before = rss_kib();
    let n = 1000;
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let (rt, sleep) = (rt.clone(), sleep.clone());
        tasks.push(tokio::spawn(async move {
            rt.run(&sleep, &TaskContext::new(&format!("s{i}"), json!({"seconds": 3}))).await
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let during = rss_kib();
    let mut ok = 0;
    for t in tasks {
        if t.await.is_ok_and(|r| r.outcome.is_success()) {
            ok += 1;
        }
    }
    println!(
        "{n} concurrent sleep(3s) tasks: {ok} succeeded in {:.2} s; RSS {:.1} MiB before, {:.1} MiB while all sleep: {:.1} KiB per live instance",
        started.elapsed().as_secs_f64(),
        before as f64 / 1024.0,
        during as f64 / 1024.0,
        during.saturating_sub(before) as f64 / n as f64,
    );
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    let tokio = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio");
    tokio.block_on(async {
        let (backends, _) = Backends::in_memory();
        let rt = Runtime::new(HostConfig::default(), backends).expect("runtime");
        per_task_overhead(&rt).await;
        cache_vs_compile().await;
        concurrent_sleeps(&rt).await;
    });
}
