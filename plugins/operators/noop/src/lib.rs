//! The `noop` operator: does nothing and succeeds (for tests, demos and join points).

use updraft_plugin_sdk::{Context, Descriptor, Failure, Operator, Outcome, json};

struct Noop;

impl Operator for Noop {
    fn describe() -> Descriptor {
        Descriptor::new("noop", env!("CARGO_PKG_VERSION"), "Does nothing and succeeds")
            .params_schema(json!({"type": "object", "additionalProperties": false}))
    }

    fn execute(_ctx: Context) -> Result<Outcome, Failure> {
        Ok(Outcome::done())
    }
}

updraft_plugin_sdk::export!(Noop);
