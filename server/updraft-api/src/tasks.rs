//! `GET /dags/{dag_id}/tasks` and `/dags/{dag_id}/tasks/{task_id}`: the tasks as the DAG's
//! files define them (`TaskResponse`), read with the DAG model.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::Value;
use updraft_dag::Dag;
use updraft_types::{DagId, TaskId};

use crate::auth::Viewer;
use crate::error::ApiError;
use crate::extract::{ApiPath, Params};
use crate::models::{TaskCollection, TaskResponse, TimeDelta};
use crate::{AppState, dag_files, lookup};

/// The routes of this resource, merged into the app.
pub fn router() -> Router<AppState> {
    Router::new().route("/dags/{dag_id}/tasks", get(list)).route("/dags/{dag_id}/tasks/{task_id}", get(one))
}

/// A `TimeDelta`.
fn delta(d: std::time::Duration) -> TimeDelta {
    let secs = d.as_secs();
    TimeDelta { kind: "TimeDelta".into(), days: secs / 86_400, seconds: secs % 86_400, microseconds: d.subsec_micros() }
}

fn task_json(dag: &Dag, t: u32) -> TaskResponse {
    let task = &dag.tasks[t as usize];
    TaskResponse {
        task_id: task.id.clone(),
        task_display_name: task.id.clone(),
        owner: task.owner.as_deref().or(dag.owner.as_deref()).unwrap_or("updraft").to_owned(),
        start_date: None,
        end_date: None,
        trigger_rule: task.trigger_rule.as_str().to_owned(),
        depends_on_past: false,
        wait_for_downstream: false,
        retries: task.retries,
        queue: "default".into(),
        pool: task.pool.clone(),
        pool_slots: task.pool_slots,
        execution_timeout: task.execution_timeout.map(delta),
        retry_delay: delta(task.retry_delay),
        retry_exponential_backoff: if task.retry_exponential_backoff { 2.0 } else { 0.0 },
        priority_weight: task.priority_weight,
        weight_rule: "absolute".into(),
        ui_color: None,
        ui_fgcolor: None,
        template_fields: vec!["sql".into(), "params".into()],
        downstream_task_ids: dag.downstream(t).iter().map(|&d| dag.tasks[d as usize].id.clone()).collect(),
        doc_md: task.doc.clone(),
        operator_name: task.operator.clone(),
        params: Value::Object(task.params.clone()),
        class_ref: None,
        is_mapped: false,
        extra_links: Vec::new(),
    }
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
        (status = 200, body = TaskCollection),
        crate::models::Refused,
        crate::models::Missing,
    ),
    security(("bearer" = []), ("session" = []))
)]
pub(crate) async fn list(
    _: Viewer,
    State(state): State<AppState>,
    ApiPath(dag_id): ApiPath<DagId>,
    params: Params,
) -> Result<Json<TaskCollection>, ApiError> {
    let row = lookup::dag(&state, &dag_id).await?;
    let loaded = dag_files::load(&row).await?;
    let dag = &loaded.dag;
    let mut order: Vec<u32> = (0..dag.tasks.len() as u32).collect();
    match params.get("order_by").unwrap_or("task_id") {
        "task_id" => order.sort_by(|&a, &b| dag.tasks[a as usize].id.cmp(&dag.tasks[b as usize].id)),
        "-task_id" => order.sort_by(|&a, &b| dag.tasks[b as usize].id.cmp(&dag.tasks[a as usize].id)),
        other => return Err(ApiError::BadRequest(format!("ordering with `{other}` is not supported: use task_id"))),
    }
    let tasks = order.iter().map(|&t| task_json(dag, t)).collect();
    Ok(Json(TaskCollection { tasks, total_entries: dag.tasks.len() }))
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
        (status = 200, body = TaskResponse),
        crate::models::Refused,
        crate::models::Missing,
    ),
    security(("bearer" = []), ("session" = []))
)]
pub(crate) async fn one(
    _: Viewer,
    State(state): State<AppState>,
    ApiPath((dag_id, task_id)): ApiPath<(DagId, TaskId)>,
) -> Result<Json<TaskResponse>, ApiError> {
    let row = lookup::dag(&state, &dag_id).await?;
    let loaded = dag_files::load(&row).await?;
    let t = loaded
        .dag
        .task_index(task_id.as_str())
        .ok_or_else(|| ApiError::NotFound(format!("DAG `{dag_id}` has no task `{task_id}`")))?;
    Ok(Json(task_json(&loaded.dag, t)))
}
