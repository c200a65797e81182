//! Benchmark of the kubernetes executor (issue 5): N tasks of RUN_MS each through
//! `updraft scheduler --executor kubernetes`, against the Kubernetes API test server
//! (`tests/kube-test-server`; its scripted image runs a pod for RUN_MS without a process) and
//! the PostgreSQL at 127.0.0.1:5432. Prints pods created per second against the configured
//! rate, the most pods live at once, the scheduler's peak RSS, and the median overhead per task
//! (queued → finished, minus the pod's own RUN_MS).
//!
//! `cargo bench -p updraft --bench kubernetes -- [TASKS=2000] [RUN_MS=1000] [CREATES_PER_SECOND=100]`

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use updraft_fake_kube::{FakeKube, FakeKubeConfig};

fn psql(sql: &str, db: &str) -> String {
    let out = Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", db, "-tAc", sql])
        .output()
        .expect("psql runs");
    assert!(out.status.success(), "PostgreSQL must run at 127.0.0.1:5432: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Peak resident memory of a process, from Linux's /proc, in MiB.
fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let number = |i: usize, default: f64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let tasks = number(0, 2000.0) as usize;
    let run_ms = number(1, 1000.0) as u64;
    let rate = number(2, 100.0);

    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = tempfile::tempdir().expect("tempdir");
    let db = format!("updraft_k8s_bench_{}", std::process::id());
    psql(&format!("CREATE DATABASE {db}"), "postgres");
    let url = format!("postgres://postgres@127.0.0.1:5432/{db}");
    let fake = FakeKube::start(FakeKubeConfig {
        rbac_dir: Some(workspace.join("k8s/base")),
        history_limit: 100_000,
        kubelet_step: Duration::from_millis(1),
        ..FakeKubeConfig::default()
    })
    .expect("the test API server starts");
    let kubeconfig = dir.path().join("kubeconfig");
    fake.write_kubeconfig(&kubeconfig, "updraft", "updraft-scheduler").expect("kubeconfig");
    let dags = dir.path().join("dags");
    std::fs::create_dir_all(&dags).expect("mkdir");
    let mut yaml = format!(
        "dag: pods\nmax_active_tasks: {tasks}\nmax_active_runs: 1\ndefaults:\n  operator: noop\n  kubernetes:\n    image: fake/scripted\n    annotations: {{fake.updraft.dev/run-ms: \"{run_ms}\"}}\ntasks:\n"
    );
    for i in 0..tasks {
        yaml.push_str(&format!("  - {{id: t{i:05}}}\n"));
    }
    std::fs::write(dags.join("pods.yaml"), yaml).expect("write");

    let updraft = |args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_updraft"));
        command
            .args(args)
            .env("UPDRAFT__DATABASE__URL", &url)
            .env("UPDRAFT__CORE__DATA_DIR", dir.path())
            .env("UPDRAFT__CORE__ENCRYPTION_KEY", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
            .env_remove("UPDRAFT_CONFIG");
        command
    };
    assert!(updraft(&["db", "migrate"]).output().expect("migrate").status.success());
    // The default pool holds 128 slots (Airflow's default) and a DAG 16 active tasks: both are
    // raised so that every task can be live at once.
    let slots = tasks.to_string();
    assert!(updraft(&["pools", "set", "default_pool", &slots]).output().expect("pools").status.success());
    let rate_text = rate.to_string();
    let parallelism = tasks.to_string();
    let mut scheduler = updraft(&[
        "scheduler",
        "--dags",
        dags.to_str().expect("utf-8"),
        "--executor",
        "kubernetes",
        "--kubeconfig",
        kubeconfig.to_str().expect("utf-8"),
        "--kubernetes-creates-per-second",
        &rate_text,
        "--parallelism",
        &parallelism,
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .expect("starts the scheduler");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !updraft(&["dags", "trigger", "pods", "--run-id", "bench"]).output().expect("trigger").status.success() {
        assert!(Instant::now() < deadline, "the scheduler did not register the DAG");
        std::thread::sleep(Duration::from_millis(200));
    }
    let started = Instant::now();
    let (mut first_create, mut last_create, mut most_live) = (None, None, 0usize);
    loop {
        let created = fake.created_count();
        if created > 0 && first_create.is_none() {
            first_create = Some(started.elapsed());
        }
        if created >= tasks && last_create.is_none() {
            last_create = Some(started.elapsed());
        }
        most_live = most_live.max(fake.pod_count("updraft"));
        let state = psql("SELECT state FROM dag_run WHERE run_id = 'bench'", &db).parse::<updraft_types::RunState>();
        if let Ok(state) = state
            && state.is_finished()
        {
            assert_eq!(state, updraft_types::RunState::Success);
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(1800), "the run did not finish in 30 minutes");
        std::thread::sleep(Duration::from_millis(100));
    }
    let wall = started.elapsed();
    let rss = peak_rss_mib(scheduler.id());
    let _ = scheduler.kill();
    let _ = scheduler.wait();
    let overhead_ms: f64 = psql(
        &format!(
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY (end_date - queued_at) / 1000.0 - {run_ms}) FROM task_instance WHERE run_id = 'bench'"
        ),
        &db,
    )
    .parse()
    .unwrap_or(f64::NAN);
    let creating = match (first_create, last_create) {
        (Some(a), Some(b)) if b > a => tasks as f64 / (b - a).as_secs_f64(),
        _ => f64::NAN,
    };
    psql(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"), "postgres");
    println!(
        "| tasks | pod run time | rate limit | pods created/s | most pods live | wall | scheduler peak RSS | overhead per task (median) |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    println!(
        "| {tasks} | {run_ms} ms | {rate}/s | {creating:.1}/s | {most_live} | {:.1} s | {} | {overhead_ms:.0} ms |",
        wall.as_secs_f64(),
        rss.map_or_else(|| "?".to_owned(), |m| format!("{m:.1} MiB"))
    );
}
