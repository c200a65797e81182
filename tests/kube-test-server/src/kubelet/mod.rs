//! The simulated scheduler and kubelet of the one node, `fake-node-1`. Each pod gets a task that
//! binds it, pulls its images, builds each container's environment, runs init containers in
//! order and then the main containers, and writes every step as a status update (one MODIFIED
//! event each) and an Event, as a real kubelet would. Pods are stopped through a control
//! channel: graceful deletion, forced removal and eviction. While a pod runs, the kubelet keeps
//! its ConfigMap and Secret volumes up to date, and what `exec` needs of each running container.

mod container;
pub(crate) mod exec;
pub(crate) mod logs;
mod sandbox;
mod volumes;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{Semaphore, watch};

use self::container::{Exit, Image, Launch};
use self::logs::LogBuffer;
use self::volumes::HostVolume;
use crate::api::events::{self, Source};
use crate::api::meta_str;
use crate::store::Resource;
use crate::{Shared, lock, time};

pub(crate) const NODE_NAME: &str = "fake-node-1";
const ANNOTATION_PREFIX: &str = "fake.updraft.dev/";
const EVICTION_MESSAGE: &str = "The node was low on resource: memory. Threshold quantity: 100Mi, available: 42Mi. ";

/// What the control plane asks of a pod's kubelet task.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Control {
    Run,
    /// Graceful deletion: SIGTERM, SIGKILL after the grace period, then remove the pod.
    Terminate(Duration),
    /// The pod was already removed from the store (grace period 0): kill everything.
    StopNow,
    /// Node-pressure eviction: kill everything, the pod ends Failed/Evicted.
    Evict,
}

/// Scripted behaviour from the pod's `fake.updraft.dev/…` annotations.
#[derive(Debug, Clone, Default)]
pub(crate) struct Script {
    /// `exit-code` (scripted image): the main containers' exit code.
    pub(crate) exit_code: i32,
    /// `oom-kill: "true"` (scripted image): containers end OOMKilled, exit 137.
    pub(crate) oom_kill: bool,
    /// `run-ms` (scripted image): how long containers run (default 100 ms).
    pub(crate) run: Duration,
    /// `log` (scripted image): text the containers print.
    pub(crate) log: String,
    /// `start-delay-ms` (any image): extra time in ContainerCreating.
    pub(crate) start_delay: Duration,
    /// `evict-after-ms` (any image): evicted this long after its containers started.
    pub(crate) evict_after: Option<Duration>,
}

impl Script {
    fn from_pod(pod: &Value) -> Script {
        let get = |key: &str| {
            pod.pointer("/metadata/annotations")
                .and_then(|a| a.get(format!("{ANNOTATION_PREFIX}{key}")))
                .and_then(Value::as_str)
        };
        let millis = |key: &str| get(key).and_then(|v| v.trim().parse::<u64>().ok()).map(Duration::from_millis);
        Script {
            exit_code: get("exit-code").and_then(|v| v.trim().parse().ok()).unwrap_or(0),
            oom_kill: get("oom-kill") == Some("true"),
            run: millis("run-ms").unwrap_or(Duration::from_millis(100)),
            log: get("log").unwrap_or("").to_owned(),
            start_delay: millis("start-delay-ms").unwrap_or_default(),
            evict_after: millis("evict-after-ms"),
        }
    }
}

/// What the kubelet keeps for one pod while it exists.
struct PodRuntime {
    control: watch::Sender<Control>,
    logs: Mutex<BTreeMap<String, Arc<LogBuffer>>>,
    /// What exec needs of each running container, by name.
    targets: Mutex<BTreeMap<String, exec::Target>>,
    dir: PathBuf,
}

pub(crate) struct Kubelet {
    processes: Arc<Semaphore>,
    pods: Mutex<HashMap<String, Arc<PodRuntime>>>,
    groups: Mutex<HashSet<i32>>,
    /// Everything the node keeps on the host: `<uid>` (each pod's home), `volumes/<uid>`,
    /// `sandboxes/<uid>/<container>` and `claims/<namespace>/<claim>`.
    root: PathBuf,
    /// The programs of the containers' sandboxes, when volumes are mounted.
    sandbox: Option<sandbox::Tools>,
    /// Numbers exec sessions (their report files, their ids in messages).
    exec_serial: std::sync::atomic::AtomicU64,
}

impl Kubelet {
    /// `Err` says why volumes cannot be mounted on this machine.
    pub(crate) fn new(max_processes: usize, mount_volumes: bool) -> Result<Kubelet, String> {
        let root = std::env::temp_dir().join(format!(
            "updraft-fake-kube-{}-{}",
            std::process::id(),
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
        ));
        let sandbox = if mount_volumes {
            if !rustix::process::geteuid().is_root() {
                return Err("mounting needs root (each container gets a mount namespace of its own)".to_owned());
            }
            Some(sandbox::Tools::find()?)
        } else {
            None
        };
        Ok(Kubelet {
            processes: Arc::new(Semaphore::new(max_processes.max(1))),
            pods: Mutex::new(HashMap::new()),
            groups: Mutex::new(HashSet::new()),
            root,
            sandbox,
            exec_serial: std::sync::atomic::AtomicU64::new(0),
        })
    }

    pub(crate) fn claim_dir(&self, namespace: &str, name: &str) -> PathBuf {
        volumes::claim_path(&self.root.join("claims"), namespace, name)
    }

    /// Tracks a process group the node started (a container's or an exec's), so that dropping
    /// the server kills it.
    pub(crate) fn track_group(&self, pgid: i32, running: bool) {
        if pgid <= 0 {
            return;
        }
        let mut groups = lock(&self.groups);
        if running {
            groups.insert(pgid);
        } else {
            groups.remove(&pgid);
        }
    }

    /// Kills every container process (the server is going away).
    pub(crate) fn kill_all(&self) {
        for pgid in lock(&self.groups).drain() {
            if let Some(pid) = rustix::process::Pid::from_raw(pgid) {
                let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
            }
        }
        if remove_sandboxes(&self.root.join("sandboxes")) {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }

    fn runtime(&self, uid: &str) -> Option<Arc<PodRuntime>> {
        lock(&self.pods).get(uid).cloned()
    }

    fn forget(&self, uid: &str) {
        if let Some(runtime) = lock(&self.pods).remove(uid) {
            let _ = std::fs::remove_dir_all(&runtime.dir);
            if remove_sandboxes(&self.root.join("sandboxes").join(uid)) {
                let _ = std::fs::remove_dir_all(self.root.join("volumes").join(uid));
            }
        }
    }
}

/// Removes the container sandboxes below `dir` (`<uid>/<container>` or `<container>`
/// folders), checking first that each container root is empty on the host, as it is when its
/// mounts stayed in the container's namespace. If one is not, nothing is removed: deleting a
/// tree with the host's `/` mounted inside would delete the host's files. True if `dir` is gone.
fn remove_sandboxes(dir: &Path) -> bool {
    fn roots(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if entry.file_name() == "root" {
                out.push(path);
            } else if entry.file_type().is_ok_and(|t| t.is_dir()) && entry.file_name() != "status" {
                roots(&path, out);
            }
        }
    }
    let mut found = Vec::new();
    roots(dir, &mut found);
    for root in found {
        if let Err(error) = std::fs::remove_dir(&root)
            && error.kind() != std::io::ErrorKind::NotFound
        {
            tracing::error!(%error, root = %root.display(), "a container root is not empty on the host: keeping the node's files");
            return false;
        }
    }
    std::fs::remove_dir_all(dir).is_ok() || !dir.exists()
}

/// The log buffer of one container of a pod, if it has started.
pub(crate) fn logs(shared: &Shared, uid: &str, container: &str) -> Option<Arc<LogBuffer>> {
    shared.kubelet.runtime(uid).and_then(|r| lock(&r.logs).get(container).cloned())
}

/// What exec needs of container `container` of pod `uid`, if it is running.
pub(crate) fn exec_target(shared: &Shared, uid: &str, container: &str) -> Option<exec::Target> {
    shared.kubelet.runtime(uid).and_then(|r| lock(&r.targets).get(container).cloned())
}

/// The command that runs `argv` in a running container, and a number for this exec.
pub(crate) async fn prepare_exec(
    shared: &Shared,
    target: &exec::Target,
    argv: &[String],
) -> (u64, Result<exec::Prepared, String>) {
    let serial = shared.kubelet.exec_serial.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    (serial, exec::prepare(shared.kubelet.sandbox.as_ref(), target, argv, serial).await)
}

/// Starts the kubelet task of a newly created pod.
pub(crate) fn start_pod(shared: &Arc<Shared>, pod: &Value) {
    let uid = meta_str(pod, "uid").to_owned();
    let (control, receiver) = watch::channel(Control::Run);
    let runtime = Arc::new(PodRuntime {
        control,
        logs: Mutex::new(BTreeMap::new()),
        targets: Mutex::new(BTreeMap::new()),
        dir: shared.kubelet.root.join(&uid),
    });
    lock(&shared.kubelet.pods).insert(uid.clone(), runtime.clone());
    let task = PodTask {
        shared: shared.clone(),
        namespace: meta_str(pod, "namespace").to_owned(),
        name: meta_str(pod, "name").to_owned(),
        uid,
        script: Script::from_pod(pod),
        control: receiver,
        runtime,
        volumes: BTreeMap::new(),
    };
    tokio::spawn(task.run());
}

/// Graceful deletion was requested (`pod` now has a deletionTimestamp).
pub(crate) fn terminate(shared: &Shared, pod: &Value, grace: Duration) {
    let uid = meta_str(pod, "uid");
    for status in pod.pointer("/status/containerStatuses").and_then(Value::as_array).into_iter().flatten() {
        if status.pointer("/state/running").is_some() {
            let name = status.get("name").and_then(Value::as_str).unwrap_or("");
            let field_path = format!("spec.containers{{{name}}}");
            let message = format!("Stopping container {name}");
            events::record(shared, pod, Source::Kubelet, false, "Killing", &message, Some(&field_path));
        }
    }
    if let Some(runtime) = shared.kubelet.runtime(uid) {
        runtime.control.send_if_modified(|c| {
            let run = *c == Control::Run;
            if run {
                *c = Control::Terminate(grace);
            }
            run
        });
    }
}

/// The pod was removed from the store at once: kill its containers, forget it.
pub(crate) fn stop_now(shared: &Shared, uid: &str) {
    if let Some(runtime) = shared.kubelet.runtime(uid) {
        runtime.control.send_replace(Control::StopNow);
    }
    shared.kubelet.forget(uid);
}

/// Evicts a pod (test hook). False if it does not exist or already ended.
pub(crate) fn evict(shared: &Shared, namespace: &str, name: &str) -> bool {
    let Some(uid) = shared.store().get(Resource::Pods, namespace, name).map(|p| meta_str(p, "uid").to_owned()) else {
        return false;
    };
    let Some(runtime) = shared.kubelet.runtime(&uid) else { return false };
    runtime.control.send_if_modified(|c| {
        let run = *c == Control::Run;
        if run {
            *c = Control::Evict;
        }
        run
    })
}

/// The kubelet's periodic sync of a running pod's ConfigMap, Secret, projected and downward API
/// volumes: every `volume_sync_period` their files are brought up to date (an atomic `..data`
/// swap), until the pod is stopped, gone or ended. A source that cannot be read gets one
/// `FailedMount` event per new reason and leaves the files as they were.
async fn sync_volumes(
    shared: Arc<Shared>,
    (namespace, name, uid): (String, String, String),
    dir: PathBuf,
    mut control: watch::Receiver<Control>,
) {
    let mut reported: Option<String> = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(shared.config.volume_sync_period) => {}
            changed = control.changed() => if changed.is_err() { return },
        }
        if *control.borrow() != Control::Run {
            return;
        }
        let pod = shared.store().get(Resource::Pods, &namespace, &name).filter(|p| meta_str(p, "uid") == uid).cloned();
        let Some(pod) = pod else { return };
        if matches!(pod.pointer("/status/phase").and_then(Value::as_str), Some("Succeeded" | "Failed")) {
            return;
        }
        let errors = {
            let (shared, pod, dir) = (shared.clone(), pod.clone(), dir.clone());
            tokio::task::spawn_blocking(move || volumes::sync(&shared, &pod, &dir)).await.unwrap_or_default()
        };
        match errors.into_iter().next() {
            Some(message) if reported.as_ref() != Some(&message) => {
                events::record(&shared, &pod, Source::Kubelet, true, "FailedMount", &message, None);
                reported = Some(message);
            }
            Some(_) => {}
            None => reported = None,
        }
    }
}

/// Sets (or adds) a pod condition, keeping its transition time when the status is unchanged.
fn set_condition(pod: &mut Value, kind: &str, status: bool, reason: Option<&str>, message: Option<&str>) {
    let status_text = if status { "True" } else { "False" };
    if !pod["status"]["conditions"].is_array() {
        pod["status"]["conditions"] = json!([]);
    }
    let Some(conditions) = pod["status"]["conditions"].as_array_mut() else { return };
    let mut condition =
        json!({"type": kind, "status": status_text, "lastProbeTime": null, "lastTransitionTime": time::now_rfc3339()});
    if let Some(reason) = reason {
        condition["reason"] = json!(reason);
    }
    if let Some(message) = message {
        condition["message"] = json!(message);
    }
    match conditions.iter_mut().find(|c| c.get("type").and_then(Value::as_str) == Some(kind)) {
        Some(existing) => {
            if existing.get("status").and_then(Value::as_str) == Some(status_text) {
                condition["lastTransitionTime"] = existing["lastTransitionTime"].clone();
            }
            *existing = condition;
        }
        None => conditions.push(condition),
    }
}

/// Which list of container statuses a container belongs to.
fn statuses_key(init: bool) -> &'static str {
    if init { "initContainerStatuses" } else { "containerStatuses" }
}

fn container_status<'a>(pod: &'a mut Value, init: bool, name: &str) -> Option<&'a mut Value> {
    pod["status"][statuses_key(init)]
        .as_array_mut()?
        .iter_mut()
        .find(|s| s.get("name").and_then(Value::as_str) == Some(name))
}

fn container_id(uid: &str, name: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in uid.bytes().chain(name.bytes()) {
        hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("containerd://{hash:016x}{:016x}{hash:016x}{:016x}", hash.rotate_left(17), hash.rotate_left(31))
}

/// A container of the pod spec, with what the kubelet learnt about it.
struct Spec {
    name: String,
    init: bool,
    value: Value,
    image: Image,
}

struct PodTask {
    shared: Arc<Shared>,
    namespace: String,
    name: String,
    uid: String,
    script: Script,
    control: watch::Receiver<Control>,
    runtime: Arc<PodRuntime>,
    /// The pod's volumes on the host, once set up (with `mount_volumes`).
    volumes: BTreeMap<String, HostVolume>,
}

/// Why the kubelet stopped driving a pod before its containers finished.
struct Interrupted;

impl PodTask {
    /// Updates the stored pod (if it is still this pod) and returns the new version.
    fn update(&self, change: impl FnOnce(&mut Value)) -> Option<Value> {
        let mut store = self.shared.store();
        let current = store.get(Resource::Pods, &self.namespace, &self.name)?;
        if meta_str(current, "uid") != self.uid {
            return None;
        }
        let mut pod = current.clone();
        change(&mut pod);
        if pod == *current {
            return Some(pod);
        }
        store.replace(Resource::Pods, &self.namespace, &self.name, pod)
    }

    fn current(&self) -> Option<Value> {
        let store = self.shared.store();
        store.get(Resource::Pods, &self.namespace, &self.name).filter(|p| meta_str(p, "uid") == self.uid).cloned()
    }

    fn event(&self, source: Source, warning: bool, reason: &str, message: &str, container: Option<&Spec>) {
        let Some(pod) = self.current() else { return };
        let field_path =
            container.map(|c| format!("spec.{}{{{}}}", if c.init { "initContainers" } else { "containers" }, c.name));
        events::record(&self.shared, &pod, source, warning, reason, message, field_path.as_deref());
    }

    fn stopping(&self) -> bool {
        *self.control.borrow() != Control::Run
    }

    /// Sleeps, unless the pod is told to stop first.
    async fn pause(&mut self, duration: Duration) -> Result<(), Interrupted> {
        if self.stopping() {
            return Err(Interrupted);
        }
        tokio::select! {
            _ = tokio::time::sleep(duration) => Ok(()),
            _ = self.control.changed() => Err(Interrupted),
        }
    }

    fn set_waiting(&self, spec: &Spec, reason: &str, message: Option<&str>) {
        self.update(|pod| {
            if let Some(status) = container_status(pod, spec.init, &spec.name) {
                let mut waiting = json!({"reason": reason});
                if let Some(message) = message {
                    waiting["message"] = json!(message);
                }
                status["state"] = json!({"waiting": waiting});
            }
        });
    }

    async fn run(mut self) {
        // Whether the containers finished or the pod was stopped, the control says what remains.
        let _ = self.drive().await;
        let control = *self.control.borrow();
        match control {
            Control::Run => {}
            Control::StopNow => {}
            Control::Terminate(_) => {
                // The kubelet's last status update (a terminal phase), then the pod goes.
                self.finish_containers(137);
                self.update(|pod| {
                    let succeeded = pod["status"]["containerStatuses"]
                        .as_array()
                        .is_some_and(|s| s.iter().all(|c| c.pointer("/state/terminated/exitCode") == Some(&json!(0))));
                    pod["status"]["phase"] = json!(if succeeded { "Succeeded" } else { "Failed" });
                    let reason = if succeeded { "PodCompleted" } else { "PodFailed" };
                    set_condition(pod, "Ready", false, Some(reason), None);
                    set_condition(pod, "ContainersReady", false, Some(reason), None);
                });
                let mut store = self.shared.store();
                if store
                    .get(Resource::Pods, &self.namespace, &self.name)
                    .is_some_and(|p| meta_str(p, "uid") == self.uid)
                {
                    store.remove(Resource::Pods, &self.namespace, &self.name);
                }
                drop(store);
                self.shared.kubelet.forget(&self.uid);
            }
            Control::Evict => {
                let message = EVICTION_MESSAGE.to_owned();
                self.event(Source::Kubelet, true, "Evicted", &message, None);
                self.finish_containers(137);
                self.update(|pod| {
                    pod["status"]["phase"] = json!("Failed");
                    pod["status"]["reason"] = json!("Evicted");
                    pod["status"]["message"] = json!(message);
                    set_condition(pod, "DisruptionTarget", true, Some("TerminationByKubelet"), Some(&message));
                    set_condition(pod, "Ready", false, Some("PodFailed"), None);
                    set_condition(pod, "ContainersReady", false, Some("PodFailed"), None);
                });
            }
        }
    }

    /// Marks every container that has not terminated as terminated with `code`.
    fn finish_containers(&self, code: i32) {
        let now = time::now_rfc3339();
        self.update(|pod| {
            for init in [true, false] {
                for status in pod["status"][statuses_key(init)].as_array_mut().into_iter().flatten() {
                    if status.pointer("/state/terminated").is_some() {
                        continue;
                    }
                    let started = status.pointer("/state/running/startedAt").cloned();
                    let mut terminated = json!({"exitCode": code, "reason": "Error", "finishedAt": now});
                    if let Some(started) = started {
                        terminated["startedAt"] = started;
                        terminated["containerID"] = status["containerID"].clone();
                    } else {
                        terminated["reason"] = json!("ContainerStatusUnknown");
                        terminated["message"] = json!("The container could not be located when the pod was terminated");
                    }
                    status["state"] = json!({"terminated": terminated});
                    status["ready"] = json!(false);
                    status["started"] = json!(false);
                }
            }
        });
    }

    /// Drives the pod from Pending to its end; `Err` if it was told to stop first.
    async fn drive(&mut self) -> Result<(), Interrupted> {
        self.schedule().await?;
        let Some(pod) = self.current() else { return Err(Interrupted) };
        let worker = self.shared.config.worker_binary.clone();
        let specs = |list: &str, init: bool| -> Vec<Spec> {
            pod.pointer(&format!("/spec/{list}"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|c| Spec {
                    name: c.get("name").and_then(Value::as_str).unwrap_or("").to_owned(),
                    init,
                    value: c.clone(),
                    image: container::classify(c.get("image").and_then(Value::as_str).unwrap_or(""), worker.as_deref()),
                })
                .collect()
        };
        let init_specs = specs("initContainers", true);
        let main_specs = specs("containers", false);
        self.initial_status(&init_specs, &main_specs);
        self.pause(self.script.start_delay).await?;
        if self.shared.kubelet.sandbox.is_some() {
            self.set_up_volumes().await?;
        }

        for spec in &init_specs {
            let launch = self.prepare(spec).await?;
            let exit = self.run_container(spec, launch).await?;
            if exit.code != 0 {
                self.end(false);
                return Ok(());
            }
        }
        if !init_specs.is_empty() {
            self.update(|pod| set_condition(pod, "Initialized", true, None, None));
        }
        let mut launches = Vec::new();
        for spec in &main_specs {
            launches.push(self.prepare(spec).await?);
        }
        if let Some(after) = self.script.evict_after {
            let runtime = self.runtime.clone();
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                runtime.control.send_if_modified(|c| {
                    let run = *c == Control::Run;
                    if run {
                        *c = Control::Evict;
                    }
                    run
                });
            });
        }
        let this = &*self;
        let runs = main_specs.iter().zip(launches).map(|(spec, launch)| this.run_container(spec, launch));
        let exits = futures_util::future::join_all(runs).await;
        if self.stopping() {
            return Err(Interrupted);
        }
        let all_ok = exits.iter().all(|e| matches!(e, Ok(exit) if exit.code == 0));
        self.end(all_ok);
        Ok(())
    }

    /// Sets up the pod's volumes, retrying (with a `FailedMount` event for each new reason) while
    /// a ConfigMap or Secret they need is missing, as the kubelet's volume manager does.
    async fn set_up_volumes(&mut self) -> Result<(), Interrupted> {
        let mut reported = None;
        loop {
            let Some(pod) = self.current() else { return Err(Interrupted) };
            let dir = self.shared.kubelet.root.join("volumes").join(&self.uid);
            match volumes::set_up(&self.shared, &pod, &dir, &self.shared.kubelet.root.join("claims")) {
                Ok(volumes) => {
                    self.volumes = volumes;
                    tokio::spawn(sync_volumes(
                        self.shared.clone(),
                        (self.namespace.clone(), self.name.clone(), self.uid.clone()),
                        dir,
                        self.control.clone(),
                    ));
                    return Ok(());
                }
                Err(message) => {
                    if reported.as_ref() != Some(&message) {
                        self.event(Source::Kubelet, true, "FailedMount", &message, None);
                        reported = Some(message);
                    }
                    self.pause(Duration::from_millis(500)).await?;
                }
            }
        }
    }

    /// Binds the pod to the node, waiting while the node is cordoned.
    async fn schedule(&mut self) -> Result<(), Interrupted> {
        let mut unschedulable = self.shared.unschedulable.subscribe();
        let mut reported = false;
        while *unschedulable.borrow_and_update() {
            if !reported {
                reported = true;
                let message = "0/1 nodes are available: 1 node(s) were unschedulable. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.";
                self.update(|pod| set_condition(pod, "PodScheduled", false, Some("Unschedulable"), Some(message)));
                self.event(Source::Scheduler, true, "FailedScheduling", message, None);
            }
            if self.stopping() {
                return Err(Interrupted);
            }
            tokio::select! {
                changed = unschedulable.changed() => if changed.is_err() { return Err(Interrupted) },
                _ = self.control.changed() => return Err(Interrupted),
            }
        }
        self.pause(self.shared.config.kubelet_step).await?;
        self.update(|pod| {
            pod["spec"]["nodeName"] = json!(NODE_NAME);
            set_condition(pod, "PodScheduled", true, None, None);
        });
        let message = format!("Successfully assigned {}/{} to {NODE_NAME}", self.namespace, self.name);
        self.event(Source::Scheduler, false, "Scheduled", &message, None);
        Ok(())
    }

    fn initial_status(&self, init_specs: &[Spec], main_specs: &[Spec]) {
        let now = time::now_rfc3339();
        let waiting = |spec: &Spec, reason: &str| {
            json!({
                "name": spec.name,
                "state": {"waiting": {"reason": reason}},
                "lastState": {},
                "ready": false,
                "restartCount": 0,
                "image": spec.value.get("image").cloned().unwrap_or(Value::Null),
                "imageID": "",
                "started": false,
            })
        };
        let has_init = !init_specs.is_empty();
        let main_reason = if has_init { "PodInitializing" } else { "ContainerCreating" };
        let unready: Vec<&str> = main_specs.iter().map(|s| s.name.as_str()).collect();
        let message = format!("containers with unready status: [{}]", unready.join(" "));
        self.update(|pod| {
            let status = &mut pod["status"];
            status["hostIP"] = json!("127.0.0.1");
            status["hostIPs"] = json!([{"ip": "127.0.0.1"}]);
            status["podIP"] = json!("127.0.0.1");
            status["podIPs"] = json!([{"ip": "127.0.0.1"}]);
            status["startTime"] = json!(now);
            if has_init {
                status["initContainerStatuses"] =
                    json!(init_specs.iter().map(|s| waiting(s, "PodInitializing")).collect::<Vec<_>>());
            }
            status["containerStatuses"] = json!(main_specs.iter().map(|s| waiting(s, main_reason)).collect::<Vec<_>>());
            set_condition(pod, "PodReadyToStartContainers", true, None, None);
            if has_init {
                set_condition(
                    pod,
                    "Initialized",
                    false,
                    Some("ContainersNotInitialized"),
                    Some("containers with incomplete status: [init]"),
                );
            } else {
                set_condition(pod, "Initialized", true, None, None);
            }
            set_condition(pod, "Ready", false, Some("ContainersNotReady"), Some(&message));
            set_condition(pod, "ContainersReady", false, Some("ContainersNotReady"), Some(&message));
        });
    }

    /// Pulls the image and builds the environment; waits (in the waiting reason a kubelet would
    /// show) for as long as either fails.
    async fn prepare(&mut self, spec: &Spec) -> Result<Option<Launch>, Interrupted> {
        let image = spec.value.get("image").and_then(Value::as_str).unwrap_or("").to_owned();
        let step = self.shared.config.kubelet_step;
        match &spec.image {
            Image::Invalid => {
                let message = format!(
                    "Failed to apply default image tag \"{image}\": couldn't parse image name \"{image}\": invalid reference format"
                );
                self.event(Source::Kubelet, true, "InspectFailed", &message, Some(spec));
                self.event(Source::Kubelet, true, "Failed", "Error: InvalidImageName", Some(spec));
                self.set_waiting(spec, "InvalidImageName", Some(&message));
                self.pause(Duration::MAX).await?;
            }
            Image::Missing(message) => {
                let message = message.clone();
                let mut backoff = self.shared.config.image_pull_backoff_after;
                loop {
                    self.event(Source::Kubelet, false, "Pulling", &format!("Pulling image \"{image}\""), Some(spec));
                    self.pause(step).await?;
                    self.event(Source::Kubelet, true, "Failed", &message, Some(spec));
                    self.event(Source::Kubelet, true, "Failed", "Error: ErrImagePull", Some(spec));
                    self.set_waiting(spec, "ErrImagePull", Some(&message));
                    self.pause(backoff).await?;
                    let back_off = format!("Back-off pulling image \"{image}\"");
                    self.event(Source::Kubelet, false, "BackOff", &back_off, Some(spec));
                    self.event(Source::Kubelet, true, "Failed", "Error: ImagePullBackOff", Some(spec));
                    self.set_waiting(spec, "ImagePullBackOff", Some(&back_off));
                    self.pause(backoff).await?;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
            Image::Worker(_) | Image::Shell | Image::Scripted => {}
        }
        if spec.value.get("imagePullPolicy").and_then(Value::as_str) == Some("Always") {
            self.event(Source::Kubelet, false, "Pulling", &format!("Pulling image \"{image}\""), Some(spec));
            self.pause(step).await?;
            let message = format!(
                "Successfully pulled image \"{image}\" in 12ms (12ms including waiting). Image size: 2152262 bytes."
            );
            self.event(Source::Kubelet, false, "Pulled", &message, Some(spec));
        } else {
            let message = format!("Container image \"{image}\" already present on machine");
            self.event(Source::Kubelet, false, "Pulled", &message, Some(spec));
        }
        let mut reported = false;
        let env = loop {
            let Some(pod) = self.current() else { return Err(Interrupted) };
            match container::environment(&self.shared, &pod, &spec.value) {
                Ok(env) => break env,
                Err(message) => {
                    if !reported {
                        reported = true;
                        self.event(Source::Kubelet, true, "Failed", &format!("Error: {message}"), Some(spec));
                        self.set_waiting(spec, "CreateContainerConfigError", Some(&message));
                    }
                    // The kubelet retries: a Secret created later lets the container start.
                    self.pause(Duration::from_millis(200)).await?;
                }
            }
        };
        if spec.image == Image::Scripted {
            return Ok(None);
        }
        let port = self.shared.port.get().copied().unwrap_or(0);
        let mut full_env = container::base_env(&self.name, port, &self.runtime.dir);
        full_env.extend(env);
        let argv = container::argv(&spec.image, &spec.value, &full_env);
        let working_dir =
            spec.value.get("workingDir").and_then(Value::as_str).filter(|d| !d.is_empty()).map(PathBuf::from);
        if let Some(tools) = self.shared.kubelet.sandbox.clone() {
            let _ = std::fs::create_dir_all(&self.runtime.dir);
            let mounts = loop {
                match volumes::container_mounts(&self.volumes, &spec.value) {
                    Ok(mounts) => break mounts,
                    Err(message) => {
                        self.event(Source::Kubelet, true, "Failed", &format!("Error: {message}"), Some(spec));
                        self.set_waiting(spec, "CreateContainerConfigError", Some(&message));
                        self.pause(Duration::from_millis(500)).await?;
                    }
                }
            };
            let (launch_argv, failure) = match self.sandbox_argv(&tools, spec, &mounts, working_dir.as_deref(), &argv) {
                Ok(wrapped) => (wrapped, None),
                Err(message) => (argv, Some(message)),
            };
            let dir = self.runtime.dir.clone();
            return Ok(Some(Launch { argv: launch_argv, env: full_env, dir, failure, report: self.report_path(spec) }));
        }
        let dir = match working_dir {
            Some(dir) => dir,
            None => {
                let _ = std::fs::create_dir_all(&self.runtime.dir);
                self.runtime.dir.clone()
            }
        };
        Ok(Some(Launch { argv, env: full_env, dir, failure: None, report: None }))
    }

    /// Where the sandbox of `spec` reports a failed set-up.
    fn report_path(&self, spec: &Spec) -> Option<PathBuf> {
        self.shared.kubelet.sandbox.as_ref()?;
        Some(self.sandbox_dir(spec).join("status").join("start-error"))
    }

    fn sandbox_dir(&self, spec: &Spec) -> PathBuf {
        self.shared.kubelet.root.join("sandboxes").join(&self.uid).join(&spec.name)
    }

    /// The argv running `argv` in the container's own view of the filesystem; `Err` is the
    /// runtime's message for a mount that cannot be made.
    fn sandbox_argv(
        &self,
        tools: &sandbox::Tools,
        spec: &Spec,
        mounts: &[sandbox::Mount],
        working_dir: Option<&Path>,
        argv: &[String],
    ) -> Result<Vec<String>, String> {
        let probe = |path: &Path| match std::fs::metadata(path) {
            Ok(meta) if meta.is_dir() => sandbox::Probe::Dir,
            Ok(_) => sandbox::Probe::File,
            Err(_) => sandbox::Probe::Missing,
        };
        let plan = sandbox::plan(mounts, probe, resolve_on_host)?;
        let dir = self.sandbox_dir(spec);
        let places = sandbox::Places {
            root: dir.join("root"),
            scratch: dir.join("scratch"),
            status: dir.join("status"),
            report: dir.join("status").join("start-error"),
            home: self.runtime.dir.clone(),
        };
        for folder in [&places.root, &places.scratch, &places.status] {
            std::fs::create_dir_all(folder).map_err(|e| format!("creating {}: {e}", folder.display()))?;
        }
        let _ = std::fs::remove_file(&places.report);
        let read_only_root =
            spec.value.pointer("/securityContext/readOnlyRootFilesystem").and_then(Value::as_bool).unwrap_or(false);
        Ok(sandbox::wrap(tools, &places, &plan, read_only_root, working_dir, argv))
    }

    /// Creates, starts and waits for one container, recording each step. `Err` if the pod was
    /// told to stop before the container started.
    async fn run_container(&self, spec: &Spec, launch: Option<Launch>) -> Result<Exit, Interrupted> {
        let log = Arc::new(LogBuffer::new());
        lock(&self.runtime.logs).insert(spec.name.clone(), log.clone());
        let mut control = self.control.clone();
        // Real processes wait for a slot so that the machine is not swamped.
        let _permit = match &launch {
            Some(_) => {
                if *control.borrow_and_update() != Control::Run {
                    return Err(Interrupted);
                }
                tokio::select! {
                    permit = self.shared.kubelet.processes.clone().acquire_owned() => permit.ok(),
                    _ = control.changed() => return Err(Interrupted),
                }
            }
            None => None,
        };
        if let Some(launch) = &launch
            && let Some(message) = &launch.failure
        {
            return Ok(self.start_failed(spec, &log, runtime_error(message)));
        }
        if let Some(launch) = &launch
            && !launch.dir.is_dir()
        {
            let message = format!(
                "failed to create containerd task: failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: chdir to cwd ({:?}) set in config.json failed: no such file or directory: unknown",
                launch.dir
            );
            return Ok(self.start_failed(spec, &log, message));
        }
        self.event(Source::Kubelet, false, "Created", &format!("Created container: {}", spec.name), Some(spec));
        let started_at = time::now_rfc3339();
        let id = container_id(&self.uid, &spec.name);
        // What exec will need once the process runs (scripted containers have no process).
        let exec_target = launch.as_ref().map(|launch| exec::Target {
            pid: 0,
            env: launch.env.clone(),
            dir: launch.dir.clone(),
            image: spec.image.clone(),
            report_dir: launch.report.as_ref().and_then(|r| r.parent().map(Path::to_owned)),
        });
        let mark_started = |pid: i32| {
            if let Some(mut target) = exec_target {
                target.pid = pid;
                lock(&self.runtime.targets).insert(spec.name.clone(), target);
            }
            self.update(|pod| {
                if let Some(status) = container_status(pod, spec.init, &spec.name) {
                    status["state"] = json!({"running": {"startedAt": started_at}});
                    status["ready"] = json!(!spec.init);
                    status["started"] = json!(true);
                    status["containerID"] = json!(id);
                    status["imageID"] =
                        json!(format!("{}@sha256:{}", status["image"].as_str().unwrap_or(""), "0".repeat(64)));
                }
                if !spec.init {
                    pod["status"]["phase"] = json!("Running");
                    let all_ready = pod["status"]["containerStatuses"]
                        .as_array()
                        .is_some_and(|s| s.iter().all(|c| c.get("ready") == Some(&json!(true))));
                    if all_ready {
                        set_condition(pod, "Ready", true, None, None);
                        set_condition(pod, "ContainersReady", true, None, None);
                    }
                }
            });
            self.event(Source::Kubelet, false, "Started", &format!("Started container {}", spec.name), Some(spec));
        };
        let exit = match launch {
            None => {
                mark_started(0);
                container::run_scripted(&self.script, &log, control).await
            }
            Some(launch) => {
                let report = launch.report.clone();
                match container::run_process(&self.shared.kubelet, launch, log.clone(), control, mark_started).await {
                    // The sandbox could not set the container up: the runtime's error, not an exit.
                    Ok(exit) => match report.and_then(|r| std::fs::read_to_string(r).ok()) {
                        Some(message) => return Ok(self.start_failed(spec, &log, runtime_error(&message))),
                        None => exit,
                    },
                    Err(message) => return Ok(self.start_failed(spec, &log, message)),
                }
            }
        };
        lock(&self.runtime.targets).remove(&spec.name);
        log.finish();
        if exit.reason == "OOMKilled" {
            self.event(
                Source::Kubelet,
                true,
                "OOMKilling",
                &format!("Memory cgroup out of memory: Killed process of container {} in pod {}", spec.name, self.name),
                Some(spec),
            );
        }
        let message = exit.message.clone().or_else(|| self.termination_message(spec, &log, exit.code));
        let finished_at = time::now_rfc3339();
        self.update(|pod| {
            if let Some(status) = container_status(pod, spec.init, &spec.name) {
                let mut terminated = json!({
                    "exitCode": exit.code,
                    "reason": exit.reason,
                    "startedAt": started_at,
                    "finishedAt": finished_at,
                    "containerID": id,
                });
                if let Some(message) = &message {
                    terminated["message"] = json!(message);
                }
                status["state"] = json!({"terminated": terminated});
                status["ready"] = json!(false);
                status["started"] = json!(false);
            }
        });
        Ok(exit)
    }

    /// `FallbackToLogsOnError`: the tail of the log becomes the termination message.
    fn termination_message(&self, spec: &Spec, log: &LogBuffer, code: i32) -> Option<String> {
        let policy = spec.value.get("terminationMessagePolicy").and_then(Value::as_str);
        if code == 0 || policy != Some("FallbackToLogsOnError") {
            return None;
        }
        let (lines, _) = log.read_from(0);
        let text: Vec<u8> = lines.iter().rev().take(80).rev().flat_map(|l| l.text.iter().copied()).collect();
        let start = text.len().saturating_sub(2048);
        Some(String::from_utf8_lossy(&text[start..]).into_owned())
    }

    fn start_failed(&self, spec: &Spec, log: &LogBuffer, message: String) -> Exit {
        log.finish();
        self.event(Source::Kubelet, true, "Failed", &format!("Error: {message}"), Some(spec));
        let now = time::now_rfc3339();
        let id = container_id(&self.uid, &spec.name);
        self.update(|pod| {
            if let Some(status) = container_status(pod, spec.init, &spec.name) {
                status["state"] = json!({"terminated": {
                    "exitCode": 128, "reason": "StartError", "message": message,
                    "startedAt": "1970-01-01T00:00:00Z", "finishedAt": now, "containerID": id,
                }});
            }
        });
        Exit { code: 128, reason: "StartError", message: None }
    }

    /// The pod's terminal phase, once all its containers have ended.
    fn end(&self, succeeded: bool) {
        let reason = if succeeded { "PodCompleted" } else { "PodFailed" };
        self.update(|pod| {
            pod["status"]["phase"] = json!(if succeeded { "Succeeded" } else { "Failed" });
            set_condition(pod, "Ready", false, Some(reason), None);
            set_condition(pod, "ContainersReady", false, Some(reason), None);
            set_condition(pod, "PodReadyToStartContainers", false, None, None);
        });
    }
}

/// A path with the host's symbolic links resolved as far as it exists (`/var/run/x` →
/// `/run/x`), as a container whose root is the host's sees it.
fn resolve_on_host(path: &Path) -> PathBuf {
    let mut existing = path.to_owned();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = std::fs::canonicalize(&existing) {
            return rest.iter().rev().fold(real, |acc: PathBuf, part: &std::ffi::OsString| acc.join(part));
        }
        match (existing.file_name().map(ToOwned::to_owned), existing.parent().map(Path::to_owned)) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent;
            }
            _ => return path.to_owned(),
        }
    }
}

/// The container runtime's wording of a failed start.
fn runtime_error(message: &str) -> String {
    let init =
        if message.starts_with("exec:") || message.starts_with("chdir") { "" } else { "error during container init: " };
    format!(
        "failed to create containerd task: failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: {init}{message}: unknown"
    )
}
