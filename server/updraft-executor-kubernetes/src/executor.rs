//! [`KubernetesExecutor`]: submits pods at a bounded rate, watches them, reports each try's
//! start and end, and cleans up.
//!
//! Runs on the ambient tokio runtime (the one `new` is called on, the scheduler's): its work is
//! waiting on the API server, never CPU, so it cannot starve the scheduler loop, and the kube
//! client's connection tasks live on that runtime anyway. `submit` only queues the try.
//!
//! Three background tasks: the creator (takes queued tries in order, at `creates_per_second`,
//! at most `max_creates_in_flight` at once, then one task per create with its retries), the
//! watcher (one kube-runtime watcher on the namespace, restarted if it ends) and the pending
//! ticker (fails pods Pending longer than `pending_timeout`). The tries in flight are a map
//! from pod name to [`Tracked`], under one mutex that is never held across an await.

use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use serde_json::{Value, json};
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{debug, error, info, warn};
use updraft_scheduler::executor::{Executor, TryKey, WorkEvent, WorkItem, WorkOutcome};

use crate::merge::reconcile;
use crate::overrides::KubernetesOverride;
use crate::pod::{
    DONE_LABEL, LAUNCH, MANAGED_BY, MANAGED_BY_LABEL, PodIdentity, PodSettings, SCHEDULER_ID_LABEL, generated_pod,
    launch_pod_name, safe_label_value,
};
use crate::result::ResultSource;
use crate::status::{PodState, classify};

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
}

impl KubernetesConfig {
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

/// What [`KubernetesExecutor::adopt`] found.
#[derive(Debug, Default)]
pub struct AdoptReport {
    /// Tries whose pod is now this executor's; their end is reported on the channel.
    pub adopted: Vec<TryKey>,
    /// Tries without a pod; the caller submits them again (resubmitting is idempotent).
    pub missing: Vec<WorkItem>,
}

/// Runs each try in a pod; see the module documentation.
pub struct KubernetesExecutor {
    shared: Arc<Shared>,
    queue: UnboundedSender<Launch>,
}

/// A try to launch: `launch` is 0 for a submit, more for a replacement pod.
struct Launch {
    item: WorkItem,
    launch: u32,
}

struct Shared {
    pods: Api<Pod>,
    pod_events: Api<Event>,
    config: KubernetesConfig,
    template: Option<Value>,
    events: UnboundedSender<WorkEvent>,
    overrides: OverrideLookup,
    results: Arc<dyn ResultSource>,
    state: Mutex<State>,
    throttle: Throttle,
    queue: UnboundedSender<Launch>,
    tasks: Mutex<JoinSet<()>>,
    handle: tokio::runtime::Handle,
}

#[derive(Default)]
struct State {
    /// The tries in flight, by pod name.
    tries: HashMap<String, Tracked>,
    /// Pods whose end was handled: later events about them change nothing.
    finished: HashSet<String>,
}

/// A try in flight.
struct Tracked {
    item: WorkItem,
    launch: u32,
    uid: Option<String>,
    stage: Stage,
    started_sent: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Stage {
    /// The create request has not succeeded yet.
    Creating,
    Pending {
        since: Instant,
    },
    Running,
}

/// How a pod ended, before the result source is asked.
enum PodEnd {
    Succeeded,
    Failed {
        details: String,
    },
    /// It never ran its task and will not: fatal waiting reason, pending timeout, launch
    /// failures used up.
    NeverRan {
        details: String,
    },
    /// Gone while the task ran.
    Deleted {
        details: String,
    },
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl KubernetesExecutor {
    /// Starts the executor's background tasks on the current tokio runtime. `overrides` gives a
    /// try's `kubernetes:` block, `results` the outcome its worker recorded. Fails if the pod
    /// template cannot be read or is not a Pod.
    pub fn new(
        client: Client,
        config: KubernetesConfig,
        events: UnboundedSender<WorkEvent>,
        overrides: OverrideLookup,
        results: Arc<dyn ResultSource>,
    ) -> Result<KubernetesExecutor, Error> {
        let handle = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let template = load_template(&config.pod_template)?;
        let (queue, receiver) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            pods: Api::namespaced(client.clone(), &config.namespace),
            pod_events: Api::namespaced(client, &config.namespace),
            throttle: Throttle::new(config.creates_per_second),
            config,
            template,
            events,
            overrides,
            results,
            state: Mutex::new(State::default()),
            queue: queue.clone(),
            tasks: Mutex::new(JoinSet::new()),
            handle,
        });
        shared.spawn(Arc::clone(&shared).creator(receiver));
        shared.spawn(Arc::clone(&shared).watch());
        shared.spawn(Arc::clone(&shared).pending_ticker());
        Ok(KubernetesExecutor { shared, queue })
    }

    /// Takes over the pods of `tries` (in-flight tries of a previous scheduler run, this
    /// scheduler id or another): each pod found by its identity annotations is relabelled to
    /// this scheduler (merge patch) and tracked, so its end is reported. Tries with no pod are
    /// returned for the caller to submit again.
    pub async fn adopt(&self, tries: Vec<WorkItem>) -> Result<AdoptReport, Error> {
        self.shared.adopt(tries).await
    }
}

impl Drop for KubernetesExecutor {
    fn drop(&mut self) {
        lock(&self.shared.tasks).abort_all();
    }
}

impl Executor for KubernetesExecutor {
    fn name(&self) -> &'static str {
        "kubernetes"
    }

    fn submit(&self, item: WorkItem) {
        let _ = self.queue.send(Launch { item, launch: 0 });
    }

    /// Deletes the try's pod and forgets the try: nothing more is reported for it.
    fn cancel(&self, key: &TryKey) {
        let shared = &self.shared;
        let found = {
            let mut state = lock(&shared.state);
            let name = state.tries.iter().find(|(_, t)| t.item.key == *key).map(|(name, _)| name.clone());
            name.and_then(|name| {
                let tracked = state.tries.remove(&name)?;
                if let Some(uid) = &tracked.uid {
                    state.finished.insert(uid.clone());
                }
                Some(name)
            })
        };
        if let Some(name) = found {
            info!(pod = %name, "try cancelled; deleting its pod");
            let shared2 = Arc::clone(shared);
            shared.spawn(async move { shared2.delete_pod(&name).await });
        }
    }
}

fn load_template(template: &PodTemplate) -> Result<Option<Value>, Error> {
    let (path, value) = match template {
        PodTemplate::None => return Ok(None),
        PodTemplate::Value(value) => ("(inline)".to_owned(), value.clone()),
        PodTemplate::File(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|source| Error::TemplateRead { path: path.clone(), source })?;
            let value: Value = serde_saphyr::from_str(&text)
                .map_err(|e| Error::Template { path: path.display().to_string(), message: e.to_string() })?;
            (path.display().to_string(), value)
        }
    };
    reconcile(&[("pod template", &value)]).map_err(|e| Error::Template { path, message: e.to_string() })?;
    Ok(Some(value))
}

/// Appends a line to a try's log file, creating its folder.
fn write_log(path: &Path, text: &str) {
    if let Some(parent) = path.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    match std::fs::OpenOptions::new().create(true).append(true).open(path) {
        Ok(mut file) => {
            let _ = writeln!(file, "[kubernetes executor] {text}");
        }
        Err(error) => warn!(%error, path = %path.display(), "cannot write the try's log"),
    }
}

/// What a failed create means.
enum CreateError {
    AlreadyExists,
    Transient { message: String, retry_after: Option<Duration> },
    Forbidden(String),
    Invalid(String),
    Other(String),
}

fn classify_create_error(error: &kube::Error) -> CreateError {
    match error {
        kube::Error::Api(status) => {
            let message = status.message.clone();
            let retry_after = status
                .details
                .as_ref()
                .map(|d| d.retry_after_seconds)
                .filter(|&s| s > 0)
                .map(|s| Duration::from_secs(u64::from(s)));
            match status.code {
                409 if status.reason == "AlreadyExists" => CreateError::AlreadyExists,
                403 if message.contains("exceeded quota") => CreateError::Transient { message, retry_after },
                403 => CreateError::Forbidden(message),
                422 | 400 => CreateError::Invalid(message),
                409 | 429 | 500 | 502 | 503 | 504 => CreateError::Transient { message, retry_after },
                _ => CreateError::Other(format!("{} {}: {message}", status.code, status.reason)),
            }
        }
        kube::Error::BuildRequest(e) => CreateError::Other(e.to_string()),
        // Connection errors, dropped responses, unreadable bodies: the create may or may not
        // have happened; retrying is safe because a second create of the name is a 409.
        other => CreateError::Transient { message: other.to_string(), retry_after: None },
    }
}

/// A loud, actionable message for a 403 from RBAC.
fn forbidden_message(verb: &str, resource: &str, namespace: &str, api_message: &str) -> String {
    format!(
        "the scheduler's ServiceAccount may not {verb} {resource} in namespace {namespace}: add verb `{verb}` on \
         `{resource}` to its Role (k8s/base/rbac.yaml). The API server said: {api_message}"
    )
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1 << attempt.min(5))).min(Duration::from_secs(15))
}

fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}

impl Shared {
    fn spawn(&self, future: impl Future<Output = ()> + Send + 'static) {
        let mut tasks = lock(&self.tasks);
        while tasks.try_join_next().is_some() {}
        tasks.spawn_on(future, &self.handle);
    }

    fn send(&self, event: WorkEvent) {
        let _ = self.events.send(event);
    }

    fn watch_selector(&self) -> String {
        format!(
            "{MANAGED_BY_LABEL}={MANAGED_BY},{SCHEDULER_ID_LABEL}={},{DONE_LABEL}!=true",
            safe_label_value(&self.config.scheduler_id)
        )
    }

    /// The pod for a launch of a try: template, then generated, then the task's override.
    fn build_pod(&self, item: &WorkItem, launch: u32) -> Result<Pod, String> {
        let identity = PodIdentity::of(item);
        let settings = PodSettings {
            namespace: &self.config.namespace,
            image: &self.config.image,
            command: &self.config.command,
            scheduler_id: &self.config.scheduler_id,
        };
        let generated = generated_pod(&identity, launch, &settings);
        let layer = match (self.overrides)(item) {
            Some(block) => Some(KubernetesOverride::parse(&block).map_err(|e| e.to_string())?.to_pod_layer()),
            None => None,
        };
        let mut layers = Vec::with_capacity(3);
        if let Some(template) = &self.template {
            layers.push(("pod template", template));
        }
        layers.push(("generated pod", &generated));
        if let Some(layer) = &layer {
            layers.push(("task override", layer));
        }
        let merged = reconcile(&layers).map_err(|e| format!("cannot assemble the pod: {e}"))?;
        serde_json::from_value(merged).map_err(|e| format!("the assembled pod is not a valid Pod: {e}"))
    }

    /// Takes queued tries in order and starts their creates at the configured rate.
    async fn creator(self: Arc<Self>, mut queue: UnboundedReceiver<Launch>) {
        let permits = Arc::new(tokio::sync::Semaphore::new(self.config.max_creates_in_flight.max(1)));
        while let Some(Launch { item, launch }) = queue.recv().await {
            let name = launch_pod_name(&item.dag_id, &item.task_id, &item.run_id, item.key.try_number, launch);
            {
                let mut state = lock(&self.state);
                if state.tries.contains_key(&name) {
                    debug!(pod = %name, "try already in flight; submit ignored");
                    continue;
                }
                state.tries.insert(
                    name.clone(),
                    Tracked { item, launch, uid: None, stage: Stage::Creating, started_sent: false },
                );
            }
            let Ok(permit) = Arc::clone(&permits).acquire_owned().await else { return };
            let shared = Arc::clone(&self);
            self.spawn(async move {
                shared.create(&name).await;
                drop(permit);
            });
        }
    }

    /// Creates a tracked try's pod, retrying transient errors; a 409 adopts the existing pod.
    async fn create(self: &Arc<Self>, name: &str) {
        let Some((item, launch)) = lock(&self.state).tries.get(name).map(|t| (t.item.clone(), t.launch)) else {
            return;
        };
        let pod = match self.build_pod(&item, launch) {
            Ok(pod) => pod,
            Err(message) => return self.fail_before_pod(name, message, false),
        };
        let mut attempt = 0;
        loop {
            self.throttle.wait().await;
            let error = match self.pods.create(&PostParams::default(), &pod).await {
                Ok(created) => {
                    debug!(pod = %name, "pod created");
                    return self.observe(&created);
                }
                Err(error) => error,
            };
            match classify_create_error(&error) {
                CreateError::AlreadyExists => return self.take_over_existing(name).await,
                CreateError::Transient { message, retry_after } => {
                    attempt += 1;
                    if attempt > self.config.create_retries {
                        let message = format!("could not create pod {name} after {attempt} attempts: {message}");
                        return self.fail_before_pod(name, message, true);
                    }
                    let delay = match retry_after {
                        Some(after) => {
                            // The API server asked every client to slow down: pause all creates.
                            self.throttle.pause_for(after);
                            after
                        }
                        None => backoff(attempt - 1),
                    };
                    warn!(pod = %name, attempt, ?delay, %message, "pod create failed; retrying");
                    tokio::time::sleep(delay).await;
                }
                CreateError::Forbidden(api_message) => {
                    let message = forbidden_message("create", "pods", &self.config.namespace, &api_message);
                    error!(pod = %name, "{message}");
                    return self.fail_before_pod(name, message, true);
                }
                CreateError::Invalid(api_message) => {
                    let message = format!("the API server rejected pod {name}: {api_message}");
                    return self.fail_before_pod(name, message, false);
                }
                CreateError::Other(api_message) => {
                    let message = format!("could not create pod {name}: {api_message}");
                    return self.fail_before_pod(name, message, true);
                }
            }
        }
    }

    /// The pod of a try already exists (a resubmit, or a create whose response was lost):
    /// track it, taking it over from another scheduler id if needed.
    async fn take_over_existing(self: &Arc<Self>, name: &str) {
        match self.pods.get(name).await {
            Ok(existing) => {
                info!(pod = %name, "pod already exists; adopting it");
                self.claim(name, existing).await;
            }
            Err(error) if is_not_found(&error) => {
                // Deleted between the 409 and the read: start over.
                let tracked = lock(&self.state).tries.remove(name);
                if let Some(t) = tracked {
                    let _ = self.queue.send(Launch { item: t.item, launch: t.launch });
                }
            }
            Err(error) => {
                let message = format!("pod {name} exists but cannot be read: {error}");
                self.fail_before_pod(name, message, true);
            }
        }
    }

    /// Makes `pod` (tracked under `name`) this scheduler's: relabels it if another scheduler
    /// owns it, then acts on its current status.
    async fn claim(self: &Arc<Self>, name: &str, pod: Pod) {
        let owner = pod.metadata.labels.as_ref().and_then(|l| l.get(SCHEDULER_ID_LABEL)).cloned();
        let mine = safe_label_value(&self.config.scheduler_id);
        if owner.as_deref() == Some(mine.as_str()) {
            return self.observe(&pod);
        }
        let patch = json!({"metadata": {"labels": {SCHEDULER_ID_LABEL: mine}}});
        match self.pods.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(patched) => {
                info!(pod = %name, previous = ?owner, "pod adopted from another scheduler");
                self.observe(&patched);
            }
            Err(error) => {
                let message = format!("could not take over pod {name} from scheduler {owner:?}: {error}");
                self.fail_before_pod(name, message, true);
            }
        }
    }

    /// Ends a try whose pod never existed or cannot be used.
    fn fail_before_pod(&self, name: &str, message: String, retryable: bool) {
        let Some(tracked) = lock(&self.state).tries.remove(name) else { return };
        warn!(pod = %name, %message, "try failed before its pod ran");
        write_log(&tracked.item.log_path, &message);
        self.send(WorkEvent::Finished { key: tracked.item.key, outcome: WorkOutcome::Failed { message, retryable } });
    }

    /// Acts on a pod's current status (level-triggered).
    fn observe(self: &Arc<Self>, pod: &Pod) {
        let Some(name) = pod.metadata.name.clone() else { return };
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let pod_state = classify(pod);
        let mut state = lock(&self.state);
        if state.finished.contains(&uid) {
            return;
        }
        let Some(tracked) = state.tries.get_mut(&name) else { return };
        if tracked.uid.as_ref().is_some_and(|known| *known != uid) {
            debug!(pod = %name, "event about an older pod of the same name; ignored");
            return;
        }
        tracked.uid = Some(uid.clone());
        match pod_state {
            PodState::Pending => {
                if tracked.stage == Stage::Creating {
                    tracked.stage = Stage::Pending { since: Instant::now() };
                }
                return;
            }
            PodState::Running => {
                tracked.stage = Stage::Running;
                if !std::mem::replace(&mut tracked.started_sent, true) {
                    self.send(WorkEvent::Started { key: tracked.item.key.clone(), hostname: name });
                }
                return;
            }
            _ => {}
        }
        // A terminal status: handled once per pod.
        let Some(mut tracked) = state.tries.remove(&name) else { return };
        state.finished.insert(uid);
        drop(state);
        let end = match pod_state {
            PodState::PendingFatal { details } => PodEnd::NeverRan { details },
            PodState::Failed { details, started: false, .. }
                if tracked.launch < self.config.launch_failure_requeues =>
            {
                let reason = format!("pod {name} failed before its task started: {details}");
                return self.relaunch(tracked, name, reason);
            }
            PodState::Failed { details, .. } => PodEnd::Failed { details },
            _ => PodEnd::Succeeded,
        };
        if !matches!(end, PodEnd::NeverRan { .. }) && !std::mem::replace(&mut tracked.started_sent, true) {
            self.send(WorkEvent::Started { key: tracked.item.key.clone(), hostname: name.clone() });
        }
        let shared = Arc::clone(self);
        self.spawn(async move { shared.finish(tracked, name, end).await });
    }

    /// Replaces a pod that failed before its task started with a new one (new name), without
    /// spending a retry.
    fn relaunch(self: &Arc<Self>, tracked: Tracked, name: String, reason: String) {
        let launch = tracked.launch + 1;
        let message =
            format!("{reason}; launching a new pod (replacement {launch} of {})", self.config.launch_failure_requeues);
        warn!(pod = %name, "{message}");
        write_log(&tracked.item.log_path, &message);
        let _ = self.queue.send(Launch { item: tracked.item, launch });
        let shared = Arc::clone(self);
        self.spawn(async move { shared.delete_pod(&name).await });
    }

    /// Reports a try's end and cleans its pod up.
    async fn finish(self: Arc<Self>, tracked: Tracked, name: String, end: PodEnd) {
        let key = tracked.item.key.clone();
        let recorded = match end {
            PodEnd::Succeeded | PodEnd::Failed { .. } => self.results.outcome(&key).await,
            _ => None,
        };
        let (outcome, failed, never_ran) = match end {
            PodEnd::Succeeded => (recorded.unwrap_or(WorkOutcome::Success), false, false),
            PodEnd::Failed { details } => {
                let message = format!("pod {name} failed: {details}");
                write_log(&tracked.item.log_path, &message);
                (recorded.unwrap_or(WorkOutcome::Failed { message, retryable: true }), true, false)
            }
            PodEnd::NeverRan { details } => {
                let message = format!("pod {name} could not run the task: {details}");
                write_log(&tracked.item.log_path, &message);
                (WorkOutcome::Failed { message, retryable: true }, true, true)
            }
            PodEnd::Deleted { details } => {
                write_log(&tracked.item.log_path, &details);
                (WorkOutcome::Failed { message: details, retryable: true }, true, false)
            }
        };
        if let WorkOutcome::Failed { message, .. } = &outcome {
            warn!(pod = %name, %message, "try failed");
        }
        self.send(WorkEvent::Finished { key, outcome });
        let delete =
            never_ran || (self.config.delete_worker_pods && (!failed || self.config.delete_worker_pods_on_failure));
        if delete {
            self.delete_pod(&name).await;
        } else {
            let patch = json!({"metadata": {"labels": {DONE_LABEL: "true"}}});
            match self.pods.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) => {}
                Err(error) if is_not_found(&error) => {}
                Err(error) => warn!(pod = %name, %error, "could not mark the kept pod done"),
            }
        }
    }

    /// Deletes a pod; one already gone is fine.
    async fn delete_pod(&self, name: &str) {
        match self.pods.delete(name, &DeleteParams::default()).await {
            Ok(_) => debug!(pod = %name, "pod deleted"),
            Err(error) if is_not_found(&error) => {}
            Err(kube::Error::Api(status)) if status.code == 403 => {
                error!(pod = %name, "{}", forbidden_message("delete", "pods", &self.config.namespace, &status.message));
            }
            Err(error) => warn!(pod = %name, %error, "could not delete the pod"),
        }
    }

    /// The watcher: one kube-runtime watcher on this scheduler's pods, restarted if it ends.
    /// Its errors are logged; it re-lists by itself (410 included).
    async fn watch(self: Arc<Self>) {
        let selector = self.watch_selector();
        loop {
            let stream = watcher(self.pods.clone(), watcher::Config::default().labels(&selector)).default_backoff();
            let mut stream = std::pin::pin!(stream);
            let mut listed: Option<HashSet<String>> = None;
            while let Some(event) = stream.next().await {
                match event {
                    Ok(watcher::Event::Apply(pod)) => self.observe(&pod),
                    Ok(watcher::Event::InitApply(pod)) => {
                        if let (Some(listed), Some(name)) = (&mut listed, &pod.metadata.name) {
                            listed.insert(name.clone());
                        }
                        self.observe(&pod);
                    }
                    Ok(watcher::Event::Delete(pod)) => self.on_deleted(&pod),
                    Ok(watcher::Event::Init) => listed = Some(HashSet::new()),
                    Ok(watcher::Event::InitDone) => {
                        if let Some(listed) = listed.take() {
                            self.check_unlisted(&listed);
                        }
                    }
                    Err(error) => warn!(%error, "pod watcher error (it re-lists and goes on)"),
                }
            }
            warn!("the pod watcher ended; restarting it");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// A pod left our selection: deleted, relabelled by another scheduler, or marked done.
    fn on_deleted(self: &Arc<Self>, pod: &Pod) {
        self.observe(pod);
        let Some(name) = pod.metadata.name.clone() else { return };
        if lock(&self.state).tries.get(&name).is_some_and(|t| t.uid.is_some()) {
            let shared = Arc::clone(self);
            self.spawn(async move { shared.recheck(name).await });
        }
    }

    /// After a re-list: tracked pods the list did not have are re-read.
    fn check_unlisted(self: &Arc<Self>, listed: &HashSet<String>) {
        let missing: Vec<String> = lock(&self.state)
            .tries
            .iter()
            .filter(|(name, t)| t.uid.is_some() && !listed.contains(*name))
            .map(|(name, _)| name.clone())
            .collect();
        for name in missing {
            let shared = Arc::clone(self);
            self.spawn(async move { shared.recheck(name).await });
        }
    }

    /// Re-reads a tracked pod the watcher lost sight of.
    async fn recheck(self: Arc<Self>, name: String) {
        match self.pods.get(&name).await {
            Ok(pod) => {
                let owner = pod.metadata.labels.as_ref().and_then(|l| l.get(SCHEDULER_ID_LABEL)).cloned();
                if owner.as_deref() != Some(safe_label_value(&self.config.scheduler_id).as_str()) {
                    if lock(&self.state).tries.remove(&name).is_some() {
                        info!(pod = %name, owner = ?owner, "pod adopted by another scheduler; no longer tracked");
                    }
                    return;
                }
                self.observe(&pod);
            }
            Err(error) if is_not_found(&error) => {
                let Some(tracked) = lock(&self.state).tries.remove(&name) else { return };
                if tracked.stage == Stage::Running || tracked.started_sent {
                    let details = format!("pod {name} was deleted while its task was running");
                    self.send_started_once(&tracked, &name);
                    self.finish(tracked, name, PodEnd::Deleted { details }).await;
                } else if tracked.launch < self.config.launch_failure_requeues {
                    self.relaunch(tracked, name.clone(), format!("pod {name} was deleted before its task started"));
                } else {
                    let details = format!("pod {name} was deleted before its task started");
                    self.finish(tracked, name, PodEnd::NeverRan { details }).await;
                }
            }
            Err(error) => warn!(pod = %name, %error, "could not re-read a pod the watcher lost"),
        }
    }

    fn send_started_once(&self, tracked: &Tracked, name: &str) {
        if !tracked.started_sent {
            self.send(WorkEvent::Started { key: tracked.item.key.clone(), hostname: name.to_owned() });
        }
    }

    /// Fails tries whose pod stayed Pending longer than `pending_timeout`.
    async fn pending_ticker(self: Arc<Self>) {
        let period = (self.config.pending_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(5));
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let expired: Vec<(String, Tracked)> = {
                let mut state = lock(&self.state);
                let names: Vec<String> = state
                    .tries
                    .iter()
                    .filter(|(_, t)| {
                        matches!(t.stage, Stage::Pending { since } if since.elapsed() >= self.config.pending_timeout)
                    })
                    .map(|(name, _)| name.clone())
                    .collect();
                names
                    .into_iter()
                    .filter_map(|name| {
                        let tracked = state.tries.remove(&name)?;
                        if let Some(uid) = &tracked.uid {
                            state.finished.insert(uid.clone());
                        }
                        Some((name, tracked))
                    })
                    .collect()
            };
            for (name, tracked) in expired {
                let shared = Arc::clone(&self);
                self.spawn(async move {
                    let events = shared.describe_events(&name).await;
                    let details = format!(
                        "still Pending after {} s (pending_timeout); its events: {events}",
                        shared.config.pending_timeout.as_secs_f64()
                    );
                    shared.finish(tracked, name, PodEnd::NeverRan { details }).await;
                });
            }
        }
    }

    /// A pod's events, oldest first, as `Type Reason: message` lines.
    async fn describe_events(&self, name: &str) -> String {
        let params = ListParams::default().fields(&format!("involvedObject.name={name}"));
        match self.pod_events.list(&params).await {
            Ok(list) => {
                let lines: Vec<String> = list
                    .items
                    .iter()
                    .map(|e| {
                        format!(
                            "{} {}: {}",
                            e.type_.as_deref().unwrap_or(""),
                            e.reason.as_deref().unwrap_or(""),
                            e.message.as_deref().unwrap_or("")
                        )
                    })
                    .collect();
                if lines.is_empty() { "(none)".to_owned() } else { lines.join(" | ") }
            }
            Err(kube::Error::Api(status)) if status.code == 403 => {
                let message = forbidden_message("list", "events", &self.config.namespace, &status.message);
                error!("{message}");
                format!("(cannot list them: {message})")
            }
            Err(error) => format!("(cannot list them: {error})"),
        }
    }

    async fn adopt(self: &Arc<Self>, tries: Vec<WorkItem>) -> Result<AdoptReport, Error> {
        let params = ListParams::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}"));
        let pods = self.pods.list(&params).await.map_err(|error| match &error {
            kube::Error::Api(status) if status.code == 403 => {
                Error::Api(forbidden_message("list", "pods", &self.config.namespace, &status.message))
            }
            _ => Error::Api(format!("listing pods in namespace {}: {error}", self.config.namespace)),
        })?;
        let mut wanted: HashMap<TryKey, WorkItem> = tries.into_iter().map(|item| (item.key.clone(), item)).collect();
        // The newest launch of each wanted try.
        let mut found: HashMap<TryKey, (u32, Pod)> = HashMap::new();
        for pod in pods.items {
            let Some(annotations) = &pod.metadata.annotations else { continue };
            let Some(identity) = PodIdentity::from_annotations(annotations) else { continue };
            if !wanted.contains_key(&identity.key) {
                continue;
            }
            let launch = annotations.get(LAUNCH).and_then(|l| l.parse().ok()).unwrap_or(0);
            if found.get(&identity.key).is_none_or(|(known, _)| launch >= *known) {
                found.insert(identity.key, (launch, pod));
            }
        }
        let mut report = AdoptReport::default();
        for (key, (launch, pod)) in found {
            let (Some(item), Some(name)) = (wanted.remove(&key), pod.metadata.name.clone()) else { continue };
            {
                let mut state = lock(&self.state);
                if state.tries.contains_key(&name) {
                    report.adopted.push(key);
                    continue;
                }
                let stage = Stage::Pending { since: Instant::now() };
                state.tries.insert(name.clone(), Tracked { item, launch, uid: None, stage, started_sent: false });
            }
            self.claim(&name, pod).await;
            report.adopted.push(key);
        }
        report.missing = wanted.into_values().collect();
        Ok(report)
    }
}

/// Spaces pod creates `1 / creates_per_second` apart and pauses them all after a
/// `Retry-After`.
struct Throttle {
    interval: Duration,
    state: Mutex<ThrottleState>,
}

struct ThrottleState {
    next: Instant,
    paused_until: Option<Instant>,
}

impl Throttle {
    fn new(per_second: f64) -> Throttle {
        let interval = if per_second.is_finite() && per_second > 0.0 {
            Duration::from_secs_f64(1.0 / per_second)
        } else {
            Duration::ZERO
        };
        Throttle { interval, state: Mutex::new(ThrottleState { next: Instant::now(), paused_until: None }) }
    }

    /// Waits for this create's slot, and for any pause.
    async fn wait(&self) {
        let slot = {
            let mut state = lock(&self.state);
            let slot = state.next.max(Instant::now());
            state.next = slot + self.interval;
            slot
        };
        tokio::time::sleep_until(slot).await;
        loop {
            let paused_until = lock(&self.state).paused_until;
            match paused_until {
                Some(until) if until > Instant::now() => tokio::time::sleep_until(until).await,
                _ => return,
            }
        }
    }

    fn pause_for(&self, duration: Duration) {
        let until = Instant::now() + duration;
        let mut state = lock(&self.state);
        state.paused_until = Some(state.paused_until.map_or(until, |p| p.max(until)));
        state.next = state.next.max(until);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_throttle_spaces_creates_and_pauses_after_retry_after() {
        let throttle = Throttle::new(10.0);
        let start = Instant::now();
        for _ in 0..20 {
            throttle.wait().await;
        }
        assert_eq!(start.elapsed(), Duration::from_millis(1900));
        throttle.pause_for(Duration::from_secs(3));
        let paused = Instant::now();
        throttle.wait().await;
        assert!(paused.elapsed() >= Duration::from_secs(3));
    }

    #[test]
    fn forbidden_names_verb_resource_namespace_and_the_fix() {
        assert_eq!(
            forbidden_message("create", "pods", "updraft", "pods is forbidden: …"),
            "the scheduler's ServiceAccount may not create pods in namespace updraft: add verb `create` on `pods` to \
             its Role (k8s/base/rbac.yaml). The API server said: pods is forbidden: …"
        );
        assert_eq!(backoff(0), Duration::from_millis(500));
        assert_eq!(backoff(10), Duration::from_secs(15));
    }
}
