//! The registry on a plugin store shared by several processes (an in-memory store here; the
//! database one is tested in updraft-db and end to end): installs reach every registry, each
//! process compiles a version once into its own cache, a try runs the version it was
//! dispatched with, an unreachable or unusable store never unloads a good version, and the
//! plugins folder's precedence and deletion rules hold.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use updraft_plugin_host::backends::MemoryComponents;
use updraft_plugin_host::{
    CacheStatus, ComponentStore, Error, HostConfig, PluginSource, PluginUpload, Registry, TaskContext, TaskOutcome,
};

use crate::support::{guest, runtime_on, small_config};

fn with_cache(dir: &Path) -> HostConfig {
    HostConfig { cache_dir: Some(dir.to_owned()), ..small_config() }
}

fn with_folder(folder: &Path) -> HostConfig {
    HostConfig { plugins_dir: Some(folder.to_owned()), ..small_config() }
}

/// Waits until `registry` serves `name` at `version`.
async fn serves(registry: &Registry, name: &str, version: &str) -> bool {
    for _ in 0..100 {
        if registry.get(name).is_ok_and(|p| p.descriptor.version == version) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

async fn output(registry: &Registry, plugin: &Arc<updraft_plugin_host::Plugin>) -> TaskOutcome {
    registry.runtime().run(plugin, &TaskContext::new("t", json!({}))).await.outcome
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_install_through_one_process_reaches_the_others_each_compiling_once() {
    let store = Arc::new(MemoryComponents::default());
    let (cache_a, cache_b) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
    let a = Registry::new(runtime_on(with_cache(cache_a.path()), &store)).await.expect("a");
    let b = Registry::new(runtime_on(with_cache(cache_b.path()), &store)).await.expect("b");
    let _watch = b.watch(Duration::from_millis(50));

    let installed = a.install(guest("fixture_versioned_v1"), "v1.wasm", "alice").await.expect("install");
    assert_eq!(installed.descriptor.version, "1.0.0");
    assert!(serves(&b, "versioned", "1.0.0").await, "the other process picks it up from the store");
    let seen = b.get("versioned").expect("served");
    assert_eq!(seen.sha256, installed.sha256);
    match &seen.source {
        PluginSource::Store { installed: Some(i) } => assert_eq!(i.by, "alice"),
        other => panic!("{other:?}"),
    }
    assert_eq!(output(&b, &seen).await, TaskOutcome::Success { output: Some(json!("1.0.0")) });
    // It compiled into its own cache, under the component's hash: a restart loads it.
    let entries: Vec<String> = std::fs::read_dir(cache_b.path())
        .expect("cache")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(entries.iter().any(|e| e.starts_with(&installed.sha256)), "{entries:?}");
    let restarted = Registry::new(runtime_on(with_cache(cache_b.path()), &store)).await.expect("restart");
    assert_eq!(restarted.get("versioned").expect("served").cache, CacheStatus::Hit);

    // A new version installed through the other process replaces it everywhere.
    let _watch_a = a.watch(Duration::from_millis(50));
    b.install(guest("fixture_versioned_v2"), "v2.wasm", "bob").await.expect("v2");
    assert!(serves(&a, "versioned", "2.0.0").await);
    assert!(store.polls() > 2, "registries poll the store's listing");

    // Removing it removes it everywhere; built-ins stay.
    assert!(a.remove("versioned").await.expect("remove"));
    assert!(!a.remove("versioned").await.expect("remove again"));
    for _ in 0..100 {
        if b.get("versioned").is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(matches!(b.get("versioned"), Err(Error::UnknownOperator(_))));
    assert!(b.get("noop").is_ok());
    // An upload that is not a component is refused and stores nothing.
    let refused = a.install(b"not wasm".to_vec(), "upload.wasm", "alice").await.expect_err("refused");
    assert!(refused.to_string().starts_with("upload.wasm: not a valid WebAssembly component"), "{refused}");
    assert!(store.current().await.expect("listing").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_try_runs_the_version_it_was_dispatched_with() {
    let store = Arc::new(MemoryComponents::default());
    let scheduler = Registry::new(runtime_on(small_config(), &store)).await.expect("scheduler");
    scheduler.install(guest("fixture_versioned_v1"), "v1.wasm", "alice").await.expect("v1");
    assert_eq!(scheduler.current_sha256("noop"), None, "built-ins are not pinned: the binary is their version");
    // Dispatched with version 1 ...
    let pinned = scheduler.current_sha256("versioned").expect("a stored version");
    // ... then replaced before the try starts.
    scheduler.install(guest("fixture_versioned_v2"), "v2.wasm", "bob").await.expect("v2");
    assert_eq!(scheduler.get("versioned").expect("current").descriptor.version, "2.0.0");

    let v1 = scheduler.resolve("versioned", Some(&pinned)).await.expect("pinned");
    assert_eq!(output(&scheduler, &v1).await, TaskOutcome::Success { output: Some(json!("1.0.0")) });
    let current = scheduler.resolve("versioned", None).await.expect("current");
    assert_eq!(output(&scheduler, &current).await, TaskOutcome::Success { output: Some(json!("2.0.0")) });

    // A task pod's worker loads only what its try asks for, without listing the store.
    let polls = store.polls();
    let worker = Registry::on_demand(runtime_on(small_config(), &store)).await.expect("worker");
    assert!(worker.plugins().iter().all(|p| p.source == PluginSource::Builtin));
    let v1 = worker.resolve("versioned", Some(&pinned)).await.expect("fetched by hash");
    assert_eq!((v1.descriptor.version.as_str(), v1.sha256.as_str()), ("1.0.0", pinned.as_str()));
    assert_eq!(output(&worker, &v1).await, TaskOutcome::Success { output: Some(json!("1.0.0")) });
    assert_eq!(store.polls(), polls);
    let latest = worker.resolve("versioned", None).await.expect("unpinned: the current version");
    assert_eq!(latest.descriptor.version, "2.0.0");
    assert_eq!(worker.resolve("noop", None).await.expect("built-in").source, PluginSource::Builtin);

    // Hashes that cannot be run say why.
    let unknown = worker.resolve("versioned", Some(&"0".repeat(64))).await.expect_err("unknown");
    assert!(unknown.to_string().contains("was never stored"), "{unknown}");
    scheduler.install(guest("fixture_caps"), "caps.wasm", "alice").await.expect("caps");
    let caps = scheduler.current_sha256("caps").expect("caps");
    let other = worker.resolve("versioned", Some(&caps)).await.expect_err("another operator");
    assert!(other.to_string().contains("is operator `caps`, not `versioned`"), "{other}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_or_unreachable_store_never_unloads_a_good_version() {
    let store = Arc::new(MemoryComponents::default());
    let registry = Registry::new(runtime_on(small_config(), &store)).await.expect("registry");
    registry.install(guest("fixture_versioned_v1"), "v1.wasm", "alice").await.expect("v1");

    store.fail_with(Some("connection refused"));
    let changes = registry.rescan().await;
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert!(changes[0].contains("plugin store unreachable (connection refused)"), "{changes:?}");
    assert!(registry.rescan().await.is_empty(), "reported once, not every second");
    assert_eq!(registry.get("versioned").expect("still served").descriptor.version, "1.0.0");
    let refused = registry.install(guest("fixture_versioned_v2"), "v2.wasm", "bob").await.expect_err("no store");
    assert!(matches!(&refused, Error::Store(m) if m.contains("connection refused")), "{refused}");
    store.fail_with(None);
    assert_eq!(registry.rescan().await, ["plugin store reachable again"]);

    // A stored version this process cannot load (here: damaged bytes) is reported with the
    // version still serving, and not retried every second.
    let damaged = PluginUpload {
        name: "versioned".into(),
        version: "9.0.0".into(),
        sha256: "f".repeat(64),
        bytes: guest("fixture_versioned_v2"),
        installed_by: "mallory".into(),
    };
    store.put(damaged).await.expect("put");
    let changes = registry.rescan().await;
    assert_eq!(changes.len(), 1, "{changes:?}");
    let errors = registry.store_errors();
    assert_eq!(errors.len(), 1);
    assert!(errors[0].reason.contains("the stored bytes are damaged"), "{errors:?}");
    assert!(errors[0].reason.contains("still serving version 1.0.0"), "{errors:?}");
    assert_eq!(registry.get("versioned").expect("kept").descriptor.version, "1.0.0");
    assert!(registry.rescan().await.is_empty());
    // A good version clears the error.
    registry.install(guest("fixture_versioned_v2"), "v2.wasm", "bob").await.expect("v2");
    assert!(registry.store_errors().is_empty());
    assert_eq!(registry.get("versioned").expect("v2").descriptor.version, "2.0.0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_folder_imports_new_files_but_a_restart_never_undoes_a_later_install() {
    let store = Arc::new(MemoryComponents::default());
    let folder = tempfile::tempdir().expect("tempdir");
    let file = folder.path().join("versioned.wasm");
    std::fs::write(&file, guest("fixture_versioned_v1")).expect("write");
    let first = Registry::new(runtime_on(with_folder(folder.path()), &store)).await.expect("first");
    assert_eq!(first.get("versioned").expect("imported").descriptor.version, "1.0.0");
    let v1 = first.current_sha256("versioned").expect("stored");

    // An upload replaces it; a process starting with the unchanged file keeps the upload.
    first.install(guest("fixture_versioned_v2"), "v2.wasm", "alice").await.expect("v2");
    let restarted = Registry::new(runtime_on(with_folder(folder.path()), &store)).await.expect("restart");
    assert_eq!(restarted.get("versioned").expect("kept").descriptor.version, "2.0.0");
    let listed = store.current().await.expect("listing");
    assert_eq!(listed[0].installed_by, "alice");

    // Deleting the file does not remove the version that replaced it ...
    std::fs::remove_file(&file).expect("rm");
    let changes = restarted.rescan().await;
    assert_eq!(changes, [format!("{}: removed", file.display())]);
    assert_eq!(restarted.get("versioned").expect("still there").descriptor.version, "2.0.0");

    // ... while a file that changes is imported, and deleting it removes what it imported.
    std::fs::write(&file, guest("fixture_versioned_v1")).expect("write again");
    restarted.rescan().await;
    assert_eq!(restarted.current_sha256("versioned"), Some(v1));
    std::fs::remove_file(&file).expect("rm");
    let changes = restarted.rescan().await;
    assert!(changes.iter().any(|c| c == "versioned: removed from the plugin store with its file"), "{changes:?}");
    assert!(restarted.get("versioned").is_err());
    assert!(store.current().await.expect("listing").is_empty());
}
