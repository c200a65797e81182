//! One module per top-level subcommand of `updraft`, plus `meta`: how commands find the
//! metadata database and its encryption key.

pub mod connections;
pub mod dags;
pub mod db;
pub mod meta;
pub mod variables;
