//! Task-instance and DAG-run states, with Airflow's names and the transitions the scheduler
//! allows between them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The state of one task instance (Airflow's names; `None` in Airflow is [`TaskState::NoStatus`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    NoStatus,
    Scheduled,
    Queued,
    Running,
    Success,
    Failed,
    UpForRetry,
    UpForReschedule,
    UpstreamFailed,
    Skipped,
}

impl TaskState {
    pub const ALL: [TaskState; 10] = [
        TaskState::NoStatus,
        TaskState::Scheduled,
        TaskState::Queued,
        TaskState::Running,
        TaskState::Success,
        TaskState::Failed,
        TaskState::UpForRetry,
        TaskState::UpForReschedule,
        TaskState::UpstreamFailed,
        TaskState::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::NoStatus => "none",
            TaskState::Scheduled => "scheduled",
            TaskState::Queued => "queued",
            TaskState::Running => "running",
            TaskState::Success => "success",
            TaskState::Failed => "failed",
            TaskState::UpForRetry => "up_for_retry",
            TaskState::UpForReschedule => "up_for_reschedule",
            TaskState::UpstreamFailed => "upstream_failed",
            TaskState::Skipped => "skipped",
        }
    }

    /// A state no scheduling decision leaves on its own (only clearing does).
    pub fn is_finished(self) -> bool {
        matches!(self, TaskState::Success | TaskState::Failed | TaskState::UpstreamFailed | TaskState::Skipped)
    }

    /// Holds an executor slot (and a pool slot).
    pub fn holds_slot(self) -> bool {
        matches!(self, TaskState::Queued | TaskState::Running)
    }

    /// Whether the scheduler may move an instance from `self` to `to`. Marking by a user
    /// (success/failed from any state) and clearing (back to no status) are always allowed
    /// and are not scheduler transitions.
    pub fn can_become(self, to: TaskState) -> bool {
        use TaskState::*;
        matches!(
            (self, to),
            (NoStatus, Scheduled | Skipped | UpstreamFailed)
                | (Scheduled, Queued | Skipped | UpstreamFailed)
                | (Queued, Running | Scheduled | Failed | UpForRetry)
                | (Running, Success | Failed | UpForRetry | UpForReschedule | Skipped)
                | (UpForRetry, Scheduled)
                | (UpForReschedule, Scheduled)
        )
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TaskState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TaskState::ALL.into_iter().find(|t| t.as_str() == s).ok_or_else(|| format!("unknown task state `{s}`"))
    }
}

/// The state of a DAG run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Queued,
    Running,
    Success,
    Failed,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Queued => "queued",
            RunState::Running => "running",
            RunState::Success => "success",
            RunState::Failed => "failed",
        }
    }

    /// The state a run takes once every task instance has finished: failed if any leaf task
    /// failed or was upstream-failed (Airflow judges runs by their leaves), success otherwise.
    pub fn from_leaves(leaves: impl IntoIterator<Item = TaskState>) -> RunState {
        if leaves.into_iter().any(|s| matches!(s, TaskState::Failed | TaskState::UpstreamFailed)) {
            RunState::Failed
        } else {
            RunState::Success
        }
    }
}

impl fmt::Display for RunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RunState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [RunState::Queued, RunState::Running, RunState::Success, RunState::Failed]
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown run state `{s}`"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for state in TaskState::ALL {
            assert_eq!(state.as_str().parse::<TaskState>(), Ok(state));
        }
        assert!("zombie".parse::<TaskState>().is_err());
    }

    #[test]
    fn lifecycle_transitions() {
        use TaskState::*;
        let happy = [NoStatus, Scheduled, Queued, Running, Success];
        assert!(happy.windows(2).all(|w| w[0].can_become(w[1])));
        let retry = [Running, UpForRetry, Scheduled, Queued, Running, Failed];
        assert!(retry.windows(2).all(|w| w[0].can_become(w[1])));
        let sensor = [Running, UpForReschedule, Scheduled];
        assert!(sensor.windows(2).all(|w| w[0].can_become(w[1])));
        assert!(!Success.can_become(Running));
        assert!(!Failed.can_become(Scheduled));
        assert!(!NoStatus.can_become(Running));
    }

    #[test]
    fn runs_are_judged_by_their_leaves() {
        use TaskState::*;
        assert_eq!(RunState::from_leaves([Success, Skipped]), RunState::Success);
        assert_eq!(RunState::from_leaves([Success, UpstreamFailed]), RunState::Failed);
    }
}
