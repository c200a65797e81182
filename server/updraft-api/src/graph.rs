//! `/api/updraft/dags/{dag_id}/graph`: the graph the web app draws (nodes, edges, external
//! tables, layers: `updraft_dag::export::graph_json`, the same JSON `updraft dags show
//! --format json` prints) with the task states of the DAG's latest run.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Map, Value, json};
use updraft_types::DagId;

use crate::auth::Viewer;
use crate::error::ApiError;
use crate::extract::ApiPath;
use crate::{AppState, dag_files, dags};

pub fn router() -> Router<AppState> {
    Router::new().route("/dags/{dag_id}/graph", get(graph))
}

#[utoipa::path(
    get,
    path = "/api/updraft/dags/{dag_id}/graph",
    tag = "updraft",
    params(
        ("dag_id" = String, Path, description = "DAG id"),
    ),
    responses(
        (status = 200, description = "nodes, edges, layers, external tables and the latest run's states", body = Object),
        crate::models::Refused,
        crate::models::Missing,
    ),
    security(("bearer" = []), ("session" = []))
)]
pub(crate) async fn graph(
    _: Viewer,
    State(state): State<AppState>,
    ApiPath(dag_id): ApiPath<DagId>,
) -> Result<Json<Value>, ApiError> {
    let row = dags::find(&state, &dag_id).await?;
    let loaded = dag_files::load(&row).await?;
    let mut body = serde_json::to_value(updraft_dag::export::graph_json(&loaded.dag))
        .map_err(|e| ApiError::Internal(format!("graph JSON: {e}")))?;
    let latest = state.db().list_runs(dag_id.as_str(), 1, 0).await?.into_iter().next();
    let (run, states) = match latest {
        Some(run) => {
            let states: Map<String, Value> =
                state.db().task_instances(run.id).await?.into_iter().map(|t| (t.task_id, json!(t.state))).collect();
            (json!({ "dag_run_id": run.run_id, "state": run.state }), states)
        }
        None => (Value::Null, Map::new()),
    };
    if let Value::Object(map) = &mut body {
        map.insert("latest_run".into(), run);
        map.insert("states".into(), Value::Object(states));
    }
    Ok(Json(body))
}
