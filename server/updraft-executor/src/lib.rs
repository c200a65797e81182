//! The contract between a scheduler and an executor. The scheduler hands over a [`WorkItem`]
//! (one try of one task, fully rendered, named by its [`TryKey`]); the executor runs it where it
//! runs tries (in this process through the plugin host, `updraft-executor-local`; in a pod of
//! its own, `updraft-executor-kubernetes`) and reports [`WorkEvent`]s on the channel it was given:
//! started, then finished with a [`WorkOutcome`]. Whatever an executor writes to a try's log
//! goes through the try's [`TryLogFile`] ([`WorkItem::log`]).
//!
//! Only the shapes both sides share live here, so an executor needs neither the scheduler, nor
//! the DAG model, nor the metadata database, and a scheduler can be tested with a fake
//! executor.

#![warn(missing_docs)]

use std::path::PathBuf;
use std::time::Duration;

use updraft_logs::{TryLog, TryLogFile};

/// Identifies one try of one task instance while its run is active: what the scheduler keys
/// the tries in flight by, and what an executor's events name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TryKey {
    /// The run's row id in the metadata database.
    pub run_pk: i64,
    /// The task's index in its DAG's task list, as the scheduler loaded the DAG.
    pub task_index: u32,
    /// The try number, from 1.
    pub try_number: u32,
}

/// One try to run, with everything rendered: an executor needs nothing else to run it.
#[derive(Debug, Clone)]
pub struct WorkItem {
    /// Which try this is.
    pub key: TryKey,
    /// The DAG's id.
    pub dag_id: String,
    /// The run's id (`manual__…`, `scheduled__…`).
    pub run_id: String,
    /// The task's id.
    pub task_id: String,
    /// The operator that runs the task (a plugin's name).
    pub operator: String,
    /// Rendered params (a JSON object); for the sql operator it carries `sql` and `connection`.
    pub params: serde_json::Value,
    /// The run's logical date, RFC 3339.
    pub logical_date: String,
    /// The start of the run's data interval, RFC 3339.
    pub data_interval_start: String,
    /// The end of the run's data interval, RFC 3339.
    pub data_interval_end: String,
    /// How long the try may run; `None` leaves it to the plugin host's default.
    pub execution_timeout: Option<Duration>,
    /// Where the try's log goes; write to it through [`WorkItem::log`].
    pub log_path: PathBuf,
    /// The task's `kubernetes:` block (pod overrides for the kubernetes executor).
    pub kubernetes: Option<serde_json::Value>,
    /// The content hash of the operator plugin's version the try was dispatched with, which it
    /// runs even if the operator is replaced before it starts; `None` for a built-in operator
    /// (the binary is its version).
    pub plugin_sha256: Option<String>,
}

impl WorkItem {
    /// The try's log: every line written about the try, by whoever runs it, is appended
    /// through it, and it is what is shipped to the remote logs when the try ends.
    pub fn log(&self) -> TryLogFile {
        let log = TryLog::new(&self.dag_id, &self.run_id, &self.task_id, self.key.try_number);
        TryLogFile::new(log, self.log_path.clone())
    }
}

/// How a try ended, as the scheduler needs to know it: what decides the task instance's next
/// state. (The plugin host tells more, `updraft_plugin_host::TaskOutcome`: a timeout, running
/// out of memory or of CPU, a trap; to a scheduler each of these is a retryable failure, with
/// the host's description as its message.)
#[derive(Debug, Clone, PartialEq)]
pub enum WorkOutcome {
    /// The task did its work.
    Success,
    /// The task had nothing to do.
    Skipped,
    /// Failed; `retryable: false` skips the remaining retries (the operator said so).
    Failed {
        /// What went wrong, for people.
        message: String,
        /// Whether a retry may help.
        retryable: bool,
    },
    /// A sensor asks to run again after `after`, without holding a slot meanwhile.
    Reschedule {
        /// How long to wait before the next try.
        after: Duration,
    },
}

/// What an executor reports about a try it was given.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkEvent {
    /// The try started running on `hostname` (a pod's name for the kubernetes executor).
    Started {
        /// Which try.
        key: TryKey,
        /// Where it runs.
        hostname: String,
    },
    /// The try ended.
    Finished {
        /// Which try.
        key: TryKey,
        /// How it ended.
        outcome: WorkOutcome,
    },
}

/// Runs tries. `submit` must not block: executors spawn the work and report on their channel.
pub trait Executor: Send + Sync {
    /// The executor's name, stored on task instances (`local`, `kubernetes`).
    fn name(&self) -> &'static str;
    /// Starts running `item`; its start and end are reported as [`WorkEvent`]s.
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn a_work_items_log_is_its_try_in_its_file() {
        let item = WorkItem {
            key: TryKey { run_pk: 7, task_index: 2, try_number: 3 },
            dag_id: "etl".into(),
            run_id: "manual__1".into(),
            task_id: "load".into(),
            operator: "noop".into(),
            params: serde_json::json!({}),
            logical_date: "2024-01-01T00:00:00+00:00".into(),
            data_interval_start: "2024-01-01T00:00:00+00:00".into(),
            data_interval_end: "2024-01-01T00:00:00+00:00".into(),
            execution_timeout: None,
            log_path: "/logs/load.log".into(),
            kubernetes: None,
            plugin_sha256: None,
        };
        let log = item.log();
        assert_eq!(log.log(), &TryLog::new("etl", "manual__1", "load", 3));
        assert_eq!(log.path(), Path::new("/logs/load.log"));
    }
}
