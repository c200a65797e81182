//! How a task try ended, and what it wrote to its log.

use std::time::Duration;

use serde::Serialize;

/// How a task try ended. Each way a plugin can misbehave has its own variant, so the log and
/// the caller can tell a timeout from an out-of-memory from an ordinary failure; the local
/// executor turns it into the `updraft_executor::WorkOutcome` a scheduler acts on (every
/// misbehaviour a retryable failure described by [`TaskOutcome::describe`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum TaskOutcome {
    /// The operator succeeded; `output` was pushed to XCom as `return_value`.
    Success { output: Option<serde_json::Value> },
    /// The operator returned a failure (or broke a host limit it could have respected).
    Failed { message: String, retryable: bool },
    /// The try ran past its `execution_timeout` and was stopped.
    TimedOut { after: Duration },
    /// The plugin computed for longer than its CPU budget (`limits.max_cpu_ms`).
    CpuExhausted { budget: Duration },
    /// The plugin tried to grow its memory beyond the limit.
    OutOfMemory { limit_bytes: u64, requested_bytes: u64 },
    /// The plugin trapped or panicked; `message` says where (and the panic message).
    Trapped { message: String },
    /// A sensor asked to be run again after `after`.
    Reschedule { after: Duration },
    /// The operator had nothing to do.
    Skipped { reason: Option<String> },
}

impl TaskOutcome {
    /// True for the outcomes after which the task counts as done (success or skipped).
    pub fn is_success(&self) -> bool {
        matches!(self, TaskOutcome::Success { .. } | TaskOutcome::Skipped { .. })
    }

    /// A one-line description for the task log.
    pub fn describe(&self) -> String {
        match self {
            TaskOutcome::Success { .. } => "success".to_owned(),
            TaskOutcome::Failed { message, .. } => format!("failed: {message}"),
            TaskOutcome::TimedOut { after } => {
                format!("timed out: stopped after its execution_timeout of {after:?}")
            }
            TaskOutcome::CpuExhausted { budget } => {
                format!("CPU budget exhausted: the plugin computed for more than {budget:?} (limits.max_cpu_ms)")
            }
            TaskOutcome::OutOfMemory { limit_bytes, requested_bytes } => format!(
                "out of memory: the plugin asked for {requested_bytes} bytes of linear memory, more than its limit of {limit_bytes} bytes"
            ),
            TaskOutcome::Trapped { message } => format!("plugin crashed: {message}"),
            TaskOutcome::Reschedule { after } => format!("rescheduled in {after:?}"),
            TaskOutcome::Skipped { reason } => {
                format!("skipped{}", reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default())
            }
        }
    }
}

/// Severity of a task log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// One line of a task log, with its time relative to the start of the try.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogLine {
    pub elapsed: Duration,
    pub level: LogLevel,
    pub message: String,
}

impl LogLine {
    /// The line as the task log file holds it.
    pub fn text(&self) -> String {
        format!("[{:?}] {}\n", self.level, self.message)
    }
}

/// Everything a task try produced: outcome, log (plugin log calls, then its stderr) and time.
#[derive(Debug, Clone, Serialize)]
pub struct TaskReport {
    pub outcome: TaskOutcome,
    pub log: Vec<LogLine>,
    pub duration: Duration,
    /// Name and version of the plugin that ran (the version it started with).
    pub plugin: String,
    pub plugin_version: String,
}

impl TaskReport {
    /// The log as text, one line per entry.
    pub fn log_text(&self) -> String {
        let mut out = String::new();
        for line in &self.log {
            out.push_str(&line.text());
        }
        out
    }
}
