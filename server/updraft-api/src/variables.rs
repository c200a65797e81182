//! `/variables`: create, read, update, delete. Values are encrypted at rest; a listing shows
//! `***` for every value (only `GET /variables/{key}` returns one, and never one from the
//! cluster: `UPDRAFT_VAR_*` and the Secret directory stay secrets), and only `op` and `admin`
//! may touch variables at all, as in Airflow. A variable the cluster defines is changed there
//! (409 here).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use updraft_secrets::Origin;

use crate::AppState;
use crate::auth::Op;
use crate::error::ApiError;
use crate::extract::{ApiPath, JsonBody, Params, paginate};
use crate::models::{VariableCollection, VariableResponse};

/// The routes of this resource, merged into the app.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/variables", get(list).post(create))
        .route("/variables/{key}", get(one).patch(update).delete(delete))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = VariableBody)]
#[serde(deny_unknown_fields)]
pub(crate) struct Body {
    key: String,
    value: String,
    #[serde(default)]
    description: Option<String>,
}

fn variable(key: &str, value: &str, description: Option<&str>, origin: &Origin) -> VariableResponse {
    VariableResponse {
        key: key.to_owned(),
        value: if origin.is_managed() { value.to_owned() } else { "***".to_owned() },
        description: description.map(str::to_owned),
        is_encrypted: true,
        source: Some(origin.kind().to_owned()),
    }
}

/// 409 for a variable the cluster defines: the API changes only the database's.
fn managed_elsewhere(state: &AppState, key: &str) -> Result<(), ApiError> {
    match state.secrets().cluster_origin_of_variable(key) {
        Some(origin) => Err(ApiError::Conflict(format!(
            "variable `{key}` is defined by the {origin}, which wins over the database: change it there"
        ))),
        None => Ok(()),
    }
}

fn check_key(key: &str) -> Result<(), ApiError> {
    if key.is_empty() || key.len() > 250 {
        return Err(ApiError::Unprocessable("a variable `key` has 1 to 250 characters".into()));
    }
    Ok(())
}

#[utoipa::path(
    get,
    path = "/api/v2/variables",
    tag = "variables",
    params(
        ("limit" = Option<i64>, Query, description = "at most 100; default 50"),
        ("offset" = Option<i64>, Query),
    ),
    responses(
        (status = 200, description = "values shown as ***", body = VariableCollection),
        crate::models::Refused,
        crate::models::Missing,
        crate::models::Unfit,
    ),
    security(("bearer" = []), ("session" = []))
)]
pub(crate) async fn list(
    _: Op,
    State(state): State<AppState>,
    params: Params,
) -> Result<Json<VariableCollection>, ApiError> {
    let page = params.page()?;
    let rows = state.secrets().variables().await?;
    let total = rows.len();
    let variables =
        paginate(rows, page).iter().map(|(k, d, origin)| variable(k, "***", d.as_deref(), origin)).collect();
    Ok(Json(VariableCollection { variables, total_entries: total }))
}

async fn description(state: &AppState, key: &str) -> Result<Option<Option<String>>, ApiError> {
    Ok(state.db().list_variables().await?.into_iter().find(|(k, _)| k == key).map(|(_, d)| d))
}

#[utoipa::path(
    get,
    path = "/api/v2/variables/{key}",
    tag = "variables",
    params(
        ("key" = String, Path),
    ),
    responses(
        (status = 200, body = VariableResponse),
        crate::models::Refused,
        crate::models::Missing,
        crate::models::Unfit,
    ),
    security(("bearer" = []), ("session" = []))
)]
pub(crate) async fn one(
    _: Op,
    State(state): State<AppState>,
    ApiPath(key): ApiPath<String>,
) -> Result<Json<VariableResponse>, ApiError> {
    let (value, origin) =
        state.secrets().variable(&key).await?.ok_or_else(|| ApiError::NotFound(format!("no variable `{key}`")))?;
    let description = if origin.is_managed() { description(&state, &key).await?.flatten() } else { None };
    Ok(Json(variable(&key, &value, description.as_deref(), &origin)))
}

/// 201, or 409 if the key exists (PATCH changes it).
#[utoipa::path(
    post,
    path = "/api/v2/variables",
    tag = "variables",
    request_body = Body,
    responses(
        (status = 201, body = VariableResponse),
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
) -> Result<(StatusCode, Json<VariableResponse>), ApiError> {
    check_key(&body.key)?;
    managed_elsewhere(&state, &body.key)?;
    state.db().create_variable(state.key(), &body.key, &body.value, body.description.as_deref()).await?;
    Ok((StatusCode::CREATED, Json(variable(&body.key, &body.value, body.description.as_deref(), &Origin::Database))))
}

#[utoipa::path(
    patch,
    path = "/api/v2/variables/{key}",
    tag = "variables",
    params(
        ("key" = String, Path),
    ),
    request_body = Body,
    responses(
        (status = 200, body = VariableResponse),
        crate::models::Refused,
        crate::models::Missing,
        (status = 409, description = "defined by the cluster", body = crate::models::Problem),
        crate::models::Unfit,
    ),
    security(("bearer" = []), ("session" = []))
)]
pub(crate) async fn update(
    _: Op,
    State(state): State<AppState>,
    ApiPath(key): ApiPath<String>,
    JsonBody(body): JsonBody<Body>,
) -> Result<Json<VariableResponse>, ApiError> {
    if body.key != key {
        return Err(ApiError::BadRequest(format!("the body's key `{}` is not the path's `{key}`", body.key)));
    }
    managed_elsewhere(&state, &key)?;
    if description(&state, &key).await?.is_none() {
        return Err(ApiError::NotFound(format!("no variable `{key}`")));
    }
    state.db().set_variable(state.key(), &key, &body.value, body.description.as_deref()).await?;
    Ok(Json(variable(&key, &body.value, body.description.as_deref(), &Origin::Database)))
}

#[utoipa::path(
    delete,
    path = "/api/v2/variables/{key}",
    tag = "variables",
    params(
        ("key" = String, Path),
    ),
    responses(
        (status = 204),
        crate::models::Refused,
        crate::models::Missing,
        (status = 409, description = "defined by the cluster", body = crate::models::Problem),
    ),
    security(("bearer" = []), ("session" = []))
)]
pub(crate) async fn delete(
    _: Op,
    State(state): State<AppState>,
    ApiPath(key): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    if !state.db().delete_variable(&key).await? {
        managed_elsewhere(&state, &key)?;
        return Err(ApiError::NotFound(format!("no variable `{key}`")));
    }
    Ok(StatusCode::NO_CONTENT)
}
