//! What each resource answers, field by field where Airflow's client is strict: tokens, DAGs,
//! runs, task instances, logs with continuation, variables, connections, pools, import errors;
//! each on SQLite and on PostgreSQL.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use updraft_api::Role;

use crate::Api;

#[tokio::test]
async fn token_endpoint_takes_json_or_a_form_and_refuses_bad_passwords() {
    for api in Api::both("token_endpoint_takes").await {
        token_endpoint_takes_json_or_a_form_and_refuses_bad_passwords_on(api).await;
    }
}

async fn token_endpoint_takes_json_or_a_form_and_refuses_bad_passwords_on(api: Api) {
    let hash = updraft_api::hash_password("s3cret").expect("hash");
    api.state.db().create_user("ann", &hash, "op").await.expect("user");
    let json = Request::post("/auth/token")
        .header("content-type", "application/json")
        .body(Body::from(r#"{"username": "ann", "password": "s3cret"}"#))
        .expect("request");
    let answer = api.send(json).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
    let token = answer.body["access_token"].as_str().expect("token");
    let claims = api.state.tokens().verify(token).expect("valid");
    assert_eq!((claims.sub.as_str(), claims.role), ("ann", Role::Op));
    let form = Request::post("/auth/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from("username=ann&password=s3cret"))
        .expect("request");
    assert_eq!(api.send(form).await.status, StatusCode::CREATED);
    for body in [r#"{"username": "ann", "password": "wrong"}"#, r#"{"username": "bob", "password": "s3cret"}"#] {
        let request = Request::post("/auth/token")
            .header("content-type", "application/json")
            .body(Body::from(body))
            .expect("request");
        let answer = api.send(request).await;
        answer.assert_problem(StatusCode::UNAUTHORIZED);
        assert_eq!(answer.body["detail"], "Invalid credentials");
    }
}

#[tokio::test]
async fn dags_filter_order_and_pause() {
    for api in Api::both("dags_filter_order_an").await {
        dags_filter_order_and_pause_on(api).await;
    }
}

async fn dags_filter_order_and_pause_on(api: Api) {
    let all = api.get("/api/v2/dags").await;
    assert_eq!(all.status, StatusCode::OK);
    assert_eq!(all.body["total_entries"], 2);
    let dag = &all.body["dags"][0];
    for field in [
        "dag_id",
        "dag_display_name",
        "is_paused",
        "is_stale",
        "has_import_errors",
        "has_task_concurrency_limits",
        "is_backfillable",
        "max_active_tasks",
        "max_consecutive_failed_dag_runs",
        "fileloc",
        "file_token",
        "owners",
        "tags",
        "timetable_partitioned",
        "timetable_periodic",
    ] {
        assert!(!dag[field].is_null(), "DAGResponse.{field} is required: {dag}");
    }
    assert_eq!(
        dag["tags"][0],
        serde_json::json!({"name": "finance", "dag_id": "orders", "dag_display_name": "orders"})
    );
    let ids = |answer: &crate::Answer| -> Vec<String> {
        answer.body["dags"]
            .as_array()
            .expect("dags")
            .iter()
            .map(|d| d["dag_id"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    assert_eq!(ids(&api.get("/api/v2/dags?order_by=-dag_id&limit=1").await), ["reports"]);
    assert_eq!(ids(&api.get("/api/v2/dags?offset=1").await), ["reports"]);
    assert_eq!(ids(&api.get("/api/v2/dags?tags=bi").await), ["reports"]);
    assert_eq!(ids(&api.get("/api/v2/dags?tags=bi&tags=finance&tags_match_mode=all").await), ["reports"]);
    assert_eq!(ids(&api.get("/api/v2/dags?dag_id_pattern=ord").await), ["orders"]);
    let patched = api
        .call(
            Method::PATCH,
            "/api/v2/dags/orders?update_mask=is_paused",
            Some(Role::User),
            Some(r#"{"is_paused": true}"#),
        )
        .await;
    assert_eq!((patched.status, &patched.body["is_paused"]), (StatusCode::OK, &serde_json::json!(true)));
    assert_eq!(ids(&api.get("/api/v2/dags?paused=true").await), ["orders"]);
    let details = api.get("/api/v2/dags/orders/details").await;
    for field in ["catchup", "concurrency", "render_template_as_native_obj"] {
        assert!(!details.body[field].is_null(), "DAGDetailsResponse.{field}: {}", details.text);
    }
}

#[tokio::test]
async fn trigger_list_get_patch_clear_and_delete_runs() {
    for api in Api::both("trigger_list_get_pat").await {
        trigger_list_get_patch_clear_and_delete_runs_on(api).await;
    }
}

async fn trigger_list_get_patch_clear_and_delete_runs_on(api: Api) {
    let user = Some(Role::User);
    let body = r#"{"logical_date": null, "conf": {"region": "eu"}, "note": "from a test"}"#;
    let run = api.call(Method::POST, "/api/v2/dags/orders/dagRuns", user, Some(body)).await;
    assert_eq!(run.status, StatusCode::OK, "{}", run.text);
    let b = &run.body;
    assert_eq!(
        (b["state"].as_str(), b["run_type"].as_str(), b["triggered_by"].as_str()),
        (Some("queued"), Some("manual"), Some("rest_api"))
    );
    assert_eq!(b["conf"], serde_json::json!({"region": "eu"}));
    assert_eq!(b["triggering_user_name"], "user-user");
    assert!(b["dag_run_id"].as_str().is_some_and(|id| id.starts_with("manual__")));
    assert!(b["run_after"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert_eq!(b["dag_versions"][0]["version_number"], 1);
    assert_eq!(b["dag_versions"][0]["id"].as_str().map(str::len), Some(36));
    let with_date = api
        .call(
            Method::POST,
            "/api/v2/dags/orders/dagRuns",
            user,
            Some(r#"{"dag_run_id": "d1", "logical_date": "2026-01-31T03:00:00Z"}"#),
        )
        .await;
    assert_eq!(with_date.body["logical_date"], "2026-01-31T03:00:00.000000Z", "{}", with_date.text);
    assert_eq!(with_date.body["data_interval_start"], "2026-01-31T03:00:00.000000Z");
    let runs = api.get("/api/v2/dags/orders/dagRuns?limit=2").await;
    assert_eq!(runs.body["total_entries"], 3, "{}", runs.text);
    assert_eq!(runs.body["dag_runs"].as_array().map(Vec::len), Some(2));
    assert_eq!(api.get("/api/v2/dags/orders/dagRuns/d1").await.body["dag_run_id"], "d1");
    let ids = |answer: &crate::Answer| -> Vec<String> {
        answer.body["dag_runs"]
            .as_array()
            .expect("runs")
            .iter()
            .map(|r| r["dag_run_id"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    assert_eq!(
        ids(&api.get("/api/v2/dags/orders/dagRuns?limit=1").await),
        ["r1"],
        "oldest first by default, as Airflow"
    );
    assert_eq!(ids(&api.get("/api/v2/dags/orders/dagRuns?order_by=-run_after&limit=1").await).len(), 1);
    let newest = api.get("/api/v2/dags/orders/dagRuns?order_by=-id").await;
    assert_eq!(ids(&newest).first().map(String::as_str), Some("d1"), "{}", newest.text);
    assert_eq!(api.get("/api/v2/dags/~/dagRuns").await.body["total_entries"], 3);
    assert_eq!(api.get("/api/v2/dags/orders/dagRuns?state=running").await.body["total_entries"], 0);
    assert_eq!(api.get("/api/v2/dags/orders/dagRuns?state=queued&state=failed").await.body["total_entries"], 3);
    api.get("/api/v2/dags/orders/dagRuns?state=bogus").await.assert_problem(StatusCode::BAD_REQUEST);
    api.get("/api/v2/dags/orders/dagRuns?order_by=conf").await.assert_problem(StatusCode::BAD_REQUEST);

    // State changes are requests for the scheduler, never direct writes.
    let db = api.state.db().clone();
    let r1 = db.get_run("orders", "r1").await.expect("db").expect("r1");
    let patched =
        api.call(Method::PATCH, "/api/v2/dags/orders/dagRuns/r1", user, Some(r#"{"state": "success"}"#)).await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    let note = Some(r#"{"note": "checked by hand"}"#);
    let noted = api.call(Method::PATCH, "/api/v2/dags/orders/dagRuns/r1", user, note).await;
    assert_eq!(noted.body["note"], "checked by hand", "{}", noted.text);
    let cleared =
        api.call(Method::POST, "/api/v2/dags/orders/dagRuns/r1/clear", user, Some(r#"{"dry_run": false}"#)).await;
    assert_eq!(cleared.status, StatusCode::OK, "{}", cleared.text);
    let dry = api.call(Method::POST, "/api/v2/dags/orders/dagRuns/r1/clear", user, Some("{}")).await;
    assert_eq!(dry.body["total_entries"], 2, "a dry run lists what it would clear: {}", dry.text);
    let marked = api
        .call(
            Method::PATCH,
            "/api/v2/dags/orders/dagRuns/r1/taskInstances/load",
            user,
            Some(r#"{"new_state": "failed", "include_downstream": true}"#),
        )
        .await;
    assert_eq!(marked.status, StatusCode::OK, "{}", marked.text);
    let cleared_tis = api
        .call(
            Method::POST,
            "/api/v2/dags/orders/clearTaskInstances",
            user,
            Some(r#"{"dag_run_id": "r1", "task_ids": ["extract"], "only_failed": false, "dry_run": false}"#),
        )
        .await;
    assert_eq!(cleared_tis.body["total_entries"], 1, "{}", cleared_tis.text);
    let actions: Vec<_> = db
        .run_requests(r1.id)
        .await
        .expect("requests")
        .iter()
        .map(|r| (r.action.as_str(), r.task_ids.clone()))
        .collect();
    assert_eq!(
        actions,
        [
            ("mark_run_success", vec![]),
            ("clear", vec![]),
            ("mark_failed", vec!["load".to_owned()]),
            ("clear", vec!["extract".to_owned()])
        ]
    );
    let tis = db.task_instances(r1.id).await.expect("tis");
    assert!(tis.iter().all(|t| t.state == updraft_db::TaskState::NoStatus), "the API changed no task state itself");

    // A run no scheduler owns can be deleted; one in progress cannot.
    claim_and_finish_r1(&db).await;
    let busy = api.call(Method::DELETE, "/api/v2/dags/orders/dagRuns/d1", user, None).await;
    busy.assert_problem(StatusCode::CONFLICT);
    let deleted = api.call(Method::DELETE, "/api/v2/dags/orders/dagRuns/r1", user, None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text);
    api.get("/api/v2/dags/orders/dagRuns/r1").await.assert_problem(StatusCode::NOT_FOUND);
}

/// Claims every queued run as a scheduler would, then finishes r1: d1 stays owned and running.
async fn claim_and_finish_r1(db: &updraft_db::Db) {
    let claimed = db.claim_queued_runs("test-scheduler", 10).await.expect("claim");
    assert!(claimed.iter().any(|r| r.run_id == "d1"));
    let r1 = claimed.iter().find(|r| r.run_id == "r1").expect("r1 claimed");
    let finish = updraft_db::runs::RunStateChange {
        run_pk: r1.id,
        state: updraft_db::RunState::Success,
        end_date: Some(updraft_db::Timestamp::now()),
    };
    db.set_run_states(&[finish]).await.expect("finish r1");
}

#[tokio::test]
async fn clear_and_mark_requests_carry_the_options_asked_for() {
    let api = Api::new().await;
    let user = Some(Role::User);
    let calls = [
        (Method::PATCH, "/api/v2/dags/orders/dagRuns/r1", r#"{"state": "failed"}"#),
        (Method::POST, "/api/v2/dags/orders/dagRuns/r1/clear", r#"{"dry_run": false, "only_failed": true}"#),
        (
            Method::PATCH,
            "/api/v2/dags/orders/dagRuns/r1/taskInstances/load",
            r#"{"new_state": "skipped", "include_upstream": true}"#,
        ),
        (
            Method::PATCH,
            "/api/v2/dags/orders/dagRuns/r1/taskInstances/extract",
            r#"{"new_state": "success", "include_downstream": true}"#,
        ),
        (
            Method::POST,
            "/api/v2/dags/orders/clearTaskInstances",
            r#"{"dag_run_id": "r1", "task_ids": ["load"], "include_downstream": true, "dry_run": false}"#,
        ),
    ];
    for (method, path, body) in calls {
        let answer = api.call(method, path, user, Some(body)).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.text);
    }
    let r1 = api.state.db().get_run("orders", "r1").await.expect("db").expect("r1");
    let requests: Vec<_> = api
        .state
        .db()
        .run_requests(r1.id)
        .await
        .expect("requests")
        .iter()
        .map(|r| (r.action.as_str(), r.task_ids.clone(), r.downstream, r.upstream, r.only_failed))
        .collect();
    let load = || vec!["load".to_owned()];
    assert_eq!(
        requests,
        [
            ("mark_run_failed", vec![], false, false, false),
            ("clear", vec![], false, false, true),
            ("mark_skipped", load(), false, true, false),
            ("mark_success", vec!["extract".to_owned()], true, false, false),
            ("clear", load(), true, false, true),
        ]
    );
}

#[tokio::test]
async fn task_instances_and_logs_with_continuation() {
    for api in Api::both("task_instances_and_l").await {
        task_instances_and_logs_with_continuation_on(api).await;
    }
}

async fn task_instances_and_logs_with_continuation_on(api: Api) {
    let tis = api.get("/api/v2/dags/orders/dagRuns/r1/taskInstances").await;
    assert_eq!(tis.status, StatusCode::OK, "{}", tis.text);
    let ti = &tis.body["task_instances"][0];
    for field in [
        "id",
        "task_id",
        "task_display_name",
        "dag_id",
        "dag_display_name",
        "dag_run_id",
        "map_index",
        "try_number",
        "max_tries",
        "pool",
        "pool_slots",
        "executor_config",
        "run_after",
    ] {
        assert!(!ti[field].is_null(), "TaskInstanceResponse.{field} is required: {ti}");
    }
    assert!(ti["state"].is_null(), "Updraft's `none` is Airflow's null");
    assert_eq!(ti["executor_config"], "{}");
    assert_eq!(api.get("/api/v2/dags/orders/dagRuns/r1/taskInstances?task_id=load").await.body["total_entries"], 1);

    // A try that is running: its log grows; the token continues where the last call ended.
    let db = api.state.db().clone();
    let run = db.get_run("orders", "r1").await.expect("db").expect("run");
    let update = updraft_db::batch::TaskUpdate {
        try_number: Some(1),
        ..updraft_db::batch::TaskUpdate::new(run.id, "load", updraft_db::TaskState::Running)
    };
    let changes = updraft_db::batch::Changes { tasks: vec![update], ..Default::default() };
    db.apply(&changes).await.expect("running");
    let log = api.dir.path().join("logs/dag_id=orders/run_id=r1/task_id=load/attempt=1.log");
    std::fs::create_dir_all(log.parent().expect("parent")).expect("mkdir");
    std::fs::write(&log, "first\nsecond\npart").expect("write");
    let url = "/api/v2/dags/orders/dagRuns/r1/taskInstances/load/logs/1";
    let first = api.get(url).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    assert_eq!(first.body["content"], serde_json::json!([{"event": "first"}, {"event": "second"}]));
    let token = first.body["continuation_token"].as_str().expect("token").to_owned();
    std::fs::write(&log, "first\nsecond\npartial line\nthird\n").expect("write");
    let next = api.get(&format!("{url}?token={token}")).await;
    assert_eq!(
        next.body["content"],
        serde_json::json!([{"event": "partial line"}, {"event": "third"}]),
        "{}",
        next.text
    );
    let full = api.get(&format!("{url}?full_content=true")).await;
    assert_eq!(full.body["content"].as_array().map(Vec::len), Some(4));
    api.get("/api/v2/dags/orders/dagRuns/r1/taskInstances/load/logs/2").await.assert_problem(StatusCode::NOT_FOUND);
    api.get(&format!("{url}?token=bad")).await.assert_problem(StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn variables_connections_and_pools() {
    for api in Api::both("variables_connection").await {
        variables_connections_and_pools_on(api).await;
    }
}

async fn variables_connections_and_pools_on(api: Api) {
    let op = Some(Role::Op);
    let created = api
        .call(Method::POST, "/api/v2/variables", op, Some(r#"{"key": "region", "value": "eu", "description": "d"}"#))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    api.call(Method::POST, "/api/v2/variables", op, Some(r#"{"key": "region", "value": "us"}"#))
        .await
        .assert_problem(StatusCode::CONFLICT);
    assert_eq!(api.get("/api/v2/variables").await.body["variables"][0]["value"], "***", "listings hide values");
    api.call(Method::PATCH, "/api/v2/variables/region", op, Some(r#"{"key": "region", "value": "us"}"#)).await;
    assert_eq!(api.get("/api/v2/variables/region").await.body["value"], "us");
    assert_eq!(api.call(Method::DELETE, "/api/v2/variables/region", op, None).await.status, StatusCode::NO_CONTENT);

    let body = r#"{"connection_id": "wh", "conn_type": "postgres", "host": "db", "login": "etl", "password": "hunter2", "extra": "{\"sslmode\": \"require\"}"}"#;
    let created = api.call(Method::POST, "/api/v2/connections", op, Some(body)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    api.call(Method::POST, "/api/v2/connections", op, Some(body)).await.assert_problem(StatusCode::CONFLICT);
    let patched = api
        .call(
            Method::PATCH,
            "/api/v2/connections/wh",
            op,
            Some(r#"{"connection_id": "wh", "conn_type": "postgres", "host": "db2", "login": "etl"}"#),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    for answer in [created, patched, api.get("/api/v2/connections/wh").await, api.get("/api/v2/connections").await] {
        assert!(!answer.text.contains("hunter2") && !answer.text.contains("sslmode"), "{}", answer.text);
    }
    let stored = api
        .state
        .db()
        .get_connection(
            &updraft_db::EncryptionKey::from_base64(&updraft_db::EncryptionKey::generate()).expect("k"),
            "wh",
        )
        .await;
    assert!(stored.is_err(), "secrets are encrypted with the server's key");
    let list = api.get("/api/v2/connections").await;
    assert_eq!(list.body["connections"][0]["host"], "db2");

    let pool = api.call(Method::POST, "/api/v2/pools", op, Some(r#"{"name": "etl", "slots": 4}"#)).await;
    assert_eq!((pool.status, &pool.body["open_slots"]), (StatusCode::CREATED, &serde_json::json!(4)), "{}", pool.text);
    let default = api.get("/api/v2/pools/default_pool").await;
    assert_eq!(default.body["slots"], 128);
    api.call(Method::DELETE, "/api/v2/pools/default_pool", op, None).await.assert_problem(StatusCode::BAD_REQUEST);
    assert_eq!(api.get("/api/v2/pools").await.body["total_entries"], 2);

    let errors = api.get("/api/v2/importErrors").await;
    assert_eq!(errors.body["import_errors"][0]["filename"], "/dags/broken.yaml");
    assert!(errors.body["import_errors"][0]["stack_trace"].as_str().is_some_and(|s| s.contains(":3:7:")));
    let health = api.call(Method::GET, "/api/v2/monitor/health", None, None).await;
    assert_eq!(health.body["metadatabase"]["status"], "healthy");
    assert!(health.body["triggerer"].is_object() && health.body["scheduler"].is_object());
    assert!(api.call(Method::GET, "/api/v2/version", None, None).await.body["version"].is_string());
}

#[tokio::test]
async fn connections_and_variables_from_the_cluster_are_listed_with_their_source_never_changed_or_shown() {
    let secrets = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(secrets.path().join("connections")).expect("dir");
    std::fs::create_dir_all(secrets.path().join("variables")).expect("dir");
    std::fs::write(secrets.path().join("connections/reports"), "postgres://rep:filepass@reports-db:5432/r").expect("w");
    std::fs::write(secrets.path().join("variables/threshold"), "0.25-from-file").expect("w");
    let sources = updraft_secrets::Sources {
        environment: [
            ("UPDRAFT_CONN_WAREHOUSE".to_owned(), "postgres://etl:envpass@wh-db:5432/dw?sslmode=require".to_owned()),
            ("UPDRAFT_VAR_REGION".to_owned(), "eu-from-env".to_owned()),
        ]
        .into_iter()
        .collect(),
        connections_dir: Some(secrets.path().join("connections")),
        variables_dir: Some(secrets.path().join("variables")),
    };
    let api = Api::with_sources(sources).await;
    let op = Some(Role::Op);
    let body = r#"{"connection_id": "local", "conn_type": "postgres", "host": "db", "password": "dbpass"}"#;
    assert_eq!(api.call(Method::POST, "/api/v2/connections", op, Some(body)).await.status, StatusCode::CREATED);

    let list = api.get("/api/v2/connections").await;
    let sources: Vec<(String, String)> = list.body["connections"]
        .as_array()
        .expect("connections")
        .iter()
        .map(|c| (c["connection_id"].as_str().unwrap_or("").to_owned(), c["source"].as_str().unwrap_or("").to_owned()))
        .collect();
    assert_eq!(
        sources,
        [
            ("local".into(), "database".into()),
            ("reports".into(), "directory".into()),
            ("warehouse".into(), "environment".into())
        ]
    );
    assert_eq!(api.get("/api/v2/connections/warehouse").await.body["host"], "wh-db");
    // A connection the cluster defines is changed there, not here.
    let patch = r#"{"connection_id": "warehouse", "conn_type": "postgres", "host": "elsewhere"}"#;
    let refused = api.call(Method::PATCH, "/api/v2/connections/warehouse", op, Some(patch)).await;
    refused.assert_problem(StatusCode::CONFLICT);
    assert!(refused.text.contains("environment variable UPDRAFT_CONN_WAREHOUSE"), "{}", refused.text);
    api.call(Method::DELETE, "/api/v2/connections/reports", op, None).await.assert_problem(StatusCode::CONFLICT);
    let shadow = r#"{"connection_id": "warehouse", "conn_type": "postgres", "host": "db"}"#;
    api.call(Method::POST, "/api/v2/connections", op, Some(shadow)).await.assert_problem(StatusCode::CONFLICT);

    let region = api.get("/api/v2/variables/region").await;
    assert_eq!((region.body["value"].as_str(), region.body["source"].as_str()), (Some("***"), Some("environment")));
    let threshold = api.get("/api/v2/variables/threshold").await;
    assert_eq!(threshold.body["source"], "directory");
    api.call(Method::DELETE, "/api/v2/variables/threshold", op, None).await.assert_problem(StatusCode::CONFLICT);
    let variables = api.get("/api/v2/variables").await;
    assert_eq!(variables.body["total_entries"], 2, "{}", variables.text);

    // No value from the cluster, and no password, in any answer.
    for answer in [list, region, threshold, variables, api.get("/api/v2/connections/reports").await] {
        for secret in ["envpass", "filepass", "dbpass", "eu-from-env", "0.25-from-file"] {
            assert!(!answer.text.contains(secret), "{secret} in {}", answer.text);
        }
    }
}

#[tokio::test]
async fn the_web_apps_session_cookie_needs_the_csrf_token_for_changes() {
    let api = Api::new().await;
    let hash = updraft_api::hash_password("s3cret-pass").expect("hash");
    api.state.db().create_user("web", &hash, "user").await.expect("user");
    let login = Request::post("/auth/login")
        .header("content-type", "application/json")
        .body(Body::from(r#"{"username": "web", "password": "s3cret-pass"}"#))
        .expect("request");
    let answer = api.send(login).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let set_cookie = answer.headers.get("set-cookie").and_then(|v| v.to_str().ok()).expect("cookie").to_owned();
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"), "{set_cookie}");
    assert!(!set_cookie.contains("Secure"), "Secure only when configured (plain HTTP on 127.0.0.1 by default)");
    let session = set_cookie.split(';').next().expect("pair").to_owned();
    let csrf = answer.body["csrf_token"].as_str().expect("csrf").to_owned();
    assert!(!answer.text.contains(session.trim_start_matches("updraft_session=")), "the token stays in the cookie");

    let with_cookie = |method: Method, path: &str, csrf: Option<&str>, body: &str| {
        let mut request = Request::builder().method(method).uri(path).header("cookie", &session);
        if let Some(csrf) = csrf {
            request = request.header("x-csrf-token", csrf);
        }
        request.header("content-type", "application/json").body(Body::from(body.to_owned())).expect("request")
    };
    assert_eq!(api.send(with_cookie(Method::GET, "/api/v2/dags", None, "")).await.status, StatusCode::OK);
    let trigger = "/api/v2/dags/orders/dagRuns";
    api.send(with_cookie(Method::POST, trigger, None, "{}")).await.assert_problem(StatusCode::FORBIDDEN);
    api.send(with_cookie(Method::POST, trigger, Some("wrong"), "{}")).await.assert_problem(StatusCode::FORBIDDEN);
    assert_eq!(api.send(with_cookie(Method::POST, trigger, Some(&csrf), "{}")).await.status, StatusCode::OK);
    // A session token is not a bearer token (it would skip the CSRF check).
    let as_bearer = Request::get("/api/v2/dags")
        .header("authorization", format!("Bearer {}", session.trim_start_matches("updraft_session=")))
        .body(Body::empty())
        .expect("request");
    api.send(as_bearer).await.assert_problem(StatusCode::UNAUTHORIZED);
    // Behind HTTPS the cookie is also `Secure`.
    let config = updraft_api::ApiConfig {
        encryption_key: updraft_db::EncryptionKey::from_base64(&updraft_db::EncryptionKey::generate()).expect("key"),
        jwt_secret: b"another secret".to_vec(),
        token_lifetime: std::time::Duration::from_secs(60),
        logs: updraft_api::TaskLogs::local(api.dir.path().join("logs")),
        plugins: None,
        secure_cookies: true,
        dags_dir: None,
        secret_sources: updraft_secrets::Sources::default(),
    };
    let secure = updraft_api::app(updraft_api::AppState::new(api.state.db().clone(), config).expect("state"));
    let login = Request::post("/auth/login")
        .header("content-type", "application/json")
        .body(Body::from(r#"{"username": "web", "password": "s3cret-pass"}"#))
        .expect("request");
    let response = tower::ServiceExt::oneshot(secure, login).await.expect("response");
    let cookie = response.headers().get("set-cookie").and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert!(cookie.ends_with("; Secure"), "{cookie}");
    let logout = api.send(Request::post("/auth/logout").body(Body::empty()).expect("request")).await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT);
    assert!(logout.headers.get("set-cookie").and_then(|v| v.to_str().ok()).is_some_and(|c| c.contains("Max-Age=0")));
}

#[tokio::test]
async fn a_dag_whose_file_broke_is_stale_with_import_errors() {
    let api = Api::new().await;
    let db = api.state.db();
    let reports = db.get_dag("reports").await.expect("db").expect("reports").record;
    let broken = vec![(reports.fileloc.clone(), format!("{}:1:1: error: bad", reports.fileloc))];
    let orders = db.get_dag("orders").await.expect("db").expect("orders").record;
    db.sync_dags(&[orders], &broken, false).await.expect("sync");
    let dag = api.get("/api/v2/dags/reports").await;
    assert_eq!(
        (&dag.body["is_stale"], &dag.body["has_import_errors"]),
        (&serde_json::json!(true), &serde_json::json!(true))
    );
    let listed = api.get("/api/v2/dags?exclude_stale=false").await;
    assert_eq!(listed.body["total_entries"], 2);
    assert_eq!(api.get("/api/v2/dags").await.body["total_entries"], 1, "stale DAGs are left out by default");
    let trigger = api.call(Method::POST, "/api/v2/dags/reports/dagRuns", Some(Role::User), Some("{}")).await;
    trigger.assert_problem(StatusCode::CONFLICT);
}

#[tokio::test]
async fn repeated_wrong_passwords_lock_the_username_for_a_while() {
    let api = Api::new().await;
    let hash = updraft_api::hash_password("right-password").expect("hash");
    api.state.db().create_user("ann", &hash, "viewer").await.expect("user");
    api.state.db().create_user("bob", &hash, "viewer").await.expect("user");
    let sign_in = |user: &str, password: &str| {
        let body = serde_json::json!({ "username": user, "password": password }).to_string();
        Request::post("/auth/token").header("content-type", "application/json").body(Body::from(body)).expect("request")
    };
    for _ in 0..10 {
        api.send(sign_in("ann", "wrong")).await.assert_problem(StatusCode::UNAUTHORIZED);
    }
    let locked = api.send(sign_in("ann", "right-password")).await;
    locked.assert_problem(StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 =
        locked.headers.get("retry-after").and_then(|v| v.to_str().ok()?.parse().ok()).expect("Retry-After");
    assert!((1..=300).contains(&retry), "{retry}");
    assert_eq!(
        api.send(sign_in("bob", "right-password")).await.status,
        StatusCode::CREATED,
        "other users are not affected"
    );
}
