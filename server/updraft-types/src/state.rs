//! Task-instance and DAG-run states and run types, with Airflow's names (stored as that text
//! in the metadata database and sent as that text by the API), and the transitions the
//! scheduler allows between states.

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
    /// Every task state.
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

    /// The state's name, as stored (`none` for no status).
    pub const fn as_str(self) -> &'static str {
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

    /// A state as Airflow's REST API names it in filters: the stored names, and `no_status`
    /// for [`TaskState::NoStatus`] (stored as `none`).
    pub fn from_airflow_name(name: &str) -> Option<TaskState> {
        match name {
            "no_status" => Some(TaskState::NoStatus),
            other => other.parse().ok(),
        }
    }

    /// Failed, or upstream-failed: what "only failed" clears pick.
    pub fn is_failure(self) -> bool {
        matches!(self, TaskState::Failed | TaskState::UpstreamFailed)
    }

    /// Queued or running: a try was handed to an executor and has not ended.
    pub fn is_in_flight(self) -> bool {
        matches!(self, TaskState::Queued | TaskState::Running)
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
        f.pad(self.as_str())
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
    /// Every run state, in lifecycle order.
    pub const ALL: [RunState; 4] = [RunState::Queued, RunState::Running, RunState::Success, RunState::Failed];

    /// The state's name, as stored and as the API says it.
    pub const fn as_str(self) -> &'static str {
        match self {
            RunState::Queued => "queued",
            RunState::Running => "running",
            RunState::Success => "success",
            RunState::Failed => "failed",
        }
    }

    /// Whether the run has ended (success or failed).
    pub fn is_finished(self) -> bool {
        matches!(self, RunState::Success | RunState::Failed)
    }

    /// The state a run takes once every task instance has finished: failed if any leaf task
    /// failed or was upstream-failed (Airflow judges runs by their leaves), success otherwise.
    pub fn from_leaves(leaves: impl IntoIterator<Item = TaskState>) -> RunState {
        if leaves.into_iter().any(TaskState::is_failure) { RunState::Failed } else { RunState::Success }
    }
}

impl fmt::Display for RunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for RunState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RunState::ALL.into_iter().find(|r| r.as_str() == s).ok_or_else(|| format!("unknown run state `{s}`"))
    }
}

/// Why a DAG run exists (Airflow's `run_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunType {
    /// Made due by the DAG's timetable.
    Scheduled,
    /// Triggered by a user (API, web app, `updraft dags trigger`).
    Manual,
    /// One interval of `updraft dags backfill`.
    Backfill,
    /// Triggered by an operator of another DAG (Airflow's `TriggerDagRunOperator`).
    OperatorTriggered,
    /// Triggered by an update of an asset the DAG is scheduled on.
    AssetTriggered,
}

impl RunType {
    /// Every run type.
    pub const ALL: [RunType; 5] =
        [RunType::Scheduled, RunType::Manual, RunType::Backfill, RunType::OperatorTriggered, RunType::AssetTriggered];

    /// The type's name, as stored and as the API says it.
    pub const fn as_str(self) -> &'static str {
        match self {
            RunType::Scheduled => "scheduled",
            RunType::Manual => "manual",
            RunType::Backfill => "backfill",
            RunType::OperatorTriggered => "operator_triggered",
            RunType::AssetTriggered => "asset_triggered",
        }
    }
}

impl fmt::Display for RunType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for RunType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RunType::ALL.into_iter().find(|r| r.as_str() == s).ok_or_else(|| format!("unknown run type `{s}`"))
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
        for state in RunState::ALL {
            assert_eq!(state.as_str().parse::<RunState>(), Ok(state));
        }
        for run_type in RunType::ALL {
            assert_eq!(run_type.as_str().parse::<RunType>(), Ok(run_type));
        }
        assert_eq!("paused".parse::<RunState>(), Err("unknown run state `paused`".to_owned()));
        // Tables of states line up: Display honours width and alignment.
        assert_eq!(format!("{:<14}|{:>8}", TaskState::UpForRetry, RunState::Success), "up_for_retry  | success");
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
