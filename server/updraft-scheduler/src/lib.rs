//! The scheduler's decisions, free of I/O: which runs a timetable makes due, what state a task
//! instance moves to, when a trigger rule lets a task run, how long a retry waits, and which
//! task instances became ready when one finished.
//!
//! Everything here is a pure function of its inputs (the clock is a parameter), so the
//! scheduling rules are unit-tested exhaustively, and the database-backed loop that applies
//! them (a later module) stays thin. Readiness is incremental: finishing a try touches only
//! that task's downstream tasks, never every unfinished task of the run, which is what keeps a
//! 10,000-task run from stalling the way Airflow's per-loop re-examination does.

pub mod readiness;
pub mod retry;
pub mod state;
pub mod timetable;
pub mod trigger;

pub use readiness::Readiness;
pub use state::{RunState, TaskState};
pub use timetable::{DataInterval, next_scheduled_run};
pub use trigger::{Decision, UpstreamCounts, evaluate};
