//! Test fixture: an operator that panics (the host must turn it into a failed try).

use updraft_plugin_sdk::{Context, Descriptor, Failure, Operator, Outcome};

struct Panic;

impl Operator for Panic {
    fn describe() -> Descriptor {
        Descriptor::new("panic", "0.1.0", "Panics")
    }
    #[allow(clippy::panic)]
    fn execute(_ctx: Context) -> Result<Outcome, Failure> {
        panic!("the operator panicked on purpose");
    }
}

updraft_plugin_sdk::export!(Panic);
