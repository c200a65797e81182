//! The web app's own views of DAGs: `GET /api/updraft/dags` (every DAG with its schedule, next
//! run and latest run, in one answer), `GET /api/updraft/dags/{dag_id}/grid` (the latest runs ×
//! the tasks, for the grid view) and `POST /api/updraft/dags` (a new one-file DAG from the
//! editor: validated with the same DAG model as the scheduler's, then written into the DAGs
//! folder without ever replacing a file).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use updraft_db::runs::RunRow;
use updraft_types::api::{DagFileWritten, DagOverview, DagOverviewCollection, GridResponse, NewDagFile, RunSummary};
use updraft_types::{DagId, Timestamp};

use crate::auth::{Op, Viewer};
use crate::error::ApiError;
use crate::extract::{ApiPath, JsonBody, Params};
use crate::format::{iso, iso_opt};
use crate::{AppState, dag_files, lookup};

/// Most runs the grid shows.
const GRID_MAX_RUNS: i64 = 100;

/// The routes of this resource, merged into the app.
pub fn router() -> Router<AppState> {
    Router::new().route("/dags", get(list).post(create)).route("/dags/{dag_id}/grid", get(grid))
}

fn summary(run: &RunRow) -> RunSummary {
    RunSummary {
        dag_run_id: run.run_id.to_string(),
        state: run.state.to_string(),
        run_type: run.run_type.to_string(),
        logical_date: iso_opt(run.logical_date),
        run_after: iso(run.run_after),
        start_date: iso_opt(run.start_date),
        end_date: iso_opt(run.end_date),
    }
}

/// When the schedule next fires after now, in the DAG's time zone (a cron schedule only).
fn next_fire(schedule: Option<&str>, timezone: &str) -> Option<String> {
    let schedule = updraft_dag::Schedule::parse(schedule?).ok()?;
    let tz = updraft_dag::schedule::parse_timezone(timezone).ok()?;
    let next = updraft_dag::schedule::next_fire_after(&schedule, tz, chrono::Utc::now())?;
    Some(iso(Timestamp::from_micros(next.timestamp_micros())))
}

#[utoipa::path(
    get,
    path = "/api/updraft/dags",
    tag = "updraft",
    responses(
        (status = 200, body = DagOverviewCollection),
        crate::models::Refused,
    ),
    security(("bearer" = []), ("session" = []))
)]
pub(crate) async fn list(_: Viewer, State(state): State<AppState>) -> Result<Json<DagOverviewCollection>, ApiError> {
    let rows = state.db().list_dags().await?;
    let broken: std::collections::HashSet<String> =
        state.db().import_error_rows().await?.into_iter().map(|(file, _, _)| file).collect();
    let mut latest: HashMap<String, RunRow> =
        state.db().latest_runs().await?.into_iter().map(|run| (run.dag_id.to_string(), run)).collect();
    let dags: Vec<DagOverview> = rows
        .iter()
        .filter(|row| !row.is_stale)
        .map(|row| {
            let r = &row.record;
            DagOverview {
                dag_id: r.dag_id.clone(),
                description: r.description.clone(),
                is_paused: row.is_paused,
                is_stale: row.is_stale,
                has_import_errors: broken.contains(&r.fileloc),
                tags: serde_json::from_str(&r.tags).unwrap_or_default(),
                owners: serde_json::from_str(&r.owners).unwrap_or_default(),
                schedule: r.schedule.clone(),
                next_run: if row.is_paused { None } else { next_fire(r.schedule.as_deref(), &r.timezone) },
                last_run: latest.remove(&r.dag_id).as_ref().map(summary),
                fileloc: r.fileloc.clone(),
            }
        })
        .collect();
    Ok(Json(DagOverviewCollection { total_entries: dags.len(), dags }))
}

#[utoipa::path(
    get,
    path = "/api/updraft/dags/{dag_id}/grid",
    tag = "updraft",
    params(
        ("dag_id" = String, Path, description = "DAG id"),
        ("limit" = Option<i64>, Query, description = "how many of the latest runs (default 20, at most 100)"),
    ),
    responses(
        (status = 200, body = GridResponse),
        crate::models::Refused,
        crate::models::Missing,
        (status = 400, description = "malformed request", body = crate::models::Problem),
    ),
    security(("bearer" = []), ("session" = []))
)]
pub(crate) async fn grid(
    _: Viewer,
    State(state): State<AppState>,
    ApiPath(dag_id): ApiPath<DagId>,
    params: Params,
) -> Result<Json<GridResponse>, ApiError> {
    let limit = match params.get("limit") {
        None => 20,
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=GRID_MAX_RUNS).contains(n))
            .ok_or_else(|| ApiError::BadRequest(format!("`limit` must be a number from 1 to {GRID_MAX_RUNS}")))?,
    };
    let row = lookup::dag(&state, &dag_id).await?;
    let loaded = dag_files::load(&row).await?;
    let dag = &loaded.dag;
    let mut order: Vec<usize> = (0..dag.tasks.len()).collect();
    order.sort_by_key(|&t| (dag.layers[t], t));
    let tasks: Vec<String> = order.iter().map(|&t| dag.tasks[t].id.to_string()).collect();
    let index: HashMap<&str, usize> = tasks.iter().enumerate().map(|(i, t)| (t.as_str(), i)).collect();
    let mut runs = state.db().list_runs(dag_id.as_str(), limit, 0).await?;
    runs.reverse();
    let mut states = Vec::with_capacity(runs.len());
    for run in &runs {
        let mut column = vec![String::new(); tasks.len()];
        for ti in state.db().task_instances(run.id).await? {
            if let Some(&i) = index.get(ti.task_id.as_str()) {
                column[i] = crate::format::ti_state(ti.state).unwrap_or_default();
            }
        }
        states.push(column);
    }
    Ok(Json(GridResponse { dag_id: dag_id.to_string(), tasks, runs: runs.iter().map(summary).collect(), states }))
}

/// A DAG id that is safe as a file name (the DAG model allows letters, digits, `_`, `-`, `.`).
fn file_name_for(dag_id: &str) -> Option<String> {
    let safe = !dag_id.is_empty()
        && !dag_id.starts_with('.')
        && dag_id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    safe.then(|| format!("{dag_id}.yaml"))
}

/// Writes `content` as `target`, which must not exist: a synced temporary file, hard-linked
/// to its name (which fails, changing nothing, if the name is taken).
fn create_new(target: &Path, content: &str) -> std::io::Result<()> {
    dag_files::write_via_temp(target, content, |from, to| std::fs::hard_link(from, to))
}

/// `POST /api/updraft/dags` with `{"content": "…"}`: a new one-file DAG, written as
/// `<DAGs folder>/<dag_id>.yaml`. 422 with every located error, 409 when the DAG or the file
/// exists; the scheduler picks the file up at its next parse.
#[utoipa::path(
    post,
    path = "/api/updraft/dags",
    tag = "updraft",
    request_body = NewDagFile,
    responses(
        (status = 201, description = "written; the warnings", body = DagFileWritten),
        crate::models::Refused,
        (status = 404, description = "this server has no DAGs folder", body = crate::models::Problem),
        (status = 409, description = "the DAG or its file exists", body = crate::models::Problem),
        (status = 422, description = "the file does not validate: every located error in `errors`", body = crate::models::Problem),
    ),
    security(("bearer" = []), ("session" = []))
)]
pub(crate) async fn create(
    _: Op,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<NewDagFile>,
) -> Result<(StatusCode, Json<DagFileWritten>), ApiError> {
    let Some(folder) = state.dags_dir().map(Path::to_path_buf) else {
        return Err(ApiError::NotFound(
            "this API server has no DAGs folder: start it with --dags (UPDRAFT__CORE__DAGS_FOLDER)".into(),
        ));
    };
    let check = dag_files::scratch(&folder, "check");
    std::fs::write(&check, &body.content).map_err(|e| ApiError::Internal(format!("writing a check copy: {e}")))?;
    let bag = dag_files::load_root(check.clone()).await;
    let _ = std::fs::remove_file(&check);
    let bag = bag?;
    let shown = check.display().to_string();
    let mut errors: Vec<serde_json::Value> = bag
        .import_errors
        .iter()
        .flat_map(|e| e.diagnostics.iter())
        .map(|d| dag_files::diagnostic_json(d, &shown, "new DAG"))
        .collect();
    if errors.is_empty() && bag.dags.len() != 1 {
        errors.push(serde_json::json!({
            "severity": "error", "file": "new DAG", "line": 1, "column": 1,
            "message": "the file must define exactly one DAG (`dag:` with a `tasks:` list)",
        }));
    }
    if !errors.is_empty() {
        return Err(ApiError::InvalidSource {
            detail: "the DAG is not valid; nothing was written".into(),
            errors: errors.into(),
        });
    }
    let loaded = &bag.dags[0];
    let dag_id = loaded.dag.id.to_string();
    let name = file_name_for(&dag_id).ok_or_else(|| {
        ApiError::Unprocessable(format!("DAG id `{dag_id}` cannot name a file: use letters, digits, `_`, `-` and `.`"))
    })?;
    if state.db().get_dag(&dag_id).await?.is_some() {
        return Err(ApiError::Conflict(format!(
            "DAG `{dag_id}` exists: choose another `dag:` id, or edit that DAG instead"
        )));
    }
    let target: PathBuf = folder.join(&name);
    let warnings =
        loaded.warnings.iter().map(|d| dag_files::diagnostic_json(d, &shown, &target.display().to_string())).collect();
    let content = body.content;
    let path = target.clone();
    tokio::task::spawn_blocking(move || create_new(&path, &content))
        .await
        .map_err(|e| ApiError::Internal(format!("writing {}: {e}", target.display())))?
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => ApiError::Conflict(format!(
                "{} exists: choose another `dag:` id (the file is named after it)",
                target.display()
            )),
            _ => ApiError::Internal(format!("writing {}: {e}", target.display())),
        })?;
    Ok((StatusCode::CREATED, Json(DagFileWritten { dag_id, file: target.display().to_string(), warnings })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_ids_name_files() {
        assert_eq!(file_name_for("orders_daily").as_deref(), Some("orders_daily.yaml"));
        assert_eq!(file_name_for("a.b-c").as_deref(), Some("a.b-c.yaml"));
        for bad in ["", ".hidden", "../up", "a/b", "a b", "ü"] {
            assert_eq!(file_name_for(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_new_file_never_replaces_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("d.yaml");
        create_new(&target, "one").expect("first write");
        let error = create_new(&target, "two").expect_err("second write");
        assert_eq!(error.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read_to_string(&target).expect("read"), "one");
        let left: Vec<_> = std::fs::read_dir(dir.path()).expect("dir").collect();
        assert_eq!(left.len(), 1, "no temporary file is left behind");
    }
}
