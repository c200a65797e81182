//! Typed wrappers over the host's interfaces: log, XCom, Variables, SQL, HTTP and pods.
//!
//! Every call that can fail returns [`HostError`]; its message is complete (it names a missing
//! grant, a missing connection, ...) and `?` turns it into a [`crate::Failure`].

use serde_json::Value;

use crate::bindings::updraft::operator as wit;

pub use wit::types::ErrorCode;

/// An error from the host: an ordinary error the operator may handle or return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostError {
    pub code: ErrorCode,
    pub message: String,
}

impl std::fmt::Display for HostError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for HostError {}

impl From<wit::types::HostError> for HostError {
    fn from(e: wit::types::HostError) -> Self {
        Self { code: e.code, message: e.message }
    }
}

fn invalid(message: String) -> HostError {
    HostError { code: ErrorCode::InvalidInput, message }
}

/// Writes to the task log.
pub mod log {
    use crate::bindings::updraft::operator::log::{Level, log};

    pub fn debug(message: &str) {
        log(Level::Debug, message);
    }
    pub fn info(message: &str) {
        log(Level::Info, message);
    }
    pub fn warn(message: &str) {
        log(Level::Warn, message);
    }
    pub fn error(message: &str) {
        log(Level::Error, message);
    }
}

/// Small JSON values passed to downstream tasks of the same run.
pub mod xcom {
    use super::*;

    /// Stores `value` under `key` for this task.
    pub fn push(key: &str, value: &Value) -> Result<(), HostError> {
        Ok(wit::xcom::push(key, &value.to_string())?)
    }

    /// Reads what task `task_id` of this run pushed under `key`.
    pub fn pull(task_id: &str, key: &str) -> Result<Option<Value>, HostError> {
        match wit::xcom::pull(task_id, key)? {
            None => Ok(None),
            Some(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| invalid(format!("xcom {task_id}.{key} is not JSON: {e}"))),
        }
    }
}

/// Read-only Variables.
pub mod variables {
    use super::*;

    /// The Variable `key`, if set.
    pub fn get(key: &str) -> Result<Option<String>, HostError> {
        Ok(wit::variables::get(key)?)
    }
}

/// SQL on named connections; the host holds the credentials.
pub mod sql {
    use super::*;

    /// Runs one statement and returns its rows as JSON objects keyed by column name.
    pub fn query(connection: &str, statement: &str) -> Result<Vec<Value>, HostError> {
        let text = wit::sql::query(connection, statement)?;
        match serde_json::from_str(&text) {
            Ok(Value::Array(rows)) => Ok(rows),
            _ => Err(invalid("the host returned rows that are not a JSON array".into())),
        }
    }

    /// Runs one or more statements; returns the number of rows affected.
    pub fn execute(connection: &str, statement: &str) -> Result<u64, HostError> {
        Ok(wit::sql::execute(connection, statement)?)
    }
}

/// Outgoing HTTP to hosts the server allow-lists for this plugin.
pub mod http {
    use super::*;

    pub use crate::bindings::updraft::operator::http::{Request, Response};

    /// Sends `request`; a host not on the allow-list is an error naming the grant to add.
    pub fn send(request: &Request) -> Result<Response, HostError> {
        Ok(wit::http::send(request)?)
    }

    /// A request with no headers, no body and the host's default timeout.
    pub fn request(method: &str, url: &str) -> Request {
        Request { method: method.to_owned(), url: url.to_owned(), headers: Vec::new(), body: None, timeout_ms: None }
    }
}

/// Pods on the server's Kubernetes cluster (the capability `kubernetes`).
pub mod pods {
    use super::*;

    pub use crate::bindings::updraft::operator::pods::{DeletePolicy, PodRequest, PodResult};

    /// Runs the pod described by `manifest` (a Pod as JSON) to its end, streaming its log
    /// into the task log when asked. A pod that ran and failed is `Ok` with phase `Failed`.
    pub fn run(request: &PodRequest) -> Result<PodResult, HostError> {
        Ok(wit::pods::run(request)?)
    }

    /// A request for `manifest` in the server's namespace: 120 s to start, streamed log,
    /// deleted afterwards.
    pub fn request(manifest: &Value) -> PodRequest {
        PodRequest {
            manifest: manifest.to_string(),
            namespace: None,
            startup_timeout_seconds: 120,
            delete: DeletePolicy::Always,
            stream_logs: true,
        }
    }
}
