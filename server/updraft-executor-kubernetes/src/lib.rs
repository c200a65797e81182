//! The kubernetes executor: each task try runs in a pod of its own, created with a
//! deterministic name (so a re-submit is idempotent), watched with one kube-runtime watcher
//! (level-triggered: the pod's current status decides), and deleted or marked done at the end.
//! Pod construction ([`pod`], [`merge`], [`overrides`]) and status interpretation ([`status`])
//! are pure functions; [`KubernetesExecutor`] does the I/O. [`OperatorPods`] runs the pods of
//! operators (the `kubernetes_pod` built-in) for the plugin host.

mod config;
mod executor;
pub mod merge;
pub mod overrides;
pub mod pod;
pub mod pod_operator;
pub mod result;
pub mod status;
mod throttle;
mod watch;

pub use config::{Error, KubernetesConfig, OverrideLookup, PodTemplate, client_from_kubeconfig, client_in_cluster};
pub use executor::{AdoptReport, KubernetesExecutor, PodMetrics};
pub use merge::{MergeError, reconcile};
pub use overrides::{KubernetesOverride, OverrideError};
pub use pod::{PodIdentity, pod_name, safe_label_value};
pub use pod_operator::{ClientSource, OperatorPods};
pub use result::{InMemoryResults, ResultSource};
