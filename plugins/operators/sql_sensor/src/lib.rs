//! The `sql_sensor` operator: succeeds once a query returns at least one row; until then it
//! asks the scheduler to run it again after `poke_interval` seconds (reschedule mode, so a
//! waiting sensor holds no worker slot).

use serde::Deserialize;
use updraft_plugin_sdk::{Capability, Context, Descriptor, Failure, Operator, Outcome, json, log, sql};

struct SqlSensor;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    connection: String,
    sql: String,
    #[serde(default = "default_poke")]
    poke_interval: u32,
}

fn default_poke() -> u32 {
    60
}

impl Operator for SqlSensor {
    fn describe() -> Descriptor {
        Descriptor::new("sql_sensor", env!("CARGO_PKG_VERSION"), "Waits until a query returns a row")
            .params_schema(json!({
                "type": "object",
                "properties": {
                    "connection": {"type": "string", "minLength": 1},
                    "sql": {"type": "string", "minLength": 1},
                    "poke_interval": {"type": "integer", "minimum": 1, "maximum": 86400, "default": 60}
                },
                "required": ["connection", "sql"],
                "additionalProperties": false
            }))
            .capability(Capability::Sql)
    }

    fn execute(ctx: Context) -> Result<Outcome, Failure> {
        let p: Params = ctx.params()?;
        let rows = sql::query(&p.connection, &p.sql)?;
        match rows.into_iter().next() {
            Some(row) => {
                log::info("condition met: the query returned a row");
                Ok(Outcome::output(row))
            }
            None => {
                log::info(&format!("no row yet; poking again in {}s", p.poke_interval));
                Ok(Outcome::reschedule(p.poke_interval))
            }
        }
    }
}

updraft_plugin_sdk::export!(SqlSensor);
