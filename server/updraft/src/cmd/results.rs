//! A try's outcome in the metadata database (`try_result`): `updraft tasks run`, the worker of a
//! task pod, records how its try ended, and the kubernetes executor reads it back when the pod
//! ends ([`DbResults`]), since a pod's exit code says only "zero or not". The one place where a
//! [`WorkOutcome`] becomes the stored row and the row becomes a `WorkOutcome` again; it lives
//! here, where both the database and the executor contract are known, so that neither
//! `updraft-executor` nor `updraft-db` depends on the other.

use std::time::Duration;

use futures_util::future::BoxFuture;
use updraft_db::Db;
use updraft_db::results::TryResult;
use updraft_executor::{WorkItem, WorkOutcome};

/// The stored names of the outcomes (`try_result.outcome`).
const SUCCESS: &str = "success";
const SKIPPED: &str = "skipped";
const FAILED: &str = "failed";
const RESCHEDULE: &str = "reschedule";

/// A recorded outcome that no [`WorkOutcome`] is stored as (a damaged row, or a worker of a
/// newer version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownOutcome(pub String);

impl std::fmt::Display for UnknownOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unknown try outcome `{}` recorded (known: {SUCCESS}, {SKIPPED}, {FAILED}, {RESCHEDULE})", self.0)
    }
}

impl std::error::Error for UnknownOutcome {}

/// The row that records `outcome`.
pub fn to_try_result(outcome: &WorkOutcome) -> TryResult {
    let (name, message, retryable, reschedule_after_ms) = match outcome {
        WorkOutcome::Success => (SUCCESS, None, false, None),
        WorkOutcome::Skipped => (SKIPPED, None, false, None),
        WorkOutcome::Failed { message, retryable } => (FAILED, Some(message.clone()), *retryable, None),
        WorkOutcome::Reschedule { after } => {
            (RESCHEDULE, None, false, Some(i64::try_from(after.as_millis()).unwrap_or(i64::MAX)))
        }
    };
    TryResult { outcome: name.to_owned(), message, retryable, reschedule_after_ms }
}

/// The outcome a row records; an outcome name this version does not know is an error.
pub fn from_try_result(result: TryResult) -> Result<WorkOutcome, UnknownOutcome> {
    Ok(match result.outcome.as_str() {
        SUCCESS => WorkOutcome::Success,
        SKIPPED => WorkOutcome::Skipped,
        FAILED => WorkOutcome::Failed {
            message: result.message.unwrap_or_else(|| "failed".into()),
            retryable: result.retryable,
        },
        RESCHEDULE => WorkOutcome::Reschedule {
            after: Duration::from_millis(u64::try_from(result.reschedule_after_ms.unwrap_or(0)).unwrap_or(0)),
        },
        _ => return Err(UnknownOutcome(result.outcome)),
    })
}

/// The outcomes `updraft tasks run` records in the metadata database, for the kubernetes
/// executor.
pub struct DbResults(pub Db);

impl updraft_executor_kubernetes::ResultSource for DbResults {
    fn outcome<'a>(&'a self, item: &'a WorkItem) -> BoxFuture<'a, Option<WorkOutcome>> {
        Box::pin(async move {
            let try_number = i32::try_from(item.key.try_number).ok()?;
            let result = match self.0.try_result(item.key.run_pk, &item.task_id, try_number).await {
                Ok(result) => result?,
                Err(error) => {
                    eprintln!("reading the outcome of {} try {try_number} failed: {error}", item.task_id);
                    return None;
                }
            };
            // An unreadable record is no record: the pod's exit code decides.
            from_try_result(result)
                .inspect_err(|error| eprintln!("the outcome of {} try {try_number}: {error}", item.task_id))
                .ok()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_is_stored_as_today_and_read_back() {
        let outcomes = [
            (
                WorkOutcome::Success,
                TryResult { outcome: "success".into(), message: None, retryable: false, reschedule_after_ms: None },
            ),
            (
                WorkOutcome::Skipped,
                TryResult { outcome: "skipped".into(), message: None, retryable: false, reschedule_after_ms: None },
            ),
            (
                WorkOutcome::Failed { message: "boom".into(), retryable: true },
                TryResult {
                    outcome: "failed".into(),
                    message: Some("boom".into()),
                    retryable: true,
                    reschedule_after_ms: None,
                },
            ),
            (
                WorkOutcome::Failed { message: "no".into(), retryable: false },
                TryResult {
                    outcome: "failed".into(),
                    message: Some("no".into()),
                    retryable: false,
                    reschedule_after_ms: None,
                },
            ),
            (
                WorkOutcome::Reschedule { after: Duration::from_secs(90) },
                TryResult {
                    outcome: "reschedule".into(),
                    message: None,
                    retryable: false,
                    reschedule_after_ms: Some(90_000),
                },
            ),
        ];
        for (outcome, row) in outcomes {
            assert_eq!(to_try_result(&outcome), row, "{outcome:?}");
            assert_eq!(from_try_result(row), Ok(outcome));
        }
    }

    #[test]
    fn a_failure_recorded_without_a_message_reads_as_failed() {
        let row = TryResult { outcome: "failed".into(), message: None, retryable: true, reschedule_after_ms: None };
        assert_eq!(from_try_result(row), Ok(WorkOutcome::Failed { message: "failed".into(), retryable: true }));
    }

    #[test]
    fn an_unknown_recorded_outcome_is_an_error_naming_it() {
        let row = TryResult { outcome: "exploded".into(), message: None, retryable: false, reschedule_after_ms: None };
        let error = from_try_result(row).expect_err("unknown");
        assert_eq!(error, UnknownOutcome("exploded".into()));
        assert!(error.to_string().contains("`exploded`"), "{error}");
    }
}
