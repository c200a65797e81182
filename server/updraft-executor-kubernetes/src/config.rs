//! How the kubernetes executor is set up: [`KubernetesConfig`] with its defaults, where the pod
//! template comes from, the crate's [`Error`], and kube clients built with kube's own retry off.

use std::path::{Path, PathBuf};
use std::time::Duration;

use std::sync::Arc;

use kube::Client;
use serde_json::Value;
use updraft_executor::WorkItem;

/// Where the pod template comes from (Airflow's `pod_template_file`).
#[derive(Debug, Clone, Default)]
pub enum PodTemplate {
    #[default]
    None,
    /// A YAML file holding one Pod.
    File(PathBuf),
    /// A Pod as JSON.
    Value(Value),
}

/// How the executor runs pods. [`KubernetesConfig::new`] fills in the defaults.
#[derive(Debug, Clone)]
pub struct KubernetesConfig {
    /// The namespace of the pods (the watcher's and the Role's).
    pub namespace: String,
    /// The worker image, unless a task's override names another.
    pub image: String,
    /// The container `command` before the worker's arguments (`tasks run DAG TASK RUN --try
    /// N`); empty keeps the image's entrypoint. Default `["updraft"]`.
    pub command: Vec<String>,
    pub pod_template: PodTemplate,
    /// This scheduler's id, written on its pods (label `updraft.dev/scheduler-id`); the watcher
    /// sees only pods carrying it, and adoption rewrites it.
    pub scheduler_id: String,
    /// Delete finished pods (default true); a pod that is kept gets label `updraft.dev/done=true`.
    pub delete_worker_pods: bool,
    /// Delete failed pods too (default false: they stay for inspection).
    pub delete_worker_pods_on_failure: bool,
    /// A pod still Pending this long fails its try, with the pod's events (default 300 s).
    pub pending_timeout: Duration,
    /// Pod creations per second, all tries together, retries included (default 10).
    pub creates_per_second: f64,
    /// Create requests outstanding at once, retries included (default 10).
    pub max_creates_in_flight: usize,
    /// How often a pod that failed before its task started is replaced without spending one of
    /// the task's retries (default 1).
    pub launch_failure_requeues: u32,
    /// Retries of a create after a transient error (429, 5xx, quota, network) before the try
    /// fails (default 5). Backoff doubles from 500 ms to 15 s; `Retry-After` wins.
    pub create_retries: u32,
    /// A pod still running this long past its task's `execution_timeout` is deleted and its try
    /// fails (default 60 s): the worker stops a try at its timeout itself; this is the backstop
    /// for a worker that hangs.
    pub execution_timeout_grace: Duration,
    /// Where the executor ships a try's log after writing its end into it (a pod that never
    /// started, failed, was deleted or overran); default: local files only.
    pub logs: updraft_logs::TaskLogs,
}

impl KubernetesConfig {
    /// The executor's settings with their defaults: pods in `namespace`, running `image`, owned by `scheduler_id`.
    pub fn new(namespace: impl Into<String>, image: impl Into<String>, scheduler_id: impl Into<String>) -> Self {
        KubernetesConfig {
            namespace: namespace.into(),
            image: image.into(),
            command: vec!["updraft".to_owned()],
            pod_template: PodTemplate::None,
            scheduler_id: scheduler_id.into(),
            delete_worker_pods: true,
            delete_worker_pods_on_failure: false,
            pending_timeout: Duration::from_secs(300),
            creates_per_second: 10.0,
            max_creates_in_flight: 10,
            launch_failure_requeues: 1,
            create_retries: 5,
            execution_timeout_grace: Duration::from_secs(60),
            logs: updraft_logs::TaskLogs::default(),
        }
    }
}

/// Errors setting the executor up or adopting pods; a try's own failures are reported on the
/// event channel instead.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading the pod template {path}: {source}")]
    TemplateRead { path: PathBuf, source: std::io::Error },
    #[error("the pod template {path}: {message}")]
    Template { path: String, message: String },
    #[error("reading kubeconfig {path}: {message}")]
    Kubeconfig { path: PathBuf, message: String },
    #[error("in-cluster Kubernetes config: {0}")]
    InCluster(String),
    #[error("building the Kubernetes client: {0}")]
    Client(String),
    #[error("the kubernetes executor needs a tokio runtime: create it from async code")]
    NoRuntime,
    #[error("{0}")]
    Api(String),
}

/// A kube client from a kubeconfig file (and context, else its current one). kube's own retry
/// of 429/503/504 is off: the executor retries creates itself, honouring `Retry-After` for all
/// creations at once, and kube's layer would hide both from it.
pub async fn client_from_kubeconfig(path: &Path, context: Option<&str>) -> Result<Client, Error> {
    let kubeconfig = kube::config::Kubeconfig::read_from(path)
        .map_err(|e| Error::Kubeconfig { path: path.to_owned(), message: e.to_string() })?;
    let options = kube::config::KubeConfigOptions { context: context.map(str::to_owned), ..Default::default() };
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|e| Error::Kubeconfig { path: path.to_owned(), message: e.to_string() })?;
    client_from_config(config)
}

/// A kube client from the pod's ServiceAccount (in-cluster), with kube's retry off as above.
/// Call it inside a tokio runtime.
pub fn client_in_cluster() -> Result<Client, Error> {
    let config = kube::Config::incluster().map_err(|e| Error::InCluster(e.to_string()))?;
    client_from_config(config)
}

fn client_from_config(mut config: kube::Config) -> Result<Client, Error> {
    config.default_retry = false;
    Client::try_from(config).map_err(|e| Error::Client(e.to_string()))
}

/// A task's `kubernetes:` block, looked up for a try (the DAG model does not carry it yet).
pub type OverrideLookup = Arc<dyn Fn(&WorkItem) -> Option<Value> + Send + Sync>;
