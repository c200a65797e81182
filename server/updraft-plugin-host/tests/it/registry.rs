//! Runtime loading: malformed files and foreign components are rejected with clear messages,
//! a plugin replaced in the plugins folder is imported and picked up while running tasks keep
//! their version, the cache works.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use updraft_plugin_host::{
    CacheStatus, Error, FileStatus, HostConfig, PluginSource, Registry, TaskContext, TaskOutcome,
};

use crate::support::{guest, runtime, small_config};

/// Writes `bytes` to `path` the way `updraft plugins install` does: a temporary file renamed
/// into place, so that a scan never sees half a file.
fn install(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, bytes).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_wasm_is_rejected_with_a_clear_message() {
    let (rt, _) = runtime(small_config());
    let err = rt.load(b"definitely not wasm".to_vec(), PluginSource::File("bad.wasm".into())).await.expect_err("bad");
    assert!(matches!(err, Error::Malformed { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "bad.wasm: not a valid WebAssembly component: the file does not start with the WebAssembly magic bytes `\\0asm`: it is not a .wasm file"
    );
    // A core module (what wasm32-unknown-unknown or wasip1 produce) is told apart.
    let core = b"\0asm\x01\0\0\0".to_vec();
    let err = rt.load(core, PluginSource::File("core.wasm".into())).await.expect_err("core module");
    assert_eq!(
        err.to_string(),
        "core.wasm: not a valid WebAssembly component: it is a core WebAssembly module, not a component: build it with `--target wasm32-wasip2`"
    );
    // A truncated component keeps wasmparser's reason, on one line.
    let mut truncated = guest("updraft_op_noop");
    truncated.truncate(100);
    let err = rt.load(truncated, PluginSource::File("cut.wasm".into())).await.expect_err("truncated");
    let text = err.to_string();
    assert!(text.starts_with("cut.wasm: not a valid WebAssembly component: "), "{text}");
    assert!(!text.contains('\n'), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn component_of_another_world_is_rejected_with_a_clear_message() {
    let (rt, _) = runtime(small_config());
    let err = rt
        .load(guest("fixture_other_world"), PluginSource::File("greeter.wasm".into()))
        .await
        .expect_err("wrong world");
    assert!(matches!(err, Error::WrongWorld { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.starts_with(
            "greeter.wasm: not an Updraft operator: it does not implement the world `updraft:operator/operator@0.1.0`"
        ),
        "{text}"
    );
    assert!(text.contains("build it with updraft-plugin-sdk"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaced_plugin_is_picked_up_while_a_running_task_keeps_its_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("versioned.wasm");
    install(&file, &guest("fixture_versioned_v1"));
    let config = HostConfig { plugins_dir: Some(dir.path().to_owned()), ..small_config() };
    let (rt, _) = runtime(config);
    let registry = Registry::new(rt.clone()).await.expect("registry");
    let v1 = registry.get("versioned").expect("v1");
    assert_eq!(v1.descriptor.version, "1.0.0");
    // The file went into the plugin store, where every process finds it.
    match &v1.source {
        PluginSource::Store { installed: Some(i) } => {
            assert!(i.by.starts_with(&format!("folder {}", file.display())), "{i:?}");
        }
        other => panic!("{other:?}"),
    }

    // A task starts on version 1 and runs for a second.
    let running = {
        let rt = rt.clone();
        tokio::spawn(async move { rt.run(&v1, &TaskContext::new("t", json!({"seconds": 1.0}))).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;

    // Version 2 is dropped into the folder; the watcher picks it up without a restart.
    let watch = registry.watch(Duration::from_millis(100));
    install(&file, &guest("fixture_versioned_v2"));
    let mut picked = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if registry.get("versioned").is_ok_and(|p| p.descriptor.version == "2.0.0") {
            picked = true;
            break;
        }
    }
    assert!(picked, "version 2 was not picked up: {:?}", registry.files());
    let v2 = registry.get("versioned").expect("v2");
    let report = rt.run(&v2, &TaskContext::new("t2", json!({}))).await;
    assert_eq!(report.outcome, TaskOutcome::Success { output: Some(json!("2.0.0")) });

    // The task that started on version 1 finishes on version 1.
    let report = running.await.expect("join");
    assert_eq!(report.outcome, TaskOutcome::Success { output: Some(json!("1.0.0")) });
    assert_eq!(report.plugin_version, "1.0.0");

    // A broken file is listed as invalid and does not unload the good version. The watcher
    // stops first, so that the rescan below is the one that sees the change.
    watch.abort();
    let _ = watch.await;
    install(&file, b"\0asm garbage");
    let changes = registry.rescan().await;
    assert_eq!(changes.len(), 1, "{changes:?}");
    let files = registry.files();
    match &files[0].status {
        FileStatus::Invalid { reason } => {
            assert!(reason.contains("not a valid WebAssembly component"), "{reason}");
            assert!(reason.contains("still serving versioned 2.0.0"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(registry.get("versioned").expect("kept").descriptor.version, "2.0.0");

    // Removing the file removes the plugin.
    std::fs::remove_file(&file).expect("rm");
    registry.rescan().await;
    assert!(registry.get("versioned").is_err());
    assert!(registry.files().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compiled_components_are_cached_on_disk() {
    let cache = tempfile::tempdir().expect("tempdir");
    let config = HostConfig { cache_dir: Some(cache.path().to_owned()), ..small_config() };
    let (rt, _) = runtime(config.clone());
    let bytes = guest("updraft_op_noop");
    let first = rt.load(bytes.clone(), PluginSource::Builtin).await.expect("first");
    assert_eq!(first.cache, CacheStatus::Compiled);
    let entries = std::fs::read_dir(cache.path()).expect("dir").count();
    assert_eq!(entries, 1);
    // A new runtime (a restart) loads the compiled code.
    drop(rt);
    let (rt, _) = runtime(config);
    let second = rt.load(bytes.clone(), PluginSource::Builtin).await.expect("second");
    assert_eq!(second.cache, CacheStatus::Hit);
    let report = rt.run(&second, &TaskContext::new("n", json!({}))).await;
    assert_eq!(report.outcome, TaskOutcome::Success { output: None });
    // A corrupt entry is a miss, recompiled and rewritten. (Replaced, not overwritten in
    // place: entries are mapped into memory, which is why the cache itself only ever renames.)
    for entry in std::fs::read_dir(cache.path()).expect("dir") {
        install(&entry.expect("entry").path(), b"junk");
    }
    let third = rt.load(bytes, PluginSource::Builtin).await.expect("third");
    assert_eq!(third.cache, CacheStatus::Compiled);
    let _: Arc<_> = third;
}
