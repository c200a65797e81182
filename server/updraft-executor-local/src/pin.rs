//! Pinning tries to plugin versions: the scheduler hands each try to its executor with the
//! content hash of its operator's version current at that moment, so that the try runs exactly
//! that version wherever it runs (in this process, or in a task pod that starts later), even
//! if the operator is replaced in between.

use std::sync::Arc;

use updraft_executor::{Executor, TryKey, WorkItem};
use updraft_plugin_host::Registry;

/// An executor that stamps each try with its operator's current version from `registry`
/// before handing it to the executor it wraps.
pub struct PinVersions {
    inner: Arc<dyn Executor>,
    registry: Arc<Registry>,
}

impl PinVersions {
    /// Pins the plugin versions of `registry` on the tries handed to `inner`.
    pub fn new(inner: Arc<dyn Executor>, registry: Arc<Registry>) -> Self {
        Self { inner, registry }
    }

    fn pin(&self, mut item: WorkItem) -> WorkItem {
        if item.plugin_sha256.is_none() {
            item.plugin_sha256 = self.registry.current_sha256(&item.operator);
        }
        item
    }
}

impl Executor for PinVersions {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn submit(&self, item: WorkItem) {
        self.inner.submit(self.pin(item));
    }

    fn adopt(&self, items: Vec<WorkItem>) {
        self.inner.adopt(items.into_iter().map(|item| self.pin(item)).collect());
    }

    fn cancel(&self, key: &TryKey) {
        self.inner.cancel(key);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use serde_json::json;
    use updraft_executor::{WorkEvent, WorkOutcome};
    use updraft_plugin_host::{Backends, HostConfig, Runtime};

    use super::*;
    use crate::LocalExecutor;

    /// An executor that keeps what it is handed.
    #[derive(Default)]
    struct Capture(Mutex<Vec<WorkItem>>);

    impl Executor for Capture {
        fn name(&self) -> &'static str {
            "capture"
        }

        fn submit(&self, item: WorkItem) {
            self.0.lock().expect("lock").push(item);
        }
    }

    fn guest(stem: &str) -> Vec<u8> {
        std::fs::read(std::path::Path::new(updraft_plugin_host::GUEST_DIR).join(format!("{stem}.wasm")))
            .expect("fixture")
    }

    fn item(dir: &std::path::Path, task_id: &str, task_index: u32, operator: &str) -> WorkItem {
        WorkItem {
            key: TryKey { run_pk: 1, task_index, try_number: 1 },
            dag_id: "d".into(),
            run_id: "r".into(),
            task_id: task_id.into(),
            operator: operator.into(),
            params: json!({}),
            logical_date: "2024-01-01T00:00:00+00:00".into(),
            data_interval_start: "2024-01-01T00:00:00+00:00".into(),
            data_interval_end: "2024-01-01T00:00:00+00:00".into(),
            execution_timeout: None,
            log_path: dir.join(format!("{task_id}.log")),
            kubernetes: None,
            plugin_sha256: None,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_try_replaced_between_dispatch_and_run_runs_the_dispatched_version() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (backends, memory) = Backends::in_memory();
        let mut config = HostConfig::default();
        config.limits.max_instances = 8;
        let registry = Registry::new(Runtime::new(config, backends).expect("runtime")).await.expect("registry");
        let v1 = registry.install(guest("fixture_versioned_v1"), "v1.wasm", "test").await.expect("v1");

        // Dispatch: stamped with the current version; a built-in gets no stamp.
        let captured = Arc::new(Capture::default());
        let pin = PinVersions::new(captured.clone(), registry.clone());
        pin.submit(item(dir.path(), "pinned", 0, "versioned"));
        pin.adopt(vec![item(dir.path(), "builtin", 1, "noop")]);
        let dispatched = std::mem::take(&mut *captured.0.lock().expect("lock"));
        assert_eq!(dispatched[0].plugin_sha256.as_deref(), Some(v1.sha256.as_str()));
        assert_eq!(dispatched[1].plugin_sha256, None);

        // Replaced before the executor runs it.
        registry.install(guest("fixture_versioned_v2"), "v2.wasm", "test").await.expect("v2");
        let (sender, mut events) = tokio::sync::mpsc::unbounded_channel();
        let executor = LocalExecutor::new(registry, sender, 1).expect("executor");
        executor.submit(dispatched[0].clone());
        executor.submit(item(dir.path(), "unpinned", 2, "versioned"));
        let mut finished = 0;
        while finished < 2 {
            match tokio::time::timeout(Duration::from_secs(30), events.recv()).await.expect("in time") {
                Some(WorkEvent::Finished { outcome, .. }) => {
                    assert_eq!(outcome, WorkOutcome::Success);
                    finished += 1;
                }
                Some(WorkEvent::Started { .. }) => {}
                None => panic!("the executor stopped"),
            }
        }
        assert_eq!(memory.xcom.get("d", "r", "pinned", "return_value"), Some(json!("1.0.0")));
        assert_eq!(memory.xcom.get("d", "r", "unpinned", "return_value"), Some(json!("2.0.0")));
    }
}
