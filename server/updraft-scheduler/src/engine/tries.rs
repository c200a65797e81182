//! What the executor reports, and what follows: a try started (running), a try ended — a
//! final state propagates downstream through [`Readiness`](crate::readiness::Readiness), a
//! retry waits its backoff, a sensor's reschedule waits without holding a slot — and a run
//! whose tasks have all finished ends, judged by its leaves (or as it was marked).

use std::cmp::Reverse;

use updraft_db::Timestamp;
use updraft_db::batch::TaskUpdate;
use updraft_db::runs::RunStateChange;

use super::dispatch::Ready;
use super::{Engine, Waiting};
use crate::retry::retry_wait;
use updraft_executor::{WorkEvent, WorkOutcome};
use updraft_types::{RunState, TaskState};

impl Engine {
    /// Applies one report of the executor.
    pub(super) fn on_event(&mut self, event: WorkEvent) {
        match event {
            WorkEvent::Started { key, hostname } => {
                let Some(run) = self.runs.get_mut(&key.run_pk) else { return };
                if run.tries[key.task_index as usize] != key.try_number
                    || run.readiness.state(key.task_index) != TaskState::Queued
                {
                    return;
                }
                let now = self.clock.now();
                run.started.insert(key.task_index, now);
                run.readiness.set_unfinished(key.task_index, TaskState::Running);
                let task_id = run.dag.dag.tasks[key.task_index as usize].id.clone();
                self.writes.task(TaskUpdate {
                    start_date: Some(now),
                    hostname: Some(hostname),
                    ..TaskUpdate::new(key.run_pk, task_id, TaskState::Running)
                });
            }
            WorkEvent::Finished { key, outcome } => {
                if !self.slots.release(&key) {
                    return;
                }
                self.stats.tries_finished += 1;
                let Some(run) = self.runs.get(&key.run_pk) else { return };
                let task = &run.dag.dag.tasks[key.task_index as usize];
                // A try that was cleared or marked meanwhile ends without effect.
                if run.tries[key.task_index as usize] != key.try_number
                    || !run.readiness.state(key.task_index).is_in_flight()
                {
                    return;
                }
                match outcome {
                    WorkOutcome::Success => self.finish_try(key.run_pk, key.task_index, TaskState::Success, None),
                    WorkOutcome::Skipped => self.finish_try(key.run_pk, key.task_index, TaskState::Skipped, None),
                    WorkOutcome::Reschedule { after } => {
                        let at = self.clock.now().saturating_add(after);
                        self.finish_try(key.run_pk, key.task_index, TaskState::UpForReschedule, Some(at));
                    }
                    WorkOutcome::Failed { retryable, .. } => {
                        let retries_left = key.try_number <= run.max_tries[key.task_index as usize];
                        if retryable && retries_left {
                            let identity =
                                format!("{}#{}#{}#{}", run.row.dag_id, task.id, run.row.run_id, key.try_number);
                            let wait = retry_wait(
                                task.retry_delay,
                                task.retry_exponential_backoff,
                                task.max_retry_delay,
                                key.try_number,
                                &identity,
                            );
                            let at = self.clock.now().saturating_add(wait);
                            self.finish_try(key.run_pk, key.task_index, TaskState::UpForRetry, Some(at));
                        } else {
                            self.finish_try(key.run_pk, key.task_index, TaskState::Failed, None);
                        }
                    }
                }
            }
        }
    }

    /// Records the end of a try: a final state propagates downstream; a retry or reschedule
    /// waits until `next_at`.
    pub(super) fn finish_try(&mut self, run_pk: i64, t: u32, state: TaskState, next_at: Option<Timestamp>) {
        let now = self.clock.now();
        let Some(run) = self.runs.get_mut(&run_pk) else { return };
        let task_id = run.dag.dag.tasks[t as usize].id.clone();
        let started = run.started.remove(&t);
        let duration = started.map(|s| (now.as_micros() - s.as_micros()) as f64 / 1e6);
        self.writes.task(TaskUpdate {
            end_date: Some(now),
            duration_s: duration,
            next_attempt_at: next_at,
            ..TaskUpdate::new(run_pk, task_id, state)
        });
        if let Some(at) = next_at {
            run.readiness.set_unfinished(t, state);
            if state == TaskState::UpForReschedule {
                run.rescheduled[t as usize] = true;
            }
            self.waiting.push(Reverse(Waiting { at, run_pk, task: t, try_number: run.tries[t as usize] }));
            return;
        }
        let changes = run.readiness.finish(t, state);
        self.apply_changes(run_pk, changes);
        self.complete_if_done(run_pk);
    }

    /// Records the state changes [`Readiness`](crate::readiness::Readiness) decided; tasks
    /// that became scheduled are ready to dispatch.
    pub(super) fn apply_changes(&mut self, run_pk: i64, changes: Vec<(u32, TaskState)>) {
        let now = self.clock.now();
        let Some(run) = self.runs.get_mut(&run_pk) else { return };
        for (t, state) in changes {
            let task = &run.dag.dag.tasks[t as usize];
            let mut update = TaskUpdate::new(run_pk, task.id.as_str(), state);
            if state == TaskState::Scheduled {
                update.scheduled_at = Some(now);
                self.order += 1;
                self.ready.push(Ready { priority: task.priority_weight, order: Reverse(self.order), run_pk, task: t });
            } else if state.is_finished() {
                update.end_date = Some(now);
            }
            self.writes.task(update);
        }
    }

    /// Ends a run whose tasks have all finished.
    pub(super) fn complete_if_done(&mut self, run_pk: i64) {
        let Some(run) = self.runs.get(&run_pk) else { return };
        if !run.readiness.all_finished() {
            return;
        }
        let dag = &run.dag.dag;
        let leaves =
            (0..dag.tasks.len() as u32).filter(|&t| dag.downstream(t).is_empty()).map(|t| run.readiness.state(t));
        let state = run.forced.unwrap_or_else(|| RunState::from_leaves(leaves));
        self.writes.run(RunStateChange { run_pk, state, end_date: Some(self.clock.now()) });
        self.runs.remove(&run_pk);
        self.stats.runs_finished += 1;
    }
}
