//! `updraft scheduler` and `updraft standalone`: the scheduler loop with the configured executor
//! (local or kubernetes), and everything-in-one-process on the embedded default. Every process
//! that runs tasks builds its plugin host here, with the grants of the configuration.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use tokio::sync::mpsc;
use updraft_db::Db;
use updraft_executor::{Executor, WorkEvent, WorkItem};
use updraft_executor_local::{LocalExecutor, PinVersions, db_backends};
use updraft_plugin_host::{Grants, HostConfig, Registry, Runtime};
use updraft_scheduler::engine::{CatalogSource, Engine, EngineConfig};

use super::meta::{MetaArgs, runtime};

/// Settings shared by every command that runs tasks.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub meta: MetaArgs,
    /// The DAGs folder.
    #[arg(long = "dags", env = "UPDRAFT__CORE__DAGS_FOLDER", default_value = "dags")]
    pub dags: PathBuf,
    /// A drop-in folder of operator plugins, imported into the plugin store in the metadata
    /// database (default: DATA_DIR/plugins).
    #[arg(long = "plugins", env = "UPDRAFT__CORE__PLUGINS_FOLDER")]
    pub plugins: Option<PathBuf>,
    /// Most task tries running at once.
    #[arg(long, env = "UPDRAFT__CORE__PARALLELISM", default_value_t = 32)]
    pub parallelism: usize,
    /// Seconds without a heartbeat after which a scheduler counts as dead and another one
    /// adopts its runs (PostgreSQL; tries it was running run again).
    #[arg(long, env = "UPDRAFT__SCHEDULER__ZOMBIE_THRESHOLD", default_value_t = 30)]
    pub zombie_threshold: u64,
    /// Where tries run: `local` (in this process) or `kubernetes` (a pod per try).
    #[arg(long, value_enum, env = "UPDRAFT__CORE__EXECUTOR", default_value_t = ExecutorKind::Local)]
    pub executor: ExecutorKind,
    #[command(flatten)]
    pub kubernetes: KubernetesArgs,
    /// Serve `/health` and Prometheus `/metrics` on this port (all interfaces); off by default.
    #[arg(long, env = "UPDRAFT__SCHEDULER__METRICS_PORT")]
    pub metrics_port: Option<u16>,
    /// Also push the metrics to a StatsD server (`HOST:PORT`, UDP) every 10 s.
    #[arg(long, env = "UPDRAFT__METRICS__STATSD_ADDRESS", value_name = "HOST:PORT")]
    pub statsd_address: Option<String>,
    /// A PEM file of CA certificates that HTTPS calls trust besides the platform's root
    /// certificates (services signed by a private CA).
    #[arg(long = "http-extra-ca-file", env = "UPDRAFT__HTTP__EXTRA_CA_FILE", value_name = "PEM")]
    pub http_extra_ca_file: Option<PathBuf>,
    /// Grants for plugins the configuration says nothing about (`updraft standalone` lets the
    /// built-in `http` operator call its own API, for the example DAG).
    #[arg(skip)]
    pub default_grants: BTreeMap<String, Grants>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExecutorKind {
    Local,
    Kubernetes,
}

/// Settings of the kubernetes executor.
#[derive(Debug, Clone, Args)]
pub struct KubernetesArgs {
    /// The namespace of task pods (and of the `kubernetes_pod` operator's pods, unless a task
    /// names another).
    #[arg(long = "kubernetes-namespace", env = "UPDRAFT__KUBERNETES__NAMESPACE", default_value = "updraft")]
    pub namespace: String,
    /// The image of task pods: Updraft's own, the same as the scheduler's.
    #[arg(long = "kubernetes-image", env = "UPDRAFT__KUBERNETES__IMAGE", default_value = "updraft:latest")]
    pub image: String,
    /// A pod template (a YAML Pod) that task pods start from: volumes, env from Secrets, …
    #[arg(long = "kubernetes-pod-template", env = "UPDRAFT__KUBERNETES__POD_TEMPLATE_FILE")]
    pub pod_template: Option<PathBuf>,
    /// A kubeconfig file (default: the in-cluster ServiceAccount), for task pods and the
    /// `kubernetes_pod` operator.
    #[arg(long = "kubeconfig", env = "UPDRAFT__KUBERNETES__KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Delete the pods of failed tries too (by default they are kept, labelled
    /// `updraft.dev/done=true`, for debugging, as Airflow does).
    #[arg(long = "kubernetes-delete-failed-pods", env = "UPDRAFT__KUBERNETES__DELETE_FAILED_PODS")]
    pub delete_failed_pods: bool,
    /// Seconds a pod may stay Pending (unschedulable, image not pulled) before its try fails.
    #[arg(long = "kubernetes-pending-timeout", env = "UPDRAFT__KUBERNETES__PENDING_TIMEOUT", default_value_t = 300)]
    pub pending_timeout: u64,
    /// Most pods created per second.
    #[arg(
        long = "kubernetes-creates-per-second",
        env = "UPDRAFT__KUBERNETES__CREATES_PER_SECOND",
        default_value_t = 10.0
    )]
    pub creates_per_second: f64,
}

impl RunArgs {
    /// The plugin registry (built-ins plus the plugin store in the metadata DB, into which the
    /// plugins folder is imported; both watched).
    pub async fn registry(&self, db: &Db) -> anyhow::Result<Arc<Registry>> {
        Ok(self.registry_with_pods(db).await?.0)
    }

    /// The registry, and the launcher of the `kubernetes_pod` operator's pods in it.
    pub async fn registry_with_pods(
        &self,
        db: &Db,
    ) -> anyhow::Result<(Arc<Registry>, Arc<updraft_executor_kubernetes::OperatorPods>)> {
        let (runtime, pods) = self.plugin_runtime(db)?;
        let registry = Registry::new(runtime).await?;
        registry.watch(Duration::from_secs(1));
        Ok((registry, pods))
    }

    /// The registry of `updraft tasks run`, which runs one try: the built-ins, and only the
    /// stored plugin version the try asks for, fetched when it does.
    pub async fn worker_registry_with_pods(
        &self,
        db: &Db,
    ) -> anyhow::Result<(Arc<Registry>, Arc<updraft_executor_kubernetes::OperatorPods>)> {
        let (runtime, pods) = self.plugin_runtime(db)?;
        Ok((Registry::on_demand(runtime).await?, pods))
    }

    /// The plugin runtime on the metadata database, with the kubernetes_pod operator's pods.
    fn plugin_runtime(
        &self,
        db: &Db,
    ) -> anyhow::Result<(Arc<Runtime>, Arc<updraft_executor_kubernetes::OperatorPods>)> {
        let data = &self.meta.data_dir;
        let mut plugins = self.default_grants.clone();
        plugins.extend(super::config::grants());
        let mut config = HostConfig {
            plugins_dir: Some(self.plugins.clone().unwrap_or_else(|| data.join("plugins"))),
            cache_dir: Some(data.join("cache")),
            plugins,
            http_extra_ca_file: self.http_extra_ca_file.clone(),
            ..Default::default()
        };
        config.limits.max_instances = u32::try_from(self.parallelism.max(8) * 2).unwrap_or(u32::MAX);
        let mut backends = db_backends(self.meta.secrets(db)?);
        // Pods for the `kubernetes_pod` operator: the cluster of --kubeconfig, else the one this
        // process runs in; the client is made when a task first asks for a pod.
        let source = match &self.kubernetes.kubeconfig {
            Some(path) => updraft_executor_kubernetes::ClientSource::Kubeconfig(path.clone()),
            None => updraft_executor_kubernetes::ClientSource::InCluster,
        };
        let pods = Arc::new(updraft_executor_kubernetes::OperatorPods::new(source, &self.kubernetes.namespace));
        backends.pods = Some(pods.clone());
        Ok((Runtime::new(config, backends)?, pods))
    }

    /// A scheduler engine with the configured executor (`dags test` always runs locally).
    pub async fn engine(&self, db: &Db, single_run: bool) -> anyhow::Result<(Engine, Arc<dyn Executor>)> {
        let (engine, executor, _) = self.engine_with_pods(db, single_run).await?;
        Ok((engine, executor))
    }

    /// [`Self::engine`], and the kubernetes executor when it is the one configured.
    pub async fn engine_with_pods(
        &self,
        db: &Db,
        single_run: bool,
    ) -> anyhow::Result<(Engine, Arc<dyn Executor>, Option<Arc<updraft_executor_kubernetes::KubernetesExecutor>>)> {
        if !self.dags.exists() {
            anyhow::bail!(
                "DAGs folder `{}` does not exist: pass --dags DIR or set UPDRAFT__CORE__DAGS_FOLDER",
                self.dags.display()
            );
        }
        // One set of task logs for the engine and the executor: uploads either starts are
        // waited for when the engine stops. Made first, so a bad remote fails at once.
        let logs = self.meta.logs(self.http_extra_ca_file.as_deref())?;
        let registry = self.registry(db).await?;
        let catalog_registry = Arc::clone(&registry);
        let catalog = CatalogSource(Arc::new(move || catalog_of(&catalog_registry)));
        let (sender, receiver) = mpsc::unbounded_channel();
        let scheduler_id = format!("{}-{}", hostname(), std::process::id());
        let pods = if self.executor == ExecutorKind::Kubernetes && !single_run {
            Some(self.kubernetes_executor(db, &scheduler_id, sender.clone(), logs.clone()).await?)
        } else {
            None
        };
        let executor: Arc<dyn Executor> = match &pods {
            Some(pods) => pods.clone(),
            None => Arc::new(
                LocalExecutor::new(registry.clone(), sender, 2)
                    .context("starting the local executor")?
                    .with_logs(logs.clone()),
            ),
        };
        // Each try runs the plugin version current when it is dispatched, wherever it runs.
        let executor: Arc<dyn Executor> = Arc::new(PinVersions::new(executor, registry));
        let config = EngineConfig {
            scheduler_id,
            hostname: updraft_scheduler::engine::local_hostname(),
            dags_folder: self.dags.clone(),
            logs,
            parallelism: self.parallelism,
            parse_interval: Duration::from_secs(5),
            paused_at_creation: false,
            zombie_after: Duration::from_secs(self.zombie_threshold.max(2)),
            single_run,
            catalog: Some(catalog),
        };
        let engine = Engine::new(db.clone(), config, executor.clone(), receiver).await?;
        Ok((engine, executor, pods))
    }

    async fn kubernetes_executor(
        &self,
        db: &Db,
        scheduler_id: &str,
        sender: mpsc::UnboundedSender<WorkEvent>,
        logs: updraft_logs::TaskLogs,
    ) -> anyhow::Result<Arc<updraft_executor_kubernetes::KubernetesExecutor>> {
        use updraft_executor_kubernetes::{KubernetesConfig, KubernetesExecutor, PodTemplate};
        let k = &self.kubernetes;
        let client = match &k.kubeconfig {
            Some(path) => updraft_executor_kubernetes::client_from_kubeconfig(path, None).await?,
            None => updraft_executor_kubernetes::client_in_cluster()
                .context("no kubeconfig given (--kubeconfig) and not running in a cluster")?,
        };
        let mut config = KubernetesConfig::new(&k.namespace, &k.image, scheduler_id);
        config.pod_template = match &k.pod_template {
            Some(path) => PodTemplate::File(path.clone()),
            None => PodTemplate::None,
        };
        config.delete_worker_pods_on_failure = k.delete_failed_pods;
        config.pending_timeout = Duration::from_secs(k.pending_timeout.max(1));
        config.creates_per_second = k.creates_per_second.max(0.1);
        config.max_creates_in_flight = self.parallelism.clamp(1, 64);
        config.logs = logs;
        let overrides: updraft_executor_kubernetes::OverrideLookup =
            Arc::new(|item: &WorkItem| item.kubernetes.clone());
        let results = Arc::new(super::results::DbResults(db.clone()));
        Ok(Arc::new(KubernetesExecutor::new(client, config, sender, overrides, results)?))
    }
}

/// The operators a registry holds, with their params schemas.
pub fn catalog_of(registry: &Registry) -> updraft_dag::operators::Catalog {
    registry.plugins().iter().map(|p| (p.descriptor.name.clone(), p.descriptor.params_schema.clone())).collect()
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".to_owned())
}

/// `updraft scheduler`.
pub fn scheduler(args: RunArgs) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let db = args.meta.db().await?;
        let (mut engine, _executor, pods) = args.engine_with_pods(&db, false).await?;
        if let Some(port) = args.metrics_port {
            let listener = tokio::net::TcpListener::bind(("0.0.0.0", port))
                .await
                .with_context(|| format!("cannot serve metrics on port {port} (--metrics-port)"))?;
            let app = super::metrics::router(engine.metrics(), pods);
            tokio::spawn(async move {
                if let Err(error) = axum::serve(listener, app).await {
                    tracing::error!(%error, "the metrics server stopped");
                }
            });
            tracing::info!(port, "serving /health and /metrics");
        }
        if let Some(address) = &args.statsd_address {
            let socket = tokio::net::UdpSocket::bind("0.0.0.0:0").await.context("opening a UDP socket for StatsD")?;
            socket
                .connect(address)
                .await
                .with_context(|| format!("cannot reach the StatsD address {address} (--statsd-address HOST:PORT)"))?;
            tokio::spawn(super::metrics::push_statsd(socket, engine.metrics(), Duration::from_secs(10)));
            tracing::info!(%address, "pushing metrics to StatsD");
        }
        tracing::info!(
            dags = %args.dags.display(),
            parallelism = args.parallelism,
            executor = ?args.executor,
            "scheduler started"
        );
        engine.run(shutdown_signal()).await?;
        tracing::info!("scheduler stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// Resolves on Ctrl-C or SIGTERM (Kubernetes stops pods with SIGTERM).
pub async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
    }
}

/// The example DAGs shipped with the source tree, for `updraft standalone` without `--dags`.
pub fn example_dags() -> Option<PathBuf> {
    let here = Path::new("examples/dags");
    if here.is_dir() {
        return Some(here.to_path_buf());
    }
    let beside_source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/dags");
    beside_source.is_dir().then_some(beside_source)
}
