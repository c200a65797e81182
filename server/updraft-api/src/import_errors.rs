//! `/importErrors`: the DAG files that failed to load, with the located messages of the DAG
//! model (`path:line:col: error: …`) as the stack trace.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};

use crate::AppState;
use crate::auth::Viewer;
use crate::error::ApiError;
use crate::extract::{ApiPath, Params, paginate};
use crate::format::iso;
use crate::models::{ImportErrorCollection, ImportErrorResponse};

/// The routes of this resource, merged into the app.
pub fn router() -> Router<AppState> {
    Router::new().route("/importErrors", get(list)).route("/importErrors/{import_error_id}", get(one))
}

/// Import errors are replaced as a whole at each parse; their ids are positions in the
/// current list (1-based, by file), stable while the files do not change.
fn entries(rows: Vec<(String, String, updraft_types::Timestamp)>) -> Vec<ImportErrorResponse> {
    rows.into_iter()
        .enumerate()
        .map(|(i, (filename, stack_trace, at))| ImportErrorResponse {
            import_error_id: i + 1,
            timestamp: iso(at),
            filename,
            bundle_name: Some("dags-folder".into()),
            stack_trace,
        })
        .collect()
}

#[utoipa::path(
    get,
    path = "/api/v2/importErrors",
    tag = "import errors",
    params(
        ("limit" = Option<i64>, Query, description = "at most 100; default 50"),
        ("offset" = Option<i64>, Query),
    ),
    responses(
        (status = 200, body = ImportErrorCollection),
        crate::models::Refused,
        crate::models::Missing,
    ),
    security(("bearer" = []), ("session" = []))
)]
pub(crate) async fn list(
    _: Viewer,
    State(state): State<AppState>,
    params: Params,
) -> Result<Json<ImportErrorCollection>, ApiError> {
    let page = params.page()?;
    let all = entries(state.db().import_error_rows().await?);
    let total = all.len();
    Ok(Json(ImportErrorCollection { import_errors: paginate(all, page), total_entries: total }))
}

#[utoipa::path(
    get,
    path = "/api/v2/importErrors/{import_error_id}",
    tag = "import errors",
    params(
        ("import_error_id" = usize, Path),
    ),
    responses(
        (status = 200, body = ImportErrorResponse),
        crate::models::Refused,
        crate::models::Missing,
    ),
    security(("bearer" = []), ("session" = []))
)]
pub(crate) async fn one(
    _: Viewer,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<usize>,
) -> Result<Json<ImportErrorResponse>, ApiError> {
    let all = entries(state.db().import_error_rows().await?);
    id.checked_sub(1)
        .and_then(|i| all.get(i).cloned())
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no import error {id}")))
}
