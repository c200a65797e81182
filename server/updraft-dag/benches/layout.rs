//! Layout of the seed-style workloads: 1,000 tasks from `../shared/workloads/seed-1k`, and
//! 10,000 and 100,000 tasks generated with `make_seed.py` into the target folder. The bench
//! reads the folders itself (the crate does no I/O): task files only, since the edges come from
//! `depends_on`. Run: `cargo bench -p updraft-dag --bench layout`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use updraft_dag::{Dag, Options, SqlInput, TaskInput};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The workload folder for `tasks`, generated on first use.
fn workload(tasks: usize) -> PathBuf {
    let shared = workspace().join("../shared/workloads");
    if tasks == 1000 {
        return shared.join("seed-1k");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| workspace().join("target"), PathBuf::from);
    let dir = target.join(format!("workloads/seed-{tasks}"));
    if !dir.join("dag.yaml").exists() {
        let status = Command::new("python3")
            .arg(shared.join("make_seed.py"))
            .args(["--tasks", &tasks.to_string(), "--out"])
            .arg(&dir)
            .status()
            .expect("python3 runs make_seed.py");
        assert!(status.success(), "make_seed.py failed");
    }
    dir
}

/// Reads a folder DAG: `dag.yaml` and every task file under `tasks/`, in path order.
fn load(dir: &Path) -> Dag {
    let text = |p: &Path| std::fs::read_to_string(p).expect("readable");
    let dag_file: Arc<str> = Arc::from(dir.join("dag.yaml").display().to_string());
    let spec = updraft_dag::parse_dag_file(&dag_file, &text(&dir.join("dag.yaml"))).expect("dag.yaml");
    let mut files = Vec::new();
    let mut folders = vec![dir.join("tasks")];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).expect("folder") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                folders.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    let inputs = files
        .iter()
        .map(|p| {
            let file: Arc<str> = Arc::from(p.display().to_string());
            let spec = updraft_dag::parse_task_file(&file, &text(p)).expect("task");
            TaskInput { spec, sql: SqlInput::NotChecked }
        })
        .collect();
    let (dag, diagnostics) = updraft_dag::assemble(spec, inputs, Options::default());
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    dag.expect("valid")
}

fn layout(c: &mut Criterion) {
    let mut group = c.benchmark_group("layout");
    for tasks in [1_000usize, 10_000, 100_000] {
        let dag = load(&workload(tasks));
        assert_eq!(dag.tasks.len(), tasks);
        if tasks == 100_000 {
            group.sample_size(10).measurement_time(Duration::from_secs(20));
        } else {
            group.sample_size(20).measurement_time(Duration::from_secs(10));
        }
        group.bench_function(format!("{tasks}_tasks"), |b| b.iter(|| updraft_dag::layout(&dag)));
        if tasks == 10_000 {
            group.bench_function("10000_tasks_graph_json", |b| {
                b.iter(|| serde_json::to_string(&updraft_dag::export::graph_json(&dag)))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, layout);
criterion_main!(benches);
