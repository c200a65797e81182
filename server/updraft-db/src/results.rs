//! How each try ended, recorded by the process that ran it. The kubernetes executor runs a try
//! in a pod (`updraft tasks run`); the pod's exit code says only "zero or not", so the worker
//! records the outcome here and the executor reads it when the pod ends.

use sqlx::Row;

use crate::{Db, DbError, now_us};

/// A try's recorded outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TryResult {
    /// `success`, `skipped`, `failed` or `reschedule`.
    pub outcome: String,
    pub message: Option<String>,
    pub retryable: bool,
    pub reschedule_after_ms: Option<i64>,
}

impl Db {
    /// Records how a try ended (a second report of the same try replaces the first).
    pub async fn record_try_result(
        &self,
        run_pk: i64,
        task_id: &str,
        try_number: i32,
        result: &TryResult,
    ) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO try_result (run_pk, task_id, try_number, outcome, message, retryable, reschedule_after_ms, finished_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (run_pk, task_id, try_number) DO UPDATE SET \
             outcome = excluded.outcome, message = excluded.message, retryable = excluded.retryable, \
             reschedule_after_ms = excluded.reschedule_after_ms, finished_at = excluded.finished_at",
        )
        .bind(run_pk)
        .bind(task_id)
        .bind(try_number)
        .bind(&result.outcome)
        .bind(&result.message)
        .bind(i32::from(result.retryable))
        .bind(result.reschedule_after_ms)
        .bind(now_us())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The recorded outcome of a try, if its worker recorded one.
    pub async fn try_result(&self, run_pk: i64, task_id: &str, try_number: i32) -> Result<Option<TryResult>, DbError> {
        let row = sqlx::query(
            "SELECT outcome, message, retryable, reschedule_after_ms FROM try_result \
             WHERE run_pk = $1 AND task_id = $2 AND try_number = $3",
        )
        .bind(run_pk)
        .bind(task_id)
        .bind(try_number)
        .fetch_optional(self.pool())
        .await?;
        Ok(match row {
            None => None,
            Some(r) => Some(TryResult {
                outcome: r.try_get(0)?,
                message: r.try_get(1)?,
                retryable: r.try_get::<i32, _>(2)? != 0,
                reschedule_after_ms: r.try_get(3)?,
            }),
        })
    }
}
