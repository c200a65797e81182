//! `/api/updraft/dags/{dag_id}/graph`: the graph the web app draws (nodes with their
//! positions, edges with their bend points, external tables, layers:
//! `updraft_dag::export::graph_json`, the same JSON `updraft dags show --format json` prints)
//! with the task states of the DAG's latest run. The graph part is laid out and serialised once
//! per DAG version and kept in memory; only the states are read on every request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value, json};
use updraft_types::DagId;

use crate::auth::Viewer;
use crate::error::ApiError;
use crate::extract::ApiPath;
use crate::{AppState, dag_files, dags};

pub fn router() -> Router<AppState> {
    Router::new().route("/dags/{dag_id}/graph", get(graph))
}

/// The serialised graph JSON of the latest version of each DAG seen. Laying out a large DAG
/// takes a while (about a second at 100,000 tasks), and a DAG's drawing changes only with its
/// files, which give it a new version when the scheduler parses them.
#[derive(Debug, Default)]
pub(crate) struct GraphCache(Mutex<HashMap<String, (i32, Arc<str>)>>);

impl GraphCache {
    fn get(&self, dag_id: &str, version: i32) -> Option<Arc<str>> {
        let graphs = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        graphs.get(dag_id).filter(|(v, _)| *v == version).map(|(_, json)| Arc::clone(json))
    }

    /// Keeps `json` unless a newer version is already kept (a slow request finishing late).
    fn put(&self, dag_id: &str, version: i32, json: Arc<str>) {
        let mut graphs = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if graphs.get(dag_id).is_none_or(|(v, _)| *v <= version) {
            graphs.insert(dag_id.to_owned(), (version, json));
        }
    }
}

#[utoipa::path(
    get,
    path = "/api/updraft/dags/{dag_id}/graph",
    tag = "updraft",
    params(
        ("dag_id" = String, Path, description = "DAG id"),
    ),
    responses(
        (status = 200, description = "nodes (with positions), edges (with bend points), layers, external tables and the latest run's states", body = Object),
        crate::models::Refused,
        crate::models::Missing,
    ),
    security(("bearer" = []), ("session" = []))
)]
pub(crate) async fn graph(
    _: Viewer,
    State(state): State<AppState>,
    ApiPath(dag_id): ApiPath<DagId>,
) -> Result<Response, ApiError> {
    let row = dags::find(&state, &dag_id).await?;
    let graph = match state.graphs().get(dag_id.as_str(), row.version) {
        Some(graph) => graph,
        None => {
            let loaded = dag_files::load(&row).await?;
            // The layout is CPU work: keep it off the async workers.
            let text = tokio::task::spawn_blocking(move || {
                serde_json::to_string(&updraft_dag::export::graph_json(&loaded.dag))
            })
            .await
            .map_err(|e| ApiError::Internal(format!("laying out a DAG: {e}")))?
            .map_err(|e| ApiError::Internal(format!("graph JSON: {e}")))?;
            let graph: Arc<str> = Arc::from(text);
            state.graphs().put(dag_id.as_str(), row.version, Arc::clone(&graph));
            graph
        }
    };
    let latest = state.db().list_runs(dag_id.as_str(), 1, 0).await?.into_iter().next();
    let (run, states) = match latest {
        Some(run) => {
            let states: Map<String, Value> =
                state.db().task_instances(run.id).await?.into_iter().map(|t| (t.task_id, json!(t.state))).collect();
            (json!({ "dag_run_id": run.run_id, "state": run.state }), states)
        }
        None => (Value::Null, Map::new()),
    };
    // The cached object, reopened to add the run's fields: no parse of a multi-megabyte JSON.
    let open = graph.strip_suffix('}').ok_or_else(|| ApiError::Internal("graph JSON is not an object".into()))?;
    let run = serde_json::to_string(&run).map_err(|e| ApiError::Internal(format!("graph JSON: {e}")))?;
    let states = serde_json::to_string(&states).map_err(|e| ApiError::Internal(format!("graph JSON: {e}")))?;
    let body = format!("{open},\"latest_run\":{run},\"states\":{states}}}");
    Ok(([(CONTENT_TYPE, "application/json")], body).into_response())
}
