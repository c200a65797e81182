//! `/dags/{dag_id}/dagRuns`: trigger (200, as Airflow), list, get, patch state, delete,
//! clear. A trigger inserts a queued run and answers at once; the scheduler picks it up.
//! State patches and clears are run requests the scheduler carries out, so the response shows
//! the run as it is when the request is recorded.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use updraft_db::requests::RequestAction;
use updraft_db::runs::{NewRun, RunOrder, RunRow};
use updraft_types::{DagId, RunId, RunState, RunType, Timestamp};
use utoipa::ToSchema;

use crate::auth::{UserRole, Viewer};
use crate::error::ApiError;
use crate::extract::{ApiPath, JsonBody, Params};
use crate::format::{self, iso, iso_opt, parse_time};
use crate::models::{ClearRunResponse, DagRunCollection, DagRunResponse, TaskInstanceCollection};
use crate::run_request::RunRequest;
use crate::{AppState, lookup};

/// The routes of this resource, merged into the app.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/dags/{dag_id}/dagRuns", get(list).post(trigger))
        .route("/dags/{dag_id}/dagRuns/{dag_run_id}", get(one).patch(patch).delete(delete))
        .route("/dags/{dag_id}/dagRuns/{dag_run_id}/clear", post(clear))
}

/// A `DAGRunResponse`.
pub fn run_json(run: &RunRow) -> DagRunResponse {
    let duration = match (run.start_date, run.end_date) {
        (Some(start), Some(end)) => Some((end.as_micros() - start.as_micros()) as f64 / 1e6),
        _ => None,
    };
    DagRunResponse {
        dag_run_id: run.run_id.to_string(),
        dag_id: run.dag_id.to_string(),
        dag_display_name: run.dag_id.to_string(),
        logical_date: iso_opt(run.logical_date),
        queued_at: iso_opt(run.queued_at),
        start_date: iso_opt(run.start_date),
        end_date: iso_opt(run.end_date),
        duration,
        data_interval_start: iso_opt(run.data_interval_start),
        data_interval_end: iso_opt(run.data_interval_end),
        run_after: iso(run.run_after),
        last_scheduling_decision: None,
        run_type: run.run_type.to_string(),
        state: run.state.to_string(),
        triggered_by: format::triggered_by(run.triggered_by.as_deref()),
        triggering_user_name: run.triggering_user.clone(),
        conf: serde_json::from_str(&run.conf).unwrap_or_else(|_| json!({})),
        note: run.note.clone(),
        dag_versions: vec![format::dag_version(&run.dag_id, run.dag_version, run.queued_at.unwrap_or(run.run_after))],
        bundle_version: None,
        partition_key: None,
        partition_date: None,
    }
}

/// `GET /dags/{dag_id}/dagRuns` (`~` for every DAG): `limit`, `offset`, `state` (repeatable)
/// and `order_by` (default `id`, oldest first, as Airflow).
#[utoipa::path(
    get,
    path = "/api/v2/dags/{dag_id}/dagRuns",
    tag = "dag runs",
    params(
        ("dag_id" = String, Path, description = "DAG id, or ~ for every DAG"),
        ("limit" = Option<i64>, Query, description = "at most 100; default 50"),
        ("offset" = Option<i64>, Query),
        ("state" = Option<Vec<String>>, Query),
        ("order_by" = Option<String>, Query, description = "id (default), run_after, start_date, …; - for descending"),
    ),
    responses(
        (status = 200, body = DagRunCollection),
        (status = 400, description = "malformed request", body = crate::models::Problem),
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
) -> Result<Json<DagRunCollection>, ApiError> {
    let (limit, offset) = params.page()?;
    let states = params
        .all("state")
        .iter()
        .map(|s| {
            s.parse::<RunState>().map_err(|_| {
                ApiError::BadRequest(format!("`state` `{s}` is not a run state: queued, running, success or failed"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let order = match params.get("order_by") {
        None => RunOrder::DEFAULT,
        Some(text) => RunOrder::parse(text).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "ordering with `{text}` is not supported: use id, dag_id, run_id, state, logical_date, run_after, start_date, end_date, queued_at or run_type (- for descending)"
            ))
        })?,
    };
    // `~` is every DAG, as in Airflow.
    let dag = if dag_id.as_str() == "~" {
        None
    } else {
        lookup::dag(&state, &dag_id).await?;
        Some(dag_id.as_str())
    };
    let (runs, total) = state.db().find_runs(dag, &states, order, limit as i64, offset as i64).await?;
    Ok(Json(DagRunCollection { dag_runs: runs.iter().map(run_json).collect(), total_entries: total }))
}

#[utoipa::path(
    get,
    path = "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}",
    tag = "dag runs",
    params(
        ("dag_id" = String, Path, description = "DAG id"),
        ("dag_run_id" = String, Path, description = "run id"),
    ),
    responses(
        (status = 200, body = DagRunResponse),
        crate::models::Refused,
        crate::models::Missing,
    ),
    security(("bearer" = []), ("session" = []))
)]
pub(crate) async fn one(
    _: Viewer,
    State(state): State<AppState>,
    ApiPath((dag_id, run_id)): ApiPath<(DagId, RunId)>,
) -> Result<Json<DagRunResponse>, ApiError> {
    Ok(Json(run_json(&lookup::run(&state, &dag_id, &run_id).await?)))
}

/// `TriggerDAGRunPostBody`. `logical_date` may be absent or null (Airflow insists on the key;
/// Updraft accepts both); unknown keys are refused, as Airflow's strict model does.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = TriggerDagRunPostBody)]
#[serde(deny_unknown_fields)]
pub(crate) struct TriggerBody {
    #[serde(default)]
    dag_run_id: Option<String>,
    #[serde(default)]
    logical_date: Option<String>,
    #[serde(default)]
    run_after: Option<String>,
    #[serde(default)]
    data_interval_start: Option<String>,
    #[serde(default)]
    data_interval_end: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    conf: Option<serde_json::Map<String, Value>>,
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    partition_key: Option<String>,
}

/// Run ids become folder names of task logs: letters, digits and `_.~:+-` only, as Airflow
/// allows, never `..`.
fn check_run_id(run_id: &str) -> Result<(), ApiError> {
    let ok_chars = run_id.chars().all(|c| c.is_ascii_alphanumeric() || "_.~:+-".contains(c));
    if run_id.is_empty() || run_id.len() > 250 || !ok_chars || run_id.contains("..") {
        return Err(ApiError::Unprocessable(format!(
            "`dag_run_id` `{run_id}` is not allowed: use 1 to 250 letters, digits and _.~:+- (no `..`)"
        )));
    }
    Ok(())
}

/// `POST /dags/{dag_id}/dagRuns`: 200 with the queued run; 409 if the run id is taken.
#[utoipa::path(
    post,
    path = "/api/v2/dags/{dag_id}/dagRuns",
    tag = "dag runs",
    params(
        ("dag_id" = String, Path, description = "DAG id"),
    ),
    request_body = TriggerBody,
    responses(
        (status = 200, description = "the queued run", body = DagRunResponse),
        crate::models::Refused,
        crate::models::Missing,
        (status = 409, description = "conflict", body = crate::models::Problem),
        crate::models::Unfit,
    ),
    security(("bearer" = []), ("session" = []))
)]
pub(crate) async fn trigger(
    user: UserRole,
    State(state): State<AppState>,
    ApiPath(dag_id): ApiPath<DagId>,
    JsonBody(body): JsonBody<TriggerBody>,
) -> Result<Json<DagRunResponse>, ApiError> {
    // No scheduler claims a run of a stale DAG: refuse it rather than queue it for ever.
    if lookup::dag(&state, &dag_id).await?.is_stale {
        return Err(ApiError::Conflict(format!(
            "DAG `{dag_id}` is stale: its file no longer defines it (GET /api/v2/importErrors says why)"
        )));
    }
    if body.partition_key.is_some() {
        return Err(ApiError::Unprocessable("`partition_key` is not supported by Updraft".into()));
    }
    let now = Timestamp::now();
    let logical_date = body.logical_date.as_deref().map(|t| parse_time("logical_date", t)).transpose()?;
    let run_after = match body.run_after.as_deref() {
        Some(t) => parse_time("run_after", t)?,
        None => logical_date.unwrap_or(now),
    };
    let data_interval = match (body.data_interval_start.as_deref(), body.data_interval_end.as_deref()) {
        (Some(start), Some(end)) => {
            let interval = (parse_time("data_interval_start", start)?, parse_time("data_interval_end", end)?);
            if interval.0 > interval.1 {
                return Err(ApiError::Unprocessable("`data_interval_start` is after `data_interval_end`".into()));
            }
            Some(interval)
        }
        (None, None) => logical_date.map(|d| (d, d)),
        _ => {
            return Err(ApiError::Unprocessable(
                "give both `data_interval_start` and `data_interval_end`, or neither".into(),
            ));
        }
    };
    let generated = body.dag_run_id.is_none();
    if let Some(id) = &body.dag_run_id {
        check_run_id(id)?;
    }
    let mut new = NewRun {
        dag_id: dag_id.clone(),
        run_id: body.dag_run_id.unwrap_or_else(|| format!("manual__{}", chrono_run_id(run_after))).into(),
        run_type: RunType::Manual,
        logical_date,
        data_interval,
        run_after,
        conf: Value::Object(body.conf.unwrap_or_default()).to_string(),
        triggered_by: "rest_api".into(),
        triggering_user: Some(user.0.username),
        note: body.note,
    };
    // Two triggers in the same microsecond would generate the same id: a generated id moves on
    // by a microsecond instead of failing; an id the caller chose is a 409.
    let mut attempts = 0;
    let run = loop {
        match state.db().insert_run(&new).await {
            Err(updraft_db::DbError::Conflict(_)) if generated && attempts < 16 => {
                attempts += 1;
                new.run_after = Timestamp::from_micros(new.run_after.as_micros() + 1);
                new.run_id = format!("manual__{}", chrono_run_id(new.run_after)).into();
            }
            other => break other?,
        }
    };
    Ok(Json(run_json(&run)))
}

/// `2026-11-28T06:40:10.466692+00:00`, the time part of Airflow's default run ids.
fn chrono_run_id(t: Timestamp) -> String {
    chrono::DateTime::from_timestamp_micros(t.as_micros())
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, false))
        .unwrap_or_default()
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = DagRunPatchBody)]
#[serde(deny_unknown_fields)]
pub(crate) struct PatchBody {
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    note: Option<String>,
}

/// `PATCH …/dagRuns/{id}` with `{"state": "success" | "failed"}`: a request to mark the run,
/// which its scheduler carries out (unfinished tasks succeed, or fail and skip); and/or
/// `{"note": …}`, set at once.
#[utoipa::path(
    patch,
    path = "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}",
    tag = "dag runs",
    params(
        ("dag_id" = String, Path, description = "DAG id"),
        ("dag_run_id" = String, Path, description = "run id"),
    ),
    request_body = PatchBody,
    responses(
        (status = 200, description = "the run; the scheduler marks it", body = DagRunResponse),
        crate::models::Refused,
        crate::models::Missing,
        crate::models::Unfit,
    ),
    security(("bearer" = []), ("session" = []))
)]
pub(crate) async fn patch(
    user: UserRole,
    State(state): State<AppState>,
    ApiPath((dag_id, run_id)): ApiPath<(DagId, RunId)>,
    JsonBody(body): JsonBody<PatchBody>,
) -> Result<Json<DagRunResponse>, ApiError> {
    let run = lookup::run(&state, &dag_id, &run_id).await?;
    let action = match body.state.as_deref().map(|text| (text, text.parse::<RunState>())) {
        Some((_, Ok(RunState::Success))) => Some(RequestAction::MarkRunSuccess),
        Some((_, Ok(RunState::Failed))) => Some(RequestAction::MarkRunFailed),
        Some((_, Ok(RunState::Queued))) => {
            return Err(ApiError::Unprocessable(
                "to run a run again, POST …/dagRuns/{dag_run_id}/clear with {\"dry_run\": false}".into(),
            ));
        }
        Some((other, _)) => {
            return Err(ApiError::Unprocessable(format!("`state` must be success or failed, not `{other}`")));
        }
        None if body.note.is_some() => None,
        None => return Err(ApiError::Unprocessable("give the new `state` (success or failed) or a `note`".into())),
    };
    if let Some(note) = &body.note {
        state.db().set_run_note(run.id, Some(note)).await?;
    }
    if let Some(action) = action {
        RunRequest::new(&run, action).record(&state, &user.0.username).await?;
    }
    Ok(Json(run_json(&lookup::run(&state, &dag_id, &run_id).await?)))
}

/// `DELETE …/dagRuns/{id}`: 204. A run a scheduler is working on is refused with 409 (mark it
/// failed first): deleting rows under a running scheduler would lose its writes.
#[utoipa::path(
    delete,
    path = "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}",
    tag = "dag runs",
    params(
        ("dag_id" = String, Path, description = "DAG id"),
        ("dag_run_id" = String, Path, description = "run id"),
    ),
    responses(
        (status = 204, description = "deleted"),
        crate::models::Refused,
        crate::models::Missing,
        (status = 409, description = "conflict", body = crate::models::Problem),
    ),
    security(("bearer" = []), ("session" = []))
)]
pub(crate) async fn delete(
    _: UserRole,
    State(state): State<AppState>,
    ApiPath((dag_id, run_id)): ApiPath<(DagId, RunId)>,
) -> Result<StatusCode, ApiError> {
    let run = lookup::run(&state, &dag_id, &run_id).await?;
    if !state.db().delete_idle_run(run.id).await? {
        return Err(ApiError::Conflict(format!(
            "run `{run_id}` is {}: mark it failed (PATCH with {{\"state\": \"failed\"}}) and delete it once it has finished",
            run.state
        )));
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = DagRunClearBody)]
pub(crate) struct ClearBody {
    #[serde(default = "yes")]
    dry_run: bool,
    #[serde(default)]
    only_failed: bool,
}

fn yes() -> bool {
    true
}

/// `POST …/dagRuns/{id}/clear`: with `dry_run` (the default, as Airflow) the task instances
/// that would be cleared; otherwise a clear request and the run.
#[utoipa::path(
    post,
    path = "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/clear",
    tag = "dag runs",
    params(
        ("dag_id" = String, Path, description = "DAG id"),
        ("dag_run_id" = String, Path, description = "run id"),
    ),
    request_body = ClearBody,
    responses(
        (status = 200, body = ClearRunResponse),
        crate::models::Refused,
        crate::models::Missing,
        crate::models::Unfit,
    ),
    security(("bearer" = []), ("session" = []))
)]
pub(crate) async fn clear(
    user: UserRole,
    State(state): State<AppState>,
    ApiPath((dag_id, run_id)): ApiPath<(DagId, RunId)>,
    JsonBody(body): JsonBody<ClearBody>,
) -> Result<Json<ClearRunResponse>, ApiError> {
    let run = lookup::run(&state, &dag_id, &run_id).await?;
    if body.dry_run {
        let tis: Vec<_> = state
            .db()
            .task_instances(run.id)
            .await?
            .iter()
            .filter(|t| !body.only_failed || t.state.is_failure())
            .map(|t| format::ti_json(t, &run))
            .collect();
        let total_entries = tis.len();
        return Ok(Json(ClearRunResponse::DryRun(TaskInstanceCollection { task_instances: tis, total_entries })));
    }
    RunRequest::new(&run, RequestAction::Clear).only_failed(body.only_failed).record(&state, &user.0.username).await?;
    Ok(Json(ClearRunResponse::Run(Box::new(run_json(&lookup::run(&state, &dag_id, &run_id).await?)))))
}

#[cfg(test)]
mod tests {
    #[test]
    fn run_ids_cannot_escape_the_log_folder() {
        assert!(super::check_run_id("manual__2026-01-01T00:00:00.000000+00:00").is_ok());
        for bad in ["", "a/b", "..", "x..y", "a b", "ü"] {
            assert!(super::check_run_id(bad).is_err(), "{bad}");
        }
    }
}
