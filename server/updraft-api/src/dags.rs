//! `/dags`: list (filters, pagination, order), one DAG, its details, and pausing.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::Value;
use updraft_db::dags::DagRow;
use updraft_types::DagId;
use utoipa::ToSchema;

use crate::auth::{UserRole, Viewer};
use crate::error::ApiError;
use crate::extract::{ApiPath, JsonBody, Params, paginate};
use crate::format::iso_opt;
use crate::models::{DagCollection, DagDetailsResponse, DagResponse, DagTag};
use crate::{AppState, format, lookup};

/// The routes of this resource, merged into the app.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/dags", get(list))
        .route("/dags/{dag_id}", get(one).patch(patch))
        .route("/dags/{dag_id}/details", get(details))
}

fn strings(json_text: &str) -> Vec<String> {
    serde_json::from_str(json_text).unwrap_or_default()
}

/// The files that failed to load at the last parse.
async fn broken_files(state: &AppState) -> Result<std::collections::HashSet<String>, ApiError> {
    Ok(state.db().import_error_rows().await?.into_iter().map(|(file, _, _)| file).collect())
}

/// A DAG whose file now fails to load keeps its row (stale) and has an import error.
async fn dag_response(state: &AppState, dag: &DagRow) -> Result<DagResponse, ApiError> {
    Ok(dag_json(dag, broken_files(state).await?.contains(&dag.record.fileloc)))
}

/// A `DAGResponse`.
pub fn dag_json(dag: &DagRow, has_import_errors: bool) -> DagResponse {
    let r = &dag.record;
    let tags = strings(&r.tags)
        .into_iter()
        .map(|name| DagTag { name, dag_id: r.dag_id.clone(), dag_display_name: r.dag_id.clone() })
        .collect();
    let mut owners = strings(&r.owners);
    if owners.is_empty() {
        owners.push("updraft".into());
    }
    let relative = std::path::Path::new(&r.fileloc).file_name().map(|f| f.to_string_lossy().into_owned());
    DagResponse {
        dag_id: r.dag_id.clone(),
        dag_display_name: r.dag_id.clone(),
        is_paused: dag.is_paused,
        is_stale: dag.is_stale,
        last_parsed_time: iso_opt(dag.last_parsed_at),
        last_parse_duration: None,
        last_expired: None,
        bundle_name: Some("dags-folder".into()),
        bundle_version: None,
        relative_fileloc: relative,
        fileloc: r.fileloc.clone(),
        description: r.description.clone(),
        timetable_summary: r.schedule.clone(),
        timetable_description: Some(match &r.schedule {
            Some(s) => format!("schedule {s} ({})", r.timezone),
            None => "Never, external triggers only".into(),
        }),
        timetable_partitioned: false,
        timetable_periodic: r.schedule.is_some(),
        tags,
        max_active_tasks: r.max_active_tasks,
        max_active_runs: Some(r.max_active_runs),
        max_consecutive_failed_dag_runs: 0,
        has_task_concurrency_limits: false,
        has_import_errors,
        next_dagrun_logical_date: None,
        next_dagrun_data_interval_start: None,
        next_dagrun_data_interval_end: None,
        next_dagrun_run_after: None,
        allowed_run_types: None,
        owners,
        is_backfillable: r.schedule.is_some(),
        file_token: base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, &r.fileloc),
    }
}

/// `GET /dags`: `limit`, `offset`, `paused`, `dag_id_pattern` (SQL `LIKE` style, `%` and `_`),
/// `tags` (any of them; `tags_match_mode=all` for every one), `exclude_stale` (default true),
/// `order_by` (`dag_id`, `last_parsed_time`, `is_paused`; `-` for descending).
#[utoipa::path(
    get,
    path = "/api/v2/dags",
    tag = "dags",
    params(
        ("limit" = Option<i64>, Query, description = "at most 100; default 50"),
        ("offset" = Option<i64>, Query),
        ("paused" = Option<bool>, Query),
        ("dag_id_pattern" = Option<String>, Query, description = "SQL LIKE pattern, or a substring"),
        ("tags" = Option<Vec<String>>, Query),
        ("tags_match_mode" = Option<String>, Query, description = "any (default) or all"),
        ("exclude_stale" = Option<bool>, Query),
        ("order_by" = Option<String>, Query, description = "dag_id, dag_display_name, last_parsed_time, is_paused; - for descending"),
    ),
    responses(
        (status = 200, body = DagCollection),
        (status = 400, description = "malformed request", body = crate::models::Problem),
        crate::models::Refused,
    ),
    security(("bearer" = []), ("session" = []))
)]
pub(crate) async fn list(
    _: Viewer,
    State(state): State<AppState>,
    params: Params,
) -> Result<Json<DagCollection>, ApiError> {
    let page = params.page()?;
    let paused = params.bool("paused")?;
    let exclude_stale = params.bool("exclude_stale")?.unwrap_or(true);
    let pattern = params.get("dag_id_pattern").map(str::to_lowercase);
    let tags = params.all("tags");
    let match_all = params.get("tags_match_mode") == Some("all");
    let order = params.get("order_by").unwrap_or("dag_id").to_owned();
    let (descending, key) = match order.strip_prefix('-') {
        Some(key) => (true, key),
        None => (false, order.as_str()),
    };
    if !matches!(key, "dag_id" | "dag_display_name" | "last_parsed_time" | "is_paused") {
        return Err(ApiError::BadRequest(format!(
            "ordering with `{key}` is not supported: use dag_id, dag_display_name, last_parsed_time or is_paused"
        )));
    }
    let mut dags: Vec<DagRow> = state
        .db()
        .list_all_dags()
        .await?
        .into_iter()
        .filter(|d| !(exclude_stale && d.is_stale))
        .filter(|d| paused.is_none_or(|p| d.is_paused == p))
        .filter(|d| pattern.as_deref().is_none_or(|p| like(&d.record.dag_id.to_lowercase(), p)))
        .filter(|d| {
            if tags.is_empty() {
                return true;
            }
            let have = strings(&d.record.tags);
            if match_all { tags.iter().all(|t| have.contains(t)) } else { tags.iter().any(|t| have.contains(t)) }
        })
        .collect();
    match key {
        "last_parsed_time" => dags.sort_by_key(|d| d.last_parsed_at),
        "is_paused" => dags.sort_by_key(|d| d.is_paused),
        _ => {}
    }
    if descending {
        dags.reverse();
    }
    let total = dags.len();
    let broken = broken_files(&state).await?;
    let dags = paginate(dags, page).iter().map(|d| dag_json(d, broken.contains(&d.record.fileloc))).collect();
    Ok(Json(DagCollection { dags, total_entries: total }))
}

/// SQL `LIKE` without escapes: `%` any run of characters, `_` one character; a pattern without
/// either matches as a substring, as Airflow's `dag_id_pattern` does.
fn like(text: &str, pattern: &str) -> bool {
    if !pattern.contains(['%', '_']) {
        return text.contains(pattern);
    }
    let t: Vec<char> = text.chars().collect();
    let p: Vec<char> = pattern.chars().collect();
    // Iterative wildcard matching with one backtrack point.
    let (mut ti, mut pi, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '_' || p[pi] == t[ti]) {
            ti += 1;
            pi += 1;
        } else if pi < p.len() && p[pi] == '%' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '%')
}

#[utoipa::path(
    get,
    path = "/api/v2/dags/{dag_id}",
    tag = "dags",
    params(
        ("dag_id" = String, Path, description = "DAG id"),
    ),
    responses(
        (status = 200, body = DagResponse),
        crate::models::Refused,
        crate::models::Missing,
    ),
    security(("bearer" = []), ("session" = []))
)]
pub(crate) async fn one(
    _: Viewer,
    State(state): State<AppState>,
    ApiPath(dag_id): ApiPath<DagId>,
) -> Result<Json<DagResponse>, ApiError> {
    Ok(Json(dag_response(&state, &lookup::dag(&state, &dag_id).await?).await?))
}

/// `DAGDetailsResponse`: the DAG plus the settings the client requires.
#[utoipa::path(
    get,
    path = "/api/v2/dags/{dag_id}/details",
    tag = "dags",
    params(
        ("dag_id" = String, Path, description = "DAG id"),
    ),
    responses(
        (status = 200, body = DagDetailsResponse),
        crate::models::Refused,
        crate::models::Missing,
    ),
    security(("bearer" = []), ("session" = []))
)]
pub(crate) async fn details(
    _: Viewer,
    State(state): State<AppState>,
    ApiPath(dag_id): ApiPath<DagId>,
) -> Result<Json<DagDetailsResponse>, ApiError> {
    let dag = lookup::dag(&state, &dag_id).await?;
    // The settings the DAG rows do not store come from the DAG's file, when it loads.
    let loaded = crate::dag_files::load(&dag).await.ok();
    let file = loaded.as_ref().map(|l| &l.dag);
    Ok(Json(DagDetailsResponse {
        concurrency: dag.record.max_active_tasks,
        catchup: file.is_some_and(|d| d.catchup),
        doc_md: file.and_then(|d| d.doc.clone()),
        start_date: file
            .and_then(|d| d.start)
            .map(|t| t.and_utc().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
        render_template_as_native_obj: false,
        timezone: dag.record.timezone.clone(),
        latest_dag_version: format::latest_version(&dag),
        is_paused_upon_creation: None,
        params: Value::Object(file.map(|d| d.params.clone()).unwrap_or_default()),
        dag: dag_response(&state, &dag).await?,
    }))
}

/// `DAGPatchBody`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = DagPatchBody)]
#[serde(deny_unknown_fields)]
pub(crate) struct PatchBody {
    is_paused: bool,
}

/// `PATCH /dags/{dag_id}` with `{"is_paused": bool}` (`update_mask`, if given, must be
/// `is_paused`, the only field that may change).
#[utoipa::path(
    patch,
    path = "/api/v2/dags/{dag_id}",
    tag = "dags",
    params(
        ("dag_id" = String, Path, description = "DAG id"),
        ("update_mask" = Option<String>, Query, description = "is_paused"),
    ),
    request_body = PatchBody,
    responses(
        (status = 200, body = DagResponse),
        crate::models::Refused,
        crate::models::Missing,
        crate::models::Unfit,
    ),
    security(("bearer" = []), ("session" = []))
)]
pub(crate) async fn patch(
    _: UserRole,
    State(state): State<AppState>,
    ApiPath(dag_id): ApiPath<DagId>,
    params: Params,
    JsonBody(body): JsonBody<PatchBody>,
) -> Result<Json<DagResponse>, ApiError> {
    if let Some(field) = params.all("update_mask").into_iter().find(|f| f != "is_paused") {
        return Err(ApiError::BadRequest(format!("`{field}` cannot be changed: only is_paused can")));
    }
    lookup::dag(&state, &dag_id).await?;
    state.db().set_paused(dag_id.as_str(), body.is_paused).await?;
    Ok(Json(dag_response(&state, &lookup::dag(&state, &dag_id).await?).await?))
}

#[cfg(test)]
mod tests {
    #[test]
    fn like_patterns() {
        assert!(super::like("orders_daily", "orders"));
        assert!(super::like("orders_daily", "%daily"));
        assert!(super::like("orders_daily", "ord_rs%"));
        assert!(!super::like("orders_daily", "%weekly"));
        assert!(super::like("a", "%%"));
    }
}
