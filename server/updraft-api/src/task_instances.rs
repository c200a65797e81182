//! Task instances of a run: list, get, patch state and clear. Patching and clearing record a
//! run request (`updraft_db::requests`); the scheduler owning the run changes the states.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::Value;
use updraft_db::requests::RequestAction;
use updraft_db::task_instances::TaskInstanceRow;
use updraft_types::{DagId, RunId, TaskId, TaskState};
use utoipa::ToSchema;

use crate::auth::{UserRole, Viewer};
use crate::error::ApiError;
use crate::extract::{ApiPath, JsonBody, Params, paginate};
use crate::format::ti_json;
use crate::models::{TaskInstanceCollection, TaskInstanceResponse};
use crate::run_request::RunRequest;
use crate::{AppState, lookup};

/// The routes of this resource, merged into the app.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances", get(list))
        .route("/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}", get(one).patch(patch))
        .route("/dags/{dag_id}/clearTaskInstances", post(clear))
}

/// `GET …/taskInstances`: `limit`, `offset`, `state` and `task_id` filters (repeatable).
#[utoipa::path(
    get,
    path = "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances",
    tag = "task instances",
    params(
        ("dag_id" = String, Path, description = "DAG id"),
        ("dag_run_id" = String, Path, description = "run id"),
        ("limit" = Option<i64>, Query, description = "at most 100; default 50"),
        ("offset" = Option<i64>, Query),
        ("state" = Option<Vec<String>>, Query),
        ("task_id" = Option<Vec<String>>, Query),
    ),
    responses(
        (status = 200, body = TaskInstanceCollection),
        crate::models::Refused,
        crate::models::Missing,
    ),
    security(("bearer" = []), ("session" = []))
)]
pub(crate) async fn list(
    _: Viewer,
    State(state): State<AppState>,
    ApiPath((dag_id, run_id)): ApiPath<(DagId, RunId)>,
    params: Params,
) -> Result<Json<TaskInstanceCollection>, ApiError> {
    let page = params.page()?;
    let states = params.all("state");
    let task_ids = params.all("task_id");
    let run = lookup::run(&state, &dag_id, &run_id).await?;
    let tis: Vec<TaskInstanceRow> = state
        .db()
        .task_instances(run.id)
        .await?
        .into_iter()
        .filter(|t| states.is_empty() || states.iter().any(|s| TaskState::from_airflow_name(s) == Some(t.state)))
        .filter(|t| task_ids.is_empty() || task_ids.iter().any(|id| t.task_id == *id))
        .collect();
    let total = tis.len();
    let task_instances = paginate(tis, page).iter().map(|t| ti_json(t, &run)).collect();
    Ok(Json(TaskInstanceCollection { task_instances, total_entries: total }))
}

#[utoipa::path(
    get,
    path = "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}",
    tag = "task instances",
    params(
        ("dag_id" = String, Path, description = "DAG id"),
        ("dag_run_id" = String, Path, description = "run id"),
        ("task_id" = String, Path, description = "task id"),
    ),
    responses(
        (status = 200, body = TaskInstanceResponse),
        crate::models::Refused,
        crate::models::Missing,
    ),
    security(("bearer" = []), ("session" = []))
)]
pub(crate) async fn one(
    _: Viewer,
    State(state): State<AppState>,
    ApiPath((dag_id, run_id, task_id)): ApiPath<(DagId, RunId, TaskId)>,
) -> Result<Json<TaskInstanceResponse>, ApiError> {
    let (run, ti) = lookup::task_instance(&state, &dag_id, &run_id, &task_id).await?;
    Ok(Json(ti_json(&ti, &run)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = TaskInstancePatchBody)]
pub(crate) struct PatchBody {
    #[serde(default)]
    new_state: Option<String>,
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    include_upstream: bool,
    #[serde(default)]
    include_downstream: bool,
    #[serde(default)]
    dry_run: bool,
}

/// `PATCH …/taskInstances/{task_id}` with `{"new_state": "success" | "failed" | "skipped"}`:
/// a mark request; answers the task instances it covers, as they are now.
#[utoipa::path(
    patch,
    path = "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}",
    tag = "task instances",
    params(
        ("dag_id" = String, Path, description = "DAG id"),
        ("dag_run_id" = String, Path, description = "run id"),
        ("task_id" = String, Path, description = "task id"),
    ),
    request_body = PatchBody,
    responses(
        (status = 200, description = "the task instance; the scheduler marks it", body = TaskInstanceCollection),
        crate::models::Refused,
        crate::models::Missing,
        crate::models::Unfit,
    ),
    security(("bearer" = []), ("session" = []))
)]
pub(crate) async fn patch(
    user: UserRole,
    State(state): State<AppState>,
    ApiPath((dag_id, run_id, task_id)): ApiPath<(DagId, RunId, TaskId)>,
    JsonBody(body): JsonBody<PatchBody>,
) -> Result<Json<TaskInstanceCollection>, ApiError> {
    let (run, ti) = lookup::task_instance(&state, &dag_id, &run_id, &task_id).await?;
    if body.note.is_some() {
        return Err(ApiError::Unprocessable("changing a task instance's `note` is not supported yet".into()));
    }
    let action = match body.new_state.as_deref().map(|text| (text, text.parse::<TaskState>())) {
        Some((_, Ok(TaskState::Success))) => RequestAction::MarkSuccess,
        Some((_, Ok(TaskState::Failed))) => RequestAction::MarkFailed,
        Some((_, Ok(TaskState::Skipped))) => RequestAction::MarkSkipped,
        Some((other, _)) => {
            return Err(ApiError::Unprocessable(format!(
                "`new_state` must be success, failed or skipped, not `{other}`"
            )));
        }
        None => return Err(ApiError::Unprocessable("give `new_state`: success, failed or skipped".into())),
    };
    if !body.dry_run {
        RunRequest::new(&run, action)
            .tasks(vec![ti.task_id.to_string()])
            .downstream(body.include_downstream)
            .upstream(body.include_upstream)
            .record(&state, &user.0.username)
            .await?;
    }
    Ok(Json(TaskInstanceCollection { task_instances: vec![ti_json(&ti, &run)], total_entries: 1 }))
}

/// `ClearTaskInstancesBody`, for one run (`dag_run_id`); the defaults are Airflow's.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = ClearTaskInstancesBody)]
pub(crate) struct ClearBody {
    #[serde(default = "yes")]
    dry_run: bool,
    #[serde(default)]
    dag_run_id: Option<String>,
    /// Task ids, or [task id, map index] pairs.
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    task_ids: Option<Vec<Value>>,
    #[serde(default = "yes")]
    only_failed: bool,
    #[serde(default)]
    include_upstream: bool,
    #[serde(default)]
    include_downstream: bool,
}

fn yes() -> bool {
    true
}

/// `POST /dags/{dag_id}/clearTaskInstances`: the task instances to clear (all by default,
/// only failed ones unless `only_failed` is false); without `dry_run`, a clear request.
#[utoipa::path(
    post,
    path = "/api/v2/dags/{dag_id}/clearTaskInstances",
    tag = "task instances",
    params(
        ("dag_id" = String, Path, description = "DAG id"),
    ),
    request_body = ClearBody,
    responses(
        (status = 200, body = TaskInstanceCollection),
        crate::models::Refused,
        crate::models::Missing,
        crate::models::Unfit,
    ),
    security(("bearer" = []), ("session" = []))
)]
pub(crate) async fn clear(
    user: UserRole,
    State(state): State<AppState>,
    ApiPath(dag_id): ApiPath<DagId>,
    JsonBody(body): JsonBody<ClearBody>,
) -> Result<Json<TaskInstanceCollection>, ApiError> {
    let Some(run_id) = body.dag_run_id else {
        return Err(ApiError::Unprocessable(
            "give `dag_run_id`: Updraft clears task instances of one run at a time".into(),
        ));
    };
    let run = lookup::run(&state, &dag_id, &RunId::new(run_id)).await?;
    // Airflow accepts a task id or a [task id, map index] pair.
    let task_ids: Vec<String> = body
        .task_ids
        .unwrap_or_default()
        .iter()
        .map(|v| match v {
            Value::String(s) => Ok(s.clone()),
            Value::Array(pair) if pair.first().is_some_and(Value::is_string) => {
                Ok(pair.first().and_then(Value::as_str).unwrap_or_default().to_owned())
            }
            _ => Err(ApiError::Unprocessable("`task_ids` holds task ids (strings)".into())),
        })
        .collect::<Result<_, _>>()?;
    let tis = state.db().task_instances(run.id).await?;
    if let Some(unknown) = task_ids.iter().find(|id| !tis.is_empty() && !tis.iter().any(|t| &t.task_id == *id)) {
        return Err(ApiError::NotFound(format!("run `{}` has no task `{unknown}`", run.run_id)));
    }
    let covered: Vec<TaskInstanceResponse> = tis
        .iter()
        .filter(|t| task_ids.is_empty() || task_ids.iter().any(|id| t.task_id == *id))
        .filter(|t| !body.only_failed || t.state.is_failure())
        .map(|t| ti_json(t, &run))
        .collect();
    if !body.dry_run {
        RunRequest::new(&run, RequestAction::Clear)
            .tasks(task_ids)
            .downstream(body.include_downstream)
            .upstream(body.include_upstream)
            .only_failed(body.only_failed)
            .record(&state, &user.0.username)
            .await?;
    }
    let total_entries = covered.len();
    Ok(Json(TaskInstanceCollection { task_instances: covered, total_entries }))
}
