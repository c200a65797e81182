//! One module per top-level subcommand of `updraft`.

pub mod dags;
