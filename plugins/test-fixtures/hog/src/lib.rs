//! Test fixture: an operator that allocates `mib` MiB (the host must stop it at its limit).

use updraft_plugin_sdk::{Context, Descriptor, Failure, Operator, Outcome, Value};

struct Hog;

impl Operator for Hog {
    fn describe() -> Descriptor {
        Descriptor::new("hog", "0.1.0", "Allocates memory")
    }
    fn execute(ctx: Context) -> Result<Outcome, Failure> {
        let mib = ctx.params.get("mib").and_then(Value::as_u64).unwrap_or(1024) as usize;
        let mut blocks = Vec::new();
        for _ in 0..mib {
            blocks.push(std::hint::black_box(vec![1u8; 1 << 20]));
        }
        Ok(Outcome::output(Value::from(blocks.len())))
    }
}

updraft_plugin_sdk::export!(Hog);
