//! What the host interfaces read and write outside the plugin: XCom values, Variables,
//! Connections and pods. The scheduler implements these traits on the metadata database (and
//! the Kubernetes API, for pods); the in-memory implementations here serve tests and
//! `updraft dags test`.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

/// A boxed future, so that the backend traits can be used as trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A backend failure, shown to the plugin as an ordinary `failed` error.
pub type BackendResult<T> = Result<T, String>;

/// Which task try a call comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TaskKey {
    pub dag_id: String,
    pub run_id: String,
    pub task_id: String,
    pub try_number: u32,
}

/// XCom: small JSON values tasks pass downstream within one DAG run.
pub trait XComStore: Send + Sync {
    fn push(&self, task: &TaskKey, key: &str, value: Value) -> BoxFuture<'_, BackendResult<()>>;
    /// The value task `task_id` of the run `(dag_id, run_id)` pushed under `key`.
    fn pull(&self, dag_id: &str, run_id: &str, task_id: &str, key: &str)
    -> BoxFuture<'_, BackendResult<Option<Value>>>;
}

/// Variables: deployment-wide key/value settings.
pub trait VariableStore: Send + Sync {
    fn get(&self, key: &str) -> BoxFuture<'_, BackendResult<Option<String>>>;
}

/// A connection's target. `uri` holds the credentials; only the host ever reads it.
#[derive(Clone, PartialEq, Eq)]
pub struct Connection {
    /// `postgres://user:password@host:port/db` or `sqlite:path` (or `sqlite::memory:`).
    pub uri: String,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the password.
        let scheme = self.uri.split(':').next().unwrap_or("");
        write!(f, "Connection({scheme}:…)")
    }
}

/// Connections by name.
pub trait ConnectionStore: Send + Sync {
    fn get(&self, name: &str) -> BoxFuture<'_, BackendResult<Option<Connection>>>;
}

/// What to do with an operator's pod once it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodDeletePolicy {
    Always,
    OnSuccess,
    Never,
}

/// A pod an operator asks to run (the `pods` interface).
#[derive(Debug, Clone)]
pub struct PodLaunch {
    /// The Pod manifest as the operator built it.
    pub manifest: Value,
    /// The namespace to run it in (already checked against the plugin's grants).
    pub namespace: String,
    /// How long it may stay Pending before the launch fails.
    pub startup_timeout: Duration,
    pub delete: PodDeletePolicy,
    /// Send the first container's output, line by line, to the task log.
    pub stream_logs: bool,
}

/// How an operator's pod ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodEnd {
    pub name: String,
    pub namespace: String,
    /// `Succeeded` or `Failed`.
    pub phase: String,
    /// The first container's exit code, when it ran.
    pub exit_code: Option<i32>,
    /// Why it failed; empty when it succeeded.
    pub details: String,
}

/// Why a pod could not be run at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodError {
    /// The request itself is wrong (the API server's 422, a manifest that is not a Pod):
    /// retrying cannot help.
    Invalid(String),
    /// Anything else: no cluster, forbidden, never started, API errors.
    Failed(String),
}

/// Where a pod's log lines go while it runs.
pub type PodLogSink = tokio::sync::mpsc::UnboundedSender<String>;

/// Runs operators' pods on a Kubernetes cluster. Dropping the future of [`PodLauncher::run`]
/// (the try timed out or was stopped) must delete the pod.
pub trait PodLauncher: Send + Sync {
    /// The namespace of a request that names none.
    fn default_namespace(&self) -> String;
    /// Runs `launch` for the try `task` to its end, sending log lines to `log`.
    fn run<'a>(
        &'a self,
        task: &'a TaskKey,
        launch: PodLaunch,
        log: PodLogSink,
    ) -> BoxFuture<'a, Result<PodEnd, PodError>>;
}

/// The backends a runtime uses.
#[derive(Clone)]
pub struct Backends {
    pub xcom: Arc<dyn XComStore>,
    pub variables: Arc<dyn VariableStore>,
    pub connections: Arc<dyn ConnectionStore>,
    /// Pods for operators with the `kubernetes` capability; `None` when the server has no
    /// cluster configured.
    pub pods: Option<Arc<dyn PodLauncher>>,
}

impl Backends {
    /// Fresh in-memory backends, and handles to fill or inspect them.
    pub fn in_memory() -> (Self, MemoryBackends) {
        let m = MemoryBackends::default();
        let b = Backends {
            xcom: m.xcom.clone(),
            variables: m.variables.clone(),
            connections: m.connections.clone(),
            pods: None,
        };
        (b, m)
    }
}

/// In-memory backends, for tests.
#[derive(Clone, Default)]
pub struct MemoryBackends {
    pub xcom: Arc<MemoryXCom>,
    pub variables: Arc<MemoryMap>,
    pub connections: Arc<MemoryMap>,
}

/// In-memory XCom keyed by (dag, run, task, key).
#[derive(Default)]
pub struct MemoryXCom(Mutex<HashMap<(String, String, String, String), Value>>);

impl MemoryXCom {
    /// What `task_id` pushed under `key` in any run of `dag_id` (the latest write).
    pub fn get(&self, dag_id: &str, run_id: &str, task_id: &str, key: &str) -> Option<Value> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&(dag_id.into(), run_id.into(), task_id.into(), key.into())).cloned()
    }
}

impl XComStore for MemoryXCom {
    fn push(&self, task: &TaskKey, key: &str, value: Value) -> BoxFuture<'_, BackendResult<()>> {
        let k = (task.dag_id.clone(), task.run_id.clone(), task.task_id.clone(), key.to_owned());
        self.0.lock().unwrap_or_else(|e| e.into_inner()).insert(k, value);
        Box::pin(async { Ok(()) })
    }

    fn pull(
        &self,
        dag_id: &str,
        run_id: &str,
        task_id: &str,
        key: &str,
    ) -> BoxFuture<'_, BackendResult<Option<Value>>> {
        let v = self.get(dag_id, run_id, task_id, key);
        Box::pin(async move { Ok(v) })
    }
}

/// An in-memory string map, used for Variables and for Connections (name → URI).
#[derive(Default)]
pub struct MemoryMap(Mutex<HashMap<String, String>>);

impl MemoryMap {
    pub fn set(&self, key: &str, value: &str) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).insert(key.to_owned(), value.to_owned());
    }

    fn lookup(&self, key: &str) -> Option<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).get(key).cloned()
    }
}

impl VariableStore for MemoryMap {
    fn get(&self, key: &str) -> BoxFuture<'_, BackendResult<Option<String>>> {
        let v = self.lookup(key);
        Box::pin(async move { Ok(v) })
    }
}

impl ConnectionStore for MemoryMap {
    fn get(&self, name: &str) -> BoxFuture<'_, BackendResult<Option<Connection>>> {
        let v = self.lookup(name).map(|uri| Connection { uri });
        Box::pin(async move { Ok(v) })
    }
}
