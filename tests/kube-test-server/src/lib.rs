//! A faithful Kubernetes API test server: an in-process HTTP server that speaks the real
//! Kubernetes wire protocol (core/v1 pods with log, status and exec, events, namespaces, secrets,
//! configmaps; apps/v1 deployments), authorises every request against the RBAC manifests of
//! `k8s/`, and runs a simulated scheduler and kubelet that move pods through their phases by
//! running real local processes or scripted behaviour, plus the admission steps a pod gets on
//! create (its ServiceAccount token; on request, EKS's IAM roles for service accounts).
//!
//! A test starts one with [`FakeKube::start`], points a client at it with
//! [`FakeKube::write_kubeconfig`] (kube-rs and `kubectl` both read it) and steers it with the test
//! hooks on [`FakeKube`]: compaction, closing watches, fault injection, quota, unschedulable node.

mod admission;
mod api;
mod gate;
mod kinds;
mod kubelet;
mod patch;
mod protobuf;
mod rbac;
mod selector;
mod status;
mod store;
mod time;
mod tls;
mod validate;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use serde_json::Value;

pub use crate::gate::{Fault, FaultKind, RequestRecord};
use crate::store::Resource;

/// How a [`FakeKube`] is set up; `FakeKubeConfig::default()` suits most tests.
#[derive(Clone, Debug)]
pub struct FakeKubeConfig {
    /// A folder of YAML manifests (ServiceAccount, Role, RoleBinding, ClusterRole,
    /// ClusterRoleBinding; other kinds are ignored). Defaults to the project's `k8s/base`.
    pub rbac_dir: Option<PathBuf>,
    /// The program run for containers whose image is Updraft's own (`updraft/…`, `updraft:…`).
    /// Without it such images fail to pull.
    pub worker_binary: Option<PathBuf>,
    /// How many container processes may run at once; more wait in `ContainerCreating`.
    pub max_running_processes: usize,
    /// How many watch events are kept for replay; older resourceVersions get 410 Expired.
    pub history_limit: usize,
    /// How often a watch with `allowWatchBookmarks=true` gets a BOOKMARK.
    pub bookmark_interval: Duration,
    /// Pause between the simulated kubelet's status steps (scheduled, created, started, …).
    pub kubelet_step: Duration,
    /// How long an image pull "takes" before `ErrImagePull` turns into `ImagePullBackOff`.
    pub image_pull_backoff_after: Duration,
    /// Namespaces that exist at start.
    pub namespaces: Vec<String>,
    /// Gives containers the pod's volumes, as a kubelet does: each container runs in a private
    /// mount namespace whose root is the host's, with `configMap`, `secret`, `projected`,
    /// `downwardAPI`, `emptyDir` and `persistentVolumeClaim` volumes mounted at their
    /// `mountPath` (read-only where asked), the root read-only under `readOnlyRootFilesystem`,
    /// and the ServiceAccount token at `/var/run/secrets/kubernetes.io/serviceaccount` unless
    /// `automountServiceAccountToken` is false. Needs root and util-linux's `unshare` (and
    /// `nsenter`, for exec). Off by default: containers then share the host's filesystem and
    /// volumes are ignored.
    pub mount_volumes: bool,
    /// How often the kubelet brings the files of a running pod's ConfigMap, Secret, projected
    /// and downward API volumes up to date (with `mount_volumes`). A kubelet's sync period is a
    /// minute; a second keeps tests quick while a change still arrives late, as it does there.
    pub volume_sync_period: Duration,
    /// EKS's pod identity webhook (IAM roles for service accounts): `Some` makes pods whose
    /// ServiceAccount is annotated `eks.amazonaws.com/role-arn` get the role's environment and a
    /// web-identity token, as on EKS. `None` (the default): a cluster without the webhook.
    pub irsa: Option<Irsa>,
}

/// How the simulated EKS pod identity webhook is configured (see [`FakeKubeConfig::irsa`]).
#[derive(Clone, Debug, Default)]
pub struct Irsa {
    /// The cluster's region: `AWS_REGION` and `AWS_DEFAULT_REGION` in every pod it mutates, as
    /// EKS configures its webhook.
    pub region: Option<String>,
    /// Where STS lives, given to pods as `AWS_ENDPOINT_URL_STS`. The real webhook sets no
    /// endpoint (pods reach the region's STS on the Internet); a test points them at its own
    /// STS (moto) here instead.
    pub sts_endpoint: Option<String>,
}

impl Default for FakeKubeConfig {
    fn default() -> Self {
        Self {
            rbac_dir: Some(default_rbac_dir()),
            worker_binary: None,
            max_running_processes: 8,
            history_limit: 1000,
            bookmark_interval: Duration::from_secs(1),
            kubelet_step: Duration::from_millis(20),
            image_pull_backoff_after: Duration::from_millis(300),
            namespaces: vec!["default".to_owned(), "kube-system".to_owned(), "updraft".to_owned()],
            mount_volumes: false,
            volume_sync_period: Duration::from_secs(1),
            irsa: None,
        }
    }
}

/// Parses YAML text with one or more documents (a `kubectl kustomize` rendering) into JSON
/// values, skipping empty documents.
pub fn parse_manifests(yaml: &str) -> Result<Vec<Value>, Error> {
    rbac::parse_yaml("<manifests>", yaml)
}

/// The project's `k8s/base` folder, the default source of RBAC manifests.
pub fn default_rbac_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../k8s/base")
}

/// What can go wrong when starting or steering a [`FakeKube`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("starting the server: {0}")]
    Start(std::io::Error),
    #[error("{path}: invalid YAML: {message}")]
    Yaml { path: String, message: String },
    #[error("{path}: invalid manifest: {message}")]
    Manifest { path: String, message: String },
    /// The apiserver refused an object a test hook stores (its message, e.g. a 422's).
    #[error("{0}")]
    Refused(String),
}

/// A running fake API server with its simulated node. Dropping it stops the server and kills
/// every container process it started.
pub struct FakeKube {
    shared: Arc<Shared>,
    https: SocketAddr,
    http: SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
}

/// State shared by the HTTP handlers, the kubelet and the test hooks.
pub(crate) struct Shared {
    pub(crate) store: Mutex<store::Store>,
    pub(crate) config: FakeKubeConfig,
    pub(crate) rbac: RwLock<rbac::Rbac>,
    pub(crate) gate: gate::Gate,
    pub(crate) kubelet: kubelet::Kubelet,
    /// Bumped to end every open watch stream at once.
    pub(crate) watch_generation: tokio::sync::watch::Sender<u64>,
    pub(crate) unschedulable: tokio::sync::watch::Sender<bool>,
    pub(crate) pod_quota: Mutex<Option<usize>>,
    pub(crate) port: std::sync::OnceLock<u16>,
    /// The event recorded for each (pod uid, reason, message), by name: a repeat bumps its
    /// count, as the kubelet's event aggregation does, without scanning every event.
    pub(crate) event_names: Mutex<std::collections::HashMap<(String, String, String), String>>,
}

impl Shared {
    pub(crate) fn store(&self) -> MutexGuard<'_, store::Store> {
        lock(&self.store)
    }

    /// The data of ConfigMap `namespace/name` (`data` and `binaryData`), if it exists. Every
    /// namespace has `kube-root-ca.crt` (the server's CA, as the cluster publishes it).
    pub(crate) fn config_map(&self, namespace: &str, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
        self.store().get(Resource::ConfigMaps, namespace, name).map(|o| kinds::data(Resource::ConfigMaps, o))
    }

    /// The decoded data of Secret `namespace/name`, if it exists.
    pub(crate) fn secret(&self, namespace: &str, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
        self.store().get(Resource::Secrets, namespace, name).map(|o| kinds::data(Resource::Secrets, o))
    }
}

/// Locks a mutex, ignoring poisoning: a panicking test thread must not wedge the server.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl FakeKube {
    /// Starts the server on `127.0.0.1:0` on a runtime of its own (so it keeps serving while a
    /// test blocks on `kubectl`), with the namespaces and RBAC manifests of `config`.
    pub fn start(config: FakeKubeConfig) -> Result<FakeKube, Error> {
        let rbac = match &config.rbac_dir {
            Some(dir) => rbac::Rbac::load_dir(dir)?,
            None => rbac::Rbac::default(),
        };
        let store = store::Store::new(config.history_limit);
        let kubelet = kubelet::Kubelet::new(config.max_running_processes, config.mount_volumes).map_err(|message| {
            Error::Start(std::io::Error::other(format!("FakeKubeConfig::mount_volumes: {message}")))
        })?;
        let shared = Arc::new(Shared {
            store: Mutex::new(store),
            kubelet,
            config,
            rbac: RwLock::new(rbac),
            gate: gate::Gate::default(),
            watch_generation: tokio::sync::watch::Sender::new(0),
            unschedulable: tokio::sync::watch::Sender::new(false),
            pod_quota: Mutex::new(None),
            port: std::sync::OnceLock::new(),
            event_names: Mutex::default(),
        });
        for ns in shared.config.namespaces.clone() {
            api::namespaces::insert_namespace(&shared, &ns);
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("fake-kube")
            .enable_all()
            .build()
            .map_err(Error::Start)?;
        // Bound with std (block_on would panic inside a test's own runtime), then handed over.
        let _guard = runtime.enter();
        let bind = || {
            let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
            listener.set_nonblocking(true)?;
            tokio::net::TcpListener::from_std(listener)
        };
        let (https_listener, http_listener) = (bind().map_err(Error::Start)?, bind().map_err(Error::Start)?);
        let https = https_listener.local_addr().map_err(Error::Start)?;
        let http = http_listener.local_addr().map_err(Error::Start)?;
        let _ = shared.port.set(https.port());
        let tls_listener = tls::TlsListener::new(https_listener).map_err(Error::Start)?;
        for serve in [
            Box::pin(axum::serve(tls_listener, api::router(shared.clone())).into_future())
                as std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<()>> + Send>>,
            Box::pin(axum::serve(http_listener, api::router(shared.clone())).into_future()),
        ] {
            runtime.spawn(async move {
                if let Err(error) = serve.await {
                    tracing::error!(%error, "fake kube server stopped");
                }
            });
        }
        drop(_guard);
        Ok(FakeKube { shared, https, http, runtime: Some(runtime) })
    }

    /// The server's HTTPS URL, `https://127.0.0.1:PORT`, the one kubeconfigs point at. Its
    /// certificate is signed by [`FakeKube::ca_pem`].
    pub fn url(&self) -> String {
        format!("https://{}", self.https)
    }

    /// The same API over plain HTTP, for raw HTTP clients. kubectl sends no credentials over
    /// plain HTTP (client-go drops them), so kubeconfigs use [`FakeKube::url`].
    pub fn http_url(&self) -> String {
        format!("http://{}", self.http)
    }

    /// The PEM of the CA that signed the server's certificate.
    pub fn ca_pem(&self) -> &'static str {
        tls::CA_PEM
    }

    /// The bearer token of ServiceAccount `namespace/name`. It authenticates only while that
    /// ServiceAccount is declared in the loaded manifests, as a deleted account's token would not.
    pub fn token(&self, namespace: &str, service_account: &str) -> String {
        rbac::service_account_token(namespace, service_account)
    }

    /// The bearer token of a cluster administrator (group `system:masters`), which RBAC never
    /// restricts: for test set-up and for checks that are not about permissions.
    pub fn admin_token(&self) -> String {
        rbac::ADMIN_TOKEN.to_owned()
    }

    /// Writes a kubeconfig whose current context talks to this server as ServiceAccount
    /// `namespace/service_account`, with `namespace` as the default namespace. Both `kubectl`
    /// and `kube::Config::from_custom_kubeconfig` read it.
    pub fn write_kubeconfig(&self, path: &Path, namespace: &str, service_account: &str) -> Result<(), Error> {
        let user = format!("system:serviceaccount:{namespace}:{service_account}");
        self.write_kubeconfig_with_token(path, namespace, &user, &self.token(namespace, service_account))
    }

    /// Writes a kubeconfig like [`FakeKube::write_kubeconfig`] for the administrator.
    pub fn write_admin_kubeconfig(&self, path: &Path, namespace: &str) -> Result<(), Error> {
        self.write_kubeconfig_with_token(path, namespace, "kubernetes-admin", &self.admin_token())
    }

    fn write_kubeconfig_with_token(&self, path: &Path, namespace: &str, user: &str, token: &str) -> Result<(), Error> {
        use base64::Engine as _;
        let ca = base64::engine::general_purpose::STANDARD.encode(tls::CA_PEM);
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake-kube\n  cluster:\n    server: {url}\n    certificate-authority-data: {ca}\n\
             users:\n- name: {user:?}\n  user:\n    token: {token:?}\n\
             contexts:\n- name: fake-kube\n  context:\n    cluster: fake-kube\n    user: {user:?}\n    namespace: {namespace:?}\n\
             current-context: fake-kube\npreferences: {{}}\n",
            url = self.url(),
        );
        std::fs::write(path, text).map_err(|source| Error::Io { path: path.to_owned(), source })
    }

    /// Adds (or replaces) RBAC objects from YAML text with one or more documents, keyed by kind,
    /// namespace and name: a test loads a Role without `create` on pods to prove the client fails.
    pub fn apply_rbac_yaml(&self, yaml: &str) -> Result<(), Error> {
        let docs = rbac::parse_yaml("<apply_rbac_yaml>", yaml)?;
        let mut rbac = self.shared.rbac.write().unwrap_or_else(PoisonError::into_inner);
        for doc in docs {
            rbac.apply("<apply_rbac_yaml>", &doc)?;
        }
        Ok(())
    }

    /// Replaces all RBAC objects with the manifests of `dir`.
    pub fn load_rbac_dir(&self, dir: &Path) -> Result<(), Error> {
        let fresh = rbac::Rbac::load_dir(dir)?;
        *self.shared.rbac.write().unwrap_or_else(PoisonError::into_inner) = fresh;
        Ok(())
    }

    /// Creates a namespace (no-op if it exists).
    pub fn add_namespace(&self, name: &str) {
        api::namespaces::insert_namespace(&self.shared, name);
    }

    /// Creates (or replaces) Secret `namespace/name` with text values, as `kubectl create
    /// secret generic --from-literal` would: clients see it over HTTP, and the kubelet reads it
    /// for `secretKeyRef`, `envFrom` and volumes (running pods' volumes follow changes).
    pub fn add_secret(&self, namespace: &str, name: &str, data: BTreeMap<String, String>) -> Result<(), Error> {
        self.store_object(Resource::Secrets, kinds::secret_object(namespace, name, &data))
    }

    /// Creates (or replaces) ConfigMap `namespace/name`, like [`FakeKube::add_secret`].
    pub fn add_config_map(&self, namespace: &str, name: &str, data: BTreeMap<String, String>) -> Result<(), Error> {
        self.store_object(Resource::ConfigMaps, kinds::config_map_object(namespace, name, &data))
    }

    fn store_object(&self, resource: Resource, object: Value) -> Result<(), Error> {
        let namespace = object.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("default").to_owned();
        api::objects::upsert(&self.shared, resource, &namespace, object)
            .map(drop)
            .map_err(|error| Error::Refused(error.message))
    }

    /// Loads a rendering (`kubectl kustomize …` output, one or more YAML documents) as `kubectl
    /// apply` would store it, for the kinds this server keeps: Namespaces, ConfigMaps, Secrets
    /// (`data` base64, `stringData` plain) and Deployments are created or replaced; ServiceAccounts,
    /// Roles and bindings added or replaced. Other kinds (Services, claims, …) are ignored. No
    /// controller acts on a Deployment: its pods are the test's to create from its template
    /// (they match its selector, so `kubectl exec deploy/NAME` finds them).
    pub fn load_manifests(&self, yaml: &str) -> Result<(), Error> {
        let docs = parse_manifests(yaml)?;
        let bad = |doc: &Value, message: String| {
            let name = doc.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
            let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("");
            Error::Manifest { path: "<load_manifests>".to_owned(), message: format!("{kind} {name}: {message}") }
        };
        for doc in docs.iter().filter(|d| d.get("kind").and_then(Value::as_str) == Some("Namespace")) {
            match doc.pointer("/metadata/name").and_then(Value::as_str) {
                Some(name) => self.add_namespace(name),
                None => return Err(bad(doc, "no metadata.name".to_owned())),
            }
        }
        for doc in &docs {
            let resource = match doc.get("kind").and_then(Value::as_str) {
                Some("ConfigMap") => Resource::ConfigMaps,
                Some("Secret") => Resource::Secrets,
                Some("Deployment") => Resource::Deployments,
                _ => continue,
            };
            let namespace = doc.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("default");
            api::objects::upsert(&self.shared, resource, namespace, doc.clone())
                .map_err(|error| bad(doc, error.message))?;
        }
        let mut rbac = self.shared.rbac.write().unwrap_or_else(PoisonError::into_inner);
        for doc in &docs {
            rbac.apply("<load_manifests>", doc)?;
        }
        Ok(())
    }

    /// The node's folder for PersistentVolumeClaim `namespace/name` (with
    /// [`FakeKubeConfig::mount_volumes`]): what pods mounting the claim see, shared by all of
    /// them. Created if needed, so a test can put files there before a pod starts; removed
    /// when the server is dropped.
    pub fn claim_dir(&self, namespace: &str, name: &str) -> Result<PathBuf, Error> {
        let path = self.shared.kubelet.claim_dir(namespace, name);
        std::fs::create_dir_all(&path).map_err(|source| Error::Io { path: path.clone(), source })?;
        Ok(path)
    }

    /// Forgets all watch history, so that any resourceVersion older than now gets 410 Expired
    /// (in-stream ERROR for watches, HTTP 410 for list continue tokens), as after etcd compaction.
    pub fn compact_history(&self) {
        self.shared.store().compact();
    }

    /// Ends every open watch stream now, as an apiserver restart or load-balancer reset would.
    pub fn close_watches(&self) {
        self.shared.watch_generation.send_modify(|generation| *generation += 1);
    }

    /// Makes the next matching requests fail; see [`Fault`].
    pub fn inject_fault(&self, fault: Fault) {
        self.shared.gate.add_fault(fault);
    }

    /// Limits the pods per namespace that are not Succeeded or Failed (a ResourceQuota on
    /// `pods`); a create beyond it gets 403 "exceeded quota". `None` lifts the limit.
    pub fn set_pod_quota(&self, max_pods: Option<usize>) {
        *lock(&self.shared.pod_quota) = max_pods;
    }

    /// Cordons (`true`) or uncordons the only node. New pods stay Pending with `PodScheduled=False`
    /// and a `FailedScheduling` event while it is cordoned, and are scheduled once it is not.
    pub fn set_unschedulable(&self, unschedulable: bool) {
        self.shared.unschedulable.send_replace(unschedulable);
    }

    /// Evicts a running pod as the kubelet would under node pressure: its processes are killed
    /// and it ends `Failed` with reason `Evicted`. Returns false if the pod does not exist.
    pub fn evict_pod(&self, namespace: &str, name: &str) -> bool {
        kubelet::evict(&self.shared, namespace, name)
    }

    /// The pods of `namespace` as stored (with `kind` and `apiVersion`), sorted by name.
    pub fn pods(&self, namespace: &str) -> Vec<Value> {
        self.shared.store().list(Resource::Pods, Some(namespace)).into_iter().cloned().collect()
    }

    /// How many pods `namespace` holds (cheap: nothing is cloned), for benchmarks that poll.
    pub fn pod_count(&self, namespace: &str) -> usize {
        self.shared.store().list(Resource::Pods, Some(namespace)).len()
    }

    /// How many pods were ever created (cheap), for benchmarks that poll.
    pub fn created_count(&self) -> usize {
        self.shared.store().created_len()
    }

    /// One pod as stored, if it exists.
    pub fn pod(&self, namespace: &str, name: &str) -> Option<Value> {
        self.shared.store().get(Resource::Pods, namespace, name).cloned()
    }

    /// One Secret as stored (`data` in base64), if it exists.
    pub fn secret(&self, namespace: &str, name: &str) -> Option<Value> {
        self.shared.store().get(Resource::Secrets, namespace, name).cloned()
    }

    /// One Deployment as stored, if it exists.
    pub fn deployment(&self, namespace: &str, name: &str) -> Option<Value> {
        self.shared.store().get(Resource::Deployments, namespace, name).cloned()
    }

    /// The events of `namespace` whose `involvedObject.name` is `pod`, oldest first.
    pub fn pod_events(&self, namespace: &str, pod: &str) -> Vec<Value> {
        let store = self.shared.store();
        let mut events: Vec<Value> = store
            .list(Resource::Events, Some(namespace))
            .into_iter()
            .filter(|e| e.pointer("/involvedObject/name").and_then(Value::as_str) == Some(pod))
            .cloned()
            .collect();
        events.sort_by_key(store::resource_version);
        events
    }

    /// How many times a pod named `name` was created in `namespace` (successful creates only):
    /// tests assert that a client never created the same pod twice.
    pub fn create_count(&self, namespace: &str, name: &str) -> u32 {
        self.shared.store().create_count(namespace, name)
    }

    /// Every successful pod create so far, as `(namespace, name)` in order.
    pub fn created_pods(&self) -> Vec<(String, String)> {
        self.shared.store().created_pods()
    }

    /// The requests served so far, in order (method, path and query, status, user).
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.gate.requests()
    }

    /// The current (latest) resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.store().current_rv()
    }
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        self.shared.kubelet.kill_all();
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
