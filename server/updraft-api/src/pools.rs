//! `/pools`: everyone may read them with their slot usage; `op` and `admin` create, resize
//! and delete them. `default_pool` cannot be deleted.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use updraft_db::TaskState;
use updraft_db::pools::{PoolRow, PoolUsage};

use crate::AppState;
use crate::auth::{Op, Viewer};
use crate::error::ApiError;
use crate::extract::{ApiPath, JsonBody, Params, paginate};
use crate::models::{PoolCollection, PoolResponse};

/// The routes of this resource, merged into the app.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/pools", get(list).post(create))
        .route("/pools/{pool_name}", get(one).patch(update).delete(delete))
}

fn pool(p: &PoolRow, usage: &[PoolUsage]) -> PoolResponse {
    let used = |state: TaskState| -> i64 {
        usage.iter().filter(|u| u.pool == p.name && u.state == state).map(|u| u.slots).sum()
    };
    let (running, queued, scheduled) = (used(TaskState::Running), used(TaskState::Queued), used(TaskState::Scheduled));
    PoolResponse {
        name: p.name.clone(),
        slots: p.slots,
        description: p.description.clone(),
        include_deferred: false,
        occupied_slots: running + queued,
        running_slots: running,
        queued_slots: queued,
        scheduled_slots: scheduled,
        deferred_slots: 0,
        open_slots: i64::from(p.slots) - running - queued,
    }
}

#[utoipa::path(
    get,
    path = "/api/v2/pools",
    tag = "pools",
    params(
        ("limit" = Option<i64>, Query, description = "at most 100; default 50"),
        ("offset" = Option<i64>, Query),
    ),
    responses(
        (status = 200, body = PoolCollection),
        crate::models::Refused,
        crate::models::Missing,
    ),
    security(("bearer" = []), ("session" = []))
)]
pub(crate) async fn list(
    _: Viewer,
    State(state): State<AppState>,
    params: Params,
) -> Result<Json<PoolCollection>, ApiError> {
    let page = params.page()?;
    let rows = state.db().pool_rows().await?;
    let usage = state.db().pool_usage().await?;
    let total = rows.len();
    let pools = paginate(rows, page).iter().map(|p| pool(p, &usage)).collect();
    Ok(Json(PoolCollection { pools, total_entries: total }))
}

async fn find(state: &AppState, name: &str) -> Result<PoolRow, ApiError> {
    state
        .db()
        .pool_rows()
        .await?
        .into_iter()
        .find(|p| p.name == name)
        .ok_or_else(|| ApiError::NotFound(format!("no pool `{name}`")))
}

#[utoipa::path(
    get,
    path = "/api/v2/pools/{pool_name}",
    tag = "pools",
    params(
        ("pool_name" = String, Path),
    ),
    responses(
        (status = 200, body = PoolResponse),
        crate::models::Refused,
        crate::models::Missing,
    ),
    security(("bearer" = []), ("session" = []))
)]
pub(crate) async fn one(
    _: Viewer,
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<PoolResponse>, ApiError> {
    let p = find(&state, &name).await?;
    Ok(Json(pool(&p, &state.db().pool_usage().await?)))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = PoolBody)]
#[serde(deny_unknown_fields)]
pub(crate) struct Body {
    /// `pool` in Airflow's `PoolPatchBody`.
    #[serde(default, alias = "pool")]
    name: Option<String>,
    #[serde(default)]
    slots: Option<i32>,
    #[serde(default)]
    description: Option<String>,
    /// Accepted for Airflow's clients; Updraft has no deferred tasks.
    #[serde(default, rename = "include_deferred")]
    _include_deferred: Option<bool>,
}

#[utoipa::path(
    post,
    path = "/api/v2/pools",
    tag = "pools",
    request_body = Body,
    responses(
        (status = 201, body = PoolResponse),
        crate::models::Refused,
        (status = 409, description = "conflict", body = crate::models::Problem),
        crate::models::Unfit,
    ),
    security(("bearer" = []), ("session" = []))
)]
pub(crate) async fn create(
    _: Op,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<Body>,
) -> Result<(StatusCode, Json<PoolResponse>), ApiError> {
    let (Some(name), Some(slots)) = (body.name, body.slots) else {
        return Err(ApiError::Unprocessable("a pool needs a `name` and `slots`".into()));
    };
    if name.is_empty() || name.len() > 250 || slots < 0 {
        return Err(ApiError::Unprocessable("a pool has a name of 1 to 250 characters and 0 or more slots".into()));
    }
    state.db().create_pool(&name, slots, body.description.as_deref()).await?;
    let p = find(&state, &name).await?;
    Ok((StatusCode::CREATED, Json(pool(&p, &state.db().pool_usage().await?))))
}

#[utoipa::path(
    patch,
    path = "/api/v2/pools/{pool_name}",
    tag = "pools",
    params(
        ("pool_name" = String, Path),
    ),
    request_body = Body,
    responses(
        (status = 200, body = PoolResponse),
        crate::models::Refused,
        crate::models::Missing,
        crate::models::Unfit,
    ),
    security(("bearer" = []), ("session" = []))
)]
pub(crate) async fn update(
    _: Op,
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    JsonBody(body): JsonBody<Body>,
) -> Result<Json<PoolResponse>, ApiError> {
    let old = find(&state, &name).await?;
    if body.name.as_deref().is_some_and(|n| n != name) {
        return Err(ApiError::BadRequest("a pool cannot be renamed".into()));
    }
    let slots = body.slots.unwrap_or(old.slots);
    if slots < 0 {
        return Err(ApiError::Unprocessable("a pool needs 0 or more slots".into()));
    }
    let description = body.description.or(old.description);
    state.db().set_pool(&name, slots, description.as_deref()).await?;
    let p = find(&state, &name).await?;
    Ok(Json(pool(&p, &state.db().pool_usage().await?)))
}

#[utoipa::path(
    delete,
    path = "/api/v2/pools/{pool_name}",
    tag = "pools",
    params(
        ("pool_name" = String, Path),
    ),
    responses(
        (status = 204),
        crate::models::Refused,
        crate::models::Missing,
        (status = 400, description = "malformed request", body = crate::models::Problem),
    ),
    security(("bearer" = []), ("session" = []))
)]
pub(crate) async fn delete(
    _: Op,
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    if name == "default_pool" {
        return Err(ApiError::BadRequest("`default_pool` cannot be deleted".into()));
    }
    if !state.db().delete_pool(&name).await? {
        return Err(ApiError::NotFound(format!("no pool `{name}`")));
    }
    Ok(StatusCode::NO_CONTENT)
}
