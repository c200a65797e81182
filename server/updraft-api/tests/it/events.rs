//! The event stream: a viewer subscribes and sees a task instance and its run change state.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use futures_util::StreamExt;
use tower::ServiceExt;
use updraft_api::Role;

use crate::Api;

#[tokio::test]
async fn state_changes_arrive_as_server_sent_events() {
    let api = Api::new().await;
    let anonymous = api.send(Request::get("/api/updraft/events").body(Body::empty()).expect("request")).await;
    anonymous.assert_problem(StatusCode::UNAUTHORIZED);
    let request = Request::get("/api/updraft/events")
        .header("authorization", format!("Bearer {}", api.token(Role::Viewer)))
        .body(Body::empty())
        .expect("request");
    let response = api.app.clone().oneshot(request).await.expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers().get("content-type").and_then(|v| v.to_str().ok()), Some("text/event-stream"));
    let mut body = response.into_body().into_data_stream();

    // The stream says when the poller has taken its first look; then change states as a
    // scheduler would.
    let mut opening = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !opening.contains(": ready\n") {
        let chunk = tokio::time::timeout_at(deadline, body.next()).await.expect("ready within 10 s");
        opening.push_str(&String::from_utf8_lossy(&chunk.expect("stream open").expect("chunk")));
    }
    let db = api.state.db().clone();
    let run = db.claim_queued_runs("test-scheduler", 1).await.expect("claim").remove(0);
    let update = updraft_db::batch::TaskUpdate {
        try_number: Some(1),
        ..updraft_db::batch::TaskUpdate::new(run.id, "load", updraft_db::TaskState::Running)
    };
    let changes = updraft_db::batch::Changes { tasks: vec![update], ..Default::default() };
    db.apply(&changes).await.expect("running");

    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !(text.contains(r#""kind":"dag_run""#) && text.contains(r#""task_id":"load""#)) {
        let chunk = tokio::time::timeout_at(deadline, body.next()).await.expect("events within 10 s");
        text.push_str(&String::from_utf8_lossy(&chunk.expect("stream open").expect("chunk")));
    }
    assert!(text.contains("event: state"), "{text}");
    assert!(text.contains(r#""state":"running""#), "{text}");
    assert!(!text.contains(r#""task_id":"extract""#), "only changes are sent: {text}");
}
