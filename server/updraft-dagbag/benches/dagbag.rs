//! Load + validate (SQL check included) + layer the seed-style workloads: 1,000 tasks from
//! `../shared/workloads/seed-1k`, and 10,000 and 100,000 tasks generated with
//! `make_seed.py` into the target folder (one YAML file and one SQL file per task, as users
//! write them). Run: `cargo bench -p updraft-dagbag`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use updraft_dag::Options;

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

fn load(c: &mut Criterion) {
    let mut group = c.benchmark_group("dagbag_load_validate_layer");
    for tasks in [1_000usize, 10_000, 100_000] {
        let dir = workload(tasks);
        // Sanity, outside the timing: the workload validates strictly, with the expected size.
        let bag = updraft_dagbag::load(&dir, Options { strict: true });
        assert!(bag.import_errors.is_empty(), "{:?}", bag.import_errors.first().map(|e| &e.diagnostics));
        assert_eq!(bag.dags.len(), 1);
        assert_eq!(bag.dags[0].dag.tasks.len(), tasks);
        assert!(bag.dags[0].warnings.is_empty());
        if tasks == 100_000 {
            group.sample_size(10).measurement_time(Duration::from_secs(30));
        } else {
            group.sample_size(20).measurement_time(Duration::from_secs(10));
        }
        group.bench_function(format!("{tasks}_tasks"), |b| {
            b.iter(|| updraft_dagbag::load(&dir, Options { strict: true }))
        });
    }
    group.finish();
}

criterion_group!(benches, load);
criterion_main!(benches);
