//! Running one task try: a fresh store and instance, `execute`, and the classification of
//! whatever happened into a [`TaskOutcome`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use updraft_logs::TryLogFile;

use crate::backends::TaskKey;
use crate::bindings::{Outcome, WitTaskContext};
use crate::outcome::{LogLevel, LogLine, TaskOutcome, TaskReport};
use crate::plugin::Plugin;
use crate::runtime::{EPOCH_TICK, Runtime};

/// The task try to run: identifiers, dates (RFC 3339), rendered params and deadline. It is
/// what an operator sees of a try, so it needs no scheduler: an executor makes it from its
/// `updraft_executor::WorkItem` (which also carries what only dispatch needs: the run's row id,
/// the task's index, pod overrides, the pinned plugin version), tests and benchmarks with
/// [`TaskContext::new`].
#[derive(Debug, Clone, Default)]
pub struct TaskContext {
    pub dag_id: String,
    pub run_id: String,
    pub task_id: String,
    pub try_number: u32,
    pub logical_date: String,
    pub data_interval_start: String,
    pub data_interval_end: String,
    /// The task's params with templates rendered (a JSON object).
    pub params: Value,
    /// `None` uses the configured default.
    pub execution_timeout: Option<Duration>,
    /// The try's log file: every line is appended to it as it is logged (a running try's log
    /// can be followed), and the rest of the report's log at the end. `None`: the caller
    /// writes [`TaskReport::log_text`] where it wants.
    pub log_file: Option<TryLogFile>,
}

impl TaskContext {
    /// A context for `task_id` with these params and default everything else (tests, demos).
    pub fn new(task_id: &str, params: Value) -> Self {
        Self {
            dag_id: "adhoc".into(),
            run_id: "manual__adhoc".into(),
            task_id: task_id.into(),
            try_number: 1,
            logical_date: "1970-01-01T00:00:00Z".into(),
            data_interval_start: "1970-01-01T00:00:00Z".into(),
            data_interval_end: "1970-01-01T00:00:00Z".into(),
            params,
            execution_timeout: None,
            log_file: None,
        }
    }

    fn key(&self) -> TaskKey {
        TaskKey {
            dag_id: self.dag_id.clone(),
            run_id: self.run_id.clone(),
            task_id: self.task_id.clone(),
            try_number: self.try_number,
        }
    }
}

/// The part of a panic message a person needs: Rust guests print
/// "thread '…' panicked at FILE:LINE:COL:\nMESSAGE" to stderr before aborting.
fn panic_message(stderr: &str) -> Option<String> {
    let at = stderr.find("panicked at ")?;
    let rest = &stderr[at + "panicked at ".len()..];
    let mut lines = rest.lines();
    let location = lines.next()?.trim_end_matches(':');
    let message: Vec<&str> = lines.take_while(|l| !l.starts_with("note:")).collect();
    Some(format!("the plugin panicked at {location}: {}", message.join("\n")))
}

impl Runtime {
    /// Runs one try of `ctx` on `plugin` in a fresh instance. Never fails: whatever the plugin
    /// does ends in the report's outcome, with the reason in its log.
    pub async fn run(&self, plugin: &Arc<Plugin>, ctx: &TaskContext) -> TaskReport {
        let started = Instant::now();
        let limits = self.config.limits_for(&plugin.grants);
        let timeout = ctx.execution_timeout.unwrap_or(limits.default_timeout);
        let name = &plugin.descriptor.name;
        let mut store = self.new_store(name, plugin.grants.clone(), ctx.key(), timeout, ctx.log_file.as_ref());
        let max_cpu_ms = limits.max_cpu_ms;
        if max_cpu_ms > 0 {
            let tick_ms = EPOCH_TICK.as_millis().max(1) as u64;
            store.data_mut().cpu_budget_ticks = max_cpu_ms.div_ceil(tick_ms);
        }
        let wit_ctx = WitTaskContext {
            dag_id: ctx.dag_id.clone(),
            run_id: ctx.run_id.clone(),
            task_id: ctx.task_id.clone(),
            try_number: ctx.try_number,
            logical_date: ctx.logical_date.clone(),
            data_interval_start: ctx.data_interval_start.clone(),
            data_interval_end: ctx.data_interval_end.clone(),
            params: if ctx.params.is_null() { "{}".to_owned() } else { ctx.params.to_string() },
        };
        let mut instantiated = false;
        let result = {
            let call = async {
                let instance = plugin.pre.instantiate_async(&mut store).await?;
                instantiated = true;
                instance.call_execute(&mut store, &wit_ctx).await
            };
            // The epoch callback stops a plugin that computes past its deadline; this timer
            // stops one that waits (sleeps, or blocks in a host call) past it.
            tokio::time::timeout(timeout, call).await
        };
        let state = store.data();
        let outcome = match result {
            Err(_) => TaskOutcome::TimedOut { after: timeout },
            Ok(Err(_)) if state.timed_out => TaskOutcome::TimedOut { after: timeout },
            Ok(Err(_)) if state.cpu_exhausted => {
                TaskOutcome::CpuExhausted { budget: Duration::from_millis(max_cpu_ms) }
            }
            Ok(Err(_)) if state.limiter.exceeded.is_some() => {
                let (limit_bytes, requested_bytes) = state.limiter.exceeded.unwrap_or_default();
                TaskOutcome::OutOfMemory { limit_bytes, requested_bytes }
            }
            Ok(Err(error)) if !instantiated => TaskOutcome::Failed {
                // Typically the instance pool is full: a retry later will find room.
                message: format!(
                    "could not start an instance of the plugin: {error:#} (this server runs at most {} plugin instances at once: limits.max_instances)",
                    self.config.limits.max_instances
                ),
                retryable: true,
            },
            Ok(Err(trap)) => {
                let (stderr, _) = state.stderr.contents();
                let message = panic_message(&stderr).unwrap_or_else(|| format!("{trap:#}"));
                TaskOutcome::Trapped { message }
            }
            Ok(Ok(Err(failure))) => TaskOutcome::Failed { message: failure.message, retryable: failure.retryable },
            Ok(Ok(Ok(Outcome::Reschedule(secs)))) => {
                TaskOutcome::Reschedule { after: Duration::from_secs(u64::from(secs)) }
            }
            Ok(Ok(Ok(Outcome::Skip(reason)))) => TaskOutcome::Skipped { reason },
            Ok(Ok(Ok(Outcome::Success(None)))) => TaskOutcome::Success { output: None },
            Ok(Ok(Ok(Outcome::Success(Some(text))))) => self.store_output(ctx, text).await,
        };
        let state = store.into_data();
        let written = state.log.written_live();
        let mut log = state.log.finish(&state.stderr);
        let level = if outcome.is_success() || matches!(outcome, TaskOutcome::Reschedule { .. }) {
            LogLevel::Info
        } else {
            LogLevel::Error
        };
        log.push(LogLine {
            elapsed: started.elapsed(),
            level,
            message: format!("[updraft] {} {}: {}", name, plugin.descriptor.version, outcome.describe()),
        });
        if let (Some(file), Some(written)) = (&ctx.log_file, written) {
            let rest: String = log.iter().skip(written).map(LogLine::text).collect();
            if let Err(error) = file.append(&rest) {
                tracing::warn!("writing the end of the log of {}: {error}", ctx.task_id);
            }
        }
        TaskReport {
            outcome,
            log,
            duration: started.elapsed(),
            plugin: name.clone(),
            plugin_version: plugin.descriptor.version.clone(),
        }
    }

    /// Checks the output's size and JSON, and pushes it to XCom as `return_value`.
    async fn store_output(&self, ctx: &TaskContext, text: String) -> TaskOutcome {
        let max = self.config.limits.max_output_bytes;
        if text.len() > max {
            return TaskOutcome::Failed {
                message: format!(
                    "the operator's output is {} bytes, more than the limit of {max}: return a reference (a table name, a path) instead",
                    text.len()
                ),
                retryable: false,
            };
        }
        let value: Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                return TaskOutcome::Failed {
                    message: format!("the operator's output is not JSON: {e}"),
                    retryable: false,
                };
            }
        };
        if let Err(e) = self.services.backends.xcom.push(&ctx.key(), "return_value", value.clone()).await {
            return TaskOutcome::Failed { message: format!("storing the output in XCom failed: {e}"), retryable: true };
        }
        TaskOutcome::Success { output: Some(value) }
    }
}

#[cfg(test)]
mod tests {
    use super::panic_message;

    #[test]
    fn panic_message_is_extracted_from_stderr() {
        let stderr = "thread '<unnamed>' panicked at src/lib.rs:14:9:\nboom\nnote: run with `RUST_BACKTRACE=1`\n";
        assert_eq!(panic_message(stderr).as_deref(), Some("the plugin panicked at src/lib.rs:14:9: boom"));
        assert_eq!(panic_message("nothing"), None);
    }
}
