//! `/monitor/health` and `/version`: the two endpoints that need no token.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use updraft_types::Timestamp;

use crate::AppState;
use crate::format::iso_opt;
use crate::models::{ComponentHealth, HealthInfo, VersionInfo};

/// A scheduler whose last heartbeat is older than this counts as unhealthy.
const HEARTBEAT_GRACE_US: i64 = 30_000_000;

/// The routes of this resource, merged into the app.
pub fn router() -> Router<AppState> {
    Router::new().route("/monitor/health", get(health)).route("/version", get(version))
}

/// Always 200 (as Airflow): the body says which part is unhealthy.
#[utoipa::path(
    get,
    path = "/api/v2/monitor/health",
    tag = "monitor",
    responses(
        (status = 200, description = "health of the metadata database and the schedulers", body = HealthInfo),
    )
)]
pub(crate) async fn health(State(state): State<AppState>) -> Json<HealthInfo> {
    let db_ok = state.db().ping().await.is_ok();
    let heartbeat = if db_ok { state.db().latest_scheduler_heartbeat().await.ok().flatten() } else { None };
    let scheduler = match heartbeat {
        Some(at) if Timestamp::now().as_micros() - at.as_micros() <= HEARTBEAT_GRACE_US => "healthy",
        _ => "unhealthy",
    };
    let part = |status: Option<&str>| ComponentHealth {
        status: status.map(str::to_owned),
        latest_scheduler_heartbeat: None,
        latest_triggerer_heartbeat: None,
        latest_dag_processor_heartbeat: None,
    };
    Json(HealthInfo {
        metadatabase: part(Some(if db_ok { "healthy" } else { "unhealthy" })),
        scheduler: ComponentHealth { latest_scheduler_heartbeat: Some(iso_opt(heartbeat)), ..part(Some(scheduler)) },
        triggerer: ComponentHealth { latest_triggerer_heartbeat: Some(None), ..part(None) },
        dag_processor: ComponentHealth { latest_dag_processor_heartbeat: Some(None), ..part(None) },
    })
}

#[utoipa::path(
    get,
    path = "/api/v2/version",
    tag = "monitor",
    responses(
        (status = 200, description = "the server version", body = VersionInfo),
    )
)]
pub(crate) async fn version() -> Json<VersionInfo> {
    Json(VersionInfo { version: env!("CARGO_PKG_VERSION").into(), git_version: None })
}
