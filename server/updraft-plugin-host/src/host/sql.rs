//! `updraft:operator/sql`: SQL on named connections (PostgreSQL, with TLS as the connection's
//! `sslmode`/`sslrootcert` say; SQLite). The host resolves
//! the connection, holds its credentials and pools, and returns rows as JSON objects; the
//! plugin only ever sees the connection's name.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Map, Number, Value};
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::sqlite::{SqlitePool, SqlitePoolOptions, SqliteRow};
use sqlx::{Column, Executor, Row, TypeInfo, ValueRef};
use tokio::sync::Mutex;

use crate::bindings::updraft::operator::sql::Host;
use crate::bindings::{ErrorCode, HostError};

use super::{HostState, host_error};

#[derive(Clone)]
enum Pool {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// Connection pools by connection name, created on first use and replaced when the
/// connection's URI changes.
#[derive(Default)]
pub(crate) struct SqlPools {
    pools: Mutex<HashMap<String, (String, Pool)>>,
}

impl SqlPools {
    async fn pool(&self, name: &str, uri: &str) -> Result<Pool, HostError> {
        let mut pools = self.pools.lock().await;
        if let Some((known, pool)) = pools.get(name)
            && known == uri
        {
            return Ok(pool.clone());
        }
        // One probe connection first, so that a refused connection, a TLS failure or a wrong
        // password is reported as such at once (a pool would retry it until its timeout and
        // then say only that it timed out); then a pool that connects as tries need it.
        let unreachable =
            |e: updraft_sqlconn::ConnectError| host_error(ErrorCode::Failed, format!("connection \"{name}\": {e}"));
        let invalid = |e: sqlx::Error| {
            host_error(ErrorCode::InvalidInput, format!("connection \"{name}\": {}", updraft_sqlconn::explain(uri, &e)))
        };
        let pool = if uri.starts_with("postgres://") || uri.starts_with("postgresql://") {
            updraft_sqlconn::probe(uri, Duration::from_secs(30)).await.map_err(unreachable)?;
            Pool::Postgres(
                PgPoolOptions::new()
                    .max_connections(8)
                    .acquire_timeout(Duration::from_secs(30))
                    .connect_lazy(uri)
                    .map_err(invalid)?,
            )
        } else if uri.starts_with("sqlite:") {
            updraft_sqlconn::probe(uri, Duration::from_secs(30)).await.map_err(unreachable)?;
            Pool::Sqlite(
                SqlitePoolOptions::new()
                    .max_connections(4)
                    .acquire_timeout(Duration::from_secs(30))
                    .connect_lazy(uri)
                    .map_err(invalid)?,
            )
        } else {
            return Err(host_error(
                ErrorCode::InvalidInput,
                format!(
                    "connection \"{name}\" is not a SQL connection: its URI must start with postgres:// or sqlite:"
                ),
            ));
        };
        pools.insert(name.to_owned(), (uri.to_owned(), pool.clone()));
        Ok(pool)
    }
}

impl HostState {
    async fn sql_pool(&mut self, connection: &str) -> Result<Pool, HostError> {
        if !self.grants.allows_connection(connection) {
            return Err(self.not_granted(&format!("\"sql\" connection \"{connection}\""), "connections"));
        }
        let conn = self
            .services
            .backends
            .connections
            .get(connection)
            .await
            .map_err(|e| host_error(ErrorCode::Failed, format!("reading connection \"{connection}\" failed: {e}")))?
            .ok_or_else(|| {
                host_error(
                    ErrorCode::NotFound,
                    format!("connection \"{connection}\" does not exist: create it with `updraft connections add {connection} --uri ...`"),
                )
            })?;
        self.services.sql.pool(connection, &conn.uri).await
    }
}

fn db_error(connection: &str, e: sqlx::Error) -> HostError {
    host_error(ErrorCode::Failed, format!("SQL on connection \"{connection}\" failed: {e}"))
}

fn float(f: f64) -> Value {
    Number::from_f64(f).map(Value::Number).unwrap_or(Value::Null)
}

fn pg_row(row: &PgRow) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    for (i, col) in row.columns().iter().enumerate() {
        let raw = row.try_get_raw(i).map_err(|e| e.to_string())?;
        let ty = col.type_info().name().to_owned();
        let value = if raw.is_null() {
            Value::Null
        } else {
            let e = |e: sqlx::Error| e.to_string();
            match ty.as_str() {
                "BOOL" => Value::Bool(row.try_get::<bool, _>(i).map_err(e)?),
                "INT2" => Value::from(row.try_get::<i16, _>(i).map_err(e)?),
                "INT4" => Value::from(row.try_get::<i32, _>(i).map_err(e)?),
                "INT8" => Value::from(row.try_get::<i64, _>(i).map_err(e)?),
                "FLOAT4" => float(f64::from(row.try_get::<f32, _>(i).map_err(e)?)),
                "FLOAT8" => float(row.try_get::<f64, _>(i).map_err(e)?),
                "JSON" | "JSONB" => row.try_get::<Value, _>(i).map_err(e)?,
                "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" | "CHAR" | "UNKNOWN" => {
                    Value::String(row.try_get::<String, _>(i).map_err(e)?)
                }
                other => {
                    return Err(format!(
                        "column \"{}\" has type {other}, which the sql capability does not convert yet: cast it in SQL (for example {}::text)",
                        col.name(),
                        col.name()
                    ));
                }
            }
        };
        out.insert(col.name().to_owned(), value);
    }
    Ok(out)
}

fn sqlite_row(row: &SqliteRow) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    for (i, col) in row.columns().iter().enumerate() {
        let raw = row.try_get_raw(i).map_err(|e| e.to_string())?;
        // SQLite is dynamically typed: convert by the value's storage class, not the column's
        // declared type.
        let class = raw.type_info().name().to_owned();
        let value = if raw.is_null() {
            Value::Null
        } else {
            let e = |e: sqlx::Error| e.to_string();
            match class.as_str() {
                "INTEGER" | "BOOLEAN" => Value::from(row.try_get_unchecked::<i64, _>(i).map_err(e)?),
                "REAL" | "NUMERIC" => float(row.try_get_unchecked::<f64, _>(i).map_err(e)?),
                "BLOB" => {
                    let bytes = row.try_get_unchecked::<Vec<u8>, _>(i).map_err(e)?;
                    Value::String(String::from_utf8_lossy(&bytes).into_owned())
                }
                _ => Value::String(row.try_get_unchecked::<String, _>(i).map_err(e)?),
            }
        };
        out.insert(col.name().to_owned(), value);
    }
    Ok(out)
}

// The statements are the DAG author's SQL, run as written on a connection the plugin was
// granted: auditing them for injection is the point of code review, not of this layer.
impl Host for HostState {
    async fn query(&mut self, connection: String, statement: String) -> wasmtime::Result<Result<String, HostError>> {
        let pool = match self.sql_pool(&connection).await {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        let rows: Result<Vec<Map<String, Value>>, HostError> = match pool {
            Pool::Postgres(p) => match sqlx::query(sqlx::AssertSqlSafe(statement.as_str())).fetch_all(&p).await {
                Ok(rows) => {
                    rows.iter().map(pg_row).collect::<Result<_, _>>().map_err(|m| host_error(ErrorCode::Failed, m))
                }
                Err(e) => Err(db_error(&connection, e)),
            },
            Pool::Sqlite(p) => match sqlx::query(sqlx::AssertSqlSafe(statement.as_str())).fetch_all(&p).await {
                Ok(rows) => {
                    rows.iter().map(sqlite_row).collect::<Result<_, _>>().map_err(|m| host_error(ErrorCode::Failed, m))
                }
                Err(e) => Err(db_error(&connection, e)),
            },
        };
        let rows = match rows {
            Ok(r) => r,
            Err(e) => return Ok(Err(e)),
        };
        let text = Value::Array(rows.into_iter().map(Value::Object).collect()).to_string();
        let max = self.services.limits.max_sql_result_bytes;
        if text.len() > max {
            return Ok(Err(host_error(
                ErrorCode::LimitExceeded,
                format!(
                    "the query's result is {} bytes of JSON, more than the limit of {max}: add a LIMIT or aggregate in SQL",
                    text.len()
                ),
            )));
        }
        Ok(Ok(text))
    }

    async fn execute(&mut self, connection: String, statement: String) -> wasmtime::Result<Result<u64, HostError>> {
        let pool = match self.sql_pool(&connection).await {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        let affected = match pool {
            Pool::Postgres(p) => {
                p.execute(sqlx::raw_sql(sqlx::AssertSqlSafe(statement.as_str()))).await.map(|r| r.rows_affected())
            }
            Pool::Sqlite(p) => {
                p.execute(sqlx::raw_sql(sqlx::AssertSqlSafe(statement.as_str()))).await.map(|r| r.rows_affected())
            }
        };
        Ok(affected.map_err(|e| db_error(&connection, e)))
    }
}
