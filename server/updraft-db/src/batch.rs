//! The writes of one scheduler loop, in one transaction: task-instance changes, run states,
//! and the deletion of the requests those changes carry out. A loop collects its changes in a
//! [`Changes`] and hands them to [`Db::apply`]; if the write fails nothing of it is applied,
//! and the loop keeps the changes to write them with the next one.

use std::collections::HashMap;

use updraft_types::{TaskId, TaskState, Timestamp};

use crate::runs::RunStateChange;
use crate::{Backend, Db, DbError};

/// One state change of a task instance, written in a batch. `None` fields are left as they are.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskUpdate {
    pub run_pk: i64,
    pub task_id: TaskId,
    pub state: TaskState,
    pub try_number: Option<i32>,
    pub scheduled_at: Option<Timestamp>,
    pub queued_at: Option<Timestamp>,
    pub start_date: Option<Timestamp>,
    pub end_date: Option<Timestamp>,
    pub duration_s: Option<f64>,
    pub next_attempt_at: Option<Timestamp>,
    pub hostname: Option<String>,
    pub executor: Option<String>,
    /// Clearing: the times and host of the last try are erased, and `max_tries` is set to this
    /// value (the tries allowed from now on).
    pub reset_max_tries: Option<i32>,
}

impl TaskUpdate {
    /// A change of a task instance's state that touches nothing else (add fields with struct
    /// update syntax).
    pub fn new(run_pk: i64, task_id: impl Into<TaskId>, state: TaskState) -> TaskUpdate {
        TaskUpdate {
            run_pk,
            task_id: task_id.into(),
            state,
            try_number: None,
            scheduled_at: None,
            queued_at: None,
            start_date: None,
            end_date: None,
            duration_s: None,
            next_attempt_at: None,
            hostname: None,
            executor: None,
            reset_max_tries: None,
        }
    }
}

/// The changes of one scheduler loop, written by [`Db::apply`] in one transaction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes {
    /// Task-instance changes, in the order they were made.
    pub tasks: Vec<TaskUpdate>,
    /// Run state changes, in the order they were made.
    pub runs: Vec<RunStateChange>,
    /// Requests (`run_request` ids) these changes carry out, deleted with them.
    pub done_requests: Vec<i64>,
}

impl Changes {
    /// Nothing to write.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty() && self.runs.is_empty() && self.done_requests.is_empty()
    }

    /// Puts `earlier` (changes a failed write kept) ahead of these, newer, ones.
    pub fn prepend(&mut self, earlier: Changes) {
        self.tasks.splice(0..0, earlier.tasks);
        self.runs.splice(0..0, earlier.runs);
        self.done_requests.splice(0..0, earlier.done_requests);
    }
}

impl Db {
    /// Writes a batch of task-instance changes and run-state changes in one transaction, and
    /// deletes the run requests those changes carry out.
    pub async fn apply(&self, changes: &Changes) -> Result<(), DbError> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool().begin().await?;
        // One statement per chunk of updates: per-row statements cost a round trip each (to
        // the server on PostgreSQL, to sqlx's worker thread on SQLite), which capped
        // PostgreSQL near 1,000 task instances a second.
        let mut segment = Vec::new();
        for u in &changes.tasks {
            if u.reset_max_tries.is_some() {
                update_batch(&mut tx, &collapse(&segment), self.backend()).await?;
                segment.clear();
                reset_one(&mut tx, u).await?;
            } else {
                segment.push(u);
            }
        }
        update_batch(&mut tx, &collapse(&segment), self.backend()).await?;
        for change in &changes.runs {
            sqlx::query("UPDATE dag_run SET state = $2, end_date = COALESCE($3, end_date) WHERE id = $1")
                .bind(change.run_pk)
                .bind(change.state)
                .bind(change.end_date)
                .execute(&mut *tx)
                .await?;
        }
        for id in &changes.done_requests {
            sqlx::query("DELETE FROM run_request WHERE id = $1").bind(id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Sets run states outside a loop's batch (a run handed back to the queue, a run `updraft
    /// dags test` starts).
    pub async fn set_run_states(&self, runs: &[RunStateChange]) -> Result<(), DbError> {
        self.apply(&Changes { runs: runs.to_vec(), ..Changes::default() }).await
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
    .bind(u.state)
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
                a.state = u.state;
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

/// Applies updates as `WITH v AS (VALUES …) UPDATE … FROM v`, which both databases accept.
async fn update_batch(tx: &mut Tx<'_>, updates: &[TaskUpdate], backend: Backend) -> Result<(), DbError> {
    const TYPES: [Option<&str>; 12] = [
        Some("BIGINT"),
        Some("TEXT"),
        Some("TEXT"),
        Some("INTEGER"),
        Some("BIGINT"),
        Some("BIGINT"),
        Some("BIGINT"),
        Some("BIGINT"),
        Some("BIGINT"),
        Some("BIGINT"),
        Some("TEXT"),
        Some("TEXT"),
    ];
    for chunk in updates.chunks(UPDATE_CHUNK) {
        let mut sql = String::with_capacity(64 + chunk.len() * 200);
        sql.push_str(
            "WITH v(run_pk, task_id, state, try_number, scheduled_at, queued_at, start_date, end_date, duration_us, \
             next_attempt_at, hostname, executor) AS (VALUES ",
        );
        sql.push_str(&backend.values_rows(chunk.len(), &TYPES));
        sql.push_str(") UPDATE task_instance AS t SET ");
        sql.push_str(SET_FROM_UPDATE);
        sql.push_str(" FROM v WHERE t.run_pk = v.run_pk AND t.task_id = v.task_id AND t.map_index = -1");
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for u in chunk {
            query = query
                .bind(u.run_pk)
                .bind(&u.task_id)
                .bind(u.state)
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
