//! Test fixture: version 2 of operator `versioned` (hot replacement tests). It sleeps
//! `seconds` and returns its version.

use updraft_plugin_sdk::{Context, Descriptor, Failure, Operator, Outcome, Value};

struct Versioned;

impl Operator for Versioned {
    fn describe() -> Descriptor {
        Descriptor::new("versioned", "2.0.0", "Returns its version")
    }
    fn execute(ctx: Context) -> Result<Outcome, Failure> {
        let seconds = ctx.params.get("seconds").and_then(Value::as_f64).unwrap_or(0.0);
        std::thread::sleep(std::time::Duration::from_secs_f64(seconds));
        Ok(Outcome::output(Value::from("2.0.0")))
    }
}

updraft_plugin_sdk::export!(Versioned);
