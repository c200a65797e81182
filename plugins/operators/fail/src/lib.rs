//! The `fail` operator: fails with the given message (for tests of retries and trigger rules).

use serde::Deserialize;
use updraft_plugin_sdk::{Context, Descriptor, Failure, Operator, Outcome, json};

struct Fail;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    #[serde(default = "default_message")]
    message: String,
    #[serde(default)]
    retryable: bool,
}

fn default_message() -> String {
    "failed on purpose (operator fail)".to_owned()
}

impl Operator for Fail {
    fn describe() -> Descriptor {
        Descriptor::new("fail", env!("CARGO_PKG_VERSION"), "Fails with a message").params_schema(json!({
            "type": "object",
            "properties": {
                "message": {"type": "string", "default": "failed on purpose (operator fail)"},
                "retryable": {"type": "boolean", "default": false}
            },
            "additionalProperties": false
        }))
    }

    fn execute(ctx: Context) -> Result<Outcome, Failure> {
        let p: Params = ctx.params()?;
        Err(Failure { message: p.message, retryable: p.retryable })
    }
}

updraft_plugin_sdk::export!(Fail);
