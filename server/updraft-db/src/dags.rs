//! DAG rows and import errors, kept in step with the DAGs folder by the scheduler's parser.

use sqlx::Row;

use crate::{Db, DbError, Timestamp, now_us};

/// What the parser knows of a DAG, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DagRecord {
    pub dag_id: String,
    pub fileloc: String,
    pub source_hash: String,
    pub description: Option<String>,
    pub schedule: Option<String>,
    pub timezone: String,
    /// JSON array of strings.
    pub tags: String,
    /// JSON array of strings.
    pub owners: String,
    pub max_active_runs: i32,
    pub max_active_tasks: i32,
    pub task_count: i32,
}

/// A stored DAG with its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DagRow {
    pub record: DagRecord,
    pub is_paused: bool,
    pub is_stale: bool,
    pub version: i32,
    pub last_parsed_at: Option<Timestamp>,
}

/// How a sync changed the stored DAGs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub stale: Vec<String>,
}

fn flag(row: &sqlx::any::AnyRow, i: usize) -> Result<bool, sqlx::Error> {
    row.try_get::<i32, _>(i).map(|v| v != 0).or_else(|_| row.try_get::<i64, _>(i).map(|v| v != 0))
}

impl Db {
    /// Stores the DAGs found by one parse of the DAGs folder, in one transaction: new DAGs are
    /// added (paused when `paused_at_creation`), changed ones get a new version, DAGs no longer
    /// found are marked stale (their history stays). Import errors replace the previous ones.
    pub async fn sync_dags(
        &self,
        dags: &[DagRecord],
        import_errors: &[(String, String)],
        paused_at_creation: bool,
    ) -> Result<SyncReport, DbError> {
        let now = now_us();
        let mut tx = self.pool().begin().await?;
        let existing: Vec<(String, String, i32)> = sqlx::query("SELECT dag_id, source_hash, is_stale FROM dag")
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect::<Result<_, sqlx::Error>>()?;
        let known: std::collections::HashMap<&str, (&str, i32)> =
            existing.iter().map(|(id, hash, stale)| (id.as_str(), (hash.as_str(), *stale))).collect();
        let mut report = SyncReport::default();
        for d in dags {
            match known.get(d.dag_id.as_str()) {
                None => {
                    sqlx::query(
                        "INSERT INTO dag (dag_id, is_paused, fileloc, source_hash, description, schedule, timezone, tags, owners, max_active_runs, max_active_tasks, task_count, last_parsed_at, created_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) ON CONFLICT (dag_id) DO NOTHING",
                    )
                    .bind(&d.dag_id)
                    .bind(i32::from(paused_at_creation))
                    .bind(&d.fileloc)
                    .bind(&d.source_hash)
                    .bind(&d.description)
                    .bind(&d.schedule)
                    .bind(&d.timezone)
                    .bind(&d.tags)
                    .bind(&d.owners)
                    .bind(d.max_active_runs)
                    .bind(d.max_active_tasks)
                    .bind(d.task_count)
                    .bind(now)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    report.added.push(d.dag_id.clone());
                }
                Some((hash, stale)) => {
                    let changed = *hash != d.source_hash;
                    sqlx::query(
                        "UPDATE dag SET fileloc = $2, source_hash = $3, description = $4, schedule = $5, timezone = $6, tags = $7, owners = $8, \
                         max_active_runs = $9, max_active_tasks = $10, task_count = $11, last_parsed_at = $12, is_stale = 0, \
                         version = version + $13 WHERE dag_id = $1",
                    )
                    .bind(&d.dag_id)
                    .bind(&d.fileloc)
                    .bind(&d.source_hash)
                    .bind(&d.description)
                    .bind(&d.schedule)
                    .bind(&d.timezone)
                    .bind(&d.tags)
                    .bind(&d.owners)
                    .bind(d.max_active_runs)
                    .bind(d.max_active_tasks)
                    .bind(d.task_count)
                    .bind(now)
                    .bind(i32::from(changed))
                    .execute(&mut *tx)
                    .await?;
                    if changed || *stale != 0 {
                        report.changed.push(d.dag_id.clone());
                    }
                }
            }
        }
        let present: std::collections::HashSet<&str> = dags.iter().map(|d| d.dag_id.as_str()).collect();
        for (id, _, stale) in &existing {
            if !present.contains(id.as_str()) && *stale == 0 {
                sqlx::query("UPDATE dag SET is_stale = 1 WHERE dag_id = $1").bind(id).execute(&mut *tx).await?;
                report.stale.push(id.clone());
            }
        }
        sqlx::query("DELETE FROM import_error").execute(&mut *tx).await?;
        for (file, message) in import_errors {
            sqlx::query("INSERT INTO import_error (fileloc, message, recorded_at) VALUES ($1, $2, $3)")
                .bind(file)
                .bind(message)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(report)
    }

    /// Pauses or unpauses a DAG.
    pub async fn set_paused(&self, dag_id: &str, paused: bool) -> Result<(), DbError> {
        let done = sqlx::query("UPDATE dag SET is_paused = $2 WHERE dag_id = $1")
            .bind(dag_id)
            .bind(i32::from(paused))
            .execute(self.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(DbError::NotFound(format!("no DAG `{dag_id}`: run `updraft dags list` to see the DAGs")));
        }
        Ok(())
    }

    /// The stored DAG with this id, stale or not.
    pub async fn get_dag(&self, dag_id: &str) -> Result<Option<DagRow>, DbError> {
        let rows = self.query_dags("WHERE dag_id = $1", Some(dag_id)).await?;
        Ok(rows.into_iter().next())
    }

    /// Every DAG that is not stale, by id.
    pub async fn list_dags(&self) -> Result<Vec<DagRow>, DbError> {
        self.query_dags("WHERE is_stale = 0", None).await
    }

    /// Every DAG, stale ones included, by id.
    pub async fn list_all_dags(&self) -> Result<Vec<DagRow>, DbError> {
        self.query_dags("", None).await
    }

    async fn query_dags(&self, filter: &'static str, arg: Option<&str>) -> Result<Vec<DagRow>, DbError> {
        let sql = format!(
            "SELECT dag_id, fileloc, source_hash, description, schedule, timezone, tags, owners, max_active_runs, max_active_tasks, task_count, \
             is_paused, is_stale, version, last_parsed_at FROM dag {filter} ORDER BY dag_id"
        );
        // The filter is one of this module's constants, never user input.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        if let Some(arg) = arg {
            query = query.bind(arg);
        }
        let rows = query.fetch_all(self.pool()).await?;
        rows.iter()
            .map(|r| {
                Ok(DagRow {
                    record: DagRecord {
                        dag_id: r.try_get(0)?,
                        fileloc: r.try_get(1)?,
                        source_hash: r.try_get(2)?,
                        description: r.try_get(3)?,
                        schedule: r.try_get(4)?,
                        timezone: r.try_get(5)?,
                        tags: r.try_get(6)?,
                        owners: r.try_get(7)?,
                        max_active_runs: r.try_get(8)?,
                        max_active_tasks: r.try_get(9)?,
                        task_count: r.try_get(10)?,
                    },
                    is_paused: flag(r, 11)?,
                    is_stale: flag(r, 12)?,
                    version: r.try_get(13)?,
                    last_parsed_at: r.try_get(14)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(DbError::from)
    }

    /// The current import errors: (file, message).
    pub async fn import_errors(&self) -> Result<Vec<(String, String)>, DbError> {
        let rows =
            sqlx::query("SELECT fileloc, message FROM import_error ORDER BY fileloc").fetch_all(self.pool()).await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(DbError::from)
    }

    /// The current import errors with when they were recorded: (file, message, time).
    pub async fn import_error_rows(&self) -> Result<Vec<(String, String, Timestamp)>, DbError> {
        Ok(sqlx::query_as("SELECT fileloc, message, recorded_at FROM import_error ORDER BY fileloc")
            .fetch_all(self.pool())
            .await?)
    }
}
