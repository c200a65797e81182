//! A test DAG, written in YAML as users write them and validated by updraft-dag, run task by
//! task in dependency order through the host: the built-in `sql` on SQLite, the example
//! plugin `row_count_check` from the plugins folder, and `noop`. Each task's params are
//! templated and checked against the schema its operator describes, as the scheduler will.

use std::path::Path;
use std::sync::Arc;

use serde_json::{Map, Value, json};
use updraft_dag::template::{TemplateVars, render};
use updraft_dag::{Options, SqlSource, Task, validate_source};
use updraft_plugin_host::{Grants, HostConfig, Registry, TaskContext, TaskOutcome};

use crate::authoring::author_build;
use crate::params::check_params;
use crate::support::{runtime, small_config};

const DAG: &str = r#"
dag: plugin_demo
schedule: null
tasks:
  - id: orders
    sql: |
      CREATE TABLE orders (day TEXT, n INTEGER);
      INSERT INTO orders VALUES ('{{ ds }}', 1), ('{{ ds }}', 2), ('1999-01-01', 3);
    connection: warehouse
  - id: check_orders
    operator: row_count_check
    upstream: [orders]
    params: {connection: warehouse, table: orders, condition: "day = '{{ ds }}'", min_rows: 2}
  - id: done
    operator: noop
    upstream: [check_orders]
"#;

fn vars(task: &Task) -> TemplateVars {
    TemplateVars::placeholder("plugin_demo", &task.id, Map::new())
}

/// The params the operator gets: SQL tasks become `sql` params, strings are rendered.
fn rendered_params(task: &Task) -> Value {
    if let Some(SqlSource::Inline(sql)) = &task.sql {
        let sql = render(sql, &vars(task), true).expect("render sql");
        return json!({"connection": task.connection, "sql": sql});
    }
    let params = task
        .params
        .iter()
        .map(|(k, v)| {
            let v = match v {
                Value::String(s) => Value::String(render(s, &vars(task), true).expect("render param")),
                other => other.clone(),
            };
            (k.clone(), v)
        })
        .collect();
    Value::Object(params)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_plugin_runs_in_a_test_dag() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/plugins/row_count_check/Cargo.toml");
    let wasm = author_build(&manifest, "row_count_check");
    let plugins = tempfile::tempdir().expect("tempdir");
    std::fs::copy(&wasm, plugins.path().join("row_count_check.wasm")).expect("install");
    let mut config = HostConfig { plugins_dir: Some(plugins.path().to_owned()), ..small_config() };
    config
        .plugins
        .insert("row_count_check".into(), Grants { connections: vec!["warehouse".into()], ..Grants::default() });
    let (rt, memory) = runtime(config);
    let db = tempfile::tempdir().expect("tempdir");
    memory.connections.set("warehouse", &format!("sqlite://{}?mode=rwc", db.path().join("w.db").display()));
    let registry = Registry::new(rt.clone()).await.expect("registry");

    let (dag, diagnostics) = validate_source(&Arc::from("plugin_demo.yaml"), DAG, Options::default());
    let dag = dag.unwrap_or_else(|| panic!("{diagnostics:?}"));
    let mut order: Vec<usize> = (0..dag.tasks.len()).collect();
    order.sort_by_key(|&i| dag.layers[i]);
    let mut ran = Vec::new();
    for i in order {
        let task = &dag.tasks[i];
        let plugin = registry.get(&task.operator).expect("operator exists");
        let params = rendered_params(task);
        let errors = check_params(&plugin.descriptor.params_schema, &params);
        assert!(errors.is_empty(), "{}: {errors:?}", task.id);
        let mut ctx = TaskContext::new(&task.id, params);
        ctx.dag_id = dag.id.clone();
        let report = rt.run(&plugin, &ctx).await;
        assert!(report.outcome.is_success(), "{}: {:?}\n{}", task.id, report.outcome, report.log_text());
        ran.push((task.id.clone(), report.outcome));
    }
    let ids: Vec<&str> = ran.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["orders", "check_orders", "done"]);
    assert_eq!(ran[1].1, TaskOutcome::Success { output: Some(json!({"table": "orders", "rows": 2})) });
}

#[test]
fn params_that_do_not_match_the_plugin_schema_are_named() {
    let schema = json!({
        "type": "object",
        "properties": {"table": {"type": "string"}, "min_rows": {"type": "integer", "minimum": 0}},
        "required": ["table"],
        "additionalProperties": false
    });
    let errors = check_params(&schema, &json!({"min_rows": "two", "tabel": "orders"}));
    let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        messages,
        [
            "param \"min_rows\": must be an integer, got a string (\"two\")",
            "param \"tabel\": is not a parameter of this operator: did you mean \"table\"?",
            "param \"table\": is required: add table (a string) under params",
        ]
    );
}
