//! Integration tests of the plugin host against real components: the built-in operators and
//! the misbehaving fixtures of `plugins/test-fixtures/`, a real SQLite file, the PostgreSQL
//! at 127.0.0.1:5432, and a local HTTP server.

mod authoring;
mod builtins;
mod dag;
mod limits;
mod registry;
mod sql;
mod store;
mod support;

/// The params checker of updraft-dag (`updraft_dag::params` once its lib.rs exports it).
#[path = "../../../updraft-dag/src/params.rs"]
mod params;
