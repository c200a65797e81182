//! Bad input never gets a 500 nor changes anything: malformed JSON (400), wrong shapes and
//! types (422), oversized bodies (413), unknown DAGs, runs and tasks (404), a taken run id
//! (409); and random JSON thrown at the trigger endpoint.

use axum::http::{Method, StatusCode};
use updraft_api::Role;

use crate::Api;

const TRIGGER: &str = "/api/v2/dags/orders/dagRuns";

#[tokio::test]
async fn malformed_and_mistyped_bodies() {
    let api = Api::new().await;
    let user = Some(Role::User);
    api.call(Method::POST, TRIGGER, user, Some("{not json")).await.assert_problem(StatusCode::BAD_REQUEST);
    for body in [
        r#"{"conf": [1, 2]}"#,
        r#"{"dag_run_id": 7}"#,
        r#"{"logical_date": "yesterday"}"#,
        r#"{"unknown_key": 1}"#,
        r#"{"data_interval_start": "2026-01-02T00:00:00Z"}"#,
        r#"{"dag_run_id": "../../etc"}"#,
        r#"[]"#,
    ] {
        api.call(Method::POST, TRIGGER, user, Some(body)).await.assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
    }
    let patch = api.call(Method::PATCH, "/api/v2/dags/orders", user, Some(r#"{"is_paused": "yes"}"#)).await;
    patch.assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
    let bad_limit = api.get("/api/v2/dags?limit=abc").await;
    bad_limit.assert_problem(StatusCode::BAD_REQUEST);
    assert!(bad_limit.body["detail"].as_str().is_some_and(|d| d.contains("limit")), "{}", bad_limit.text);
    api.get("/api/v2/dags?order_by=nope").await.assert_problem(StatusCode::BAD_REQUEST);
    api.get("/api/v2/dags/orders/dagRuns/r1/taskInstances/load/logs/1?token=zzz").await;
    assert_eq!(api.state.db().count_runs("orders").await.expect("count"), 1, "nothing was triggered");
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let api = Api::new().await;
    let big = format!(r#"{{"conf": {{"x": "{}"}}}}"#, "a".repeat(updraft_api::BODY_LIMIT + 1));
    api.call(Method::POST, TRIGGER, Some(Role::User), Some(&big)).await.assert_problem(StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn unknown_things_are_404_and_taken_run_ids_409() {
    let api = Api::new().await;
    for path in [
        "/api/v2/dags/nope",
        "/api/v2/dags/nope/dagRuns",
        "/api/v2/dags/orders/dagRuns/nope",
        "/api/v2/dags/orders/dagRuns/r1/taskInstances/nope",
        "/api/v2/dags/orders/dagRuns/r1/taskInstances/load/logs/1",
        "/api/v2/variables/nope",
        "/api/v2/connections/nope",
        "/api/v2/pools/nope",
        "/api/v2/importErrors/99",
        "/api/v2/no/such/route",
    ] {
        api.get(path).await.assert_problem(StatusCode::NOT_FOUND);
    }
    let user = Some(Role::User);
    api.call(Method::POST, "/api/v2/dags/nope/dagRuns", user, Some("{}")).await.assert_problem(StatusCode::NOT_FOUND);
    let taken = api.call(Method::POST, TRIGGER, user, Some(r#"{"dag_run_id": "r1"}"#)).await;
    taken.assert_problem(StatusCode::CONFLICT);
    api.call(Method::DELETE, "/api/v2/dags", user, None).await.assert_problem(StatusCode::METHOD_NOT_ALLOWED);
}

/// A small deterministic generator (xorshift), so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn value(&mut self, depth: u32) -> serde_json::Value {
        use serde_json::{Value, json};
        const STRINGS: [&str; 8] =
            ["", "2026-01-01T00:00:00Z", "2026-01-01", "r1", "manual__x", "../x", "\u{0}", "ü€𝄞"];
        match self.below(if depth > 2 { 5 } else { 7 }) {
            0 => Value::Null,
            1 => json!(self.below(2) == 0),
            2 => json!(self.next() as i64),
            3 => json!((self.next() % 1000) as f64 / 7.0),
            4 => json!(STRINGS[self.below(8) as usize]),
            5 => Value::Array((0..self.below(4)).map(|_| self.value(depth + 1)).collect()),
            _ => Value::Object(self.object(depth + 1)),
        }
    }

    fn object(&mut self, depth: u32) -> serde_json::Map<String, serde_json::Value> {
        const KEYS: [&str; 10] = [
            "dag_run_id",
            "logical_date",
            "run_after",
            "data_interval_start",
            "data_interval_end",
            "conf",
            "note",
            "partition_key",
            "other",
            "",
        ];
        (0..self.below(5)).map(|_| (KEYS[self.below(10) as usize].to_owned(), self.value(depth))).collect()
    }
}

#[tokio::test]
async fn random_json_at_the_trigger_endpoint_never_gets_a_500() {
    let api = Api::new().await;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..600 {
        let body = if rng.below(4) == 0 { rng.value(0) } else { serde_json::Value::Object(rng.object(0)) };
        let mut text = body.to_string();
        if rng.below(10) == 0 {
            // Truncated documents too.
            text.truncate(rng.below(text.len() as u64 + 1) as usize);
        }
        let answer = api.call(Method::POST, TRIGGER, Some(Role::User), Some(&text)).await;
        assert!(matches!(answer.status.as_u16(), 200 | 400 | 409 | 422), "{text} → {} {}", answer.status, answer.text);
        if answer.status != StatusCode::OK {
            answer.assert_problem(answer.status);
        }
        *seen.entry(answer.status.as_u16()).or_insert(0) += 1;
    }
    assert!(seen.contains_key(&200) && seen.contains_key(&422), "the generator reaches both sides: {seen:?}");
}

#[tokio::test]
async fn plugin_uploads_are_validated_and_may_exceed_the_json_body_limit() {
    let api = Api::new().await;
    let admin = Some(Role::Admin);
    let bad = api.call(Method::POST, "/api/updraft/plugins", admin, Some("nope")).await;
    bad.assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
    let big = format!("\0asm{}", "x".repeat(2 * updraft_api::BODY_LIMIT));
    let ok = api.call(Method::POST, "/api/updraft/plugins", admin, Some(&big)).await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.text);
    assert_eq!(ok.body["installed_by"], "admin-user", "the store records who uploaded it");
    api.call(Method::DELETE, "/api/updraft/plugins/nope", admin, None).await.assert_problem(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_server_failure_is_a_500_that_says_nothing_of_the_internals() {
    let api = Api::new().await;
    api.state.db().pool().close().await;
    let answer = api.get("/api/v2/dags").await;
    answer.assert_problem(StatusCode::INTERNAL_SERVER_ERROR);
    let detail = answer.body["detail"].as_str().unwrap_or_default().to_lowercase();
    for internal in ["sqlx", "pool", "sqlite", "database", "closed"] {
        assert!(!detail.contains(internal), "{detail}");
    }
}
