//! The API through `app()`, without a socket, on a metadata database with two DAGs, one run
//! and an import error, and tokens issued for each role. The database is SQLite in a temporary
//! folder, or for the tests that run on both (`Api::both`) also a PostgreSQL database of the
//! test's own at 127.0.0.1:5432, dropped afterwards.

mod bad_input;
mod events;
mod flow;
mod metrics;
mod permissions;
mod sources;
mod webapp;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use serde_json::Value;
use tower::ServiceExt;
use updraft_api::{ApiConfig, AppState, Role, app};
use updraft_db::dags::DagRecord;
use updraft_db::runs::NewRun;
use updraft_db::task_instances::NewTaskInstance;
use updraft_db::{Db, EncryptionKey};

/// An API over a fresh database.
pub struct Api {
    pub app: Router,
    pub state: AppState,
    pub dir: tempfile::TempDir,
    /// The PostgreSQL database to drop, if any.
    postgres: Option<String>,
}

impl Drop for Api {
    fn drop(&mut self) {
        if let Some(name) = &self.postgres {
            let _ = psql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

fn psql(sql: &str) -> std::process::Output {
    std::process::Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-tAc", sql])
        .output()
        .expect("psql runs")
}

/// An answer: status, headers and the body as JSON (`Null` when empty or not JSON).
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

fn record(dag_id: &str, tags: &str) -> DagRecord {
    DagRecord {
        dag_id: dag_id.into(),
        fileloc: format!("/dags/{dag_id}.yaml"),
        source_hash: "h".into(),
        description: None,
        schedule: None,
        timezone: "UTC".into(),
        tags: tags.into(),
        owners: "[]".into(),
        max_active_runs: 16,
        max_active_tasks: 16,
        task_count: 2,
    }
}

impl Api {
    /// On SQLite.
    pub async fn new() -> Api {
        Api::with_sources(updraft_secrets::Sources::default()).await
    }

    /// On SQLite, with connections and variables from `sources` too.
    pub async fn with_sources(sources: updraft_secrets::Sources) -> Api {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = updraft_db::sqlite_url(dir.path());
        Api::on(dir, &url, None, sources).await
    }

    /// On SQLite, then on a fresh PostgreSQL database named after `test`.
    pub async fn both(test: &str) -> [Api; 2] {
        let name = format!("updraft_api_{test}_{}", std::process::id());
        let _ = psql(&format!("DROP DATABASE IF EXISTS {name}"));
        let out = psql(&format!("CREATE DATABASE {name}"));
        assert!(
            out.status.success(),
            "PostgreSQL must run at 127.0.0.1:5432: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
        let dir = tempfile::tempdir().expect("tempdir");
        [Api::new().await, Api::on(dir, &url, Some(name), updraft_secrets::Sources::default()).await]
    }

    async fn on(dir: tempfile::TempDir, url: &str, postgres: Option<String>, sources: updraft_secrets::Sources) -> Api {
        let db = Db::connect(url).await.expect("connect");
        db.migrate().await.expect("migrate");
        db.sync_dags(
            &[record("orders", r#"["finance"]"#), record("reports", r#"["bi", "finance"]"#)],
            &[("/dags/broken.yaml".into(), "/dags/broken.yaml:3:7: error: unknown key `shedule`".into())],
            false,
        )
        .await
        .expect("sync");
        let run = db
            .insert_run(&NewRun {
                dag_id: "orders".into(),
                run_id: "r1".into(),
                run_type: updraft_db::RunType::Manual,
                logical_date: None,
                data_interval: None,
                run_after: updraft_db::Timestamp::from_micros(1_700_000_000_000_000),
                conf: "{}".into(),
                triggered_by: "cli".into(),
                triggering_user: None,
                note: None,
            })
            .await
            .expect("run");
        let tasks: Vec<NewTaskInstance> = ["extract", "load"]
            .iter()
            .enumerate()
            .map(|(i, t)| NewTaskInstance {
                task_id: (*t).into(),
                uuid: format!("0000000{i}-0000-4000-8000-000000000000"),
                max_tries: 1,
                operator: "sql".into(),
                pool: "default_pool".into(),
                pool_slots: 1,
                priority_weight: 1,
            })
            .collect();
        db.create_task_instances(&run, &tasks).await.expect("task instances");
        let config = ApiConfig {
            encryption_key: EncryptionKey::from_base64(&EncryptionKey::generate()).expect("key"),
            jwt_secret: b"test secret".to_vec(),
            token_lifetime: std::time::Duration::from_secs(3600),
            logs: updraft_api::TaskLogs::local(dir.path().join("logs")),
            plugins: Some(std::sync::Arc::new(FakePlugins)),
            secure_cookies: false,
            dags_dir: Some(dir.path().join("dags")),
            secret_sources: sources,
        };
        std::fs::create_dir_all(dir.path().join("dags")).expect("the DAGs folder");
        let state = AppState::new(db, config).expect("state");
        Api { app: app(state.clone()), state, dir, postgres }
    }

    pub fn token(&self, role: Role) -> String {
        self.state.tokens().issue(&format!("{}-user", role.as_str()), role)
    }

    /// Sends a request as `role` (no token for `None`) with a JSON body.
    pub async fn call(&self, method: Method, path: &str, role: Option<Role>, body: Option<&str>) -> Answer {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(role) = role {
            request = request.header(header::AUTHORIZATION, format!("Bearer {}", self.token(role)));
        }
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request.body(Body::from(body.unwrap_or_default().to_owned())).expect("request");
        self.send(request).await
    }

    pub async fn send(&self, request: Request<Body>) -> Answer {
        let response = self.app.clone().oneshot(request).await.expect("infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("body");
        let text = String::from_utf8_lossy(&bytes).into_owned();
        Answer { status, headers, body: serde_json::from_str(&text).unwrap_or(Value::Null), text }
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, Some(Role::Admin), None).await
    }
}

/// A plugin store that accepts anything starting with the wasm magic number.
#[derive(Debug)]
struct FakePlugins;

impl updraft_api::PluginStore for FakePlugins {
    fn list(&self) -> futures_util::future::BoxFuture<'_, Result<Value, updraft_api::PluginError>> {
        Box::pin(async { Ok(serde_json::json!({ "operators": [{ "name": "noop" }], "invalid": [] })) })
    }

    fn install<'a>(
        &'a self,
        bytes: Vec<u8>,
        installed_by: &'a str,
    ) -> futures_util::future::BoxFuture<'a, Result<Value, updraft_api::PluginError>> {
        Box::pin(async move {
            if bytes.starts_with(b"\0asm") {
                Ok(serde_json::json!({ "name": "x", "size": bytes.len(), "installed_by": installed_by }))
            } else {
                Err(updraft_api::PluginError::Invalid("not a WebAssembly component".into()))
            }
        })
    }

    fn delete<'a>(
        &'a self,
        name: &'a str,
    ) -> futures_util::future::BoxFuture<'a, Result<(), updraft_api::PluginError>> {
        Box::pin(async move {
            if name == "x" { Ok(()) } else { Err(updraft_api::PluginError::NotFound(format!("no plugin `{name}`"))) }
        })
    }
}

impl Answer {
    /// Checks an error is a problem document with this status.
    pub fn assert_problem(&self, status: StatusCode) {
        assert_eq!(self.status, status, "{}", self.text);
        let content_type = self.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
        assert_eq!(content_type, Some("application/problem+json"), "{}", self.text);
        assert_eq!(self.body["status"], status.as_u16(), "{}", self.text);
        assert!(self.body["title"].is_string() && self.body["type"].is_string(), "{}", self.text);
        assert!(self.body["detail"].as_str().is_some_and(|d| !d.is_empty()), "{}", self.text);
    }
}
