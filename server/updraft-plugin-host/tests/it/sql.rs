//! The `sql` and `sql_sensor` operators on real databases: a SQLite file and the PostgreSQL
//! at 127.0.0.1:5432 (database `test`), with SQL templated the way the scheduler renders it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use updraft_plugin_host::{Grants, TaskContext, TaskOutcome};

use crate::support::{load, runtime, small_config};

const PG: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Renders `template` with the task's context, as the scheduler does before `execute`.
fn render(template: &str, ctx: &TaskContext) -> String {
    let env = minijinja::Environment::new();
    let ds = &ctx.logical_date[..10];
    env.render_str(template, minijinja::context! { ds => ds, ds_nodash => ds.replace('-', ""), run_id => &ctx.run_id })
        .expect("template")
}

fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("{prefix}_{}_{nanos}", std::process::id())
}

fn context(task: &str, connection: &str, sql: &str, fetch: bool) -> TaskContext {
    let mut ctx = TaskContext::new(task, json!({}));
    ctx.logical_date = "2026-03-01T03:00:00Z".into();
    let rendered = render(sql, &ctx);
    ctx.params = json!({"connection": connection, "sql": rendered, "fetch": fetch});
    ctx
}

async fn sql_operator_runs_templated_sql(connection_uri: &str, table: &str) {
    let (rt, memory) = runtime(small_config());
    memory.connections.set("db", connection_uri);
    let sql = load(&rt, "updraft_op_sql").await;

    let create = format!(
        "CREATE TABLE {table} (day TEXT, n INTEGER); INSERT INTO {table} VALUES ('{{{{ ds }}}}', 1), ('{{{{ ds }}}}', 2), ('1999-01-01', 3);"
    );
    let report = rt.run(&sql, &context("create", "db", &create, false)).await;
    assert!(matches!(report.outcome, TaskOutcome::Success { .. }), "{:?}\n{}", report.outcome, report.log_text());

    let select = format!("SELECT day, SUM(n) AS total FROM {table} WHERE day = '{{{{ ds }}}}' GROUP BY day");
    let report = rt.run(&sql, &context("select", "db", &select, true)).await;
    let total = report.outcome.clone();
    let drop = rt.run(&sql, &context("drop", "db", &format!("DROP TABLE {table}"), false)).await;
    assert!(matches!(drop.outcome, TaskOutcome::Success { .. }), "{:?}", drop.outcome);
    let rows = match total {
        TaskOutcome::Success { output: Some(rows) } => rows,
        other => panic!("{other:?}\n{}", report.log_text()),
    };
    assert_eq!(rows[0]["day"], json!("2026-03-01"));
    // SQLite sums integers to an integer; PostgreSQL SUM(integer) is bigint.
    assert_eq!(rows[0]["total"], json!(3));
    assert_eq!(memory.xcom.get("adhoc", "manual__adhoc", "select", "return_value"), Some(rows));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_operator_on_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let uri = format!("sqlite://{}?mode=rwc", dir.path().join("lite.db").display());
    sql_operator_runs_templated_sql(&uri, &unique("orders")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_operator_on_postgres() {
    sql_operator_runs_templated_sql(PG, &unique("updraft_plugin_orders")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_errors_are_clear() {
    let mut config = small_config();
    config.plugins.insert("sql".into(), Grants { connections: vec!["db".into()], ..Grants::default() });
    let (rt, memory) = runtime(config);
    memory.connections.set("db", "sqlite::memory:");
    memory.connections.set("other", "sqlite::memory:");
    let sql = load(&rt, "updraft_op_sql").await;
    let report = rt.run(&sql, &context("t", "other", "SELECT 1", true)).await;
    let expected =
        "capability \"sql\" connection \"other\" is not granted to plugin \"sql\": add it to [plugins.sql] connections";
    assert_eq!(report.outcome, TaskOutcome::Failed { message: expected.into(), retryable: false });
    let report = rt.run(&sql, &context("t", "db", "SELEC nonsense", false)).await;
    match report.outcome {
        TaskOutcome::Failed { message, retryable: true } => {
            assert!(message.starts_with("SQL on connection \"db\" failed: "), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let mut config = small_config();
    config.limits.max_instances = 10;
    let (rt, _) = runtime(config);
    let sql = load(&rt, "updraft_op_sql").await;
    let report = rt.run(&sql, &context("t", "missing", "SELECT 1", true)).await;
    match report.outcome {
        TaskOutcome::Failed { message, .. } => {
            assert!(message.contains("connection \"missing\" does not exist"), "{message}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_sensor_reschedules_until_a_row_appears() {
    let dir = tempfile::tempdir().expect("tempdir");
    let uri = format!("sqlite://{}?mode=rwc", dir.path().join("s.db").display());
    let (rt, memory) = runtime(small_config());
    memory.connections.set("db", &uri);
    let sql = load(&rt, "updraft_op_sql").await;
    let sensor = load(&rt, "updraft_op_sql_sensor").await;
    let setup = rt.run(&sql, &context("setup", "db", "CREATE TABLE ready (day TEXT)", false)).await;
    assert!(setup.outcome.is_success(), "{:?}", setup.outcome);
    let mut poke = TaskContext::new("wait", json!({}));
    poke.params = json!({"connection": "db", "sql": "SELECT day FROM ready", "poke_interval": 30});
    let report = rt.run(&sensor, &poke).await;
    assert_eq!(report.outcome, TaskOutcome::Reschedule { after: Duration::from_secs(30) });
    let insert = rt.run(&sql, &context("ins", "db", "INSERT INTO ready VALUES ('{{ ds }}')", false)).await;
    assert!(insert.outcome.is_success(), "{:?}", insert.outcome);
    let report = rt.run(&sensor, &poke).await;
    assert_eq!(report.outcome, TaskOutcome::Success { output: Some(json!({"day": "2026-03-01"})) });
}
