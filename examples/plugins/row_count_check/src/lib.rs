//! `row_count_check`: a data-quality gate. It counts the rows of a table (optionally with a
//! `WHERE` condition, templated by the server like any param) on a named connection, fails
//! the task when there are fewer than `min_rows`, and passes the count downstream.
//!
//! The plugin never sees the connection's credentials: it names the connection and the host
//! runs the query, provided the server grants it (`[plugins.row_count_check] connections`).

use serde::Deserialize;
use updraft_plugin_sdk::{Capability, Context, Descriptor, Failure, Operator, Outcome, Value, json, log, sql};

pub struct RowCountCheck;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    connection: String,
    table: String,
    #[serde(default)]
    condition: Option<String>,
    #[serde(default = "one")]
    min_rows: u64,
}

fn one() -> u64 {
    1
}

/// The counting query. The table name is checked to be a plain (optionally schema-qualified)
/// identifier so that a param cannot smuggle in other SQL.
fn count_query(p: &Params) -> Result<String, Failure> {
    let ident = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !p.table.split('.').all(ident) {
        return Err(Failure::permanent(format!(
            "param \"table\" must be a table name such as orders or sales.orders, got {:?}",
            p.table
        )));
    }
    Ok(match &p.condition {
        Some(c) => format!("SELECT COUNT(*) AS n FROM {} WHERE {c}", p.table),
        None => format!("SELECT COUNT(*) AS n FROM {}", p.table),
    })
}

impl Operator for RowCountCheck {
    fn describe() -> Descriptor {
        Descriptor::new("row_count_check", env!("CARGO_PKG_VERSION"), "Fails when a table has fewer rows than expected")
            .params_schema(json!({
                "type": "object",
                "properties": {
                    "connection": {"type": "string", "minLength": 1},
                    "table": {"type": "string", "minLength": 1},
                    "condition": {"type": "string"},
                    "min_rows": {"type": "integer", "minimum": 0, "default": 1}
                },
                "required": ["connection", "table"],
                "additionalProperties": false
            }))
            .capability(Capability::Sql)
    }

    fn execute(ctx: Context) -> Result<Outcome, Failure> {
        let p: Params = ctx.params()?;
        let rows = sql::query(&p.connection, &count_query(&p)?)?;
        let n = rows.first().and_then(|r| r.get("n")).and_then(Value::as_u64).unwrap_or(0);
        log::info(&format!("{} has {n} rows (at least {} expected)", p.table, p.min_rows));
        if n < p.min_rows {
            return Err(Failure::new(format!(
                "{} has {n} rows, fewer than min_rows = {}: check the upstream tasks that load it",
                p.table, p.min_rows
            )));
        }
        Ok(Outcome::output(json!({"table": p.table, "rows": n})))
    }
}

updraft_plugin_sdk::export!(RowCountCheck);

#[cfg(test)]
mod tests {
    use super::*;

    fn params(table: &str, condition: Option<&str>) -> Params {
        Params { connection: "db".into(), table: table.into(), condition: condition.map(Into::into), min_rows: 1 }
    }

    #[test]
    fn builds_the_count_query() {
        let q = count_query(&params("sales.orders", Some("day = '2026-01-01'"))).expect("query");
        assert_eq!(q, "SELECT COUNT(*) AS n FROM sales.orders WHERE day = '2026-01-01'");
    }

    #[test]
    fn refuses_a_table_that_is_not_a_name() {
        let err = count_query(&params("orders; DROP TABLE x", None)).expect_err("refused");
        assert!(err.message.contains("must be a table name"), "{}", err.message);
    }
}
