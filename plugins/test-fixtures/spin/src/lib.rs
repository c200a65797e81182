//! Test fixture: an operator that never returns (the host must stop it at its timeout).

use updraft_plugin_sdk::{Context, Descriptor, Failure, Operator, Outcome};

struct Spin;

impl Operator for Spin {
    fn describe() -> Descriptor {
        Descriptor::new("spin", "0.1.0", "Loops forever")
    }
    fn execute(_ctx: Context) -> Result<Outcome, Failure> {
        let mut x: u64 = 0;
        loop {
            x = std::hint::black_box(x.wrapping_add(1));
        }
    }
}

updraft_plugin_sdk::export!(Spin);
