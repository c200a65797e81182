//! `updraft api-server`: the REST API (`updraft-api`) on a TCP port, over the metadata
//! database every other command uses. Tokens are signed with `UPDRAFT__API__JWT_SECRET`, else
//! with a secret the data folder keeps (created on first use, readable by its owner only);
//! several API servers behind one address need the same secret, so set it for them.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use updraft_api::{ApiConfig, AppState, PluginError, PluginStore};
use updraft_db::Db;
use updraft_plugin_host::{Backends, Error as PluginHostError, HostConfig, Registry, Runtime};

use super::meta::{MetaArgs, runtime};
use super::scheduler::shutdown_signal;

/// Where the API listens and how long its tokens last.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// Address to listen on (0.0.0.0 for every interface, e.g. in a pod).
    #[arg(long, env = "UPDRAFT__API__HOST", default_value = "127.0.0.1")]
    pub host: String,
    /// Port of the API server.
    #[arg(long, env = "UPDRAFT__API__PORT", default_value_t = 8080)]
    pub port: u16,
    /// A drop-in folder of operator plugins, imported into the plugin store in the metadata
    /// database, which `/api/updraft/plugins` manages (default: DATA_DIR/plugins).
    #[arg(long = "plugins", env = "UPDRAFT__CORE__PLUGINS_FOLDER")]
    pub plugins: Option<PathBuf>,
    /// Mark the web app's session cookie `Secure`: set it when clients reach the API over
    /// HTTPS (through an ingress that terminates TLS).
    #[arg(long = "secure-cookies", env = "UPDRAFT__API__SECURE_COOKIES")]
    pub secure_cookies: bool,
    /// Seconds a token from `POST /auth/token` stays valid.
    #[arg(long = "jwt-expiration-time", env = "UPDRAFT__API__JWT_EXPIRATION_TIME", default_value_t = 86_400)]
    pub jwt_expiration_time: u64,
}

#[derive(Debug, Args)]
pub struct ApiServerArgs {
    #[command(flatten)]
    pub meta: MetaArgs,
    /// The scheduler's DAGs folder, at the same path: the web app's editor writes new DAG
    /// files into it (without it, creating a DAG from the web app answers 404).
    #[arg(long = "dags", env = "UPDRAFT__CORE__DAGS_FOLDER")]
    pub dags: Option<PathBuf>,
    #[command(flatten)]
    pub server: ServerArgs,
    /// A PEM file of CA certificates that HTTPS calls (here: to the remote task logs) trust
    /// besides the platform's roots.
    #[arg(long = "http-extra-ca-file", env = "UPDRAFT__HTTP__EXTRA_CA_FILE", value_name = "PEM")]
    pub http_extra_ca_file: Option<PathBuf>,
}

/// `updraft api-server`.
pub fn api_server(args: ApiServerArgs) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let db = args.meta.db().await?;
        let logs = args.meta.logs(args.http_extra_ca_file.as_deref())?;
        serve(db, &args.meta, &args.server, args.dags.clone(), logs, shutdown_signal()).await?;
        Ok(ExitCode::SUCCESS)
    })
}

/// Serves the API until `shutdown` resolves.
pub async fn serve(
    db: Db,
    meta: &MetaArgs,
    server: &ServerArgs,
    dags: Option<PathBuf>,
    logs: updraft_api::TaskLogs,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (listener, state) = prepare(db, meta, server, dags, logs).await?;
    updraft_api::serve(listener, state, shutdown).await.context("serving the API")?;
    Ok(())
}

/// The API's state and its bound listener (so that a taken port fails the command at once;
/// `updraft standalone` then serves it beside the scheduler).
pub async fn prepare(
    db: Db,
    meta: &MetaArgs,
    server: &ServerArgs,
    dags: Option<PathBuf>,
    logs: updraft_api::TaskLogs,
) -> anyhow::Result<(tokio::net::TcpListener, AppState)> {
    let config = ApiConfig {
        encryption_key: meta.encryption_key()?,
        jwt_secret: jwt_secret(meta)?,
        token_lifetime: Duration::from_secs(server.jwt_expiration_time.max(1)),
        logs,
        secure_cookies: server.secure_cookies,
        dags_dir: dags,
        secret_sources: updraft_secrets::Sources::new(meta.connections_dir.clone(), meta.variables_dir.clone()),
        plugins: Some(Arc::new(HostPlugins {
            db: db.clone(),
            folder: server.plugins.clone().unwrap_or_else(|| meta.data_dir.join("plugins")),
            cache: meta.data_dir.join("cache"),
            registry: tokio::sync::OnceCell::new(),
        })),
    };
    let state = AppState::new(db, config)?;
    let listener = tokio::net::TcpListener::bind((server.host.as_str(), server.port))
        .await
        .with_context(|| format!("cannot listen on {}:{} (is the port taken? use --port)", server.host, server.port))?;
    let address = listener.local_addr()?;
    eprintln!("API server on http://{address}/api/v2, web app on http://{address}/");
    Ok((listener, state))
}

/// The token signing secret: `UPDRAFT__API__JWT_SECRET`, else the data folder's
/// `jwt_secret.key` (created on first use).
fn jwt_secret(meta: &MetaArgs) -> anyhow::Result<Vec<u8>> {
    if let Ok(text) = std::env::var("UPDRAFT__API__JWT_SECRET") {
        if text.len() < 32 {
            anyhow::bail!("UPDRAFT__API__JWT_SECRET must be at least 32 characters (e.g. `openssl rand -base64 48`)");
        }
        return Ok(text.into_bytes());
    }
    let path = meta.data_dir.join("jwt_secret.key");
    if !path.exists() {
        std::fs::create_dir_all(&meta.data_dir)?;
        super::meta::write_private(&path, &updraft_api::generate_secret())?;
    }
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text.trim().as_bytes().to_vec())
}

/// The plugin store through the plugin host, for `/api/updraft/plugins`. The registry (a
/// wasmtime engine, the built-ins and stored plugins compiled or read from the cache) is made
/// on first use, so an API server that is never asked about plugins never pays for it.
struct HostPlugins {
    db: Db,
    /// The drop-in folder, imported into the store like a scheduler's.
    folder: PathBuf,
    cache: PathBuf,
    registry: tokio::sync::OnceCell<Arc<Registry>>,
}

impl std::fmt::Debug for HostPlugins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostPlugins").field("folder", &self.folder).finish_non_exhaustive()
    }
}

fn failed(e: impl std::fmt::Display) -> PluginError {
    PluginError::Failed(e.to_string())
}

impl HostPlugins {
    fn runtime(&self) -> Result<Arc<Runtime>, PluginError> {
        let mut config = HostConfig {
            plugins_dir: Some(self.folder.clone()),
            cache_dir: Some(self.cache.clone()),
            ..Default::default()
        };
        config.limits.max_instances = 8;
        // The API server loads plugins to describe them, never runs a task: only the plugin
        // store is a real backend.
        let (mut backends, _) = Backends::in_memory();
        backends.plugins = updraft_executor_local::db_plugin_store(self.db.clone());
        Runtime::new(config, backends).map_err(failed)
    }

    async fn registry(&self) -> Result<&Arc<Registry>, PluginError> {
        self.registry.get_or_try_init(|| async { Registry::new(self.runtime()?).await.map_err(failed) }).await
    }
}

impl PluginStore for HostPlugins {
    fn list(&self) -> BoxFuture<'_, Result<Value, PluginError>> {
        Box::pin(async move {
            let registry = self.registry().await?;
            registry.rescan().await;
            let operators: Vec<Value> = registry.plugins().iter().map(|p| super::plugins::plugin_json(p)).collect();
            Ok(json!({ "operators": operators, "invalid": super::plugins::problems(registry) }))
        })
    }

    fn install<'a>(&'a self, bytes: Vec<u8>, installed_by: &'a str) -> BoxFuture<'a, Result<Value, PluginError>> {
        Box::pin(async move {
            let registry = self.registry().await?;
            let installed = registry.install(bytes, "upload.wasm", installed_by).await.map_err(|e| match e {
                PluginHostError::Store(_) | PluginHostError::Engine(_) | PluginHostError::Io { .. } => failed(e),
                invalid => PluginError::Invalid(invalid.to_string()),
            })?;
            Ok(super::plugins::plugin_json(&installed))
        })
    }

    fn delete<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), PluginError>> {
        Box::pin(async move {
            if self.db.delete_plugin(name, None).await.map_err(failed)? {
                if let Some(registry) = self.registry.get() {
                    registry.rescan().await;
                }
                return Ok(());
            }
            let builtin = updraft_plugin_host::builtin_names().contains(&name);
            Err(PluginError::NotFound(if builtin {
                format!("`{name}` is a built-in operator: it cannot be deleted")
            } else {
                format!("no operator `{name}` in the plugin store")
            }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guest(stem: &str) -> Vec<u8> {
        std::fs::read(std::path::Path::new(updraft_plugin_host::GUEST_DIR).join(format!("{stem}.wasm")))
            .expect("fixture")
    }

    /// An API server's plugins on `db`, with a data folder of its own.
    fn replica(db: &Db, data: &std::path::Path) -> HostPlugins {
        HostPlugins {
            db: db.clone(),
            folder: data.join("plugins"),
            cache: data.join("cache"),
            registry: tokio::sync::OnceCell::new(),
        }
    }

    fn operator<'a>(listed: &'a Value, name: &str) -> Option<&'a Value> {
        listed["operators"].as_array().and_then(|o| o.iter().find(|o| o["name"] == name))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn uploads_reach_every_replica_through_the_store_and_are_deleted_there() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::connect(&updraft_db::sqlite_url(dir.path())).await.expect("db");
        db.migrate().await.expect("migrate");
        let (one, two) = (replica(&db, &dir.path().join("a")), replica(&db, &dir.path().join("b")));

        let bad = one.install(b"not a component".to_vec(), "alice").await;
        assert!(
            matches!(&bad, Err(PluginError::Invalid(m)) if m.contains("not a valid WebAssembly component")),
            "{bad:?}"
        );
        let installed = one.install(guest("fixture_versioned_v1"), "alice").await.expect("installs");
        assert_eq!((&installed["name"], &installed["version"]), (&json!("versioned"), &json!("1.0.0")));
        assert_eq!((&installed["origin"], &installed["installed_by"]), (&json!("store"), &json!("alice")));
        assert!(!dir.path().join("a/plugins/versioned.wasm").exists(), "uploads go to the store, not a folder");

        // The other replica, with another data folder, serves it; a new version uploaded there
        // reaches the first.
        let listed = two.list().await.expect("list");
        let versioned = operator(&listed, "versioned").expect("the other replica lists it");
        assert_eq!(versioned["sha256"], installed["sha256"]);
        assert!(operator(&listed, "noop").is_some_and(|n| n["params_schema"].is_object() && n["origin"] == "builtin"));
        two.install(guest("fixture_versioned_v2"), "bob").await.expect("v2");
        let listed = one.list().await.expect("list");
        let versioned = operator(&listed, "versioned").expect("listed");
        assert_eq!((&versioned["version"], &versioned["installed_by"]), (&json!("2.0.0"), &json!("bob")));

        // A file dropped into a replica's folder is imported into the store.
        std::fs::create_dir_all(dir.path().join("b/plugins")).expect("folder");
        std::fs::write(dir.path().join("b/plugins/caps.wasm"), guest("fixture_caps")).expect("drop in");
        assert!(operator(&two.list().await.expect("list"), "caps").is_some(), "imported by its replica");
        let caps = operator(&one.list().await.expect("list"), "caps").cloned().expect("seen by the other replica");
        assert!(caps["installed_by"].as_str().is_some_and(|b| b.starts_with("folder ")), "{caps}");

        assert!(matches!(one.delete("noop").await, Err(PluginError::NotFound(m)) if m.contains("built-in")));
        assert!(matches!(one.delete("../x").await, Err(PluginError::NotFound(_))));
        one.delete("versioned").await.expect("deleted");
        assert!(operator(&one.list().await.expect("list"), "versioned").is_none());
        assert!(operator(&two.list().await.expect("list"), "versioned").is_none(), "gone from every replica");
    }
}
