//! Test fixture: calls the host interface named by param `call` so that tests can check
//! grants, limits and errors; prints to stderr and logs so that capture can be checked.

use updraft_plugin_sdk::{Context, Descriptor, Failure, Operator, Outcome, Value, json, log, variables, xcom};

use std::sync::atomic::{AtomicU32, Ordering};

static CALLS: AtomicU32 = AtomicU32::new(0);

struct Caps;

impl Operator for Caps {
    fn describe() -> Descriptor {
        Descriptor::new("caps", "0.1.0", "Exercises host interfaces")
    }
    fn execute(ctx: Context) -> Result<Outcome, Failure> {
        eprintln!("stderr line from caps");
        match ctx.require_str("call")? {
            "variable" => {
                let v = variables::get(ctx.require_str("key")?)?;
                Ok(Outcome::output(json!(v)))
            }
            "xcom" => {
                xcom::push("k", &json!({"n": 1}))?;
                let v = xcom::pull(&ctx.task_id, "k")?;
                Ok(Outcome::output(v.unwrap_or(Value::Null)))
            }
            "log_flood" => {
                let line = "x".repeat(1000);
                for _ in 0..10_000 {
                    log::info(&line);
                }
                Ok(Outcome::done())
            }
            "stderr_flood" => {
                let line = "y".repeat(1000);
                for _ in 0..10_000 {
                    eprintln!("{line}");
                }
                Ok(Outcome::done())
            }
            "counter" => {
                // Counts calls in this instance: a fresh instance per try always returns 1.
                let n = CALLS.fetch_add(1, Ordering::Relaxed) + 1;
                Ok(Outcome::output(json!(n)))
            }
            "skip" => Ok(Outcome::Skip(Some("nothing to do".into()))),
            other => Err(Failure::permanent(format!("unknown call {other}"))),
        }
    }
}

updraft_plugin_sdk::export!(Caps);
