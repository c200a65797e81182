//! The local executor: runs each try in-process, through the plugin host (a fresh WebAssembly
//! instance per try, with its limits), on a tokio runtime of its own so that plugin work never
//! starves the scheduler loop. Reports start and end on the scheduler's channel; the try's log
//! file (`logs/dag_id=…/run_id=…/task_id=…/attempt=N.log`) grows line by line as it runs, and
//! is shipped to the remote logs (`[logging] remote`) when the try ends, before its end is
//! reported.

mod backends;
mod pin;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc::UnboundedSender;
use updraft_executor::{Executor, TryKey, WorkEvent, WorkItem, WorkOutcome};
use updraft_logs::{TaskLogs, TryLogFile};
use updraft_plugin_host::{Registry, TaskContext, TaskOutcome};

pub use backends::{db_backends, db_plugin_store};
pub use pin::PinVersions;

/// Runs tries through a plugin [`Registry`].
pub struct LocalExecutor {
    registry: Arc<Registry>,
    events: UnboundedSender<WorkEvent>,
    runtime: Option<tokio::runtime::Runtime>,
    hostname: String,
    /// Tries running now: how to stop each, and its log.
    running: Arc<Mutex<HashMap<TryKey, Running>>>,
    logs: TaskLogs,
}

impl LocalExecutor {
    /// An executor with `threads` worker threads of its own.
    pub fn new(registry: Arc<Registry>, events: UnboundedSender<WorkEvent>, threads: usize) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("updraft-task")
            .enable_all()
            .build()?;
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "localhost".to_owned());
        Ok(LocalExecutor {
            registry,
            events,
            runtime: Some(runtime),
            hostname,
            running: Arc::default(),
            logs: TaskLogs::default(),
        })
    }

    /// Ships each try's log to `logs`' remote when the try ends (without it, logs stay local).
    pub fn with_logs(mut self, logs: TaskLogs) -> Self {
        self.logs = logs;
        self
    }
}

/// A try in flight: how to stop it, and its log.
type Running = (tokio::task::AbortHandle, TryLogFile);

impl Drop for LocalExecutor {
    fn drop(&mut self) {
        // Dropping a runtime inside another one's context panics; let its threads finish alone.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn map_outcome(outcome: &TaskOutcome) -> WorkOutcome {
    match outcome {
        TaskOutcome::Success { .. } => WorkOutcome::Success,
        TaskOutcome::Skipped { .. } => WorkOutcome::Skipped,
        TaskOutcome::Reschedule { after } => WorkOutcome::Reschedule { after: *after },
        TaskOutcome::Failed { message, retryable } => {
            WorkOutcome::Failed { message: message.clone(), retryable: *retryable }
        }
        other => WorkOutcome::Failed { message: other.describe(), retryable: true },
    }
}

/// Appends the executor's own lines to a try's log; a log that cannot be written never changes
/// how the try ends.
fn append(log: &TryLogFile, text: &str) {
    if let Err(error) = log.append(text) {
        tracing::warn!(%error, "could not write the try's log");
    }
}

impl Executor for LocalExecutor {
    fn name(&self) -> &'static str {
        "local"
    }

    fn submit(&self, item: WorkItem) {
        let Some(runtime) = &self.runtime else { return };
        let registry = Arc::clone(&self.registry);
        let events = self.events.clone();
        let hostname = self.hostname.clone();
        let key = item.key.clone();
        let log = item.log();
        let logs = self.logs.clone();
        let runner = runtime.spawn(async move {
            let log = item.log();
            let _ = events.send(WorkEvent::Started { key: item.key.clone(), hostname });
            // The version the try was dispatched with, even if another has replaced it since.
            let outcome = match registry.resolve(&item.operator, item.plugin_sha256.as_deref()).await {
                Err(error) => {
                    let message = format!("operator `{}` is not available: {error}", item.operator);
                    append(&log, &format!("[Error] {message}\n"));
                    WorkOutcome::Failed { message, retryable: false }
                }
                Ok(plugin) => {
                    let ctx = TaskContext {
                        dag_id: item.dag_id.clone(),
                        run_id: item.run_id.clone(),
                        task_id: item.task_id.clone(),
                        try_number: item.key.try_number,
                        logical_date: item.logical_date.clone(),
                        data_interval_start: item.data_interval_start.clone(),
                        data_interval_end: item.data_interval_end.clone(),
                        params: item.params.clone(),
                        execution_timeout: item.execution_timeout,
                        // Lines reach the file as they are logged: a running try's log can be
                        // followed.
                        log_file: Some(log.clone()),
                    };
                    let report = registry.runtime().run(&plugin, &ctx).await;
                    map_outcome(&report.outcome)
                }
            };
            // Shipped before the end is reported: once a try shows as finished, its log is in
            // the remote store (or the failure to put it there is logged).
            logs.ship(&log).await;
            let _ = events.send(WorkEvent::Finished { key: item.key, outcome });
        });
        lock(&self.running).insert(key.clone(), (runner.abort_handle(), log.clone()));
        // A runner that dies (a bug in the host panics) still ends its try, as failed and
        // retryable: no task instance waits for a report that never comes. A cancelled one
        // reports nothing: the scheduler already moved on.
        let events = self.events.clone();
        let running = Arc::clone(&self.running);
        let logs = self.logs.clone();
        runtime.spawn(async move {
            let result = runner.await;
            lock(&running).remove(&key);
            if let Err(error) = result
                && !error.is_cancelled()
            {
                let message = format!("the task runner crashed: {error}");
                append(&log, &format!("[Error] {message}\n"));
                logs.ship(&log).await;
                let _ =
                    events.send(WorkEvent::Finished { key, outcome: WorkOutcome::Failed { message, retryable: true } });
            }
        });
    }

    /// Aborts the try's runner: its instance is dropped at its next await, and a pod it
    /// launched is deleted.
    fn cancel(&self, key: &TryKey) {
        let Some((handle, log)) = lock(&self.running).remove(key) else { return };
        handle.abort();
        append(&log, "[updraft] stopped: the task was cleared or marked while it ran\n");
        self.logs.ship_later(log);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
