//! Write Updraft operators in Rust.
//!
//! An operator is a struct implementing [`Operator`] (two functions: [`Operator::describe`]
//! says what it is and which parameters it takes, [`Operator::execute`] runs one task try),
//! exported with [`export!`]. Build it with `cargo build --release --target wasm32-wasip2`
//! and drop the `.wasm` into the server's plugins folder. The modules [`log`], [`xcom`],
//! [`variables`], [`sql`], [`http`] and [`pods`] call the host; each returns a
//! [`HostError`] naming the missing grant when the server's configuration did not grant the
//! capability.
//!
//! ```ignore
//! use updraft_plugin_sdk::{Context, Descriptor, Failure, Operator, Outcome, json};
//!
//! struct Hello;
//!
//! impl Operator for Hello {
//!     fn describe() -> Descriptor {
//!         Descriptor::new("hello", env!("CARGO_PKG_VERSION"), "Logs a greeting")
//!             .params_schema(json!({"type": "object", "properties": {"name": {"type": "string"}}}))
//!     }
//!     fn execute(ctx: Context) -> Result<Outcome, Failure> {
//!         let name = ctx.param_str("name").unwrap_or("world");
//!         updraft_plugin_sdk::log::info(&format!("hello, {name}"));
//!         Ok(Outcome::done())
//!     }
//! }
//!
//! updraft_plugin_sdk::export!(Hello);
//! ```

extern crate self as updraft_plugin_sdk;

pub use serde_json::{self, Map, Value, json};

/// The bindings generated from `plugins/wit`; used by [`export!`], rarely needed directly.
#[doc(hidden)]
#[allow(unsafe_code, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "operator",
        pub_export_macro: true,
        export_macro_name: "__export_operator_world",
        default_bindings_module: "::updraft_plugin_sdk::bindings",
        runtime_path: "::updraft_plugin_sdk::__wit_bindgen::rt",
    });
}

#[doc(hidden)]
pub use wit_bindgen as __wit_bindgen;

use bindings::updraft::operator::types as wit;

pub use wit::{Capability, ErrorCode};

mod context;
pub mod host;

pub use context::Context;
pub use host::{HostError, http, log, pods, sql, variables, xcom};

/// What an operator says about itself: its name, version, summary, parameter schema and
/// the capabilities it needs.
#[derive(Debug, Clone)]
pub struct Descriptor {
    name: String,
    version: String,
    summary: String,
    params_schema: Value,
    capabilities: Vec<Capability>,
}

impl Descriptor {
    /// A descriptor whose parameters are any JSON object and which needs no capability.
    pub fn new(name: &str, version: &str, summary: &str) -> Self {
        Self {
            name: name.to_owned(),
            version: version.to_owned(),
            summary: summary.to_owned(),
            params_schema: json!({"type": "object"}),
            capabilities: Vec::new(),
        }
    }

    /// Sets the JSON Schema the task's `params` must match (checked at DAG validation).
    pub fn params_schema(mut self, schema: Value) -> Self {
        self.params_schema = schema;
        self
    }

    /// Declares a capability the operator needs.
    pub fn capability(mut self, capability: Capability) -> Self {
        self.capabilities.push(capability);
        self
    }
}

impl From<Descriptor> for wit::Descriptor {
    fn from(d: Descriptor) -> Self {
        wit::Descriptor {
            name: d.name,
            version: d.version,
            summary: d.summary,
            params_schema: d.params_schema.to_string(),
            capabilities: d.capabilities,
        }
    }
}

/// How a task try that did not fail ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Done; the optional value is pushed to XCom as `return_value`.
    Success(Option<Value>),
    /// Sensors: not yet, run the task again after this many seconds.
    Reschedule(u32),
    /// Nothing to do; the task is marked skipped.
    Skip(Option<String>),
}

impl Outcome {
    /// Success without output.
    pub fn done() -> Self {
        Outcome::Success(None)
    }

    /// Success with a value passed downstream through XCom.
    pub fn output(value: Value) -> Self {
        Outcome::Success(Some(value))
    }

    /// Asks to run again after `seconds` (sensors poking for a condition).
    pub fn reschedule(seconds: u32) -> Self {
        Outcome::Reschedule(seconds)
    }
}

/// A task try that failed; the message goes to the task log.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// What went wrong and what to do about it.
    pub message: String,
    /// False when retrying cannot help.
    pub retryable: bool,
}

impl Failure {
    /// A failure that a retry may fix (network, database, ...).
    pub fn new(message: impl Into<String>) -> Self {
        Self { message: message.into(), retryable: true }
    }

    /// A failure that no retry will fix (bad parameters, ...).
    pub fn permanent(message: impl Into<String>) -> Self {
        Self { message: message.into(), retryable: false }
    }
}

impl From<HostError> for Failure {
    fn from(e: HostError) -> Self {
        let retryable = matches!(e.code, ErrorCode::Failed);
        Failure { message: e.message, retryable }
    }
}

/// An Updraft operator: implement it on a struct and pass the struct to [`export!`].
pub trait Operator {
    /// Name, version, summary, parameter schema and capabilities.
    fn describe() -> Descriptor;
    /// Runs one task try. Panics become a failed try with the panic message in the log.
    fn execute(ctx: Context) -> Result<Outcome, Failure>;
}

#[doc(hidden)]
pub fn __describe<O: Operator>() -> wit::Descriptor {
    O::describe().into()
}

#[doc(hidden)]
pub fn __execute<O: Operator>(ctx: wit::TaskContext) -> Result<wit::Outcome, wit::Failure> {
    let ctx = Context::from_wit(ctx).map_err(|f| wit::Failure { message: f.message, retryable: f.retryable })?;
    match O::execute(ctx) {
        Ok(Outcome::Success(v)) => Ok(wit::Outcome::Success(v.map(|v| v.to_string()))),
        Ok(Outcome::Reschedule(s)) => Ok(wit::Outcome::Reschedule(s)),
        Ok(Outcome::Skip(reason)) => Ok(wit::Outcome::Skip(reason)),
        Err(f) => Err(wit::Failure { message: f.message, retryable: f.retryable }),
    }
}

/// Exports a type implementing [`Operator`] as this component's operator.
#[macro_export]
macro_rules! export {
    ($ty:ident) => {
        #[allow(unsafe_code)]
        const _: () = {
            impl $crate::bindings::Guest for $ty {
                fn describe() -> $crate::bindings::updraft::operator::types::Descriptor {
                    $crate::__describe::<$ty>()
                }
                fn execute(
                    context: $crate::bindings::updraft::operator::types::TaskContext,
                ) -> ::core::result::Result<
                    $crate::bindings::updraft::operator::types::Outcome,
                    $crate::bindings::updraft::operator::types::Failure,
                > {
                    $crate::__execute::<$ty>(context)
                }
            }
    $crate::bindings::__export_operator_world!($ty with_types_in $crate::bindings);
        };
    };
}
