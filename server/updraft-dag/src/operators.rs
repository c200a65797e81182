//! Checks tasks against the operators that exist: each task's `operator` must be installed,
//! and its `params` must match the JSON Schema the operator describes. The caller supplies the
//! catalog (the server's plugin registry, or the list the browser fetched), so this stays pure.

use std::collections::BTreeMap;

use crate::diag::{Diagnostic, Location};
use crate::graph::Dag;
use crate::params::check_params;
use crate::suggest;

/// Installed operators by name, with the JSON Schema of their params.
pub type Catalog = BTreeMap<String, serde_json::Value>;

/// True when the value at `path` (as the params checker names paths) is a templated string,
/// whose type is only known once rendered.
fn templated(params: &serde_json::Value, path: &str) -> bool {
    let mut value = params;
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (key, index) = match part.split_once('[') {
            Some((k, rest)) => (k, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        let Some(next) = value.get(key) else { return false };
        value = match index {
            Some(i) => match next.get(i) {
                Some(v) => v,
                None => return false,
            },
            None => next,
        };
    }
    value.as_str().is_some_and(crate::template::is_templated)
}

/// Reports unknown operators and params that do not match their operator's schema. Tasks with
/// `sql:` are not checked against the schema: their params are template values for the SQL.
pub fn check_operators(dag: &Dag, catalog: &Catalog) -> Vec<Diagnostic> {
    let mut diagnostics = Vec::new();
    for task in &dag.tasks {
        let at = Location::new(&task.file, task.pos);
        let Some(schema) = catalog.get(&task.operator) else {
            let help = suggest::did_you_mean(&task.operator, catalog.keys().map(String::as_str)).map_or_else(
                || {
                    format!(
                        "installed operators: {}; `updraft plugins install FILE.wasm` adds one",
                        catalog.keys().cloned().collect::<Vec<_>>().join(", ")
                    )
                },
                |s| format!("did you mean `{s}`?"),
            );
            diagnostics.push(
                Diagnostic::error(
                    at,
                    format!("task `{}` uses operator `{}`, which is not installed", task.id, task.operator),
                )
                .with_help(help),
            );
            continue;
        };
        if task.sql.is_some() {
            // The SQL and the connection become the operator's params when the task runs: a
            // connection it requires must be named now, not found missing at run time.
            if task.connection.is_none() && requires(schema, "connection") {
                diagnostics.push(
                    Diagnostic::error(
                        at,
                        format!("task `{}` runs SQL with operator `{}` but names no connection", task.id, task.operator),
                    )
                    .with_help(
                        "add `connection: NAME` to the task, or to `defaults:` for every task of the DAG (`updraft connections list` shows the connections)",
                    ),
                );
            }
            continue;
        }
        let params = serde_json::Value::Object(task.params.clone());
        for error in check_params(schema, &params).into_iter().filter(|e| !templated(&params, &e.path)) {
            diagnostics.push(
                Diagnostic::error(at.clone(), format!("task `{}`: {error}", task.id))
                    .with_help(format!("`updraft plugins inspect {}` shows the parameters it takes", task.operator)),
            );
        }
    }
    diagnostics
}

/// Whether a JSON Schema lists `key` among its required properties.
fn requires(schema: &serde_json::Value, key: &str) -> bool {
    schema.get("required").and_then(serde_json::Value::as_array).is_some_and(|r| r.iter().any(|k| k == key))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn catalog() -> Catalog {
        let mut c = Catalog::new();
        c.insert("sleep".into(), serde_json::json!({"type": "object", "properties": {"seconds": {"type": "number"}}, "required": ["seconds"], "additionalProperties": false}));
        c.insert("noop".into(), serde_json::json!({"type": "object"}));
        c.insert("sql".into(), serde_json::json!({"type": "object", "required": ["sql", "connection"]}));
        c
    }

    fn dag(text: &str) -> Dag {
        let (dag, d) = crate::validate_source(&Arc::from("d.yaml"), text, crate::Options::default());
        assert!(d.is_empty(), "{d:?}");
        dag.expect("valid")
    }

    #[test]
    fn unknown_operator_and_bad_params_are_named() {
        let d = dag(
            "dag: d\ntasks:\n  - {id: a, operator: sleeep}\n  - {id: b, operator: sleep, params: {secs: 1}}\n  - {id: c, operator: sleep, params: {seconds: '{{ params.n }}'}}\n  - {id: q, sql: 'select 1', params: {n: 3}}\n",
        );
        let messages: Vec<String> = check_operators(&d, &catalog()).iter().map(ToString::to_string).collect();
        assert_eq!(messages.len(), 4, "{messages:#?}");
        assert!(messages[0].starts_with("d.yaml:3:10: error: task `a` uses operator `sleeep`, which is not installed\n  help: did you mean `sleep`?"), "{}", messages[0]);
        assert!(messages[1].contains("task `b`: param \"seconds\": is required"), "{}", messages[1]);
        assert!(messages[2].contains("task `b`: param \"secs\""), "{}", messages[2]);
        assert_eq!(
            messages[3],
            "d.yaml:6:10: error: task `q` runs SQL with operator `sql` but names no connection\n  help: add `connection: NAME` to the task, or to `defaults:` for every task of the DAG (`updraft connections list` shows the connections)"
        );
    }

    #[test]
    fn a_connection_in_defaults_or_on_the_task_satisfies_sql_tasks() {
        let d = dag(
            "dag: d\ndefaults: {connection: warehouse}\ntasks:\n  - {id: a, sql: 'select 1'}\n  - {id: b, sql: 'select 2', connection: other}\n",
        );
        assert!(check_operators(&d, &catalog()).is_empty());
    }
}
