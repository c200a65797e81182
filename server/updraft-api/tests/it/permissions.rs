//! The permission matrix: every route, as every role and without a token. Without a token:
//! 401; with a role below the route's: 403; with the route's role or above: anything but 401,
//! 403 or a 5xx.

use axum::http::{Method, StatusCode};
use updraft_api::Role;

use crate::Api;

/// (method, path, body, least role; `None`: no token needed).
fn routes() -> Vec<(Method, &'static str, Option<&'static str>, Option<Role>)> {
    use Method as M;
    use Role::*;
    let ti = "/api/v2/dags/orders/dagRuns/r1/taskInstances";
    vec![
        (M::GET, "/api/v2/monitor/health", None, None),
        (M::GET, "/api/v2/version", None, None),
        (M::GET, "/api/v2/dags", None, Some(Viewer)),
        (M::GET, "/api/v2/dags/orders", None, Some(Viewer)),
        (M::GET, "/api/v2/dags/orders/details", None, Some(Viewer)),
        (M::PATCH, "/api/v2/dags/orders", Some(r#"{"is_paused": false}"#), Some(User)),
        (M::GET, "/api/v2/dags/orders/dagRuns", None, Some(Viewer)),
        (M::POST, "/api/v2/dags/orders/dagRuns", Some(r#"{"logical_date": null}"#), Some(User)),
        (M::GET, "/api/v2/dags/orders/dagRuns/r1", None, Some(Viewer)),
        (M::PATCH, "/api/v2/dags/orders/dagRuns/r1", Some(r#"{"state": "failed"}"#), Some(User)),
        (M::POST, "/api/v2/dags/orders/dagRuns/r1/clear", Some(r#"{"dry_run": true}"#), Some(User)),
        (M::GET, ti, None, Some(Viewer)),
        (M::GET, "/api/v2/dags/orders/dagRuns/r1/taskInstances/load", None, Some(Viewer)),
        (
            M::PATCH,
            "/api/v2/dags/orders/dagRuns/r1/taskInstances/load",
            Some(r#"{"new_state": "success", "dry_run": true}"#),
            Some(User),
        ),
        (M::POST, "/api/v2/dags/orders/clearTaskInstances", Some(r#"{"dag_run_id": "r1"}"#), Some(User)),
        (M::GET, "/api/v2/dags/orders/dagRuns/r1/taskInstances/load/logs/1", None, Some(Viewer)),
        (M::GET, "/api/v2/dags/orders/dagRuns/r1/taskInstances/load/xcomEntries", None, Some(Viewer)),
        (M::GET, "/api/v2/dags/orders/dagRuns/r1/taskInstances/load/xcomEntries/k", None, Some(Viewer)),
        (M::GET, "/api/v2/importErrors", None, Some(Viewer)),
        (M::GET, "/api/v2/importErrors/1", None, Some(Viewer)),
        (M::GET, "/api/v2/pools", None, Some(Viewer)),
        (M::GET, "/api/v2/pools/default_pool", None, Some(Viewer)),
        (M::POST, "/api/v2/pools", Some(r#"{"name": "p", "slots": 2}"#), Some(Op)),
        (M::PATCH, "/api/v2/pools/p", Some(r#"{"slots": 3}"#), Some(Op)),
        (M::DELETE, "/api/v2/pools/p", None, Some(Op)),
        (M::GET, "/api/v2/variables", None, Some(Op)),
        (M::POST, "/api/v2/variables", Some(r#"{"key": "v", "value": "1"}"#), Some(Op)),
        (M::GET, "/api/v2/variables/v", None, Some(Op)),
        (M::PATCH, "/api/v2/variables/v", Some(r#"{"key": "v", "value": "2"}"#), Some(Op)),
        (M::DELETE, "/api/v2/variables/v", None, Some(Op)),
        (M::GET, "/api/v2/connections", None, Some(Op)),
        (M::POST, "/api/v2/connections", Some(r#"{"connection_id": "c", "conn_type": "postgres"}"#), Some(Op)),
        (M::GET, "/api/v2/connections/c", None, Some(Op)),
        (M::PATCH, "/api/v2/connections/c", Some(r#"{"connection_id": "c", "conn_type": "mysql"}"#), Some(Op)),
        (M::DELETE, "/api/v2/connections/c", None, Some(Op)),
        (M::GET, "/api/v2/dags/orders/tasks", None, Some(Viewer)),
        (M::GET, "/api/v2/dags/orders/tasks/load", None, Some(Viewer)),
        (M::GET, "/api/updraft/dags/orders/graph", None, Some(Viewer)),
        (M::GET, "/api/updraft/dags/orders/source", None, Some(Viewer)),
        (M::GET, "/api/v2/dagSources/orders", None, Some(Viewer)),
        (M::PUT, "/api/updraft/dags/orders/source", Some(r#"{"content": "dag: orders"}"#), Some(Op)),
        (M::GET, "/api/updraft/plugins", None, Some(Viewer)),
        (M::POST, "/api/updraft/plugins", Some("\0asm"), Some(Admin)),
        (M::DELETE, "/api/updraft/plugins/x", None, Some(Admin)),
        (M::DELETE, "/api/v2/dags/orders/dagRuns/r1", None, Some(User)),
        (M::GET, "/api/updraft/dags", None, Some(Viewer)),
        (M::POST, "/api/updraft/dags", Some(r#"{"content": "dag: x"}"#), Some(Op)),
        (M::GET, "/api/updraft/dags/orders/grid", None, Some(Viewer)),
        (M::GET, "/api/updraft/dags/orders/dagRuns/r1/taskInstances/load/logs/1/stream", None, Some(Viewer)),
    ]
}

#[tokio::test]
async fn every_route_answers_401_without_a_token_and_403_below_its_role() {
    for api in Api::both("matrix").await {
        matrix(api).await;
    }
}

async fn matrix(api: Api) {
    for (method, path, body, least) in routes() {
        let anonymous = api.call(method.clone(), path, None, body).await;
        match least {
            None => assert_eq!(anonymous.status, StatusCode::OK, "{method} {path} needs no token"),
            Some(_) => {
                anonymous.assert_problem(StatusCode::UNAUTHORIZED);
                assert_eq!(anonymous.body["detail"], "Not authenticated");
            }
        }
        for role in Role::ALL {
            let answer = api.call(method.clone(), path, Some(role), body).await;
            let allowed = least.is_none_or(|least| role >= least);
            if allowed {
                assert!(
                    !matches!(answer.status.as_u16(), 401 | 403 | 500..),
                    "{method} {path} as {role:?}: {} {}",
                    answer.status,
                    answer.text
                );
            } else {
                answer.assert_problem(StatusCode::FORBIDDEN);
            }
        }
    }
}

#[tokio::test]
async fn bad_expired_and_foreign_tokens_are_401() {
    let api = Api::new().await;
    let expired = updraft_api::Tokens::new(b"test secret", std::time::Duration::ZERO).issue("ann", Role::Admin);
    let foreign = updraft_api::Tokens::new(b"other", std::time::Duration::from_secs(60)).issue("ann", Role::Admin);
    for token in [expired.as_str(), foreign.as_str(), "garbage", ""] {
        let request = axum::http::Request::get("/api/v2/dags")
            .header("authorization", format!("Bearer {token}"))
            .body(axum::body::Body::empty())
            .expect("request");
        api.send(request).await.assert_problem(StatusCode::UNAUTHORIZED);
    }
}

/// Whether a concrete path fits an OpenAPI path template (`{name}` matches one segment).
fn fits(template: &str, path: &str) -> bool {
    let path = path.split('?').next().unwrap_or(path);
    let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len() && t.iter().zip(&p).all(|(t, p)| t.starts_with('{') || t == p)
}

#[tokio::test]
async fn the_openapi_document_describes_every_route() {
    let api = Api::new().await;
    let doc = api.call(Method::GET, "/api/v2/openapi.json", None, None).await;
    assert_eq!(doc.status, StatusCode::OK, "{}", doc.text);
    let paths = doc.body["paths"].as_object().expect("paths");
    let mut routes = routes();
    routes.push((Method::POST, "/auth/token", None, None));
    routes.push((Method::GET, "/api/updraft/events", None, Some(Role::Viewer)));
    routes.push((Method::GET, "/auth/session", None, None));
    for (method, path, _, least) in routes {
        let operation = paths
            .iter()
            .find(|(template, _)| fits(template, path))
            .and_then(|(_, item)| item.get(method.as_str().to_lowercase()))
            .unwrap_or_else(|| panic!("{method} {path} is not in the OpenAPI document"));
        assert_eq!(operation.get("security").is_some(), least.is_some(), "{method} {path}: security");
    }
    let schemas = &doc.body["components"]["schemas"];
    let dag_required = schemas["DagResponse"]["required"].as_array().expect("DagResponse is described");
    for field in ["dag_id", "is_paused", "tags", "owners", "file_token"] {
        assert!(dag_required.iter().any(|f| f == field), "DagResponse requires {field}");
    }
    assert!(schemas["TriggerDagRunPostBody"].is_object() && schemas["Problem"].is_object());
    assert!(doc.body["components"]["securitySchemes"]["bearer"].is_object());
}
