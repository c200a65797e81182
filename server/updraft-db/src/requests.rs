//! Requests to change a run's task instances: clear (run again), mark success/failed/skipped,
//! mark the whole run. The CLI and the API only insert a request; the scheduler that owns the
//! run carries it out inside its loop and deletes it in the same transaction as the changes it
//! makes, so a request is applied exactly once and never races with the run's own tries.
//!
//! A request on a finished run puts the run back in the queue (`queued`, no owner), so that
//! whichever scheduler claims it rebuilds the run's state and applies the request. A scheduler
//! also re-queues a run it owns that finished while a request was being made.

use sqlx::Row;

use updraft_types::RunState;

use crate::{Db, DbError, now_us};

/// What a request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestAction {
    /// Back to no status, tries allowed again: the tasks run again.
    Clear,
    MarkSuccess,
    MarkFailed,
    MarkSkipped,
    /// Every unfinished task succeeds; the run ends as success.
    MarkRunSuccess,
    /// Running and queued tasks fail, the other unfinished ones are skipped; the run ends failed.
    MarkRunFailed,
}

impl RequestAction {
    /// The action as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestAction::Clear => "clear",
            RequestAction::MarkSuccess => "mark_success",
            RequestAction::MarkFailed => "mark_failed",
            RequestAction::MarkSkipped => "mark_skipped",
            RequestAction::MarkRunSuccess => "mark_run_success",
            RequestAction::MarkRunFailed => "mark_run_failed",
        }
    }

    /// The action a stored name stands for.
    pub fn parse(text: &str) -> Option<RequestAction> {
        Some(match text {
            "clear" => RequestAction::Clear,
            "mark_success" => RequestAction::MarkSuccess,
            "mark_failed" => RequestAction::MarkFailed,
            "mark_skipped" => RequestAction::MarkSkipped,
            "mark_run_success" => RequestAction::MarkRunSuccess,
            "mark_run_failed" => RequestAction::MarkRunFailed,
            _ => return None,
        })
    }
}

/// A request to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRequest {
    pub run_pk: i64,
    pub action: RequestAction,
    /// The tasks; empty means every task of the run.
    pub task_ids: Vec<String>,
    pub downstream: bool,
    pub upstream: bool,
    /// Clear only tasks that failed or were upstream-failed.
    pub only_failed: bool,
    pub requested_by: Option<String>,
}

/// A stored request, with the state of its run when it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRow {
    pub id: i64,
    pub run_pk: i64,
    pub action: RequestAction,
    pub task_ids: Vec<String>,
    pub downstream: bool,
    pub upstream: bool,
    pub only_failed: bool,
    pub run_state: RunState,
}

/// The requests matching `condition` (one `$1` parameter), oldest first, with their run's state.
fn requests_where(condition: &str) -> String {
    format!(
        "SELECT r.id, r.run_pk, r.action, r.task_ids, r.downstream, r.upstream, r.only_failed, d.state \
         FROM run_request r JOIN dag_run d ON d.id = r.run_pk WHERE {condition} ORDER BY r.id"
    )
}

fn request_row(r: &sqlx::any::AnyRow) -> Result<RequestRow, DbError> {
    let action: String = r.try_get(2)?;
    let task_ids: String = r.try_get(3)?;
    Ok(RequestRow {
        id: r.try_get(0)?,
        run_pk: r.try_get(1)?,
        action: RequestAction::parse(&action)
            .ok_or_else(|| DbError::Corrupt(format!("unknown run request action `{action}`")))?,
        task_ids: serde_json::from_str(&task_ids)
            .map_err(|e| DbError::Corrupt(format!("run request task ids `{task_ids}`: {e}")))?,
        downstream: r.try_get::<i32, _>(4)? != 0,
        upstream: r.try_get::<i32, _>(5)? != 0,
        only_failed: r.try_get::<i32, _>(6)? != 0,
        run_state: r.try_get(7)?,
    })
}

impl Db {
    /// Records a request and, if the run has finished, puts it back in the queue so that a
    /// scheduler picks it up. Returns the request's id.
    pub async fn request(&self, request: &NewRequest) -> Result<i64, DbError> {
        let mut tx = self.pool().begin().await?;
        let lock = self.backend().lock_rows();
        let state: Option<String> =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT state FROM dag_run WHERE id = $1{lock}")))
                .bind(request.run_pk)
                .fetch_optional(&mut *tx)
                .await?;
        if state.is_none() {
            return Err(DbError::NotFound(format!("no run with id {}", request.run_pk)));
        }
        let now = now_us();
        let task_ids = serde_json::to_string(&request.task_ids).unwrap_or_else(|_| "[]".into());
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO run_request (run_pk, action, task_ids, downstream, upstream, only_failed, requested_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(request.run_pk)
        .bind(request.action.as_str())
        .bind(task_ids)
        .bind(i32::from(request.downstream))
        .bind(i32::from(request.upstream))
        .bind(i32::from(request.only_failed))
        .bind(&request.requested_by)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        requeue_finished(&mut tx, request.run_pk, now).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// The requests on runs owned by `scheduler_id`, oldest first.
    pub async fn owned_requests(&self, scheduler_id: &str) -> Result<Vec<RequestRow>, DbError> {
        let query = sqlx::query(sqlx::AssertSqlSafe(requests_where("d.scheduler_id = $1"))).bind(scheduler_id);
        query.fetch_all(self.pool()).await?.iter().map(request_row).collect()
    }

    /// The requests on one run, oldest first.
    pub async fn run_requests(&self, run_pk: i64) -> Result<Vec<RequestRow>, DbError> {
        let query = sqlx::query(sqlx::AssertSqlSafe(requests_where("r.run_pk = $1"))).bind(run_pk);
        query.fetch_all(self.pool()).await?.iter().map(request_row).collect()
    }

    /// Whether a request is still waiting for a scheduler.
    pub async fn request_pending(&self, id: i64) -> Result<bool, DbError> {
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM run_request WHERE id = $1")
            .bind(id)
            .fetch_one(self.pool())
            .await?;
        Ok(count > 0)
    }

    /// Puts a finished run that still has requests back in the queue (the run finished while
    /// the request was being made).
    pub async fn requeue_for_requests(&self, run_pk: i64) -> Result<(), DbError> {
        let mut tx = self.pool().begin().await?;
        requeue_finished(&mut tx, run_pk, now_us()).await?;
        tx.commit().await?;
        Ok(())
    }
}

async fn requeue_finished(tx: &mut sqlx::Transaction<'_, sqlx::Any>, run_pk: i64, now: i64) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE dag_run SET state = 'queued', scheduler_id = NULL, queued_at = $2, end_date = NULL \
         WHERE id = $1 AND state IN ('success', 'failed')",
    )
    .bind(run_pk)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
