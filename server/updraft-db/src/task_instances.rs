//! Task instances: created in bulk with their run, read by the scheduler (to rebuild a run it
//! adopts) and the API, changed only through [`crate::batch`]; and where each try's log is.

use updraft_types::{DagId, RunId, TaskId, TaskState, Timestamp};

use crate::runs::RunRow;
use crate::{Db, DbError};

/// A task instance to create with its run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTaskInstance {
    pub task_id: TaskId,
    pub uuid: String,
    pub max_tries: i32,
    pub operator: String,
    pub pool: String,
    pub pool_slots: i32,
    pub priority_weight: i32,
}

/// A stored task instance (the columns the scheduler and the API read).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct TaskInstanceRow {
    pub run_pk: i64,
    pub dag_id: DagId,
    pub run_id: RunId,
    pub task_id: TaskId,
    pub map_index: i32,
    pub uuid: String,
    pub state: TaskState,
    pub try_number: i32,
    pub max_tries: i32,
    pub operator: String,
    pub pool: String,
    pub pool_slots: i32,
    pub priority_weight: i32,
    pub scheduled_at: Option<Timestamp>,
    pub queued_at: Option<Timestamp>,
    pub start_date: Option<Timestamp>,
    pub end_date: Option<Timestamp>,
    pub duration_s: Option<f64>,
    pub next_attempt_at: Option<Timestamp>,
    pub hostname: Option<String>,
    pub executor: Option<String>,
    pub external_id: Option<String>,
}

const TI_COLUMNS: &str = "run_pk, dag_id, run_id, task_id, map_index, uuid, state, try_number, max_tries, operator, pool, pool_slots, \
                          priority_weight, scheduled_at, queued_at, start_date, end_date, duration_s, next_attempt_at, hostname, executor, external_id";

/// Rows per multi-row INSERT: well under SQLite's 32,766 bound parameters.
const INSERT_CHUNK: usize = 1000;

impl Db {
    /// Creates a run's task instances in bulk (none state); existing ones are kept. Returns how
    /// many were created (fewer than `tasks` when the run had started before: a cleared run).
    pub async fn create_task_instances(&self, run: &RunRow, tasks: &[NewTaskInstance]) -> Result<u64, DbError> {
        let mut created = 0;
        let mut tx = self.pool().begin().await?;
        for chunk in tasks.chunks(INSERT_CHUNK) {
            let mut sql = String::from(
                "INSERT INTO task_instance (run_pk, task_id, uuid, dag_id, run_id, max_tries, operator, pool, pool_slots, priority_weight) VALUES ",
            );
            sql.push_str(&self.backend().values_rows(chunk.len(), &[None; 10]));
            sql.push_str(" ON CONFLICT (run_pk, task_id, map_index) DO NOTHING");
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for t in chunk {
                query = query
                    .bind(run.id)
                    .bind(&t.task_id)
                    .bind(&t.uuid)
                    .bind(&run.dag_id)
                    .bind(&run.run_id)
                    .bind(t.max_tries)
                    .bind(&t.operator)
                    .bind(&t.pool)
                    .bind(t.pool_slots)
                    .bind(t.priority_weight);
            }
            created += query.execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(created)
    }

    /// Every task instance of a run, by task id.
    pub async fn task_instances(&self, run_pk: i64) -> Result<Vec<TaskInstanceRow>, DbError> {
        let sql = format!("SELECT {TI_COLUMNS} FROM task_instance WHERE run_pk = $1 ORDER BY task_id");
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(run_pk).fetch_all(self.pool()).await?)
    }

    /// One task instance of a run.
    pub async fn task_instance(&self, run_pk: i64, task_id: &str) -> Result<Option<TaskInstanceRow>, DbError> {
        let sql = format!("SELECT {TI_COLUMNS} FROM task_instance WHERE run_pk = $1 AND task_id = $2");
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(run_pk).bind(task_id).fetch_optional(self.pool()).await?)
    }

    /// Records where a try's log is.
    pub async fn set_log_location(
        &self,
        run_pk: i64,
        task_id: &str,
        try_number: i32,
        location: &str,
    ) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO task_log (run_pk, task_id, try_number, location) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (run_pk, task_id, map_index, try_number) DO UPDATE SET location = excluded.location",
        )
        .bind(run_pk)
        .bind(task_id)
        .bind(try_number)
        .bind(location)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Where a try's log is, if it was recorded.
    pub async fn log_location(&self, run_pk: i64, task_id: &str, try_number: i32) -> Result<Option<String>, DbError> {
        Ok(sqlx::query_scalar("SELECT location FROM task_log WHERE run_pk = $1 AND task_id = $2 AND try_number = $3")
            .bind(run_pk)
            .bind(task_id)
            .bind(try_number)
            .fetch_optional(self.pool())
            .await?)
    }
}
