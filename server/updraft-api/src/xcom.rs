//! XCom entries of a task instance: `…/taskInstances/{task_id}/xcomEntries` (keys) and
//! `…/xcomEntries/{key}` (one value, as JSON).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use updraft_db::xcom::XcomRow;
use updraft_types::{DagId, RunId, TaskId};

use crate::AppState;
use crate::auth::Viewer;
use crate::error::ApiError;
use crate::extract::{ApiPath, Params, paginate};
use crate::format::{iso, iso_opt};

pub fn router() -> Router<AppState> {
    let base = "/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/xcomEntries";
    Router::new().route(base, get(list)).route(&format!("{base}/{{xcom_key}}"), get(one))
}

fn entry(x: &XcomRow, run: &updraft_db::runs::RunRow) -> Value {
    json!({
        "key": x.key,
        "timestamp": iso(x.created_at),
        "logical_date": iso_opt(run.logical_date),
        "map_index": x.map_index,
        "task_id": x.task_id,
        "dag_id": run.dag_id,
        "run_id": run.run_id,
        "dag_display_name": run.dag_id,
        "task_display_name": x.task_id,
    })
}

#[utoipa::path(get, path = "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/xcomEntries", tag = "xcom", params(("dag_id" = String, Path, description = "DAG id"), ("dag_run_id" = String, Path, description = "run id"), ("task_id" = String, Path, description = "task id"), ("limit" = Option<i64>, Query, description = "at most 100; default 50"), ("offset" = Option<i64>, Query)), responses((status = 200, body = Object), (status = 401, description = "no valid token", body = crate::models::Problem), (status = 403, description = "the role may not", body = crate::models::Problem), (status = 404, description = "unknown DAG, run, task or object", body = crate::models::Problem)), security(("bearer" = []), ("session" = [])))]
pub(crate) async fn list(
    _: Viewer,
    State(state): State<AppState>,
    ApiPath((dag_id, run_id, task_id)): ApiPath<(DagId, RunId, TaskId)>,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    let page = params.page()?;
    let (run, ti) = crate::task_instances::find(&state, &dag_id, &run_id, &task_id).await?;
    let rows = state.db().xcom_entries(run.id, Some(&ti.task_id)).await?;
    let total = rows.len();
    let entries: Vec<Value> = paginate(rows, page).iter().map(|x| entry(x, &run)).collect();
    Ok(Json(json!({ "xcom_entries": entries, "total_entries": total })))
}

#[utoipa::path(get, path = "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/xcomEntries/{xcom_key}", tag = "xcom", params(("dag_id" = String, Path, description = "DAG id"), ("dag_run_id" = String, Path, description = "run id"), ("task_id" = String, Path, description = "task id"), ("xcom_key" = String, Path)), responses((status = 200, body = Object), (status = 401, description = "no valid token", body = crate::models::Problem), (status = 403, description = "the role may not", body = crate::models::Problem), (status = 404, description = "unknown DAG, run, task or object", body = crate::models::Problem)), security(("bearer" = []), ("session" = [])))]
pub(crate) async fn one(
    _: Viewer,
    State(state): State<AppState>,
    ApiPath((dag_id, run_id, task_id, key)): ApiPath<(DagId, RunId, TaskId, String)>,
) -> Result<Json<Value>, ApiError> {
    let (run, ti) = crate::task_instances::find(&state, &dag_id, &run_id, &task_id).await?;
    let rows = state.db().xcom_entries(run.id, Some(&ti.task_id)).await?;
    let Some(x) = rows.iter().find(|x| x.key == key) else {
        return Err(ApiError::NotFound(format!("task `{task_id}` of run `{run_id}` pushed no XCom `{key}`")));
    };
    let mut body = entry(x, &run);
    if let Value::Object(map) = &mut body {
        map.insert("value".into(), serde_json::from_str(&x.value).unwrap_or(Value::String(x.value.clone())));
    }
    Ok(Json(body))
}
