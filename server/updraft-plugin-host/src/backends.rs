//! What the host interfaces read and write outside the plugin: XCom values, Variables and
//! Connections. The scheduler implements these traits on the metadata database; the
//! in-memory implementations here serve tests and `updraft dags test`.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

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

/// The three backends a runtime uses.
#[derive(Clone)]
pub struct Backends {
    pub xcom: Arc<dyn XComStore>,
    pub variables: Arc<dyn VariableStore>,
    pub connections: Arc<dyn ConnectionStore>,
}

impl Backends {
    /// Fresh in-memory backends, and handles to fill or inspect them.
    pub fn in_memory() -> (Self, MemoryBackends) {
        let m = MemoryBackends::default();
        let b = Backends { xcom: m.xcom.clone(), variables: m.variables.clone(), connections: m.connections.clone() };
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
