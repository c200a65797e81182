//! The OpenAPI document, generated at compile time (utoipa) from the handlers' `#[utoipa::path]`
//! attributes and the typed bodies of `models` and the request structs: served at
//! `/api/v2/openapi.json` without a token, never written by hand.

use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Updraft API",
        description = "Apache Airflow's stable REST API v2 (the part Updraft shares with Airflow) and Updraft's own endpoints under /api/updraft."
    ),
    paths(
        crate::auth::token, crate::auth::login, crate::auth::logout, crate::auth::session,
        crate::monitor::health, crate::monitor::version,
        crate::dags::list, crate::dags::one, crate::dags::details, crate::dags::patch,
        crate::dag_runs::list, crate::dag_runs::trigger, crate::dag_runs::one, crate::dag_runs::patch,
        crate::dag_runs::delete, crate::dag_runs::clear,
        crate::task_instances::list, crate::task_instances::one, crate::task_instances::patch,
        crate::task_instances::clear, crate::logs::log, crate::xcom::list, crate::xcom::one,
        crate::tasks::list, crate::tasks::one,
        crate::variables::list, crate::variables::one, crate::variables::create, crate::variables::update,
        crate::variables::delete,
        crate::connections::list, crate::connections::one, crate::connections::create,
        crate::connections::update, crate::connections::delete,
        crate::pools::list, crate::pools::one, crate::pools::create, crate::pools::update, crate::pools::delete,
        crate::import_errors::list, crate::import_errors::one,
        crate::sources::read, crate::sources::dag_source, crate::sources::write, crate::graph::graph, crate::events::events,
        crate::plugins::list, crate::plugins::upload, crate::plugins::remove,
        crate::overview::list, crate::overview::grid, crate::overview::create, crate::logs::stream,
    ),
    modifiers(&Security)
)]
struct ApiDoc;

/// The two ways to authenticate: a bearer token, or the web app's session cookie.
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(crate::auth::SESSION_COOKIE))),
        );
    }
}

/// The document.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The routes of this resource, merged into the app.
pub fn router() -> Router<AppState> {
    Router::new().route("/openapi.json", get(|| async { Json(document()) }))
}
