//! `/connections`: create, read, update, delete, for `op` and `admin` only. Passwords and
//! extras are encrypted at rest and never returned: responses carry `password: null` and
//! `extra: null`. A PATCH that leaves `password` out keeps the stored one. Connections from the
//! cluster (`UPDRAFT_CONN_*`, the Secret directory) are listed and read with their `source`, and
//! changed only where they are defined (409 here).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::Value;
use updraft_db::secrets::Connection;
use updraft_secrets::Origin;

use crate::AppState;
use crate::auth::Op;
use crate::error::ApiError;
use crate::extract::{ApiPath, JsonBody, Params, paginate};
use crate::models::{ConnectionCollection, ConnectionResponse};

/// The routes of this resource, merged into the app.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/connections", get(list).post(create))
        .route("/connections/{connection_id}", get(one).patch(update).delete(delete))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = ConnectionBody)]
#[serde(deny_unknown_fields)]
pub(crate) struct Body {
    connection_id: String,
    conn_type: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    login: Option<String>,
    #[serde(default)]
    schema: Option<String>,
    #[serde(default)]
    port: Option<i32>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    extra: Option<String>,
}

fn connection(c: &Connection, origin: &Origin) -> ConnectionResponse {
    ConnectionResponse {
        source: Some(origin.kind().to_owned()),
        connection_id: c.conn_id.clone(),
        conn_type: c.conn_type.clone(),
        description: c.description.clone(),
        host: c.host.clone(),
        login: c.login.clone(),
        schema: c.schema.clone(),
        port: c.port,
        password: None,
        extra: None,
    }
}

fn check(body: &Body) -> Result<(), ApiError> {
    let id = &body.connection_id;
    if id.is_empty() || id.len() > 200 || !id.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)) {
        return Err(ApiError::Unprocessable(format!(
            "`connection_id` `{id}` is not allowed: use 1 to 200 letters, digits and _.-"
        )));
    }
    if let Some(extra) = &body.extra
        && serde_json::from_str::<serde_json::Map<String, Value>>(extra).is_err()
    {
        return Err(ApiError::Unprocessable("`extra` must be a JSON object, as text".into()));
    }
    Ok(())
}

#[utoipa::path(
    get,
    path = "/api/v2/connections",
    tag = "connections",
    params(
        ("limit" = Option<i64>, Query, description = "at most 100; default 50"),
        ("offset" = Option<i64>, Query),
    ),
    responses(
        (status = 200, description = "passwords and extras are never returned", body = ConnectionCollection),
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
) -> Result<Json<ConnectionCollection>, ApiError> {
    let page = params.page()?;
    let rows = state.secrets().connections().await?;
    let total = rows.len();
    let connections = paginate(rows, page).iter().map(|(c, origin)| connection(c, origin)).collect();
    Ok(Json(ConnectionCollection { connections, total_entries: total }))
}

async fn find(state: &AppState, id: &str) -> Result<(Connection, Origin), ApiError> {
    state.secrets().connection(id).await?.ok_or_else(|| ApiError::NotFound(format!("no connection `{id}`")))
}

/// 409 for a connection the cluster defines: the API changes only the database's.
fn managed_elsewhere(state: &AppState, id: &str) -> Result<(), ApiError> {
    match state.secrets().cluster_origin_of_connection(id) {
        Some(origin) => Err(ApiError::Conflict(format!(
            "connection `{id}` is defined by the {origin}, which wins over the database: change it there"
        ))),
        None => Ok(()),
    }
}

#[utoipa::path(
    get,
    path = "/api/v2/connections/{connection_id}",
    tag = "connections",
    params(
        ("connection_id" = String, Path),
    ),
    responses(
        (status = 200, body = ConnectionResponse),
        crate::models::Refused,
        crate::models::Missing,
        crate::models::Unfit,
    ),
    security(("bearer" = []), ("session" = []))
)]
pub(crate) async fn one(
    _: Op,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ConnectionResponse>, ApiError> {
    let (c, origin) = find(&state, &id).await?;
    Ok(Json(connection(&c, &origin)))
}

#[utoipa::path(
    post,
    path = "/api/v2/connections",
    tag = "connections",
    request_body = Body,
    responses(
        (status = 201, body = ConnectionResponse),
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
) -> Result<(StatusCode, Json<ConnectionResponse>), ApiError> {
    check(&body)?;
    managed_elsewhere(&state, &body.connection_id)?;
    let c = Connection {
        conn_id: body.connection_id,
        conn_type: body.conn_type,
        host: body.host,
        port: body.port,
        schema: body.schema,
        login: body.login,
        password: body.password,
        extra: body.extra,
        description: body.description,
    };
    state.db().add_connection(state.key(), &c).await?;
    Ok((StatusCode::CREATED, Json(connection(&c, &Origin::Database))))
}

#[utoipa::path(
    patch,
    path = "/api/v2/connections/{connection_id}",
    tag = "connections",
    params(
        ("connection_id" = String, Path),
    ),
    request_body = Body,
    responses(
        (status = 200, body = ConnectionResponse),
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
    ApiPath(id): ApiPath<String>,
    JsonBody(body): JsonBody<Body>,
) -> Result<Json<ConnectionResponse>, ApiError> {
    check(&body)?;
    if body.connection_id != id {
        return Err(ApiError::BadRequest(format!(
            "the body's connection_id `{}` is not the path's `{id}`",
            body.connection_id
        )));
    }
    managed_elsewhere(&state, &id)?;
    let (old, _) = find(&state, &id).await?;
    let c = Connection {
        conn_id: id,
        conn_type: body.conn_type,
        host: body.host,
        port: body.port,
        schema: body.schema,
        login: body.login,
        password: body.password.or(old.password),
        extra: body.extra.or(old.extra),
        description: body.description,
    };
    if !state.db().update_connection(state.key(), &c).await? {
        return Err(ApiError::NotFound(format!("no connection `{}`", c.conn_id)));
    }
    Ok(Json(connection(&c, &Origin::Database)))
}

#[utoipa::path(
    delete,
    path = "/api/v2/connections/{connection_id}",
    tag = "connections",
    params(
        ("connection_id" = String, Path),
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
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    if !state.db().delete_connection(&id).await? {
        managed_elsewhere(&state, &id)?;
        return Err(ApiError::NotFound(format!("no connection `{id}`")));
    }
    Ok(StatusCode::NO_CONTENT)
}
