//! The `sql` operator: runs SQL (a templated file or string, already rendered by the server)
//! on a named connection. The host holds the connection's credentials; this operator only
//! names the connection.
//!
//! By default the SQL is executed (one or more statements) and the number of affected rows is
//! the task's output; with `fetch: true` it must be one query whose rows become the output
//! (XCom `return_value`), at most `max_rows` of them.

use serde::Deserialize;
use updraft_plugin_sdk::{Capability, Context, Descriptor, Failure, Operator, Outcome, json, log, sql};

struct Sql;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    connection: String,
    sql: String,
    #[serde(default)]
    fetch: bool,
    #[serde(default = "default_max_rows")]
    max_rows: usize,
}

fn default_max_rows() -> usize {
    1000
}

impl Operator for Sql {
    fn describe() -> Descriptor {
        Descriptor::new("sql", env!("CARGO_PKG_VERSION"), "Runs SQL on a named connection")
            .params_schema(json!({
                "type": "object",
                "properties": {
                    "connection": {"type": "string", "minLength": 1},
                    "sql": {"type": "string", "minLength": 1},
                    "fetch": {"type": "boolean", "default": false},
                    "max_rows": {"type": "integer", "minimum": 1, "maximum": 100000, "default": 1000}
                },
                "required": ["connection", "sql"],
                "additionalProperties": false
            }))
            .capability(Capability::Sql)
    }

    fn execute(ctx: Context) -> Result<Outcome, Failure> {
        let p: Params = ctx.params()?;
        if p.fetch {
            let rows = sql::query(&p.connection, &p.sql)?;
            log::info(&format!("query on {} returned {} rows", p.connection, rows.len()));
            if rows.len() > p.max_rows {
                return Err(Failure::permanent(format!(
                    "query returned {} rows, more than max_rows = {}: add a LIMIT or raise max_rows",
                    rows.len(),
                    p.max_rows
                )));
            }
            Ok(Outcome::output(json!(rows)))
        } else {
            let affected = sql::execute(&p.connection, &p.sql)?;
            log::info(&format!("SQL on {} affected {affected} rows", p.connection));
            Ok(Outcome::output(json!({"rows_affected": affected})))
        }
    }
}

updraft_plugin_sdk::export!(Sql);
