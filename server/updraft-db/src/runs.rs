//! DAG runs and their task instances: triggering, claiming, bulk creation and batched state
//! writes.
//!
//! A trigger only inserts a `queued` run row, so the API answers at once; a scheduler later
//! claims queued runs (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so two schedulers never claim the
//! same run), creates the run's task instances in bulk and owns the run until it finishes or the
//! scheduler's heartbeat goes stale. State changes are written in batches, one transaction per
//! scheduler loop.

use std::collections::HashMap;

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Backend, Db, DbError, now_us};

/// A new run to insert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRun {
    pub dag_id: String,
    pub run_id: String,
    /// `scheduled`, `manual` or `backfill`.
    pub run_type: String,
    pub logical_date: Option<i64>,
    pub data_interval: Option<(i64, i64)>,
    pub run_after: i64,
    /// JSON object text.
    pub conf: String,
    pub triggered_by: String,
    pub triggering_user: Option<String>,
    pub note: Option<String>,
}

/// A stored run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRow {
    pub id: i64,
    pub dag_id: String,
    pub run_id: String,
    pub run_type: String,
    pub state: String,
    pub logical_date: Option<i64>,
    pub data_interval_start: Option<i64>,
    pub data_interval_end: Option<i64>,
    pub run_after: i64,
    pub queued_at: Option<i64>,
    pub start_date: Option<i64>,
    pub end_date: Option<i64>,
    pub conf: String,
    pub triggered_by: Option<String>,
    pub triggering_user: Option<String>,
    pub note: Option<String>,
    pub dag_version: i32,
}

const RUN_COLUMNS: &str = "id, dag_id, run_id, run_type, state, logical_date, data_interval_start, data_interval_end, run_after, \
                           queued_at, start_date, end_date, conf, triggered_by, triggering_user, note, dag_version";

fn run_row(r: &AnyRow) -> Result<RunRow, sqlx::Error> {
    Ok(RunRow {
        id: r.try_get(0)?,
        dag_id: r.try_get(1)?,
        run_id: r.try_get(2)?,
        run_type: r.try_get(3)?,
        state: r.try_get(4)?,
        logical_date: r.try_get(5)?,
        data_interval_start: r.try_get(6)?,
        data_interval_end: r.try_get(7)?,
        run_after: r.try_get(8)?,
        queued_at: r.try_get(9)?,
        start_date: r.try_get(10)?,
        end_date: r.try_get(11)?,
        conf: r.try_get(12)?,
        triggered_by: r.try_get(13)?,
        triggering_user: r.try_get(14)?,
        note: r.try_get(15)?,
        dag_version: r.try_get(16)?,
    })
}

/// How [`Db::find_runs`] orders runs: a column, ascending or descending; ties by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunOrder {
    column: &'static str,
    descending: bool,
}

impl RunOrder {
    /// Airflow's default: by id, oldest first.
    pub const DEFAULT: RunOrder = RunOrder { column: "id", descending: false };

    /// Reads Airflow's `order_by` value (`run_after`, `-start_date`, …); `None` for a field
    /// runs cannot be ordered by.
    pub fn parse(text: &str) -> Option<RunOrder> {
        let (descending, field) = match text.strip_prefix('-') {
            Some(field) => (true, field),
            None => (false, text),
        };
        let column = match field {
            "id" => "id",
            "dag_id" => "dag_id",
            "run_id" | "dag_run_id" => "run_id",
            "state" => "state",
            "logical_date" => "logical_date",
            "run_after" => "run_after",
            "start_date" => "start_date",
            "end_date" => "end_date",
            "queued_at" => "queued_at",
            "run_type" => "run_type",
            _ => return None,
        };
        Some(RunOrder { column, descending })
    }

    fn sql(self) -> String {
        let direction = if self.descending { "DESC" } else { "ASC" };
        format!("{} {direction}, id {direction}", self.column)
    }
}

/// A task instance to create with its run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTaskInstance {
    pub task_id: String,
    pub uuid: String,
    pub max_tries: i32,
    pub operator: String,
    pub pool: String,
    pub pool_slots: i32,
    pub priority_weight: i32,
}

/// A stored task instance (the columns the scheduler and the API read).
#[derive(Debug, Clone, PartialEq)]
pub struct TaskInstanceRow {
    pub run_pk: i64,
    pub dag_id: String,
    pub run_id: String,
    pub task_id: String,
    pub map_index: i32,
    pub uuid: String,
    pub state: String,
    pub try_number: i32,
    pub max_tries: i32,
    pub operator: String,
    pub pool: String,
    pub pool_slots: i32,
    pub priority_weight: i32,
    pub scheduled_at: Option<i64>,
    pub queued_at: Option<i64>,
    pub start_date: Option<i64>,
    pub end_date: Option<i64>,
    pub duration_s: Option<f64>,
    pub next_attempt_at: Option<i64>,
    pub hostname: Option<String>,
    pub executor: Option<String>,
    pub external_id: Option<String>,
}

const TI_COLUMNS: &str = "run_pk, dag_id, run_id, task_id, map_index, uuid, state, try_number, max_tries, operator, pool, pool_slots, \
                          priority_weight, scheduled_at, queued_at, start_date, end_date, duration_s, next_attempt_at, hostname, executor, external_id";

fn ti_row(r: &AnyRow) -> Result<TaskInstanceRow, sqlx::Error> {
    Ok(TaskInstanceRow {
        run_pk: r.try_get(0)?,
        dag_id: r.try_get(1)?,
        run_id: r.try_get(2)?,
        task_id: r.try_get(3)?,
        map_index: r.try_get(4)?,
        uuid: r.try_get(5)?,
        state: r.try_get(6)?,
        try_number: r.try_get(7)?,
        max_tries: r.try_get(8)?,
        operator: r.try_get(9)?,
        pool: r.try_get(10)?,
        pool_slots: r.try_get(11)?,
        priority_weight: r.try_get(12)?,
        scheduled_at: r.try_get(13)?,
        queued_at: r.try_get(14)?,
        start_date: r.try_get(15)?,
        end_date: r.try_get(16)?,
        duration_s: r.try_get(17)?,
        next_attempt_at: r.try_get(18)?,
        hostname: r.try_get(19)?,
        executor: r.try_get(20)?,
        external_id: r.try_get(21)?,
    })
}

/// One state change of a task instance, written in a batch. `None` fields are left as they are.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TaskUpdate {
    pub run_pk: i64,
    pub task_id: String,
    pub state: String,
    pub try_number: Option<i32>,
    pub scheduled_at: Option<i64>,
    pub queued_at: Option<i64>,
    pub start_date: Option<i64>,
    pub end_date: Option<i64>,
    pub duration_s: Option<f64>,
    pub next_attempt_at: Option<i64>,
    pub hostname: Option<String>,
    pub executor: Option<String>,
    /// Clearing: the times and host of the last try are erased, and `max_tries` is set to this
    /// value (the tries allowed from now on).
    pub reset_max_tries: Option<i32>,
}

/// Rows per multi-row INSERT: well under SQLite's 32,766 bound parameters.
const INSERT_CHUNK: usize = 1000;

impl Db {
    /// Inserts a queued run. A run id already used by the DAG is a conflict.
    pub async fn insert_run(&self, run: &NewRun) -> Result<RunRow, DbError> {
        let now = now_us();
        let sql = format!(
            "INSERT INTO dag_run (dag_id, run_id, run_type, state, logical_date, data_interval_start, data_interval_end, run_after, queued_at, \
             conf, triggered_by, triggering_user, note, dag_version) \
             VALUES ($1, $2, $3, 'queued', $4, $5, $6, $7, $8, $9, $10, $11, $12, COALESCE((SELECT version FROM dag WHERE dag_id = $1), 1)) \
             RETURNING {RUN_COLUMNS}"
        );
        let result = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&run.dag_id)
            .bind(&run.run_id)
            .bind(&run.run_type)
            .bind(run.logical_date)
            .bind(run.data_interval.map(|i| i.0))
            .bind(run.data_interval.map(|i| i.1))
            .bind(run.run_after)
            .bind(now)
            .bind(&run.conf)
            .bind(&run.triggered_by)
            .bind(&run.triggering_user)
            .bind(&run.note)
            .fetch_one(self.pool())
            .await;
        match result {
            Ok(row) => Ok(run_row(&row)?),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(DbError::Conflict(format!(
                "DAG `{}` already has a run `{}`: choose another run id",
                run.dag_id, run.run_id
            ))),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn get_run(&self, dag_id: &str, run_id: &str) -> Result<Option<RunRow>, DbError> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM dag_run WHERE dag_id = $1 AND run_id = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(dag_id).bind(run_id).fetch_optional(self.pool()).await?;
        Ok(row.as_ref().map(run_row).transpose()?)
    }

    pub async fn get_run_by_pk(&self, run_pk: i64) -> Result<Option<RunRow>, DbError> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM dag_run WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(run_pk).fetch_optional(self.pool()).await?;
        Ok(row.as_ref().map(run_row).transpose()?)
    }

    /// The runs of a DAG, newest first.
    pub async fn list_runs(&self, dag_id: &str, limit: i64, offset: i64) -> Result<Vec<RunRow>, DbError> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM dag_run WHERE dag_id = $1 ORDER BY run_after DESC, id DESC LIMIT $2 OFFSET $3"
        );
        let rows =
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(dag_id).bind(limit).bind(offset).fetch_all(self.pool()).await?;
        Ok(rows.iter().map(run_row).collect::<Result<_, _>>()?)
    }

    /// A page of runs (of one DAG, or of every DAG) in the given states (any state when empty),
    /// ordered by `order` (a [`RunOrder`]), with how many match in all.
    pub async fn find_runs(
        &self,
        dag_id: Option<&str>,
        states: &[String],
        order: RunOrder,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<RunRow>, i64), DbError> {
        let mut conditions = Vec::new();
        let mut n = 0;
        let mut next = || {
            n += 1;
            format!("${n}")
        };
        if dag_id.is_some() {
            conditions.push(format!("dag_id = {}", next()));
        }
        if !states.is_empty() {
            let marks: Vec<String> = states.iter().map(|_| next()).collect();
            conditions.push(format!("state IN ({})", marks.join(", ")));
        }
        let filter = if conditions.is_empty() { String::new() } else { format!("WHERE {}", conditions.join(" AND ")) };
        let (limit_mark, offset_mark) = (next(), next());
        // The filter holds only placeholders and the order one of `RunOrder`'s columns.
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM dag_run {filter} ORDER BY {} LIMIT {limit_mark} OFFSET {offset_mark}",
            order.sql()
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        let mut count =
            sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM dag_run {filter}")));
        if let Some(dag_id) = dag_id {
            query = query.bind(dag_id);
            count = count.bind(dag_id);
        }
        for state in states {
            query = query.bind(state);
            count = count.bind(state);
        }
        let rows = query.bind(limit).bind(offset).fetch_all(self.pool()).await?;
        let total = count.fetch_one(self.pool()).await?;
        Ok((rows.iter().map(run_row).collect::<Result<_, _>>()?, total))
    }

    /// The runs of a DAG with this logical date (µs).
    pub async fn runs_at(&self, dag_id: &str, logical_date: i64) -> Result<Vec<RunRow>, DbError> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM dag_run WHERE dag_id = $1 AND logical_date = $2 ORDER BY id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(dag_id).bind(logical_date).fetch_all(self.pool()).await?;
        Ok(rows.iter().map(run_row).collect::<Result<_, _>>()?)
    }

    /// The latest scheduled run's data interval end of each DAG (for timetables).
    pub async fn last_scheduled_interval(&self, dag_id: &str) -> Result<Option<(i64, i64)>, DbError> {
        let row = sqlx::query(
            "SELECT data_interval_start, data_interval_end FROM dag_run WHERE dag_id = $1 AND run_type = 'scheduled' \
             AND data_interval_end IS NOT NULL ORDER BY data_interval_end DESC LIMIT 1",
        )
        .bind(dag_id)
        .fetch_optional(self.pool())
        .await?;
        Ok(match row {
            Some(r) => Some((r.try_get(0)?, r.try_get(1)?)),
            None => None,
        })
    }

    /// Number of running runs of a DAG.
    pub async fn active_runs(&self, dag_id: &str) -> Result<i64, DbError> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM dag_run WHERE dag_id = $1 AND state = 'running'")
            .bind(dag_id)
            .fetch_one(self.pool())
            .await?)
    }

    /// Claims up to `limit` queued runs of unpaused DAGs for `scheduler_id`, oldest first, and
    /// marks them running. On PostgreSQL the rows are locked with `SKIP LOCKED`, so concurrent
    /// schedulers claim disjoint runs.
    pub async fn claim_queued_runs(&self, scheduler_id: &str, limit: i64) -> Result<Vec<RunRow>, DbError> {
        let lock = if self.backend() == Backend::Postgres { " FOR UPDATE OF dag_run SKIP LOCKED" } else { "" };
        let mut tx = self.pool().begin().await?;
        let select = format!(
            "SELECT dag_run.id FROM dag_run JOIN dag ON dag.dag_id = dag_run.dag_id \
             WHERE dag_run.state = 'queued' AND dag.is_paused = 0 AND dag.is_stale = 0 \
             ORDER BY dag_run.run_after, dag_run.id LIMIT $1{lock}"
        );
        let ids: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(select)).bind(limit).fetch_all(&mut *tx).await?;
        let now = now_us();
        let mut claimed = Vec::with_capacity(ids.len());
        for id in ids {
            let sql = format!(
                "UPDATE dag_run SET state = 'running', start_date = $2, last_scheduling_decision = $2, scheduler_id = $3 WHERE id = $1 AND state = 'queued' RETURNING {RUN_COLUMNS}"
            );
            if let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(id)
                .bind(now)
                .bind(scheduler_id)
                .fetch_optional(&mut *tx)
                .await?
            {
                claimed.push(run_row(&row)?);
            }
        }
        tx.commit().await?;
        Ok(claimed)
    }

    /// Creates a run's task instances in bulk (none state); existing ones are kept. Returns how
    /// many were created (fewer than `tasks` when the run had started before: a cleared run).
    pub async fn create_task_instances(&self, run: &RunRow, tasks: &[NewTaskInstance]) -> Result<u64, DbError> {
        let mut created = 0;
        let mut tx = self.pool().begin().await?;
        for chunk in tasks.chunks(INSERT_CHUNK) {
            let mut sql = String::from(
                "INSERT INTO task_instance (run_pk, task_id, uuid, dag_id, run_id, max_tries, operator, pool, pool_slots, priority_weight) VALUES ",
            );
            for i in 0..chunk.len() {
                if i > 0 {
                    sql.push(',');
                }
                if self.backend() == Backend::Sqlite {
                    // Anonymous parameters: SQLite finds a named one by scanning every name of
                    // the statement, which makes binding 10,000 `$N`s quadratic.
                    sql.push_str("(?,?,?,?,?,?,?,?,?,?)");
                } else {
                    let b = i * 10;
                    let row: Vec<String> = (1..=10).map(|k| format!("${}", b + k)).collect();
                    sql.push_str(&format!("({})", row.join(",")));
                }
            }
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
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(run_pk).fetch_all(self.pool()).await?;
        Ok(rows.iter().map(ti_row).collect::<Result<_, _>>()?)
    }

    pub async fn task_instance(&self, run_pk: i64, task_id: &str) -> Result<Option<TaskInstanceRow>, DbError> {
        let sql = format!("SELECT {TI_COLUMNS} FROM task_instance WHERE run_pk = $1 AND task_id = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(run_pk).bind(task_id).fetch_optional(self.pool()).await?;
        Ok(row.as_ref().map(ti_row).transpose()?)
    }

    /// Writes a batch of task-instance changes and run-state changes in one transaction, and
    /// deletes the run requests (`done_requests`) those changes carry out.
    pub async fn apply(
        &self,
        updates: &[TaskUpdate],
        run_states: &[(i64, String, Option<i64>)],
        done_requests: &[i64],
    ) -> Result<(), DbError> {
        if updates.is_empty() && run_states.is_empty() && done_requests.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool().begin().await?;
        // One statement per chunk of updates: per-row statements cost a round trip each (to
        // the server on PostgreSQL, to sqlx's worker thread on SQLite), which capped
        // PostgreSQL near 1,000 task instances a second.
        let sqlite = self.backend() == Backend::Sqlite;
        let mut segment = Vec::new();
        for u in updates {
            if u.reset_max_tries.is_some() {
                update_batch(&mut tx, &collapse(&segment), sqlite).await?;
                segment.clear();
                reset_one(&mut tx, u).await?;
            } else {
                segment.push(u);
            }
        }
        update_batch(&mut tx, &collapse(&segment), sqlite).await?;
        for (run_pk, state, end_date) in run_states {
            sqlx::query("UPDATE dag_run SET state = $2, end_date = COALESCE($3, end_date) WHERE id = $1")
                .bind(run_pk)
                .bind(state)
                .bind(end_date)
                .execute(&mut *tx)
                .await?;
        }
        for id in done_requests {
            sqlx::query("DELETE FROM run_request WHERE id = $1").bind(id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Takes over the running runs whose scheduler is gone: on PostgreSQL those whose owner's
    /// heartbeat is older than `stale_before` (µs); with `all_foreign` (SQLite, where only one
    /// scheduler runs) every running run not owned by `scheduler_id`.
    pub async fn adopt_runs(
        &self,
        scheduler_id: &str,
        stale_before: i64,
        all_foreign: bool,
    ) -> Result<Vec<RunRow>, DbError> {
        let lock = if self.backend() == Backend::Postgres { " FOR UPDATE SKIP LOCKED" } else { "" };
        let condition = if all_foreign {
            "state = 'running' AND (scheduler_id IS NULL OR scheduler_id <> $1)"
        } else {
            "state = 'running' AND (scheduler_id IS NULL OR scheduler_id NOT IN (SELECT id FROM scheduler_job WHERE heartbeat_at >= $2))"
        };
        let mut tx = self.pool().begin().await?;
        let select = format!("SELECT id FROM dag_run WHERE {condition}{lock}");
        let mut query = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(select)).bind(scheduler_id);
        if !all_foreign {
            query = query.bind(stale_before);
        }
        let ids: Vec<i64> = query.fetch_all(&mut *tx).await?;
        let mut adopted = Vec::with_capacity(ids.len());
        for id in ids {
            let sql = format!("UPDATE dag_run SET scheduler_id = $2 WHERE id = $1 RETURNING {RUN_COLUMNS}");
            let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).bind(scheduler_id).fetch_one(&mut *tx).await?;
            adopted.push(run_row(&row)?);
        }
        tx.commit().await?;
        Ok(adopted)
    }

    /// Marks this scheduler alive.
    pub async fn heartbeat(&self, scheduler_id: &str) -> Result<(), DbError> {
        sqlx::query("UPDATE scheduler_job SET heartbeat_at = $2 WHERE id = $1")
            .bind(scheduler_id)
            .bind(now_us())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The pools and their slots.
    pub async fn pools(&self) -> Result<Vec<(String, i32)>, DbError> {
        let rows = sqlx::query("SELECT name, slots FROM pool ORDER BY name").fetch_all(self.pool()).await?;
        Ok(rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect::<Result<_, sqlx::Error>>()?)
    }

    /// Creates or resizes a pool.
    pub async fn set_pool(&self, name: &str, slots: i32, description: Option<&str>) -> Result<(), DbError> {
        sqlx::query("INSERT INTO pool (name, slots, description) VALUES ($1, $2, $3) ON CONFLICT (name) DO UPDATE SET slots = excluded.slots, description = excluded.description")
            .bind(name)
            .bind(slots)
            .bind(description)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Registers a scheduler (for heartbeats and adoption of its runs after a crash).
    pub async fn register_scheduler(&self, id: &str, hostname: &str) -> Result<(), DbError> {
        let now = now_us();
        sqlx::query("INSERT INTO scheduler_job (id, hostname, started_at, heartbeat_at, state) VALUES ($1, $2, $3, $3, 'running')")
            .bind(id)
            .bind(hostname)
            .bind(now)
            .execute(self.pool())
            .await?;
        Ok(())
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

    pub async fn log_location(&self, run_pk: i64, task_id: &str, try_number: i32) -> Result<Option<String>, DbError> {
        Ok(sqlx::query_scalar("SELECT location FROM task_log WHERE run_pk = $1 AND task_id = $2 AND try_number = $3")
            .bind(run_pk)
            .bind(task_id)
            .bind(try_number)
            .fetch_optional(self.pool())
            .await?)
    }
}

/// Slots taken in a pool by task instances in one state (for the API's pool listing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolUsage {
    pub pool: String,
    pub state: String,
    pub slots: i64,
}

/// A pool as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolRow {
    pub name: String,
    pub slots: i32,
    pub description: Option<String>,
}

impl Db {
    /// How many runs a DAG has.
    pub async fn count_runs(&self, dag_id: &str) -> Result<i64, DbError> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM dag_run WHERE dag_id = $1")
            .bind(dag_id)
            .fetch_one(self.pool())
            .await?)
    }

    /// The newest run of every DAG that has one (by `run_after`, then insertion), for the web
    /// app's DAG list.
    pub async fn latest_runs(&self) -> Result<Vec<RunRow>, DbError> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM dag_run r WHERE r.id = (SELECT r2.id FROM dag_run r2 \
             WHERE r2.dag_id = r.dag_id ORDER BY r2.run_after DESC, r2.id DESC LIMIT 1)"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(self.pool()).await?;
        Ok(rows.iter().map(run_row).collect::<Result<_, _>>()?)
    }

    /// The runs queued or running, and those that ended at or after `since` (µs): what a
    /// watcher of state changes looks at.
    pub async fn runs_in_progress_or_ended_since(&self, since: i64) -> Result<Vec<RunRow>, DbError> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM dag_run WHERE state IN ('queued', 'running') OR end_date >= $1 ORDER BY id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(since).fetch_all(self.pool()).await?;
        Ok(rows.iter().map(run_row).collect::<Result<_, _>>()?)
    }

    /// Sets a run's note (free text; not a state, so it needs no request to the scheduler).
    pub async fn set_run_note(&self, run_pk: i64, note: Option<&str>) -> Result<(), DbError> {
        sqlx::query("UPDATE dag_run SET note = $2 WHERE id = $1").bind(run_pk).bind(note).execute(self.pool()).await?;
        Ok(())
    }

    /// Deletes a run with its task instances, logs locations, XComs and requests, if no
    /// scheduler owns it: finished, or queued and not yet claimed. Returns whether it was
    /// deleted; a run in progress stays (mark it failed first).
    pub async fn delete_idle_run(&self, run_pk: i64) -> Result<bool, DbError> {
        let done = sqlx::query(
            "DELETE FROM dag_run WHERE id = $1 AND (state IN ('success', 'failed') OR (state = 'queued' AND scheduler_id IS NULL))",
        )
        .bind(run_pk)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Every pool with its description, by name.
    pub async fn pool_rows(&self) -> Result<Vec<PoolRow>, DbError> {
        let rows =
            sqlx::query("SELECT name, slots, description FROM pool ORDER BY name").fetch_all(self.pool()).await?;
        Ok(rows
            .iter()
            .map(|r| Ok(PoolRow { name: r.try_get(0)?, slots: r.try_get(1)?, description: r.try_get(2)? }))
            .collect::<Result<_, sqlx::Error>>()?)
    }

    /// Creates a pool; an existing name is a conflict (unlike [`Db::set_pool`]).
    pub async fn create_pool(&self, name: &str, slots: i32, description: Option<&str>) -> Result<(), DbError> {
        let result = sqlx::query("INSERT INTO pool (name, slots, description) VALUES ($1, $2, $3)")
            .bind(name)
            .bind(slots)
            .bind(description)
            .execute(self.pool())
            .await;
        match result {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(DbError::Conflict(format!("pool `{name}` exists: change it instead")))
            }
            other => other.map(|_| ()).map_err(DbError::from),
        }
    }

    /// Deletes a pool; returns whether it existed.
    pub async fn delete_pool(&self, name: &str) -> Result<bool, DbError> {
        let done = sqlx::query("DELETE FROM pool WHERE name = $1").bind(name).execute(self.pool()).await?;
        Ok(done.rows_affected() > 0)
    }

    /// Slots taken per pool and state, for task instances scheduled, queued or running.
    pub async fn pool_usage(&self) -> Result<Vec<PoolUsage>, DbError> {
        let rows = sqlx::query(
            "SELECT pool, state, CAST(sum(pool_slots) AS BIGINT) FROM task_instance \
             WHERE state IN ('scheduled', 'queued', 'running') GROUP BY pool, state",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .iter()
            .map(|r| Ok(PoolUsage { pool: r.try_get(0)?, state: r.try_get(1)?, slots: r.try_get(2)? }))
            .collect::<Result<_, sqlx::Error>>()?)
    }

    /// The latest heartbeat of any scheduler (µs), if one ever ran.
    pub async fn latest_scheduler_heartbeat(&self) -> Result<Option<i64>, DbError> {
        Ok(sqlx::query_scalar("SELECT max(heartbeat_at) FROM scheduler_job").fetch_one(self.pool()).await?)
    }

    /// A round trip to the database (health checks).
    pub async fn ping(&self) -> Result<(), DbError> {
        sqlx::query("SELECT 1").execute(self.pool()).await?;
        Ok(())
    }
}

type Tx<'c> = sqlx::Transaction<'c, sqlx::Any>;

const SET_FROM_UPDATE: &str = "state = v.state, try_number = COALESCE(v.try_number, t.try_number), \
    scheduled_at = COALESCE(v.scheduled_at, t.scheduled_at), queued_at = COALESCE(v.queued_at, t.queued_at), \
    start_date = COALESCE(v.start_date, t.start_date), end_date = COALESCE(v.end_date, t.end_date), \
    duration_s = COALESCE(CAST(v.duration_us AS DOUBLE PRECISION) / 1000000.0, t.duration_s), \
    next_attempt_at = v.next_attempt_at, hostname = COALESCE(v.hostname, t.hostname), executor = COALESCE(v.executor, t.executor)";

/// Bound as integer microseconds: sqlx's Any driver mis-encodes an optional f64 for PostgreSQL.
fn duration_us(u: &TaskUpdate) -> Option<i64> {
    u.duration_s.map(|s| (s * 1e6) as i64)
}

async fn reset_one(tx: &mut Tx<'_>, u: &TaskUpdate) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE task_instance SET state = $3, max_tries = $4, scheduled_at = NULL, queued_at = NULL, start_date = NULL, \
         end_date = NULL, duration_s = NULL, next_attempt_at = NULL, hostname = NULL, external_id = NULL \
         WHERE run_pk = $1 AND task_id = $2 AND map_index = -1",
    )
    .bind(u.run_pk)
    .bind(&u.task_id)
    .bind(&u.state)
    .bind(u.reset_max_tries)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Folds successive updates of the same task instance into one, in order (an `UPDATE … FROM`
/// with two source rows for one target row would apply an arbitrary one of them).
fn collapse(updates: &[&TaskUpdate]) -> Vec<TaskUpdate> {
    let mut out: Vec<TaskUpdate> = Vec::with_capacity(updates.len());
    let mut index: HashMap<(i64, &str), usize> = HashMap::with_capacity(updates.len());
    for &u in updates {
        match index.get(&(u.run_pk, u.task_id.as_str())) {
            Some(&i) => {
                let a = &mut out[i];
                a.state.clone_from(&u.state);
                a.try_number = u.try_number.or(a.try_number);
                a.scheduled_at = u.scheduled_at.or(a.scheduled_at);
                a.queued_at = u.queued_at.or(a.queued_at);
                a.start_date = u.start_date.or(a.start_date);
                a.end_date = u.end_date.or(a.end_date);
                a.duration_s = u.duration_s.or(a.duration_s);
                a.next_attempt_at = u.next_attempt_at;
                if u.hostname.is_some() {
                    a.hostname.clone_from(&u.hostname);
                }
                if u.executor.is_some() {
                    a.executor.clone_from(&u.executor);
                }
            }
            None => {
                index.insert((u.run_pk, u.task_id.as_str()), out.len());
                out.push(u.clone());
            }
        }
    }
    out
}

/// Rows per batched UPDATE (12 parameters each, under SQLite's 32,766 and PostgreSQL's 65,535).
const UPDATE_CHUNK: usize = 2000;

/// Applies updates as `WITH v AS (VALUES …) UPDATE … FROM v`, which both databases accept. SQLite gets
/// anonymous parameters: it finds a named one by scanning every name of the statement.
async fn update_batch(tx: &mut Tx<'_>, updates: &[TaskUpdate], sqlite: bool) -> Result<(), DbError> {
    const TYPES: [&str; 12] = [
        "BIGINT", "TEXT", "TEXT", "INTEGER", "BIGINT", "BIGINT", "BIGINT", "BIGINT", "BIGINT", "BIGINT", "TEXT", "TEXT",
    ];
    for chunk in updates.chunks(UPDATE_CHUNK) {
        let mut sql = String::with_capacity(64 + chunk.len() * 200);
        sql.push_str(
            "WITH v(run_pk, task_id, state, try_number, scheduled_at, queued_at, start_date, end_date, duration_us, \
             next_attempt_at, hostname, executor) AS (VALUES ",
        );
        for i in 0..chunk.len() {
            if i > 0 {
                sql.push(',');
            }
            sql.push('(');
            for (k, ty) in TYPES.iter().enumerate() {
                if k > 0 {
                    sql.push(',');
                }
                if sqlite {
                    sql.push_str(&format!("CAST(? AS {ty})"));
                } else {
                    sql.push_str(&format!("CAST(${} AS {ty})", i * TYPES.len() + k + 1));
                }
            }
            sql.push(')');
        }
        sql.push_str(") UPDATE task_instance AS t SET ");
        sql.push_str(SET_FROM_UPDATE);
        sql.push_str(" FROM v WHERE t.run_pk = v.run_pk AND t.task_id = v.task_id AND t.map_index = -1");
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for u in chunk {
            query = query
                .bind(u.run_pk)
                .bind(&u.task_id)
                .bind(&u.state)
                .bind(u.try_number)
                .bind(u.scheduled_at)
                .bind(u.queued_at)
                .bind(u.start_date)
                .bind(u.end_date)
                .bind(duration_us(u))
                .bind(u.next_attempt_at)
                .bind(&u.hostname)
                .bind(&u.executor);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}
