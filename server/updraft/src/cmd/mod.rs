//! One module per top-level subcommand of `updraft`, plus `meta`: how commands find the
//! metadata database and its encryption key.

pub mod connections;
pub mod dags;
pub mod db;
pub mod meta;
pub mod plugins;
pub mod pools;
pub mod scheduler;
pub mod standalone;
pub mod tasks;
pub mod variables;
