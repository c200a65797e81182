//! The contract between the scheduler and an executor: the scheduler hands over a [`WorkItem`]
//! (one try of one task, fully rendered), the executor reports [`WorkEvent`]s back on a
//! channel: started, then finished with a [`WorkOutcome`]. Executors: `local` (in-process,
//! through the plugin host) and, later, `kubernetes` (a pod per try).

use std::path::PathBuf;
use std::time::Duration;

/// Identifies one try of one task instance.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TryKey {
    pub run_pk: i64,
    pub task_index: u32,
    pub try_number: u32,
}

/// One try to run, with everything rendered.
#[derive(Debug, Clone)]
pub struct WorkItem {
    pub key: TryKey,
    pub dag_id: String,
    pub run_id: String,
    pub task_id: String,
    pub operator: String,
    /// Rendered params (a JSON object); for the sql operator it carries `sql` and `connection`.
    pub params: serde_json::Value,
    pub logical_date: String,
    pub data_interval_start: String,
    pub data_interval_end: String,
    pub execution_timeout: Option<Duration>,
    /// Where the try's log goes.
    pub log_path: PathBuf,
    /// The task's `kubernetes:` block (pod overrides for the kubernetes executor).
    pub kubernetes: Option<serde_json::Value>,
    /// The content hash of the operator plugin's version the try was dispatched with, which it
    /// runs even if the operator is replaced before it starts; `None` for a built-in operator
    /// (the binary is its version).
    pub plugin_sha256: Option<String>,
}

/// How a try ended, as the scheduler needs to know it.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkOutcome {
    Success,
    Skipped,
    /// Failed; `retryable: false` skips the remaining retries (the operator said so).
    Failed {
        message: String,
        retryable: bool,
    },
    /// A sensor asks to run again after `after`, without holding a slot meanwhile.
    Reschedule {
        after: Duration,
    },
}

/// What an executor reports.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkEvent {
    Started { key: TryKey, hostname: String },
    Finished { key: TryKey, outcome: WorkOutcome },
}

/// Runs tries. `submit` must not block: executors spawn the work and report on their channel.
pub trait Executor: Send + Sync {
    /// The executor's name, stored on task instances (`local`, `kubernetes`).
    fn name(&self) -> &'static str;
    fn submit(&self, item: WorkItem);
    /// Takes over tries that were in flight under a scheduler that is gone (their task
    /// instances say queued or running with this try number). The default runs them again; an
    /// executor whose tries outlive a scheduler (pods) finds and adopts them instead, so that
    /// nothing runs twice.
    fn adopt(&self, items: Vec<WorkItem>) {
        for item in items {
            self.submit(item);
        }
    }
    /// Stops a running try that was cleared or marked meanwhile; its end need not be reported.
    /// Executors that cannot stop a try ignore it (the default).
    fn cancel(&self, key: &TryKey) {
        let _ = key;
    }
}
