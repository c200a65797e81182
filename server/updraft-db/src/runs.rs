//! DAG runs: triggering, claiming, adoption, listing and deletion.
//!
//! A trigger only inserts a `queued` run row, so the API answers at once; a scheduler later
//! claims queued runs (row locks that skip what another scheduler holds, so two schedulers
//! never claim the same run), creates the run's task instances in bulk
//! ([`crate::task_instances`]) and owns the run until it finishes or the scheduler's heartbeat
//! goes stale ([`crate::schedulers`]). State changes are written in batches
//! ([`crate::batch`]).

use updraft_types::{DagId, RunId, RunState, RunType, Timestamp};

use crate::{Db, DbError};

/// A new run to insert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRun {
    pub dag_id: DagId,
    pub run_id: RunId,
    pub run_type: RunType,
    pub logical_date: Option<Timestamp>,
    /// Start and end of the data interval.
    pub data_interval: Option<(Timestamp, Timestamp)>,
    pub run_after: Timestamp,
    /// JSON object text.
    pub conf: String,
    pub triggered_by: String,
    pub triggering_user: Option<String>,
    pub note: Option<String>,
}

/// A stored run.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RunRow {
    pub id: i64,
    pub dag_id: DagId,
    pub run_id: RunId,
    pub run_type: RunType,
    pub state: RunState,
    pub logical_date: Option<Timestamp>,
    pub data_interval_start: Option<Timestamp>,
    pub data_interval_end: Option<Timestamp>,
    pub run_after: Timestamp,
    pub queued_at: Option<Timestamp>,
    pub start_date: Option<Timestamp>,
    pub end_date: Option<Timestamp>,
    /// JSON object text.
    pub conf: String,
    pub triggered_by: Option<String>,
    pub triggering_user: Option<String>,
    pub note: Option<String>,
    pub dag_version: i32,
}

const RUN_COLUMNS: &str = "id, dag_id, run_id, run_type, state, logical_date, data_interval_start, data_interval_end, run_after, \
                           queued_at, start_date, end_date, conf, triggered_by, triggering_user, note, dag_version";

/// A query whose rows are [`RunRow`]s.
fn runs_query<'q>(
    sql: String,
) -> sqlx::query::QueryAs<'q, sqlx::Any, RunRow, <sqlx::Any as sqlx::Database>::Arguments> {
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
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

/// A run's new state, written with a batch ([`crate::batch::Changes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunStateChange {
    pub run_pk: i64,
    pub state: RunState,
    /// Set when the run ends; `None` leaves the stored end date.
    pub end_date: Option<Timestamp>,
}

impl Db {
    /// Inserts a queued run. A run id already used by the DAG is a conflict.
    pub async fn insert_run(&self, run: &NewRun) -> Result<RunRow, DbError> {
        let sql = format!(
            "INSERT INTO dag_run (dag_id, run_id, run_type, state, logical_date, data_interval_start, data_interval_end, run_after, queued_at, \
             conf, triggered_by, triggering_user, note, dag_version) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, COALESCE((SELECT version FROM dag WHERE dag_id = $1), 1)) \
             RETURNING {RUN_COLUMNS}"
        );
        let result = runs_query(sql)
            .bind(&run.dag_id)
            .bind(&run.run_id)
            .bind(run.run_type)
            .bind(RunState::Queued)
            .bind(run.logical_date)
            .bind(run.data_interval.map(|i| i.0))
            .bind(run.data_interval.map(|i| i.1))
            .bind(run.run_after)
            .bind(Timestamp::now())
            .bind(&run.conf)
            .bind(&run.triggered_by)
            .bind(&run.triggering_user)
            .bind(&run.note)
            .fetch_one(self.pool())
            .await;
        match result {
            Ok(row) => Ok(row),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(DbError::Conflict(format!(
                "DAG `{}` already has a run `{}`: choose another run id",
                run.dag_id, run.run_id
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// The run `run_id` of a DAG.
    pub async fn get_run(&self, dag_id: &str, run_id: &str) -> Result<Option<RunRow>, DbError> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM dag_run WHERE dag_id = $1 AND run_id = $2");
        Ok(runs_query(sql).bind(dag_id).bind(run_id).fetch_optional(self.pool()).await?)
    }

    /// The run with this primary key.
    pub async fn get_run_by_pk(&self, run_pk: i64) -> Result<Option<RunRow>, DbError> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM dag_run WHERE id = $1");
        Ok(runs_query(sql).bind(run_pk).fetch_optional(self.pool()).await?)
    }

    /// The runs of a DAG, newest first.
    pub async fn list_runs(&self, dag_id: &str, limit: i64, offset: i64) -> Result<Vec<RunRow>, DbError> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM dag_run WHERE dag_id = $1 ORDER BY run_after DESC, id DESC LIMIT $2 OFFSET $3"
        );
        Ok(runs_query(sql).bind(dag_id).bind(limit).bind(offset).fetch_all(self.pool()).await?)
    }

    /// A page of runs (of one DAG, or of every DAG) in the given states (any state when empty),
    /// ordered by `order` (a [`RunOrder`]), with how many match in all.
    pub async fn find_runs(
        &self,
        dag_id: Option<&str>,
        states: &[RunState],
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
        let mut query = runs_query(sql);
        let mut count =
            sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM dag_run {filter}")));
        if let Some(dag_id) = dag_id {
            query = query.bind(dag_id);
            count = count.bind(dag_id);
        }
        for state in states {
            query = query.bind(*state);
            count = count.bind(*state);
        }
        let rows = query.bind(limit).bind(offset).fetch_all(self.pool()).await?;
        let total = count.fetch_one(self.pool()).await?;
        Ok((rows, total))
    }

    /// The runs of a DAG with this logical date.
    pub async fn runs_at(&self, dag_id: &str, logical_date: Timestamp) -> Result<Vec<RunRow>, DbError> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM dag_run WHERE dag_id = $1 AND logical_date = $2 ORDER BY id");
        Ok(runs_query(sql).bind(dag_id).bind(logical_date).fetch_all(self.pool()).await?)
    }

    /// The data interval (start, end) of a DAG's latest scheduled run (for timetables).
    pub async fn last_scheduled_interval(&self, dag_id: &str) -> Result<Option<(Timestamp, Timestamp)>, DbError> {
        Ok(sqlx::query_as(
            "SELECT data_interval_start, data_interval_end FROM dag_run WHERE dag_id = $1 AND run_type = $2 \
             AND data_interval_end IS NOT NULL ORDER BY data_interval_end DESC LIMIT 1",
        )
        .bind(dag_id)
        .bind(RunType::Scheduled)
        .fetch_optional(self.pool())
        .await?)
    }

    /// Number of running runs of a DAG.
    pub async fn active_runs(&self, dag_id: &str) -> Result<i64, DbError> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM dag_run WHERE dag_id = $1 AND state = $2")
            .bind(dag_id)
            .bind(RunState::Running)
            .fetch_one(self.pool())
            .await?)
    }

    /// Claims up to `limit` queued runs of unpaused DAGs for `scheduler_id`, oldest first, and
    /// marks them running. Concurrent schedulers claim disjoint runs (rows another holds are
    /// skipped).
    pub async fn claim_queued_runs(&self, scheduler_id: &str, limit: i64) -> Result<Vec<RunRow>, DbError> {
        let lock = self.backend().lock_rows_skip_locked(Some("dag_run"));
        let mut tx = self.pool().begin().await?;
        let select = format!(
            "SELECT dag_run.id FROM dag_run JOIN dag ON dag.dag_id = dag_run.dag_id \
             WHERE dag_run.state = $2 AND dag.is_paused = 0 AND dag.is_stale = 0 \
             ORDER BY dag_run.run_after, dag_run.id LIMIT $1{lock}"
        );
        let ids: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(select))
            .bind(limit)
            .bind(RunState::Queued)
            .fetch_all(&mut *tx)
            .await?;
        let now = Timestamp::now();
        let mut claimed = Vec::with_capacity(ids.len());
        for id in ids {
            let sql = format!(
                "UPDATE dag_run SET state = $4, start_date = $2, last_scheduling_decision = $2, scheduler_id = $3 WHERE id = $1 AND state = $5 RETURNING {RUN_COLUMNS}"
            );
            if let Some(row) = runs_query(sql)
                .bind(id)
                .bind(now)
                .bind(scheduler_id)
                .bind(RunState::Running)
                .bind(RunState::Queued)
                .fetch_optional(&mut *tx)
                .await?
            {
                claimed.push(row);
            }
        }
        tx.commit().await?;
        Ok(claimed)
    }

    /// Takes over the running runs whose scheduler is gone. Where schedulers share the
    /// database ([`Db::concurrent_schedulers`]), those whose owner's heartbeat is older than
    /// `stale_before`; otherwise (one scheduler) every running run not owned by `scheduler_id`.
    pub async fn adopt_runs(&self, scheduler_id: &str, stale_before: Timestamp) -> Result<Vec<RunRow>, DbError> {
        let all_foreign = !self.concurrent_schedulers();
        let lock = self.backend().lock_rows_skip_locked(None);
        let condition = if all_foreign {
            "state = $2 AND (scheduler_id IS NULL OR scheduler_id <> $1)"
        } else {
            "state = $2 AND (scheduler_id IS NULL OR scheduler_id NOT IN (SELECT id FROM scheduler_job WHERE heartbeat_at >= $3))"
        };
        let mut tx = self.pool().begin().await?;
        let select = format!("SELECT id FROM dag_run WHERE {condition}{lock}");
        let mut query =
            sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(select)).bind(scheduler_id).bind(RunState::Running);
        if !all_foreign {
            query = query.bind(stale_before);
        }
        let ids: Vec<i64> = query.fetch_all(&mut *tx).await?;
        let mut adopted = Vec::with_capacity(ids.len());
        for id in ids {
            let sql = format!("UPDATE dag_run SET scheduler_id = $2 WHERE id = $1 RETURNING {RUN_COLUMNS}");
            adopted.push(runs_query(sql).bind(id).bind(scheduler_id).fetch_one(&mut *tx).await?);
        }
        tx.commit().await?;
        Ok(adopted)
    }

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
        Ok(runs_query(sql).fetch_all(self.pool()).await?)
    }

    /// The runs queued or running, and those that ended at or after `since`: what a watcher
    /// of state changes looks at.
    pub async fn runs_in_progress_or_ended_since(&self, since: Timestamp) -> Result<Vec<RunRow>, DbError> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM dag_run WHERE state IN ($2, $3) OR end_date >= $1 ORDER BY id");
        Ok(runs_query(sql).bind(since).bind(RunState::Queued).bind(RunState::Running).fetch_all(self.pool()).await?)
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
            "DELETE FROM dag_run WHERE id = $1 AND (state IN ($2, $3) OR (state = $4 AND scheduler_id IS NULL))",
        )
        .bind(run_pk)
        .bind(RunState::Success)
        .bind(RunState::Failed)
        .bind(RunState::Queued)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }
}
