//! Plugins written the way outside authors write them: the example in `examples/plugins/`
//! and a crate scaffolded by `updraft plugins new` both build from their own folders with the
//! SDK and run in the host.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;
use updraft_plugin_host::{GUEST_DIR, Grants, HostConfig, Registry, TaskContext, TaskOutcome, scaffold};

use crate::support::{runtime, small_config};

/// Builds the crate at `manifest` for wasm32-wasip2 as an author would, and returns the
/// component's path. Shares the target folder of this crate's build script (warm deps).
pub fn author_build(manifest: &Path, stem: &str) -> PathBuf {
    let target_dir = Path::new(GUEST_DIR).join("../..");
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.args(["build", "--release", "--target", "wasm32-wasip2", "--manifest-path"])
        .arg(manifest)
        .arg("--target-dir")
        .arg(&target_dir);
    for (key, _) in std::env::vars_os() {
        if let Some(key) = key.to_str()
            && ((key.starts_with("CARGO_") && key != "CARGO_HOME")
                || key.starts_with("RUSTC")
                || key.ends_with("RUSTFLAGS"))
        {
            cmd.env_remove(key);
        }
    }
    let output = cmd.output().expect("run cargo");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    target_dir.join("wasm32-wasip2/release").join(format!("{stem}.wasm"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_plugin_builds_from_its_own_folder_and_runs() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/plugins/row_count_check/Cargo.toml");
    let wasm = author_build(&manifest, "row_count_check");

    let plugins = tempfile::tempdir().expect("tempdir");
    std::fs::copy(&wasm, plugins.path().join("row_count_check.wasm")).expect("install");
    let mut config = HostConfig { plugins_dir: Some(plugins.path().to_owned()), ..small_config() };
    config.plugins.insert("row_count_check".into(), Grants { connections: vec!["db".into()], ..Grants::default() });
    let (rt, memory) = runtime(config);
    let registry = Registry::new(rt.clone()).await.expect("registry");
    let plugin = registry.get("row_count_check").expect("loaded from the plugins folder");
    assert_eq!(plugin.descriptor.version, "1.0.0");
    assert_eq!(plugin.descriptor.capabilities, ["sql"]);

    let db = tempfile::tempdir().expect("tempdir");
    memory.connections.set("db", &format!("sqlite://{}?mode=rwc", db.path().join("q.db").display()));
    let sql = registry.get("sql").expect("sql");
    let setup = json!({"connection": "db", "sql": "CREATE TABLE orders (day TEXT); INSERT INTO orders VALUES ('a'), ('b'), ('b');"});
    assert!(rt.run(&sql, &TaskContext::new("load", setup)).await.outcome.is_success());

    let check = json!({"connection": "db", "table": "orders", "condition": "day = 'b'", "min_rows": 2});
    let report = rt.run(&plugin, &TaskContext::new("check", check)).await;
    assert_eq!(report.outcome, TaskOutcome::Success { output: Some(json!({"table": "orders", "rows": 2})) });
    assert!(report.log_text().contains("orders has 2 rows"), "{}", report.log_text());

    let check = json!({"connection": "db", "table": "orders", "min_rows": 10});
    let report = rt.run(&plugin, &TaskContext::new("check", check)).await;
    let message = "orders has 3 rows, fewer than min_rows = 10: check the upstream tasks that load it";
    assert_eq!(report.outcome, TaskOutcome::Failed { message: message.into(), retryable: true });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaffolded_operator_builds_and_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = scaffold::new_operator("greet_me", dir.path(), &scaffold::default_sdk_path()).expect("scaffold");
    assert_eq!(files.len(), 3);
    let wasm = author_build(&dir.path().join("greet_me/Cargo.toml"), "greet_me");
    let (rt, _) = runtime(small_config());
    let bytes = std::fs::read(&wasm).expect("read");
    let plugin = rt.load(bytes, updraft_plugin_host::PluginSource::File(wasm)).await.expect("load");
    assert_eq!(plugin.descriptor.name, "greet_me");
    let report = rt.run(&plugin, &TaskContext::new("g", json!({"name": "ada", "shout": true}))).await;
    assert_eq!(report.outcome, TaskOutcome::Success { output: Some(json!({"message": "HELLO, ADA"})) });
}
