//! The metadata database: DAGs, runs, task instances, logs locations, XComs, pools, variables,
//! connections (encrypted at rest), accounts, scheduler heartbeats and the operator plugins
//! every process of a deployment shares.
//!
//! One code path serves both backends: SQLite (a file, WAL mode; the embedded default) and
//! PostgreSQL (production, several schedulers). Queries are written once in the SQL both accept
//! (`$N` placeholders, integer timestamps in microseconds, JSON as text) and run through sqlx's
//! `Any` driver; only the migrations exist in two dialects, embedded in the binary. This is the
//! only crate that contains SQL.

pub mod batch;
pub mod clean;
mod crypto;
pub mod dags;
pub mod demo;
mod dialect;
pub mod plugins;
pub mod pools;
pub mod requests;
pub mod results;
pub mod runs;
pub mod schedulers;
pub mod secrets;
pub mod task_instances;
pub mod users;
pub mod xcom;

use std::path::Path;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Executor};

pub use crypto::{EncryptionKey, KeyError};
pub use dialect::Backend;
pub use updraft_types::{DagId, RunId, RunState, RunType, TaskId, TaskState, Timestamp};

/// Errors of the metadata database, each saying what to do.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The explanation is the whole message: the cause is not chained again, so that a
    /// report prints it once.
    #[error("cannot connect to the metadata database {url} (UPDRAFT__DATABASE__URL, or --data-dir): {reason}")]
    Connect { url: String, reason: String },
    #[error("unsupported database URL {0}: use sqlite://PATH or postgres://USER@HOST:PORT/DB")]
    UnsupportedUrl(String),
    #[error("migrating the metadata database failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("metadata database query failed: {0}")]
    Query(#[from] sqlx::Error),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// Where the schema stands relative to this binary's migrations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaStatus {
    /// No migration has run yet.
    Empty,
    /// Some migrations are applied, not all: `updraft db migrate` is needed.
    Behind { applied: i64, expected: i64 },
    /// Every migration this binary knows is applied.
    Current { version: i64 },
    /// The database has migrations this binary does not know: an older binary on a newer schema.
    Ahead { applied: i64, expected: i64 },
}

/// A handle on the metadata database: a connection pool and its backend.
#[derive(Debug, Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
}

pub use updraft_sqlconn::redact;

/// The URL of the embedded SQLite database in a data folder.
pub fn sqlite_url(data_dir: &Path) -> String {
    format!("sqlite://{}?mode=rwc", data_dir.join("updraft.db").display())
}

impl Db {
    /// Connects to `url` (`sqlite://…` or `postgres://…`, with TLS as its `sslmode` and
    /// `sslrootcert` say). SQLite runs in WAL mode with a busy timeout, so readers never block
    /// the writer.
    pub async fn connect(url: &str) -> Result<Db, DbError> {
        install_default_drivers();
        let backend = Backend::of_url(url).ok_or_else(|| DbError::UnsupportedUrl(redact(url)))?;
        let options = AnyPoolOptions::new()
            .max_connections(backend.max_connections())
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if let Some(setup) = backend.connection_setup() {
                        conn.execute(setup).await?;
                    }
                    Ok(())
                })
            });
        // One connection on its own first: a pool retries a refused connection until its
        // acquire timeout and then reports only that it timed out.
        let connect_error = |e: updraft_sqlconn::ConnectError| DbError::Connect { url: redact(url), reason: e.reason };
        updraft_sqlconn::probe(url, Duration::from_secs(15)).await.map_err(connect_error)?;
        let pool = options
            .connect(url)
            .await
            .map_err(|e| DbError::Connect { url: redact(url), reason: updraft_sqlconn::explain(url, &e).reason })?;
        Ok(Db { pool, backend })
    }

    /// Which database this is (for messages; behaviour asks [`Db::concurrent_schedulers`]).
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Whether several schedulers may share this database (PostgreSQL), so that a scheduler
    /// must watch for runs whose owner stopped heartbeating.
    pub fn concurrent_schedulers(&self) -> bool {
        self.backend.concurrent_schedulers()
    }

    /// The connection pool (for tests and maintenance; queries belong in this crate).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    fn migrator(&self) -> &'static Migrator {
        self.backend.migrator()
    }

    /// Applies every pending migration; running it again changes nothing. Concurrent runs are
    /// safe: sqlx takes an advisory lock on PostgreSQL.
    pub async fn migrate(&self) -> Result<SchemaStatus, DbError> {
        self.migrator().run(&self.pool).await?;
        self.schema_status().await
    }

    /// Reads which migrations are applied.
    pub async fn schema_status(&self) -> Result<SchemaStatus, DbError> {
        let expected = self.migrator().iter().map(|m| m.version).max().unwrap_or(0);
        let table_exists: i64 = sqlx::query_scalar(self.backend.migrations_table_count()).fetch_one(&self.pool).await?;
        if table_exists == 0 {
            return Ok(SchemaStatus::Empty);
        }
        let applied: Option<i64> = sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success = $1")
            .bind(true)
            .fetch_one(&self.pool)
            .await?;
        Ok(match applied {
            None => SchemaStatus::Empty,
            Some(applied) if applied < expected => SchemaStatus::Behind { applied, expected },
            Some(applied) if applied > expected => SchemaStatus::Ahead { applied, expected },
            Some(version) => SchemaStatus::Current { version },
        })
    }

    /// Waits until the schema is current (another process is migrating it), checking every
    /// half second, for at most `timeout`. Returns the last status seen.
    pub async fn wait_until_current(url: &str, timeout: Duration) -> Result<SchemaStatus, DbError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let attempt = async {
                let db = Db::connect(url).await?;
                let status = db.schema_status().await;
                db.pool.close().await;
                status
            };
            let result = attempt.await;
            let done = matches!(result, Ok(SchemaStatus::Current { .. }));
            if done || tokio::time::Instant::now() >= deadline {
                return result;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// Microseconds since the Unix epoch: the timestamp type of every table (the tables a
/// [`Timestamp`] does not type yet: DAGs, accounts, XComs, plugins).
pub fn now_us() -> i64 {
    Timestamp::now().as_micros()
}
