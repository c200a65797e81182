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
use updraft_plugin_host::{Backends, FileStatus, HostConfig, Plugin, PluginSource, Registry, Runtime};

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
    /// Folder of third-party operator plugins, managed through `/api/updraft/plugins`
    /// (default: DATA_DIR/plugins, the scheduler's default).
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
}

/// `updraft api-server`.
pub fn api_server(args: ApiServerArgs) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let db = args.meta.db().await?;
        serve(db, &args.meta, &args.server, args.dags.clone(), shutdown_signal()).await?;
        Ok(ExitCode::SUCCESS)
    })
}

/// Serves the API until `shutdown` resolves.
pub async fn serve(
    db: Db,
    meta: &MetaArgs,
    server: &ServerArgs,
    dags: Option<PathBuf>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (listener, state) = prepare(db, meta, server, dags).await?;
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
) -> anyhow::Result<(tokio::net::TcpListener, AppState)> {
    let config = ApiConfig {
        encryption_key: meta.encryption_key()?,
        jwt_secret: jwt_secret(meta)?,
        token_lifetime: Duration::from_secs(server.jwt_expiration_time.max(1)),
        logs: meta.logs()?,
        secure_cookies: server.secure_cookies,
        dags_dir: dags,
        plugins: Some(Arc::new(HostPlugins {
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

/// The plugins folder through the plugin host, for `/api/updraft/plugins`. The registry (a
/// wasmtime engine, the built-ins compiled or read from the cache) is made on first use, so an
/// API server that is never asked about plugins never pays for it.
struct HostPlugins {
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
        // The API server loads plugins to describe them, never runs a task.
        Runtime::new(config, Backends::in_memory().0).map_err(failed)
    }

    async fn registry(&self) -> Result<&Arc<Registry>, PluginError> {
        self.registry.get_or_try_init(|| async { Registry::new(self.runtime()?).await.map_err(failed) }).await
    }
}

fn entry(p: &Plugin) -> Value {
    json!({
        "name": p.descriptor.name,
        "version": p.descriptor.version,
        "summary": p.descriptor.summary,
        "capabilities": p.descriptor.capabilities,
        "params_schema": p.descriptor.params_schema,
        "source": match &p.source {
            PluginSource::Builtin => "built-in".to_owned(),
            PluginSource::File(path) => path.display().to_string(),
        },
        "sha256": p.sha256,
    })
}

impl PluginStore for HostPlugins {
    fn list(&self) -> BoxFuture<'_, Result<Value, PluginError>> {
        Box::pin(async move {
            let registry = self.registry().await?;
            registry.rescan().await;
            let operators: Vec<Value> = registry.plugins().iter().map(|p| entry(p)).collect();
            let invalid: Vec<Value> = registry
                .files()
                .into_iter()
                .filter_map(|f| match f.status {
                    FileStatus::Invalid { reason } => Some(json!({ "path": f.path, "reason": reason })),
                    FileStatus::Loaded { .. } => None,
                })
                .collect();
            Ok(json!({ "operators": operators, "invalid": invalid }))
        })
    }

    fn install(&self, bytes: Vec<u8>) -> BoxFuture<'_, Result<Value, PluginError>> {
        Box::pin(async move {
            let registry = self.registry().await?;
            let plugin = registry
                .runtime()
                .load(bytes.clone(), PluginSource::File(PathBuf::from("upload.wasm")))
                .await
                .map_err(|e| PluginError::Invalid(format!("{e:#}")))?;
            let name = plugin.descriptor.name.clone();
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
                return Err(PluginError::Invalid(format!(
                    "operator name `{name}`: use lowercase letters, digits and _"
                )));
            }
            std::fs::create_dir_all(&self.folder).map_err(failed)?;
            // Written under another name and renamed: a watching scheduler never reads half a file.
            let tmp = self.folder.join(format!(".{name}.wasm.partial"));
            let dest = self.folder.join(format!("{name}.wasm"));
            std::fs::write(&tmp, &bytes).and_then(|()| std::fs::rename(&tmp, &dest)).map_err(failed)?;
            registry.rescan().await;
            let installed = registry.get(&name).map_err(failed)?;
            Ok(entry(&installed))
        })
    }

    fn delete<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), PluginError>> {
        Box::pin(async move {
            let safe =
                !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            let file = self.folder.join(format!("{name}.wasm"));
            if !safe || !file.is_file() {
                let builtin = updraft_plugin_host::builtin_names().contains(&name);
                return Err(PluginError::NotFound(if builtin {
                    format!("`{name}` is a built-in operator: it cannot be deleted")
                } else {
                    format!("no plugin file for `{name}` in {}", self.folder.display())
                }));
            }
            std::fs::remove_file(&file).map_err(failed)?;
            self.registry().await?.rescan().await;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn plugins_are_listed_validated_installed_and_deleted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = HostPlugins {
            folder: dir.path().join("plugins"),
            cache: dir.path().join("cache"),
            registry: tokio::sync::OnceCell::new(),
        };
        let bad = store.install(b"not a component".to_vec()).await;
        assert!(matches!(bad, Err(PluginError::Invalid(_))), "{bad:?}");
        let guest = std::path::Path::new(updraft_plugin_host::GUEST_DIR).join("fixture_versioned_v1.wasm");
        let installed = store.install(std::fs::read(guest).expect("fixture")).await.expect("installs");
        assert_eq!(installed["name"], "versioned");
        assert!(dir.path().join("plugins/versioned.wasm").is_file());
        let listed = store.list().await.expect("list");
        let names: Vec<&str> =
            listed["operators"].as_array().expect("operators").iter().filter_map(|o| o["name"].as_str()).collect();
        assert!(names.contains(&"noop") && names.contains(&"versioned"), "{names:?}");
        let noop = listed["operators"].as_array().and_then(|o| o.iter().find(|o| o["name"] == "noop")).expect("noop");
        assert!(noop["params_schema"].is_object(), "{noop}");
        assert!(matches!(store.delete("noop").await, Err(PluginError::NotFound(m)) if m.contains("built-in")));
        assert!(matches!(store.delete("../x").await, Err(PluginError::NotFound(_))));
        store.delete("versioned").await.expect("deleted");
        assert!(!dir.path().join("plugins/versioned.wasm").exists());
    }
}
