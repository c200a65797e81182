//! `updraft:operator/pods`: runs a pod to its end through the [`PodLauncher`] backend, copying
//! its log lines into the task log as they come. Only namespaces granted to the plugin.
//!
//! [`PodLauncher`]: crate::backends::PodLauncher

use std::time::Duration;

use serde_json::Value;

use crate::backends::{PodDeletePolicy, PodError, PodLaunch};
use crate::bindings::updraft::operator::pods::{DeletePolicy, Host, PodRequest, PodResult};
use crate::bindings::{ErrorCode, HostError};
use crate::outcome::LogLevel;

use super::{HostState, host_error};

/// Longest startup timeout a request may ask for (a day).
const MAX_STARTUP_TIMEOUT_S: u32 = 86_400;

impl HostState {
    async fn run_pod(&mut self, request: PodRequest) -> Result<PodResult, HostError> {
        let Some(launcher) = self.services.backends.pods.clone() else {
            return Err(host_error(
                ErrorCode::Failed,
                "this server has no Kubernetes cluster to run pods on: set [kubernetes] kubeconfig \
                 (UPDRAFT__KUBERNETES__KUBECONFIG) or run the server in a cluster",
            ));
        };
        let namespace = request.namespace.filter(|n| !n.is_empty()).unwrap_or_else(|| launcher.default_namespace());
        if !self.grants.allows_namespace(&namespace) {
            return Err(self.not_granted(&format!("\"kubernetes\" namespace \"{namespace}\""), "kubernetes_namespaces"));
        }
        let manifest: Value = serde_json::from_str(&request.manifest)
            .map_err(|e| host_error(ErrorCode::InvalidInput, format!("the pod manifest is not JSON: {e}")))?;
        if !manifest.is_object() {
            return Err(host_error(ErrorCode::InvalidInput, "the pod manifest must be a JSON object (a Pod)"));
        }
        let launch = PodLaunch {
            manifest,
            namespace,
            startup_timeout: Duration::from_secs(u64::from(
                request.startup_timeout_seconds.clamp(1, MAX_STARTUP_TIMEOUT_S),
            )),
            delete: match request.delete {
                DeletePolicy::Always => PodDeletePolicy::Always,
                DeletePolicy::OnSuccess => PodDeletePolicy::OnSuccess,
                DeletePolicy::Never => PodDeletePolicy::Never,
            },
            stream_logs: request.stream_logs,
        };
        let (sink, mut lines) = tokio::sync::mpsc::unbounded_channel();
        let task = self.task.clone();
        let mut run = launcher.run(&task, launch, sink);
        let mut open = true;
        let end = loop {
            tokio::select! {
                line = lines.recv(), if open => match line {
                    Some(line) => self.log.push(LogLevel::Info, line),
                    None => open = false,
                },
                end = &mut run => break end,
            }
        };
        while let Ok(line) = lines.try_recv() {
            self.log.push(LogLevel::Info, line);
        }
        match end {
            Ok(end) => Ok(PodResult {
                name: end.name,
                namespace: end.namespace,
                phase: end.phase,
                exit_code: end.exit_code,
                details: end.details,
            }),
            Err(PodError::Invalid(message)) => Err(host_error(ErrorCode::InvalidInput, message)),
            Err(PodError::Failed(message)) => Err(host_error(ErrorCode::Failed, message)),
        }
    }
}

impl Host for HostState {
    async fn run(&mut self, request: PodRequest) -> wasmtime::Result<Result<PodResult, HostError>> {
        Ok(self.run_pod(request).await)
    }
}
