//! `updraft:operator/xcom`: JSON values scoped to the task's DAG run, size-limited.

use serde_json::Value;

use crate::bindings::updraft::operator::xcom::Host;
use crate::bindings::{ErrorCode, HostError};

use super::{HostState, host_error};

impl Host for HostState {
    async fn push(&mut self, key: String, value: String) -> wasmtime::Result<Result<(), HostError>> {
        let max = self.services.limits.max_output_bytes;
        if value.len() > max {
            return Ok(Err(host_error(
                ErrorCode::LimitExceeded,
                format!(
                    "xcom value \"{key}\" is {} bytes, more than the limit of {max}: pass a reference (a table name, a path) instead",
                    value.len()
                ),
            )));
        }
        let value: Value = match serde_json::from_str(&value) {
            Ok(v) => v,
            Err(e) => {
                return Ok(Err(host_error(ErrorCode::InvalidInput, format!("xcom value \"{key}\" is not JSON: {e}"))));
            }
        };
        let r = self.services.backends.xcom.push(&self.task, &key, value).await;
        Ok(r.map_err(|e| host_error(ErrorCode::Failed, format!("xcom push \"{key}\" failed: {e}"))))
    }

    async fn pull(&mut self, task_id: String, key: String) -> wasmtime::Result<Result<Option<String>, HostError>> {
        let t = &self.task;
        let r = self.services.backends.xcom.pull(&t.dag_id, &t.run_id, &task_id, &key).await;
        Ok(r.map(|v| v.map(|v| v.to_string()))
            .map_err(|e| host_error(ErrorCode::Failed, format!("xcom pull {task_id}.{key} failed: {e}"))))
    }
}
