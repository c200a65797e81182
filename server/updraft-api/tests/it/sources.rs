//! Endpoints that read the DAG's files with the DAG model: tasks, details, the graph JSON, and
//! the source editor's GET/PUT (validated, located errors, atomic replacement).

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use tower::ServiceExt;
use updraft_api::Role;
use updraft_db::dags::DagRecord;

use crate::Api;

const ONE_FILE: &str = "dag: files\ncatchup: true\ndefaults: {operator: noop}\ntasks:\n  - {id: a}\n  - {id: b, upstream: [a], retries: 2}\n";

async fn with_files() -> (Api, std::path::PathBuf, std::path::PathBuf) {
    let api = Api::new().await;
    let dags = api.dir.path().join("dags");
    std::fs::create_dir_all(dags.join("folder/tasks")).expect("mkdir");
    let one = dags.join("files.yaml");
    std::fs::write(&one, ONE_FILE).expect("write");
    let dag_yaml = dags.join("folder/dag.yaml");
    std::fs::write(&dag_yaml, "dag: folder\ndefaults: {operator: noop}\n").expect("write");
    std::fs::write(dags.join("folder/tasks/a.yaml"), "id: a\n").expect("write");
    let record = |id: &str, file: &std::path::Path| DagRecord {
        dag_id: id.into(),
        fileloc: file.display().to_string(),
        source_hash: "h".into(),
        description: None,
        schedule: None,
        timezone: "UTC".into(),
        tags: "[]".into(),
        owners: "[]".into(),
        max_active_runs: 16,
        max_active_tasks: 16,
        task_count: 2,
    };
    api.state.db().sync_dags(&[record("files", &one), record("folder", &dag_yaml)], &[], false).await.expect("sync");
    (api, one, dag_yaml)
}

fn hidden_files(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("dir")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.starts_with('.'))
        .collect()
}

#[tokio::test]
async fn tasks_details_and_graph_come_from_the_files() {
    let (api, _, _) = with_files().await;
    let tasks = api.get("/api/v2/dags/files/tasks").await;
    assert_eq!(tasks.status, StatusCode::OK, "{}", tasks.text);
    assert_eq!(tasks.body["total_entries"], 2);
    let a = &tasks.body["tasks"][0];
    for field in ["depends_on_past", "wait_for_downstream", "retry_exponential_backoff", "extra_links"] {
        assert!(!a[field].is_null(), "TaskResponse.{field}: {a}");
    }
    assert_eq!(a["downstream_task_ids"], serde_json::json!(["b"]));
    assert_eq!(api.get("/api/v2/dags/files/tasks/b").await.body["retries"], 2);
    api.get("/api/v2/dags/files/tasks/zz").await.assert_problem(StatusCode::NOT_FOUND);
    assert_eq!(api.get("/api/v2/dags/files/details").await.body["catchup"], true);
    let graph = api.get("/api/updraft/dags/files/graph").await;
    assert_eq!(graph.status, StatusCode::OK, "{}", graph.text);
    assert_eq!((graph.body["task_count"].as_u64(), graph.body["layer_count"].as_u64()), (Some(2), Some(2)));
    assert!(graph.body["latest_run"].is_null());
    api.get("/api/v2/dags/orders/tasks").await.assert_problem(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_graph_is_laid_out_once_per_dag_version() {
    let (api, one, _) = with_files().await;
    let graph = api.get("/api/updraft/dags/files/graph").await;
    assert_eq!(graph.status, StatusCode::OK, "{}", graph.text);
    let nodes = graph.body["nodes"].as_array().expect("nodes");
    let x = |i: usize| nodes[i]["x"].as_u64().expect("x");
    assert!(x(0) < x(1), "a → b, left to right: {}", graph.text);
    assert_eq!((graph.body["node_width"].as_u64(), graph.body["node_height"].as_u64()), (Some(160), Some(36)));
    assert!(graph.body["width"].as_u64() > Some(0) && graph.body["states"].is_object(), "{}", graph.text);

    // The files change but the stored version does not (the scheduler has not parsed them yet):
    // the drawing of the stored version is served from memory.
    let three = ONE_FILE.replace("  - {id: b", "  - {id: c, upstream: [b]}\n  - {id: b");
    std::fs::write(&one, &three).expect("write");
    assert_eq!(api.get("/api/updraft/dags/files/graph").await.text, graph.text);
    // A parse stores a new version: the graph follows the files.
    let record = DagRecord {
        dag_id: "files".into(),
        fileloc: one.display().to_string(),
        source_hash: "h2".into(),
        description: None,
        schedule: None,
        timezone: "UTC".into(),
        tags: "[]".into(),
        owners: "[]".into(),
        max_active_runs: 16,
        max_active_tasks: 16,
        task_count: 3,
    };
    api.state.db().sync_dags(&[record], &[], false).await.expect("sync");
    let graph = api.get("/api/updraft/dags/files/graph").await;
    assert_eq!((graph.body["task_count"].as_u64(), graph.body["layer_count"].as_u64()), (Some(3), Some(3)));
}

#[tokio::test]
async fn the_graph_goes_out_gzipped_to_clients_that_accept_it() {
    use std::io::Read;

    let (api, _, _) = with_files().await;
    let plain = api.get("/api/updraft/dags/files/graph").await;
    assert_eq!(plain.headers.get(header::CONTENT_ENCODING), None);
    let accepting = |encodings: &str| {
        Request::builder()
            .uri("/api/updraft/dags/files/graph")
            .header(header::AUTHORIZATION, format!("Bearer {}", api.token(Role::Viewer)))
            .header(header::ACCEPT_ENCODING, encodings)
            .body(Body::empty())
            .expect("request")
    };
    // Twice: the first lays out and compresses, the second reuses the compressed prefix.
    for _ in 0..2 {
        let response = api.app.clone().oneshot(accepting("br;q=1.0, gzip;q=0.8")).await.expect("infallible");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers().get(header::CONTENT_ENCODING).map(|v| v.as_bytes()), Some(&b"gzip"[..]));
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("body");
        let mut text = String::new();
        flate2::read::GzDecoder::new(&bytes[..]).read_to_string(&mut text).expect("a valid gzip body");
        assert_eq!(text, plain.text);
    }
    // `q=0` refuses it.
    let answer = api.send(accepting("gzip;q=0")).await;
    assert_eq!((answer.headers.get(header::CONTENT_ENCODING), answer.text), (None, plain.text));
}

#[tokio::test]
async fn put_source_validates_reports_located_errors_and_replaces_atomically() {
    let (api, one, dag_yaml) = with_files().await;
    let source = api.get("/api/updraft/dags/files/source").await;
    assert_eq!(source.body["content"], ONE_FILE);
    let airflow = api.get("/api/v2/dagSources/files").await;
    assert_eq!(
        (&airflow.body["content"], &airflow.body["dag_display_name"]),
        (&serde_json::json!(ONE_FILE), &serde_json::json!("files"))
    );
    let op = Some(Role::Op);
    let put = |content: &str| serde_json::json!({ "content": content }).to_string();

    let bad = api
        .call(
            Method::PUT,
            "/api/updraft/dags/files/source",
            op,
            Some(&put("dag: files\nshedule: null\ntasks:\n  - {id: a, operator: noop}\n")),
        )
        .await;
    bad.assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
    let error = &bad.body["errors"][0];
    assert_eq!(
        (error["file"].as_str(), error["line"].as_u64()),
        (Some(one.display().to_string().as_str()), Some(2)),
        "{}",
        bad.text
    );
    assert!(error["message"].as_str().is_some_and(|m| m.contains("shedule")), "{}", bad.text);
    let renamed = api
        .call(
            Method::PUT,
            "/api/updraft/dags/files/source",
            op,
            Some(&put(&ONE_FILE.replace("dag: files", "dag: other"))),
        )
        .await;
    renamed.assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(std::fs::read_to_string(&one).expect("read"), ONE_FILE, "nothing written");

    let user = api.call(Method::PUT, "/api/updraft/dags/files/source", Some(Role::User), Some(&put(ONE_FILE))).await;
    user.assert_problem(StatusCode::FORBIDDEN);
    let new = ONE_FILE.replace("retries: 2", "retries: 3");
    let ok = api.call(Method::PUT, "/api/updraft/dags/files/source", op, Some(&put(&new))).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    assert_eq!(std::fs::read_to_string(&one).expect("read"), new);
    assert_eq!(api.get("/api/v2/dags/files/tasks/b").await.body["retries"], 3);

    // A folder DAG is checked with its task files.
    let bad = api
        .call(
            Method::PUT,
            "/api/updraft/dags/folder/source",
            op,
            Some(&put("dag: folder\ndefaults: {operator: noop, retries: many}\n")),
        )
        .await;
    bad.assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.text.contains(&dag_yaml.display().to_string()), "located in the real file: {}", bad.text);
    let ok = api
        .call(
            Method::PUT,
            "/api/updraft/dags/folder/source",
            op,
            Some(&put("dag: folder\ndefaults: {operator: noop, retries: 1}\n")),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    for dir in [one.parent().expect("dir"), dag_yaml.parent().expect("dir")] {
        assert!(hidden_files(dir).is_empty(), "no scratch file left in {}: {:?}", dir.display(), hidden_files(dir));
    }
}
