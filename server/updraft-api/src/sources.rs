//! `/api/updraft/dags/{dag_id}/source`: the DAG file for the web app's editor. A PUT is
//! validated with the same DAG model as the scheduler's (on a hidden copy, which the
//! scheduler's discovery skips) and rejected with located errors (422); a valid file replaces
//! the old one atomically (a temporary file in the same folder, synced, then renamed), so the
//! scheduler never parses a half-written file. Editing DAG code needs `op`: a DAG's tasks run
//! SQL on the connections that `op` manages.

use std::path::Path;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use updraft_types::DagId;

use crate::auth::{Op, Viewer};
use crate::error::ApiError;
use crate::extract::{ApiPath, JsonBody};
use crate::models::DagSource;
use crate::{AppState, dag_files, lookup};

/// The routes of this resource, merged into the app.
pub fn router() -> Router<AppState> {
    Router::new().route("/dags/{dag_id}/source", get(read).put(write))
}

/// The same file under Airflow's path, in `/api/v2`.
pub fn v2_router() -> Router<AppState> {
    Router::new().route("/dagSources/{dag_id}", get(dag_source))
}

#[utoipa::path(
    get,
    path = "/api/updraft/dags/{dag_id}/source",
    tag = "updraft",
    params(
        ("dag_id" = String, Path, description = "DAG id"),
    ),
    responses(
        (status = 200, body = DagSource),
        crate::models::Refused,
        crate::models::Missing,
    ),
    security(("bearer" = []), ("session" = []))
)]
pub(crate) async fn read(
    _: Viewer,
    State(state): State<AppState>,
    ApiPath(dag_id): ApiPath<DagId>,
) -> Result<Json<DagSource>, ApiError> {
    source(&state, &dag_id).await.map(Json)
}

/// Airflow's `GET /api/v2/dagSources/{dag_id}` (`DagSourceApi.get_dag_source`).
#[utoipa::path(
    get,
    path = "/api/v2/dagSources/{dag_id}",
    tag = "dags",
    params(
        ("dag_id" = String, Path, description = "DAG id"),
    ),
    responses(
        (status = 200, body = DagSource),
        crate::models::Refused,
        crate::models::Missing,
    ),
    security(("bearer" = []), ("session" = []))
)]
pub(crate) async fn dag_source(
    _: Viewer,
    State(state): State<AppState>,
    ApiPath(dag_id): ApiPath<DagId>,
) -> Result<Json<DagSource>, ApiError> {
    source(&state, &dag_id).await.map(Json)
}

async fn source(state: &AppState, dag_id: &DagId) -> Result<DagSource, ApiError> {
    let row = lookup::dag(state, dag_id).await?;
    let (file, _) = dag_files::locate(&row);
    let content = tokio::fs::read_to_string(&file).await.map_err(|e| {
        ApiError::NotFound(format!(
            "cannot read {}: {e} (the API server reads the scheduler's DAGs folder at the same path)",
            file.display()
        ))
    })?;
    Ok(DagSource {
        dag_id: dag_id.to_string(),
        dag_display_name: dag_id.to_string(),
        version_number: Some(row.version),
        file: file.display().to_string(),
        content,
    })
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = SourceBody)]
#[serde(deny_unknown_fields)]
pub(crate) struct Body {
    content: String,
}

/// Copies a DAG folder without recursion (an explicit stack), skipping hidden entries.
fn copy_folder(from: &Path, to: &Path) -> std::io::Result<()> {
    let mut stack = vec![(from.to_path_buf(), to.to_path_buf())];
    while let Some((src, dst)) = stack.pop() {
        std::fs::create_dir_all(&dst)?;
        for entry in std::fs::read_dir(&src)? {
            let entry = entry?;
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let target = dst.join(entry.file_name());
            if entry.file_type()?.is_dir() {
                stack.push((entry.path(), target));
            } else {
                std::fs::copy(entry.path(), target)?;
            }
        }
    }
    Ok(())
}

/// `PUT` with `{"content": "…"}`: 200 with the warnings, or 422 with every located error.
#[utoipa::path(
    put,
    path = "/api/updraft/dags/{dag_id}/source",
    tag = "updraft",
    params(
        ("dag_id" = String, Path, description = "DAG id"),
    ),
    request_body = Body,
    responses(
        (status = 200, description = "written; the warnings", body = Object),
        crate::models::Refused,
        crate::models::Missing,
        (status = 422, description = "the file does not validate: every located error in `errors`", body = crate::models::Problem),
    ),
    security(("bearer" = []), ("session" = []))
)]
pub(crate) async fn write(
    _: Op,
    State(state): State<AppState>,
    ApiPath(dag_id): ApiPath<DagId>,
    JsonBody(body): JsonBody<Body>,
) -> Result<Json<Value>, ApiError> {
    let row = lookup::dag(&state, &dag_id).await?;
    let (file, folder) = dag_files::locate(&row);
    if !file.exists() {
        return Err(ApiError::NotFound(format!(
            "cannot find {} (the API server reads the scheduler's DAGs folder at the same path)",
            file.display()
        )));
    }
    let dir = file.parent().unwrap_or(Path::new(".")).to_path_buf();
    let name = file.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    // Validate a hidden copy: the new file beside the old one (relative SQL paths resolve the
    // same), or, for a folder DAG, a copy of the folder with the new dag.yaml.
    let (root, shown_from, shown_to, cleanup) = match &folder {
        None => {
            let copy = dag_files::scratch(&dir, "check");
            std::fs::write(&copy, &body.content)
                .map_err(|e| ApiError::Internal(format!("writing a check copy: {e}")))?;
            (copy.clone(), copy.display().to_string(), file.display().to_string(), copy)
        }
        Some(folder) => {
            let parent = folder.parent().unwrap_or(Path::new(".")).to_path_buf();
            let copy = dag_files::scratch(&parent, "check");
            let (from, to, content) = (folder.clone(), copy.clone(), body.content.clone());
            let name = name.clone();
            tokio::task::spawn_blocking(move || {
                copy_folder(&from, &to)?;
                std::fs::write(to.join(name), content)
            })
            .await
            .map_err(|e| ApiError::Internal(format!("copying a DAG folder: {e}")))?
            .map_err(|e| ApiError::Internal(format!("copying a DAG folder: {e}")))?;
            (copy.clone(), copy.display().to_string(), folder.display().to_string(), copy)
        }
    };
    let bag = dag_files::load_root(root).await;
    let _ = if cleanup.is_dir() { std::fs::remove_dir_all(&cleanup) } else { std::fs::remove_file(&cleanup) };
    let bag = bag?;
    let mut errors: Vec<Value> = bag
        .import_errors
        .iter()
        .flat_map(|e| e.diagnostics.iter())
        .map(|d| dag_files::diagnostic_json(d, &shown_from, &shown_to))
        .collect();
    let found: Vec<&str> = bag.dags.iter().map(|d| d.dag.id.as_str()).collect();
    if errors.is_empty() && found != [dag_id.as_str()] {
        errors.push(json!({
            "severity": "error",
            "file": shown_to,
            "message": format!("the file must still define DAG `{dag_id}` (it defines {found:?}): a new DAG is a new file"),
        }));
    }
    if !errors.is_empty() {
        return Err(ApiError::InvalidSource {
            detail: format!("{} is not valid; nothing was written", file.display()),
            errors: Value::Array(errors),
        });
    }
    let warnings: Vec<Value> = bag
        .dags
        .iter()
        .flat_map(|d| d.warnings.iter())
        .map(|d| dag_files::diagnostic_json(d, &shown_from, &shown_to))
        .collect();
    let content = body.content;
    let target = file.clone();
    tokio::task::spawn_blocking(move || {
        dag_files::write_via_temp(&target, &content, |from, to| std::fs::rename(from, to))
    })
    .await
    .map_err(|e| ApiError::Internal(format!("writing {}: {e}", file.display())))?
    .map_err(|e| ApiError::Internal(format!("writing {}: {e}", file.display())))?;
    Ok(Json(json!({ "dag_id": dag_id, "file": file.display().to_string(), "warnings": warnings })))
}
