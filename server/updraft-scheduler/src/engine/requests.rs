//! Clear and mark requests: the API and the CLI only record a request; the scheduler that
//! owns the run carries it out here, in memory, and the loop's write deletes the request in the
//! same transaction as the changes it made — so a request is applied exactly once and never
//! races with the run's own tries.

use std::collections::HashMap;
use std::sync::Arc;

use updraft_db::Timestamp;
use updraft_db::batch::TaskUpdate;
use updraft_db::requests::{RequestAction, RequestRow};

use super::dispatch::in_flight_tries;
use super::{Engine, EngineError};
use updraft_types::{RunState, TaskState};

impl Engine {
    /// Carries out the clear and mark requests on the runs this scheduler owns. A run that
    /// finished while a request was made goes back to the queue, to be taken over afresh.
    pub(super) async fn take_requests(&mut self) -> Result<(), EngineError> {
        let requests = self.db.owned_requests(&self.config.scheduler_id).await?;
        let mut requeue = Vec::new();
        for request in requests {
            if self.writes.is_request_done(request.id) {
                continue;
            }
            if self.runs.contains_key(&request.run_pk) {
                self.apply_request(&request);
                self.complete_if_done(request.run_pk);
            } else if request.run_state.is_finished() && !requeue.contains(&request.run_pk) {
                requeue.push(request.run_pk);
            }
        }
        // The run's final state must be written before it is queued again.
        self.flush().await?;
        for run_pk in requeue {
            self.db.requeue_for_requests(run_pk).await?;
        }
        Ok(())
    }

    /// Applies one clear or mark request to an active run (in memory; written by the next flush,
    /// in the same transaction that deletes the request).
    pub(super) fn apply_request(&mut self, request: &RequestRow) {
        self.writes.request_done(request.id);
        let run_pk = request.run_pk;
        let Some(run) = self.runs.get(&run_pk) else { return };
        let dag = Arc::clone(&run.dag);
        let dag = &dag.dag;
        let n = dag.tasks.len() as u32;
        let mut selected: Vec<u32> = if request.task_ids.is_empty() {
            (0..n).collect()
        } else {
            let index: HashMap<&str, u32> =
                dag.tasks.iter().enumerate().map(|(i, t)| (t.id.as_str(), i as u32)).collect();
            request.task_ids.iter().filter_map(|id| index.get(id.as_str()).copied()).collect()
        };
        let mut seen = vec![false; n as usize];
        for &t in &selected {
            seen[t as usize] = true;
        }
        let mut stack = selected.clone();
        while let Some(t) = stack.pop() {
            let mut next = Vec::new();
            if request.downstream {
                next.extend_from_slice(dag.downstream(t));
            }
            if request.upstream {
                next.extend_from_slice(dag.upstream(t));
            }
            for u in next {
                if !seen[u as usize] {
                    seen[u as usize] = true;
                    selected.push(u);
                    stack.push(u);
                }
            }
        }
        selected.sort_unstable();
        let now = self.clock.now();
        match request.action {
            RequestAction::Clear => {
                let Some(run) = self.runs.get_mut(&run_pk) else { return };
                if request.only_failed {
                    selected
                        .retain(|&t| matches!(run.readiness.state(t), TaskState::Failed | TaskState::UpstreamFailed));
                }
                let in_flight = in_flight_tries(run_pk, run, &selected);
                for &t in &selected {
                    let task = &dag.tasks[t as usize];
                    run.max_tries[t as usize] = run.tries[t as usize] + task.retries;
                    run.rescheduled[t as usize] = false;
                    run.started.remove(&t);
                    self.writes.task(TaskUpdate {
                        reset_max_tries: Some(i32::try_from(run.max_tries[t as usize]).unwrap_or(i32::MAX)),
                        ..TaskUpdate::new(run_pk, task.id.as_str(), TaskState::NoStatus)
                    });
                }
                run.forced = None;
                let changes = run.readiness.clear(&selected);
                self.stop_tries(&in_flight);
                self.apply_changes(run_pk, changes);
            }
            RequestAction::MarkSuccess | RequestAction::MarkFailed | RequestAction::MarkSkipped => {
                let state = match request.action {
                    RequestAction::MarkSuccess => TaskState::Success,
                    RequestAction::MarkFailed => TaskState::Failed,
                    _ => TaskState::Skipped,
                };
                for t in selected {
                    self.mark(run_pk, t, state, now);
                }
            }
            RequestAction::MarkRunSuccess | RequestAction::MarkRunFailed => {
                let success = request.action == RequestAction::MarkRunSuccess;
                for t in 0..n {
                    let Some(run) = self.runs.get(&run_pk) else { return };
                    let current = run.readiness.state(t);
                    if current.is_finished() {
                        continue;
                    }
                    let state = if success {
                        TaskState::Success
                    } else if current.is_in_flight() {
                        TaskState::Failed
                    } else {
                        TaskState::Skipped
                    };
                    self.mark(run_pk, t, state, now);
                }
                if let Some(run) = self.runs.get_mut(&run_pk) {
                    run.forced = Some(if success { RunState::Success } else { RunState::Failed });
                }
            }
        }
    }

    /// Sets a task's final state by hand. A try still running is stopped (its pod deleted, its
    /// runner aborted; an executor that cannot stop it lets it finish, and its result is
    /// discarded).
    fn mark(&mut self, run_pk: i64, t: u32, state: TaskState, now: Timestamp) {
        let Some(run) = self.runs.get_mut(&run_pk) else { return };
        if run.readiness.state(t) == state {
            return;
        }
        let in_flight = in_flight_tries(run_pk, run, &[t]);
        self.stop_tries(&in_flight);
        let Some(run) = self.runs.get_mut(&run_pk) else { return };
        run.started.remove(&t);
        run.rescheduled[t as usize] = false;
        self.writes.task(TaskUpdate {
            end_date: Some(now),
            ..TaskUpdate::new(run_pk, run.dag.dag.tasks[t as usize].id.as_str(), state)
        });
        let changes = run.readiness.mark(t, state);
        self.apply_changes(run_pk, changes);
    }
}
