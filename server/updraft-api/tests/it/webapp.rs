//! What the web app needs beyond Airflow's API: the session after a reload, the DAG list with
//! latest runs, the grid, creating a DAG file, a try's log as a live stream, and the app itself
//! served for every client-side route.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use updraft_api::Role;
use updraft_db::dags::DagRecord;

use crate::Api;

const NEW_DAG: &str = "dag: fresh\ndefaults: {operator: noop}\ntasks:\n  - {id: a}\n  - {id: b, upstream: [a]}\n";

#[tokio::test]
async fn the_session_endpoint_answers_who_the_cookie_signs_in_with_its_csrf_token() {
    let api = Api::new().await;
    let hash = updraft_api::hash_password("s3cret-pass").expect("hash");
    api.state.db().create_user("web", &hash, "op").await.expect("user");
    let none = api.send(Request::get("/auth/session").body(Body::empty()).expect("request")).await;
    none.assert_problem(StatusCode::UNAUTHORIZED);
    let login = Request::post("/auth/login")
        .header("content-type", "application/json")
        .body(Body::from(r#"{"username": "web", "password": "s3cret-pass"}"#))
        .expect("request");
    let answer = api.send(login).await;
    let cookie = answer.headers.get("set-cookie").and_then(|v| v.to_str().ok()).expect("cookie").to_owned();
    let pair = cookie.split(';').next().expect("pair").to_owned();
    let session =
        api.send(Request::get("/auth/session").header("cookie", &pair).body(Body::empty()).expect("request")).await;
    assert_eq!(session.status, StatusCode::OK, "{}", session.text);
    assert_eq!(session.body["username"], "web");
    assert_eq!(session.body["role"], "op");
    assert_eq!(session.body["csrf_token"], answer.body["csrf_token"]);
    // A bearer token is not a session.
    let bearer = api.call(Method::GET, "/auth/session", Some(Role::Admin), None).await;
    bearer.assert_problem(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_dag_list_carries_each_dags_latest_run_on_both_databases() {
    for api in Api::both("overview").await {
        let list = api.get("/api/updraft/dags").await;
        assert_eq!(list.status, StatusCode::OK, "{}", list.text);
        assert_eq!(list.body["total_entries"], 2);
        let orders =
            list.body["dags"].as_array().expect("dags").iter().find(|d| d["dag_id"] == "orders").expect("orders");
        assert_eq!(orders["last_run"]["dag_run_id"], "r1");
        assert_eq!(orders["tags"], serde_json::json!(["finance"]));
        let reports =
            list.body["dags"].as_array().expect("dags").iter().find(|d| d["dag_id"] == "reports").expect("reports");
        assert!(reports["last_run"].is_null());
        // A newer run becomes the latest.
        let trigger = api
            .call(Method::POST, "/api/v2/dags/orders/dagRuns", Some(Role::User), Some(r#"{"dag_run_id": "r2"}"#))
            .await;
        assert_eq!(trigger.status, StatusCode::OK, "{}", trigger.text);
        let list = api.get("/api/updraft/dags").await;
        let orders =
            list.body["dags"].as_array().expect("dags").iter().find(|d| d["dag_id"] == "orders").expect("orders");
        assert_eq!(orders["last_run"]["dag_run_id"], "r2");
        assert_eq!(orders["last_run"]["state"], "queued");
    }
}

async fn with_dag_file(api: &Api) -> std::path::PathBuf {
    let file = api.dir.path().join("dags/files.yaml");
    std::fs::write(&file, "dag: files\ndefaults: {operator: noop}\ntasks:\n  - {id: b, upstream: [a]}\n  - {id: a}\n")
        .expect("write");
    let record = DagRecord {
        dag_id: "files".into(),
        fileloc: file.display().to_string(),
        source_hash: "h".into(),
        description: None,
        schedule: Some("0 3 * * *".into()),
        timezone: "UTC".into(),
        tags: "[]".into(),
        owners: "[]".into(),
        max_active_runs: 16,
        max_active_tasks: 16,
        task_count: 2,
    };
    api.state.db().sync_dags(&[record], &[], false).await.expect("sync");
    file
}

#[tokio::test]
async fn the_grid_is_runs_by_tasks_in_layer_order() {
    let api = Api::new().await;
    with_dag_file(&api).await;
    let empty = api.get("/api/updraft/dags/files/grid").await;
    assert_eq!(empty.status, StatusCode::OK, "{}", empty.text);
    assert_eq!(empty.body["tasks"], serde_json::json!(["a", "b"]), "upstream first");
    assert_eq!(empty.body["runs"], serde_json::json!([]));
    for run in ["g1", "g2"] {
        let body = format!(r#"{{"dag_run_id": "{run}"}}"#);
        let answer = api.call(Method::POST, "/api/v2/dags/files/dagRuns", Some(Role::User), Some(&body)).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    }
    let grid = api.get("/api/updraft/dags/files/grid?limit=5").await;
    let runs: Vec<&str> =
        grid.body["runs"].as_array().expect("runs").iter().filter_map(|r| r["dag_run_id"].as_str()).collect();
    assert_eq!(runs.len(), 2);
    assert_eq!(grid.body["states"].as_array().expect("states").len(), 2);
    assert_eq!(grid.body["states"][0].as_array().expect("column").len(), 2);
    let list = api.get("/api/updraft/dags").await;
    let files = list.body["dags"].as_array().expect("dags").iter().find(|d| d["dag_id"] == "files").expect("files");
    assert!(files["next_run"].as_str().is_some_and(|t| t.contains("T03:00:00")), "{files}");
    api.get("/api/updraft/dags/files/grid?limit=0").await.assert_problem(StatusCode::BAD_REQUEST);
    api.get("/api/updraft/dags/nope/grid").await.assert_problem(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_new_dag_is_validated_then_written_once_and_never_over_another() {
    let api = Api::new().await;
    let dags = api.dir.path().join("dags");
    let body = |content: &str| serde_json::json!({ "content": content }).to_string();
    // A cycle: 422 with the located error, and nothing written.
    let cyclic =
        "dag: loop\ndefaults: {operator: noop}\ntasks:\n  - {id: a, upstream: [b]}\n  - {id: b, upstream: [a]}\n";
    let refused = api.call(Method::POST, "/api/updraft/dags", Some(Role::Op), Some(&body(cyclic))).await;
    refused.assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
    let errors = refused.body["errors"].as_array().expect("errors");
    assert!(
        errors
            .iter()
            .any(|e| e["message"].as_str().is_some_and(|m| m.contains("cycle")) && e["line"].as_u64().is_some()),
        "{errors:?}"
    );
    assert_eq!(std::fs::read_dir(&dags).expect("dir").count(), 0, "nothing written, no scratch file left");
    // Valid: 201 and the file.
    let created = api.call(Method::POST, "/api/updraft/dags", Some(Role::Op), Some(&body(NEW_DAG))).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.body["dag_id"], "fresh");
    assert_eq!(std::fs::read_to_string(dags.join("fresh.yaml")).expect("written"), NEW_DAG);
    // The same id again: 409, and the first file is untouched.
    let again = NEW_DAG.replace("{id: b, upstream: [a]}", "{id: c, upstream: [a]}");
    api.call(Method::POST, "/api/updraft/dags", Some(Role::Op), Some(&body(&again)))
        .await
        .assert_problem(StatusCode::CONFLICT);
    assert_eq!(std::fs::read_to_string(dags.join("fresh.yaml")).expect("kept"), NEW_DAG);
    // An id a DAG of the database already has: 409.
    let orders = NEW_DAG.replace("dag: fresh", "dag: orders");
    api.call(Method::POST, "/api/updraft/dags", Some(Role::Op), Some(&body(&orders)))
        .await
        .assert_problem(StatusCode::CONFLICT);
    // Not YAML, and unknown fields: 422/400, never a 500.
    api.call(Method::POST, "/api/updraft/dags", Some(Role::Op), Some(&body("dag: [unclosed")))
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
    let unknown = api
        .call(Method::POST, "/api/updraft/dags", Some(Role::Op), Some(r#"{"content": "x", "path": "/etc/passwd"}"#))
        .await;
    assert!(unknown.status.is_client_error(), "{}", unknown.text);
    let names: Vec<String> = std::fs::read_dir(&dags)
        .expect("dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["fresh.yaml"]);
}

#[tokio::test]
async fn a_running_tries_log_streams_its_lines_as_they_come_then_ends() {
    use futures_util::StreamExt;
    use tower::ServiceExt;
    let api = Api::new().await;
    let db = api.state.db().clone();
    let run = db.get_run("orders", "r1").await.expect("db").expect("run");
    let set = |state| updraft_db::batch::Changes {
        tasks: vec![updraft_db::batch::TaskUpdate {
            try_number: Some(1),
            ..updraft_db::batch::TaskUpdate::new(run.id, "load", state)
        }],
        ..Default::default()
    };
    db.apply(&set(updraft_db::TaskState::Running)).await.expect("running");
    let log = api.dir.path().join("logs/dag_id=orders/run_id=r1/task_id=load/attempt=1.log");
    std::fs::create_dir_all(log.parent().expect("parent")).expect("mkdir");
    std::fs::write(&log, "first line\nsecond line\n").expect("write");
    let url = "/api/updraft/dags/orders/dagRuns/r1/taskInstances/load/logs/1/stream";
    let request = Request::get(url)
        .header("authorization", format!("Bearer {}", api.token(Role::Viewer)))
        .body(Body::empty())
        .expect("request");
    let response = api.app.clone().oneshot(request).await.expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers().get("content-type").and_then(|v| v.to_str().ok()), Some("text/event-stream"));
    let mut body = response.into_body().into_data_stream();
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut read_until = async |needle: &str, text: &mut String| {
        while !text.contains(needle) {
            let chunk = tokio::time::timeout_at(deadline, body.next()).await.expect("events within 10 s");
            text.push_str(&String::from_utf8_lossy(&chunk.expect("stream open").expect("chunk")));
        }
    };
    read_until("second line", &mut text).await;
    assert!(text.contains("event: lines\ndata: first line\ndata: second line\n"), "{text}");
    assert!(!text.contains("event: end"), "a running try's stream stays open: {text}");
    // The try writes a line (the unfinished one waits for its newline), then ends.
    std::fs::write(&log, "first line\nsecond line\nthird line\npart").expect("write");
    read_until("third line", &mut text).await;
    assert!(!text.contains("part"), "{text}");
    std::fs::write(&log, "first line\nsecond line\nthird line\npartial end\n").expect("write");
    db.apply(&set(updraft_db::TaskState::Success)).await.expect("success");
    read_until("event: end", &mut text).await;
    assert!(text.contains("data: partial end"), "{text}");
    api.get("/api/updraft/dags/orders/dagRuns/r1/taskInstances/load/logs/9/stream")
        .await
        .assert_problem(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_app_is_served_for_client_routes_and_the_api_keeps_its_json_errors() {
    let api = Api::new().await;
    let get = |path: &str, gzip: bool| {
        let mut request = Request::get(path);
        if gzip {
            request = request.header("accept-encoding", "gzip, deflate, br");
        }
        request.body(Body::empty()).expect("request")
    };
    for path in ["/", "/dags", "/dags/orders/runs/r1/tasks/load", "/editor"] {
        let page = api.send(get(path, false)).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert!(
            page.text.contains("<!doctype html>") && page.text.contains("/assets/updraft-"),
            "{path}: {}",
            page.text
        );
        assert_eq!(page.headers["cache-control"], "no-cache");
    }
    let index = api.send(get("/dags", false)).await;
    let js = index.text.split("/assets/").nth(1).and_then(|rest| rest.split('"').next()).expect("an asset").to_owned();
    let plain = api.send(get(&format!("/assets/{js}"), false)).await;
    assert_eq!(plain.status, StatusCode::OK);
    assert!(plain.headers.get("content-encoding").is_none());
    let gzipped = api.send(get(&format!("/assets/{js}"), true)).await;
    assert_eq!(gzipped.headers["content-encoding"], "gzip");
    assert!(gzipped.headers["cache-control"].to_str().is_ok_and(|c| c.contains("immutable")));
    let wasm = updraft_web_assets::FILES.iter().find(|a| a.path.ends_with(".wasm")).expect("the wasm");
    let wasm_answer = api.send(get(wasm.path, false)).await;
    assert_eq!(wasm_answer.headers["content-type"], "application/wasm");
    api.send(get("/assets/updraft-nope.js", true)).await.assert_problem(StatusCode::NOT_FOUND);
    api.send(get("/api/v2/nope", false)).await.assert_problem(StatusCode::NOT_FOUND);
    api.send(get("/auth/nope", false)).await.assert_problem(StatusCode::NOT_FOUND);
    let post = api.send(Request::post("/dags").body(Body::empty()).expect("request")).await;
    post.assert_problem(StatusCode::METHOD_NOT_ALLOWED);
}
