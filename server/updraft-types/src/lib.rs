//! Typed identifiers shared by the server crates and the web app, and (`api`) the bodies of
//! the REST API's answers.
//!
//! A `DagId` is never confused with a `TaskId` or a `RunId`: each boundary (API, database,
//! executor) passes these newtypes, not bare strings. The crate depends on serde only, so it
//! also builds for the browser.

pub mod api;
pub mod role;

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(id: impl Into<String>) -> Self {
                $name(id.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

string_id!(
    /// The id of a DAG (`dag:` in its file).
    DagId
);
string_id!(
    /// The id of a task within its DAG.
    TaskId
);
string_id!(
    /// The id of a DAG run, e.g. `manual__2026-01-01T00:00:00+00:00`.
    RunId
);

/// The number of a task try: 1 for the first run, incremented by each retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TryNumber(pub u32);

impl fmt::Display for TryNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
