//! XCom entries of a task instance: `…/taskInstances/{task_id}/xcomEntries` (keys) and
//! `…/xcomEntries/{key}` (one value, as JSON).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::Value;
use updraft_db::xcom::XcomRow;
use updraft_types::{DagId, RunId, TaskId};

use crate::AppState;
use crate::auth::Viewer;
use crate::error::ApiError;
use crate::extract::{ApiPath, Params, paginate};
use crate::format::{iso, iso_opt};
use crate::models::{XcomCollection, XcomResponse};

/// The routes of this resource, merged into the app.
pub fn router() -> Router<AppState> {
    let base = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/xcomEntries";
    Router::new().route(base, get(list)).route(&format!("{base}/{{xcom_key}}"), get(one))
}

fn entry(x: &XcomRow, run: &updraft_db::runs::RunRow) -> XcomResponse {
    XcomResponse {
        key: x.key.clone(),
        timestamp: iso(x.created_at),
        logical_date: iso_opt(run.logical_date),
        run_after: iso(run.run_after),
        map_index: x.map_index,
        task_id: x.task_id.clone(),
        dag_id: run.dag_id.to_string(),
        run_id: run.run_id.to_string(),
        dag_display_name: run.dag_id.to_string(),
        task_display_name: x.task_id.clone(),
        value: None,
    }
}

#[utoipa::path(
    get,
    path = "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/xcomEntries",
    tag = "xcom",
    params(
        ("dag_id" = String, Path, description = "DAG id"),
        ("dag_run_id" = String, Path, description = "run id"),
        ("task_id" = String, Path, description = "task id"),
        ("limit" = Option<i64>, Query, description = "at most 100; default 50"),
        ("offset" = Option<i64>, Query),
    ),
    responses(
        (status = 200, body = XcomCollection),
        crate::models::Refused,
        crate::models::Missing,
    ),
    security(("bearer" = []), ("session" = []))
)]
pub(crate) async fn list(
    _: Viewer,
    State(state): State<AppState>,
    ApiPath((dag_id, run_id, task_id)): ApiPath<(DagId, RunId, TaskId)>,
    params: Params,
) -> Result<Json<XcomCollection>, ApiError> {
    let page = params.page()?;
    let (run, ti) = crate::lookup::task_instance(&state, &dag_id, &run_id, &task_id).await?;
    let rows = state.db().xcom_entries(run.id, Some(&ti.task_id)).await?;
    let total = rows.len();
    let xcom_entries = paginate(rows, page).iter().map(|x| entry(x, &run)).collect();
    Ok(Json(XcomCollection { xcom_entries, total_entries: total }))
}

#[utoipa::path(
    get,
    path = "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/xcomEntries/{xcom_key}",
    tag = "xcom",
    params(
        ("dag_id" = String, Path, description = "DAG id"),
        ("dag_run_id" = String, Path, description = "run id"),
        ("task_id" = String, Path, description = "task id"),
        ("xcom_key" = String, Path),
    ),
    responses(
        (status = 200, body = XcomResponse),
        crate::models::Refused,
        crate::models::Missing,
    ),
    security(("bearer" = []), ("session" = []))
)]
pub(crate) async fn one(
    _: Viewer,
    State(state): State<AppState>,
    ApiPath((dag_id, run_id, task_id, key)): ApiPath<(DagId, RunId, TaskId, String)>,
) -> Result<Json<XcomResponse>, ApiError> {
    let (run, ti) = crate::lookup::task_instance(&state, &dag_id, &run_id, &task_id).await?;
    let rows = state.db().xcom_entries(run.id, Some(&ti.task_id)).await?;
    let Some(x) = rows.iter().find(|x| x.key == key) else {
        return Err(ApiError::NotFound(format!("task `{task_id}` of run `{run_id}` pushed no XCom `{key}`")));
    };
    let mut body = entry(x, &run);
    body.value = Some(serde_json::from_str(&x.value).unwrap_or(Value::String(x.value.clone())));
    Ok(Json(body))
}
