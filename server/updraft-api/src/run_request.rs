//! What the API asks of the scheduler that owns a run: a clear or a mark, recorded as a
//! `run_request` row (`updraft_db::requests`) that the scheduler carries out in its loop. The
//! API never changes a task instance itself. [`RunRequest`] names every option, so a call
//! reads as what it asks for.

use updraft_db::requests::{NewRequest, RequestAction};
use updraft_db::runs::RunRow;

use crate::AppState;
use crate::error::ApiError;

/// A request on one run: `action`, on every task unless [`tasks`](Self::tasks) narrows it,
/// without upstream or downstream tasks and not limited to failed ones unless asked.
#[derive(Debug)]
#[must_use = "a request does nothing until it is recorded"]
pub struct RunRequest {
    request: NewRequest,
}

impl RunRequest {
    /// A request to carry out `action` on `run` (every task, no relatives, unless said otherwise).
    pub fn new(run: &RunRow, action: RequestAction) -> Self {
        RunRequest {
            request: NewRequest {
                run_pk: run.id,
                action,
                task_ids: Vec::new(),
                downstream: false,
                upstream: false,
                only_failed: false,
                requested_by: None,
            },
        }
    }

    /// Only these tasks (and, with the flags below, their relatives).
    pub fn tasks(mut self, task_ids: Vec<String>) -> Self {
        self.request.task_ids = task_ids;
        self
    }

    /// Also the tasks downstream of the named ones.
    pub fn downstream(mut self, yes: bool) -> Self {
        self.request.downstream = yes;
        self
    }

    /// Also the tasks upstream of the named ones.
    pub fn upstream(mut self, yes: bool) -> Self {
        self.request.upstream = yes;
        self
    }

    /// Only the tasks that failed (a clear).
    pub fn only_failed(mut self, yes: bool) -> Self {
        self.request.only_failed = yes;
        self
    }

    /// Records the request as `username`'s; its id.
    pub async fn record(mut self, state: &AppState, username: &str) -> Result<i64, ApiError> {
        self.request.requested_by = Some(username.to_owned());
        Ok(state.db().request(&self.request).await?)
    }
}
