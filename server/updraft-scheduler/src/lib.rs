//! The scheduler: which runs a timetable makes due, what state a task instance moves to, when a
//! trigger rule lets a task run, how long a retry waits, which task instances became ready when
//! one finished, and the loop that applies all this to the metadata database.
//!
//! The rules (`trigger`, `retry`, `timetable`, `readiness`; the states themselves are
//! `updraft_types::{TaskState, RunState}`) are pure functions of
//! their inputs (the clock is a parameter), unit-tested exhaustively; `engine` is the
//! database-backed loop that applies them, handing tries to an executor through the contract in
//! `updraft-executor`. Readiness is incremental: finishing a try touches only that task's
//! downstream tasks, never every unfinished task of the run, which is what keeps a 10,000-task
//! run from stalling the way Airflow's per-loop re-examination does.

pub mod engine;
mod fnv;
pub mod metrics;
pub mod readiness;
pub mod retry;
pub mod timetable;
pub mod trigger;

pub use readiness::Readiness;
pub use timetable::{DataInterval, intervals_between, next_scheduled_run};
pub use trigger::{Decision, UpstreamCounts, evaluate};
pub use updraft_types::{RunState, RunType, TaskState};
