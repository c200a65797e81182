//! Updraft's vocabulary, one definition each, shared by the server crates and the web app:
//! typed identifiers, task and run states and run types (`state`), the [`Timestamp`] every
//! table stores (`time`), and (`api`) the bodies of the REST API's answers.
//!
//! A `DagId` is never confused with a `TaskId` or a `RunId`, nor a state with any other
//! string: the database rows, the scheduler, the API, the CLI and the web app pass these
//! types, and only (de)serialisation turns them into text (an executor receives a rendered
//! `WorkItem`, whose ids are the text a pod's command line and log path are made of). The crate depends on serde only
//! (plus sqlx behind the `sqlx` feature, which the database crate enables, so that rows decode
//! straight into these types), so it also builds for the browser.

pub mod api;
pub mod role;
#[cfg(feature = "sqlx")]
mod sql;
pub mod state;
pub mod time;

pub use role::Role;
pub use state::{RunState, RunType, TaskState};
pub use time::Timestamp;

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps an id.
            pub fn new(id: impl Into<String>) -> Self {
                $name(id.into())
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The id as an owned string.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        /// An id reads as the text it is wherever text is read (it never goes the other way:
        /// text becomes an id only through `new`/`From`, where the kind of id is chosen).
        impl std::ops::Deref for $name {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> Self {
                $name(id)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                $name(id.to_owned())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(&self.0)
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
