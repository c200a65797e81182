//! The REST API server. [`app`] builds the whole axum router from an [`AppState`], so tests
//! call it without a socket; [`serve`] runs it on a listener.
//!
//! Under `/api/v2` it speaks the part of Apache Airflow's stable REST API (v2, Airflow 3.3)
//! that Updraft shares with Airflow, with the paths, status codes and response fields the
//! official `apache-airflow-client` needs. One module per resource, each with its router; no
//! router imports another: what several share (finding a DAG, run or task instance, the
//! response shapes, extractors, DAG files) lives in modules of its own. One error type
//! ([`ApiError`]), rendered as `application/problem+json`. Handlers never change a task
//! instance themselves: clear, mark and state patches are run requests (`run_request`, stored
//! by `updraft_db::requests`) that the scheduler owning the run carries out. Under
//! `/api/updraft` are Updraft's own endpoints: DAG sources for the editor, the graph JSON and
//! a Server-Sent Events stream of state changes, and the operator plugins.

mod auth;
mod connections;
mod dag_files;
mod dag_runs;
mod dags;
mod error;
mod events;
mod extract;
mod format;
mod graph;
mod import_errors;
mod logs;
mod lookup;
mod metrics;
mod models;
mod monitor;
mod openapi;
mod overview;
mod plugins;
mod pools;
mod run_request;
mod sources;
mod task_instances;
mod tasks;
mod throttle;
mod variables;
mod web;
mod xcom;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use updraft_db::{Db, EncryptionKey};

pub use auth::{Caller, Claims, Role, Tokens, generate_password, generate_secret, hash_password, verify_password};
pub use error::ApiError;
pub use openapi::document as openapi_document;
pub use plugins::{PluginError, PluginStore};
/// The task logs the API reads (re-exported for [`ApiConfig`]).
pub use updraft_logs::TaskLogs;

/// Largest request body accepted (413 above it): DAG runs' `conf` and variables are small.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// What the API server needs to run.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// The key that encrypts variables and connection secrets.
    pub encryption_key: EncryptionKey,
    /// The secret that signs bearer tokens (HS512).
    pub jwt_secret: Vec<u8>,
    /// How long a token stays valid.
    pub token_lifetime: Duration,
    /// The task logs: the local folder (`logs/dag_id=…/run_id=…/task_id=…/attempt=N.log`),
    /// read first, and the remote copy (`[logging] remote`) of the logs whose file is gone.
    pub logs: TaskLogs,
    /// The operator plugins, for `/api/updraft/plugins` (absent: those routes answer 404).
    pub plugins: Option<Arc<dyn PluginStore>>,
    /// Mark the session cookie `Secure` (the web app is served over HTTPS).
    pub secure_cookies: bool,
    /// The DAGs folder, where `POST /api/updraft/dags` writes new DAG files (absent: 404).
    pub dags_dir: Option<PathBuf>,
    /// Where connections and variables come from besides the database (the environment's
    /// `UPDRAFT_CONN_*`/`UPDRAFT_VAR_*`, mounted Secret directories).
    pub secret_sources: updraft_secrets::Sources,
}

/// The state every handler shares: cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    db: Db,
    secrets: updraft_secrets::Secrets,
    tokens: Tokens,
    logs: TaskLogs,
    dummy_hash: String,
    events: Arc<events::Events>,
    plugins: Option<Arc<dyn PluginStore>>,
    secure_cookies: bool,
    dags_dir: Option<PathBuf>,
    throttle: throttle::SignInThrottle,
    request_metrics: metrics::RequestMetrics,
    graphs: graph::GraphCache,
}

impl AppState {
    /// The API server's state: the database, the configuration, and what it builds from them.
    pub fn new(db: Db, config: ApiConfig) -> Result<AppState, ApiError> {
        let dummy_hash = hash_password("updraft: timing equaliser for unknown users")?;
        let secrets = updraft_secrets::Secrets::new(db.clone(), config.encryption_key, config.secret_sources);
        Ok(AppState(Arc::new(Inner {
            db,
            secrets,
            tokens: Tokens::new(&config.jwt_secret, config.token_lifetime),
            logs: config.logs,
            dummy_hash,
            events: Arc::default(),
            plugins: config.plugins,
            secure_cookies: config.secure_cookies,
            dags_dir: config.dags_dir,
            throttle: throttle::SignInThrottle::default(),
            request_metrics: metrics::RequestMetrics::default(),
            graphs: graph::GraphCache::default(),
        })))
    }

    /// The metadata database.
    pub fn db(&self) -> &Db {
        &self.0.db
    }

    fn request_metrics(&self) -> &metrics::RequestMetrics {
        &self.0.request_metrics
    }

    /// What signs and checks the bearer tokens.
    pub fn tokens(&self) -> &Tokens {
        &self.0.tokens
    }

    fn key(&self) -> &EncryptionKey {
        self.0.secrets.key()
    }

    /// Connections and variables from every source.
    fn secrets(&self) -> &updraft_secrets::Secrets {
        &self.0.secrets
    }

    fn logs(&self) -> &TaskLogs {
        &self.0.logs
    }

    fn throttle(&self) -> &throttle::SignInThrottle {
        &self.0.throttle
    }

    fn secure_cookies(&self) -> bool {
        self.0.secure_cookies
    }

    fn dags_dir(&self) -> Option<&std::path::Path> {
        self.0.dags_dir.as_deref()
    }

    fn plugins(&self) -> Option<&Arc<dyn PluginStore>> {
        self.0.plugins.as_ref()
    }

    fn events(&self) -> &Arc<events::Events> {
        &self.0.events
    }

    fn graphs(&self) -> &graph::GraphCache {
        &self.0.graphs
    }

    fn dummy_hash(&self) -> &str {
        &self.0.dummy_hash
    }
}

/// The whole API: `/auth/…`, `/api/v2/…` and `/api/updraft/…`; every other GET serves the
/// web app.
pub fn app(state: AppState) -> Router {
    let v2 = Router::new()
        .merge(monitor::router())
        .merge(openapi::router())
        .merge(dags::router())
        .merge(dag_runs::router())
        .merge(task_instances::router())
        .merge(logs::router())
        .merge(xcom::router())
        .merge(variables::router())
        .merge(connections::router())
        .merge(pools::router())
        .merge(import_errors::router())
        .merge(tasks::router())
        .merge(sources::v2_router());
    let updraft = Router::new()
        .merge(sources::router())
        .merge(graph::router())
        .merge(events::router())
        .merge(plugins::router())
        .merge(overview::router())
        .merge(logs::stream_router());
    Router::new()
        .nest("/api/v2", v2)
        .nest("/api/updraft", updraft)
        .merge(auth::router())
        .route("/metrics", axum::routing::get(metrics::metrics))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), metrics::record))
        .fallback(web::fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint: /api/v2/openapi.json lists the ones Updraft serves".into())
}

pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::Rejected { status: StatusCode::METHOD_NOT_ALLOWED, detail: "method not allowed on this path".into() }
}

/// Serves the API on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(state)).with_graceful_shutdown(shutdown).await
}
