//! The `sleep` operator: waits a number of seconds, then succeeds, logging its progress (ten
//! lines at most, one a second for short waits) so a live log shows it working.
//!
//! The wait is a WASI clock sleep, which the host turns into an async timer: a sleeping task
//! holds a small instance and no thread.

use std::time::Duration;

use serde::Deserialize;
use updraft_plugin_sdk::{Context, Descriptor, Failure, Operator, Outcome, json, log};

struct Sleep;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    seconds: f64,
}

impl Operator for Sleep {
    fn describe() -> Descriptor {
        Descriptor::new("sleep", env!("CARGO_PKG_VERSION"), "Waits a number of seconds").params_schema(json!({
            "type": "object",
            "properties": {"seconds": {"type": "number", "minimum": 0, "maximum": 86400}},
            "required": ["seconds"],
            "additionalProperties": false
        }))
    }

    fn execute(ctx: Context) -> Result<Outcome, Failure> {
        let p: Params = ctx.params()?;
        if !(0.0..=86400.0).contains(&p.seconds) {
            return Err(Failure::permanent("param \"seconds\" must be between 0 and 86400"));
        }
        log::info(&format!("sleeping {} s", p.seconds));
        let total = Duration::from_secs_f64(p.seconds);
        let step = (total / 10).max(Duration::from_secs(1));
        let mut slept = Duration::ZERO;
        while slept < total {
            let next = step.min(total - slept);
            std::thread::sleep(next);
            slept += next;
            log::info(&format!("slept {:.1} of {} s", slept.as_secs_f64(), p.seconds));
        }
        Ok(Outcome::done())
    }
}

updraft_plugin_sdk::export!(Sleep);
