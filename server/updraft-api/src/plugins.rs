//! `/api/updraft/plugins`: the operators of the deployment (built-in, and the plugin store in
//! the metadata database that every scheduler, API server and task pod reads) with their
//! parameter schemas; an admin uploads a `.wasm` component (validated exactly as the scheduler
//! loads it, 422 with the reason otherwise) into the store, or deletes one from it.
//!
//! The plugin host (wasmtime) stays out of this crate: the binary hands the API a
//! [`PluginStore`]. Without one, these routes answer 404.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use futures_util::future::BoxFuture;
use serde_json::Value;

use crate::AppState;
use crate::auth::{Admin, Allowed, Viewer};
use crate::error::ApiError;
use crate::extract::ApiPath;

/// Largest `.wasm` upload.
pub const PLUGIN_LIMIT: usize = 64 * 1024 * 1024;

/// Why a plugin operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The upload is not an operator the server would load.
    #[error("{0}")]
    Invalid(String),
    /// No such stored plugin (built-ins cannot be deleted).
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Failed(String),
}

impl From<PluginError> for ApiError {
    fn from(error: PluginError) -> Self {
        match error {
            PluginError::Invalid(m) => ApiError::Unprocessable(m),
            PluginError::NotFound(m) => ApiError::NotFound(m),
            PluginError::Failed(m) => ApiError::Internal(m),
        }
    }
}

/// The operator plugins of the server, as the binary provides them.
pub trait PluginStore: Send + Sync + std::fmt::Debug {
    /// `{"operators": [{name, version, summary, capabilities, params_schema, source, origin,
    /// sha256, installed_by, installed_at}], "invalid": [{path, reason}]}`.
    fn list(&self) -> BoxFuture<'_, Result<Value, PluginError>>;
    /// Validates a component and makes it the current version of its operator in the plugin
    /// store, recording `installed_by`; returns its entry.
    fn install<'a>(&'a self, bytes: Vec<u8>, installed_by: &'a str) -> BoxFuture<'a, Result<Value, PluginError>>;
    /// Removes operator `name` from the plugin store.
    fn delete<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), PluginError>>;
}

/// The routes of this resource, merged into the app.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/plugins", get(list).post(upload).layer(DefaultBodyLimit::max(PLUGIN_LIMIT)))
        .route("/plugins/{name}", delete(remove))
}

fn store(state: &AppState) -> Result<&Arc<dyn PluginStore>, ApiError> {
    state.plugins().ok_or_else(|| ApiError::NotFound("this server does not manage plugins".into()))
}

#[utoipa::path(
    get,
    path = "/api/updraft/plugins",
    tag = "updraft",
    responses(
        (status = 200, body = Object),
        crate::models::Refused,
        crate::models::Missing,
    ),
    security(("bearer" = []), ("session" = []))
)]
pub(crate) async fn list(_: Viewer, State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(store(&state)?.list().await?))
}

/// `POST /plugins` with the component's bytes as the body: 201 with the operator's entry.
#[utoipa::path(
    post,
    path = "/api/updraft/plugins",
    tag = "updraft",
    request_body(content = Vec<u8>, content_type = "application/wasm"),
    responses(
        (status = 201, body = Object),
        crate::models::Refused,
        crate::models::Missing,
        crate::models::Unfit,
    ),
    security(("bearer" = []), ("session" = []))
)]
pub(crate) async fn upload(
    Allowed(caller): Admin,
    State(state): State<AppState>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if body.is_empty() {
        return Err(ApiError::Unprocessable("the body must be a .wasm component".into()));
    }
    Ok((StatusCode::CREATED, Json(store(&state)?.install(body.to_vec(), &caller.username).await?)))
}

#[utoipa::path(
    delete,
    path = "/api/updraft/plugins/{name}",
    tag = "updraft",
    params(
        ("name" = String, Path),
    ),
    responses(
        (status = 204),
        crate::models::Refused,
        crate::models::Missing,
    ),
    security(("bearer" = []), ("session" = []))
)]
pub(crate) async fn remove(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    store(&state)?.delete(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}
