//! What a pod's current status means for its try, decided from the status alone (level, not
//! edge: a fast pod may go from Pending to Succeeded without a Running ever being seen), and the
//! failure details written to the try's log. Pure.

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

/// Waiting reasons that never resolve by themselves: the try fails instead of waiting for the
/// pending timeout. (`ErrImagePull` with "pull QPS exceeded" is transient and excluded.)
pub const FATAL_WAITING_REASONS: &[&str] =
    &["ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError", "CreateContainerError"];

/// Terminated reasons of a container that never ran its program.
const NEVER_RAN: &[&str] = &["ContainerStatusUnknown", "StartError", "ContainerCannotRun"];

/// The meaning of a pod's status for its try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodState {
    /// Not running yet; wait (the pending timeout applies).
    Pending,
    /// Pending, and a container waits for something that will not come.
    PendingFatal {
        details: String,
    },
    Running,
    Succeeded,
    /// The pod failed. `started` says whether the main container's program ever ran (a pod
    /// that failed before is a launch failure, requeued without spending a retry).
    Failed {
        details: String,
        exit_code: Option<i32>,
        started: bool,
    },
}

/// Classifies a pod by its current status.
pub fn classify(pod: &Pod) -> PodState {
    let status = pod.status.as_ref();
    let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
    let pod_reason = status.and_then(|s| s.reason.as_deref()).unwrap_or("");
    let init = status.and_then(|s| s.init_container_statuses.as_deref()).unwrap_or_default();
    let main = status.and_then(|s| s.container_statuses.as_deref()).unwrap_or_default();
    match phase {
        "Succeeded" => PodState::Succeeded,
        "Failed" => PodState::Failed {
            details: failure_details(pod),
            exit_code: first_failed_exit(main),
            started: main.iter().any(ran),
        },
        _ if pod_reason == "ProviderFailed" => {
            PodState::Failed { details: failure_details(pod), exit_code: None, started: main.iter().any(ran) }
        }
        "Running" => PodState::Running,
        _ => {
            for container in init.iter().chain(main.iter().take(1)) {
                if let Some(waiting) = container.state.as_ref().and_then(|s| s.waiting.as_ref()) {
                    let reason = waiting.reason.as_deref().unwrap_or("");
                    let message = waiting.message.as_deref().unwrap_or("");
                    let transient = reason == "ErrImagePull" && message.contains("pull QPS exceeded");
                    if FATAL_WAITING_REASONS.contains(&reason) && !transient {
                        let details = format!("container {} cannot start: {reason}: {message}", container.name);
                        return PodState::PendingFatal { details };
                    }
                }
            }
            PodState::Pending
        }
    }
}

/// Whether a container's program ran (it is running or ended after starting).
fn ran(container: &ContainerStatus) -> bool {
    let Some(state) = &container.state else { return false };
    state.running.is_some()
        || state.terminated.as_ref().is_some_and(|t| !NEVER_RAN.contains(&t.reason.as_deref().unwrap_or("")))
}

fn first_failed_exit(containers: &[ContainerStatus]) -> Option<i32> {
    containers.iter().filter_map(|c| c.state.as_ref()?.terminated.as_ref()).map(|t| t.exit_code).find(|&code| code != 0)
}

/// A failed pod in words, Airflow-style: the pod's phase, reason and message, then the first
/// failed container (init containers first) with reason, exit code and message, or else the
/// last waiting one.
pub fn failure_details(pod: &Pod) -> String {
    let status = pod.status.as_ref();
    let mut parts = Vec::new();
    let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("Unknown");
    let mut head = format!("pod phase {phase}");
    if let Some(reason) = status.and_then(|s| s.reason.as_deref()) {
        head.push_str(&format!(", reason {reason}"));
    }
    if let Some(message) = status.and_then(|s| s.message.as_deref()).filter(|m| !m.is_empty()) {
        head.push_str(&format!(": {message}"));
    }
    parts.push(head);
    let init = status.and_then(|s| s.init_container_statuses.as_deref()).unwrap_or_default();
    let main = status.and_then(|s| s.container_statuses.as_deref()).unwrap_or_default();
    let terminated = init.iter().map(|c| (c, "init container")).chain(main.iter().map(|c| (c, "container"))).find_map(
        |(c, kind)| {
            let t = c.state.as_ref()?.terminated.as_ref()?;
            (t.exit_code != 0 && t.reason.as_deref() != Some("Completed")).then_some((c, kind, t))
        },
    );
    if let Some((container, kind, t)) = terminated {
        let mut text = format!(
            "{kind} {} terminated: reason {}, exit code {}",
            container.name,
            t.reason.as_deref().unwrap_or("unknown"),
            t.exit_code
        );
        if let Some(message) = t.message.as_deref().filter(|m| !m.is_empty()) {
            text.push_str(&format!(", message: {}", message.trim_end()));
        }
        parts.push(text);
    } else if let Some((container, w)) =
        init.iter().chain(main.iter()).filter_map(|c| Some((c, c.state.as_ref()?.waiting.as_ref()?))).next_back()
    {
        parts.push(format!(
            "container {} waiting: {}: {}",
            container.name,
            w.reason.as_deref().unwrap_or("unknown"),
            w.message.as_deref().unwrap_or("")
        ));
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn pod(status: Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "status": status})).expect("a pod")
    }

    #[test]
    fn the_current_phase_decides_never_a_transition() {
        assert_eq!(classify(&pod(json!({}))), PodState::Pending);
        assert_eq!(classify(&pod(json!({"phase": "Running"}))), PodState::Running);
        // A fast pod: Succeeded is the first status ever seen.
        assert_eq!(classify(&pod(json!({"phase": "Succeeded"}))), PodState::Succeeded);
        let waiting = |reason: &str, message: &str| {
            pod(json!({"phase": "Pending", "containerStatuses": [
                {"name": "base", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                 "state": {"waiting": {"reason": reason, "message": message}}}]}))
        };
        assert_eq!(classify(&waiting("ContainerCreating", "")), PodState::Pending);
        assert_eq!(
            classify(&waiting("ErrImagePull", "failed to pull image \"nope\"")),
            PodState::PendingFatal {
                details: "container base cannot start: ErrImagePull: failed to pull image \"nope\"".into()
            }
        );
        assert_eq!(classify(&waiting("ErrImagePull", "pull QPS exceeded")), PodState::Pending);
        assert!(matches!(classify(&waiting("CreateContainerConfigError", "")), PodState::PendingFatal { .. }));
    }

    #[test]
    fn failure_details_name_init_containers_first_then_the_failed_container() {
        let terminated = |name: &str, code: i32, reason: &str| {
            json!({"name": name, "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                   "state": {"terminated": {"exitCode": code, "reason": reason, "startedAt": "2024-01-01T00:00:00Z"}}})
        };
        let failed = pod(json!({"phase": "Failed", "containerStatuses": [terminated("base", 3, "Error")]}));
        assert_eq!(
            classify(&failed),
            PodState::Failed {
                details: "pod phase Failed; container base terminated: reason Error, exit code 3".into(),
                exit_code: Some(3),
                started: true,
            }
        );
        let init = pod(json!({"phase": "Failed",
            "initContainerStatuses": [terminated("setup", 1, "Error")],
            "containerStatuses": [{"name": "base", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                                   "state": {"waiting": {"reason": "PodInitializing"}}}]}));
        assert_eq!(
            classify(&init),
            PodState::Failed {
                details: "pod phase Failed; init container setup terminated: reason Error, exit code 1".into(),
                exit_code: None,
                started: false,
            }
        );
        let evicted = pod(json!({"phase": "Failed", "reason": "Evicted", "message": "low on memory",
            "containerStatuses": [terminated("base", 137, "Error")]}));
        assert!(
            failure_details(&evicted).starts_with("pod phase Failed, reason Evicted: low on memory; container base"),
            "{}",
            failure_details(&evicted)
        );
        let never_ran = pod(json!({"phase": "Failed", "reason": "Evicted",
            "containerStatuses": [terminated("base", 137, "ContainerStatusUnknown")]}));
        assert!(matches!(classify(&never_ran), PodState::Failed { started: false, .. }));
    }
}
