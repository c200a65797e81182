//! One module per top-level subcommand of `updraft`, plus `meta`: how commands find the
//! metadata database and its encryption key, and `results`: a try's outcome as the worker of a
//! task pod records it and the kubernetes executor reads it.

pub mod api_server;
pub mod clean;
pub mod config;
pub mod connections;
pub mod dags;
pub mod db;
pub mod logging;
pub mod meta;
pub mod metrics;
pub mod plugins;
pub mod pools;
pub mod results;
pub mod scheduler;
pub mod standalone;
pub mod tasks;
pub mod users;
pub mod variables;

/// Writes command output to stdout. A reader that went away (`| head`, `| grep -q`) ends the
/// output quietly instead of panicking, as Unix tools do.
pub fn emit(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}
