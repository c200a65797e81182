//! `/metrics`: request latencies by method, route template and status class, in the Prometheus
//! text format, without a token.

use axum::http::{Method, StatusCode};
use updraft_api::Role;

use crate::Api;

#[tokio::test]
async fn every_answered_request_is_timed_under_its_route_template() {
    let api = Api::new().await;
    assert_eq!(api.get("/api/v2/dags/orders").await.status, StatusCode::OK);
    assert_eq!(api.get("/api/v2/dags/reports").await.status, StatusCode::OK);
    assert_eq!(api.get("/api/v2/dags/nope").await.status, StatusCode::NOT_FOUND);
    let forbidden = api.call(Method::GET, "/api/v2/variables", Some(Role::Viewer), None).await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN);

    let scraped = api.call(Method::GET, "/metrics", None, None).await;
    assert_eq!(scraped.status, StatusCode::OK, "no token needed");
    assert!(scraped.headers["content-type"].to_str().is_ok_and(|t| t.starts_with("text/plain; version=0.0.4")));
    let text = &scraped.text;
    assert!(text.contains("# TYPE updraft_api_request_duration_seconds histogram"), "{text}");
    let count = |labels: &str| -> Option<f64> {
        let prefix = format!("updraft_api_request_duration_seconds_count{{{labels}}} ");
        text.lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|v| v.parse().ok())
    };
    // Two DAGs, one series: the route template, not the path, is the label.
    assert_eq!(count(r#"method="GET",route="/api/v2/dags/{dag_id}",status="2xx""#), Some(2.0), "{text}");
    assert_eq!(count(r#"method="GET",route="/api/v2/dags/{dag_id}",status="4xx""#), Some(1.0), "{text}");
    assert_eq!(count(r#"method="GET",route="/api/v2/variables",status="4xx""#), Some(1.0), "{text}");
    let inf = r#"updraft_api_request_duration_seconds_bucket{method="GET",route="/api/v2/dags/{dag_id}",status="2xx",le="+Inf"} 2"#;
    assert!(text.contains(inf), "{text}");
}
