//! The built-in operators (`plugins/operators/*`), compiled to `wasm32-wasip2` by this
//! crate's build script and embedded in the server.

include!(concat!(env!("OUT_DIR"), "/builtins.rs"));

/// Names of the built-in operators.
pub fn builtin_names() -> Vec<&'static str> {
    BUILTINS.iter().map(|(name, _)| *name).collect()
}

/// The built-in operators as (name, component bytes).
pub(crate) fn builtins() -> &'static [(&'static str, &'static [u8])] {
    BUILTINS
}
