//! Finding what a path names: a DAG, a run of it, a task instance of the run. Each missing one
//! is a 404 that names it and says where to look. Every resource router finds its rows here,
//! so no router reaches into another for them.

use updraft_db::dags::DagRow;
use updraft_db::runs::RunRow;
use updraft_db::task_instances::TaskInstanceRow;
use updraft_types::{DagId, RunId, TaskId};

use crate::AppState;
use crate::error::ApiError;

/// A DAG known to the metadata database, or 404.
pub async fn dag(state: &AppState, dag_id: &DagId) -> Result<DagRow, ApiError> {
    state.db().get_dag(dag_id.as_str()).await?.ok_or_else(|| {
        ApiError::NotFound(format!(
            "no DAG `{dag_id}`: GET /api/v2/dags lists them (and importErrors the files that failed)"
        ))
    })
}

/// A run of a known DAG, or 404 naming what is missing.
pub async fn run(state: &AppState, dag_id: &DagId, run_id: &RunId) -> Result<RunRow, ApiError> {
    dag(state, dag_id).await?;
    state
        .db()
        .get_run(dag_id.as_str(), run_id.as_str())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("DAG `{dag_id}` has no run `{run_id}`")))
}

/// A task instance of a run, with the run, or 404.
pub async fn task_instance(
    state: &AppState,
    dag_id: &DagId,
    run_id: &RunId,
    task_id: &TaskId,
) -> Result<(RunRow, TaskInstanceRow), ApiError> {
    let run = run(state, dag_id, run_id).await?;
    let ti = state.db().task_instance(run.id, task_id.as_str()).await?.ok_or_else(|| {
        ApiError::NotFound(format!(
            "run `{run_id}` of `{dag_id}` has no task `{task_id}` (a queued run has no task instances yet)"
        ))
    })?;
    Ok((run, ti))
}
