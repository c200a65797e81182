//! `updraft:operator/variables`: read-only Variables, per-key grants.

use crate::bindings::updraft::operator::variables::Host;
use crate::bindings::{ErrorCode, HostError};

use super::{HostState, host_error};

impl Host for HostState {
    async fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<String>, HostError>> {
        if !self.grants.allows_variable(&key) {
            return Ok(Err(self.not_granted(&format!("\"variables\" key \"{key}\""), "variables")));
        }
        let r = self.services.backends.variables.get(&key).await;
        Ok(r.map_err(|e| host_error(ErrorCode::Failed, format!("reading variable \"{key}\" failed: {e}"))))
    }
}
