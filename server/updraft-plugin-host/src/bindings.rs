//! Host-side bindings generated from `plugins/wit`: async everywhere, and every import may
//! trap (`wasmtime::Result<Result<T, host-error>>`: the outer error kills the instance, the
//! inner one is an ordinary error the operator handles).

wasmtime::component::bindgen!({
    path: "../../plugins/wit",
    world: "operator",
    imports: { default: async | trappable },
    exports: { default: async },
});

// The generated records stay their own types: they are the ABI the guest sees (params as JSON
// text, the outcome as the WIT variant), converted at the one call in `run.rs`.
pub(crate) use self::TaskContext as WitTaskContext;
pub(crate) use updraft::operator::types::{Capability, ErrorCode, HostError};
