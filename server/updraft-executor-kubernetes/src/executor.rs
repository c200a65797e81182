//! [`KubernetesExecutor`]: submits pods at a bounded rate, watches them, reports each try's
//! start and end, and cleans up.
//!
//! Runs on the ambient tokio runtime (the one `new` is called on, the scheduler's): its work is
//! waiting on the API server, never CPU, so it cannot starve the scheduler loop, and the kube
//! client's connection tasks live on that runtime anyway. `submit` only queues the try.
//!
//! Three background tasks: the creator (takes queued tries in order, at `creates_per_second`,
//! at most `max_creates_in_flight` at once, then one task per create with its retries), the
//! watcher and the pending ticker (both in `watch.rs`; the throttle is `throttle.rs`). The
//! tries in flight are a map from pod name to [`Tracked`], under one mutex that is never held
//! across an await.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{debug, error, info, warn};
use updraft_executor::{Executor, TryKey, WorkEvent, WorkItem, WorkOutcome};
use updraft_metrics::single;

use crate::config::{Error, KubernetesConfig, OverrideLookup, PodTemplate};
use crate::merge::reconcile;
use crate::overrides::KubernetesOverride;
use crate::pod::{
    DONE_LABEL, LAUNCH, MANAGED_BY, MANAGED_BY_LABEL, PodIdentity, PodSettings, SCHEDULER_ID_LABEL, generated_pod,
    launch_pod_name, safe_label_value,
};
use crate::result::ResultSource;
use crate::status::{PodState, classify};
use crate::throttle::Throttle;

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

pub(crate) struct Shared {
    pub(crate) pods: Api<Pod>,
    pub(crate) pod_events: Api<Event>,
    pub(crate) config: KubernetesConfig,
    pub(crate) template: Option<Value>,
    pub(crate) events: UnboundedSender<WorkEvent>,
    pub(crate) overrides: OverrideLookup,
    pub(crate) results: Arc<dyn ResultSource>,
    pub(crate) state: Mutex<State>,
    pub(crate) throttle: Throttle,
    queue: UnboundedSender<Launch>,
    pub(crate) tasks: Mutex<JoinSet<()>>,
    pub(crate) handle: tokio::runtime::Handle,
    pub(crate) metrics: PodMetrics,
}

/// Counters of pod launches and their ends, for `/metrics`.
#[derive(Debug, Default)]
pub struct PodMetrics {
    created: AtomicU64,
    create_failures: AtomicU64,
    succeeded: AtomicU64,
    failed: AtomicU64,
    relaunched: AtomicU64,
}

impl PodMetrics {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Default)]
pub(crate) struct State {
    /// The tries in flight, by pod name.
    pub(crate) tries: HashMap<String, Tracked>,
    /// Pods whose end was handled: later events about them change nothing.
    pub(crate) finished: HashSet<String>,
}

/// A try in flight.
pub(crate) struct Tracked {
    pub(crate) item: WorkItem,
    pub(crate) launch: u32,
    pub(crate) uid: Option<String>,
    pub(crate) stage: Stage,
    pub(crate) started_sent: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Stage {
    /// The create request has not succeeded yet.
    Creating,
    Pending {
        since: Instant,
    },
    Running {
        since: Instant,
    },
}

/// How a pod ended, before the result source is asked.
pub(crate) enum PodEnd {
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
    /// Still running well past its task's `execution_timeout`: the pod is deleted.
    Overran {
        details: String,
    },
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
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
            metrics: PodMetrics::default(),
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

    /// Pod launches, failures and live pods in the Prometheus text format.
    pub fn render_metrics(&self, out: &mut String) {
        let m = &self.shared.metrics;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let live = lock(&self.shared.state).tries.len();
        single(out, "updraft_kubernetes_pods_created_total", "counter", "Task pods created.", get(&m.created));
        single(
            out,
            "updraft_kubernetes_pod_create_failures_total",
            "counter",
            "Task tries that failed because their pod could not be created (after retries).",
            get(&m.create_failures),
        );
        single(
            out,
            "updraft_kubernetes_pods_succeeded_total",
            "counter",
            "Task pods that succeeded.",
            get(&m.succeeded),
        );
        single(
            out,
            "updraft_kubernetes_pods_failed_total",
            "counter",
            "Task pods that failed, never started, overran or were deleted.",
            get(&m.failed),
        );
        single(
            out,
            "updraft_kubernetes_pods_relaunched_total",
            "counter",
            "Pods replaced because they failed before their task started.",
            get(&m.relaunched),
        );
        single(
            out,
            "updraft_kubernetes_pods_tracked",
            "gauge",
            "Task tries whose pod is being created or watched.",
            live,
        );
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

    /// Relabels the pods of the tries as this scheduler's and watches them; tries without a pod
    /// are launched again (under the same deterministic name, so a pod created meanwhile is
    /// adopted rather than duplicated).
    fn adopt(&self, items: Vec<WorkItem>) {
        let shared = Arc::clone(&self.shared);
        let queue = self.queue.clone();
        self.shared.spawn(async move {
            let missing = match shared.adopt(items.clone()).await {
                Ok(report) => report.missing,
                Err(error) => {
                    warn!("adopting the pods of a previous scheduler failed ({error}); launching the tries again");
                    items
                }
            };
            for item in missing {
                let _ = queue.send(Launch { item, launch: 0 });
            }
        });
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

/// Appends a line to a try's log (a line in the middle of a try: the end of the try ships the
/// log).
fn write_log(item: &WorkItem, text: &str) {
    if let Err(error) = item.log().append_line(&format!("[kubernetes executor] {text}")) {
        warn!(%error, "cannot write the try's log");
    }
}

/// What a failed create means.
pub(crate) enum CreateError {
    AlreadyExists,
    Transient { message: String, retry_after: Option<Duration> },
    Forbidden(String),
    Invalid(String),
    Other(String),
}

pub(crate) fn classify_create_error(error: &kube::Error) -> CreateError {
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

/// A loud, actionable message for a 403 from RBAC to the scheduler.
pub(crate) fn forbidden_message(verb: &str, resource: &str, namespace: &str, api_message: &str) -> String {
    forbidden_message_for("the scheduler's ServiceAccount", verb, resource, namespace, api_message)
}

/// A loud, actionable message for a 403 from RBAC to `who`.
pub(crate) fn forbidden_message_for(
    who: &str,
    verb: &str,
    resource: &str,
    namespace: &str,
    api_message: &str,
) -> String {
    format!(
        "{who} may not {verb} {resource} in namespace {namespace}: add verb `{verb}` on `{resource}` to its Role \
         (k8s/base/rbac.yaml). The API server said: {api_message}"
    )
}

pub(crate) fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1 << attempt.min(5))).min(Duration::from_secs(15))
}

pub(crate) fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}

impl Shared {
    pub(crate) fn spawn(&self, future: impl Future<Output = ()> + Send + 'static) {
        let mut tasks = lock(&self.tasks);
        while tasks.try_join_next().is_some() {}
        tasks.spawn_on(future, &self.handle);
    }

    /// Writes how a try ended into its log, as the worker could not, and ships the log (the
    /// remote copy is fetched first when this scheduler does not share the workers' volume).
    async fn end_log(&self, item: &WorkItem, lines: &[String]) {
        let text: String = lines.iter().map(|line| format!("[kubernetes executor] {line}\n")).collect();
        self.config.logs.append_and_ship(&item.log(), &text).await;
    }

    pub(crate) fn send(&self, event: WorkEvent) {
        let _ = self.events.send(event);
    }

    pub(crate) fn watch_selector(&self) -> String {
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
            Err(message) => return self.fail_before_pod(name, message, false).await,
        };
        let mut attempt = 0;
        loop {
            self.throttle.wait().await;
            // A create whose response was lost may have happened: once the watcher has seen
            // the pod (or the try ended, and its pod may be gone), creating it again would run
            // the task twice.
            if attempt > 0 && lock(&self.state).tries.get(name).is_none_or(|t| t.uid.is_some()) {
                debug!(pod = %name, "the pod exists after all; no more create attempts");
                return;
            }
            let error = match self.pods.create(&PostParams::default(), &pod).await {
                Ok(created) => {
                    debug!(pod = %name, "pod created");
                    PodMetrics::bump(&self.metrics.created);
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
                        return self.fail_before_pod(name, message, true).await;
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
                    return self.fail_before_pod(name, message, true).await;
                }
                CreateError::Invalid(api_message) => {
                    let message = format!("the API server rejected pod {name}: {api_message}");
                    return self.fail_before_pod(name, message, false).await;
                }
                CreateError::Other(api_message) => {
                    let message = format!("could not create pod {name}: {api_message}");
                    return self.fail_before_pod(name, message, true).await;
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
                self.fail_before_pod(name, message, true).await;
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
                self.fail_before_pod(name, message, true).await;
            }
        }
    }

    /// Ends a try whose pod never existed or cannot be used; the API server's refusal goes into
    /// the try's log, which is shipped.
    async fn fail_before_pod(&self, name: &str, message: String, retryable: bool) {
        let Some(tracked) = lock(&self.state).tries.remove(name) else { return };
        PodMetrics::bump(&self.metrics.create_failures);
        warn!(pod = %name, %message, "try failed before its pod ran");
        self.end_log(&tracked.item, std::slice::from_ref(&message)).await;
        self.send(WorkEvent::Finished { key: tracked.item.key, outcome: WorkOutcome::Failed { message, retryable } });
    }

    /// Acts on a pod's current status (level-triggered).
    pub(crate) fn observe(self: &Arc<Self>, pod: &Pod) {
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
                if !matches!(tracked.stage, Stage::Running { .. }) {
                    tracked.stage = Stage::Running { since: Instant::now() };
                }
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
            PodState::Failed { details, .. } if pod.metadata.deletion_timestamp.is_some() => {
                PodEnd::Failed { details: format!("it was deleted while its task was running ({details})") }
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
    pub(crate) fn relaunch(self: &Arc<Self>, tracked: Tracked, name: String, reason: String) {
        let launch = tracked.launch + 1;
        PodMetrics::bump(&self.metrics.relaunched);
        let message =
            format!("{reason}; launching a new pod (replacement {launch} of {})", self.config.launch_failure_requeues);
        warn!(pod = %name, "{message}");
        write_log(&tracked.item, &message);
        let _ = self.queue.send(Launch { item: tracked.item, launch });
        let shared = Arc::clone(self);
        self.spawn(async move { shared.delete_pod(&name).await });
    }

    /// Reports a try's end and cleans its pod up.
    pub(crate) async fn finish(self: Arc<Self>, tracked: Tracked, name: String, end: PodEnd) {
        let key = tracked.item.key.clone();
        let recorded = match end {
            PodEnd::Succeeded | PodEnd::Failed { .. } => self.results.outcome(&tracked.item).await,
            _ => None,
        };
        let (outcome, failed, never_ran) = match end {
            PodEnd::Succeeded => (recorded.unwrap_or(WorkOutcome::Success), false, false),
            PodEnd::Failed { details } => {
                let message = format!("pod {name} failed: {details}");
                self.end_log(&tracked.item, std::slice::from_ref(&message)).await;
                (recorded.unwrap_or(WorkOutcome::Failed { message, retryable: true }), true, false)
            }
            PodEnd::NeverRan { details } => {
                // Why it never ran is in the pod's events (scheduling, image pulls, volumes):
                // they go into the log, one a line, and into the message.
                let events = self.describe_events(&name).await;
                let message =
                    format!("pod {name} could not run the task: {details}; its events: {}", events.join(" | "));
                let mut lines = vec![format!("pod {name} could not run the task: {details}"), "its events:".to_owned()];
                lines.extend(events.iter().map(|e| format!("  {e}")));
                self.end_log(&tracked.item, &lines).await;
                (WorkOutcome::Failed { message, retryable: true }, true, true)
            }
            PodEnd::Deleted { details } => {
                self.end_log(&tracked.item, std::slice::from_ref(&details)).await;
                (WorkOutcome::Failed { message: details, retryable: true }, true, false)
            }
            PodEnd::Overran { details } => {
                let message = format!("pod {name} {details}");
                self.end_log(&tracked.item, std::slice::from_ref(&message)).await;
                (WorkOutcome::Failed { message, retryable: true }, true, true)
            }
        };
        if let WorkOutcome::Failed { message, .. } = &outcome {
            warn!(pod = %name, %message, "try failed");
        }
        PodMetrics::bump(if failed { &self.metrics.failed } else { &self.metrics.succeeded });
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

#[cfg(test)]
mod tests {
    use super::*;

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
