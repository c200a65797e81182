//! `updraft:operator/log`: plugin log calls go to the task log (and to tracing at debug).

use crate::bindings::updraft::operator::log::{Host, Level};
use crate::outcome::LogLevel;

use super::HostState;

impl Host for HostState {
    async fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        let level = match level {
            Level::Trace => LogLevel::Trace,
            Level::Debug => LogLevel::Debug,
            Level::Info => LogLevel::Info,
            Level::Warn => LogLevel::Warn,
            Level::Error => LogLevel::Error,
        };
        self.log.push(level, message);
        Ok(())
    }
}
