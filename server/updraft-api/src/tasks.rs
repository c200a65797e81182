//! `GET /dags/{dag_id}/tasks` and `/dags/{dag_id}/tasks/{task_id}`: the tasks as the DAG's
//! files define them (`TaskResponse`), read with the DAG model.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use updraft_dag::Dag;
use updraft_types::{DagId, TaskId};

use crate::auth::Viewer;
use crate::error::ApiError;
use crate::extract::{ApiPath, Params};
use crate::{AppState, dag_files, dags};

pub fn router() -> Router<AppState> {
    Router::new().route("/dags/{dag_id}/tasks", get(list)).route("/dags/{dag_id}/tasks/{task_id}", get(one))
}

/// A `TimeDelta`.
fn delta(d: std::time::Duration) -> Value {
    let secs = d.as_secs();
    json!({ "__type": "TimeDelta", "days": secs / 86_400, "seconds": secs % 86_400, "microseconds": d.subsec_micros() })
}

fn task_json(dag: &Dag, t: u32) -> Value {
    let task = &dag.tasks[t as usize];
    let downstream: Vec<&str> = dag.downstream(t).iter().map(|&d| dag.tasks[d as usize].id.as_str()).collect();
    json!({
        "task_id": task.id,
        "task_display_name": task.id,
        "owner": task.owner.as_deref().or(dag.owner.as_deref()).unwrap_or("updraft"),
        "start_date": null,
        "end_date": null,
        "trigger_rule": task.trigger_rule.as_str(),
        "depends_on_past": false,
        "wait_for_downstream": false,
        "retries": task.retries,
        "queue": "default",
        "pool": task.pool,
        "pool_slots": task.pool_slots,
        "execution_timeout": task.execution_timeout.map(delta),
        "retry_delay": delta(task.retry_delay),
        "retry_exponential_backoff": if task.retry_exponential_backoff { 2.0 } else { 0.0 },
        "priority_weight": task.priority_weight,
        "weight_rule": "absolute",
        "ui_color": null,
        "ui_fgcolor": null,
        "template_fields": ["sql", "params"],
        "downstream_task_ids": downstream,
        "doc_md": task.doc,
        "operator_name": task.operator,
        "params": task.params,
        "class_ref": null,
        "is_mapped": false,
        "extra_links": [],
    })
}

#[utoipa::path(
    get,
    path = "/api/v2/dags/{dag_id}/tasks",
    tag = "tasks",
    params(
        ("dag_id" = String, Path, description = "DAG id"),
        ("order_by" = Option<String>, Query),
    ),
    responses(
        (status = 200, body = Object),
        (status = 401, description = "no valid token", body = crate::models::Problem),
        (status = 403, description = "the role may not", body = crate::models::Problem),
        (status = 404, description = "unknown DAG, run, task or object", body = crate::models::Problem),
    ),
    security(("bearer" = []), ("session" = []))
)]
pub(crate) async fn list(
    _: Viewer,
    State(state): State<AppState>,
    ApiPath(dag_id): ApiPath<DagId>,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    let row = dags::find(&state, &dag_id).await?;
    let loaded = dag_files::load(&row).await?;
    let dag = &loaded.dag;
    let mut order: Vec<u32> = (0..dag.tasks.len() as u32).collect();
    match params.get("order_by").unwrap_or("task_id") {
        "task_id" => order.sort_by(|&a, &b| dag.tasks[a as usize].id.cmp(&dag.tasks[b as usize].id)),
        "-task_id" => order.sort_by(|&a, &b| dag.tasks[b as usize].id.cmp(&dag.tasks[a as usize].id)),
        other => return Err(ApiError::BadRequest(format!("ordering with `{other}` is not supported: use task_id"))),
    }
    let tasks: Vec<Value> = order.iter().map(|&t| task_json(dag, t)).collect();
    Ok(Json(json!({ "tasks": tasks, "total_entries": dag.tasks.len() })))
}

#[utoipa::path(
    get,
    path = "/api/v2/dags/{dag_id}/tasks/{task_id}",
    tag = "tasks",
    params(
        ("dag_id" = String, Path, description = "DAG id"),
        ("task_id" = String, Path, description = "task id"),
    ),
    responses(
        (status = 200, body = Object),
        (status = 401, description = "no valid token", body = crate::models::Problem),
        (status = 403, description = "the role may not", body = crate::models::Problem),
        (status = 404, description = "unknown DAG, run, task or object", body = crate::models::Problem),
    ),
    security(("bearer" = []), ("session" = []))
)]
pub(crate) async fn one(
    _: Viewer,
    State(state): State<AppState>,
    ApiPath((dag_id, task_id)): ApiPath<(DagId, TaskId)>,
) -> Result<Json<Value>, ApiError> {
    let row = dags::find(&state, &dag_id).await?;
    let loaded = dag_files::load(&row).await?;
    let t = loaded
        .dag
        .task_index(task_id.as_str())
        .ok_or_else(|| ApiError::NotFound(format!("DAG `{dag_id}` has no task `{task_id}`")))?;
    Ok(Json(task_json(&loaded.dag, t)))
}
