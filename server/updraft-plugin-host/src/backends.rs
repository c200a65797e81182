//! What the host reads and writes outside the plugin: XCom values, Variables, Connections and
//! pods for the host interfaces, and the deployment's plugin store for the registry.
//! `updraft-executor-local` implements these traits on the metadata database and
//! `updraft-executor-kubernetes` on the Kubernetes API (pods); the in-memory implementations
//! here serve tests and commands without a database.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

/// A boxed future, so that the backend traits can be used as trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A backend failure, shown to the plugin as an ordinary `failed` error.
pub type BackendResult<T> = Result<T, String>;

/// Which task try a call comes from: the names the backends key their data by (an XCom value
/// belongs to a DAG, run and task; a pod is named after the try). The same names identify the
/// try's log, `updraft_logs::TryLog`; one try identity for both belongs with the typed ids of
/// `updraft-types`.
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

/// The version an operator name points to in the plugin store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPlugin {
    pub name: String,
    /// SHA-256 of the component's bytes, lowercase hex: what identifies a version.
    pub sha256: String,
    /// The version the component describes itself with.
    pub version: String,
    /// Who made it current: an API user's name, `cli USER@HOST`, or `folder PATH on HOST`.
    pub installed_by: String,
    /// When it was made current, in microseconds since the Unix epoch.
    pub installed_at_us: i64,
}

/// A validated component to store and make the current version of its operator.
#[derive(Debug, Clone)]
pub struct PluginUpload {
    pub name: String,
    pub version: String,
    pub sha256: String,
    pub bytes: Vec<u8>,
    pub installed_by: String,
}

/// The deployment's plugin store: components kept by content hash, and the version each
/// operator name points to now. Every process of a deployment (schedulers, API servers, task
/// pods) reads the same store, so a plugin installed through any of them runs everywhere. A
/// replaced version's bytes must stay fetchable: a try dispatched with it still runs it.
pub trait ComponentStore: Send + Sync {
    /// The current version of every stored operator. Called every second by each registry,
    /// so it must be cheap (no component bytes).
    fn current(&self) -> BoxFuture<'_, BackendResult<Vec<StoredPlugin>>>;
    /// The bytes of the component with this hash, current or not.
    fn fetch<'a>(&'a self, sha256: &'a str) -> BoxFuture<'a, BackendResult<Option<Vec<u8>>>>;
    /// Whether the component with this hash was ever stored.
    fn contains<'a>(&'a self, sha256: &'a str) -> BoxFuture<'a, BackendResult<bool>>;
    /// Stores the component (once per hash) and points its name at it.
    fn put(&self, upload: PluginUpload) -> BoxFuture<'_, BackendResult<()>>;
    /// Removes operator `name`; with `only_if_sha256`, only while it still points to that
    /// component. Returns whether it was removed.
    fn remove<'a>(&'a self, name: &'a str, only_if_sha256: Option<&'a str>) -> BoxFuture<'a, BackendResult<bool>>;
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
    /// Where the registry finds the deployment's plugins and installs new ones.
    pub plugins: Arc<dyn ComponentStore>,
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
            plugins: m.plugins.clone(),
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
    pub plugins: Arc<MemoryComponents>,
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
    /// Stores a value.
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

/// An in-memory plugin store, for tests and for commands that run without a database.
#[derive(Default)]
pub struct MemoryComponents(Mutex<MemoryComponentsState>);

#[derive(Default)]
struct MemoryComponentsState {
    components: HashMap<String, Vec<u8>>,
    current: BTreeMap<String, StoredPlugin>,
    /// Counts `current` calls, so tests can see a registry poll.
    polls: u64,
    /// When set, every call fails with this message (a database that went away).
    failing: Option<String>,
}

impl MemoryComponents {
    fn state(&self) -> std::sync::MutexGuard<'_, MemoryComponentsState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many times the current versions were listed.
    pub fn polls(&self) -> u64 {
        self.state().polls
    }

    /// Makes every call fail with `message` (`None`: work again), as an unreachable database.
    pub fn fail_with(&self, message: Option<&str>) {
        self.state().failing = message.map(str::to_owned);
    }

    fn check(&self) -> BackendResult<std::sync::MutexGuard<'_, MemoryComponentsState>> {
        let state = self.state();
        match &state.failing {
            Some(message) => Err(message.clone()),
            None => Ok(state),
        }
    }
}

impl ComponentStore for MemoryComponents {
    fn current(&self) -> BoxFuture<'_, BackendResult<Vec<StoredPlugin>>> {
        let listed = self.check().map(|mut s| {
            s.polls += 1;
            s.current.values().cloned().collect()
        });
        Box::pin(async move { listed })
    }

    fn fetch<'a>(&'a self, sha256: &'a str) -> BoxFuture<'a, BackendResult<Option<Vec<u8>>>> {
        let bytes = self.check().map(|s| s.components.get(sha256).cloned());
        Box::pin(async move { bytes })
    }

    fn contains<'a>(&'a self, sha256: &'a str) -> BoxFuture<'a, BackendResult<bool>> {
        let found = self.check().map(|s| s.components.contains_key(sha256));
        Box::pin(async move { found })
    }

    fn put(&self, upload: PluginUpload) -> BoxFuture<'_, BackendResult<()>> {
        let done = self.check().map(|mut s| {
            let installed_at_us = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
                .unwrap_or(0);
            let stored = StoredPlugin {
                name: upload.name.clone(),
                sha256: upload.sha256.clone(),
                version: upload.version,
                installed_by: upload.installed_by,
                installed_at_us,
            };
            s.components.entry(upload.sha256).or_insert(upload.bytes);
            s.current.insert(upload.name, stored);
        });
        Box::pin(async move { done })
    }

    fn remove<'a>(&'a self, name: &'a str, only_if_sha256: Option<&'a str>) -> BoxFuture<'a, BackendResult<bool>> {
        let removed = self.check().map(|mut s| {
            let matches = s.current.get(name).is_some_and(|p| only_if_sha256.is_none_or(|h| p.sha256 == h));
            if matches {
                s.current.remove(name);
            }
            matches
        });
        Box::pin(async move { removed })
    }
}
