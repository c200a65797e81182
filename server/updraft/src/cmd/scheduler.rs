//! `updraft scheduler` and `updraft standalone`: the scheduler loop with the local executor,
//! and everything-in-one-process on the embedded default.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tokio::sync::mpsc;
use updraft_db::Db;
use updraft_executor_local::{LocalExecutor, db_backends};
use updraft_plugin_host::{HostConfig, Registry, Runtime};
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
    /// Folder of third-party operator plugins (default: DATA_DIR/plugins).
    #[arg(long = "plugins", env = "UPDRAFT__CORE__PLUGINS_FOLDER")]
    pub plugins: Option<PathBuf>,
    /// Most task tries running at once.
    #[arg(long, env = "UPDRAFT__CORE__PARALLELISM", default_value_t = 32)]
    pub parallelism: usize,
    /// Seconds without a heartbeat after which a scheduler counts as dead and another one
    /// adopts its runs (PostgreSQL; tries it was running run again).
    #[arg(long, env = "UPDRAFT__SCHEDULER__ZOMBIE_THRESHOLD", default_value_t = 30)]
    pub zombie_threshold: u64,
}

impl RunArgs {
    /// The plugin registry (built-ins plus the plugins folder, watched) on the metadata DB.
    pub async fn registry(&self, db: &Db) -> anyhow::Result<Arc<Registry>> {
        let data = &self.meta.data_dir;
        let mut config = HostConfig {
            plugins_dir: Some(self.plugins.clone().unwrap_or_else(|| data.join("plugins"))),
            cache_dir: Some(data.join("cache")),
            ..Default::default()
        };
        config.limits.max_instances = u32::try_from(self.parallelism.max(8) * 2).unwrap_or(u32::MAX);
        let backends = db_backends(db.clone(), self.meta.encryption_key()?);
        let registry = Registry::new(Runtime::new(config, backends)?).await?;
        registry.watch(Duration::from_secs(1));
        Ok(registry)
    }

    /// A scheduler engine with a local executor.
    pub async fn engine(&self, db: &Db, single_run: bool) -> anyhow::Result<(Engine, Arc<LocalExecutor>)> {
        if !self.dags.exists() {
            anyhow::bail!(
                "DAGs folder `{}` does not exist: pass --dags DIR or set UPDRAFT__CORE__DAGS_FOLDER",
                self.dags.display()
            );
        }
        let registry = self.registry(db).await?;
        let catalog_registry = Arc::clone(&registry);
        let catalog = CatalogSource(Arc::new(move || catalog_of(&catalog_registry)));
        let (sender, receiver) = mpsc::unbounded_channel();
        let executor = Arc::new(LocalExecutor::new(registry, sender, 2).context("starting the local executor")?);
        let config = EngineConfig {
            scheduler_id: format!("{}-{}", hostname(), std::process::id()),
            dags_folder: self.dags.clone(),
            log_dir: self.meta.data_dir.join("logs"),
            parallelism: self.parallelism,
            parse_interval: Duration::from_secs(5),
            paused_at_creation: false,
            zombie_after: Duration::from_secs(self.zombie_threshold.max(2)),
            single_run,
            catalog: Some(catalog),
        };
        let engine = Engine::new(db.clone(), config, executor.clone(), receiver).await?;
        Ok((engine, executor))
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
        let (mut engine, _executor) = args.engine(&db, false).await?;
        eprintln!("scheduler started: DAGs from {}, parallelism {}", args.dags.display(), args.parallelism);
        engine.run(shutdown_signal()).await?;
        eprintln!("scheduler stopped");
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
